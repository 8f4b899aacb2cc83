//! The user agent answering individual requests, fed as raw bytes the way a PBX would send them
//! (a scripted peer: these cases are hard to provoke from SIPp or baresip on demand).

use std::net::SocketAddr;
use std::time::Instant;

use ringside::sip::msg::{parse, Message, Response, SipHeaders};
use ringside::sip::transaction::{Target, Transport};
use ringside::sip::ua::{Command, UaConfig, UaEvent, UserAgent};

const PBX: &str = "192.0.2.1:5060";

fn pbx() -> SocketAddr {
    PBX.parse().expect("addr")
}

fn agent() -> UserAgent {
    let local: SocketAddr = "192.0.2.50:5062".parse().expect("addr");
    UserAgent::new(UaConfig::simple("101", local, pbx()), 99)
}

fn feed(ua: &mut UserAgent, now: Instant, text: &str) {
    let source = Target {
        transport: Transport::Udp,
        addr: pbx(),
    };
    ua.handle_datagram(now, source, text.replace('\n', "\r\n").as_bytes());
}

fn responses(ua: &mut UserAgent) -> Vec<Response> {
    std::iter::from_fn(|| ua.poll_transmit())
        .filter_map(|t| match parse(&t.bytes) {
            Ok(Message::Response(r)) => Some(r),
            _ => None,
        })
        .collect()
}

fn events(ua: &mut UserAgent) -> Vec<UaEvent> {
    std::iter::from_fn(|| ua.poll_event()).collect()
}

const SDP: &str = "v=0\no=pbx 1 1 IN IP4 192.0.2.1\ns=-\nc=IN IP4 192.0.2.1\nt=0 0\nm=audio 40000 RTP/AVP 8 101\na=rtpmap:8 PCMA/8000\na=rtpmap:101 telephone-event/8000\na=sendrecv\n";

fn invite(body: &str, extra: &str) -> String {
    let body = body.replace('\n', "\r\n");
    format!(
        "INVITE sip:101@192.0.2.50:5062 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinv1\nMax-Forwards: 70\nFrom: \"Queue support\" <sip:600@192.0.2.1>;tag=pbx1\nTo: <sip:101@192.0.2.1>\nCall-ID: call-1@pbx\nCSeq: 10 INVITE\nContact: <sip:600@192.0.2.1:5060>\n{extra}Content-Type: application/sdp\nContent-Length: {}\n\n{}",
        body.len(),
        body.replace("\r\n", "\n")
    )
}

/// An incoming call answered; returns the agent, the instant and our To tag.
fn answered_call() -> (UserAgent, Instant, String) {
    let mut ua = agent();
    let now = Instant::now();
    feed(&mut ua, now, &invite(SDP, ""));
    let ringing = responses(&mut ua);
    let tag = ringing
        .iter()
        .find(|r| r.status == 180)
        .and_then(|r| r.to_tag())
        .expect("180 with a To tag");
    ua.command(
        now,
        Command::Answer {
            call: ringside::sip::ua::CallId(1),
        },
    )
    .expect("answer");
    let ok = responses(&mut ua);
    assert!(ok.iter().any(|r| r.status == 200), "200 OK sent");
    feed(
        &mut ua,
        now,
        &format!("ACK sip:101@192.0.2.50:5062 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack1\nMax-Forwards: 70\nFrom: <sip:600@192.0.2.1>;tag=pbx1\nTo: <sip:101@192.0.2.1>;tag={tag}\nCall-ID: call-1@pbx\nCSeq: 10 ACK\nContent-Length: 0\n\n"),
    );
    let ev = events(&mut ua);
    assert!(
        ev.iter()
            .any(|e| matches!(e, UaEvent::Answered { codec: Some(c), .. } if c == "PCMA")),
        "{ev:?}"
    );
    (ua, now, tag)
}

#[test]
fn options_is_answered_with_allow_and_accept() {
    let mut ua = agent();
    feed(&mut ua, Instant::now(), "OPTIONS sip:101@192.0.2.50:5062 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKopt\nMax-Forwards: 70\nFrom: <sip:pbx@192.0.2.1>;tag=o1\nTo: <sip:101@192.0.2.50>\nCall-ID: opt-1\nCSeq: 1 OPTIONS\nContent-Length: 0\n\n");
    let r = responses(&mut ua);
    let ok = r.iter().find(|r| r.status == 200).expect("200");
    assert!(ok.header("Allow").unwrap_or_default().contains("REFER"));
    assert!(ok
        .header("Accept")
        .unwrap_or_default()
        .contains("application/sdp"));
    assert!(ok.to_tag().is_some());
}

#[test]
fn bye_for_an_unknown_dialog_gets_481() {
    let mut ua = agent();
    feed(&mut ua, Instant::now(), "BYE sip:101@192.0.2.50:5062 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKbye\nMax-Forwards: 70\nFrom: <sip:600@192.0.2.1>;tag=x\nTo: <sip:101@192.0.2.1>;tag=nope\nCall-ID: ghost\nCSeq: 5 BYE\nContent-Length: 0\n\n");
    assert!(responses(&mut ua).iter().any(|r| r.status == 481));
}

#[test]
fn an_incoming_call_shows_the_caller_and_pai_updates_the_party() {
    let mut ua = agent();
    let now = Instant::now();
    feed(
        &mut ua,
        now,
        &invite(
            SDP,
            "P-Asserted-Identity: \"Jane Customer\" <sip:+3225551234@192.0.2.1>\n",
        ),
    );
    let ev = events(&mut ua);
    let shown = ev.iter().find_map(|e| match e {
        UaEvent::IncomingCall { name, from, .. } => Some((name.clone(), from.clone())),
        _ => None,
    });
    assert_eq!(
        shown,
        Some((
            Some("Jane Customer".into()),
            "sip:+3225551234@192.0.2.1".into()
        ))
    );

    // After a transfer at the PBX, a re-INVITE carries the new party's identity.
    let (mut ua, now, tag) = answered_call();
    let reinvite = invite(
        SDP,
        "P-Asserted-Identity: \"Bob Other\" <sip:+15550001@192.0.2.1>\n",
    )
    .replace(
        "To: <sip:101@192.0.2.1>",
        &format!("To: <sip:101@192.0.2.1>;tag={tag}"),
    )
    .replace("CSeq: 10 INVITE", "CSeq: 11 INVITE")
    .replace("z9hG4bKinv1", "z9hG4bKinv2");
    feed(&mut ua, now, &reinvite);
    assert!(responses(&mut ua)
        .iter()
        .any(|r| r.status == 200 && !r.body.is_empty()));
    let ev = events(&mut ua);
    assert!(
        ev.iter().any(
            |e| matches!(e, UaEvent::RemotePartyChanged { name: Some(n), .. } if n == "Bob Other")
        ),
        "{ev:?}"
    );
}

#[test]
fn remote_hold_by_sendonly_and_by_zero_address_is_seen() {
    let (mut ua, now, tag) = answered_call();
    for (n, sdp) in [
        (11, SDP.replace("a=sendrecv", "a=sendonly")),
        (12, SDP.to_string()),
        (13, SDP.replace("c=IN IP4 192.0.2.1", "c=IN IP4 0.0.0.0")),
    ] {
        let reinvite = invite(&sdp, "")
            .replace(
                "To: <sip:101@192.0.2.1>",
                &format!("To: <sip:101@192.0.2.1>;tag={tag}"),
            )
            .replace("CSeq: 10 INVITE", &format!("CSeq: {n} INVITE"))
            .replace("z9hG4bKinv1", &format!("z9hG4bKre{n}"));
        feed(&mut ua, now, &reinvite);
        let ok = responses(&mut ua);
        let answer = ok.iter().find(|r| r.status == 200).expect("200");
        let text = String::from_utf8_lossy(&answer.body).to_string();
        if n == 11 {
            assert!(
                text.contains("a=recvonly"),
                "answer to sendonly is recvonly: {text}"
            );
        }
    }
    let ev = events(&mut ua);
    let holds: Vec<&str> = ev
        .iter()
        .filter_map(|e| match e {
            UaEvent::RemoteHold { .. } => Some("hold"),
            UaEvent::RemoteResume { .. } => Some("resume"),
            _ => None,
        })
        .collect();
    assert_eq!(holds, vec!["hold", "resume", "hold"]);
}

#[test]
fn dtmf_by_info_is_reported() {
    let (mut ua, now, tag) = answered_call();
    feed(&mut ua, now, &format!("INFO sip:101@192.0.2.50:5062 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKinfo\nMax-Forwards: 70\nFrom: <sip:600@192.0.2.1>;tag=pbx1\nTo: <sip:101@192.0.2.1>;tag={tag}\nCall-ID: call-1@pbx\nCSeq: 11 INFO\nContent-Type: application/dtmf-relay\nContent-Length: 26\n\nSignal=#\r\nDuration=250\r\n"));
    assert!(responses(&mut ua).iter().any(|r| r.status == 200));
    assert!(events(&mut ua).iter().any(|e| matches!(
        e,
        UaEvent::DtmfReceived {
            digit: '#',
            duration_ms: 250,
            ..
        }
    )));
}

#[test]
fn an_offer_without_a_common_codec_is_refused_488() {
    let mut ua = agent();
    let g729 = SDP
        .replace("RTP/AVP 8 101", "RTP/AVP 18")
        .replace("a=rtpmap:8 PCMA/8000\n", "");
    feed(&mut ua, Instant::now(), &invite(&g729, ""));
    let r = responses(&mut ua);
    assert!(
        r.iter().any(|r| r.status == 488),
        "{:?}",
        r.iter().map(|r| r.status).collect::<Vec<_>>()
    );
    assert!(
        events(&mut ua)
            .iter()
            .all(|e| !matches!(e, UaEvent::IncomingCall { .. })),
        "nobody rings"
    );
}

#[test]
fn an_invite_without_an_offer_gets_ours_and_the_ack_carries_the_answer() {
    let mut ua = agent();
    let now = Instant::now();
    let bare = invite("", "").replace("Content-Type: application/sdp\n", "");
    feed(&mut ua, now, &bare);
    let tag = responses(&mut ua)
        .iter()
        .find_map(|r| r.to_tag())
        .expect("tag");
    ua.command(
        now,
        Command::Answer {
            call: ringside::sip::ua::CallId(1),
        },
    )
    .expect("answer");
    let ok = responses(&mut ua);
    let offer = ok.iter().find(|r| r.status == 200).expect("200");
    assert!(
        String::from_utf8_lossy(&offer.body).contains("m=audio"),
        "our offer is in the 200"
    );
    let answer = SDP.replace('\n', "\r\n");
    feed(&mut ua, now, &format!("ACK sip:101@192.0.2.50:5062 SIP/2.0\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKack9\nMax-Forwards: 70\nFrom: <sip:600@192.0.2.1>;tag=pbx1\nTo: <sip:101@192.0.2.1>;tag={tag}\nCall-ID: call-1@pbx\nCSeq: 10 ACK\nContent-Type: application/sdp\nContent-Length: {}\n\n{}", answer.len(), SDP));
    let ev = events(&mut ua);
    assert!(
        ev.iter()
            .any(|e| matches!(e, UaEvent::Answered { codec: Some(c), .. } if c == "PCMA")),
        "{ev:?}"
    );
}
