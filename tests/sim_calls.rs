//! Whole calls between ringside user agents over a simulated network: seeded loss and delay,
//! a virtual clock, no sockets. This exercises the sans-IO core end to end (transactions,
//! retransmissions, dialogs, offer/answer, hold, DTMF, transfer) faster than real time.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ringside::sip::transaction::{Target, Transport};
use ringside::sip::ua::{CallId, Command, UaConfig, UaEvent, UserAgent};

/// A tiny deterministic PRNG so a failing seed can be replayed.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn between(&mut self, low_ms: u64, high_ms: u64) -> Duration {
        Duration::from_millis(low_ms + self.next() % (high_ms - low_ms + 1))
    }
}

struct InFlight {
    at: Instant,
    from: SocketAddr,
    to: SocketAddr,
    bytes: Vec<u8>,
}

struct Net {
    now: Instant,
    agents: Vec<(SocketAddr, UserAgent)>,
    events: HashMap<SocketAddr, Vec<UaEvent>>,
    wire: Vec<InFlight>,
    rng: XorShift,
    loss_percent: u64,
    delay_ms: (u64, u64),
    delivered: usize,
    dropped: usize,
}

fn addr(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 5060))
}

impl Net {
    fn new(seed: u64, loss_percent: u64, delay_ms: (u64, u64)) -> Net {
        Net {
            now: Instant::now(),
            agents: Vec::new(),
            events: HashMap::new(),
            wire: Vec::new(),
            rng: XorShift(seed | 1),
            loss_percent,
            delay_ms,
            delivered: 0,
            dropped: 0,
        }
    }

    fn add(&mut self, user: &str, last: u8) -> SocketAddr {
        let a = addr(last);
        // The "registrar" is never used here: calls go directly between IP-literal URIs.
        let mut config = UaConfig::simple(user, a, addr(250));
        config.rtp_ports = (
            20000 + u16::from(last) * 100,
            20000 + u16::from(last) * 100 + 98,
        );
        let seed = self.rng.next();
        self.agents.push((a, UserAgent::new(config, seed)));
        a
    }

    fn agent(&mut self, a: SocketAddr) -> &mut UserAgent {
        &mut self
            .agents
            .iter_mut()
            .find(|(x, _)| *x == a)
            .expect("agent")
            .1
    }

    fn command(&mut self, a: SocketAddr, command: Command) {
        let now = self.now;
        self.agent(a)
            .command(now, command)
            .expect("command accepted");
        self.collect();
    }

    /// Move every output of every agent onto the wire (with loss and delay) or into events.
    fn collect(&mut self) {
        for (a, ua) in &mut self.agents {
            while let Some(t) = ua.poll_transmit() {
                if self.rng.chance(self.loss_percent) {
                    self.dropped += 1;
                    continue;
                }
                let delay = self.rng.between(self.delay_ms.0, self.delay_ms.1);
                self.wire.push(InFlight {
                    at: self.now + delay,
                    from: *a,
                    to: t.target.addr,
                    bytes: t.bytes,
                });
            }
            while let Some(e) = ua.poll_event() {
                self.events.entry(*a).or_default().push(e);
            }
        }
    }

    /// Advance to the next delivery or timer. Returns false when nothing is left to happen.
    fn step(&mut self) -> bool {
        let next_wire = self.wire.iter().map(|m| m.at).min();
        let next_timer = self
            .agents
            .iter()
            .filter_map(|(_, ua)| ua.poll_timeout())
            .min();
        let Some(next) = [next_wire, next_timer].into_iter().flatten().min() else {
            return false;
        };
        self.now = self.now.max(next);
        let now = self.now;
        let (due, rest): (Vec<InFlight>, Vec<InFlight>) =
            self.wire.drain(..).partition(|m| m.at <= now);
        self.wire = rest;
        for m in due {
            self.delivered += 1;
            if let Some((_, ua)) = self.agents.iter_mut().find(|(a, _)| *a == m.to) {
                let source = Target {
                    transport: Transport::Udp,
                    addr: m.from,
                };
                ua.handle_datagram(now, source, &m.bytes);
            }
        }
        for (_, ua) in &mut self.agents {
            if ua.poll_timeout().is_some_and(|t| t <= now) {
                ua.handle_timeout(now);
            }
        }
        self.collect();
        true
    }

    /// Run until `pred` holds, within `limit` of virtual time and a bounded number of steps.
    fn run_until(&mut self, limit: Duration, mut pred: impl FnMut(&Net) -> bool) {
        let end = self.now + limit;
        for _ in 0..200_000 {
            if pred(self) {
                return;
            }
            if self.now > end || !self.step() {
                break;
            }
        }
        assert!(
            pred(self),
            "condition not reached within {limit:?}; events: {:#?}",
            self.events
        );
    }

    fn saw(&self, a: SocketAddr, f: impl Fn(&UaEvent) -> bool) -> bool {
        self.events.get(&a).is_some_and(|v| v.iter().any(f))
    }

    fn incoming_call(&self, a: SocketAddr) -> Option<CallId> {
        self.events.get(&a)?.iter().rev().find_map(|e| match e {
            UaEvent::IncomingCall { call, .. } => Some(*call),
            _ => None,
        })
    }
}

fn sip_target(user: &str, a: SocketAddr) -> String {
    format!("sip:{user}@{}:{}", a.ip(), a.port())
}

fn full_call(seed: u64, loss: u64) {
    let mut net = Net::new(seed, loss, (5, 60));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(60), |n| n.incoming_call(bob).is_some());
    let bob_call = net.incoming_call(bob).expect("incoming");
    if loss == 0 {
        // Over a lossy network a lost 180 is never repeated (provisional responses are
        // unreliable without PRACK), so only a clean network promises the ringing event.
        net.run_until(Duration::from_secs(60), |n| {
            n.saw(alice, |e| matches!(e, UaEvent::Ringing { .. }))
        });
    }
    net.command(bob, Command::Answer { call: bob_call });
    net.run_until(Duration::from_secs(60), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Answered { .. }))
            && n.saw(bob, |e| matches!(e, UaEvent::Answered { .. }))
    });
    let codec_ok = net.saw(
        alice,
        |e| matches!(e, UaEvent::Answered { codec: Some(c), .. } if c == "PCMU"),
    );
    assert!(codec_ok, "PCMU is first in both preference lists");

    // Hold and resume from the caller; the callee sees the far-end hold.
    net.command(alice, Command::Hold { call: CallId(1) });
    net.run_until(Duration::from_secs(60), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Held { .. }))
            && n.saw(bob, |e| matches!(e, UaEvent::RemoteHold { .. }))
    });
    net.command(alice, Command::Resume { call: CallId(1) });
    net.run_until(Duration::from_secs(60), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Resumed { .. }))
            && n.saw(bob, |e| matches!(e, UaEvent::RemoteResume { .. }))
    });

    // DTMF by INFO (no media engine: rtp_dtmf is off), in order.
    net.command(
        alice,
        Command::Dtmf {
            call: CallId(1),
            digits: "12#".into(),
        },
    );
    net.run_until(Duration::from_secs(60), |n| {
        n.events.get(&bob).map(|v| {
            v.iter()
                .filter(|e| matches!(e, UaEvent::DtmfReceived { .. }))
                .count()
        }) == Some(3)
    });
    let digits: String = net.events[&bob]
        .iter()
        .filter_map(|e| match e {
            UaEvent::DtmfReceived { digit, .. } => Some(*digit),
            _ => None,
        })
        .collect();
    assert_eq!(digits, "12#");

    net.command(bob, Command::Hangup { call: bob_call });
    net.run_until(Duration::from_secs(60), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::CallEnded { .. }))
    });
    // Let every transaction finish; nothing may linger.
    net.run_until(Duration::from_secs(120), |n| {
        n.agents.iter().all(|(_, ua)| ua.is_idle())
    });
}

#[test]
fn a_whole_call_on_a_clean_network() {
    full_call(1, 0);
}

#[test]
fn whole_calls_survive_loss_and_jitter() {
    // 15 % loss each way: every step must be carried by retransmissions.
    for seed in 1..=12 {
        full_call(seed * 7919, 15);
    }
}

#[test]
fn cancel_while_ringing_ends_both_sides() {
    let mut net = Net::new(3, 0, (5, 20));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Ringing { .. }))
    });
    net.command(alice, Command::Hangup { call: CallId(1) });
    net.run_until(Duration::from_secs(40), |n| {
        n.saw(alice, |e| {
            matches!(
                e,
                UaEvent::CallEnded {
                    code: Some(487),
                    ..
                }
            )
        }) && n.saw(bob, |e| {
            matches!(
                e,
                UaEvent::CallEnded {
                    code: Some(487),
                    ..
                }
            )
        })
    });
}

#[test]
fn reject_gives_the_caller_declined() {
    let mut net = Net::new(5, 0, (5, 20));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| n.incoming_call(bob).is_some());
    let call = net.incoming_call(bob).expect("call");
    net.command(bob, Command::Reject { call });
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(alice, |e| {
            matches!(e, UaEvent::CallEnded { code: Some(603), reason, .. } if reason == "declined")
        })
    });
}

#[test]
fn unreachable_peer_times_out_with_a_clear_reason() {
    let mut net = Net::new(9, 0, (5, 20));
    let alice = net.add("alice", 1);
    // Nobody at .9: every INVITE is lost; Timer B ends the call after 64*T1.
    net.command(
        alice,
        Command::Dial {
            target: "sip:ghost@127.0.0.9:5060".into(),
        },
    );
    let started = net.now;
    net.run_until(Duration::from_secs(40), |n| {
        n.saw(alice, |e| {
            matches!(
                e,
                UaEvent::CallEnded {
                    code: Some(408),
                    ..
                }
            )
        })
    });
    let took = net.now - started;
    assert!(
        took >= Duration::from_secs(32) && took < Duration::from_secs(33),
        "Timer B: {took:?}"
    );
}

#[test]
fn glare_on_simultaneous_holds_is_resolved() {
    let mut net = Net::new(11, 0, (30, 30));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| n.incoming_call(bob).is_some());
    let bob_call = net.incoming_call(bob).expect("call");
    net.command(bob, Command::Answer { call: bob_call });
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(bob, |e| matches!(e, UaEvent::Answered { .. }))
    });
    // Both hold at the same instant: both re-INVITEs cross, both get 491, both retry.
    net.command(alice, Command::Hold { call: CallId(1) });
    net.command(bob, Command::Hold { call: bob_call });
    net.run_until(Duration::from_secs(30), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Held { .. }))
            && n.saw(bob, |e| matches!(e, UaEvent::Held { .. }))
    });
}

#[test]
fn blind_transfer_moves_the_call_to_the_target() {
    let mut net = Net::new(13, 0, (5, 30));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    let carol = net.add("carol", 3);
    // Alice calls Bob; Bob transfers Alice to Carol.
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| n.incoming_call(bob).is_some());
    let bob_call = net.incoming_call(bob).expect("call");
    net.command(bob, Command::Answer { call: bob_call });
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Answered { .. }))
            && n.saw(bob, |e| matches!(e, UaEvent::Answered { .. }))
    });
    net.command(
        bob,
        Command::Transfer {
            call: bob_call,
            target: sip_target("carol", carol),
        },
    );
    net.run_until(Duration::from_secs(10), |n| {
        n.incoming_call(carol).is_some()
    });
    let carol_call = net.incoming_call(carol).expect("transferred call");
    net.command(carol, Command::Answer { call: carol_call });
    net.run_until(Duration::from_secs(20), |n| {
        n.saw(bob, |e| {
            matches!(e, UaEvent::TransferDone { success: true, .. })
        }) && n.saw(bob, |e| matches!(e, UaEvent::CallEnded { .. }))
            && n.saw(alice, |e| matches!(e, UaEvent::TransferRequested { .. }))
            && n.saw(carol, |e| matches!(e, UaEvent::Answered { .. }))
    });
    // Alice's original call to Bob ended; her new call to Carol is up.
    net.run_until(Duration::from_secs(20), |n| {
        n.saw(alice, |e| {
            matches!(
                e,
                UaEvent::CallEnded {
                    call: CallId(1),
                    ..
                }
            )
        })
    });
}

#[test]
fn attended_transfer_replaces_the_consultation_call() {
    let mut net = Net::new(17, 0, (5, 30));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    let carol = net.add("carol", 3);
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| n.incoming_call(bob).is_some());
    let bob_call = net.incoming_call(bob).expect("call");
    net.command(bob, Command::Answer { call: bob_call });
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Answered { .. }))
            && n.saw(bob, |e| matches!(e, UaEvent::Answered { .. }))
    });
    // Bob consults Carol (Alice is held), then joins Alice and Carol.
    net.command(
        bob,
        Command::AttendedStart {
            call: bob_call,
            target: sip_target("carol", carol),
        },
    );
    net.run_until(Duration::from_secs(10), |n| {
        n.incoming_call(carol).is_some()
    });
    let carol_consult = net.incoming_call(carol).expect("consultation");
    net.command(
        carol,
        Command::Answer {
            call: carol_consult,
        },
    );
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(bob, |e| matches!(e, UaEvent::Held { .. }))
            && n.events[&bob]
                .iter()
                .filter(|e| matches!(e, UaEvent::Answered { .. }))
                .count()
                == 2
    });
    net.command(bob, Command::AttendedComplete { call: bob_call });
    net.run_until(Duration::from_secs(30), |n| {
        n.saw(bob, |e| {
            matches!(e, UaEvent::TransferDone { success: true, .. })
        }) && n.saw(
            carol,
            |e| matches!(e, UaEvent::CallEnded { call, .. } if *call == carol_consult),
        ) && n.events.get(&carol).is_some_and(|v| {
            v.iter()
                .filter(|e| matches!(e, UaEvent::Answered { .. }))
                .count()
                == 2
        })
    });
    // Bob is out of both calls.
    net.run_until(Duration::from_secs(30), |n| {
        n.events[&bob]
            .iter()
            .filter(|e| matches!(e, UaEvent::CallEnded { .. }))
            .count()
            == 2
    });
}

#[test]
fn reject_incoming_and_auto_answer_options() {
    let mut net = Net::new(19, 0, (5, 20));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    // Rebuild bob with options: reject everything with 486.
    net.agents.retain(|(a, _)| *a != bob);
    let mut config = UaConfig::simple("bob", bob, addr(250));
    config.reject_incoming = Some(486);
    net.agents.push((bob, UserAgent::new(config, 42)));
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(alice, |e| {
            matches!(
                e,
                UaEvent::CallEnded {
                    code: Some(486),
                    ..
                }
            )
        })
    });
    // Now auto-answer after 2 s.
    net.agents.retain(|(a, _)| *a != bob);
    let mut config = UaConfig::simple("bob", bob, addr(250));
    config.auto_answer = Some(Duration::from_secs(2));
    net.agents.push((bob, UserAgent::new(config, 43)));
    let dialed = net.now;
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Answered { .. }))
    });
    assert!(
        net.now - dialed >= Duration::from_secs(2),
        "answered only after the delay"
    );
}

#[test]
fn a_call_survives_the_registrar_going_away() {
    let mut net = Net::new(23, 0, (5, 20));
    let alice = net.add("alice", 1);
    let bob = net.add("bob", 2);
    net.command(
        alice,
        Command::Dial {
            target: sip_target("bob", bob),
        },
    );
    net.run_until(Duration::from_secs(10), |n| n.incoming_call(bob).is_some());
    let call = net.incoming_call(bob).expect("call");
    net.command(bob, Command::Answer { call });
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(alice, |e| matches!(e, UaEvent::Answered { .. }))
    });
    // The registrar (127.0.0.250) is gone: registration fails and retries with backoff ...
    net.command(alice, Command::Register);
    net.run_until(Duration::from_secs(120), |n| {
        n.events[&alice]
            .iter()
            .filter(|e| matches!(e, UaEvent::RegistrationFailed { .. }))
            .count()
            >= 2
    });
    // ... while the call goes on: hold still works and the hang-up reaches the far end.
    net.command(alice, Command::Hold { call: CallId(1) });
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(bob, |e| matches!(e, UaEvent::RemoteHold { .. }))
    });
    net.command(alice, Command::Hangup { call: CallId(1) });
    net.run_until(Duration::from_secs(10), |n| {
        n.saw(bob, |e| matches!(e, UaEvent::CallEnded { .. }))
    });
}

#[test]
fn call_from_another_device_rings_the_handset_then_transfers_it() {
    let mut net = Net::new(29, 0, (5, 20));
    let alice = addr(1);
    let desk = net.add("desk", 2);
    let customer = net.add("customer", 3);
    // Alice has no sound card: her dials ring her desk phone first.
    let mut config = UaConfig::simple("alice", alice, addr(250));
    config.external_device = Some(sip_target("desk", desk));
    net.agents.push((alice, UserAgent::new(config, 77)));
    net.command(
        alice,
        Command::Dial {
            target: sip_target("customer", customer),
        },
    );
    net.run_until(Duration::from_secs(10), |n| n.incoming_call(desk).is_some());
    assert!(
        net.incoming_call(customer).is_none(),
        "the customer is not called before the desk answers"
    );
    let desk_call = net.incoming_call(desk).expect("desk rings");
    net.command(desk, Command::Answer { call: desk_call });
    // Once the desk phone answers, it is asked (REFER) to call the customer.
    net.run_until(Duration::from_secs(10), |n| {
        n.incoming_call(customer).is_some()
    });
    let customer_call = net.incoming_call(customer).expect("customer rings");
    net.command(
        customer,
        Command::Answer {
            call: customer_call,
        },
    );
    net.run_until(Duration::from_secs(20), |n| {
        n.saw(alice, |e| {
            matches!(e, UaEvent::TransferDone { success: true, .. })
        }) && n.saw(desk, |e| matches!(e, UaEvent::TransferRequested { .. }))
            && n.saw(customer, |e| matches!(e, UaEvent::Answered { .. }))
    });
}
