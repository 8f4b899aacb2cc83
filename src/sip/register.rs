//! Registration (RFC 3261 §10): REGISTER with digest auth, 423 Min-Expires, refresh before
//! expiry, rport-corrected Contact (RFC 3581), backoff after failures, unregister on exit.

use std::time::{Duration, Instant};

use core::net::{IpAddr, SocketAddr};

use super::msg::{NameAddr, Response, SipHeaders};
use super::ua::{Pending, Purpose, UaEvent, UserAgent};

/// Backoff after failures: 2, 4, 8 ... seconds, capped, so a PBX restart is picked up quickly but
/// a dead one is not hammered.
const BACKOFF_MIN: Duration = Duration::from_secs(2);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// An authentication failure will not fix itself: retry slowly.
const AUTH_FAILURE_RETRY: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum RegState {
    #[default]
    Idle,
    Registering,
    Registered {
        expires: u32,
        refresh_at: Instant,
    },
    Failed {
        retry_at: Instant,
    },
    Unregistering,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Registration {
    pub state: RegState,
    /// One Call-ID for every REGISTER of this binding (RFC 3261 §10.2.4).
    pub call_id: String,
    pub from_tag: String,
    pub cseq: u32,
    pub expires: u32,
    pub failures: u32,
    /// The user asked us to stay unregistered.
    pub stopped: bool,
    /// The Contact we registered, to remove it if rport shows a different public address.
    pub registered_contact: Option<String>,
}

impl Registration {
    pub fn is_registered(&self) -> bool {
        matches!(self.state, RegState::Registered { .. })
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            RegState::Registered { refresh_at, .. } => Some(refresh_at),
            RegState::Failed { retry_at } => Some(retry_at),
            _ => None,
        }
    }
}

impl UserAgent {
    pub(crate) fn start_register(&mut self, now: Instant) {
        self.registration.stopped = false;
        if self.registration.call_id.is_empty() {
            self.registration.call_id = self.new_call_id();
            self.registration.from_tag = self.new_tag();
        }
        if self.registration.expires == 0 {
            self.registration.expires = self.config.expires;
        }
        if matches!(
            self.registration.state,
            RegState::Registering | RegState::Unregistering
        ) {
            return;
        }
        self.registration.state = RegState::Registering;
        let expires = self.registration.expires;
        self.send_register(now, expires, Purpose::Register, None);
    }

    pub(crate) fn start_unregister(&mut self, now: Instant) {
        self.registration.stopped = true;
        match self.registration.state {
            RegState::Registered { .. } | RegState::Registering => {
                self.registration.state = RegState::Unregistering;
                self.send_register(now, 0, Purpose::Unregister, None);
            }
            _ => {
                self.registration.state = RegState::Idle;
                self.emit(UaEvent::Unregistered);
            }
        }
    }

    fn send_register(
        &mut self,
        now: Instant,
        expires: u32,
        purpose: Purpose,
        contact_override: Option<String>,
    ) {
        self.registration.cseq = self.registration.cseq.saturating_add(1);
        let aor = NameAddr::new(self.aor());
        let call_id = self.registration.call_id.clone();
        let tag = self.registration.from_tag.clone();
        let seq = self.registration.cseq;
        let uri = self.config.registrar.clone();
        let mut request =
            self.new_request(super::msg::Method::Register, uri, aor, &call_id, &tag, seq);
        let contact = contact_override.unwrap_or_else(|| self.contact_value());
        request.headers.push("Contact", contact);
        request.headers.push("Expires", expires.to_string());
        request.headers.push(
            "Allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY",
        );
        self.send(now, request, purpose);
    }

    pub(crate) fn on_register_response(
        &mut self,
        now: Instant,
        pending: &Pending,
        response: Response,
    ) {
        if response.status < 200 {
            return;
        }
        let unregistering = pending.purpose == Purpose::Unregister;
        if unregistering {
            // Whatever the answer, we are done with this binding as far as the user cares.
            self.registration.state = RegState::Idle;
            self.registration.registered_contact = None;
            self.emit(UaEvent::Unregistered);
            return;
        }
        if self.registration.stopped {
            return;
        }
        match response.status {
            200..=299 => self.on_registered(now, &response),
            423 => {
                // Interval Too Brief: take the server's minimum and try again at once.
                let min = response
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .unwrap_or(self.registration.expires.saturating_mul(2).max(60));
                if min <= self.registration.expires || min > 86_400 {
                    self.registration_failed(now, &response, AUTH_FAILURE_RETRY);
                } else {
                    self.registration.expires = min;
                    self.send_register(now, min, Purpose::Register, None);
                }
            }
            401 | 407 | 403 => self.registration_failed(now, &response, AUTH_FAILURE_RETRY),
            _ => {
                let delay = self.backoff();
                self.registration_failed(now, &response, delay);
            }
        }
    }

    fn backoff(&mut self) -> Duration {
        let exp = self.registration.failures.min(8);
        let delay = BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX);
        delay + self.jitter(0, 500)
    }

    fn on_registered(&mut self, now: Instant, response: &Response) {
        // RFC 3581: if the registrar saw us at another address, that is where calls must come.
        if let Some(via) = response.top_via() {
            let seen_ip = via.received().and_then(|r| r.parse::<IpAddr>().ok());
            let seen_port = via.rport();
            let public = SocketAddr::new(
                seen_ip.unwrap_or(self.public.ip()),
                seen_port.unwrap_or(self.public.port()),
            );
            if public != self.public {
                let old_contact = self.contact_value();
                self.public = public;
                tracing::info!(%public, "registrar sees us at another address; re-registering");
                // Remove the unusable binding and register the reachable one.
                let remove = format!("{old_contact};expires=0");
                let contacts = format!("{remove}, {}", self.contact_value());
                let expires = self.registration.expires;
                self.send_register(now, expires, Purpose::Register, Some(contacts));
                return;
            }
        }
        let ours = self.contact_uri();
        let granted = response
            .contacts()
            .iter()
            .find(|c| {
                c.uri.user == ours.user
                    && c.uri.host_unbracketed() == ours.host_unbracketed()
                    && c.uri.port.unwrap_or(5060) == ours.port.unwrap_or(5060)
            })
            .and_then(|c| c.param("expires").and_then(|p| p.value.as_deref()))
            .and_then(|v| v.parse::<u32>().ok())
            .or_else(|| response.expires())
            .unwrap_or(self.registration.expires);
        if granted == 0 {
            let delay = self.backoff();
            self.registration_failed(now, response, delay);
            return;
        }
        // Refresh well before expiry: at half time for short bindings, 30 s early otherwise.
        let lead = if granted <= 60 {
            granted / 2
        } else {
            granted.min(600) / 10 + 30
        };
        let refresh_at = now + Duration::from_secs(u64::from(granted.saturating_sub(lead).max(1)));
        let was_failing = self.registration.failures > 0;
        self.registration.failures = 0;
        self.registration.state = RegState::Registered {
            expires: granted,
            refresh_at,
        };
        self.registration.registered_contact = Some(self.contact_value());
        let aor = self.aor().to_string();
        let contact = self.contact_uri().to_string();
        if was_failing {
            self.emit(UaEvent::Notice {
                message: "connection to the PBX restored".into(),
            });
        }
        self.emit(UaEvent::Registered {
            aor,
            contact,
            expires: granted,
        });
    }

    fn registration_failed(&mut self, now: Instant, response: &Response, retry_in: Duration) {
        self.registration.failures = self.registration.failures.saturating_add(1);
        self.registration.state = RegState::Failed {
            retry_at: now + retry_in,
        };
        let local = response.header("X-Ringside-Local").is_some();
        let target = self.config.outbound.addr;
        let user = self.config.auth_username.clone();
        let secs = retry_in.as_secs();
        let message = match response.status {
            _ if local && response.status == 408 => format!(
                "connection to the PBX lost: no answer from {target} — retrying in {secs} s"
            ),
            _ if local => {
                format!("connection to the PBX lost: {target} unreachable — retrying in {secs} s")
            }
            401 | 407 | 403 => format!(
                "the PBX rejected the password for user {user}: check [account].password and \
                 auth_username — retrying in {secs} s"
            ),
            404 => format!(
                "the PBX does not know user {user} (404): check [account].username and domain — \
                 retrying in {secs} s"
            ),
            code => format!(
                "registration refused by {target}: {code} {} — retrying in {secs} s",
                response.reason
            ),
        };
        self.emit(UaEvent::RegistrationFailed {
            code: (!local).then_some(response.status),
            message,
            retry_in: Some(retry_in),
        });
    }

    /// The reliable connection to the registrar closed while we were registered.
    pub(crate) fn connection_lost(&mut self, now: Instant) {
        if self.registration.stopped || !self.registration.is_registered() {
            return;
        }
        let delay = self.backoff();
        self.registration.failures = self.registration.failures.saturating_add(1);
        self.registration.state = RegState::Failed {
            retry_at: now + delay,
        };
        let target = self.config.outbound.addr;
        self.emit(UaEvent::RegistrationFailed {
            code: None,
            message: format!(
                "connection to the PBX lost: {target} closed the connection — retrying in {} s",
                delay.as_secs()
            ),
            retry_in: Some(delay),
        });
    }

    pub(crate) fn handle_registration_timers(&mut self, now: Instant) {
        if self.registration.stopped {
            return;
        }
        match self.registration.state {
            RegState::Registered { refresh_at, .. } if now >= refresh_at => {
                self.registration.state = RegState::Registering;
                let expires = self.registration.expires;
                self.send_register(now, expires, Purpose::Register, None);
            }
            RegState::Failed { retry_at } if now >= retry_at => {
                self.registration.state = RegState::Registering;
                // A fresh start after a failure: the PBX may have restarted and forgotten us.
                self.registration.expires = self.config.expires;
                let expires = self.registration.expires;
                self.send_register(now, expires, Purpose::Register, None);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth;
    use crate::sip::msg::{parse, Message, Request};
    use crate::sip::transaction::{Target, Transport};
    use crate::sip::ua::{Command, UaConfig};

    fn registrar() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 10], 5060))
    }

    fn agent() -> (UserAgent, Instant) {
        let local = SocketAddr::from(([10, 0, 0, 5], 5062));
        let mut config = UaConfig::simple("101", local, registrar());
        config.password = crate::config::Secret::new("lab101");
        config.domain = "pbx.example".into();
        config.expires = 600;
        (UserAgent::new(config, 7), Instant::now())
    }

    /// The REGISTER the agent sent last (there must be exactly one new one).
    fn sent_register(ua: &mut UserAgent) -> Request {
        let mut found = None;
        while let Some(t) = ua.poll_transmit() {
            assert_eq!(t.target.addr, registrar());
            if let Ok(Message::Request(r)) = parse(&t.bytes) {
                found = Some(r);
            }
        }
        found.expect("a REGISTER was sent")
    }

    fn answer(
        ua: &mut UserAgent,
        now: Instant,
        request: &Request,
        status: u16,
        extra: &[(&str, String)],
    ) {
        let mut response = request.response(status);
        for (name, value) in extra {
            response.headers.push(name, value.clone());
        }
        let source = Target {
            transport: Transport::Udp,
            addr: registrar(),
        };
        ua.handle_datagram(now, source, &response.to_bytes());
    }

    fn events(ua: &mut UserAgent) -> Vec<UaEvent> {
        std::iter::from_fn(|| ua.poll_event()).collect()
    }

    #[test]
    fn digest_challenge_is_answered_with_the_strongest_algorithm() {
        let (mut ua, now) = agent();
        ua.command(now, Command::Register).expect("register");
        let first = sent_register(&mut ua);
        assert!(first.header("Authorization").is_none());
        let md5 = auth::challenge_value("pbx", "n1", &auth::Algorithm::Md5, true, false, None);
        let sha = auth::challenge_value("pbx", "n1", &auth::Algorithm::Sha256, true, false, None);
        answer(
            &mut ua,
            now,
            &first,
            401,
            &[("WWW-Authenticate", md5), ("WWW-Authenticate", sha)],
        );
        let second = sent_register(&mut ua);
        let value = second.header("Authorization").expect("credentials");
        let parsed = auth::Authorization::parse(value).expect("parse");
        assert_eq!(parsed.algorithm, auth::Algorithm::Sha256);
        assert!(auth::verify(&parsed, "REGISTER", "lab101", b""));
        // A new transaction with the next CSeq and the same Call-ID (RFC 3261 §10.2.4).
        assert_eq!(
            second.cseq().map(|c| c.seq),
            first.cseq().map(|c| c.seq + 1)
        );
        assert_eq!(second.call_id(), first.call_id());
        assert_ne!(
            second
                .top_via()
                .and_then(|v| v.branch().map(str::to_string)),
            first.top_via().and_then(|v| v.branch().map(str::to_string))
        );
        answer(
            &mut ua,
            now,
            &second,
            200,
            &[("Contact", "<sip:101@10.0.0.5:5062>;expires=300".into())],
        );
        let ev = events(&mut ua);
        assert!(
            ev.iter()
                .any(|e| matches!(e, UaEvent::Registered { expires: 300, .. })),
            "{ev:?}"
        );
        // Refresh before expiry: with 300 s granted, at 300 - (30 + 30) = 240 s.
        let refresh = ua.registration.next_deadline().expect("refresh timer");
        assert_eq!(refresh - now, Duration::from_secs(240));
    }

    #[test]
    fn a_second_challenge_for_the_same_nonce_means_a_wrong_password() {
        let (mut ua, now) = agent();
        ua.command(now, Command::Register).expect("register");
        let first = sent_register(&mut ua);
        let ch = auth::challenge_value("pbx", "n1", &auth::Algorithm::Md5, false, false, None);
        answer(
            &mut ua,
            now,
            &first,
            401,
            &[("WWW-Authenticate", ch.clone())],
        );
        let second = sent_register(&mut ua);
        answer(&mut ua, now, &second, 401, &[("WWW-Authenticate", ch)]);
        assert!(
            ua.poll_transmit().is_none(),
            "no third attempt with the same nonce"
        );
        let ev = events(&mut ua);
        let message = ev
            .iter()
            .find_map(|e| match e {
                UaEvent::RegistrationFailed { message, .. } => Some(message.clone()),
                _ => None,
            })
            .expect("failure reported");
        assert!(
            message.contains("rejected the password for user 101"),
            "{message}"
        );
        assert!(message.contains("[account].password"), "{message}");
        assert!(
            !message.contains("lab101"),
            "the password never appears in messages"
        );
    }

    #[test]
    fn a_stale_nonce_is_retried_and_403_is_final() {
        let (mut ua, now) = agent();
        ua.command(now, Command::Register).expect("register");
        let first = sent_register(&mut ua);
        let ch = auth::challenge_value("pbx", "n1", &auth::Algorithm::Md5, true, false, None);
        answer(&mut ua, now, &first, 401, &[("WWW-Authenticate", ch)]);
        let second = sent_register(&mut ua);
        let stale = auth::challenge_value("pbx", "n1", &auth::Algorithm::Md5, true, true, None);
        answer(&mut ua, now, &second, 401, &[("WWW-Authenticate", stale)]);
        let third = sent_register(&mut ua);
        let parsed = auth::Authorization::parse(third.header("Authorization").unwrap_or_default())
            .expect("auth");
        assert_eq!(
            parsed.nc,
            Some(2),
            "same nonce again: the nonce count goes up"
        );
        answer(&mut ua, now, &third, 403, &[]);
        assert!(events(&mut ua).iter().any(|e| matches!(
            e,
            UaEvent::RegistrationFailed {
                code: Some(403),
                ..
            }
        )));
        // Retried slowly, 60 s later.
        assert_eq!(
            ua.registration.next_deadline().map(|t| t - now),
            Some(Duration::from_secs(60))
        );
    }

    #[test]
    fn interval_too_brief_takes_min_expires() {
        let (mut ua, now) = agent();
        ua.command(now, Command::Register).expect("register");
        let first = sent_register(&mut ua);
        answer(&mut ua, now, &first, 423, &[("Min-Expires", "1800".into())]);
        let second = sent_register(&mut ua);
        assert_eq!(second.header("Expires"), Some("1800"));
    }

    #[test]
    fn rport_shows_a_nat_and_the_contact_is_corrected() {
        let (mut ua, now) = agent();
        ua.command(now, Command::Register).expect("register");
        let first = sent_register(&mut ua);
        let mut response = first.response(200);
        let via = first
            .headers
            .get("Via")
            .unwrap_or_default()
            .replace(";rport", ";rport=40000;received=203.0.113.7");
        response.headers.set("Via", via);
        let source = Target {
            transport: Transport::Udp,
            addr: registrar(),
        };
        ua.handle_datagram(now, source, &response.to_bytes());
        let second = sent_register(&mut ua);
        let contacts: Vec<String> = second.contacts().iter().map(|c| c.to_string()).collect();
        assert_eq!(
            contacts,
            vec![
                "<sip:101@10.0.0.5:5062>;expires=0".to_string(),
                "<sip:101@203.0.113.7:40000>".to_string(),
            ]
        );
    }

    #[test]
    fn no_answer_backs_off_and_a_restarted_pbx_is_picked_up() {
        let (mut ua, mut now) = agent();
        ua.command(now, Command::Register).expect("register");
        let _ = sent_register(&mut ua);
        // Nothing answers: Timer F fires at 32 s.
        now += Duration::from_secs(32);
        ua.handle_timeout(now);
        let ev = events(&mut ua);
        let message = ev
            .iter()
            .find_map(|e| match e {
                UaEvent::RegistrationFailed {
                    message, retry_in, ..
                } => Some((message.clone(), *retry_in)),
                _ => None,
            })
            .expect("failure");
        assert!(
            message.0.starts_with(
                "connection to the PBX lost: no answer from 192.0.2.10:5060 — retrying in 2 s"
            ),
            "{}",
            message.0
        );
        let retry_at = ua.registration.next_deadline().expect("retry");
        now = retry_at;
        while ua.poll_transmit().is_some() {}
        ua.handle_timeout(now);
        let again = sent_register(&mut ua);
        answer(&mut ua, now, &again, 200, &[("Expires", "600".into())]);
        let ev = events(&mut ua);
        assert!(ev.iter().any(|e| matches!(e, UaEvent::Notice { message } if message == "connection to the PBX restored")));
        assert!(ev.iter().any(|e| matches!(e, UaEvent::Registered { .. })));
    }

    #[test]
    fn the_config_never_shows_the_password() {
        let (ua, _) = agent();
        let shown = format!("{:?}", ua.config());
        assert!(!shown.contains("lab101"), "{shown}");
    }

    #[test]
    fn unregister_sends_expires_zero() {
        let (mut ua, now) = agent();
        ua.command(now, Command::Register).expect("register");
        let first = sent_register(&mut ua);
        answer(&mut ua, now, &first, 200, &[("Expires", "600".into())]);
        ua.command(now, Command::Unregister).expect("unregister");
        let bye = sent_register(&mut ua);
        assert_eq!(bye.header("Expires"), Some("0"));
        answer(&mut ua, now, &bye, 200, &[]);
        assert!(events(&mut ua)
            .iter()
            .any(|e| matches!(e, UaEvent::Unregistered)));
    }
}
