//! Follow-up email after a call (the envelope action): compose a draft from a template, let the
//! agent edit it, build an RFC 5322 message and hand it to SMTP or the system's sendmail.
//!
//! Everything here is sans-IO: `compose` turns call details into a draft and a message,
//! `smtp` is the RFC 5321 client as a state machine fed with the server's bytes. The blocking
//! driver that owns the socket, TLS and the sendmail process lives in `crate::net::mail`.

pub mod compose;
pub mod settings;
pub mod smtp;

pub use compose::{CallDetails, DraftError, FollowUp, FollowUpTemplate, MailTime, Mailbox};
pub use settings::{EmailSettings, Secret, Security, SettingsError, SmtpSettings, Transport};

pub use smtp::{
    Credentials, Delivery, Envelope, Reply, ReplyParser, SmtpClient, SmtpClientConfig, SmtpError,
    SmtpEvent, Step,
};
