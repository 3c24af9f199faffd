//! Fuzz target: burst-istio's VirtualService transform on any JSON and on hostile objects
//! built from the input; see `burst_fuzz::routes` (`fuzz/src/routes.rs`) for the oracle.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = burst_fuzz::routes::vs_input(data) {
        panic!("{e}");
    }
});
