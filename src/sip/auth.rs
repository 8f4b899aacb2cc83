//! HTTP Digest authentication for SIP (RFC 3261 §22, RFC 2617, RFC 7616, RFC 8760), sans-IO.
//!
//! Everything here is string in, string out: the SIP layer hands over header *values* (the text
//! after `WWW-Authenticate:`, `Proxy-Authenticate:`, `Authorization:` or `Proxy-Authorization:`)
//! and gets header values back. Nonces and cnonces are produced by the caller, so this module
//! needs neither a clock nor a random source.
//!
//! Client flow: [`Challenge::parse`] every challenge header of a 401/407, [`pick_strongest`],
//! [`NonceCounts::next_nc`], then [`authorization_value`].
//! Server flow: [`challenge_value`], then [`Authorization::parse`] and [`verify`] (or
//! [`verify_ha1`] when the registrar stores HA1 rather than the password). Checking that the
//! nonce is fresh, the realm is ours and `uri` matches the Request-URI is the registrar's job.

use core::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};
use thiserror::Error;

/// How many distinct (realm, nonce) pairs [`NonceCounts`] remembers; a phone talks to a
/// registrar and maybe an outbound proxy, so a handful is plenty and memory stays bounded.
const REMEMBERED_NONCES: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AuthError {
    #[error("authentication scheme `{0}` is not supported: only Digest can be answered (check the server's auth settings)")]
    UnsupportedScheme(String),
    #[error("the Digest header has no `{0}` parameter, which is required; the peer sent a malformed header")]
    MissingParam(&'static str),
    #[error("malformed Digest header at byte {at}: {reason}")]
    Malformed { at: usize, reason: &'static str },
    #[error("the header value is empty: expected `Digest` followed by parameters")]
    Empty,
    #[error("nonce count `{0}` is not 1 to 8 hex digits")]
    BadNonceCount(String),
    #[error("digest algorithm `{0}` is not supported: use MD5, MD5-sess, SHA-256, SHA-256-sess, SHA-512-256 or SHA-512-256-sess")]
    UnsupportedAlgorithm(String),
    #[error(
        "the challenge offers only qop values we cannot answer ({0}); expected auth or auth-int"
    )]
    UnsupportedQop(String),
    #[error("the {0} contains a control character (CR, LF, NUL...), which cannot be sent in a SIP header")]
    ControlCharacter(&'static str),
}

/// A digest algorithm as named in the `algorithm` parameter (RFC 7616 §6.1, RFC 8760).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// The default when the parameter is absent.
    #[default]
    Md5,
    Md5Sess,
    Sha256,
    Sha256Sess,
    Sha512_256,
    Sha512_256Sess,
    /// Anything else, kept verbatim so that the challenge can be skipped rather than refused.
    Unsupported(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HashFamily {
    Md5,
    Sha256,
    Sha512_256,
}

impl Algorithm {
    /// Reads an `algorithm` token, case-insensitively. Never fails: unknown names become
    /// [`Algorithm::Unsupported`]. Also takes the pre-RFC 8760 spellings `SHA256` and `SHA512-256`.
    pub fn parse(token: &str) -> Self {
        let lower = token.trim().to_ascii_lowercase();
        match lower.as_str() {
            "md5" => Self::Md5,
            "md5-sess" => Self::Md5Sess,
            "sha-256" | "sha256" => Self::Sha256,
            "sha-256-sess" | "sha256-sess" => Self::Sha256Sess,
            "sha-512-256" | "sha512-256" => Self::Sha512_256,
            "sha-512-256-sess" | "sha512-256-sess" => Self::Sha512_256Sess,
            _ => Self::Unsupported(token.trim().to_owned()),
        }
    }

    /// The canonical token, as sent on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Md5 => "MD5",
            Self::Md5Sess => "MD5-sess",
            Self::Sha256 => "SHA-256",
            Self::Sha256Sess => "SHA-256-sess",
            Self::Sha512_256 => "SHA-512-256",
            Self::Sha512_256Sess => "SHA-512-256-sess",
            Self::Unsupported(name) => name,
        }
    }

    pub fn is_supported(&self) -> bool {
        self.hash_family().is_some()
    }

    /// `-sess` variants fold the nonce and cnonce into HA1 (RFC 7616 §3.4.2).
    pub fn is_session(&self) -> bool {
        matches!(
            self,
            Self::Md5Sess | Self::Sha256Sess | Self::Sha512_256Sess
        )
    }

    fn hash_family(&self) -> Option<HashFamily> {
        match self {
            Self::Md5 | Self::Md5Sess => Some(HashFamily::Md5),
            Self::Sha256 | Self::Sha256Sess => Some(HashFamily::Sha256),
            Self::Sha512_256 | Self::Sha512_256Sess => Some(HashFamily::Sha512_256),
            Self::Unsupported(_) => None,
        }
    }

    /// Higher is stronger; `None` for algorithms we cannot compute.
    fn strength(&self) -> Option<u8> {
        self.hash_family().map(|family| match family {
            HashFamily::Md5 => 1,
            HashFamily::Sha256 => 2,
            HashFamily::Sha512_256 => 3,
        })
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A quality-of-protection value (RFC 7616 §3.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Qop {
    Auth,
    AuthInt,
    /// Unknown values are kept so that a challenge offering nothing else can be recognised.
    Other(String),
}

impl Qop {
    pub fn parse(token: &str) -> Self {
        let token = token.trim();
        if token.eq_ignore_ascii_case("auth") {
            Self::Auth
        } else if token.eq_ignore_ascii_case("auth-int") {
            Self::AuthInt
        } else {
            Self::Other(token.to_owned())
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Auth => "auth",
            Self::AuthInt => "auth-int",
            Self::Other(name) => name,
        }
    }
}

impl fmt::Display for Qop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One Digest challenge from a `WWW-Authenticate` or `Proxy-Authenticate` header value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Algorithm,
    /// Empty when the server sent no `qop` (RFC 2069 compatibility mode).
    pub qop: Vec<Qop>,
    /// The previous request failed only because its nonce expired: retry without asking the user.
    pub stale: bool,
    pub domain: Option<String>,
}

impl Challenge {
    /// Parses a challenge header value such as `Digest realm="x", nonce="y", qop="auth"`.
    ///
    /// Unknown parameters are ignored and an unknown algorithm parses (as
    /// [`Algorithm::Unsupported`]); parsing stops at a second challenge in the same value.
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = parse_digest(value)?;
        let realm = params.required("realm")?;
        let nonce = params.required("nonce")?;
        let qop = params
            .get("qop")
            .map(|list| {
                list.split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(Qop::parse)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Self {
            realm,
            nonce,
            opaque: params.get("opaque").map(str::to_owned),
            algorithm: params
                .get("algorithm")
                .map(Algorithm::parse)
                .unwrap_or_default(),
            qop,
            stale: params
                .get("stale")
                .is_some_and(|flag| flag.trim().eq_ignore_ascii_case("true")),
            domain: params.get("domain").map(str::to_owned),
        })
    }

    /// Whether [`authorization_value`] can answer this challenge.
    pub fn is_answerable(&self) -> bool {
        self.algorithm.is_supported() && self.chosen_qop().is_ok()
    }

    /// `auth` when offered, else `auth-int`, else none when the server sent no qop at all.
    fn chosen_qop(&self) -> Result<Option<Qop>, AuthError> {
        if self.qop.is_empty() {
            Ok(None)
        } else if self.qop.contains(&Qop::Auth) {
            Ok(Some(Qop::Auth))
        } else if self.qop.contains(&Qop::AuthInt) {
            Ok(Some(Qop::AuthInt))
        } else {
            let offered: Vec<&str> = self.qop.iter().map(Qop::as_str).collect();
            Err(AuthError::UnsupportedQop(offered.join(",")))
        }
    }

    fn qop_rank(&self) -> u8 {
        match self.chosen_qop() {
            Ok(Some(Qop::Auth)) => 2,
            Ok(Some(_)) => 1,
            _ => 0,
        }
    }
}

/// Picks the challenge to answer when a response carries several (RFC 8760 §2.4: one per
/// algorithm). Prefers the strongest hash (SHA-512-256, then SHA-256, then MD5, `-sess` or not),
/// then `qop=auth`; ties go to the earlier challenge, i.e. the server's order of preference.
pub fn pick_strongest(challenges: &[Challenge]) -> Option<&Challenge> {
    let mut best: Option<(&Challenge, (u8, u8))> = None;
    for challenge in challenges.iter().filter(|c| c.is_answerable()) {
        let rank = (
            challenge.algorithm.strength().unwrap_or(0),
            challenge.qop_rank(),
        );
        let stronger = match best {
            Some((_, best_rank)) => rank > best_rank,
            None => true,
        };
        if stronger {
            best = Some((challenge, rank));
        }
    }
    best.map(|(challenge, _)| challenge)
}

/// A SIP account's user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Client-side nonce counts: `nc` is 1 the first time a nonce is used and goes up by one on
/// every reuse of the same nonce (RFC 7616 §3.4), so that the server can detect replays.
#[derive(Debug, Clone, Default)]
pub struct NonceCounts {
    /// (realm, nonce, last nc sent), most recently used last.
    recent: Vec<(String, String, u32)>,
}

impl NonceCounts {
    pub fn new() -> Self {
        Self::default()
    }

    /// The `nc` to send with the next request answering `challenge`.
    pub fn next_nc(&mut self, challenge: &Challenge) -> u32 {
        let position = self
            .recent
            .iter()
            .position(|(realm, nonce, _)| *realm == challenge.realm && *nonce == challenge.nonce);
        let (realm, nonce, count) = match position {
            // A saturated count makes the server refuse with a fresh nonce, which restarts at 1.
            Some(index) => {
                let (realm, nonce, count) = self.recent.remove(index);
                (realm, nonce, count.saturating_add(1))
            }
            None => (challenge.realm.clone(), challenge.nonce.clone(), 1),
        };
        if self.recent.len() >= REMEMBERED_NONCES {
            self.recent.remove(0);
        }
        self.recent.push((realm, nonce, count));
        count
    }

    /// Drops every nonce of `realm`, e.g. after the server rejected the credentials outright.
    pub fn forget_realm(&mut self, realm: &str) {
        self.recent.retain(|(known, _, _)| known != realm);
    }
}

/// Builds the `Authorization` / `Proxy-Authorization` header value answering `challenge`.
///
/// `digest_uri` is the Request-URI as sent; `body` is hashed only for `qop=auth-int`, which is
/// used only when the server does not offer `auth`. Without any qop the RFC 2069 form is produced
/// (no cnonce, nc or qop, except that `-sess` algorithms still need the cnonce).
pub fn authorization_value(
    challenge: &Challenge,
    creds: &Credentials,
    method: &str,
    digest_uri: &str,
    body: &[u8],
    cnonce: &str,
    nc: u32,
) -> Result<String, AuthError> {
    let family = challenge
        .algorithm
        .hash_family()
        .ok_or_else(|| AuthError::UnsupportedAlgorithm(challenge.algorithm.to_string()))?;
    let qop = challenge.chosen_qop()?;
    reject_control_characters("username", &creds.username)?;
    reject_control_characters("request URI", digest_uri)?;
    reject_control_characters("method", method)?;
    reject_control_characters("cnonce", cnonce)?;

    let nc_hex = format!("{nc:08x}");
    let base_ha1 = hash_hex(
        family,
        format!("{}:{}:{}", creds.username, challenge.realm, creds.password).as_bytes(),
    );
    let response = digest_response(
        family,
        &challenge.algorithm,
        &base_ha1,
        &ResponseInputs {
            nonce: &challenge.nonce,
            cnonce,
            nc_hex: &nc_hex,
            qop: qop.as_ref(),
            method,
            uri: digest_uri,
            body,
        },
    );

    let mut value = format!(
        "Digest username={}, realm={}, nonce={}, uri={}, response={}, algorithm={}",
        quote(&creds.username),
        quote(&challenge.realm),
        quote(&challenge.nonce),
        quote(digest_uri),
        quote(&response),
        challenge.algorithm,
    );
    match &qop {
        Some(qop) => {
            value.push_str(&format!(
                ", cnonce={}, nc={nc_hex}, qop={qop}",
                quote(cnonce)
            ));
        }
        None if challenge.algorithm.is_session() => {
            value.push_str(&format!(", cnonce={}", quote(cnonce)));
        }
        None => {}
    }
    if let Some(opaque) = &challenge.opaque {
        value.push_str(&format!(", opaque={}", quote(opaque)));
    }
    Ok(value)
}

/// Builds a `WWW-Authenticate` / `Proxy-Authenticate` header value (server side).
pub fn challenge_value(
    realm: &str,
    nonce: &str,
    algorithm: &Algorithm,
    qop_auth: bool,
    stale: bool,
    opaque: Option<&str>,
) -> String {
    let mut value = format!(
        "Digest realm={}, nonce={}, algorithm={}",
        quote(realm),
        quote(nonce),
        algorithm
    );
    if qop_auth {
        value.push_str(", qop=\"auth\"");
    }
    if stale {
        value.push_str(", stale=TRUE");
    }
    if let Some(opaque) = opaque {
        value.push_str(&format!(", opaque={}", quote(opaque)));
    }
    value
}

/// The parameters of an `Authorization` / `Proxy-Authorization` header value (server side).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Algorithm,
    pub cnonce: Option<String>,
    pub nc: Option<u32>,
    pub qop: Option<Qop>,
    pub opaque: Option<String>,
}

impl Authorization {
    pub fn parse(value: &str) -> Result<Self, AuthError> {
        let params = parse_digest(value)?;
        let nc = params.get("nc").map(parse_nonce_count).transpose()?;
        Ok(Self {
            username: params.required("username")?,
            realm: params.required("realm")?,
            nonce: params.required("nonce")?,
            uri: params.required("uri")?,
            response: params.required("response")?,
            algorithm: params
                .get("algorithm")
                .map(Algorithm::parse)
                .unwrap_or_default(),
            cnonce: params.get("cnonce").map(str::to_owned),
            nc,
            qop: params.get("qop").map(Qop::parse),
            opaque: params.get("opaque").map(str::to_owned),
        })
    }
}

/// HA1 as a registrar may store it instead of the password: H(username:realm:password) in the
/// given algorithm's hash (the `-sess` step needs the nonces and happens in [`verify_ha1`]).
/// `None` for an unsupported algorithm.
pub fn ha1(algorithm: &Algorithm, username: &str, realm: &str, password: &str) -> Option<String> {
    let family = algorithm.hash_family()?;
    Some(hash_hex(
        family,
        format!("{username}:{realm}:{password}").as_bytes(),
    ))
}

/// Recomputes the response with the algorithm the client claimed and compares it in constant
/// time. Does not check the nonce's freshness, the realm or the uri against the Request-URI.
pub fn verify(auth: &Authorization, method: &str, password: &str, body: &[u8]) -> bool {
    match ha1(&auth.algorithm, &auth.username, &auth.realm, password) {
        Some(base_ha1) => verify_ha1(auth, method, &base_ha1, body),
        None => false,
    }
}

/// [`verify`] for a registrar that stores [`ha1`] (in the client's algorithm) instead of passwords.
pub fn verify_ha1(auth: &Authorization, method: &str, base_ha1: &str, body: &[u8]) -> bool {
    let Some(family) = auth.algorithm.hash_family() else {
        return false;
    };
    let cnonce = auth.cnonce.as_deref();
    let needs_cnonce = auth.qop.is_some() || auth.algorithm.is_session();
    if needs_cnonce && cnonce.is_none() {
        return false;
    }
    let nc_hex = match (&auth.qop, auth.nc) {
        (None, _) => String::new(),
        (Some(Qop::Auth | Qop::AuthInt), Some(nc)) => format!("{nc:08x}"),
        (Some(_), _) => return false,
    };
    let expected = digest_response(
        family,
        &auth.algorithm,
        &base_ha1.to_ascii_lowercase(),
        &ResponseInputs {
            nonce: &auth.nonce,
            cnonce: cnonce.unwrap_or_default(),
            nc_hex: &nc_hex,
            qop: auth.qop.as_ref(),
            method,
            uri: &auth.uri,
            body,
        },
    );
    equal_hex_constant_time(&expected, &auth.response)
}

struct ResponseInputs<'a> {
    nonce: &'a str,
    cnonce: &'a str,
    nc_hex: &'a str,
    qop: Option<&'a Qop>,
    method: &'a str,
    uri: &'a str,
    body: &'a [u8],
}

/// RFC 7616 §3.4.1–3.4.3 (and RFC 2069 when there is no qop).
fn digest_response(
    family: HashFamily,
    algorithm: &Algorithm,
    base_ha1: &str,
    inputs: &ResponseInputs<'_>,
) -> String {
    let ha1 = if algorithm.is_session() {
        hash_hex(
            family,
            format!("{base_ha1}:{}:{}", inputs.nonce, inputs.cnonce).as_bytes(),
        )
    } else {
        base_ha1.to_owned()
    };
    let ha2 = match inputs.qop {
        Some(Qop::AuthInt) => hash_hex(
            family,
            format!(
                "{}:{}:{}",
                inputs.method,
                inputs.uri,
                hash_hex(family, inputs.body)
            )
            .as_bytes(),
        ),
        _ => hash_hex(
            family,
            format!("{}:{}", inputs.method, inputs.uri).as_bytes(),
        ),
    };
    let to_hash = match inputs.qop {
        Some(qop) => format!(
            "{ha1}:{}:{}:{}:{qop}:{ha2}",
            inputs.nonce, inputs.nc_hex, inputs.cnonce
        ),
        None => format!("{ha1}:{}:{ha2}", inputs.nonce),
    };
    hash_hex(family, to_hash.as_bytes())
}

fn hash_hex(family: HashFamily, data: &[u8]) -> String {
    match family {
        HashFamily::Md5 => lower_hex(&Md5::digest(data)),
        HashFamily::Sha256 => lower_hex(&Sha256::digest(data)),
        HashFamily::Sha512_256 => lower_hex(&Sha512_256::digest(data)),
    }
}

fn lower_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// Compares without an early exit so that timing does not reveal the matching prefix; the
/// received value may be upper-case hex.
fn equal_hex_constant_time(expected: &str, received: &str) -> bool {
    let (expected, received) = (expected.as_bytes(), received.as_bytes());
    if expected.len() != received.len() {
        return false;
    }
    let difference = expected
        .iter()
        .zip(received)
        .fold(0u8, |acc, (a, b)| acc | (a ^ b.to_ascii_lowercase()));
    difference == 0
}

fn parse_nonce_count(text: &str) -> Result<u32, AuthError> {
    let digits = text.trim();
    let well_formed =
        (1..=8).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_hexdigit());
    if !well_formed {
        return Err(AuthError::BadNonceCount(text.to_owned()));
    }
    u32::from_str_radix(digits, 16).map_err(|_| AuthError::BadNonceCount(text.to_owned()))
}

fn reject_control_characters(what: &'static str, value: &str) -> Result<(), AuthError> {
    if value.chars().any(|c| c.is_control() && c != '\t') {
        Err(AuthError::ControlCharacter(what))
    } else {
        Ok(())
    }
}

/// A quoted-string with `"` and `\` escaped. Control characters are dropped because they cannot
/// travel inside a SIP header; the client rejects them earlier where they would change a hash.
fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c if c.is_control() && c != '\t' => {}
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The auth-params of a Digest header, names lower-cased, in order of appearance.
struct Params(Vec<(String, String)>);

impl Params {
    /// The first occurrence wins: a repeated parameter is a peer bug, not worth a refusal.
    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn required(&self, name: &'static str) -> Result<String, AuthError> {
        self.get(name)
            .map(str::to_owned)
            .ok_or(AuthError::MissingParam(name))
    }
}

/// Reads `Digest` followed by comma-separated `name=token` / `name="quoted string"` pairs
/// (RFC 7235 §2.1 / RFC 3261 §25.1), with any linear whitespace around `=` and `,`.
fn parse_digest(value: &str) -> Result<Params, AuthError> {
    let mut cursor = Cursor { text: value, at: 0 };
    cursor.skip_whitespace();
    if cursor.at_end() {
        return Err(AuthError::Empty);
    }
    let scheme = cursor.token();
    if scheme.is_empty() {
        return Err(cursor.malformed("expected an authentication scheme such as Digest"));
    }
    if !scheme.eq_ignore_ascii_case("digest") {
        return Err(AuthError::UnsupportedScheme(scheme.to_owned()));
    }
    if !cursor.at_end() && !cursor.peek().is_some_and(is_whitespace) {
        return Err(cursor.malformed("expected whitespace after the scheme"));
    }

    let mut params = Vec::new();
    loop {
        cursor.skip_whitespace();
        while cursor.peek() == Some(b',') {
            cursor.advance();
            cursor.skip_whitespace();
        }
        if cursor.at_end() {
            break;
        }
        let name = cursor.token();
        if name.is_empty() {
            return Err(cursor.malformed("expected a parameter name"));
        }
        cursor.skip_whitespace();
        if cursor.peek() != Some(b'=') {
            // A bare token after a comma starts the next challenge (`..., Basic realm="x"`).
            break;
        }
        cursor.advance();
        cursor.skip_whitespace();
        let param_value = if cursor.peek() == Some(b'"') {
            cursor.quoted_string()?
        } else {
            cursor.bare_value().to_owned()
        };
        params.push((name.to_ascii_lowercase(), param_value));
        cursor.skip_whitespace();
        if !cursor.at_end() && cursor.peek() != Some(b',') {
            return Err(cursor.malformed("expected ',' between parameters"));
        }
    }
    Ok(Params(params))
}

fn is_whitespace(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

/// RFC 7230 tchar.
fn is_token_byte(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte)
}

/// Walks the header value byte by byte; it only ever stops on ASCII bytes, so every slice it
/// takes lies on a character boundary (and `get` keeps that from panicking regardless).
struct Cursor<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn at_end(&self) -> bool {
        self.at >= self.text.len()
    }

    fn advance(&mut self) {
        self.at = self.at.saturating_add(1);
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(is_whitespace) {
            self.advance();
        }
    }

    fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.at;
        while self.peek().is_some_and(&keep) {
            self.advance();
        }
        self.text.get(start..self.at).unwrap_or_default()
    }

    fn token(&mut self) -> &'a str {
        self.take_while(is_token_byte)
    }

    /// Unquoted values are read up to the next separator rather than as strict tokens, because
    /// some servers send base64 nonces (`/`, `=`) unquoted.
    fn bare_value(&mut self) -> &'a str {
        self.take_while(|byte| byte != b',' && byte != b'"' && !is_whitespace(byte))
    }

    fn quoted_string(&mut self) -> Result<String, AuthError> {
        let opening = self.at;
        self.advance();
        let rest = self.text.get(self.at..).unwrap_or_default();
        let mut out = String::new();
        let mut chars = rest.char_indices();
        while let Some((offset, c)) = chars.next() {
            match c {
                '"' => {
                    self.at = self.at.saturating_add(offset + 1);
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, escaped)) => out.push(escaped),
                    None => break,
                },
                c => out.push(c),
            }
        }
        Err(AuthError::Malformed {
            at: opening,
            reason: "unterminated quoted string",
        })
    }

    fn malformed(&self, reason: &'static str) -> AuthError {
        AuthError::Malformed {
            at: self.at,
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RFC2617_CHALLENGE: &str = "Digest\n                 realm=\"testrealm@host.com\",\n                 qop=\"auth,auth-int\",\n                 nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\n                 opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"";

    fn rfc7616_challenge(algorithm: &str) -> String {
        format!(
            "Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", algorithm={algorithm}, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\""
        )
    }

    const RFC7616_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn parse(value: &str) -> Challenge {
        match Challenge::parse(value) {
            Ok(challenge) => challenge,
            Err(error) => panic!("{value:?} should parse: {error}"),
        }
    }

    fn answer(challenge: &Challenge, creds: &Credentials, cnonce: &str, body: &[u8]) -> String {
        match authorization_value(challenge, creds, "GET", "/dir/index.html", body, cnonce, 1) {
            Ok(value) => value,
            Err(error) => panic!("challenge should be answerable: {error}"),
        }
    }

    fn response_param(value: &str) -> String {
        match Authorization::parse(value) {
            Ok(auth) => auth.response,
            Err(error) => panic!("{value:?} should parse as Authorization: {error}"),
        }
    }

    fn challenge_with(algorithm: Algorithm, qop: Vec<Qop>) -> Challenge {
        Challenge {
            realm: "r".into(),
            nonce: format!("n-{algorithm}-{}", qop.len()),
            opaque: None,
            algorithm,
            qop,
            stale: false,
            domain: None,
        }
    }

    #[test]
    fn rfc2617_md5_qop_auth_vector_byte_exact() {
        let challenge = parse(RFC2617_CHALLENGE);
        assert_eq!(challenge.realm, "testrealm@host.com");
        assert_eq!(challenge.qop, vec![Qop::Auth, Qop::AuthInt]);
        assert_eq!(challenge.algorithm, Algorithm::Md5);
        let creds = Credentials::new("Mufasa", "Circle Of Life");
        assert_eq!(
            answer(&challenge, &creds, "0a4f113b", b""),
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"6629fae49393a05397450978507c4ef1\", algorithm=MD5, cnonce=\"0a4f113b\", \
             nc=00000001, qop=auth, opaque=\"5ccc069c403ebaf9f0171e9517f40e41\""
        );
    }

    #[test]
    fn rfc7616_sha256_and_md5_vectors() {
        let creds = Credentials::new("Mufasa", "Circle of Life");
        for (algorithm, expected) in [
            (
                "SHA-256",
                "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1",
            ),
            ("MD5", "8ca523f5e9506fed4657c9700eebdbec"),
        ] {
            let challenge = parse(&rfc7616_challenge(algorithm));
            let value = answer(&challenge, &creds, RFC7616_CNONCE, b"");
            assert_eq!(response_param(&value), expected, "{algorithm}");
            assert!(
                value.contains(&format!("algorithm={algorithm},")),
                "{value}"
            );
        }
    }

    /// Expected values computed independently with Python's hashlib from the RFC 7616 §3.9.1
    /// inputs (the RFCs publish no vectors for these variants; RFC 7616's SHA-512-256 example
    /// is known to be wrong).
    #[test]
    fn session_sha512_and_auth_int_vectors() {
        let creds = Credentials::new("Mufasa", "Circle of Life");
        for (algorithm, expected) in [
            (
                "SHA-256-sess",
                "2fd51b3a77ad75bad6afad6003e818d767133c46d9e2749e7f5232ae1ea3efd7",
            ),
            (
                "SHA-512-256",
                "430d05014cecc49cab6fbe03176d41a1da86cbfe24a16580e22aaad928d960d0",
            ),
        ] {
            let challenge = parse(&rfc7616_challenge(algorithm));
            let value = answer(&challenge, &creds, RFC7616_CNONCE, b"");
            assert_eq!(response_param(&value), expected, "{algorithm}");
        }

        let mut md5_sess = parse(RFC2617_CHALLENGE);
        md5_sess.algorithm = Algorithm::Md5Sess;
        let value = answer(
            &md5_sess,
            &Credentials::new("Mufasa", "Circle Of Life"),
            "0a4f113b",
            b"",
        );
        assert_eq!(response_param(&value), "8e3825c57e897f5a0dec6c2d4e5059d0");

        let mut auth_int_only = parse(&rfc7616_challenge("SHA-256"));
        auth_int_only.qop = vec![Qop::AuthInt];
        let body = b"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\n";
        let value = answer(&auth_int_only, &creds, RFC7616_CNONCE, body);
        assert!(value.contains("qop=auth-int"), "{value}");
        assert_eq!(
            response_param(&value),
            "ef0b452b754e753d75d2a62eac1b7fdf3f8ffe819f60164792fc72588b8c2e12"
        );
    }

    #[test]
    fn no_qop_gives_rfc2069_response_without_cnonce_or_nc() {
        let challenge = parse(
            "Digest realm=\"testrealm@host.com\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\"",
        );
        let value = answer(
            &challenge,
            &Credentials::new("Mufasa", "Circle Of Life"),
            "0a4f113b",
            b"",
        );
        assert_eq!(
            value,
            "Digest username=\"Mufasa\", realm=\"testrealm@host.com\", \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", uri=\"/dir/index.html\", \
             response=\"670fd8c2df070c60b045671b8b24ff02\", algorithm=MD5"
        );
    }

    #[test]
    fn parses_odd_whitespace_case_and_empty_list_items() {
        let challenge = parse(
            "  dIgEsT\trealm = \"a b\" ,nonce=\r\n   \"n1\",, ALGORITHM = sha-256 ,\
             qop = \" auth-int ,auth \" , Domain=\"sip:a sip:b\" , x-unknown=1",
        );
        assert_eq!(challenge.realm, "a b");
        assert_eq!(challenge.nonce, "n1");
        assert_eq!(challenge.algorithm, Algorithm::Sha256);
        assert_eq!(challenge.qop, vec![Qop::AuthInt, Qop::Auth]);
        assert_eq!(challenge.domain.as_deref(), Some("sip:a sip:b"));
        assert_eq!(challenge.opaque, None);
        assert!(!challenge.stale);
    }

    #[test]
    fn unquoted_base64_nonce_and_quoted_algorithm_are_accepted() {
        let challenge = parse("Digest realm=x, nonce=ab/c+d==, algorithm=\"MD5-sess\"");
        assert_eq!(challenge.nonce, "ab/c+d==");
        assert_eq!(challenge.algorithm, Algorithm::Md5Sess);
    }

    #[test]
    fn escaped_quotes_and_commas_in_quoted_strings_round_trip() {
        let challenge = parse(r#"Digest realm="ex\"am\\ple, inc", nonce="a,b", opaque="\o""#);
        assert_eq!(challenge.realm, r#"ex"am\ple, inc"#);
        assert_eq!(challenge.nonce, "a,b");
        assert_eq!(challenge.opaque.as_deref(), Some("o"));
        let value = answer(&challenge, &Credentials::new("a\"b", "pw"), "c", b"");
        assert!(value.contains(r#"realm="ex\"am\\ple, inc""#), "{value}");
        assert!(value.contains(r#"username="a\"b""#), "{value}");
        let back = match Authorization::parse(&value) {
            Ok(auth) => auth,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(back.realm, challenge.realm);
        assert_eq!(back.username, "a\"b");
        assert!(verify(&back, "GET", "pw", b""));
    }

    #[test]
    fn stale_flag_is_case_insensitive() {
        let base = "Digest realm=\"r\", nonce=\"n\"";
        assert!(parse(&format!("{base}, stale=TRUE")).stale);
        assert!(parse(&format!("{base}, stale=\"true\"")).stale);
        assert!(!parse(&format!("{base}, stale=false")).stale);
        assert!(!parse(base).stale);
    }

    #[test]
    fn missing_required_params_are_named() {
        assert_eq!(
            Challenge::parse("Digest realm=\"r\", qop=\"auth\""),
            Err(AuthError::MissingParam("nonce"))
        );
        assert_eq!(
            Challenge::parse("Digest nonce=\"n\""),
            Err(AuthError::MissingParam("realm"))
        );
        assert_eq!(
            Authorization::parse("Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"s\""),
            Err(AuthError::MissingParam("response"))
        );
    }

    #[test]
    fn other_schemes_and_garbage_are_errors() {
        assert_eq!(
            Challenge::parse("Basic realm=\"r\""),
            Err(AuthError::UnsupportedScheme("Basic".into()))
        );
        assert_eq!(Challenge::parse("   "), Err(AuthError::Empty));
        assert!(matches!(
            Challenge::parse("Digest realm=\"unterminated"),
            Err(AuthError::Malformed { at: 13, .. })
        ));
        assert!(matches!(
            Challenge::parse("Digest realm=\"r\" nonce=\"n\""),
            Err(AuthError::Malformed { .. })
        ));
        assert!(matches!(
            Challenge::parse("Digest, =x"),
            Err(AuthError::Malformed { .. })
        ));
        assert!(matches!(
            Challenge::parse("Digest\"realm=x"),
            Err(AuthError::Malformed { .. })
        ));
    }

    #[test]
    fn a_following_challenge_in_the_same_value_is_not_swallowed() {
        let challenge = parse("Digest realm=\"a\", nonce=\"n\", Basic realm=\"b\"");
        assert_eq!(challenge.realm, "a");
    }

    #[test]
    fn every_prefix_of_a_tricky_header_parses_or_errors_without_panicking() {
        let header = "Digest réalm=\"ü\\\"ñ,\", nonce = \"😀\" , qop=\"auth\", nc=0000000g, \\";
        for end in 0..=header.len() {
            if let Some(prefix) = header.get(..end) {
                let _ = Challenge::parse(prefix);
                let _ = Authorization::parse(prefix);
            }
        }
    }

    #[test]
    fn algorithm_spellings() {
        for (token, expected) in [
            ("MD5", Algorithm::Md5),
            ("md5", Algorithm::Md5),
            ("MD5-SESS", Algorithm::Md5Sess),
            ("sha-256", Algorithm::Sha256),
            ("SHA256", Algorithm::Sha256),
            ("SHA-256-sess", Algorithm::Sha256Sess),
            ("sha-512-256", Algorithm::Sha512_256),
            ("SHA-512-256-SESS", Algorithm::Sha512_256Sess),
            ("AKAv1-MD5", Algorithm::Unsupported("AKAv1-MD5".into())),
        ] {
            assert_eq!(Algorithm::parse(token), expected, "{token}");
        }
        assert_eq!(Algorithm::Sha256Sess.to_string(), "SHA-256-sess");
        let challenge = parse("Digest realm=\"r\", nonce=\"n\", algorithm=SHA-1024");
        assert_eq!(
            challenge.algorithm,
            Algorithm::Unsupported("SHA-1024".into())
        );
        assert_eq!(
            authorization_value(
                &challenge,
                &Credentials::new("u", "p"),
                "REGISTER",
                "sip:x",
                b"",
                "c",
                1
            ),
            Err(AuthError::UnsupportedAlgorithm("SHA-1024".into()))
        );
    }

    #[test]
    fn pick_strongest_prefers_sha_then_qop_auth_and_skips_the_unanswerable() {
        let challenges = vec![
            challenge_with(Algorithm::Md5, vec![Qop::Auth]),
            challenge_with(Algorithm::Sha256, vec![]),
            challenge_with(Algorithm::Sha256Sess, vec![Qop::AuthInt]),
            challenge_with(Algorithm::Sha256, vec![Qop::Auth]),
            challenge_with(Algorithm::Unsupported("SHA-3".into()), vec![Qop::Auth]),
            challenge_with(Algorithm::Sha512_256, vec![Qop::Other("x".into())]),
        ];
        assert_eq!(pick_strongest(&challenges), Some(&challenges[3]));
        assert_eq!(pick_strongest(&challenges[..3]), Some(&challenges[2]));
        assert_eq!(pick_strongest(&challenges[..2]), Some(&challenges[1]));
        assert_eq!(pick_strongest(&challenges[4..]), None);
        assert_eq!(pick_strongest(&[]), None);

        let ties = vec![
            challenge_with(Algorithm::Sha256Sess, vec![Qop::Auth]),
            challenge_with(Algorithm::Sha256, vec![Qop::Auth]),
        ];
        assert_eq!(pick_strongest(&ties), Some(&ties[0]));

        let with_512 = vec![
            challenge_with(Algorithm::Sha256, vec![Qop::Auth]),
            challenge_with(Algorithm::Sha512_256, vec![Qop::Auth]),
        ];
        assert_eq!(pick_strongest(&with_512), Some(&with_512[1]));
    }

    #[test]
    fn unknown_qop_alone_cannot_be_answered() {
        let challenge = parse("Digest realm=\"r\", nonce=\"n\", qop=\"auth-conf\"");
        assert!(!challenge.is_answerable());
        assert_eq!(
            authorization_value(
                &challenge,
                &Credentials::new("u", "p"),
                "REGISTER",
                "sip:x",
                b"",
                "c",
                1
            ),
            Err(AuthError::UnsupportedQop("auth-conf".into()))
        );
    }

    #[test]
    fn nonce_count_starts_at_one_and_counts_reuse_per_nonce() {
        let mut counts = NonceCounts::new();
        let first = challenge_with(Algorithm::Md5, vec![Qop::Auth]);
        let mut second = first.clone();
        second.nonce = "fresh".into();
        let mut other_realm = first.clone();
        other_realm.realm = "proxy".into();
        assert_eq!(counts.next_nc(&first), 1);
        assert_eq!(counts.next_nc(&first), 2);
        assert_eq!(counts.next_nc(&other_realm), 1);
        assert_eq!(counts.next_nc(&first), 3);
        assert_eq!(counts.next_nc(&second), 1);
        assert_eq!(counts.next_nc(&first), 4);
        counts.forget_realm("r");
        assert_eq!(counts.next_nc(&first), 1);
        assert_eq!(counts.next_nc(&other_realm), 2);
    }

    #[test]
    fn nonce_counts_stay_bounded() {
        let mut counts = NonceCounts::new();
        let mut challenge = challenge_with(Algorithm::Md5, vec![Qop::Auth]);
        for index in 0..100 {
            challenge.nonce = format!("n{index}");
            assert_eq!(counts.next_nc(&challenge), 1);
        }
        assert_eq!(counts.recent.len(), REMEMBERED_NONCES);
    }

    #[test]
    fn nc_is_eight_hex_digits() {
        let challenge = challenge_with(Algorithm::Md5, vec![Qop::Auth]);
        let creds = Credentials::new("u", "p");
        let value = authorization_value(&challenge, &creds, "INVITE", "sip:b@x", b"", "c", 0x1a2b)
            .unwrap_or_default();
        assert!(value.contains(", nc=00001a2b, "), "{value}");
        let parsed = Authorization::parse(&value).ok();
        assert_eq!(parsed.and_then(|auth| auth.nc), Some(0x1a2b));
    }

    #[test]
    fn credentials_debug_redacts_the_password() {
        let shown = format!("{:?}", Credentials::new("alice", "hunter2-secret"));
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn control_characters_cannot_inject_headers() {
        let challenge = challenge_with(Algorithm::Md5, vec![Qop::Auth]);
        let evil = Credentials::new("alice\r\nX-Evil: 1", "p");
        assert_eq!(
            authorization_value(&challenge, &evil, "REGISTER", "sip:x", b"", "c", 1),
            Err(AuthError::ControlCharacter("username"))
        );
        let value = challenge_value("r\r\nX: y", "n", &Algorithm::Md5, false, false, None);
        assert!(!value.contains('\n') && !value.contains('\r'), "{value:?}");
    }

    #[test]
    fn challenge_value_is_byte_exact_and_parses_back() {
        let value = challenge_value(
            "lab \"pbx\"",
            "abc123",
            &Algorithm::Sha256,
            true,
            true,
            Some("op"),
        );
        assert_eq!(
            value,
            "Digest realm=\"lab \\\"pbx\\\"\", nonce=\"abc123\", algorithm=SHA-256, \
             qop=\"auth\", stale=TRUE, opaque=\"op\""
        );
        let back = parse(&value);
        assert_eq!(back.realm, "lab \"pbx\"");
        assert!(back.stale);
        assert_eq!(back.qop, vec![Qop::Auth]);
        assert_eq!(back.opaque.as_deref(), Some("op"));
        assert_eq!(
            challenge_value("r", "n", &Algorithm::Md5, false, false, None),
            "Digest realm=\"r\", nonce=\"n\", algorithm=MD5"
        );
    }

    #[test]
    fn authorization_parse_reads_the_rfc2617_example() {
        let auth = Authorization::parse(
            "Digest username=\"Mufasa\",\n realm=\"testrealm@host.com\",\n \
             nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\",\n uri=\"/dir/index.html\",\n \
             qop=auth,\n nc=00000001,\n cnonce=\"0a4f113b\",\n \
             response=\"6629fae49393a05397450978507c4ef1\",\n \
             opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        );
        let auth = match auth {
            Ok(auth) => auth,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(auth.username, "Mufasa");
        assert_eq!(auth.nc, Some(1));
        assert_eq!(auth.qop, Some(Qop::Auth));
        assert_eq!(auth.algorithm, Algorithm::Md5);
        assert_eq!(auth.cnonce.as_deref(), Some("0a4f113b"));
        assert!(verify(&auth, "GET", "Circle Of Life", b""));
        assert!(!verify(&auth, "GET", "Circle of Life", b""));
        assert!(!verify(&auth, "POST", "Circle Of Life", b""));

        let mut upper = auth.clone();
        upper.response = upper.response.to_ascii_uppercase();
        assert!(verify(&upper, "GET", "Circle Of Life", b""));

        let stored = ha1(
            &Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        assert_eq!(stored.as_deref(), Some("939e7578ed9e3c518a452acee763bce9"));
        assert!(verify_ha1(
            &auth,
            "GET",
            "939e7578ed9e3c518a452acee763bce9",
            b""
        ));
    }

    #[test]
    fn bad_nonce_counts_are_rejected() {
        let base = "Digest username=\"u\", realm=\"r\", nonce=\"n\", uri=\"s\", response=\"x\"";
        for bad in ["0000000g", "+1", "", "123456789", "-1"] {
            assert_eq!(
                Authorization::parse(&format!("{base}, nc={bad}")),
                Err(AuthError::BadNonceCount(bad.into())),
                "{bad}"
            );
        }
        let max = Authorization::parse(&format!("{base}, nc=FFFFFFFF")).ok();
        assert_eq!(max.and_then(|auth| auth.nc), Some(u32::MAX));
    }

    #[test]
    fn verify_refuses_incomplete_or_unknown_answers() {
        let challenge = challenge_with(Algorithm::Sha256Sess, vec![Qop::Auth]);
        let value = authorization_value(
            &challenge,
            &Credentials::new("u", "p"),
            "REGISTER",
            "sip:r",
            b"",
            "cn",
            7,
        )
        .unwrap_or_default();
        let auth = match Authorization::parse(&value) {
            Ok(auth) => auth,
            Err(error) => panic!("{error}"),
        };
        assert!(verify(&auth, "REGISTER", "p", b""));
        let mut no_cnonce = auth.clone();
        no_cnonce.cnonce = None;
        assert!(!verify(&no_cnonce, "REGISTER", "p", b""));
        let mut no_nc = auth.clone();
        no_nc.nc = None;
        assert!(!verify(&no_nc, "REGISTER", "p", b""));
        let mut wrong_nc = auth.clone();
        wrong_nc.nc = Some(8);
        assert!(!verify(&wrong_nc, "REGISTER", "p", b""));
        let mut unknown_algorithm = auth.clone();
        unknown_algorithm.algorithm = Algorithm::Unsupported("SHA-1".into());
        assert!(!verify(&unknown_algorithm, "REGISTER", "p", b""));
        let mut downgraded = auth.clone();
        downgraded.algorithm = Algorithm::Md5Sess;
        assert!(!verify(&downgraded, "REGISTER", "p", b""));
        let mut short = auth;
        short.response.truncate(10);
        assert!(!verify(&short, "REGISTER", "p", b""));
    }

    #[test]
    fn server_round_trip_over_every_algorithm_and_qop() {
        let algorithms = [
            Algorithm::Md5,
            Algorithm::Md5Sess,
            Algorithm::Sha256,
            Algorithm::Sha256Sess,
            Algorithm::Sha512_256,
            Algorithm::Sha512_256Sess,
        ];
        let creds = Credentials::new("1001", "s3cr\"et, with \\ odd chars");
        let mut checked = 0;
        for algorithm in &algorithms {
            for qop_auth in [false, true] {
                for (nc, opaque) in [(1, None), (0xdead_beef, Some("op\"aque"))] {
                    let header = challenge_value(
                        "lab.local",
                        "nonce/+=",
                        algorithm,
                        qop_auth,
                        false,
                        opaque,
                    );
                    let challenge = parse(&header);
                    assert_eq!(&challenge.algorithm, algorithm);
                    let value = authorization_value(
                        &challenge,
                        &creds,
                        "REGISTER",
                        "sip:lab.local",
                        b"",
                        "c-nonce",
                        nc,
                    )
                    .unwrap_or_default();
                    let auth = match Authorization::parse(&value) {
                        Ok(auth) => auth,
                        Err(error) => panic!("{value:?}: {error}"),
                    };
                    let context = format!("{algorithm} qop={qop_auth} nc={nc}");
                    assert_eq!(auth.algorithm, *algorithm, "{context}");
                    assert_eq!(auth.qop.is_some(), qop_auth, "{context}");
                    assert_eq!(auth.nc.is_some(), qop_auth, "{context}");
                    assert_eq!(
                        auth.cnonce.is_some(),
                        qop_auth || algorithm.is_session(),
                        "{context}"
                    );
                    assert_eq!(auth.opaque.as_deref(), opaque, "{context}");
                    assert!(verify(&auth, "REGISTER", &creds.password, b""), "{context}");
                    assert!(!verify(&auth, "REGISTER", "wrong", b""), "{context}");
                    assert!(!verify(&auth, "INVITE", &creds.password, b""), "{context}");
                    let mut tampered = auth.clone();
                    tampered.uri = "sip:evil.local".into();
                    assert!(
                        !verify(&tampered, "REGISTER", &creds.password, b""),
                        "{context}"
                    );
                    let mut other_user = auth.clone();
                    other_user.username = "1002".into();
                    assert!(
                        !verify(&other_user, "REGISTER", &creds.password, b""),
                        "{context}"
                    );
                    let mut other_nonce = auth;
                    other_nonce.nonce = "replayed".into();
                    assert!(
                        !verify(&other_nonce, "REGISTER", &creds.password, b""),
                        "{context}"
                    );
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 24);
    }

    #[test]
    fn auth_int_round_trip_binds_the_body() {
        let mut challenge = parse(&challenge_value(
            "r",
            "n",
            &Algorithm::Sha256,
            false,
            false,
            None,
        ));
        challenge.qop = vec![Qop::AuthInt];
        let body = b"v=0\r\ns=-\r\n";
        let value = authorization_value(
            &challenge,
            &Credentials::new("u", "p"),
            "INVITE",
            "sip:b@r",
            body,
            "c",
            1,
        )
        .unwrap_or_default();
        let auth = match Authorization::parse(&value) {
            Ok(auth) => auth,
            Err(error) => panic!("{error}"),
        };
        assert_eq!(auth.qop, Some(Qop::AuthInt));
        assert!(verify(&auth, "INVITE", "p", body));
        assert!(!verify(&auth, "INVITE", "p", b"v=0\r\ns=tampered\r\n"));
    }
}
