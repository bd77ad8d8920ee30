//! One honest store against a peer that sends arbitrary and mutated messages.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: accordant_fuzz::SessionInput| {
    accordant_fuzz::check_session(&input)
});
