#!/bin/bash
# start-sipp.sh [--fg] WORKDIR NAME SIP_PORT SCENARIO [extra sipp args...]
#   SCENARIO: a name from sipp/ (uas_answer_rtp, uac_call, uas_refer, uac_refer,
#             uas_register_auth, uac_register, uac_register_badpw, uas_hold, uac_hold)
#             or a path to an XML file.
#   Always added: -i 127.0.0.1 -mi 127.0.0.1 -p SIP_PORT -mp MEDIA_PORT -nostdin
#                 -trace_err -trace_logs -trace_screen -trace_msg
#   MEDIA_PORT defaults to 6000 + 10*(SIP_PORT-5070) (5070->6000, 5071->6010, ...),
#   override with env SIPP_MP. Files tone_pcmu.raw and users.csv are put in WORKDIR
#   (sipp runs with cwd=WORKDIR; its trace files <scenario>_<pid>_*.log land there too).
# Background (default): writes WORKDIR/sipp-NAME.pid, WORKDIR/sipp-NAME.out (screen),
#   and WORKDIR/sipp-NAME.rc (sipp's exit code) when it ends. Stop: stop.sh WORKDIR sipp-NAME
# --fg: runs in the foreground and exits with sipp's exit code
#   (0 = all calls OK, 1 = some call failed, 97/98/99 = stopped by command / unknown / no call
#    processed, 255 = fatal error, 254 = cannot bind).
# Typical:
#   start-sipp.sh W uas 5070 uas_answer_rtp                       # UAS on 5070, until stopped
#   start-sipp.sh --fg W uac 5071 uac_call 127.0.0.1:5070 -key caller alice -s bob -m 1
set -euo pipefail
. "$(dirname "$0")/lib.sh"
need sipp sip-tester
FG=0
[ "${1:-}" = "--fg" ] && { FG=1; shift; }
[ $# -ge 4 ] || die "usage: $0 [--fg] WORKDIR NAME SIP_PORT SCENARIO [sipp args...]"
W=$(workdir "$1"); NAME=$2; PORT=$3; SCN=$4; shift 4
case "$SCN" in
*/*|*.xml) [ -f "$SCN" ] || die "no scenario file $SCN"; SCN=$(cd "$(dirname "$SCN")" && pwd)/$(basename "$SCN") ;;
*) SCN=$PEERS_DIR/sipp/$SCN.xml; [ -f "$SCN" ] || die "no scenario $SCN" ;;
esac
MP=${SIPP_MP:-$((6000 + 10 * (PORT - 5070)))}
SIGPROTO=udp
prev=
for a in "$@"; do
	[ "$prev" = "-t" ] && case "$a" in t1|tn) SIGPROTO=tcp ;; esac
	prev=$a
done

PIDF=$W/sipp-$NAME.pid
check_not_running "$PIDF" "$W"
require_free udp:$PORT tcp:$PORT udp:$MP

# media file for rtp_stream (1 s of 440 Hz, 8 kHz mu-law, looped) and users for verifyauth
if [ ! -f "$W/tone_pcmu.raw" ]; then
	need sox sox
	sox -n -r 8000 -c 1 -e u-law -t raw "$W/tone_pcmu.raw" synth 1 sine 440 vol 0.5
fi
cp "$PEERS_DIR/sipp/users.csv" "$W/users.csv"
extra=()
grep -q 'users.csv' "$SCN" && extra+=(-inf users.csv -infindex users.csv 0)

cmd=(sipp -sf "$SCN" -i 127.0.0.1 -mi 127.0.0.1 -p "$PORT" -mp "$MP" -nostdin
	-trace_err -trace_logs -trace_screen -trace_msg "${extra[@]}" "$@")
echo "${cmd[*]}" > "$W/sipp-$NAME.cmd"
rm -f "$W/sipp-$NAME.rc"

if [ $FG = 1 ]; then
	cd "$W"
	set +e
	"${cmd[@]}" < /dev/null > "$W/sipp-$NAME.out" 2>&1
	rc=$?
	set -e
	echo $rc > "$W/sipp-$NAME.rc"
	echo "sipp $NAME ($(basename "$SCN")) exit code $rc; screen: $W/sipp-$NAME.out"
	grep -E 'Successful call|Failed call' "$W/sipp-$NAME.out" | tail -2
	exit $rc
fi

# background: a small wrapper keeps sipp's exit code; SIGTERM to the wrapper stops sipp
cd "$W"
setsid bash -c '
	trap "kill -TERM \$child 2>/dev/null" TERM INT
	"$@" < /dev/null > "'"$W/sipp-$NAME.out"'" 2>&1 & child=$!
	wait $child; rc=$?
	while kill -0 $child 2>/dev/null; do wait $child; rc=$?; done
	echo $rc > "'"$W/sipp-$NAME.rc"'"
' sipp-wrapper "${cmd[@]}" &
pid=$!
echo $pid > "$PIDF"
if ! wait_listen $SIGPROTO "$PORT" $pid 10; then
	cat "$W/sipp-$NAME.out" >&2 || true
	rm -f "$PIDF"
	die "sipp $NAME did not start"
fi
echo "sipp $NAME ($(basename "$SCN")) running: PID $pid, sip 127.0.0.1:$PORT/$SIGPROTO, rtp $MP; screen $W/sipp-$NAME.out"
