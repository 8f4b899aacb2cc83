//! Calls: INVITE sessions both ways (RFC 3261 §13–15), offer/answer (RFC 3264), hold and resume
//! by re-INVITE, 491 glare retry (§14.1), CANCEL, BYE, DTMF by INFO, and identity updates from
//! P-Asserted-Identity (RFC 3325).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use core::net::SocketAddr;

use super::dialog::Dialog;
use super::msg::{Method, NameAddr, Request, Response, SipHeaders, Uri};
use super::sdp::{self, Direction, LocalMedia, Negotiated, SessionDescription};
use super::transaction::{build_cancel, Target, TxId};
use super::transfer::TransferState;
use super::ua::{CallId, CommandError, EndedBy, Pending, Purpose, UaEvent, UserAgent};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallDirection {
    Outgoing,
    Incoming,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallState {
    /// INVITE sent, nothing heard back but 100 Trying.
    Dialing,
    /// The far end rings (180) or plays early media (183).
    Ringing,
    /// Someone calls us; we ring.
    Incoming,
    /// 200 OK sent, waiting for the caller's ACK.
    Connecting,
    Active,
    /// BYE or CANCEL sent (or received); the call is going away.
    Ending,
}

impl CallState {
    pub fn as_str(self) -> &'static str {
        match self {
            CallState::Dialing => "dialing",
            CallState::Ringing => "ringing",
            CallState::Incoming => "incoming",
            CallState::Connecting => "connecting",
            CallState::Active => "active",
            CallState::Ending => "ending",
        }
    }
}

/// What the UI shows of a call.
#[derive(Debug, Clone, PartialEq)]
pub struct CallInfo {
    pub id: CallId,
    pub direction: CallDirection,
    pub state: CallState,
    pub remote_uri: String,
    pub remote_name: Option<String>,
    pub on_hold: bool,
    pub remote_hold: bool,
    pub codec: Option<String>,
    pub duration: Duration,
    pub transferring: bool,
    pub consultation_of: Option<CallId>,
    /// Since the call was placed or arrived (ring time before the answer).
    pub age: Duration,
}

/// Our own re-INVITE in flight.
#[derive(Debug, Clone)]
pub(crate) struct ReInvite {
    pub hold: bool,
    pub offer: SessionDescription,
}

/// UAS side: we sent a 2xx to an INVITE and re-send it until the ACK comes (RFC 3261 §13.3.1.4).
#[derive(Debug, Clone)]
pub(crate) struct Retransmit2xx {
    pub bytes: Vec<u8>,
    pub target: Target,
    pub next_at: Instant,
    pub interval: Duration,
    pub give_up_at: Instant,
}

#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub id: CallId,
    pub direction: CallDirection,
    pub state: CallState,
    pub remote: NameAddr,
    pub call_id: String,
    pub local_tag: String,
    /// The INVITE we sent (UAC) or received (UAS).
    pub invite: Option<Request>,
    pub invite_tx: Option<TxId>,
    /// Where the initial INVITE came from (UAS): responses and 2xx retransmissions go there.
    pub invite_source: Option<Target>,
    pub dialog: Option<Dialog>,
    pub local_rtp_port: u16,
    pub sdp_session: u64,
    pub sdp_version: u64,
    /// The offer we made and whose answer we wait for (INVITE, 2xx to an offer-less INVITE).
    pub local_offer: Option<SessionDescription>,
    pub negotiated: Option<Negotiated>,
    pub local_hold: bool,
    pub remote_hold: bool,
    pub reinvite: Option<ReInvite>,
    /// After a 491: when to try the re-INVITE again, and whether it was a hold.
    pub glare_retry: Option<(Instant, bool)>,
    pub got_provisional: bool,
    pub cancel_requested: bool,
    pub uas_2xx: Option<Retransmit2xx>,
    /// UAC: the ACK we sent for the 2xx, re-sent when the 2xx is retransmitted.
    pub ack: Option<(Vec<u8>, Target)>,
    pub started: Instant,
    pub answered_at: Option<Instant>,
    pub auto_answer_at: Option<Instant>,
    pub dtmf_queue: VecDeque<char>,
    pub dtmf_in_flight: bool,
    pub transfer: Option<TransferState>,
    /// On a call put aside for an attended transfer: the consultation call.
    pub consultation: Option<CallId>,
    /// On a consultation call: the call it consults for.
    pub consult_of: Option<CallId>,
    /// "Call from another device": once this handset answers, REFER it to this target.
    pub external_target: Option<String>,
    /// We are the transferee: this call was placed because of a REFER on `refer_origin`, whose
    /// subscription we keep informed with NOTIFYs.
    pub refer_origin: Option<CallId>,
    /// An INVITE with Replaces for this dialog took over: end quietly when it is answered.
    pub replaced_by: Option<CallId>,
    /// When set, a BYE is due at this time (a replaced call that did not go away by itself).
    pub bye_at: Option<Instant>,
    /// Redirects followed so far (3xx), to stop loops.
    pub redirects: u8,
    /// After our CANCEL: when to stop waiting for the INVITE's final response (RFC 3261 §9.1).
    pub cancel_give_up_at: Option<Instant>,
}

impl Call {
    pub(crate) fn new(
        id: CallId,
        direction: CallDirection,
        remote: NameAddr,
        dialog_ids: (String, String),
        now: Instant,
        media: (u16, u64),
    ) -> Call {
        let (call_id, local_tag) = dialog_ids;
        let (rtp_port, session) = media;
        Call {
            id,
            direction,
            state: if direction == CallDirection::Outgoing {
                CallState::Dialing
            } else {
                CallState::Incoming
            },
            remote,
            call_id,
            local_tag,
            invite: None,
            invite_tx: None,
            invite_source: None,
            dialog: None,
            local_rtp_port: rtp_port,
            sdp_session: session,
            sdp_version: 1,
            local_offer: None,
            negotiated: None,
            local_hold: false,
            remote_hold: false,
            reinvite: None,
            glare_retry: None,
            got_provisional: false,
            cancel_requested: false,
            uas_2xx: None,
            ack: None,
            started: now,
            answered_at: None,
            auto_answer_at: None,
            dtmf_queue: VecDeque::new(),
            dtmf_in_flight: false,
            transfer: None,
            consultation: None,
            consult_of: None,
            external_target: None,
            refer_origin: None,
            replaced_by: None,
            bye_at: None,
            redirects: 0,
            cancel_give_up_at: None,
        }
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        [
            self.uas_2xx.as_ref().map(|r| r.next_at.min(r.give_up_at)),
            self.glare_retry.map(|(at, _)| at),
            self.auto_answer_at,
            self.bye_at,
            self.cancel_give_up_at,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub(crate) fn info(&self, now: Instant) -> CallInfo {
        CallInfo {
            id: self.id,
            direction: self.direction,
            state: self.state,
            remote_uri: self.remote.uri.to_string(),
            remote_name: self.remote.display_name.clone(),
            on_hold: self.local_hold,
            remote_hold: self.remote_hold,
            codec: self.negotiated.as_ref().map(|n| n.codec.name.clone()),
            duration: self
                .answered_at
                .map(|t| now.saturating_duration_since(t))
                .unwrap_or_default(),
            transferring: self.transfer.is_some(),
            consultation_of: self.consult_of,
            age: now.saturating_duration_since(self.started),
        }
    }

    fn wrong_state(&self, action: &'static str) -> CommandError {
        CommandError::WrongState {
            call: self.id,
            state: self.state.as_str().to_string(),
            action,
        }
    }
}

/// A user-facing sentence for a final failure response to our INVITE.
pub fn failure_message(code: u16, reason: &str) -> String {
    match code {
        404 | 604 => "number not found".into(),
        408 => "no answer".into(),
        480 => "unavailable".into(),
        484 => "incomplete number".into(),
        486 | 600 => "busy".into(),
        487 => "cancelled".into(),
        488 | 606 => "no common audio codec with the far end".into(),
        403 => "forbidden by the PBX (check your account's call rights)".into(),
        401 | 407 => "the PBX refused our credentials".into(),
        503 => "service unavailable".into(),
        603 => "declined".into(),
        _ if reason.is_empty() => format!("failed ({code})"),
        _ => format!("failed: {code} {reason}"),
    }
}

impl UserAgent {
    fn local_media(&self, call: &Call, direction: Direction) -> LocalMedia {
        LocalMedia {
            address: self.config.media_ip,
            port: call.local_rtp_port,
            codecs: self.config.codecs.clone(),
            telephone_event: self.config.telephone_event,
            direction,
            ptime: Some(20),
        }
    }

    fn new_offer(&self, call: &mut Call, direction: Direction) -> SessionDescription {
        call.sdp_version += 1;
        let media = self.local_media(call, direction);
        sdp::build_offer(&media, call.sdp_session, call.sdp_version)
    }

    fn emit_media(&mut self, id: CallId) {
        let Some(call) = self.calls.get(&id) else {
            return;
        };
        let event = match &call.negotiated {
            Some(n) => UaEvent::Media {
                call: id,
                local_port: call.local_rtp_port,
                remote: Some(SocketAddr::new(n.remote_address, n.remote_port)),
                codec: Some(n.codec.name.clone()),
                payload_type: Some(n.codec.payload_type),
                telephone_event: n.telephone_event,
                telephone_event_clock: n.telephone_event_clock,
                sending: matches!(n.local_direction, Direction::SendRecv | Direction::SendOnly),
                receiving: matches!(n.local_direction, Direction::SendRecv | Direction::RecvOnly),
                ptime_ms: n.ptime,
            },
            None => return,
        };
        self.emit(event);
    }

    pub(crate) fn end_call(&mut self, id: CallId, code: Option<u16>, reason: String, by: EndedBy) {
        if let Some(call) = self.calls.remove(&id) {
            // A consultation call that ends gives its held partner back to the user.
            if let Some(origin) = call.consult_of {
                if let Some(o) = self.calls.get_mut(&origin) {
                    o.consultation = None;
                }
            }
            if let Some(consult) = call.consultation {
                if let Some(c) = self.calls.get_mut(&consult) {
                    c.consult_of = None;
                }
            }
            if let Some(origin) = call.refer_origin {
                self.notify_refer_result(origin, code.unwrap_or(487), &reason);
            }
            self.emit(UaEvent::CallEnded {
                call: id,
                code,
                reason,
                by,
            });
        }
    }

    // -- outgoing calls -----------------------------------------------------------------------

    pub(crate) fn dial(&mut self, now: Instant, target: &str) -> Result<CallId, CommandError> {
        match self.config.external_device.clone() {
            // Ring the agent's handset first; the dialed number is reached by REFER once it answers.
            Some(device) if !device.is_empty() => {
                let uri = self.target_uri(&device)?;
                self.target_uri(target)?;
                let id = self.place_call(now, uri, None)?;
                if let Some(c) = self.calls.get_mut(&id) {
                    c.external_target = Some(target.to_string());
                }
                Ok(id)
            }
            _ => {
                let uri = self.target_uri(target)?;
                self.place_call(now, uri, None)
            }
        }
    }

    /// Send an INVITE to `uri`; `extra` headers (Replaces, Referred-By) come from transfers.
    pub(crate) fn place_call(
        &mut self,
        now: Instant,
        uri: Uri,
        extra: Option<Vec<(String, String)>>,
    ) -> Result<CallId, CommandError> {
        let id = self.new_call_handle();
        let call_id = self.new_call_id();
        let tag = self.new_tag();
        let port = self.allocate_rtp_port();
        let session = u64::from(self.rng_u32());
        let remote = NameAddr::new(uri.without_headers());
        let mut call = Call::new(
            id,
            CallDirection::Outgoing,
            remote.clone(),
            (call_id.clone(), tag.clone()),
            now,
            (port, session),
        );
        let offer = self.new_offer(&mut call, Direction::SendRecv);
        let mut request = self.new_request(
            Method::Invite,
            uri.without_headers(),
            remote,
            &call_id,
            &tag,
            1,
        );
        request.headers.push("Contact", self.contact_value());
        request.headers.push(
            "Allow",
            "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, UPDATE, REFER, NOTIFY",
        );
        request.headers.push("Supported", "replaces");
        for (name, value) in extra.unwrap_or_default() {
            request.headers.push(&name, value);
        }
        request.set_body("application/sdp", offer.to_string().into_bytes());
        call.local_offer = Some(offer);
        call.invite = Some(request.clone());
        let to = call.remote.uri.to_string();
        self.calls.insert(id, call);
        let tx = self.send(now, request, Purpose::Invite(id));
        if let Some(c) = self.calls.get_mut(&id) {
            c.invite_tx = tx;
        }
        self.emit(UaEvent::Dialing { call: id, to });
        Ok(id)
    }

    fn rng_u32(&mut self) -> u32 {
        use rand::Rng;
        self.rng.gen::<u32>() >> 1
    }

    pub(crate) fn on_invite_response(
        &mut self,
        now: Instant,
        id: CallId,
        tx: TxId,
        pending: &Pending,
        response: Response,
    ) {
        let Some(call) = self.calls.get_mut(&id) else {
            // The call is gone (hung up) but a 2xx came: ACK and BYE it so the far end stops.
            if response.is_success() {
                self.ack_and_bye_orphan(now, &pending.request, &response);
            }
            return;
        };
        if call.invite_tx.is_some() && call.invite_tx != Some(tx) {
            return;
        }
        let status = response.status;
        match status {
            100 => {}
            101..=199 => {
                call.got_provisional = true;
                let early_media = !response.body.is_empty()
                    && response.content_type().as_deref() == Some("application/sdp");
                if early_media {
                    if let (Some(offer), Ok(answer)) =
                        (call.local_offer.as_ref(), parse_sdp(&response.body))
                    {
                        if let Ok(n) = sdp::accept_answer(offer, &answer) {
                            call.negotiated = Some(n);
                        }
                    }
                }
                let first = call.state == CallState::Dialing;
                if call.state == CallState::Dialing {
                    call.state = CallState::Ringing;
                }
                let cancel = call.cancel_requested;
                if let Some(pai) = response.p_asserted_identity() {
                    call.remote = pai;
                }
                if cancel {
                    self.send_cancel(now, id);
                } else if first || early_media {
                    self.emit(UaEvent::Ringing {
                        call: id,
                        early_media,
                    });
                    if early_media {
                        self.emit_media(id);
                    }
                }
            }
            200..=299 => self.on_invite_success(now, id, &pending.request, response),
            300..=399 => {
                let target = response.contact().map(|c| c.uri);
                let redirects = call.redirects;
                self.end_call_quietly(id);
                match target {
                    Some(uri) if redirects < 3 && uri.is_sip() => {
                        tracing::info!(to = %uri, "following redirect");
                        if let Ok(new_id) = self.place_call(now, uri.clone(), None) {
                            if let Some(c) = self.calls.get_mut(&new_id) {
                                c.redirects = redirects + 1;
                            }
                            self.emit(UaEvent::Notice {
                                message: format!(
                                    "call {id} redirected to {uri} (now call {new_id})"
                                ),
                            });
                        }
                    }
                    _ => self.emit(UaEvent::CallEnded {
                        call: id,
                        code: Some(status),
                        reason: "redirected, no usable target".into(),
                        by: EndedBy::Remote,
                    }),
                }
            }
            _ => {
                let local = response.header("X-Ringside-Local").is_some();
                let reason = if local && status == 408 {
                    format!("no answer from {}", pending.target.addr)
                } else if local {
                    format!("{} unreachable", pending.target.addr)
                } else {
                    failure_message(status, &response.reason)
                };
                let by = if local {
                    EndedBy::Network
                } else if status == 487 {
                    EndedBy::Local
                } else {
                    EndedBy::Remote
                };
                self.end_call(id, Some(status), reason, by);
            }
        }
    }

    /// Remove a call without telling the user (the caller reports what replaced it).
    fn end_call_quietly(&mut self, id: CallId) {
        self.calls.remove(&id);
    }

    fn on_invite_success(
        &mut self,
        now: Instant,
        id: CallId,
        request: &Request,
        response: Response,
    ) {
        let via = self.new_via();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        // A retransmitted 2xx: our ACK was lost, send it again (RFC 3261 §13.2.2.4).
        if call.dialog.is_some() {
            if let Some((bytes, target)) = call.ack.clone() {
                self.send_raw(target, bytes);
            }
            return;
        }
        let Some(mut dialog) = Dialog::from_uac(request, &response) else {
            tracing::warn!("2xx without the headers a dialog needs; hanging up");
            self.end_call(
                id,
                Some(response.status),
                "bad answer from the far end".into(),
                EndedBy::Network,
            );
            return;
        };
        let invite_seq = request.cseq().map(|c| c.seq).unwrap_or(1);
        dialog.local_seq = dialog.local_seq.max(invite_seq);
        let ack = dialog.ack(invite_seq, via);
        let answer = parse_sdp(&response.body);
        let negotiated = match (call.local_offer.as_ref(), answer) {
            (Some(offer), Ok(answer)) => sdp::accept_answer(offer, &answer).ok(),
            _ => None,
        };
        call.local_offer = None;
        if let Some(pai) = response.p_asserted_identity() {
            call.remote = pai;
        } else if let Some(to) = response.to_header() {
            if call.remote.display_name.is_none() {
                call.remote.display_name = to.display_name;
            }
        }
        call.dialog = Some(dialog);
        if negotiated.is_some() {
            call.negotiated = negotiated;
        }
        let cancelled = call.cancel_requested;
        call.state = CallState::Active;
        call.answered_at = Some(now);
        let target = self.target_for(
            self.calls
                .get(&id)
                .and_then(|c| c.dialog.as_ref())
                .map(|d| d.next_hop())
                .unwrap_or(&request.uri),
        );
        let bytes = ack.to_bytes();
        self.send_raw(target, bytes.clone());
        if let Some(c) = self.calls.get_mut(&id) {
            c.ack = Some((bytes, target));
        }
        if cancelled {
            // The far end answered while our CANCEL was on its way: the call exists, end it.
            let _ = self.send_bye(now, id);
            self.end_call(id, Some(487), "cancelled".into(), EndedBy::Local);
            return;
        }
        let codec = self
            .calls
            .get(&id)
            .and_then(|c| c.negotiated.as_ref())
            .map(|n| n.codec.name.clone());
        self.emit(UaEvent::Answered { call: id, codec });
        self.emit_media(id);
        self.after_answer(now, id);
    }

    fn ack_and_bye_orphan(&mut self, now: Instant, request: &Request, response: &Response) {
        let via = self.new_via();
        if let Some(mut dialog) = Dialog::from_uac(request, response) {
            let seq = request.cseq().map(|c| c.seq).unwrap_or(1);
            dialog.local_seq = seq;
            let ack = dialog.ack(seq, via);
            let target = self.target_for(dialog.next_hop());
            self.send_raw(target, ack.to_bytes());
            let via = self.new_via();
            let bye = dialog.new_request(Method::Bye, via);
            self.send(now, bye, Purpose::Other);
        }
    }

    pub(crate) fn on_stray_response(&mut self, response: Response) {
        // A 2xx to an INVITE whose transaction is gone: find the call by dialog and re-ACK.
        let Some(call) = self
            .calls
            .values()
            .find(|c| c.call_id == response.call_id().unwrap_or_default())
        else {
            return;
        };
        if let Some((bytes, target)) = call.ack.clone() {
            self.send_raw(target, bytes);
        }
    }

    // -- incoming calls -----------------------------------------------------------------------

    pub(crate) fn on_invite(&mut self, now: Instant, tx: TxId, request: Request, source: Target) {
        if request.to_tag().is_some() {
            self.on_reinvite(now, tx, request);
            return;
        }
        // Body checks before we ring: an INVITE with an offer we cannot use gets 488 at once.
        let offer = if request.body.is_empty() {
            None
        } else {
            match parse_sdp(&request.body) {
                Ok(o) => Some(o),
                Err(_) => {
                    let mut r = request.response_with_reason(400, "Bad SDP");
                    self.add_to_tag(&mut r);
                    self.respond(now, tx, r);
                    return;
                }
            }
        };
        if let Some(code) = self.config.reject_incoming {
            let mut r = request.response(code);
            self.add_to_tag(&mut r);
            self.respond(now, tx, r);
            let from = request
                .from_header()
                .map(|f| f.uri.to_string())
                .unwrap_or_default();
            self.emit(UaEvent::Notice {
                message: format!(
                    "rejected incoming call from {from} ({code}, reject_incoming is on)"
                ),
            });
            return;
        }
        let replaces = request.replaces();
        let replaced = match &replaces {
            Some(r) => match self.find_replaced(r) {
                Some(id) => Some(id),
                None => {
                    let mut resp = request.response(481);
                    self.add_to_tag(&mut resp);
                    self.respond(now, tx, resp);
                    return;
                }
            },
            None => None,
        };
        let id = self.new_call_handle();
        let tag = self.new_tag();
        let port = self.allocate_rtp_port();
        let session = u64::from(self.rng_u32());
        let remote = request
            .p_asserted_identity()
            .or_else(|| request.from_header())
            .unwrap_or_else(|| NameAddr::new(Uri::sip(None, "invalid", None)));
        let mut call = Call::new(
            id,
            CallDirection::Incoming,
            remote.clone(),
            (
                request.call_id().unwrap_or_default().to_string(),
                tag.clone(),
            ),
            now,
            (port, session),
        );
        let Some(dialog) = Dialog::from_uas(&request, &tag) else {
            let mut r = request.response_with_reason(400, "Missing Contact or From tag");
            self.add_to_tag(&mut r);
            self.respond(now, tx, r);
            return;
        };
        // Check the offer now so a codec mismatch is refused before anyone picks up.
        if let Some(offer) = &offer {
            let media = self.local_media(&call, Direction::SendRecv);
            if sdp::build_answer(offer, &media, call.sdp_session, call.sdp_version).is_err() {
                let mut r = request.response(488);
                r.headers
                    .push("Warning", "304 ringside \"no common audio codec\"");
                self.add_to_tag(&mut r);
                self.respond(now, tx, r);
                return;
            }
        }
        call.dialog = Some(dialog);
        call.invite = Some(request.clone());
        call.invite_tx = Some(tx);
        call.invite_source = Some(source);
        if let Some(wait) = self.config.auto_answer {
            call.auto_answer_at = Some(now + wait);
        }
        self.calls.insert(id, call);
        if let Some(old) = replaced {
            // RFC 3891: the new call takes the old one's place; answer it at once and end the
            // old one (the transferor already agreed to this by sending the REFER).
            if let Some(o) = self.calls.get_mut(&old) {
                o.replaced_by = Some(id);
            }
            let _ = self.answer(now, id);
            let _ = self.send_bye(now, old);
            self.end_call(old, None, format!("replaced by call {id}"), EndedBy::Remote);
            return;
        }
        let mut ringing = tagged_response(&request, 180, &tag);
        ringing.headers.push("Contact", self.contact_value());
        self.respond(now, tx, ringing);
        self.emit(UaEvent::IncomingCall {
            call: id,
            from: remote.uri.to_string(),
            name: remote.display_name.clone(),
        });
    }

    pub(crate) fn answer(&mut self, now: Instant, id: CallId) -> Result<(), CommandError> {
        let call = self.calls.get(&id).ok_or(CommandError::NoSuchCall(id))?;
        if call.state != CallState::Incoming {
            return Err(call.wrong_state("answer"));
        }
        let (Some(request), Some(tx), Some(source)) =
            (call.invite.clone(), call.invite_tx, call.invite_source)
        else {
            return Err(call.wrong_state("answer"));
        };
        let mut call = call.clone();
        let body = if request.body.is_empty() {
            // No offer in the INVITE: ours goes in the 2xx and the answer comes in the ACK.
            let offer = self.new_offer(&mut call, Direction::SendRecv);
            call.local_offer = Some(offer.clone());
            offer.to_string()
        } else {
            let offer = parse_sdp(&request.body).map_err(|_| call.wrong_state("answer"))?;
            call.sdp_version += 1;
            let media = self.local_media(&call, Direction::SendRecv);
            match sdp::build_answer(&offer, &media, call.sdp_session, call.sdp_version) {
                Ok((answer, negotiated)) => {
                    call.remote_hold = negotiated.remote_on_hold_sentinel
                        || matches!(
                            negotiated.remote_direction,
                            Direction::SendOnly | Direction::Inactive
                        );
                    call.negotiated = Some(negotiated);
                    answer.to_string()
                }
                Err(_) => return Err(call.wrong_state("answer")),
            }
        };
        let mut ok = tagged_response(&request, 200, &call.local_tag);
        ok.headers.push("Contact", self.contact_value());
        self.add_capabilities(&mut ok);
        ok.set_body("application/sdp", body.into_bytes());
        call.uas_2xx = Some(Retransmit2xx::start(
            &ok,
            source,
            now,
            self.config.timers.t1,
        ));
        call.state = CallState::Connecting;
        call.auto_answer_at = None;
        self.calls.insert(id, call);
        self.respond(now, tx, ok);
        Ok(())
    }

    pub(crate) fn reject(&mut self, now: Instant, id: CallId) -> Result<(), CommandError> {
        let call = self.calls.get(&id).ok_or(CommandError::NoSuchCall(id))?;
        if call.state != CallState::Incoming {
            return Err(call.wrong_state("reject"));
        }
        let (Some(request), Some(tx)) = (call.invite.clone(), call.invite_tx) else {
            return Err(call.wrong_state("reject"));
        };
        let tag = call.local_tag.clone();
        let r = tagged_response(&request, 603, &tag);
        self.respond(now, tx, r);
        self.end_call(id, Some(603), "rejected".into(), EndedBy::Local);
        Ok(())
    }

    pub(crate) fn on_ack(&mut self, now: Instant, request: Request) {
        let Some(id) = self.call_for_request(&request) else {
            return;
        };
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        call.uas_2xx = None;
        if let Some(offer) = call.local_offer.take() {
            if let Ok(answer) = parse_sdp(&request.body) {
                if let Ok(n) = sdp::accept_answer(&offer, &answer) {
                    call.negotiated = Some(n);
                }
            }
        }
        if call.state == CallState::Connecting {
            call.state = CallState::Active;
            call.answered_at = Some(now);
            let codec = call.negotiated.as_ref().map(|n| n.codec.name.clone());
            self.emit(UaEvent::Answered { call: id, codec });
            self.emit_media(id);
            self.after_answer(now, id);
        }
    }

    /// Things that start once a call is up: the external-device REFER, a REFER's NOTIFY.
    fn after_answer(&mut self, now: Instant, id: CallId) {
        if let Some(origin) = self.calls.get(&id).and_then(|c| c.refer_origin) {
            self.notify_refer_progress(now, origin, 200, "OK");
        }
        let target = self
            .calls
            .get_mut(&id)
            .and_then(|c| c.external_target.take());
        if let Some(target) = target {
            if let Err(error) = self.blind_transfer(now, id, &target) {
                self.emit(UaEvent::Notice {
                    message: format!("could not hand the call to the external device: {error}"),
                });
            }
        }
    }

    pub(crate) fn on_cancel(&mut self, now: Instant, tx: TxId, request: Request) {
        let invite_tx = self.tx.find_invite_for_cancel(&request);
        let id = invite_tx.and_then(|itx| {
            self.calls
                .values()
                .find(|c| c.invite_tx == Some(itx) && c.direction == CallDirection::Incoming)
                .map(|c| c.id)
        });
        let Some(id) = id else {
            let mut r = request.response(481);
            self.add_to_tag(&mut r);
            self.respond(now, tx, r);
            return;
        };
        let mut ok = request.response(200);
        self.add_to_tag(&mut ok);
        self.respond(now, tx, ok);
        let call = self.calls.get(&id).cloned();
        if let (Some(call), Some(itx)) = (call, invite_tx) {
            if matches!(call.state, CallState::Incoming) {
                if let Some(invite) = &call.invite {
                    let terminated = tagged_response(invite, 487, &call.local_tag);
                    self.respond(now, itx, terminated);
                }
                self.end_call(
                    id,
                    Some(487),
                    "missed: the caller hung up".into(),
                    EndedBy::Remote,
                );
            }
        }
    }

    pub(crate) fn on_bye(&mut self, now: Instant, tx: TxId, request: Request) {
        let Some(id) = self.call_for_request(&request) else {
            let mut r = request.response(481);
            self.add_to_tag(&mut r);
            self.respond(now, tx, r);
            return;
        };
        let ok = request.response(200);
        self.respond(now, tx, ok);
        let reason = match request.header("Reason") {
            Some(r) => format!("the other party hung up ({})", r.trim()),
            None => "the other party hung up".into(),
        };
        // A transferred call: the transferor's BYE after a successful REFER is the normal end.
        let transferred = self
            .calls
            .get(&id)
            .and_then(|c| c.transfer.as_ref())
            .is_some_and(|t| t.succeeded);
        let reason = if transferred {
            "transferred".into()
        } else {
            reason
        };
        self.end_call(id, None, reason, EndedBy::Remote);
    }

    pub(crate) fn hangup(&mut self, now: Instant, id: CallId) -> Result<(), CommandError> {
        let call = self.calls.get(&id).ok_or(CommandError::NoSuchCall(id))?;
        match call.state {
            CallState::Incoming => self.reject(now, id),
            CallState::Dialing | CallState::Ringing => {
                if let Some(c) = self.calls.get_mut(&id) {
                    c.cancel_requested = true;
                    c.state = CallState::Ending;
                    if c.got_provisional {
                        self.send_cancel(now, id);
                    }
                    // Without a provisional the CANCEL waits for one (RFC 3261 §9.1); the
                    // INVITE's final response ends the call either way.
                }
                Ok(())
            }
            CallState::Connecting | CallState::Active => {
                self.send_bye(now, id)?;
                self.end_call(id, None, "you hung up".into(), EndedBy::Local);
                Ok(())
            }
            CallState::Ending => Ok(()),
        }
    }

    fn send_cancel(&mut self, now: Instant, id: CallId) {
        let Some(invite) = self.calls.get(&id).and_then(|c| c.invite.clone()) else {
            return;
        };
        let cancel = build_cancel(&invite);
        self.send(now, cancel, Purpose::Cancel(id));
        let t1 = self.config.timers.t1;
        if let Some(c) = self.calls.get_mut(&id) {
            c.cancel_give_up_at = Some(now + t1 * 64);
        }
    }

    pub(crate) fn send_bye(&mut self, now: Instant, id: CallId) -> Result<(), CommandError> {
        let via = self.new_via();
        let call = self
            .calls
            .get_mut(&id)
            .ok_or(CommandError::NoSuchCall(id))?;
        call.state = CallState::Ending;
        call.uas_2xx = None;
        let Some(dialog) = call.dialog.as_mut() else {
            return Err(call.wrong_state("hang up"));
        };
        let bye = dialog.new_request(Method::Bye, via);
        self.send(now, bye, Purpose::Bye(id));
        Ok(())
    }

    /// Which call an in-dialog request belongs to.
    pub(crate) fn call_for_request(&self, request: &Request) -> Option<CallId> {
        self.calls
            .values()
            .find(|c| {
                c.dialog
                    .as_ref()
                    .is_some_and(|d| d.matches_request(request))
            })
            .map(|c| c.id)
    }

    // -- hold, resume, re-INVITE, UPDATE --------------------------------------------------------

    pub(crate) fn hold(
        &mut self,
        now: Instant,
        id: CallId,
        hold: bool,
    ) -> Result<(), CommandError> {
        let call = self.calls.get(&id).ok_or(CommandError::NoSuchCall(id))?;
        if call.state != CallState::Active {
            return Err(call.wrong_state(if hold { "hold" } else { "resume" }));
        }
        if call.reinvite.is_some() || call.glare_retry.is_some() {
            return Err(call.wrong_state("a second re-INVITE"));
        }
        if call.local_hold == hold {
            return Ok(());
        }
        self.send_reinvite(now, id, hold);
        Ok(())
    }

    fn send_reinvite(&mut self, now: Instant, id: CallId, hold: bool) {
        let via = self.new_via();
        let contact = self.contact_value();
        let Some(mut call) = self.calls.get(&id).cloned() else {
            return;
        };
        let direction = match (hold, call.remote_hold) {
            (true, true) => Direction::Inactive,
            (true, false) => Direction::SendOnly,
            (false, true) => Direction::RecvOnly,
            (false, false) => Direction::SendRecv,
        };
        let offer = self.new_offer(&mut call, direction);
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        let mut request = dialog.new_request(Method::Invite, via);
        request.headers.push("Contact", contact);
        request.set_body("application/sdp", offer.to_string().into_bytes());
        call.reinvite = Some(ReInvite { hold, offer });
        self.calls.insert(id, call);
        self.send(now, request, Purpose::ReInvite(id));
    }

    pub(crate) fn on_reinvite_response(&mut self, now: Instant, id: CallId, response: Response) {
        if response.status < 200 {
            return;
        }
        let via = self.new_via();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(reinvite) = call.reinvite.take() else {
            return;
        };
        if response.is_success() {
            if let Some(dialog) = call.dialog.as_mut() {
                dialog.refresh_target(&response);
                let seq = response.cseq().map(|c| c.seq).unwrap_or(dialog.local_seq);
                let ack = dialog.ack(seq, via);
                let hop = dialog.next_hop().clone();
                let bytes = ack.to_bytes();
                let target = self.target_for(&hop);
                self.send_raw(target, bytes.clone());
                if let Some(c) = self.calls.get_mut(&id) {
                    c.ack = Some((bytes, target));
                }
            }
            let Some(call) = self.calls.get_mut(&id) else {
                return;
            };
            if let Ok(answer) = parse_sdp(&response.body) {
                if let Ok(n) = sdp::accept_answer(&reinvite.offer, &answer) {
                    call.negotiated = Some(n);
                }
            }
            call.local_hold = reinvite.hold;
            let event = if reinvite.hold {
                UaEvent::Held { call: id }
            } else {
                UaEvent::Resumed { call: id }
            };
            self.emit(event);
            self.emit_media(id);
            return;
        }
        if response.status == 491 {
            // Glare (RFC 3261 §14.1): the Call-ID owner waits 2.1–4 s, the other side 0–2 s.
            let owner = call.direction == CallDirection::Outgoing;
            let delay = if owner {
                self.jitter(2100, 4000)
            } else {
                self.jitter(0, 2000)
            };
            if let Some(c) = self.calls.get_mut(&id) {
                c.glare_retry = Some((now + delay, reinvite.hold));
            }
            return;
        }
        if matches!(response.status, 481 | 408) {
            // The dialog is gone at the far end (RFC 3261 §14.1): end it here too.
            let _ = self.send_bye(now, id);
            self.end_call(
                id,
                Some(response.status),
                "the call no longer exists at the far end".into(),
                EndedBy::Network,
            );
            return;
        }
        let what = if reinvite.hold { "hold" } else { "resume" };
        self.emit(UaEvent::HoldFailed {
            call: id,
            code: Some(response.status),
            reason: format!("{what} refused: {} {}", response.status, response.reason),
        });
    }

    fn on_reinvite(&mut self, now: Instant, tx: TxId, request: Request) {
        let Some(id) = self.call_for_request(&request) else {
            let r = request.response(481);
            self.respond(now, tx, r);
            return;
        };
        let contact = self.contact_value();
        let Some(mut call) = self.calls.get(&id).cloned() else {
            return;
        };
        if let Some(dialog) = call.dialog.as_mut() {
            if dialog.accept_remote_cseq(&request).is_err() {
                let r = request.response(500);
                self.respond(now, tx, r);
                return;
            }
        }
        // Our own re-INVITE is pending: glare, tell the peer to back off (RFC 3261 §14.2).
        if call.reinvite.is_some() || call.local_offer.is_some() {
            let mut r = request.response(491);
            r.headers.push("Retry-After", "1");
            self.respond(now, tx, r);
            return;
        }
        if let Some(d) = call.dialog.as_mut() {
            d.refresh_target(&request);
        }
        let identity_changed = self.update_identity(&mut call, &request);
        let body = if request.body.is_empty() {
            // An offer-less re-INVITE asks for our offer; the answer comes in the ACK.
            let direction = if call.local_hold {
                Direction::SendOnly
            } else {
                Direction::SendRecv
            };
            let offer = self.new_offer(&mut call, direction);
            call.local_offer = Some(offer.clone());
            offer.to_string()
        } else {
            let Ok(offer) = parse_sdp(&request.body) else {
                let r = request.response_with_reason(400, "Bad SDP");
                self.respond(now, tx, r);
                return;
            };
            let wish = if call.local_hold {
                Direction::SendOnly
            } else {
                Direction::SendRecv
            };
            call.sdp_version += 1;
            let media = self.local_media(&call, wish);
            match sdp::build_answer(&offer, &media, call.sdp_session, call.sdp_version) {
                Ok((answer, n)) => {
                    let remote_hold = n.remote_on_hold_sentinel
                        || matches!(
                            n.remote_direction,
                            Direction::SendOnly | Direction::Inactive
                        );
                    let changed = remote_hold != call.remote_hold;
                    call.remote_hold = remote_hold;
                    call.negotiated = Some(n);
                    if changed {
                        self.events.push_back(if remote_hold {
                            UaEvent::RemoteHold { call: id }
                        } else {
                            UaEvent::RemoteResume { call: id }
                        });
                    }
                    answer.to_string()
                }
                Err(_) => {
                    let r = request.response(488);
                    self.respond(now, tx, r);
                    return;
                }
            }
        };
        let mut ok = request.response(200);
        ok.headers.push("Contact", contact);
        self.add_capabilities(&mut ok);
        ok.set_body("application/sdp", body.into_bytes());
        let source = call.invite_source.unwrap_or_else(|| {
            self.target_for(
                call.dialog
                    .as_ref()
                    .map(|d| d.next_hop())
                    .unwrap_or(&request.uri),
            )
        });
        call.uas_2xx = Some(Retransmit2xx::start(
            &ok,
            source,
            now,
            self.config.timers.t1,
        ));
        self.calls.insert(id, call);
        self.respond(now, tx, ok);
        if identity_changed {
            self.emit_identity(id);
        }
        self.emit_media(id);
    }

    /// RFC 3325: a trusted PBX tells us who we are really talking to (after a transfer, say).
    fn update_identity(&self, call: &mut Call, request: &Request) -> bool {
        match request.p_asserted_identity() {
            Some(pai)
                if pai.uri != call.remote.uri || pai.display_name != call.remote.display_name =>
            {
                call.remote = pai;
                true
            }
            _ => false,
        }
    }

    fn emit_identity(&mut self, id: CallId) {
        if let Some(c) = self.calls.get(&id) {
            let event = UaEvent::RemotePartyChanged {
                call: id,
                name: c.remote.display_name.clone(),
                uri: c.remote.uri.to_string(),
            };
            self.emit(event);
        }
    }

    pub(crate) fn on_update(&mut self, now: Instant, tx: TxId, request: Request) {
        let Some(id) = self.call_for_request(&request) else {
            let r = request.response(481);
            self.respond(now, tx, r);
            return;
        };
        let Some(mut call) = self.calls.get(&id).cloned() else {
            return;
        };
        let changed = self.update_identity(&mut call, &request);
        if let Some(d) = call.dialog.as_mut() {
            d.refresh_target(&request);
        }
        let mut ok = request.response(200);
        ok.headers.push("Contact", self.contact_value());
        if !request.body.is_empty() {
            let wish = if call.local_hold {
                Direction::SendOnly
            } else {
                Direction::SendRecv
            };
            call.sdp_version += 1;
            let media = self.local_media(&call, wish);
            match parse_sdp(&request.body).ok().and_then(|o| {
                sdp::build_answer(&o, &media, call.sdp_session, call.sdp_version).ok()
            }) {
                Some((answer, n)) => {
                    call.negotiated = Some(n);
                    ok.set_body("application/sdp", answer.to_string().into_bytes());
                }
                None => {
                    let r = request.response(488);
                    self.respond(now, tx, r);
                    return;
                }
            }
        }
        self.calls.insert(id, call);
        self.respond(now, tx, ok);
        if changed {
            self.emit_identity(id);
        }
    }

    // -- DTMF -----------------------------------------------------------------------------------

    pub(crate) fn send_dtmf(
        &mut self,
        now: Instant,
        id: CallId,
        digits: &str,
    ) -> Result<(), CommandError> {
        let digits: String = digits.chars().filter(|c| !c.is_whitespace()).collect();
        if digits.is_empty()
            || !digits.chars().all(|c| {
                c.is_ascii_digit() || matches!(c.to_ascii_uppercase(), '*' | '#' | 'A'..='D')
            })
        {
            return Err(CommandError::BadDigits(digits));
        }
        let call = self
            .calls
            .get_mut(&id)
            .ok_or(CommandError::NoSuchCall(id))?;
        if call.state != CallState::Active {
            return Err(call.wrong_state("send DTMF"));
        }
        // With telephone-event negotiated the media layer sends RFC 4733 events; otherwise
        // SIP INFO carries the digits (application/dtmf-relay), one request at a time.
        if self.config.rtp_dtmf
            && call
                .negotiated
                .as_ref()
                .and_then(|n| n.telephone_event)
                .is_some()
        {
            self.emit(UaEvent::SendDtmfRtp { call: id, digits });
            return Ok(());
        }
        call.dtmf_queue
            .extend(digits.chars().map(|c| c.to_ascii_uppercase()));
        if !call.dtmf_in_flight {
            self.send_next_dtmf_info(now, id);
        }
        Ok(())
    }

    fn send_next_dtmf_info(&mut self, now: Instant, id: CallId) {
        let via = self.new_via();
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(digit) = call.dtmf_queue.pop_front() else {
            call.dtmf_in_flight = false;
            return;
        };
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        let mut info = dialog.new_request(Method::Info, via);
        info.set_body(
            "application/dtmf-relay",
            format!("Signal={digit}\r\nDuration=160\r\n").into_bytes(),
        );
        call.dtmf_in_flight = true;
        self.send(now, info, Purpose::Info(id));
    }

    pub(crate) fn on_info_response(&mut self, now: Instant, id: CallId, response: Response) {
        if response.status >= 200 {
            self.send_next_dtmf_info(now, id);
        }
    }

    pub(crate) fn on_info(&mut self, now: Instant, tx: TxId, request: Request) {
        let Some(id) = self.call_for_request(&request) else {
            let r = request.response(481);
            self.respond(now, tx, r);
            return;
        };
        let content_type = request.content_type().unwrap_or_default();
        let dtmf = match content_type.as_str() {
            "application/dtmf-relay" => parse_dtmf_relay(&request.body),
            "application/dtmf" => std::str::from_utf8(&request.body)
                .ok()
                .and_then(|s| s.trim().chars().next())
                .map(|c| (c, 160)),
            _ => None,
        };
        let ok = request.response(200);
        self.respond(now, tx, ok);
        if let Some((digit, duration_ms)) = dtmf {
            self.emit(UaEvent::DtmfReceived {
                call: id,
                digit,
                duration_ms,
            });
        }
    }

    // -- timers -----------------------------------------------------------------------------------

    pub(crate) fn handle_call_timers(&mut self, now: Instant) {
        let ids: Vec<CallId> = self.calls.keys().copied().collect();
        for id in ids {
            let Some(call) = self.calls.get_mut(&id) else {
                continue;
            };
            let t2 = self.config.timers.t2;
            let mut resend = None;
            let mut gave_up = false;
            if let Some(r) = call.uas_2xx.as_mut() {
                if now >= r.give_up_at {
                    gave_up = true;
                } else if now >= r.next_at {
                    resend = Some((r.target, r.bytes.clone()));
                    r.interval = (r.interval * 2).min(t2);
                    r.next_at = now + r.interval;
                }
            }
            let glare = call
                .glare_retry
                .filter(|(at, _)| now >= *at)
                .map(|(_, hold)| hold);
            if glare.is_some() {
                call.glare_retry = None;
            }
            let auto = call.auto_answer_at.is_some_and(|at| now >= at);
            let bye_due = call.bye_at.is_some_and(|at| now >= at);
            let cancel_expired = call.cancel_give_up_at.is_some_and(|at| now >= at);
            let invite_tx = call.invite_tx;
            if bye_due {
                call.bye_at = None;
            }
            if let Some((target, bytes)) = resend {
                self.send_raw(target, bytes);
            }
            if cancel_expired {
                // The far end never answered our INVITE after the CANCEL: forget it.
                if let Some(tx) = invite_tx {
                    self.tx.terminate(tx);
                }
                self.end_call(
                    id,
                    None,
                    "cancelled (no answer from the far end)".into(),
                    EndedBy::Local,
                );
                continue;
            }
            if gave_up {
                // No ACK within 64*T1 (RFC 3261 §13.3.1.4): the dialog must be torn down.
                let _ = self.send_bye(now, id);
                self.end_call(
                    id,
                    None,
                    "the caller never confirmed the answer (no ACK)".into(),
                    EndedBy::Network,
                );
                continue;
            }
            if let Some(hold) = glare {
                self.send_reinvite(now, id, hold);
            }
            if auto {
                let _ = self.answer(now, id);
            }
            if bye_due && self.send_bye(now, id).is_ok() {
                self.end_call(id, None, "transferred".into(), EndedBy::Local);
            }
        }
    }
}

/// A response to `request` carrying our To tag (RFC 3261 §8.2.6.2, §12.1.1).
fn tagged_response(request: &Request, status: u16, tag: &str) -> Response {
    let mut response = request.response(status);
    if let Some(to) = request.to_header() {
        response.headers.set("To", to.with_tag(tag).to_string());
    }
    response
}

impl Retransmit2xx {
    /// Re-send at T1, 2·T1, ... capped at T2, for 64·T1 (RFC 3261 §13.3.1.4).
    fn start(ok: &Response, target: Target, now: Instant, t1: Duration) -> Retransmit2xx {
        Retransmit2xx {
            bytes: ok.to_bytes(),
            target,
            next_at: now + t1,
            interval: t1,
            give_up_at: now + t1 * 64,
        }
    }
}

pub(crate) fn parse_sdp(body: &[u8]) -> Result<SessionDescription, ()> {
    let text = std::str::from_utf8(body).map_err(|_| ())?;
    SessionDescription::parse(text).map_err(|_| ())
}

/// `Signal=5\r\nDuration=160` (application/dtmf-relay, the de-facto format).
fn parse_dtmf_relay(body: &[u8]) -> Option<(char, u32)> {
    let text = std::str::from_utf8(body).ok()?;
    let mut digit = None;
    let mut duration = 160;
    for line in text.lines() {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        match key.trim().to_ascii_lowercase().as_str() {
            "signal" => {
                digit = value.trim().chars().next().filter(|c| {
                    c.is_ascii_digit() || matches!(c.to_ascii_uppercase(), '*' | '#' | 'A'..='D')
                });
            }
            "duration" => duration = value.trim().parse().unwrap_or(160),
            _ => {}
        }
    }
    digit.map(|d| (d.to_ascii_uppercase(), duration))
}
