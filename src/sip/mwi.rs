//! Message-waiting indication (RFC 3842): the `message-summary` event package.
//!
//! Two ways a PBX tells us about voicemail: an unsolicited NOTIFY outside any dialog (Asterisk
//! with `mwi` configured on the endpoint), or NOTIFYs inside a subscription we make after
//! registering. Both end in the same body parser and the same `UaEvent::Voicemail`.

use std::time::{Duration, Instant};

use super::msg::{CSeq, Method, NameAddr, Request, Response, SipHeaders, Uri};
use super::transaction::TxId;
use super::ua::{Purpose, UaEvent, UserAgent};

/// The media type of a message-summary body (RFC 3842 §4).
pub const CONTENT_TYPE: &str = "application/simple-message-summary";
/// The event package name (RFC 3842 §3).
pub const EVENT_PACKAGE: &str = "message-summary";
/// How long we ask the subscription to last.
pub const SUBSCRIBE_EXPIRES: u32 = 3600;
/// After a failure the subscription is retried, doubling from this, up to `RETRY_MAX`.
const RETRY_MIN: Duration = Duration::from_secs(30);
const RETRY_MAX: Duration = Duration::from_secs(1800);

/// Why a message-summary body was refused (answered 400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MwiError {
    #[error("the message-summary body is not UTF-8 text: the PBX must send RFC 3842 text")]
    NotText,
    #[error("the message-summary body has no Messages-Waiting line (RFC 3842 §5.2 requires one)")]
    NoMessagesWaiting,
    #[error("Messages-Waiting is {0:?}: RFC 3842 allows only \"yes\" or \"no\"")]
    BadMessagesWaiting(String),
    #[error("message-summary line {0:?} is not `class: new/old (urgent_new/urgent_old)`")]
    BadCounts(String),
}

/// Counts for one message class (`new/old (urgent_new/urgent_old)`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    pub new: u32,
    pub old: u32,
    pub urgent_new: u32,
    pub urgent_old: u32,
}

/// A parsed `application/simple-message-summary` body (RFC 3842 §5).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageSummary {
    pub waiting: bool,
    pub account: Option<String>,
    /// The `Voice-Message` counts, when the PBX sent them.
    pub voice: Option<MessageCounts>,
}

/// Parse a message-summary body. Lines are `name: value`, names case-insensitive; classes other
/// than voice are checked for syntax and ignored; everything after the first blank line is the
/// optional message headers, which we do not use.
pub fn parse_message_summary(body: &[u8]) -> Result<MessageSummary, MwiError> {
    let text = std::str::from_utf8(body).map_err(|_| MwiError::NotText)?;
    let mut waiting = None;
    let mut summary = MessageSummary::default();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() {
            if waiting.is_some() {
                break;
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(MwiError::BadCounts(line.to_string()));
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        match name.as_str() {
            "messages-waiting" => {
                waiting = Some(match value.to_ascii_lowercase().as_str() {
                    "yes" => true,
                    "no" => false,
                    _ => return Err(MwiError::BadMessagesWaiting(value.to_string())),
                });
            }
            "message-account" => summary.account = Some(value.to_string()),
            "voice-message" => {
                summary.voice = Some(parse_counts(value).ok_or_else(|| bad(line))?);
            }
            "fax-message" | "pager-message" | "multimedia-message" | "text-message" | "none" => {
                parse_counts(value).ok_or_else(|| bad(line))?;
            }
            // Unknown lines are extensions (RFC 3842 §5.1); ignoring them keeps new PBXs working.
            _ => {}
        }
    }
    summary.waiting = waiting.ok_or(MwiError::NoMessagesWaiting)?;
    Ok(summary)
}

fn bad(line: &str) -> MwiError {
    MwiError::BadCounts(line.to_string())
}

/// `new/old` with an optional `(urgent_new/urgent_old)`.
fn parse_counts(value: &str) -> Option<MessageCounts> {
    let (main, urgent) = match value.split_once('(') {
        Some((main, rest)) => (main, Some(rest.trim().strip_suffix(')')?)),
        None => (value, None),
    };
    let pair = |text: &str| -> Option<(u32, u32)> {
        let (a, b) = text.split_once('/')?;
        Some((number(a)?, number(b)?))
    };
    let (new, old) = pair(main)?;
    let (urgent_new, urgent_old) = match urgent {
        Some(u) => pair(u)?,
        None => (0, 0),
    };
    Some(MessageCounts {
        new,
        old,
        urgent_new,
        urgent_old,
    })
}

fn number(text: &str) -> Option<u32> {
    let text = text.trim();
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Whether a request is a NOTIFY for the message-summary package.
pub fn is_message_summary(request: &Request) -> bool {
    request.method == Method::Notify && request.event().is_some_and(|e| e.package == EVENT_PACKAGE)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) enum MwiState {
    /// Not subscribed; a successful registration starts a subscription.
    #[default]
    Idle,
    Subscribing,
    Active {
        refresh_at: Instant,
    },
    RetryAt(Instant),
    /// The PBX has no MWI (489/404/405/501) or refused us for good: never ask again.
    Disabled,
}

/// Our message-summary subscription (RFC 6665 subscriber side) and the last state reported.
#[derive(Debug, Clone, Default)]
pub(crate) struct MwiSubscription {
    pub state: MwiState,
    pub call_id: String,
    pub from_tag: String,
    /// The notifier's tag once the dialog exists: refreshes go inside it.
    pub to_tag: Option<String>,
    pub remote_target: Option<Uri>,
    pub route_set: Vec<String>,
    pub cseq: u32,
    pub failures: u32,
    /// (waiting, new, old) last reported, so only changes become events.
    pub last: Option<(bool, u32, u32)>,
}

impl MwiSubscription {
    pub fn next_deadline(&self) -> Option<Instant> {
        match self.state {
            MwiState::Active { refresh_at } => Some(refresh_at),
            MwiState::RetryAt(at) => Some(at),
            _ => None,
        }
    }
}

impl UserAgent {
    /// Called after every registration answer: subscribe once we are registered.
    pub(crate) fn mwi_after_registration(&mut self, now: Instant) {
        if self.config.subscribe_mwi && self.is_registered() && self.mwi.state == MwiState::Idle {
            self.start_mwi_subscription(now);
        }
    }

    fn start_mwi_subscription(&mut self, now: Instant) {
        self.mwi.call_id = self.new_call_id();
        self.mwi.from_tag = self.new_tag();
        self.mwi.to_tag = None;
        self.mwi.remote_target = None;
        self.mwi.route_set.clear();
        self.mwi.cseq = 0;
        self.send_subscribe(now, SUBSCRIBE_EXPIRES);
    }

    fn send_subscribe(&mut self, now: Instant, expires: u32) {
        self.mwi.state = MwiState::Subscribing;
        self.mwi.cseq = self.mwi.cseq.saturating_add(1);
        let aor = self.aor();
        let uri = self
            .mwi
            .remote_target
            .clone()
            .unwrap_or_else(|| aor.clone());
        let mut to = NameAddr::new(aor);
        if let Some(tag) = &self.mwi.to_tag {
            to = to.with_tag(tag);
        }
        let call_id = self.mwi.call_id.clone();
        let from_tag = self.mwi.from_tag.clone();
        let seq = self.mwi.cseq;
        let mut request = self.new_request(Method::Subscribe, uri, to, &call_id, &from_tag, seq);
        if self.mwi.to_tag.is_some() && !self.mwi.route_set.is_empty() {
            request.headers.remove("Route");
            for route in &self.mwi.route_set {
                request.headers.push("Route", route.clone());
            }
        }
        request.headers.push("Contact", self.contact_value());
        request.headers.push("Event", EVENT_PACKAGE);
        request.headers.push("Accept", CONTENT_TYPE);
        request.headers.push("Expires", expires.to_string());
        if self.mwi.to_tag.is_some() {
            self.send(now, request, Purpose::Subscribe);
        } else {
            // Like REGISTER, a new subscription goes to the PBX we register with, even when
            // the AOR's domain is an address without the PBX's port.
            let target = self.config.outbound;
            self.send_to(now, request, target, Purpose::Subscribe, Vec::new());
        }
    }

    /// Keep the CSeq in step with a digest-authenticated copy of our SUBSCRIBE.
    pub(crate) fn mwi_after_auth_retry(&mut self, request: &Request) {
        if let Some(CSeq { seq, .. }) = request.cseq() {
            self.mwi.cseq = self.mwi.cseq.max(seq);
        }
    }

    pub(crate) fn on_subscribe_response(&mut self, now: Instant, response: Response) {
        if response.status < 200 || self.mwi.state == MwiState::Disabled {
            return;
        }
        match response.status {
            200..=299 => {
                if self.mwi.to_tag.is_none() {
                    self.mwi.to_tag = response.to_tag();
                    self.mwi.remote_target = response.contacts().first().map(|c| c.uri.clone());
                    self.mwi.route_set = response
                        .record_routes()
                        .iter()
                        .rev()
                        .map(|r| r.to_string())
                        .collect();
                }
                let granted = response.expires().unwrap_or(SUBSCRIBE_EXPIRES);
                if granted == 0 {
                    // Accepted and ended at once: nothing to refresh, try again later.
                    self.mwi_retry_later(now);
                    return;
                }
                self.mwi.failures = 0;
                // Refresh early enough that one lost request and its retransmissions still fit.
                let lead = if granted <= 120 {
                    granted / 2
                } else {
                    (granted / 10).min(300)
                };
                let refresh_at =
                    now + Duration::from_secs(u64::from(granted.saturating_sub(lead).max(1)));
                self.mwi.state = MwiState::Active { refresh_at };
            }
            404 | 405 | 489 | 501 => {
                tracing::info!(
                    status = response.status,
                    "the PBX offers no message-waiting subscription; not asking again"
                );
                self.mwi.state = MwiState::Disabled;
            }
            423 => {
                let min = response
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok())
                    .filter(|m| *m > SUBSCRIBE_EXPIRES && *m <= 86_400);
                match min {
                    Some(min) => self.send_subscribe(now, min),
                    None => self.mwi_retry_later(now),
                }
            }
            // The notifier forgot our dialog (it restarted): start a new subscription.
            481 if self.mwi.to_tag.is_some() => self.start_mwi_subscription(now),
            _ => self.mwi_retry_later(now),
        }
    }

    fn mwi_retry_later(&mut self, now: Instant) {
        let exp = self.mwi.failures.min(8);
        let delay = RETRY_MIN.saturating_mul(1 << exp).min(RETRY_MAX);
        self.mwi.failures = self.mwi.failures.saturating_add(1);
        self.mwi.to_tag = None;
        self.mwi.state = MwiState::RetryAt(now + delay);
    }

    pub(crate) fn handle_mwi_timers(&mut self, now: Instant) {
        match self.mwi.state {
            MwiState::Active { refresh_at } if now >= refresh_at => {
                self.send_subscribe(now, SUBSCRIBE_EXPIRES);
            }
            MwiState::RetryAt(at) if now >= at => {
                if self.is_registered() {
                    self.start_mwi_subscription(now);
                } else {
                    // The next successful registration subscribes again.
                    self.mwi.state = MwiState::Idle;
                }
            }
            _ => {}
        }
    }

    pub(crate) fn next_mwi_deadline(&self) -> Option<Instant> {
        self.mwi.next_deadline()
    }

    /// A message-summary NOTIFY, in our subscription or unsolicited: both are answered and
    /// reported the same way.
    pub(crate) fn on_mwi_notify(&mut self, now: Instant, tx: TxId, request: Request) {
        let blank = request.body.iter().all(|b| b.is_ascii_whitespace());
        let summary = if blank {
            // An empty NOTIFY (RFC 6665 allows one before state is known) carries no news.
            None
        } else {
            match parse_message_summary(&request.body) {
                Ok(summary) => Some(summary),
                Err(error) => {
                    tracing::debug!(%error, "malformed message-summary NOTIFY");
                    let mut response = request.response_with_reason(400, "Bad message-summary");
                    self.add_to_tag(&mut response);
                    self.respond(now, tx, response);
                    return;
                }
            }
        };
        let mut response = request.response(200);
        self.add_to_tag(&mut response);
        self.respond(now, tx, response);
        let ours = !self.mwi.call_id.is_empty() && request.call_id() == Some(&self.mwi.call_id);
        if ours {
            self.on_mwi_subscription_state(now, &request);
        }
        if let Some(summary) = summary {
            let counts = summary.voice.unwrap_or_default();
            let current = (summary.waiting, counts.new, counts.old);
            if self.mwi.last != Some(current) {
                self.mwi.last = Some(current);
                self.emit(UaEvent::Voicemail {
                    waiting: summary.waiting,
                    new: counts.new,
                    old: counts.old,
                });
            }
        }
    }

    fn on_mwi_subscription_state(&mut self, now: Instant, request: &Request) {
        let Some(state) = request.subscription_state() else {
            return;
        };
        if !state.is_terminated() || self.mwi.state == MwiState::Disabled {
            return;
        }
        match state.reason.as_deref() {
            // RFC 6665 §4.1.3: do not retry these.
            Some("rejected") | Some("noresource") => {
                tracing::info!("the PBX ended the message-waiting subscription for good");
                self.mwi.state = MwiState::Disabled;
            }
            // The notifier asks for a fresh subscription right away.
            Some("deactivated") | Some("timeout") if self.is_registered() => {
                self.start_mwi_subscription(now)
            }
            _ => self.mwi_retry_later(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3842_example_body_parses() {
        let body = b"Messages-Waiting: yes\r\nMessage-Account: sip:alice@vmail.example.com\r\n\
Voice-Message: 4/8 (1/2)\r\n\r\nTo: <alice@atlanta.example.com>\r\n";
        let summary = parse_message_summary(body).expect("valid");
        assert!(summary.waiting);
        assert_eq!(
            summary.account.as_deref(),
            Some("sip:alice@vmail.example.com")
        );
        assert_eq!(
            summary.voice,
            Some(MessageCounts {
                new: 4,
                old: 8,
                urgent_new: 1,
                urgent_old: 2
            })
        );
    }

    #[test]
    fn asterisk_style_body_without_urgent_counts() {
        let body =
            b"messages-waiting: no\r\nmessage-account: sip:*97@pbx\r\nvoice-message: 0/3\r\n";
        let summary = parse_message_summary(body).expect("valid");
        assert!(!summary.waiting);
        assert_eq!(summary.voice.map(|v| (v.new, v.old)), Some((0, 3)));
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        let cases: [(&[u8], MwiError); 7] = [
            (b"Voice-Message: 1/2\r\n", MwiError::NoMessagesWaiting),
            (
                b"Messages-Waiting: maybe\r\n",
                MwiError::BadMessagesWaiting("maybe".into()),
            ),
            (
                b"Messages-Waiting: yes\r\nVoice-Message: 1\r\n",
                MwiError::BadCounts("Voice-Message: 1".into()),
            ),
            (
                b"Messages-Waiting: yes\r\nVoice-Message: 99999999999/1\r\n",
                MwiError::BadCounts("Voice-Message: 99999999999/1".into()),
            ),
            (
                b"Messages-Waiting: yes\r\nVoice-Message: -1/+2\r\n",
                MwiError::BadCounts("Voice-Message: -1/+2".into()),
            ),
            (
                b"Messages-Waiting: yes\r\nFax-Message: 1/2 (3/\r\n",
                MwiError::BadCounts("Fax-Message: 1/2 (3/".into()),
            ),
            (b"\xff\xfe", MwiError::NotText),
        ];
        for (body, expected) in cases {
            assert_eq!(parse_message_summary(body), Err(expected));
        }
        assert!(parse_message_summary(b"garbage without colon").is_err());
        assert!(
            parse_message_summary(b"Messages-Waiting: yes\r\nVoice-Message: \xc3\xa9/1").is_err()
        );
    }
}

#[cfg(test)]
mod ua_tests {
    use core::net::SocketAddr;
    use std::time::{Duration, Instant};

    use crate::sip::auth;
    use crate::sip::msg::{parse, Message, Method, Request, Response, SipHeaders};
    use crate::sip::transaction::{Target, Transport};
    use crate::sip::ua::{Command, UaConfig, UaEvent, UserAgent};

    fn pbx() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 10], 5060))
    }

    fn source() -> Target {
        Target {
            transport: Transport::Udp,
            addr: pbx(),
        }
    }

    fn agent(subscribe: bool) -> (UserAgent, Instant) {
        let local = SocketAddr::from(([10, 0, 0, 5], 5062));
        let mut config = UaConfig::simple("101", local, pbx());
        config.password = crate::config::Secret::new("lab101");
        config.domain = "pbx.example".into();
        config.subscribe_mwi = subscribe;
        (UserAgent::new(config, 11), Instant::now())
    }

    fn sent(ua: &mut UserAgent) -> Vec<Message> {
        std::iter::from_fn(|| ua.poll_transmit())
            .filter_map(|t| parse(&t.bytes).ok())
            .collect()
    }

    fn requests(messages: &[Message], method: Method) -> Vec<Request> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Request(r) if r.method == method => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn responses(messages: &[Message]) -> Vec<Response> {
        messages
            .iter()
            .filter_map(|m| match m {
                Message::Response(r) => Some(r.clone()),
                _ => None,
            })
            .collect()
    }

    fn answer(
        ua: &mut UserAgent,
        now: Instant,
        request: &Request,
        status: u16,
        extra: &[(&str, &str)],
    ) {
        let mut response = request.response(status);
        if let Some(to) = response.to_header() {
            response
                .headers
                .set("To", to.with_tag("pbx-dialog").to_string());
        }
        for (name, value) in extra {
            response.headers.push(name, *value);
        }
        ua.handle_datagram(now, source(), &response.to_bytes());
    }

    fn events(ua: &mut UserAgent) -> Vec<UaEvent> {
        std::iter::from_fn(|| ua.poll_event()).collect()
    }

    /// Register and return the SUBSCRIBE that follows (if any) and everything else sent.
    fn registered(ua: &mut UserAgent, now: Instant) -> Vec<Message> {
        ua.command(now, Command::Register).expect("register");
        let register = requests(&sent(ua), Method::Register).remove(0);
        answer(ua, now, &register, 200, &[("Expires", "600")]);
        sent(ua)
    }

    fn notify(call_id: &str, to_tag: Option<&str>, state: &str, body: &str) -> Vec<u8> {
        let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let branch: String = call_id
            .chars()
            .chain(state.chars())
            .filter(char::is_ascii_alphanumeric)
            .collect();
        format!(
            "NOTIFY sip:101@10.0.0.5:5062 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-{branch}-{}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:101@pbx.example>;tag=pbx1\r\n\
             To: <sip:101@pbx.example>{to_tag}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 7 NOTIFY\r\n\
             Contact: <sip:192.0.2.10:5060>\r\n\
             Event: message-summary\r\n\
             Subscription-State: {state}\r\n\
             Content-Type: application/simple-message-summary\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len(),
            body.len()
        )
        .into_bytes()
    }

    #[test]
    fn an_unsolicited_notify_is_answered_200_and_reported_on_change() {
        let (mut ua, now) = agent(false);
        let body = "Messages-Waiting: yes\r\nMessage-Account: sip:*97@pbx.example\r\nVoice-Message: 2/8 (0/0)\r\n";
        ua.handle_datagram(now, source(), &notify("unsol-1", None, "active", body));
        let out = responses(&sent(&mut ua));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].status, 200);
        assert!(
            out[0].to_tag().is_some(),
            "a 200 outside a dialog carries a To tag"
        );
        assert_eq!(
            events(&mut ua),
            vec![UaEvent::Voicemail {
                waiting: true,
                new: 2,
                old: 8
            }]
        );
        // The same state again is answered but not reported twice.
        ua.handle_datagram(now, source(), &notify("unsol-2", None, "active", body));
        assert_eq!(responses(&sent(&mut ua))[0].status, 200);
        assert!(events(&mut ua).is_empty());
        let read = "Messages-Waiting: no\r\nVoice-Message: 0/10\r\n";
        ua.handle_datagram(now, source(), &notify("unsol-3", None, "active", read));
        assert_eq!(
            events(&mut ua),
            vec![UaEvent::Voicemail {
                waiting: false,
                new: 0,
                old: 10
            }]
        );
    }

    #[test]
    fn a_malformed_body_is_answered_400_without_an_event() {
        let (mut ua, now) = agent(false);
        for (n, body) in [
            "Voice-Message: 2/8\r\n",
            "Messages-Waiting: yes\r\nVoice-Message: two/eight\r\n",
            "Messages-Waiting: yes\r\nVoice-Message: 4294967296/0\r\n",
        ]
        .into_iter()
        .enumerate()
        {
            ua.handle_datagram(
                now,
                source(),
                &notify(&format!("bad{n}"), None, "active", body),
            );
            let out = responses(&sent(&mut ua));
            assert_eq!(
                out.iter().map(|r| r.status).collect::<Vec<_>>(),
                vec![400],
                "{body}"
            );
        }
        assert!(events(&mut ua).is_empty());
    }

    #[test]
    fn no_subscribe_when_turned_off() {
        let (mut ua, now) = agent(false);
        let out = registered(&mut ua, now);
        assert!(requests(&out, Method::Subscribe).is_empty());
        assert_eq!(ua.mwi.next_deadline(), None);
    }

    #[test]
    fn subscribes_after_registering_and_refreshes_in_the_dialog() {
        let (mut ua, mut now) = agent(true);
        let out = registered(&mut ua, now);
        let subscribe = requests(&out, Method::Subscribe);
        assert_eq!(
            subscribe.len(),
            1,
            "one SUBSCRIBE after the 200 to REGISTER"
        );
        let first = &subscribe[0];
        assert_eq!(first.uri.to_string(), "sip:101@pbx.example");
        assert_eq!(first.header("Event"), Some("message-summary"));
        assert_eq!(first.header("Expires"), Some("3600"));
        assert_eq!(
            first.header("Accept"),
            Some("application/simple-message-summary")
        );
        assert!(first.to_tag().is_none());
        answer(
            &mut ua,
            now,
            first,
            200,
            &[
                ("Expires", "3600"),
                ("Contact", "<sip:mwi@192.0.2.10:5060>"),
            ],
        );
        let dialog_tag = Some("pbx-dialog".to_string());
        // Refresh 300 s early (a tenth of the hour), before the REGISTER refresh matters here.
        let deadline = ua.mwi.next_deadline().expect("refresh scheduled");
        assert_eq!(deadline - now, Duration::from_secs(3300));
        now = deadline;
        ua.handle_timeout(now);
        let refresh = requests(&sent(&mut ua), Method::Subscribe);
        assert_eq!(refresh.len(), 1);
        let refresh = &refresh[0];
        assert_eq!(refresh.call_id(), first.call_id());
        assert_eq!(refresh.from_tag(), first.from_tag());
        assert_eq!(refresh.to_tag(), dialog_tag);
        assert_eq!(refresh.uri.to_string(), "sip:mwi@192.0.2.10:5060");
        assert_eq!(
            refresh.cseq().map(|c| c.seq),
            first.cseq().map(|c| c.seq + 1)
        );
        // A NOTIFY inside the subscription is reported like an unsolicited one.
        let call_id = first.call_id().unwrap_or_default().to_string();
        let body = "Messages-Waiting: yes\r\nVoice-Message: 1/0\r\n";
        let tag = first.from_tag();
        ua.handle_datagram(
            now,
            source(),
            &notify(&call_id, tag.as_deref(), "active;expires=300", body),
        );
        assert_eq!(responses(&sent(&mut ua))[0].status, 200);
        assert!(events(&mut ua).contains(&UaEvent::Voicemail {
            waiting: true,
            new: 1,
            old: 0
        }));
    }

    #[test]
    fn a_digest_challenge_on_subscribe_is_answered() {
        let (mut ua, now) = agent(true);
        let out = registered(&mut ua, now);
        let first = requests(&out, Method::Subscribe).remove(0);
        let challenge =
            auth::challenge_value("pbx", "m1", &auth::Algorithm::Md5, true, false, None);
        answer(
            &mut ua,
            now,
            &first,
            401,
            &[("WWW-Authenticate", &challenge)],
        );
        let second = requests(&sent(&mut ua), Method::Subscribe).remove(0);
        let value = second.header("Authorization").expect("credentials");
        let parsed = auth::Authorization::parse(value).expect("parse");
        assert!(auth::verify(&parsed, "SUBSCRIBE", "lab101", b""));
        assert_eq!(
            second.cseq().map(|c| c.seq),
            first.cseq().map(|c| c.seq + 1)
        );
        answer(&mut ua, now, &second, 200, &[("Expires", "600")]);
        // 600 s granted: refreshed 60 s early, and the later refresh carries the new CSeq.
        assert_eq!(
            ua.mwi.next_deadline().map(|d| d - now),
            Some(Duration::from_secs(540))
        );
        assert_eq!(second.cseq().map(|c| c.seq), Some(ua.mwi.cseq));
    }

    #[test]
    fn bad_event_stops_the_subscription_for_good() {
        for status in [489, 404, 405] {
            let (mut ua, mut now) = agent(true);
            let out = registered(&mut ua, now);
            let first = requests(&out, Method::Subscribe).remove(0);
            answer(&mut ua, now, &first, status, &[]);
            assert!(sent(&mut ua).is_empty());
            assert_eq!(ua.mwi.next_deadline(), None, "{status}");
            assert!(events(&mut ua)
                .iter()
                .all(|e| !matches!(e, UaEvent::Voicemail { .. } | UaEvent::Notice { .. })));
            // The registration refreshes (480 s into 600 s) and nothing asks again.
            for _ in 0..3 {
                now += Duration::from_secs(600);
                ua.handle_timeout(now);
                let out = sent(&mut ua);
                assert!(requests(&out, Method::Subscribe).is_empty(), "{status}");
                for register in requests(&out, Method::Register) {
                    answer(&mut ua, now, &register, 200, &[("Expires", "600")]);
                }
                assert!(
                    requests(&sent(&mut ua), Method::Subscribe).is_empty(),
                    "{status}"
                );
            }
        }
    }

    #[test]
    fn a_server_error_is_retried_later() {
        let (mut ua, now) = agent(true);
        let out = registered(&mut ua, now);
        let first = requests(&out, Method::Subscribe).remove(0);
        answer(&mut ua, now, &first, 503, &[]);
        let retry_at = ua.mwi.next_deadline().expect("retry");
        assert_eq!(retry_at - now, Duration::from_secs(30));
        ua.handle_timeout(retry_at);
        let again = requests(&sent(&mut ua), Method::Subscribe).remove(0);
        assert_ne!(again.call_id(), first.call_id(), "a new subscription");
    }

    #[test]
    fn terminated_noresource_stops_and_deactivated_resubscribes() {
        let (mut ua, now) = agent(true);
        let out = registered(&mut ua, now);
        let first = requests(&out, Method::Subscribe).remove(0);
        answer(&mut ua, now, &first, 200, &[("Expires", "3600")]);
        let call_id = first.call_id().unwrap_or_default().to_string();
        let tag = first.from_tag();
        ua.handle_datagram(
            now,
            source(),
            &notify(
                &call_id,
                tag.as_deref(),
                "terminated;reason=deactivated",
                "",
            ),
        );
        let out = sent(&mut ua);
        assert_eq!(responses(&out)[0].status, 200);
        let fresh = requests(&out, Method::Subscribe).remove(0);
        assert_ne!(fresh.call_id(), first.call_id());
        answer(&mut ua, now, &fresh, 200, &[("Expires", "3600")]);
        let call_id = fresh.call_id().unwrap_or_default().to_string();
        let tag = fresh.from_tag();
        ua.handle_datagram(
            now,
            source(),
            &notify(&call_id, tag.as_deref(), "terminated;reason=noresource", ""),
        );
        assert!(requests(&sent(&mut ua), Method::Subscribe).is_empty());
        assert_eq!(ua.mwi.next_deadline(), None);
    }
}
