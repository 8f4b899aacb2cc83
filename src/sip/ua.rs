//! The user agent: one SIP account's endpoint, sans-IO.
//!
//! It owns the transaction layer, the registration and the calls. The driver feeds it datagrams,
//! timeouts and commands, each with `now`, and drains transmits, events and the next wake-up.
//! Call handling lives in `call.rs`, transfers in `transfer.rs` and registration in
//! `register.rs`; this file holds the shared state and the plumbing every request goes through
//! (building, routing, digest-authentication retries).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::time::{Duration, Instant};

use core::net::{IpAddr, SocketAddr};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::auth::{self, Challenge, Credentials, NonceCounts};
use super::call::Call;
use super::msg::{self, CSeq, Message, Method, NameAddr, Request, Response, SipHeaders, Uri, Via};
use super::mwi::{self, MwiState, MwiSubscription};
use super::register::Registration;
use super::sdp::Codec;
use super::transaction::{
    self, Target, Timers, TransactionLayer, Transmit, Transport, TxEvent, TxId,
};
use super::validate::{self, UasPolicy};

pub use super::call::{CallDirection, CallInfo, CallState};

/// A call's handle for commands and events: small numbers people can type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(pub u32);

impl std::fmt::Display for CallId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Everything the core needs to know about the account and the machine, resolved by the driver
/// (names to addresses, the bound socket) before the core starts.
#[derive(Debug, Clone)]
pub struct UaConfig {
    pub username: String,
    pub auth_username: String,
    /// Debug prints it as `***`: configs get logged, passwords must not.
    pub password: crate::config::Secret,
    pub display_name: Option<String>,
    /// The AOR's domain (host or host:port).
    pub domain: String,
    /// The Request-URI of REGISTER.
    pub registrar: Uri,
    /// Where requests outside a dialog go (the outbound proxy, else the registrar).
    pub outbound: Target,
    /// A configured outbound proxy is also put in a Route header (loose routing).
    pub outbound_proxy: Option<Uri>,
    pub transport: Transport,
    /// Our SIP address as the network sees it before any rport correction.
    pub local: SocketAddr,
    pub expires: u32,
    pub user_agent: String,
    pub timers: Timers,
    /// Answer every incoming call with this status (486 or 603) instead of ringing.
    pub reject_incoming: Option<u16>,
    pub auto_answer: Option<Duration>,
    /// "Call from another device": dials ring this handset first, then REFER it to the number.
    pub external_device: Option<String>,
    pub accept_refer: bool,
    pub media_ip: IpAddr,
    /// RTP ports are handed out from this range, even numbers only (RTCP takes the odd one).
    pub rtp_ports: (u16, u16),
    pub codecs: Vec<Codec>,
    pub telephone_event: Option<u8>,
    /// Send DTMF as RFC 4733 RTP events when the peer negotiated telephone-event. Off while no
    /// media engine runs: then SIP INFO carries the digits.
    pub rtp_dtmf: bool,
    /// After registering, SUBSCRIBE to our mailbox's message-summary (RFC 3842). Unsolicited
    /// message-summary NOTIFYs are accepted either way. On in real configs, off in `simple`.
    pub subscribe_mwi: bool,
}

impl UaConfig {
    /// A config for tests and the lab: user@ip, no auth proxy, UDP.
    pub fn simple(username: &str, local: SocketAddr, registrar: SocketAddr) -> UaConfig {
        let host = registrar.ip().to_string();
        UaConfig {
            username: username.into(),
            auth_username: username.into(),
            password: crate::config::Secret::new(""),
            display_name: None,
            domain: host.clone(),
            registrar: Uri::sip(None, &host, Some(registrar.port())),
            outbound: Target {
                transport: Transport::Udp,
                addr: registrar,
            },
            outbound_proxy: None,
            transport: Transport::Udp,
            local,
            expires: 600,
            user_agent: format!("ringside/{}", env!("CARGO_PKG_VERSION")),
            timers: Timers::default(),
            reject_incoming: None,
            auto_answer: None,
            external_device: None,
            accept_refer: true,
            media_ip: local.ip(),
            rtp_ports: (16384, 32766),
            codecs: vec![Codec::pcmu(), Codec::pcma()],
            telephone_event: Some(101),
            rtp_dtmf: false,
            // The lab registrar and the scripted tests expect REGISTER traffic only.
            subscribe_mwi: false,
        }
    }
}

/// What the user (shell, dashboard) asks of the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Register,
    Unregister,
    Dial {
        target: String,
    },
    Answer {
        call: CallId,
    },
    Reject {
        call: CallId,
    },
    Hangup {
        call: CallId,
    },
    Hold {
        call: CallId,
    },
    Resume {
        call: CallId,
    },
    /// Blind transfer to an extension or a number.
    Transfer {
        call: CallId,
        target: String,
    },
    /// Start an attended transfer: hold `call` and dial a consultation call to `target`.
    AttendedStart {
        call: CallId,
        target: String,
    },
    /// Join the held call and the consultation call (REFER with Replaces).
    AttendedComplete {
        call: CallId,
    },
    /// Hang up the consultation call and resume the held one.
    AttendedAbort {
        call: CallId,
    },
    Dtmf {
        call: CallId,
        digits: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("no call {0}")]
    NoSuchCall(CallId),
    #[error("call {call} is {state}: {action} is not possible now")]
    WrongState {
        call: CallId,
        state: String,
        action: &'static str,
    },
    #[error("{0:?} is not a number or SIP address: use an extension, +<country><number> or sip:user@host")]
    BadTarget(String),
    #[error("{0:?} are not DTMF digits: use 0-9, *, #, A-D")]
    BadDigits(String),
    #[error("no attended transfer is in progress on call {0}")]
    NoConsultation(CallId),
}

/// Which side ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    Local,
    Remote,
    Network,
}

/// Everything the agent reports, in order. The shell prints one line (or one JSON object) each.
#[derive(Debug, Clone, PartialEq)]
pub enum UaEvent {
    Registered {
        aor: String,
        contact: String,
        expires: u32,
    },
    /// Registration failed or was lost; `retry_in` says when it is tried again.
    RegistrationFailed {
        code: Option<u16>,
        message: String,
        retry_in: Option<Duration>,
    },
    Unregistered,
    IncomingCall {
        call: CallId,
        from: String,
        name: Option<String>,
    },
    /// An outgoing call is ringing at the far end (or has early media).
    Ringing {
        call: CallId,
        early_media: bool,
    },
    Dialing {
        call: CallId,
        to: String,
    },
    Answered {
        call: CallId,
        codec: Option<String>,
    },
    CallEnded {
        call: CallId,
        code: Option<u16>,
        reason: String,
        by: EndedBy,
    },
    Held {
        call: CallId,
    },
    Resumed {
        call: CallId,
    },
    RemoteHold {
        call: CallId,
    },
    RemoteResume {
        call: CallId,
    },
    /// A hold, resume or other re-INVITE failed; the call goes on as before.
    HoldFailed {
        call: CallId,
        code: Option<u16>,
        reason: String,
    },
    RemotePartyChanged {
        call: CallId,
        name: Option<String>,
        uri: String,
    },
    TransferProgress {
        call: CallId,
        code: u16,
        reason: String,
    },
    /// A transfer we asked for ended, well or not.
    TransferDone {
        call: CallId,
        success: bool,
        reason: String,
    },
    /// The far end asked us to call someone else (incoming REFER we accepted).
    TransferRequested {
        call: CallId,
        target: String,
        new_call: CallId,
    },
    DtmfReceived {
        call: CallId,
        digit: char,
        duration_ms: u32,
    },
    /// Media is negotiated (or renegotiated) for a call: the media layer starts or updates RTP.
    Media {
        call: CallId,
        local_port: u16,
        remote: Option<SocketAddr>,
        codec: Option<String>,
        payload_type: Option<u8>,
        telephone_event: Option<u8>,
        /// The RTP clock of the telephone-event payload type (the codec's clock when the peer
        /// offered it: 48000 beside Opus), 8000 when there is none.
        telephone_event_clock: u32,
        sending: bool,
        receiving: bool,
        /// The packet time the peer asked for (`a=ptime`, 20 ms when absent).
        ptime_ms: u32,
    },
    /// DTMF to send as RFC 4733 events by the media layer (the peer negotiated telephone-event).
    SendDtmfRtp {
        call: CallId,
        digits: String,
    },
    Notice {
        message: String,
    },
    /// The mailbox's message-waiting state changed (RFC 3842 message-summary).
    Voicemail {
        waiting: bool,
        new: u32,
        old: u32,
    },
}

/// What an outstanding client transaction was for, so its response reaches the right handler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Purpose {
    Register,
    Unregister,
    Invite(CallId),
    ReInvite(CallId),
    Bye(CallId),
    Cancel(CallId),
    Refer(CallId),
    Notify(CallId),
    Info(CallId),
    /// Our message-summary subscription (initial, refresh or retry).
    Subscribe,
    Other,
}

#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub request: Request,
    pub target: Target,
    pub purpose: Purpose,
    /// Nonces we already answered: a second challenge with one of them means the credentials
    /// were wrong (RFC 3261 §22.2), unless the server says `stale=true`.
    pub answered_nonces: Vec<String>,
}

pub struct UserAgent {
    pub(crate) config: UaConfig,
    pub(crate) tx: TransactionLayer,
    pub(crate) rng: SmallRng,
    pub(crate) pending: HashMap<TxId, Pending>,
    pub(crate) registration: Registration,
    pub(crate) calls: BTreeMap<CallId, Call>,
    pub(crate) next_call: u32,
    pub(crate) events: VecDeque<UaEvent>,
    pub(crate) out: VecDeque<Transmit>,
    pub(crate) nonce_counts: NonceCounts,
    /// Our address as the registrar saw it (RFC 3581 received/rport), used in Contact and Via.
    pub(crate) public: SocketAddr,
    next_rtp_port: u16,
    policy: UasPolicy,
    /// NOTIFYs owed to a transferor, queued where no `now` was at hand.
    pub(crate) deferred_notifies: Vec<(CallId, u16, String)>,
    pub(crate) mwi: MwiSubscription,
}

impl UserAgent {
    pub fn new(config: UaConfig, seed: u64) -> UserAgent {
        let timers = config.timers;
        let public = config.local;
        let next_rtp_port = config.rtp_ports.0 & !1;
        UserAgent {
            tx: TransactionLayer::new(timers),
            rng: SmallRng::seed_from_u64(seed),
            pending: HashMap::new(),
            registration: Registration::default(),
            calls: BTreeMap::new(),
            next_call: 1,
            events: VecDeque::new(),
            out: VecDeque::new(),
            nonce_counts: NonceCounts::new(),
            public,
            next_rtp_port,
            policy: {
                let mut policy = UasPolicy::default();
                policy.accepted_content_types.push(mwi::CONTENT_TYPE.into());
                policy
            },
            deferred_notifies: Vec::new(),
            mwi: MwiSubscription::default(),
            config,
        }
    }

    pub fn config(&self) -> &UaConfig {
        &self.config
    }

    // -- the sans-IO contract -----------------------------------------------------------------

    pub fn handle_datagram(&mut self, now: Instant, source: Target, bytes: &[u8]) {
        match msg::parse(bytes) {
            Ok(message) => self.handle_message(now, message, source),
            Err(rejected) => {
                tracing::debug!(error = %rejected.error, from = %source.addr, "unparseable SIP message");
                if let Some(response) = validate::response_for_rejected(&rejected) {
                    self.out.push_back(Transmit {
                        target: source,
                        bytes: response.to_bytes(),
                    });
                }
            }
        }
        self.drain_transactions(now);
    }

    /// A message already framed and parsed (the TCP driver frames streams itself).
    pub fn handle_message(&mut self, now: Instant, message: Message, source: Target) {
        if let Message::Request(request) = &message {
            if request.method != Method::Ack {
                if let Err(rejection) = validate::check_request(request, &self.policy) {
                    let mut response =
                        request.response_with_reason(rejection.status, &rejection.reason);
                    for (name, value) in rejection.headers {
                        response.headers.push(&name, value);
                    }
                    self.add_to_tag(&mut response);
                    self.out.push_back(Transmit {
                        target: source,
                        bytes: response.to_bytes(),
                    });
                    return;
                }
            }
        }
        self.tx.handle_message(now, message, source);
        self.drain_transactions(now);
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.tx.handle_timeout(now);
        self.drain_transactions(now);
        self.handle_registration_timers(now);
        self.handle_call_timers(now);
        self.handle_mwi_timers(now);
        self.drain_transactions(now);
    }

    /// The driver could not reach `target` (TCP connect refused, ICMP unreachable).
    pub fn handle_transport_error(&mut self, now: Instant, target: Target) {
        self.tx.handle_transport_error(now, target);
        self.drain_transactions(now);
        // Our connection to the PBX dropped (it restarted, or the network did): the binding
        // rides on that connection, so register again instead of waiting for the refresh.
        if target == self.config.outbound && target.transport.is_reliable() {
            self.connection_lost(now);
            self.drain_transactions(now);
        }
    }

    pub fn command(&mut self, now: Instant, command: Command) -> Result<(), CommandError> {
        let result = match command {
            Command::Register => {
                self.start_register(now);
                Ok(())
            }
            Command::Unregister => {
                self.start_unregister(now);
                Ok(())
            }
            Command::Dial { target } => self.dial(now, &target).map(|_| ()),
            Command::Answer { call } => self.answer(now, call),
            Command::Reject { call } => self.reject(now, call),
            Command::Hangup { call } => self.hangup(now, call),
            Command::Hold { call } => self.hold(now, call, true),
            Command::Resume { call } => self.hold(now, call, false),
            Command::Transfer { call, target } => self.blind_transfer(now, call, &target),
            Command::AttendedStart { call, target } => self.attended_start(now, call, &target),
            Command::AttendedComplete { call } => self.attended_complete(now, call),
            Command::AttendedAbort { call } => self.attended_abort(now, call),
            Command::Dtmf { call, digits } => self.send_dtmf(now, call, &digits),
        };
        self.drain_transactions(now);
        result
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front().or_else(|| self.tx.poll_transmit())
    }

    pub fn poll_event(&mut self) -> Option<UaEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tx.poll_timeout(),
            self.registration.next_deadline(),
            self.calls.values().filter_map(Call::next_deadline).min(),
            self.next_mwi_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// A snapshot of the calls, for the `calls` command and the dashboard.
    pub fn calls(&self, now: Instant) -> Vec<CallInfo> {
        self.calls.values().map(|c| c.info(now)).collect()
    }

    pub fn is_registered(&self) -> bool {
        self.registration.is_registered()
    }

    /// True once nothing is left to finish: no calls, no transactions (used at exit).
    pub fn is_idle(&self) -> bool {
        self.calls.is_empty() && self.pending.is_empty()
    }

    // -- transaction events -------------------------------------------------------------------

    pub(crate) fn drain_transactions(&mut self, now: Instant) {
        // Handling one event can start transactions that produce more; bounded by construction
        // because each handler only reacts to a message or a timer.
        loop {
            while let Some(event) = self.tx.poll_event() {
                self.on_tx_event(now, event);
            }
            if self.deferred_notifies.is_empty() {
                break;
            }
            self.flush_deferred_notifies(now);
        }
    }

    fn on_tx_event(&mut self, now: Instant, event: TxEvent) {
        match event {
            TxEvent::Request {
                tx,
                request,
                source,
            } => self.on_request(now, tx, request, source),
            TxEvent::Response { tx, response } => self.on_response(now, tx, response),
            TxEvent::Timeout { tx } => self.on_failure(now, tx, 408, "Request Timeout"),
            TxEvent::TransportError { tx } => self.on_failure(now, tx, 503, "PBX unreachable"),
            TxEvent::AckTimeout { .. } => {}
            TxEvent::Terminated { tx } => {
                // A client transaction that ended after its final response has nothing left
                // to say; its handler already ran.
                self.pending.remove(&tx);
            }
            TxEvent::StrayResponse { response } => self.on_stray_response(response),
        }
    }

    fn on_failure(&mut self, now: Instant, tx: TxId, code: u16, reason: &str) {
        if let Some(pending) = self.pending.get(&tx) {
            let mut response = pending.request.response_with_reason(code, reason);
            // Synthetic: mark it so handlers can tell the network failed rather than the peer.
            response.headers.push("X-Ringside-Local", "1");
            self.on_response(now, tx, response);
        }
    }

    fn on_response(&mut self, now: Instant, tx: TxId, response: Response) {
        let Some(pending) = self.pending.get(&tx).cloned() else {
            return;
        };
        // An INVITE's 2xx may be retransmitted while its transaction is Accepted (RFC 6026):
        // keep the mapping until the layer terminates it, so every copy gets our ACK again.
        let invite_2xx = matches!(pending.purpose, Purpose::Invite(_)) && response.is_success();
        if response.status >= 200 && !invite_2xx {
            self.pending.remove(&tx);
        }
        if matches!(response.status, 401 | 407) && self.retry_with_auth(now, &pending, &response) {
            return;
        }
        match pending.purpose {
            Purpose::Register | Purpose::Unregister => {
                self.on_register_response(now, &pending, response);
                if pending.purpose == Purpose::Unregister {
                    // A later registration starts a fresh subscription; a PBX without MWI
                    // stays known as such.
                    if self.mwi.state != MwiState::Disabled {
                        self.mwi.state = MwiState::Idle;
                    }
                } else {
                    self.mwi_after_registration(now);
                }
            }
            Purpose::Subscribe => self.on_subscribe_response(now, response),
            Purpose::Invite(call) => self.on_invite_response(now, call, tx, &pending, response),
            Purpose::ReInvite(call) => self.on_reinvite_response(now, call, response),
            Purpose::Refer(call) => self.on_refer_response(now, call, response),
            Purpose::Info(call) => self.on_info_response(now, call, response),
            // The call already ended when we sent BYE/CANCEL; their answers close nothing more.
            Purpose::Bye(_) | Purpose::Cancel(_) | Purpose::Notify(_) | Purpose::Other => {}
        }
    }

    fn on_request(&mut self, now: Instant, tx: Option<TxId>, request: Request, source: Target) {
        match (&request.method, tx) {
            (Method::Ack, _) => self.on_ack(now, request),
            (_, None) => {}
            (Method::Invite, Some(tx)) => self.on_invite(now, tx, request, source),
            (Method::Cancel, Some(tx)) => self.on_cancel(now, tx, request),
            (Method::Bye, Some(tx)) => self.on_bye(now, tx, request),
            (Method::Options, Some(tx)) => {
                let mut response = request.response(200);
                self.add_capabilities(&mut response);
                self.add_to_tag(&mut response);
                self.respond(now, tx, response);
            }
            (Method::Info, Some(tx)) => self.on_info(now, tx, request),
            (Method::Update, Some(tx)) => self.on_update(now, tx, request),
            (Method::Refer, Some(tx)) => self.on_refer(now, tx, request),
            (Method::Notify, Some(tx)) if mwi::is_message_summary(&request) => {
                self.on_mwi_notify(now, tx, request)
            }
            (Method::Notify, Some(tx)) => self.on_notify(now, tx, request),
            (_, Some(tx)) => {
                let mut response = request.response(405);
                self.add_capabilities(&mut response);
                self.respond(now, tx, response);
            }
        }
    }

    // -- building and sending requests --------------------------------------------------------

    pub(crate) fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.gen::<u64>())
    }

    pub(crate) fn new_call_id(&mut self) -> String {
        format!(
            "{:016x}{:08x}@ringside",
            self.rng.gen::<u64>(),
            self.rng.gen::<u32>()
        )
    }

    pub(crate) fn new_via(&mut self) -> Via {
        let branch = transaction::new_branch(self.rng.gen());
        let mut via = Via::new(
            self.config.transport.as_via(),
            &self.public.ip().to_string(),
            Some(self.public.port()),
            &branch,
        );
        // Ask for rport (RFC 3581) so a NAT between us and the PBX is seen and answered through.
        via.set_param("rport", None);
        via
    }

    pub(crate) fn new_call_handle(&mut self) -> CallId {
        let id = CallId(self.next_call);
        self.next_call = self.next_call.wrapping_add(1).max(1);
        id
    }

    pub(crate) fn allocate_rtp_port(&mut self) -> u16 {
        let (low, high) = self.config.rtp_ports;
        let used: Vec<u16> = self.calls.values().map(|c| c.local_rtp_port).collect();
        for _ in 0..((high.saturating_sub(low) / 2).max(1)) {
            let port = self.next_rtp_port;
            self.next_rtp_port = if port.saturating_add(2) > high {
                low & !1
            } else {
                port + 2
            };
            if !used.contains(&port) {
                return port;
            }
        }
        low & !1
    }

    /// Our AOR: sip:user@domain.
    pub(crate) fn aor(&self) -> Uri {
        let (host, port) = split_host_port(&self.config.domain);
        Uri::sip(Some(&self.config.username), &host, port)
    }

    pub(crate) fn local_identity(&self) -> NameAddr {
        let mut na = NameAddr::new(self.aor());
        na.display_name = self.config.display_name.clone();
        na
    }

    pub(crate) fn contact_uri(&self) -> Uri {
        let mut uri = Uri::sip(
            Some(&self.config.username),
            &host_for_uri(self.public.ip()),
            Some(self.public.port()),
        );
        if self.config.transport == Transport::Tcp {
            uri.set_param("transport", Some("tcp".into()));
        }
        uri
    }

    pub(crate) fn contact_value(&self) -> String {
        format!("<{}>", self.contact_uri())
    }

    /// Turn what a person typed into a URI: an extension or number goes to our domain.
    pub(crate) fn target_uri(&self, target: &str) -> Result<Uri, CommandError> {
        let target = target.trim();
        let bad = || CommandError::BadTarget(target.to_string());
        if target.contains(':') {
            let uri = Uri::parse(target).map_err(|_| bad())?;
            if !uri.is_sip() {
                return Err(bad());
            }
            return Ok(uri);
        }
        if let Some((user, host)) = target.split_once('@') {
            return Uri::parse(&format!("sip:{user}@{host}")).map_err(|_| bad());
        }
        let cleaned: String = target
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
            .collect();
        let valid = !cleaned.is_empty()
            && cleaned
                .char_indices()
                .all(|(i, c)| c.is_ascii_digit() || c == '*' || c == '#' || (i == 0 && c == '+'))
            || (!cleaned.is_empty()
                && cleaned
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        if !valid {
            return Err(bad());
        }
        let (host, port) = split_host_port(&self.config.domain);
        let user = cleaned.replace('#', "%23");
        Ok(Uri::sip(Some(&user), &host, port))
    }

    /// Where a request for this URI goes: IP literals directly, names through the outbound hop.
    pub(crate) fn target_for(&self, uri: &Uri) -> Target {
        let transport = match uri.transport().as_str() {
            "tcp" => Transport::Tcp,
            "udp" => Transport::Udp,
            _ => self.config.transport,
        };
        match uri.host_unbracketed().parse::<IpAddr>() {
            Ok(ip) => Target {
                transport,
                addr: SocketAddr::new(ip, uri.port.unwrap_or(5060)),
            },
            Err(_) => self.config.outbound,
        }
    }

    /// A request outside any dialog, with the standard headers filled in.
    pub(crate) fn new_request(
        &mut self,
        method: Method,
        uri: Uri,
        to: NameAddr,
        call_id: &str,
        from_tag: &str,
        seq: u32,
    ) -> Request {
        let via = self.new_via();
        let from = self.local_identity().with_tag(from_tag);
        let mut request = Request::new(method.clone(), uri);
        let h = &mut request.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        h.push("From", from.to_string());
        h.push("To", to.to_string());
        h.push("Call-ID", call_id);
        h.push("CSeq", CSeq { seq, method }.to_string());
        if let Some(proxy) = &self.config.outbound_proxy {
            let mut route = proxy.clone();
            route.set_param("lr", None);
            h.push("Route", format!("<{route}>"));
        }
        h.push("User-Agent", self.config.user_agent.clone());
        request
    }

    /// Send a request in a client transaction and remember what it was for.
    pub(crate) fn send(
        &mut self,
        now: Instant,
        request: Request,
        purpose: Purpose,
    ) -> Option<TxId> {
        let target = self.next_hop_target(&request);
        self.send_to(now, request, target, purpose, Vec::new())
    }

    fn next_hop_target(&self, request: &Request) -> Target {
        // A Route (a configured outbound proxy, or a dialog's route set) decides the next hop;
        // without one, an IP-literal Request-URI is reached directly and a name goes through the
        // registrar, whose address the driver resolved.
        if let Some(route) = request
            .headers
            .get_list("Route")
            .first()
            .and_then(|r| NameAddr::parse(r).ok())
        {
            if self.config.outbound_proxy.is_some() && request.to_tag().is_none() {
                return self.config.outbound;
            }
            return self.target_for(&route.uri);
        }
        self.target_for(&request.uri)
    }

    pub(crate) fn send_to(
        &mut self,
        now: Instant,
        request: Request,
        target: Target,
        purpose: Purpose,
        answered_nonces: Vec<String>,
    ) -> Option<TxId> {
        match self.tx.send_request(now, request.clone(), target) {
            Ok(tx) => {
                self.pending.insert(
                    tx,
                    Pending {
                        request,
                        target,
                        purpose,
                        answered_nonces,
                    },
                );
                Some(tx)
            }
            Err(error) => {
                tracing::warn!(%error, "could not start a transaction");
                None
            }
        }
    }

    /// Send a message outside any transaction (ACK for a 2xx, 2xx retransmissions).
    pub(crate) fn send_raw(&mut self, target: Target, bytes: Vec<u8>) {
        self.out.push_back(Transmit { target, bytes });
    }

    /// Answer a 401/407 once per fresh challenge (RFC 3261 §22.2). Returns false when the
    /// challenge cannot be answered and the response should go to its handler as a failure.
    fn retry_with_auth(&mut self, now: Instant, pending: &Pending, response: &Response) -> bool {
        let header = if response.status == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        let challenges: Vec<Challenge> = response
            .headers
            .get_all(header)
            .filter_map(|v| Challenge::parse(v).ok())
            .collect();
        let Some(challenge) = auth::pick_strongest(&challenges).cloned() else {
            return false;
        };
        if pending.answered_nonces.contains(&challenge.nonce) && !challenge.stale {
            return false;
        }
        // Two different nonces answered and still challenged: the password is wrong.
        if pending.answered_nonces.len() >= 2 && !challenge.stale {
            return false;
        }
        let credentials = Credentials::new(
            self.config.auth_username.clone(),
            self.config.password.expose().to_string(),
        );
        let nc = self.nonce_counts.next_nc(&challenge);
        let cnonce = format!("{:016x}", self.rng.gen::<u64>());
        let mut request = pending.request.clone();
        let uri = request.uri.to_string();
        let value = match auth::authorization_value(
            &challenge,
            &credentials,
            request.method.as_str(),
            &uri,
            &request.body,
            &cnonce,
            nc,
        ) {
            Ok(v) => v,
            Err(error) => {
                tracing::warn!(%error, "cannot answer the digest challenge");
                return false;
            }
        };
        let auth_header = if response.status == 401 {
            "Authorization"
        } else {
            "Proxy-Authorization"
        };
        // Credentials for another realm may stay; ours for this realm are replaced.
        request.headers.remove(auth_header);
        request.headers.push(auth_header, value);
        // A new request: new branch, next CSeq (RFC 3261 §22.2).
        let via = self.new_via();
        request.headers.remove("Via");
        request.headers.push_front("Via", via.to_string());
        if let Some(cseq) = request.cseq() {
            let next = CSeq {
                seq: cseq.seq.saturating_add(1),
                method: cseq.method,
            };
            request.headers.set("CSeq", next.to_string());
        }
        let mut nonces = pending.answered_nonces.clone();
        nonces.push(challenge.nonce.clone());
        self.after_auth_retry(&pending.purpose, &request);
        let purpose = pending.purpose.clone();
        let target = pending.target;
        match self.send_to(now, request, target, purpose.clone(), nonces) {
            Some(new_tx) => {
                if let Purpose::Invite(call) = purpose {
                    if let Some(c) = self.calls.get_mut(&call) {
                        c.invite_tx = Some(new_tx);
                    }
                }
                true
            }
            None => false,
        }
    }

    /// Keep the state that mirrors a request in step with its authenticated copy.
    fn after_auth_retry(&mut self, purpose: &Purpose, request: &Request) {
        let seq = request.cseq().map(|c| c.seq).unwrap_or(1);
        match purpose {
            Purpose::Register | Purpose::Unregister => self.registration.cseq = seq,
            Purpose::Invite(call) => {
                if let Some(c) = self.calls.get_mut(call) {
                    c.invite = Some(request.clone());
                }
            }
            Purpose::ReInvite(call)
            | Purpose::Bye(call)
            | Purpose::Refer(call)
            | Purpose::Info(call)
            | Purpose::Notify(call) => {
                if let Some(d) = self.calls.get_mut(call).and_then(|c| c.dialog.as_mut()) {
                    d.local_seq = d.local_seq.max(seq);
                }
            }
            Purpose::Subscribe => self.mwi_after_auth_retry(request),
            Purpose::Cancel(_) | Purpose::Other => {}
        }
    }

    pub(crate) fn respond(&mut self, now: Instant, tx: TxId, response: Response) {
        if let Err(error) = self.tx.respond(now, tx, response) {
            tracing::debug!(%error, "response on a finished transaction");
        }
    }

    /// Responses we generate outside a dialog still need a To tag (RFC 3261 §8.2.6.2).
    pub(crate) fn add_to_tag(&mut self, response: &mut Response) {
        if response.status > 100 && response.to_tag().is_none() {
            if let Some(to) = response.to_header() {
                let tag = self.new_tag();
                response.headers.set("To", to.with_tag(&tag).to_string());
            }
        }
    }

    pub(crate) fn add_capabilities(&self, response: &mut Response) {
        response.headers.set(
            "Allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY",
        );
        response.headers.set(
            "Accept",
            "application/sdp, application/dtmf-relay, message/sipfrag, \
             application/simple-message-summary",
        );
        response.headers.set("Supported", "replaces");
        response
            .headers
            .set("Server", self.config.user_agent.clone());
    }

    pub(crate) fn emit(&mut self, event: UaEvent) {
        self.events.push_back(event);
    }

    pub(crate) fn jitter(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(self.rng.gen_range(low_ms..=high_ms.max(low_ms)))
    }
}

/// `host[:port]` (IPv6 in brackets) split into its parts.
pub(crate) fn split_host_port(text: &str) -> (String, Option<u16>) {
    if let Some(rest) = text.strip_prefix('[') {
        if let Some((host, after)) = rest.split_once(']') {
            let port = after.strip_prefix(':').and_then(|p| p.parse().ok());
            return (format!("[{host}]"), port);
        }
    }
    match text.rsplit_once(':') {
        Some((h, p)) if !h.contains(':') => match p.parse() {
            Ok(port) => (h.to_string(), Some(port)),
            Err(_) => (text.to_string(), None),
        },
        _ => (text.to_string(), None),
    }
}

pub(crate) fn host_for_uri(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// A host from config text as it goes in a URI (IPv6 literals need brackets).
pub fn host_for_uri_text(host: &str) -> String {
    if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}
