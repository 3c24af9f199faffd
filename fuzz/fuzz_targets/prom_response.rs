//! Fuzz target: see `burst-faults/src/prom_oracle.rs` (included as a file so this target
//! builds with burst-prom alone: `cargo fuzz run prom_response --features prom`).
#![no_main]

#[path = "../../burst-faults/src/prom_oracle.rs"]
#[allow(dead_code)] // each target uses one of the two oracles
mod prom_oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = prom_oracle::prom_response(data) {
        panic!("{e}");
    }
});
