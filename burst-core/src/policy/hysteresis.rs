//! The seed's two-threshold switch, with `sustain` and `cooldown`.

use std::time::Duration;

use super::triggers::{Capacity, SignalState};
use super::{
    Decision, MissingRule, Policy, Reason, Rule, Signal, SignalRules, Tracker, fmt_dur,
    missing_decision,
};
use crate::{Rates, Signals, Split, Thresholds, Timestamp, Weight};

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
    /// Thresholds as fractions of the primary's capacity (`highFraction`/`lowFraction`),
    /// re-evaluated every tick; when set they replace `thresholds`.
    pub capacity_fractions: Option<Thresholds>,
    /// Latency and error triggers, capacity from endpoints, the burst health guard.
    pub signals: SignalRules,
}

/// Above `high` → the burst split; below `low` while bursting → all back to the primary.
///
/// "Bursting" is read from the split in effect (`burst > 0`), not from memory, so a policy
/// started against a cluster that is already bursting behaves correctly. With
/// [`SignalRules`], the latency and error triggers can also start a burst (any one is
/// enough), coming back needs every trigger below its low, and the burst health guard has
/// the last word.
#[derive(Debug, Clone)]
pub struct Hysteresis {
    config: HysteresisConfig,
    tracker: Tracker,
    state: SignalState,
    /// The switch being sustained and since when.
    pending: Option<(Split, Timestamp)>,
}

impl HysteresisConfig {
    /// The seed's settings for `thresholds`: all to burst, no timers, hold without data,
    /// no signal rules.
    pub fn new(thresholds: Thresholds) -> HysteresisConfig {
        HysteresisConfig {
            thresholds,
            burst_weight: Weight::FULL,
            sustain: Duration::ZERO,
            cooldown: Duration::ZERO,
            missing: MissingRule {
                on_missing: super::OnMissing::Hold,
                stale_after: Duration::from_secs(60),
            },
            capacity_fractions: None,
            signals: SignalRules::default(),
        }
    }
}

impl Hysteresis {
    /// A policy with these settings.
    pub fn new(config: HysteresisConfig) -> Self {
        Hysteresis {
            config,
            tracker: Tracker::default(),
            state: SignalState::default(),
            pending: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &HysteresisConfig {
        &self.config
    }

    /// The thresholds in effect: fixed, or fractions of the capacity now.
    fn thresholds(&self, signals: &Signals) -> Result<(f64, f64, String), Capacity> {
        let Some(f) = self.config.capacity_fractions else {
            let t = self.config.thresholds;
            return Ok((t.high().get(), t.low().get(), String::new()));
        };
        match self.config.signals.capacity.primary(signals) {
            c @ Capacity::Known(cap, _) => Ok((
                f.high().get() * cap,
                f.low().get() * cap,
                format!(" ({} x {}/{})", c.describe(), f.high(), f.low()),
            )),
            other => Err(other),
        }
    }

    fn decide_rates(
        &mut self,
        rates: Rates,
        signals: &Signals,
        current: Split,
        now: Timestamp,
    ) -> Decision {
        let c = self.config;
        let (high, low, of_capacity) = match self.thresholds(signals) {
            Ok(t) => t,
            Err(_) => {
                self.pending = None;
                return missing_decision(
                    c.missing,
                    "primary_ready (capacity for highFraction/lowFraction)",
                    self.state.ready_missing_for(now),
                    current,
                    Some(rates),
                );
            }
        };
        let votes = self.state.votes(&c.signals, c.missing, signals, now);
        let reason = |rule, detail: String| Reason {
            rule,
            rates: Some(rates),
            current,
            detail,
        };

        let rate_fires = rates.up.get() > high;
        let wanted = if !current.is_bursting() && (rate_fires || !votes.fired.is_empty()) {
            let mut fired = Vec::new();
            if rate_fires {
                fired.push((
                    Rule::AboveHigh,
                    format!("short-window rate > high {high}{of_capacity}"),
                ));
            }
            fired.extend(votes.fired.iter().cloned());
            let rule = fired.first().map_or(Rule::AboveHigh, |f| f.0);
            let why: Vec<String> = fired.into_iter().map(|f| f.1).collect();
            Some((Split::from_burst(c.burst_weight), rule, why.join("; ")))
        } else if current.is_bursting()
            && rates.down.get() < low
            && !rate_fires
            && votes.holding.is_empty()
            && votes.fired.is_empty()
        {
            // The short window still above `high` means the load is back: leaving now would
            // only flap.
            let every = if c.signals.has_triggers() {
                ", every trigger below its low"
            } else {
                ""
            };
            Some((
                Split::ALL_PRIMARY,
                Rule::BelowLow,
                format!("long-window rate < low {low}{of_capacity}{every}"),
            ))
        } else {
            None
        };

        let Some((target, rule, why)) = wanted else {
            self.pending = None;
            let side = if current.is_bursting() && rates.down.get() < low && !rate_fires {
                format!(
                    "bursting, held by {}",
                    votes
                        .holding
                        .iter()
                        .chain(votes.fired.iter().map(|f| &f.1))
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("; ")
                )
            } else if current.is_bursting() {
                format!("bursting, long-window rate >= low {low}{of_capacity}")
            } else {
                format!("not bursting, short-window rate <= high {high}{of_capacity}")
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

impl Policy for Hysteresis {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        let signals = signal.signals();
        let decision = match self
            .tracker
            .observe(self.config.missing, signal, current, now)
        {
            Ok(rates) => {
                self.state.record(&signals, now);
                let d = self.decide_rates(rates, &signals, current, now);
                (d, Some(rates))
            }
            Err(decision) => {
                self.pending = None;
                (decision, None)
            }
        };
        let rules = self.config.signals;
        self.state
            .guard(&rules, decision.0, decision.1, &signals, current, now)
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
            sustain: Duration::from_secs(sustain),
            cooldown: Duration::from_secs(cooldown),
            ..HysteresisConfig::new(Thresholds::try_new(10.0, 15.0).unwrap())
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
