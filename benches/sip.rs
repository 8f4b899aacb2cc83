//! SIP core throughput: parse + print of a typical INVITE, and a whole INVITE transaction
//! (INVITE → 100 → 200, both ends in the sans-IO core) — the costs a PBX-facing console pays
//! per message and per call setup.

use std::hint::black_box;
use std::net::SocketAddr;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringside::sip::msg::{parse, Message};
use ringside::sip::transaction::{Target, Timers, TransactionLayer, Transport, TxEvent};

const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bKnashds8;rport\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY\r\n\
Supported: replaces\r\n\
User-Agent: ringside/0.1.0\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 142\r\n\
\r\n\
v=0\r\n\
o=alice 2890844526 2890844526 IN IP4 pc33.atlanta.example.com\r\n\
s=-\r\n\
c=IN IP4 192.0.2.101\r\n\
t=0 0\r\n\
m=audio 49172 RTP/AVP 0\r\n\
a=rtpmap:0 PCMU/8000\r\n";

fn parse_and_print(c: &mut Criterion) {
    let mut group = c.benchmark_group("sip_message");
    group.throughput(Throughput::Elements(1));
    group.bench_function("parse_invite", |b| b.iter(|| parse(black_box(INVITE))));
    let message = match parse(INVITE) {
        Ok(m) => m,
        Err(r) => panic!("bench INVITE must parse: {}", r.error),
    };
    // The same message through rsip, the crate our msg.rs wraps: the reference point for the
    // cost of our stricter first pass (rsip types headers lazily, so it checks much less).
    group.bench_function("rsip_parse_invite", |b| {
        b.iter(|| rsip::SipMessage::try_from(black_box(INVITE)).is_ok())
    });
    group.bench_function("print_invite", |b| {
        b.iter(|| black_box(&message).to_bytes())
    });
    group.bench_function("parse_and_print_invite", |b| {
        b.iter(|| match parse(black_box(INVITE)) {
            Ok(m) => m.to_bytes(),
            Err(_) => Vec::new(),
        })
    });
    group.finish();
}

fn transaction_round_trip(c: &mut Criterion) {
    let uac_addr: SocketAddr = "127.0.0.1:5060".parse().unwrap_or_else(|_| unreachable!());
    let uas_addr: SocketAddr = "127.0.0.2:5060".parse().unwrap_or_else(|_| unreachable!());
    let to_uas = Target {
        transport: Transport::Udp,
        addr: uas_addr,
    };
    let to_uac = Target {
        transport: Transport::Udp,
        addr: uac_addr,
    };
    let Ok(Message::Request(template)) = parse(INVITE) else {
        panic!("bench INVITE must parse")
    };
    let mut group = c.benchmark_group("sip_transaction");
    group.throughput(Throughput::Elements(1));
    group.bench_function("invite_100_200_round_trip", |b| {
        let mut uac = TransactionLayer::new(Timers::default());
        let mut uas = TransactionLayer::new(Timers::default());
        let mut n: u64 = 0;
        let now = Instant::now();
        b.iter(|| {
            n += 1;
            let mut invite = template.clone();
            invite.headers.set(
                "Via",
                format!("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK{n:x};rport"),
            );
            let Ok(tx) = uac.send_request(now, invite, to_uas) else {
                return;
            };
            while let Some(t) = uac.poll_transmit() {
                if let Ok(m) = parse(&t.bytes) {
                    uas.handle_message(now, m, to_uac);
                }
            }
            while let Some(event) = uas.poll_event() {
                if let TxEvent::Request {
                    tx: Some(stx),
                    request,
                    ..
                } = event
                {
                    let _ = uas.respond(now, stx, request.response(200));
                }
            }
            while let Some(t) = uas.poll_transmit() {
                if let Ok(m) = parse(&t.bytes) {
                    uac.handle_message(now, m, to_uas);
                }
            }
            while let Some(event) = uac.poll_event() {
                black_box(&event);
            }
            black_box(tx);
            // Let the Accepted states expire so memory stays flat across iterations.
            let later = now + std::time::Duration::from_secs(3600);
            uac.handle_timeout(later);
            uas.handle_timeout(later);
            while uac.poll_event().is_some() {}
            while uas.poll_event().is_some() {}
        })
    });
    group.finish();
}

criterion_group!(benches, parse_and_print, transaction_round_trip);
criterion_main!(benches);
