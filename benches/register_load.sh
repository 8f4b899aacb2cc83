#!/usr/bin/env bash
# REGISTER throughput of the lab PBX against Kamailio, measured in the same run with the same
# SIPp scenario (digest: 401 then 200). Runs in a private network namespace; needs root (or
# unprivileged user namespaces), sipp, kamailio, bc. Not part of CI (it loads both cores).
#   benches/register_load.sh [COUNT] [RATE]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
count=${1:-30000}
rate=${2:-20000}
cargo build --release --quiet
exec unshare -n bash -s "$count" "$rate" <<'INNER'
set -euo pipefail
ip link set lo up
count=$1 rate=$2
P=$PWD/tests/peers
W=$(mktemp -d)
trap 'bash "$P/stop.sh" "$W" >/dev/null 2>&1 || true; [ -n "${LAB:-}" ] && kill "$LAB" 2>/dev/null || true' EXIT
measure() { # name port user pass
	local start end
	start=$(date +%s.%N)
	bash "$P/start-sipp.sh" --fg "$W" "$1" "$2" uac_register 127.0.0.1:5060 -s "$3" -ap "$4" \
		-m "$count" -r "$rate" -l 2000 >/dev/null 2>&1 || true
	end=$(date +%s.%N)
	local ok
	ok=$(grep -E "Successful call" "$W/sipp-$1.out" | tail -1 | awk -F'|' '{print $3+0}')
	echo "$1 $(echo "$end - $start" | bc) $ok"
}
./target/release/ringside --log-file "$W/lab.log" lab --sip 127.0.0.1:5060 --callers 0 --bots 0 \
	--queue-log "$W/ql" --duration 600 >"$W/lab.out" 2>&1 &
LAB=$!
sleep 1
read -r _ lab_s lab_ok < <(measure lab 5071 101 lab101)
kill "$LAB"; wait "$LAB" 2>/dev/null || true; LAB=
bash "$P/start-kamailio.sh" "$W" >/dev/null
read -r _ kam_s kam_ok < <(measure kamailio 5072 alice alice123)
lab_rate=$(echo "$lab_ok / $lab_s" | bc)
kam_rate=$(echo "$kam_ok / $kam_s" | bc)
echo "lab:      $lab_ok of $count registrations in ${lab_s}s = ${lab_rate}/s"
echo "kamailio: $kam_ok of $count registrations in ${kam_s}s = ${kam_rate}/s"
echo "ratio lab/kamailio: $(echo "scale=2; $lab_rate / $kam_rate" | bc)"
INNER
