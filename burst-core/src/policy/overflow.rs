//! Proportional overflow: send to burst only what the primary cannot serve.

use std::time::Duration;

use super::triggers::{Capacity, SignalState};
use super::{
    Decision, MissingRule, Policy, Reason, Rule, Signal, SignalRules, Tracker, fmt_dur,
    missing_decision,
};
use crate::{Rate, Rates, Signals, Split, Timestamp, Weight};

/// Settings of an [`Overflow`] policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OverflowConfig {
    /// Requests per second the primary serves comfortably. With
    /// `signals.capacity.per_endpoint`, capacity is that × the primary's ready endpoints on
    /// every tick, and this fixed number is only the fallback while the ready count has no
    /// data.
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
    /// Latency and error triggers, capacity from endpoints, the burst health guard. With
    /// `signals.capacity.per_endpoint` and no fixed fallback (`signals.capacity.fixed`
    /// unset), a missing ready count follows the no-data rule.
    pub signals: SignalRules,
}

/// Sends `ceil_step((rps - capacity) / rps)` percent to burst.
///
/// Going up uses the short window and is limited by `max_up` per decision; going down uses
/// the long window, happens only when the primary would run below
/// `capacity * (1 - dead_band)` under the current split, and is limited by `max_down`.
/// Rounding up to `step` keeps the primary at or under capacity, at the cost of at most one
/// step of extra burst traffic.
///
/// With [`SignalRules`]: a latency or error trigger above its high raises the burst weight
/// by one `step` per decision (within `max_up`) on top of what capacity asks; the weight
/// comes down only while every trigger is below its low; the burst health guard has the
/// last word.
#[derive(Debug, Clone)]
pub struct Overflow {
    config: OverflowConfig,
    tracker: Tracker,
    state: SignalState,
}

impl OverflowConfig {
    /// Defaults around `capacity`: 5 % steps, up at once, down by 10 per decision, 10 %
    /// dead band, no cooldown, hold without data, no signal rules.
    pub fn new(capacity: Rate) -> OverflowConfig {
        OverflowConfig {
            capacity,
            step: Weight::try_new(5).unwrap_or(Weight::FULL),
            max_up: Weight::FULL,
            max_down: Weight::try_new(10).unwrap_or(Weight::FULL),
            dead_band: 0.1,
            cooldown: Duration::ZERO,
            missing: MissingRule {
                on_missing: super::OnMissing::Hold,
                stale_after: Duration::from_secs(60),
            },
            signals: SignalRules::default(),
        }
    }
}

impl Overflow {
    /// A policy with these settings.
    pub fn new(config: OverflowConfig) -> Self {
        Overflow {
            config,
            tracker: Tracker::default(),
            state: SignalState::default(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &OverflowConfig {
        &self.config
    }

    /// The burst weight that keeps the primary at or under the fixed capacity at `rps`,
    /// rounded up to the step.
    pub fn target_for(&self, rps: Rate) -> Weight {
        self.target_with(rps, self.config.capacity.get())
    }

    /// The burst weight that keeps the primary at or under `capacity` rps at `rps`, rounded
    /// up to the step (all to burst when `capacity` is 0 and there is load).
    pub fn target_with(&self, rps: Rate, capacity: f64) -> Weight {
        let (rps, cap) = (rps.get(), capacity.max(0.0));
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

    fn decide_rates(
        &mut self,
        rates: Rates,
        signals: &Signals,
        current: Split,
        now: Timestamp,
    ) -> Decision {
        let c = self.config;
        let capacity = match c.signals.capacity.primary(signals) {
            Capacity::None => {
                Capacity::Known(c.capacity.get(), super::triggers::CapacitySource::Fixed)
            }
            other => other,
        };
        let Some(cap) = capacity.known() else {
            return missing_decision(
                c.missing,
                "primary_ready (capacity from capacityPerEndpoint)",
                self.state.ready_missing_for(now),
                current,
                Some(rates),
            );
        };
        let cap_text = capacity.describe();
        let votes = self.state.votes(&c.signals, c.missing, signals, now);
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

        let mut up_target = self.target_with(rates.up, cap);
        let mut up_rule = Rule::OverflowUp;
        let mut up_why = format!("short-window rate over {cap_text}: target burst {up_target}%");
        if let Some((rule, _)) = votes.fired.first() {
            let pushed = b.saturating_add(c.step.get());
            if pushed > up_target {
                up_target = pushed;
                up_rule = *rule;
                let fired: Vec<&str> = votes.fired.iter().map(|f| f.1.as_str()).collect();
                up_why = format!("{}: one step up to {pushed}%", fired.join("; "));
            }
        }
        let down_target = self.target_with(rates.down, cap);
        let (rule, desired, detail) = if up_target > b {
            let next = up_target.min(b.saturating_add(c.max_up.get()));
            (up_rule, next, format!("{up_why}, max_up {}", c.max_up))
        } else if down_target < b {
            if !votes.holding.is_empty() || !votes.fired.is_empty() {
                return hold(
                    Rule::InBand,
                    format!(
                        "capacity allows {down_target}%, held by {}",
                        votes
                            .holding
                            .iter()
                            .chain(votes.fired.iter().map(|f| &f.1))
                            .cloned()
                            .collect::<Vec<_>>()
                            .join("; ")
                    ),
                );
            }
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
                    "spare capacity: primary load {primary_load:.3} < {floor:.3} ({cap_text}), target burst {down_target}%, max_down {}",
                    c.max_down
                ),
            )
        } else {
            return hold(
                Rule::InBand,
                format!("burst {b}% matches targets {up_target}%/{down_target}% ({cap_text})"),
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

impl Policy for Overflow {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        let signals = signal.signals();
        let (decision, rates) =
            match self
                .tracker
                .observe(self.config.missing, signal, current, now)
            {
                Ok(rates) => {
                    self.state.record(&signals, now);
                    (
                        self.decide_rates(rates, &signals, current, now),
                        Some(rates),
                    )
                }
                Err(decision) => (decision, None),
            };
        let rules = self.config.signals;
        self.state
            .guard(&rules, decision, rates, &signals, current, now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rates;
    use proptest::prelude::*;

    fn w(v: i64) -> Weight {
        Weight::try_new(v).unwrap()
    }

    fn policy(step: i64, max_up: i64, max_down: i64, dead_band: f64) -> Overflow {
        Overflow::new(OverflowConfig {
            step: w(step),
            max_up: w(max_up),
            max_down: w(max_down),
            dead_band,
            ..OverflowConfig::new(Rate::try_new("c", 15.0).unwrap())
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
