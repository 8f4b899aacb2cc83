//! `[email]` settings as plain data. Parsing the TOML section is config.rs's job; this module
//! only holds the values, their defaults and the checks that need no I/O.

use std::path::PathBuf;
use std::time::Duration;

use super::compose::{FollowUpTemplate, Mailbox};

/// The default sendmail program (Debian's MTAs all install it there).
pub const DEFAULT_SENDMAIL_PATH: &str = "/usr/sbin/sendmail";
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub const DEFAULT_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Security {
    /// Plain connection upgraded with STARTTLS; refuses to go on if the server does not offer it.
    #[default]
    StartTls,
    /// TLS from the first byte ("SMTPS", port 465).
    Tls,
    /// No encryption at all: only accepted for a server on the loopback interface.
    Plain,
}

impl Security {
    /// The usual port for this kind of connection: 587 (submission) or 465 (submissions).
    pub fn default_port(self) -> u16 {
        match self {
            Security::StartTls | Security::Plain => 587,
            Security::Tls => 465,
        }
    }

    /// The word used for it in `[email] security`.
    pub fn config_name(self) -> &'static str {
        match self {
            Security::StartTls => "starttls",
            Security::Tls => "tls",
            Security::Plain => "plain",
        }
    }

    /// Parses `starttls`, `tls` or `plain` (case-insensitive).
    pub fn from_config_name(name: &str) -> Option<Security> {
        match name.trim().to_ascii_lowercase().as_str() {
            "starttls" => Some(Security::StartTls),
            "tls" | "smtps" => Some(Security::Tls),
            "plain" | "none" => Some(Security::Plain),
            _ => None,
        }
    }
}

/// The password type of the whole config: its Debug output is `Secret(***)`.
pub use crate::config::Secret;

/// An SMTP submission server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub security: Security,
    /// Login for AUTH; `None` sends without authenticating.
    pub user: Option<String>,
    pub password: Option<Secret>,
    /// Sender address, e.g. `Ann Agent <ann@example.com>`.
    pub from: String,
    /// PEM file with the CA certificate(s) to trust instead of the built-in web roots
    /// (for a private CA). Certificates are always verified.
    pub ca_file: Option<PathBuf>,
    /// Name sent in EHLO; by default the local address as an address literal.
    pub helo_name: Option<String>,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
}

impl SmtpSettings {
    /// Settings for `host` with the port that goes with `security`.
    pub fn new(host: impl Into<String>, security: Security, from: impl Into<String>) -> Self {
        SmtpSettings {
            host: host.into(),
            port: security.default_port(),
            security,
            user: None,
            password: None,
            from: from.into(),
            ca_file: None,
            helo_name: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            read_timeout: DEFAULT_READ_TIMEOUT,
        }
    }

    /// `host:port`, the way errors name the server.
    pub fn server_label(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// Where a follow-up goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transport {
    Smtp(SmtpSettings),
    /// The system's sendmail (`path -t -i`), message on stdin.
    Sendmail {
        path: PathBuf,
        from: String,
    },
}

impl Transport {
    /// The configured sender, unparsed.
    pub fn from_text(&self) -> &str {
        match self {
            Transport::Smtp(smtp) => &smtp.from,
            Transport::Sendmail { from, .. } => from,
        }
    }
}

/// The `[email]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailSettings {
    pub transport: Transport,
    pub template: FollowUpTemplate,
}

impl EmailSettings {
    /// Sendmail at its usual path with the default template.
    pub fn sendmail(from: impl Into<String>) -> Self {
        EmailSettings {
            transport: Transport::Sendmail {
                path: PathBuf::from(DEFAULT_SENDMAIL_PATH),
                from: from.into(),
            },
            template: FollowUpTemplate::default(),
        }
    }

    /// SMTP with the default template.
    pub fn smtp(smtp: SmtpSettings) -> Self {
        EmailSettings {
            transport: Transport::Smtp(smtp),
            template: FollowUpTemplate::default(),
        }
    }

    /// The sender as a mailbox; fails on an invalid `from`.
    pub fn from_mailbox(&self) -> Result<Mailbox, SettingsError> {
        Mailbox::parse(self.transport.from_text()).map_err(|e| SettingsError::InvalidFrom {
            from: self.transport.from_text().to_string(),
            reason: e.to_string(),
        })
    }

    /// Checks that need no I/O: a valid sender, a host, plain text only to loopback, a user
    /// and a password together, a template that only uses known placeholders.
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.from_mailbox()?;
        self.template
            .check()
            .map_err(|e| SettingsError::Template(e.to_string()))?;
        match &self.transport {
            Transport::Sendmail { path, .. } => {
                if path.as_os_str().is_empty() {
                    return Err(SettingsError::EmptySendmailPath);
                }
            }
            Transport::Smtp(smtp) => {
                if smtp.host.trim().is_empty() {
                    return Err(SettingsError::MissingHost);
                }
                if smtp.port == 0 {
                    return Err(SettingsError::ZeroPort);
                }
                if smtp.security == Security::Plain && !is_loopback_host(&smtp.host) {
                    return Err(SettingsError::PlainNotLoopback {
                        host: smtp.host.clone(),
                    });
                }
                match (&smtp.user, &smtp.password) {
                    (Some(_), None) => return Err(SettingsError::UserWithoutPassword),
                    (None, Some(_)) => return Err(SettingsError::PasswordWithoutUser),
                    _ => {}
                }
            }
        }
        Ok(())
    }
}

/// True for `localhost` and loopback IP addresses: the only hosts plain SMTP may reach.
pub fn is_loopback_host(host: &str) -> bool {
    let host = host.trim().trim_start_matches('[').trim_end_matches(']');
    if host.eq_ignore_ascii_case("localhost") || host.to_ascii_lowercase().ends_with(".localhost") {
        return true;
    }
    host.parse::<core::net::IpAddr>()
        .map(|ip| ip.is_loopback())
        .unwrap_or(false)
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("[email] from = \"{from}\" is not a usable sender ({reason}): write it as \"Name <user@example.com>\" or \"user@example.com\"")]
    InvalidFrom { from: String, reason: String },
    #[error(
        "[email] has no host: set host = \"smtp.example.com\" or use transport = \"sendmail\""
    )]
    MissingHost,
    #[error("[email] port is 0: use 587 for starttls or 465 for tls")]
    ZeroPort,
    #[error("[email] security = \"plain\" sends the password and message unencrypted and is only allowed to a loopback host, not \"{host}\": use security = \"starttls\" (port 587) or \"tls\" (port 465)")]
    PlainNotLoopback { host: String },
    #[error("[email] has a user but no password: set password or remove user")]
    UserWithoutPassword,
    #[error("[email] has a password but no user: set user or remove password")]
    PasswordWithoutUser,
    #[error("[email] sendmail path is empty: set it to the sendmail program, e.g. \"/usr/sbin/sendmail\"")]
    EmptySendmailPath,
    #[error("[email] template: {0}")]
    Template(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_ports_follow_security() {
        assert_eq!(
            SmtpSettings::new("h", Security::StartTls, "a@b.c").port,
            587
        );
        assert_eq!(SmtpSettings::new("h", Security::Tls, "a@b.c").port, 465);
        assert_eq!(Security::default(), Security::StartTls);
        assert_eq!(Security::from_config_name(" TLS "), Some(Security::Tls));
        assert_eq!(Security::from_config_name("ssl3"), None);
    }

    #[test]
    fn plain_is_only_for_loopback() {
        let mut smtp = SmtpSettings::new("127.0.0.1", Security::Plain, "a@example.com");
        assert_eq!(EmailSettings::smtp(smtp.clone()).validate(), Ok(()));
        for host in ["localhost", "::1", "[::1]", "127.8.9.10"] {
            smtp.host = host.into();
            assert_eq!(
                EmailSettings::smtp(smtp.clone()).validate(),
                Ok(()),
                "{host}"
            );
        }
        smtp.host = "smtp.example.com".into();
        let error = EmailSettings::smtp(smtp.clone()).validate().err();
        assert!(matches!(
            error,
            Some(SettingsError::PlainNotLoopback { .. })
        ));
        smtp.security = Security::StartTls;
        assert_eq!(EmailSettings::smtp(smtp).validate(), Ok(()));
    }

    #[test]
    fn validate_names_the_problem() {
        let mut smtp = SmtpSettings::new("smtp.example.com", Security::Tls, "not an address");
        let error = EmailSettings::smtp(smtp.clone()).validate().err();
        assert!(matches!(error, Some(SettingsError::InvalidFrom { .. })));
        smtp.from = "Ann <ann@example.com>".into();
        smtp.user = Some("ann".into());
        let error = EmailSettings::smtp(smtp).validate().err();
        assert_eq!(error, Some(SettingsError::UserWithoutPassword));
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let mut smtp = SmtpSettings::new("smtp.example.com", Security::Tls, "a@example.com");
        smtp.user = Some("ann".into());
        smtp.password = Some(Secret::new("hunter2-very-secret"));
        let shown = format!("{:?}", EmailSettings::smtp(smtp));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");
    }
}
