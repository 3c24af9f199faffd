//! Fuzz target: `policy.yaml` parsing; see `burst-faults/src/policy_oracle.rs` (included
//! as a file so this target builds with burst-core alone).
#![no_main]

#[path = "../../burst-faults/src/policy_oracle.rs"]
mod policy_oracle;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(e) = policy_oracle::policy_yaml(data) {
        panic!("{e}");
    }
});
