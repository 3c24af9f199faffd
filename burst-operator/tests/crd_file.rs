//! The committed CRD YAML is exactly what `burstd crd` prints.
//!
//! After changing `burst-operator/src/crd.rs`, regenerate it with
//! `BURST_UPDATE_GOLDEN=1 cargo test -p burst-operator --test crd_file`
//! (or `burstd crd > deploy/crd/burstpolicies.bursting.dev.yaml`).

use std::path::PathBuf;

#[test]
fn committed_crd_is_up_to_date() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/crd/burstpolicies.bursting.dev.yaml");
    let generated = burst_operator::crd::crd_yaml().expect("CRD encodes");
    if std::env::var_os("BURST_UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &generated).expect("write CRD file");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "{} is out of date with burst-operator/src/crd.rs; regenerate it with \
         `BURST_UPDATE_GOLDEN=1 cargo test -p burst-operator --test crd_file` \
         or `burstd crd > deploy/crd/burstpolicies.bursting.dev.yaml`",
        path.display()
    );
}
