//! Real traffic: every SIP message captured between agent phones and Asterisk 22
//! (tests/fixtures/asterisk/sip, SIPp `-trace_msg` logs) must parse, pass the UAS checks, and
//! survive print → parse unchanged. The torture tests tighten the parser; these keep it honest.

use std::path::PathBuf;

use ringside::sip::msg::{parse, Message, SipHeaders};
use ringside::sip::validate::{check_request, UasPolicy};

struct Captured {
    file: String,
    line: usize,
    bytes: Vec<u8>,
}

/// Split a trace log: a `-----… <timestamp>` separator, a direction line that states the byte
/// count (`[N] bytes` or `(N bytes)`), an empty line, then the message.
fn captured_messages() -> Vec<Captured> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/asterisk/sip");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("trace directory")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 6, "six trace files");
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).expect("trace is text");
        let file = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let blocks: Vec<&str> = text
            .split("-----------------------------------------------")
            .collect();
        for block in blocks.iter().skip(1) {
            let (_timestamp, rest) = block.split_once('\n').expect("separator line");
            let (direction, rest) = rest.split_once('\n').expect("direction line");
            let declared: usize = direction
                .split(|c: char| !c.is_ascii_digit())
                .find(|w| !w.is_empty())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("{file}: no byte count in {direction:?}"));
            let message = rest
                .strip_prefix('\n')
                .expect("empty line before the message");
            // The logger ends each entry with one or two LFs of its own.
            let (message, trailer) = message.split_at(declared.min(message.len()));
            assert_eq!(message.len(), declared, "{file}: {direction}");
            assert!(
                trailer.bytes().all(|b| b == b'\n'),
                "{file}: {direction}: {trailer:?}"
            );
            let line = text[..text.find(message).unwrap_or(0)].lines().count() + 1;
            out.push(Captured {
                file: file.clone(),
                line,
                bytes: message.as_bytes().to_vec(),
            });
        }
    }
    out
}

#[test]
fn every_captured_message_parses_and_round_trips() {
    let messages = captured_messages();
    assert_eq!(messages.len(), 66);
    let (mut requests, mut responses) = (0, 0);
    for m in &messages {
        let parsed = parse(&m.bytes)
            .unwrap_or_else(|r| panic!("{}:{} does not parse: {}", m.file, m.line, r.error));
        match &parsed {
            Message::Request(r) => {
                requests += 1;
                if let Err(rejection) = check_request(r, &UasPolicy::default()) {
                    panic!(
                        "{}:{} {} refused {} {}",
                        m.file, m.line, r.method, rejection.status, rejection.reason
                    );
                }
            }
            Message::Response(_) => responses += 1,
        }
        // Every transaction identifier is readable through the typed accessors.
        assert!(parsed
            .top_via()
            .and_then(|v| v.branch().map(str::to_string))
            .is_some());
        assert!(parsed.from_header().is_some() && parsed.to_header().is_some());
        assert!(parsed.cseq().is_some() && parsed.call_id().is_some());
        let again = parse(&parsed.to_bytes()).unwrap_or_else(|r| {
            panic!(
                "{}:{} does not re-parse after printing: {}",
                m.file, m.line, r.error
            )
        });
        assert_eq!(
            again, parsed,
            "{}:{} changes in print → parse",
            m.file, m.line
        );
    }
    assert_eq!((requests, responses), (34, 32));
}
