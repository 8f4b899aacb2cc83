//! The lab driver: runs the sans-IO simulated call center on the wall clock, appends its
//! queue_log to a file, serves the lab's AMI on TCP (`--ami`) and its SIP side on UDP
//! (`--sip`, see [`Lab::serve_sip`]): phones register, dial the connection codes, are rung
//! for queue calls, call each other and transfer queue calls, all by the sans-IO [`LabPbx`].
//!
//! SIP: one UDP socket, plus a pool of [`MEDIA_PORTS`] RTP sockets bound up front, one per leg
//! at a time (the pool caps the calls carried at once). A reader task per socket hands
//! datagrams to the loop through one bounded channel; the loop sends with `try_send_to`, so it
//! never waits on a socket (a datagram the kernel will not take now is dropped, as the network
//! could have). Media frames are paced by the loop's timer (the PBX's `poll_timeout`, every
//! 20 ms while a leg plays audio).
//!
//! AMI: one loop owns the [`Simulation`], the [`AmiEventBook`] and every [`AmiSession`]. Each
//! connection has a reader task (bytes into the loop, through a bounded channel) and a writer
//! task (bytes out). The loop counts the bytes waiting for each writer; a client that lets more
//! than the send limit pile up (a stalled or very slow reader) is disconnected, so one bad
//! client costs at most that much memory and the others are served as before.

use std::collections::HashMap;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::lab::ami_server::{AmiEventBook, AmiSession, LabClock, LabView, LAB_SYSTEM_NAME};
use crate::lab::config::LabConfig;
use crate::lab::pbx::{LabPbx, PbxConfig, PbxEvent, Voicemail};
use crate::lab::queue::QueueEvent;
use crate::lab::sim::Simulation;

/// Bytes one AMI client may leave unread before it is disconnected.
pub const DEFAULT_AMI_SEND_LIMIT: usize = 1024 * 1024;
/// AMI connections at once; more are closed right after accept.
pub const MAX_AMI_CONNECTIONS: usize = 64;
/// A write the client does not take within this long ends the connection.
const AMI_WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const AMI_READ_BUFFER: usize = 4096;
/// The kernel's send buffer per AMI connection (Linux doubles it).
const AMI_SOCKET_SEND_BUFFER: u32 = 64 * 1024;
/// Reads waiting for the loop, all connections together (back-pressure on the readers).
const AMI_INBOUND_QUEUE: usize = 64;
/// RTP sockets bound for the SIP side: legs (code calls, queue callers waiting or talking,
/// agents' legs) carried at once.
pub const MEDIA_PORTS: usize = 256;
/// SIP and RTP datagrams waiting for the loop (back-pressure on the socket readers).
const SIP_INBOUND_QUEUE: usize = 1024;
/// Largest datagram read: SIP over UDP stays well below it.
const DATAGRAM_BUFFER: usize = 65_536;

pub struct LabOptions {
    pub config: LabConfig,
    pub queue_log: PathBuf,
    /// Stop after this long (tests, demos); `None` runs until interrupted.
    pub duration: Option<Duration>,
    /// Print a one-line status per queue this often.
    pub status_every: Duration,
    pub seed: u64,
    /// Serve the AMI on this address (port 0 picks a free one: see [`Lab::ami_addr`]).
    pub ami: Option<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(
        "cannot write the queue_log {path}: {error}. Pass --queue-log FILE in a writable place"
    )]
    QueueLog {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("cannot serve the AMI on {addr}: {error}. Pick a free port with --ami (127.0.0.1:0 takes any free one), or stop what listens there")]
    AmiBind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error("cannot serve SIP on {addr}: {error}. Pick a free address with --sip (127.0.0.1:0 takes any free port), or stop what listens there")]
    SipBind {
        addr: SocketAddr,
        error: std::io::Error,
    },
}

/// What the AMI server did so far, readable while the lab runs.
#[derive(Debug, Default)]
pub struct AmiServerStats {
    /// Connections accepted.
    pub accepted: AtomicU64,
    /// Connections open now.
    pub open: AtomicUsize,
    /// Clients disconnected because they left more than the send limit unread.
    pub slow_disconnects: AtomicU64,
    /// The most bytes ever waiting for one client.
    pub peak_pending_bytes: AtomicUsize,
}

/// A lab with its files open and its AMI listener bound, ready to [`Lab::run`].
pub struct Lab {
    options: LabOptions,
    log: QueueLogFile,
    listener: Option<TcpListener>,
    ami_addr: Option<SocketAddr>,
    send_limit: usize,
    stats: Arc<AmiServerStats>,
    sip: Option<SipSockets>,
}

/// The SIP side's sockets, bound by [`Lab::serve_sip`].
struct SipSockets {
    socket: Arc<UdpSocket>,
    /// The address phones use (the bound one, with a wildcard IP replaced by loopback).
    addr: SocketAddr,
    media: Vec<(u16, Arc<UdpSocket>)>,
}

/// Opens the queue_log and binds the AMI address.
pub async fn start(options: LabOptions) -> Result<Lab, LabError> {
    let path = options.queue_log.clone();
    let fail = |error| LabError::QueueLog {
        path: path.clone(),
        error,
    };
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(fail)?;
    }
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(fail)?;
    let (listener, ami_addr) = match options.ami {
        Some(addr) => {
            let listener = bind_ami(addr).map_err(|error| LabError::AmiBind { addr, error })?;
            let bound = listener
                .local_addr()
                .map_err(|error| LabError::AmiBind { addr, error })?;
            (Some(listener), Some(bound))
        }
        None => (None, None),
    };
    Ok(Lab {
        options,
        log: QueueLogFile { file: log, path },
        listener,
        ami_addr,
        send_limit: DEFAULT_AMI_SEND_LIMIT,
        stats: Arc::new(AmiServerStats::default()),
        sip: None,
    })
}

/// The AMI listener. Its send buffer is fixed (accepted sockets inherit it), which also turns
/// off the kernel's send-buffer growth: a client that stops reading holds at most this much in
/// the kernel, and the send limit soon notices it.
fn bind_ami(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.set_send_buffer_size(AMI_SOCKET_SEND_BUFFER)?;
    socket.bind(addr)?;
    socket.listen(128)
}

/// Run until `duration` elapses (or forever). Status lines go to `out`.
pub async fn run(options: LabOptions, out: &mut impl Write) -> Result<(), LabError> {
    start(options).await?.run(out).await
}

impl Lab {
    /// The address the AMI listens on (the real port when 0 was asked).
    pub fn ami_addr(&self) -> Option<SocketAddr> {
        self.ami_addr
    }

    /// Bytes one AMI client may leave unread before it is disconnected.
    pub fn set_ami_send_limit(&mut self, bytes: usize) {
        self.send_limit = bytes.max(1);
    }

    pub fn ami_stats(&self) -> Arc<AmiServerStats> {
        Arc::clone(&self.stats)
    }

    /// Serve SIP on `addr` (UDP; port 0 picks a free one) with [`MEDIA_PORTS`] RTP sockets on
    /// the same IP. Returns the address phones should use: the real port, and loopback when
    /// `addr` is a wildcard (the lab has no way to know which interface a phone reaches).
    pub async fn serve_sip(&mut self, addr: SocketAddr) -> Result<SocketAddr, LabError> {
        let fail = |error| LabError::SipBind { addr, error };
        let socket = UdpSocket::bind(addr).await.map_err(fail)?;
        let bound = socket.local_addr().map_err(fail)?;
        let ip = match bound.ip() {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        let mut media = Vec::with_capacity(MEDIA_PORTS);
        for _ in 0..MEDIA_PORTS {
            let rtp = UdpSocket::bind(SocketAddr::new(bound.ip(), 0))
                .await
                .map_err(fail)?;
            let port = rtp.local_addr().map_err(fail)?.port();
            media.push((port, Arc::new(rtp)));
        }
        let public = SocketAddr::new(ip, bound.port());
        self.sip = Some(SipSockets {
            socket: Arc::new(socket),
            addr: public,
            media,
        });
        Ok(public)
    }

    /// The address phones register to (after [`Lab::serve_sip`]).
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip.as_ref().map(|sip| sip.addr)
    }

    /// Run until `duration` elapses (or forever). Status lines go to `out`.
    pub async fn run(self, out: &mut impl Write) -> Result<(), LabError> {
        let Lab {
            options,
            mut log,
            listener,
            ami_addr,
            send_limit,
            stats,
            sip,
        } = self;
        let _ = writeln!(out, "{}", options.config.describe());
        let _ = writeln!(out, "queue_log: {}", log.path.display());
        match ami_addr {
            Some(addr) => {
                let _ = writeln!(out, "AMI: {addr} (user {})", options.config.ami.username);
            }
            None => {
                let _ = writeln!(out, "AMI: off (serve it with --ami 127.0.0.1:5038)");
            }
        }
        match &sip {
            Some(sip) => {
                let _ = writeln!(
                    out,
                    "SIP: {} (register with an account above, dial a queue's connection code to log in)",
                    sip.addr
                );
            }
            None => {
                let _ = writeln!(out, "SIP: off (serve it with --sip 127.0.0.1:5060)");
            }
        }
        let _ = out.flush();

        let user = options.config.ami.username.clone();
        let secret = options.config.ami.secret.clone();
        let (net_tx, mut net_rx) = mpsc::channel::<NetInput>(SIP_INBOUND_QUEUE);
        let mut sip =
            sip.map(|sockets| SipSide::start(sockets, &options.config, options.seed, &net_tx));
        drop(net_tx);
        let mut sim = Simulation::new(options.config, options.seed);
        let start = Instant::now();
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        sim.set_wall_clock(start, unix);
        sim.start(start);
        let clock = WallClock {
            start,
            start_micros: u64::try_from(unix.as_micros()).unwrap_or(u64::MAX),
        };
        let mut ami = AmiHub {
            book: AmiEventBook::new(LAB_SYSTEM_NAME, options.seed),
            serving: ami_addr.is_some(),
            sip_takes_actions: sip.is_some(),
            connections: HashMap::new(),
            next_id: 0,
            user,
            secret,
            send_limit,
            stats,
            events: Vec::new(),
        };
        let (inbound_tx, mut inbound) = mpsc::channel::<(u64, Inbound)>(AMI_INBOUND_QUEUE);
        let end = options.duration.map(|d| start + d);
        let mut next_status = start + options.status_every;
        loop {
            if let Some(sip) = sip.as_mut() {
                // Before the AMI hub drains the simulation: its actions are the PBX's to do.
                sip.pbx.handle_sim_actions(Instant::now(), &mut sim);
                sip.flush(out);
            }
            ami.drain_sim(&mut sim, &mut log, clock.at(Instant::now()))?;
            ami.flush();
            let now = Instant::now();
            if now >= next_status {
                next_status = now + options.status_every;
                print_status(&sim, out);
            }
            if end.is_some_and(|e| now >= e) {
                break;
            }
            let wake = [
                sim.poll_timeout(),
                Some(next_status),
                end,
                ami.poll_timeout().map(|at| clock.instant_of(at)),
                sip.as_ref().and_then(|sip| sip.pbx.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min()
            .unwrap_or(now + Duration::from_secs(1));
            tokio::select! {
                () = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => {
                    let now = Instant::now();
                    sim.handle_timeout(now);
                    if let Some(sip) = sip.as_mut() {
                        sip.pbx.handle_timeout(now, &mut sim);
                    }
                    ami.handle_timeout(clock.at(now).now_epoch_micros);
                }
                Some(input) = net_rx.recv(), if sip.is_some() => {
                    let now = Instant::now();
                    if let Some(sip) = sip.as_mut() {
                        match input {
                            NetInput::Sip { from, bytes } => {
                                // Timers already due come first, so a change lands on today's state.
                                sim.handle_timeout(now);
                                sip.pbx.handle_datagram(now, &mut sim, from, &bytes);
                            }
                            NetInput::Rtp { port, from, bytes } => {
                                sip.pbx.handle_rtp(now, port, from, &bytes);
                            }
                        }
                    }
                }
                accepted = accept(listener.as_ref()) => match accepted {
                    Ok((stream, peer)) => {
                        ami.add_connection(stream, peer, &inbound_tx, clock.at(Instant::now()));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "AMI accept failed");
                        // Out of file descriptors, typically: let some close first.
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some((id, input)) = inbound.recv() => match input {
                    Inbound::Bytes(bytes) => {
                        // Timers already due come first, so a change lands on today's state.
                        let now = Instant::now();
                        sim.handle_timeout(now);
                        ami.drain_sim(&mut sim, &mut log, clock.at(now))?;
                        ami.handle_bytes(&mut sim, &mut log, clock, id, &bytes)?;
                    }
                    Inbound::Closed => ami.remove(id),
                },
            }
        }
        if let Some(mut sip) = sip.take() {
            sip.pbx.hang_up_all(Instant::now());
            sip.flush(out);
            sip.stop();
        }
        ami.drain_sim(&mut sim, &mut log, clock.at(Instant::now()))?;
        ami.flush();
        ami.close_all();
        Ok(())
    }
}

/// The queue_log file, appended to.
struct QueueLogFile {
    file: std::fs::File,
    path: PathBuf,
}

impl QueueLogFile {
    fn append(&mut self, text: &str) -> Result<(), LabError> {
        if text.is_empty() {
            return Ok(());
        }
        let fail = |error| LabError::QueueLog {
            path: self.path.clone(),
            error,
        };
        self.file.write_all(text.as_bytes()).map_err(fail)?;
        self.file.flush().map_err(fail)
    }
}

fn print_status(sim: &Simulation, out: &mut impl Write) {
    let snapshot = sim.snapshot();
    for q in &snapshot.queues {
        let busy = q
            .members
            .iter()
            .filter(|m| m.current_call.is_some())
            .count();
        let _ = writeln!(
            out,
            "{:<8} waiting {:>2}  agents {}/{} busy  completed {:>4}  abandoned {:>4}",
            q.name,
            q.callers.len(),
            busy,
            q.members.len(),
            q.stats.completed,
            q.stats.abandoned
        );
    }
    let _ = out.flush();
}

/// Accepts on the listener, or never resolves when there is none.
async fn accept(listener: Option<&TcpListener>) -> std::io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}

/// The monotonic clock tied to Unix time, as the simulation's queue_log sees it.
#[derive(Debug, Clone, Copy)]
struct WallClock {
    start: Instant,
    start_micros: u64,
}

impl WallClock {
    fn at(&self, now: Instant) -> LabClock {
        let since = u64::try_from(now.saturating_duration_since(self.start).as_micros())
            .unwrap_or(u64::MAX);
        LabClock {
            now,
            now_epoch_micros: self.start_micros.saturating_add(since),
            started_epoch_micros: self.start_micros,
        }
    }

    fn instant_of(&self, epoch_micros: u64) -> Instant {
        let since = Duration::from_micros(epoch_micros.saturating_sub(self.start_micros));
        self.start.checked_add(since).unwrap_or(self.start)
    }
}

enum Inbound {
    Bytes(Vec<u8>),
    Closed,
}

struct Connection {
    session: AmiSession,
    peer: SocketAddr,
    /// `None` once the session closed: the writer finishes what it has, then closes.
    out: Option<mpsc::UnboundedSender<Vec<u8>>>,
    /// Bytes handed to the writer and not written yet.
    pending: Arc<AtomicUsize>,
    reader: JoinHandle<()>,
    writer: JoinHandle<()>,
}

struct AmiHub {
    book: AmiEventBook,
    /// Whether an AMI listener exists (the book is kept only then).
    serving: bool,
    /// The SIP side carries out the simulation's actions: leave them in the simulation.
    sip_takes_actions: bool,
    connections: HashMap<u64, Connection>,
    next_id: u64,
    user: String,
    secret: String,
    send_limit: usize,
    stats: Arc<AmiServerStats>,
    /// Scratch space for one drain of the simulation's events.
    events: Vec<QueueEvent>,
}

impl AmiHub {
    /// Takes everything the simulation produced: queue_log text to the file (and to the book,
    /// for the transfer ids), actions (dropped when no SIP side carries them out), and events
    /// to every session that wants them. Published even with nobody connected: the
    /// book follows calls and members for the clients to come.
    fn drain_sim(
        &mut self,
        sim: &mut Simulation,
        log: &mut QueueLogFile,
        clock: LabClock,
    ) -> Result<(), LabError> {
        let text = sim.poll_queue_log();
        if self.serving {
            self.book.note_queue_log(&text);
        }
        log.append(&text)?;
        if !self.sip_takes_actions {
            while sim.poll_action().is_some() {}
        }
        self.events.clear();
        while let Some(event) = sim.poll_event() {
            self.events.push(event);
        }
        if self.serving && !self.events.is_empty() {
            let published = self.book.publish(sim, clock, &self.events);
            for connection in self.connections.values_mut() {
                for event in &published {
                    connection.session.handle_event(event);
                }
            }
        }
        Ok(())
    }

    fn add_connection(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        inbound: &mpsc::Sender<(u64, Inbound)>,
        clock: LabClock,
    ) {
        self.stats.accepted.fetch_add(1, Ordering::Relaxed);
        if self.connections.len() >= MAX_AMI_CONNECTIONS {
            tracing::warn!(%peer, "AMI connection refused: {MAX_AMI_CONNECTIONS} already open");
            return;
        }
        let _ = stream.set_nodelay(true);
        let (read_half, write_half) = stream.into_split();
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1);
        let (out, out_rx) = mpsc::unbounded_channel();
        let pending = Arc::new(AtomicUsize::new(0));
        let reader = tokio::spawn(read_loop(id, read_half, inbound.clone()));
        let writer = tokio::spawn(write_loop(
            id,
            write_half,
            out_rx,
            Arc::clone(&pending),
            inbound.clone(),
        ));
        let session = AmiSession::new(
            self.user.clone(),
            self.secret.clone(),
            clock.now_epoch_micros,
            rand::random(),
        );
        self.connections.insert(
            id,
            Connection {
                session,
                peer,
                out: Some(out),
                pending,
                reader,
                writer,
            },
        );
        self.stats
            .open
            .store(self.connections.len(), Ordering::Relaxed);
        tracing::debug!(%peer, "AMI connection");
    }

    /// Bytes from a client: its actions, and for each supervisor action the change, the
    /// response, then the events the change caused, before the next action is read.
    fn handle_bytes(
        &mut self,
        sim: &mut Simulation,
        log: &mut QueueLogFile,
        clock: WallClock,
        id: u64,
        bytes: &[u8],
    ) -> Result<(), LabError> {
        let mut input = bytes;
        loop {
            let at = clock.at(Instant::now());
            let Some(connection) = self.connections.get_mut(&id) else {
                return Ok(());
            };
            connection
                .session
                .handle_bytes(&LabView::new(sim, &self.book, at), input);
            input = &[];
            let Some(request) = connection.session.poll_request() else {
                return Ok(());
            };
            let result = request.apply(sim, at.now);
            connection
                .session
                .respond(request.action_id.as_deref(), result);
            self.drain_sim(sim, log, at)?;
        }
    }

    fn handle_timeout(&mut self, now_epoch_micros: u64) {
        for connection in self.connections.values_mut() {
            if connection
                .session
                .poll_timeout()
                .is_some_and(|at| at <= now_epoch_micros)
            {
                connection.session.handle_timeout(now_epoch_micros);
            }
        }
    }

    fn poll_timeout(&self) -> Option<u64> {
        self.connections
            .values()
            .filter_map(|c| c.session.poll_timeout())
            .min()
    }

    /// Hands every session's bytes to its writer; closes finished sessions and drops clients
    /// that read too slowly.
    fn flush(&mut self) {
        let mut slow = Vec::new();
        for (&id, connection) in &mut self.connections {
            while let Some(bytes) = connection.session.poll_transmit() {
                let Some(out) = &connection.out else {
                    break;
                };
                let waiting = connection.pending.load(Ordering::Relaxed);
                if waiting.saturating_add(bytes.len()) > self.send_limit {
                    slow.push(id);
                    break;
                }
                let now_waiting =
                    connection.pending.fetch_add(bytes.len(), Ordering::Relaxed) + bytes.len();
                self.stats
                    .peak_pending_bytes
                    .fetch_max(now_waiting, Ordering::Relaxed);
                if out.send(bytes).is_err() {
                    // The writer has stopped (write error or timeout): the reader will see it.
                    break;
                }
            }
            if connection.session.is_closed() && connection.out.is_some() {
                // Dropping the sender lets the writer finish the last bytes, then close.
                connection.out = None;
                connection.reader.abort();
            }
        }
        for id in slow {
            if let Some(connection) = self.connections.remove(&id) {
                tracing::warn!(
                    peer = %connection.peer,
                    limit = self.send_limit,
                    "AMI client disconnected: it left too many bytes unread"
                );
                self.stats.slow_disconnects.fetch_add(1, Ordering::Relaxed);
                connection.reader.abort();
                connection.writer.abort();
            }
        }
        self.stats
            .open
            .store(self.connections.len(), Ordering::Relaxed);
    }

    fn remove(&mut self, id: u64) {
        if let Some(connection) = self.connections.remove(&id) {
            connection.reader.abort();
            // What is queued still goes out if the peer only closed its sending side.
            drop(connection.out);
        }
        self.stats
            .open
            .store(self.connections.len(), Ordering::Relaxed);
    }

    fn close_all(&mut self) {
        for (_, connection) in self.connections.drain() {
            connection.reader.abort();
            drop(connection.out);
        }
        self.stats.open.store(0, Ordering::Relaxed);
    }
}

async fn read_loop(id: u64, mut reader: OwnedReadHalf, inbound: mpsc::Sender<(u64, Inbound)>) {
    let mut buffer = vec![0u8; AMI_READ_BUFFER];
    loop {
        let input = match reader.read(&mut buffer).await {
            Ok(0) | Err(_) => Inbound::Closed,
            Ok(read) => Inbound::Bytes(buffer.get(..read).unwrap_or_default().to_vec()),
        };
        let closed = matches!(input, Inbound::Closed);
        if inbound.send((id, input)).await.is_err() || closed {
            return;
        }
    }
}

/// Writes what the loop hands over; when the loop lets go (the session closed) or a write
/// fails, closes the sending side and tells the loop the connection is over.
async fn write_loop(
    id: u64,
    mut writer: OwnedWriteHalf,
    mut chunks: mpsc::UnboundedReceiver<Vec<u8>>,
    pending: Arc<AtomicUsize>,
    inbound: mpsc::Sender<(u64, Inbound)>,
) {
    while let Some(chunk) = chunks.recv().await {
        let written = tokio::time::timeout(AMI_WRITE_TIMEOUT, writer.write_all(&chunk)).await;
        pending.fetch_sub(chunk.len(), Ordering::Relaxed);
        if !matches!(written, Ok(Ok(()))) {
            break;
        }
    }
    let _ = writer.shutdown().await;
    drop(writer);
    let _ = inbound.send((id, Inbound::Closed)).await;
}

/// A datagram for the loop from one of the SIP side's sockets.
enum NetInput {
    Sip {
        from: SocketAddr,
        bytes: Vec<u8>,
    },
    Rtp {
        port: u16,
        from: SocketAddr,
        bytes: Vec<u8>,
    },
}

/// The running SIP side: the sans-IO PBX, its sockets and their reader tasks.
struct SipSide {
    pbx: LabPbx,
    socket: Arc<UdpSocket>,
    media: HashMap<u16, Arc<UdpSocket>>,
    readers: Vec<JoinHandle<()>>,
    dropped: u64,
}

impl SipSide {
    fn start(
        sockets: SipSockets,
        config: &LabConfig,
        seed: u64,
        inbound: &mpsc::Sender<NetInput>,
    ) -> SipSide {
        let ports: Vec<u16> = sockets.media.iter().map(|(port, _)| *port).collect();
        let pbx = LabPbx::new(
            PbxConfig::new(sockets.addr, ports),
            config,
            seed ^ 0x5349_5021,
        );
        let mut readers = Vec::with_capacity(sockets.media.len() + 1);
        let sip_socket = Arc::clone(&sockets.socket);
        let sip_inbound = inbound.clone();
        readers.push(tokio::spawn(async move {
            let mut buffer = vec![0u8; DATAGRAM_BUFFER];
            loop {
                let Ok((read, from)) = sip_socket.recv_from(&mut buffer).await else {
                    // ICMP errors from an earlier send surface here on some systems: go on.
                    tokio::time::sleep(Duration::from_millis(1)).await;
                    continue;
                };
                let bytes = buffer.get(..read).unwrap_or_default().to_vec();
                if sip_inbound
                    .send(NetInput::Sip { from, bytes })
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }));
        for (port, socket) in &sockets.media {
            let (port, socket, inbound) = (*port, Arc::clone(socket), inbound.clone());
            readers.push(tokio::spawn(async move {
                let mut buffer = vec![0u8; 2048];
                loop {
                    let Ok((read, from)) = socket.recv_from(&mut buffer).await else {
                        tokio::time::sleep(Duration::from_millis(1)).await;
                        continue;
                    };
                    let bytes = buffer.get(..read).unwrap_or_default().to_vec();
                    if inbound
                        .send(NetInput::Rtp { port, from, bytes })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }));
        }
        SipSide {
            pbx,
            socket: sockets.socket,
            media: sockets.media.into_iter().collect(),
            readers,
            dropped: 0,
        }
    }

    /// Sends what the PBX produced and prints what phones did.
    fn flush(&mut self, out: &mut impl Write) {
        while let Some(transmit) = self.pbx.poll_transmit() {
            if self
                .socket
                .try_send_to(&transmit.bytes, transmit.target.addr)
                .is_err()
            {
                self.dropped += 1;
                tracing::debug!(to = %transmit.target.addr, "SIP datagram not sent");
            }
        }
        while let Some(rtp) = self.pbx.poll_media() {
            let sent = self
                .media
                .get(&rtp.local_port)
                .is_some_and(|socket| socket.try_send_to(&rtp.bytes, rtp.remote).is_ok());
            if !sent {
                self.dropped += 1;
            }
        }
        let mut printed = false;
        while let Some(event) = self.pbx.poll_event() {
            if let Some(line) = describe(&event) {
                let _ = writeln!(out, "{line}");
                printed = true;
            }
            tracing::debug!(?event, "lab SIP");
        }
        while let Some(voicemail) = self.pbx.poll_voicemail() {
            let line = match write_voicemail(&voicemail) {
                Ok(path) => format!(
                    "SIP: voicemail from {} in {}: {}",
                    voicemail.caller_id,
                    voicemail.queue,
                    path.display()
                ),
                Err(error) => {
                    tracing::warn!(%error, "voicemail lost");
                    format!("SIP: {error}")
                }
            };
            let _ = writeln!(out, "{line}");
            printed = true;
        }
        if printed {
            let _ = out.flush();
        }
    }

    fn stop(self) {
        for reader in self.readers {
            reader.abort();
        }
        if self.dropped > 0 {
            tracing::info!(dropped = self.dropped, "datagrams the kernel did not take");
        }
    }
}

/// Why a voicemail message could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write the voicemail {path}: {error}. Set voicemail_dir under the queue in lab.toml to a writable directory")]
pub struct VoicemailError {
    pub path: PathBuf,
    pub error: std::io::Error,
}

/// Write a voicemail message as a 16-bit mono WAV, `file_name` in `dir` (created if need be).
pub fn write_voicemail(voicemail: &Voicemail) -> Result<PathBuf, VoicemailError> {
    let path = voicemail.dir.join(&voicemail.file_name);
    let fail = |error: std::io::Error| VoicemailError {
        path: path.clone(),
        error,
    };
    std::fs::create_dir_all(&voicemail.dir).map_err(fail)?;
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: voicemail.sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let to_io = |error: hound::Error| match error {
        hound::Error::IoError(error) => error,
        other => std::io::Error::other(other.to_string()),
    };
    let mut writer = hound::WavWriter::create(&path, spec).map_err(|e| fail(to_io(e)))?;
    for &sample in &voicemail.samples {
        writer.write_sample(sample).map_err(|e| fail(to_io(e)))?;
    }
    writer.finalize().map_err(|e| fail(to_io(e)))?;
    Ok(path)
}

/// The status line for what a phone did, if it deserves one.
fn describe(event: &PbxEvent) -> Option<String> {
    match event {
        PbxEvent::Registered { user, contact } => {
            Some(format!("SIP: {user} registered ({contact})"))
        }
        PbxEvent::Unregistered { user, expired, .. } => Some(format!(
            "SIP: {user} {}",
            if *expired {
                "registration expired"
            } else {
                "unregistered"
            }
        )),
        PbxEvent::CodeDialled {
            user,
            queue,
            login,
            accepted,
        } => Some(match (login, accepted) {
            (true, true) => format!("SIP: {user} logged in to {queue}"),
            (false, true) => format!("SIP: {user} logged out of {queue}"),
            (true, false) => format!("SIP: {user} is already in {queue}"),
            (false, false) => format!("SIP: {user} is not in {queue}"),
        }),
        PbxEvent::Refused {
            user,
            number,
            status,
        } => Some(format!(
            "SIP: {user} dialled {number}: refused with {status}"
        )),
        PbxEvent::PhoneCallAnswered { from, to } => Some(format!("SIP: {from} is talking to {to}")),
        PbxEvent::CallerQueued {
            user,
            queue,
            caller_id,
            ..
        } => Some(format!("SIP: {user} ({caller_id}) waits in {queue}")),
        PbxEvent::Transferred {
            call_id,
            agent,
            target,
            attended,
        } => Some(format!(
            "SIP: {agent} transferred {call_id} to {target} ({})",
            if *attended { "attended" } else { "blind" }
        )),
        PbxEvent::TransferFailed {
            call_id,
            agent,
            target,
            status,
        } => Some(format!(
            "SIP: {agent} could not transfer {call_id} to {target}: {status}"
        )),
        PbxEvent::PhoneCallTransferred { by, from, to } => Some(format!(
            "SIP: {by} transferred {from} to {to}; {from} is talking to {to}"
        )),
        PbxEvent::PhoneTransferFailed { by, target, status } => Some(format!(
            "SIP: {by} could not transfer its call to {target}: {status}"
        )),
        PbxEvent::AgentRinging { .. }
        | PbxEvent::AgentAnswered { .. }
        | PbxEvent::AgentRejected { .. }
        | PbxEvent::CallEnded { .. }
        | PbxEvent::TransferRequested { .. } => None,
    }
}
