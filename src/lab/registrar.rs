//! The lab PBX's registrar (RFC 3261 §10.3) and digest authentication server side (RFC 7616,
//! RFC 8760), sans-IO.
//!
//! The lab's SIP driver hands every REGISTER from its server transactions to
//! [`Registrar::handle_register`] with the address it came from, and sends back the response it
//! gets. INVITEs (and other requests) from agents go through [`Registrar::authenticate`].
//! Bindings expire on their own: the driver calls [`Registrar::handle_timeout`] when
//! [`Registrar::poll_timeout`] says so. Time comes in as `now`; nothing here reads a clock.
//!
//! The order of checks follows RFC 3261 §10.3: authenticate (401, then 403 for wrong or unknown
//! credentials), authorise the address-of-record (404 when no lab user has that name, 403 when it
//! belongs to someone else), then the Contact headers (400, 423), then the bindings (500 for an
//! out-of-order CSeq). So a 404 is only ever given to an authenticated user: an anonymous
//! REGISTER always gets a challenge, and nobody learns which extensions exist without a
//! password. Require (420) is checked before, by the driver's `sip::validate`; a request that
//! is not a REGISTER gets 405.
//!
//! Nonces carry their own issue time and an HMAC-SHA-256 tag over it, so the registrar checks
//! them without remembering every nonce it handed out. A nonce is good for
//! [`NONCE_LIFETIME`]; a correct answer with an older (or foreign) nonce gets a new challenge
//! with `stale=true`, which clients retry without asking for the password again. For replay
//! protection the registrar remembers, per nonce used successfully, the highest nonce count
//! seen, and accepts only higher ones; an answer without qop (RFC 2069) may use a nonce once.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use core::net::SocketAddr;

use sha2::{Digest, Sha256};

use crate::sip::auth::{self, Algorithm, Authorization};
use crate::sip::msg::{Method, NameAddr, Request, Response, Scheme, SipHeaders, Uri};

/// Shortest registration granted; shorter requests get 423 with this as Min-Expires.
pub const MIN_EXPIRES: u32 = 60;
/// Longest registration granted; longer requests are shortened to it.
pub const MAX_EXPIRES: u32 = 3600;
/// Granted when the REGISTER names no expiry at all.
pub const DEFAULT_EXPIRES: u32 = 3600;
/// How long a nonce may be answered.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);
/// Devices one user may register at once: a desk phone, a softphone and a few spares.
pub const MAX_BINDINGS_PER_USER: usize = 10;

/// Nonce-count records beyond this trigger a sweep of the expired ones.
const NONCE_RECORDS_BEFORE_SWEEP: usize = 4096;
/// Nonce: 12 hex digits of issue time (ms), 8 of a counter, 32 of the HMAC tag.
const NONCE_STAMP_DIGITS: usize = 12;
const NONCE_SALT_DIGITS: usize = 8;
const NONCE_TAG_DIGITS: usize = 32;

/// An account of the lab PBX: an extension and its password.
#[derive(Clone, PartialEq, Eq)]
pub struct LabUser {
    /// The extension, also the digest username and the AOR's user part: "101".
    pub name: String,
    pub password: String,
    pub display_name: Option<String>,
}

impl fmt::Debug for LabUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LabUser")
            .field("name", &self.name)
            .field("password", &"<redacted>")
            .field("display_name", &self.display_name)
            .finish()
    }
}

/// One registered contact of a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub user: String,
    /// The Contact URI as the device registered it.
    pub contact: Uri,
    /// Where the REGISTER came from. Behind a NAT this is the only address that reaches the
    /// device, so the lab sends requests for this binding here whatever the contact says.
    pub source: SocketAddr,
    pub expires_at: Instant,
    pub call_id: String,
    pub cseq: u32,
    /// When the binding was added or last refreshed.
    pub updated_at: Instant,
}

/// What changed in the location service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistrarEvent {
    /// A new binding (refreshes of an existing one are not reported).
    Registered { user: String, contact: Uri },
    /// A binding is gone: removed by its device, or `expired` without a refresh.
    Unregistered {
        user: String,
        contact: Uri,
        expired: bool,
    },
}

/// The lab's registrar and location service. See the module documentation.
pub struct Registrar {
    realm: String,
    users: Vec<LabUser>,
    /// Per user, in the order the bindings were added.
    bindings: BTreeMap<String, Vec<Binding>>,
    /// Offered in this order, strongest first.
    algorithms: Vec<Algorithm>,
    secret: [u8; 32],
    /// The instant nonce times count from: the first `now` the registrar sees.
    epoch: Option<Instant>,
    nonces_issued: u32,
    tags_issued: u64,
    /// Nonce → (issue time in ms since `epoch`, highest nonce count accepted).
    nonce_counts: HashMap<String, (u64, u32)>,
    events: VecDeque<RegistrarEvent>,
}

impl fmt::Debug for Registrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registrar")
            .field("realm", &self.realm)
            .field("users", &self.users)
            .field("bindings", &self.bindings)
            .field("algorithms", &self.algorithms)
            .field("nonces_in_use", &self.nonce_counts.len())
            .finish_non_exhaustive()
    }
}

/// What the credentials of a request amount to.
enum Verdict {
    /// None for our realm, or for an algorithm we do not offer: challenge.
    Missing,
    /// The right password with a nonce that is too old, not ours, or already counted.
    Stale,
    /// Wrong password or unknown user.
    Forbidden,
    Malformed(&'static str),
    Valid(String),
}

/// One Contact of a REGISTER, read and checked.
struct ContactRequest {
    uri: Uri,
    expires: u32,
}

impl Registrar {
    /// A registrar for `realm` with these accounts. `secret_seed` keys the nonces: a registrar
    /// made with another seed does not accept them (they come back stale).
    pub fn new(realm: &str, users: Vec<LabUser>, secret_seed: u64) -> Self {
        let mut hasher = Sha256::new();
        hasher.update(b"ringside lab registrar nonce key");
        hasher.update(secret_seed.to_le_bytes());
        Registrar {
            realm: realm.to_owned(),
            users,
            bindings: BTreeMap::new(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            secret: hasher.finalize().into(),
            epoch: None,
            nonces_issued: 0,
            tags_issued: 0,
            nonce_counts: HashMap::new(),
            events: VecDeque::new(),
        }
    }

    /// Offer these digest algorithms, one challenge each, in this order (default: SHA-256 then
    /// MD5). Unsupported ones and duplicates are dropped; an empty list keeps the default.
    pub fn with_algorithms(mut self, algorithms: Vec<Algorithm>) -> Self {
        let mut offered: Vec<Algorithm> = Vec::new();
        for algorithm in algorithms {
            if algorithm.is_supported() && !offered.contains(&algorithm) {
                offered.push(algorithm);
            }
        }
        if !offered.is_empty() {
            self.algorithms = offered;
        }
        self
    }

    pub fn realm(&self) -> &str {
        &self.realm
    }

    /// The account with this extension.
    pub fn user(&self, name: &str) -> Option<&LabUser> {
        self.users.iter().find(|u| u.name == name)
    }

    /// Answer a REGISTER that arrived from `source`. See the module documentation for the
    /// order of checks; a 200 lists every binding of the AOR as `Contact: <uri>;expires=N`.
    /// Bindings added or removed here are reported through [`Registrar::poll_event`].
    pub fn handle_register(
        &mut self,
        now: Instant,
        request: &Request,
        source: SocketAddr,
    ) -> Response {
        if request.method != Method::Register {
            let mut response = self.respond(request, 405, None);
            response.headers.push("Allow", "REGISTER");
            return response;
        }
        let Some(to) = request.to_header() else {
            return self.respond(request, 400, Some("Bad To Header"));
        };
        let (Some(call_id), Some(cseq)) = (request.call_id(), request.cseq()) else {
            return self.respond(request, 400, Some("Missing Call-ID or CSeq"));
        };
        let user = match self.check_credentials(now, request, "Authorization") {
            Verdict::Valid(user) => user,
            verdict => return self.refuse(now, request, verdict, false),
        };
        let aor = to.uri.user_decoded().unwrap_or_default();
        if self.user(&aor).is_none() {
            return self.respond(request, 404, None);
        }
        if aor != user {
            return self.respond(request, 403, Some("Forbidden (not your address)"));
        }
        self.sweep_expired(now, &aor);

        let values = request.headers.get_list("Contact");
        if values.contains(&"*") {
            if values.len() != 1 || request.expires() != Some(0) {
                return self.respond(request, 400, Some("Contact * Needs Expires 0 Alone"));
            }
            return self.remove_all(now, request, &aor, call_id, cseq.seq);
        }
        let mut contacts = Vec::with_capacity(values.len());
        for value in &values {
            match read_contact(value, request.expires()) {
                Some(contact) => contacts.push(contact),
                None => return self.respond(request, 400, Some("Bad Contact")),
            }
        }
        if contacts
            .iter()
            .any(|c| c.expires > 0 && c.expires < MIN_EXPIRES)
        {
            let mut response = self.respond(request, 423, None);
            response
                .headers
                .push("Min-Expires", MIN_EXPIRES.to_string());
            return response;
        }

        // RFC 3261 §10.3 step 7: every update must be acceptable before any is made.
        let existing = self
            .bindings
            .get(&aor)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let out_of_order = contacts.iter().any(|c| {
            existing.iter().any(|b| {
                same_contact(&b.contact, &c.uri) && b.call_id == call_id && cseq.seq <= b.cseq
            })
        });
        if out_of_order {
            return self.respond(request, 500, Some("Out Of Order CSeq"));
        }
        let added = contacts
            .iter()
            .filter(|c| c.expires > 0 && !existing.iter().any(|b| same_contact(&b.contact, &c.uri)))
            .count();
        let removed = existing
            .iter()
            .filter(|b| {
                contacts
                    .iter()
                    .any(|c| c.expires == 0 && same_contact(&b.contact, &c.uri))
            })
            .count();
        if existing.len().saturating_sub(removed) + added > MAX_BINDINGS_PER_USER {
            return self.respond(request, 503, Some("Too Many Registered Contacts"));
        }

        for contact in contacts {
            self.apply(now, &aor, contact, source, call_id, cseq.seq);
        }
        self.ok_with_bindings(now, request, &aor)
    }

    /// The user's live bindings, newest first.
    pub fn lookup(&self, now: Instant, user: &str) -> Vec<Binding> {
        let mut live: Vec<Binding> = self
            .bindings
            .get(user)
            .into_iter()
            .flatten()
            .rev()
            .filter(|b| b.expires_at > now)
            .cloned()
            .collect();
        // Stable: equal update times keep the newest-added first.
        live.sort_by_key(|b| std::cmp::Reverse(b.updated_at));
        live
    }

    /// Remove every binding whose time ran out by `now` and say which.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<RegistrarEvent> {
        let mut gone = Vec::new();
        for (user, bindings) in &mut self.bindings {
            bindings.retain(|b| {
                let live = b.expires_at > now;
                if !live {
                    gone.push(RegistrarEvent::Unregistered {
                        user: user.clone(),
                        contact: b.contact.clone(),
                        expired: true,
                    });
                }
                live
            });
        }
        self.bindings.retain(|_, bindings| !bindings.is_empty());
        self.sweep_nonce_counts(now);
        gone
    }

    /// When the next binding expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.bindings.values().flatten().map(|b| b.expires_at).min()
    }

    /// The next change made by [`Registrar::handle_register`].
    pub fn poll_event(&mut self) -> Option<RegistrarEvent> {
        self.events.pop_front()
    }

    /// Check the digest credentials of a request other than REGISTER (an agent's INVITE,
    /// REFER ...). Ok with the authenticated user name, or the response to send: a challenge
    /// (407 with Proxy-Authenticate when `proxy`, else 401 with WWW-Authenticate), 403 for a
    /// wrong password or an unknown user, 400 for a malformed header. Never for ACK or CANCEL,
    /// which cannot be challenged (RFC 3261 §22.1).
    pub fn authenticate(
        &mut self,
        now: Instant,
        request: &Request,
        proxy: bool,
    ) -> Result<String, Response> {
        let header = if proxy {
            "Proxy-Authorization"
        } else {
            "Authorization"
        };
        match self.check_credentials(now, request, header) {
            Verdict::Valid(user) => Ok(user),
            verdict => Err(self.refuse(now, request, verdict, proxy)),
        }
    }

    // -- credentials --------------------------------------------------------------------------

    fn check_credentials(&mut self, now: Instant, request: &Request, header: &str) -> Verdict {
        let mut ours = None;
        let mut malformed = false;
        for value in request.headers.get_all(header) {
            match Authorization::parse(value) {
                // Credentials for another realm are for another hop (RFC 3261 §22.4).
                Ok(parsed) if parsed.realm == self.realm => {
                    ours = Some(parsed);
                    break;
                }
                Ok(_) => {}
                Err(_) => malformed = true,
            }
        }
        let Some(credentials) = ours else {
            return if malformed {
                Verdict::Malformed("Malformed Authorization Header")
            } else {
                Verdict::Missing
            };
        };
        let Some(user) = self.users.iter().find(|u| u.name == credentials.username) else {
            return Verdict::Forbidden;
        };
        if !self.algorithms.contains(&credentials.algorithm) {
            return Verdict::Missing;
        }
        if !digest_uri_matches(&credentials.uri, &request.uri) {
            return Verdict::Malformed("Digest URI Does Not Match Request-URI");
        }
        if !auth::verify(
            &credentials,
            request.method.as_str(),
            &user.password,
            &request.body,
        ) {
            return Verdict::Forbidden;
        }
        let username = user.name.clone();
        let Some(issued) = self.nonce_issue_time(now, &credentials.nonce) else {
            return Verdict::Stale;
        };
        // Without qop there is no count: such a nonce is good for one request.
        let count = match credentials.qop {
            Some(_) => credentials.nc.unwrap_or(0),
            None => 1,
        };
        if self.nonce_counts.len() >= NONCE_RECORDS_BEFORE_SWEEP {
            self.sweep_nonce_counts(now);
        }
        let record = self
            .nonce_counts
            .entry(credentials.nonce.clone())
            .or_insert((issued, 0));
        if count <= record.1 {
            return Verdict::Stale;
        }
        record.1 = count;
        Verdict::Valid(username)
    }

    fn refuse(
        &mut self,
        now: Instant,
        request: &Request,
        verdict: Verdict,
        proxy: bool,
    ) -> Response {
        match verdict {
            Verdict::Missing => self.challenge(now, request, proxy, false),
            Verdict::Stale => self.challenge(now, request, proxy, true),
            Verdict::Forbidden => self.respond(request, 403, None),
            Verdict::Malformed(reason) => self.respond(request, 400, Some(reason)),
            // Not a refusal; answered as the 500 it would be if a caller ever got here.
            Verdict::Valid(_) => self.respond(request, 500, None),
        }
    }

    fn challenge(&mut self, now: Instant, request: &Request, proxy: bool, stale: bool) -> Response {
        let (status, header) = if proxy {
            (407, "Proxy-Authenticate")
        } else {
            (401, "WWW-Authenticate")
        };
        let nonce = self.issue_nonce(now);
        let mut response = self.respond(request, status, None);
        for algorithm in &self.algorithms {
            response.headers.push(
                header,
                auth::challenge_value(&self.realm, &nonce, algorithm, true, stale, None),
            );
        }
        response
    }

    // -- nonces -------------------------------------------------------------------------------

    /// Milliseconds since the registrar's epoch (set by the first call).
    fn stamp(&mut self, now: Instant) -> u64 {
        let epoch = *self.epoch.get_or_insert(now);
        millis(now.saturating_duration_since(epoch))
    }

    fn issue_nonce(&mut self, now: Instant) -> String {
        let stamp = self.stamp(now) & ((1 << (4 * NONCE_STAMP_DIGITS)) - 1);
        let salt = self.nonces_issued;
        self.nonces_issued = self.nonces_issued.wrapping_add(1);
        let body = format!("{stamp:012x}{salt:08x}");
        let tag = self.hmac_hex(body.as_bytes(), NONCE_TAG_DIGITS / 2);
        body + &tag
    }

    /// When a nonce we issued was made (ms since the epoch), if it is ours and still fresh.
    fn nonce_issue_time(&self, now: Instant, nonce: &str) -> Option<u64> {
        let epoch = self.epoch?;
        if nonce.len() != NONCE_STAMP_DIGITS + NONCE_SALT_DIGITS + NONCE_TAG_DIGITS
            || !nonce.bytes().all(|b| b.is_ascii_hexdigit())
        {
            return None;
        }
        let (body, tag) = nonce.split_at(NONCE_STAMP_DIGITS + NONCE_SALT_DIGITS);
        let expected = self.hmac_hex(body.as_bytes(), NONCE_TAG_DIGITS / 2);
        if !equal_constant_time(expected.as_bytes(), tag.as_bytes()) {
            return None;
        }
        let issued = u64::from_str_radix(body.get(..NONCE_STAMP_DIGITS)?, 16).ok()?;
        let current = millis(now.saturating_duration_since(epoch));
        let age = current.checked_sub(issued)?;
        (age <= millis(NONCE_LIFETIME)).then_some(issued)
    }

    fn sweep_nonce_counts(&mut self, now: Instant) {
        let Some(epoch) = self.epoch else {
            return;
        };
        let current = millis(now.saturating_duration_since(epoch));
        let lifetime = millis(NONCE_LIFETIME);
        self.nonce_counts
            .retain(|_, (issued, _)| current.saturating_sub(*issued) <= lifetime);
    }

    /// HMAC-SHA-256 (RFC 2104) of `message` under the registrar's secret, the first `bytes`
    /// bytes in lower-case hex.
    fn hmac_hex(&self, message: &[u8], bytes: usize) -> String {
        const BLOCK: usize = 64;
        let mut inner_key = [0x36u8; BLOCK];
        let mut outer_key = [0x5cu8; BLOCK];
        for (index, byte) in self.secret.iter().enumerate() {
            inner_key[index] ^= byte;
            outer_key[index] ^= byte;
        }
        let inner = Sha256::new()
            .chain_update(inner_key)
            .chain_update(message)
            .finalize();
        let outer = Sha256::new()
            .chain_update(outer_key)
            .chain_update(inner)
            .finalize();
        outer
            .iter()
            .take(bytes)
            .map(|byte| format!("{byte:02x}"))
            .collect()
    }

    // -- bindings -----------------------------------------------------------------------------

    fn apply(
        &mut self,
        now: Instant,
        user: &str,
        contact: ContactRequest,
        source: SocketAddr,
        call_id: &str,
        cseq: u32,
    ) {
        let bindings = self.bindings.entry(user.to_owned()).or_default();
        let position = bindings
            .iter()
            .position(|b| same_contact(&b.contact, &contact.uri));
        if contact.expires == 0 {
            if let Some(index) = position {
                let removed = bindings.remove(index);
                self.events.push_back(RegistrarEvent::Unregistered {
                    user: user.to_owned(),
                    contact: removed.contact,
                    expired: false,
                });
            }
            if bindings.is_empty() {
                self.bindings.remove(user);
            }
            return;
        }
        let expires_at = now
            .checked_add(Duration::from_secs(u64::from(contact.expires)))
            .unwrap_or(now);
        match position {
            Some(index) => {
                let binding = &mut bindings[index];
                binding.contact = contact.uri;
                binding.source = source;
                binding.expires_at = expires_at;
                binding.call_id = call_id.to_owned();
                binding.cseq = cseq;
                binding.updated_at = now;
            }
            None => {
                bindings.push(Binding {
                    user: user.to_owned(),
                    contact: contact.uri.clone(),
                    source,
                    expires_at,
                    call_id: call_id.to_owned(),
                    cseq,
                    updated_at: now,
                });
                self.events.push_back(RegistrarEvent::Registered {
                    user: user.to_owned(),
                    contact: contact.uri,
                });
            }
        }
    }

    /// `Contact: *` with `Expires: 0` (RFC 3261 §10.3 step 6-7).
    fn remove_all(
        &mut self,
        now: Instant,
        request: &Request,
        user: &str,
        call_id: &str,
        cseq: u32,
    ) -> Response {
        let bindings = self
            .bindings
            .get(user)
            .map(Vec::as_slice)
            .unwrap_or_default();
        if bindings
            .iter()
            .any(|b| b.call_id == call_id && cseq <= b.cseq)
        {
            return self.respond(request, 500, Some("Out Of Order CSeq"));
        }
        for binding in self.bindings.remove(user).unwrap_or_default() {
            self.events.push_back(RegistrarEvent::Unregistered {
                user: user.to_owned(),
                contact: binding.contact,
                expired: false,
            });
        }
        self.ok_with_bindings(now, request, user)
    }

    /// Expired bindings of one user, removed before its REGISTER is applied so that the 200
    /// lists only live ones; reported like the timer would.
    fn sweep_expired(&mut self, now: Instant, user: &str) {
        let Some(bindings) = self.bindings.get_mut(user) else {
            return;
        };
        let events = &mut self.events;
        bindings.retain(|b| {
            let live = b.expires_at > now;
            if !live {
                events.push_back(RegistrarEvent::Unregistered {
                    user: user.to_owned(),
                    contact: b.contact.clone(),
                    expired: true,
                });
            }
            live
        });
        if bindings.is_empty() {
            self.bindings.remove(user);
        }
    }

    fn ok_with_bindings(&mut self, now: Instant, request: &Request, user: &str) -> Response {
        let mut response = self.respond(request, 200, None);
        for binding in self.lookup(now, user) {
            let remaining = binding.expires_at.saturating_duration_since(now);
            // Rounded up: a binding granted 600 s ago this instant still shows 600.
            let secs = remaining.as_secs() + u64::from(remaining.subsec_nanos() > 0);
            response
                .headers
                .push("Contact", format!("<{}>;expires={secs}", binding.contact));
        }
        response
    }

    // -- responses ----------------------------------------------------------------------------

    /// A response with the request's Via, From, To, Call-ID and CSeq, and a To tag of ours
    /// (RFC 3261 §8.2.6.2).
    fn respond(&mut self, request: &Request, status: u16, reason: Option<&str>) -> Response {
        let mut response = match reason {
            Some(reason) => request.response_with_reason(status, reason),
            None => request.response(status),
        };
        if response.to_tag().is_none() {
            if let Some(to) = response.to_header() {
                let tag = self.new_tag();
                response.headers.set("To", to.with_tag(&tag).to_string());
            }
        }
        response
    }

    fn new_tag(&mut self) -> String {
        let count = self.tags_issued;
        self.tags_issued = self.tags_issued.wrapping_add(1);
        let mut message = b"to-tag".to_vec();
        message.extend_from_slice(&count.to_le_bytes());
        self.hmac_hex(&message, 8)
    }
}

/// A Contact value with its expiry: the `expires` parameter, else the Expires header, else the
/// default, capped at [`MAX_EXPIRES`]. `None` when it is not a `sip:`/`sips:` name-addr.
fn read_contact(value: &str, expires_header: Option<u32>) -> Option<ContactRequest> {
    let contact = NameAddr::parse(value).ok()?;
    if !matches!(contact.uri.scheme, Scheme::Sip | Scheme::Sips) || contact.uri.host.is_empty() {
        return None;
    }
    // An expires parameter that is not a number is ignored, as RFC 3261 §10.3 step 6 does with
    // a missing one.
    let requested = contact
        .param("expires")
        .and_then(|p| p.value.as_deref())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| expires_header.map(u64::from))
        .unwrap_or(u64::from(DEFAULT_EXPIRES));
    let expires = u32::try_from(requested.min(u64::from(MAX_EXPIRES))).unwrap_or(MAX_EXPIRES);
    Some(ContactRequest {
        uri: contact.uri,
        expires,
    })
}

/// RFC 3261 §19.1.4 URI equality, as far as bindings need it: scheme, user, host (any case),
/// port, and the parameters that change where a request goes.
fn same_contact(a: &Uri, b: &Uri) -> bool {
    const SIGNIFICANT: [&str; 5] = ["transport", "user", "ttl", "method", "maddr"];
    let param = |uri: &Uri, name: &str| {
        uri.param(name)
            .map(|p| p.value.as_deref().unwrap_or_default().to_ascii_lowercase())
    };
    a.scheme == b.scheme
        && a.user == b.user
        && a.host.eq_ignore_ascii_case(&b.host)
        && a.port == b.port
        && SIGNIFICANT
            .iter()
            .all(|name| param(a, name) == param(b, name))
}

/// The digest `uri` must name the Request-URI (RFC 7616 §3.4.6), textually or once parsed.
fn digest_uri_matches(digest_uri: &str, request_uri: &Uri) -> bool {
    digest_uri == request_uri.to_string()
        || Uri::parse(digest_uri).is_ok_and(|parsed| parsed == *request_uri)
}

fn equal_constant_time(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .fold(0u8, |acc, (x, y)| acc | (x ^ y.to_ascii_lowercase()))
            == 0
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::sip::auth::{Challenge, Credentials};
    use crate::sip::msg::{self, CSeq, Message};
    use crate::sip::transaction::Transport;
    use crate::sip::transaction::{Target, Timers, TransactionLayer, TxEvent};
    use crate::sip::ua::{Command, UaConfig, UaEvent, UserAgent};

    const REALM: &str = "ringside-lab";

    fn lab_addr() -> SocketAddr {
        SocketAddr::from(([192, 0, 2, 10], 5060))
    }

    fn phone_addr() -> SocketAddr {
        SocketAddr::from(([10, 0, 0, 5], 5062))
    }

    fn nat_addr() -> SocketAddr {
        SocketAddr::from(([203, 0, 113, 7], 40000))
    }

    fn lab_users() -> Vec<LabUser> {
        ["101", "102", "103"]
            .into_iter()
            .map(|name| LabUser {
                name: name.into(),
                password: format!("lab{name}"),
                display_name: Some(format!("Agent {name}")),
            })
            .collect()
    }

    fn registrar() -> Registrar {
        Registrar::new(REALM, lab_users(), 42)
    }

    /// ringside's own user agent and the lab's half: a transaction layer whose server
    /// transactions feed the registrar, as the lab driver does. Datagrams move without loss.
    struct Harness {
        now: Instant,
        ua: UserAgent,
        tx: TransactionLayer,
        registrar: Registrar,
        /// The source address the lab sees for the phone (its NAT mapping).
        seen_as: SocketAddr,
        /// Added to the registrar's clock only, to age its nonces while the phone waits.
        skew: Duration,
        /// Every request the lab's transactions handed up, and every response it sent.
        requests: Vec<Request>,
        responses: Vec<Response>,
        /// Who `authenticate` accepted for each INVITE.
        callers: Vec<String>,
        ua_events: Vec<UaEvent>,
        registrar_events: Vec<RegistrarEvent>,
    }

    impl Harness {
        fn new(user: &str, password: &str, expires: u32, registrar: Registrar) -> Self {
            let mut config = UaConfig::simple(user, phone_addr(), lab_addr());
            config.password = Secret::new(password);
            config.expires = expires;
            Harness {
                now: Instant::now(),
                ua: UserAgent::new(config, 7),
                tx: TransactionLayer::new(Timers::default()),
                registrar,
                seen_as: phone_addr(),
                skew: Duration::ZERO,
                requests: Vec::new(),
                responses: Vec::new(),
                callers: Vec::new(),
                ua_events: Vec::new(),
                registrar_events: Vec::new(),
            }
        }

        fn lab_now(&self) -> Instant {
            self.now + self.skew
        }

        /// Deliver what the phone sent to the lab; returns how many datagrams moved.
        fn phone_to_lab(&mut self) -> usize {
            let mut moved = 0;
            while let Some(transmit) = self.ua.poll_transmit() {
                assert_eq!(transmit.target.addr, lab_addr());
                moved += 1;
                let message = msg::parse(&transmit.bytes).expect("the phone sends valid SIP");
                let source = Target {
                    transport: Transport::Udp,
                    addr: self.seen_as,
                };
                self.tx.handle_message(self.now, message, source);
                self.serve();
            }
            moved
        }

        /// The lab's transaction user: REGISTER to the registrar, INVITE through
        /// `authenticate` and then "486 Busy Here".
        fn serve(&mut self) {
            while let Some(event) = self.tx.poll_event() {
                let TxEvent::Request {
                    tx: Some(id),
                    request,
                    source,
                } = event
                else {
                    continue;
                };
                let lab_now = self.lab_now();
                let response = match request.method {
                    Method::Register => {
                        self.registrar
                            .handle_register(lab_now, &request, source.addr)
                    }
                    Method::Invite => match self.registrar.authenticate(lab_now, &request, true) {
                        Ok(user) => {
                            self.callers.push(user);
                            let mut busy = request.response(486);
                            let to = busy.to_header().expect("To").with_tag("lab1");
                            busy.headers.set("To", to.to_string());
                            busy
                        }
                        Err(refusal) => refusal,
                    },
                    _ => request.response(405),
                };
                self.requests.push(request);
                self.responses.push(response.clone());
                self.tx
                    .respond(self.now, id, response)
                    .expect("the server transaction is waiting for its answer");
            }
            while let Some(event) = self.registrar.poll_event() {
                self.registrar_events.push(event);
            }
        }

        fn lab_to_phone(&mut self) -> usize {
            let mut moved = 0;
            while let Some(transmit) = self.tx.poll_transmit() {
                assert_eq!(
                    transmit.target.addr, self.seen_as,
                    "answers go where requests came from"
                );
                moved += 1;
                let source = Target {
                    transport: Transport::Udp,
                    addr: lab_addr(),
                };
                self.ua.handle_datagram(self.now, source, &transmit.bytes);
            }
            while let Some(event) = self.ua.poll_event() {
                self.ua_events.push(event);
            }
            moved
        }

        /// Move datagrams both ways until nothing is in flight.
        fn pump(&mut self) {
            for _ in 0..100 {
                if self.phone_to_lab() + self.lab_to_phone() == 0 {
                    return;
                }
            }
            panic!("the phone and the lab never went quiet");
        }

        fn command(&mut self, command: Command) {
            self.ua
                .command(self.now, command)
                .expect("the phone takes the command");
            self.pump();
        }

        /// Let `by` pass, firing every timer (phone, transactions, registrar) at its instant.
        fn advance(&mut self, by: Duration) {
            let until = self.now + by;
            for _ in 0..10_000 {
                let registrar_due = self
                    .registrar
                    .poll_timeout()
                    .and_then(|at| at.checked_sub(self.skew));
                let next = [
                    self.ua.poll_timeout(),
                    self.tx.poll_timeout(),
                    registrar_due,
                ]
                .into_iter()
                .flatten()
                .min();
                match next {
                    Some(at) if at <= until => {
                        self.now = self.now.max(at);
                        self.ua.handle_timeout(self.now);
                        self.tx.handle_timeout(self.now);
                        let lab_now = self.lab_now();
                        let expired = self.registrar.handle_timeout(lab_now);
                        self.registrar_events.extend(expired);
                        self.pump();
                    }
                    _ => {
                        self.now = until;
                        return;
                    }
                }
            }
            panic!("timers kept firing without time moving");
        }

        fn statuses(&self) -> Vec<u16> {
            self.responses.iter().map(|r| r.status).collect()
        }

        fn registered(&self) -> Vec<u32> {
            self.ua_events
                .iter()
                .filter_map(|e| match e {
                    UaEvent::Registered { expires, .. } => Some(*expires),
                    _ => None,
                })
                .collect()
        }

        fn bindings(&self) -> Vec<Binding> {
            self.registrar.lookup(self.lab_now(), "101")
        }
    }

    fn challenges(response: &Response, header: &str) -> Vec<Challenge> {
        response
            .headers
            .get_all(header)
            .map(|v| Challenge::parse(v).expect("a well-formed challenge"))
            .collect()
    }

    fn authorization(request: &Request, header: &str) -> Authorization {
        Authorization::parse(request.header(header).expect("credentials")).expect("parses")
    }

    fn contacts_of(response: &Response) -> Vec<String> {
        response
            .headers
            .get_list("Contact")
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    fn uri(text: &str) -> Uri {
        Uri::parse(text).expect("a valid URI")
    }

    #[test]
    fn the_phone_registers_answering_the_sha256_challenge() {
        let mut lab = Harness::new("101", "lab101", 600, registrar());
        lab.command(Command::Register);
        assert_eq!(lab.statuses(), [401, 200]);

        // Two challenges, SHA-256 first, one nonce, qop=auth, nothing stale.
        let offered = challenges(&lab.responses[0], "WWW-Authenticate");
        assert_eq!(
            offered
                .iter()
                .map(|c| c.algorithm.clone())
                .collect::<Vec<_>>(),
            [Algorithm::Sha256, Algorithm::Md5]
        );
        assert!(offered.iter().all(|c| c.realm == REALM
            && c.nonce == offered[0].nonce
            && c.qop == [auth::Qop::Auth]
            && !c.stale));
        assert_eq!(offered[0].nonce.len(), 52);
        assert!(lab.requests[0].header("Authorization").is_none());
        let answer = authorization(&lab.requests[1], "Authorization");
        assert_eq!(answer.algorithm, Algorithm::Sha256);
        assert_eq!(answer.nc, Some(1));

        // The 200 lists the binding with the granted time, and both answers carry a To tag.
        let ok = &lab.responses[1];
        assert_eq!(contacts_of(ok), ["<sip:101@10.0.0.5:5062>;expires=600"]);
        assert!(lab
            .responses
            .iter()
            .all(|r| r.to_tag().is_some_and(|t| t.len() == 16)));
        assert_eq!(lab.registered(), [600]);
        assert!(lab.ua.is_registered());

        let bindings = lab.bindings();
        assert_eq!(bindings.len(), 1);
        let binding = &bindings[0];
        assert_eq!(binding.user, "101");
        assert_eq!(binding.contact, uri("sip:101@10.0.0.5:5062"));
        assert_eq!(binding.source, phone_addr());
        assert_eq!(binding.expires_at, lab.now + Duration::from_secs(600));
        assert_eq!(Some(binding.call_id.as_str()), lab.requests[1].call_id());
        assert_eq!(Some(binding.cseq), lab.requests[1].cseq().map(|c| c.seq));
        assert_eq!(
            lab.registrar_events,
            [RegistrarEvent::Registered {
                user: "101".into(),
                contact: uri("sip:101@10.0.0.5:5062"),
            }]
        );
        assert_eq!(lab.registrar.poll_timeout(), Some(binding.expires_at));
    }

    #[test]
    fn the_phone_registers_with_md5_when_only_md5_is_offered() {
        let md5_only = registrar().with_algorithms(vec![
            Algorithm::Md5,
            Algorithm::Unsupported("SHA-1".into()),
            Algorithm::Md5,
        ]);
        let mut lab = Harness::new("102", "lab102", 600, md5_only);
        lab.command(Command::Register);
        assert_eq!(lab.statuses(), [401, 200]);
        let offered = challenges(&lab.responses[0], "WWW-Authenticate");
        assert_eq!(offered.len(), 1);
        assert_eq!(offered[0].algorithm, Algorithm::Md5);
        assert_eq!(
            authorization(&lab.requests[1], "Authorization").algorithm,
            Algorithm::Md5
        );
        assert_eq!(lab.registrar.lookup(lab.now, "102").len(), 1);
    }

    #[test]
    fn a_wrong_password_gets_403_and_the_phone_says_why() {
        let mut lab = Harness::new("101", "not-the-password", 600, registrar());
        lab.command(Command::Register);
        assert_eq!(lab.statuses(), [401, 403]);
        assert!(lab.bindings().is_empty());
        let failure = lab.ua_events.iter().find_map(|e| match e {
            UaEvent::RegistrationFailed { code, message, .. } => Some((*code, message.clone())),
            _ => None,
        });
        let (code, message) = failure.expect("the phone reports the failure");
        assert_eq!(code, Some(403));
        assert!(
            message.starts_with("the PBX rejected the password for user 101"),
            "{message}"
        );

        // An extension that does not exist is refused the same way, never with 404.
        let mut stranger = Harness::new("999", "lab999", 600, registrar());
        stranger.command(Command::Register);
        assert_eq!(stranger.statuses(), [401, 403]);
        assert_eq!(stranger.responses[1].reason, lab.responses[1].reason);
    }

    #[test]
    fn a_refresh_keeps_the_binding_and_moves_its_expiry() {
        let mut lab = Harness::new("101", "lab101", 600, registrar());
        lab.command(Command::Register);
        let first = lab.bindings();
        // The phone refreshes 90 s before the end (600 / 10 + 30) with a new challenge.
        lab.advance(Duration::from_secs(515));
        assert_eq!(lab.statuses(), [401, 200, 401, 200]);
        assert_eq!(lab.registered(), [600, 600]);
        let refreshed = lab.bindings();
        assert_eq!(refreshed.len(), 1);
        assert_eq!(refreshed[0].contact, first[0].contact);
        assert_eq!(refreshed[0].call_id, first[0].call_id);
        assert_eq!(refreshed[0].cseq, first[0].cseq + 2);
        let refresh_time = first[0].updated_at + Duration::from_secs(510);
        assert_eq!(refreshed[0].updated_at, refresh_time);
        assert_eq!(
            refreshed[0].expires_at,
            refresh_time + Duration::from_secs(600)
        );
        // A refresh is not a new registration, and nothing expired.
        assert_eq!(lab.registrar_events.len(), 1);
        lab.advance(Duration::from_secs(600));
        assert_eq!(lab.bindings().len(), 1, "refreshed again in time");
    }

    #[test]
    fn unregistering_removes_the_binding() {
        let mut lab = Harness::new("101", "lab101", 600, registrar());
        lab.command(Command::Register);
        lab.command(Command::Unregister);
        assert_eq!(lab.statuses(), [401, 200, 401, 200]);
        assert_eq!(lab.requests[3].expires(), Some(0));
        assert!(contacts_of(&lab.responses[3]).is_empty());
        assert!(lab.bindings().is_empty());
        assert_eq!(lab.registrar.poll_timeout(), None);
        assert_eq!(
            lab.registrar_events[1],
            RegistrarEvent::Unregistered {
                user: "101".into(),
                contact: uri("sip:101@10.0.0.5:5062"),
                expired: false,
            }
        );
        assert!(lab.ua_events.contains(&UaEvent::Unregistered));
    }

    #[test]
    fn a_binding_expires_after_the_granted_time() {
        let mut lab = Harness::new("101", "lab101", 600, registrar());
        lab.command(Command::Register);
        let registered_at = lab.now;
        // The phone goes away: only the registrar's clock runs from here.
        let expiry = lab.registrar.poll_timeout().expect("a binding to expire");
        assert_eq!(expiry, registered_at + Duration::from_secs(600));
        let just_before = expiry - Duration::from_millis(1);
        assert!(lab.registrar.handle_timeout(just_before).is_empty());
        assert_eq!(lab.registrar.lookup(just_before, "101").len(), 1);
        assert!(
            lab.registrar.lookup(expiry, "101").is_empty(),
            "not live at its expiry"
        );
        assert_eq!(
            lab.registrar.handle_timeout(expiry),
            [RegistrarEvent::Unregistered {
                user: "101".into(),
                contact: uri("sip:101@10.0.0.5:5062"),
                expired: true,
            }]
        );
        assert_eq!(lab.registrar.poll_timeout(), None);
        assert!(lab
            .registrar
            .handle_timeout(expiry + Duration::from_secs(60))
            .is_empty());
    }

    #[test]
    fn an_expired_nonce_with_the_right_password_is_answered_stale_and_retried() {
        let mut lab = Harness::new("101", "lab101", 600, registrar());
        lab.ua
            .command(lab.now, Command::Register)
            .expect("register");
        assert_eq!(lab.phone_to_lab(), 1);
        assert_eq!(lab.lab_to_phone(), 1);
        // The phone answered the challenge, but its answer reaches a registrar for which
        // the nonce is 5 min 1 s old.
        lab.skew = NONCE_LIFETIME + Duration::from_secs(1);
        lab.pump();
        assert_eq!(lab.statuses(), [401, 401, 200]);
        let first = challenges(&lab.responses[0], "WWW-Authenticate");
        let stale = challenges(&lab.responses[1], "WWW-Authenticate");
        assert!(!first[0].stale);
        assert!(
            stale.iter().all(|c| c.stale),
            "stale=true on every algorithm"
        );
        assert_ne!(stale[0].nonce, first[0].nonce);
        assert_eq!(
            authorization(&lab.requests[1], "Authorization").nonce,
            first[0].nonce
        );
        assert_eq!(
            authorization(&lab.requests[2], "Authorization").nonce,
            stale[0].nonce
        );
        assert!(lab.ua.is_registered());
    }

    #[test]
    fn too_short_an_interval_gets_423_and_the_phone_asks_for_the_minimum() {
        let mut lab = Harness::new("101", "lab101", 30, registrar());
        lab.command(Command::Register);
        assert_eq!(lab.statuses(), [401, 423, 401, 200]);
        assert_eq!(lab.responses[1].header("Min-Expires"), Some("60"));
        assert_eq!(lab.requests[2].expires(), Some(60));
        assert_eq!(
            contacts_of(&lab.responses[3]),
            ["<sip:101@10.0.0.5:5062>;expires=60"]
        );
        assert_eq!(lab.registered(), [60]);
        // Longer than the maximum is shortened, not refused.
        let mut long = Harness::new("102", "lab102", 86_400, registrar());
        long.command(Command::Register);
        assert_eq!(long.statuses(), [401, 200]);
        assert_eq!(long.registered(), [MAX_EXPIRES]);
    }

    #[test]
    fn behind_a_nat_the_binding_keeps_the_address_the_register_came_from() {
        let mut lab = Harness::new("101", "lab101", 600, registrar());
        lab.seen_as = nat_addr();
        lab.command(Command::Register);
        // The 200's Via shows the phone where it is seen; it replaces its private contact.
        assert_eq!(lab.statuses(), [401, 200, 401, 200]);
        assert_eq!(
            lab.requests[3].headers.get_list("Contact"),
            [
                "<sip:101@10.0.0.5:5062>;expires=0",
                "<sip:101@203.0.113.7:40000>"
            ]
        );
        let bindings = lab.bindings();
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].contact, uri("sip:101@203.0.113.7:40000"));
        assert_eq!(bindings[0].source, nat_addr());
        assert_eq!(
            lab.registrar_events,
            [
                RegistrarEvent::Registered {
                    user: "101".into(),
                    contact: uri("sip:101@10.0.0.5:5062"),
                },
                RegistrarEvent::Unregistered {
                    user: "101".into(),
                    contact: uri("sip:101@10.0.0.5:5062"),
                    expired: false,
                },
                RegistrarEvent::Registered {
                    user: "101".into(),
                    contact: uri("sip:101@203.0.113.7:40000"),
                },
            ]
        );

        // A phone that does not correct its contact still gets its calls at the source.
        let mut registrar = registrar();
        let mut phone = Phone::new("102", "lab102");
        let now = Instant::now();
        let ok = phone.register(
            &mut registrar,
            now,
            nat_addr(),
            &["<sip:102@192.168.1.20:5060>"],
            None,
        );
        assert_eq!(ok.status, 200);
        let binding = &registrar.lookup(now, "102")[0];
        assert_eq!(binding.contact, uri("sip:102@192.168.1.20:5060"));
        assert_eq!(binding.source, nat_addr());
        // The NAT gave the phone a new port: the refresh moves the binding there.
        let rebound = SocketAddr::from(([203, 0, 113, 7], 40002));
        let later = now + Duration::from_secs(30);
        let ok = phone.register(
            &mut registrar,
            later,
            rebound,
            &["<sip:102@192.168.1.20:5060>"],
            None,
        );
        assert_eq!(ok.status, 200);
        let bindings = registrar.lookup(later, "102");
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].source, rebound);
        assert_eq!(
            bindings[0].expires_at,
            later + Duration::from_secs(u64::from(DEFAULT_EXPIRES))
        );
    }

    #[test]
    fn an_invite_is_challenged_with_407_and_its_caller_named() {
        let mut lab = Harness::new("101", "lab101", 600, registrar());
        lab.command(Command::Dial {
            target: "102".into(),
        });
        assert_eq!(lab.statuses(), [407, 486]);
        let offered = challenges(&lab.responses[0], "Proxy-Authenticate");
        assert_eq!(offered.len(), 2);
        assert!(lab.responses[0].header("WWW-Authenticate").is_none());
        let answer = authorization(&lab.requests[1], "Proxy-Authorization");
        assert_eq!(
            (answer.username.as_str(), answer.algorithm),
            ("101", Algorithm::Sha256)
        );
        assert_eq!(answer.uri, "sip:102@192.0.2.10");
        assert_eq!(lab.callers, ["101"]);
        assert!(lab.ua_events.iter().any(|e| matches!(
            e,
            UaEvent::CallEnded {
                code: Some(486),
                ..
            }
        )));

        let mut intruder = Harness::new("101", "guess", 600, registrar());
        intruder.command(Command::Dial {
            target: "102".into(),
        });
        assert_eq!(intruder.statuses(), [407, 403]);
        assert!(intruder.callers.is_empty());

        // A REGISTER-style challenge when the caller asks for one.
        let mut registrar = registrar();
        let invite = Phone::new("101", "lab101").request(Method::Invite, &[], None);
        let refusal = registrar
            .authenticate(Instant::now(), &invite, false)
            .expect_err("no credentials yet");
        assert_eq!(refusal.status, 401);
        assert_eq!(challenges(&refusal, "WWW-Authenticate").len(), 2);
    }

    // -- a hand-driven phone, for what ringside's UA never sends -------------------------------

    /// A REGISTER client built by hand: full control over Contact, Expires, CSeq and nc.
    struct Phone {
        user: String,
        password: String,
        call_id: String,
        cseq: u32,
        branch: u32,
        challenge: Option<Challenge>,
        nc: u32,
    }

    impl Phone {
        fn new(user: &str, password: &str) -> Self {
            Phone {
                user: user.into(),
                password: password.into(),
                call_id: format!("hand-{user}@10.0.0.9"),
                cseq: 0,
                branch: 0,
                challenge: None,
                nc: 0,
            }
        }

        fn request(&mut self, method: Method, contacts: &[&str], expires: Option<u32>) -> Request {
            self.cseq += 1;
            self.branch += 1;
            let target = if method == Method::Register {
                uri("sip:192.0.2.10")
            } else {
                uri("sip:102@192.0.2.10")
            };
            let mut request = Request::new(method.clone(), target);
            let aor = format!("<sip:{}@192.0.2.10>", self.user);
            let h = &mut request.headers;
            h.push(
                "Via",
                format!(
                    "SIP/2.0/UDP 10.0.0.9:5060;branch=z9hG4bKhand{}",
                    self.branch
                ),
            );
            h.push("From", format!("{aor};tag=hand"));
            h.push("To", aor);
            h.push("Call-ID", self.call_id.clone());
            h.push(
                "CSeq",
                CSeq {
                    seq: self.cseq,
                    method,
                }
                .to_string(),
            );
            for contact in contacts {
                h.push("Contact", *contact);
            }
            if let Some(expires) = expires {
                h.push("Expires", expires.to_string());
            }
            request
        }

        /// Sign with the last challenge and the next nonce count.
        fn sign(&mut self, request: &mut Request) {
            let challenge = self.challenge.clone().expect("challenged before");
            self.nc += 1;
            let value = auth::authorization_value(
                &challenge,
                &Credentials::new(self.user.clone(), self.password.clone()),
                request.method.as_str(),
                &request.uri.to_string(),
                &request.body,
                "c0ffee",
                self.nc,
            )
            .expect("answerable");
            request.headers.set("Authorization", value);
        }

        fn take_challenge(&mut self, response: &Response) {
            let offered = challenges(response, "WWW-Authenticate");
            self.challenge = auth::pick_strongest(&offered).cloned();
            self.nc = 0;
        }

        /// REGISTER: unsigned, then signed after the 401; the final response.
        fn register(
            &mut self,
            registrar: &mut Registrar,
            now: Instant,
            source: SocketAddr,
            contacts: &[&str],
            expires: Option<u32>,
        ) -> Response {
            let first = self.request(Method::Register, contacts, expires);
            let response = registrar.handle_register(now, &first, source);
            if response.status != 401 {
                return response;
            }
            self.take_challenge(&response);
            let mut signed = self.request(Method::Register, contacts, expires);
            self.sign(&mut signed);
            registrar.handle_register(now, &signed, source)
        }
    }

    fn drain(registrar: &mut Registrar) -> Vec<RegistrarEvent> {
        std::iter::from_fn(|| registrar.poll_event()).collect()
    }

    #[test]
    fn contact_star_with_expires_zero_removes_every_binding() {
        let mut registrar = registrar();
        let now = Instant::now();
        let mut desk = Phone::new("101", "lab101");
        let mut soft = Phone::new("101", "lab101");
        soft.call_id = "soft@10.0.0.8".into();
        let desk_ok = desk.register(
            &mut registrar,
            now,
            phone_addr(),
            &["<sip:101@10.0.0.9>"],
            Some(600),
        );
        let later = now + Duration::from_secs(5);
        let soft_ok = soft.register(
            &mut registrar,
            later,
            nat_addr(),
            &["<sip:101@10.0.0.8;transport=tcp>"],
            Some(300),
        );
        assert_eq!((desk_ok.status, soft_ok.status), (200, 200));
        // Both bindings in the second 200, newest first, each with its own time left.
        assert_eq!(
            contacts_of(&soft_ok),
            [
                "<sip:101@10.0.0.8;transport=tcp>;expires=300",
                "<sip:101@10.0.0.9>;expires=595"
            ]
        );
        let found = registrar.lookup(later, "101");
        assert_eq!(
            found.iter().map(|b| b.source).collect::<Vec<_>>(),
            [nat_addr(), phone_addr()]
        );
        drain(&mut registrar);

        for (contacts, expires) in [
            (&["*"][..], Some(600)),
            (&["*"][..], None),
            (&["*", "<sip:101@10.0.0.9>"][..], Some(0)),
        ] {
            let refused = desk.register(&mut registrar, later, phone_addr(), contacts, expires);
            assert_eq!(refused.status, 400, "{contacts:?} {expires:?}");
        }
        let cleared = desk.register(&mut registrar, later, phone_addr(), &["*"], Some(0));
        assert_eq!(cleared.status, 200);
        assert!(contacts_of(&cleared).is_empty());
        assert!(registrar.lookup(later, "101").is_empty());
        let events = drain(&mut registrar);
        assert_eq!(events.len(), 2);
        assert!(events
            .iter()
            .all(|e| matches!(e, RegistrarEvent::Unregistered { expired: false, .. })));
        assert_eq!(registrar.poll_timeout(), None);
    }

    #[test]
    fn a_replayed_nonce_count_is_refused() {
        let mut registrar = registrar();
        let now = Instant::now();
        let mut phone = Phone::new("101", "lab101");
        let contacts = ["<sip:101@10.0.0.9>"];
        assert_eq!(
            phone
                .register(&mut registrar, now, phone_addr(), &contacts, None)
                .status,
            200
        );
        // The same credentials (nc=00000001) in a new transaction, as an eavesdropper would.
        let captured = phone.request(Method::Register, &contacts, None);
        let mut replay = captured.clone();
        phone.nc = 0;
        phone.sign(&mut replay);
        let refused = registrar.handle_register(now, &replay, phone_addr());
        assert_eq!(refused.status, 401);
        assert!(challenges(&refused, "WWW-Authenticate")
            .iter()
            .all(|c| c.stale));

        // The next count on the same nonce is fine, going back is not; gaps are allowed.
        for (nc, status) in [(2, 200), (2, 401), (1, 401), (7, 200), (6, 401)] {
            let mut request = phone.request(Method::Register, &contacts, None);
            phone.nc = nc - 1;
            phone.sign(&mut request);
            let response = registrar.handle_register(now, &request, phone_addr());
            assert_eq!(response.status, status, "nc={nc}");
        }
    }

    #[test]
    fn refusals_follow_rfc_3261_section_10_3() {
        let mut registrar = registrar();
        let now = Instant::now();
        let source = phone_addr();
        let register = |registrar: &mut Registrar, phone: &mut Phone, contacts: &[&str]| {
            phone.register(registrar, now, source, contacts, Some(600))
        };

        // An anonymous REGISTER for an AOR nobody has is challenged, not told 404.
        let mut nobody = Phone::new("555", "x");
        let anonymous = nobody.request(Method::Register, &["<sip:555@10.0.0.9>"], None);
        assert_eq!(
            registrar.handle_register(now, &anonymous, source).status,
            401
        );
        // Authenticated as 101, registering 555 (no such user) or 102 (someone else's).
        for (aor, status) in [("555", 404), ("102", 403)] {
            let mut phone = Phone::new("101", "lab101");
            let first = phone.request(Method::Register, &["<sip:x@10.0.0.9>"], None);
            let challenge = registrar.handle_register(now, &first, source);
            phone.take_challenge(&challenge);
            let mut request = phone.request(Method::Register, &["<sip:x@10.0.0.9>"], None);
            request.headers.set("To", format!("<sip:{aor}@192.0.2.10>"));
            phone.sign(&mut request);
            assert_eq!(
                registrar.handle_register(now, &request, source).status,
                status,
                "{aor}"
            );
        }

        let mut phone = Phone::new("101", "lab101");
        for bad in [
            "<sip:101@[bad>",
            "<tel:+33123456789>",
            "<http://example.com>",
            "\"unterminated <sip:101@h>",
        ] {
            let response = register(&mut registrar, &mut phone, &[bad]);
            assert_eq!(
                (response.status, response.reason.as_str()),
                (400, "Bad Contact"),
                "{bad}"
            );
        }
        let brief = register(
            &mut registrar,
            &mut phone,
            &["<sip:101@10.0.0.9>;expires=59"],
        );
        assert_eq!(
            (brief.status, brief.header("Min-Expires")),
            (423, Some("60"))
        );
        // A non-numeric expires parameter falls back to the Expires header.
        let ok = register(
            &mut registrar,
            &mut phone,
            &["<sip:101@10.0.0.9>;expires=soon"],
        );
        assert_eq!(contacts_of(&ok), ["<sip:101@10.0.0.9>;expires=600"]);

        // Same Call-ID, CSeq not higher than the binding's: the update is refused whole.
        let stored = registrar.lookup(now, "101")[0].cseq;
        phone.cseq = stored - 2;
        let late = register(
            &mut registrar,
            &mut phone,
            &["<sip:101@10.0.0.9>;expires=0", "<sip:101@10.0.0.7>"],
        );
        assert_eq!(
            (late.status, late.reason.as_str()),
            (500, "Out Of Order CSeq")
        );
        assert_eq!(registrar.lookup(now, "101").len(), 1, "nothing applied");
        // Another Call-ID may replace it whatever its CSeq.
        let mut other = Phone::new("101", "lab101");
        other.call_id = "other@10.0.0.7".into();
        let replaced = register(&mut registrar, &mut other, &["<SIP:101@10.0.0.9>"]);
        assert_eq!(replaced.status, 200);
        assert_eq!(registrar.lookup(now, "101")[0].call_id, "other@10.0.0.7");

        // No Contact at all: a query, answered with the bindings.
        let query = register(&mut registrar, &mut phone, &[]);
        assert_eq!(contacts_of(&query), ["<sip:101@10.0.0.9>;expires=600"]);

        // Too many devices.
        let mut crowd = Phone::new("103", "lab103");
        let many: Vec<String> = (1..=MAX_BINDINGS_PER_USER + 1)
            .map(|i| format!("<sip:103@10.0.1.{i}>"))
            .collect();
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(register(&mut registrar, &mut crowd, &many).status, 503);
        assert_eq!(
            register(&mut registrar, &mut crowd, &many[..MAX_BINDINGS_PER_USER]).status,
            200
        );
    }

    #[test]
    fn credentials_are_checked_before_they_are_trusted() {
        let mut registrar = registrar();
        let now = Instant::now();
        let source = phone_addr();
        let mut phone = Phone::new("101", "lab101");
        let first = phone.request(Method::Register, &["<sip:101@10.0.0.9>"], None);
        let challenge = registrar.handle_register(now, &first, source);
        phone.take_challenge(&challenge);
        let nonce = phone.challenge.clone().expect("challenge").nonce;
        let signed_with = |phone: &mut Phone, nonce: &str, password: &str, realm: &str| {
            let mut challenge = phone.challenge.clone().expect("challenge");
            challenge.nonce = nonce.to_owned();
            challenge.realm = realm.to_owned();
            let mut request = phone.request(Method::Register, &["<sip:101@10.0.0.9>"], None);
            let value = auth::authorization_value(
                &challenge,
                &Credentials::new("101", password),
                "REGISTER",
                "sip:192.0.2.10",
                b"",
                "abc",
                1,
            )
            .expect("answerable");
            request.headers.set("Authorization", value);
            request
        };

        // A nonce we did not make (one hex digit of its tag changed): stale if the password
        // is right, 403 if not.
        let mut forged = nonce.clone();
        let last = if forged.ends_with('0') { "1" } else { "0" };
        forged.replace_range(forged.len() - 1.., last);
        let request = signed_with(&mut phone, &forged, "lab101", REALM);
        let response = registrar.handle_register(now, &request, source);
        assert_eq!(response.status, 401);
        assert!(challenges(&response, "WWW-Authenticate")[0].stale);
        let request = signed_with(&mut phone, &forged, "wrong", REALM);
        assert_eq!(registrar.handle_register(now, &request, source).status, 403);

        // Right at the end of its life the nonce still works; just after, it is stale.
        let at_limit = now + NONCE_LIFETIME;
        let request = signed_with(&mut phone, &nonce, "lab101", REALM);
        assert_eq!(
            registrar.handle_register(at_limit, &request, source).status,
            200
        );
        let mut late = Phone::new("102", "lab102");
        let first = late.request(Method::Register, &["<sip:102@10.0.0.9>"], None);
        late.take_challenge(&registrar.handle_register(now, &first, source));
        let mut request = late.request(Method::Register, &["<sip:102@10.0.0.9>"], None);
        late.sign(&mut request);
        let after = now + NONCE_LIFETIME + Duration::from_millis(1);
        let stale = registrar.handle_register(after, &request, source);
        assert_eq!(stale.status, 401);
        assert!(challenges(&stale, "WWW-Authenticate")[0].stale);

        // Credentials for another realm are not ours: a fresh challenge.
        let request = signed_with(&mut phone, &nonce, "lab101", "elsewhere");
        let response = registrar.handle_register(now, &request, source);
        assert_eq!(response.status, 401);
        assert!(!challenges(&response, "WWW-Authenticate")[0].stale);

        // Malformed credentials, and a digest uri that is not the Request-URI.
        let mut request = phone.request(Method::Register, &["<sip:101@10.0.0.9>"], None);
        request
            .headers
            .set("Authorization", "Digest username=\"101\", realm=");
        assert_eq!(registrar.handle_register(now, &request, source).status, 400);
        let mut request = signed_with(&mut phone, &nonce, "lab101", REALM);
        request.uri = uri("sip:other.example");
        let response = registrar.handle_register(now, &request, source);
        assert_eq!(
            (response.status, response.reason.as_str()),
            (400, "Digest URI Does Not Match Request-URI")
        );

        // A registrar keyed with another seed (the lab restarted) finds the nonce stale.
        let mut restarted = Registrar::new(REALM, lab_users(), 43);
        let _ = restarted.handle_register(now, &first, source);
        let request = signed_with(&mut phone, &nonce, "lab101", REALM);
        let response = restarted.handle_register(now, &request, source);
        assert_eq!(response.status, 401);
        assert!(challenges(&response, "WWW-Authenticate")[0].stale);
    }

    #[test]
    fn an_answer_without_qop_may_use_its_nonce_once() {
        let mut registrar = registrar().with_algorithms(vec![Algorithm::Md5]);
        let now = Instant::now();
        let mut phone = Phone::new("101", "lab101");
        let first = phone.request(Method::Register, &["<sip:101@10.0.0.9>"], None);
        phone.take_challenge(&registrar.handle_register(now, &first, phone_addr()));
        // An RFC 2069 client ignores qop.
        if let Some(challenge) = phone.challenge.as_mut() {
            challenge.qop.clear();
        }
        for status in [200, 401] {
            let mut request = phone.request(Method::Register, &["<sip:101@10.0.0.9>"], None);
            phone.sign(&mut request);
            assert!(request
                .header("Authorization")
                .is_some_and(|v| !v.contains("nc=")));
            assert_eq!(
                registrar
                    .handle_register(now, &request, phone_addr())
                    .status,
                status
            );
        }
    }

    #[test]
    fn nonces_are_unique_and_secrets_stay_out_of_debug_output() {
        let mut registrar = registrar();
        let now = Instant::now();
        let mut phone = Phone::new("101", "lab101");
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let request = phone.request(Method::Register, &["<sip:101@10.0.0.9>"], None);
            let response = registrar.handle_register(now, &request, phone_addr());
            let nonce = challenges(&response, "WWW-Authenticate")[0].nonce.clone();
            assert!(nonce.bytes().all(|b| b.is_ascii_hexdigit()));
            assert!(seen.insert(nonce), "a nonce was handed out twice");
        }
        let debug = format!("{registrar:?}");
        assert!(
            debug.contains("<redacted>") && !debug.contains("lab101"),
            "{debug}"
        );
    }

    #[test]
    fn hostile_requests_get_an_answer_not_a_panic() {
        let mut registrar = registrar();
        let now = Instant::now();
        let raw = [
            "REGISTER sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKx\r\nFrom: <sip:101@h>;tag=1\r\nTo: <sip:101@h>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContact: <sip:101@10.0.0.9>;expires=99999999999999999999999\r\nExpires: 4294967295\r\nAuthorization: Digest username=\"101\", realm=\"ringside-lab\", nonce=\"\u{e9}\u{e9}\", uri=\"sip:192.0.2.10\", response=\"00\", nc=ffffffff, qop=auth, cnonce=\"x\"\r\nContent-Length: 0\r\n\r\n",
            "REGISTER sip:192.0.2.10 SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.9;branch=z9hG4bKy\r\nFrom: <sip:101@h>;tag=1\r\nTo: <sip:h>\r\nCall-ID: a\r\nCSeq: 1 REGISTER\r\nContent-Length: 0\r\n\r\n",
        ];
        for text in raw {
            let Ok(Message::Request(request)) = msg::parse(text.as_bytes()) else {
                panic!("the test message parses");
            };
            let response = registrar.handle_register(now, &request, phone_addr());
            assert!(
                [400, 401, 403, 404].contains(&response.status),
                "{}",
                response.status
            );
        }
        // Expiry numbers beyond any integer type are capped, not overflowed.
        let huge = read_contact(
            "<sip:101@10.0.0.9>;expires=99999999999999999999999",
            Some(u32::MAX),
        );
        assert_eq!(huge.map(|c| c.expires), Some(MAX_EXPIRES));
        let huge = read_contact("<sip:101@10.0.0.9>;expires=18446744073709551615", None);
        assert_eq!(huge.map(|c| c.expires), Some(MAX_EXPIRES));
        let options = Request::new(Method::Options, uri("sip:192.0.2.10"));
        assert_eq!(
            registrar
                .handle_register(now, &options, phone_addr())
                .status,
            405
        );
    }
}
