//! Model-based property test of the controller: random sequences of source results (values,
//! no data, errors, timeouts) and router results (ok, conflict, error, drift) never produce a
//! write the policy did not decide, and the controller's belief matches the route whenever it
//! could know it.

use std::sync::Arc;
use std::time::Duration;

use burst_core::policy::{Policy, PolicySpec};
use burst_core::testing::{MemoryRouter, MemorySource, Scripted};
use burst_core::{
    Controller, ControllerConfig, HumanDuration, Observation, Outcome, Rate, Rates, Reading,
    RouterError, Split, Timestamp, Weight,
};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Src {
    Value(f64, f64),
    NoData,
    Error,
}

#[derive(Debug, Clone)]
struct Step {
    source: Src,
    read_fails: bool,
    apply_fails: Option<&'static str>,
    drift: Option<u8>,
    advance_ms: u64,
}

fn step() -> impl Strategy<Value = Step> {
    let source = prop_oneof![
        4 => (0.0f64..40.0, 0.0f64..40.0).prop_map(|(a, b)| Src::Value(a, b)),
        1 => Just(Src::NoData),
        1 => Just(Src::Error),
    ];
    let apply = prop_oneof![
        4 => Just(None),
        1 => Just(Some("conflict")),
        1 => Just(Some("server")),
    ];
    (
        source,
        prop::bool::weighted(0.1),
        apply,
        prop::option::weighted(0.1, 0u8..=100),
        0u64..3000,
    )
        .prop_map(
            |(source, read_fails, apply_fails, drift, advance_ms)| Step {
                source,
                read_fails,
                apply_fails,
                drift,
                advance_ms,
            },
        )
}

fn spec() -> impl Strategy<Value = PolicySpec> {
    prop_oneof![
        Just(PolicySpec::default()),
        Just(PolicySpec::recommended()),
        Just(PolicySpec::recommended_overflow(15.0)),
        Just(PolicySpec {
            on_missing: burst_core::policy::OnMissing::Primary,
            stale_after: HumanDuration::from_secs(5),
            sustain: HumanDuration::from_secs(2),
            ..PolicySpec::default()
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn controller_only_writes_what_the_policy_decided(
        spec in spec(),
        initial in 0u8..=100,
        steps in proptest::collection::vec(step(), 1..60),
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap();
        rt.block_on(async {
            let source = Arc::new(MemorySource::new());
            let initial = Split::from_burst(Weight::try_new(i64::from(initial)).unwrap());
            let router = Arc::new(MemoryRouter::new(initial));
            let replay_policy = spec.build().unwrap();
            let mut ctl = Controller::new(
                source.clone(),
                spec.build().unwrap(),
                router.clone(),
                ControllerConfig::default(),
            );
            ctl.start().await.unwrap();
            let mut reports = Vec::new();
            for s in &steps {
                source.push(match s.source {
                    Src::Value(up, down) => Scripted::Reading(Reading::Value(Observation::new(Rates {
                            up: Rate::try_new("u", up).unwrap(),
                            down: Rate::try_new("d", down).unwrap(),
                        }, Timestamp::ZERO))),
                    Src::NoData => Scripted::Reading(Reading::NoData { reason: "empty".into() }),
                    Src::Error => Scripted::Error { kind: "http", message: "down".into() },
                });
                if let Some(d) = s.drift {
                    router.set_externally(Split::from_burst(Weight::try_new(i64::from(d)).unwrap()));
                }
                if s.read_fails {
                    router.fail_next_read(RouterError::new("server", "500"));
                }
                if let Some(kind) = s.apply_fails {
                    router.fail_next_apply(RouterError::new(kind, "injected"));
                }
                let before = router.applied().len();
                let r = ctl.tick().await.unwrap();
                let after = router.applied();
                match &r.outcome {
                    Outcome::Applied { to, .. } => {
                        // Exactly one write, of what the policy decided.
                        prop_assert_eq!(after.len(), before + 1);
                        prop_assert_eq!(*to, r.decision.desired);
                        prop_assert_eq!(after[before], r.decision.desired);
                        prop_assert_eq!(router.split(), r.belief);
                    }
                    other => {
                        // No write at all on any other outcome (a failing apply leaves nothing).
                        prop_assert_eq!(after.len(), before, "{:?}", other);
                    }
                }
                if matches!(r.outcome, Outcome::Unchanged) && r.actual.is_some() {
                    prop_assert_eq!(router.split(), r.belief);
                }
                // Weights are always a valid split.
                let b = router.split();
                prop_assert_eq!(u16::from(b.primary().get()) + u16::from(b.burst().get()), 100);
                // Clear any fault the tick did not consume, so it does not leak into the next.
                router.clear_faults();
                reports.push(r);
                tokio::time::advance(Duration::from_millis(s.advance_ms)).await;
            }
            // The policy alone, fed the same inputs, decides the same thing every tick.
            let mut replay = replay_policy;
            for r in &reports {
                let d = replay.decide(&r.signal, r.decision.reason.current, r.at);
                prop_assert_eq!(&d, &r.decision);
            }
            Ok(())
        })?;
    }
}
