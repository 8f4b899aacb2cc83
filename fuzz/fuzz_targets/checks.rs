//! The bodies of the fuzz targets. They live apart from the `fuzz_target!` wrappers so that
//! tests/fuzz_corpus.rs can run them on stable Rust too (it includes this file by path).
//!
//! A target fails by panicking: on a crash in the code under test, or on a broken invariant
//! asserted here.

use ringside::sip::msg::{parse, Framed, Message, SipHeaders, StreamFramer};
use ringside::sip::validate::{check_request, response_for_rejected, UasPolicy};

/// The message without its Content-Length: printing places and spells that header itself.
fn without_length(message: &Message) -> Message {
    let mut m = message.clone();
    m.headers_mut().remove("Content-Length");
    m
}

/// One datagram: parse, validate, answer or re-print, and re-parse.
pub fn sip_message(data: &[u8]) {
    match parse(data) {
        Ok(message) => {
            if let Message::Request(request) = &message {
                if let Err(rejection) = check_request(request, &UasPolicy::default()) {
                    let _ = rejection.to_response(request).to_bytes();
                }
            }
            // Typed accessors must cope with whatever the parser let through.
            let _ = (message.vias(), message.contacts(), message.record_routes());
            let _ = (message.from_header(), message.to_header(), message.cseq());
            let _ = (message.refer_to(), message.replaces(), message.event());
            let _ = (message.subscription_state(), message.p_asserted_identity());
            // What we accept, we print in a form we accept again, unchanged.
            let printed = message.to_bytes();
            match parse(&printed) {
                Ok(again) => assert_eq!(
                    without_length(&again),
                    without_length(&message),
                    "print → parse changed the message"
                ),
                Err(rejected) => panic!(
                    "a parsed message printed into one we reject ({}):\n{}",
                    rejected.error,
                    String::from_utf8_lossy(&printed)
                ),
            }
        }
        Err(rejected) => {
            if let Some(answer) = response_for_rejected(&rejected) {
                let _ = parse(&answer.to_bytes());
            }
        }
    }
}

/// What a framer makes of `chunks` pushed one after another, until the stream must close.
fn frame(chunks: &[&[u8]]) -> Vec<String> {
    let mut framer = StreamFramer::default();
    let mut items = Vec::new();
    for chunk in chunks {
        framer.push(chunk);
        loop {
            match framer.next_item() {
                Ok(Some(Framed::Message(m))) => items.push(format!("{m:?}")),
                Ok(Some(Framed::Invalid(r))) => items.push(format!("invalid {:?}", r.error)),
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

/// A byte stream cut into arbitrary chunks: the first bytes choose the chunk sizes, the rest is
/// the stream. However it is chunked, a stream frames into the same items.
pub fn sip_stream(data: &[u8]) {
    let (sizes, stream) = data.split_at(data.len().min(8));
    let mut chunks = Vec::new();
    let mut rest = stream;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(1, |s| usize::from(*s % 64) + 1);
        let (chunk, tail) = rest.split_at(size.min(rest.len()));
        chunks.push(chunk);
        rest = tail;
        i += 1;
    }
    assert_eq!(
        frame(&chunks),
        frame(&[stream]),
        "chunking changed the framing"
    );
}
