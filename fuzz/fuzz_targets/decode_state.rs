//! The canonical decoder of every CRDT type: never panics; what it accepts
//! re-encodes to the same bytes and behaves as a state.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| accordant_fuzz::decode_any(data));
