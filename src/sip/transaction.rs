//! TEMPORARY signature stand-in while the real transaction layer is written (helper).
#![allow(dead_code, unused_variables)]
use std::time::{Duration, Instant};
use core::net::SocketAddr;
use super::msg::{Message, Request, Response};
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)] pub enum Transport { Udp, Tcp }
impl Transport { pub fn is_reliable(self) -> bool { self == Transport::Tcp } pub fn as_via(self) -> &'static str { match self { Transport::Udp => "UDP", Transport::Tcp => "TCP" } } }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)] pub struct Target { pub transport: Transport, pub addr: SocketAddr }
#[derive(Debug, Clone, Copy)] pub struct Timers { pub t1: Duration, pub t2: Duration, pub t4: Duration }
impl Default for Timers { fn default() -> Self { Timers { t1: Duration::from_millis(500), t2: Duration::from_secs(4), t4: Duration::from_secs(5) } } }
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)] pub struct TxId(pub u64);
#[derive(Debug, Clone, PartialEq, Eq)] pub struct Transmit { pub target: Target, pub bytes: Vec<u8> }
#[derive(Debug, Clone, thiserror::Error)] pub enum TxError { #[error("x")] X }
#[derive(Debug, Clone)] pub enum TxEvent { Request { tx: Option<TxId>, request: Request, source: Target }, Response { tx: TxId, response: Response }, Timeout { tx: TxId }, AckTimeout { tx: TxId }, TransportError { tx: TxId }, Terminated { tx: TxId }, StrayResponse { response: Response } }
pub struct TransactionLayer;
impl TransactionLayer {
    pub fn new(timers: Timers) -> Self { TransactionLayer }
    pub fn send_request(&mut self, now: Instant, request: Request, target: Target) -> Result<TxId, TxError> { Err(TxError::X) }
    pub fn respond(&mut self, now: Instant, tx: TxId, response: Response) -> Result<(), TxError> { Err(TxError::X) }
    pub fn handle_message(&mut self, now: Instant, message: Message, source: Target) {}
    pub fn handle_timeout(&mut self, now: Instant) {}
    pub fn handle_transport_error(&mut self, now: Instant, target: Target) {}
    pub fn poll_transmit(&mut self) -> Option<Transmit> { None }
    pub fn poll_event(&mut self) -> Option<TxEvent> { None }
    pub fn poll_timeout(&self) -> Option<Instant> { None }
    pub fn find_invite_for_cancel(&self, cancel: &Request) -> Option<TxId> { None }
    pub fn request(&self, tx: TxId) -> Option<&Request> { None }
    pub fn has_provisional(&self, tx: TxId) -> bool { false }
}
pub fn new_branch(random: u64) -> String { format!("z9hG4bK{random:016x}") }
pub fn build_cancel(invite: &Request) -> Request { invite.clone() }
