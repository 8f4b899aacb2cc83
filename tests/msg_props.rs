//! Property tests for the SIP message layer: generated messages survive print → parse, every
//! legal wire spelling of a message (compact names, any header-name case, whitespace around the
//! colon, folded lines, Content-Length anywhere) parses to the same message, and no input —
//! arbitrary bytes or a valid message mutated — makes parsing, validation or framing panic.

use proptest::prelude::*;

use ringside::sip::msg::{
    parse, parse_framed, CSeq, Framed, Headers, Message, Method, NameAddr, Param, Request,
    Response, Scheme, SipHeaders, StreamFramer, Uri, Via,
};
use ringside::sip::validate::{check_request, response_for_rejected, UasPolicy};

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

fn escaped_or(plain: &'static str) -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => plain,
            1 => "%[0-9A-Fa-f]{2}",
        ],
        1..5,
    )
    .prop_map(|pieces| pieces.concat())
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            Method::Invite,
            Method::Ack,
            Method::Bye,
            Method::Cancel,
            Method::Register,
            Method::Options,
            Method::Info,
            Method::Update,
            Method::Prack,
            Method::Subscribe,
            Method::Notify,
            Method::Refer,
            Method::Message,
            Method::Publish,
        ]),
        // Extension methods: any token (RFC 3261 §25.1), case-sensitive.
        "[A-Za-z0-9\\-.!%*_+`'~]{1,12}".prop_map(|t| Method::parse(&t).expect("token")),
    ]
}

fn host() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9]([a-zA-Z0-9\\-]{0,6}[a-zA-Z0-9])?(\\.[a-z0-9]([a-z0-9\\-]{0,6}[a-z0-9])?){0,3}",
        any::<[u8; 4]>().prop_map(|o| format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
        any::<u16>().prop_map(|n| format!("[2001:db8::{n:x}]")),
    ]
}

fn sip_uri(with_headers: bool) -> impl Strategy<Value = Uri> {
    let params = prop::collection::vec(
        (
            "[a-zA-Z][a-zA-Z0-9\\-]{0,6}",
            prop::option::of(escaped_or("[A-Za-z0-9\\-_.!~*'()\\[\\]/:&+$]{1,4}")),
        ),
        0..3,
    );
    let headers = prop::collection::vec(
        (
            "[A-Za-z][A-Za-z0-9\\-]{0,8}",
            prop::option::of(escaped_or("[A-Za-z0-9\\-_.!~*'()\\[\\]/?:+$]{1,4}")),
        ),
        0..if with_headers { 3 } else { 1 },
    );
    (
        any::<bool>(),
        prop::option::of(escaped_or("[A-Za-z0-9\\-_.!~*'()&=+$,;?/]{1,4}")),
        prop::option::of("[A-Za-z0-9\\-_.!~*'()&=+$,]{0,6}"),
        host(),
        prop::option::of(any::<u16>()),
        params,
        headers,
    )
        .prop_map(|(sips, user, password, host, port, params, headers)| Uri {
            scheme: if sips { Scheme::Sips } else { Scheme::Sip },
            password: user.as_ref().and(password),
            user,
            host,
            port,
            params: params.into_iter().map(|(n, v)| Param::new(n, v)).collect(),
            headers: headers.into_iter().map(|(n, v)| Param::new(n, v)).collect(),
            opaque: String::new(),
        })
}

fn tel_uri() -> impl Strategy<Value = Uri> {
    ("\\+[0-9]{3,12}", prop::option::of("[a-z]{1,8}\\.example")).prop_map(|(number, context)| {
        let opaque = match context {
            Some(c) => format!("{number};phone-context={c}"),
            None => number,
        };
        Uri {
            scheme: Scheme::Tel,
            user: None,
            password: None,
            host: String::new(),
            port: None,
            params: Vec::new(),
            headers: Vec::new(),
            opaque,
        }
    })
}

fn header_param() -> impl Strategy<Value = Param> {
    (
        "[A-Za-z][A-Za-z0-9\\-.!%*_+`'~]{0,8}",
        prop::option::of(prop_oneof![
            "[A-Za-z0-9\\-.!%*_+`'~]{1,10}",
            // Quoted strings, with quoted-pairs, are kept exactly as written.
            prop::collection::vec(prop_oneof!["[ !#-\\[\\]-~]{1,3}", "\\\\[\"\\\\]"], 0..4)
                .prop_map(|pieces| format!("\"{}\"", pieces.concat())),
        ]),
    )
        .prop_map(|(name, value)| Param::new(name, value))
}

fn name_addr() -> impl Strategy<Value = NameAddr> {
    (
        // Display names needing escapes: quotes, backslashes, commas, '<', non-ASCII.
        prop::option::of("[^\\p{Cc}]{0,12}"),
        prop_oneof![4 => sip_uri(true), 1 => tel_uri()],
        prop::collection::vec(header_param(), 0..3),
    )
        .prop_map(|(display_name, uri, params)| NameAddr {
            display_name,
            uri,
            params,
        })
}

fn via() -> impl Strategy<Value = Via> {
    (
        prop::sample::select(vec!["UDP", "TCP", "TLS", "SCTP", "WS", "WSS", "FUTURE-X"]),
        host(),
        prop::option::of(1u16..),
        "[A-Za-z0-9\\-.!%*_+`'~]{1,16}",
        any::<bool>(),
        prop::option::of(any::<[u8; 4]>()),
        prop::collection::vec(header_param(), 0..2),
    )
        .prop_map(|(transport, host, port, branch, rport, received, extra)| {
            let mut via = Via::new(transport, &host, port, &format!("z9hG4bK{branch}"));
            if rport {
                via.params.push(Param::new("rport", None));
            }
            if let Some(o) = received {
                via.params.push(Param::new(
                    "received",
                    Some(format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])),
                ));
            }
            via.params.extend(extra);
            via
        })
}

/// Header lines that must stay together and in order (all the Vias, all the Contacts).
type Group = Vec<(String, String)>;

/// Split a list into header lines: each value alone, all joined by commas, or a mix.
fn list_lines(name: &str, values: &[String], how: u8) -> Group {
    match how % 3 {
        0 => values
            .iter()
            .map(|v| (name.to_string(), v.clone()))
            .collect(),
        1 if !values.is_empty() => vec![(name.to_string(), values.join(", "))],
        _ => values
            .chunks(2)
            .map(|c| (name.to_string(), c.join(",")))
            .collect(),
    }
}

#[derive(Debug, Clone)]
struct Parts {
    from: NameAddr,
    to: NameAddr,
    vias: Vec<Via>,
    contacts: Vec<NameAddr>,
    call_id: String,
    cseq: CSeq,
    body: Vec<u8>,
    headers: Headers,
}

fn parts(method: Method) -> impl Strategy<Value = Parts> {
    (
        name_addr(),
        name_addr(),
        prop::collection::vec(via(), 1..4),
        prop::collection::vec(name_addr(), 0..3),
        "[A-Za-z0-9\\-.!%*_+`'~()<>:\\\\\"/\\[\\]?{}]{1,16}(@[a-z0-9.]{1,10})?",
        0u32..(1 << 31),
        prop::option::of(0u8..=255),
        prop::collection::vec(
            ("X-[A-Za-z0-9\\-]{1,8}", "[ -~\u{80}-\u{10FFFF}]{0,24}"),
            0..4,
        ),
        prop::collection::vec(any::<u8>(), 0..80),
        (any::<u8>(), any::<u8>(), any::<u64>()),
    )
        .prop_map(
            move |(
                from,
                to,
                vias,
                contacts,
                call_id,
                seq,
                max_forwards,
                extra,
                body,
                (via_how, contact_how, order),
            )| {
                let cseq = CSeq {
                    seq,
                    method: method.clone(),
                };
                let via_values: Vec<String> = vias.iter().map(ToString::to_string).collect();
                let contact_values: Vec<String> =
                    contacts.iter().map(ToString::to_string).collect();
                let mut groups: Vec<Group> = vec![
                    list_lines("Via", &via_values, via_how),
                    vec![("From".into(), from.to_string())],
                    vec![("To".into(), to.to_string())],
                    vec![("Call-ID".into(), call_id.clone())],
                    vec![("CSeq".into(), cseq.to_string())],
                    list_lines("Contact", &contact_values, contact_how),
                ];
                if let Some(mf) = max_forwards {
                    groups.push(vec![("Max-Forwards".into(), mf.to_string())]);
                }
                if !body.is_empty() {
                    groups.push(vec![(
                        "Content-Type".into(),
                        "application/octet-stream".into(),
                    )]);
                }
                for (name, value) in extra {
                    groups.push(vec![(name, value.trim().to_string())]);
                }
                shuffle(&mut groups, order);
                let mut headers = Headers::default();
                for (name, value) in groups.into_iter().flatten() {
                    headers.push(&name, value);
                }
                Parts {
                    from,
                    to,
                    vias,
                    contacts,
                    call_id,
                    cseq,
                    body,
                    headers,
                }
            },
        )
}

fn shuffle<T>(items: &mut [T], seed: u64) {
    let mut rng = Rng(seed | 1);
    for i in (1..items.len()).rev() {
        items.swap(i, rng.below(i + 1));
    }
}

fn request() -> impl Strategy<Value = (Request, Parts)> {
    method().prop_flat_map(|m| {
        (
            Just(m.clone()),
            prop_oneof![3 => sip_uri(false), 1 => tel_uri()],
            parts(m),
        )
            .prop_map(|(method, uri, parts)| {
                let request = Request {
                    method,
                    uri,
                    headers: parts.headers.clone(),
                    body: parts.body.clone(),
                };
                (request, parts)
            })
    })
}

fn response() -> impl Strategy<Value = (Response, Parts)> {
    (
        100u16..700,
        "[^\\p{Cc}]{0,20}",
        method().prop_flat_map(parts),
    )
        .prop_map(|(status, reason, parts)| {
            let response = Response {
                status,
                reason,
                headers: parts.headers.clone(),
                body: parts.body.clone(),
            };
            (response, parts)
        })
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// xorshift64*: enough to pick spellings and mutations reproducibly from a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn chance(&mut self, one_in: usize) -> bool {
        self.below(one_in) == 0
    }
}

/// The message without its Content-Length headers: printing places and spells that one itself.
fn without_length(message: &Message) -> Message {
    let mut m = message.clone();
    m.headers_mut().remove("Content-Length");
    m
}

fn check_parts(message: &Message, parts: &Parts) {
    assert_eq!(message.from_header().as_ref(), Some(&parts.from));
    assert_eq!(message.to_header().as_ref(), Some(&parts.to));
    assert_eq!(message.vias(), parts.vias);
    assert_eq!(message.contacts(), parts.contacts);
    assert_eq!(message.call_id(), Some(parts.call_id.as_str()));
    assert_eq!(message.cseq().as_ref(), Some(&parts.cseq));
    assert_eq!(message.body(), parts.body.as_slice());
}

const COMPACT: &[(&str, &str)] = &[
    ("Via", "v"),
    ("From", "f"),
    ("To", "t"),
    ("Call-ID", "i"),
    ("Contact", "m"),
    ("Content-Type", "c"),
    ("Content-Length", "l"),
];

/// Print `message` in a randomly chosen but equivalent spelling (RFC 3261 §7.3.1, §7.3.3).
fn respell(message: &Message, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let bytes = message.to_bytes();
    let head_end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("printed message has a blank line");
    let head = String::from_utf8(bytes[..head_end].to_vec()).expect("printed head is UTF-8");
    let mut lines = head.split("\r\n");
    let mut out = String::new();
    if rng.chance(4) {
        out.push_str("\r\n");
    }
    out.push_str(lines.next().unwrap_or_default());
    out.push_str("\r\n");
    let body = message.body();
    let mut header_lines: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(": "))
        .filter(|(n, _)| *n != "Content-Length")
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect();
    let length_at = rng.below(header_lines.len() + 1);
    let length_value = format!("{}{}", "0".repeat(rng.below(3)), body.len());
    header_lines.insert(length_at, ("Content-Length".into(), length_value));
    for (name, value) in header_lines {
        let compact = COMPACT
            .iter()
            .find(|(full, _)| *full == name)
            .map(|(_, c)| *c);
        let name = match (compact, rng.below(3)) {
            (Some(c), 0) => c.to_string(),
            (Some(_), 1) => name
                .chars()
                .map(|ch| {
                    if rng.chance(2) {
                        ch.to_ascii_lowercase()
                    } else {
                        ch.to_ascii_uppercase()
                    }
                })
                .collect(),
            _ => name,
        };
        let separator = [": ", ":", " : ", ":\t", "  :   "][rng.below(5)];
        // Fold at single spaces: a fold is one SP once unfolded, inside quotes or not.
        let chars: Vec<char> = value.chars().collect();
        let mut folded = String::new();
        for (i, ch) in chars.iter().enumerate() {
            let single_space = *ch == ' '
                && i > 0
                && chars.get(i + 1).is_some_and(|c| !c.is_whitespace())
                && !chars[i - 1].is_whitespace();
            if single_space && rng.chance(3) {
                folded.push_str(["\r\n ", "\r\n\t", "\r\n   "][rng.below(3)]);
            } else {
                folded.push(*ch);
            }
        }
        out.push_str(&format!("{name}{separator}{folded}\r\n"));
    }
    out.push_str("\r\n");
    let mut wire = out.into_bytes();
    wire.extend_from_slice(body);
    wire
}

/// Everything a receiver does with bytes; none of it may panic.
fn exercise(bytes: &[u8]) {
    match parse(bytes) {
        Ok(message) => {
            if let Message::Request(r) = &message {
                let _ = check_request(r, &UasPolicy::default());
            }
            // Anything we accept, we print in a form we accept again, unchanged.
            let again = parse(&message.to_bytes()).map_err(|r| r.error);
            assert_eq!(
                again.map(|m| without_length(&m)),
                Ok(without_length(&message))
            );
            let _ = (message.vias(), message.contacts(), message.from_header());
            let _ = (message.refer_to(), message.replaces(), message.event());
        }
        Err(rejected) => {
            if let Some(answer) = response_for_rejected(&rejected) {
                let _ = answer.to_bytes();
            }
        }
    }
    let _ = parse_framed(bytes);
    let mut framer = StreamFramer::default();
    for chunk in bytes.chunks(7) {
        framer.push(chunk);
        while let Ok(Some(item)) = framer.next_item() {
            if let Framed::Message(m) = item {
                let _ = m.to_bytes();
            }
        }
    }
}

fn mutate(bytes: &[u8], seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = bytes.to_vec();
    const INTERESTING: &[&[u8]] = &[
        b"\r\n",
        b"\n",
        b" ",
        b"\t",
        b":",
        b";",
        b",",
        b"\"",
        b"\\",
        b"<",
        b">",
        b"@",
        b"%",
        b"?",
        b"=",
        b"/",
        b"\0",
        b"\xff",
        b"\r\n ",
        b"\r\n\r\n",
        b"SIP/2.0",
        b"99999999999999999999",
        b"-1",
        b"Content-Length: 5\r\n",
        b"l: 18446744073709551616\r\n",
        b"Via: ",
        b"sip:",
    ];
    for _ in 0..1 + rng.below(6) {
        let at = rng.below(out.len() + 1);
        match rng.below(6) {
            0 if at < out.len() => out[at] ^= 1 << rng.below(8),
            1 if at < out.len() => {
                let end = (at + 1 + rng.below(16)).min(out.len());
                out.drain(at..end);
            }
            2 => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                out.splice(at..at, piece.iter().copied());
            }
            3 if at < out.len() => {
                let end = (at + 1 + rng.below(40)).min(out.len());
                let copy: Vec<u8> = out[at..end].to_vec();
                let to = rng.below(out.len() + 1);
                out.splice(to..to, copy);
            }
            4 => out.truncate(at),
            _ => {
                let piece = INTERESTING[rng.below(INTERESTING.len())];
                let end = (at + piece.len()).min(out.len());
                out.splice(at..end, piece.iter().copied());
            }
        }
    }
    out
}

fn fixtures() -> Vec<Vec<u8>> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc4475");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("fixtures")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| std::fs::read(p).expect("fixture"))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn requests_print_then_parse_to_the_same_request((request, parts) in request()) {
        let message = Message::Request(request);
        let parsed = parse(&message.to_bytes()).map_err(|r| r.error);
        prop_assert_eq!(parsed.clone().map(|m| without_length(&m)), Ok(message.clone()));
        check_parts(&parsed.expect("parsed"), &parts);
    }

    #[test]
    fn responses_print_then_parse_to_the_same_response((response, parts) in response()) {
        let message = Message::Response(response);
        let parsed = parse(&message.to_bytes()).map_err(|r| r.error);
        prop_assert_eq!(parsed.clone().map(|m| without_length(&m)), Ok(message.clone()));
        check_parts(&parsed.expect("parsed"), &parts);
    }

    #[test]
    fn every_spelling_of_a_message_parses_the_same(
        (request, parts) in request(),
        (response, _) in response(),
        seed in any::<u64>(),
    ) {
        for message in [Message::Request(request), Message::Response(response)] {
            let wire = respell(&message, seed);
            let parsed = parse(&wire).map_err(|r| r.error);
            prop_assert_eq!(
                parsed.map(|m| without_length(&m)),
                Ok(message.clone()),
                "wire:\n{}",
                String::from_utf8_lossy(&wire)
            );
        }
        let wire = respell(&Message::Request(Request {
            method: parts.cseq.method.clone(),
            uri: Uri::sip(None, "example.com", None),
            headers: parts.headers.clone(),
            body: parts.body.clone(),
        }), seed);
        let mut framer = StreamFramer::default();
        let split = seed as usize % (wire.len() + 1);
        framer.push(&wire[..split]);
        let early = framer.next_item();
        framer.push(&wire[split..]);
        let item = match early {
            Ok(Some(item)) => Some(item),
            _ => framer.next_item().ok().flatten(),
        };
        prop_assert!(matches!(item, Some(Framed::Message(_))), "stream framing failed");
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        exercise(&bytes);
    }

    #[test]
    fn arbitrary_text_with_sip_shape_never_panics(
        start in "(INVITE|OPTIONS|SIP/2\\.0|[A-Z]{1,6}) [ -~]{0,30}",
        lines in prop::collection::vec("[ -~\t]{0,40}", 0..12),
        body in prop::collection::vec(any::<u8>(), 0..40),
    ) {
        let mut text = start.into_bytes();
        for line in lines {
            text.extend_from_slice(b"\r\n");
            text.extend_from_slice(line.as_bytes());
        }
        text.extend_from_slice(b"\r\n\r\n");
        text.extend_from_slice(&body);
        exercise(&text);
    }

    #[test]
    fn mutated_valid_messages_never_panic(
        (request, _) in request(),
        fixture_index in any::<usize>(),
        seed in any::<u64>(),
    ) {
        let printed = Message::Request(request).to_bytes();
        exercise(&mutate(&printed, seed));
        let corpus = fixtures();
        let fixture = &corpus[fixture_index % corpus.len()];
        exercise(&mutate(fixture, seed));
    }
}
