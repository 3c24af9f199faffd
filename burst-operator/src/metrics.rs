//! burstd's own metrics, served on `/metrics` in the Prometheus text format.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `burstd_observed_rps` | gauge | `policy`, `window` (`short`/`long`) |
//! | `burstd_burst_weight` | gauge | `policy` |
//! | `burstd_transitions_total` | counter | `policy`, `direction` (`up`/`down`) |
//! | `burstd_tick_duration_seconds` | histogram | `policy` |
//! | `burstd_source_errors_total` | counter | `policy`, `kind` |
//! | `burstd_no_data_total` | counter | `policy` |
//! | `burstd_router_errors_total` | counter | `policy`, `kind` |
//! | `burstd_decisions_total` | counter | `policy`, `rule` |
//! | `burstd_drift_repairs_total` | counter | `policy` |
//! | `burstd_last_data_timestamp_seconds` | gauge | `policy` |
//! | `burstd_policy_threshold_rps` | gauge | `policy`, `bound` (`high`/`low` or `capacity`) |
//! | `burstd_policy_stale_after_seconds` | gauge | `policy` |
//! | `burstd_status_write_errors_total` | counter | `kind` |
//! | `burstd_event_errors_total` | counter | `kind` |
//! | `burstd_leader` | gauge | (1 when this instance holds the lease) |
//! | `burstd_policies` | gauge | (control loops running) |
//! | `burstd_prewarm_prepared` | gauge | `policy` (1 while the burst side is pre-warmed) |
//! | `burstd_prewarm_errors_total` | counter | `policy`, `kind` (failed pre-warm calls) |
//!
//! `policy` is `namespace/name`; error `kind`s are the errors' stable labels. Every label
//! takes a bounded set of values: one per policy, times a fixed set of windows, directions,
//! rules, bounds and error kinds.
//!
//! The four after `burstd_decisions_total` exist for dashboards and alerts (deploy/monitoring/,
//! docs/operations.md):
//!
//! - `burstd_drift_repairs_total` counts ticks that found the route changed by someone else
//!   since burstd's last write and wrote burstd's split back. A change to what the policy
//!   wants anyway is adopted, not counted; followers never write, so never count. A steady
//!   increase means another writer (a person, a GitOps tool) fights burstd over the weights.
//! - `burstd_last_data_timestamp_seconds` is the Unix time of the last tick whose source
//!   answered with data, or of the loop's start while it has had none, so
//!   `time() - burstd_last_data_timestamp_seconds > burstd_policy_stale_after_seconds`
//!   says "no data for longer than `staleAfter`".
//! - `burstd_policy_threshold_rps` and `burstd_policy_stale_after_seconds` export the
//!   running loop's settings from its spec (`high` and `low` in hysteresis mode, `capacity`
//!   in overflow mode), so demand can be drawn against them.
//!
//! Size: About 400 lines of code, most of it the registration of each metric with its help
//! text; ~200 lines are the unit tests of the exposition.

use std::sync::atomic::AtomicU64;

use burst_core::policy::{Mode, PolicySpec, Signal};
use burst_core::{Outcome, TickReport, Timestamp};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels naming a policy.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PolicyLabels {
    /// `namespace/name`.
    pub policy: String,
}

/// A policy and a rate window.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WindowLabels {
    /// `namespace/name`.
    pub policy: String,
    /// `short` or `long`.
    pub window: String,
}

/// A policy and a direction of change.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `namespace/name`.
    pub policy: String,
    /// `up` (more burst) or `down`.
    pub direction: String,
}

/// A policy and an error kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `namespace/name`.
    pub policy: String,
    /// The error's stable kind.
    pub kind: String,
}

/// A policy and a decision rule.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// `namespace/name`.
    pub policy: String,
    /// The rule's name.
    pub rule: String,
}

/// A policy and one of its thresholds.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BoundLabels {
    /// `namespace/name`.
    pub policy: String,
    /// `high`, `low` or `capacity`.
    pub bound: String,
}

/// An error kind.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    /// The error's stable kind.
    pub kind: String,
}

type HistogramFamily = Family<PolicyLabels, Histogram, fn() -> Histogram>;

/// Every metric burstd exports, in one registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    observed: Family<WindowLabels, Gauge<f64, AtomicU64>>,
    burst_weight: Family<PolicyLabels, Gauge>,
    transitions: Family<DirectionLabels, Counter>,
    tick_duration: HistogramFamily,
    source_errors: Family<ErrorLabels, Counter>,
    no_data: Family<PolicyLabels, Counter>,
    router_errors: Family<ErrorLabels, Counter>,
    decisions: Family<RuleLabels, Counter>,
    drift_repairs: Family<PolicyLabels, Counter>,
    last_data: Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    thresholds: Family<BoundLabels, Gauge<f64, AtomicU64>>,
    stale_after: Family<PolicyLabels, Gauge<f64, AtomicU64>>,
    status_write_errors: Family<KindLabels, Counter>,
    event_errors: Family<KindLabels, Counter>,
    leader: Gauge,
    policies: Gauge,
    prewarm: crate::prewarm::PrewarmMetrics,
}

fn tick_histogram() -> Histogram {
    // 1 ms .. ~16 s
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every metric registered (prefix `burstd`).
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("burstd");
        let m = Metrics {
            observed: Family::default(),
            burst_weight: Family::default(),
            transitions: Family::default(),
            tick_duration: Family::new_with_constructor(tick_histogram),
            source_errors: Family::default(),
            no_data: Family::default(),
            router_errors: Family::default(),
            decisions: Family::default(),
            drift_repairs: Family::default(),
            last_data: Family::default(),
            thresholds: Family::default(),
            stale_after: Family::default(),
            status_write_errors: Family::default(),
            event_errors: Family::default(),
            leader: Gauge::default(),
            policies: Gauge::default(),
            prewarm: crate::prewarm::PrewarmMetrics::default(),
            registry: Registry::default(),
        };
        registry.register(
            "observed_rps",
            "Last measured request rate per window",
            m.observed.clone(),
        );
        registry.register(
            "burst_weight",
            "Weight of the burst destination in effect",
            m.burst_weight.clone(),
        );
        registry.register(
            "transitions",
            "Split changes applied, by direction",
            m.transitions.clone(),
        );
        registry.register(
            "tick_duration_seconds",
            "Time one control tick took (measure, read, decide, apply)",
            m.tick_duration.clone(),
        );
        registry.register(
            "source_errors",
            "Metric source failures, by error kind",
            m.source_errors.clone(),
        );
        registry.register(
            "no_data",
            "Ticks where the source answered without data",
            m.no_data.clone(),
        );
        registry.register(
            "router_errors",
            "Route read and apply failures, by error kind",
            m.router_errors.clone(),
        );
        registry.register(
            "decisions",
            "Policy decisions, by rule",
            m.decisions.clone(),
        );
        registry.register(
            "drift_repairs",
            "Route changes by someone else that burstd wrote its split over",
            m.drift_repairs.clone(),
        );
        registry.register(
            "last_data_timestamp_seconds",
            "Unix time of the last tick with data from the source (or of the loop's start)",
            m.last_data.clone(),
        );
        registry.register(
            "policy_threshold_rps",
            "Thresholds of the running policy: high and low (hysteresis) or capacity (overflow)",
            m.thresholds.clone(),
        );
        registry.register(
            "policy_stale_after_seconds",
            "How long the running policy tolerates missing data (staleAfter)",
            m.stale_after.clone(),
        );
        registry.register(
            "status_write_errors",
            "Failed BurstPolicy status updates, by error kind",
            m.status_write_errors.clone(),
        );
        registry.register(
            "event_errors",
            "Kubernetes Events that could not be recorded, by error kind",
            m.event_errors.clone(),
        );
        registry.register(
            "leader",
            "1 when this instance holds the leader lease",
            m.leader.clone(),
        );
        registry.register(
            "policies",
            "Control loops running in this instance",
            m.policies.clone(),
        );
        m.prewarm.register(&mut registry);
        Metrics { registry, ..m }
    }

    /// The text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!(error = %e, "encoding metrics failed");
        }
        out
    }

    /// Records one tick of `policy`.
    pub fn record_tick(&self, policy: &str, report: &TickReport) {
        let p = PolicyLabels {
            policy: policy.to_owned(),
        };
        self.tick_duration
            .get_or_create(&p)
            .observe(report.elapsed.as_secs_f64());
        self.decisions
            .get_or_create(&RuleLabels {
                policy: policy.to_owned(),
                rule: report.decision.reason.rule.name().to_owned(),
            })
            .inc();
        if report.drift.is_some() && matches!(report.outcome, Outcome::Applied { .. }) {
            self.drift_repairs.get_or_create(&p).inc();
        }
        match &report.signal {
            Signal::Rates(r) | Signal::Observed(burst_core::Observation { rates: r, .. }) => {
                self.last_data
                    .get_or_create(&p)
                    .set(report.at.as_secs_f64());
                for (window, v) in [("short", r.up.get()), ("long", r.down.get())] {
                    self.observed
                        .get_or_create(&WindowLabels {
                            policy: policy.to_owned(),
                            window: window.to_owned(),
                        })
                        .set(v);
                }
            }
            Signal::NoData(_) => {
                self.no_data.get_or_create(&p).inc();
                self.clear_observed(policy);
            }
            Signal::Error(error) => {
                self.source_error(policy, error.kind());
                self.clear_observed(policy);
            }
        }
        if let Some(error) = &report.read_error {
            self.router_error(policy, error.kind());
        }
        match &report.outcome {
            Outcome::Applied { from, to } => {
                let direction = if to.burst() > from.burst() {
                    "up"
                } else {
                    "down"
                };
                self.transitions
                    .get_or_create(&DirectionLabels {
                        policy: policy.to_owned(),
                        direction: direction.to_owned(),
                    })
                    .inc();
            }
            Outcome::Failed { error, .. } => self.router_error(policy, error.kind()),
            _ => {}
        }
        self.burst_weight
            .get_or_create(&p)
            .set(i64::from(report.belief.burst().get()));
        if let Some(prewarm) = &report.prewarm {
            self.prewarm.record(policy, prewarm);
        }
    }

    /// Exports the settings of a loop that starts now (`now`: Unix time) for `policy`: its
    /// thresholds and `staleAfter`, and the start as the time of the last data, so that a
    /// source that never answers is seen as missing data once `staleAfter` has passed.
    pub fn policy_started(&self, policy: &str, spec: &PolicySpec, now: Timestamp) {
        let p = PolicyLabels {
            policy: policy.to_owned(),
        };
        self.clear_thresholds(policy);
        let bounds: Vec<(&str, f64)> = match spec.mode {
            Mode::Hysteresis => vec![("high", spec.high), ("low", spec.low)],
            Mode::Overflow => spec
                .capacity
                .map(|c| vec![("capacity", c)])
                .unwrap_or_default(),
        };
        for (bound, value) in bounds {
            self.thresholds
                .get_or_create(&BoundLabels {
                    policy: policy.to_owned(),
                    bound: bound.to_owned(),
                })
                .set(value);
        }
        self.stale_after
            .get_or_create(&p)
            .set(spec.stale_after.get().as_secs_f64());
        self.last_data.get_or_create(&p).set(now.as_secs_f64());
    }

    fn clear_thresholds(&self, policy: &str) {
        for bound in ["high", "low", "capacity"] {
            self.thresholds.remove(&BoundLabels {
                policy: policy.to_owned(),
                bound: bound.to_owned(),
            });
        }
    }

    fn clear_observed(&self, policy: &str) {
        for window in ["short", "long"] {
            self.observed.remove(&WindowLabels {
                policy: policy.to_owned(),
                window: window.to_owned(),
            });
        }
    }

    /// Counts a source error.
    pub fn source_error(&self, policy: &str, kind: &str) {
        self.source_errors
            .get_or_create(&ErrorLabels {
                policy: policy.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a router error.
    pub fn router_error(&self, policy: &str, kind: &str) {
        self.router_errors
            .get_or_create(&ErrorLabels {
                policy: policy.to_owned(),
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts a failed status update.
    pub fn status_write_error(&self, kind: &str) {
        self.status_write_errors
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Counts an Event that could not be recorded.
    pub fn event_error(&self, kind: &str) {
        self.event_errors
            .get_or_create(&KindLabels {
                kind: kind.to_owned(),
            })
            .inc();
    }

    /// Sets the leader gauge.
    pub fn set_leader(&self, leader: bool) {
        self.leader.set(i64::from(leader));
    }

    /// Sets the number of running control loops.
    pub fn set_policies(&self, n: usize) {
        self.policies.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Drops the per-policy gauges of a policy that no longer runs (counters stay).
    pub fn forget_policy(&self, policy: &str) {
        let p = PolicyLabels {
            policy: policy.to_owned(),
        };
        self.clear_observed(policy);
        self.clear_thresholds(policy);
        self.burst_weight.remove(&p);
        self.last_data.remove(&p);
        self.stale_after.remove(&p);
        self.prewarm.forget(policy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::policy::{Decision, Reason, Rule};
    use burst_core::{Rate, Rates, Split, Timestamp};
    use std::time::Duration;

    fn report(signal: Signal, outcome: Outcome, belief: Split) -> TickReport {
        TickReport {
            at: Timestamp::ZERO,
            signal,
            decision: Decision {
                desired: belief,
                reason: Reason {
                    rule: Rule::AboveHigh,
                    rates: None,
                    current: Split::ALL_PRIMARY,
                    detail: String::new(),
                },
            },
            actual: Some(Split::ALL_PRIMARY),
            read_error: None,
            drift: None,
            outcome,
            belief,
            elapsed: Duration::from_millis(3),
            prewarm: None,
        }
    }

    #[test]
    fn ticks_update_every_metric() {
        let m = Metrics::new();
        let rates = Rates::single(Rate::try_new("r", 20.5).unwrap());
        m.record_tick(
            "default/w",
            &report(
                Signal::Rates(rates),
                Outcome::Applied {
                    from: Split::ALL_PRIMARY,
                    to: Split::ALL_BURST,
                },
                Split::ALL_BURST,
            ),
        );
        m.record_tick(
            "default/w",
            &report(
                Signal::Error(burst_core::SourceError::new("timeout", "slow")),
                Outcome::Failed {
                    to: Split::ALL_PRIMARY,
                    error: burst_core::RouterError::new("conflict", "409"),
                    retry_in: Duration::from_secs(1),
                },
                Split::ALL_BURST,
            ),
        );
        m.set_leader(true);
        let text = m.encode();
        for line in [
            r#"burstd_transitions_total{policy="default/w",direction="up"} 1"#,
            r#"burstd_burst_weight{policy="default/w"} 100"#,
            r#"burstd_source_errors_total{policy="default/w",kind="timeout"} 1"#,
            r#"burstd_router_errors_total{policy="default/w",kind="conflict"} 1"#,
            r#"burstd_tick_duration_seconds_count{policy="default/w"} 2"#,
            r#"burstd_decisions_total{policy="default/w",rule="above_high"} 2"#,
            "burstd_leader 1",
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        // The source failed after the value: no stale rate is exported.
        assert!(!text.contains("burstd_observed_rps{"), "{text}");
    }

    #[test]
    fn observed_rate_is_exported_per_window() {
        let m = Metrics::new();
        let rates = Rates {
            up: Rate::try_new("r", 3.0).unwrap(),
            down: Rate::try_new("r", 7.0).unwrap(),
        };
        m.record_tick(
            "ns/p",
            &report(Signal::Rates(rates), Outcome::Unchanged, Split::ALL_PRIMARY),
        );
        let text = m.encode();
        assert!(text.contains(r#"burstd_observed_rps{policy="ns/p",window="short"} 3.0"#));
        assert!(text.contains(r#"burstd_observed_rps{policy="ns/p",window="long"} 7.0"#));
        m.forget_policy("ns/p");
        assert!(!m.encode().contains("burstd_observed_rps{"));
    }

    #[test]
    fn drift_and_last_data_follow_the_ticks() {
        let m = Metrics::new();
        let spec = PolicySpec::default();
        m.policy_started("ns/p", &spec, Timestamp::from_secs_f64(1000.0).unwrap());
        let text = m.encode();
        assert!(
            text.contains(r#"burstd_last_data_timestamp_seconds{policy="ns/p"} 1000.0"#),
            "the loop's start counts as the last data: {text}"
        );
        let rates = Rates::single(Rate::try_new("r", 5.0).unwrap());
        let repaired = Outcome::Applied {
            from: Split::ALL_BURST,
            to: Split::ALL_PRIMARY,
        };
        let mut with_data = report(Signal::Rates(rates), repaired, Split::ALL_PRIMARY);
        with_data.at = Timestamp::from_secs_f64(1010.0).unwrap();
        with_data.drift = Some(Split::ALL_BURST);
        m.record_tick("ns/p", &with_data);
        // Drift to what the policy wants is adopted: not a repair.
        let mut adopted = report(Signal::Rates(rates), Outcome::Unchanged, Split::ALL_BURST);
        adopted.at = Timestamp::from_secs_f64(1015.0).unwrap();
        adopted.drift = Some(Split::ALL_BURST);
        m.record_tick("ns/p", &adopted);
        let mut no_data = report(
            Signal::NoData("empty".into()),
            Outcome::Unchanged,
            Split::ALL_PRIMARY,
        );
        no_data.at = Timestamp::from_secs_f64(1020.0).unwrap();
        m.record_tick("ns/p", &no_data);
        let text = m.encode();
        assert!(
            text.contains(r#"burstd_last_data_timestamp_seconds{policy="ns/p"} 1015.0"#),
            "a tick without data leaves the time of the last data: {text}"
        );
        assert!(
            text.contains(r#"burstd_drift_repairs_total{policy="ns/p"} 1"#),
            "{text}"
        );
    }

    #[test]
    fn policy_settings_are_exported_per_mode_and_forgotten() {
        let m = Metrics::new();
        m.policy_started("ns/h", &PolicySpec::default(), Timestamp::ZERO);
        m.policy_started(
            "ns/o",
            &PolicySpec::recommended_overflow(40.0),
            Timestamp::ZERO,
        );
        let text = m.encode();
        for line in [
            r#"burstd_policy_threshold_rps{policy="ns/h",bound="high"} 15.0"#,
            r#"burstd_policy_threshold_rps{policy="ns/h",bound="low"} 10.0"#,
            r#"burstd_policy_threshold_rps{policy="ns/o",bound="capacity"} 40.0"#,
            r#"burstd_policy_stale_after_seconds{policy="ns/h"} 60.0"#,
        ] {
            assert!(text.contains(line), "missing {line}\n{text}");
        }
        assert!(
            !text.contains(r#"{policy="ns/o",bound="high"}"#),
            "overflow has no high threshold: {text}"
        );
        m.forget_policy("ns/h");
        let text = m.encode();
        assert!(
            !text.contains(r#"burstd_policy_threshold_rps{policy="ns/h""#),
            "{text}"
        );
        assert!(
            !text.contains(r#"burstd_policy_stale_after_seconds{policy="ns/h"}"#),
            "{text}"
        );
        assert!(
            !text.contains(r#"burstd_last_data_timestamp_seconds{policy="ns/h"}"#),
            "{text}"
        );
        assert!(
            text.contains(r#"burstd_policy_threshold_rps{policy="ns/o",bound="capacity"} 40.0"#)
        );
    }
}
