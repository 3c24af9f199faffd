//! Fuzz target: see `burst_faults::oracles::httproute_transform` (with CRD schema validation).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = burst_faults::oracles::httproute_transform(data, true) {
        panic!("{e}");
    }
});
