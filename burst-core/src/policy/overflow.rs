//! Proportional overflow: send to burst only what the primary cannot serve.

use std::time::Duration;

use super::{Decision, MissingRule, Policy, Reason, Rule, Signal, Tracker, fmt_dur};
use crate::{Rate, Split, Timestamp, Weight};

/// Settings of an [`Overflow`] policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverflowConfig {
    /// Requests per second the primary serves comfortably.
    pub capacity: Rate,
    /// Weights move in multiples of this many percentage points (1..=100).
    pub step: Weight,
    /// Largest increase of the burst weight per decision (fast up).
    pub max_up: Weight,
    /// Largest decrease of the burst weight per decision (slow down).
    pub max_down: Weight,
    /// Fraction of capacity (0..1) of spare room the primary must have before traffic
    /// comes back: small wiggles below capacity change nothing.
    pub dead_band: f64,
    /// Minimum time between two changes of the split (zero: none).
    pub cooldown: Duration,
    /// What to do without data.
    pub missing: MissingRule,
}

/// Sends `ceil_step((rps - capacity) / rps)` percent to burst.
///
/// Going up uses the short window and is limited by `max_up` per decision; going down uses
/// the long window, happens only when the primary would run below
/// `capacity * (1 - dead_band)` under the current split, and is limited by `max_down`.
/// Rounding up to `step` keeps the primary at or under capacity, at the cost of at most one
/// step of extra burst traffic.
#[derive(Debug, Clone)]
pub struct Overflow {
    config: OverflowConfig,
    tracker: Tracker,
}

impl Overflow {
    /// A policy with these settings.
    pub fn new(config: OverflowConfig) -> Self {
        Overflow {
            config,
            tracker: Tracker::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &OverflowConfig {
        &self.config
    }

    /// The burst weight that keeps the primary at or under capacity at `rps`, rounded up
    /// to the step.
    pub fn target_for(&self, rps: Rate) -> Weight {
        let (rps, cap) = (rps.get(), self.config.capacity.get());
        if rps <= cap || rps <= 0.0 {
            return Weight::ZERO;
        }
        let needed = (rps - cap) / rps * 100.0;
        let step = f64::from(self.config.step.get().max(1));
        // The epsilon keeps exact multiples (25.000000001 from float noise) on their step.
        let steps = (needed / step - 1e-9).ceil();
        let pct = (steps * step).clamp(0.0, 100.0);
        // pct is an integer in 0..=100 after clamp and ceil: the cast cannot truncate.
        Weight::try_new(pct as i64).unwrap_or(Weight::FULL)
    }
}

impl Policy for Overflow {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        let c = self.config;
        let rates = match self.tracker.observe(c.missing, signal, current, now) {
            Ok(r) => r,
            Err(decision) => return decision,
        };
        let cap = c.capacity.get();
        let b = current.burst();
        let reason = |rule, detail: String| Reason {
            rule,
            rates: Some(rates),
            current,
            detail,
        };
        let hold = |rule, detail| Decision {
            desired: current,
            reason: reason(rule, detail),
        };

        let up_target = self.target_for(rates.up);
        let down_target = self.target_for(rates.down);
        let (rule, desired, detail) = if up_target > b {
            let next = up_target.min(b.saturating_add(c.max_up.get()));
            (
                Rule::OverflowUp,
                next,
                format!(
                    "short-window rate over capacity {cap}: target burst {up_target}%, max_up {}",
                    c.max_up
                ),
            )
        } else if down_target < b {
            let primary_load = rates.down.get() * f64::from(current.primary().get()) / 100.0;
            let floor = cap * (1.0 - c.dead_band);
            if primary_load >= floor {
                return hold(
                    Rule::DeadBand,
                    format!("primary load {primary_load:.3} within dead band [{floor:.3}, {cap}]"),
                );
            }
            // Never below what the short window still needs: the two windows disagreeing
            // must not make the split oscillate.
            let next = down_target
                .max(b.saturating_sub(c.max_down.get()))
                .max(up_target);
            if next == b {
                return hold(
                    Rule::InBand,
                    format!(
                        "long window allows {down_target}%, short window still needs {up_target}%"
                    ),
                );
            }
            (
                Rule::OverflowDown,
                next,
                format!(
                    "spare capacity: primary load {primary_load:.3} < {floor:.3}, target burst {down_target}%, max_down {}",
                    c.max_down
                ),
            )
        } else {
            return hold(
                Rule::InBand,
                format!("burst {b}% matches targets {up_target}%/{down_target}%"),
            );
        };

        if let Some(left) = self.tracker.cooldown_left(c.cooldown, now) {
            return hold(
                Rule::Cooldown,
                format!("{detail}; cooldown {} left", fmt_dur(left)),
            );
        }
        Decision {
            desired: Split::from_burst(desired),
            reason: reason(rule, detail),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rates;
    use crate::policy::OnMissing;
    use proptest::prelude::*;

    fn w(v: i64) -> Weight {
        Weight::try_new(v).unwrap()
    }

    fn policy(step: i64, max_up: i64, max_down: i64, dead_band: f64) -> Overflow {
        Overflow::new(OverflowConfig {
            capacity: Rate::try_new("c", 15.0).unwrap(),
            step: w(step),
            max_up: w(max_up),
            max_down: w(max_down),
            dead_band,
            cooldown: Duration::ZERO,
            missing: MissingRule {
                on_missing: OnMissing::Hold,
                stale_after: Duration::from_secs(60),
            },
        })
    }

    fn rate(v: f64) -> Signal {
        Signal::Rates(Rates::single(Rate::try_new("r", v).unwrap()))
    }

    fn at(s: u64) -> Timestamp {
        Timestamp::from_duration(Duration::from_secs(s))
    }

    #[test]
    fn sends_only_the_overflow_rounded_up_to_step() {
        let p = policy(5, 100, 100, 0.0);
        let r = |v| Rate::try_new("r", v).unwrap();
        assert_eq!(p.target_for(r(10.0)), Weight::ZERO);
        assert_eq!(p.target_for(r(15.0)), Weight::ZERO);
        // 20 rps over 15 capacity: 25 % exactly.
        assert_eq!(p.target_for(r(20.0)).get(), 25);
        // 30 rps: 50 %.
        assert_eq!(p.target_for(r(30.0)).get(), 50);
        // 16 rps: 6.25 % → 10.
        assert_eq!(p.target_for(r(16.0)).get(), 10);
    }

    #[test]
    fn fast_up_slow_down() {
        let mut p = policy(5, 20, 5, 0.0);
        let d = p.decide(&rate(60.0), Split::ALL_PRIMARY, at(0));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (20, Rule::OverflowUp)
        );
        let d = p.decide(&rate(60.0), d.desired, at(1));
        assert_eq!(d.desired.burst().get(), 40);
        let d = p.decide(&rate(60.0), d.desired, at(2));
        assert_eq!(d.desired.burst().get(), 60);
        let d = p.decide(&rate(60.0), d.desired, at(3));
        assert_eq!(d.desired.burst().get(), 75);
        let d = p.decide(&rate(5.0), d.desired, at(4));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (70, Rule::OverflowDown)
        );
    }

    #[test]
    fn dead_band_ignores_small_dips() {
        let mut p = policy(5, 100, 100, 0.1);
        let cur = Split::from_burst(w(25)); // right for 20 rps
        // 18.5 rps: target 20 % < 25 %, but the primary gets 13.875 >= 13.5 → hold.
        let d = p.decide(&rate(18.5), cur, at(0));
        assert_eq!((d.desired, d.reason.rule), (cur, Rule::DeadBand));
        // 16 rps: primary gets 12 < 13.5 → come down to 10 %.
        let d = p.decide(&rate(16.0), cur, at(1));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (10, Rule::OverflowDown)
        );
    }

    #[test]
    fn windows_disagreeing_do_not_oscillate() {
        let mut p = policy(5, 100, 10, 0.1);
        let mut cur = Split::ALL_PRIMARY;
        // Short window already at 20 rps, long window still catching up from 5 rps.
        for (i, long) in [5.0, 7.0, 9.0, 11.0, 13.0, 15.0].iter().enumerate() {
            let sig = Signal::Rates(Rates {
                up: Rate::try_new("u", 20.0).unwrap(),
                down: Rate::try_new("d", *long).unwrap(),
            });
            let d = p.decide(&sig, cur, at(i as u64));
            if i > 0 {
                assert_eq!(d.desired, cur, "moved at tick {i}: {}", d.reason);
            }
            cur = d.desired;
        }
        assert_eq!(cur.burst().get(), 25);
    }

    proptest! {
        /// Upward moves never exceed what is needed plus one step, nor the per-tick limit;
        /// downward moves never exceed the per-tick limit.
        #[test]
        fn bounded_moves(
            rates in proptest::collection::vec(0.0f64..200.0, 1..100),
            step in 1i64..=25, max_up in 1i64..=100, max_down in 1i64..=100,
            dead_band in 0.0f64..0.5,
        ) {
            let mut p = policy(step, max_up, max_down, dead_band);
            let mut current = Split::ALL_PRIMARY;
            for (i, r) in rates.iter().enumerate() {
                let d = p.decide(&rate(*r), current, at(i as u64));
                let (from, to) = (i64::from(current.burst().get()), i64::from(d.desired.burst().get()));
                let needed = if *r > 15.0 { (r - 15.0) / r * 100.0 } else { 0.0 };
                if to > from {
                    prop_assert!(to - from <= max_up);
                    prop_assert!((to as f64) <= needed + step as f64 + 1e-6,
                        "burst {} for {} rps needs {}", to, r, needed);
                }
                if to < from {
                    prop_assert!(from - to <= max_down);
                    // Coming down never puts the primary over capacity.
                    prop_assert!(r * (100 - to) as f64 / 100.0 <= 15.0 + 1e-6);
                }
                prop_assert_eq!(u16::from(d.desired.primary().get()) + u16::from(d.desired.burst().get()), 100);
                current = d.desired;
            }
        }
    }
}
