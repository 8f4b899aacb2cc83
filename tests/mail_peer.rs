//! The follow-up email against a real SMTP server: Debian's python3-aiosmtpd on loopback
//! (tests/peers/smtp-sink.py stores every accepted message), a throwaway CA made with the
//! openssl CLI for STARTTLS and implicit TLS, and a stand-in script for sendmail (no MTA is
//! installed here). Messages are checked byte for byte and decoded independently by Python's
//! `email` package.

mod support;

use std::fs::{self, File};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ringside::mail::compose::{CallDetails, CallDirection, FollowUp, FollowUpTemplate, MailTime};
use ringside::mail::settings::{EmailSettings, Secret, Security, SmtpSettings, Transport};
use ringside::mail::smtp::{Envelope, SmtpError, Step};
use ringside::mail::Mailbox;
use ringside::net::mail::{send_follow_up, send_message, MailSendError};
use serde_json::Value;
use support::{require_peer, wait_until, PeerWorkspace, DEBIAN_PYTHON};

const PEER: &str = "python3-aiosmtpd";

fn free_tcp_port() -> u16 {
    TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot bind a TCP socket on 127.0.0.1: {e}"))
}

/// One smtp-sink.py process; killed (by its own handle) when dropped. Its PID file lets the
/// workspace's stop.sh clean up after a test that was itself killed.
struct SmtpSink {
    child: Child,
    pid_file: PathBuf,
    port: u16,
    store: PathBuf,
    log: PathBuf,
}

impl SmtpSink {
    fn start(workspace: &PeerWorkspace, name: &str, options: &[&str]) -> SmtpSink {
        let port = free_tcp_port();
        let store = workspace.path(&format!("{name}-store"));
        let log = workspace.path(&format!("{name}.log"));
        let log_file = File::create(&log).expect("create the sink log");
        let script = workspace.peers_dir().join("smtp-sink.py");
        let child = Command::new(DEBIAN_PYTHON)
            .arg(&script)
            .args(["--port", &port.to_string(), "--store"])
            .arg(&store)
            .args(options)
            .current_dir(workspace.dir())
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", script.display()));
        let pid_file = workspace.path(&format!("{name}.pid"));
        fs::write(&pid_file, child.id().to_string()).expect("write the sink's PID file");
        let mut sink = SmtpSink {
            child,
            pid_file,
            port,
            store,
            log,
        };
        let ready = wait_until(Duration::from_secs(15), || {
            sink.log_text().lines().any(|l| l == "ready")
        });
        if !ready || sink.child.try_wait().ok().flatten().is_some() {
            panic!(
                "smtp-sink.py did not come up on 127.0.0.1:{port}:\n{}",
                sink.log_text()
            );
        }
        sink
    }

    fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The stored messages (raw bytes) with their envelope info, in arrival order.
    fn messages(&self) -> Vec<(Vec<u8>, Value)> {
        let mut names: Vec<PathBuf> = fs::read_dir(&self.store)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "eml"))
            .collect();
        names.sort();
        names
            .into_iter()
            .map(|eml| {
                let raw = fs::read(&eml).expect("read a stored message");
                let info = fs::read_to_string(eml.with_extension("json")).expect("read its info");
                (raw, serde_json::from_str(&info).expect("the info is JSON"))
            })
            .collect()
    }

    fn wait_for_messages(&self, count: usize) -> Vec<(Vec<u8>, Value)> {
        wait_until(Duration::from_secs(10), || self.messages().len() >= count);
        let messages = self.messages();
        assert_eq!(
            messages.len(),
            count,
            "messages stored by the sink\n{}",
            self.log_text()
        );
        messages
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = fs::remove_file(&self.pid_file);
    }
}

/// A throwaway CA and a server certificate for localhost and 127.0.0.1, made with openssl.
struct TestPki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run openssl");
    assert!(
        output.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn make_pki(dir: &Path) -> TestPki {
    make_pki_for(dir, "DNS:localhost,IP:127.0.0.1")
}

/// The CA is made once per directory; each call signs a new server certificate for `names`.
fn make_pki_for(dir: &Path, names: &str) -> TestPki {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    if !dir.join("ca.pem").exists() {
        let mut ca_args = vec!["req", "-x509"];
        ca_args.extend(ec);
        ca_args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=ringside test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ]);
        openssl(dir, &ca_args);
    }
    let stem: String = names
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let (key, csr, ext, cert) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.ext"),
        format!("{stem}.pem"),
    );
    let mut csr_args = vec!["req"];
    csr_args.extend(ec);
    csr_args.extend([
        "-keyout",
        &key,
        "-out",
        &csr,
        "-subj",
        "/CN=ringside test server",
    ]);
    openssl(dir, &csr_args);
    fs::write(
        dir.join(&ext),
        format!(
            "subjectAltName={names}\nbasicConstraints=CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        ),
    )
    .expect("write the extensions file");
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "2",
            "-extfile",
            &ext,
        ],
    );
    TestPki {
        ca: dir.join("ca.pem"),
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

fn agent() -> Mailbox {
    Mailbox::parse("Ann Agent <ann@example.com>").expect("valid sender")
}

/// What the agent would send after editing: UTF-8 everywhere and lines SMTP must dot-stuff.
fn edited_follow_up() -> FollowUp {
    let details = CallDetails {
        contact_name: Some("Zoë Ørsted".into()),
        contact_email: Some("zoe@example.net".into()),
        number: "+41 44 668 18 00".into(),
        direction: CallDirection::Inbound,
        started_at: MailTime::utc(1_795_284_569),
        duration_seconds: 245,
        outcome: "answered".into(),
        queue: Some("support".into()),
        agent_name: None,
    };
    let drafted = FollowUp::from_template(&FollowUpTemplate::default(), &details, agent())
        .expect("the default template renders");
    let mut draft = drafted.draft_text();
    draft = draft.replacen(
        "To: Zoë Ørsted <zoe@example.net>",
        "To: Zoë Ørsted <zoe@example.net>, \"Buyer, Bob\" <bob@example.org>",
        1,
    );
    draft = draft.replacen("Subject: ", "Subject: Rückruf – ", 1);
    draft.push_str(".hidden line starting with a dot\n.\n..two dots\nGrüße aus Zürich 🙂\n");
    FollowUp::from_draft(&draft, agent()).expect("the edited draft is valid")
}

/// Subject, From, To and the decoded body as Python's `email` package reads them.
fn python_decode(raw: &[u8], dir: &Path) -> Value {
    let path = dir.join("decode-me.eml");
    fs::write(&path, raw).expect("write the message for python");
    let script = "import email, email.policy, json, sys\n\
                  m = email.message_from_binary_file(open(sys.argv[1], 'rb'), policy=email.policy.default)\n\
                  print(json.dumps({'subject': str(m['subject']), 'from': str(m['from']), \
                  'to': [str(a) for a in m['to'].addresses], 'body': m.get_content(), \
                  'defects': [type(d).__name__ for d in m.defects]}))";
    let output = Command::new(DEBIAN_PYTHON)
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("run python3");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("python printed JSON")
}

fn smtp_settings(port: u16, host: &str, security: Security) -> SmtpSettings {
    let mut smtp = SmtpSettings::new(host, security, "Ann Agent <ann@example.com>");
    smtp.port = port;
    smtp.connect_timeout = Duration::from_secs(5);
    smtp.read_timeout = Duration::from_secs(10);
    smtp
}

#[test]
fn plain_loopback_delivers_utf8_and_dot_lines() {
    if !require_peer(PEER) {
        return;
    }
    let workspace = PeerWorkspace::new("mail_plain");
    let sink = SmtpSink::start(&workspace, "sink", &[]);
    let settings = EmailSettings::smtp(smtp_settings(sink.port, "127.0.0.1", Security::Plain));
    let follow_up = edited_follow_up();

    let sent = send_follow_up(&settings, &follow_up).expect("the follow-up is sent");
    assert_eq!(sent.recipients, 2);
    assert!(sent.server_reply.contains("stored as 001"), "{sent:?}");

    let messages = sink.wait_for_messages(1);
    let (raw, info) = &messages[0];
    assert_eq!(info["mail_from"], "ann@example.com");
    assert_eq!(
        info["rcpt_tos"],
        serde_json::json!(["zoe@example.net", "bob@example.org"])
    );
    assert_eq!(info["tls"], false);
    assert_eq!(info["helo"], "[127.0.0.1]");
    let text = String::from_utf8_lossy(raw);
    assert!(
        text.contains(&format!("\r\nMessage-ID: {}\r\n", sent.message_id)),
        "{text}"
    );
    assert!(text.contains("\r\nMIME-Version: 1.0\r\n"));
    assert!(text.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"));
    // Dot-stuffed on the wire, unstuffed by the server: the stored lines are the originals.
    assert!(text.contains("\r\n.hidden line starting with a dot\r\n.\r\n..two dots\r\n"));

    let decoded = python_decode(raw, workspace.dir());
    assert_eq!(decoded["defects"], serde_json::json!([]));
    assert_eq!(decoded["subject"], format!("{}", follow_up.subject));
    assert!(follow_up
        .subject
        .starts_with("Rückruf – Following up on our call of 2026-11-21"));
    assert_eq!(decoded["from"], "Ann Agent <ann@example.com>");
    assert_eq!(
        decoded["to"],
        serde_json::json!([
            "Zoë Ørsted <zoe@example.net>",
            "\"Buyer, Bob\" <bob@example.org>"
        ])
    );
    assert_eq!(decoded["body"], follow_up.body);
    assert!(follow_up.body.starts_with("Hello Zoë Ørsted,\n"));
    assert!(follow_up
        .body
        .ends_with("..two dots\nGrüße aus Zürich 🙂\n"));

    // With a fixed date and id, the stored message is exactly the built one.
    let message = follow_up.to_message(MailTime::utc(1_795_284_569), 42);
    let envelope = Envelope {
        from: "ann@example.com".into(),
        recipients: vec!["zoe@example.net".into()],
    };
    send_message(&settings, &envelope, &message).expect("the second message is sent");
    let messages = sink.wait_for_messages(2);
    assert_eq!(
        messages[1].0, message,
        "stored bytes differ from the sent message"
    );
}

#[test]
fn starttls_with_private_ca_auth_and_verification() {
    if !require_peer(PEER) {
        return;
    }
    let workspace = PeerWorkspace::new("mail_starttls");
    let pki = make_pki(workspace.dir());
    let cert = pki.cert.display().to_string();
    let key = pki.key.display().to_string();
    let sink = SmtpSink::start(
        &workspace,
        "sink",
        &["--starttls", &cert, &key, "--auth", "ann:correct horse"],
    );
    let follow_up = edited_follow_up();

    let mut smtp = smtp_settings(sink.port, "localhost", Security::StartTls);
    smtp.ca_file = Some(pki.ca.clone());
    smtp.user = Some("ann".into());
    smtp.password = Some(Secret::new("correct horse"));
    let settings = EmailSettings::smtp(smtp.clone());
    send_follow_up(&settings, &follow_up).expect("STARTTLS + AUTH PLAIN with the test CA");
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].1["tls"], true);
    assert_eq!(messages[0].1["login"], "ann");
    assert_eq!(
        python_decode(&messages[0].0, workspace.dir())["body"],
        follow_up.body
    );

    // Wrong password: the error names the server, step, reply and fix, never the password.
    smtp.password = Some(Secret::new("battery staple"));
    let error = send_follow_up(&EmailSettings::smtp(smtp.clone()), &follow_up)
        .expect_err("a wrong password is refused");
    let text = error.to_string();
    assert!(
        matches!(
            &error,
            MailSendError::Smtp(SmtpError::Refused {
                step: Step::Auth,
                code: 535,
                ..
            })
        ),
        "{error:?}"
    );
    assert!(
        text.starts_with(&format!(
            "SMTP server localhost:{} refused AUTH (535 ",
            sink.port
        )),
        "{text}"
    );
    assert!(text.ends_with("check [email] user and password"), "{text}");
    assert!(!text.contains("battery") && !format!("{error:?}").contains("battery"));
    eprintln!("wrong password: {text}");

    // Without ca_file the built-in roots do not know the test CA: verification is on.
    smtp.password = Some(Secret::new("correct horse"));
    smtp.ca_file = None;
    let error = send_follow_up(&EmailSettings::smtp(smtp.clone()), &follow_up)
        .expect_err("an unknown CA is rejected");
    let text = error.to_string();
    assert!(
        matches!(
            &error,
            MailSendError::Tls {
                step: Step::StartTls,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(text.contains("UnknownIssuer"), "{text}");
    assert!(text.contains("ca_file"), "{text}");
    eprintln!("unknown CA: {text}");

    // A certificate from the right CA but for another name.
    let other = make_pki_for(workspace.dir(), "DNS:mail.example.com");
    let other_cert = other.cert.display().to_string();
    let other_key = other.key.display().to_string();
    let misnamed = SmtpSink::start(
        &workspace,
        "misnamed",
        &["--starttls", &other_cert, &other_key],
    );
    smtp.ca_file = Some(pki.ca.clone());
    smtp.port = misnamed.port;
    let error = send_follow_up(&EmailSettings::smtp(smtp), &follow_up)
        .expect_err("a certificate for another name is rejected");
    assert!(
        matches!(&error, MailSendError::Tls { .. })
            && error
                .to_string()
                .contains("not valid for name \"localhost\""),
        "{error}"
    );
    eprintln!("wrong name: {error}");
    assert_eq!(
        sink.messages().len(),
        1,
        "nothing else may have been delivered"
    );
    assert!(misnamed.messages().is_empty());
}

#[test]
fn auth_login_over_starttls_to_an_ip_address() {
    if !require_peer(PEER) {
        return;
    }
    let workspace = PeerWorkspace::new("mail_auth_login");
    let pki = make_pki(workspace.dir());
    let cert = pki.cert.display().to_string();
    let key = pki.key.display().to_string();
    let sink = SmtpSink::start(
        &workspace,
        "sink",
        &[
            "--starttls",
            &cert,
            &key,
            "--auth",
            "ann:pw-Ünïcode",
            "--no-auth-plain",
        ],
    );
    let mut smtp = smtp_settings(sink.port, "127.0.0.1", Security::StartTls);
    smtp.ca_file = Some(pki.ca);
    smtp.user = Some("ann".into());
    smtp.password = Some(Secret::new("pw-Ünïcode"));
    smtp.helo_name = Some("agent7.example.com".into());
    send_follow_up(&EmailSettings::smtp(smtp), &edited_follow_up()).expect("AUTH LOGIN works");
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].1["login"], "ann");
    assert_eq!(messages[0].1["helo"], "agent7.example.com");
}

#[test]
fn implicit_tls() {
    if !require_peer(PEER) {
        return;
    }
    let workspace = PeerWorkspace::new("mail_implicit_tls");
    let pki = make_pki(workspace.dir());
    let cert = pki.cert.display().to_string();
    let key = pki.key.display().to_string();
    let sink = SmtpSink::start(&workspace, "sink", &["--smtps", &cert, &key]);
    let mut smtp = smtp_settings(sink.port, "localhost", Security::Tls);
    smtp.ca_file = Some(pki.ca);
    send_follow_up(&EmailSettings::smtp(smtp.clone()), &edited_follow_up())
        .expect("implicit TLS with the test CA");
    let messages = sink.wait_for_messages(1);
    assert_eq!(messages[0].1["tls"], true);

    // Implicit TLS against a plain server, and STARTTLS required but not offered.
    let plain = SmtpSink::start(&workspace, "plain", &[]);
    smtp.port = plain.port;
    let error = send_follow_up(&EmailSettings::smtp(smtp.clone()), &edited_follow_up())
        .expect_err("TLS to a plain server fails");
    assert!(matches!(error, MailSendError::Tls { .. }), "{error:?}");
    smtp.security = Security::StartTls;
    let error = send_follow_up(&EmailSettings::smtp(smtp), &edited_follow_up())
        .expect_err("no STARTTLS offered");
    assert!(
        matches!(
            error,
            MailSendError::Smtp(SmtpError::StartTlsNotOffered { .. })
        ),
        "{error:?}"
    );
    assert!(plain.messages().is_empty());
}

fn write_script(path: &Path, text: &str) {
    fs::write(path, text).expect("write the script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod the script");
}

/// No MTA is installed on the test machine: a stand-in script plays sendmail and stores what
/// it gets, so the test checks the arguments, the message on stdin and the exit-status path.
#[test]
fn sendmail_transport_with_a_stand_in_script() {
    let dir = tempdir("mail_sendmail");
    let stand_in = dir.join("sendmail");
    write_script(
        &stand_in,
        &format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{0}/args'\ncat > '{0}/stdin.eml'\n",
            dir.display()
        ),
    );
    let mut settings = EmailSettings::sendmail("Ann Agent <ann@example.com>");
    settings.transport = Transport::Sendmail {
        path: stand_in.clone(),
        from: "Ann Agent <ann@example.com>".into(),
    };
    let follow_up = edited_follow_up();
    let sent = send_follow_up(&settings, &follow_up).expect("the stand-in accepts it");
    assert_eq!(sent.recipients, 2);
    let args = fs::read_to_string(dir.join("args")).expect("args were stored");
    assert_eq!(args, "-t\n-i\n-f\nann@example.com\n");
    let stored = fs::read(dir.join("stdin.eml")).expect("the message was stored");
    assert!(!stored.contains(&b'\r'), "sendmail gets LF line ends");
    let text = String::from_utf8_lossy(&stored);
    assert!(text.starts_with("Date: "), "{text}");
    assert!(text.contains(&format!("\nMessage-ID: {}\n", sent.message_id)));
    assert!(text.contains("\n.hidden line starting with a dot\n.\n..two dots\n"));

    let failing = dir.join("sendmail-failing");
    write_script(
        &failing,
        "#!/bin/sh\ncat > /dev/null\necho 'sendmail: fatal: queue file write error' >&2\nexit 75\n",
    );
    settings.transport = Transport::Sendmail {
        path: failing.clone(),
        from: "ann@example.com".into(),
    };
    let error = send_follow_up(&settings, &follow_up).expect_err("exit status 75 is an error");
    assert_eq!(
        error.to_string(),
        format!(
            "sendmail {} failed (exit status: 75): sendmail: fatal: queue file write error: \
             check the local MTA and its log",
            failing.display()
        )
    );

    settings.transport = Transport::Sendmail {
        path: dir.join("no-such-sendmail"),
        from: "ann@example.com".into(),
    };
    let error = send_follow_up(&settings, &follow_up).expect_err("a missing program");
    assert!(
        matches!(error, MailSendError::SendmailSpawn { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("set [email] sendmail path"));
}

fn tempdir(name: &str) -> PathBuf {
    let dir = support::peer_tests_root().join(name);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).expect("create the test dir");
    dir
}

/// A server that accepts and never speaks: the read timeout turns into a clear error.
#[test]
fn silent_server_times_out_and_closed_port_is_reported() {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    let holder = std::thread::spawn(move || {
        let accepted = listener.accept();
        std::thread::sleep(Duration::from_secs(3));
        drop(accepted);
    });
    let mut smtp = smtp_settings(port, "127.0.0.1", Security::Plain);
    smtp.read_timeout = Duration::from_secs(1);
    let started = Instant::now();
    let error =
        send_follow_up(&EmailSettings::smtp(smtp), &edited_follow_up()).expect_err("no greeting");
    assert!(started.elapsed() < Duration::from_secs(3));
    assert_eq!(
        error.to_string(),
        format!(
            "SMTP server 127.0.0.1:{port} did not answer the connection (greeting) within 1 s: \
             check [email] host and port and that a firewall lets SMTP through"
        )
    );
    assert!(error.is_transient());
    let _ = holder.join();

    let closed = free_tcp_port();
    let smtp = smtp_settings(closed, "127.0.0.1", Security::Plain);
    let error = send_follow_up(&EmailSettings::smtp(smtp), &edited_follow_up())
        .expect_err("nothing listens");
    let text = error.to_string();
    assert!(
        text.starts_with(&format!(
            "cannot connect to SMTP server 127.0.0.1:{closed}: "
        )),
        "{text}"
    );
    assert!(text.ends_with("check [email] host and port and that the server is running"));

    // Plain text to anything but loopback is refused before connecting.
    let smtp = smtp_settings(25, "smtp.example.com", Security::Plain);
    let error = send_follow_up(&EmailSettings::smtp(smtp), &edited_follow_up())
        .expect_err("plain to a remote host");
    assert!(error
        .to_string()
        .contains("only allowed to a loopback host"));
}
