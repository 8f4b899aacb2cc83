//! SIP messages: parsing, typed accessors and printing (RFC 3261 §7, §20, §25).
//!
//! This is the only module that imports `rsip`. We measured rsip 0.4 against the RFC 4475 torture
//! messages and real traces: it rejects valid messages (line folding, extension methods, `%`
//! escapes), lets many invalid ones through because it types headers lazily, drops URI headers
//! (`?Replaces=...`, which attended transfer needs) and knows no compact header names. So the
//! envelope, URIs, name-addrs and Via are parsed here by a strict first pass of our own, and rsip
//! supplies the method and status-code vocabulary. tests/rfc4475.rs holds the parser to all 49
//! torture-test verdicts and tests/sip_traces.rs to real Asterisk traffic. Keeping rsip behind this one module is what lets
//! us patch or drop it later without touching the rest of the stack.
//!
//! Everything here is plain data: no I/O, no clock.

use std::fmt::{self, Write as _};

/// The largest message we accept, over any transport. Real SIP messages are a few KiB; a bigger
/// one is either an attack or a framing error, and buffering it would let a peer exhaust memory.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;

/// Why a message could not be parsed, with the reason phrase a 400 should carry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("empty message")]
    Empty,
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes")]
    TooLarge,
    #[error("bad start line: {0}")]
    StartLine(String),
    #[error("unsupported SIP version {0}")]
    Version(String),
    #[error("bad header line {line}: {reason}")]
    HeaderLine { line: usize, reason: String },
    #[error("bad {header} header: {reason}")]
    Header { header: String, reason: String },
    #[error("missing required header {0}")]
    MissingHeader(&'static str),
    #[error("more than one {0} header")]
    DuplicateHeader(&'static str),
    #[error("bad Content-Length: {0}")]
    ContentLength(String),
    #[error("body shorter than Content-Length ({declared} declared, {available} present)")]
    Truncated { declared: usize, available: usize },
    #[error("CSeq method {cseq} does not match request method {method}")]
    CSeqMismatch { method: String, cseq: String },
    #[error("bad Request-URI: {0}")]
    RequestUri(String),
    #[error("bad URI: {0}")]
    Uri(String),
}

impl ParseError {
    /// The status a UAS answers a malformed request with (RFC 3261 §21.4, RFC 4475 §3.1.2.16).
    pub fn status(&self) -> u16 {
        match self {
            ParseError::Version(_) => 505,
            ParseError::TooLarge => 513,
            _ => 400,
        }
    }

    /// A short reason phrase for the error response: peers log it, so it must say what was wrong.
    pub fn reason_phrase(&self) -> String {
        match self {
            ParseError::Version(_) => "Version Not Supported".into(),
            ParseError::TooLarge => "Message Too Large".into(),
            ParseError::MissingHeader(h) => format!("Missing {h} Header"),
            ParseError::DuplicateHeader(h) => format!("Multiple {h} Headers"),
            ParseError::CSeqMismatch { .. } => "CSeq Method Does Not Match".into(),
            ParseError::ContentLength(_) | ParseError::Truncated { .. } => {
                "Bad Content-Length".into()
            }
            ParseError::Header { header, .. } => format!("Bad {header} Header"),
            ParseError::RequestUri(_) => "Bad Request-URI".into(),
            _ => "Bad Request".into(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Methods and status codes
// ---------------------------------------------------------------------------------------------

/// A SIP method. Unknown methods are kept (a UAS must answer them 405/501, not drop them).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Method {
    Invite,
    Ack,
    Bye,
    Cancel,
    Register,
    Options,
    Info,
    Update,
    Prack,
    Subscribe,
    Notify,
    Refer,
    Message,
    Publish,
    Extension(String),
}

impl Method {
    pub fn parse(token: &str) -> Result<Method, ParseError> {
        if token.is_empty() || !token.bytes().all(is_token_char) {
            return Err(ParseError::StartLine(format!("bad method {token:?}")));
        }
        // Method names are case-sensitive (RFC 3261 §7.1); rsip's vocabulary covers the standard
        // ones and we keep any other token as an extension.
        let known = rsip::Method::all()
            .into_iter()
            .find(|m| m.to_string() == token);
        Ok(match known {
            Some(rsip::Method::Invite) => Method::Invite,
            Some(rsip::Method::Ack) => Method::Ack,
            Some(rsip::Method::Bye) => Method::Bye,
            Some(rsip::Method::Cancel) => Method::Cancel,
            Some(rsip::Method::Register) => Method::Register,
            Some(rsip::Method::Options) => Method::Options,
            Some(rsip::Method::Info) => Method::Info,
            Some(rsip::Method::Update) => Method::Update,
            Some(rsip::Method::PRack) => Method::Prack,
            Some(rsip::Method::Subscribe) => Method::Subscribe,
            Some(rsip::Method::Notify) => Method::Notify,
            Some(rsip::Method::Refer) => Method::Refer,
            Some(rsip::Method::Message) => Method::Message,
            Some(rsip::Method::Publish) => Method::Publish,
            None => Method::Extension(token.to_string()),
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            Method::Invite => "INVITE",
            Method::Ack => "ACK",
            Method::Bye => "BYE",
            Method::Cancel => "CANCEL",
            Method::Register => "REGISTER",
            Method::Options => "OPTIONS",
            Method::Info => "INFO",
            Method::Update => "UPDATE",
            Method::Prack => "PRACK",
            Method::Subscribe => "SUBSCRIBE",
            Method::Notify => "NOTIFY",
            Method::Refer => "REFER",
            Method::Message => "MESSAGE",
            Method::Publish => "PUBLISH",
            Method::Extension(s) => s,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The standard reason phrase for a status code, for responses we generate.
pub fn default_reason(code: u16) -> String {
    match code {
        // rsip prints its variant names ("Ringing", "BusyHere" ...); map the multi-word ones to
        // the RFC phrases, which is what peers and people expect to read.
        100 => "Trying".into(),
        180 => "Ringing".into(),
        181 => "Call Is Being Forwarded".into(),
        182 => "Queued".into(),
        183 => "Session Progress".into(),
        200 => "OK".into(),
        202 => "Accepted".into(),
        400 => "Bad Request".into(),
        401 => "Unauthorized".into(),
        403 => "Forbidden".into(),
        404 => "Not Found".into(),
        405 => "Method Not Allowed".into(),
        406 => "Not Acceptable".into(),
        407 => "Proxy Authentication Required".into(),
        408 => "Request Timeout".into(),
        415 => "Unsupported Media Type".into(),
        416 => "Unsupported URI Scheme".into(),
        420 => "Bad Extension".into(),
        423 => "Interval Too Brief".into(),
        480 => "Temporarily Unavailable".into(),
        481 => "Call/Transaction Does Not Exist".into(),
        482 => "Loop Detected".into(),
        486 => "Busy Here".into(),
        487 => "Request Terminated".into(),
        488 => "Not Acceptable Here".into(),
        491 => "Request Pending".into(),
        500 => "Server Internal Error".into(),
        501 => "Not Implemented".into(),
        503 => "Service Unavailable".into(),
        505 => "Version Not Supported".into(),
        513 => "Message Too Large".into(),
        603 => "Decline".into(),
        _ => {
            let printed = rsip::StatusCode::from(code).to_string();
            match printed.split_once(' ') {
                Some((_, name)) if name != "Other" => split_camel_case(name),
                _ => "Unknown".into(),
            }
        }
    }
}

fn split_camel_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, ch) in name.chars().enumerate() {
        if i > 0 && ch.is_ascii_uppercase() {
            out.push(' ');
        }
        out.push(ch);
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Character classes (RFC 3261 §25.1)
// ---------------------------------------------------------------------------------------------

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Split a leading token off `text`; the token is empty when `text` does not start with one.
fn take_token(text: &str) -> (&str, &str) {
    let end = text
        .bytes()
        .position(|b| !is_token_char(b))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Skip `SWS "/" SWS`, returning what follows, or None when there is no slash.
fn skip_slash(text: &str) -> Option<&str> {
    text.trim_start()
        .strip_prefix('/')
        .map(|rest| rest.trim_start())
}

/// Remove the whitespace RFC 3261 allows around the ':' of `host:port`; None when whitespace
/// stands anywhere else (inside a host name or a port).
fn join_around_colons(text: &str) -> Option<String> {
    let pieces: Vec<&str> = text.split_ascii_whitespace().collect();
    let mut joined = String::with_capacity(text.len());
    for (i, piece) in pieces.iter().enumerate() {
        if i > 0 && !joined.ends_with(':') && !piece.starts_with(':') {
            return None;
        }
        joined.push_str(piece);
    }
    Some(joined)
}

/// Characters allowed unescaped in a URI user part (unreserved / user-unreserved / escaped).
fn is_user_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/%".contains(&b)
}

fn is_param_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:&+$%".contains(&b)
}

fn is_host_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._".contains(&b)
}

// ---------------------------------------------------------------------------------------------
// URIs
// ---------------------------------------------------------------------------------------------

/// A URI parameter or header: `name[=value]`, kept as written (still %-escaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub name: String,
    pub value: Option<String>,
}

impl Param {
    pub fn new(name: impl Into<String>, value: Option<String>) -> Self {
        Param {
            name: name.into(),
            value,
        }
    }
}

fn find_param<'a>(params: &'a [Param], name: &str) -> Option<&'a Param> {
    params.iter().find(|p| p.name.eq_ignore_ascii_case(name))
}

fn set_param(params: &mut Vec<Param>, name: &str, value: Option<String>) {
    match params
        .iter_mut()
        .find(|p| p.name.eq_ignore_ascii_case(name))
    {
        Some(p) => p.value = value,
        None => params.push(Param::new(name, value)),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    Sip,
    Sips,
    Tel,
    Other(String),
}

impl Scheme {
    pub fn as_str(&self) -> &str {
        match self {
            Scheme::Sip => "sip",
            Scheme::Sips => "sips",
            Scheme::Tel => "tel",
            Scheme::Other(s) => s,
        }
    }
}

/// A URI. SIP and SIPS URIs are parsed into their parts (RFC 3261 §19.1); any other scheme keeps
/// its text in `opaque` so it can be printed back and answered 416 where it is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: Scheme,
    pub user: Option<String>,
    pub password: Option<String>,
    /// Hostname, IPv4 address, or IPv6 reference including its brackets.
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
    pub headers: Vec<Param>,
    /// The scheme-specific part of a non-SIP URI (for `tel:` the number and its parameters).
    pub opaque: String,
}

impl Uri {
    /// A `sip:` URI with the given user (if any), host and port.
    pub fn sip(user: Option<&str>, host: &str, port: Option<u16>) -> Uri {
        Uri {
            scheme: Scheme::Sip,
            user: user.map(str::to_string),
            password: None,
            host: host.to_string(),
            port,
            params: Vec::new(),
            headers: Vec::new(),
            opaque: String::new(),
        }
    }

    pub fn parse(text: &str) -> Result<Uri, ParseError> {
        let err = |why: &str| ParseError::Uri(format!("{why} in {text:?}"));
        if text.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err(err("whitespace or control character"));
        }
        let (scheme, rest) = text.split_once(':').ok_or_else(|| err("no scheme"))?;
        if scheme.is_empty()
            || !scheme.as_bytes()[0].is_ascii_alphabetic()
            || !scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+-.".contains(&b))
        {
            return Err(err("bad scheme"));
        }
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "sip" => Scheme::Sip,
            "sips" => Scheme::Sips,
            "tel" => Scheme::Tel,
            other => Scheme::Other(other.to_string()),
        };
        if !matches!(scheme, Scheme::Sip | Scheme::Sips) {
            if rest.is_empty() {
                return Err(err("empty URI"));
            }
            return Ok(Uri {
                scheme,
                user: None,
                password: None,
                host: String::new(),
                port: None,
                params: Vec::new(),
                headers: Vec::new(),
                opaque: rest.to_string(),
            });
        }
        // sip:[user[:password]@]host[:port][;params][?headers]
        // '@' appears nowhere but after the userinfo, yet the user part may itself hold ';' and
        // '?' (RFC 4475 semiuri, intmeth). So the userinfo ends at the last '@' before the first
        // '?' when there is one there (the common case, which also keeps a stray unescaped '@'
        // in a header such as `?Replaces=id@host` out of the user part), and otherwise at the
        // first '@' of all.
        let userinfo_end = match rest.find('?') {
            Some(q) => rest[..q].rfind('@').or_else(|| rest.find('@')),
            None => rest.rfind('@'),
        };
        let (userinfo, after_userinfo) = match userinfo_end {
            Some(at) => (Some(&rest[..at]), &rest[at + 1..]),
            None => (None, rest),
        };
        let (hostpart, headers_text) = match after_userinfo.split_once('?') {
            Some((a, b)) => (a, Some(b)),
            None => (after_userinfo, None),
        };
        let (user, password) = match userinfo {
            Some(info) => {
                let (u, p) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                if u.is_empty() || !u.bytes().all(is_user_char) || !valid_escapes(u) {
                    return Err(err("bad user part"));
                }
                if let Some(p) = p {
                    if !p.bytes().all(is_user_char) {
                        return Err(err("bad password"));
                    }
                }
                (Some(u.to_string()), p.map(str::to_string))
            }
            None => (None, None),
        };
        let mut pieces = hostpart.split(';');
        let hostport = pieces.next().unwrap_or_default();
        let (host, port) = parse_hostport(hostport).map_err(|why| err(&why))?;
        let mut params = Vec::new();
        for piece in pieces {
            params.push(parse_uri_param(piece, is_param_char).map_err(|why| err(&why))?);
        }
        let mut headers = Vec::new();
        if let Some(h) = headers_text {
            for piece in h.split('&') {
                headers.push(parse_uri_param(piece, |b| b != b'&').map_err(|why| err(&why))?);
            }
        }
        Ok(Uri {
            scheme,
            user,
            password,
            host,
            port,
            params,
            headers,
            opaque: String::new(),
        })
    }

    pub fn is_sip(&self) -> bool {
        matches!(self.scheme, Scheme::Sip | Scheme::Sips)
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        set_param(&mut self.params, name, value)
    }

    /// The transport named by `;transport=`, lower-cased (`udp` when absent for sip:).
    pub fn transport(&self) -> String {
        self.param("transport")
            .and_then(|p| p.value.clone())
            .unwrap_or_else(|| "udp".into())
            .to_ascii_lowercase()
    }

    /// `;lr` marks a loose router (RFC 3261 §16.12): routes with it leave the Request-URI alone.
    pub fn is_loose_router(&self) -> bool {
        self.param("lr").is_some()
    }

    /// The user part with %-escapes decoded (what people compare: extensions, numbers).
    pub fn user_decoded(&self) -> Option<String> {
        self.user.as_deref().map(percent_decode)
    }

    /// The host without IPv6 brackets, for address parsing.
    pub fn host_unbracketed(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The URI without headers and with only the parameters that identify a target, as used in a
    /// Request-URI built from a Contact or Refer-To.
    pub fn without_headers(&self) -> Uri {
        let mut u = self.clone();
        u.headers.clear();
        u.params.retain(|p| !p.name.eq_ignore_ascii_case("method"));
        u
    }
}

fn valid_escapes(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(x), Some(y)) if x.is_ascii_hexdigit() && y.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// Decode %-escapes; invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            if let (Some(h), Some(l)) = (
                b.get(i + 1).and_then(|c| (*c as char).to_digit(16)),
                b.get(i + 2).and_then(|c| (*c as char).to_digit(16)),
            ) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Escape a string for use as a URI header value (e.g. Replaces inside Refer-To, RFC 3891 §7).
pub fn percent_encode_header_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 2);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.!~*'()[]/:+$".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

fn parse_hostport(text: &str) -> Result<(String, Option<u16>), String> {
    if text.is_empty() {
        return Err("empty host".into());
    }
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest.find(']').ok_or("unterminated IPv6 reference")?;
        let inner = &rest[..end];
        if inner.is_empty()
            || !inner
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return Err("bad IPv6 reference".into());
        }
        let after = &rest[end + 1..];
        let port = match after.strip_prefix(':') {
            Some(p) => Some(p),
            None if after.is_empty() => None,
            None => return Err("junk after IPv6 reference".into()),
        };
        (format!("[{inner}]"), port)
    } else {
        match text.split_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (text.to_string(), None),
        }
    };
    if !host.starts_with('[') && (host.is_empty() || !host.bytes().all(is_host_char)) {
        return Err(format!("bad host {host:?}"));
    }
    let port = match port_text {
        Some(p) => Some(
            p.parse::<u16>()
                .ok()
                .filter(|_| p.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| format!("bad port {p:?}"))?,
        ),
        None => None,
    };
    Ok((host, port))
}

fn parse_uri_param(piece: &str, allowed: impl Fn(u8) -> bool) -> Result<Param, String> {
    let (name, value) = match piece.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (piece, None),
    };
    if name.is_empty() || !name.bytes().all(&allowed) || !valid_escapes(name) {
        return Err(format!("bad parameter {piece:?}"));
    }
    if let Some(v) = value {
        if !v.bytes().all(&allowed) || !valid_escapes(v) {
            return Err(format!("bad parameter value {piece:?}"));
        }
    }
    Ok(Param::new(name, value.map(str::to_string)))
}

fn write_params(f: &mut fmt::Formatter<'_>, params: &[Param]) -> fmt::Result {
    for p in params {
        match &p.value {
            Some(v) => write!(f, ";{}={}", p.name, v)?,
            None => write!(f, ";{}", p.name)?,
        }
    }
    Ok(())
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        if !self.is_sip() {
            return f.write_str(&self.opaque);
        }
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(pw) = &self.password {
                write!(f, ":{pw}")?;
            }
            f.write_char('@')?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write_params(f, &self.params)?;
        for (i, h) in self.headers.iter().enumerate() {
            f.write_char(if i == 0 { '?' } else { '&' })?;
            f.write_str(&h.name)?;
            if let Some(v) = &h.value {
                write!(f, "={v}")?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Header values: name-addr, Via, CSeq, parameters
// ---------------------------------------------------------------------------------------------

/// Parse `;name[=value]` header parameters (values may be quoted strings).
fn parse_header_params(text: &str) -> Result<Vec<Param>, String> {
    let mut params = Vec::new();
    let mut rest = text.trim_start();
    while !rest.is_empty() {
        rest = rest
            .strip_prefix(';')
            .ok_or_else(|| format!("expected ';' before {rest:?}"))?
            .trim_start();
        let name_end = rest
            .find(|c: char| c == '=' || c == ';' || c.is_ascii_whitespace())
            .unwrap_or(rest.len());
        let name = &rest[..name_end];
        if !is_token(name) {
            return Err(format!("bad parameter name {name:?}"));
        }
        rest = rest[name_end..].trim_start();
        let value = if let Some(after) = rest.strip_prefix('=') {
            let after = after.trim_start();
            if after.starts_with('"') {
                // Kept as written, escapes included: re-quoting the unescaped text would print
                // `"a\"b"` back as `"a"b"`.
                let (_, remainder) = split_quoted(after)?;
                let raw = &after[..after.len() - remainder.len()];
                rest = remainder.trim_start();
                Some(raw.to_string())
            } else {
                let end = after
                    .find(|c: char| c == ';' || c.is_ascii_whitespace())
                    .unwrap_or(after.len());
                let v = &after[..end];
                if v.is_empty() || !v.bytes().all(|b| is_token_char(b) || b"[]:".contains(&b)) {
                    return Err(format!("bad value for parameter {name}"));
                }
                rest = after[end..].trim_start();
                Some(v.to_string())
            }
        } else {
            None
        };
        params.push(Param::new(name, value));
    }
    Ok(params)
}

/// Split a leading quoted string: returns its unescaped content and what follows the closing quote.
fn split_quoted(text: &str) -> Result<(String, &str), String> {
    let mut out = String::new();
    let mut chars = text.char_indices();
    if !matches!(chars.next(), Some((_, '"'))) {
        return Err("expected a quoted string".into());
    }
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((out, &text[i + 1..])),
            '\\' => match chars.next() {
                Some((_, e)) => out.push(e),
                None => break,
            },
            c => out.push(c),
        }
    }
    Err("unterminated quoted string".into())
}

/// Split a header value at commas that are not inside quotes or angle brackets (for headers that
/// may carry a list: Via, Contact, Route, Record-Route).
pub fn split_list(value: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                parts.push(value[start..i].trim());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value[start..].trim());
    parts
}

/// `[display-name] <uri> *(;param)` or a bare `uri *(;param)` (From, To, Contact, Route,
/// Refer-To, Referred-By, P-Asserted-Identity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display_name: Option<String>,
    pub uri: Uri,
    pub params: Vec<Param>,
}

impl NameAddr {
    pub fn new(uri: Uri) -> NameAddr {
        NameAddr {
            display_name: None,
            uri,
            params: Vec::new(),
        }
    }

    pub fn parse(text: &str) -> Result<NameAddr, String> {
        let text = text.trim();
        let (display_name, after_display) = if text.starts_with('"') {
            let (name, rest) = split_quoted(text)?;
            let rest = rest.trim_start();
            if !rest.starts_with('<') {
                return Err("a quoted display name must be followed by <uri>".into());
            }
            (Some(name), rest)
        } else if let Some(lt) = text.find('<') {
            let name = text[..lt].trim();
            // An unquoted display name is a sequence of tokens (RFC 3261 §25.1 display-name).
            if !name.split_ascii_whitespace().all(is_token) {
                return Err(format!("bad display name {name:?}"));
            }
            ((!name.is_empty()).then(|| name.to_string()), &text[lt..])
        } else {
            (None, text)
        };
        if let Some(inner) = after_display.strip_prefix('<') {
            let end = inner.find('>').ok_or("missing '>'")?;
            let uri = Uri::parse(&inner[..end]).map_err(|e| e.to_string())?;
            let params = parse_header_params(&inner[end + 1..])?;
            Ok(NameAddr {
                display_name,
                uri,
                params,
            })
        } else {
            // addr-spec form: the URI ends at the first ';' — its own parameters would be
            // ambiguous, so they belong to the header (RFC 3261 §20.10).
            let (uri_text, params_text) = match after_display.find(';') {
                Some(i) => (&after_display[..i], &after_display[i..]),
                None => (after_display, ""),
            };
            if uri_text.contains([',', '?']) && !uri_text.starts_with("tel:") {
                return Err("a URI with ',' or '?' must be enclosed in <>".into());
            }
            let uri = Uri::parse(uri_text.trim()).map_err(|e| e.to_string())?;
            let params = parse_header_params(params_text)?;
            Ok(NameAddr {
                display_name: None,
                uri,
                params,
            })
        }
    }

    pub fn param(&self, name: &str) -> Option<&Param> {
        find_param(&self.params, name)
    }

    pub fn tag(&self) -> Option<&str> {
        self.param("tag").and_then(|p| p.value.as_deref())
    }

    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        set_param(&mut self.params, name, value)
    }

    pub fn with_tag(mut self, tag: &str) -> NameAddr {
        self.set_param("tag", Some(tag.to_string()));
        self
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(name) = &self.display_name {
            f.write_char('"')?;
            for c in name.chars() {
                if c == '"' || c == '\\' {
                    f.write_char('\\')?;
                }
                f.write_char(c)?;
            }
            f.write_str("\" ")?;
        }
        write!(f, "<{}>", self.uri)?;
        write_params(f, &self.params)
    }
}

/// One Via header value (RFC 3261 §20.42).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// Upper-case transport: UDP, TCP, TLS, SCTP, WS ... (unknown ones are kept).
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Vec<Param>,
}

/// The RFC 3261 branch cookie: a branch starting with it was made by a RFC 3261 element and can
/// be used alone to match transactions.
pub const BRANCH_MAGIC: &str = "z9hG4bK";

impl Via {
    pub fn new(transport: &str, host: &str, port: Option<u16>, branch: &str) -> Via {
        Via {
            transport: transport.to_ascii_uppercase(),
            host: host.to_string(),
            port,
            params: vec![Param::new("branch", Some(branch.to_string()))],
        }
    }

    pub fn parse(text: &str) -> Result<Via, String> {
        // sent-protocol is three tokens joined by SLASH, and SLASH, like the COLON in sent-by,
        // may carry whitespace on either side (RFC 3261 §25.1; RFC 4475 wsinv uses it).
        let (name, rest) = take_token(text.trim_start());
        let rest = skip_slash(rest).ok_or_else(|| format!("bad sent-protocol in {text:?}"))?;
        let (version, rest) = take_token(rest);
        let rest = skip_slash(rest).ok_or_else(|| format!("bad sent-protocol in {text:?}"))?;
        let (transport, rest) = take_token(rest);
        if !name.eq_ignore_ascii_case("SIP") || version != "2.0" || transport.is_empty() {
            return Err(format!("bad sent-protocol in {text:?}"));
        }
        if !rest.starts_with([' ', '\t']) {
            return Err(format!("missing sent-by in {text:?}"));
        }
        let rest = rest.trim_start();
        let end = rest.find(';').unwrap_or(rest.len());
        let sent_by = join_around_colons(rest[..end].trim())
            .ok_or_else(|| format!("whitespace inside sent-by {:?}", rest[..end].trim()))?;
        let (host, port) = parse_hostport(&sent_by)?;
        let params = parse_header_params(&rest[end..])?;
        Ok(Via {
            transport: transport.to_ascii_uppercase(),
            host,
            port,
            params,
        })
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        find_param(&self.params, name).map(|p| p.value.as_deref().unwrap_or(""))
    }

    pub fn has_param(&self, name: &str) -> bool {
        find_param(&self.params, name).is_some()
    }

    pub fn set_param(&mut self, name: &str, value: Option<String>) {
        set_param(&mut self.params, name, value)
    }

    pub fn branch(&self) -> Option<&str> {
        self.param("branch")
    }

    /// `received=` and `rport=` as set by the server (RFC 3581): where it really saw us.
    pub fn received(&self) -> Option<&str> {
        self.param("received").filter(|s| !s.is_empty())
    }

    pub fn rport(&self) -> Option<u16> {
        self.param("rport").and_then(|p| p.parse().ok())
    }

    pub fn sent_by(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{}", self.host, p),
            None => self.host.clone(),
        }
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SIP/2.0/{} {}", self.transport, self.sent_by())?;
        write_params(f, &self.params)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CSeq {
    pub seq: u32,
    pub method: Method,
}

impl CSeq {
    pub fn parse(text: &str) -> Result<CSeq, String> {
        let mut it = text.split_ascii_whitespace();
        match (it.next(), it.next(), it.next()) {
            (Some(n), Some(m), None) => {
                // RFC 3261 §8.1.1.5: a 32-bit unsigned number, less than 2**31.
                let seq = n
                    .parse::<u32>()
                    .ok()
                    .filter(|s| *s < 1 << 31 && n.bytes().all(|b| b.is_ascii_digit()))
                    .ok_or_else(|| format!("sequence number {n:?} out of range"))?;
                let method = Method::parse(m).map_err(|e| e.to_string())?;
                Ok(CSeq { seq, method })
            }
            _ => Err(format!("expected 'NUMBER METHOD', got {text:?}")),
        }
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.seq, self.method)
    }
}

// ---------------------------------------------------------------------------------------------
// Headers
// ---------------------------------------------------------------------------------------------

/// RFC 3261 §7.3.3 compact forms (and RFC 3515/3892/3265 ones) expanded to full names.
fn expand_compact(name: &str) -> Option<&'static str> {
    if name.len() != 1 {
        return None;
    }
    Some(match name.as_bytes()[0].to_ascii_lowercase() {
        b'v' => "Via",
        b'f' => "From",
        b't' => "To",
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'c' => "Content-Type",
        b'l' => "Content-Length",
        b'k' => "Supported",
        b's' => "Subject",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'b' => "Referred-By",
        b'e' => "Content-Encoding",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        b'a' => "Accept-Contact",
        b'j' => "Reject-Contact",
        b'd' => "Request-Disposition",
        b'y' => "Identity",
        _ => return None,
    })
}

/// Canonical spelling for the headers we print and look up often; others keep their spelling.
fn canonical_name(name: &str) -> String {
    if let Some(full) = expand_compact(name) {
        return full.to_string();
    }
    const KNOWN: &[&str] = &[
        "Via",
        "From",
        "To",
        "Call-ID",
        "CSeq",
        "Contact",
        "Content-Type",
        "Content-Length",
        "Max-Forwards",
        "Route",
        "Record-Route",
        "Allow",
        "Supported",
        "Require",
        "Proxy-Require",
        "Unsupported",
        "Accept",
        "Expires",
        "Min-Expires",
        "WWW-Authenticate",
        "Authorization",
        "Proxy-Authenticate",
        "Proxy-Authorization",
        "User-Agent",
        "Server",
        "Refer-To",
        "Referred-By",
        "Replaces",
        "Event",
        "Subscription-State",
        "P-Asserted-Identity",
        "Retry-After",
        "Reason",
        "Warning",
    ];
    KNOWN
        .iter()
        .find(|k| k.eq_ignore_ascii_case(name))
        .map(|k| k.to_string())
        .unwrap_or_else(|| name.to_string())
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// Headers in message order. Lookups are case-insensitive on the canonical (expanded) name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(pub Vec<Header>);

impl Headers {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every comma-separated element across all headers of this name, in order.
    pub fn get_list<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.get_all(name)
            .flat_map(split_list)
            .filter(|s| !s.is_empty())
            .collect()
    }

    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    pub fn push(&mut self, name: &str, value: impl Into<String>) {
        self.0.push(Header {
            name: canonical_name(name),
            value: value.into(),
        });
    }

    /// Insert before every existing header (a new top Via, Record-Route).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.0.insert(
            0,
            Header {
                name: canonical_name(name),
                value: value.into(),
            },
        );
    }

    /// Replace every header of this name with one value (at the first one's position).
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        let value = value.into();
        match self
            .0
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
        {
            Some(pos) => {
                self.0[pos].value = value;
                let mut i = 0;
                self.0.retain(|h| {
                    let keep = i <= pos || !h.name.eq_ignore_ascii_case(name);
                    i += 1;
                    keep
                });
            }
            None => self.push(name, value),
        }
    }

    pub fn remove(&mut self, name: &str) {
        self.0.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    /// Remove the first (topmost) value of a possibly comma-joined list header.
    pub fn remove_first_list_value(&mut self, name: &str) {
        if let Some(pos) = self
            .0
            .iter()
            .position(|h| h.name.eq_ignore_ascii_case(name))
        {
            let parts = split_list(&self.0[pos].value);
            if parts.len() <= 1 {
                self.0.remove(pos);
            } else {
                self.0[pos].value = parts[1..].join(", ");
            }
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.0.iter()
    }
}

// ---------------------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: Method,
    pub uri: Uri,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub reason: String,
    pub headers: Headers,
    pub body: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Request(Request),
    Response(Response),
}

/// Accessors shared by requests and responses.
pub trait SipHeaders {
    fn headers(&self) -> &Headers;
    fn headers_mut(&mut self) -> &mut Headers;
    fn body(&self) -> &[u8];

    fn header(&self, name: &str) -> Option<&str> {
        self.headers().get(name)
    }

    fn call_id(&self) -> Option<&str> {
        self.header("Call-ID").map(str::trim)
    }

    fn cseq(&self) -> Option<CSeq> {
        self.header("CSeq").and_then(|v| CSeq::parse(v).ok())
    }

    // Named after the SIP header, not a conversion.
    #[allow(clippy::wrong_self_convention)]
    fn from_header(&self) -> Option<NameAddr> {
        self.header("From").and_then(|v| NameAddr::parse(v).ok())
    }

    fn to_header(&self) -> Option<NameAddr> {
        self.header("To").and_then(|v| NameAddr::parse(v).ok())
    }

    #[allow(clippy::wrong_self_convention)]
    fn from_tag(&self) -> Option<String> {
        self.from_header().and_then(|f| f.tag().map(str::to_string))
    }

    fn to_tag(&self) -> Option<String> {
        self.to_header().and_then(|t| t.tag().map(str::to_string))
    }

    /// All Via values, topmost first.
    fn vias(&self) -> Vec<Via> {
        self.headers()
            .get_list("Via")
            .into_iter()
            .filter_map(|v| Via::parse(v).ok())
            .collect()
    }

    fn top_via(&self) -> Option<Via> {
        self.headers()
            .get_list("Via")
            .first()
            .and_then(|v| Via::parse(v).ok())
    }

    fn contacts(&self) -> Vec<NameAddr> {
        self.headers()
            .get_list("Contact")
            .into_iter()
            .filter_map(|v| NameAddr::parse(v).ok())
            .collect()
    }

    fn contact(&self) -> Option<NameAddr> {
        self.contacts().into_iter().next()
    }

    fn record_routes(&self) -> Vec<NameAddr> {
        self.headers()
            .get_list("Record-Route")
            .into_iter()
            .filter_map(|v| NameAddr::parse(v).ok())
            .collect()
    }

    fn content_type(&self) -> Option<String> {
        self.header("Content-Type").map(|v| {
            v.split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_ascii_lowercase()
        })
    }

    fn expires(&self) -> Option<u32> {
        self.header("Expires").and_then(|v| v.trim().parse().ok())
    }

    /// The typed accessors for headers rsip leaves untyped (RFC 3515, 3892, 3891, 6665, 3325).
    fn refer_to(&self) -> Option<NameAddr> {
        self.header("Refer-To")
            .and_then(|v| NameAddr::parse(v).ok())
    }

    fn referred_by(&self) -> Option<NameAddr> {
        self.header("Referred-By")
            .and_then(|v| NameAddr::parse(v).ok())
    }

    fn replaces(&self) -> Option<Replaces> {
        self.header("Replaces")
            .and_then(|v| Replaces::parse(v).ok())
    }

    fn event(&self) -> Option<EventHeader> {
        self.header("Event")
            .and_then(|v| EventHeader::parse(v).ok())
    }

    fn subscription_state(&self) -> Option<SubscriptionState> {
        self.header("Subscription-State")
            .and_then(|v| SubscriptionState::parse(v).ok())
    }

    fn p_asserted_identity(&self) -> Option<NameAddr> {
        self.headers()
            .get_list("P-Asserted-Identity")
            .into_iter()
            .find_map(|v| NameAddr::parse(v).ok())
    }

    /// Option tags listed in Require / Supported / Proxy-Require.
    fn option_tags(&self, name: &str) -> Vec<String> {
        self.headers()
            .get_list(name)
            .into_iter()
            .map(|t| t.to_ascii_lowercase())
            .collect()
    }
}

impl SipHeaders for Request {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl SipHeaders for Response {
    fn headers(&self) -> &Headers {
        &self.headers
    }
    fn headers_mut(&mut self) -> &mut Headers {
        &mut self.headers
    }
    fn body(&self) -> &[u8] {
        &self.body
    }
}

impl SipHeaders for Message {
    fn headers(&self) -> &Headers {
        match self {
            Message::Request(r) => &r.headers,
            Message::Response(r) => &r.headers,
        }
    }
    fn headers_mut(&mut self) -> &mut Headers {
        match self {
            Message::Request(r) => &mut r.headers,
            Message::Response(r) => &mut r.headers,
        }
    }
    fn body(&self) -> &[u8] {
        match self {
            Message::Request(r) => &r.body,
            Message::Response(r) => &r.body,
        }
    }
}

impl Request {
    pub fn new(method: Method, uri: Uri) -> Request {
        Request {
            method,
            uri,
            headers: Headers::default(),
            body: Vec::new(),
        }
    }

    /// Build a response that copies Via, From, To, Call-ID and CSeq (RFC 3261 §8.2.6.2).
    pub fn response(&self, status: u16) -> Response {
        self.response_with_reason(status, &default_reason(status))
    }

    pub fn response_with_reason(&self, status: u16, reason: &str) -> Response {
        let mut headers = Headers::default();
        for h in self.headers.iter() {
            let n = h.name.as_str();
            if ["Via", "From", "To", "Call-ID", "CSeq"]
                .iter()
                .any(|k| k.eq_ignore_ascii_case(n))
                || (status / 100 == 1 || status / 100 == 2)
                    && n.eq_ignore_ascii_case("Record-Route")
            {
                headers.0.push(h.clone());
            }
        }
        Response {
            status,
            reason: reason.to_string(),
            headers,
            body: Vec::new(),
        }
    }

    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        self.headers.set("Content-Type", content_type);
        self.body = body;
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        write_headers(&mut out, &self.headers, self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

impl Response {
    pub fn set_body(&mut self, content_type: &str, body: Vec<u8>) {
        self.headers.set("Content-Type", content_type);
        self.body = body;
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!("SIP/2.0 {} {}\r\n", self.status, self.reason);
        write_headers(&mut out, &self.headers, self.body.len());
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    pub fn is_provisional(&self) -> bool {
        self.status < 200
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

impl Message {
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}

fn write_headers(out: &mut String, headers: &Headers, body_len: usize) {
    for h in headers.iter() {
        if h.name.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let _ = write!(out, "{}: {}\r\n", h.name, h.value);
    }
    let _ = write!(out, "Content-Length: {body_len}\r\n\r\n");
}

// ---------------------------------------------------------------------------------------------
// Transfer / event headers rsip leaves untyped
// ---------------------------------------------------------------------------------------------

/// Replaces (RFC 3891): which dialog a new INVITE takes the place of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaces {
    pub call_id: String,
    pub to_tag: String,
    pub from_tag: String,
    pub early_only: bool,
}

impl Replaces {
    pub fn parse(text: &str) -> Result<Replaces, String> {
        let text = text.trim();
        let end = text.find(';').unwrap_or(text.len());
        let call_id = text[..end].trim().to_string();
        if call_id.is_empty() {
            return Err("Replaces without a Call-ID".into());
        }
        let params = parse_header_params(&text[end..])?;
        let get = |n: &str| {
            find_param(&params, n)
                .and_then(|p| p.value.clone())
                .ok_or_else(|| format!("Replaces without {n}"))
        };
        Ok(Replaces {
            call_id,
            to_tag: get("to-tag")?,
            from_tag: get("from-tag")?,
            early_only: find_param(&params, "early-only").is_some(),
        })
    }
}

impl fmt::Display for Replaces {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{};to-tag={};from-tag={}",
            self.call_id, self.to_tag, self.from_tag
        )?;
        if self.early_only {
            f.write_str(";early-only")?;
        }
        Ok(())
    }
}

/// Event (RFC 6665): the package name and its id (REFER subscriptions use `refer;id=CSEQ`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    pub package: String,
    pub id: Option<String>,
}

impl EventHeader {
    pub fn parse(text: &str) -> Result<EventHeader, String> {
        let text = text.trim();
        let end = text.find(';').unwrap_or(text.len());
        let package = text[..end].trim();
        if !is_token(package) {
            return Err(format!("bad event package {package:?}"));
        }
        let params = parse_header_params(&text[end..])?;
        Ok(EventHeader {
            package: package.to_ascii_lowercase(),
            id: find_param(&params, "id").and_then(|p| p.value.clone()),
        })
    }
}

/// Subscription-State (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    pub state: String,
    pub reason: Option<String>,
    pub expires: Option<u32>,
}

impl SubscriptionState {
    pub fn parse(text: &str) -> Result<SubscriptionState, String> {
        let text = text.trim();
        let end = text.find(';').unwrap_or(text.len());
        let state = text[..end].trim();
        if !is_token(state) {
            return Err(format!("bad subscription state {state:?}"));
        }
        let params = parse_header_params(&text[end..])?;
        Ok(SubscriptionState {
            state: state.to_ascii_lowercase(),
            reason: find_param(&params, "reason").and_then(|p| p.value.clone()),
            expires: find_param(&params, "expires")
                .and_then(|p| p.value.as_deref())
                .and_then(|v| v.parse().ok()),
        })
    }

    pub fn is_terminated(&self) -> bool {
        self.state == "terminated"
    }
}

/// The status line inside a `message/sipfrag` NOTIFY body (RFC 3420, RFC 3515 §2.4.5).
pub fn parse_sipfrag_status(body: &[u8]) -> Option<(u16, String)> {
    let text = std::str::from_utf8(body).ok()?;
    let line = text.lines().next()?.trim();
    let rest = line.strip_prefix("SIP/2.0 ")?;
    let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
    let code: u16 = code.parse().ok().filter(|c| (100..700).contains(c))?;
    Some((code, reason.trim().to_string()))
}

/// One part of a multipart body (RFC 2046 §5.1), with the headers it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BodyPart {
    pub headers: Headers,
    pub body: Vec<u8>,
}

impl BodyPart {
    /// The part's media type, lower-cased and without parameters. A part without Content-Type
    /// is `text/plain` (RFC 2046 §5.1.1).
    pub fn content_type(&self) -> String {
        self.headers
            .get("Content-Type")
            .and_then(|v| v.split(';').next())
            .map(|t| t.trim().to_ascii_lowercase())
            .unwrap_or_else(|| "text/plain".into())
    }
}

/// Split a multipart body (`multipart/mixed` and kin, RFC 2046 §5.1) into its parts, using the
/// boundary named in `content_type` (the whole Content-Type header value).
pub fn split_multipart(content_type: &str, body: &[u8]) -> Result<Vec<BodyPart>, ParseError> {
    let bad = |reason: &str| ParseError::Header {
        header: "Content-Type".into(),
        reason: reason.into(),
    };
    let (media_type, params) = content_type.split_once(';').unwrap_or((content_type, ""));
    if !media_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("multipart/")
    {
        return Err(bad("not a multipart type"));
    }
    let params = parse_header_params(&format!(";{params}")).map_err(|why| bad(&why))?;
    let boundary = find_param(&params, "boundary")
        .and_then(|p| p.value.as_deref())
        .map(|v| v.trim_matches('"'))
        .filter(|v| !v.is_empty() && v.len() <= 70)
        .ok_or_else(|| bad("multipart without a boundary"))?;
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let bad_body = |reason: &str| ParseError::Header {
        header: "multipart body".into(),
        reason: reason.into(),
    };

    // Delimiters start a line; the CRLF before one belongs to the delimiter, not to the part.
    let mut starts = Vec::new();
    let mut at = 0;
    while let Some(found) = find_bytes(&body[at..], delimiter) {
        let pos = at + found;
        if pos == 0 || body[..pos].ends_with(b"\n") {
            starts.push(pos);
        }
        at = pos + delimiter.len();
    }
    let mut parts = Vec::new();
    for (i, &pos) in starts.iter().enumerate() {
        let after = &body[pos + delimiter.len()..];
        if after.starts_with(b"--") {
            return Ok(parts);
        }
        let line_end = after
            .iter()
            .position(|b| *b == b'\n')
            .ok_or_else(|| bad_body("delimiter line without an end"))?;
        let content_start = pos + delimiter.len() + line_end + 1;
        let next = starts
            .get(i + 1)
            .copied()
            .ok_or_else(|| bad_body("no closing delimiter"))?;
        let mut content_end = next.max(content_start);
        if body[..content_end].ends_with(b"\r\n") && content_end - 2 >= content_start {
            content_end -= 2;
        } else if body[..content_end].ends_with(b"\n") && content_end > content_start {
            content_end -= 1;
        }
        parts.push(
            parse_body_part(&body[content_start..content_end]).map_err(|why| bad_body(&why))?,
        );
    }
    Err(bad_body("no closing delimiter"))
}

fn parse_body_part(part: &[u8]) -> Result<BodyPart, String> {
    // A part with no headers starts with its blank line.
    let (head, body) = if part.starts_with(b"\r\n") {
        (&part[..0], &part[2..])
    } else if part.starts_with(b"\n") {
        (&part[..0], &part[1..])
    } else {
        match find_head_end(part) {
            Some((head_end, body_start)) => (&part[..head_end], &part[body_start..]),
            None => return Err("part without an empty line after its headers".into()),
        }
    };
    let head = std::str::from_utf8(head).map_err(|_| "part headers are not UTF-8".to_string())?;
    let mut headers = Headers::default();
    if !head.is_empty() {
        for line in unfold(head) {
            let (name, value) = split_header_line(&line)?;
            headers.push(name, value);
        }
    }
    Ok(BodyPart {
        headers,
        body: body.to_vec(),
    })
}

fn find_bytes(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------------

/// What we could salvage from a request that failed validation: enough to send the error
/// response (RFC 4475 asks for an answer rather than silence whenever possible).
#[derive(Debug, Clone)]
pub struct Rejected {
    pub error: ParseError,
    /// The request as far as it parsed, when its start line and headers were readable. Boxed:
    /// errors are the rare path and should not make every `Result` of `parse` large.
    pub request: Option<Box<Request>>,
}

/// Parse one message from a datagram. Octets after Content-Length are ignored (RFC 3261 §18.3).
pub fn parse(bytes: &[u8]) -> Result<Message, Rejected> {
    parse_framed(bytes).map(|(m, _)| m)
}

/// Parse one message and return how many bytes it took, for stream framing.
pub fn parse_framed(bytes: &[u8]) -> Result<(Message, usize), Rejected> {
    let dropped = |error| Rejected {
        error,
        request: None,
    };
    if bytes.len() > MAX_MESSAGE_SIZE {
        return Err(dropped(ParseError::TooLarge));
    }
    // Leading CRLFs before a message are permitted (RFC 3261 §7.5) and are keepalives on streams.
    let start = bytes
        .iter()
        .position(|b| *b != b'\r' && *b != b'\n')
        .ok_or_else(|| dropped(ParseError::Empty))?;
    let bytes = &bytes[start..];

    // Past this point a failure is only recorded, and reading goes on: a request whose start
    // line and identifying headers are readable can still be answered (RFC 4475 §1), so the
    // first error found travels with the request as far as it could be read.
    let mut first_error = None;
    let (head_bytes, body_start) = match find_head_end(bytes) {
        Some((head_end, body_start)) => (&bytes[..head_end], body_start),
        None => {
            first_error = Some(ParseError::HeaderLine {
                line: 0,
                reason: "no empty line after the headers".into(),
            });
            (bytes, bytes.len())
        }
    };
    let head = match std::str::from_utf8(head_bytes) {
        Ok(text) => std::borrow::Cow::Borrowed(text),
        Err(_) => {
            first_error.get_or_insert(ParseError::HeaderLine {
                line: 0,
                reason: "headers are not UTF-8".into(),
            });
            String::from_utf8_lossy(head_bytes)
        }
    };
    let mut lines = unfold(&head).into_iter();
    let start_line = lines.next().unwrap_or_default();
    let mut headers = Headers::default();
    for (index, line) in lines.enumerate() {
        match split_header_line(&line) {
            Ok((name, value)) => headers.push(name, value),
            Err(reason) => {
                first_error.get_or_insert(ParseError::HeaderLine {
                    line: index + 2,
                    reason,
                });
            }
        }
    }

    // Content-Length: required on streams, and it bounds the body on datagrams too.
    let available = bytes.len() - body_start;
    let body_len = declared_body_length(&headers, available).unwrap_or_else(|error| {
        first_error.get_or_insert(error);
        available
    });
    let body = bytes[body_start..body_start + body_len].to_vec();
    let consumed = start + body_start + body_len;

    if let Some(rest) = start_line.strip_prefix("SIP/") {
        // A broken response is dropped whatever is wrong with it: nothing answers a response.
        if let Some(error) = first_error {
            return Err(dropped(error));
        }
        let mut it = rest.splitn(3, ' ');
        let version = it.next().unwrap_or_default();
        if version != "2.0" {
            return Err(dropped(ParseError::Version(format!("SIP/{version}"))));
        }
        let code_text = it.next().unwrap_or_default();
        let status: u16 = code_text
            .parse()
            .ok()
            .filter(|c| (100..700).contains(c) && code_text.len() == 3)
            .ok_or_else(|| {
                dropped(ParseError::StartLine(format!(
                    "bad status code {code_text:?}"
                )))
            })?;
        let reason = it.next().unwrap_or_default().to_string();
        let response = Response {
            status,
            reason,
            headers,
            body,
        };
        validate_common(&response).map_err(dropped)?;
        return Ok((Message::Response(response), consumed));
    }

    // Request-Line = Method SP Request-URI SP SIP-Version: exactly single spaces (RFC 4475
    // §3.1.2.9), with trailing whitespace tolerated (§3.1.2.10 allows it).
    let line = start_line.trim_end_matches([' ', '\t']);
    let words: Vec<&str> = line.split(' ').collect();
    // Without a method token the message is not recognisably a request: nothing to answer.
    let method = Method::parse(words.first().copied().unwrap_or_default())
        .map_err(|error| dropped(first_error.clone().unwrap_or(error)))?;
    let uri = Uri::parse(words.get(1).copied().unwrap_or_default());
    let request = Request {
        method,
        uri: uri
            .clone()
            .unwrap_or_else(|_| Uri::sip(None, "invalid", None)),
        headers,
        body,
    };
    let partial = |error| Rejected {
        error,
        request: Some(Box::new(request.clone())),
    };
    if let Some(error) = first_error {
        return Err(partial(error));
    }
    let [_, _, version] = words.as_slice() else {
        return Err(partial(ParseError::StartLine(format!(
            "expected 'METHOD URI SIP/2.0', got {line:?}"
        ))));
    };
    if !version.starts_with("SIP/") {
        return Err(partial(ParseError::StartLine(format!(
            "bad version {version:?}"
        ))));
    }
    if *version != "SIP/2.0" {
        return Err(partial(ParseError::Version(version.to_string())));
    }
    if let Err(e) = uri {
        return Err(partial(ParseError::RequestUri(e.to_string())));
    }
    if request.uri.is_sip() && !request.uri.headers.is_empty() {
        // Headers are not allowed in a Request-URI (RFC 3261 §19.1.5).
        return Err(partial(ParseError::RequestUri(
            "URI headers are not allowed in a Request-URI".into(),
        )));
    }
    validate_common(&request).map_err(partial)?;
    if let Some(cseq) = request.cseq() {
        if cseq.method != request.method {
            return Err(partial(ParseError::CSeqMismatch {
                method: request.method.to_string(),
                cseq: cseq.method.to_string(),
            }));
        }
    }
    Ok((Message::Request(request), consumed))
}

/// `name: value` of one unfolded header line; the name may be followed by whitespace
/// (RFC 3261 §7.3.1 HCOLON).
fn split_header_line(line: &str) -> Result<(&str, &str), String> {
    let (name, value) = line
        .split_once(':')
        .ok_or_else(|| format!("no ':' in {line:?}"))?;
    let name = name.trim_end_matches([' ', '\t']);
    if !is_token(name) {
        return Err(format!("bad header name {name:?}"));
    }
    Ok((name, value.trim()))
}

/// The body length Content-Length declares, checked against what arrived; without the header a
/// datagram's body is the rest of it (RFC 3261 §18.3).
fn declared_body_length(headers: &Headers, available: usize) -> Result<usize, ParseError> {
    let lengths: Vec<&str> = headers.get_all("Content-Length").collect();
    match lengths.as_slice() {
        [] => Ok(available),
        [one] => {
            let one = one.trim();
            if one.is_empty() || !one.bytes().all(|b| b.is_ascii_digit()) {
                return Err(ParseError::ContentLength(format!("{one:?}")));
            }
            let declared: usize = one
                .parse()
                .map_err(|_| ParseError::ContentLength(one.to_string()))?;
            if declared > available {
                return Err(ParseError::Truncated {
                    declared,
                    available,
                });
            }
            Ok(declared)
        }
        _ => Err(ParseError::DuplicateHeader("Content-Length")),
    }
}

/// Checks every message must pass before the transaction layer sees it: the headers that
/// identify a transaction must be present once and well-formed (RFC 3261 §8.1.1, §20).
fn validate_common(msg: &impl SipHeaders) -> Result<(), ParseError> {
    let h = msg.headers();
    for name in ["Call-ID", "CSeq", "From", "To", "Max-Forwards"] {
        if h.count(name) > 1 {
            return Err(ParseError::DuplicateHeader(name));
        }
    }
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if h.count(name) == 0 {
            return Err(ParseError::MissingHeader(name));
        }
    }
    let bad = |header: &str, reason: String| ParseError::Header {
        header: header.to_string(),
        reason,
    };
    CSeq::parse(h.get("CSeq").unwrap_or_default()).map_err(|r| bad("CSeq", r))?;
    for v in h.get_list("Via") {
        Via::parse(v).map_err(|r| bad("Via", r))?;
    }
    if h.get_list("Via").is_empty() {
        return Err(ParseError::MissingHeader("Via"));
    }
    for name in ["From", "To"] {
        NameAddr::parse(h.get(name).unwrap_or_default()).map_err(|r| bad(name, r))?;
    }
    let call_id = h.get("Call-ID").unwrap_or_default().trim();
    if call_id.is_empty() || call_id.bytes().any(|b| b.is_ascii_whitespace()) {
        return Err(bad("Call-ID", format!("{call_id:?}")));
    }
    if let Some(mf) = h.get("Max-Forwards") {
        // 1*DIGIT, leading zeros allowed (RFC 4475 wsinv sends 0068), at most 255 (§3.1.2.4).
        let mf = mf.trim();
        let significant = mf.trim_start_matches('0');
        let in_range = significant.len() <= 3
            && significant
                .parse::<u16>()
                .map_or(significant.is_empty(), |n| n <= 255);
        if mf.is_empty() || !mf.bytes().all(|b| b.is_ascii_digit()) || !in_range {
            return Err(bad("Max-Forwards", format!("{mf:?}")));
        }
    }
    for v in h.get_list("Contact") {
        if v != "*" {
            NameAddr::parse(v).map_err(|r| bad("Contact", r))?;
        }
    }
    if let Some(e) = h.get("Expires") {
        let e = e.trim();
        if e.is_empty() || !e.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("Expires", format!("{e:?}")));
        }
    }
    Ok(())
}

/// Where the header block ends: (end of headers, start of body). Accepts CRLF or bare LF.
fn find_head_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\n' {
            match (bytes.get(i + 1), bytes.get(i + 2)) {
                (Some(b'\n'), _) => return Some((i, i + 2)),
                (Some(b'\r'), Some(b'\n')) => return Some((i, i + 3)),
                _ => {}
            }
        }
        i += 1;
    }
    None
}

/// Split the header block into logical lines, joining folded continuation lines (RFC 3261 §7.3.1).
fn unfold(head: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    for raw in head.split('\n') {
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.starts_with([' ', '\t']) {
            if let Some(last) = lines.last_mut() {
                last.push(' ');
                last.push_str(raw.trim_start());
                continue;
            }
        }
        lines.push(raw.to_string());
    }
    lines
}

/// Splits a byte stream (TCP) into messages by Content-Length, skipping CRLF keepalives.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buffer: Vec<u8>,
}

/// One item out of a stream.
#[derive(Debug)]
pub enum Framed {
    Message(Message),
    /// A malformed message that was skipped; the stream stays usable when framing was intact.
    Invalid(Rejected),
    /// A keepalive (RFC 5626 §3.5.1): a double CRLF "ping" that wants a single CRLF "pong".
    Ping,
}

/// A framing error the stream cannot recover from: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StreamError {
    #[error("message larger than {MAX_MESSAGE_SIZE} bytes on a stream")]
    TooLarge,
    #[error("message without Content-Length on a stream")]
    MissingContentLength,
}

impl StreamFramer {
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next complete item, `Ok(None)` when more bytes are needed.
    pub fn next_item(&mut self) -> Result<Option<Framed>, StreamError> {
        if self.buffer.starts_with(b"\r\n\r\n") {
            self.buffer.drain(..4);
            return Ok(Some(Framed::Ping));
        }
        let skip = self
            .buffer
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .unwrap_or(self.buffer.len());
        if skip == self.buffer.len() {
            // Only line ends so far: a lone CRLF is a pong, wait for more otherwise.
            if self.buffer.len() >= 4 {
                self.buffer.clear();
            }
            return Ok(None);
        }
        if skip > 0 {
            self.buffer.drain(..skip);
        }
        let Some((head_end, body_start)) = find_head_end(&self.buffer) else {
            if self.buffer.len() > MAX_MESSAGE_SIZE {
                return Err(StreamError::TooLarge);
            }
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]);
        let lines = unfold(&head);
        let declared = lines.iter().skip(1).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (canonical_name(name.trim()) == "Content-Length").then(|| value.trim())
        });
        // Digits only, as `parse` demands (usize's parser would also take "+5"); a number too
        // big for usize is too large for us, anything else leaves the message's end unknown.
        let length = match declared {
            Some(v) if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => {
                v.parse::<usize>().map_err(|_| StreamError::TooLarge)?
            }
            _ => return Err(StreamError::MissingContentLength),
        };
        let total = match body_start.checked_add(length) {
            Some(total) if total <= MAX_MESSAGE_SIZE => total,
            _ => return Err(StreamError::TooLarge),
        };
        if self.buffer.len() < total {
            return Ok(None);
        }
        let frame: Vec<u8> = self.buffer.drain(..total).collect();
        Ok(Some(match parse(&frame) {
            Ok(m) => Framed::Message(m),
            Err(r) => Framed::Invalid(r),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP client.atlanta.example.com:5060;branch=z9hG4bK74bf9;rport\r\n\
Max-Forwards: 70\r\n\
From: \"Alice\" <sip:alice@atlanta.example.com>;tag=9fxced76sl\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
Call-ID: 3848276298220188511@atlanta.example.com\r\n\
CSeq: 2 INVITE\r\n\
Contact: <sip:alice@client.atlanta.example.com;transport=tcp>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

    #[test]
    fn parses_a_typical_invite() {
        let Ok(Message::Request(r)) = parse(INVITE.as_bytes()) else {
            panic!("INVITE did not parse")
        };
        assert_eq!(r.method, Method::Invite);
        assert_eq!(r.uri.user.as_deref(), Some("bob"));
        assert_eq!(r.uri.host, "biloxi.example.com");
        let via = r.top_via().expect("via");
        assert_eq!(via.branch(), Some("z9hG4bK74bf9"));
        assert!(via.has_param("rport"));
        assert_eq!(via.port, Some(5060));
        let from = r.from_header().expect("from");
        assert_eq!(from.display_name.as_deref(), Some("Alice"));
        assert_eq!(from.tag(), Some("9fxced76sl"));
        assert_eq!(
            r.to_header().expect("to").display_name.as_deref(),
            Some("Bob")
        );
        assert_eq!(
            r.cseq(),
            Some(CSeq {
                seq: 2,
                method: Method::Invite
            })
        );
        assert_eq!(r.body, b"v=0\n");
        assert_eq!(r.contact().expect("contact").uri.transport(), "tcp");
    }

    #[test]
    fn print_then_parse_round_trips() {
        let Ok(m) = parse(INVITE.as_bytes()) else {
            panic!()
        };
        let printed = m.to_bytes();
        let again = parse(&printed).map_err(|r| r.error).expect("reparse");
        assert_eq!(m, again);
    }

    #[test]
    fn compact_forms_are_expanded() {
        let text = "OPTIONS sip:x@h SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bKa\r\nf: <sip:a@h>;tag=1\r\nt: sip:x@h\r\ni: abc\r\nCSeq: 1 OPTIONS\r\nm: <sip:a@h>\r\nl: 0\r\n\r\n";
        let Ok(Message::Request(r)) = parse(text.as_bytes()) else {
            panic!()
        };
        assert_eq!(r.call_id(), Some("abc"));
        assert!(r.contact().is_some());
        assert!(String::from_utf8_lossy(&r.to_bytes()).contains("Call-ID: abc\r\n"));
    }

    #[test]
    fn refer_to_keeps_its_replaces_header() {
        let na = NameAddr::parse("<sip:carol@h?Replaces=abc%40h%3Bto-tag%3D1%3Bfrom-tag%3D2>")
            .expect("refer-to");
        let replaces = na.uri.headers.first().expect("header");
        assert_eq!(replaces.name, "Replaces");
        let decoded = percent_decode(replaces.value.as_deref().unwrap_or_default());
        let r = Replaces::parse(&decoded).expect("replaces");
        assert_eq!(
            (r.call_id.as_str(), r.to_tag.as_str(), r.from_tag.as_str()),
            ("abc@h", "1", "2")
        );
    }

    #[test]
    fn stream_framer_splits_and_answers_pings() {
        let mut f = StreamFramer::default();
        let one = INVITE.as_bytes();
        f.push(b"\r\n\r\n");
        f.push(&one[..10]);
        assert!(matches!(f.next_item(), Ok(Some(Framed::Ping))));
        assert!(matches!(f.next_item(), Ok(None)));
        f.push(&one[10..]);
        f.push(one);
        assert!(matches!(f.next_item(), Ok(Some(Framed::Message(_)))));
        assert!(matches!(f.next_item(), Ok(Some(Framed::Message(_)))));
        assert!(matches!(f.next_item(), Ok(None)));
    }

    #[test]
    fn stream_framer_survives_absurd_content_lengths() {
        for length in [
            "18446744073709551616",
            "18446744073709551615",
            "+5",
            "-1",
            "",
        ] {
            let mut f = StreamFramer::default();
            f.push(format!("OPTIONS sip:h SIP/2.0\r\nContent-Length: {length}\r\n\r\n").as_bytes());
            let expected = if length.starts_with("1844") {
                StreamError::TooLarge
            } else {
                StreamError::MissingContentLength
            };
            assert_eq!(f.next_item().err(), Some(expected), "{length:?}");
        }
    }

    #[test]
    fn via_allows_whitespace_around_slashes_and_colons_only() {
        let via = Via::parse("SIP /\t2.0 / tcp  host.example.com : 5061 ; branch = z9hG4bKx")
            .expect("LWS is legal there");
        assert_eq!(
            (
                via.transport.as_str(),
                via.host.as_str(),
                via.port,
                via.branch()
            ),
            ("TCP", "host.example.com", Some(5061), Some("z9hG4bKx"))
        );
        assert!(Via::parse("SIP/2.0/UDP host.example .com").is_err());
        assert!(Via::parse("SIP/2.0/UDP").is_err());
        assert!(Via::parse("SIP/2.0/UDPhost").is_err());
        assert!(Via::parse("SIP/3.0/UDP host").is_err());
    }

    #[test]
    fn uri_user_may_hold_question_marks_and_headers_may_hold_at_signs() {
        let u = Uri::parse("sip:a?b:pw@h.example;x=1?Subject=hi").expect("uri");
        assert_eq!(u.user.as_deref(), Some("a?b"));
        assert_eq!(u.password.as_deref(), Some("pw"));
        assert_eq!(u.host, "h.example");
        assert_eq!(u.headers, vec![Param::new("Subject", Some("hi".into()))]);
        // A stray unescaped '@' in a header stays in the header.
        let r = Uri::parse("sip:bob@pbx?Replaces=abc@pbx%3Bto-tag%3D1").expect("uri");
        assert_eq!((r.user.as_deref(), r.host.as_str()), (Some("bob"), "pbx"));
        assert_eq!(r.headers[0].value.as_deref(), Some("abc@pbx%3Bto-tag%3D1"));
    }

    #[test]
    fn quoted_parameter_values_keep_their_escapes() {
        let na = NameAddr::parse(r#"<sip:a@h>;x="say \"hi\"";tag=1"#).expect("name-addr");
        assert_eq!(
            na.param("x").and_then(|p| p.value.as_deref()),
            Some(r#""say \"hi\"""#)
        );
        assert_eq!(na.to_string(), r#"<sip:a@h>;x="say \"hi\"";tag=1"#);
    }

    #[test]
    fn max_forwards_takes_leading_zeros_up_to_255() {
        for (value, ok) in [
            ("0068", true),
            ("0", true),
            ("255", true),
            ("00255", true),
            ("256", false),
            ("300", false),
            ("-1", false),
            ("", false),
        ] {
            let text = INVITE.replace("Max-Forwards: 70", &format!("Max-Forwards: {value}"));
            assert_eq!(parse(text.as_bytes()).is_ok(), ok, "{value:?}");
        }
    }

    #[test]
    fn a_request_that_fails_keeps_what_was_readable() {
        for broken in [
            INVITE.replacen("INVITE sip:", "INVITE  sip:", 1),
            INVITE.replace("Content-Length: 4", "Content-Length: 400"),
            INVITE.replace("Content-Length: 4", "Content-Length: -4"),
            INVITE.replace("Max-Forwards: 70\r\n", "Max-Forwards 70\r\n"),
        ] {
            let Err(rejected) = parse(broken.as_bytes()) else {
                panic!("must be rejected: {broken}")
            };
            let request = rejected.request.expect("partial request");
            assert_eq!(
                request.call_id(),
                Some("3848276298220188511@atlanta.example.com")
            );
            assert_eq!(rejected.error.status(), 400);
        }
        // A response is never salvaged: nothing answers a response.
        let Err(rejected) = parse(b"SIP/2.0 99999 Huge\r\nCall-ID: x\r\n\r\n") else {
            panic!("must be rejected")
        };
        assert!(rejected.request.is_none());
    }

    #[test]
    fn multipart_bodies_split_into_parts() {
        let body = b"preamble\r\n--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n\r\n--xyz\r\n\r\nplain\r\n--xyz--\r\nepilogue";
        let parts = split_multipart("multipart/mixed; boundary=\"xyz\"", body).expect("parts");
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].content_type(), "application/sdp");
        assert_eq!(parts[0].body, b"v=0\r\n");
        assert_eq!(parts[1].content_type(), "text/plain");
        assert_eq!(parts[1].body, b"plain");
        assert!(split_multipart("multipart/mixed", body).is_err());
        assert!(split_multipart("multipart/mixed;boundary=xyz", b"--xyz\r\n\r\nno end").is_err());
        assert!(split_multipart("application/sdp;boundary=xyz", body).is_err());
    }

    #[test]
    fn sipfrag_status_is_read() {
        assert_eq!(
            parse_sipfrag_status(b"SIP/2.0 180 Ringing\r\n"),
            Some((180, "Ringing".into()))
        );
        assert_eq!(parse_sipfrag_status(b"garbage"), None);
    }

    #[test]
    fn reasons_for_generated_responses() {
        assert_eq!(default_reason(486), "Busy Here");
        assert_eq!(default_reason(481), "Call/Transaction Does Not Exist");
    }
}
