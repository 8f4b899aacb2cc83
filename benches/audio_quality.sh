#!/bin/bash
# Audio quality benchmark: PESQ of speech that ringside and baresip each decode from the very
# same RTP packets, per codec, on a clean network and at 5 % loss + 30 ms jitter. Not in CI
# (about 5 minutes; needs espeak-ng, baresip, sipp, tshark, and PyPI's pesq in a venv that
# this script makes under the target dir).
#
# How, in a private network namespace (unshare -n):
# 1. ringside (release build, `file` audio device) calls baresip and sends an espeak-ng
#    speech file (Harvard sentences, 16 kHz, looped); dumpcap records the RTP it sends.
# 2. benches/impair_rtp.py applies the seeded network of tests/sim_media.rs to that capture:
#    each packet lost with 5 %, delayed 20 ms + uniform(0, 30 ms) (so packets overtake each
#    other), seed 3; the clean condition keeps the capture as it was. (The VM's kernel has no
#    netem, hence a replayed network rather than `tc qdisc ... netem`.)
# 3. ringside's ear: examples/rtp_replay.rs feeds those packets, at their arrival times, to a
#    MediaSession (jitter buffer, concealment, Opus FEC, decoder) ticking every 20 ms.
#    baresip's ear: SIPp calls a fresh baresip and plays it the same packets with the same
#    timing (play_pcap_audio); baresip's sndfile module records what it decoded.
# 4. benches/pesq_score.py finds the speech in each recording (cross-correlation) and scores
#    it against the sent file: PESQ MOS-LQO, ITU-T P.862 narrowband at 8 kHz ("nb") for every
#    codec, and P.862.2 wideband at 16 kHz ("wb") for Opus too, whose stream is wideband.
#    nb and wb scores are on different scales: compare within a column only.
#
# Measured 2026-11-21 (seed 3; a second run agreed within 0.012, each run captures anew):
#   codec  condition                      ringside  baresip
#   PCMU   0 % loss (nb)                  3.985     3.985
#   PCMU   5 % loss + 30 ms jitter (nb)   2.957     2.929
#   opus   0 % loss (nb)                  3.550     3.550
#   opus   0 % loss (wb)                  3.268     3.268
#   opus   5 % loss + 30 ms jitter (nb)   3.326     2.764
#   opus   5 % loss + 30 ms jitter (wb)   3.000     2.307
# Same decoders on clean packets give the same score. Under loss, G.711 is even (both
# conceal); with Opus, ringside decodes the in-band FEC of the next packet and baresip does
# not. ringside alone over seeds 3, 11, 29, 41, 73, 97 (nb): PCMU 2.56-3.01 (mean 2.82),
# Opus 3.25-3.37 (mean 3.30); src/media/quality.rs takes its Opus Ie/Bpl from these.
#
# usage: benches/audio_quality.sh   (honours CARGO_TARGET_DIR; everything stays in
#                                    $TARGET/audio-quality for a look afterwards)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${AUDIO_QUALITY_IN_NETNS:-}" ]; then
	exec env AUDIO_QUALITY_IN_NETNS=1 PATH="$PATH:/usr/sbin:/sbin" unshare -n "$0" "$@"
fi
ip link set lo up
for tool in espeak-ng baresip sipp dumpcap tshark cargo python3; do
	command -v "$tool" > /dev/null || { echo "audio_quality.sh: $tool is missing (apt-get install espeak-ng baresip sip-tester tshark)" >&2; exit 1; }
done
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
W=$TARGET/audio-quality
PEERS=$ROOT/tests/peers
VENV=$TARGET/pesq-venv
rm -rf "$W"
mkdir -p "$W"

if ! [ -x "$VENV/bin/python" ] || ! "$VENV/bin/python" -c 'import pesq, numpy, scipy' 2> /dev/null; then
	python3 -m venv "$VENV"
	"$VENV/bin/pip" install -q pesq numpy scipy
fi
(cd "$ROOT" && cargo build -q --release --bin ringside --example rtp_replay)
RINGSIDE=$TARGET/release/ringside
REPLAY=$TARGET/release/examples/rtp_replay

# Harvard sentences (IEEE 1969 list 1), as test speech: ~12 s with 0.5 s of silence each side.
espeak-ng -v en-us -s 150 -w "$W/speech-espeak.wav" \
	"The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. \
It's easy to tell the depth of a well. These days a chicken leg is a rare dish. \
Rice is often served in round bowls. The juice of lemons makes fine punch."
"$VENV/bin/python" - "$W/speech-espeak.wav" "$W/speech.wav" << 'PY'
import sys
from math import gcd
import numpy as np
from scipy.io import wavfile
from scipy.signal import resample_poly
rate, data = wavfile.read(sys.argv[1])
g = gcd(int(rate), 16000)
data = resample_poly(data.astype(np.float64), 16000 // g, int(rate) // g)
data = data / max(1.0, np.abs(data).max()) * 0.5 * 32767
pad = np.zeros(8000)
wavfile.write(sys.argv[2], 16000, np.concatenate([pad, data, pad]).astype(np.int16))
PY
SPEECH_S=$("$VENV/bin/python" -c "from scipy.io import wavfile; r, d = wavfile.read('$W/speech.wav'); print(int(len(d) / r) + 1)")

started=()
cleanup() {
	for d in "${started[@]}"; do "$PEERS/stop.sh" "$d" > /dev/null 2>&1 || true; done
}
trap cleanup EXIT

# ringside calls baresip and sends the speech; the RTP it sends is captured on lo.
capture_call() {
	local codec=$1 baresip_codec=$2 d=$3
	mkdir -p "$d"
	started+=("$d")
	"$PEERS/start-baresip.sh" "$d" bob 5080 bob bob123 --no-register --codecs "$baresip_codec" > /dev/null
	"$PEERS/start-capture.sh" "$d" rtp "udp dst portrange 10000-10099" > /dev/null
	cat > "$d/ringside.toml" <<- TOML
		[account]
		username = "alice"
		password = "alice123"
		domain = "127.0.0.1"
		[network]
		bind = "127.0.0.1:5090"
		[audio]
		device = "file"
		file_in = "$W/speech.wav"
		file_out = "$d/ringside-heard.wav"
		codecs = ["$codec"]
	TOML
	{
		sleep 1
		echo "dial sip:bob@127.0.0.1:5080"
		sleep $((2 * SPEECH_S + 2))
		echo hangup
		sleep 1
		echo quit
	} | "$RINGSIDE" --log-file "$d/ringside.log" --config "$d/ringside.toml" shell --json --no-register > "$d/events.jsonl"
	sleep 1
	"$PEERS/stop.sh" "$d" rtp baresip-bob > /dev/null
	grep -q '"event":"answered"' "$d/events.jsonl" || { echo "$codec: the call was not answered, see $d" >&2; exit 1; }
	tshark -r "$d/rtp.pcapng" -T fields -e frame.time_relative -e udp.payload \
		"udp.dstport >= 10000 && udp.dstport <= 10099" > "$d/capture.txt" 2> /dev/null
}

# SIPp calls a fresh baresip and plays it the impaired packets with their arrival times.
baresip_hears() {
	local baresip_codec=$1 sdp_map=$2 pcap=$3 d=$4
	mkdir -p "$d"
	started+=("$d")
	"$PEERS/start-baresip.sh" "$d" bob 5080 bob bob123 --no-register --codecs "$baresip_codec" > /dev/null
	local pt=${sdp_map%% *} duration_ms
	duration_ms=$("$VENV/bin/python" -c "import sys; t = [float(l.split()[0]) for l in open(sys.argv[1]) if l.strip()]; print(int(t[-1] * 1000) + 1500)" "${pcap%.pcap}.txt")
	cat > "$d/uac_play.xml" <<- XML
		<?xml version="1.0" encoding="ISO-8859-1" ?>
		<scenario name="play a pcap to baresip">
		<send retrans="500"><![CDATA[
		INVITE sip:bob@[remote_ip]:[remote_port] SIP/2.0
		Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
		From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]bench[call_number]
		To: <sip:bob@[remote_ip]:[remote_port]>
		Call-ID: [call_id]
		CSeq: 1 INVITE
		Contact: <sip:bench@[local_ip]:[local_port]>
		Max-Forwards: 70
		Content-Type: application/sdp
		Content-Length: [len]

		v=0
		o=bench 1 1 IN IP[local_ip_type] [local_ip]
		s=-
		c=IN IP[media_ip_type] [media_ip]
		t=0 0
		m=audio [media_port] RTP/AVP $pt
		a=rtpmap:$sdp_map
		a=ptime:20
		a=sendrecv
		]]></send>
		<recv response="100" optional="true"/>
		<recv response="180" optional="true"/>
		<recv response="183" optional="true"/>
		<recv response="200" rrs="true"/>
		<send><![CDATA[
		ACK [next_url] SIP/2.0
		Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
		From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]bench[call_number]
		[last_To:]
		Call-ID: [call_id]
		CSeq: 1 ACK
		Contact: <sip:bench@[local_ip]:[local_port]>
		Max-Forwards: 70
		Content-Length: 0
		]]></send>
		<nop><action><exec play_pcap_audio="$pcap"/></action></nop>
		<pause milliseconds="$duration_ms"/>
		<send retrans="500"><![CDATA[
		BYE [next_url] SIP/2.0
		Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
		From: <sip:bench@[local_ip]:[local_port]>;tag=[pid]bench[call_number]
		[last_To:]
		Call-ID: [call_id]
		CSeq: 2 BYE
		Contact: <sip:bench@[local_ip]:[local_port]>
		Max-Forwards: 70
		Content-Length: 0
		]]></send>
		<recv response="200"/>
		</scenario>
	XML
	"$PEERS/start-sipp.sh" --fg "$d" play 5072 "$d/uac_play.xml" 127.0.0.1:5080 -m 1 > "$d/sipp.txt" 2>&1 ||
		{ echo "SIPp could not play $pcap to baresip, see $d" >&2; exit 1; }
	sleep 1
	"$PEERS/stop.sh" "$d" baresip-bob > /dev/null
	# One call, so one recording of what baresip decoded.
	local decoded=("$d"/baresip-bob/rec/*-dec*)
	[ -f "${decoded[0]}" ] || { echo "baresip recorded nothing in $d/baresip-bob/rec" >&2; exit 1; }
	cp "${decoded[0]}" "$d/baresip.wav"
}

score() {
	"$VENV/bin/python" "$ROOT/benches/pesq_score.py" "$W/speech.wav" "$1" "$2" "$3" | tr '\n' ' '
}

printf '%-6s %-30s %-9s %-9s %s\n' codec condition ringside baresip "ringside's receive path"
for entry in "PCMU|PCMU/8000/1|0 PCMU/8000" "opus|opus/48000/2|111 opus/48000/2"; do
	IFS='|' read -r codec baresip_codec sdp_map <<< "$entry"
	capture_call "$codec" "$baresip_codec" "$W/$codec"
	pt=$(sed -n 's/.*"event":"media".*"payload_type":\([0-9]*\).*/\1/p' "$W/$codec/events.jsonl" | head -1)
	for condition in clean lossy; do
		d=$W/$codec/$condition
		mkdir -p "$d"
		if [ "$condition" = clean ]; then
			loss=0 jitter=0 label="0 % loss"
		else
			loss=5 jitter=30 label="5 % loss + 30 ms jitter"
		fi
		"$VENV/bin/python" "$ROOT/benches/impair_rtp.py" "$W/$codec/capture.txt" "$loss" "$jitter" 3 \
			"$d/packets.txt" "$d/packets.pcap" > /dev/null
		"$REPLAY" "$d/packets.txt" "$codec" "$pt" "$d/ringside.wav" > "$d/replay.txt"
		baresip_hears "$baresip_codec" "$sdp_map" "$d/packets.pcap" "$d/baresip"
		modes=nb
		[ "$codec" = opus ] && modes="nb wb"
		for mode in $modes; do
			read -r ours theirs <<< "$(score "$mode" "$d/ringside.wav" "$d/baresip/baresip.wav")"
			printf '%-6s %-30s %-9s %-9s %s\n' "$codec" "$label ($mode)" "$ours" "$theirs" "$(cat "$d/replay.txt")"
		done
	done
done
