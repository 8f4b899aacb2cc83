//! The blocking mail driver: runs the sans-IO [`SmtpClient`] over a `TcpStream` (rustls for
//! STARTTLS and implicit TLS, certificates always verified), or pipes the message to the
//! system's sendmail. Blocking on purpose: a follow-up is one short conversation; the UI calls
//! this from a worker thread (or `spawn_blocking`).

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::mail::compose::{FollowUp, MailTime};
use crate::mail::settings::{EmailSettings, Security, SettingsError, SmtpSettings, Transport};
use crate::mail::smtp::{
    Credentials, Delivery, Envelope, SmtpClient, SmtpClientConfig, SmtpError, SmtpEvent, Step,
};

/// How long sendmail may take before it is stopped.
pub const SENDMAIL_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of sendmail's stderr an error quotes (its end, where the reason usually is).
const SENDMAIL_STDERR_QUOTED: usize = 1000;
const READ_BUFFER: usize = 8 * 1024;

/// A sent follow-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    pub message_id: String,
    pub recipients: usize,
    /// The SMTP server's answer to the message (often its queue id); empty for sendmail.
    pub server_reply: String,
}

/// Why a follow-up was not sent. Every message names the server or program, the step and
/// what to check.
#[derive(Debug, thiserror::Error)]
pub enum MailSendError {
    #[error("{0}")]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Smtp(#[from] SmtpError),
    #[error("cannot resolve SMTP server {server}: {source}: check [email] host")]
    Resolve { server: String, source: io::Error },
    #[error("cannot connect to SMTP server {server}: {detail}: check [email] host and port and that the server is running")]
    Connect { server: String, detail: String },
    #[error("TLS with SMTP server {server} failed during {step}: {detail}{hint}")]
    Tls {
        server: String,
        step: Step,
        detail: String,
        hint: &'static str,
    },
    #[error("connection to SMTP server {server} failed during {step}: {source}")]
    Io {
        server: String,
        step: Step,
        source: io::Error,
    },
    #[error("cannot use [email] ca_file {path}: {detail}: point it to a PEM file holding the CA certificate")]
    CaFile { path: String, detail: String },
    #[error(
        "cannot set up TLS: {detail}: this is a bug in ringside's TLS setup; please report it"
    )]
    TlsSetup { detail: String },
    #[error("cannot run sendmail {path}: {source}: install an MTA that provides it (e.g. apt-get install msmtp-mta or postfix) or set [email] sendmail path")]
    SendmailSpawn { path: String, source: io::Error },
    #[error("sendmail {path} failed ({status}): {stderr}: check the local MTA and its log")]
    SendmailFailed {
        path: String,
        status: String,
        stderr: String,
    },
    #[error(
        "sendmail {path} did not finish within {seconds} s and was stopped: check the local MTA"
    )]
    SendmailTimedOut { path: String, seconds: u64 },
}

impl MailSendError {
    /// True for failures worth retrying later ("send later").
    pub fn is_transient(&self) -> bool {
        match self {
            MailSendError::Smtp(error) => error.is_transient(),
            MailSendError::Resolve { .. }
            | MailSendError::Connect { .. }
            | MailSendError::Io { .. }
            | MailSendError::SendmailTimedOut { .. } => true,
            _ => false,
        }
    }
}

/// Builds the message (Date now, random Message-ID) and sends it with the configured transport.
pub fn send_follow_up(
    settings: &EmailSettings,
    follow_up: &FollowUp,
) -> Result<Sent, MailSendError> {
    settings.validate()?;
    let unix_seconds = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let date = MailTime::utc(unix_seconds);
    let unique: u64 = rand::random();
    let message = follow_up.to_message(date, unique);
    let envelope = Envelope {
        from: follow_up.from.address.clone(),
        recipients: follow_up.recipients(),
    };
    let delivery = send_message(settings, &envelope, &message)?;
    Ok(Sent {
        message_id: follow_up.message_id(date, unique),
        recipients: delivery.recipients,
        server_reply: delivery.server_reply,
    })
}

/// Sends an already built message (CRLF line ends) with the configured transport.
pub fn send_message(
    settings: &EmailSettings,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Delivery, MailSendError> {
    match &settings.transport {
        Transport::Smtp(smtp) => send_smtp(smtp, envelope, message),
        Transport::Sendmail { path, .. } => {
            send_sendmail(path, &envelope.from, message, SENDMAIL_TIMEOUT)?;
            Ok(Delivery {
                recipients: envelope.recipients.len(),
                server_reply: String::new(),
            })
        }
    }
}

enum Connection {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Connection {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Connection::Plain(tcp) => tcp.read(buf),
            Connection::Tls(tls) => tls.read(buf),
        }
    }

    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Connection::Plain(tcp) => tcp.write_all(bytes),
            Connection::Tls(tls) => {
                tls.write_all(bytes)?;
                tls.flush()
            }
        }
    }

    fn close(self) {
        match self {
            Connection::Plain(tcp) => {
                let _ = tcp.shutdown(std::net::Shutdown::Both);
            }
            Connection::Tls(mut tls) => {
                tls.conn.send_close_notify();
                let _ = tls.flush();
                let _ = tls.sock.shutdown(std::net::Shutdown::Both);
            }
        }
    }
}

/// Trusts `ca_file` when set (a private CA), otherwise the Mozilla roots from webpki-roots.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, MailSendError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let ca_error = |detail: String| MailSendError::CaFile {
                path: path.display().to_string(),
                detail,
            };
            let certificates =
                CertificateDer::pem_file_iter(path).map_err(|e| ca_error(e.to_string()))?;
            for certificate in certificates {
                let certificate = certificate.map_err(|e| ca_error(e.to_string()))?;
                roots
                    .add(certificate)
                    .map_err(|e| ca_error(e.to_string()))?;
            }
            if roots.is_empty() {
                return Err(ca_error("it holds no certificate".to_string()));
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    // An explicit provider: the process-wide default may be unset or ambiguous.
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| MailSendError::TlsSetup {
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

fn bare_host(host: &str) -> &str {
    host.trim().trim_start_matches('[').trim_end_matches(']')
}

fn tls_hint(detail: &str) -> &'static str {
    if detail.contains("certificate") || detail.contains("Certificate") {
        ": if the server uses a private CA, set [email] ca_file to its CA certificate (PEM); the certificate must name [email] host"
    } else if detail.contains("timed out") || detail.contains("WouldBlock") {
        ": the server did not complete the handshake in time; check [email] port and security"
    } else {
        ": check [email] port and security (\"tls\" for 465, \"starttls\" for 587)"
    }
}

fn handshake(
    tcp: TcpStream,
    config: Arc<ClientConfig>,
    host: &str,
    server: &str,
    step: Step,
) -> Result<Connection, MailSendError> {
    let tls_error = |detail: String| MailSendError::Tls {
        server: server.to_string(),
        step: step.clone(),
        hint: tls_hint(&detail),
        detail,
    };
    let server_name = ServerName::try_from(bare_host(host).to_string())
        .map_err(|e| tls_error(format!("\"{host}\" is not a valid TLS server name ({e})")))?;
    let mut connection =
        ClientConnection::new(config, server_name).map_err(|e| tls_error(e.to_string()))?;
    let mut tcp = tcp;
    while connection.is_handshaking() {
        connection.complete_io(&mut tcp).map_err(|e| {
            if matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ) {
                tls_error("timed out".to_string())
            } else {
                tls_error(e.to_string())
            }
        })?;
    }
    Ok(Connection::Tls(Box::new(StreamOwned::new(connection, tcp))))
}

fn connect(smtp: &SmtpSettings, server: &str) -> Result<TcpStream, MailSendError> {
    let addresses: Vec<SocketAddr> = (bare_host(&smtp.host), smtp.port)
        .to_socket_addrs()
        .map_err(|source| MailSendError::Resolve {
            server: server.to_string(),
            source,
        })?
        .collect();
    let mut failures = Vec::new();
    for address in &addresses {
        match TcpStream::connect_timeout(address, smtp.connect_timeout) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => failures.push(format!("{address}: {e}")),
        }
    }
    Err(MailSendError::Connect {
        server: server.to_string(),
        detail: if failures.is_empty() {
            "the name resolved to no address".to_string()
        } else {
            failures.join("; ")
        },
    })
}

fn address_literal(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("[{v4}]"),
        IpAddr::V6(v6) => format!("[IPv6:{v6}]"),
    }
}

/// One SMTP conversation: connect, (TLS), greet, (STARTTLS), (AUTH), send, QUIT.
pub fn send_smtp(
    smtp: &SmtpSettings,
    envelope: &Envelope,
    message: &[u8],
) -> Result<Delivery, MailSendError> {
    let server = smtp.server_label();
    let tls = match smtp.security {
        Security::Plain => None,
        Security::StartTls | Security::Tls => Some(tls_config(smtp.ca_file.as_deref())?),
    };
    let tcp = connect(smtp, &server)?;
    let io_error = |step: Step, source: io::Error| MailSendError::Io {
        server: server.clone(),
        step,
        source,
    };
    tcp.set_read_timeout(Some(smtp.read_timeout))
        .and_then(|()| tcp.set_write_timeout(Some(smtp.read_timeout)))
        .map_err(|e| io_error(Step::Greeting, e))?;
    let helo_name = match &smtp.helo_name {
        Some(name) => name.clone(),
        None => tcp
            .local_addr()
            .map(|a| address_literal(a.ip()))
            .unwrap_or_else(|_| "[127.0.0.1]".to_string()),
    };
    let credentials = match (&smtp.user, &smtp.password) {
        (Some(user), Some(password)) => Some(Credentials {
            user: user.clone(),
            password: password.clone(),
        }),
        _ => None,
    };
    let mut client = SmtpClient::new(
        SmtpClientConfig {
            server: server.clone(),
            helo_name,
            require_starttls: smtp.security == Security::StartTls,
            tls_active: smtp.security == Security::Tls,
            credentials,
        },
        envelope.clone(),
        message.to_vec(),
    )?;
    let mut connection = match (&tls, smtp.security) {
        (Some(config), Security::Tls) => {
            handshake(tcp, config.clone(), &smtp.host, &server, Step::Greeting)?
        }
        _ => Connection::Plain(tcp),
    };
    let started = Instant::now();
    let mut buffer = vec![0u8; READ_BUFFER];
    loop {
        while let Some(bytes) = client.poll_transmit() {
            if let Err(e) = connection.write_all(&bytes) {
                if client.is_finished() {
                    break;
                }
                return Err(io_error(client.step(), e));
            }
        }
        let mut outcome = None;
        while let Some(event) = client.poll_event() {
            match event {
                SmtpEvent::StartTls => {
                    let Connection::Plain(tcp) = connection else {
                        return Err(MailSendError::Tls {
                            server: server.clone(),
                            step: Step::StartTls,
                            detail: "STARTTLS on a connection that is already TLS".to_string(),
                            hint: "",
                        });
                    };
                    let Some(config) = &tls else {
                        return Err(io_error(
                            Step::StartTls,
                            io::Error::other("STARTTLS without a TLS configuration"),
                        ));
                    };
                    connection =
                        handshake(tcp, config.clone(), &smtp.host, &server, Step::StartTls)?;
                    client.handle_tls_established();
                }
                SmtpEvent::Finished(result) => outcome = Some(result),
            }
        }
        if let Some(result) = outcome {
            while let Some(bytes) = client.poll_transmit() {
                let _ = connection.write_all(&bytes);
            }
            connection.close();
            let delivery = result?;
            tracing::info!(
                server = %server,
                recipients = delivery.recipients,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "follow-up email accepted by SMTP server"
            );
            return Ok(delivery);
        }
        if client.poll_transmit_pending() {
            continue;
        }
        match connection.read(&mut buffer) {
            Ok(0) => client.handle_closed(),
            Ok(n) => client.handle_bytes(buffer.get(..n).unwrap_or_default()),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                client.handle_timeout(smtp.read_timeout.as_secs())
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => client.handle_closed(),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Err(MailSendError::Tls {
                    server: server.clone(),
                    step: client.step(),
                    hint: tls_hint(&e.to_string()),
                    detail: e.to_string(),
                })
            }
            Err(e) => return Err(io_error(client.step(), e)),
        }
    }
}

/// Pipes the message to `path -t -i -f FROM` (recipients from the headers, a lone '.' line is
/// not the end) and checks the exit status. Line ends become LF, as local MTAs expect.
pub fn send_sendmail(
    path: &Path,
    envelope_from: &str,
    message: &[u8],
    timeout: Duration,
) -> Result<(), MailSendError> {
    let shown_path = path.display().to_string();
    let mut local = Vec::with_capacity(message.len());
    let mut bytes = message.iter().peekable();
    while let Some(&byte) = bytes.next() {
        if byte == b'\r' && bytes.peek() == Some(&&b'\n') {
            continue;
        }
        local.push(byte);
    }
    let mut child = Command::new(path)
        .args(["-t", "-i", "-f", envelope_from])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| MailSendError::SendmailSpawn {
            path: shown_path.clone(),
            source,
        })?;
    let stdin = child.stdin.take();
    let writer = thread::spawn(move || -> io::Result<()> {
        match stdin {
            Some(mut stdin) => stdin.write_all(&local),
            None => Ok(()),
        }
    });
    let stderr = child.stderr.take();
    let reader = thread::spawn(move || {
        let mut text = Vec::new();
        if let Some(mut stderr) = stderr {
            let _ = stderr.read_to_end(&mut text);
        }
        String::from_utf8_lossy(&text).into_owned()
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(MailSendError::SendmailTimedOut {
                    path: shown_path,
                    seconds: timeout.as_secs(),
                });
            }
            Ok(None) => thread::sleep(Duration::from_millis(10)),
            Err(source) => {
                return Err(MailSendError::SendmailSpawn {
                    path: shown_path,
                    source,
                })
            }
        }
    };
    let written = writer
        .join()
        .unwrap_or_else(|_| Err(io::Error::other("the stdin writer thread panicked")));
    let stderr = reader.join().unwrap_or_default();
    let stderr = stderr.trim();
    let quoted: String = {
        let chars: Vec<char> = stderr.chars().collect();
        let skip = chars.len().saturating_sub(SENDMAIL_STDERR_QUOTED);
        chars.into_iter().skip(skip).collect()
    };
    if !status.success() {
        return Err(MailSendError::SendmailFailed {
            path: shown_path,
            status: status.to_string(),
            stderr: if quoted.is_empty() {
                "no error output".to_string()
            } else {
                quoted
            },
        });
    }
    if let Err(e) = written {
        return Err(MailSendError::SendmailFailed {
            path: shown_path,
            status: format!("it exited with success but did not read the whole message: {e}"),
            stderr: if quoted.is_empty() {
                "no error output".to_string()
            } else {
                quoted
            },
        });
    }
    tracing::info!(path = %shown_path, "follow-up email handed to sendmail");
    Ok(())
}
