//! What a UAS checks in a request after it parsed and before the transaction user sees it
//! (RFC 3261 §8.2), and the answer to a request that did not parse at all.
//!
//! Parsing (`msg`) decides whether bytes are a SIP message; this module decides whether this user
//! agent can act on one. The checks run in the order of RFC 3261 §8.2 — method, Request-URI
//! scheme, Require, body, Accept — so a request with several problems gets the answer a peer
//! expects first. The RFC 4475 torture messages pin the verdicts (tests/rfc4475.rs).

use std::hash::{Hash, Hasher};

use super::msg::{
    default_reason, split_multipart, Headers, Method, NameAddr, Rejected, Request, Response,
    Scheme, SipHeaders,
};

/// What this user agent accepts. The defaults are what ringside's call handling implements.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UasPolicy {
    /// Methods answered with something other than 405 / 501.
    pub allowed_methods: Vec<Method>,
    /// Option tags this UA implements, matched case-insensitively against Require.
    pub supported_extensions: Vec<String>,
    /// Media types (lower case, no parameters) of request bodies the UA can use.
    pub accepted_content_types: Vec<String>,
}

impl Default for UasPolicy {
    fn default() -> Self {
        UasPolicy {
            allowed_methods: vec![
                Method::Invite,
                Method::Ack,
                Method::Bye,
                Method::Cancel,
                Method::Options,
                Method::Info,
                Method::Update,
                Method::Refer,
                Method::Notify,
            ],
            supported_extensions: vec!["replaces".into()],
            accepted_content_types: vec![
                "application/sdp".into(),
                "application/dtmf-relay".into(),
                "message/sipfrag".into(),
            ],
        }
    }
}

/// Why a request is refused: the status, its reason phrase and the headers RFC 3261 requires
/// with that status (Allow with 405, Unsupported with 420, Accept / Accept-Encoding with 415).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}

impl Rejection {
    fn new(status: u16) -> Rejection {
        Rejection {
            status,
            reason: default_reason(status),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: &str, value: String) -> Rejection {
        self.headers.push((name.to_string(), value));
        self
    }

    /// The response to `request` carrying this rejection (without a To tag: the caller owns the
    /// dialog state and the random source that tags come from).
    pub fn to_response(&self, request: &Request) -> Response {
        let mut response = request.response_with_reason(self.status, &self.reason);
        for (name, value) in &self.headers {
            response.headers.push(name, value.clone());
        }
        response
    }
}

/// Check a parsed request the way RFC 3261 §8.2 orders it. `Ok` means the transaction user may
/// process it. An ACK always passes: nothing can answer an ACK, so refusing one is the caller's
/// silent choice, not a response.
///
/// Deliberate choices where RFC 4475 or a strict reading would differ:
/// - Proxy-Require is not checked: it names features for proxies, and a proxy that implements
///   them forwards the header unchanged, so a UA that refused it would break working calls. The
///   torture message bext01 still gets its 420, from its Require.
/// - Accept is checked on INVITE only, where our 2xx must carry SDP. An OPTIONS 200 simply
///   leaves the body out when the asker cannot take SDP (RFC 3261 §11.2), so 406 would only make
///   keep-alive probes fail.
/// - Max-Forwards 0 is not refused: a UA is the last hop, and it processes the request (RFC 4475
///   zeromf). A missing Max-Forwards is tolerated (RFC 2543 peers, inv2543).
pub fn check_request(req: &Request, policy: &UasPolicy) -> Result<(), Rejection> {
    if req.method == Method::Ack {
        return Ok(());
    }
    check_method(req, policy)?;
    if !matches!(req.uri.scheme, Scheme::Sip | Scheme::Sips | Scheme::Tel) {
        return Err(Rejection::new(416));
    }
    // A CANCEL shares its INVITE's fate: it carries no Require or body of its own to judge.
    if req.method == Method::Cancel {
        return Ok(());
    }
    check_require(req, policy)?;
    check_body(req, policy)?;
    check_accept(req)
}

fn check_method(req: &Request, policy: &UasPolicy) -> Result<(), Rejection> {
    if policy.allowed_methods.contains(&req.method) {
        return Ok(());
    }
    // 405 says "I know this method and you may not use it here", 501 "I do not know it"
    // (RFC 3261 §21.4.6, §21.5.2): extension methods are the ones we do not know.
    if matches!(req.method, Method::Extension(_)) {
        return Err(Rejection::new(501));
    }
    let allow = policy
        .allowed_methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    Err(Rejection::new(405).with_header("Allow", allow))
}

fn check_require(req: &Request, policy: &UasPolicy) -> Result<(), Rejection> {
    let unsupported: Vec<&str> = req
        .headers
        .get_list("Require")
        .into_iter()
        .filter(|tag| {
            !policy
                .supported_extensions
                .iter()
                .any(|known| known.eq_ignore_ascii_case(tag))
        })
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    Err(Rejection::new(420).with_header("Unsupported", unsupported.join(", ")))
}

fn accepted_types(policy: &UasPolicy) -> String {
    policy.accepted_content_types.join(", ")
}

fn is_accepted(policy: &UasPolicy, media_type: &str) -> bool {
    policy
        .accepted_content_types
        .iter()
        .any(|t| t.eq_ignore_ascii_case(media_type))
}

fn check_body(req: &Request, policy: &UasPolicy) -> Result<(), Rejection> {
    // Some stacks send a bare CRLF as an "empty" body; there is nothing in it to understand.
    if req.body.iter().all(|b| b.is_ascii_whitespace()) {
        return Ok(());
    }
    let unsupported_type = || Rejection::new(415).with_header("Accept", accepted_types(policy));
    // RFC 3261 §8.2.3: an encoding we cannot undo is a 415 that lists the ones we can.
    let encodings = req.headers.get_list("Content-Encoding");
    if encodings
        .iter()
        .any(|e| !e.eq_ignore_ascii_case("identity"))
    {
        return Err(unsupported_type().with_header("Accept-Encoding", "identity".into()));
    }
    // A body the sender marked optional may be ignored instead of refused (RFC 3261 §20.11).
    let optional = req.header("Content-Disposition").is_some_and(|d| {
        d.to_ascii_lowercase()
            .replace(' ', "")
            .contains("handling=optional")
    });
    let Some(media_type) = req.content_type() else {
        return if optional {
            Ok(())
        } else {
            Err(unsupported_type())
        };
    };
    if is_accepted(policy, &media_type) {
        return Ok(());
    }
    if media_type.starts_with("multipart/") {
        // A multipart body is usable when one of its parts is (SIP-T's SDP + ISUP, an SDP with
        // an attachment); parts we cannot use are ignored.
        let content_type = req.header("Content-Type").unwrap_or_default();
        return match split_multipart(content_type, &req.body) {
            Ok(parts) if parts.iter().any(|p| is_accepted(policy, &p.content_type())) => Ok(()),
            Ok(_) if optional => Ok(()),
            Ok(_) => Err(unsupported_type()),
            Err(error) => Err(Rejection {
                status: 400,
                reason: error.reason_phrase(),
                headers: Vec::new(),
            }),
        };
    }
    if optional {
        return Ok(());
    }
    Err(unsupported_type())
}

/// 406 when an INVITE's Accept rules out the SDP its 2xx must carry (RFC 3261 §21.4.7).
fn check_accept(req: &Request) -> Result<(), Rejection> {
    if req.method != Method::Invite || req.headers.count("Accept") == 0 {
        return Ok(());
    }
    // An empty Accept header means no body is acceptable (RFC 3261 §20.1).
    let takes_sdp = req
        .headers
        .get_list("Accept")
        .into_iter()
        .any(|range| media_range_admits(range, "application", "sdp"));
    if takes_sdp {
        Ok(())
    } else {
        Err(Rejection::new(406))
    }
}

/// Whether one Accept media range (`type/subtype;params`, wildcards allowed) admits a type.
fn media_range_admits(range: &str, kind: &str, subtype: &str) -> bool {
    let mut pieces = range.split(';');
    let media = pieces.next().unwrap_or_default().trim();
    // q=0 means "not acceptable" (RFC 2616 §14.1, which RFC 3261 §20.1 follows).
    let refused = pieces.any(|p| {
        let p = p.trim();
        p.get(..2).is_some_and(|n| n.eq_ignore_ascii_case("q="))
            && p[2..].trim().parse::<f32>().is_ok_and(|q| q <= 0.0)
    });
    let Some((range_kind, range_subtype)) = media.split_once('/') else {
        return false;
    };
    let (range_kind, range_subtype) = (range_kind.trim(), range_subtype.trim());
    let kind_ok = range_kind == "*" || range_kind.eq_ignore_ascii_case(kind);
    let subtype_ok = range_subtype == "*" || range_subtype.eq_ignore_ascii_case(subtype);
    kind_ok && subtype_ok && !refused
}

/// The error response to a request that failed to parse, when enough of it was readable to
/// answer: a request start line and a Via, From, To, Call-ID and CSeq. `None` means drop it:
/// responses and unreadable messages get no answer, nor does an ACK (RFC 4475 asks for an
/// answer rather than silence whenever one can be routed back).
///
/// The response copies every Via and the first of each single-valued header, so even a request
/// with duplicates (RFC 4475 multi01) gets a well-formed answer, and adds a To tag when the To
/// has none (RFC 3261 §8.2.6.2). That tag is derived from the request rather than random: the
/// response ends the transaction and no dialog can come of it.
pub fn response_for_rejected(rejected: &Rejected) -> Option<Response> {
    let request = rejected.request.as_ref()?;
    if request.method == Method::Ack {
        return None;
    }
    let h = &request.headers;
    let vias = h.get_list("Via");
    if vias.is_empty() {
        return None;
    }
    let first = |name: &str| h.get(name).map(str::trim).filter(|v| !v.is_empty());
    let (from, to, call_id, cseq) = (
        first("From")?,
        first("To")?,
        first("Call-ID")?,
        first("CSeq")?,
    );
    let mut headers = Headers::default();
    for via in h.get_all("Via") {
        headers.push("Via", via);
    }
    headers.push("From", from);
    headers.push("To", with_to_tag(to, call_id, cseq, vias[0]));
    headers.push("Call-ID", call_id);
    headers.push("CSeq", cseq);
    Some(Response {
        status: rejected.error.status(),
        reason: rejected.error.reason_phrase(),
        headers,
        body: Vec::new(),
    })
}

/// The To value with a tag appended when it parses and has none; an unreadable To is echoed
/// as it came, since appending to it could land inside a broken quoted string.
fn with_to_tag(to: &str, call_id: &str, cseq: &str, top_via: &str) -> String {
    match NameAddr::parse(to) {
        Ok(addr) if addr.tag().is_none() => {
            let mut hasher = std::hash::DefaultHasher::new();
            (call_id, cseq, top_via, to).hash(&mut hasher);
            format!("{to};tag=rj{:016x}", hasher.finish())
        }
        _ => to.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::msg::{parse, Message};

    fn request(text: &str) -> Request {
        match parse(text.replace('\n', "\r\n").as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("test request did not parse: {other:?}"),
        }
    }

    fn invite(extra: &str, body: &str) -> Request {
        request(&format!(
            "INVITE sip:bob@example.com SIP/2.0\n\
             Via: SIP/2.0/UDP pc.example.com;branch=z9hG4bK1\n\
             From: <sip:alice@example.com>;tag=1\n\
             To: <sip:bob@example.com>\n\
             Call-ID: c1\n\
             CSeq: 1 INVITE\n\
             {extra}Content-Length: {}\n\n{body}",
            body.len() + body.matches('\n').count()
        ))
    }

    fn status(req: &Request) -> u16 {
        check_request(req, &UasPolicy::default())
            .err()
            .map_or(200, |r| r.status)
    }

    #[test]
    fn a_plain_invite_with_sdp_passes() {
        assert_eq!(
            status(&invite("Content-Type: application/sdp\n", "v=0\n")),
            200
        );
    }

    #[test]
    fn known_but_disallowed_methods_get_405_with_allow() {
        let mut req = invite("", "");
        req.method = Method::Subscribe;
        let rejection = check_request(&req, &UasPolicy::default()).expect_err("405");
        assert_eq!(rejection.status, 405);
        assert_eq!(
            rejection.headers,
            vec![(
                "Allow".to_string(),
                "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, REFER, NOTIFY".to_string()
            )]
        );
        req.method = Method::Extension("FROB".into());
        assert_eq!(status(&req), 501);
    }

    #[test]
    fn require_lists_only_unknown_tags_case_insensitively() {
        let req = invite("Require: Replaces, 100rel, foo\nProxy-Require: bar\n", "");
        let rejection = check_request(&req, &UasPolicy::default()).expect_err("420");
        assert_eq!(rejection.status, 420);
        assert_eq!(
            rejection.headers,
            vec![("Unsupported".to_string(), "100rel, foo".to_string())]
        );
        assert_eq!(status(&invite("Proxy-Require: bar\n", "")), 200);
    }

    #[test]
    fn bodies_are_judged_by_type_encoding_and_disposition() {
        let r = check_request(
            &invite("Content-Type: text/html\n", "<p>"),
            &UasPolicy::default(),
        )
        .expect_err("415");
        assert_eq!(
            (r.status, r.headers[0].1.as_str()),
            (
                415,
                "application/sdp, application/dtmf-relay, message/sipfrag"
            )
        );
        let gz = check_request(
            &invite(
                "Content-Type: application/sdp\nContent-Encoding: gzip\n",
                "v=0",
            ),
            &UasPolicy::default(),
        )
        .expect_err("415");
        assert!(gz
            .headers
            .contains(&("Accept-Encoding".into(), "identity".into())));
        assert_eq!(
            status(&invite(
                "Content-Type: text/html\nContent-Disposition: render;handling=optional\n",
                "<p>"
            )),
            200
        );
        assert_eq!(status(&invite("", "v=0")), 415);
        assert_eq!(status(&invite("", "\n")), 200);
    }

    #[test]
    fn multipart_is_accepted_when_a_part_is() {
        let body = "--b1\nContent-Type: application/sdp\n\nv=0\n--b1\nContent-Type: application/isup\n\n\u{1}\u{2}\n--b1--\n";
        let ok = invite("Content-Type: multipart/mixed;boundary=b1\n", body);
        assert_eq!(status(&ok), 200);
        let none = invite(
            "Content-Type: multipart/mixed; boundary=\"b1\"\n",
            &body.replace("application/sdp", "text/plain"),
        );
        assert_eq!(status(&none), 415);
        let broken = invite("Content-Type: multipart/mixed;boundary=b1\n", "--b1\n\nx");
        assert_eq!(status(&broken), 400);
    }

    #[test]
    fn accept_must_admit_sdp_on_invite_only() {
        for (accept, expected) in [
            ("Accept: application/sdp\n", 200),
            ("Accept: text/plain, application/*\n", 200),
            ("Accept: */*\n", 200),
            ("Accept: application/sdp;q=0\n", 406),
            ("Accept: text/nobodyKnowsThis\n", 406),
            ("Accept:\n", 406),
        ] {
            assert_eq!(status(&invite(accept, "")), expected, "{accept}");
        }
        let mut options = invite("Accept: text/plain\n", "");
        options.method = Method::Options;
        if let Some(h) = options.headers.0.iter_mut().find(|h| h.name == "CSeq") {
            h.value = "1 OPTIONS".into();
        }
        assert_eq!(status(&options), 200);
    }

    #[test]
    fn cancel_and_ack_are_not_judged_on_require_or_body() {
        let mut req = invite("Require: foo\nContent-Type: text/html\n", "<p>");
        req.method = Method::Cancel;
        assert_eq!(status(&req), 200);
        req.method = Method::Ack;
        req.uri = crate::sip::msg::Uri::parse("mailto:x@y").expect("uri");
        assert_eq!(status(&req), 200);
    }

    #[test]
    fn unparsable_requests_are_answered_with_a_tag_and_single_values() {
        let text = "INVITE  sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK2\r\nFrom: <sip:a@h>;tag=9\r\nTo: <sip:bob@example.com>\r\nTo: <sip:eve@example.com>\r\nCall-ID: x\r\nCSeq: 4 INVITE\r\n\r\n";
        let Err(rejected) = parse(text.as_bytes()) else {
            panic!("double space must be rejected")
        };
        let response = response_for_rejected(&rejected).expect("answerable");
        assert_eq!(response.status, 400);
        assert_eq!(response.headers.count("To"), 1);
        let to = response.to_header().expect("To parses");
        assert_eq!(to.uri.user.as_deref(), Some("bob"));
        assert!(to.tag().is_some_and(|t| t.starts_with("rj")));
        // The answer is itself a message we would accept.
        assert!(parse(&response.to_bytes()).is_ok());

        let no_call_id = text.replace("Call-ID: x\r\n", "");
        let Err(rejected) = parse(no_call_id.as_bytes()) else {
            panic!("must be rejected")
        };
        assert!(response_for_rejected(&rejected).is_none());
    }
}
