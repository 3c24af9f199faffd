//! The `policy.yaml` oracle, on its own so the cargo-fuzz target can include this file
//! with only `burst-core` as a dependency (a small, quick instrumented build).

use std::time::Duration;

use burst_core::policy::{Policy, PolicyFile, Signal};
use burst_core::{Rate, Rates, Split, Timestamp};

/// `policy.yaml`: parsing never panics; a file that parses builds a policy, and that
/// policy decides on any signal without panicking.
pub fn policy_yaml(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(file) = PolicyFile::from_yaml(text) else {
        return Ok(());
    };
    let spec = &file.policy;
    let mut policy = spec
        .build()
        .map_err(|e| format!("validated spec does not build: {e}\n{spec:?}"))?;
    let mut now = Timestamp::ZERO;
    let mut split = Split::ALL_PRIMARY;
    for rps in [0.0, 5.0, 12.0, 20.0, 1e9, 0.0] {
        let rate = Rate::try_new("rps", rps).map_err(|e| e.to_string())?;
        for signal in [
            Signal::Rates(Rates::single(rate)),
            Signal::NoData("x".into()),
        ] {
            split = policy.decide(&signal, split, now).desired;
            now = now.saturating_add(Duration::from_secs(7));
        }
    }
    Ok(())
}
