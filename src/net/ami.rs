//! The AMI driver: one TCP connection at a time to an Asterisk manager, running the sans-IO
//! [`AmiClient`] over it, reconnecting with exponential backoff (1, 2, 4 … 60 s) and a full
//! resync (a new snapshot) after every reconnect.
//!
//! [`spawn`] starts the driver task and returns an [`AmiHandle`]: its event channel carries the
//! client's [`AmiClientEvent`]s (plus [`AmiClientEvent::Retrying`] between attempts), and
//! [`AmiHandle::command`] hands over supervisor actions. [`run_queue_action`] is the one-shot
//! form behind `ringside queue add|remove|pause|unpause`.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::Secret;
use crate::queue::ami_client::{
    AmiAction, AmiClient, AmiClientEvent, AmiClientOptions, EventsFilter,
};

/// Asterisk's manager port (manager.conf `port`).
pub const DEFAULT_AMI_PORT: u16 = 5038;
/// How long a TCP connect (and the name lookup) may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
pub const BACKOFF_INITIAL: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A write the PBX does not take within this long means the connection is stuck.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a Logoff may take on shutdown before the connection is simply dropped.
const LOGOFF_GRACE: Duration = Duration::from_secs(2);
/// One-shot actions: from starting to connect to the PBX's answer.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(15);
const EVENT_CHANNEL: usize = 1024;
const READ_BUFFER: usize = 16 * 1024;

/// What can stop the driver or a one-shot action. Each message says where and what to check.
#[derive(Debug, thiserror::Error)]
pub enum AmiError {
    #[error("{addr:?} is not HOST:PORT: {why} (for example 127.0.0.1:5038)")]
    BadAddress { addr: String, why: &'static str },
    #[error("cannot resolve {addr}: {reason}. Check the host name, or use the PBX's IP address")]
    Resolve { addr: String, reason: String },
    // The I/O error is part of the message, not a `source`, so it is not printed twice.
    #[error("cannot connect to the AMI at {addr}: {error}. Check that Asterisk runs, that manager.conf has `enabled = yes` with this port and a bindaddr you can reach, and that no firewall is in the way")]
    Connect { addr: String, error: std::io::Error },
    #[error("no answer from {addr} within {seconds} s: check the host, the port (Asterisk's AMI default is 5038) and the firewall")]
    ConnectTimeout { addr: String, seconds: u64 },
    #[error("AMI at {addr}: {message}")]
    LoginRejected { addr: String, message: String },
    #[error("the AMI session with {addr} ended: {reason}")]
    Lost { addr: String, reason: String },
    /// The PBX answered the action with an error; `message` is its own text.
    #[error("{context}: {message}")]
    ActionFailed { context: String, message: String },
    #[error("no answer from the AMI at {addr} to {context} within {seconds} s: check that the PBX is up and the AMI user may write = agent")]
    Timeout {
        addr: String,
        context: String,
        seconds: u64,
    },
    #[error("the AMI driver for {addr} has stopped")]
    Stopped { addr: String },
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct AmiConfig {
    /// `HOST:PORT` as the user typed it (`HOST` alone means port 5038).
    pub addr: String,
    pub user: String,
    pub secret: Secret,
    pub events: EventsFilter,
    pub options: AmiClientOptions,
    pub connect_timeout: Duration,
    pub backoff_initial: Duration,
    pub backoff_max: Duration,
    /// Reconnect after a lost connection or a failed attempt; `false` ends the driver instead.
    pub reconnect: bool,
}

impl AmiConfig {
    /// The console's defaults: all events, MD5 login, snapshot, reconnect.
    pub fn new(addr: impl Into<String>, user: impl Into<String>, secret: Secret) -> Self {
        Self {
            addr: addr.into(),
            user: user.into(),
            secret,
            events: EventsFilter::On,
            options: AmiClientOptions::default(),
            connect_timeout: CONNECT_TIMEOUT,
            backoff_initial: BACKOFF_INITIAL,
            backoff_max: BACKOFF_MAX,
            reconnect: true,
        }
    }
}

/// Splits `HOST:PORT` (`[v6]:PORT`, or `HOST` for port 5038) without resolving it.
pub fn parse_addr(addr: &str) -> Result<(String, u16), AmiError> {
    let bad = |why| AmiError::BadAddress {
        addr: addr.chars().take(80).collect(),
        why,
    };
    let text = addr.trim();
    if text.is_empty() {
        return Err(bad("it is empty"));
    }
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| bad("a `[` without `]`"))?;
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => return Err(bad("text after `]` that is not `:PORT`")),
        }
    } else {
        match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => {
                return Err(bad("an IPv6 address needs brackets: [::1]:5038"))
            }
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    if host.is_empty() {
        return Err(bad("the host is missing"));
    }
    let port = match port {
        None => DEFAULT_AMI_PORT,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|port| *port > 0)
            .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?,
    };
    Ok((host.to_owned(), port))
}

/// Resolves and connects, trying every address of the name in turn.
pub async fn connect(addr: &str, timeout: Duration) -> Result<TcpStream, AmiError> {
    let (host, port) = parse_addr(addr)?;
    let seconds = timeout.as_secs().max(1);
    let lookup = tokio::net::lookup_host((host.as_str(), port));
    let addrs: Vec<_> = match tokio::time::timeout(timeout, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(error)) => {
            return Err(AmiError::Resolve {
                addr: addr.to_owned(),
                reason: error.to_string(),
            })
        }
        Err(_) => {
            return Err(AmiError::Resolve {
                addr: addr.to_owned(),
                reason: format!("the lookup took more than {seconds} s"),
            })
        }
    };
    let mut last = AmiError::Resolve {
        addr: addr.to_owned(),
        reason: "no address found".to_owned(),
    };
    for target in addrs {
        match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                // AMI messages are small and interactive.
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(error)) => {
                last = AmiError::Connect {
                    addr: addr.to_owned(),
                    error,
                }
            }
            Err(_) => {
                last = AmiError::ConnectTimeout {
                    addr: addr.to_owned(),
                    seconds,
                }
            }
        }
    }
    Err(last)
}

enum Command {
    Action(AmiAction, oneshot::Sender<String>),
    Shutdown,
}

/// The running driver: its events, and a way to give it actions.
pub struct AmiHandle {
    addr: String,
    events: mpsc::Receiver<AmiClientEvent>,
    commands: mpsc::Sender<Command>,
    task: JoinHandle<Result<(), AmiError>>,
}

impl AmiHandle {
    /// The next event; `None` once the driver has stopped (see [`AmiHandle::join`] for why).
    pub async fn next_event(&mut self) -> Option<AmiClientEvent> {
        self.events.recv().await
    }

    /// Hands an action to the client and returns its ActionID; the answer comes as an
    /// [`AmiClientEvent::ActionResult`] with that id. Waits for the login when not logged in.
    pub async fn command(&self, action: AmiAction) -> Result<String, AmiError> {
        let stopped = || AmiError::Stopped {
            addr: self.addr.clone(),
        };
        let (reply, id) = oneshot::channel();
        self.commands
            .send(Command::Action(action, reply))
            .await
            .map_err(|_| stopped())?;
        id.await.map_err(|_| stopped())
    }

    /// Logs off (waiting up to 2 s for the PBX) and stops the driver.
    pub async fn shutdown(self) -> Result<(), AmiError> {
        let _ = self.commands.send(Command::Shutdown).await;
        // Nobody reads the events any more: a driver blocked on a full channel must not wait.
        drop(self.events);
        join(self.addr, self.task).await
    }

    /// Waits for the driver to stop by itself (login rejected, or `reconnect` off and the
    /// connection gone) and returns why.
    pub async fn join(self) -> Result<(), AmiError> {
        drop(self.events);
        join(self.addr, self.task).await
    }
}

async fn join(addr: String, task: JoinHandle<Result<(), AmiError>>) -> Result<(), AmiError> {
    match task.await {
        Ok(result) => result,
        Err(_) => Err(AmiError::Stopped { addr }),
    }
}

/// Starts the driver on the current tokio runtime.
pub fn spawn(config: AmiConfig) -> AmiHandle {
    let (event_tx, events) = mpsc::channel(EVENT_CHANNEL);
    let (commands, command_rx) = mpsc::channel(16);
    let addr = config.addr.clone();
    let task = tokio::spawn(run(config, command_rx, event_tx));
    AmiHandle {
        addr,
        events,
        commands,
        task,
    }
}

/// How one connection ended.
enum ConnectionEnd {
    /// The driver is done: logged off, login rejected, or nobody listens any more.
    Finished(Result<(), AmiError>),
    /// The connection is gone; `logged_in` says whether it got that far.
    Lost { reason: String, logged_in: bool },
}

async fn run(
    config: AmiConfig,
    mut commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<AmiClientEvent>,
) -> Result<(), AmiError> {
    let mut client = AmiClient::with_options(
        config.user.clone(),
        config.secret.clone(),
        config.events.clone(),
        config.options.clone(),
    );
    let mut backoff = config.backoff_initial;
    loop {
        let failure = match connect(&config.addr, config.connect_timeout).await {
            Ok(stream) => {
                match run_connection(&config, &mut client, stream, &mut commands, &events).await {
                    ConnectionEnd::Finished(result) => return result,
                    ConnectionEnd::Lost { reason, logged_in } => {
                        if logged_in {
                            backoff = config.backoff_initial;
                        }
                        if !config.reconnect {
                            return Err(AmiError::Lost {
                                addr: config.addr.clone(),
                                reason,
                            });
                        }
                        reason
                    }
                }
            }
            Err(error) if !config.reconnect => return Err(error),
            Err(error) => error.to_string(),
        };
        let retrying = AmiClientEvent::Retrying {
            after: backoff,
            reason: failure,
        };
        if events.send(retrying).await.is_err() {
            return Ok(());
        }
        // Actions given while waiting are queued in the client for the next login.
        let wake = tokio::time::sleep(backoff);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                () = &mut wake => break,
                command = commands.recv() => match command {
                    Some(Command::Action(action, reply)) => {
                        let _ = reply.send(client.command(Instant::now(), action));
                        if forward_events(&mut client, &events).await.is_err() {
                            return Ok(());
                        }
                    }
                    Some(Command::Shutdown) | None => return Ok(()),
                },
            }
        }
        backoff = backoff.saturating_mul(2).min(config.backoff_max);
    }
}

/// Sends the client's pending events; `Err` when nobody listens any more.
async fn forward_events(
    client: &mut AmiClient,
    events: &mpsc::Sender<AmiClientEvent>,
) -> Result<(), ()> {
    while let Some(event) = client.poll_event() {
        events.send(event).await.map_err(|_| ())?;
    }
    Ok(())
}

async fn write_out(writer: &mut OwnedWriteHalf, client: &mut AmiClient) -> Result<(), String> {
    while let Some(bytes) = client.poll_transmit() {
        match tokio::time::timeout(WRITE_TIMEOUT, writer.write_all(&bytes)).await {
            Ok(Ok(())) => {}
            Ok(Err(error)) => return Err(format!("cannot write to the AMI: {error}")),
            Err(_) => {
                return Err(format!(
                    "the AMI took no data for {} s",
                    WRITE_TIMEOUT.as_secs()
                ))
            }
        }
    }
    Ok(())
}

async fn run_connection(
    config: &AmiConfig,
    client: &mut AmiClient,
    stream: TcpStream,
    commands: &mut mpsc::Receiver<Command>,
    events: &mpsc::Sender<AmiClientEvent>,
) -> ConnectionEnd {
    let (mut reader, mut writer) = stream.into_split();
    client.handle_connected(Instant::now());
    let mut buffer = vec![0u8; READ_BUFFER];
    let mut logged_in = false;
    let mut logoff_deadline: Option<Instant> = None;
    let mut closed = false;
    loop {
        if let Err(reason) = write_out(&mut writer, client).await {
            client.handle_closed(Instant::now());
            if logoff_deadline.is_some() {
                return ConnectionEnd::Finished(Ok(()));
            }
            closed = true;
            tracing::debug!(addr = %config.addr, %reason, "AMI write failed");
        }
        let mut end = None;
        while let Some(event) = client.poll_event() {
            match &event {
                AmiClientEvent::LoggedIn => logged_in = true,
                AmiClientEvent::LoginFailed { message } => {
                    end = Some(ConnectionEnd::Finished(Err(AmiError::LoginRejected {
                        addr: config.addr.clone(),
                        message: message.clone(),
                    })));
                }
                AmiClientEvent::Disconnected { reason } => {
                    end = Some(ConnectionEnd::Lost {
                        reason: reason.clone(),
                        logged_in,
                    });
                }
                _ => {}
            }
            if events.send(event).await.is_err() {
                return ConnectionEnd::Finished(Ok(()));
            }
        }
        if let Some(end) = end {
            return end;
        }
        if client.is_finished() {
            return ConnectionEnd::Finished(Ok(()));
        }
        if closed {
            return ConnectionEnd::Lost {
                reason: "the connection closed".to_owned(),
                logged_in,
            };
        }
        let wake = [client.poll_timeout(), logoff_deadline]
            .into_iter()
            .flatten()
            .min();
        let sleep_until = tokio::time::Instant::from_std(
            wake.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
        );
        tokio::select! {
            read = reader.read(&mut buffer) => {
                let now = Instant::now();
                match read {
                    Ok(0) | Err(_) => {
                        client.handle_closed(now);
                        if logoff_deadline.is_some() {
                            return ConnectionEnd::Finished(Ok(()));
                        }
                        closed = true;
                    }
                    Ok(read) => client.handle_bytes(now, buffer.get(..read).unwrap_or_default()),
                }
            }
            command = commands.recv(), if logoff_deadline.is_none() => {
                let now = Instant::now();
                match command {
                    Some(Command::Action(action, reply)) => {
                        let _ = reply.send(client.command(now, action));
                    }
                    Some(Command::Shutdown) | None => {
                        client.command(now, AmiAction::Logoff);
                        logoff_deadline = Some(now + LOGOFF_GRACE);
                    }
                }
            }
            () = tokio::time::sleep_until(sleep_until), if wake.is_some() => {
                let now = Instant::now();
                if logoff_deadline.is_some_and(|deadline| now >= deadline) {
                    return ConnectionEnd::Finished(Ok(()));
                }
                client.handle_timeout(now);
            }
        }
    }
}

/// One supervisor action: connect, log in (no snapshot, no events), send `action`, wait for
/// the PBX's answer, log off. `Ok` is `"QueueAdd support PJSIP/agent1: Added interface to
/// queue"`; a refusal is [`AmiError::ActionFailed`] with the PBX's own text and the same
/// context, e.g. `QueueAdd support PJSIP/agent1: Unable to add interface: Already there`.
pub async fn run_queue_action(
    addr: &str,
    user: &str,
    secret: Secret,
    action: AmiAction,
) -> Result<String, AmiError> {
    let mut config = AmiConfig::new(addr, user, secret);
    config.events = EventsFilter::Off;
    config.options.snapshot = false;
    config.reconnect = false;
    run_queue_action_with(config, action, ACTION_TIMEOUT).await
}

/// [`run_queue_action`] with an explicit config and overall time limit.
pub async fn run_queue_action_with(
    config: AmiConfig,
    action: AmiAction,
    limit: Duration,
) -> Result<String, AmiError> {
    let addr = config.addr.clone();
    let context = action.describe();
    let mut handle = spawn(config);
    let outcome = tokio::time::timeout(limit, async {
        let Ok(action_id) = handle.command(action).await else {
            // The driver already stopped (a refused connection): its error says why.
            return Ok(None);
        };
        while let Some(event) = handle.next_event().await {
            match event {
                AmiClientEvent::ActionResult {
                    action_id: id,
                    success,
                    message,
                } if id == action_id => {
                    return if success {
                        Ok(Some(format!("{context}: {message}")))
                    } else {
                        Err(AmiError::ActionFailed {
                            context: context.clone(),
                            message,
                        })
                    };
                }
                AmiClientEvent::LoginFailed { message } => {
                    return Err(AmiError::LoginRejected {
                        addr: addr.clone(),
                        message,
                    })
                }
                _ => {}
            }
        }
        // The driver stopped without an answer: its own error says why.
        Ok(None)
    })
    .await;
    match outcome {
        Ok(Ok(Some(answer))) => {
            handle.shutdown().await.ok();
            Ok(answer)
        }
        Ok(Ok(None)) => match handle.join().await {
            Err(error) => Err(error),
            Ok(()) => Err(AmiError::Lost {
                addr,
                reason: format!("no answer to {context}"),
            }),
        },
        Ok(Err(error)) => {
            handle.shutdown().await.ok();
            Err(error)
        }
        Err(_) => {
            handle.shutdown().await.ok();
            Err(AmiError::Timeout {
                addr,
                context,
                seconds: limit.as_secs(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_split_with_the_default_port() {
        assert_eq!(
            parse_addr("127.0.0.1:5038").expect("ok"),
            ("127.0.0.1".into(), 5038)
        );
        assert_eq!(
            parse_addr("pbx.example.com").expect("ok"),
            ("pbx.example.com".into(), 5038)
        );
        assert_eq!(parse_addr("[::1]:6000").expect("ok"), ("::1".into(), 6000));
        assert_eq!(parse_addr("[::1]").expect("ok"), ("::1".into(), 5038));
        for (bad, why) in [
            ("", "it is empty"),
            (":5038", "the host is missing"),
            ("pbx:0", "the port is not a number from 1 to 65535"),
            ("pbx:70000", "the port is not a number from 1 to 65535"),
            ("::1:5038", "an IPv6 address needs brackets: [::1]:5038"),
            ("[::1", "a `[` without `]`"),
        ] {
            match parse_addr(bad) {
                Err(AmiError::BadAddress { why: got, .. }) => assert_eq!(got, why, "{bad}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_address_and_what_to_check() {
        // A port that was just free: bind, note it, close.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let error = connect(&addr, Duration::from_secs(2))
            .await
            .expect_err("refused");
        let text = error.to_string();
        assert!(text.starts_with(&format!("cannot connect to the AMI at {addr}: ")));
        assert!(text.contains("enabled = yes"));
    }
}
