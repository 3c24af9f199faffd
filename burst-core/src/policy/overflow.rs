//! Proportional overflow: send to burst only what the primary cannot serve.

use std::collections::VecDeque;
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
    /// Fraction of capacity (0..=1] the primary is aimed at: the burst weight sends away
    /// what is above `target × capacity`, keeping the rest as headroom. 1.0: none (the
    /// behaviour before this setting existed).
    pub target: f64,
    /// Time constant of an exponentially weighted moving average over the short-window
    /// rate: the policy reads the average instead of the raw rate (zero: off).
    pub smoothing: Duration,
    /// Scale-down stabilization window: the burst weight never comes down below the
    /// highest weight the short window asked for during this long (zero: off). Quick to
    /// add burst, slow to take it away, as the stabilization window of Kubernetes'
    /// HorizontalPodAutoscaler.
    pub stabilization: Duration,
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
/// Three settings, each off by default, keep headroom and damp changes asymmetrically:
/// `target` aims the primary at `target × capacity`; `smoothing` reads a moving average of
/// the short-window rate; `stabilization` never lets the weight come down below the highest
/// weight the short window asked for within that window (and then `cooldown` only spaces
/// out decreases, so raises are never delayed). A raise never sends more than the excess
/// over `target × capacity` plus one step.
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
    /// The smoothed short-window rate and when it was last fed.
    smoothed: Option<(f64, Timestamp)>,
    /// The weights the short window asked for, oldest first, within `stabilization`.
    asked: VecDeque<(Timestamp, Weight)>,
}

impl OverflowConfig {
    /// Defaults around `capacity`: 5 % steps, up at once, down by 10 per decision, 10 %
    /// dead band, no headroom, smoothing or stabilization, no cooldown, hold without data,
    /// no signal rules.
    pub fn new(capacity: Rate) -> OverflowConfig {
        OverflowConfig {
            capacity,
            step: Weight::try_new(5).unwrap_or(Weight::FULL),
            max_up: Weight::FULL,
            max_down: Weight::try_new(10).unwrap_or(Weight::FULL),
            dead_band: 0.1,
            target: 1.0,
            smoothing: Duration::ZERO,
            stabilization: Duration::ZERO,
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
            smoothed: None,
            asked: VecDeque::new(),
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

    /// The short-window rate the policy reads: the raw rate, or its moving average with
    /// `smoothing`.
    fn smooth(&mut self, rate: f64, now: Timestamp) -> f64 {
        let tau = self.config.smoothing.as_secs_f64();
        if tau <= 0.0 {
            return rate;
        }
        let value = match self.smoothed {
            Some((prev, at)) => {
                let dt = now.saturating_since(at).as_secs_f64();
                prev + (1.0 - (-dt / tau).exp()) * (rate - prev)
            }
            None => rate,
        };
        self.smoothed = Some((value, now));
        value
    }

    /// Records what the short window asks for and returns the highest weight asked for
    /// within the stabilization window (`asked` itself when stabilization is off).
    fn stabilized(&mut self, asked: Weight, now: Timestamp) -> Weight {
        let window = self.config.stabilization;
        if window.is_zero() {
            return asked;
        }
        while let Some((at, _)) = self.asked.front() {
            if now.saturating_since(*at) > window {
                self.asked.pop_front();
            } else {
                break;
            }
        }
        // A smaller or equal older entry can never be the maximum again: drop it, so the
        // queue stays short (a monotone queue).
        while self.asked.back().is_some_and(|(_, w)| *w <= asked) {
            self.asked.pop_back();
        }
        self.asked.push_back((now, asked));
        self.asked.front().map_or(asked, |(_, w)| *w)
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
        let cap_text = if c.target < 1.0 {
            format!("target {} x {}", c.target, capacity.describe())
        } else {
            capacity.describe()
        };
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

        let aim = cap * c.target;
        let up_rate = self.smooth(rates.up.get(), now);
        let up_rate = Rate::try_new("smoothed rate", up_rate).unwrap_or(rates.up);
        let mut up_target = self.target_with(up_rate, aim);
        let held = self.stabilized(up_target, now);
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
        let down_target = self.target_with(rates.down, aim).max(held);
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

        // With a stabilization window, adding burst is never delayed: the cooldown only
        // spaces out the decreases (quick up, slow down).
        let quick_up = !c.stabilization.is_zero() && desired > b;
        if let Some(left) = self
            .tracker
            .cooldown_left(c.cooldown, now)
            .filter(|_| !quick_up)
        {
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

    fn stable(target: f64, stabilization: u64, cooldown: u64) -> Overflow {
        Overflow::new(OverflowConfig {
            step: w(10),
            max_down: Weight::FULL,
            dead_band: 0.0,
            target,
            stabilization: Duration::from_secs(stabilization),
            cooldown: Duration::from_secs(cooldown),
            ..OverflowConfig::new(Rate::try_new("c", 15.0).unwrap())
        })
    }

    #[test]
    fn headroom_aims_the_primary_below_capacity() {
        let mut p = stable(0.9, 0, 0);
        // 20 rps against 0.9 x 15 = 13.5: 32.5 % → 40 %, where no headroom asks for 30 %.
        let d = p.decide(&rate(20.0), Split::ALL_PRIMARY, at(0));
        assert_eq!(d.desired.burst().get(), 40);
        assert!(d.reason.detail.contains("target 0.9"), "{}", d.reason);
        // 14 rps fits under capacity but not under the target.
        assert_eq!(
            p.decide(&rate(14.0), Split::ALL_PRIMARY, at(1))
                .desired
                .burst()
                .get(),
            10
        );
        let mut none = stable(1.0, 0, 0);
        assert_eq!(
            none.decide(&rate(20.0), Split::ALL_PRIMARY, at(0))
                .desired
                .burst()
                .get(),
            30
        );
    }

    #[test]
    fn stabilization_holds_the_highest_weight_asked_for() {
        let mut p = stable(1.0, 30, 0);
        let mut cur = Split::ALL_PRIMARY;
        // A one-second peak of 25 rps asks for 40 %.
        cur = p.decide(&rate(25.0), cur, at(0)).desired;
        assert_eq!(cur.burst().get(), 40);
        // Back to 5 rps: held for the 30 s window, then all back at once.
        for s in 1..=30 {
            let d = p.decide(&rate(5.0), cur, at(s));
            assert_eq!(d.desired, cur, "moved at {s}s: {}", d.reason);
        }
        let d = p.decide(&rate(5.0), cur, at(31));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (0, Rule::OverflowDown)
        );
        // Without the window the same input comes back at once.
        let mut q = stable(1.0, 0, 0);
        let up = q.decide(&rate(25.0), Split::ALL_PRIMARY, at(0)).desired;
        assert_eq!(q.decide(&rate(5.0), up, at(1)).desired, Split::ALL_PRIMARY);
    }

    #[test]
    fn square_wave_settles_after_one_change() {
        let mut p = stable(1.0, 30, 10);
        let mut cur = Split::ALL_PRIMARY;
        let mut changes = 0;
        for s in 0..600 {
            let load = if s % 2 == 0 { 5.0 } else { 25.0 };
            let d = p.decide(&rate(load), cur, at(s));
            changes += u32::from(d.desired != cur);
            cur = d.desired;
        }
        assert_eq!((changes, cur.burst().get()), (1, 40));
    }

    #[test]
    fn with_stabilization_the_cooldown_only_delays_decreases() {
        let mut p = stable(1.0, 5, 20);
        let d = p.decide(&rate(20.0), Split::ALL_PRIMARY, at(0));
        assert_eq!(d.desired.burst().get(), 30);
        // A surge a second later is followed at once despite the 20 s cooldown.
        let d = p.decide(&rate(30.0), d.desired, at(1));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (50, Rule::OverflowUp)
        );
        // Coming down waits for the window, then for the cooldown.
        let d2 = p.decide(&rate(5.0), d.desired, at(10));
        assert_eq!((d2.desired, d2.reason.rule), (d.desired, Rule::Cooldown));
        // (The cooldown counts from when the raise was first seen in effect, at 10 s.)
        let d3 = p.decide(&rate(5.0), d.desired, at(31));
        assert_eq!(d3.desired, Split::ALL_PRIMARY);
        // Old settings (no stabilization): the cooldown delays increases too.
        let mut old = stable(1.0, 0, 20);
        let d = old.decide(&rate(20.0), Split::ALL_PRIMARY, at(0));
        let d = old.decide(&rate(30.0), d.desired, at(1));
        assert_eq!(
            (d.desired.burst().get(), d.reason.rule),
            (30, Rule::Cooldown)
        );
    }

    #[test]
    fn smoothing_averages_the_short_window() {
        let mut p = Overflow::new(OverflowConfig {
            step: w(1),
            smoothing: Duration::from_secs(10),
            ..OverflowConfig::new(Rate::try_new("c", 15.0).unwrap())
        });
        // The first reading is taken as it is.
        assert_eq!(
            p.decide(&rate(10.0), Split::ALL_PRIMARY, at(0)).desired,
            Split::ALL_PRIMARY
        );
        // One second of 30 rps moves the average only to 10 + 20 (1 - e^-0.1) = 11.9.
        let d = p.decide(&rate(30.0), Split::ALL_PRIMARY, at(1));
        assert_eq!(d.desired, Split::ALL_PRIMARY, "{}", d.reason);
        // Sustained, it gets there: 30 rps needs 50 %.
        let mut cur = Split::ALL_PRIMARY;
        for s in 2..120 {
            cur = p.decide(&rate(30.0), cur, at(s)).desired;
        }
        assert_eq!(cur.burst().get(), 50);
    }

    proptest! {
        /// With headroom and a stabilization window, a raise never goes above the excess
        /// over `target` × capacity plus one step (nor above `max_up`), and the split sums
        /// to 100.
        #[test]
        fn raises_never_exceed_the_excess_over_target_plus_one_step(
            rates in proptest::collection::vec(0.0f64..200.0, 1..100),
            step in 1i64..=25, max_up in 1i64..=100,
            target in 0.05f64..=1.0, stabilization in 0u64..60, cooldown in 0u64..30,
        ) {
            let mut p = Overflow::new(OverflowConfig {
                step: w(step),
                max_up: w(max_up),
                target,
                stabilization: Duration::from_secs(stabilization),
                cooldown: Duration::from_secs(cooldown),
                ..OverflowConfig::new(Rate::try_new("c", 15.0).unwrap())
            });
            let aim = 15.0 * target;
            let mut current = Split::ALL_PRIMARY;
            for (i, r) in rates.iter().enumerate() {
                let d = p.decide(&rate(*r), current, at(i as u64));
                let (from, to) = (i64::from(current.burst().get()), i64::from(d.desired.burst().get()));
                let excess = if *r > aim { (r - aim) / r * 100.0 } else { 0.0 };
                if to > from {
                    prop_assert!(to - from <= max_up);
                    prop_assert!((to as f64) <= excess + step as f64 + 1e-6,
                        "burst {} for {} rps, excess over {} is {}", to, r, aim, excess);
                }
                prop_assert_eq!(u16::from(d.desired.primary().get()) + u16::from(d.desired.burst().get()), 100);
                current = d.desired;
            }
        }
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
