//! Test support for interop tests against real SIP peers (SIPp, Kamailio, baresip) and for
//! driving the `ringside shell --json` process.
//!
//! Use it from an integration test with `mod support;`. The peers are started by the scripts
//! in `tests/peers/` (see its README.md); every peer of a test lives in its own work dir
//! `target/peer-tests/<test name>` and is stopped by PID file when the workspace is dropped.
//! Peer ports are fixed (kamailio 5060, SIPp 5070-5079, baresip 5080-5088), so
//! `scripts/test.sh` runs the tests in a private network namespace, and the peer tests of
//! one test binary take turns (a workspace holds a process-wide lock while it lives).
#![allow(dead_code)]

pub mod lab;

use std::collections::VecDeque;
use std::ffi::{OsStr, OsString};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// When set (scripts/test.sh sets it under CI), a missing peer fails the test instead of
/// skipping it, so CI can never pass by testing nothing.
pub const REQUIRE_PEERS_ENV: &str = "RINGSIDE_REQUIRE_PEERS";

/// The Debian packages the peer tests use (scripts/test.sh installs them).
pub const PEER_PACKAGES: &str =
    "sip-tester kamailio baresip-core sox iproute2 python3 tmux python3-aiosmtpd openssl tshark libopus-dev libasound2-dev pkg-config";

/// Debian's python3: `python3` on PATH may be a pyenv shim without Debian's modules.
pub const DEBIAN_PYTHON: &str = "/usr/bin/python3";

/// Directory with the peer scripts, configs and scenarios.
pub fn peers_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("peers")
}

/// Root of all peer work dirs: `<target dir>/peer-tests`.
pub fn peer_tests_root() -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    match tmp.parent() {
        Some(target) => target.join("peer-tests"),
        None => tmp.join("peer-tests"),
    }
}

fn debian_package(bin: &str) -> &str {
    match bin {
        "sipp" => "sip-tester",
        "baresip" => "baresip-core",
        "ss" | "ip" => "iproute2",
        "dumpcap" | "tshark" => "tshark",
        other => other,
    }
}

/// Tools the start scripts call besides the peer itself.
fn script_helpers(bin: &str) -> &'static [&'static str] {
    match bin {
        // The mail tests make a throwaway CA with the openssl CLI.
        "python3-aiosmtpd" => &["openssl"],
        "sipp" | "baresip" => &["bash", "ss", "sox"],
        "kamailio" => &["bash", "ss"],
        _ => &[],
    }
}

/// PATH plus the sbin directories: Debian installs kamailio in /usr/sbin, which is not on a
/// normal user's PATH.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin"] {
        if !dirs.iter().any(|d| d == Path::new(extra)) {
            dirs.push(PathBuf::from(extra));
        }
    }
    dirs
}

fn peer_path_env() -> OsString {
    std::env::join_paths(search_dirs()).unwrap_or_else(|_| OsString::from("/usr/bin:/bin"))
}

/// Full path of an executable found on PATH (or in the sbin directories).
pub fn find_on_path(bin: &str) -> Option<PathBuf> {
    search_dirs().into_iter().map(|d| d.join(bin)).find(|p| {
        fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// A peer named `python3-MODULE` is a Python module of Debian's python3, not a binary.
fn peer_installed(name: &str) -> bool {
    match name.strip_prefix("python3-") {
        Some(module) => Command::new(DEBIAN_PYTHON)
            .args(["-c", &format!("import {module}")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success()),
        None => find_on_path(name).is_some(),
    }
}

/// True when `bin` (and the tools its start script needs) is installed. Otherwise prints
/// `SKIPPED: <bin> not installed (apt-get install ...)` and returns false, or panics with that
/// message when RINGSIDE_REQUIRE_PEERS is set.
pub fn require_peer(bin: &str) -> bool {
    let missing: Vec<&str> = std::iter::once(bin)
        .chain(script_helpers(bin).iter().copied())
        .filter(|b| !peer_installed(b))
        .collect();
    if missing.is_empty() {
        return true;
    }
    let mut packages: Vec<&str> = missing.iter().map(|b| debian_package(b)).collect();
    packages.dedup();
    let what = if missing.first() == Some(&bin) {
        missing.join(", ")
    } else {
        format!("{} (needed to run {bin})", missing.join(", "))
    };
    let message = format!(
        "SKIPPED: {what} not installed (apt-get install -y --no-install-recommends {}; \
         scripts/test.sh installs all of: {PEER_PACKAGES})",
        packages.join(" ")
    );
    if std::env::var_os(REQUIRE_PEERS_ENV).is_some_and(|v| !v.is_empty()) {
        panic!("{message} [{REQUIRE_PEERS_ENV} is set, so a missing peer is an error]");
    }
    // Straight to stderr: libtest captures eprintln! of passing tests, and a skip must show.
    let _ = writeln!(io::stderr(), "{message}");
    false
}

/// `require_peer` for several binaries; reports every missing one.
pub fn require_peers(bins: &[&str]) -> bool {
    // Not `all()`: every missing peer should be reported, not just the first.
    let found: Vec<bool> = bins.iter().map(|b| require_peer(b)).collect();
    found.iter().all(|ok| *ok)
}

/// A port on 127.0.0.1 that is free for both UDP and TCP right now.
pub fn free_udp_port() -> u16 {
    for _ in 0..50 {
        let port = UdpSocket::bind(("127.0.0.1", 0))
            .and_then(|s| s.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot bind a UDP socket on 127.0.0.1: {e}"));
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("found no port on 127.0.0.1 free for both UDP and TCP in 50 tries");
}

/// Writes `dir/ringside.toml` and returns its path.
pub fn write_config(dir: &Path, toml_text: &str) -> PathBuf {
    write_named_config(dir, "ringside.toml", toml_text)
}

/// Writes `dir/file_name` (for tests that run several shells) and returns its path.
pub fn write_named_config(dir: &Path, file_name: &str, toml_text: &str) -> PathBuf {
    let path = dir.join(file_name);
    fs::create_dir_all(dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    fs::write(&path, toml_text).unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    path
}

/// The text of a file, or "" when it does not exist (yet).
pub fn read_text(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The last `lines` lines of a text.
pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Polls `done` every 50 ms until it returns true (-> true) or `timeout` passes (-> false).
pub fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

// ---------------------------------------------------------------------------------------------
// Peer work dir

/// Peer tests use fixed ports, so the ones in one test binary take turns.
static PEER_TURN: Mutex<()> = Mutex::new(());

thread_local! {
    /// A second workspace on the same thread would wait for its own lock forever.
    static HOLDS_TURN: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// A fresh work dir `target/peer-tests/<test_name>` for the peers of one test. Dropping it
/// stops every peer started there (`tests/peers/stop.sh WORKDIR`, by PID file only).
pub struct PeerWorkspace {
    dir: PathBuf,
    peers: PathBuf,
    // Declared last: released after Drop::drop has stopped the peers.
    _turn: MutexGuard<'static, ()>,
}

impl PeerWorkspace {
    /// Waits for the other peer tests of this binary, then clears and creates the work dir
    /// (stopping anything a killed earlier run left running there).
    /// One per test: peers of one test all live in the same work dir.
    pub fn new(test_name: &str) -> PeerWorkspace {
        if HOLDS_TURN.with(|held| held.get()) {
            panic!("one PeerWorkspace per test: this thread already has one (it would deadlock)");
        }
        let turn = PEER_TURN
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let peers = peers_dir();
        let dir = peer_tests_root().join(test_name);
        if dir.exists() {
            stop_peers(&peers, &dir);
            fs::remove_dir_all(&dir)
                .unwrap_or_else(|e| panic!("cannot clear {}: {e}", dir.display()));
        }
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        HOLDS_TURN.with(|held| held.set(true));
        PeerWorkspace {
            dir,
            peers,
            _turn: turn,
        }
    }

    /// The work dir (configs, logs, PID files, recordings of every peer).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `tests/peers`.
    pub fn peers_dir(&self) -> &Path {
        &self.peers
    }

    /// A path inside the work dir.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `write_named_config` into the work dir.
    pub fn write_config(&self, file_name: &str, toml_text: &str) -> PathBuf {
        write_named_config(&self.dir, file_name, toml_text)
    }

    /// Runs `tests/peers/<script> args...` with its output in `<log_name>.script.log`.
    /// Files, not pipes: background peers inherit the script's stdout and would hold a pipe
    /// open forever.
    fn run_script(
        &self,
        log_name: &str,
        script: &str,
        args: &[OsString],
    ) -> io::Result<(ExitStatus, String)> {
        let log_path = self.dir.join(format!("{log_name}.script.log"));
        let log = File::create(&log_path)?;
        let status = Command::new("bash")
            .arg(self.peers.join(script))
            .args(args)
            .env("PATH", peer_path_env())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .status()?;
        let output = read_text(&log_path);
        eprintln!("[peers] {script}: {}", output.trim_end());
        Ok((status, output))
    }

    fn run_script_ok(&self, log_name: &str, script: &str, args: &[OsString]) -> io::Result<()> {
        let (status, output) = self.run_script(log_name, script, args)?;
        if status.success() {
            return Ok(());
        }
        // The start scripts exit 2 when a port is taken.
        let kind = if status.code() == Some(2) {
            io::ErrorKind::AddrInUse
        } else {
            io::ErrorKind::Other
        };
        Err(io::Error::new(
            kind,
            format!(
                "tests/peers/{script} failed ({status}):\n{}",
                output.trim_end()
            ),
        ))
    }

    /// Starts kamailio (registrar + proxy, users alice/bob/agent1) on 127.0.0.1:`port`
    /// udp+tcp. `extra`: start-kamailio.sh options such as `--qop`, `--auth-fail-401`.
    pub fn start_kamailio(&self, port: u16, extra: &[&str]) -> io::Result<()> {
        let mut args = vec![
            self.dir.clone().into_os_string(),
            "--port".into(),
            port.to_string().into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.run_script_ok("kamailio", "start-kamailio.sh", &args)
    }

    /// kamailio's log (one `REQ <method> <ruri> from ...` line per request).
    pub fn kamailio_log(&self) -> PathBuf {
        self.dir.join("kamailio.log")
    }

    /// Handle to the files of the SIPp run `name` (also after `run_sipp_fg`).
    pub fn sipp(&self, name: &str) -> SippRun {
        SippRun {
            name: name.to_string(),
            rc: self.dir.join(format!("sipp-{name}.rc")),
            screen: self.dir.join(format!("sipp-{name}.out")),
            messages: self.dir.join(format!("sipp-{name}.messages.log")),
            logs: self.dir.join(format!("sipp-{name}.logs.log")),
            errors: self.dir.join(format!("sipp-{name}.errors.log")),
        }
    }

    fn sipp_args(&self, name: &str, port: u16, scenario: &str, extra: &[&str]) -> Vec<OsString> {
        let run = self.sipp(name);
        let mut args: Vec<OsString> = vec![
            self.dir.clone().into_os_string(),
            name.into(),
            port.to_string().into(),
            scenario.into(),
            // Fixed trace file names instead of <scenario>_<sipp pid>_*.log.
            "-message_file".into(),
            run.messages.into_os_string(),
            "-log_file".into(),
            run.logs.into_os_string(),
            "-error_file".into(),
            run.errors.into_os_string(),
        ];
        args.extend(extra.iter().map(OsString::from));
        args
    }

    /// Starts SIPp in the background: `scenario` is a name from tests/peers/sipp (`uas_hold`)
    /// or a path to an XML file; `extra` are SIPp arguments (remote host, `-m 1`, `-key ...`).
    /// SIPp's RTP port is 6000 + 10 * (port - 5070) unless env SIPP_MP says otherwise.
    pub fn start_sipp(
        &self,
        name: &str,
        port: u16,
        scenario: &str,
        extra: &[&str],
    ) -> io::Result<SippRun> {
        let args = self.sipp_args(name, port, scenario, extra);
        self.run_script_ok(&format!("sipp-{name}"), "start-sipp.sh", &args)?;
        Ok(self.sipp(name))
    }

    /// Runs SIPp to the end and returns its exit code (0 = every call succeeded). An error
    /// means SIPp could not be run at all (port taken, bad scenario, not installed).
    pub fn run_sipp_fg(
        &self,
        name: &str,
        port: u16,
        scenario: &str,
        extra: &[&str],
    ) -> io::Result<i32> {
        let mut args = vec![OsString::from("--fg")];
        args.extend(self.sipp_args(name, port, scenario, extra));
        let (status, output) = self.run_script(&format!("sipp-{name}"), "start-sipp.sh", &args)?;
        // start-sipp.sh writes the .rc file only when sipp itself ran.
        match self.sipp(name).exit_code() {
            Some(code) => Ok(code),
            None => Err(io::Error::other(format!(
                "tests/peers/start-sipp.sh --fg {name} failed before sipp ran ({status}):\n{}",
                output.trim_end()
            ))),
        }
    }

    /// Starts a headless baresip UA `name` on SIP `port` (5080, 5082, ... 5088) as
    /// `user`/`pass`. `extra`: start-baresip.sh options (`--no-register`, `--answer manual`,
    /// `--registrar 127.0.0.1:5060`, `--transport tcp`, `--freq 880`, `--in F.wav`, ...).
    pub fn start_baresip(
        &self,
        name: &str,
        port: u16,
        user: &str,
        pass: &str,
        extra: &[&str],
    ) -> io::Result<Baresip> {
        let ctrl_port = match extra.iter().position(|a| *a == "--ctrl") {
            Some(i) => extra
                .get(i + 1)
                .and_then(|p| p.parse().ok())
                .ok_or_else(|| io::Error::other("--ctrl needs a port number"))?,
            None => port.checked_sub(600).ok_or_else(|| {
                io::Error::other(format!(
                    "baresip SIP port {port} is too low for ctrl = port-600"
                ))
            })?,
        };
        let mut args: Vec<OsString> = vec![
            self.dir.clone().into_os_string(),
            name.into(),
            port.to_string().into(),
            user.into(),
            pass.into(),
        ];
        args.extend(extra.iter().map(OsString::from));
        self.run_script_ok(&format!("baresip-{name}"), "start-baresip.sh", &args)?;
        Ok(Baresip {
            name: name.to_string(),
            sip_port: port,
            ctrl_port,
            log: self.dir.join(format!("baresip-{name}.log")),
            rec_dir: self.dir.join(format!("baresip-{name}")).join("rec"),
        })
    }

    /// Captures loopback traffic matching the BPF `filter` with dumpcap into
    /// `<workdir>/<name>.pcapng` until `stop(&[name])` (which flushes the file) or the drop.
    pub fn start_capture(&self, name: &str, filter: &str) -> io::Result<PathBuf> {
        let args: Vec<OsString> = vec![
            self.dir.clone().into_os_string(),
            name.into(),
            filter.into(),
        ];
        self.run_script_ok(name, "start-capture.sh", &args)?;
        Ok(self.dir.join(format!("{name}.pcapng")))
    }

    /// Stops the named peers now (`kamailio`, `sipp-NAME`, `baresip-NAME`).
    pub fn stop(&self, names: &[&str]) {
        let mut args = vec![self.dir.clone().into_os_string()];
        args.extend(names.iter().map(OsString::from));
        if let Err(e) = self.run_script("stop", "stop.sh", &args) {
            eprintln!("[peers] stop.sh failed to run: {e}");
        }
    }
}

fn stop_peers(peers: &Path, dir: &Path) {
    let result = Command::new("bash")
        .arg(peers.join("stop.sh"))
        .arg(dir)
        .env("PATH", peer_path_env())
        .stdin(Stdio::null())
        .output();
    match result {
        Ok(out) => {
            let text = String::from_utf8_lossy(&out.stdout);
            if !text.trim().is_empty() {
                eprintln!("[peers] stop.sh: {}", text.trim_end());
            }
        }
        Err(e) => eprintln!("[peers] cannot run stop.sh for {}: {e}", dir.display()),
    }
}

impl Drop for PeerWorkspace {
    fn drop(&mut self) {
        stop_peers(&self.peers, &self.dir);
        HOLDS_TURN.with(|held| held.set(false));
    }
}

/// The files of one SIPp run (background or foreground).
pub struct SippRun {
    name: String,
    rc: PathBuf,
    screen: PathBuf,
    messages: PathBuf,
    logs: PathBuf,
    errors: PathBuf,
}

impl SippRun {
    /// SIPp's exit code once it has ended.
    pub fn exit_code(&self) -> Option<i32> {
        fs::read_to_string(&self.rc).ok()?.trim().parse().ok()
    }

    /// Waits for SIPp to end and returns its exit code (0 = every call succeeded).
    pub fn wait(&self, timeout: Duration) -> io::Result<i32> {
        let mut code = None;
        wait_until(timeout, || {
            code = self.exit_code();
            code.is_some()
        });
        code.ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "sipp {} still running after {:?}\n{}",
                    self.name,
                    timeout,
                    self.report()
                ),
            )
        })
    }

    /// Every SIP message SIPp sent and received (`-trace_msg`).
    pub fn messages_log(&self) -> &Path {
        &self.messages
    }

    /// Output of the scenario's `<log>` actions.
    pub fn logs_log(&self) -> &Path {
        &self.logs
    }

    /// Unexpected messages and failed checks.
    pub fn errors_log(&self) -> &Path {
        &self.errors
    }

    /// SIPp's final statistics screen.
    pub fn screen_log(&self) -> &Path {
        &self.screen
    }

    pub fn messages(&self) -> String {
        read_text(&self.messages)
    }

    pub fn logs(&self) -> String {
        read_text(&self.logs)
    }

    /// Screen tail, errors and the last messages: what a failed assertion should show.
    pub fn report(&self) -> String {
        format!(
            "--- sipp {name} screen ({screen}):\n{}\n--- errors ({errors}):\n{}\n--- last messages ({messages}):\n{}",
            tail(&read_text(&self.screen), 12),
            tail(&read_text(&self.errors), 30),
            tail(&self.messages(), 60),
            name = self.name,
            screen = self.screen.display(),
            errors = self.errors.display(),
            messages = self.messages.display(),
        )
    }
}

// ---------------------------------------------------------------------------------------------
// baresip

/// A running baresip started by `PeerWorkspace::start_baresip`.
pub struct Baresip {
    pub name: String,
    pub sip_port: u16,
    pub ctrl_port: u16,
    pub log: PathBuf,
    /// `dump-<time>-dec.wav` (received audio) and `-enc.wav` (sent audio), one pair per call.
    pub rec_dir: PathBuf,
}

impl Baresip {
    /// Opens a ctrl_tcp connection. Events go only to connected clients, so connect before
    /// the action whose events you want.
    pub fn connect(&self) -> BaresipCtl {
        BaresipCtl::connect(self.ctrl_port).unwrap_or_else(|e| {
            panic!(
                "baresip {}: {e}\n{}",
                self.name,
                tail(&read_text(&self.log), 30)
            )
        })
    }

    pub fn log_text(&self) -> String {
        read_text(&self.log)
    }
}

/// Client for baresip's ctrl_tcp module: netstring-framed JSON (`LEN:{...},`) on
/// 127.0.0.1:port. Commands are the menu commands (`dial <uri>`, `hangup`, `accept`, `hold`,
/// `resume`, `sndcode <digits>`, `transfer <uri>`, `listcalls`, `reginfo`, ...); events carry
/// `"event": true` and a `type` such as CALL_INCOMING, CALL_ESTABLISHED, CALL_CLOSED.
pub struct BaresipCtl {
    port: u16,
    stream: TcpStream,
    buf: Vec<u8>,
    /// Events received but not yet returned by `wait_event`.
    pending: VecDeque<Value>,
    /// Everything received, for failure messages.
    history: Vec<Value>,
    next_token: u64,
}

/// Netstrings larger than this are treated as a broken stream.
const MAX_NETSTRING: usize = 1 << 20;

/// Takes one netstring off the front of `buf`: Ok(None) when it is not complete yet.
fn take_netstring(buf: &mut Vec<u8>) -> io::Result<Option<Vec<u8>>> {
    let Some(colon) = buf.iter().position(|b| *b == b':') else {
        if buf.len() > 20 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "netstring length prefix too long",
            ));
        }
        return Ok(None);
    };
    let len: usize = std::str::from_utf8(&buf[..colon])
        .ok()
        .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|s| s.parse().ok())
        .filter(|n| *n <= MAX_NETSTRING)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad netstring length"))?;
    let end = colon + 1 + len;
    if buf.len() < end + 1 {
        return Ok(None);
    }
    if buf[end] != b',' {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "netstring not terminated by ','",
        ));
    }
    let body = buf[colon + 1..end].to_vec();
    buf.drain(..=end);
    Ok(Some(body))
}

impl BaresipCtl {
    pub fn connect(port: u16) -> io::Result<BaresipCtl> {
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot connect to baresip ctrl_tcp {addr}: {e}"),
            )
        })?;
        Ok(BaresipCtl {
            port,
            stream,
            buf: Vec::new(),
            pending: VecDeque::new(),
            history: Vec::new(),
            next_token: 1,
        })
    }

    /// Next message from baresip, or None when `deadline` passes.
    fn recv(&mut self, deadline: Instant) -> io::Result<Option<Value>> {
        loop {
            if let Some(body) = take_netstring(&mut self.buf)? {
                let value: Value = serde_json::from_slice(&body)
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
                self.history.push(value.clone());
                return Ok(Some(value));
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            let left = (deadline - now).max(Duration::from_millis(1));
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 16384];
            match self.stream.read(&mut chunk) {
                Ok(0) => {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "baresip closed the ctrl_tcp connection",
                    ))
                }
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == io::ErrorKind::WouldBlock
                        || e.kind() == io::ErrorKind::TimedOut =>
                {
                    return Ok(None)
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn history_text(&self) -> String {
        self.history
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Sends a command and returns its response (`{"response":true,"ok":..,"data":..}`),
    /// whatever `ok` says. Events that arrive meanwhile are kept for `wait_event`.
    pub fn command(&mut self, cmd: &str, params: &str) -> Value {
        let token = format!("ringside-{}", self.next_token);
        self.next_token += 1;
        let body = json!({"command": cmd, "params": params, "token": token}).to_string();
        let frame = format!("{}:{},", body.len(), body);
        if let Err(e) = self.stream.write_all(frame.as_bytes()) {
            panic!(
                "baresip ctrl {}: cannot send `{cmd} {params}`: {e}",
                self.port
            );
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.recv(deadline) {
                Ok(Some(m)) if m["response"] == json!(true) && m["token"] == json!(token) => {
                    return m
                }
                Ok(Some(m)) => {
                    if m["event"] == json!(true) {
                        self.pending.push_back(m);
                    }
                }
                Ok(None) => panic!(
                    "baresip ctrl {}: no response to `{cmd} {params}` in 10 s; received:\n{}",
                    self.port,
                    self.history_text()
                ),
                Err(e) => panic!(
                    "baresip ctrl {}: `{cmd} {params}`: {e}; received:\n{}",
                    self.port,
                    self.history_text()
                ),
            }
        }
    }

    /// Like `wait_event`, but None on timeout instead of a panic.
    pub fn try_wait_event(&mut self, kind: &str, timeout: Duration) -> Option<Value> {
        if let Some(i) = self.pending.iter().position(|e| e["type"] == json!(kind)) {
            return self.pending.remove(i);
        }
        let deadline = Instant::now() + timeout;
        loop {
            match self.recv(deadline) {
                Ok(Some(m)) if m["event"] == json!(true) && m["type"] == json!(kind) => {
                    return Some(m)
                }
                Ok(Some(m)) => {
                    if m["event"] == json!(true) {
                        self.pending.push_back(m);
                    }
                }
                Ok(None) => return None,
                Err(e) => panic!(
                    "baresip ctrl {}: waiting for {kind}: {e}; received:\n{}",
                    self.port,
                    self.history_text()
                ),
            }
        }
    }

    /// The first not yet returned event of type `kind` (CALL_ESTABLISHED, ...), waiting up
    /// to `timeout`; panics with everything received when none comes.
    pub fn wait_event(&mut self, kind: &str, timeout: Duration) -> Value {
        match self.try_wait_event(kind, timeout) {
            Some(event) => event,
            None => panic!(
                "baresip ctrl {}: no {kind} event within {timeout:?}; received:\n{}",
                self.port,
                self.history_text()
            ),
        }
    }

    /// Sends a command, checks that baresip accepted it, then waits for `event` (on the same
    /// connection, so the event cannot be missed).
    pub fn command_wait(
        &mut self,
        cmd: &str,
        params: &str,
        event: &str,
        timeout: Duration,
    ) -> Value {
        let response = self.command(cmd, params);
        if response["ok"] != json!(true) {
            panic!(
                "baresip ctrl {}: `{cmd} {params}` refused: {response}; received:\n{}",
                self.port,
                self.history_text()
            );
        }
        self.wait_event(event, timeout)
    }

    /// Every message received on this connection.
    pub fn history(&self) -> &[Value] {
        &self.history
    }
}

// ---------------------------------------------------------------------------------------------
// ringside shell --json

enum ShellLine {
    Event(Value),
    /// A stdout line that is not a JSON event object.
    Text(String),
    Closed,
}

/// `ringside shell --json --config FILE` with piped stdio. Each stdout line is one JSON
/// object `{"event":"<name>", ...}`; a reader thread parses them into a channel.
pub struct ShellProcess {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<ShellLine>,
    /// Every stdout line received, in order (events as JSON, other lines as strings).
    history: Vec<Value>,
    stderr: Arc<Mutex<VecDeque<String>>>,
    closed: bool,
    ready: Value,
}

const STDERR_KEEP: usize = 2000;

impl ShellProcess {
    /// Starts `exe shell --json --config <config>` and waits (10 s) for its first event,
    /// `{"event":"ready","local":"127.0.0.1:PORT"}`.
    pub fn start(exe: &Path, config: &Path) -> ShellProcess {
        let args = [
            OsStr::new("shell"),
            OsStr::new("--json"),
            OsStr::new("--config"),
            config.as_os_str(),
        ];
        let mut shell = ShellProcess::spawn(exe, &args)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", exe.display()));
        shell.ready = shell.expect("ready", Duration::from_secs(10));
        shell
    }

    /// Starts `exe args...` with piped stdio and does not wait for anything.
    pub fn spawn(exe: &Path, args: &[&OsStr]) -> io::Result<ShellProcess> {
        let mut child = Command::new(exe)
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| io::Error::other("child has no stdout pipe"))?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| io::Error::other("child has no stderr pipe"))?;
        let (tx, lines) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let trimmed = line.trim();
                if trimmed.is_empty() {
                    continue;
                }
                let parsed = match serde_json::from_str::<Value>(trimmed) {
                    Ok(v) if v["event"].is_string() => ShellLine::Event(v),
                    _ => ShellLine::Text(line),
                };
                if tx.send(parsed).is_err() {
                    return;
                }
            }
            let _ = tx.send(ShellLine::Closed);
        });
        let stderr_lines = Arc::new(Mutex::new(VecDeque::new()));
        let sink = Arc::clone(&stderr_lines);
        thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                let mut kept = sink.lock().unwrap_or_else(|p| p.into_inner());
                if kept.len() == STDERR_KEEP {
                    kept.pop_front();
                }
                kept.push_back(line);
            }
        });
        Ok(ShellProcess {
            stdin: child.stdin.take(),
            child,
            lines,
            history: Vec::new(),
            stderr: stderr_lines,
            closed: false,
            ready: Value::Null,
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The `ready` event (empty when made with `spawn`).
    pub fn ready(&self) -> &Value {
        &self.ready
    }

    /// `local` of the ready event: "127.0.0.1:PORT".
    pub fn local_addr(&self) -> Option<&str> {
        self.ready["local"].as_str()
    }

    /// Every stdout line so far: events as parsed JSON, other lines as JSON strings.
    pub fn history(&self) -> &[Value] {
        &self.history
    }

    /// The last `lines` stderr lines.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let kept = self.stderr.lock().unwrap_or_else(|p| p.into_inner());
        let skip = kept.len().saturating_sub(lines);
        kept.iter()
            .skip(skip)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// History and stderr, for a failure message.
    pub fn transcript(&self) -> String {
        let events: Vec<String> = self.history.iter().map(Value::to_string).collect();
        format!(
            "--- stdout ({} lines):\n{}\n--- stderr (last 60 lines):\n{}",
            events.len(),
            events.join("\n"),
            self.stderr_tail(60)
        )
    }

    /// Writes one command line to the shell's stdin.
    pub fn send(&mut self, line: &str) {
        let result = match self.stdin.as_mut() {
            Some(stdin) => stdin
                .write_all(line.as_bytes())
                .and_then(|()| stdin.write_all(b"\n"))
                .and_then(|()| stdin.flush()),
            None => Err(io::Error::other("stdin already closed")),
        };
        if let Err(e) = result {
            panic!(
                "cannot send `{line}` to ringside: {e}\n{}",
                self.transcript()
            );
        }
    }

    /// Like `expect_where`, but None on timeout or exit instead of a panic.
    pub fn try_expect_where(
        &mut self,
        event: &str,
        mut matches: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        while !self.closed {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(ShellLine::Event(value)) => {
                    self.history.push(value.clone());
                    if value["event"] == json!(event) && matches(&value) {
                        return Some(value);
                    }
                }
                Ok(ShellLine::Text(text)) => self.history.push(Value::String(text)),
                Ok(ShellLine::Closed) | Err(RecvTimeoutError::Disconnected) => self.closed = true,
                Err(RecvTimeoutError::Timeout) => return None,
            }
        }
        None
    }

    /// Waits for the next event named `event` for which `matches` is true, skipping (but
    /// recording) the others. Panics on timeout or exit with the whole transcript.
    pub fn expect_where(
        &mut self,
        event: &str,
        matches: impl FnMut(&Value) -> bool,
        timeout: Duration,
    ) -> Value {
        if let Some(value) = self.try_expect_where(event, matches, timeout) {
            return value;
        }
        let why = if self.closed {
            let status = self.wait_exit(Duration::from_secs(2));
            format!("ringside closed its stdout (exit status: {status:?})")
        } else {
            format!("timed out after {timeout:?}")
        };
        panic!(
            "{why} while waiting for event `{event}`\n{}",
            self.transcript()
        );
    }

    /// Waits for the next event named `event`, skipping (but recording) the others.
    pub fn expect(&mut self, event: &str, timeout: Duration) -> Value {
        self.expect_where(event, |_| true, timeout)
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(20)),
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Sends `quit`, closes stdin and waits for the exit. On timeout the process is killed
    /// (by its PID) and the test fails.
    pub fn quit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(mut stdin) = self.stdin.take() {
            // A shell that already exited is fine here: the exit status tells.
            let _ = stdin.write_all(b"quit\n").and_then(|()| stdin.flush());
        }
        if let Some(status) = self.wait_exit(timeout) {
            return status;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        panic!(
            "ringside did not exit within {timeout:?} after `quit`; killed it\n{}",
            self.transcript()
        );
    }
}

impl Drop for ShellProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
