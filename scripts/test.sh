#!/usr/bin/env bash
# scripts/test.sh [extra cargo test args...]  -- THE test command (CI runs it via .ci/run).
#
#  1. Installs the Debian SIP peers the interop tests use (SIPp, Kamailio, baresip, sox, ip)
#     and the C libraries the default build links (libopus for Opus, ALSA for sound cards,
#     found with pkg-config) when they are missing. If that is impossible it says why and goes on: the peer tests
#     then print SKIPPED, except under CI, where RINGSIDE_REQUIRE_PEERS=1 makes them fail.
#  2. cargo fmt --check, cargo clippy -D warnings, cargo build (fetches crates).
#  3. cargo test --offline inside a private network namespace that has only `lo`, so the
#     fixed peer ports (5060, 5070-5088, ...) can never clash with the host and no packet can
#     leave the machine. Root: `unshare -n`; other users: `unshare -rn`; without namespaces
#     it falls back to the host loopback with a warning.
# Extra arguments go to `cargo test`, e.g.  scripts/test.sh --test peer_harness -- --nocapture
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
started=$SECONDS

step() { printf '\n==> %s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() {
	printf 'ERROR: %s\n' "$*" >&2
	exit 1
}

# Debian puts kamailio (and ip) in /usr/sbin, which is not on a normal user's PATH.
for d in /usr/local/sbin /usr/sbin /sbin; do
	case ":$PATH:" in *":$d:"*) ;; *) PATH=$PATH:$d ;; esac
done
export PATH

# ---------------------------------------------------------------------------------------------
step "SIP peers and build libraries (Debian packages)"
# The last three are for the build itself (cargo features `opus` and `sound-card`, on by
# default); without them, build with --no-default-features.
PEER_PACKAGES=(sip-tester kamailio baresip-core sox iproute2 python3 tmux python3-aiosmtpd openssl tshark libopus-dev libasound2-dev pkg-config)

install_peers() {
	local missing=() p
	if ! command -v dpkg-query > /dev/null 2>&1 || ! command -v apt-get > /dev/null 2>&1; then
		warn "not a Debian/Ubuntu system (no dpkg-query/apt-get): install SIPp, Kamailio, baresip, sox and iproute2 yourself (peer tests skip without them), and libopus, ALSA and pkg-config development files (or the build needs --no-default-features)"
		return 0
	fi
	for p in "${PEER_PACKAGES[@]}"; do
		dpkg-query -W -f='${Status}' "$p" 2> /dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -eq 0 ]; then
		echo "all installed: ${PEER_PACKAGES[*]}"
		return 0
	fi
	echo "missing: ${missing[*]}"

	local as_root=()
	if [ "$(id -u)" != 0 ]; then
		if ! command -v sudo > /dev/null 2>&1; then
			warn "not root and no sudo: cannot install ${missing[*]} (run as root: apt-get install -y --no-install-recommends ${missing[*]}); peer tests will skip"
			return 0
		fi
		# Without a terminal sudo cannot ask for a password: fail fast instead of hanging.
		if [ -t 0 ]; then as_root=(sudo); else as_root=(sudo -n); fi
	fi
	local apt=("${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get)
	local lock=(-o DPkg::Lock::Timeout=600)

	# Refresh the package lists only when apt does not know a missing package yet.
	local need_update=0
	for p in "${missing[@]}"; do
		if ! apt-cache policy "$p" 2> /dev/null | grep -q 'Candidate: [^(]'; then need_update=1; fi
	done
	if [ $need_update = 1 ]; then
		echo "apt-get update (package lists do not know: ${missing[*]})"
		"${apt[@]}" "${lock[@]}" update -q || warn "apt-get update failed"
	fi
	if ! "${apt[@]}" install -y -q --no-install-recommends "${lock[@]}" "${missing[@]}"; then
		if [ $need_update = 0 ]; then
			# Stale lists point at package versions the mirror no longer has.
			echo "install failed; retrying after apt-get update"
			"${apt[@]}" "${lock[@]}" update -q || true
			"${apt[@]}" install -y -q --no-install-recommends "${lock[@]}" "${missing[@]}" && return 0
		fi
		warn "could not install ${missing[*]}; peer tests will skip (or fail under CI)"
	fi
}
install_peers

# ---------------------------------------------------------------------------------------------
step "Rust toolchain"
if ! command -v cargo > /dev/null 2>&1 && [ -x "$HOME/.cargo/bin/cargo" ]; then
	PATH=$HOME/.cargo/bin:$PATH
fi
command -v cargo > /dev/null 2>&1 ||
	die "cargo not found: install a stable Rust toolchain with rustup (components rustfmt and clippy), then re-run scripts/test.sh"
cargo fmt --version > /dev/null 2>&1 || die "rustfmt missing: rustup component add rustfmt"
cargo clippy --version > /dev/null 2>&1 || die "clippy missing: rustup component add clippy"
cargo --version

step "cargo fmt --all -- --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets -- -D warnings

step "cargo build --all-targets"
cargo build --all-targets

# ---------------------------------------------------------------------------------------------
if [ -n "${CI:-}" ]; then
	# In CI a missing peer must fail its test, never skip it.
	export RINGSIDE_REQUIRE_PEERS=1
fi

test_cmd=(cargo test --offline "$@")
if [ -n "${CI:-}" ]; then
	# A hung test must not eat CI's whole time budget.
	test_cmd=(timeout -k 30 "${RINGSIDE_TEST_TIMEOUT:-1200}" "${test_cmd[@]}")
fi

# Every peer a test starts is stopped by its PID file when the test ends; this catches the
# ones left by a test binary that was killed.
# shellcheck disable=SC2317 # called by the EXIT trap
stop_leftover_peers() {
	local d
	for d in "${CARGO_TARGET_DIR:-target}"/peer-tests/*/; do
		[ -d "$d" ] && bash tests/peers/stop.sh "$d" > /dev/null 2>&1
	done
	return 0
}
trap stop_leftover_peers EXIT

lo_up='ip link set lo up && exec "$@"'
# cargo's output is also kept in a log so the totals over every test binary can be printed.
test_log="${CARGO_TARGET_DIR:-target}/test-output.log"
mkdir -p "$(dirname "$test_log")"
tee_run() {
	"$@" 2>&1 | tee "$test_log"
	return "${PIPESTATUS[0]}"
}
if [ "$(id -u)" = 0 ] && unshare -n bash -c 'ip link set lo up' > /dev/null 2>&1; then
	step "cargo test --offline $* (private network namespace: unshare -n, only lo)"
	set +e
	tee_run unshare -n bash -c "$lo_up" bash "${test_cmd[@]}"
	rc=$?
	set -e
elif unshare -rn bash -c 'ip link set lo up' > /dev/null 2>&1; then
	step "cargo test --offline $* (private network namespace: unshare -rn, only lo)"
	set +e
	tee_run unshare -rn bash -c "$lo_up" bash "${test_cmd[@]}"
	rc=$?
	set -e
else
	warn "cannot create a network namespace (needs root, or unprivileged user namespaces, and iproute2's ip): running tests on the host loopback; a peer test fails if its fixed port (5060, 5070-5088, ...) is already taken there"
	step "cargo test --offline $* (host network)"
	set +e
	tee_run "${test_cmd[@]}"
	rc=$?
	set -e
fi

if [ "$rc" = 124 ] && [ -n "${CI:-}" ]; then
	warn "cargo test was stopped after ${RINGSIDE_TEST_TIMEOUT:-1200} s"
fi
echo
echo "scripts/test.sh: cargo test exit code $rc, total time $((SECONDS - started)) s"
# One closing line over all test binaries (cargo's own last line is the doc-tests' count).
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;/) p += $i; if ($(i+1) ~ /^failed;/) f += $i; if ($(i+1) ~ /^ignored;/) s += $i } }
	END { printf "total: %d passed, %d failed, %d skipped\n", p, f, s }' "$test_log"
exit "$rc"
