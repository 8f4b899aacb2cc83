//! The lab PBX's SIP side, sans-IO: phones register, dial the queues' connection codes, are
//! rung for queue calls, call each other, and transfer queue calls (blind and attended).
//!
//! [`LabPbx`] owns a [`TransactionLayer`], the lab's [`Registrar`] and a table of SIP legs, and
//! works hand in hand with the [`Simulation`], which every input borrows:
//!
//! - REGISTER goes to the registrar (digest auth, bindings); OPTIONS gets 200; every request is
//!   checked by `sip::validate` first (405, 415, 416, 420 ...).
//! - An INVITE is challenged (407) like a PBX does, then routed by
//!   [`LabConfig::dialled`]: a connection or disconnection code is answered with a ~2 s
//!   confirmation (two short 425 Hz beeps; a 480+620 Hz congestion tone when the queue refused,
//!   e.g. already logged in), the agent joins or leaves the queue through
//!   [`Simulation::real_agent_login`] / [`Simulation::real_agent_logout`] with this call's
//!   Call-ID as the queue_log id, and the lab hangs up. While the code call is on, the phone
//!   counts as busy ([`Simulation::set_agent_busy`]), so a waiting caller rings it only after.
//!   A call to another registered phone is bridged: the lab answers the caller once the
//!   callee (rung with an INVITE of its own) answers, relays its ringing and its refusal, and
//!   carries the audio between the two legs in-process (each leg decodes what its phone
//!   sends and plays what the other phone said). Unknown numbers get 404. Challenges offer
//!   MD5 only by default (see [`PbxConfig::new`]).
//! - A call to a queue's extension is a real caller: answered at once (the codec is the first
//!   of the caller's offer the lab has), it hears [`HoldMusic`] and joins the queue through
//!   [`Simulation::real_caller_join`] with its From user as caller ID and its Call-ID as the
//!   queue call id (a queue that turns it away, `join_empty = false` or `max_len`, gets 480 /
//!   486 instead of an answer). The agent the queue rings is rung as for any queue call; its
//!   answer stops the music and bridges the two legs' audio. A bot that answers
//!   ([`SimAction::BotAnswered`]) plays a bot's voice ([`CallerVoice::bot`]) until the
//!   simulation ends the call. Either side's BYE ends the other leg; the queue hears of the
//!   caller's end as ABANDON (waiting) or COMPLETECALLER, of the agent's as COMPLETEAGENT. A
//!   caller the queue sends away (maximum wait, leave when empty) is hung up, or, after the
//!   maximum wait of a queue with `timeout_fallback = "voicemail"`, hears a beep and is
//!   recorded for up to [`VOICEMAIL_MAX`]; the message comes out of [`LabPbx::poll_voicemail`]
//!   for the driver to write.
//! - Transfers (RFC 3515): an agent's REFER in a queue call's dialog gets 202 and a NOTIFY
//!   `message/sipfrag` "100 Trying". A blind transfer (Refer-To without Replaces) rings a
//!   registered target with the caller's ID and voice; a bot, an E.164 number or the
//!   simulation's transfer target take the caller at once (they live outside SIP); a queue's
//!   extension puts the caller in that queue again (BLINDTRANSFER, then ENTERQUEUE). A real
//!   caller's own voice goes wherever it is transferred. The final NOTIFY carries the outcome ("200 OK", or "404 Not Found", "480", "486" ... after
//!   which the caller stays with the agent); on success the queue logs BLINDTRANSFER and the
//!   lab hangs up the agent's leg unless the agent does within [`TRANSFEROR_GRACE`]. An agent
//!   that hangs up before the target answered has handed the caller over: BLINDTRANSFER then.
//!   An attended transfer (Refer-To with `?Replaces=` naming the agent's consultation call
//!   through the lab) hands the caller to the consulted phone's leg, ends the consultation
//!   leg and the agent's, and logs ATTENDEDTRANSFER with a bridge id. A transferred caller
//!   talks for the simulation's mean talk time, then hangs up (or the target does).
//!   A phone in a phone-to-phone call may blind-transfer it too (a REFER with Replaces there
//!   gets 403): the lab rings the target (a registered, free phone) as the other phone, with
//!   Referred-By naming the transferor; once it answers, the other phone talks to it, the
//!   transferor gets "200 OK" and is hung up as above. Nothing goes to queue_log. A transferor
//!   that hangs up first leaves the other phone with music until the target answers.
//! - The simulation's actions come in through [`LabPbx::handle_sim_actions`]: `Ring` sends an
//!   INVITE to the agent's newest binding, at the address its REGISTER came from (NAT), with
//!   the caller ID in From (`"support: +3225550137" <sip:+3225550137@lab>`). A 2xx is ACKed and
//!   reported with [`Simulation::agent_answered`] (the leg's Call-ID is the agent leg id in
//!   CONNECT), and the agent hears the caller: a 400/800 Hz warble ([`CallerVoice`]). Failures
//!   (486, 603, 408, no binding) go to [`Simulation::agent_rejected`]; `StopRinging` sends
//!   CANCEL; `EndCall` sends BYE; the agent's BYE is [`Simulation::call_ended`] by the agent.
//!
//! - Hold (RFC 3264 §8.4): a re-INVITE on any connected leg is answered with the direction
//!   its offer leaves (`recvonly` to `sendonly`, `inactive` to `inactive`); a phone that stops
//!   listening that way (or with the old `c=0.0.0.0`) gets no RTP from the lab, and the phone
//!   bridged to it hears [`HoldMusic`] instead of silence, as on a PBX, until a re-INVITE
//!   resumes the call.
//!
//! Media: each leg takes a local RTP port from the pool the driver bound
//! ([`PbxConfig::media_ports`]), so no port is ever promised that is not there. Legs send a
//! frame every packet time (the timer is in [`LabPbx::poll_timeout`]); RTP comes out of
//! [`LabPbx::poll_media`] tagged with the local port. The lab binds no RTCP sockets, so RTCP
//! reports are not sent.
//!
//! Contract, as everywhere in the core: after every input (`handle_datagram`, `handle_rtp`,
//! `handle_timeout`, `handle_sim_actions`) drain `poll_transmit`, `poll_media` and
//! `poll_event`, then sleep until `poll_timeout`. The simulation's own outputs (queue_log,
//! events) are drained by the driver as before; its actions must reach `handle_sim_actions`.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::f64::consts::TAU;
use std::time::{Duration, Instant};

use core::net::{IpAddr, SocketAddr};

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::lab::config::{Dialled, LabConfig, TimeoutFallback};
use crate::lab::queue::{HangupReason, JoinOutcome, QueueAction, RefuseReason};
use crate::lab::registrar::{Registrar, RegistrarEvent};
use crate::lab::sim::{SimAction, Simulation, Transfer};
use crate::media::session::{Channel, MediaParams, MediaSession};
use crate::media::tones::{Tone, ToneGenerator, ToneRegion};
use crate::sip::auth::Algorithm;
use crate::sip::dialog::Dialog;
use crate::sip::msg::{
    self, Message, Method, NameAddr, Request, Response, Scheme, SipHeaders, Uri, Via,
};
use crate::sip::sdp::{self, Codec, Direction, LocalMedia, Negotiated, SessionDescription};
use crate::sip::transaction::{
    self, Target, Timers, TransactionLayer, Transmit, Transport, TxEvent, TxId,
};
use crate::sip::validate::{self, UasPolicy};

/// How long a connection or disconnection code call plays its confirmation before the lab
/// hangs up.
pub const CONFIRMATION: Duration = Duration::from_secs(2);
/// The confirmation beeps (European call-waiting cadence: 0.2 s on, 0.2 s off, 0.2 s on).
pub const CONFIRMATION_HZ: f64 = 425.0;
/// What a code call plays when the queue refused the change (already in, not a member).
pub const REFUSAL_HZ: [f64; 2] = [480.0, 620.0];
/// The two pitches of the simulated caller's voice.
pub const CALLER_VOICE_HZ: [f64; 2] = [400.0, 800.0];
/// Each pitch of the caller's voice lasts this long before the other takes over.
pub const CALLER_VOICE_STEP: Duration = Duration::from_millis(250);
/// Peak amplitude of the caller's voice (16-bit scale): about -12 dBFS.
const CALLER_VOICE_LEVEL: f64 = 8000.0;
/// The two pitches of a bot's voice, heard by a real caller a bot answered (and by a real
/// caller transferred somewhere outside the lab).
pub const BOT_VOICE_HZ: [f64; 2] = [700.0, 1100.0];
/// Each pitch of a bot's voice lasts this long.
pub const BOT_VOICE_STEP: Duration = Duration::from_millis(300);
/// The hold music's chords (C, A minor, F, G), each as the four notes its arpeggio climbs.
pub const HOLD_MUSIC_CHORDS: [[f64; 4]; 4] = [
    [261.63, 329.63, 392.00, 523.25],
    [220.00, 261.63, 329.63, 440.00],
    [174.61, 220.00, 261.63, 349.23],
    [196.00, 246.94, 293.66, 392.00],
];
/// One note of the hold music's arpeggio.
pub const HOLD_MUSIC_NOTE: Duration = Duration::from_millis(250);
/// The order the arpeggio plays a chord's notes in (indexes into a chord): up, then back down.
const HOLD_MUSIC_PATTERN: [usize; 8] = [0, 1, 2, 3, 2, 1, 2, 1];
/// Peak amplitude of an arpeggio note, and of the sustained root an octave below.
const HOLD_MUSIC_NOTE_LEVEL: f64 = 7000.0;
const HOLD_MUSIC_PAD_LEVEL: f64 = 1200.0;
/// The beep before a voicemail message is recorded.
pub const VOICEMAIL_BEEP_HZ: f64 = 1000.0;
pub const VOICEMAIL_BEEP: Duration = Duration::from_millis(500);
const VOICEMAIL_BEEP_LEVEL: f64 = 8000.0;
/// The longest voicemail message; then the lab hangs up.
pub const VOICEMAIL_MAX: Duration = Duration::from_secs(60);
/// The rate voicemail is recorded at (the lab's codecs are 8 kHz).
pub const VOICEMAIL_SAMPLE_RATE: u32 = 8000;
const VOICEMAIL_MAX_SAMPLES: usize = 60 * 8000;
/// Methods the lab answers with something other than 405 / 501.
const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REGISTER, REFER";
/// The dialplan context of the lab, written in BLINDTRANSFER (Asterisk's `extension|context`).
pub const TRANSFER_CONTEXT: &str = "lab";
/// How long a called phone or a transfer target rings before the lab gives up (408).
pub const RING_LIMIT: Duration = Duration::from_secs(30);
/// After a successful transfer the agent has this long to hang up before the lab does.
pub const TRANSFEROR_GRACE: Duration = Duration::from_secs(2);
/// The REFER subscription's lifetime announced in NOTIFYs before the final one.
const REFER_SUBSCRIPTION_SECS: u32 = 60;
/// Bridged audio waiting for the other leg: beyond this (200 ms at 8 kHz) the oldest samples
/// go, so a leg whose clock runs slow cannot build up delay.
const MAX_BRIDGE_BACKLOG: usize = 1600;
/// A late timer wake-up sends at most this many frames at once; further behind, the leg skips.
const MAX_CATCH_UP_FRAMES: u32 = 5;
/// The most simulation actions handled in one go; the rest wait for the next input.
const MAX_ACTIONS_PER_DRAIN: usize = 10_000;
/// Longest Call-ID copied into queue_log (a hostile one must not bloat the file).
const MAX_LOG_ID_CHARS: usize = 128;
/// RTP payload type offered for DTMF events (ignored when received: the lab has no use for
/// digits yet).
const TELEPHONE_EVENT_PT: u8 = 101;

/// Where and how the lab's SIP side runs. The driver binds the sockets first and passes what
/// it got.
#[derive(Debug, Clone)]
pub struct PbxConfig {
    /// Our SIP address as phones reach it (Via, Contact).
    pub sip_addr: SocketAddr,
    /// The address in our SDP (`c=`): where phones send RTP.
    pub media_ip: IpAddr,
    /// Local RTP ports the driver has bound, each used by one leg at a time. Their number
    /// caps the calls the lab carries at once: more get 503 (codes) or count as rejected
    /// (queue rings).
    pub media_ports: Vec<u16>,
    /// Digest realm, and the domain of the caller IDs presented to agents.
    pub realm: String,
    /// Digest algorithms challenged with, one header each, in this order.
    pub digest_algorithms: Vec<Algorithm>,
    pub timers: Timers,
    /// How long a code call plays its confirmation.
    pub confirmation: Duration,
    /// `Server` / `User-Agent` header value.
    pub user_agent: String,
}

impl PbxConfig {
    /// Defaults around the addresses the driver bound: realm `lab`, RFC 3261 timers, a 2 s
    /// confirmation.
    pub fn new(sip_addr: SocketAddr, media_ports: Vec<u16>) -> PbxConfig {
        PbxConfig {
            sip_addr,
            media_ip: sip_addr.ip(),
            media_ports,
            realm: "lab".to_owned(),
            // MD5 only, as Asterisk does: baresip 1.0 (libre) fails the whole challenge with
            // ENOSYS when any header names another algorithm, even next to an MD5 one.
            digest_algorithms: vec![Algorithm::Md5],
            timers: Timers::default(),
            confirmation: CONFIRMATION,
            user_agent: format!("ringside-lab/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// What the lab's SIP side did, for the status lines and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PbxEvent {
    /// A new binding (refreshes are not reported).
    Registered { user: String, contact: String },
    /// A binding is gone: removed by its device, or `expired`.
    Unregistered {
        user: String,
        contact: String,
        expired: bool,
    },
    /// A phone dialled a connection (`login`) or disconnection code; `accepted` is whether the
    /// queue took the change.
    CodeDialled {
        user: String,
        queue: String,
        login: bool,
        accepted: bool,
    },
    /// An agent's phone is being rung for a queue caller.
    AgentRinging {
        call_id: String,
        agent: String,
        caller_id: String,
    },
    /// The agent picked up and the queue connected the call.
    AgentAnswered { call_id: String, agent: String },
    /// Ringing failed and the queue was told (`status`: the phone's answer, 408 for no
    /// answer at all, 480 for no registration, 503 for no free media port).
    AgentRejected {
        call_id: String,
        agent: String,
        status: u16,
    },
    /// Phone `user` called a queue's extension and waits in `queue` as `call_id`.
    CallerQueued {
        user: String,
        queue: String,
        call_id: String,
        caller_id: String,
    },
    /// A connected queue call's agent leg ended; `by_agent` when the phone hung up.
    CallEnded {
        call_id: String,
        agent: String,
        by_agent: bool,
    },
    /// An INVITE the lab does not carry (`status` 404, 480, 486, 488, 503).
    Refused {
        user: String,
        number: String,
        status: u16,
    },
    /// Phone `from` is talking to phone `to` through the lab.
    PhoneCallAnswered { from: String, to: String },
    /// Phone `by` blind-transferred phone `from`, which it was talking to, and `from` now
    /// talks to `to`.
    PhoneCallTransferred {
        by: String,
        from: String,
        to: String,
    },
    /// Phone `by`'s transfer of a phone-to-phone call to `target` failed with `status` (as
    /// the final NOTIFY says); the call goes on.
    PhoneTransferFailed {
        by: String,
        target: String,
        status: u16,
    },
    /// An agent asked (REFER) to transfer its queue caller to `target`.
    TransferRequested {
        call_id: String,
        agent: String,
        target: String,
        attended: bool,
    },
    /// The caller left the agent for `target`; queue_log has BLINDTRANSFER or ATTENDEDTRANSFER.
    Transferred {
        call_id: String,
        agent: String,
        target: String,
        attended: bool,
    },
    /// A transfer failed with `status` (as the final NOTIFY says); the caller stays with the
    /// agent if the agent is still there.
    TransferFailed {
        call_id: String,
        agent: String,
        target: String,
        status: u16,
    },
}

/// RTP for the driver to send from the socket bound on `local_port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaTransmit {
    pub local_port: u16,
    pub remote: SocketAddr,
    pub bytes: Vec<u8>,
}

/// The simulated caller's voice: [`CALLER_VOICE_HZ`] in turns of [`CALLER_VOICE_STEP`],
/// phase-continuous so the switches do not click. Recognisable in a recording, unlike any
/// call-progress tone. [`CallerVoice::bot`] is the same with a bot's pitches.
#[derive(Debug, Clone)]
pub struct CallerVoice {
    sample_rate: u32,
    pitches: [f64; 2],
    step: Duration,
    position: u64,
    phase: f64,
}

impl CallerVoice {
    pub fn new(sample_rate: u32) -> CallerVoice {
        CallerVoice {
            sample_rate: sample_rate.max(1),
            pitches: CALLER_VOICE_HZ,
            step: CALLER_VOICE_STEP,
            position: 0,
            phase: 0.0,
        }
    }

    /// A bot's voice: [`BOT_VOICE_HZ`] in turns of [`BOT_VOICE_STEP`].
    pub fn bot(sample_rate: u32) -> CallerVoice {
        CallerVoice {
            pitches: BOT_VOICE_HZ,
            step: BOT_VOICE_STEP,
            ..CallerVoice::new(sample_rate)
        }
    }

    /// Overwrites `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let rate = u64::from(self.sample_rate);
        let step = u64::try_from(self.step.as_millis()).unwrap_or(1).max(1);
        for sample in out {
            let turn = self.position.saturating_mul(1000) / rate / step;
            let [low, high] = self.pitches;
            let frequency = if turn.is_multiple_of(2) { low } else { high };
            self.phase += TAU * frequency / f64::from(self.sample_rate);
            if self.phase >= TAU {
                self.phase -= TAU;
            }
            *sample = (CALLER_VOICE_LEVEL * self.phase.sin()).round() as i16;
            self.position = self.position.wrapping_add(1);
        }
    }
}

/// The lab's hold music, generated: a slow arpeggio climbing and falling through each chord of
/// [`HOLD_MUSIC_CHORDS`] (two seconds a chord, an eight-second loop), each note plucked (a quick
/// rise, then a decay) over the chord's root sustained an octave lower.
#[derive(Debug, Clone)]
pub struct HoldMusic {
    sample_rate: u32,
    position: u64,
    note_phase: f64,
    pad_phase: f64,
}

impl HoldMusic {
    pub fn new(sample_rate: u32) -> HoldMusic {
        HoldMusic {
            sample_rate: sample_rate.max(1),
            position: 0,
            note_phase: 0.0,
            pad_phase: 0.0,
        }
    }

    /// Overwrites `out` with the next samples.
    pub fn fill(&mut self, out: &mut [i16]) {
        let rate = f64::from(self.sample_rate);
        let note_len = (HOLD_MUSIC_NOTE.as_secs_f64() * rate).max(1.0) as u64;
        let notes_per_chord = HOLD_MUSIC_PATTERN.len() as u64;
        for sample in out {
            let note_index = self.position / note_len;
            let chord_index = (note_index / notes_per_chord) % HOLD_MUSIC_CHORDS.len() as u64;
            let chord = HOLD_MUSIC_CHORDS
                .get(usize::try_from(chord_index).unwrap_or(0))
                .copied()
                .unwrap_or(HOLD_MUSIC_CHORDS[0]);
            let step = usize::try_from(note_index % notes_per_chord).unwrap_or(0);
            let note = HOLD_MUSIC_PATTERN
                .get(step)
                .and_then(|&i| chord.get(i))
                .copied()
                .unwrap_or(chord[0]);
            let into_note = (self.position % note_len) as f64 / rate;
            // 10 ms rise, then the note fades to about a fifth by its end.
            let envelope = (into_note / 0.010).min(1.0) * (-6.0 * into_note).exp();
            self.note_phase = (self.note_phase + TAU * note / rate) % TAU;
            self.pad_phase = (self.pad_phase + TAU * chord[0] / 2.0 / rate) % TAU;
            let value = HOLD_MUSIC_NOTE_LEVEL * envelope * self.note_phase.sin()
                + HOLD_MUSIC_PAD_LEVEL * self.pad_phase.sin();
            *sample = value
                .round()
                .clamp(f64::from(i16::MIN), f64::from(i16::MAX)) as i16;
            self.position = self.position.wrapping_add(1);
        }
    }
}

/// A voicemail message the lab recorded, for the driver to write as a WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Voicemail {
    /// The queue the caller waited in.
    pub queue: String,
    /// The queue call id (the caller's Call-ID).
    pub call_id: String,
    /// Who called.
    pub caller_id: String,
    /// The queue's `voicemail_dir`.
    pub dir: std::path::PathBuf,
    /// `QUEUE-CALLID.wav`, with anything but letters, digits, `-`, `_`, `.` and `@` replaced.
    pub file_name: String,
    pub sample_rate: u32,
    /// What the caller said, 16-bit mono.
    pub samples: Vec<i16>,
}

/// The file a voicemail of `queue`'s caller `call_id` goes to: safe as one path component.
pub fn voicemail_file_name(queue: &str, call_id: &str) -> String {
    let safe = |text: &str| -> String {
        text.chars()
            .take(MAX_LOG_ID_CHARS)
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect()
    };
    let call = safe(call_id);
    // A name of dots only would climb out of the directory.
    let call = if call.chars().all(|c| c == '.') {
        call.replace('.', "_")
    } else {
        call
    };
    format!("{}-{call}.wav", safe(queue))
}

type LegId = u64;

/// What a leg is for.
#[derive(Debug, Clone, PartialEq, Eq)]
enum LegKind {
    /// A phone dialled a connection or disconnection code: it hears the confirmation, then
    /// the lab hangs up.
    Code { agent: String },
    /// The lab rings a real agent for a queue caller.
    Agent {
        call_id: String,
        agent: String,
        queue: String,
        caller_id: String,
    },
    /// A queue caller handed over by `agent`'s transfer: the lab rings `target` with the
    /// caller's voice (blind), or took over the leg to `target` of the agent's consultation
    /// call (attended).
    Transferred {
        call_id: String,
        agent: String,
        target: String,
    },
    /// An agent's leg after its transfer succeeded: nothing left but the hang-up.
    Transferor { agent: String },
    /// Phone `user` called phone `callee`: the lab answers `user` here once `callee` has.
    PhoneIn { user: String, callee: String },
    /// The lab's call to `callee` for `user`'s [`LegKind::PhoneIn`] leg.
    PhoneOut { user: String, callee: String },
    /// The lab rings `target` for `user`, whom `transferor` blind-transferred out of a
    /// phone-to-phone call (the leg's `transferee` is `user`'s leg).
    PhoneTransfer {
        user: String,
        target: String,
        transferor: String,
    },
    /// Phone `user` called a queue's extension: the lab answered, and the leg's Call-ID is the
    /// queue call id (`call_id`, as written in queue_log).
    Caller {
        user: String,
        call_id: String,
        queue: String,
        caller_id: String,
        stage: CallerStage,
    },
}

/// Where a real queue caller is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CallerStage {
    /// In the queue, hearing the hold music.
    Waiting,
    /// Talking to a real agent (the agent's leg is the partner).
    WithAgent,
    /// Talking to a bot (the bot's voice is generated here).
    WithBot,
    /// Leaving a voicemail message.
    Voicemail,
    /// Out of the queue's hands (transferred, or sent away): the queue is told nothing more.
    Gone,
}

impl LegKind {
    /// The lab user whose phone this leg keeps busy (queue calls are the engine's business).
    fn occupant(&self) -> Option<&str> {
        match self {
            LegKind::Code { agent } => Some(agent),
            LegKind::PhoneIn { user, .. } => Some(user),
            LegKind::PhoneOut { callee, .. } => Some(callee),
            LegKind::Transferred { target, .. } | LegKind::PhoneTransfer { target, .. } => {
                Some(target)
            }
            LegKind::Agent { .. } | LegKind::Transferor { .. } | LegKind::Caller { .. } => None,
        }
    }

    /// The lab user at the other end of this leg.
    fn phone_user(&self) -> &str {
        match self {
            LegKind::Code { agent }
            | LegKind::Agent { agent, .. }
            | LegKind::Transferor { agent } => agent,
            LegKind::PhoneIn { user, .. } | LegKind::Caller { user, .. } => user,
            LegKind::PhoneOut { callee, .. } => callee,
            LegKind::Transferred { target, .. } | LegKind::PhoneTransfer { target, .. } => target,
        }
    }
}

/// A REFER the lab is carrying out, kept on the leg it came in (its NOTIFYs go there).
#[derive(Debug, Clone, PartialEq, Eq)]
struct ReferState {
    /// The REFER's CSeq number: the subscription's `id` (RFC 3515 §2.4.6).
    event_id: u32,
    target: String,
    /// The leg ringing the target of a blind transfer.
    target_leg: Option<LegId>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LegState {
    /// UAS: a phone's INVITE waits while the lab rings the phone it called.
    Offered,
    /// UAC: our INVITE waits for its final response.
    Calling,
    /// UAS: our 2xx waits for its ACK.
    Answered,
    /// The dialog is up.
    Confirmed,
    /// Our BYE is out (or our CANCEL with nothing more to wait for); the leg goes when it is
    /// answered or times out.
    Ending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Purpose {
    Invite,
    Cancel,
    Bye,
    Notify,
}

/// A 2xx we re-send until the ACK comes (RFC 3261 §13.3.1.4).
struct Retransmit {
    bytes: Vec<u8>,
    next_at: Instant,
    interval: Duration,
    give_up_at: Instant,
}

enum Audio {
    Tone(ToneGenerator),
    Voice(CallerVoice),
    Music(HoldMusic),
    /// A [`VOICEMAIL_BEEP_HZ`] beep of this many more samples, then silence.
    Beep {
        left: usize,
        phase: f64,
    },
    Silence,
    /// What the bridged leg's phone said, oldest first, decoded by that leg.
    Bridge(VecDeque<i16>),
}

impl Audio {
    fn fill(&mut self, out: &mut [i16]) {
        match self {
            Audio::Tone(tone) => tone.fill(out),
            Audio::Voice(voice) => voice.fill(out),
            Audio::Music(music) => music.fill(out),
            Audio::Beep { left, phase } => {
                for sample in out {
                    if *left == 0 {
                        *sample = 0;
                        continue;
                    }
                    *left -= 1;
                    *phase = (*phase + TAU * VOICEMAIL_BEEP_HZ / 8000.0) % TAU;
                    *sample = (VOICEMAIL_BEEP_LEVEL * phase.sin()).round() as i16;
                }
            }
            Audio::Silence => out.fill(0),
            Audio::Bridge(backlog) => {
                for sample in out {
                    *sample = backlog.pop_front().unwrap_or(0);
                }
            }
        }
    }

    /// Queue what the bridged phone said (a no-op for generated audio).
    fn push_bridged(&mut self, samples: &[i16]) {
        if let Audio::Bridge(backlog) = self {
            backlog.extend(samples.iter().copied());
            let excess = backlog.len().saturating_sub(MAX_BRIDGE_BACKLOG);
            backlog.drain(..excess);
        }
    }
}

struct LegMedia {
    session: MediaSession,
    audio: Audio,
    next_tick: Instant,
    packet_time: Duration,
    mic: Vec<i16>,
    speaker: Vec<i16>,
}

struct Leg {
    kind: LegKind,
    state: LegState,
    /// Where the phone is reached: the INVITE's source (UAS) or the binding's (UAC).
    peer: Target,
    local_port: u16,
    /// The leg's own Call-ID (for agent legs, the agent leg id written in CONNECT).
    sip_call_id: String,
    dialog: Option<Dialog>,
    sdp_session: u64,
    sdp_version: u64,
    media: Option<LegMedia>,
    // UAS (code calls, and re-INVITEs on any leg)
    ok_retransmit: Option<Retransmit>,
    /// When the confirmation is over and the lab hangs up.
    hang_up_at: Option<Instant>,
    /// The confirmation ended before the ACK came: hang up when it does.
    hang_up_after_ack: bool,
    // UAC (agent legs)
    invite: Option<Request>,
    invite_tx: Option<TxId>,
    offer: Option<SessionDescription>,
    got_provisional: bool,
    cancel_requested: bool,
    cancel_sent: bool,
    cancel_give_up_at: Option<Instant>,
    ack: Option<Vec<u8>>,
    /// When an unanswered INVITE of ours is cancelled ([`RING_LIMIT`]).
    ring_until: Option<Instant>,
    /// Our CANCEL came from the ring limit: the failure is a 408 for whoever waits.
    rang_out: bool,
    // UAS legs of phone-to-phone calls, until answered
    /// The INVITE's server transaction and the INVITE.
    offered: Option<(TxId, Request)>,
    // Bridges and transfers
    /// The leg whose phone this leg's phone talks to (audio carried in-process).
    partner: Option<LegId>,
    /// The agent leg whose REFER this leg carries out (a blind transfer's target leg).
    transfer_from: Option<LegId>,
    /// The leg of the phone a [`LegKind::PhoneTransfer`] leg takes over.
    transferee: Option<LegId>,
    /// The transfer is in queue_log already (the agent left before the target answered).
    transfer_logged: bool,
    /// A REFER in progress on this leg.
    refer: Option<ReferState>,
    /// A voicemail message being recorded from this leg's phone.
    recording: Option<Recording>,
}

/// A voicemail message being recorded.
struct Recording {
    queue: String,
    call_id: String,
    caller_id: String,
    dir: std::path::PathBuf,
    /// After the beep.
    from: Instant,
    samples: Vec<i16>,
}

impl Leg {
    fn new(
        kind: LegKind,
        state: LegState,
        peer: Target,
        local_port: u16,
        sip_call_id: String,
    ) -> Leg {
        Leg {
            kind,
            state,
            peer,
            local_port,
            sip_call_id,
            dialog: None,
            sdp_session: 0,
            sdp_version: 1,
            media: None,
            ok_retransmit: None,
            hang_up_at: None,
            hang_up_after_ack: false,
            invite: None,
            invite_tx: None,
            offer: None,
            got_provisional: false,
            cancel_requested: false,
            cancel_sent: false,
            cancel_give_up_at: None,
            ack: None,
            ring_until: None,
            rang_out: false,
            offered: None,
            partner: None,
            transfer_from: None,
            transferee: None,
            transfer_logged: false,
            refer: None,
            recording: None,
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.ok_retransmit
                .as_ref()
                .map(|r| r.next_at.min(r.give_up_at)),
            self.hang_up_at,
            self.cancel_give_up_at,
            self.ring_until.filter(|_| self.state == LegState::Calling),
            self.media.as_ref().map(|m| m.next_tick),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn is_agent_leg(&self, call: &str, who: &str) -> bool {
        matches!(&self.kind, LegKind::Agent { call_id, agent, .. } if call_id == call && agent == who)
    }

    /// Legs of queue call `call`: the agent's, the real caller's, and a transfer target's
    /// still ringing.
    fn carries_queue_call(&self, call: &str) -> bool {
        match &self.kind {
            LegKind::Agent { call_id, .. } => call_id == call,
            LegKind::Caller { call_id, stage, .. } => {
                call_id == call && matches!(stage, CallerStage::WithBot | CallerStage::WithAgent)
            }
            LegKind::Transferred { call_id, .. } => {
                call_id == call && !self.transfer_logged && self.state == LegState::Calling
            }
            _ => false,
        }
    }
}

/// What is left to tell once a leg failed, taken before the leg goes.
struct Failure {
    kind: LegKind,
    cancelled: bool,
    rang_out: bool,
    partner: Option<LegId>,
    transfer_from: Option<LegId>,
    transferee: Option<LegId>,
    transfer_logged: bool,
}

impl Leg {
    fn failure(&self) -> Failure {
        Failure {
            kind: self.kind.clone(),
            cancelled: self.cancel_requested,
            rang_out: self.rang_out,
            partner: self.partner,
            transferee: self.transferee,
            transfer_from: self.transfer_from,
            transfer_logged: self.transfer_logged,
        }
    }
}

/// Where a blind transfer sends the caller.
enum Destination {
    /// A registered lab phone: ring it.
    Phone,
    /// Somewhere the lab does not carry over SIP (a bot, an outside number, the simulation's
    /// own transfer target): the caller is handed over at once.
    Outside,
    /// A queue's extension: the caller waits in that queue again.
    Queue(String),
    /// Not possible: the final NOTIFY's status.
    Refused(u16),
}

/// What a new INVITE reaches.
enum Route {
    Code { queue: String, login: bool },
    Phone(String),
    Queue(String),
    Unknown,
}

/// The lab PBX's SIP side. See the module documentation.
pub struct LabPbx {
    config: PbxConfig,
    tx: TransactionLayer,
    registrar: Registrar,
    policy: UasPolicy,
    rng: SmallRng,
    legs: BTreeMap<LegId, Leg>,
    next_leg: LegId,
    pending: HashMap<TxId, (LegId, Purpose)>,
    free_ports: VecDeque<u16>,
    /// Agents whose code call ended: the queue may ring them again.
    idle_agents: Vec<String>,
    /// Real callers whose leg ended: the queue hears of it (ABANDON, COMPLETECALLER) unless
    /// it already let them go.
    ended_callers: Vec<String>,
    voicemails: VecDeque<Voicemail>,
    out: VecDeque<Transmit>,
    media_out: VecDeque<MediaTransmit>,
    events: VecDeque<PbxEvent>,
}

impl LabPbx {
    /// The SIP side for `lab`'s accounts; `seed` drives tags, Call-IDs, branches and the
    /// registrar's nonce key.
    pub fn new(config: PbxConfig, lab: &LabConfig, seed: u64) -> LabPbx {
        let mut rng = SmallRng::seed_from_u64(seed);
        let registrar = Registrar::new(&config.realm, lab.users(), rng.gen())
            .with_algorithms(config.digest_algorithms.clone());
        let mut ports: Vec<u16> = config.media_ports.clone();
        ports.sort_unstable();
        ports.dedup();
        LabPbx {
            tx: TransactionLayer::new(config.timers),
            registrar,
            policy: UasPolicy {
                allowed_methods: vec![
                    Method::Invite,
                    Method::Ack,
                    Method::Bye,
                    Method::Cancel,
                    Method::Options,
                    Method::Info,
                    Method::Register,
                    Method::Refer,
                ],
                supported_extensions: Vec::new(),
                accepted_content_types: vec![
                    "application/sdp".into(),
                    "application/dtmf-relay".into(),
                ],
            },
            rng,
            legs: BTreeMap::new(),
            next_leg: 1,
            pending: HashMap::new(),
            free_ports: ports.into_iter().collect(),
            idle_agents: Vec::new(),
            ended_callers: Vec::new(),
            voicemails: VecDeque::new(),
            out: VecDeque::new(),
            media_out: VecDeque::new(),
            events: VecDeque::new(),
            config,
        }
    }

    pub fn config(&self) -> &PbxConfig {
        &self.config
    }

    /// The location service (bindings), read-only.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// Legs alive (ringing, talking, confirming, or waiting for a BYE's answer).
    pub fn leg_count(&self) -> usize {
        self.legs.len()
    }

    /// Media ports not used by any leg.
    pub fn free_media_ports(&self) -> usize {
        self.free_ports.len()
    }

    /// Live SIP transactions.
    pub fn transaction_count(&self) -> usize {
        self.tx.len()
    }

    // -- the sans-IO contract -----------------------------------------------------------------

    /// A datagram on the SIP socket.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        source: SocketAddr,
        bytes: &[u8],
    ) {
        let source = Target {
            transport: Transport::Udp,
            addr: source,
        };
        match msg::parse(bytes) {
            Ok(message) => self.handle_message(now, message, source),
            Err(rejected) => {
                tracing::debug!(error = %rejected.error, from = %source.addr, "unparseable SIP message");
                if let Some(response) = validate::response_for_rejected(&rejected) {
                    self.out.push_back(Transmit {
                        target: source,
                        bytes: response.to_bytes(),
                    });
                }
            }
        }
        self.drain_transactions(now, sim);
        self.handle_sim_actions(now, sim);
    }

    /// A datagram on the media socket bound on `local_port`.
    pub fn handle_rtp(&mut self, now: Instant, local_port: u16, from: SocketAddr, bytes: &[u8]) {
        if let Some(media) = self
            .legs
            .values_mut()
            .find(|leg| leg.local_port == local_port)
            .and_then(|leg| leg.media.as_mut())
        {
            media.session.handle_datagram(now, from, bytes);
        }
    }

    /// Timers: transactions, bindings, 2xx retransmissions, confirmations, media frames.
    pub fn handle_timeout(&mut self, now: Instant, sim: &mut Simulation) {
        self.tx.handle_timeout(now);
        self.drain_transactions(now, sim);
        for event in self.registrar.handle_timeout(now) {
            self.note_registrar_event(event);
        }
        let due: Vec<LegId> = self
            .legs
            .iter()
            .filter(|(_, leg)| leg.next_deadline().is_some_and(|at| at <= now))
            .map(|(&id, _)| id)
            .collect();
        for id in due {
            self.leg_timers(now, id);
        }
        self.drain_transactions(now, sim);
        self.handle_sim_actions(now, sim);
    }

    /// Carry out what the simulation asks of real phones: ring, stop ringing, hang up.
    /// Call it after every change to the simulation made outside this object (its timers,
    /// AMI actions); the other inputs here call it themselves.
    pub fn handle_sim_actions(&mut self, now: Instant, sim: &mut Simulation) {
        for _ in 0..MAX_ACTIONS_PER_DRAIN {
            self.release_idle_agents(now, sim);
            self.report_ended_callers(now, sim);
            let Some(action) = sim.poll_action() else {
                return;
            };
            match action {
                SimAction::Queue(QueueAction::Ring {
                    queue,
                    call_id,
                    caller_id,
                    agent,
                }) => self.ring_agent(now, sim, &queue, &call_id, &caller_id, &agent),
                SimAction::Queue(QueueAction::StopRinging { call_id, agent }) => {
                    self.stop_ringing(now, &call_id, &agent);
                }
                SimAction::Queue(QueueAction::Hangup { call_id, reason }) => {
                    self.caller_sent_away(now, sim, &call_id, reason);
                }
                SimAction::EndCall { call_id } => self.end_queue_call(now, &call_id),
                SimAction::BotAnswered { call_id, agent } => self.bot_answered(&call_id, &agent),
            }
            self.drain_transactions(now, sim);
        }
        tracing::warn!(
            "more than {MAX_ACTIONS_PER_DRAIN} queue actions at once; the rest wait for the next input"
        );
    }

    /// Agents whose code call is over are free for queue calls again (unless another code
    /// call of theirs is still on).
    fn release_idle_agents(&mut self, now: Instant, sim: &mut Simulation) {
        for agent in std::mem::take(&mut self.idle_agents) {
            let still_on = self
                .legs
                .values()
                .any(|leg| leg.kind.occupant() == Some(agent.as_str()));
            if !still_on {
                sim.set_agent_busy(now, &agent, false);
            }
        }
    }

    /// Real callers whose leg is gone or going: the queue abandons them (waiting) or completes
    /// their call (connected); calls it already let go are ignored by the engine.
    fn report_ended_callers(&mut self, now: Instant, sim: &mut Simulation) {
        for call_id in std::mem::take(&mut self.ended_callers) {
            sim.caller_hangup(now, &call_id);
        }
    }

    /// Hang up every leg (the lab is stopping): BYE for calls, CANCEL for rings, 480 for
    /// calls still waiting for their callee.
    pub fn hang_up_all(&mut self, now: Instant) {
        let ids: Vec<LegId> = self.legs.keys().copied().collect();
        for id in ids {
            let Some(leg) = self.legs.get_mut(&id) else {
                continue;
            };
            match leg.state {
                LegState::Offered => {
                    self.refuse_offered(now, id, 480);
                    self.remove_leg(id);
                }
                LegState::Calling => {
                    leg.cancel_requested = true;
                    if leg.got_provisional {
                        self.send_cancel(now, id);
                    }
                }
                LegState::Answered | LegState::Confirmed => self.send_bye(now, id),
                LegState::Ending => {}
            }
        }
    }

    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front().or_else(|| self.tx.poll_transmit())
    }

    pub fn poll_media(&mut self) -> Option<MediaTransmit> {
        self.media_out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<PbxEvent> {
        self.events.pop_front()
    }

    /// A voicemail message recorded, to be written ([`Voicemail::file_name`] in its `dir`).
    pub fn poll_voicemail(&mut self) -> Option<Voicemail> {
        self.voicemails.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        [
            self.tx.poll_timeout(),
            self.registrar.poll_timeout(),
            self.legs.values().filter_map(Leg::next_deadline).min(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // -- incoming messages --------------------------------------------------------------------

    fn handle_message(&mut self, now: Instant, message: Message, source: Target) {
        if let Message::Request(request) = &message {
            if request.method != Method::Ack {
                if let Err(rejection) = validate::check_request(request, &self.policy) {
                    let mut response = rejection.to_response(request);
                    self.add_to_tag(&mut response);
                    self.out.push_back(Transmit {
                        target: source,
                        bytes: response.to_bytes(),
                    });
                    return;
                }
            }
        }
        self.tx.handle_message(now, message, source);
    }

    fn drain_transactions(&mut self, now: Instant, sim: &mut Simulation) {
        while let Some(event) = self.tx.poll_event() {
            match event {
                TxEvent::Request {
                    tx,
                    request,
                    source,
                } => self.on_request(now, sim, tx, request, source),
                TxEvent::Response { tx, response } => self.on_response(now, sim, tx, response),
                TxEvent::Timeout { tx } => self.on_client_failure(now, sim, tx, 408),
                TxEvent::TransportError { tx } => self.on_client_failure(now, sim, tx, 503),
                TxEvent::AckTimeout { .. } => {}
                TxEvent::Terminated { tx } => {
                    self.pending.remove(&tx);
                }
                TxEvent::StrayResponse { response } => self.on_stray_response(response),
            }
        }
    }

    fn on_request(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        tx: Option<TxId>,
        request: Request,
        source: Target,
    ) {
        let Some(tx) = tx else {
            if request.method == Method::Ack {
                self.on_ack(now, &request);
            }
            return;
        };
        match request.method {
            Method::Register => {
                let response = self.registrar.handle_register(now, &request, source.addr);
                self.respond(now, tx, response);
                while let Some(event) = self.registrar.poll_event() {
                    self.note_registrar_event(event);
                }
            }
            Method::Options => {
                let mut response = request.response(200);
                self.add_capabilities(&mut response);
                self.add_to_tag(&mut response);
                self.respond(now, tx, response);
            }
            Method::Invite if request.to_tag().is_some() => self.on_reinvite(now, tx, &request),
            Method::Invite => self.on_invite(now, sim, tx, request, source),
            Method::Bye => self.on_bye(now, sim, tx, &request),
            Method::Refer => self.on_refer(now, sim, tx, &request),
            Method::Cancel => {
                let invite = self.tx.find_invite_for_cancel(&request);
                let status = if invite.is_some() { 200 } else { 481 };
                let mut response = request.response(status);
                self.add_to_tag(&mut response);
                self.respond(now, tx, response);
                // Only a call to another phone waits for its answer; the rest are answered at
                // once, so a CANCEL finds nothing left to stop there.
                let waiting = invite.and_then(|invite| {
                    self.legs
                        .iter()
                        .find(|(_, leg)| leg.offered.as_ref().is_some_and(|(t, _)| *t == invite))
                        .map(|(&id, _)| id)
                });
                if let Some(id) = waiting {
                    self.refuse_offered(now, id, 487);
                    self.hang_up_partner(now, id);
                    self.remove_leg(id);
                }
            }
            Method::Info => {
                // DTMF over INFO and the like: acknowledged, not acted on.
                let status = if self.leg_for_request(&request).is_some() {
                    200
                } else {
                    481
                };
                self.respond(now, tx, request.response(status));
            }
            _ => {
                let mut response = request.response(405);
                response.headers.push("Allow", ALLOW);
                self.add_to_tag(&mut response);
                self.respond(now, tx, response);
            }
        }
    }

    fn on_invite(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        tx: TxId,
        request: Request,
        source: Target,
    ) {
        let user = match self.registrar.authenticate(now, &request, true) {
            Ok(user) => user,
            Err(challenge) => {
                self.respond(now, tx, challenge);
                return;
            }
        };
        let number = request.uri.user_decoded().unwrap_or_default();
        let route = match sim.config().dialled(&number) {
            Some(Dialled::Login(queue)) => Route::Code {
                queue: queue.queue.name.clone(),
                login: true,
            },
            Some(Dialled::Logout(queue)) => Route::Code {
                queue: queue.queue.name.clone(),
                login: false,
            },
            Some(Dialled::Account(account)) => Route::Phone(account.extension.clone()),
            Some(Dialled::Queue(queue)) => Route::Queue(queue.queue.name.clone()),
            None => Route::Unknown,
        };
        match route {
            Route::Code { queue, login } => {
                self.answer_code(now, sim, tx, &request, source, &user, &queue, login);
            }
            Route::Phone(callee) => self.call_phone(now, sim, tx, request, source, &user, &callee),
            Route::Queue(queue) => {
                self.answer_queue_call(now, sim, tx, &request, source, (&user, &number), &queue);
            }
            Route::Unknown => self.refuse(
                now,
                tx,
                &request,
                (&user, &number),
                404,
                "lab: no such extension or code",
            ),
        }
    }

    /// A connection or disconnection code: answer, change the membership, play the outcome,
    /// hang up after the confirmation.
    #[allow(clippy::too_many_arguments)]
    fn answer_code(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        tx: TxId,
        request: &Request,
        source: Target,
        user: &str,
        queue: &str,
        login: bool,
    ) {
        let who = (user, queue);
        let Some(offer) = parse_sdp(&request.body) else {
            self.refuse(
                now,
                tx,
                request,
                who,
                488,
                "lab: send an SDP offer in the INVITE",
            );
            return;
        };
        let Some(port) = self.free_ports.pop_front() else {
            self.refuse(now, tx, request, who, 503, "lab: all media ports are busy");
            return;
        };
        let tag = self.new_tag();
        let Some(dialog) = Dialog::from_uas(request, &tag) else {
            self.free_ports.push_back(port);
            self.refuse(now, tx, request, who, 400, "Missing Contact or From tag");
            return;
        };
        let session_id = u64::from(self.rng.gen::<u32>());
        let local = self.local_media(port);
        let (answer, negotiated) = match sdp::build_answer(&offer, &local, session_id, 1) {
            Ok(pair) => pair,
            Err(error) => {
                self.free_ports.push_back(port);
                tracing::debug!(%error, "code call without a usable offer");
                self.refuse(
                    now,
                    tx,
                    request,
                    who,
                    488,
                    "lab: no common audio codec (PCMU, PCMA)",
                );
                return;
            }
        };
        let via = queue_log_id(request.call_id().unwrap_or_default());
        // The phone is on this call: no queue call rings it until the lab hangs up (Asterisk's
        // device state does the same for a member that is in use).
        sim.set_agent_busy(now, user, true);
        let changed = if login {
            sim.real_agent_login(now, queue, user, &via)
        } else {
            sim.real_agent_logout(now, queue, user, &via)
        };
        if let Err(error) = &changed {
            tracing::info!(%error, user, queue, "queue membership unchanged");
        }
        let accepted = changed.is_ok();
        let tone = if accepted {
            ToneGenerator::new(Tone::CallWaiting, ToneRegion::Eu, 8000)
        } else {
            ToneGenerator::new(Tone::Congestion, ToneRegion::Us, 8000)
        };
        let audio = tone.map_or(Audio::Silence, Audio::Tone);

        let mut ok = tagged_response(request, 200, &tag);
        ok.headers.push("Contact", self.contact_value());
        self.add_capabilities(&mut ok);
        ok.set_body("application/sdp", answer.to_string().into_bytes());
        let retransmit = self.start_retransmit(now, &ok);
        self.respond(now, tx, ok);

        let mut leg = Leg::new(
            LegKind::Code {
                agent: user.to_owned(),
            },
            LegState::Answered,
            source,
            port,
            request.call_id().unwrap_or_default().to_owned(),
        );
        leg.dialog = Some(dialog);
        leg.sdp_session = session_id;
        leg.ok_retransmit = Some(retransmit);
        leg.hang_up_at = now.checked_add(self.config.confirmation);
        leg.media = start_media(now, &negotiated, audio, self.rng.gen());
        self.insert_leg(leg);
        self.events.push_back(PbxEvent::CodeDialled {
            user: user.to_owned(),
            queue: queue.to_owned(),
            login,
            accepted,
        });
    }

    /// A queue's extension: answer with the hold music and put the caller in the queue, the
    /// leg's Call-ID as the queue call id. A queue that turns the caller away (nobody to answer
    /// with `join_empty = false`, or `max_len` reached) gets 480 / 486 before any answer.
    #[allow(clippy::too_many_arguments)]
    fn answer_queue_call(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        tx: TxId,
        request: &Request,
        source: Target,
        who: (&str, &str),
        queue: &str,
    ) {
        let Some(offer) = parse_sdp(&request.body) else {
            let reason = "lab: send an SDP offer in the INVITE";
            self.refuse(now, tx, request, who, 488, reason);
            return;
        };
        let call_id = queue_log_id(request.call_id().unwrap_or_default());
        if call_id.is_empty() || self.caller_leg(&call_id).is_some() {
            let reason = "lab: that Call-ID is already in a queue";
            self.refuse(now, tx, request, who, 482, reason);
            return;
        }
        let Some(port) = self.free_ports.pop_front() else {
            self.refuse(now, tx, request, who, 503, "lab: all media ports are busy");
            return;
        };
        let tag = self.new_tag();
        let Some(dialog) = Dialog::from_uas(request, &tag) else {
            self.free_ports.push_back(port);
            self.refuse(now, tx, request, who, 400, "Missing Contact or From tag");
            return;
        };
        let session_id = u64::from(self.rng.gen::<u32>());
        let local = self.local_media(port);
        let Ok((answer, negotiated)) = sdp::build_answer(&offer, &local, session_id, 1) else {
            self.free_ports.push_back(port);
            let reason = "lab: no common audio codec (PCMU, PCMA)";
            self.refuse(now, tx, request, who, 488, reason);
            return;
        };
        let caller_id = caller_id_of(request);
        let refused = match sim.real_caller_join(now, queue, &call_id, &caller_id) {
            Ok(JoinOutcome::Joined { .. }) => None,
            Ok(JoinOutcome::Refused(RefuseReason::Empty)) => Some((
                480,
                format!("lab: nobody is logged in to queue {queue} (join_empty = false)"),
            )),
            Ok(JoinOutcome::Refused(RefuseReason::Full)) => {
                Some((486, format!("lab: queue {queue} is full (max_len)")))
            }
            Err(error) => Some((500, format!("lab: {error}"))),
        };
        if let Some((status, reason)) = refused {
            self.free_ports.push_back(port);
            self.refuse(now, tx, request, who, status, &reason);
            return;
        }

        let mut ok = tagged_response(request, 200, &tag);
        ok.headers.push("Contact", self.contact_value());
        self.add_capabilities(&mut ok);
        ok.set_body("application/sdp", answer.to_string().into_bytes());
        let retransmit = self.start_retransmit(now, &ok);
        self.respond(now, tx, ok);

        let (user, _) = who;
        let mut leg = Leg::new(
            LegKind::Caller {
                user: user.to_owned(),
                call_id: call_id.clone(),
                queue: queue.to_owned(),
                caller_id: caller_id.clone(),
                stage: CallerStage::Waiting,
            },
            LegState::Answered,
            source,
            port,
            request.call_id().unwrap_or_default().to_owned(),
        );
        leg.dialog = Some(dialog);
        leg.sdp_session = session_id;
        leg.ok_retransmit = Some(retransmit);
        let music = Audio::Music(HoldMusic::new(8000));
        leg.media = start_media(now, &negotiated, music, self.rng.gen());
        self.insert_leg(leg);
        self.events.push_back(PbxEvent::CallerQueued {
            user: user.to_owned(),
            queue: queue.to_owned(),
            call_id,
            caller_id,
        });
    }

    fn on_reinvite(&mut self, now: Instant, tx: TxId, request: &Request) {
        let Some(id) = self.leg_for_request(request) else {
            self.respond(now, tx, request.response(481));
            return;
        };
        if !self.accept_in_dialog(now, tx, id, request) {
            return;
        }
        let contact = self.contact_value();
        let media_ip = self.config.media_ip;
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.state != LegState::Confirmed {
            self.respond(now, tx, request.response(491));
            return;
        }
        let Some(offer) = parse_sdp(&request.body) else {
            let response =
                request.response_with_reason(488, "lab: send an SDP offer in the re-INVITE");
            self.respond(now, tx, response);
            return;
        };
        let local = local_media(media_ip, leg.local_port);
        let version = leg.sdp_version.saturating_add(1);
        let Ok((answer, negotiated)) = sdp::build_answer(&offer, &local, leg.sdp_session, version)
        else {
            self.respond(now, tx, request.response(488));
            return;
        };
        leg.sdp_version = version;
        if let Some(dialog) = leg.dialog.as_mut() {
            dialog.refresh_target(request);
        }
        let params = media_params(&negotiated);
        let listening = params.sending;
        if let Some(media) = leg.media.as_mut() {
            media.session.update(params);
        }
        if let Some(partner) = leg.partner {
            self.hold_partner(partner, !listening);
        }
        let mut ok = request.response(200);
        ok.headers.push("Contact", contact);
        self.add_capabilities(&mut ok);
        ok.set_body("application/sdp", answer.to_string().into_bytes());
        let retransmit = self.start_retransmit(now, &ok);
        if let Some(leg) = self.legs.get_mut(&id) {
            leg.ok_retransmit = Some(retransmit);
        }
        self.respond(now, tx, ok);
    }

    fn on_ack(&mut self, now: Instant, request: &Request) {
        let Some(id) = self.leg_for_request(request) else {
            return;
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.ok_retransmit = None;
        if leg.state == LegState::Answered {
            leg.state = LegState::Confirmed;
        }
        if leg.hang_up_after_ack {
            self.send_bye(now, id);
        }
    }

    fn on_bye(&mut self, now: Instant, sim: &mut Simulation, tx: TxId, request: &Request) {
        let Some(id) = self.leg_for_request(request) else {
            let mut response = request.response(481);
            self.add_to_tag(&mut response);
            self.respond(now, tx, response);
            return;
        };
        self.respond(now, tx, request.response(200));
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        if leg.state == LegState::Ending {
            // Our BYE crossed theirs: the leg goes when ours is answered.
            return;
        }
        let connected = matches!(leg.state, LegState::Answered | LegState::Confirmed);
        let handing_over = matches!(
            leg.kind,
            LegKind::Agent { .. } | LegKind::PhoneIn { .. } | LegKind::PhoneOut { .. }
        ) && leg.refer.as_ref().is_some_and(|r| r.target_leg.is_some());
        if handing_over {
            // The agent hung up after its REFER: its caller waits for the target, not for BYE.
            if let Some(caller) = self.unlink(id) {
                self.set_audio(caller, Audio::Music(HoldMusic::new(8000)));
            }
        }
        self.hang_up_partner(now, id);
        // A phone that hangs up while its call is being transferred: the target is not rung
        // for nobody.
        let ringing_for_it: Vec<LegId> = self
            .legs
            .iter()
            .filter(|(_, l)| l.transferee == Some(id) && l.state == LegState::Calling)
            .map(|(&other, _)| other)
            .collect();
        for other in ringing_for_it {
            self.cancel_leg(now, other);
        }
        let Some(leg) = self.remove_leg(id) else {
            return;
        };
        if let (LegKind::Agent { call_id, agent, .. }, true) = (leg.kind, connected) {
            match leg.refer.and_then(|refer| refer.target_leg) {
                // The agent hung up after its REFER: the caller belongs to the target now.
                Some(target_leg) => self.log_blind_transfer(now, sim, target_leg),
                None => {
                    sim.call_ended(now, &call_id, true);
                    self.events.push_back(PbxEvent::CallEnded {
                        call_id,
                        agent,
                        by_agent: true,
                    });
                }
            }
        }
    }

    /// End the leg bridged to `id`, however far it got.
    fn hang_up_partner(&mut self, now: Instant, id: LegId) {
        let Some(partner) = self.legs.get_mut(&id).and_then(|leg| leg.partner.take()) else {
            return;
        };
        let Some(other) = self.legs.get_mut(&partner) else {
            return;
        };
        other.partner = None;
        match other.state {
            LegState::Offered => {
                self.refuse_offered(now, partner, 480);
                self.remove_leg(partner);
            }
            LegState::Calling => self.cancel_leg(now, partner),
            LegState::Answered | LegState::Confirmed => self.send_bye(now, partner),
            LegState::Ending => {}
        }
    }

    /// Answer a waiting phone-to-phone INVITE with a failure (the leg stays for the caller
    /// to remove).
    fn refuse_offered(&mut self, now: Instant, id: LegId, status: u16) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let Some((tx, request)) = leg.offered.take() else {
            return;
        };
        let tag = leg
            .dialog
            .as_ref()
            .map(|dialog| dialog.id.local_tag.clone())
            .unwrap_or_default();
        let mut response = tagged_response(&request, status, &tag);
        if status == 503 {
            response.headers.push("Retry-After", "5");
        }
        self.respond(now, tx, response);
    }

    // -- responses to our requests ------------------------------------------------------------

    fn on_response(&mut self, now: Instant, sim: &mut Simulation, tx: TxId, response: Response) {
        let Some(&(id, purpose)) = self.pending.get(&tx) else {
            return;
        };
        let invite_2xx = purpose == Purpose::Invite && response.is_success();
        // An INVITE's 2xx may come again while its transaction is Accepted: keep the mapping
        // until the layer terminates it, so every copy gets our ACK.
        if response.status >= 200 && !invite_2xx {
            self.pending.remove(&tx);
        }
        match purpose {
            Purpose::Invite => self.on_invite_response(now, sim, id, response),
            Purpose::Bye if response.status >= 200 => {
                self.remove_leg(id);
            }
            Purpose::Bye | Purpose::Cancel | Purpose::Notify => {}
        }
    }

    fn on_invite_response(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        id: LegId,
        response: Response,
    ) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        match response.status {
            100 => {}
            101..=199 => {
                leg.got_provisional = true;
                if leg.cancel_requested && !leg.cancel_sent {
                    self.send_cancel(now, id);
                } else if let (LegKind::PhoneOut { .. }, Some(partner)) = (&leg.kind, leg.partner) {
                    self.relay_ringing(now, partner, &response);
                }
            }
            200..=299 => self.on_agent_answer(now, sim, id, &response),
            status => {
                if let Some(leg) = self.remove_leg(id) {
                    self.leg_failed(now, sim, leg.failure(), status);
                }
            }
        }
    }

    fn on_agent_answer(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        id: LegId,
        response: &Response,
    ) {
        let via = self.new_via();
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.dialog.is_some() {
            // A retransmitted 2xx: our ACK was lost.
            if let Some(ack) = leg.ack.clone() {
                let peer = leg.peer;
                self.out.push_back(Transmit {
                    target: peer,
                    bytes: ack,
                });
            }
            return;
        }
        let Some(invite) = leg.invite.clone() else {
            return;
        };
        let Some(mut dialog) = Dialog::from_uac(&invite, response) else {
            tracing::warn!("a phone's 2xx lacks the headers a dialog needs; giving up on it");
            if let Some(leg) = self.remove_leg(id) {
                self.leg_failed(now, sim, leg.failure(), 500);
            }
            return;
        };
        let seq = invite.cseq().map_or(1, |c| c.seq);
        dialog.local_seq = dialog.local_seq.max(seq);
        let ack = dialog.ack(seq, via).to_bytes();
        leg.ack = Some(ack.clone());
        leg.dialog = Some(dialog);
        leg.cancel_give_up_at = None;
        let peer = leg.peer;
        self.out.push_back(Transmit {
            target: peer,
            bytes: ack,
        });
        if leg.cancel_requested {
            // Answered while our CANCEL was on its way (or before we could send it): the
            // queue has moved on, so end the call.
            self.send_bye(now, id);
            return;
        }
        let negotiated = match (leg.offer.as_ref(), parse_sdp(&response.body)) {
            (Some(offer), Some(answer)) => sdp::accept_answer(offer, &answer).ok(),
            _ => None,
        };
        let Some(negotiated) = negotiated else {
            tracing::info!(
                user = leg.kind.phone_user(),
                "the phone's answer has no usable audio; hanging up"
            );
            let failure = leg.failure();
            self.send_bye(now, id);
            self.leg_failed(now, sim, failure, 488);
            return;
        };
        let (call_id, agent) = match leg.kind.clone() {
            LegKind::Agent { call_id, agent, .. } => (call_id, agent),
            LegKind::Transferred { .. } => {
                self.transfer_answered(now, sim, id, &negotiated);
                return;
            }
            LegKind::PhoneOut { .. } => {
                self.phone_answered(now, id, &negotiated);
                return;
            }
            LegKind::PhoneTransfer { .. } => {
                self.phone_transfer_answered(now, id, &negotiated);
                return;
            }
            LegKind::Code { .. }
            | LegKind::Transferor { .. }
            | LegKind::PhoneIn { .. }
            | LegKind::Caller { .. } => {
                return;
            }
        };
        let agent_leg = queue_log_id(&leg.sip_call_id);
        match sim.agent_answered(now, &call_id, &agent, &agent_leg) {
            Ok(()) => {
                let seed = self.rng.gen();
                let caller = self.caller_leg(&call_id);
                if let Some(leg) = self.legs.get_mut(&id) {
                    leg.state = LegState::Confirmed;
                    let audio = match caller {
                        Some(_) => Audio::Bridge(VecDeque::new()),
                        None => Audio::Voice(CallerVoice::new(8000)),
                    };
                    leg.media = start_media(now, &negotiated, audio, seed);
                }
                if let Some(caller) = caller {
                    // The music stops; caller and agent hear each other.
                    self.bridge(id, caller);
                    self.set_caller_stage(caller, CallerStage::WithAgent);
                }
                self.events
                    .push_back(PbxEvent::AgentAnswered { call_id, agent });
            }
            Err(error) => {
                tracing::info!(%error, %agent, "answered too late; hanging up");
                self.send_bye(now, id);
            }
        }
    }

    /// A client transaction got no final response (Timer B/F) or could not be sent.
    fn on_client_failure(&mut self, now: Instant, sim: &mut Simulation, tx: TxId, status: u16) {
        let Some((id, purpose)) = self.pending.remove(&tx) else {
            return;
        };
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        match purpose {
            Purpose::Invite if leg.state == LegState::Calling => {
                if let Some(leg) = self.remove_leg(id) {
                    self.leg_failed(now, sim, leg.failure(), status);
                }
            }
            Purpose::Bye => {
                self.remove_leg(id);
            }
            Purpose::Invite | Purpose::Cancel | Purpose::Notify => {}
        }
    }

    /// A 2xx to an INVITE whose transaction is gone: ACK it again if it is one of ours.
    fn on_stray_response(&mut self, response: Response) {
        let call_id = response.call_id().unwrap_or_default();
        let found = self
            .legs
            .values()
            .find(|leg| leg.sip_call_id == call_id)
            .and_then(|leg| leg.ack.clone().map(|ack| (leg.peer, ack)));
        if let Some((peer, ack)) = found {
            self.out.push_back(Transmit {
                target: peer,
                bytes: ack,
            });
        } else {
            tracing::debug!(%call_id, "2xx for no leg of ours");
        }
    }

    // -- the simulation's actions -------------------------------------------------------------

    fn ring_agent(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        queue: &str,
        call_id: &str,
        caller_id: &str,
        agent: &str,
    ) {
        let kind = LegKind::Agent {
            call_id: call_id.to_owned(),
            agent: agent.to_owned(),
            queue: queue.to_owned(),
            caller_id: caller_id.to_owned(),
        };
        if self
            .legs
            .values()
            .any(|leg| leg.is_agent_leg(call_id, agent) && leg.state != LegState::Ending)
        {
            return;
        }
        let mut caller = NameAddr::new(Uri::sip(
            Some(&caller_user(caller_id)),
            &self.config.realm,
            None,
        ));
        caller.display_name = Some(format!("{queue}: {caller_id}"));
        match self.invite_phone(now, kind.clone(), caller, &[]) {
            Ok(_) => self.events.push_back(PbxEvent::AgentRinging {
                call_id: call_id.to_owned(),
                agent: agent.to_owned(),
                caller_id: caller_id.to_owned(),
            }),
            Err(status) => self.reject(now, sim, &kind, status),
        }
    }

    /// Ring the newest binding of the leg's phone ([`LegKind::phone_user`]) with an INVITE
    /// from `from` and our offer. Err is the status to report: 480 (not registered), 503 (no
    /// media port), 500 (the INVITE could not be sent).
    fn invite_phone(
        &mut self,
        now: Instant,
        kind: LegKind,
        from: NameAddr,
        extra_headers: &[(&str, String)],
    ) -> Result<LegId, u16> {
        let user = kind.phone_user().to_owned();
        let Some(binding) = self.registrar.lookup(now, &user).into_iter().next() else {
            return Err(480);
        };
        let Some(port) = self.free_ports.pop_front() else {
            return Err(503);
        };
        let peer = Target {
            transport: Transport::Udp,
            addr: binding.source,
        };
        let sip_call_id = self.new_call_id();
        let tag = self.new_tag();
        let session_id = u64::from(self.rng.gen::<u32>());
        let offer = sdp::build_offer(&self.local_media(port), session_id, 1);
        let host = host_for_uri(self.config.sip_addr.ip());
        let to = NameAddr::new(Uri::sip(Some(&user), &host, None));
        let mut invite = Request::new(Method::Invite, binding.contact.without_headers());
        let via = self.new_via();
        let h = &mut invite.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        h.push("From", from.with_tag(&tag).to_string());
        h.push("To", to.to_string());
        h.push("Call-ID", sip_call_id.clone());
        h.push("CSeq", "1 INVITE");
        h.push("Contact", self.contact_value());
        h.push("Allow", ALLOW);
        for (name, value) in extra_headers {
            h.push(name, value.clone());
        }
        h.push("User-Agent", self.config.user_agent.clone());
        invite.set_body("application/sdp", offer.to_string().into_bytes());

        let tx = match self.tx.send_request(now, invite.clone(), peer) {
            Ok(tx) => tx,
            Err(error) => {
                tracing::warn!(%error, %user, "could not send an INVITE to a phone");
                self.free_ports.push_back(port);
                return Err(500);
            }
        };
        let mut leg = Leg::new(kind, LegState::Calling, peer, port, sip_call_id);
        leg.sdp_session = session_id;
        leg.invite = Some(invite);
        leg.invite_tx = Some(tx);
        leg.offer = Some(offer);
        let id = self.insert_leg(leg);
        self.pending.insert(tx, (id, Purpose::Invite));
        Ok(id)
    }

    fn stop_ringing(&mut self, now: Instant, call_id: &str, agent: &str) {
        let ids: Vec<LegId> = self
            .legs
            .iter()
            .filter(|(_, leg)| leg.is_agent_leg(call_id, agent) && leg.state == LegState::Calling)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.cancel_leg(now, id);
        }
    }

    fn end_queue_call(&mut self, now: Instant, call_id: &str) {
        let ids: Vec<(LegId, LegState)> = self
            .legs
            .iter()
            .filter(|(_, leg)| leg.carries_queue_call(call_id))
            .map(|(&id, leg)| (id, leg.state))
            .collect();
        for (id, state) in ids {
            match state {
                LegState::Calling => self.cancel_leg(now, id),
                LegState::Answered | LegState::Confirmed => {
                    self.set_caller_stage(id, CallerStage::Gone);
                    self.hang_up(now, id);
                }
                LegState::Offered | LegState::Ending => {}
            }
        }
    }

    // -- real callers in queues ---------------------------------------------------------------

    /// The leg of real caller `call_id`, unless it is ending.
    fn caller_leg(&self, call_id: &str) -> Option<LegId> {
        self.legs
            .iter()
            .find(|(_, leg)| {
                leg.state != LegState::Ending
                    && matches!(&leg.kind, LegKind::Caller { call_id: c, .. } if c == call_id)
            })
            .map(|(&id, _)| id)
    }

    fn set_caller_stage(&mut self, id: LegId, to: CallerStage) {
        if let Some(LegKind::Caller { stage, .. }) = self.legs.get_mut(&id).map(|l| &mut l.kind) {
            *stage = to;
        }
    }

    fn set_audio(&mut self, id: LegId, audio: Audio) {
        if let Some(media) = self.legs.get_mut(&id).and_then(|leg| leg.media.as_mut()) {
            media.audio = audio;
        }
    }

    /// The phone of `id`'s partner put the call on hold (it no longer listens): `id`'s phone
    /// hears [`HoldMusic`] instead of it, as a PBX plays music on hold; or, resumed, hears the
    /// partner again.
    fn hold_partner(&mut self, id: LegId, held: bool) {
        let Some(media) = self.legs.get_mut(&id).and_then(|leg| leg.media.as_mut()) else {
            return;
        };
        match (&media.audio, held) {
            (Audio::Bridge(_), true) => media.audio = Audio::Music(HoldMusic::new(8000)),
            (Audio::Music(_), false) => media.audio = Audio::Bridge(VecDeque::new()),
            _ => {}
        }
    }

    /// Let the phones of legs `a` and `b` hear each other (whoever either talked to before
    /// is cut off from it).
    fn bridge(&mut self, a: LegId, b: LegId) {
        self.unlink(a);
        self.unlink(b);
        for (id, partner) in [(a, b), (b, a)] {
            if let Some(leg) = self.legs.get_mut(&id) {
                leg.partner = Some(partner);
            }
            self.set_audio(id, Audio::Bridge(VecDeque::new()));
        }
    }

    /// Cut leg `id` from its partner; returns the partner.
    fn unlink(&mut self, id: LegId) -> Option<LegId> {
        let partner = self.legs.get_mut(&id)?.partner.take()?;
        if let Some(other) = self.legs.get_mut(&partner) {
            if other.partner == Some(id) {
                other.partner = None;
            }
        }
        Some(partner)
    }

    /// End a leg the lab answered: BYE, or once the ACK is in (no BYE before it, §15).
    fn hang_up(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        match leg.state {
            LegState::Answered => {
                leg.hang_up_at = None;
                leg.hang_up_after_ack = true;
            }
            LegState::Confirmed => self.send_bye(now, id),
            LegState::Offered | LegState::Calling | LegState::Ending => {}
        }
    }

    /// A bot took real caller `call_id`: the caller hears the bot until the simulation ends
    /// the call ([`SimAction::EndCall`]).
    fn bot_answered(&mut self, call_id: &str, agent: &str) {
        let Some(caller) = self.caller_leg(call_id) else {
            tracing::debug!(%call_id, %agent, "a bot answered a caller without a SIP leg");
            return;
        };
        self.unlink(caller);
        self.set_caller_stage(caller, CallerStage::WithBot);
        self.set_audio(caller, Audio::Voice(CallerVoice::bot(8000)));
    }

    /// The queue let real caller `call_id` go (maximum wait, or nobody left to answer): the
    /// queue's fallback, voicemail or hang-up.
    fn caller_sent_away(
        &mut self,
        now: Instant,
        sim: &Simulation,
        call_id: &str,
        reason: HangupReason,
    ) {
        let Some(id) = self.caller_leg(call_id) else {
            tracing::debug!(%call_id, "hang-up for a caller without a SIP leg");
            return;
        };
        let Some(LegKind::Caller {
            queue, caller_id, ..
        }) = self.legs.get(&id).map(|leg| leg.kind.clone())
        else {
            return;
        };
        let voicemail = sim
            .config()
            .queue(&queue)
            .filter(|_| reason == HangupReason::Timeout)
            .filter(|q| q.timeout_fallback == TimeoutFallback::Voicemail)
            .map(|q| q.voicemail_dir.clone());
        self.unlink(id);
        let Some(dir) = voicemail else {
            self.set_caller_stage(id, CallerStage::Gone);
            self.set_audio(id, Audio::Silence);
            self.hang_up(now, id);
            return;
        };
        self.set_caller_stage(id, CallerStage::Voicemail);
        let beep = beep_samples();
        self.set_audio(
            id,
            Audio::Beep {
                left: beep,
                phase: 0.0,
            },
        );
        if let Some(leg) = self.legs.get_mut(&id) {
            let from = now + VOICEMAIL_BEEP;
            leg.recording = Some(Recording {
                queue,
                call_id: call_id.to_owned(),
                caller_id,
                dir,
                from,
                samples: Vec::new(),
            });
            leg.hang_up_at = from.checked_add(VOICEMAIL_MAX);
        }
    }

    fn push_voicemail(&mut self, recording: Recording) {
        let file_name = voicemail_file_name(&recording.queue, &recording.call_id);
        self.voicemails.push_back(Voicemail {
            queue: recording.queue,
            call_id: recording.call_id,
            caller_id: recording.caller_id,
            dir: recording.dir,
            file_name,
            sample_rate: VOICEMAIL_SAMPLE_RATE,
            samples: recording.samples,
        });
    }

    /// Put real or virtual caller `call_id` into `queue` again (a blind transfer to a queue's
    /// extension). A real caller hears the hold music again, or is hung up if the queue turns
    /// it away.
    fn requeue(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        call_id: &str,
        queue: &str,
        caller_id: &str,
    ) {
        let caller = self.caller_leg(call_id);
        if let Some(id) = caller {
            self.unlink(id);
            if let Some(LegKind::Caller {
                queue: in_queue,
                stage,
                ..
            }) = self.legs.get_mut(&id).map(|leg| &mut leg.kind)
            {
                queue.clone_into(in_queue);
                *stage = CallerStage::Waiting;
            }
            self.set_audio(id, Audio::Music(HoldMusic::new(8000)));
        }
        let joined = sim.real_caller_join(now, queue, call_id, caller_id);
        let refused = match &joined {
            Ok(JoinOutcome::Joined { .. }) => false,
            Ok(JoinOutcome::Refused(reason)) => {
                tracing::info!(%call_id, %queue, ?reason, "the queue turned a transferred caller away");
                true
            }
            Err(error) => {
                tracing::warn!(%error, %call_id, %queue, "could not queue a transferred caller");
                true
            }
        };
        if let (true, Some(id)) = (refused, caller) {
            self.set_caller_stage(id, CallerStage::Gone);
            self.hang_up(now, id);
        }
    }

    /// Stop ringing: CANCEL now if the phone has sent a provisional response, else as soon
    /// as it does (RFC 3261 §9.1); a 2xx that crosses it is ACKed and ended with BYE.
    fn cancel_leg(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.cancel_requested = true;
        if leg.got_provisional && !leg.cancel_sent {
            self.send_cancel(now, id);
        }
    }

    // -- calls between phones -----------------------------------------------------------------

    /// Phone `user` called phone `callee`: ring the callee with an INVITE of the lab's own, and
    /// answer the caller when the callee answers (the two legs are bridged in-process).
    #[allow(clippy::too_many_arguments)]
    fn call_phone(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        tx: TxId,
        request: Request,
        source: Target,
        user: &str,
        callee: &str,
    ) {
        let who = (user, callee);
        if user == callee {
            let reason = "lab: that is your own extension";
            self.refuse(now, tx, &request, who, 486, reason);
            return;
        }
        let on_a_call = self
            .legs
            .values()
            .any(|leg| leg.state != LegState::Ending && leg.kind.phone_user() == callee);
        if on_a_call {
            self.refuse(now, tx, &request, who, 486, "lab: that phone is on a call");
            return;
        }
        if self.registrar.lookup(now, callee).is_empty() {
            let reason = "lab: that phone is not registered";
            self.refuse(now, tx, &request, who, 480, reason);
            return;
        }
        let Some(offer) = parse_sdp(&request.body) else {
            let reason = "lab: send an SDP offer in the INVITE";
            self.refuse(now, tx, &request, who, 488, reason);
            return;
        };
        let Some(port) = self.free_ports.pop_front() else {
            self.refuse(now, tx, &request, who, 503, "lab: all media ports are busy");
            return;
        };
        let session_id = u64::from(self.rng.gen::<u32>());
        if sdp::build_answer(&offer, &self.local_media(port), session_id, 1).is_err() {
            self.free_ports.push_back(port);
            let reason = "lab: no common audio codec (PCMU, PCMA)";
            self.refuse(now, tx, &request, who, 488, reason);
            return;
        }
        let tag = self.new_tag();
        let Some(dialog) = Dialog::from_uas(&request, &tag) else {
            self.free_ports.push_back(port);
            self.refuse(now, tx, &request, who, 400, "Missing Contact or From tag");
            return;
        };
        let mut from = NameAddr::new(Uri::sip(Some(user), &self.config.realm, None));
        from.display_name = request.from_header().and_then(|f| f.display_name);
        let kind = LegKind::PhoneOut {
            user: user.to_owned(),
            callee: callee.to_owned(),
        };
        let out = match self.invite_phone(now, kind, from, &[]) {
            Ok(out) => out,
            Err(status) => {
                self.free_ports.push_back(port);
                let reason = msg::default_reason(status);
                self.refuse(now, tx, &request, who, status, &reason);
                return;
            }
        };
        let call_id = request.call_id().unwrap_or_default().to_owned();
        let mut leg = Leg::new(
            LegKind::PhoneIn {
                user: user.to_owned(),
                callee: callee.to_owned(),
            },
            LegState::Offered,
            source,
            port,
            call_id,
        );
        leg.dialog = Some(dialog);
        leg.sdp_session = session_id;
        leg.offered = Some((tx, request));
        leg.partner = Some(out);
        let id = self.insert_leg(leg);
        if let Some(out_leg) = self.legs.get_mut(&out) {
            out_leg.partner = Some(id);
            out_leg.ring_until = now.checked_add(RING_LIMIT);
        }
        // Neither phone takes a queue call while they talk (a member in use, for Asterisk).
        sim.set_agent_busy(now, user, true);
        sim.set_agent_busy(now, callee, true);
    }

    /// The callee rings: so does the caller's phone.
    fn relay_ringing(&mut self, now: Instant, id: LegId, response: &Response) {
        let contact = self.contact_value();
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let (Some((tx, request)), Some(dialog)) = (leg.offered.as_ref(), leg.dialog.as_ref())
        else {
            return;
        };
        let status = if response.status == 183 {
            180
        } else {
            response.status
        };
        let mut ringing = tagged_response(request, status, &dialog.id.local_tag);
        ringing.headers.push("Contact", contact);
        let tx = *tx;
        self.respond(now, tx, ringing);
    }

    /// The callee answered: answer the caller and let them talk.
    fn phone_answered(&mut self, now: Instant, out: LegId, negotiated: &Negotiated) {
        let seed = self.rng.gen();
        let Some(out_leg) = self.legs.get_mut(&out) else {
            return;
        };
        out_leg.state = LegState::Confirmed;
        out_leg.ring_until = None;
        out_leg.media = start_media(now, negotiated, Audio::Bridge(VecDeque::new()), seed);
        let LegKind::PhoneOut { user, callee } = out_leg.kind.clone() else {
            return;
        };
        let Some(caller) = out_leg.partner else {
            // The caller gave up while the answer was on its way.
            self.send_bye(now, out);
            return;
        };
        let contact = self.contact_value();
        let media_ip = self.config.media_ip;
        let seed = self.rng.gen();
        let Some(leg) = self.legs.get_mut(&caller) else {
            self.send_bye(now, out);
            return;
        };
        let Some((tx, request)) = leg.offered.take() else {
            self.send_bye(now, out);
            return;
        };
        let local = local_media(media_ip, leg.local_port);
        let answer = parse_sdp(&request.body)
            .and_then(|offer| sdp::build_answer(&offer, &local, leg.sdp_session, 1).ok());
        let tag = leg
            .dialog
            .as_ref()
            .map(|dialog| dialog.id.local_tag.clone())
            .unwrap_or_default();
        let Some((answer, caller_media)) = answer else {
            // Checked when the call came in; a failure here leaves nothing to bridge.
            leg.offered = Some((tx, request));
            self.refuse_offered(now, caller, 488);
            self.remove_leg(caller);
            self.send_bye(now, out);
            return;
        };
        leg.state = LegState::Answered;
        leg.media = start_media(now, &caller_media, Audio::Bridge(VecDeque::new()), seed);
        let mut ok = tagged_response(&request, 200, &tag);
        ok.headers.push("Contact", contact);
        self.add_capabilities(&mut ok);
        ok.set_body("application/sdp", answer.to_string().into_bytes());
        let retransmit = self.start_retransmit(now, &ok);
        if let Some(leg) = self.legs.get_mut(&caller) {
            leg.ok_retransmit = Some(retransmit);
        }
        self.respond(now, tx, ok);
        self.events.push_back(PbxEvent::PhoneCallAnswered {
            from: user,
            to: callee,
        });
    }

    // -- transfers ----------------------------------------------------------------------------

    /// An agent's REFER: 202 and "100 Trying" for a connected queue call, then the transfer.
    fn on_refer(&mut self, now: Instant, sim: &mut Simulation, tx: TxId, request: &Request) {
        let Some(id) = self.leg_for_request(request) else {
            let mut response = request.response(481);
            self.add_to_tag(&mut response);
            self.respond(now, tx, response);
            return;
        };
        if !self.accept_in_dialog(now, tx, id, request) {
            return;
        }
        let contact = self.contact_value();
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let connected = leg.state == LegState::Confirmed;
        let queue_call = match &leg.kind {
            LegKind::Agent { call_id, agent, .. } if connected => {
                Some((call_id.clone(), agent.clone()))
            }
            LegKind::PhoneIn { .. } | LegKind::PhoneOut { .. }
                if connected && leg.partner.is_some() =>
            {
                None
            }
            _ => {
                let reason = "lab: only a connected queue or phone call can be transferred";
                self.respond(now, tx, request.response_with_reason(403, reason));
                return;
            }
        };
        if leg.refer.is_some() {
            self.respond(now, tx, request.response(491));
            return;
        }
        let Some(refer_to) = request.refer_to() else {
            let reason = "Missing or unreadable Refer-To";
            self.respond(now, tx, request.response_with_reason(400, reason));
            return;
        };
        let replaces = uri_replaces(&refer_to.uri);
        if queue_call.is_none() && replaces.is_some() {
            let reason = "lab: a phone-to-phone call takes blind transfers only (no Replaces)";
            self.respond(now, tx, request.response_with_reason(403, reason));
            return;
        }
        let target = transfer_number(&refer_to.uri).unwrap_or_default();
        leg.refer = Some(ReferState {
            event_id: request.cseq().map_or(0, |cseq| cseq.seq),
            target: target.clone(),
            target_leg: None,
        });
        let mut accepted = request.response(202);
        accepted.headers.push("Contact", contact);
        self.respond(now, tx, accepted);
        let Some((call_id, agent)) = queue_call else {
            self.send_refer_notify(now, id, 100);
            self.phone_blind_transfer(now, sim, id);
            return;
        };
        self.events.push_back(PbxEvent::TransferRequested {
            call_id,
            agent,
            target,
            attended: replaces.is_some(),
        });
        self.send_refer_notify(now, id, 100);
        match replaces {
            Some(Ok(replaces)) => self.attended_transfer(now, sim, id, &replaces),
            Some(Err(error)) => {
                tracing::info!(%error, "a REFER with an unreadable Replaces");
                self.fail_transfer(now, id, 400);
            }
            None => self.blind_transfer(now, sim, id),
        }
    }

    /// Where a blind transfer's target is.
    fn destination(
        &self,
        now: Instant,
        sim: &Simulation,
        target: &str,
        agent: &str,
    ) -> Destination {
        if target.is_empty() {
            return Destination::Refused(404);
        }
        if target == agent {
            return Destination::Refused(482);
        }
        match sim.config().dialled(target) {
            Some(Dialled::Account(_)) => {
                let on_a_call = self
                    .legs
                    .values()
                    .any(|leg| leg.state != LegState::Ending && leg.kind.phone_user() == target);
                if on_a_call {
                    Destination::Refused(486)
                } else if self.registrar.lookup(now, target).is_empty() {
                    Destination::Refused(480)
                } else {
                    Destination::Phone
                }
            }
            Some(Dialled::Queue(queue)) => Destination::Queue(queue.queue.name.clone()),
            Some(Dialled::Login(_) | Dialled::Logout(_)) => Destination::Refused(404),
            None if sim.is_bot(target)
                || target == sim.config().simulation.transfer_target
                || is_e164(target) =>
            {
                Destination::Outside
            }
            None => Destination::Refused(404),
        }
    }

    fn blind_transfer(&mut self, now: Instant, sim: &mut Simulation, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let LegKind::Agent {
            call_id,
            agent,
            queue,
            caller_id,
        } = leg.kind.clone()
        else {
            return;
        };
        let target = leg
            .refer
            .as_ref()
            .map(|refer| refer.target.clone())
            .unwrap_or_default();
        match self.destination(now, sim, &target, &agent) {
            Destination::Outside => {
                let transfer = Transfer::Blind {
                    target: &target,
                    context: TRANSFER_CONTEXT,
                };
                sim.transferred(now, &call_id, transfer);
                // A real caller talks to whoever is out there for a while, then hangs up.
                if let Some(caller) = self.caller_leg(&call_id) {
                    self.unlink(caller);
                    self.set_caller_stage(caller, CallerStage::Gone);
                    self.set_audio(caller, Audio::Voice(CallerVoice::bot(8000)));
                    let talk = sim.config().simulation.talk_mean;
                    if let Some(leg) = self.legs.get_mut(&caller) {
                        leg.hang_up_at = now.checked_add(talk);
                    }
                }
                self.events.push_back(PbxEvent::Transferred {
                    call_id,
                    agent,
                    target,
                    attended: false,
                });
                self.send_refer_notify(now, id, 200);
                self.finish_transferor(now, id);
            }
            Destination::Queue(queue) => {
                // Asterisk logs the transfer, then the caller's fresh ENTERQUEUE.
                let transfer = Transfer::Blind {
                    target: &target,
                    context: TRANSFER_CONTEXT,
                };
                sim.transferred(now, &call_id, transfer);
                self.events.push_back(PbxEvent::Transferred {
                    call_id: call_id.clone(),
                    agent,
                    target,
                    attended: false,
                });
                self.send_refer_notify(now, id, 200);
                self.finish_transferor(now, id);
                self.requeue(now, sim, &call_id, &queue, &caller_id);
            }
            Destination::Phone => {
                let mut caller = NameAddr::new(Uri::sip(
                    Some(&caller_user(&caller_id)),
                    &self.config.realm,
                    None,
                ));
                caller.display_name = Some(format!("{queue}: {caller_id}"));
                let referred_by = NameAddr::new(Uri::sip(Some(&agent), &self.config.realm, None));
                let kind = LegKind::Transferred {
                    call_id,
                    agent,
                    target: target.clone(),
                };
                let extra = [("Referred-By", referred_by.to_string())];
                match self.invite_phone(now, kind, caller, &extra) {
                    Ok(target_leg) => {
                        if let Some(leg) = self.legs.get_mut(&target_leg) {
                            leg.transfer_from = Some(id);
                            leg.ring_until = now.checked_add(RING_LIMIT);
                        }
                        if let Some(refer) = self.legs.get_mut(&id).and_then(|l| l.refer.as_mut()) {
                            refer.target_leg = Some(target_leg);
                        }
                        sim.set_agent_busy(now, &target, true);
                    }
                    Err(status) => self.fail_transfer(now, id, status),
                }
            }
            Destination::Refused(status) => self.fail_transfer(now, id, status),
        }
    }

    /// A phone's REFER in a phone-to-phone call: the lab rings the target (a registered phone)
    /// as the other phone, which keeps talking to the transferor until the target answers.
    fn phone_blind_transfer(&mut self, now: Instant, sim: &mut Simulation, id: LegId) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let transferor = leg.kind.phone_user().to_owned();
        let target = leg
            .refer
            .as_ref()
            .map(|refer| refer.target.clone())
            .unwrap_or_default();
        let Some((transferee_leg, transferee)) = leg.partner.and_then(|partner| {
            let user = self.legs.get(&partner)?.kind.phone_user().to_owned();
            Some((partner, user))
        }) else {
            self.fail_phone_transfer(now, id, 481);
            return;
        };
        let status = if target == transferor || target == transferee {
            Some(482)
        } else {
            match self.destination(now, sim, &target, &transferor) {
                Destination::Phone => None,
                Destination::Refused(status) => Some(status),
                // Queues and the world outside take queue callers, not phones.
                Destination::Queue(_) | Destination::Outside => Some(404),
            }
        };
        if let Some(status) = status {
            self.fail_phone_transfer(now, id, status);
            return;
        }
        let from = NameAddr::new(Uri::sip(Some(&transferee), &self.config.realm, None));
        let referred_by = NameAddr::new(Uri::sip(Some(&transferor), &self.config.realm, None));
        let kind = LegKind::PhoneTransfer {
            user: transferee,
            target: target.clone(),
            transferor,
        };
        let extra = [("Referred-By", referred_by.to_string())];
        match self.invite_phone(now, kind, from, &extra) {
            Ok(target_leg) => {
                if let Some(leg) = self.legs.get_mut(&target_leg) {
                    leg.transfer_from = Some(id);
                    leg.transferee = Some(transferee_leg);
                    leg.ring_until = now.checked_add(RING_LIMIT);
                }
                if let Some(refer) = self.legs.get_mut(&id).and_then(|l| l.refer.as_mut()) {
                    refer.target_leg = Some(target_leg);
                }
                sim.set_agent_busy(now, &target, true);
            }
            Err(status) => self.fail_phone_transfer(now, id, status),
        }
    }

    /// The target of a phone-to-phone transfer answered: it talks to the transferee, and the
    /// transferor, told "200 OK", is let go.
    fn phone_transfer_answered(&mut self, now: Instant, id: LegId, negotiated: &Negotiated) {
        let seed = self.rng.gen();
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.state = LegState::Confirmed;
        leg.ring_until = None;
        leg.media = start_media(now, negotiated, Audio::Bridge(VecDeque::new()), seed);
        let transferor = leg.transfer_from.take();
        let Some(transferee) = leg.transferee.take() else {
            // The transferee hung up while the target rang.
            self.send_bye(now, id);
            return;
        };
        if let LegKind::PhoneTransfer {
            user,
            target,
            transferor: by,
        } = leg.kind.clone()
        {
            self.events.push_back(PbxEvent::PhoneCallTransferred {
                by,
                from: user,
                to: target,
            });
        }
        if let Some(transferor) = transferor {
            self.send_refer_notify(now, transferor, 200);
            self.finish_transferor(now, transferor);
        }
        self.bridge(id, transferee);
    }

    /// A phone-to-phone transfer did not happen: final NOTIFY with `status`; the call goes on.
    fn fail_phone_transfer(&mut self, now: Instant, id: LegId, status: u16) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let by = leg.kind.phone_user().to_owned();
        let target = leg
            .refer
            .as_ref()
            .map(|refer| refer.target.clone())
            .unwrap_or_default();
        self.send_refer_notify(now, id, status);
        self.events
            .push_back(PbxEvent::PhoneTransferFailed { by, target, status });
    }

    /// Attended: the agent's consultation call through the lab (the dialog Replaces names)
    /// goes; the consulted phone's leg gets the caller.
    fn attended_transfer(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        id: LegId,
        replaces: &msg::Replaces,
    ) {
        let Some(LegKind::Agent { call_id, agent, .. }) =
            self.legs.get(&id).map(|l| l.kind.clone())
        else {
            return;
        };
        let consultation = self.legs.iter().find_map(|(&consult, leg)| {
            let dialog = leg.dialog.as_ref()?;
            let named = dialog.id.call_id == replaces.call_id
                && dialog.id.local_tag == replaces.to_tag
                && dialog.id.remote_tag == replaces.from_tag;
            let LegKind::PhoneIn { user, callee } = &leg.kind else {
                return None;
            };
            let usable = named && *user == agent && leg.state == LegState::Confirmed;
            let out = leg.partner.filter(|out| {
                self.legs
                    .get(out)
                    .is_some_and(|o| o.state == LegState::Confirmed)
            })?;
            usable.then(|| (consult, out, callee.clone()))
        });
        let Some((consult, out, callee)) = consultation else {
            // No answered call of this agent's through the lab has that dialog.
            self.fail_transfer(now, id, 481);
            return;
        };
        if let Some(refer) = self.legs.get_mut(&id).and_then(|l| l.refer.as_mut()) {
            refer.target = callee.clone();
        }
        let talk = sim.config().simulation.talk_mean;
        let caller = self.caller_leg(&call_id);
        if let Some(leg) = self.legs.get_mut(&out) {
            leg.kind = LegKind::Transferred {
                call_id: call_id.clone(),
                agent: agent.clone(),
                target: callee.clone(),
            };
            leg.partner = None;
            leg.transfer_logged = true;
            if caller.is_none() {
                leg.hang_up_at = now.checked_add(talk);
                if let Some(media) = leg.media.as_mut() {
                    media.audio = Audio::Voice(CallerVoice::new(8000));
                }
            }
        }
        if let Some(leg) = self.legs.get_mut(&consult) {
            leg.partner = None;
        }
        if let Some(caller) = caller {
            // The consulted phone now talks to the real caller.
            self.bridge(out, caller);
            self.set_caller_stage(caller, CallerStage::Gone);
        }
        self.send_bye(now, consult);
        let bridge = self.new_bridge_id();
        let transfer = Transfer::Attended {
            target: &callee,
            bridge: &bridge,
        };
        sim.transferred(now, &call_id, transfer);
        self.events.push_back(PbxEvent::Transferred {
            call_id,
            agent,
            target: callee,
            attended: true,
        });
        self.send_refer_notify(now, id, 200);
        self.finish_transferor(now, id);
    }

    /// A blind transfer's target answered: it hears the caller, the agent is told and let go.
    fn transfer_answered(
        &mut self,
        now: Instant,
        sim: &mut Simulation,
        id: LegId,
        negotiated: &Negotiated,
    ) {
        let seed = self.rng.gen();
        let talk = sim.config().simulation.talk_mean;
        let caller = match self.legs.get(&id).map(|leg| &leg.kind) {
            Some(LegKind::Transferred { call_id, .. }) => self.caller_leg(call_id),
            _ => None,
        };
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.state = LegState::Confirmed;
        leg.ring_until = None;
        let audio = match caller {
            Some(_) => Audio::Bridge(VecDeque::new()),
            None => Audio::Voice(CallerVoice::new(8000)),
        };
        leg.media = start_media(now, negotiated, audio, seed);
        if caller.is_none() {
            leg.hang_up_at = now.checked_add(talk);
        }
        let transferor = leg.transfer_from.take();
        if let Some(caller) = caller {
            // The real caller leaves the agent for the target.
            self.bridge(id, caller);
            self.set_caller_stage(caller, CallerStage::Gone);
        }
        self.log_blind_transfer(now, sim, id);
        if let Some(transferor) = transferor {
            self.send_refer_notify(now, transferor, 200);
            self.finish_transferor(now, transferor);
        }
    }

    /// BLINDTRANSFER for the caller on `target_leg`, once.
    fn log_blind_transfer(&mut self, now: Instant, sim: &mut Simulation, target_leg: LegId) {
        let Some(leg) = self.legs.get_mut(&target_leg) else {
            return;
        };
        let LegKind::Transferred {
            call_id,
            agent,
            target,
        } = leg.kind.clone()
        else {
            return;
        };
        if leg.transfer_logged {
            return;
        }
        leg.transfer_logged = true;
        leg.transfer_from = None;
        let transfer = Transfer::Blind {
            target: &target,
            context: TRANSFER_CONTEXT,
        };
        sim.transferred(now, &call_id, transfer);
        self.events.push_back(PbxEvent::Transferred {
            call_id,
            agent,
            target,
            attended: false,
        });
    }

    /// The transfer did not happen: final NOTIFY with `status`; the caller stays.
    fn fail_transfer(&mut self, now: Instant, id: LegId, status: u16) {
        let Some(leg) = self.legs.get(&id) else {
            return;
        };
        let LegKind::Agent { call_id, agent, .. } = leg.kind.clone() else {
            return;
        };
        let target = leg
            .refer
            .as_ref()
            .map(|refer| refer.target.clone())
            .unwrap_or_default();
        self.send_refer_notify(now, id, status);
        self.events.push_back(PbxEvent::TransferFailed {
            call_id,
            agent,
            target,
            status,
        });
    }

    /// The agent's part is over: silence, and a BYE unless the agent hangs up first.
    fn finish_transferor(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let agent = leg.kind.phone_user().to_owned();
        if leg.kind.occupant().is_some() {
            // A phone that transferred its phone-to-phone call is free once the leg goes
            // (a Transferor leg keeps nobody busy).
            self.idle_agents.push(agent.clone());
        }
        leg.kind = LegKind::Transferor { agent };
        leg.refer = None;
        if let Some(media) = leg.media.as_mut() {
            media.audio = Audio::Silence;
        }
        if leg.state == LegState::Confirmed {
            leg.hang_up_at = now.checked_add(TRANSFEROR_GRACE);
        }
        // A real caller still bridged to the agent is not the agent's any more.
        self.unlink(id);
    }

    /// NOTIFY the transferor with `status` in a sipfrag; a final status ends the subscription.
    fn send_refer_notify(&mut self, now: Instant, id: LegId, status: u16) {
        let via = self.new_via();
        let contact = self.contact_value();
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(event_id) = leg.refer.as_ref().map(|refer| refer.event_id) else {
            return;
        };
        if status >= 200 {
            leg.refer = None;
        }
        if leg.state != LegState::Confirmed {
            // The dialog is ending: nobody is left to tell.
            return;
        }
        let Some(dialog) = leg.dialog.as_mut() else {
            return;
        };
        let notify = refer_notify(dialog, via, &contact, event_id, status);
        let peer = leg.peer;
        match self.tx.send_request(now, notify, peer) {
            Ok(tx) => {
                self.pending.insert(tx, (id, Purpose::Notify));
            }
            Err(error) => tracing::warn!(%error, "could not send a NOTIFY"),
        }
    }

    /// What is left to tell when a leg failed (the leg may be gone already).
    fn leg_failed(&mut self, now: Instant, sim: &mut Simulation, failure: Failure, status: u16) {
        let status = if failure.rang_out { 408 } else { status };
        match &failure.kind {
            LegKind::Agent { .. } => {
                if !failure.cancelled {
                    self.reject(now, sim, &failure.kind, status);
                }
            }
            LegKind::PhoneOut { .. } => {
                if let Some(caller) = failure.partner {
                    let status = if (400..700).contains(&status) {
                        status
                    } else {
                        480
                    };
                    self.refuse_offered(now, caller, status);
                    self.remove_leg(caller);
                }
            }
            LegKind::Transferred {
                call_id, target, ..
            } => {
                if let Some(transferor) = failure.transfer_from {
                    self.fail_transfer(now, transferor, status);
                } else if failure.transfer_logged {
                    tracing::info!(%call_id, %target, status, "the transfer target did not take the caller");
                    // A real caller handed over by an agent who left has nobody now.
                    let alone = self
                        .caller_leg(call_id)
                        .filter(|&c| self.legs.get(&c).is_some_and(|leg| leg.partner.is_none()));
                    if let Some(caller) = alone {
                        self.set_caller_stage(caller, CallerStage::Gone);
                        self.hang_up(now, caller);
                    }
                }
            }
            LegKind::PhoneTransfer { .. } => match (failure.transfer_from, failure.transferee) {
                (Some(transferor), _) => self.fail_phone_transfer(now, transferor, status),
                // The transferor left after its REFER: the transferee has nobody now.
                (None, Some(transferee)) => self.hang_up(now, transferee),
                (None, None) => {}
            },
            LegKind::Code { .. }
            | LegKind::Transferor { .. }
            | LegKind::PhoneIn { .. }
            | LegKind::Caller { .. } => {}
        }
    }

    /// A bridge uniqueid in Asterisk's UUID shape, for ATTENDEDTRANSFER.
    fn new_bridge_id(&mut self) -> String {
        let high: u64 = self.rng.gen();
        let low: u64 = self.rng.gen();
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }

    // -- sending ------------------------------------------------------------------------------

    fn send_cancel(&mut self, now: Instant, id: LegId) {
        let give_up = self.config.timers.t1.saturating_mul(64);
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let Some(invite) = leg.invite.as_ref() else {
            return;
        };
        let cancel = transaction::build_cancel(invite);
        leg.cancel_sent = true;
        leg.cancel_give_up_at = now.checked_add(give_up);
        let peer = leg.peer;
        match self.tx.send_request(now, cancel, peer) {
            Ok(tx) => {
                self.pending.insert(tx, (id, Purpose::Cancel));
            }
            Err(error) => tracing::warn!(%error, "could not send a CANCEL"),
        }
    }

    fn send_bye(&mut self, now: Instant, id: LegId) {
        let via = self.new_via();
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.state = LegState::Ending;
        leg.media = None;
        if let LegKind::Caller { call_id, .. } = &leg.kind {
            self.ended_callers.push(call_id.clone());
        }
        let recording = leg.recording.take();
        if let Some(recording) = recording {
            self.push_voicemail(recording);
        }
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        leg.ok_retransmit = None;
        leg.hang_up_at = None;
        leg.hang_up_after_ack = false;
        leg.cancel_give_up_at = None;
        let peer = leg.peer;
        let Some(dialog) = leg.dialog.as_mut() else {
            self.remove_leg(id);
            return;
        };
        let bye = dialog.new_request(Method::Bye, via);
        match self.tx.send_request(now, bye, peer) {
            Ok(tx) => {
                self.pending.insert(tx, (id, Purpose::Bye));
            }
            Err(error) => {
                tracing::warn!(%error, "could not send a BYE");
                self.remove_leg(id);
            }
        }
    }

    fn respond(&mut self, now: Instant, tx: TxId, response: Response) {
        if let Err(error) = self.tx.respond(now, tx, response) {
            tracing::debug!(%error, "response on a finished transaction");
        }
    }

    /// Refuse a new INVITE with `status` and say so.
    fn refuse(
        &mut self,
        now: Instant,
        tx: TxId,
        request: &Request,
        (user, number): (&str, &str),
        status: u16,
        reason: &str,
    ) {
        let mut response = request.response_with_reason(status, reason);
        if status == 503 {
            response.headers.push("Retry-After", "5");
        }
        self.add_to_tag(&mut response);
        self.respond(now, tx, response);
        self.events.push_back(PbxEvent::Refused {
            user: user.to_owned(),
            number: number.to_owned(),
            status,
        });
    }

    /// Tell the queue an agent's leg failed.
    fn reject(&mut self, now: Instant, sim: &mut Simulation, kind: &LegKind, status: u16) {
        if let LegKind::Agent { call_id, agent, .. } = kind {
            sim.agent_rejected(now, call_id, agent);
            self.events.push_back(PbxEvent::AgentRejected {
                call_id: call_id.clone(),
                agent: agent.clone(),
                status,
            });
        }
    }

    // -- timers -------------------------------------------------------------------------------

    fn leg_timers(&mut self, now: Instant, id: LegId) {
        let t2 = self.config.timers.t2;
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if let Some(retransmit) = leg.ok_retransmit.as_mut() {
            if retransmit.give_up_at <= now {
                // No ACK in 64·T1: the dialog counts as confirmed, the session ends (§13.3.1.4).
                tracing::info!(call_id = %leg.sip_call_id, "no ACK for our 2xx; hanging up");
                leg.ok_retransmit = None;
                self.send_bye(now, id);
                return;
            }
            if retransmit.next_at <= now {
                let bytes = retransmit.bytes.clone();
                retransmit.interval = retransmit.interval.saturating_mul(2).min(t2);
                retransmit.next_at = now + retransmit.interval;
                let peer = leg.peer;
                self.out.push_back(Transmit {
                    target: peer,
                    bytes,
                });
            }
        }
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.hang_up_at.is_some_and(|at| at <= now) {
            leg.hang_up_at = None;
            match leg.state {
                LegState::Confirmed => {
                    self.send_bye(now, id);
                    return;
                }
                // A BYE before the ACK is not allowed (§15): wait for it (or for the 2xx to
                // give up).
                LegState::Answered => leg.hang_up_after_ack = true,
                LegState::Offered | LegState::Calling | LegState::Ending => {}
            }
        }
        if leg.state == LegState::Calling && leg.ring_until.is_some_and(|at| at <= now) {
            leg.ring_until = None;
            leg.rang_out = true;
            self.cancel_leg(now, id);
        }
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        if leg.cancel_give_up_at.is_some_and(|at| at <= now) {
            // No final response 64·T1 after our CANCEL: the INVITE transaction cannot end on
            // its own, so end it here (§9.1).
            if let Some(tx) = leg.invite_tx {
                self.tx.terminate(tx);
            }
            self.remove_leg(id);
            return;
        }
        self.tick_media(now, id);
    }

    fn tick_media(&mut self, now: Instant, id: LegId) {
        let Some(leg) = self.legs.get_mut(&id) else {
            return;
        };
        let local_port = leg.local_port;
        let partner = leg.partner;
        let Leg {
            media, recording, ..
        } = leg;
        let Some(media) = media.as_mut() else {
            return;
        };
        let mut heard = Vec::new();
        let mut frames = 0;
        while media.next_tick <= now {
            if frames >= MAX_CATCH_UP_FRAMES {
                media.next_tick = now + media.packet_time;
                break;
            }
            let samples = media.session.frame_samples();
            media.mic.resize(samples, 0);
            media.audio.fill(&mut media.mic);
            let at = media.next_tick;
            media.session.tick(at, &media.mic, &mut media.speaker);
            if partner.is_some() {
                heard.extend_from_slice(&media.speaker);
            }
            if let Some(recording) = recording.as_mut().filter(|r| at >= r.from) {
                let room = VOICEMAIL_MAX_SAMPLES.saturating_sub(recording.samples.len());
                let take = media.speaker.len().min(room);
                recording
                    .samples
                    .extend_from_slice(media.speaker.get(..take).unwrap_or_default());
            }
            media.next_tick = at + media.packet_time;
            frames += 1;
        }
        while let Some((channel, remote, bytes)) = media.session.poll_transmit() {
            if channel == Channel::Rtp {
                self.media_out.push_back(MediaTransmit {
                    local_port,
                    remote,
                    bytes,
                });
            }
        }
        // What this leg's phone said is what the bridged phone hears next.
        if let Some(other) = partner
            .and_then(|partner| self.legs.get_mut(&partner))
            .and_then(|leg| leg.media.as_mut())
        {
            other.audio.push_bridged(&heard);
        }
    }

    // -- helpers ------------------------------------------------------------------------------

    fn insert_leg(&mut self, leg: Leg) -> LegId {
        let id = self.next_leg;
        self.next_leg = self.next_leg.wrapping_add(1);
        self.legs.insert(id, leg);
        id
    }

    /// Take a leg out: its media port goes back to the pool, its phone may be free again, and
    /// no other leg points at it any more.
    fn remove_leg(&mut self, id: LegId) -> Option<Leg> {
        let mut leg = self.legs.remove(&id)?;
        self.free_ports.push_back(leg.local_port);
        if let LegKind::Caller { call_id, .. } = &leg.kind {
            self.ended_callers.push(call_id.clone());
        }
        if let Some(recording) = leg.recording.take() {
            self.push_voicemail(recording);
        }
        if let Some(user) = leg.kind.occupant() {
            self.idle_agents.push(user.to_owned());
        }
        for other in self.legs.values_mut() {
            if other.partner == Some(id) {
                other.partner = None;
            }
            if other.transfer_from == Some(id) {
                other.transfer_from = None;
            }
            if other.transferee == Some(id) {
                other.transferee = None;
            }
            if let Some(refer) = other.refer.as_mut() {
                if refer.target_leg == Some(id) {
                    refer.target_leg = None;
                }
            }
        }
        Some(leg)
    }

    /// RFC 3261 §12.2.2: an in-dialog request whose CSeq is not above the last one gets 500.
    /// True when the request may go on.
    fn accept_in_dialog(&mut self, now: Instant, tx: TxId, id: LegId, request: &Request) -> bool {
        let in_order = self
            .legs
            .get_mut(&id)
            .and_then(|leg| leg.dialog.as_mut())
            .is_some_and(|dialog| dialog.accept_remote_cseq(request).is_ok());
        if !in_order {
            self.respond(now, tx, request.response(500));
        }
        in_order
    }

    fn leg_for_request(&self, request: &Request) -> Option<LegId> {
        self.legs
            .iter()
            .find(|(_, leg)| {
                leg.dialog
                    .as_ref()
                    .is_some_and(|dialog| dialog.matches_request(request))
            })
            .map(|(&id, _)| id)
    }

    fn note_registrar_event(&mut self, event: RegistrarEvent) {
        self.events.push_back(match event {
            RegistrarEvent::Registered { user, contact } => PbxEvent::Registered {
                user,
                contact: contact.to_string(),
            },
            RegistrarEvent::Unregistered {
                user,
                contact,
                expired,
            } => PbxEvent::Unregistered {
                user,
                contact: contact.to_string(),
                expired,
            },
        });
    }

    fn start_retransmit(&self, now: Instant, ok: &Response) -> Retransmit {
        let t1 = self.config.timers.t1;
        Retransmit {
            bytes: ok.to_bytes(),
            next_at: now + t1,
            interval: t1,
            give_up_at: now + t1.saturating_mul(64),
        }
    }

    fn local_media(&self, port: u16) -> LocalMedia {
        local_media(self.config.media_ip, port)
    }

    fn new_tag(&mut self) -> String {
        format!("{:016x}", self.rng.gen::<u64>())
    }

    fn new_call_id(&mut self) -> String {
        format!(
            "{:016x}{:08x}@ringside-lab",
            self.rng.gen::<u64>(),
            self.rng.gen::<u32>()
        )
    }

    fn new_via(&mut self) -> Via {
        let branch = transaction::new_branch(self.rng.gen());
        let mut via = Via::new(
            "UDP",
            &host_for_uri(self.config.sip_addr.ip()),
            Some(self.config.sip_addr.port()),
            &branch,
        );
        via.set_param("rport", None);
        via
    }

    fn contact_value(&self) -> String {
        let uri = Uri::sip(
            Some("lab"),
            &host_for_uri(self.config.sip_addr.ip()),
            Some(self.config.sip_addr.port()),
        );
        format!("<{uri}>")
    }

    fn add_to_tag(&mut self, response: &mut Response) {
        if response.status > 100 && response.to_tag().is_none() {
            if let Some(to) = response.to_header() {
                let tag = self.new_tag();
                response.headers.set("To", to.with_tag(&tag).to_string());
            }
        }
    }

    fn add_capabilities(&self, response: &mut Response) {
        response.headers.set("Allow", ALLOW);
        response.headers.set("Accept", "application/sdp");
        response
            .headers
            .set("Server", self.config.user_agent.clone());
    }
}

fn local_media(address: IpAddr, port: u16) -> LocalMedia {
    LocalMedia {
        address,
        port,
        codecs: vec![Codec::pcmu(), Codec::pcma()],
        telephone_event: Some(TELEPHONE_EVENT_PT),
        direction: Direction::SendRecv,
        ptime: Some(sdp::DEFAULT_PTIME_MS),
    }
}

fn media_params(negotiated: &Negotiated) -> MediaParams {
    MediaParams {
        remote: negotiated.remote_rtp(),
        codec: negotiated.codec.name.clone(),
        payload_type: negotiated.codec.payload_type,
        telephone_event: negotiated.telephone_event,
        telephone_event_clock: negotiated.telephone_event_clock,
        sending: negotiated.local_direction.sends() && !negotiated.remote_on_hold_sentinel,
        receiving: negotiated.local_direction.receives(),
        ptime_ms: negotiated.ptime,
    }
}

fn start_media(now: Instant, negotiated: &Negotiated, audio: Audio, seed: u64) -> Option<LegMedia> {
    // No RTCP leaves the lab, so its wall-clock anchor does not matter.
    match MediaSession::new(media_params(negotiated), seed, now, Duration::ZERO) {
        Ok(session) => Some(LegMedia {
            packet_time: session.packet_time(),
            session,
            audio,
            next_tick: now,
            mic: Vec::new(),
            speaker: Vec::new(),
        }),
        Err(error) => {
            tracing::warn!(%error, "no media for this leg");
            None
        }
    }
}

/// The beep's length in samples at 8 kHz.
fn beep_samples() -> usize {
    usize::try_from(VOICEMAIL_BEEP.as_millis() * 8).unwrap_or(4000)
}

/// A real caller's ID for the queue: the From URI's user (a number, usually), else its
/// display name, kept to characters safe in SIP URIs and queue_log.
fn caller_id_of(request: &Request) -> String {
    let from = request.from_header();
    let user = from
        .as_ref()
        .and_then(|f| f.uri.user_decoded())
        .filter(|u| !u.trim().is_empty());
    let name = from.and_then(|f| f.display_name);
    caller_user(&user.or(name).unwrap_or_default())
}

fn parse_sdp(body: &[u8]) -> Option<SessionDescription> {
    if body.is_empty() {
        return None;
    }
    let text = std::str::from_utf8(body).ok()?;
    SessionDescription::parse(text).ok()
}

fn tagged_response(request: &Request, status: u16, tag: &str) -> Response {
    let mut response = request.response(status);
    if let Some(to) = request.to_header() {
        response.headers.set("To", to.with_tag(tag).to_string());
    }
    response
}

/// A caller ID as the user part of a SIP URI: digits and `+` stay, anything else (a virtual
/// caller's "anonymous", say) is kept only if it is a plain token.
fn caller_user(caller_id: &str) -> String {
    let clean: String = caller_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_'))
        .collect();
    if clean.is_empty() {
        "anonymous".to_owned()
    } else {
        clean
    }
}

/// An id for queue_log's callid field: no field separator, no line breaks, bounded length.
fn queue_log_id(call_id: &str) -> String {
    call_id
        .chars()
        .take(MAX_LOG_ID_CHARS)
        .map(|c| if c == '|' || c.is_control() { '_' } else { c })
        .collect()
}

/// The NOTIFY that tells a transferor how its REFER is doing (RFC 3515 §2.4.4): the status
/// line of the outcome as a `message/sipfrag` body; a final status ends the subscription.
fn refer_notify(
    dialog: &mut Dialog,
    via: Via,
    contact: &str,
    event_id: u32,
    status: u16,
) -> Request {
    let mut notify = dialog.new_request(Method::Notify, via);
    notify.headers.push("Contact", contact);
    notify.headers.push("Event", format!("refer;id={event_id}"));
    let state = if status >= 200 {
        "terminated;reason=noresource".to_owned()
    } else {
        format!("active;expires={REFER_SUBSCRIPTION_SECS}")
    };
    notify.headers.push("Subscription-State", state);
    let fragment = format!("SIP/2.0 {status} {}\r\n", msg::default_reason(status));
    notify.set_body("message/sipfrag;version=2.0", fragment.into_bytes());
    notify
}

/// The extension or number a Refer-To names: a SIP URI's user part or a tel: URI's number,
/// without parameters, and for a phone number without its visual separators (RFC 3966).
fn transfer_number(uri: &Uri) -> Option<String> {
    let raw = match &uri.scheme {
        Scheme::Sip | Scheme::Sips => uri.user_decoded()?,
        Scheme::Tel => msg::percent_decode(&uri.opaque),
        Scheme::Other(_) => return None,
    };
    let raw = raw.split(';').next().unwrap_or_default().trim();
    let dialable = |c: char| c.is_ascii_digit() || matches!(c, '+' | '*' | '#');
    let separator = |c: char| matches!(c, '-' | '.' | '(' | ')' | ' ');
    let is_number =
        raw.chars().any(|c| c.is_ascii_digit()) && raw.chars().all(|c| dialable(c) || separator(c));
    let number: String = if is_number {
        raw.chars().filter(|&c| !separator(c)).collect()
    } else {
        raw.to_owned()
    };
    (!number.is_empty()).then_some(number)
}

/// The Replaces a Refer-To carries as a URI header (attended transfer), if any.
fn uri_replaces(uri: &Uri) -> Option<Result<msg::Replaces, String>> {
    let header = uri
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("Replaces"))?;
    let value = msg::percent_decode(header.value.as_deref().unwrap_or_default());
    Some(msg::Replaces::parse(&value))
}

/// An E.164 number (`+` and 6 to 15 digits): somewhere outside the lab.
fn is_e164(number: &str) -> bool {
    number.strip_prefix('+').is_some_and(|digits| {
        (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit())
    })
}

fn host_for_uri(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

#[cfg(test)]
mod tests {
    //! The lab driven by ringside's own `UserAgent` over an in-memory wire with a virtual
    //! clock: every SIP message and RTP packet crosses the wire (1 ms, or seeded loss).
    use super::*;
    use crate::config::Secret;
    use crate::lab::ami_server::{AmiEventBook, LabClock, LAB_SYSTEM_NAME};
    use crate::lab::config::LabConfig;
    use crate::media::tones::goertzel;
    use crate::queue::ami::{AmiFramer, AmiItem, AmiMessage};
    use crate::queue::report::{ReportDeriver, ReportEvent, ReportKind};
    use crate::sip::ua::{CallId, Command, EndedBy, UaConfig, UaEvent, UserAgent};

    const EPOCH: u64 = 1_795_259_540;
    const LAB_IP: [u8; 4] = [127, 0, 0, 1];
    const LAB_MEDIA_PORTS: std::ops::Range<u16> = 40_000..40_008;

    fn lab_sip() -> SocketAddr {
        SocketAddr::from((LAB_IP, 5060))
    }

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
    }

    struct Packet {
        at: Instant,
        seq: u64,
        from: SocketAddr,
        to: SocketAddr,
        bytes: Vec<u8>,
    }

    struct PhoneMedia {
        call: CallId,
        session: MediaSession,
        local: SocketAddr,
        next_tick: Instant,
        /// Samples sent so far (the phase of the phone's tone).
        sent: u64,
    }

    struct Phone {
        addr: SocketAddr,
        ua: UserAgent,
        events: Vec<(Instant, UaEvent)>,
        media: Vec<PhoneMedia>,
        heard: HashMap<CallId, Vec<i16>>,
        /// What the phone's user says: a sine of this pitch, else silence.
        tone_hz: Option<f64>,
    }

    struct World {
        now: Instant,
        pbx: LabPbx,
        sim: Simulation,
        phones: Vec<Phone>,
        wire: Vec<Packet>,
        seq: u64,
        rng: XorShift,
        loss_percent: u64,
        /// "from -> to: first line" of every SIP message put on the wire.
        trace: Vec<String>,
        /// Every SIP message put on the wire, whole, with its addresses.
        sip: Vec<(SocketAddr, SocketAddr, String)>,
        log: String,
        pbx_events: Vec<PbxEvent>,
        rtp_to_lab: usize,
        /// Messages from this address starting with this text never reach the wire.
        blocked: Vec<(SocketAddr, String)>,
        /// The AMI event stream the lab's book publishes, as the driver does it.
        t0: Instant,
        book: AmiEventBook,
        ami: Vec<u8>,
        voicemails: Vec<Voicemail>,
    }

    fn lab_config(talk: Duration) -> LabConfig {
        let mut config = LabConfig::default();
        config.simulation.bots = 0;
        config.simulation.callers_per_minute = 0.0;
        config.simulation.patience_mean = Duration::from_secs(3600);
        config.simulation.talk_mean = talk;
        config
    }

    impl World {
        fn new(talk: Duration, loss_percent: u64) -> World {
            World::with_config(lab_config(talk), loss_percent)
        }

        fn with_config(config: LabConfig, loss_percent: u64) -> World {
            let now = Instant::now();
            let mut sim = Simulation::new(config.clone(), 7);
            sim.set_wall_clock(now, Duration::from_secs(EPOCH));
            sim.start(now);
            let pbx = LabPbx::new(
                PbxConfig::new(lab_sip(), LAB_MEDIA_PORTS.collect()),
                &config,
                99,
            );
            World {
                now,
                pbx,
                sim,
                phones: Vec::new(),
                wire: Vec::new(),
                seq: 0,
                rng: XorShift(0x9e37_79b9_7f4a_7c15),
                loss_percent,
                trace: Vec::new(),
                sip: Vec::new(),
                log: String::new(),
                pbx_events: Vec::new(),
                rtp_to_lab: 0,
                blocked: Vec::new(),
                t0: now,
                book: AmiEventBook::new(LAB_SYSTEM_NAME, 3),
                ami: Vec::new(),
                voicemails: Vec::new(),
            }
        }

        fn add_phone(
            &mut self,
            user: &str,
            last: u8,
            configure: impl FnOnce(&mut UaConfig),
        ) -> usize {
            let addr = SocketAddr::from(([127, 0, 0, last], 5060));
            let mut config = UaConfig::simple(user, addr, lab_sip());
            config.password = Secret::new(format!("lab{user}"));
            config.rtp_ports = (20_000, 20_098);
            configure(&mut config);
            self.phones.push(Phone {
                addr,
                ua: UserAgent::new(config, u64::from(last)),
                events: Vec::new(),
                media: Vec::new(),
                heard: HashMap::new(),
                tone_hz: None,
            });
            self.phones.len() - 1
        }

        fn command(&mut self, phone: usize, command: Command) {
            let now = self.now;
            self.phones[phone]
                .ua
                .command(now, command)
                .expect("command accepted");
            self.collect();
        }

        fn send(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
            if self.rng.next() % 100 < self.loss_percent {
                return;
            }
            if self.blocked.iter().any(|(at, first)| {
                *at == from && String::from_utf8_lossy(&bytes).starts_with(first.as_str())
            }) {
                return;
            }
            self.seq += 1;
            self.wire.push(Packet {
                at: self.now + Duration::from_millis(1),
                seq: self.seq,
                from,
                to,
                bytes,
            });
        }

        fn send_sip(&mut self, from: SocketAddr, to: SocketAddr, bytes: Vec<u8>) {
            let first = String::from_utf8_lossy(&bytes)
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned();
            self.trace.push(format!("{from} -> {to}: {first}"));
            self.sip
                .push((from, to, String::from_utf8_lossy(&bytes).into_owned()));
            self.send(from, to, bytes);
        }

        fn collect(&mut self) {
            let now = self.now;
            while let Some(t) = self.pbx.poll_transmit() {
                self.send_sip(lab_sip(), t.target.addr, t.bytes);
            }
            while let Some(m) = self.pbx.poll_media() {
                let from = SocketAddr::from((LAB_IP, m.local_port));
                self.send(from, m.remote, m.bytes);
            }
            while let Some(e) = self.pbx.poll_event() {
                self.pbx_events.push(e);
            }
            while let Some(v) = self.pbx.poll_voicemail() {
                self.voicemails.push(v);
            }
            let text = self.sim.poll_queue_log();
            self.book.note_queue_log(&text);
            self.log.push_str(&text);
            let mut events = Vec::new();
            while let Some(event) = self.sim.poll_event() {
                events.push(event);
            }
            if !events.is_empty() {
                let since = u64::try_from(now.duration_since(self.t0).as_micros()).expect("µs");
                let clock = LabClock {
                    now,
                    now_epoch_micros: EPOCH * 1_000_000 + since,
                    started_epoch_micros: EPOCH * 1_000_000,
                };
                for published in self.book.publish(&self.sim, clock, &events) {
                    self.ami.extend_from_slice(&published.bytes);
                }
            }
            for index in 0..self.phones.len() {
                let addr = self.phones[index].addr;
                while let Some(t) = self.phones[index].ua.poll_transmit() {
                    self.send_sip(addr, t.target.addr, t.bytes);
                }
                while let Some(event) = self.phones[index].ua.poll_event() {
                    let phone = &mut self.phones[index];
                    match &event {
                        UaEvent::Media {
                            call,
                            local_port,
                            remote: Some(remote),
                            codec: Some(codec),
                            payload_type: Some(payload_type),
                            telephone_event,
                            telephone_event_clock,
                            sending,
                            receiving,
                            ptime_ms,
                        } => {
                            let params = MediaParams {
                                remote: *remote,
                                codec: codec.clone(),
                                payload_type: *payload_type,
                                telephone_event: *telephone_event,
                                telephone_event_clock: *telephone_event_clock,
                                sending: *sending,
                                receiving: *receiving,
                                ptime_ms: *ptime_ms,
                            };
                            // A re-INVITE (hold, resume) changes the call's stream, as a
                            // phone does: same source, its sequence going on.
                            if let Some(media) = phone.media.iter_mut().find(|m| m.call == *call) {
                                media.session.update(params);
                                phone.events.push((now, event));
                                continue;
                            }
                            let session = MediaSession::new(params, 5, now, Duration::ZERO)
                                .expect("media session");
                            phone.media.push(PhoneMedia {
                                call: *call,
                                session,
                                local: SocketAddr::new(addr.ip(), *local_port),
                                next_tick: now,
                                sent: 0,
                            });
                        }
                        UaEvent::CallEnded { call, .. } => phone.media.retain(|m| m.call != *call),
                        _ => {}
                    }
                    phone.events.push((now, event));
                }
                let mut outgoing = Vec::new();
                for media in &mut self.phones[index].media {
                    while let Some((channel, to, bytes)) = media.session.poll_transmit() {
                        if channel == Channel::Rtp {
                            outgoing.push((media.local, to, bytes));
                        }
                    }
                }
                for (from, to, bytes) in outgoing {
                    self.send(from, to, bytes);
                }
            }
        }

        fn deliver(&mut self, packet: Packet) {
            let now = self.now;
            if packet.to == lab_sip() {
                self.pbx
                    .handle_datagram(now, &mut self.sim, packet.from, &packet.bytes);
                return;
            }
            if packet.to.ip() == IpAddr::from(LAB_IP) && LAB_MEDIA_PORTS.contains(&packet.to.port())
            {
                self.rtp_to_lab += 1;
                self.pbx
                    .handle_rtp(now, packet.to.port(), packet.from, &packet.bytes);
                return;
            }
            for phone in &mut self.phones {
                if phone.addr == packet.to {
                    let source = Target {
                        transport: Transport::Udp,
                        addr: packet.from,
                    };
                    phone.ua.handle_datagram(now, source, &packet.bytes);
                    return;
                }
                if let Some(media) = phone.media.iter_mut().find(|m| m.local == packet.to) {
                    media.session.handle_rtp(now, packet.from, &packet.bytes);
                    return;
                }
            }
        }

        /// Advance to the next delivery or timer; false when nothing is left to happen.
        fn step(&mut self) -> bool {
            let next = [
                self.wire.iter().map(|p| p.at).min(),
                self.pbx.poll_timeout(),
                self.sim.poll_timeout(),
                self.phones.iter().filter_map(|p| p.ua.poll_timeout()).min(),
                self.phones
                    .iter()
                    .flat_map(|p| p.media.iter().map(|m| m.next_tick))
                    .min(),
            ]
            .into_iter()
            .flatten()
            .min();
            let Some(next) = next else {
                return false;
            };
            self.now = self.now.max(next);
            let now = self.now;
            let mut due: Vec<Packet> = Vec::new();
            let mut rest = Vec::new();
            for packet in self.wire.drain(..) {
                if packet.at <= now {
                    due.push(packet);
                } else {
                    rest.push(packet);
                }
            }
            self.wire = rest;
            due.sort_by_key(|p| (p.at, p.seq));
            for packet in due {
                self.deliver(packet);
            }
            if self.sim.poll_timeout().is_some_and(|at| at <= now) {
                self.sim.handle_timeout(now);
                self.pbx.handle_sim_actions(now, &mut self.sim);
            }
            if self.pbx.poll_timeout().is_some_and(|at| at <= now) {
                self.pbx.handle_timeout(now, &mut self.sim);
            }
            for phone in &mut self.phones {
                if phone.ua.poll_timeout().is_some_and(|at| at <= now) {
                    phone.ua.handle_timeout(now);
                }
                let mut mic = [0i16; 160];
                let mut speaker = Vec::new();
                for media in &mut phone.media {
                    while media.next_tick <= now {
                        if let Some(hz) = phone.tone_hz {
                            for sample in &mut mic {
                                let t = media.sent as f64 / 8000.0;
                                *sample = (8000.0 * (TAU * hz * t).sin()).round() as i16;
                                media.sent += 1;
                            }
                        }
                        media.session.tick(media.next_tick, &mic, &mut speaker);
                        media.next_tick += Duration::from_millis(20);
                        phone
                            .heard
                            .entry(media.call)
                            .or_default()
                            .extend_from_slice(&speaker);
                    }
                }
            }
            self.collect();
            true
        }

        fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&World) -> bool) {
            let end = self.now + limit;
            for _ in 0..2_000_000 {
                if done(self) {
                    return;
                }
                if self.now > end || !self.step() {
                    break;
                }
            }
            assert!(
                done(self),
                "not reached within {limit:?}\ntrace:\n{}\nqueue_log:\n{}\nlab events: {:#?}\nphone events: {:#?}",
                self.trace.join("\n"),
                self.log,
                self.pbx_events,
                self.phones.iter().map(|p| &p.events).collect::<Vec<_>>()
            );
        }

        fn run_for(&mut self, span: Duration) {
            let end = self.now + span;
            self.run_until(span + Duration::from_secs(1), |w| w.now >= end);
        }

        fn find(&self, phone: usize, f: impl Fn(&UaEvent) -> bool) -> Option<(Instant, UaEvent)> {
            self.phones[phone]
                .events
                .iter()
                .find(|(_, e)| f(e))
                .cloned()
        }

        fn saw(&self, phone: usize, f: impl Fn(&UaEvent) -> bool) -> bool {
            self.find(phone, f).is_some()
        }

        fn register(&mut self, phone: usize) {
            self.command(phone, Command::Register);
            self.run_until(Duration::from_secs(10), |w| {
                w.saw(phone, |e| matches!(e, UaEvent::Registered { .. }))
            });
        }

        /// Dial a code and wait until the lab has hung up; returns the call.
        fn dial_code(&mut self, phone: usize, code: &str) -> CallId {
            self.phones[phone].events.clear();
            self.command(
                phone,
                Command::Dial {
                    target: code.to_owned(),
                },
            );
            self.run_until(Duration::from_secs(40), |w| {
                w.saw(phone, |e| matches!(e, UaEvent::CallEnded { .. }))
            });
            let Some((_, UaEvent::CallEnded { call, by, .. })) =
                self.find(phone, |e| matches!(e, UaEvent::CallEnded { .. }))
            else {
                unreachable!("waited for it");
            };
            assert_eq!(by, EndedBy::Remote, "the lab hangs up a code call");
            // The BYE's 200 reaches the lab and the leg goes.
            self.run_until(Duration::from_secs(40), |w| w.pbx.leg_count() == 0);
            call
        }

        fn log_lines(&self, event: &str) -> Vec<&str> {
            self.log
                .lines()
                .filter(|l| l.split('|').nth(4) == Some(event))
                .collect()
        }

        fn incoming(&self, phone: usize) -> Option<(CallId, String, Option<String>)> {
            self.phones[phone].events.iter().find_map(|(_, e)| match e {
                UaEvent::IncomingCall { call, from, name } => {
                    Some((*call, from.clone(), name.clone()))
                }
                _ => None,
            })
        }
    }

    /// The strongest power of `frequency` in any 200 ms window (hop 50 ms).
    fn peak_power(samples: &[i16], frequency: f64) -> f64 {
        samples
            .windows(1600)
            .step_by(400)
            .map(|w| goertzel(w, 8000, frequency))
            .fold(0.0, f64::max)
    }

    #[test]
    fn a_phone_registers_with_digest_and_logs_in_with_the_code() {
        let mut w = World::new(Duration::from_secs(60), 0);
        let p = w.add_phone("101", 2, |_| {});
        w.register(p);
        assert!(
            w.trace.iter().any(|l| l.contains("SIP/2.0 401")),
            "REGISTER is challenged: {:#?}",
            w.trace
        );
        let bindings = w.pbx.registrar().lookup(w.now, "101");
        assert_eq!(bindings.len(), 1);
        assert_eq!(bindings[0].source, w.phones[p].addr);
        assert!(w.pbx_events.contains(&PbxEvent::Registered {
            user: "101".into(),
            contact: "sip:101@127.0.0.2:5060".into(),
        }));

        let call = w.dial_code(p, "*600");
        assert!(
            w.trace
                .iter()
                .any(|l| l.starts_with("127.0.0.1:5060") && l.contains("SIP/2.0 407")),
            "the INVITE is challenged first: {:#?}",
            w.trace
        );
        let (answered, _) = w
            .find(p, |e| matches!(e, UaEvent::Answered { .. }))
            .expect("answered");
        let (ended, _) = w
            .find(p, |e| matches!(e, UaEvent::CallEnded { .. }))
            .expect("ended");
        let confirmation = ended - answered;
        assert!(
            confirmation >= Duration::from_millis(1900)
                && confirmation <= Duration::from_millis(2200),
            "{confirmation:?}"
        );
        assert!(
            w.trace
                .iter()
                .any(|l| l
                    .starts_with("127.0.0.1:5060 -> 127.0.0.2:5060: BYE sip:101@127.0.0.2:5060"))
        );

        // The beeps: 425 Hz at full strength in some 200 ms window, nothing at 1 kHz.
        let heard = &w.phones[p].heard[&call];
        assert!(heard.len() >= 8000 * 18 / 10, "{} samples", heard.len());
        let beep = peak_power(heard, CONFIRMATION_HZ);
        let other = peak_power(heard, 1000.0);
        // A 5200-amplitude sine has power 5200²/2 = 13.5e6.
        assert!(beep > 10.0e6, "425 Hz power {beep:.0}");
        assert!(beep > 100.0 * other, "425 Hz {beep:.0} vs 1 kHz {other:.0}");
        // And the refusal tone is absent.
        assert!(beep > 20.0 * peak_power(heard, REFUSAL_HZ[0]));

        let added = w.log_lines("ADDMEMBER");
        assert_eq!(added.len(), 1, "{}", w.log);
        let fields: Vec<&str> = added[0].split('|').collect();
        assert_eq!(&fields[2..5], ["support", "101", "ADDMEMBER"]);
        assert!(
            fields[1].ends_with("@ringside"),
            "the INVITE's Call-ID: {}",
            fields[1]
        );
        assert!(w.pbx_events.contains(&PbxEvent::CodeDialled {
            user: "101".into(),
            queue: "support".into(),
            login: true,
            accepted: true,
        }));
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
        assert!(w.rtp_to_lab > 50, "the phone's RTP reached the lab's port");

        // Dialled again: the queue refuses (already a member) and the phone hears congestion.
        let again = w.dial_code(p, "*600");
        let heard = &w.phones[p].heard[&again];
        let refusal = peak_power(heard, REFUSAL_HZ[0]).min(peak_power(heard, REFUSAL_HZ[1]));
        assert!(refusal > 5.0e6, "480+620 Hz power {refusal:.0}");
        assert!(refusal > 20.0 * peak_power(heard, CONFIRMATION_HZ));
        assert_eq!(w.log_lines("ADDMEMBER").len(), 1);
        assert!(w.pbx_events.contains(&PbxEvent::CodeDialled {
            user: "101".into(),
            queue: "support".into(),
            login: true,
            accepted: false,
        }));
    }

    fn logged_in_agent(talk: Duration, configure: impl FnOnce(&mut UaConfig)) -> (World, usize) {
        let mut w = World::new(talk, 0);
        let p = w.add_phone("101", 2, configure);
        w.register(p);
        w.dial_code(p, "*600");
        assert_eq!(w.log_lines("ADDMEMBER").len(), 1);
        (w, p)
    }

    /// Let simulated callers in until the first one rings the phone, then stop arrivals.
    fn first_ring(w: &mut World, p: usize) -> (CallId, String, Option<String>) {
        w.phones[p].events.clear();
        let now = w.now;
        w.sim
            .set_callers_per_minute(now, "support", 600.0)
            .expect("queue");
        w.run_until(Duration::from_secs(30), |w| w.incoming(p).is_some());
        let now = w.now;
        w.sim
            .set_callers_per_minute(now, "support", 0.0)
            .expect("queue");
        w.incoming(p).expect("rung")
    }

    #[test]
    fn a_queue_call_rings_the_agent_with_the_caller_id_and_the_caller_hangs_up() {
        let (mut w, p) = logged_in_agent(Duration::from_secs(2), |_| {});
        let (call, from, name) = first_ring(&mut w, p);
        let number = from
            .strip_prefix("sip:")
            .and_then(|f| f.strip_suffix("@lab"))
            .expect("sip:NUMBER@lab");
        assert!(number.starts_with("+32255501"), "{from}");
        assert_eq!(name.as_deref(), Some(format!("support: {number}").as_str()));

        w.command(p, Command::Answer { call });
        w.run_until(Duration::from_secs(60), |w| {
            w.saw(p, |e| matches!(e, UaEvent::CallEnded { .. }))
        });
        let (_, ended) = w
            .find(p, |e| matches!(e, UaEvent::CallEnded { .. }))
            .expect("ended");
        assert!(
            matches!(
                ended,
                UaEvent::CallEnded {
                    by: EndedBy::Remote,
                    ..
                }
            ),
            "the virtual caller hung up: {ended:?}"
        );
        w.run_until(Duration::from_secs(40), |w| w.pbx.leg_count() == 0);

        // The caller's voice: both pitches, each at full strength in its turns.
        let heard = &w.phones[p].heard[&call];
        assert!(heard.len() >= 8000, "{} samples", heard.len());
        let low = peak_power(heard, CALLER_VOICE_HZ[0]);
        let high = peak_power(heard, CALLER_VOICE_HZ[1]);
        assert!(
            low > 10.0e6 && high > 10.0e6,
            "400 Hz {low:.0}, 800 Hz {high:.0}"
        );
        assert!(low > 100.0 * peak_power(heard, 1000.0));

        let connect = w.log_lines("CONNECT");
        assert_eq!(connect.len(), 1, "{}", w.log);
        let fields: Vec<&str> = connect[0].split('|').collect();
        assert_eq!(&fields[2..4], ["support", "101"]);
        assert!(
            fields
                .get(6)
                .is_some_and(|leg| leg.ends_with("@ringside-lab")),
            "the agent leg id is the lab's INVITE Call-ID: {}",
            connect[0]
        );
        let complete = w.log_lines("COMPLETECALLER");
        assert_eq!(complete.len(), 1, "{}", w.log);
        assert!(complete[0].contains("|support|101|COMPLETECALLER|"));
        assert!(w.pbx_events.iter().any(|e| matches!(e,
            PbxEvent::AgentAnswered { agent, .. } if agent == "101")));
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
    }

    #[test]
    fn the_agent_hangs_up_a_queue_call_then_logs_out() {
        let (mut w, p) = logged_in_agent(Duration::from_secs(3600), |_| {});
        let (call, _, _) = first_ring(&mut w, p);
        w.command(p, Command::Answer { call });
        w.run_for(Duration::from_millis(1500));
        assert_eq!(w.log_lines("CONNECT").len(), 1, "{}", w.log);
        w.command(p, Command::Hangup { call });
        w.run_until(Duration::from_secs(10), |w| {
            !w.log_lines("COMPLETEAGENT").is_empty()
        });
        let complete = w.log_lines("COMPLETEAGENT");
        assert!(
            complete[0].contains("|support|101|COMPLETEAGENT|"),
            "{}",
            w.log
        );
        // hold time | talk time (whole seconds) | original position
        let talk: u64 = complete[0]
            .split('|')
            .nth(6)
            .and_then(|t| t.parse().ok())
            .expect("talk time");
        assert!((1..=2).contains(&talk), "{}", complete[0]);
        assert!(w.pbx_events.iter().any(|e| matches!(e,
            PbxEvent::CallEnded { agent, by_agent: true, .. } if agent == "101")));
        assert_eq!(w.pbx.leg_count(), 0);

        w.dial_code(p, "*601");
        let removed = w.log_lines("REMOVEMEMBER");
        assert_eq!(removed.len(), 1, "{}", w.log);
        assert!(removed[0].contains("|support|101|REMOVEMEMBER|"));
        assert!(w.pbx_events.contains(&PbxEvent::CodeDialled {
            user: "101".into(),
            queue: "support".into(),
            login: false,
            accepted: true,
        }));
    }

    #[test]
    fn an_unanswered_ring_is_cancelled_and_a_declined_one_rejected() {
        let (mut w, p) = logged_in_agent(Duration::from_secs(60), |_| {});
        let (_, _, _) = first_ring(&mut w, p);
        // Nobody answers: the queue's 15 s ring timeout sends StopRinging, the lab CANCELs.
        w.run_until(Duration::from_secs(30), |w| {
            w.saw(p, |e| matches!(e, UaEvent::CallEnded { .. }))
        });
        assert!(w
            .trace
            .iter()
            .any(|l| l.contains(": CANCEL sip:101@127.0.0.2:5060")));
        assert!(w.saw(p, |e| matches!(
            e,
            UaEvent::CallEnded {
                code: Some(487),
                ..
            }
        )));
        let no_answer = w.log_lines("RINGNOANSWER");
        assert_eq!(no_answer.len(), 1, "{}", w.log);
        assert!(
            no_answer[0].ends_with("|101|RINGNOANSWER|15000"),
            "{}",
            no_answer[0]
        );
        w.run_until(Duration::from_secs(40), |w| w.pbx.leg_count() == 0);

        // A phone that declines (486): the queue hears of it at once.
        let (mut w, p) =
            logged_in_agent(Duration::from_secs(60), |c| c.reject_incoming = Some(486));
        let before = w.pbx_events.len();
        let now = w.now;
        w.sim
            .set_callers_per_minute(now, "support", 600.0)
            .expect("queue");
        w.run_until(Duration::from_secs(30), |w| {
            w.pbx_events[before..]
                .iter()
                .any(|e| matches!(e, PbxEvent::AgentRejected { status: 486, .. }))
        });
        let now = w.now;
        w.sim
            .set_callers_per_minute(now, "support", 0.0)
            .expect("queue");
        assert!(w.trace.iter().any(|l| l.contains("SIP/2.0 486")));
        assert!(w.saw(p, |e| matches!(e, UaEvent::Notice { .. })));
        assert!(!w.log_lines("RINGNOANSWER").is_empty(), "{}", w.log);
        w.run_until(Duration::from_secs(40), |w| w.pbx.leg_count() == 0);
    }

    #[test]
    fn a_waiting_caller_rings_the_agent_once_the_code_call_is_over() {
        let mut w = World::new(Duration::from_secs(60), 0);
        let p = w.add_phone("101", 2, |_| {});
        w.register(p);
        let now = w.now;
        w.sim
            .set_callers_per_minute(now, "support", 600.0)
            .expect("queue");
        w.run_for(Duration::from_secs(2));
        w.sim
            .set_callers_per_minute(w.now, "support", 0.0)
            .expect("queue");
        assert!(!w.log_lines("ENTERQUEUE").is_empty(), "{}", w.log);
        w.phones[p].events.clear();
        w.command(
            p,
            Command::Dial {
                target: "*600".to_owned(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(p, |e| matches!(e, UaEvent::CallEnded { .. }))
        });
        let (hung_up, _) = w
            .find(p, |e| matches!(e, UaEvent::CallEnded { .. }))
            .expect("code call ended");
        assert!(
            w.incoming(p).is_none(),
            "no queue call during the code call"
        );
        w.run_until(Duration::from_secs(5), |w| w.incoming(p).is_some());
        let (rung, _) = w
            .find(p, |e| matches!(e, UaEvent::IncomingCall { .. }))
            .expect("rung");
        assert!(rung >= hung_up && rung - hung_up < Duration::from_millis(100));
    }

    #[test]
    fn an_agent_without_a_registration_is_rejected_at_once() {
        let mut w = World::new(Duration::from_secs(60), 0);
        let now = w.now;
        w.sim
            .real_agent_login(now, "support", "102", "MANAGER")
            .expect("login");
        w.sim
            .set_callers_per_minute(now, "support", 600.0)
            .expect("queue");
        w.run_until(Duration::from_secs(30), |w| {
            w.pbx_events.iter().any(|e| {
                matches!(e, PbxEvent::AgentRejected { agent, status: 480, .. } if agent == "102")
            })
        });
        assert!(
            !w.trace.iter().any(|l| l.contains("INVITE")),
            "no INVITE without a binding: {:#?}",
            w.trace
        );
        assert_eq!(w.pbx.leg_count(), 0);
    }

    #[test]
    fn calls_the_lab_does_not_carry_are_refused_with_the_right_status() {
        let mut config = lab_config(Duration::from_secs(60));
        // support takes nobody (full at 0), sales nobody while no agent is in.
        config.queues[0].queue.max_len = Some(0);
        config.queues[1].queue.join_empty = false;
        let mut w = World::with_config(config, 0);
        let p = w.add_phone("101", 2, |_| {});
        w.register(p);
        for (number, status) in [("999", 404), ("102", 480), ("600", 486), ("700", 480)] {
            w.phones[p].events.clear();
            w.command(
                p,
                Command::Dial {
                    target: number.to_owned(),
                },
            );
            w.run_until(Duration::from_secs(40), |w| {
                w.saw(p, |e| matches!(e, UaEvent::CallEnded { .. }))
            });
            assert!(
                w.saw(
                    p,
                    |e| matches!(e, UaEvent::CallEnded { code: Some(c), .. } if *c == status)
                ),
                "{number}: {:?}",
                w.phones[p].events
            );
            assert!(w.pbx_events.contains(&PbxEvent::Refused {
                user: "101".into(),
                number: number.into(),
                status,
            }));
        }
        assert!(w
            .trace
            .iter()
            .any(|l| l.contains("SIP/2.0 480 lab: that phone is not registered")));
        assert!(w
            .trace
            .iter()
            .any(|l| l.contains("SIP/2.0 480 lab: nobody is logged in to queue sales")));
        assert_eq!(w.pbx.leg_count(), 0);
        assert_eq!(w.log_lines("ADDMEMBER").len(), 0);
        assert_eq!(w.log_lines("FULL").len(), 1, "{}", w.log);
        assert_eq!(w.log_lines("JOINEMPTY").len(), 1, "{}", w.log);
        assert!(w.log_lines("ENTERQUEUE").is_empty());
    }

    /// Raw requests straight into the lab; returns the responses' first lines.
    fn answers(w: &mut World, request: &str) -> Vec<String> {
        let from = SocketAddr::from(([127, 0, 0, 9], 5060));
        let before = w.trace.len();
        let now = w.now;
        w.pbx
            .handle_datagram(now, &mut w.sim, from, request.as_bytes());
        w.collect();
        // The transaction layer may send 100 Trying first: keep the final answers.
        w.trace[before..]
            .iter()
            .filter(|l| !l.contains("SIP/2.0 100 "))
            .cloned()
            .collect()
    }

    #[test]
    fn bad_and_foreign_requests_get_the_right_4xx() {
        let mut w = World::new(Duration::from_secs(60), 0);
        let head = |method: &str, uri: &str, extra: &str| {
            format!(
                "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.9:5060;branch=z9hG4bK{method}{}\r\n\
                 Max-Forwards: 70\r\nFrom: <sip:x@127.0.0.9>;tag=1\r\nTo: <{uri}>\r\n\
                 Call-ID: raw-{method}-{}\r\nCSeq: 1 {method}\r\nContact: <sip:x@127.0.0.9:5060>\r\n{extra}Content-Length: 0\r\n\r\n",
                extra.len(),
                extra.len(),
            )
        };
        let options = answers(&mut w, &head("OPTIONS", "sip:127.0.0.1", ""));
        assert!(options[0].ends_with("SIP/2.0 200 OK"), "{options:?}");
        let invite = answers(&mut w, &head("INVITE", "sip:*600@127.0.0.1", ""));
        assert!(
            invite[0].ends_with("SIP/2.0 407 Proxy Authentication Required"),
            "{invite:?}"
        );
        let require = answers(
            &mut w,
            &head("INVITE", "sip:*600@127.0.0.1", "Require: 100rel\r\n"),
        );
        assert!(
            require[0].ends_with("SIP/2.0 420 Bad Extension"),
            "{require:?}"
        );
        let message = answers(&mut w, &head("MESSAGE", "sip:101@127.0.0.1", ""));
        assert!(
            message[0].ends_with("SIP/2.0 405 Method Not Allowed"),
            "{message:?}"
        );
        let bye = answers(&mut w, &head("BYE", "sip:101@127.0.0.1", ""));
        assert!(
            bye[0].ends_with("SIP/2.0 481 Call/Transaction Does Not Exist"),
            "{bye:?}"
        );
        let register = answers(&mut w, &head("REGISTER", "sip:127.0.0.1", ""));
        assert!(
            register[0].ends_with("SIP/2.0 401 Unauthorized"),
            "{register:?}"
        );
        // Garbage and truncated messages neither panic nor leave state behind.
        for junk in [
            "",
            "\r\n\r\n",
            "INVITE",
            "SIP/2.0 200 OK\r\n\r\n",
            "\u{0}\u{ff}garbage",
        ] {
            answers(&mut w, junk);
        }
        assert_eq!(w.pbx.leg_count(), 0);
    }

    #[test]
    fn codes_and_queue_calls_survive_a_lossy_network() {
        let mut w = World::new(Duration::from_secs(3), 15);
        let p = w.add_phone("101", 2, |c| {
            c.auto_answer = Some(Duration::from_millis(500))
        });
        w.register(p);
        w.dial_code(p, "*600");
        // Retransmitted INVITEs are absorbed by the transaction layer: one login only.
        assert_eq!(w.log_lines("ADDMEMBER").len(), 1, "{}", w.log);
        let now = w.now;
        w.sim
            .set_callers_per_minute(now, "support", 600.0)
            .expect("queue");
        w.run_until(Duration::from_secs(120), |w| {
            !w.log_lines("COMPLETECALLER").is_empty() || !w.log_lines("COMPLETEAGENT").is_empty()
        });
        let now = w.now;
        w.sim
            .set_callers_per_minute(now, "support", 0.0)
            .expect("queue");
        w.run_until(Duration::from_secs(120), |w| w.pbx.leg_count() == 0);
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
    }

    #[test]
    fn caller_voice_alternates_its_two_pitches() {
        let mut voice = CallerVoice::new(8000);
        let mut first = vec![0i16; 2000]; // 250 ms
        let mut second = vec![0i16; 2000];
        voice.fill(&mut first);
        voice.fill(&mut second);
        let level = CALLER_VOICE_LEVEL * CALLER_VOICE_LEVEL / 2.0;
        assert!(goertzel(&first, 8000, 400.0) > 0.9 * level);
        assert!(goertzel(&first, 8000, 800.0) < 0.01 * level);
        assert!(goertzel(&second, 8000, 800.0) > 0.9 * level);
        assert!(goertzel(&second, 8000, 400.0) < 0.01 * level);
    }

    #[test]
    fn queue_log_ids_cannot_break_a_line() {
        assert_eq!(queue_log_id("a|b\nc\r"), "a_b_c_");
        assert_eq!(queue_log_id(&"x".repeat(1000)).len(), MAX_LOG_ID_CHARS);
        assert_eq!(caller_user("+3225550137"), "+3225550137");
        assert_eq!(caller_user("anonymous"), "anonymous");
        assert_eq!(caller_user("<>;@"), "anonymous");
    }

    // -- transfers and calls between phones ---------------------------------------------------

    const AGENT_ADDR: [u8; 4] = [127, 0, 0, 2];

    /// 101 logged in to `support`, and 102 registered, answering by itself after `answer`.
    fn agent_and_colleague(talk: Duration, answer: Duration) -> (World, usize, usize) {
        let (mut w, agent) = logged_in_agent(talk, |_| {});
        let colleague = w.add_phone("102", 3, |c| c.auto_answer = Some(answer));
        w.register(colleague);
        (w, agent, colleague)
    }

    /// The first queue caller rings `agent`, who answers and talks for `talk`.
    fn answered_queue_call(w: &mut World, agent: usize, talk: Duration) -> CallId {
        let (call, _, _) = first_ring(w, agent);
        w.command(agent, Command::Answer { call });
        w.run_for(talk);
        assert_eq!(w.log_lines("CONNECT").len(), 1, "{}", w.log);
        call
    }

    /// Whole SIP messages sent by `from` whose text starts with `start`.
    fn sent_by(w: &World, from: [u8; 4], start: &str) -> Vec<String> {
        w.sip
            .iter()
            .filter(|(f, _, text)| f.ip() == IpAddr::from(from) && text.starts_with(start))
            .map(|(_, _, text)| text.clone())
            .collect()
    }

    /// Where in the trace the first line containing `needle` is.
    fn trace_index(w: &World, needle: &str) -> usize {
        w.trace
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle:?} not in the trace:\n{}", w.trace.join("\n")))
    }

    fn body(message: &str) -> &str {
        message.split_once("\r\n\r\n").map_or("", |(_, body)| body)
    }

    /// The calls a phone was offered, in order.
    fn incoming_calls(w: &World, phone: usize) -> Vec<(CallId, String, Option<String>)> {
        w.phones[phone]
            .events
            .iter()
            .filter_map(|(_, e)| match e {
                UaEvent::IncomingCall { call, from, name } => {
                    Some((*call, from.clone(), name.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn transfer_done(w: &World, phone: usize) -> Option<bool> {
        w.phones[phone].events.iter().find_map(|(_, e)| match e {
            UaEvent::TransferDone { success, .. } => Some(*success),
            _ => None,
        })
    }

    fn transfer_done_at(w: &World, phone: usize) -> Instant {
        w.phones[phone]
            .events
            .iter()
            .find_map(|(at, e)| matches!(e, UaEvent::TransferDone { .. }).then_some(*at))
            .expect("a TransferDone")
    }

    /// The AMI stream the book published, and the report the AMI deriver reads from it.
    fn ami_report(w: &World) -> (Vec<AmiMessage>, Vec<ReportEvent>) {
        let mut framer = AmiFramer::from_client();
        framer.push(&w.ami);
        let mut messages = Vec::new();
        while let Some(item) = framer.next_item().expect("well framed") {
            if let AmiItem::Message(message) = item {
                messages.push(message);
            }
        }
        let mut deriver = ReportDeriver::new();
        let mut reports = Vec::new();
        for message in &messages {
            deriver
                .handle_message(EPOCH, message)
                .expect("queue events parse");
            while let Some(report) = deriver.poll_event() {
                reports.push(report);
            }
        }
        (messages, reports)
    }

    #[test]
    fn refer_notifies_carry_a_sipfrag_in_the_transferors_dialog() {
        let invite = "INVITE sip:101@127.0.0.2:5060 SIP/2.0\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinvite;rport\r\n\
             Max-Forwards: 70\r\n\
             From: \"support: +3225550137\" <sip:+3225550137@lab>;tag=labtag\r\n\
             To: <sip:101@127.0.0.1>\r\n\
             Call-ID: leg-1@ringside-lab\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:lab@127.0.0.1:5060>\r\n\
             Content-Length: 0\r\n\r\n";
        let ok = "SIP/2.0 200 OK\r\n\
             Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKinvite;rport=5060\r\n\
             From: \"support: +3225550137\" <sip:+3225550137@lab>;tag=labtag\r\n\
             To: <sip:101@127.0.0.1>;tag=phonetag\r\n\
             Call-ID: leg-1@ringside-lab\r\n\
             CSeq: 1 INVITE\r\n\
             Contact: <sip:101@127.0.0.2:5060>\r\n\
             Content-Length: 0\r\n\r\n";
        let Ok(Message::Request(invite)) = msg::parse(invite.as_bytes()) else {
            panic!("the INVITE parses");
        };
        let Ok(Message::Response(ok)) = msg::parse(ok.as_bytes()) else {
            panic!("the 200 parses");
        };
        let mut dialog = Dialog::from_uac(&invite, &ok).expect("a dialog");
        let via = |branch: &str| {
            let mut via = Via::new("UDP", "127.0.0.1", Some(5060), branch);
            via.set_param("rport", None);
            via
        };
        let contact = "<sip:lab@127.0.0.1:5060>";
        let head = |branch: &str, seq: u32| {
            format!(
                "NOTIFY sip:101@127.0.0.2:5060 SIP/2.0\r\n\
                 Via: SIP/2.0/UDP 127.0.0.1:5060;branch={branch};rport\r\n\
                 Max-Forwards: 70\r\n\
                 From: \"support: +3225550137\" <sip:+3225550137@lab>;tag=labtag\r\n\
                 To: <sip:101@127.0.0.1>;tag=phonetag\r\n\
                 Call-ID: leg-1@ringside-lab\r\n\
                 CSeq: {seq} NOTIFY\r\n\
                 Contact: <sip:lab@127.0.0.1:5060>\r\n\
                 Event: refer;id=7\r\n"
            )
        };
        let trying = refer_notify(&mut dialog, via("z9hG4bKn1"), contact, 7, 100);
        assert_eq!(
            String::from_utf8_lossy(&trying.to_bytes()),
            format!(
                "{}Subscription-State: active;expires=60\r\n\
                 Content-Type: message/sipfrag;version=2.0\r\n\
                 Content-Length: 20\r\n\r\n\
                 SIP/2.0 100 Trying\r\n",
                head("z9hG4bKn1", 2)
            )
        );
        let done = refer_notify(&mut dialog, via("z9hG4bKn2"), contact, 7, 200);
        assert_eq!(
            String::from_utf8_lossy(&done.to_bytes()),
            format!(
                "{}Subscription-State: terminated;reason=noresource\r\n\
                 Content-Type: message/sipfrag;version=2.0\r\n\
                 Content-Length: 16\r\n\r\n\
                 SIP/2.0 200 OK\r\n",
                head("z9hG4bKn2", 3)
            )
        );
        let failed = refer_notify(&mut dialog, via("z9hG4bKn3"), contact, 7, 404);
        assert_eq!(failed.body, b"SIP/2.0 404 Not Found\r\n");
        assert_eq!(
            failed.header("Subscription-State"),
            Some("terminated;reason=noresource")
        );
        // What the UA side reads back out of it.
        assert_eq!(
            msg::parse_sipfrag_status(&failed.body),
            Some((404, "Not Found".to_owned()))
        );
    }

    #[test]
    fn refer_to_targets_are_read_like_a_pbx_dials_them() {
        let target = |text: &str| {
            let uri = NameAddr::parse(text).expect("a name-addr").uri;
            (transfer_number(&uri), uri_replaces(&uri).map(|r| r.is_ok()))
        };
        assert_eq!(target("<sip:102@lab>"), (Some("102".into()), None));
        assert_eq!(
            target("<sip:+32-2-555-0100@127.0.0.1;user=phone>"),
            (Some("+3225550100".into()), None)
        );
        assert_eq!(
            target("<tel:+32.2.555.0100;phone-context=+32>"),
            (Some("+3225550100".into()), None)
        );
        assert_eq!(target("<sip:bot1@lab>"), (Some("bot1".into()), None));
        assert_eq!(target("<sip:lab.example>"), (None, None));
        assert_eq!(
            target("<sip:102@127.0.0.1:5060?Replaces=abc%40ringside%3Bto-tag%3D1%3Bfrom-tag%3D2>"),
            (Some("102".into()), Some(true))
        );
        assert_eq!(
            target("<sip:102@127.0.0.1?Replaces=abc>"),
            (Some("102".into()), Some(false))
        );
        assert!(is_e164("+3225550100"));
        assert!(!is_e164("3225550100"));
        assert!(!is_e164("+32"));
        assert!(!is_e164("+32255501000000000"));
    }

    #[test]
    fn an_agent_blind_transfers_a_queue_call_to_a_registered_phone() {
        let (mut w, agent, colleague) =
            agent_and_colleague(Duration::from_secs(20), Duration::from_millis(500));
        let call = answered_queue_call(&mut w, agent, Duration::from_millis(2300));
        w.command(
            agent,
            Command::Transfer {
                call,
                target: "102".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            transfer_done(w, agent).is_some()
                && w.saw(colleague, |e| matches!(e, UaEvent::Answered { .. }))
        });
        assert_eq!(transfer_done(&w, agent), Some(true));

        // 202, NOTIFY 100 Trying, the INVITE to 102, its 200, NOTIFY 200 OK: in that order.
        let refer = trace_index(&w, "127.0.0.2:5060 -> 127.0.0.1:5060: REFER");
        let accepted = trace_index(&w, "-> 127.0.0.2:5060: SIP/2.0 202 Accepted");
        let to_colleague = trace_index(&w, "-> 127.0.0.3:5060: INVITE sip:102@127.0.0.3:5060");
        let answered = trace_index(&w, "127.0.0.3:5060 -> 127.0.0.1:5060: SIP/2.0 200 OK");
        let notifies = sent_by(&w, LAB_IP, "NOTIFY sip:101@");
        assert_eq!(notifies.len(), 2, "{notifies:#?}");
        assert_eq!(body(&notifies[0]), "SIP/2.0 100 Trying\r\n");
        assert!(notifies[0].contains("\r\nSubscription-State: active;expires=60\r\n"));
        assert!(notifies[0].contains("\r\nContent-Type: message/sipfrag;version=2.0\r\n"));
        assert!(notifies[0].contains("\r\nEvent: refer;id="));
        assert_eq!(body(&notifies[1]), "SIP/2.0 200 OK\r\n");
        assert!(notifies[1].contains("\r\nSubscription-State: terminated;reason=noresource\r\n"));
        let first_notify = w
            .trace
            .iter()
            .position(|l| l.contains("-> 127.0.0.2:5060: NOTIFY"))
            .expect("NOTIFY");
        let last_notify = w
            .trace
            .iter()
            .rposition(|l| l.contains("-> 127.0.0.2:5060: NOTIFY"))
            .expect("NOTIFY");
        assert!(
            refer < accepted && accepted < first_notify,
            "{:#?}",
            w.trace
        );
        assert!(
            first_notify < to_colleague && to_colleague < answered,
            "{:#?}",
            w.trace
        );
        assert!(answered < last_notify, "{:#?}", w.trace);

        // 102 is offered the caller (its number, the queue, who sent it), not the agent.
        let offered = incoming_calls(&w, colleague);
        assert_eq!(offered.len(), 1);
        let (transferred, from, name) = offered[0].clone();
        let number = from
            .strip_prefix("sip:")
            .and_then(|f| f.strip_suffix("@lab"))
            .expect("sip:NUMBER@lab");
        assert!(number.starts_with("+32255501"), "{from}");
        assert_eq!(name.as_deref(), Some(format!("support: {number}").as_str()));
        let invite = sent_by(&w, LAB_IP, "INVITE sip:102@");
        assert!(
            invite[0].contains("\r\nReferred-By: <sip:101@lab>\r\n"),
            "{}",
            invite[0]
        );

        // The agent's leg ends (the UA hangs up on the final NOTIFY); 102 talks to the caller.
        w.run_for(Duration::from_secs(3));
        assert!(w.saw(
            agent,
            |e| matches!(e, UaEvent::CallEnded { call: c, .. } if *c == call)
        ));
        let heard = &w.phones[colleague].heard[&transferred];
        let low = peak_power(heard, CALLER_VOICE_HZ[0]);
        let high = peak_power(heard, CALLER_VOICE_HZ[1]);
        assert!(
            low > 10.0e6 && high > 10.0e6,
            "400 Hz {low:.0}, 800 Hz {high:.0}"
        );

        // queue_log: BLINDTRANSFER with extension, context, hold time, talk time, position.
        let lines = w.log_lines("BLINDTRANSFER");
        assert_eq!(lines.len(), 1, "{}", w.log);
        let fields: Vec<&str> = lines[0].split('|').collect();
        assert_eq!(
            &fields[2..],
            [
                "support",
                "101",
                "BLINDTRANSFER",
                "102",
                "lab",
                "0",
                "2",
                "1"
            ],
            "{}",
            lines[0]
        );
        let connect = w.log_lines("CONNECT");
        assert_eq!(connect[0].split('|').nth(1), fields.get(1).copied());
        assert!(
            w.log_lines("COMPLETEAGENT").is_empty() && w.log_lines("COMPLETECALLER").is_empty()
        );
        assert!(w.pbx_events.contains(&PbxEvent::Transferred {
            call_id: fields[1].to_owned(),
            agent: "101".into(),
            target: "102".into(),
            attended: false,
        }));

        // AMI: BlindTransfer, then AgentComplete Reason transfer; the deriver says blind-transfer.
        let (messages, reports) = ami_report(&w);
        let blind = messages
            .iter()
            .find(|m| m.get("Event") == Some("BlindTransfer"))
            .expect("BlindTransfer");
        assert_eq!(blind.get("Extension"), Some("102"));
        assert_eq!(blind.get("Context"), Some("lab"));
        assert_eq!(blind.get("TransfereeUniqueid"), Some(fields[1]));
        assert!(messages.iter().any(
            |m| m.get("Event") == Some("AgentComplete") && m.get("Reason") == Some("transfer")
        ));
        let transfer = reports
            .iter()
            .find(|r| r.kind == ReportKind::BlindTransfer)
            .unwrap_or_else(|| panic!("no blind-transfer in {reports:#?}"));
        assert_eq!(transfer.agent.as_deref(), Some("101"));
        assert_eq!(transfer.detail.as_deref(), Some("102@lab"));
        assert_eq!(transfer.talk_s, Some(2));

        // The caller talks the mean talk time with 102, then hangs up; nothing is left.
        w.run_until(Duration::from_secs(30), |w| {
            w.saw(colleague, |e| matches!(e, UaEvent::CallEnded { .. })) && w.pbx.leg_count() == 0
        });
        assert!(w.saw(colleague, |e| matches!(
            e,
            UaEvent::CallEnded {
                by: EndedBy::Remote,
                ..
            }
        )));
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
    }

    #[test]
    fn a_transfer_the_lab_cannot_carry_out_leaves_the_caller_with_the_agent() {
        let (mut w, agent, _colleague) =
            agent_and_colleague(Duration::from_secs(3600), Duration::from_millis(500));
        let call = answered_queue_call(&mut w, agent, Duration::from_secs(1));
        // 999 is nobody, 103 has no registration, 101 is the agent itself, *600 is a code.
        for (target, status, reason) in [
            ("999", 404, "Not Found"),
            ("103", 480, "Temporarily Unavailable"),
            ("101", 482, "Loop Detected"),
            ("*600", 404, "Not Found"),
        ] {
            w.phones[agent].events.clear();
            let before = sent_by(&w, LAB_IP, "NOTIFY sip:101@").len();
            w.command(
                agent,
                Command::Transfer {
                    call,
                    target: target.into(),
                },
            );
            w.run_until(Duration::from_secs(5), |w| {
                transfer_done(w, agent).is_some()
            });
            assert_eq!(transfer_done(&w, agent), Some(false), "{target}");
            let notifies = sent_by(&w, LAB_IP, "NOTIFY sip:101@");
            assert_eq!(notifies.len(), before + 2, "{target}");
            assert_eq!(body(&notifies[before]), "SIP/2.0 100 Trying\r\n");
            assert_eq!(
                body(&notifies[before + 1]),
                format!("SIP/2.0 {status} {reason}\r\n"),
                "{target}"
            );
            assert!(notifies[before + 1].contains("Subscription-State: terminated"));
            assert!(w.pbx_events.iter().any(|e| matches!(e,
                PbxEvent::TransferFailed { target: t, status: s, .. } if t == target && *s == status)));
        }
        // The call is still on: the agent hears the caller and hangs up as usual.
        let before = w.phones[agent].heard[&call].len();
        w.run_for(Duration::from_secs(1));
        let heard = &w.phones[agent].heard[&call][before..];
        assert!(
            peak_power(heard, CALLER_VOICE_HZ[0]).max(peak_power(heard, CALLER_VOICE_HZ[1]))
                > 10.0e6
        );
        assert!(w.log_lines("BLINDTRANSFER").is_empty(), "{}", w.log);
        w.command(agent, Command::Hangup { call });
        w.run_until(Duration::from_secs(10), |w| {
            !w.log_lines("COMPLETEAGENT").is_empty() && w.pbx.leg_count() == 0
        });
        assert!(
            !w.trace.iter().any(|l| l.contains("INVITE sip:103")),
            "no INVITE without a registration"
        );
    }

    #[test]
    fn a_transfer_outside_the_lab_completes_at_once_and_the_lab_hangs_up_a_lingering_agent() {
        let (mut w, agent) = logged_in_agent(Duration::from_secs(3600), |_| {});
        let call = answered_queue_call(&mut w, agent, Duration::from_secs(3));
        // This agent's phone never sends its BYE: the lab ends the leg after the grace time.
        w.blocked
            .push((SocketAddr::from((AGENT_ADDR, 5060)), "BYE ".to_owned()));
        let lab_byes = |w: &World| sent_by(w, LAB_IP, "BYE sip:101@").len();
        let byes_before = lab_byes(&w);
        w.command(
            agent,
            Command::Transfer {
                call,
                target: "+32 2 555 01 99".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| lab_byes(w) > byes_before);
        assert_eq!(transfer_done(&w, agent), Some(true));
        let notifies = sent_by(&w, LAB_IP, "NOTIFY sip:101@");
        assert_eq!(
            notifies.iter().map(|n| body(n)).collect::<Vec<_>>(),
            ["SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n"]
        );
        let final_notify = w
            .sip
            .iter()
            .position(|(_, _, text)| text == &notifies[1])
            .expect("sent");
        let bye = w
            .sip
            .iter()
            .rposition(|(from, _, text)| {
                from.ip() == IpAddr::from(LAB_IP) && text.starts_with("BYE sip:101@")
            })
            .expect("the lab's BYE");
        assert!(final_notify < bye);
        // The UA heard the NOTIFY 1 ms (the wire) after the lab sent it.
        let (notified_at, bye_at) = (transfer_done_at(&w, agent), w.now);
        assert!(
            bye_at - notified_at + Duration::from_millis(1) >= TRANSFEROR_GRACE
                && bye_at - notified_at < TRANSFEROR_GRACE + Duration::from_millis(100),
            "{:?}",
            bye_at - notified_at
        );
        let lines = w.log_lines("BLINDTRANSFER");
        assert_eq!(lines.len(), 1, "{}", w.log);
        assert!(
            lines[0].ends_with("|support|101|BLINDTRANSFER|+3225550199|lab|0|3|1"),
            "{}",
            lines[0]
        );
        w.run_until(Duration::from_secs(40), |w| w.pbx.leg_count() == 0);
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());

        // The simulation's own transfer target (where bots send callers) takes one the same
        // way.
        w.blocked.clear();
        let call = answered_queue_call_again(&mut w, agent);
        w.command(
            agent,
            Command::Transfer {
                call,
                target: "1002".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            w.log_lines("BLINDTRANSFER").len() == 2
        });
        assert!(w.log_lines("BLINDTRANSFER")[1].contains("|101|BLINDTRANSFER|1002|lab|"));
        assert_eq!(
            w.pbx_events
                .iter()
                .filter(|e| matches!(e, PbxEvent::Transferred { .. }))
                .count(),
            2
        );
    }

    #[test]
    fn a_bot_takes_a_transferred_caller_at_once() {
        // One bot, logged in to `sales` only, so the support caller rings the real agent.
        let mut config = lab_config(Duration::from_secs(3600));
        config.simulation.bots = 1;
        config.simulation.bot_queues = Some(vec!["sales".to_owned()]);
        let mut w = World::with_config(config, 0);
        let agent = w.add_phone("101", 2, |_| {});
        w.register(agent);
        w.dial_code(agent, "*600");
        let call = answered_queue_call(&mut w, agent, Duration::from_secs(1));
        w.command(
            agent,
            Command::Transfer {
                call,
                target: "bot1".into(),
            },
        );
        w.run_until(Duration::from_secs(5), |w| {
            transfer_done(w, agent).is_some()
        });
        assert_eq!(transfer_done(&w, agent), Some(true));
        let lines = w.log_lines("BLINDTRANSFER");
        assert_eq!(lines.len(), 1, "{}", w.log);
        assert!(
            lines[0].ends_with("|support|101|BLINDTRANSFER|bot1|lab|0|1|1"),
            "{}",
            lines[0]
        );
        assert_eq!(
            sent_by(&w, LAB_IP, "INVITE sip:bot1").len(),
            0,
            "a bot has no SIP leg"
        );
        w.run_until(Duration::from_secs(10), |w| w.pbx.leg_count() == 0);
    }

    /// A later queue call for an agent that already took one.
    fn answered_queue_call_again(w: &mut World, agent: usize) -> CallId {
        let connects = w.log_lines("CONNECT").len();
        let (call, _, _) = first_ring(w, agent);
        w.command(agent, Command::Answer { call });
        w.run_until(Duration::from_secs(5), |w| {
            w.log_lines("CONNECT").len() > connects
        });
        // The phone's call is up once the lab's ACK is in.
        w.run_for(Duration::from_secs(1));
        call
    }

    #[test]
    fn an_agent_that_hangs_up_after_its_refer_has_handed_the_caller_over() {
        let (mut w, agent, colleague) =
            agent_and_colleague(Duration::from_secs(10), Duration::from_secs(3));
        let call = answered_queue_call(&mut w, agent, Duration::from_secs(1));
        w.command(
            agent,
            Command::Transfer {
                call,
                target: "102".into(),
            },
        );
        w.run_until(Duration::from_secs(5), |w| {
            w.saw(colleague, |e| matches!(e, UaEvent::IncomingCall { .. }))
        });
        w.command(agent, Command::Hangup { call });
        w.run_until(Duration::from_secs(5), |w| {
            !w.log_lines("BLINDTRANSFER").is_empty()
        });
        assert!(
            !w.saw(colleague, |e| matches!(e, UaEvent::Answered { .. })),
            "logged when the agent left, before 102 answered"
        );
        assert!(w.log_lines("COMPLETEAGENT").is_empty(), "{}", w.log);
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(colleague, |e| matches!(e, UaEvent::Answered { .. }))
        });
        w.run_for(Duration::from_secs(2));
        let (transferred, _, _) = incoming_calls(&w, colleague)[0].clone();
        let heard = &w.phones[colleague].heard[&transferred];
        assert!(peak_power(heard, CALLER_VOICE_HZ[0]) > 10.0e6);
        assert_eq!(w.log_lines("BLINDTRANSFER").len(), 1);
        w.run_until(Duration::from_secs(40), |w| w.pbx.leg_count() == 0);
    }

    #[test]
    fn phones_call_each_other_through_the_lab_and_hear_each_other() {
        let mut w = World::new(Duration::from_secs(60), 0);
        let caller = w.add_phone("101", 2, |_| {});
        let callee = w.add_phone("102", 3, |c| c.auto_answer = Some(Duration::from_secs(1)));
        w.register(caller);
        w.register(callee);
        w.phones[caller].tone_hz = Some(1000.0);
        w.phones[callee].tone_hz = Some(1500.0);
        w.command(
            caller,
            Command::Dial {
                target: "102".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(caller, |e| matches!(e, UaEvent::Answered { .. }))
        });
        // The callee rang first (relayed 180), and was called by the lab as 101.
        assert!(w.saw(caller, |e| matches!(e, UaEvent::Ringing { .. })));
        let offered = incoming_calls(&w, callee);
        assert_eq!(offered[0].1, "sip:101@lab");
        assert!(w.pbx_events.contains(&PbxEvent::PhoneCallAnswered {
            from: "101".into(),
            to: "102".into()
        }));
        w.run_for(Duration::from_secs(2));
        let (out_call, _, _) = offered[0];
        let (_, UaEvent::Answered { call: in_call, .. }) = w
            .find(caller, |e| matches!(e, UaEvent::Answered { .. }))
            .expect("answered")
        else {
            unreachable!("matched");
        };
        let at_callee = &w.phones[callee].heard[&out_call];
        let at_caller = &w.phones[caller].heard[&in_call];
        // A 8000-amplitude sine has power 32e6; PCMU and the two jitter buffers cost little.
        let (caller_voice, callee_voice) =
            (peak_power(at_callee, 1000.0), peak_power(at_caller, 1500.0));
        assert!(caller_voice > 20.0e6, "1 kHz at 102: {caller_voice:.0}");
        assert!(callee_voice > 20.0e6, "1.5 kHz at 101: {callee_voice:.0}");
        assert!(
            peak_power(at_callee, 1500.0) < caller_voice / 100.0,
            "no echo of 102's own voice"
        );
        // The caller hangs up: the lab ends the other leg.
        w.command(caller, Command::Hangup { call: in_call });
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(callee, |e| {
                matches!(
                    e,
                    UaEvent::CallEnded {
                        by: EndedBy::Remote,
                        ..
                    }
                )
            }) && w.pbx.leg_count() == 0
        });

        // Busy: the callee declines, the caller gets its 486.
        let busy = w.add_phone("103", 4, |c| c.reject_incoming = Some(486));
        w.register(busy);
        w.phones[caller].events.clear();
        w.command(
            caller,
            Command::Dial {
                target: "103".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(caller, |e| {
                matches!(
                    e,
                    UaEvent::CallEnded {
                        code: Some(486),
                        ..
                    }
                )
            })
        });
        w.run_until(Duration::from_secs(40), |w| w.pbx.leg_count() == 0);

        // Cancelled while ringing: the lab cancels the callee's ring too.
        let slow = w.add_phone("104", 5, |c| c.auto_answer = Some(Duration::from_secs(20)));
        w.register(slow);
        w.phones[caller].events.clear();
        w.command(
            caller,
            Command::Dial {
                target: "104".into(),
            },
        );
        w.run_until(Duration::from_secs(5), |w| {
            w.saw(caller, |e| matches!(e, UaEvent::Ringing { .. }))
        });
        let (_, UaEvent::Ringing { call: ringing, .. }) = w
            .find(caller, |e| matches!(e, UaEvent::Ringing { .. }))
            .expect("ringing")
        else {
            unreachable!("matched");
        };
        w.command(caller, Command::Hangup { call: ringing });
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(slow, |e| matches!(e, UaEvent::CallEnded { .. })) && w.pbx.leg_count() == 0
        });
        assert!(w
            .trace
            .iter()
            .any(|l| l.contains("-> 127.0.0.5:5060: CANCEL sip:104@")));
        assert!(w.saw(caller, |e| matches!(
            e,
            UaEvent::CallEnded {
                code: Some(487),
                ..
            }
        )));
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
    }

    /// Phones 101, 102 and 103 (1000, 1500 and 2000 Hz; 103 answers after `target_answer`),
    /// with 101's call to 102 answered and a second of talk: the world, the phones, 101's call
    /// and 102's.
    fn phone_call_and_a_third(
        target_answer: Option<Duration>,
    ) -> (World, [usize; 3], CallId, CallId) {
        let mut w = World::new(Duration::from_secs(60), 0);
        let caller = w.add_phone("101", 2, |_| {});
        let callee = w.add_phone("102", 3, |c| {
            c.auto_answer = Some(Duration::from_millis(500))
        });
        let target = w.add_phone("103", 4, |c| c.auto_answer = target_answer);
        for (phone, hz) in [(caller, 1000.0), (callee, 1500.0), (target, 2000.0)] {
            w.register(phone);
            w.phones[phone].tone_hz = Some(hz);
        }
        w.command(
            caller,
            Command::Dial {
                target: "102".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(caller, |e| matches!(e, UaEvent::Answered { .. }))
        });
        let Some((_, UaEvent::Answered { call, .. })) =
            w.find(caller, |e| matches!(e, UaEvent::Answered { .. }))
        else {
            unreachable!("waited for it");
        };
        w.run_for(Duration::from_secs(1));
        let (callee_call, _, _) = incoming_calls(&w, callee)[0];
        (w, [caller, callee, target], call, callee_call)
    }

    /// 101 calls 102 through the lab; 102 blind-transfers 101 to 103 (REFER without
    /// Replaces): 103 is rung as 101, answers, 102 hears "200 OK" and leaves, 101 and 103
    /// hear each other, and queue_log is left alone. A transfer to an unregistered phone
    /// fails with 480 and the call goes on.
    #[test]
    fn a_phone_blind_transfers_its_phone_to_phone_call() {
        let answer = Some(Duration::from_millis(500));
        let (mut w, [caller, callee, target], call, callee_call) = phone_call_and_a_third(answer);

        // Nobody at 104: the REFER fails with 480, and 101 and 102 still talk.
        w.command(
            callee,
            Command::Transfer {
                call: callee_call,
                target: "104".into(),
            },
        );
        w.run_until(Duration::from_secs(5), |w| {
            transfer_done(w, callee).is_some()
        });
        assert_eq!(transfer_done(&w, callee), Some(false));
        assert!(w.pbx_events.contains(&PbxEvent::PhoneTransferFailed {
            by: "102".into(),
            target: "104".into(),
            status: 480
        }));
        let before = heard_len(&w, caller, call);
        w.run_for(Duration::from_secs(1));
        let still = &w.phones[caller].heard[&call][before..];
        assert!(peak_power(still, 1500.0) > 1.0e7, "101 still hears 102");
        w.phones[callee]
            .events
            .retain(|(_, e)| !matches!(e, UaEvent::TransferDone { .. }));

        w.command(
            callee,
            Command::Transfer {
                call: callee_call,
                target: "103".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            transfer_done(w, callee).is_some()
        });
        assert_eq!(transfer_done(&w, callee), Some(true));
        let refer = sent_by(&w, [127, 0, 0, 3], "REFER ");
        assert_eq!(refer.len(), 2, "two REFERs by 102");
        let offered = incoming_calls(&w, target);
        assert_eq!(offered.len(), 1);
        let (target_call, from, _) = offered[0].clone();
        assert_eq!(from, "sip:101@lab", "103 is rung as the transferee");
        let invite = sent_by(&w, LAB_IP, "INVITE sip:103@");
        assert!(
            invite
                .last()
                .is_some_and(|i| i.contains("Referred-By: <sip:102@lab>")),
            "{invite:?}"
        );
        assert!(w.pbx_events.contains(&PbxEvent::PhoneCallTransferred {
            by: "102".into(),
            from: "101".into(),
            to: "103".into()
        }));
        // 102 is let go (by itself, or by the lab after the grace); 101's call goes on.
        w.run_until(TRANSFEROR_GRACE + Duration::from_secs(3), |w| {
            w.saw(
                callee,
                |e| matches!(e, UaEvent::CallEnded { call: c, .. } if *c == callee_call),
            )
        });
        assert!(!w.saw(caller, |e| matches!(e, UaEvent::CallEnded { .. })));

        let (at_caller, at_target) = (
            heard_len(&w, caller, call),
            heard_len(&w, target, target_call),
        );
        w.run_for(Duration::from_secs(2));
        let caller_heard = &w.phones[caller].heard[&call][at_caller + 1600..];
        let target_heard = &w.phones[target].heard[&target_call][at_target + 1600..];
        let (voice_103, voice_101) = (
            peak_power(caller_heard, 2000.0),
            peak_power(target_heard, 1000.0),
        );
        assert!(voice_103 > 1.0e7, "103 at 101: {voice_103:.0}");
        assert!(voice_101 > 1.0e7, "101 at 103: {voice_101:.0}");
        assert!(
            voice_103 > 100.0 * peak_power(caller_heard, 1500.0),
            "102 is gone"
        );
        assert!(w.log.lines().all(|l| !l.contains("TRANSFER")), "{}", w.log);

        // 101 hangs up: the lab ends 103's leg, and every port comes back.
        w.command(caller, Command::Hangup { call });
        w.run_until(Duration::from_secs(10), |w| {
            ended_by_remote(w, target, target_call) && w.pbx.leg_count() == 0
        });
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
    }

    /// 102 transfers 101 to 103 and hangs up before 103 answers: 101 hears music meanwhile,
    /// then talks to 103.
    #[test]
    fn a_phone_that_hangs_up_after_its_refer_leaves_the_other_with_music_until_the_target_answers()
    {
        let (mut w, [caller, callee, target], call, callee_call) =
            phone_call_and_a_third(Some(Duration::from_secs(4)));
        w.command(
            callee,
            Command::Transfer {
                call: callee_call,
                target: "103".into(),
            },
        );
        w.run_until(Duration::from_secs(5), |w| {
            !incoming_calls(w, target).is_empty()
        });
        w.command(callee, Command::Hangup { call: callee_call });
        w.run_for(Duration::from_millis(500));
        let waiting_from = heard_len(&w, caller, call);
        w.run_for(Duration::from_secs(2));
        let waiting = &w.phones[caller].heard[&call][waiting_from..];
        let music = c_chord_power(waiting);
        assert!(music > 3.0e6, "music while 103 rings: {music:.0}");
        assert!(music > 50.0 * peak_power(waiting, 1500.0));
        w.run_until(Duration::from_secs(5), |w| {
            w.pbx_events
                .iter()
                .any(|e| matches!(e, PbxEvent::PhoneCallTransferred { .. }))
        });
        let talking_from = heard_len(&w, caller, call);
        w.run_for(Duration::from_secs(2));
        let talk = &w.phones[caller].heard[&call][talking_from + 1600..];
        let voice = peak_power(talk, 2000.0);
        assert!(voice > 1.0e7, "103 at 101: {voice:.0}");
        assert!(voice > 100.0 * c_chord_power(talk), "the music stopped");
        assert!(!w.saw(caller, |e| matches!(e, UaEvent::CallEnded { .. })));
    }

    #[test]
    fn an_agent_consults_a_colleague_then_completes_an_attended_transfer() {
        let (mut w, agent, colleague) =
            agent_and_colleague(Duration::from_secs(20), Duration::from_millis(500));
        w.phones[agent].tone_hz = Some(1000.0);
        let call = answered_queue_call(&mut w, agent, Duration::from_secs(4));
        w.command(
            agent,
            Command::AttendedStart {
                call,
                target: "102".into(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(
                agent,
                |e| matches!(e, UaEvent::Answered { call: c, .. } if *c != call),
            )
        });
        w.run_for(Duration::from_secs(2));
        let (consulted, from, _) = incoming_calls(&w, colleague)[0].clone();
        assert_eq!(
            from, "sip:101@lab",
            "the consultation call comes from the agent"
        );
        let mark = w.phones[colleague].heard[&consulted].len();
        assert!(
            peak_power(&w.phones[colleague].heard[&consulted], 1000.0) > 20.0e6,
            "102 hears the agent during the consultation"
        );
        assert!(
            w.log_lines("BLINDTRANSFER").is_empty() && w.log_lines("ATTENDEDTRANSFER").is_empty()
        );

        w.command(agent, Command::AttendedComplete { call });
        w.run_until(Duration::from_secs(10), |w| {
            transfer_done(w, agent).is_some()
        });
        assert_eq!(transfer_done(&w, agent), Some(true));
        let refer = sent_by(&w, AGENT_ADDR, "REFER ");
        assert!(refer[0].contains("?Replaces="), "{}", refer[0]);
        let notifies = sent_by(&w, LAB_IP, "NOTIFY sip:101@");
        assert_eq!(
            notifies.iter().map(|n| body(n)).collect::<Vec<_>>(),
            ["SIP/2.0 100 Trying\r\n", "SIP/2.0 200 OK\r\n"]
        );
        // The lab ends the consultation leg; the agent is left with nothing.
        w.run_for(Duration::from_secs(3));
        let consultation = &sent_by(&w, AGENT_ADDR, "INVITE sip:102@")[0];
        let call_id = consultation
            .lines()
            .find(|l| l.starts_with("Call-ID:"))
            .expect("a Call-ID");
        assert!(
            sent_by(&w, LAB_IP, "BYE sip:101@")
                .iter()
                .any(|bye| bye.contains(call_id)),
            "the lab ends the consultation leg"
        );
        let ended = w.phones[agent]
            .events
            .iter()
            .filter(|(_, e)| matches!(e, UaEvent::CallEnded { .. }))
            .count();
        assert_eq!(ended, 2, "{:#?}", w.phones[agent].events);
        // 102 stays on the same call and now hears the caller.
        assert!(!w.saw(colleague, |e| matches!(e, UaEvent::CallEnded { .. })));
        let after = &w.phones[colleague].heard[&consulted][mark..];
        assert!(
            peak_power(after, CALLER_VOICE_HZ[0]) > 10.0e6
                && peak_power(after, CALLER_VOICE_HZ[1]) > 10.0e6
        );

        let lines = w.log_lines("ATTENDEDTRANSFER");
        assert_eq!(lines.len(), 1, "{}", w.log);
        let fields: Vec<&str> = lines[0].split('|').collect();
        assert_eq!(
            &fields[2..6],
            ["support", "101", "ATTENDEDTRANSFER", "BRIDGE"]
        );
        let bridge = fields[6];
        assert_eq!(bridge.len(), 36, "a UUID: {bridge}");
        assert_eq!(bridge.matches('-').count(), 4, "a UUID: {bridge}");
        assert_eq!(&fields[7..], ["0", "6", "1"], "{}", lines[0]);
        let (messages, reports) = ami_report(&w);
        let attended = messages
            .iter()
            .find(|m| m.get("Event") == Some("AttendedTransfer"))
            .expect("AttendedTransfer");
        assert_eq!(attended.get("DestBridgeUniqueid"), Some(bridge));
        assert!(
            reports
                .iter()
                .any(|r| r.kind == ReportKind::Transfer && r.agent.as_deref() == Some("101")),
            "{reports:#?}"
        );

        w.run_until(Duration::from_secs(30), |w| w.pbx.leg_count() == 0);
        assert!(w.saw(colleague, |e| matches!(
            e,
            UaEvent::CallEnded {
                by: EndedBy::Remote,
                ..
            }
        )));
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
    }

    // -- real callers in queues ---------------------------------------------------------------

    const CALLER_HZ: f64 = 1300.0;
    const AGENT_HZ: f64 = 1700.0;
    const COLLEAGUE_HZ: f64 = 2100.0;

    /// Phone 105 (only PCMA, talking at [`CALLER_HZ`]), registered.
    fn queue_caller(w: &mut World) -> usize {
        let caller = w.add_phone("105", 6, |c| c.codecs = vec![Codec::pcma()]);
        w.phones[caller].tone_hz = Some(CALLER_HZ);
        w.register(caller);
        caller
    }

    /// Phone `p` dials `number`, which the lab answers: the call, and the queue call id the
    /// lab reported.
    fn caller_dials(w: &mut World, p: usize, number: &str) -> (CallId, String) {
        w.phones[p].events.clear();
        let queued_before = queued_calls(w).len();
        w.command(
            p,
            Command::Dial {
                target: number.to_owned(),
            },
        );
        w.run_until(Duration::from_secs(10), |w| {
            w.saw(p, |e| matches!(e, UaEvent::Answered { .. }))
        });
        let Some((_, UaEvent::Answered { call, .. })) =
            w.find(p, |e| matches!(e, UaEvent::Answered { .. }))
        else {
            unreachable!("waited for it");
        };
        let queued = queued_calls(w);
        assert_eq!(queued.len(), queued_before + 1, "{:#?}", w.pbx_events);
        (call, queued[queued_before].clone())
    }

    fn queued_calls(w: &World) -> Vec<String> {
        w.pbx_events
            .iter()
            .filter_map(|e| match e {
                PbxEvent::CallerQueued { call_id, .. } => Some(call_id.clone()),
                _ => None,
            })
            .collect()
    }

    fn ended_by_remote(w: &World, p: usize, call: CallId) -> bool {
        w.saw(
            p,
            |e| matches!(e, UaEvent::CallEnded { call: c, by: EndedBy::Remote, .. } if *c == call),
        )
    }

    fn heard_len(w: &World, p: usize, call: CallId) -> usize {
        w.phones[p].heard.get(&call).map_or(0, Vec::len)
    }

    /// The weakest of the C major chord's arpeggio notes (the first two seconds of music).
    fn c_chord_power(samples: &[i16]) -> f64 {
        HOLD_MUSIC_CHORDS[0][..3]
            .iter()
            .map(|&f| peak_power(samples, f))
            .fold(f64::MAX, f64::min)
    }

    #[test]
    fn hold_music_is_an_arpeggio_over_its_chords() {
        let mut music = HoldMusic::new(8000);
        let mut samples = vec![0i16; 8 * 8000];
        music.fill(&mut samples);
        for (index, chord) in HOLD_MUSIC_CHORDS.iter().enumerate() {
            let part = &samples[index * 16_000..(index + 1) * 16_000];
            for &note in chord {
                let power = peak_power(part, note);
                assert!(power > 3.0e6, "chord {index} note {note} Hz: {power:.0}");
            }
            // The notes take turns: no 250 ms window holds all of them at once.
            let window = &part[..2000];
            assert!(peak_power(window, chord[0]) > 20.0 * peak_power(window, chord[2]));
        }
        assert!(peak_power(&samples, 1000.0) < 1.0e5);
    }

    #[test]
    fn a_real_caller_hears_hold_music_then_talks_with_the_agent_who_answers() {
        let (mut w, agent) = logged_in_agent(Duration::from_secs(3600), |_| {});
        w.phones[agent].tone_hz = Some(AGENT_HZ);
        let caller = queue_caller(&mut w);
        let (call, queue_call) = caller_dials(&mut w, caller, "600");
        assert!(
            w.saw(
                caller,
                |e| matches!(e, UaEvent::Answered { codec: Some(c), .. } if c == "PCMA")
            ),
            "the codec the caller offered"
        );
        let invite = sent_by(&w, [127, 0, 0, 6], "INVITE sip:600@");
        assert!(
            invite
                .last()
                .is_some_and(|i| i.contains(&format!("{queue_call}\r\n"))),
            "the queue call id is the INVITE's Call-ID: {queue_call}"
        );
        let entered = w.log_lines("ENTERQUEUE");
        assert_eq!(entered.len(), 1, "{}", w.log);
        let fields: Vec<&str> = entered[0].split('|').collect();
        assert_eq!(
            fields[1..],
            [&queue_call, "support", "NONE", "ENTERQUEUE", "", "105", "1"]
        );

        // The agent rings with the caller's ID; the caller hears the music meanwhile.
        w.run_until(Duration::from_secs(5), |w| w.incoming(agent).is_some());
        let (agent_call, from, name) = w.incoming(agent).expect("rung");
        assert_eq!(from, "sip:105@lab");
        assert_eq!(name.as_deref(), Some("support: 105"));
        w.run_for(Duration::from_millis(2500));
        let waited = heard_len(&w, caller, call);
        let music = &w.phones[caller].heard[&call][..waited];
        assert!(music.len() >= 8000 * 2, "{} samples", music.len());
        let chord = c_chord_power(music);
        assert!(chord > 3.0e6, "hold music at the caller: {chord:.0}");
        assert!(chord > 50.0 * peak_power(music, AGENT_HZ));

        w.command(agent, Command::Answer { call: agent_call });
        w.run_for(Duration::from_secs(2));
        assert_eq!(w.log_lines("CONNECT").len(), 1, "{}", w.log);
        // From 200 ms after the answer on: the agent's voice, no music.
        let talk = &w.phones[caller].heard[&call][waited + 1600..];
        let agent_voice = peak_power(talk, AGENT_HZ);
        assert!(
            agent_voice > 1.0e7,
            "agent heard by the caller: {agent_voice:.0}"
        );
        assert!(
            agent_voice > 100.0 * c_chord_power(talk),
            "the music stopped"
        );
        assert!(agent_voice > 100.0 * peak_power(talk, CALLER_HZ), "no echo");
        let at_agent = &w.phones[agent].heard[&agent_call][1600..];
        let caller_voice = peak_power(at_agent, CALLER_HZ);
        assert!(
            caller_voice > 1.0e7,
            "caller heard by the agent: {caller_voice:.0}"
        );
        assert!(caller_voice > 100.0 * peak_power(at_agent, CALLER_VOICE_HZ[0]));
        assert!(caller_voice > 100.0 * c_chord_power(at_agent));

        // The agent hangs up: the lab hangs up the caller, the queue logs COMPLETEAGENT.
        w.command(agent, Command::Hangup { call: agent_call });
        w.run_until(Duration::from_secs(10), |w| {
            ended_by_remote(w, caller, call) && w.pbx.leg_count() == 0
        });
        let complete = w.log_lines("COMPLETEAGENT");
        assert_eq!(complete.len(), 1, "{}", w.log);
        assert!(complete[0].contains(&format!("|{queue_call}|support|101|COMPLETEAGENT|")));
        assert!(w.log_lines("ABANDON").is_empty() && w.log_lines("COMPLETECALLER").is_empty());
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());

        // Again, and this time the caller hangs up: COMPLETECALLER, BYE to the agent.
        w.phones[agent].events.clear();
        let (call, queue_call) = caller_dials(&mut w, caller, "600");
        w.run_until(Duration::from_secs(20), |w| w.incoming(agent).is_some());
        let (agent_call, _, _) = w.incoming(agent).expect("rung");
        w.command(agent, Command::Answer { call: agent_call });
        w.run_for(Duration::from_secs(1));
        w.command(caller, Command::Hangup { call });
        w.run_until(Duration::from_secs(10), |w| {
            ended_by_remote(w, agent, agent_call) && w.pbx.leg_count() == 0
        });
        let complete = w.log_lines("COMPLETECALLER");
        assert_eq!(complete.len(), 1, "{}", w.log);
        assert!(complete[0].contains(&format!("|{queue_call}|support|101|COMPLETECALLER|")));
    }

    /// The agent puts a real caller on hold: the lab answers the agent's re-INVITE with the
    /// direction RFC 3264 asks for, sends the agent nothing, and the caller hears music on hold
    /// instead of silence; resumed, both hear each other again.
    #[test]
    fn an_agent_holds_a_real_caller_who_hears_music_then_resumes() {
        let (mut w, agent) = logged_in_agent(Duration::from_secs(3600), |_| {});
        w.phones[agent].tone_hz = Some(AGENT_HZ);
        let caller = queue_caller(&mut w);
        let (call, _) = caller_dials(&mut w, caller, "600");
        w.run_until(Duration::from_secs(5), |w| w.incoming(agent).is_some());
        let (agent_call, _, _) = w.incoming(agent).expect("rung");
        w.command(agent, Command::Answer { call: agent_call });
        w.run_for(Duration::from_secs(2));
        let talking = heard_len(&w, caller, call);
        let agent_heard = heard_len(&w, agent, agent_call);

        w.command(agent, Command::Hold { call: agent_call });
        w.run_until(Duration::from_secs(5), |w| {
            w.saw(
                agent,
                |e| matches!(e, UaEvent::Held { call } if *call == agent_call),
            )
        });
        let offer = sent_by(&w, [127, 0, 0, 2], "INVITE sip:")
            .last()
            .map(|invite| body(invite).to_owned())
            .unwrap_or_default();
        let held_direction = if offer.contains("a=inactive") {
            "a=inactive"
        } else {
            assert!(offer.contains("a=sendonly"), "the hold offer: {offer}");
            "a=recvonly"
        };
        let answer = sent_by(&w, LAB_IP, "SIP/2.0 200 OK")
            .into_iter()
            .rfind(|ok| ok.contains("CSeq: ") && ok.contains(" INVITE\r\n"))
            .unwrap_or_default();
        assert!(
            body(&answer).contains(held_direction),
            "answer to {offer}: {answer}"
        );
        let held_at = heard_len(&w, caller, call);
        let agent_held_at = heard_len(&w, agent, agent_call);
        w.run_for(Duration::from_secs(3));
        let on_hold = &w.phones[caller].heard[&call][held_at + 1600..];
        assert!(on_hold.len() >= 8000 * 2, "{} samples", on_hold.len());
        let music = c_chord_power(on_hold);
        assert!(music > 3.0e6, "music on hold at the caller: {music:.0}");
        assert!(
            music > 50.0 * peak_power(on_hold, AGENT_HZ),
            "not the agent"
        );
        // The held agent gets no RTP (its phone would play silence or its own tone).
        let at_held_agent = &w.phones[agent].heard[&agent_call][agent_held_at + 1600..];
        assert!(
            peak_power(at_held_agent, CALLER_HZ) < 1.0e5,
            "the lab stopped sending to the holder"
        );

        w.command(agent, Command::Resume { call: agent_call });
        w.run_until(Duration::from_secs(5), |w| {
            w.saw(
                agent,
                |e| matches!(e, UaEvent::Resumed { call } if *call == agent_call),
            )
        });
        let resumed_at = heard_len(&w, caller, call);
        let agent_resumed_at = heard_len(&w, agent, agent_call);
        w.run_for(Duration::from_secs(2));
        let talk = &w.phones[caller].heard[&call][resumed_at + 1600..];
        let agent_voice = peak_power(talk, AGENT_HZ);
        assert!(agent_voice > 1.0e7, "the agent again: {agent_voice:.0}");
        assert!(
            agent_voice > 100.0 * c_chord_power(talk),
            "the music stopped"
        );
        let at_agent = &w.phones[agent].heard[&agent_call][agent_resumed_at + 1600..];
        let caller_voice = peak_power(at_agent, CALLER_HZ);
        assert!(caller_voice > 1.0e7, "the caller again: {caller_voice:.0}");
        assert!(talking > 0 && agent_heard > 0);
        assert_eq!(w.log_lines("CONNECT").len(), 1, "{}", w.log);
        assert!(w.log_lines("COMPLETEAGENT").is_empty(), "{}", w.log);
    }

    #[test]
    fn a_waiting_caller_who_hangs_up_is_abandoned_and_one_who_waits_too_long_is_hung_up() {
        let mut config = lab_config(Duration::from_secs(60));
        config.queues[1].queue.max_wait = Some(Duration::from_secs(4));
        let mut w = World::with_config(config, 0);
        let caller = queue_caller(&mut w);
        let (call, queue_call) = caller_dials(&mut w, caller, "700");
        w.run_for(Duration::from_secs(2));
        w.command(caller, Command::Hangup { call });
        w.run_until(Duration::from_secs(10), |w| {
            !w.log_lines("ABANDON").is_empty() && w.pbx.leg_count() == 0
        });
        let abandon = w.log_lines("ABANDON");
        assert!(
            abandon[0].ends_with(&format!("|{queue_call}|sales|NONE|ABANDON|1|1|2")),
            "{}",
            w.log
        );

        let (call, queue_call) = caller_dials(&mut w, caller, "700");
        let answered = w.now;
        w.run_until(Duration::from_secs(10), |w| {
            ended_by_remote(w, caller, call)
        });
        let (ended, _) = w
            .find(caller, |e| matches!(e, UaEvent::CallEnded { .. }))
            .expect("ended");
        let waited = ended - answered;
        assert!(
            waited >= Duration::from_secs(4) && waited < Duration::from_millis(4300),
            "{waited:?}"
        );
        let timeout = w.log_lines("EXITWITHTIMEOUT");
        assert_eq!(timeout.len(), 1, "{}", w.log);
        assert!(timeout[0].ends_with(&format!("|{queue_call}|sales|NONE|EXITWITHTIMEOUT|1|1|4")));
        w.run_until(Duration::from_secs(10), |w| w.pbx.leg_count() == 0);
        assert_eq!(w.log_lines("ABANDON").len(), 1, "no second end: {}", w.log);
        assert!(w.voicemails.is_empty());
        assert_eq!(w.pbx.free_media_ports(), LAB_MEDIA_PORTS.len());
    }

    #[test]
    fn a_caller_who_waits_too_long_leaves_a_voicemail() {
        let dir = std::env::temp_dir().join(format!("ringside-lab-vm-{}", std::process::id()));
        let mut config = lab_config(Duration::from_secs(60));
        let support = &mut config.queues[0];
        support.queue.max_wait = Some(Duration::from_secs(3));
        support.timeout_fallback = TimeoutFallback::Voicemail;
        support.voicemail_dir = dir.clone();
        let mut w = World::with_config(config, 0);
        let caller = queue_caller(&mut w);
        let (call, queue_call) = caller_dials(&mut w, caller, "600");
        w.run_until(Duration::from_secs(5), |w| {
            !w.log_lines("EXITWITHTIMEOUT").is_empty()
        });
        let timeout = w.log_lines("EXITWITHTIMEOUT");
        assert!(timeout[0].ends_with(&format!("|{queue_call}|support|NONE|EXITWITHTIMEOUT|1|1|3")));
        let mark = heard_len(&w, caller, call);
        w.run_for(Duration::from_secs(3));
        let after = &w.phones[caller].heard[&call][mark..];
        let beep = peak_power(&after[..4000.min(after.len())], VOICEMAIL_BEEP_HZ);
        assert!(beep > 1.0e7, "the beep: {beep:.0}");
        assert!(
            peak_power(&after[8000..], VOICEMAIL_BEEP_HZ) < 1.0e5,
            "one beep only"
        );
        assert!(c_chord_power(after) < 1.0e5, "no more music");
        w.command(caller, Command::Hangup { call });
        w.run_until(Duration::from_secs(10), |w| {
            w.voicemails.len() == 1 && w.pbx.leg_count() == 0
        });
        let message = &w.voicemails[0];
        assert_eq!(message.queue, "support");
        assert_eq!(message.call_id, queue_call);
        assert_eq!(message.caller_id, "105");
        assert_eq!(
            message.file_name,
            voicemail_file_name("support", &queue_call)
        );
        let seconds = message.samples.len() as f64 / 8000.0;
        assert!((2.3..=2.7).contains(&seconds), "{seconds} s recorded");
        let voice = peak_power(&message.samples, CALLER_HZ);
        assert!(
            voice > 1.0e7,
            "the caller's voice in the message: {voice:.0}"
        );
        assert!(voice > 100.0 * peak_power(&message.samples, VOICEMAIL_BEEP_HZ));
        // Written and read back as a WAV.
        let path = crate::net::lab::write_voicemail(message).expect("written");
        assert_eq!(path, dir.join(&message.file_name));
        let mut reader = hound::WavReader::open(&path).expect("a WAV");
        assert_eq!(reader.spec().sample_rate, 8000);
        assert_eq!(reader.spec().channels, 1);
        let read: Vec<i16> = reader
            .samples::<i16>()
            .map(|s| s.expect("sample"))
            .collect();
        assert_eq!(read, message.samples);
        assert!(w.log_lines("ABANDON").is_empty(), "{}", w.log);

        // A caller who keeps talking is cut off at the longest message.
        let (call, _) = caller_dials(&mut w, caller, "600");
        w.run_until(VOICEMAIL_MAX + Duration::from_secs(10), |w| {
            ended_by_remote(w, caller, call) && w.voicemails.len() == 2
        });
        let long = &w.voicemails[1];
        let expected = VOICEMAIL_MAX.as_secs() as usize * 8000;
        assert!(
            long.samples.len().abs_diff(expected) <= 320,
            "{} samples",
            long.samples.len()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_bot_answers_a_real_caller_talks_then_hangs_up() {
        let mut config = lab_config(Duration::from_secs(10));
        config.simulation.bots = 1;
        config.simulation.no_answer_pct = 0.0;
        config.simulation.pauses_per_hour = 0.0;
        config.simulation.logouts_per_hour = 0.0;
        let mut w = World::with_config(config, 0);
        let caller = queue_caller(&mut w);
        let (call, queue_call) = caller_dials(&mut w, caller, "600");
        w.run_until(Duration::from_secs(60), |w| {
            ended_by_remote(w, caller, call)
        });
        let connect = w.log_lines("CONNECT");
        assert_eq!(connect.len(), 1, "{}", w.log);
        assert!(connect[0].contains(&format!("|{queue_call}|support|bot1|CONNECT|")));
        let complete = w.log_lines("COMPLETEAGENT");
        assert!(
            complete[0].contains(&format!("|{queue_call}|support|bot1|COMPLETEAGENT|")),
            "{}",
            w.log
        );
        let heard = &w.phones[caller].heard[&call];
        // 1 to 4 s of music, then the bot's two pitches to the end.
        assert!(c_chord_power(&heard[..8000]) > 3.0e6);
        assert!(heard.len() > 5 * 8000, "{} samples", heard.len());
        let tail = &heard[heard.len() - 12_000..];
        let (low, high) = (
            peak_power(tail, BOT_VOICE_HZ[0]),
            peak_power(tail, BOT_VOICE_HZ[1]),
        );
        assert!(low > 1.0e7 && high > 1.0e7, "bot voice {low:.0} {high:.0}");
        assert!(low > 100.0 * c_chord_power(tail));
        w.run_until(Duration::from_secs(10), |w| w.pbx.leg_count() == 0);
    }

    #[test]
    fn an_agent_transfers_a_real_caller_to_another_queue_where_it_waits_again() {
        let (mut w, agent) = logged_in_agent(Duration::from_secs(3600), |_| {});
        w.phones[agent].tone_hz = Some(AGENT_HZ);
        let colleague = w.add_phone("102", 3, |c| c.auto_answer = Some(Duration::from_secs(2)));
        w.phones[colleague].tone_hz = Some(COLLEAGUE_HZ);
        w.register(colleague);
        w.dial_code(colleague, "*700");
        w.phones[colleague].events.clear();
        let caller = queue_caller(&mut w);
        let (call, queue_call) = caller_dials(&mut w, caller, "600");
        w.run_until(Duration::from_secs(5), |w| w.incoming(agent).is_some());
        let (agent_call, _, _) = w.incoming(agent).expect("rung");
        w.command(agent, Command::Answer { call: agent_call });
        w.run_for(Duration::from_secs(1));
        w.command(
            agent,
            Command::Transfer {
                call: agent_call,
                target: "700".into(),
            },
        );
        w.run_until(Duration::from_secs(5), |w| {
            transfer_done(w, agent).is_some()
        });
        assert_eq!(transfer_done(&w, agent), Some(true));
        let moved = heard_len(&w, caller, call);
        // 102 is rung from sales with the caller's ID and answers after 2 s.
        w.run_until(Duration::from_secs(10), |w| {
            w.log_lines("CONNECT").len() == 2
        });
        let (_, from, name) = w.incoming(colleague).expect("102 rung");
        assert_eq!(from, "sip:105@lab");
        assert_eq!(name.as_deref(), Some("sales: 105"));
        let lines: Vec<&str> = w.log.lines().collect();
        let position = |needle: &str| {
            lines
                .iter()
                .position(|l| l.contains(needle))
                .unwrap_or_else(|| panic!("{needle} in\n{}", w.log))
        };
        let transfer = position(&format!("|{queue_call}|support|101|BLINDTRANSFER|700|lab|"));
        let entered = position(&format!("|{queue_call}|sales|NONE|ENTERQUEUE||105|1"));
        let connected = position(&format!("|{queue_call}|sales|102|CONNECT|"));
        assert!(transfer < entered && entered < connected, "{}", w.log);
        w.run_for(Duration::from_secs(2));
        let heard = &w.phones[caller].heard[&call];
        let waiting = &heard[moved..moved + 8000];
        assert!(
            c_chord_power(waiting) > 3.0e6,
            "the music again while 102 rings"
        );
        let talk = &heard[heard.len() - 8000..];
        let colleague_voice = peak_power(talk, COLLEAGUE_HZ);
        assert!(
            colleague_voice > 1.0e7,
            "102 heard by the caller: {colleague_voice:.0}"
        );
        assert!(colleague_voice > 100.0 * peak_power(talk, AGENT_HZ));
        w.command(caller, Command::Hangup { call });
        w.run_until(Duration::from_secs(10), |w| {
            !w.log_lines("COMPLETECALLER").is_empty() && w.pbx.leg_count() == 0
        });
        assert!(w.log_lines("COMPLETECALLER")[0].contains("|sales|102|COMPLETECALLER|"));
    }
}
