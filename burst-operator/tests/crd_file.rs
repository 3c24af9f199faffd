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
    let generated = burst_operator::api::crd_yaml().expect("CRD encodes");
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

fn strip_nulls(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

/// The status burstd writes (as the stored object looks after the merge patch) is valid
/// under the CRD's schema, for every kind of tick.
#[test]
fn written_status_matches_the_crd_schema() {
    use burst_core::policy::{Decision, Reason, Rule, Signal};
    use burst_core::{Outcome, Rate, Rates, RouterError, Split, TickReport, Timestamp};
    use burst_operator::status::StatusTracker;
    use std::time::Duration;

    let crd = serde_json::to_value(burst_operator::api::crd()).unwrap();
    let schema =
        burst_testkit::schema::rewrite(&crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]);
    let validator = jsonschema::validator_for(&schema).unwrap();
    let tick = |signal: Signal, outcome: Outcome| TickReport {
        at: Timestamp::from_duration(Duration::from_secs(1_800_000_000)),
        signal,
        decision: Decision {
            desired: Split::ALL_BURST,
            reason: Reason {
                rule: Rule::AboveHigh,
                rates: None,
                current: Split::ALL_PRIMARY,
                detail: "rate 20 > high 15".into(),
            },
        },
        actual: Some(Split::ALL_PRIMARY),
        read_error: None,
        drift: None,
        outcome,
        belief: Split::ALL_PRIMARY,
        elapsed: Duration::from_millis(1),
        prewarm: None,
    };
    let mut t = StatusTracker::new(Some(4), false, Duration::from_secs(10), None);
    let at = Timestamp::from_duration(Duration::from_secs(1_800_000_000));
    let updates = vec![
        t.on_tick(&tick(
            Signal::Rates(Rates::single(Rate::try_new("r", 20.0).unwrap())),
            Outcome::Applied {
                from: Split::ALL_PRIMARY,
                to: Split::ALL_BURST,
            },
        )),
        t.on_tick(&tick(Signal::NoData("empty".into()), Outcome::Unchanged)),
        t.on_tick(&tick(
            Signal::Error(burst_core::SourceError::new("http", "refused")),
            Outcome::Failed {
                to: Split::ALL_BURST,
                error: burst_core::RouterError::new("server", "500"),
                retry_in: Duration::from_secs(1),
            },
        )),
        t.start_error(&RouterError::new("not_found", "gone"), at),
        t.paused(at),
        t.invalid("invalid_spec", "bad", at),
    ];
    for u in updates {
        let mut obj = serde_json::json!({
            "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
            "metadata": {"name": "w", "namespace": "default"},
            "spec": {"source": {"prometheus": {"url": "http://p"}}, "target": {"name": "w"}},
            "status": u.status,
        });
        strip_nulls(&mut obj);
        let errors: Vec<String> = validator
            .iter_errors(&obj)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(errors.is_empty(), "{errors:?}\n{obj:#}");
        // The schema is not vacuous: a mode it does not know is refused.
        obj["status"]["mode"] = serde_json::json!("Sideways");
        assert!(!validator.is_valid(&obj));
    }
}
