//! The node protocol's frame reader and handshake: never panic, bounded
//! buffering, oversized handshakes refused from their length prefix.
#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| accordant_fuzz::check_frame_stream(data));
