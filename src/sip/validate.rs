//! TEMPORARY signature stand-in while the real validation is written (helper).
#![allow(dead_code, unused_variables)]
use super::msg::{Method, Rejected, Request, Response};
pub struct UasPolicy {
    pub allowed_methods: Vec<Method>,
    pub supported_extensions: Vec<String>,
    pub accepted_content_types: Vec<String>,
}
impl Default for UasPolicy {
    fn default() -> Self {
        UasPolicy {
            allowed_methods: vec![],
            supported_extensions: vec![],
            accepted_content_types: vec![],
        }
    }
}
pub struct Rejection {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
}
pub fn check_request(req: &Request, policy: &UasPolicy) -> Result<(), Rejection> {
    Ok(())
}
pub fn response_for_rejected(rejected: &Rejected) -> Option<Response> {
    None
}
