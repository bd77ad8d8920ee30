//! The wire decoder of accordant-sync: never panics, round-trips what it accepts.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| accordant_fuzz::check_message(data));
