//! The seed's two-threshold switch, with `sustain` and `cooldown`.

use std::time::Duration;

use super::{Decision, MissingRule, Policy, Reason, Rule, Signal, Tracker, fmt_dur};
use crate::{Split, Thresholds, Timestamp, Weight};

/// Settings of a [`Hysteresis`] policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HysteresisConfig {
    /// Above `high` (short window) traffic moves to burst; below `low` (long window) it
    /// comes back.
    pub thresholds: Thresholds,
    /// Burst weight while bursting (the seed: 100, i.e. 0/100).
    pub burst_weight: Weight,
    /// How long a switch condition must hold before switching (zero: at once).
    pub sustain: Duration,
    /// Minimum time between two changes of the split (zero: none).
    pub cooldown: Duration,
    /// What to do without data.
    pub missing: MissingRule,
}

/// Above `high` → the burst split; below `low` while bursting → all back to the primary.
///
/// "Bursting" is read from the split in effect (`burst > 0`), not from memory, so a policy
/// started against a cluster that is already bursting behaves correctly.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    config: HysteresisConfig,
    tracker: Tracker,
    /// The switch being sustained and since when.
    pending: Option<(Split, Timestamp)>,
}

impl Hysteresis {
    /// A policy with these settings.
    pub fn new(config: HysteresisConfig) -> Self {
        Hysteresis {
            config,
            tracker: Tracker::default(),
            pending: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &HysteresisConfig {
        &self.config
    }
}

impl Policy for Hysteresis {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        let c = self.config;
        let rates = match self.tracker.observe(c.missing, signal, current, now) {
            Ok(r) => r,
            Err(decision) => {
                self.pending = None;
                return decision;
            }
        };
        let (high, low) = (c.thresholds.high(), c.thresholds.low());
        let reason = |rule, detail: String| Reason {
            rule,
            rates: Some(rates),
            current,
            detail,
        };

        let wanted = if !current.is_bursting() && rates.up > high {
            Some((
                Split::from_burst(c.burst_weight),
                Rule::AboveHigh,
                format!("short-window rate > high {high}"),
            ))
        } else if current.is_bursting() && rates.down < low && rates.up <= high {
            // The short window still above `high` means the load is back: leaving now would
            // only flap.
            Some((
                Split::ALL_PRIMARY,
                Rule::BelowLow,
                format!("long-window rate < low {low}"),
            ))
        } else {
            None
        };

        let Some((target, rule, why)) = wanted else {
            self.pending = None;
            let side = if current.is_bursting() {
                format!("bursting, long-window rate >= low {low}")
            } else {
                format!("not bursting, short-window rate <= high {high}")
            };
            return Decision {
                desired: current,
                reason: reason(Rule::InBand, side),
            };
        };

        let since = match self.pending {
            Some((t, since)) if t == target => since,
            _ => now,
        };
        self.pending = Some((target, since));
        let held = now.saturating_since(since);
        if held < c.sustain {
            return Decision {
                desired: current,
                reason: reason(
                    Rule::Sustaining,
                    format!(
                        "{why}; held {} of sustain {}",
                        fmt_dur(held),
                        fmt_dur(c.sustain)
                    ),
                ),
            };
        }
        if let Some(left) = self.tracker.cooldown_left(c.cooldown, now) {
            return Decision {
                desired: current,
                reason: reason(
                    Rule::Cooldown,
                    format!("{why}; cooldown {} left", fmt_dur(left)),
                ),
            };
        }
        self.pending = None;
        Decision {
            desired: target,
            reason: reason(rule, format!("{why}: switch to {target}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::OnMissing;
    use crate::{Rate, Rates};
    use proptest::prelude::*;

    fn at(s: f64) -> Timestamp {
        Timestamp::from_secs_f64(s).unwrap()
    }

    fn rate(v: f64) -> Signal {
        Signal::Rates(Rates::single(Rate::try_new("r", v).unwrap()))
    }

    fn seed(sustain: u64, cooldown: u64) -> Hysteresis {
        Hysteresis::new(HysteresisConfig {
            thresholds: Thresholds::try_new(10.0, 15.0).unwrap(),
            burst_weight: Weight::FULL,
            sustain: Duration::from_secs(sustain),
            cooldown: Duration::from_secs(cooldown),
            missing: MissingRule {
                on_missing: OnMissing::Hold,
                stale_after: Duration::from_secs(60),
            },
        })
    }

    #[test]
    fn seed_rules() {
        let mut p = seed(0, 0);
        let d = p.decide(&rate(15.0), Split::ALL_PRIMARY, at(0.0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::InBand)
        );
        let d = p.decide(&rate(15.1), Split::ALL_PRIMARY, at(1.0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::AboveHigh)
        );
        let d = p.decide(&rate(12.0), Split::ALL_BURST, at(2.0));
        assert_eq!((d.desired, d.reason.rule), (Split::ALL_BURST, Rule::InBand));
        let d = p.decide(&rate(9.9), Split::ALL_BURST, at(3.0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::BelowLow)
        );
        assert!(d.reason.to_string().contains("< low 10"), "{}", d.reason);
    }

    #[test]
    fn already_bursting_cluster_is_respected_at_start() {
        let mut p = seed(0, 0);
        let d = p.decide(&rate(12.0), Split::ALL_BURST, at(0.0));
        assert_eq!(d.desired, Split::ALL_BURST);
    }

    #[test]
    fn short_window_enters_long_window_leaves() {
        let mut p = seed(0, 0);
        let two = |up: f64, down: f64| {
            Signal::Rates(Rates {
                up: Rate::try_new("u", up).unwrap(),
                down: Rate::try_new("d", down).unwrap(),
            })
        };
        assert_eq!(
            p.decide(&two(16.0, 5.0), Split::ALL_PRIMARY, at(0.0))
                .desired,
            Split::ALL_BURST
        );
        // Short window already low, long window still high: stay.
        assert_eq!(
            p.decide(&two(1.0, 12.0), Split::ALL_BURST, at(1.0)).desired,
            Split::ALL_BURST
        );
        assert_eq!(
            p.decide(&two(1.0, 9.0), Split::ALL_BURST, at(2.0)).desired,
            Split::ALL_PRIMARY
        );
    }

    #[test]
    fn no_leaving_while_the_short_window_is_high() {
        let mut p = seed(0, 0);
        let sig = Signal::Rates(Rates {
            up: Rate::try_new("u", 18.0).unwrap(),
            down: Rate::try_new("d", 8.0).unwrap(),
        });
        let d = p.decide(&sig, Split::ALL_BURST, at(0.0));
        assert_eq!((d.desired, d.reason.rule), (Split::ALL_BURST, Rule::InBand));
    }

    #[test]
    fn sustain_delays_and_resets() {
        let mut p = seed(3, 0);
        let primary = Split::ALL_PRIMARY;
        assert_eq!(
            p.decide(&rate(20.0), primary, at(0.0)).reason.rule,
            Rule::Sustaining
        );
        assert_eq!(
            p.decide(&rate(20.0), primary, at(2.0)).reason.rule,
            Rule::Sustaining
        );
        // Condition broken: timer restarts.
        assert_eq!(
            p.decide(&rate(12.0), primary, at(2.5)).reason.rule,
            Rule::InBand
        );
        assert_eq!(
            p.decide(&rate(20.0), primary, at(3.0)).reason.rule,
            Rule::Sustaining
        );
        assert_eq!(
            p.decide(&rate(20.0), primary, at(5.9)).reason.rule,
            Rule::Sustaining
        );
        let d = p.decide(&rate(20.0), primary, at(6.0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::AboveHigh)
        );
    }

    #[test]
    fn cooldown_blocks_quick_return() {
        let mut p = seed(0, 10);
        assert_eq!(
            p.decide(&rate(20.0), Split::ALL_PRIMARY, at(0.0)).desired,
            Split::ALL_BURST
        );
        // The change is seen at t=1.
        let d = p.decide(&rate(1.0), Split::ALL_BURST, at(1.0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::Cooldown)
        );
        let d = p.decide(&rate(1.0), Split::ALL_BURST, at(11.0));
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::BelowLow)
        );
    }

    #[test]
    fn partial_burst_weight() {
        let mut p = Hysteresis::new(HysteresisConfig {
            burst_weight: Weight::try_new(50).unwrap(),
            ..*seed(0, 0).config()
        });
        let d = p.decide(&rate(20.0), Split::ALL_PRIMARY, at(0.0));
        assert_eq!(d.desired, Split::try_new(50, 50).unwrap());
    }

    proptest! {
        /// While the rate stays inside [low, high], the policy never switches.
        #[test]
        fn never_switches_inside_the_band(
            rates in proptest::collection::vec(10.0f64..=15.0, 1..200),
            bursting in any::<bool>(),
        ) {
            let mut p = seed(0, 0);
            let start = if bursting { Split::ALL_BURST } else { Split::ALL_PRIMARY };
            for (i, r) in rates.iter().enumerate() {
                let d = p.decide(&rate(*r), start, at(i as f64));
                prop_assert_eq!(d.desired, start);
            }
        }

        /// Switches are at least `cooldown` apart, whatever the rates.
        #[test]
        fn switches_respect_cooldown(
            rates in proptest::collection::vec(0.0f64..30.0, 1..300),
            cooldown in 0u64..20,
        ) {
            let mut p = seed(0, cooldown);
            let mut current = Split::ALL_PRIMARY;
            let mut last_switch: Option<f64> = None;
            for (i, r) in rates.iter().enumerate() {
                let now = i as f64;
                let d = p.decide(&rate(*r), current, at(now));
                if d.desired != current {
                    if let Some(prev) = last_switch {
                        // The previous change is observed on the tick after it was decided.
                        prop_assert!(now - (prev + 1.0) >= cooldown as f64,
                            "switch at {} after previous at {}", now, prev);
                    }
                    last_switch = Some(now);
                    current = d.desired;
                }
            }
        }

        /// Missing data never causes a fall-back before `stale_after`.
        #[test]
        fn no_fallback_before_stale_after(
            gaps in proptest::collection::vec(any::<bool>(), 1..200),
            stale in 1u64..100,
        ) {
            let mut p = Hysteresis::new(HysteresisConfig {
                missing: MissingRule { on_missing: OnMissing::Primary, stale_after: Duration::from_secs(stale) },
                ..*seed(0, 0).config()
            });
            let mut last_data = 0.0;
            let current = Split::ALL_BURST;
            p.decide(&rate(12.0), current, at(0.0));
            for (i, missing) in gaps.iter().enumerate() {
                let now = (i + 1) as f64;
                let sig = if *missing { Signal::NoData("empty".into()) } else { rate(12.0) };
                let d = p.decide(&sig, current, at(now));
                if !*missing { last_data = now; }
                if d.desired != current {
                    prop_assert!(*missing && now - last_data >= stale as f64);
                    prop_assert_eq!(d.reason.rule, Rule::StaleSafeTarget);
                }
            }
        }
    }
}
