//! Warm-up: do not throw traffic at a cold burst side.
//!
//! [`Warmup`] shapes the split a policy decided, after the policy and before the router:
//!
//! - **Probe.** With `probe > 0`, at least that burst weight stays on the burst side while it
//!   is healthy, so it stays warm and measured (Envoy keeps ~3 % on remote capacity for the
//!   same reason). An unhealthy burst side gets no probe.
//! - **Ramp.** Entering burst (or raising the burst weight) goes through the `ramp` steps,
//!   one step per `ramp_over / steps` at most, never past what the policy asked for. Lowering
//!   the burst weight is never delayed.
//! - **Panic.** When demand is at least `panic` × capacity (decided by the caller), the ramp
//!   is skipped: waiting would overload the primary for longer than a cold burst side hurts.
//! - **Health.** While the burst side is unhealthy the ramp does not advance.
//!
//! Pure: the caller passes the time, the burst side's health and whether demand is in panic.

use std::time::Duration;

use super::{AnyPolicy, Decision, Policy, Rule, Signal, SignalRules, fmt_dur};
use crate::{Error, Signals, Split, Timestamp, Weight};

/// Settings of a [`Warmup`].
#[derive(Debug, Clone, PartialEq)]
pub struct WarmupConfig {
    probe: Weight,
    ramp: Vec<Weight>,
    ramp_over: Duration,
    panic: f64,
}

/// What the warm-up needs to know about the tick besides the policy's decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmupInput {
    /// The burst side is healthy (by the burst health guard; `true` without one).
    pub burst_healthy: bool,
    /// Demand is at least `panic` × capacity: skip the ramp.
    pub panic: bool,
}

/// The warm-up stage. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Warmup {
    config: WarmupConfig,
    /// When the ramp last moved up a step.
    last_step: Option<Timestamp>,
}

/// A policy with a [`Warmup`] after it: what [`PolicySpec::build`](super::PolicySpec::build)
/// returns when the `warmup` key is set, so every caller (controller, burstd, simulator)
/// gets the warm-up without knowing about it.
///
/// Each tick the inner policy decides, then [`Warmup::shape`] shapes its split with:
/// - **burst health**: unhealthy when the inner decision's rule is
///   [`Rule::BurstUnhealthy`] (the guard), or when a `burstHealth` rule is configured and
///   the observation has too few ready burst endpoints, too many burst errors, or no
///   ready count at all;
/// - **panic**: the short-window rate is at least `panic` × the primary's capacity (from
///   `capacity` / `capacityPerEndpoint`, else the policy's fallback, e.g. `high`); never
///   in panic without a rate or a capacity.
#[derive(Debug, Clone)]
pub struct Warmed {
    inner: AnyPolicy,
    warmup: Warmup,
    rules: SignalRules,
    fallback_capacity: Option<f64>,
    /// `(what the inner policy asked, what the warm-up made of it)` on the last tick.
    last: Option<(Split, Split)>,
}

impl WarmupConfig {
    /// The default panic multiple: demand at twice capacity skips the ramp (as Knative's
    /// panic mode).
    pub const DEFAULT_PANIC: f64 = 2.0;

    /// Warm-up settings. `probe` in 0..=100 (0: off); `ramp` strictly ascending weights in
    /// 1..=100 (empty: no ramp); `ramp_over` > 0 when there is a ramp; `panic` finite and
    /// >= 1. Errors name the key as written in `policy.yaml`.
    pub fn try_new(
        probe: i64,
        ramp: &[i64],
        ramp_over: Duration,
        panic: f64,
    ) -> Result<WarmupConfig, Error> {
        let bad = |key: &'static str, message: String| Error::InvalidSetting { key, message };
        let probe = Weight::try_new(probe).map_err(|_| {
            bad(
                "warmup.probeWeight",
                format!("{probe} is not a weight; use 0 to 100 (0 turns the probe off)"),
            )
        })?;
        let mut steps = Vec::with_capacity(ramp.len());
        for &w in ramp {
            let weight = Weight::try_new(w)
                .ok()
                .filter(|w| w.get() > 0)
                .ok_or_else(|| {
                    bad(
                        "warmup.ramp",
                        format!("step {w} is not a weight; use 1 to 100"),
                    )
                })?;
            if steps.last().is_some_and(|last: &Weight| *last >= weight) {
                return Err(bad(
                    "warmup.ramp",
                    format!("steps must go up, e.g. [10, 25, 50, 100]; {w} does not"),
                ));
            }
            steps.push(weight);
        }
        if !steps.is_empty() && ramp_over.is_zero() {
            return Err(bad(
                "warmup.rampOver",
                "a ramp needs a duration longer than 0s, e.g. 20s".into(),
            ));
        }
        if !(panic.is_finite() && panic >= 1.0) {
            return Err(bad(
                "warmup.panic",
                format!("{panic} is not a multiple of capacity; use a number >= 1, e.g. 2"),
            ));
        }
        Ok(WarmupConfig {
            probe,
            ramp: steps,
            ramp_over,
            panic,
        })
    }

    /// The probe weight (zero: off).
    pub fn probe(&self) -> Weight {
        self.probe
    }

    /// The ramp's steps, ascending.
    pub fn ramp(&self) -> &[Weight] {
        &self.ramp
    }

    /// The multiple of capacity at which the ramp is skipped.
    pub fn panic(&self) -> f64 {
        self.panic
    }

    /// Time between two steps of the ramp.
    pub fn step_interval(&self) -> Duration {
        match u32::try_from(self.ramp.len()) {
            Ok(n) if n > 0 => self.ramp_over / n,
            _ => Duration::ZERO,
        }
    }
}

impl Warmed {
    /// `inner` followed by `warmup`. `rules` are the inner policy's signal rules (capacity
    /// and burst health); `fallback_capacity` is the capacity for panic when `rules` give
    /// none (hysteresis: its `high` threshold).
    pub fn new(
        inner: AnyPolicy,
        warmup: Warmup,
        rules: SignalRules,
        fallback_capacity: Option<f64>,
    ) -> Warmed {
        Warmed {
            inner,
            warmup,
            rules,
            fallback_capacity,
            last: None,
        }
    }

    /// The policy deciding before the warm-up.
    pub fn inner(&self) -> &AnyPolicy {
        &self.inner
    }

    /// The warm-up stage.
    pub fn warmup(&self) -> &Warmup {
        &self.warmup
    }

    /// The tick's facts for the warm-up, from the signal and the inner decision.
    fn input(&self, signal: &Signal, decision: &Decision) -> WarmupInput {
        let signals = signal.signals();
        let burst_healthy =
            decision.reason.rule != Rule::BurstUnhealthy && self.burst_healthy(&signals);
        let capacity = self
            .rules
            .capacity
            .primary(&signals)
            .known()
            .or(self.fallback_capacity)
            .filter(|c| *c > 0.0);
        let panic = match (signal.rates(), capacity) {
            (Some(r), Some(c)) => r.up.get() >= self.warmup.config.panic * c,
            _ => false,
        };
        WarmupInput {
            burst_healthy,
            panic,
        }
    }

    fn burst_healthy(&self, signals: &Signals) -> bool {
        let Some(health) = self.rules.burst_health else {
            return true;
        };
        let ready = signals.burst_ready.is_some_and(|n| n >= health.min_ready);
        let errors_ok = match (health.max_error_ratio, signals.burst_error_ratio) {
            (Some(max), Some(r)) => r.get() <= max.get(),
            _ => true,
        };
        ready && errors_ok
    }
}

impl Policy for Warmed {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        // The inner policy sees the split it asked for while the one in effect is only the
        // warm-up's shaping of it (a probe, a step of the ramp): a 2 % probe is not
        // "bursting" to a hysteresis, and a ramp step is not a decision to hold. Any other
        // split in effect (a failed apply, a hand edit) is shown as it is.
        let seen = match self.last {
            Some((asked, shaped)) if shaped == current => asked,
            _ => current,
        };
        let mut decision = self.inner.decide(signal, seen, now);
        decision.reason.current = current;
        let asked = decision.desired;
        let input = self.input(signal, &decision);
        let shaped = self.warmup.shape(decision, current, input, now);
        self.last = Some((asked, shaped.desired));
        shaped
    }
}

impl Warmup {
    /// A warm-up stage with no step taken yet.
    pub fn new(config: WarmupConfig) -> Warmup {
        Warmup {
            config,
            last_step: None,
        }
    }

    /// The settings.
    pub fn config(&self) -> &WarmupConfig {
        &self.config
    }

    /// Shapes the policy's `decision` given the split in effect and the tick's facts.
    pub fn shape(
        &mut self,
        decision: Decision,
        current: Split,
        input: WarmupInput,
        now: Timestamp,
    ) -> Decision {
        let cur = current.burst();
        let floor = if input.burst_healthy {
            self.config.probe
        } else {
            Weight::ZERO
        };
        let asked = decision.desired.burst();
        let want = asked.max(floor);
        if want <= cur || want == floor {
            // Going down (or staying), or only the probe: never delayed. Leaving burst
            // resets the ramp, so the next entry starts at its first step.
            if want <= floor {
                self.last_step = None;
            }
            return self.with(decision, want, asked, None);
        }
        if self.config.ramp.is_empty() || input.panic {
            self.last_step = Some(now);
            let note = (input.panic && !self.config.ramp.is_empty()).then(|| {
                format!(
                    "panic: demand >= {}x capacity, ramp skipped",
                    self.config.panic
                )
            });
            return self.with(decision, want, asked, note);
        }
        if !input.burst_healthy {
            // The guard keeps traffic off an unhealthy burst side; the ramp waits too.
            return self.warming(
                decision,
                cur,
                want,
                "burst side unhealthy, ramp paused".into(),
            );
        }
        let due = self
            .last_step
            .is_none_or(|t| now.saturating_since(t) >= self.config.step_interval());
        if !due {
            let wait = self
                .config
                .step_interval()
                .saturating_sub(now.saturating_since(self.last_step.unwrap_or(now)));
            return self.warming(
                decision,
                cur,
                want,
                format!("next step in {}", fmt_dur(wait)),
            );
        }
        let next = self
            .config
            .ramp
            .iter()
            .copied()
            .find(|s| *s > cur)
            .unwrap_or(want)
            .min(want);
        self.last_step = Some(now);
        if next == want {
            return self.with(decision, want, asked, None);
        }
        let (k, n) = (
            self.config.ramp.iter().take_while(|s| **s <= next).count(),
            self.config.ramp.len(),
        );
        self.warming(decision, next, want, format!("step {k}/{n}"))
    }

    fn with(
        &self,
        mut decision: Decision,
        burst: Weight,
        asked: Weight,
        note: Option<String>,
    ) -> Decision {
        if burst != asked {
            decision.reason.detail = format!(
                "{}; probe {}% kept on burst",
                decision.reason.detail,
                self.config.probe.get()
            );
        }
        if let Some(note) = note {
            decision.reason.detail = format!("{}; {note}", decision.reason.detail);
        }
        decision.desired = Split::from_burst(burst);
        decision
    }

    fn warming(
        &self,
        mut decision: Decision,
        burst: Weight,
        want: Weight,
        why: String,
    ) -> Decision {
        decision.reason.detail = format!(
            "warming toward {}% ({why}); policy: {} ({})",
            want.get(),
            decision.reason.rule,
            decision.reason.detail
        );
        decision.reason.rule = Rule::Warming;
        decision.desired = Split::from_burst(burst);
        decision
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Reason;
    use proptest::prelude::*;

    fn decision(burst: u8) -> Decision {
        Decision {
            desired: Split::from_burst(Weight::try_new(i64::from(burst)).unwrap()),
            reason: Reason {
                rule: Rule::AboveHigh,
                rates: None,
                current: Split::ALL_PRIMARY,
                detail: "policy".into(),
            },
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_duration(Duration::from_secs(secs))
    }

    const OK: WarmupInput = WarmupInput {
        burst_healthy: true,
        panic: false,
    };

    fn ramp() -> Warmup {
        Warmup::new(
            WarmupConfig::try_new(0, &[10, 25, 50, 100], Duration::from_secs(20), 2.0).unwrap(),
        )
    }

    #[test]
    fn entering_burst_goes_through_every_step_at_the_interval() {
        let mut w = ramp();
        let mut cur = Split::ALL_PRIMARY;
        let mut seen = Vec::new();
        for t in 0..30 {
            let d = w.shape(decision(100), cur, OK, at(t));
            if d.desired != cur {
                seen.push((t, d.desired.burst().get()));
            }
            cur = d.desired;
        }
        assert_eq!(seen, vec![(0, 10), (5, 25), (10, 50), (15, 100)]);
    }

    #[test]
    fn ramp_reason_says_warming_and_the_step() {
        let mut w = ramp();
        let d = w.shape(decision(100), Split::ALL_PRIMARY, OK, at(0));
        assert_eq!(d.reason.rule, Rule::Warming);
        assert!(d.reason.detail.contains("step 1/4"), "{}", d.reason.detail);
        assert!(
            d.reason.detail.contains("above_high"),
            "{}",
            d.reason.detail
        );
        let d = w.shape(decision(100), d.desired, OK, at(1));
        assert!(
            d.reason.detail.contains("next step in 4s"),
            "{}",
            d.reason.detail
        );
    }

    #[test]
    fn panic_jumps_and_going_down_is_never_delayed() {
        let mut w = ramp();
        let panic = WarmupInput {
            burst_healthy: true,
            panic: true,
        };
        let d = w.shape(decision(100), Split::ALL_PRIMARY, panic, at(0));
        assert_eq!(d.desired, Split::ALL_BURST);
        assert!(d.reason.detail.contains("panic"));
        let d = w.shape(decision(0), Split::ALL_BURST, OK, at(1));
        assert_eq!(d.desired, Split::ALL_PRIMARY);
        // The next entry starts at the first step again.
        let d = w.shape(decision(100), Split::ALL_PRIMARY, OK, at(2));
        assert_eq!(d.desired.burst().get(), 10);
    }

    #[test]
    fn settings_are_validated_with_the_key() {
        let e = |r: Result<WarmupConfig, Error>| r.unwrap_err().to_string();
        assert!(
            e(WarmupConfig::try_new(101, &[], Duration::ZERO, 2.0)).contains("warmup.probeWeight")
        );
        assert!(
            e(WarmupConfig::try_new(
                0,
                &[50, 25],
                Duration::from_secs(1),
                2.0
            ))
            .contains("must go up")
        );
        assert!(
            e(WarmupConfig::try_new(
                0,
                &[0, 25],
                Duration::from_secs(1),
                2.0
            ))
            .contains("warmup.ramp")
        );
        assert!(
            e(WarmupConfig::try_new(0, &[25], Duration::ZERO, 2.0)).contains("warmup.rampOver")
        );
        assert!(e(WarmupConfig::try_new(0, &[], Duration::ZERO, 0.5)).contains("warmup.panic"));
        assert!(WarmupConfig::try_new(3, &[], Duration::ZERO, 2.0).is_ok());
    }

    proptest! {
        /// The same through a policy built from `policy.yaml` (hysteresis 15/10 with a
        /// warm-up and a burst health guard): outside panic (short-window rate at 2x `high`)
        /// the burst weight never rises past the next ramp step above the split in effect;
        /// a burst side with no ready endpoint gets nothing, not even the probe.
        #[test]
        fn the_decorated_policy_never_skips_a_step_unless_in_panic(
            ticks in proptest::collection::vec((0.0f64..45.0, 0u32..3, 1u64..4), 1..120),
            probe in 0i64..=3,
        ) {
            use crate::policy::{Policy, PolicyFile, Signal};
            use crate::{Observation, Rate, Rates, Signals};
            let file = PolicyFile::from_yaml(&format!(
                "cooldown: 0s\nburstHealth: {{minReady: 1, healthyAfter: 0s}}\nwarmup: {{probeWeight: {probe}, ramp: [10, 25, 50, 100], rampOver: 20s}}\n"
            )).unwrap();
            let mut policy = file.policy.build().unwrap();
            let steps = [10u8, 25, 50, 100];
            let mut cur = Split::ALL_PRIMARY;
            let mut t = 0u64;
            for (rps, burst_ready, dt) in ticks {
                t += dt;
                let rate = Rate::try_new("r", rps).unwrap();
                let signal = Signal::Observed(
                    Observation::new(Rates { up: rate, down: rate }, at(t)).with_signals(Signals {
                        burst_ready: Some(burst_ready),
                        ..Signals::NONE
                    }),
                );
                let d = policy.decide(&signal, cur, at(t));
                let (c, out) = (cur.burst().get(), d.desired.burst().get());
                let panic = rps >= 2.0 * 15.0;
                if out > c && !panic {
                    let next = steps.iter().copied().find(|s| *s > c).unwrap_or(100);
                    let p = u8::try_from(probe).unwrap();
                    prop_assert!(out <= next.max(p), "skipped a step: {c} -> {out} at {rps} rps");
                }
                if burst_ready == 0 {
                    prop_assert_eq!(out, 0, "traffic onto a burst side with no ready endpoint");
                }
                cur = d.desired;
            }
        }

        /// Over any run of decisions, health and panic: an increase of the burst weight
        /// outside panic never goes past the next ramp step above the split in effect; the
        /// probe is held while the burst side is healthy and dropped when it is not (unless
        /// the policy itself asks for burst); a decrease is applied at once.
        #[test]
        fn ramp_never_skips_a_step_and_the_probe_follows_health(
            ticks in proptest::collection::vec((0u8..=100, any::<bool>(), proptest::bool::weighted(0.1), 0u64..4), 1..80),
            probe in 0i64..=5,
        ) {
            let steps = [10u8, 25, 50, 100];
            let mut w = Warmup::new(WarmupConfig::try_new(probe, &[10, 25, 50, 100], Duration::from_secs(20), 2.0).unwrap());
            let mut cur = Split::ALL_PRIMARY;
            let mut t = 0u64;
            for (asked, healthy, panic, dt) in ticks {
                t += dt;
                let input = WarmupInput { burst_healthy: healthy, panic };
                let out = w.shape(decision(asked), cur, input, at(t)).desired.burst().get();
                let (c, p) = (cur.burst().get(), u8::try_from(probe).unwrap());
                let want = if healthy { asked.max(p) } else { asked };
                prop_assert!(out <= want.max(c), "never above what was asked: {out} > {want}");
                if out > c && !panic {
                    let next = steps.iter().copied().find(|s| *s > c).unwrap_or(100);
                    prop_assert!(out <= next.max(p), "skipped a step: {c} -> {out}");
                    prop_assert!(healthy, "ramped on an unhealthy burst side");
                }
                if want <= c {
                    prop_assert_eq!(out, want, "a decrease is applied at once");
                }
                if healthy && asked == 0 && c <= p {
                    prop_assert_eq!(out, p, "probe held");
                }
                if !healthy && asked == 0 {
                    prop_assert_eq!(out, 0, "no probe on an unhealthy burst side");
                }
                cur = Split::from_burst(Weight::try_new(i64::from(out)).unwrap());
            }
        }
    }
}
