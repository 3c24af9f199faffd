//! Fuzz target: see `burst_faults::oracles::exposition`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = burst_faults::oracles::exposition(data) {
        panic!("{e}");
    }
});
