//! The targeted pull's `Pull` and `Value` payloads: never panic, accept
//! only canonical bytes, and a refused value changes nothing.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| accordant_fuzz::check_pull_value(data));
