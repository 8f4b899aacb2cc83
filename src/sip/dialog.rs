//! Dialogs (RFC 3261 §12): the peer-to-peer relationship an INVITE (or a REFER's subscription)
//! sets up, identified by Call-ID + local tag + remote tag, with its own CSeq spaces, route set
//! and remote target.

use super::msg::{CSeq, Method, NameAddr, Request, Response, SipHeaders, Uri, Via};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: String,
}

#[derive(Debug, Clone)]
pub struct Dialog {
    pub id: DialogId,
    /// Our From/To value (name-addr with our tag) as it appears in requests we send.
    pub local: NameAddr,
    /// The peer's From/To value with its tag.
    pub remote: NameAddr,
    pub local_seq: u32,
    pub remote_seq: Option<u32>,
    /// Where in-dialog requests go: the peer's Contact, refreshed by target-refresh requests.
    pub remote_target: Uri,
    /// Proxies that asked to stay on the path (Record-Route), in the order our requests visit them.
    pub route_set: Vec<NameAddr>,
}

/// Why an in-dialog request was refused before its method was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InDialogError {
    /// CSeq lower than one already seen (RFC 3261 §12.2.2): answer 500.
    OutOfOrder,
}

impl Dialog {
    /// The UAC side, from the request we sent and a 2xx (or 1xx with To tag) that came back.
    pub fn from_uac(request: &Request, response: &Response) -> Option<Dialog> {
        let call_id = request.call_id()?.to_string();
        let local = request.from_header()?;
        let remote = response.to_header()?;
        let remote_tag = remote.tag()?.to_string();
        let local_tag = local.tag()?.to_string();
        // A response without Contact would leave us nowhere to send the ACK; fall back to the
        // Request-URI so a sloppy peer still gets one.
        let remote_target = response
            .contact()
            .map(|c| c.uri)
            .unwrap_or_else(|| request.uri.clone());
        let mut route_set = response.record_routes();
        route_set.reverse();
        Some(Dialog {
            id: DialogId {
                call_id,
                local_tag,
                remote_tag,
            },
            local,
            remote,
            local_seq: request.cseq()?.seq,
            remote_seq: None,
            remote_target,
            route_set,
        })
    }

    /// The UAS side, from a request that created the dialog and the tag we give our end.
    pub fn from_uas(request: &Request, local_tag: &str) -> Option<Dialog> {
        let call_id = request.call_id()?.to_string();
        let remote = request.from_header()?;
        let remote_tag = remote.tag()?.to_string();
        let local = request.to_header()?.with_tag(local_tag);
        let remote_target = request.contact()?.uri;
        Some(Dialog {
            id: DialogId {
                call_id,
                local_tag: local_tag.to_string(),
                remote_tag,
            },
            local,
            remote,
            // Our first request in this dialog starts a fresh CSeq space (RFC 3261 §12.1.1).
            local_seq: 0,
            remote_seq: request.cseq().map(|c| c.seq),
            remote_target,
            route_set: request.record_routes(),
        })
    }

    /// Does this request (received) belong to this dialog?
    pub fn matches_request(&self, request: &Request) -> bool {
        request.call_id() == Some(self.id.call_id.as_str())
            && request.to_tag().as_deref() == Some(self.id.local_tag.as_str())
            && request.from_tag().as_deref() == Some(self.id.remote_tag.as_str())
    }

    /// Check and record the CSeq of an incoming in-dialog request.
    pub fn accept_remote_cseq(&mut self, request: &Request) -> Result<(), InDialogError> {
        let Some(cseq) = request.cseq() else {
            return Err(InDialogError::OutOfOrder);
        };
        // ACK and CANCEL reuse the CSeq number of the request they belong to.
        if matches!(request.method, Method::Ack | Method::Cancel) {
            return Ok(());
        }
        if let Some(seen) = self.remote_seq {
            if cseq.seq < seen {
                return Err(InDialogError::OutOfOrder);
            }
        }
        self.remote_seq = Some(cseq.seq);
        Ok(())
    }

    /// A target-refresh request or response carried a new Contact (RFC 3261 §12.2).
    pub fn refresh_target(&mut self, message: &impl SipHeaders) {
        if let Some(contact) = message.contact() {
            self.remote_target = contact.uri;
        }
    }

    /// A new in-dialog request (not ACK/CANCEL): next CSeq, Request-URI and Route per §12.2.1.1.
    pub fn new_request(&mut self, method: Method, via: Via) -> Request {
        self.local_seq = self.local_seq.saturating_add(1);
        let seq = self.local_seq;
        self.build(method, seq, via)
    }

    /// The ACK for a 2xx to the INVITE with this CSeq number (RFC 3261 §13.2.2.4).
    pub fn ack(&self, invite_seq: u32, via: Via) -> Request {
        self.build(Method::Ack, invite_seq, via)
    }

    fn build(&self, method: Method, seq: u32, via: Via) -> Request {
        let (uri, routes) = self.request_uri_and_routes();
        let mut request = Request::new(method.clone(), uri);
        let h = &mut request.headers;
        h.push("Via", via.to_string());
        h.push("Max-Forwards", "70");
        h.push("From", self.local.to_string());
        h.push("To", self.remote.to_string());
        h.push("Call-ID", self.id.call_id.clone());
        h.push("CSeq", CSeq { seq, method }.to_string());
        for route in routes {
            h.push("Route", route.to_string());
        }
        request
    }

    /// Loose routing puts the remote target in the Request-URI and the whole route set in Route;
    /// a strict router (no `lr`) must be the Request-URI, with the target appended last.
    fn request_uri_and_routes(&self) -> (Uri, Vec<NameAddr>) {
        match self.route_set.first() {
            None => (self.remote_target.clone(), Vec::new()),
            Some(first) if first.uri.is_loose_router() => {
                (self.remote_target.clone(), self.route_set.clone())
            }
            Some(first) => {
                let mut uri = first.uri.clone();
                uri.headers.clear();
                let mut routes: Vec<NameAddr> = self.route_set[1..].to_vec();
                routes.push(NameAddr::new(self.remote_target.clone()));
                (uri, routes)
            }
        }
    }

    /// The URI of the next hop for requests in this dialog: the first route or the target.
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map(|r| &r.uri)
            .unwrap_or(&self.remote_target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::msg::{parse, Message};

    fn request(text: &str) -> Request {
        match parse(text.as_bytes()) {
            Ok(Message::Request(r)) => r,
            other => panic!("not a request: {other:?}"),
        }
    }

    fn response(text: &str) -> Response {
        match parse(text.as_bytes()) {
            Ok(Message::Response(r)) => r,
            other => panic!("not a response: {other:?}"),
        }
    }

    const INVITE: &str = "INVITE sip:bob@b.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@a.example>;tag=a1\r\nTo: <sip:bob@b.example>\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:alice@10.0.0.1:5060>\r\nRecord-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn uac_dialog_reverses_record_route_and_targets_contact() {
        let req = request(INVITE);
        let resp = response("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@a.example>;tag=a1\r\nTo: <sip:bob@b.example>;tag=b1\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:bob@10.0.0.2:5062>\r\nRecord-Route: <sip:p2.example;lr>, <sip:p1.example;lr>\r\nContent-Length: 0\r\n\r\n");
        let mut d = Dialog::from_uac(&req, &resp).expect("dialog");
        assert_eq!(d.id.remote_tag, "b1");
        assert_eq!(d.route_set[0].uri.host, "p1.example");
        let bye = d.new_request(
            Method::Bye,
            Via::new("UDP", "10.0.0.1", Some(5060), "z9hG4bK2"),
        );
        assert_eq!(bye.uri.to_string(), "sip:bob@10.0.0.2:5062");
        assert_eq!(bye.cseq().map(|c| c.seq), Some(8));
        let routes: Vec<&str> = bye.headers.get_all("Route").collect();
        assert_eq!(routes, vec!["<sip:p1.example;lr>", "<sip:p2.example;lr>"]);
        let ack = d.ack(7, Via::new("UDP", "10.0.0.1", Some(5060), "z9hG4bK3"));
        assert_eq!(ack.cseq().map(|c| c.seq), Some(7));
        assert_eq!(ack.method, Method::Ack);
    }

    #[test]
    fn uas_dialog_keeps_record_route_order_and_checks_cseq() {
        let req = request(INVITE);
        let mut d = Dialog::from_uas(&req, "b9").expect("dialog");
        assert_eq!(d.route_set[0].uri.host, "p2.example");
        assert_eq!(d.local.tag(), Some("b9"));
        let mut bye = req.clone();
        bye.method = Method::Bye;
        bye.headers.set("CSeq", "6 BYE");
        bye.headers.set("To", "<sip:bob@b.example>;tag=b9");
        assert!(d.matches_request(&bye));
        assert_eq!(d.accept_remote_cseq(&bye), Err(InDialogError::OutOfOrder));
        bye.headers.set("CSeq", "8 BYE");
        assert_eq!(d.accept_remote_cseq(&bye), Ok(()));
    }

    #[test]
    fn strict_router_becomes_request_uri() {
        let req = request(INVITE);
        let resp = response("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK1\r\nFrom: <sip:alice@a.example>;tag=a1\r\nTo: <sip:bob@b.example>;tag=b1\r\nCall-ID: c1\r\nCSeq: 7 INVITE\r\nContact: <sip:bob@10.0.0.2>\r\nRecord-Route: <sip:strict.example>\r\nContent-Length: 0\r\n\r\n");
        let mut d = Dialog::from_uac(&req, &resp).expect("dialog");
        let bye = d.new_request(Method::Bye, Via::new("UDP", "h", None, "z9hG4bK9"));
        assert_eq!(bye.uri.host, "strict.example");
        assert_eq!(bye.headers.get("Route"), Some("<sip:bob@10.0.0.2>"));
    }
}
