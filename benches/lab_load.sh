#!/usr/bin/env bash
# Load on the lab PBX's queues with real SIP callers, then call and REGISTER throughput of the
# lab against Kamailio on the same machine with the same SIPp scenarios. Runs in a private
# network namespace; needs root (or unprivileged user namespaces), sipp, kamailio, sox, bc.
# Not part of CI: it loads both cores for a few minutes.
#   benches/lab_load.sh [SECONDS] [RATE] [BOTS] [THROUGHPUT_CALLS]
#
# 1. Queue load: `ringside lab --bots BOTS`, SIPp (tests/peers/sipp/uac_queue_call.xml) sends
#    RATE calls/s into support (600) for SECONDS: each caller is answered with hold music,
#    waits for a bot (3 s talks on average, 1 s wrap-up: lab.toml written here), and hangs up
#    after 8 s unless the lab did first. Reports SIPp's
#    successful and failed calls, whether every ENTERQUEUE in the queue_log has its end
#    (COMPLETE*, ABANDON, EXITWITHTIMEOUT, EXITEMPTY, transfers), and the lab's RSS every 5 s.
# 2. Call throughput: the same scenario with a 200 ms hold, THROUGHPUT_CALLS calls as fast as
#    they are carried (at most 200 at once), into the lab's queue (answered by the lab, hold
#    music) and through Kamailio to a SIPp UAS registered as bob (Kamailio relays signalling
#    only; the RTP goes between the SIPp instances).
# 3. REGISTER throughput: benches/register_load.sh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
secs=${1:-60}
rate=${2:-20}
bots=${3:-120}
throughput_calls=${4:-3000}
cargo build --release --quiet
unshare -n bash -s "$secs" "$rate" "$bots" "$throughput_calls" <<'INNER'
set -euo pipefail
ip link set lo up
secs=$1 rate=$2 bots=$3 tcalls=$4
P=$PWD/tests/peers
W=$(mktemp -d /tmp/lab-load.XXXXXX)
LAB= RSS=
cleanup() {
	bash "$P/stop.sh" "$W" >/dev/null 2>&1 || true
	[ -n "$RSS" ] && kill "$RSS" 2>/dev/null || true
	[ -n "$LAB" ] && kill "$LAB" 2>/dev/null || true
}
trap cleanup EXIT
echo "work dir: $W"

printf '[simulation]\ntalk_mean_secs = 3\n\n[queues.support]\nwrapup_secs = 1\n' >"$W/lab.toml"
start_lab() { # bots
	./target/release/ringside --log-file "$W/lab-$1.log" lab --lab-config "$W/lab.toml" \
		--sip 127.0.0.1:5060 --callers 0 \
		--bots "$1" --queue-log "$W/ql-$1" --duration 3600 >"$W/lab-$1.out" 2>&1 &
	LAB=$!
	sleep 1
}
stop_lab() {
	kill "$LAB"
	wait "$LAB" 2>/dev/null || true
	LAB=
}
sipp_count() { # run "Successful call"|"Failed call"
	grep -E "$2" "$W/sipp-$1.out" | tail -1 | awk -F'|' '{print $3+0}'
}

# --- 1. the queue under load ------------------------------------------------------------------
start_lab "$bots"
(
	while kill -0 "$LAB" 2>/dev/null; do
		echo "$(date +%s) $(ps -o rss= -p "$LAB" | tr -d ' ')"
		sleep 5
	done
) >"$W/rss.txt" &
RSS=$!
calls=$((secs * rate))
started=$(date +%s.%N)
bash "$P/start-sipp.sh" --fg "$W" queue 5075 uac_queue_call 127.0.0.1:5060 -key caller 105 -s 600 \
	-au 105 -ap lab105 -auth_uri 600@127.0.0.1:5060 -r "$rate" -m "$calls" -l $((rate * 20)) \
	>/dev/null 2>&1 || true
ended=$(date +%s.%N)
sleep 6
kill "$RSS" 2>/dev/null || true
RSS=
stop_lab
ok=$(sipp_count queue "Successful call")
failed=$(sipp_count queue "Failed call")
read -r entered closed open connected abandoned timeouts < <(awk -F'|' '
	$5 == "ENTERQUEUE" { open[$2] = 1; entered++ }
	$5 == "CONNECT" { connected++ }
	$5 == "ABANDON" { abandoned++ }
	$5 == "EXITWITHTIMEOUT" { timeouts++ }
	$5 ~ /^(COMPLETEAGENT|COMPLETECALLER|ABANDON|EXITWITHTIMEOUT|EXITEMPTY|BLINDTRANSFER|ATTENDEDTRANSFER)$/ {
		if ($2 in open) { delete open[$2]; closed++ }
	}
	END { left = 0; for (id in open) left++; print entered + 0, closed + 0, left, connected + 0, abandoned + 0, timeouts + 0 }
' "$W/ql-$bots")
echo "== queue load: $rate calls/s into support for ${secs}s, $bots bots"
echo "sipp: $ok successful, $failed failed of $calls in $(echo "$ended - $started" | bc) s"
echo "queue_log: $entered ENTERQUEUE, $closed ended ($connected CONNECT, $abandoned ABANDON, $timeouts EXITWITHTIMEOUT), $open without an end"
echo "lab RSS (KiB) every 5 s: $(awk '{printf "%s ", $2}' "$W/rss.txt")"

# --- 2. call throughput -------------------------------------------------------------------------
sed 's/timeout="8000"/timeout="200"/' "$P/sipp/uac_queue_call.xml" >"$W/uac_queue_call_short.xml"
measure_calls() { # run port target user pass callee
	local start end
	start=$(date +%s.%N)
	bash "$P/start-sipp.sh" --fg "$W" "$1" "$2" "$W/uac_queue_call_short.xml" "$3" -key caller "$4" \
		-au "$4" -ap "$5" -s "$6" -auth_uri "$6@$3" -m "$tcalls" -r 2000 -l 200 >/dev/null 2>&1 || true
	end=$(date +%s.%N)
	echo "$(echo "$end - $start" | bc) $(sipp_count "$1" "Successful call") $(sipp_count "$1" "Failed call")"
}
start_lab 0
read -r lab_s lab_ok lab_failed < <(measure_calls lab-calls 5076 127.0.0.1:5060 105 lab105 600)
stop_lab
bash "$P/start-kamailio.sh" "$W" >/dev/null
bash "$P/start-sipp.sh" --fg "$W" bob-register 5072 uac_register 127.0.0.1:5060 -s bob -ap bob123 \
	-m 1 >/dev/null 2>&1
bash "$P/start-sipp.sh" "$W" bob 5072 uas_answer_rtp >/dev/null
read -r kam_s kam_ok kam_failed < <(measure_calls kamailio-calls 5077 127.0.0.1:5060 alice alice123 bob)
bash "$P/stop.sh" "$W" sipp-bob kamailio >/dev/null 2>&1 || true
lab_rate=$(echo "scale=1; $lab_ok / $lab_s" | bc)
kam_rate=$(echo "scale=1; $kam_ok / $kam_s" | bc)
echo "== call throughput ($tcalls calls held 200 ms, at most 200 at once)"
echo "lab:      $lab_ok ok, $lab_failed failed in ${lab_s}s = ${lab_rate} calls/s"
echo "kamailio: $kam_ok ok, $kam_failed failed in ${kam_s}s = ${kam_rate} calls/s"
echo "ratio lab/kamailio: $(echo "scale=2; $lab_rate / $kam_rate" | bc)"
INNER

# --- 3. REGISTER throughput ------------------------------------------------------------------------
echo "== REGISTER throughput"
bash benches/register_load.sh
