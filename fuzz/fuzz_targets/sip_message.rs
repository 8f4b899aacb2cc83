#![no_main]

// Each target uses one of the shared bodies.
#[allow(dead_code)]
#[path = "checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::sip_message(data));
