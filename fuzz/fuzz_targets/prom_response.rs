//! Fuzz target: see `burst_faults::oracles::prom_response`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = burst_faults::oracles::prom_response(data) {
        panic!("{e}");
    }
});
