//! Two stores with arbitrary histories synchronise through the simulator
//! under arbitrary loss, duplication and reordering, and end equal.
#![no_main]
libfuzzer_sys::fuzz_target!(|input: accordant_fuzz::StoreSyncInput| {
    accordant_fuzz::check_store_sync(&input)
});
