#!/usr/bin/env bash
# What an idle dashboard costs over SSH: CPU seconds and bytes written to the terminal per
# minute, measured on the release binary in a tmux pane. Idle means no queue activity:
# `ringside supervise` on a queue_log that does not change (the real Asterisk fixture), so only
# the clock redraws, once a second. Prints frames, bytes and CPU per minute.
#   benches/idle_dashboard.sh [SECONDS]   (default 60; needs tmux)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-60}
cargo build --release --quiet
W=$(mktemp -d)
S="$W/tmux.sock"
trap 'tmux -S "$S" kill-server 2>/dev/null || true; rm -rf "$W"' EXIT
tmux -S "$S" -f /dev/null new-session -d -s idle -x 160 -y 48 \
	"XDG_CONFIG_HOME=$W/cfg ./target/release/ringside --log-file $W/ringside.log supervise --queue-log tests/fixtures/asterisk/queue_log/full.log"
sleep 3 # start-up and the first full frame are not idle
pid=$(pgrep -f "ringside --log-file $W/ringside.log" | head -1)
ticks() { awk '{print $14 + $15}' "/proc/$pid/stat"; }
hz=$(getconf CLK_TCK)
start_ticks=$(ticks)
sleep "$seconds"
end_ticks=$(ticks)
tmux -S "$S" send-keys -t idle q
for _ in $(seq 1 50); do
	grep -q "dashboard closed" "$W/ringside.log" 2>/dev/null && break
	sleep 0.1
done
line=$(grep "dashboard closed" "$W/ringside.log" | tail -1)
frames=$(sed -n 's/.*frames=\([0-9]*\).*/\1/p' <<<"$line")
bytes=$(sed -n 's/.*bytes=\([0-9]*\).*/\1/p' <<<"$line")
cpu=$(echo "scale=3; ($end_ticks - $start_ticks) / $hz * 60 / $seconds" | bc)
echo "idle dashboard 160x48 over ${seconds} s (whole run: $frames frames, $bytes bytes incl. the first full frame)"
echo "CPU while idle: ${cpu} s per minute"
echo "bytes per minute (whole run scaled): $(echo "$bytes * 60 / ($seconds + 3)" | bc)"
