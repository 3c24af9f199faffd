//! What both policies read besides the rate: latency and error-ratio triggers, capacity from
//! the primary's ready endpoints, and the burst side's health guard.
//!
//! The rules, in the words of `docs/policies.md`:
//! - **Triggers** (any-of to enter): the rate above `high`, the primary's p99 above
//!   `triggers.latencyP99Ms.high`, or its error ratio above `triggers.errorRatio.high`.
//!   Leaving burst needs every configured trigger below its low. A trigger without data never
//!   fires and never counts as below its low; once its signal has been missing for
//!   `staleAfter`, `onMissing` decides per signal (`primary`: it stops holding traffic on
//!   burst; `burst`: it fires; `hold`: it keeps holding).
//! - **Capacity**: `capacityPerEndpoint` × the primary's ready endpoints, re-evaluated on
//!   every tick; the fixed `capacity` is the fallback while the ready count has no data.
//! - **Burst health**: the burst side is healthy with at least `minReady` ready endpoints and
//!   an error ratio of at most `maxErrorRatio` (a missing error ratio, as on a burst side
//!   without traffic, does not count against it; a missing ready count does). Once unhealthy,
//!   it is healthy again only after `healthyAfter` of healthy readings. While unhealthy, the
//!   burst weight never goes up, and `onUnhealthy` decides what traffic already there does.
//! - **Both overloaded**: when the load is above the primary's and the burst side's capacity
//!   together, the split follows their capacities (as a global load balancer does when every
//!   region is full) instead of sending everything to one side.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Decision, MissingRule, OnMissing, Reason, Rule, fmt_dur};
use crate::{Rate, Rates, Ratio, Signals, Split, Thresholds, Timestamp, Weight};

/// What to do with traffic already on the burst side when it turns unhealthy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnUnhealthy {
    /// Send everything back to the primary at once.
    #[default]
    Primary,
    /// Keep the burst weight as it is (never raise it) until the burst side is healthy.
    Hold,
}

/// The burst side's health rule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BurstHealth {
    /// Ready burst endpoints needed before any traffic goes there.
    pub min_ready: u32,
    /// Highest error ratio of the burst side that still counts as healthy.
    pub max_error_ratio: Option<Ratio>,
    /// What traffic already on burst does when the burst side turns unhealthy.
    pub on_unhealthy: OnUnhealthy,
    /// How long the burst side must read healthy after being unhealthy before it counts as
    /// healthy again (its own hysteresis, so a flapping side does not flap the split).
    pub healthy_after: Duration,
}

/// Where the primary's capacity comes from.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct CapacityRule {
    /// A fixed capacity in rps (the `capacity` key); the fallback while the ready count has
    /// no data.
    pub fixed: Option<Rate>,
    /// Rps one primary endpoint serves: capacity is this × the primary's ready endpoints.
    pub per_endpoint: Option<Rate>,
    /// Rps one burst endpoint serves (default: `per_endpoint`), for the both-overloaded rule.
    pub burst_per_endpoint: Option<Rate>,
}

/// Everything a policy reads besides the rate (all off by default: the rate alone decides).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SignalRules {
    /// High/low pair on the primary's p99 latency in milliseconds.
    pub latency_p99_ms: Option<Thresholds>,
    /// High/low pair on the primary's error ratio (0..1).
    pub error_ratio: Option<Thresholds>,
    /// Capacity from endpoints (and the fixed fallback).
    pub capacity: CapacityRule,
    /// The burst side's health guard.
    pub burst_health: Option<BurstHealth>,
}

/// A trigger's verdict on one tick.
#[derive(Debug, Clone, Default)]
pub(crate) struct Votes {
    /// Triggers above their high: (rule, "p99 310.0ms > high 250").
    pub fired: Vec<(Rule, String)>,
    /// Triggers not below their low (or without data): why traffic may not come back.
    pub holding: Vec<String>,
}

/// When each signal was last present (for the per-signal no-data rule).
#[derive(Debug, Clone, Copy, Default)]
struct Clock {
    first_seen: Option<Timestamp>,
    latency: Option<Timestamp>,
    error_ratio: Option<Timestamp>,
    primary_ready: Option<Timestamp>,
}

/// The per-policy state of the signal rules: the clock and the health guard's hysteresis.
#[derive(Debug, Clone, Default)]
pub(crate) struct SignalState {
    clock: Clock,
    /// Ever seen unhealthy (before that, a healthy reading counts at once).
    was_unhealthy: bool,
    /// Healthy readings without a break since.
    healthy_since: Option<Timestamp>,
}

/// The capacity in effect on a tick, and where it came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Capacity {
    /// rps, with a description for reasons.
    Known(f64, CapacitySource),
    /// Capacity is configured from endpoints, the ready count has no data and there is no
    /// fixed fallback.
    Missing,
    /// No capacity configured at all.
    None,
}

/// Where a [`Capacity::Known`] came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum CapacitySource {
    Fixed,
    Endpoints(u32, f64),
}

impl OnUnhealthy {
    /// The names, as written in files and BurstPolicies.
    pub const NAMES: [&'static str; 2] = ["primary", "hold"];
}

impl SignalRules {
    /// Whether any trigger besides the rate is configured.
    pub fn has_triggers(&self) -> bool {
        self.latency_p99_ms.is_some() || self.error_ratio.is_some()
    }
}

impl Capacity {
    pub(crate) fn known(self) -> Option<f64> {
        match self {
            Capacity::Known(c, _) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn describe(self) -> String {
        match self {
            Capacity::Known(c, CapacitySource::Fixed) => format!("capacity {c}"),
            Capacity::Known(c, CapacitySource::Endpoints(n, per)) => {
                format!("capacity {c} ({n} ready x {per})")
            }
            Capacity::Missing => "capacity unknown (primary_ready no data)".into(),
            Capacity::None => "no capacity".into(),
        }
    }
}

impl CapacityRule {
    /// The primary's capacity now: from endpoints when configured and measured, else the
    /// fixed number.
    pub(crate) fn primary(&self, signals: &Signals) -> Capacity {
        match (self.per_endpoint, signals.primary_ready) {
            (Some(per), Some(n)) => Capacity::Known(
                per.get() * f64::from(n),
                CapacitySource::Endpoints(n, per.get()),
            ),
            (per, _) => match (self.fixed, per) {
                (Some(c), _) => Capacity::Known(c.get(), CapacitySource::Fixed),
                (None, Some(_)) => Capacity::Missing,
                (None, None) => Capacity::None,
            },
        }
    }

    /// The burst side's capacity now, when known.
    pub(crate) fn burst(&self, signals: &Signals) -> Option<f64> {
        let per = self.burst_per_endpoint.or(self.per_endpoint)?;
        Some(per.get() * f64::from(signals.burst_ready?))
    }
}

impl SignalState {
    /// Records which signals are present on this tick.
    pub(crate) fn record(&mut self, signals: &Signals, now: Timestamp) {
        let c = &mut self.clock;
        c.first_seen.get_or_insert(now);
        if signals.primary_p99.is_some() {
            c.latency = Some(now);
        }
        if signals.primary_error_ratio.is_some() {
            c.error_ratio = Some(now);
        }
        if signals.primary_ready.is_some() {
            c.primary_ready = Some(now);
        }
    }

    fn missing_for(&self, last: Option<Timestamp>, now: Timestamp) -> Duration {
        let since = last.or(self.clock.first_seen).unwrap_or(now);
        now.saturating_since(since)
    }

    /// How long the primary's ready count has been missing.
    pub(crate) fn ready_missing_for(&self, now: Timestamp) -> Duration {
        self.missing_for(self.clock.primary_ready, now)
    }

    /// The latency and error-ratio triggers' votes.
    pub(crate) fn votes(
        &self,
        rules: &SignalRules,
        missing: MissingRule,
        signals: &Signals,
        now: Timestamp,
    ) -> Votes {
        let mut votes = Votes::default();
        let checks = [
            (
                rules.latency_p99_ms,
                signals.primary_p99.map(f64::from),
                self.clock.latency,
                Rule::LatencyHigh,
                "p99_ms",
            ),
            (
                rules.error_ratio,
                signals.primary_error_ratio.map(f64::from),
                self.clock.error_ratio,
                Rule::ErrorRatioHigh,
                "error_ratio",
            ),
        ];
        for (band, value, last, rule, name) in checks {
            let Some(band) = band else { continue };
            let (high, low) = (band.high().get(), band.low().get());
            match value {
                Some(v) => {
                    if v > high {
                        votes
                            .fired
                            .push((rule, format!("{name} {v:.3} > high {high}")));
                    }
                    if v >= low {
                        votes.holding.push(format!("{name} {v:.3} >= low {low}"));
                    }
                }
                None => {
                    let gone = self.missing_for(last, now);
                    let stale = gone >= missing.stale_after;
                    match missing.on_missing {
                        OnMissing::Primary if stale => {}
                        OnMissing::Burst if stale => {
                            votes.fired.push((
                                rule,
                                format!("{name} no data for {}: onMissing burst", fmt_dur(gone)),
                            ));
                            votes
                                .holding
                                .push(format!("{name} no data for {}", fmt_dur(gone)));
                        }
                        _ => votes
                            .holding
                            .push(format!("{name} no data for {}", fmt_dur(gone))),
                    }
                }
            }
        }
        votes
    }

    /// Updates the health guard; `Some(why)` while the burst side is unhealthy.
    fn unhealthy(
        &mut self,
        health: &BurstHealth,
        signals: &Signals,
        now: Timestamp,
    ) -> Option<String> {
        let problem = match signals.burst_ready {
            None => Some("burst_ready no data".to_string()),
            Some(n) if n < health.min_ready => {
                Some(format!("burst_ready {n} < minReady {}", health.min_ready))
            }
            Some(_) => match (health.max_error_ratio, signals.burst_error_ratio) {
                (Some(max), Some(r)) if r > max => {
                    Some(format!("burst_error_ratio {r} > maxErrorRatio {max}"))
                }
                _ => None,
            },
        };
        if let Some(why) = problem {
            self.was_unhealthy = true;
            self.healthy_since = None;
            return Some(why);
        }
        let since = *self.healthy_since.get_or_insert(now);
        let held = now.saturating_since(since);
        if self.was_unhealthy && held < health.healthy_after {
            return Some(format!(
                "healthy for {} of healthyAfter {}",
                fmt_dur(held),
                fmt_dur(health.healthy_after)
            ));
        }
        None
    }

    /// The guard applied to the policy's own decision: the health rule first, then the
    /// both-overloaded rule.
    pub(crate) fn guard(
        &mut self,
        rules: &SignalRules,
        decision: Decision,
        rates: Option<Rates>,
        signals: &Signals,
        current: Split,
        now: Timestamp,
    ) -> Decision {
        if let Some(health) = rules.burst_health {
            if rates.is_none() {
                // No observation this tick: nothing is known about the burst side, so its
                // health state stays as it was, and the weight on it may not go up.
                if decision.desired.burst() > current.burst() {
                    return Decision {
                        desired: current,
                        reason: Reason {
                            rule: Rule::BurstUnhealthy,
                            rates,
                            current,
                            detail: format!(
                                "burst side unknown without an observation: {current} instead of {} ({})",
                                decision.desired, decision.reason.rule
                            ),
                        },
                    };
                }
                return decision;
            }
            if let Some(why) = self.unhealthy(&health, signals, now) {
                let wanted = decision.desired;
                let desired = match health.on_unhealthy {
                    OnUnhealthy::Primary => Split::ALL_PRIMARY,
                    OnUnhealthy::Hold => Split::from_burst(wanted.burst().min(current.burst())),
                };
                if desired == wanted && !current.is_bursting() {
                    return decision;
                }
                return Decision {
                    desired,
                    reason: Reason {
                        rule: Rule::BurstUnhealthy,
                        rates,
                        current,
                        detail: format!(
                            "{why}; onUnhealthy {}: {desired} instead of {wanted} ({})",
                            match health.on_unhealthy {
                                OnUnhealthy::Primary => "primary",
                                OnUnhealthy::Hold => "hold",
                            },
                            decision.reason.rule
                        ),
                    },
                };
            }
        }
        let Some(rates) = rates.filter(|_| decision.desired.is_bursting()) else {
            return decision;
        };
        let (Some(primary), Some(burst)) = (
            rules.capacity.primary(signals).known(),
            rules.capacity.burst(signals),
        ) else {
            return decision;
        };
        let rps = rates.up.get();
        let total = primary + burst;
        if total <= 0.0 || rps <= total {
            return decision;
        }
        // Both sides over capacity: each gets load in proportion to its capacity.
        let share = (burst / total * 100.0).round().clamp(0.0, 100.0);
        // `share` is an integer in 0..=100 after round and clamp: the cast cannot truncate.
        let desired = Split::from_burst(Weight::try_new(share as i64).unwrap_or(Weight::FULL));
        if desired == decision.desired {
            return decision;
        }
        Decision {
            desired,
            reason: Reason {
                rule: Rule::BothOverloaded,
                rates: Some(rates),
                current,
                detail: format!(
                    "rate {rps:.3} > primary capacity {primary} + burst capacity {burst}: split by capacity, {desired} instead of {}",
                    decision.desired
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Hysteresis, HysteresisConfig, Overflow, OverflowConfig, Policy, Signal};
    use crate::{Millis, Observation};
    use proptest::prelude::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_duration(Duration::from_secs(s))
    }

    fn obs(rps: f64, signals: Signals) -> Signal {
        let r = Rate::try_new("r", rps).unwrap();
        Signal::Observed(Observation::new(Rates::single(r), Timestamp::ZERO).with_signals(signals))
    }

    fn lat(ms: f64) -> Signals {
        Signals {
            primary_p99: Some(Millis::try_new("p99", ms).unwrap()),
            ..Signals::NONE
        }
    }

    fn band(low: f64, high: f64) -> Option<Thresholds> {
        Some(Thresholds::try_new(low, high).unwrap())
    }

    fn triggers() -> SignalRules {
        SignalRules {
            latency_p99_ms: band(150.0, 250.0),
            error_ratio: band(0.01, 0.05),
            ..SignalRules::default()
        }
    }

    fn hysteresis(signals: SignalRules) -> Hysteresis {
        Hysteresis::new(HysteresisConfig {
            signals,
            ..HysteresisConfig::new(Thresholds::try_new(10.0, 15.0).unwrap())
        })
    }

    fn health(on_unhealthy: OnUnhealthy, healthy_after: u64) -> Option<BurstHealth> {
        Some(BurstHealth {
            min_ready: 2,
            max_error_ratio: Some(Ratio::try_new("r", 0.2).unwrap()),
            on_unhealthy,
            healthy_after: Duration::from_secs(healthy_after),
        })
    }

    fn per_endpoint(per: f64) -> CapacityRule {
        CapacityRule {
            per_endpoint: Some(Rate::try_new("c", per).unwrap()),
            ..CapacityRule::default()
        }
    }

    fn overflow(signals: SignalRules) -> Overflow {
        Overflow::new(OverflowConfig {
            max_down: Weight::FULL,
            dead_band: 0.0,
            signals,
            ..OverflowConfig::new(Rate::try_new("c", 15.0).unwrap())
        })
    }

    #[test]
    fn latency_alone_starts_a_burst_and_the_reason_names_it() {
        let mut p = hysteresis(triggers());
        let d = p.decide(&obs(5.0, lat(300.0)), Split::ALL_PRIMARY, at(0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::LatencyHigh)
        );
        assert!(
            d.reason.detail.contains("p99_ms 300.000 > high 250"),
            "{}",
            d.reason
        );
        // Rate and errors together: the rate comes first, both are named.
        let mut p = hysteresis(triggers());
        let s = Signals {
            primary_error_ratio: Some(Ratio::try_new("e", 0.1).unwrap()),
            ..Signals::NONE
        };
        let d = p.decide(&obs(20.0, s), Split::ALL_PRIMARY, at(0));
        assert_eq!(d.reason.rule, Rule::AboveHigh);
        assert!(
            d.reason.detail.contains("error_ratio 0.100 > high 0.05"),
            "{}",
            d.reason
        );
        assert_eq!(Rule::LatencyHigh.name(), "latency_high");
        assert_eq!(Rule::ErrorRatioHigh.name(), "error_ratio_high");
    }

    #[test]
    fn leaving_needs_every_trigger_below_low_and_no_data_is_never_low() {
        let mut p = hysteresis(triggers());
        let both = |ms: Option<f64>, e: f64| Signals {
            primary_p99: ms.map(|m| Millis::try_new("p", m).unwrap()),
            primary_error_ratio: Some(Ratio::try_new("e", e).unwrap()),
            ..Signals::NONE
        };
        let burst = Split::ALL_BURST;
        // Rate low, latency between low and high: stay.
        let d = p.decide(&obs(5.0, both(Some(200.0), 0.0)), burst, at(0));
        assert_eq!((d.desired, d.reason.rule), (burst, Rule::InBand));
        assert!(
            d.reason.detail.contains("p99_ms 200.000 >= low 150"),
            "{}",
            d.reason
        );
        // Latency without data: stay (hold until staleAfter, on_missing hold).
        let d = p.decide(&obs(5.0, both(None, 0.0)), burst, at(1));
        assert_eq!(d.desired, burst);
        assert!(d.reason.detail.contains("p99_ms no data"), "{}", d.reason);
        // Every trigger below its low: back.
        let d = p.decide(&obs(5.0, both(Some(100.0), 0.001)), burst, at(2));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::BelowLow)
        );
        assert!(d.reason.detail.contains("every trigger below its low"));
    }

    #[test]
    fn a_stale_trigger_follows_on_missing() {
        let mut p = Hysteresis::new(HysteresisConfig {
            signals: triggers(),
            missing: MissingRule {
                on_missing: OnMissing::Primary,
                stale_after: Duration::from_secs(30),
            },
            ..HysteresisConfig::new(Thresholds::try_new(10.0, 15.0).unwrap())
        });
        let errors_ok = Signals {
            primary_error_ratio: Some(Ratio::ZERO),
            ..Signals::NONE
        };
        let burst = Split::ALL_BURST;
        let both_ok = Signals {
            primary_error_ratio: Some(Ratio::ZERO),
            ..lat(200.0)
        };
        // Latency between its low and high: stays.
        assert_eq!(p.decide(&obs(5.0, both_ok), burst, at(0)).desired, burst);
        // The latency signal goes away while bursting.
        assert_eq!(p.decide(&obs(5.0, errors_ok), burst, at(10)).desired, burst);
        assert_eq!(p.decide(&obs(5.0, errors_ok), burst, at(29)).desired, burst);
        // Missing for staleAfter with onMissing primary: it holds traffic on burst no more.
        assert_eq!(
            p.decide(&obs(5.0, errors_ok), burst, at(30)).desired,
            Split::ALL_PRIMARY
        );
    }

    #[test]
    fn overflow_sends_exactly_the_excess_over_endpoint_capacity() {
        let mut p = overflow(SignalRules {
            capacity: per_endpoint(10.0),
            ..SignalRules::default()
        });
        let ready = |n| Signals {
            primary_ready: Some(n),
            ..Signals::NONE
        };
        // 2 ready x 10 rps = 20 capacity; 30 rps → 10/30 = 33.3 % → 35 % (step 5).
        let d = p.decide(&obs(30.0, ready(2)), Split::ALL_PRIMARY, at(0));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (35, Rule::OverflowUp)
        );
        assert!(d.reason.detail.contains("2 ready x 10"), "{}", d.reason);
        // The primary loses an endpoint: 10 capacity → 66.7 % → 70 % at once.
        let d = p.decide(&obs(30.0, ready(1)), d.desired, at(1));
        assert_eq!(d.desired.burst().get(), 70);
        // It scales up to 4: 40 capacity, all back.
        let d = p.decide(&obs(30.0, ready(4)), d.desired, at(2));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (0, Rule::OverflowDown)
        );
        // No ready count and no fixed fallback: the no-data rule (hold).
        let d = p.decide(
            &obs(30.0, Signals::NONE),
            Split::from_burst(Weight::try_new(20).unwrap()),
            at(3),
        );
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (20, Rule::MissingHold)
        );
        assert!(d.reason.detail.contains("primary_ready"), "{}", d.reason);
        // With a fixed fallback, the fixed capacity (15) applies: 50 %.
        let mut p = overflow(SignalRules {
            capacity: CapacityRule {
                fixed: Some(Rate::try_new("c", 15.0).unwrap()),
                ..per_endpoint(10.0)
            },
            ..SignalRules::default()
        });
        let d = p.decide(&obs(30.0, Signals::NONE), Split::ALL_PRIMARY, at(0));
        assert_eq!(d.desired.burst().get(), 50);
    }

    #[test]
    fn hysteresis_thresholds_as_fractions_of_capacity() {
        let mut p = Hysteresis::new(HysteresisConfig {
            capacity_fractions: band(0.5, 1.0),
            signals: SignalRules {
                capacity: per_endpoint(10.0),
                ..SignalRules::default()
            },
            ..HysteresisConfig::new(Thresholds::try_new(10.0, 15.0).unwrap())
        });
        let ready = |n| Signals {
            primary_ready: Some(n),
            ..Signals::NONE
        };
        // 3 ready: high 30. 25 rps stays.
        let d = p.decide(&obs(25.0, ready(3)), Split::ALL_PRIMARY, at(0));
        assert_eq!(d.desired, Split::ALL_PRIMARY);
        // 2 ready: high 20. 25 rps bursts.
        let d = p.decide(&obs(25.0, ready(2)), Split::ALL_PRIMARY, at(1));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::AboveHigh)
        );
        assert!(d.reason.detail.contains("high 20"), "{}", d.reason);
        // Scale-up to 6: low 30 > 25, back.
        let d = p.decide(&obs(25.0, ready(6)), Split::ALL_BURST, at(2));
        assert_eq!(d.desired, Split::ALL_PRIMARY);
    }

    #[test]
    fn never_onto_an_unhealthy_burst_side() {
        let rules = SignalRules {
            burst_health: health(OnUnhealthy::Primary, 10),
            ..SignalRules::default()
        };
        let mut p = hysteresis(rules);
        let side = |ready: Option<u32>, err: f64| Signals {
            burst_ready: ready,
            burst_error_ratio: Some(Ratio::try_new("e", err).unwrap()),
            ..Signals::NONE
        };
        let d = p.decide(&obs(20.0, side(Some(1), 0.0)), Split::ALL_PRIMARY, at(0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::BurstUnhealthy)
        );
        assert!(
            d.reason.detail.contains("burst_ready 1 < minReady 2"),
            "{}",
            d.reason
        );
        assert!(d.reason.detail.contains("above_high"), "{}", d.reason);
        // No data about the burst side is not healthy either.
        let d = p.decide(&obs(20.0, Signals::NONE), Split::ALL_PRIMARY, at(1));
        assert_eq!(d.desired, Split::ALL_PRIMARY);
        // Ready now, but healthy only after 10 s of healthy readings.
        let d = p.decide(&obs(20.0, side(Some(2), 0.0)), Split::ALL_PRIMARY, at(2));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::BurstUnhealthy)
        );
        assert!(d.reason.detail.contains("healthyAfter"), "{}", d.reason);
        let d = p.decide(&obs(20.0, side(Some(2), 0.0)), Split::ALL_PRIMARY, at(12));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::AboveHigh)
        );
        // Errors on the burst side while it holds traffic: all back (onUnhealthy primary).
        let d = p.decide(&obs(20.0, side(Some(3), 0.5)), Split::ALL_BURST, at(13));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::BurstUnhealthy)
        );
        assert!(
            d.reason
                .detail
                .contains("burst_error_ratio 0.500 > maxErrorRatio 0.200")
        );
        assert_eq!(Rule::BurstUnhealthy.name(), "burst_unhealthy");
    }

    #[test]
    fn without_an_observation_the_guard_neither_learns_nor_raises() {
        let mut p = Hysteresis::new(HysteresisConfig {
            signals: SignalRules {
                burst_health: health(OnUnhealthy::Primary, 10),
                ..SignalRules::default()
            },
            missing: MissingRule {
                on_missing: OnMissing::Burst,
                stale_after: Duration::from_secs(5),
            },
            ..HysteresisConfig::new(Thresholds::try_new(10.0, 15.0).unwrap())
        });
        let none = Signal::NoData("warming up".into());
        // The first seconds have no data: nothing about the burst side is known, and the
        // stale rule's burst target is refused.
        assert_eq!(
            p.decide(&none, Split::ALL_PRIMARY, at(0)).desired,
            Split::ALL_PRIMARY
        );
        let d = p.decide(&none, Split::ALL_PRIMARY, at(6));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::BurstUnhealthy)
        );
        // The first observation shows a healthy burst side: no healthyAfter wait, since it
        // was never seen unhealthy.
        let ok = Signals {
            burst_ready: Some(2),
            ..Signals::NONE
        };
        let d = p.decide(&obs(20.0, ok), Split::ALL_PRIMARY, at(7));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::AboveHigh)
        );
    }

    #[test]
    fn on_unhealthy_hold_keeps_but_never_raises() {
        let rules = SignalRules {
            burst_health: health(OnUnhealthy::Hold, 0),
            capacity: CapacityRule {
                fixed: Some(Rate::try_new("c", 15.0).unwrap()),
                ..CapacityRule::default()
            },
            ..SignalRules::default()
        };
        let mut p = overflow(rules);
        let quarter = Split::from_burst(Weight::try_new(25).unwrap());
        let down = Signals {
            burst_ready: Some(0),
            ..Signals::NONE
        };
        // 60 rps wants 75 %; the burst side is down: keep 25 %.
        let d = p.decide(&obs(60.0, down), quarter, at(0));
        assert_eq!((d.desired, d.reason.rule), (quarter, Rule::BurstUnhealthy));
        // Less load: coming down is still allowed.
        let d = p.decide(&obs(16.0, down), quarter, at(1));
        assert!(d.desired.burst() < quarter.burst(), "{}", d.reason);
    }

    #[test]
    fn both_sides_overloaded_split_by_capacity() {
        let rules = SignalRules {
            capacity: CapacityRule {
                burst_per_endpoint: Some(Rate::try_new("b", 5.0).unwrap()),
                ..per_endpoint(10.0)
            },
            ..SignalRules::default()
        };
        let mut p = hysteresis(rules);
        let s = Signals {
            primary_ready: Some(3),
            burst_ready: Some(2),
            ..Signals::NONE
        };
        // Capacity 30 + 10; 60 rps overloads both: 10/40 = 25 % to burst, not 100 %.
        let d = p.decide(&obs(60.0, s), Split::ALL_PRIMARY, at(0));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (25, Rule::BothOverloaded)
        );
        assert_eq!(Rule::BothOverloaded.name(), "both_overloaded");
        // 35 rps fits in both: the policy's own answer (all to burst).
        let d = p.decide(&obs(35.0, s), Split::ALL_PRIMARY, at(1));
        assert_eq!(d.desired, Split::ALL_BURST);
    }

    fn signals_strategy() -> impl Strategy<Value = (f64, Signals)> {
        (
            0.0f64..80.0,
            proptest::option::of(0.0f64..500.0),
            proptest::option::of(0.0f64..0.3),
            proptest::option::of(0u32..6),
            proptest::option::of(0u32..5),
            proptest::option::of(0.0f64..0.5),
        )
            .prop_map(|(rps, p99, err, pr, br, berr)| {
                (
                    rps,
                    Signals {
                        primary_p99: p99.map(|v| Millis::try_new("p", v).unwrap()),
                        primary_error_ratio: err.map(|v| Ratio::try_new("e", v).unwrap()),
                        primary_ready: pr,
                        burst_ready: br,
                        burst_error_ratio: berr.map(|v| Ratio::try_new("b", v).unwrap()),
                    },
                )
            })
    }

    fn all_rules(on_unhealthy: OnUnhealthy) -> SignalRules {
        SignalRules {
            capacity: CapacityRule {
                fixed: Some(Rate::try_new("c", 15.0).unwrap()),
                ..per_endpoint(8.0)
            },
            burst_health: health(on_unhealthy, 5),
            ..triggers()
        }
    }

    fn guard_fails(s: &Signals) -> bool {
        match s.burst_ready {
            None => true,
            Some(n) => n < 2 || s.burst_error_ratio.is_some_and(|e| e.get() > 0.2),
        }
    }

    proptest! {
        /// Whatever the other signals say, the burst weight never goes up while the burst
        /// side fails the guard's rule, and with `onUnhealthy: primary` nothing is left there.
        #[test]
        fn never_onto_an_unhealthy_burst(
            ticks in proptest::collection::vec(signals_strategy(), 1..120),
            hold in any::<bool>(),
            use_overflow in any::<bool>(),
        ) {
            let on = if hold { OnUnhealthy::Hold } else { OnUnhealthy::Primary };
            let mut p: Box<dyn Policy> = if use_overflow {
                Box::new(overflow(all_rules(on)))
            } else {
                Box::new(hysteresis(all_rules(on)))
            };
            let mut current = Split::ALL_PRIMARY;
            for (i, (rps, s)) in ticks.iter().enumerate() {
                let d = p.decide(&obs(*rps, *s), current, at(i as u64));
                if guard_fails(s) {
                    prop_assert!(d.desired.burst() <= current.burst(), "{}", d.reason);
                    if !hold {
                        prop_assert_eq!(d.desired.burst(), Weight::ZERO, "{}", d.reason);
                    }
                    // The reason says so whenever the guard changed the answer or traffic
                    // sits on the unhealthy side.
                    if current.is_bursting() {
                        prop_assert_eq!(d.reason.rule, Rule::BurstUnhealthy);
                    }
                }
                current = d.desired;
            }
        }

        /// Capacity-based overflow keeps the primary's share at or under its capacity
        /// whenever the burst side is healthy and has room for the excess.
        #[test]
        fn overflow_keeps_primary_within_endpoint_capacity(
            ticks in proptest::collection::vec((0.0f64..100.0, 1u32..6), 1..120),
        ) {
            let mut p = Overflow::new(OverflowConfig {
                max_down: Weight::FULL,
                signals: SignalRules {
                    capacity: per_endpoint(10.0),
                    burst_health: health(OnUnhealthy::Primary, 0),
                    ..SignalRules::default()
                },
                ..OverflowConfig::new(Rate::try_new("c", 15.0).unwrap())
            });
            let mut current = Split::ALL_PRIMARY;
            for (i, (rps, ready)) in ticks.iter().enumerate() {
                // A burst side of 10 endpoints x 10 rps: room for any excess here.
                let s = Signals {
                    primary_ready: Some(*ready),
                    burst_ready: Some(10),
                    ..Signals::NONE
                };
                let d = p.decide(&obs(*rps, s), current, at(i as u64));
                let primary = rps * f64::from(d.desired.primary().get()) / 100.0;
                prop_assert!(primary <= f64::from(*ready) * 10.0 + 1e-6,
                    "{} rps, {} ready: primary gets {} ({})", rps, ready, primary, d.reason);
                current = d.desired;
            }
        }

        /// Traffic comes back only while the rate and every trigger are below their lows.
        #[test]
        fn leaving_needs_every_trigger_below_low(
            ticks in proptest::collection::vec(signals_strategy(), 1..120),
            use_overflow in any::<bool>(),
        ) {
            let rules = SignalRules {
                capacity: CapacityRule {
                    fixed: Some(Rate::try_new("c", 15.0).unwrap()),
                    ..CapacityRule::default()
                },
                ..triggers()
            };
            let mut p: Box<dyn Policy> = if use_overflow {
                Box::new(overflow(rules))
            } else {
                Box::new(hysteresis(rules))
            };
            let mut current = Split::from_burst(Weight::try_new(50).unwrap());
            for (i, (rps, s)) in ticks.iter().enumerate() {
                let d = p.decide(&obs(*rps, *s), current, at(i as u64));
                if d.desired.burst() < current.burst() {
                    prop_assert!(s.primary_p99.is_some_and(|v| v.get() < 150.0), "{}", d.reason);
                    prop_assert!(s.primary_error_ratio.is_some_and(|v| v.get() < 0.01), "{}", d.reason);
                }
                current = d.desired;
            }
        }
    }
}
