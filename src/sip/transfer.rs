//! Call transfer: REFER (RFC 3515) with Referred-By (RFC 3892), progress by NOTIFY
//! `message/sipfrag`, attended transfer with Replaces (RFC 3891, RFC 5589), and the transferee
//! side (an incoming REFER we carry out).

use std::time::{Duration, Instant};

use super::call::CallState;
use super::msg::{self, Method, Request, Response, SipHeaders};
use super::transaction::TxId;
use super::ua::{CallId, CommandError, EndedBy, Purpose, UaEvent, UserAgent};

/// How long we let the transfer target end a replaced consultation call before we do it.
const REPLACED_CALL_GRACE: Duration = Duration::from_secs(4);

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TransferState {
    pub target: String,
    pub accepted: bool,
    pub succeeded: bool,
    /// Attended: the consultation call whose dialog the target replaces.
    pub consultation: Option<CallId>,
}

impl UserAgent {
    pub(crate) fn blind_transfer(
        &mut self,
        now: Instant,
        id: CallId,
        target: &str,
    ) -> Result<(), CommandError> {
        let uri = self.target_uri(target)?;
        self.send_refer(now, id, format!("<{uri}>"), target.to_string(), None)
    }

    fn send_refer(
        &mut self,
        now: Instant,
        id: CallId,
        refer_to: String,
        shown_target: String,
        consultation: Option<CallId>,
    ) -> Result<(), CommandError> {
        let via = self.new_via();
        let contact = self.contact_value();
        let referred_by = format!("<{}>", self.aor());
        let call = self
            .calls
            .get_mut(&id)
            .ok_or(CommandError::NoSuchCall(id))?;
        if call.state != CallState::Active {
            return Err(CommandError::WrongState {
                call: id,
                state: call.state.as_str().into(),
                action: "transfer",
            });
        }
        if call.transfer.is_some() {
            return Err(CommandError::WrongState {
                call: id,
                state: "transferring".into(),
                action: "a second transfer",
            });
        }
        let Some(dialog) = call.dialog.as_mut() else {
            return Err(CommandError::WrongState {
                call: id,
                state: call.state.as_str().into(),
                action: "transfer",
            });
        };
        let mut refer = dialog.new_request(Method::Refer, via);
        refer.headers.push("Contact", contact);
        refer.headers.push("Refer-To", refer_to);
        refer.headers.push("Referred-By", referred_by);
        call.transfer = Some(TransferState {
            target: shown_target,
            accepted: false,
            succeeded: false,
            consultation,
        });
        self.send(now, refer, Purpose::Refer(id));
        Ok(())
    }

    pub(crate) fn on_refer_response(&mut self, _now: Instant, id: CallId, response: Response) {
        if response.status < 200 {
            return;
        }
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        if response.is_success() {
            if let Some(t) = call.transfer.as_mut() {
                t.accepted = true;
            }
            self.emit(UaEvent::TransferProgress {
                call: id,
                code: response.status,
                reason: "transfer accepted by the far end".into(),
            });
        } else {
            call.transfer = None;
            self.emit(UaEvent::TransferDone {
                call: id,
                success: false,
                reason: format!("transfer refused: {} {}", response.status, response.reason),
            });
        }
    }

    /// NOTIFY for our REFER's implicit subscription: the progress of the call the far end makes.
    pub(crate) fn on_notify(&mut self, now: Instant, tx: TxId, request: Request) {
        let Some(id) = self.call_for_request(&request) else {
            let r = request.response(481);
            self.respond(now, tx, r);
            return;
        };
        let is_refer = request.event().is_some_and(|e| e.package == "refer");
        if !is_refer {
            let r = request.response(489);
            self.respond(now, tx, r);
            return;
        }
        let ok = request.response(200);
        self.respond(now, tx, ok);
        let terminated = request
            .subscription_state()
            .is_some_and(|s| s.is_terminated());
        let status = msg::parse_sipfrag_status(&request.body);
        if let Some((code, reason)) = &status {
            self.emit(UaEvent::TransferProgress {
                call: id,
                code: *code,
                reason: reason.clone(),
            });
        }
        let final_code = status.as_ref().map(|(c, _)| *c).filter(|c| *c >= 200);
        match final_code {
            Some(code) if (200..300).contains(&code) => self.transfer_succeeded(now, id),
            Some(code) => self.transfer_failed(id, format!("the transfer target answered {code}")),
            None if terminated => {
                self.transfer_failed(id, "the far end ended the transfer without a result".into())
            }
            None => {}
        }
    }

    fn transfer_succeeded(&mut self, now: Instant, id: CallId) {
        let Some(call) = self.calls.get_mut(&id) else {
            return;
        };
        let Some(transfer) = call.transfer.as_mut() else {
            return;
        };
        transfer.succeeded = true;
        let consultation = transfer.consultation;
        let target = transfer.target.clone();
        self.emit(UaEvent::TransferDone {
            call: id,
            success: true,
            reason: format!("transferred to {target}"),
        });
        // We are out of the picture: end our leg (RFC 5589 §6.1), and give the target a moment
        // to end the consultation call it replaced before we do it ourselves.
        if self.send_bye(now, id).is_ok() {
            self.end_call(id, None, "transferred".into(), EndedBy::Local);
        }
        if let Some(c) = consultation.and_then(|c| self.calls.get_mut(&c)) {
            c.bye_at = Some(now + REPLACED_CALL_GRACE);
            c.transfer = Some(TransferState {
                target,
                accepted: true,
                succeeded: true,
                consultation: None,
            });
        }
    }

    fn transfer_failed(&mut self, id: CallId, reason: String) {
        if let Some(call) = self.calls.get_mut(&id) {
            if call.transfer.take().is_some() {
                self.emit(UaEvent::TransferDone {
                    call: id,
                    success: false,
                    reason,
                });
            }
        }
    }

    // -- attended transfer ------------------------------------------------------------------------

    pub(crate) fn attended_start(
        &mut self,
        now: Instant,
        id: CallId,
        target: &str,
    ) -> Result<(), CommandError> {
        let call = self.calls.get(&id).ok_or(CommandError::NoSuchCall(id))?;
        if call.state != CallState::Active {
            return Err(CommandError::WrongState {
                call: id,
                state: call.state.as_str().into(),
                action: "attended transfer",
            });
        }
        if call.consultation.is_some() {
            return Err(CommandError::WrongState {
                call: id,
                state: "consulting".into(),
                action: "a second consultation",
            });
        }
        let uri = self.target_uri(target)?;
        if !call.local_hold && call.reinvite.is_none() {
            self.hold(now, id, true)?;
        }
        let consult = self.place_call(now, uri, None)?;
        if let Some(c) = self.calls.get_mut(&consult) {
            c.consult_of = Some(id);
        }
        if let Some(c) = self.calls.get_mut(&id) {
            c.consultation = Some(consult);
        }
        self.emit(UaEvent::Notice {
            message: format!("call {id} on hold; consulting {target} on call {consult}"),
        });
        Ok(())
    }

    /// The held call of an attended transfer, whichever of the two calls the user named.
    fn consultation_pair(&self, id: CallId) -> Result<(CallId, CallId), CommandError> {
        let call = self.calls.get(&id).ok_or(CommandError::NoSuchCall(id))?;
        match (call.consultation, call.consult_of) {
            (Some(consult), _) => Ok((id, consult)),
            (None, Some(origin)) => Ok((origin, id)),
            (None, None) => Err(CommandError::NoConsultation(id)),
        }
    }

    pub(crate) fn attended_complete(
        &mut self,
        now: Instant,
        id: CallId,
    ) -> Result<(), CommandError> {
        let (origin, consult) = self.consultation_pair(id)?;
        let c = self
            .calls
            .get(&consult)
            .ok_or(CommandError::NoSuchCall(consult))?;
        let Some(dialog) = c.dialog.as_ref().filter(|_| c.state == CallState::Active) else {
            return Err(CommandError::WrongState {
                call: consult,
                state: c.state.as_str().into(),
                action: "complete the transfer (the consultation is not answered yet)",
            });
        };
        // Refer-To carries the consultation dialog so the target swaps it for the new call:
        // the dialog as the *target* sees it, so its to-tag is our remote tag (RFC 3891 §3).
        let replaces = msg::Replaces {
            call_id: dialog.id.call_id.clone(),
            to_tag: dialog.id.remote_tag.clone(),
            from_tag: dialog.id.local_tag.clone(),
            early_only: false,
        };
        let mut target_uri = c.remote.uri.without_headers();
        target_uri.params.clear();
        target_uri.headers.push(msg::Param::new(
            "Replaces",
            Some(msg::percent_encode_header_value(&replaces.to_string())),
        ));
        let shown = c.remote.uri.to_string();
        self.send_refer(now, origin, format!("<{target_uri}>"), shown, Some(consult))
    }

    pub(crate) fn attended_abort(&mut self, now: Instant, id: CallId) -> Result<(), CommandError> {
        let (origin, consult) = self.consultation_pair(id)?;
        self.hangup(now, consult)?;
        if let Some(c) = self.calls.get_mut(&origin) {
            c.consultation = None;
        }
        if self.calls.get(&origin).is_some_and(|c| c.local_hold) {
            self.hold(now, origin, false)?;
        }
        Ok(())
    }

    // -- transferee: an incoming REFER ----------------------------------------------------------

    pub(crate) fn on_refer(&mut self, now: Instant, tx: TxId, request: Request) {
        let Some(id) = self.call_for_request(&request) else {
            // Out-of-dialog REFER: we only act on transfers of calls we are in.
            let mut r = request.response(481);
            self.add_to_tag(&mut r);
            self.respond(now, tx, r);
            return;
        };
        if !self.config.accept_refer {
            let r = request.response_with_reason(603, "Transfer Not Accepted");
            self.respond(now, tx, r);
            self.emit(UaEvent::Notice {
                message: format!("refused a transfer request on call {id} (accept_refer is off)"),
            });
            return;
        }
        let Some(refer_to) = request.refer_to() else {
            let r = request.response_with_reason(400, "Missing or Bad Refer-To");
            self.respond(now, tx, r);
            return;
        };
        if !refer_to.uri.is_sip() {
            let r = request.response_with_reason(416, "Unsupported Refer-To Scheme");
            self.respond(now, tx, r);
            return;
        }
        let mut extra = Vec::new();
        for h in &refer_to.uri.headers {
            if h.name.eq_ignore_ascii_case("Replaces") {
                if let Some(v) = &h.value {
                    extra.push(("Replaces".to_string(), msg::percent_decode(v)));
                }
            }
        }
        if let Some(by) = request.referred_by() {
            extra.push(("Referred-By".to_string(), by.to_string()));
        }
        let ok = request.response(202);
        self.respond(now, tx, ok);
        if let Some(c) = self.calls.get_mut(&id) {
            if let Some(d) = c.dialog.as_mut() {
                d.refresh_target(&request);
            }
        }
        let target = refer_to.uri.without_headers();
        let shown = target.to_string();
        self.notify_refer_progress(now, id, 100, "Trying");
        match self.place_call(now, target, Some(extra)) {
            Ok(new_call) => {
                if let Some(c) = self.calls.get_mut(&new_call) {
                    c.refer_origin = Some(id);
                }
                self.emit(UaEvent::TransferRequested {
                    call: id,
                    target: shown,
                    new_call,
                });
            }
            Err(error) => {
                self.notify_refer_progress(now, id, 503, "Service Unavailable");
                self.emit(UaEvent::Notice {
                    message: format!("could not carry out the transfer on call {id}: {error}"),
                });
            }
        }
    }

    /// Tell the transferor how the call it asked for is going (RFC 3515 §2.4.4).
    pub(crate) fn notify_refer_progress(
        &mut self,
        now: Instant,
        origin: CallId,
        code: u16,
        reason: &str,
    ) {
        let via = self.new_via();
        let contact = self.contact_value();
        let Some(call) = self.calls.get_mut(&origin) else {
            return;
        };
        let Some(dialog) = call.dialog.as_mut() else {
            return;
        };
        let mut notify = dialog.new_request(Method::Notify, via);
        notify.headers.push("Contact", contact);
        notify.headers.push("Event", "refer");
        let state = if code >= 200 {
            "terminated;reason=noresource".to_string()
        } else {
            "active;expires=60".to_string()
        };
        notify.headers.push("Subscription-State", state);
        notify.set_body(
            "message/sipfrag;version=2.0",
            format!("SIP/2.0 {code} {reason}\r\n").into_bytes(),
        );
        self.send(now, notify, Purpose::Notify(origin));
    }

    /// Called when a call placed for a REFER ends before being answered: report its failure.
    pub(crate) fn notify_refer_result(&mut self, origin: CallId, code: u16, reason: &str) {
        self.deferred_notifies
            .push((origin, code, reason.to_string()));
    }

    pub(crate) fn flush_deferred_notifies(&mut self, now: Instant) {
        let deferred = std::mem::take(&mut self.deferred_notifies);
        for (origin, code, reason) in deferred {
            let code = if code < 300 { 487 } else { code };
            // The sipfrag carries the status line; our own reason text stays in the log.
            tracing::debug!(%origin, code, %reason, "transfer attempt ended");
            let phrase = msg::default_reason(code);
            self.notify_refer_progress(now, origin, code, &phrase);
        }
    }

    /// Which of our calls an incoming Replaces header names (RFC 3891 §3: from-tag is the
    /// sender's view, so it is our remote tag).
    pub(crate) fn find_replaced(&self, replaces: &msg::Replaces) -> Option<CallId> {
        self.calls
            .values()
            .find(|c| {
                c.dialog.as_ref().is_some_and(|d| {
                    d.id.call_id == replaces.call_id
                        && d.id.local_tag == replaces.to_tag
                        && d.id.remote_tag == replaces.from_tag
                })
            })
            .map(|c| c.id)
    }
}
