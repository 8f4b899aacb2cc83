//! The 49 RFC 4475 torture messages, each held to the verdict in tests/fixtures/rfc4475/README.md,
//! through the same path a datagram takes in the UA: `msg::parse`, then `validate::check_request`
//! for requests that parsed, or `validate::response_for_rejected` for those that did not.

use std::path::PathBuf;

use ringside::sip::msg::{
    parse, parse_framed, percent_decode, split_multipart, Framed, Message, Method, Request,
    Response, Scheme, SipHeaders, StreamFramer,
};
use ringside::sip::validate::{check_request, response_for_rejected, UasPolicy};

fn fixture_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/rfc4475")
}

fn fixture(name: &str) -> Vec<u8> {
    let path = fixture_dir().join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

fn all_fixture_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(fixture_dir())
        .expect("fixture directory")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".dat"))
        .collect();
    names.sort();
    names
}

/// What a conforming UA does with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A request that parses; `check` is what `check_request` then says with the default
    /// policy (None: the transaction user gets it).
    Valid { check: Option<u16> },
    /// A response that parses.
    ValidResponse,
    /// A request refused with this status, by the parser or by `check_request`; `answered`
    /// says whether it carries enough (Via, From, To, Call-ID, CSeq) to be answered.
    Reject { status: u16, answered: bool },
    /// Invalid, but RFC 4475 lets a receiver tolerate it: either parses, or is answered 400.
    Tolerable,
    /// An invalid response: dropped, never answered.
    DropResponse,
}

use Verdict::*;

const VERDICTS: &[(&str, Verdict)] = &[
    ("wsinv.dat", Valid { check: None }),
    // An extension method we do not know: 501 (RFC 3261 §21.5.2).
    ("intmeth.dat", Valid { check: Some(501) }),
    ("esc01.dat", Valid { check: None }),
    // REGISTER at a UA, not a registrar: 405 with Allow.
    ("escnull.dat", Valid { check: Some(405) }),
    // RE%47IST%45R is not REGISTER (methods are not unescaped): an unknown method.
    ("esc02.dat", Valid { check: Some(501) }),
    ("lwsdisp.dat", Valid { check: None }),
    ("longreq.dat", Valid { check: None }),
    ("dblreq.dat", Valid { check: Some(405) }),
    ("semiuri.dat", Valid { check: None }),
    ("transports.dat", Valid { check: None }),
    // MESSAGE is not in the default policy.
    ("mpart01.dat", Valid { check: Some(405) }),
    ("unreason.dat", ValidResponse),
    ("noreason.dat", ValidResponse),
    (
        "badinv01.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "clerr.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "ncl.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "scalar02.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    ("scalarlg.dat", DropResponse),
    (
        "quotbal.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "ltgtruri.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "lwsruri.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "lwsstart.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    ("trws.dat", Tolerable),
    (
        "escruri.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    ("baddate.dat", Tolerable),
    (
        "regbadct.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "badaspec.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "baddn.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "badvers.dat",
        Reject {
            status: 505,
            answered: true,
        },
    ),
    (
        "mismatch01.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "mismatch02.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    ("bigcode.dat", DropResponse),
    ("badbranch.dat", Valid { check: None }),
    // No From, To or Call-ID: 400 is the verdict, but there is nothing to address it with.
    (
        "insuf.dat",
        Reject {
            status: 400,
            answered: false,
        },
    ),
    (
        "unkscm.dat",
        Reject {
            status: 416,
            answered: true,
        },
    ),
    ("novelsc.dat", Valid { check: Some(416) }),
    ("unksm2.dat", Valid { check: Some(405) }),
    (
        "bext01.dat",
        Reject {
            status: 420,
            answered: true,
        },
    ),
    (
        "invut.dat",
        Reject {
            status: 415,
            answered: true,
        },
    ),
    ("regaut01.dat", Valid { check: Some(405) }),
    (
        "multi01.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    (
        "mcl01.dat",
        Reject {
            status: 400,
            answered: true,
        },
    ),
    ("bcast.dat", ValidResponse),
    // Max-Forwards 0 at a UA: processed.
    ("zeromf.dat", Valid { check: None }),
    ("cparam01.dat", Valid { check: Some(405) }),
    ("cparam02.dat", Valid { check: Some(405) }),
    ("regescrt.dat", Valid { check: Some(405) }),
    (
        "sdp01.dat",
        Reject {
            status: 406,
            answered: true,
        },
    ),
    ("inv2543.dat", Valid { check: None }),
];

fn verdict_of(name: &str) -> Verdict {
    VERDICTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| *v)
        .unwrap_or_else(|| panic!("no verdict for {name}"))
}

/// The README's "expected" column for each file.
fn readme_rows() -> Vec<(String, String)> {
    let readme = std::fs::read_to_string(fixture_dir().join("README.md")).expect("README.md");
    readme
        .lines()
        .filter_map(|line| {
            let cells: Vec<&str> = line.split('|').map(str::trim).collect();
            match cells.as_slice() {
                ["", file, _, expected, ""] if file.ends_with(".dat") => {
                    Some((file.to_string(), expected.to_string()))
                }
                _ => None,
            }
        })
        .collect()
}

/// What actually happened to a message.
#[derive(Debug)]
enum Outcome {
    Passed(Request),
    Refused {
        status: u16,
        response: Response,
    },
    ResponseParsed(Response),
    Rejected {
        status: u16,
        answer: Option<Response>,
        was_response: bool,
    },
}

fn run(bytes: &[u8]) -> Outcome {
    match parse(bytes) {
        Ok(Message::Request(request)) => match check_request(&request, &UasPolicy::default()) {
            Ok(()) => Outcome::Passed(request),
            Err(rejection) => Outcome::Refused {
                status: rejection.status,
                response: rejection.to_response(&request),
            },
        },
        Ok(Message::Response(response)) => Outcome::ResponseParsed(response),
        Err(rejected) => Outcome::Rejected {
            status: rejected.error.status(),
            answer: response_for_rejected(&rejected),
            was_response: bytes.starts_with(b"SIP/"),
        },
    }
}

/// An answer must echo the request's transaction identifiers and be well-formed itself.
fn check_answer(status: u16, answer: &Response) -> Result<(), String> {
    if answer.status != status {
        return Err(format!("answered {} instead of {status}", answer.status));
    }
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        if answer.headers.count(name) == 0 {
            return Err(format!("answer lacks {name}"));
        }
    }
    if answer.headers.count("To") != 1 || answer.headers.count("Call-ID") != 1 {
        return Err("answer repeats a single-valued header".into());
    }
    Ok(())
}

fn judge(name: &str) -> Result<(), String> {
    let bytes = fixture(name);
    let outcome = run(&bytes);
    match (verdict_of(name), outcome) {
        (Valid { check: None }, Outcome::Passed(r)) => check_request_fields(name, &r),
        (Valid { check: Some(want) }, Outcome::Refused { status, response }) if status == want => {
            if let Message::Request(r) = parse(&bytes).map_err(|r| r.error.to_string())? {
                check_request_fields(name, &r)?;
            }
            (response.status == want)
                .then_some(())
                .ok_or_else(|| "response status differs from the rejection".to_string())
        }
        (ValidResponse, Outcome::ResponseParsed(r)) => check_response_fields(name, &r),
        (Reject { status: want, .. }, Outcome::Refused { status, response }) if status == want => {
            check_refusal_headers(name, &response)
        }
        (
            Reject {
                status: want,
                answered,
            },
            Outcome::Rejected {
                status,
                answer,
                was_response,
            },
        ) if status == want && !was_response => match (answered, answer) {
            (true, Some(a)) => check_answer(want, &a),
            (false, None) => Ok(()),
            (true, None) => Err("not answered though it carries enough to answer".into()),
            (false, Some(_)) => Err("answered without the headers to address it".into()),
        },
        (Tolerable, Outcome::Passed(_)) => Ok(()),
        (
            Tolerable,
            Outcome::Rejected {
                status: 400,
                answer: Some(_),
                ..
            },
        ) => Ok(()),
        (
            DropResponse,
            Outcome::Rejected {
                answer: None,
                was_response: true,
                ..
            },
        ) => Ok(()),
        (verdict, outcome) => Err(format!("expected {verdict:?}, got {}", describe(&outcome))),
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Passed(r) => format!("request {} accepted", r.method),
        Outcome::Refused { status, .. } => format!("refused {status} by check_request"),
        Outcome::ResponseParsed(r) => format!("response {} parsed", r.status),
        Outcome::Rejected { status, answer, .. } => format!(
            "parse rejected ({status}), {}",
            if answer.is_some() {
                "answered"
            } else {
                "dropped"
            }
        ),
    }
}

fn expect<T: PartialEq + std::fmt::Debug>(what: &str, got: T, want: T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got:?}, want {want:?}"))
    }
}

fn check_refusal_headers(name: &str, response: &Response) -> Result<(), String> {
    match name {
        "bext01.dat" => expect(
            "Unsupported",
            response.header("Unsupported"),
            Some("nothingSupportsThis, nothingSupportsThisEither"),
        ),
        "invut.dat" => expect(
            "Accept",
            response.header("Accept"),
            Some("application/sdp, application/dtmf-relay, message/sipfrag"),
        ),
        _ => Ok(()),
    }
}

fn check_request_fields(name: &str, r: &Request) -> Result<(), String> {
    let from = r.from_header().ok_or("From does not parse")?;
    let to = r.to_header().ok_or("To does not parse")?;
    match name {
        "wsinv.dat" => {
            expect("Call-ID", r.call_id(), Some("wsinv.ndaksdj@192.0.2.1"))?;
            expect("method", &r.method, &Method::Invite)?;
            expect("R-URI param", r.uri.param("unknownparam").is_some(), true)?;
            expect("To tag", to.tag(), Some("1918181833n"))?;
            expect(
                "From display",
                from.display_name.as_deref(),
                Some("J Rosenberg \\\""),
            )?;
            expect("From tag", from.tag(), Some("98asjd8"))?;
            expect("CSeq", r.cseq().map(|c| c.seq), Some(9))?;
            expect("Max-Forwards", r.header("Max-Forwards"), Some("0068"))?;
            let vias = r.vias();
            let sent: Vec<(String, String)> = vias
                .iter()
                .map(|v| (v.transport.clone(), v.host.clone()))
                .collect();
            expect(
                "Vias",
                sent,
                vec![
                    ("UDP".into(), "192.0.2.2".into()),
                    ("TCP".into(), "spindle.example.com".into()),
                    ("UDP".into(), "192.168.255.111".into()),
                ],
            )?;
            expect(
                "3rd branch",
                vias.get(2).and_then(|v| v.branch()),
                Some("z9hG4bK30239"),
            )?;
            let contact = r.contact().ok_or("Contact does not parse")?;
            expect(
                "Contact display",
                contact.display_name.as_deref(),
                Some("Quoted string \"\""),
            )?;
            expect(
                "Contact q",
                contact.param("q").and_then(|p| p.value.as_deref()),
                Some("0.33"),
            )?;
            expect(
                "folded header",
                r.header("NewFangledHeader"),
                Some("newfangled value continued newfangled value"),
            )?;
            expect("Subject", r.header("Subject"), Some(""))?;
            expect("body", r.body.len(), 150)
        }
        "intmeth.dat" => {
            let method = "!interesting-Method0123456789_*+`.%indeed'~";
            expect("method", &r.method, &Method::Extension(method.into()))?;
            expect(
                "CSeq method",
                r.cseq().map(|c| c.method),
                Some(r.method.clone()),
            )?;
            expect(
                "R-URI user",
                r.uri.user.as_deref(),
                Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"),
            )?;
            expect(
                "R-URI password",
                r.uri.password.as_deref(),
                Some("&it+has=1,weird!*pas$wo~d_too.(doesn't-it)"),
            )?;
            expect("R-URI host", r.uri.host.as_str(), "example.com")?;
            expect(
                "To display",
                to.display_name.as_deref(),
                Some("BEL:\u{7} NUL:\u{0} DEL:\u{7f}"),
            )?;
            expect(
                "To user",
                to.uri.user.as_deref(),
                Some("1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*"),
            )?;
            expect(
                "From display",
                from.display_name.as_deref(),
                Some("token1~` token2'+_ token3*%!.-"),
            )?;
            expect("From tag", from.tag(), Some("_token~1'+`*%!-."))?;
            expect(
                "Call-ID",
                r.call_id(),
                Some("intmeth.word%ZK-!.*_+'@word`~)(><:\\/\"][?}{"),
            )?;
            expect("Max-Forwards", r.header("Max-Forwards"), Some("255"))
        }
        "esc01.dat" => {
            expect(
                "R-URI user",
                r.uri.user_decoded().as_deref(),
                Some("sips:user@example.com"),
            )?;
            expect("R-URI host", r.uri.host.as_str(), "example.net")?;
            expect("To user", to.uri.user_decoded().as_deref(), Some("user"))?;
            expect(
                "From user",
                from.uri.user_decoded().as_deref(),
                Some("I have spaces"),
            )?;
            expect(
                "Content-Type (C:)",
                r.content_type().as_deref(),
                Some("application/sdp"),
            )?;
            let contact = r.contact().ok_or("Contact")?;
            expect(
                "Contact user",
                contact.uri.user_decoded().as_deref(),
                Some("caller"),
            )?;
            let params: Vec<(String, Option<String>)> = contact
                .uri
                .params
                .iter()
                .map(|p| {
                    (
                        percent_decode(&p.name),
                        p.value.as_deref().map(percent_decode),
                    )
                })
                .collect();
            expect(
                "Contact params",
                params,
                vec![
                    ("lr".into(), None),
                    ("name".into(), Some("value%41".into())),
                ],
            )
        }
        "escnull.dat" => {
            expect(
                "To user",
                to.uri.user_decoded().as_deref(),
                Some("null-\0-null"),
            )?;
            let users: Vec<Option<String>> =
                r.contacts().iter().map(|c| c.uri.user_decoded()).collect();
            expect(
                "Contacts",
                users,
                vec![Some("\0".into()), Some("\0\0".into())],
            )
        }
        "esc02.dat" => {
            expect(
                "method",
                &r.method,
                &Method::Extension("RE%47IST%45R".into()),
            )?;
            expect("To display", to.display_name.as_deref(), Some("%Z%45"))?;
            expect("Contacts", r.contacts().len(), 2)?;
            expect(
                "C%6Fntact kept as its own header",
                r.header("C%6Fntact"),
                Some("<sip:alias2@host2.example.com>"),
            )?;
            expect(
                "branch",
                r.top_via()
                    .and_then(|v| v.branch().map(str::to_string))
                    .as_deref(),
                Some("z9hG4bK209%fzsnel234"),
            )
        }
        "lwsdisp.dat" => {
            expect("From display", from.display_name.as_deref(), Some("caller"))?;
            expect("From tag", from.tag(), Some("323"))
        }
        "longreq.dat" => {
            expect("Vias", r.vias().len(), 34)?;
            expect(
                "last Via branch length",
                r.vias().last().and_then(|v| v.branch().map(str::len)),
                Some(215),
            )?;
            expect("To port", to.uri.port, Some(6000))?;
            expect("To URI params", to.uri.params.len(), 3)?;
            expect("From tag length", from.tag().map(str::len), Some(155))?;
            expect(
                "From user length",
                from.uri.user.as_deref().map(str::len),
                Some(115),
            )?;
            expect("Call-ID length", r.call_id().map(str::len), Some(141))?;
            expect("body", r.body.len(), 150)
        }
        "dblreq.dat" => {
            expect("method", &r.method, &Method::Register)?;
            expect("body", r.body.len(), 0)?;
            // The datagram's second message is ignored, but it is there.
            let bytes = fixture(name);
            let (_, used) = parse_framed(&bytes).map_err(|e| e.error.to_string())?;
            let rest = bytes.get(used..).unwrap_or_default();
            match parse(rest) {
                Ok(Message::Request(second)) => expect("second", second.method, Method::Invite),
                _ => Err("the trailing INVITE should be a message of its own".into()),
            }
        }
        "semiuri.dat" => {
            expect(
                "R-URI user",
                r.uri.user.as_deref(),
                Some("user;par=u%40example.net"),
            )?;
            expect("R-URI host", r.uri.host.as_str(), "example.com")?;
            expect("R-URI params", r.uri.params.len(), 0)?;
            expect("Accept", r.headers.get_list("Accept").len(), 6)
        }
        "transports.dat" => {
            let transports: Vec<String> = r.vias().into_iter().map(|v| v.transport).collect();
            expect(
                "transports",
                transports,
                vec!["UDP", "SCTP", "TLS", "UNKNOWN", "TCP"]
                    .into_iter()
                    .map(String::from)
                    .collect(),
            )
        }
        "mpart01.dat" => {
            expect("method", &r.method, &Method::Message)?;
            let parts = split_multipart(r.header("Content-Type").unwrap_or_default(), &r.body)
                .map_err(|e| e.to_string())?;
            let kinds: Vec<String> = parts.iter().map(|p| p.content_type()).collect();
            expect(
                "parts",
                kinds,
                vec!["text/plain".into(), "application/octet-stream".into()],
            )?;
            expect("first part", parts[0].body.as_slice(), b"Hello".as_slice())?;
            // With a policy that takes MESSAGE and text/plain, it passes.
            let policy = UasPolicy {
                allowed_methods: vec![Method::Message],
                accepted_content_types: vec!["text/plain".into()],
                ..UasPolicy::default()
            };
            expect(
                "check with MESSAGE allowed",
                check_request(r, &policy).is_ok(),
                true,
            )
        }
        "badbranch.dat" => expect(
            "branch",
            r.top_via()
                .and_then(|v| v.branch().map(str::to_string))
                .as_deref(),
            Some("z9hG4bK"),
        ),
        "novelsc.dat" => expect("scheme", &r.uri.scheme, &Scheme::Other("soap.beep".into())),
        "unksm2.dat" => {
            expect("To scheme", &to.uri.scheme, &Scheme::Other("isbn".into()))?;
            expect("To opaque", to.uri.opaque.as_str(), "2983792873")?;
            expect(
                "From scheme",
                &from.uri.scheme,
                &Scheme::Other("http".into()),
            )?;
            expect(
                "Contact",
                r.contact().map(|c| c.uri.to_string()).as_deref(),
                Some("name:John_Smith"),
            )
        }
        "regaut01.dat" => expect(
            "Authorization",
            r.header("Authorization"),
            Some("NoOneKnowsThisScheme opaque-data=here"),
        ),
        "zeromf.dat" => expect("Max-Forwards", r.header("Max-Forwards"), Some("0")),
        "cparam01.dat" => {
            let c = r.contact().ok_or("Contact")?;
            expect("Contact URI params", c.uri.params.len(), 0)?;
            expect(
                "Contact header param",
                c.param("unknownparam").is_some(),
                true,
            )
        }
        "cparam02.dat" => {
            let c = r.contact().ok_or("Contact")?;
            expect(
                "Contact URI param",
                c.uri.param("unknownparam").is_some(),
                true,
            )?;
            expect("Contact header params", c.params.len(), 0)
        }
        "regescrt.dat" => {
            let c = r.contact().ok_or("Contact")?;
            let h = c.uri.headers.first().ok_or("Contact URI header")?;
            expect(
                "URI header",
                (h.name.as_str(), h.value.as_deref()),
                ("Route", Some("%3Csip:sip.example.com%3E")),
            )
        }
        "inv2543.dat" => {
            expect("From tag", from.tag(), None)?;
            expect(
                "branch",
                r.top_via().map(|v| v.branch().is_none()),
                Some(true),
            )?;
            expect(
                "To user param",
                to.param("user").and_then(|p| p.value.as_deref()),
                Some("phone"),
            )?;
            expect("Record-Route", r.record_routes().len(), 1)
        }
        _ => Ok(()),
    }
}

fn check_response_fields(name: &str, r: &Response) -> Result<(), String> {
    match name {
        "unreason.dat" => {
            expect("status", r.status, 200)?;
            expect(
                "reason",
                r.reason.as_str(),
                "= 2**3 * 5**2 но сто девяносто девять - простое",
            )
        }
        "noreason.dat" => {
            expect("status", r.status, 100)?;
            expect("reason", r.reason.as_str(), "")
        }
        "bcast.dat" => {
            let hosts: Vec<String> = r.vias().into_iter().map(|v| v.host).collect();
            expect(
                "Via hosts",
                hosts,
                vec!["192.0.2.198".into(), "255.255.255.255".into()],
            )
        }
        _ => Ok(()),
    }
}

#[test]
fn every_fixture_has_a_verdict_and_agrees_with_the_readme() {
    let rows = readme_rows();
    assert_eq!(rows.len(), 49, "the README lists 49 messages");
    let files = all_fixture_names();
    assert_eq!(files.len(), 49, "49 .dat files");
    for (file, expected) in &rows {
        assert!(
            files.contains(file),
            "{file} is in the README but not on disk"
        );
        let verdict = verdict_of(file);
        let readme_status: Option<u16> = expected
            .split(|c: char| !c.is_ascii_digit())
            .find_map(|w| w.parse().ok().filter(|n| (400..600).contains(n)));
        let ours = match verdict {
            Reject { status, .. } => Some(status),
            _ => None,
        };
        match verdict {
            Valid { .. } | ValidResponse => assert!(
                expected.starts_with("valid") || expected.starts_with("parse"),
                "{file}: README says {expected:?}, we say {verdict:?}"
            ),
            DropResponse => assert!(expected.contains("drop"), "{file}: {expected:?}"),
            Tolerable => assert!(expected.contains("tolerated"), "{file}: {expected:?}"),
            Reject { .. } => {
                assert!(
                    !expected.starts_with("valid") && !expected.starts_with("parse"),
                    "{file}: README says {expected:?}"
                );
                // "invalid: reject" without a number means 400.
                assert_eq!(
                    ours,
                    Some(readme_status.unwrap_or(400)),
                    "{file}: {expected:?}"
                );
            }
        }
    }
}

#[test]
fn rfc4475_verdicts() {
    let names = all_fixture_names();
    let wrong: Vec<String> = names
        .iter()
        .filter_map(|n| judge(n).err().map(|why| format!("{n}: {why}")))
        .collect();
    let right = names.len() - wrong.len();
    println!("RFC 4475: {right}/{} verdicts right", names.len());
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    assert_eq!(right, 49);
}

/// The answers built for messages that did not parse are themselves messages we accept, so a
/// peer as strict as we are can read them.
#[test]
fn answers_to_rejected_messages_parse() {
    for name in all_fixture_names() {
        if let Err(rejected) = parse(&fixture(&name)) {
            if let Some(answer) = response_for_rejected(&rejected) {
                let printed = answer.to_bytes();
                let text = String::from_utf8_lossy(&printed);
                assert!(
                    text.starts_with(&format!("SIP/2.0 {} ", answer.status)),
                    "{name}"
                );
                // Answers that echo a broken header cannot parse; the rest must.
                let echoes_broken = matches!(
                    name.as_str(),
                    "badinv01.dat"
                        | "scalar02.dat"
                        | "quotbal.dat"
                        | "regbadct.dat"
                        | "badaspec.dat"
                        | "baddn.dat"
                        | "badvers.dat"
                        | "mismatch02.dat"
                );
                if !echoes_broken {
                    assert!(
                        parse(&printed).is_ok(),
                        "{name}: answer does not parse:\n{text}"
                    );
                }
            }
        }
    }
}

#[test]
fn no_fixture_panics_in_parse_or_validation() {
    for name in all_fixture_names() {
        let bytes = fixture(&name);
        for cut in 0..=bytes.len() {
            let _ = run(&bytes[..cut]);
        }
    }
}

/// Feeding each file to a StreamFramer cut at every byte boundary gives the same items as
/// feeding it whole, and never panics.
#[test]
fn stream_framer_is_indifferent_to_chunking() {
    for name in all_fixture_names() {
        let bytes = fixture(&name);
        let whole = frame_all(&[&bytes]);
        for cut in 0..=bytes.len() {
            let (a, b) = bytes.split_at(cut);
            assert_eq!(frame_all(&[a, b]), whole, "{name} split at {cut}");
        }
        let single: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(frame_all(&single), whole, "{name} byte by byte");
        if let Ok(message) = parse(&bytes) {
            // A message with a Content-Length frames to what parse gives.
            if message.header("Content-Length").is_some() {
                assert_eq!(whole.first(), Some(&format!("{message:?}")), "{name}");
            }
        }
    }
}

fn frame_all(chunks: &[&[u8]]) -> Vec<String> {
    let mut framer = StreamFramer::default();
    let mut items = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_item() {
                Ok(Some(Framed::Message(m))) => items.push(format!("{m:?}")),
                Ok(Some(Framed::Invalid(r))) => items.push(format!("invalid: {}", r.error)),
                Ok(Some(Framed::Ping)) => items.push("ping".into()),
                Ok(None) => break,
                Err(e) => {
                    items.push(format!("closed: {e}"));
                    return items;
                }
            }
        }
    }
    items
}
