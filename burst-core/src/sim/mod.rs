//! A deterministic simulator: a policy against a load trace on a virtual clock.
//!
//! The measured rate is modelled on Prometheus: a counter of all requests (measured at the
//! source, so independent of the split) is scraped every `scrape_interval`, and
//! `rate(x[window])` is the counter's increase between the first and last sample inside the
//! window divided by the time between them. Fewer than two samples in the window (an outage,
//! or the first seconds) is "no data". Reaction delays are therefore realistic.
//!
//! The other signals come from the trace's signal columns (ready endpoints, latency, error
//! ratios). Where the trace gives no p99 or error ratio for the primary but a capacity is
//! known (`capacity`, or `capacityPerEndpoint` × the trace's `primary_ready`), the simulator
//! derives them from the primary's load against that capacity with a simple queueing
//! model, so that moving traffic away visibly lowers them (see [`model_p99_ms`] and
//! [`model_error_ratio`]).
//!
//! ```
//! use burst_core::policy::PolicyFile;
//! use burst_core::sim::{simulate, Trace};
//!
//! let run = simulate(&PolicyFile::default(), &Trace::builtin("step", 0)?, None)?;
//! assert_eq!(run.summary.changes, 2); // into burst and back
//! # Ok::<(), burst_core::Error>(())
//! ```

mod compare;
mod trace;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::policy::{Policy, PolicyFile, Signal};
use crate::{Error, Millis, Observation, Rate, Rates, Ratio, Signals, Split, Timestamp};

/// The queueing model's p99 latency of an idle primary, in milliseconds.
pub const MODEL_BASE_P99_MS: f64 = 50.0;
/// The queueing model's highest p99 (a saturated primary times requests out), in
/// milliseconds.
pub const MODEL_MAX_P99_MS: f64 = 2000.0;
/// The burst side's error ratio above which the simulator counts it unhealthy, when the
/// policy sets no `burstHealth.maxErrorRatio`.
pub const UNHEALTHY_BURST_ERROR_RATIO: f64 = 0.5;

pub use compare::{Quality, quality};
pub use trace::{Trace, TracePoint};

/// One tick of a simulation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimPoint {
    /// Seconds since the start.
    pub t: f64,
    /// True load.
    pub rps: f64,
    /// Long-window measured rate (`None`: no data).
    pub observed: Option<f64>,
    /// Short-window measured rate; present only when two windows are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_up: Option<Option<f64>>,
    /// Burst weight after this tick's decision.
    pub burst_weight: u8,
    /// The rule behind this tick's decision.
    #[serde(skip)]
    pub rule: &'static str,
    /// The primary's p99 the policy saw (from the trace or the queueing model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
    /// The primary's error ratio the policy saw (from the trace or the queueing model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<f64>,
    /// The primary's ready endpoints (from the trace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub primary_ready: Option<u32>,
    /// The burst side's ready endpoints (from the trace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_ready: Option<u32>,
    /// The primary's capacity in rps on this tick, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
}

/// One change of the split, and the rule (signal) behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Seconds since the start.
    pub t: f64,
    /// Burst weight before.
    pub from: u8,
    /// Burst weight after.
    pub to: u8,
    /// The rule that made the change (`above_high`, `latency_high`, `burst_unhealthy`, ...).
    pub rule: &'static str,
}

/// How the simulator measures a run besides the policy's own settings.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct SimOptions {
    /// The primary's fixed capacity in rps (default: the policy's `capacity`).
    pub capacity: Option<f64>,
    /// Rps one primary endpoint serves (default: the policy's `capacityPerEndpoint`); with
    /// the trace's `primary_ready`, the capacity in effect on each tick.
    pub capacity_per_endpoint: Option<f64>,
}

/// What a simulation run amounted to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Number of weight changes.
    pub changes: u32,
    /// First time any traffic went to burst (seconds), if ever.
    pub first_burst_s: Option<f64>,
    /// Time of the last weight change, if any.
    pub last_change_s: Option<f64>,
    /// Burst weight at the end.
    pub final_burst_weight: u8,
    /// Seconds with the primary's share of the load above capacity (needs a capacity).
    pub overload_s: Option<f64>,
    /// Share of all requests sent to burst (0..1): a cost proxy.
    pub burst_share: f64,
    /// Seconds with the primary's share above the capacity in effect (from endpoints when
    /// known, else the fixed capacity; `None` without either).
    pub seconds_primary_over_capacity: Option<f64>,
    /// Seconds with traffic on a burst side that is unhealthy by the trace (fewer ready
    /// endpoints than `burstHealth.minReady`, default 1, or its error ratio above
    /// `burstHealth.maxErrorRatio`, default 0.5).
    pub seconds_on_unhealthy_burst: f64,
    /// Number of changes by the rule (signal) that made them.
    pub changes_by_rule: BTreeMap<&'static str, u32>,
}

/// A simulation's timeline and summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimRun {
    /// Summary figures.
    pub summary: Summary,
    /// One point per tick.
    pub timeline: Vec<SimPoint>,
    /// Every change of the split, with the rule behind it.
    pub changes: Vec<Change>,
}

/// The scraped counter, as Prometheus would store it.
#[derive(Debug, Clone)]
struct ScrapeModel {
    interval: f64,
    samples: Vec<(f64, f64)>,
    next_scrape: f64,
}

impl ScrapeModel {
    fn new(interval: Duration) -> Self {
        ScrapeModel {
            interval: interval.as_secs_f64(),
            samples: Vec::new(),
            next_scrape: 0.0,
        }
    }

    /// Takes every scrape due up to `now`.
    fn advance(&mut self, trace: &Trace, now: f64) {
        while self.next_scrape <= now + 1e-9 {
            let t = self.next_scrape;
            if trace.at(t).up {
                self.samples.push((t, trace.total_until(t)));
            }
            self.next_scrape += self.interval;
        }
    }

    /// `rate(counter[window])` at `now`, or `None` with fewer than two samples.
    fn rate(&self, now: f64, window: Duration) -> Option<f64> {
        let from = now - window.as_secs_f64();
        let start = self.samples.partition_point(|s| s.0 <= from + 1e-9);
        let end = self.samples.partition_point(|s| s.0 <= now + 1e-9);
        let inside = self.samples.get(start..end)?;
        match (inside.first(), inside.last()) {
            (Some(a), Some(b)) if b.0 > a.0 => Some(((b.1 - a.1) / (b.0 - a.0)).max(0.0)),
            _ => None,
        }
    }
}

/// The queueing model's p99 for a primary serving `load` rps with `capacity` rps:
/// `base / (1 - utilisation)`, capped at [`MODEL_MAX_P99_MS`] (an M/M/1-like curve: flat
/// while the primary has room, steep near capacity).
pub fn model_p99_ms(load: f64, capacity: f64) -> f64 {
    if capacity <= 0.0 {
        return if load > 0.0 {
            MODEL_MAX_P99_MS
        } else {
            MODEL_BASE_P99_MS
        };
    }
    let utilisation = load.max(0.0) / capacity;
    if utilisation >= 1.0 {
        return MODEL_MAX_P99_MS;
    }
    (MODEL_BASE_P99_MS / (1.0 - utilisation)).min(MODEL_MAX_P99_MS)
}

/// The queueing model's error ratio: 0 up to capacity; above it, the requests beyond
/// capacity fail (shed with 503 or 429): `(load - capacity) / load`.
pub fn model_error_ratio(load: f64, capacity: f64) -> f64 {
    if load <= capacity.max(0.0) || load <= 0.0 {
        0.0
    } else {
        ((load - capacity.max(0.0)) / load).clamp(0.0, 1.0)
    }
}

/// Runs `file`'s policy over `trace`, starting from all traffic on the primary.
///
/// `capacity` (rps the primary serves) enables `overload_s`; without it, the policy's own
/// `capacity` is used when set.
pub fn simulate(file: &PolicyFile, trace: &Trace, capacity: Option<f64>) -> Result<SimRun, Error> {
    simulate_with(
        file,
        trace,
        SimOptions {
            capacity,
            ..SimOptions::default()
        },
    )
}

/// [`simulate`] with every measurement option.
pub fn simulate_with(
    file: &PolicyFile,
    trace: &Trace,
    options: SimOptions,
) -> Result<SimRun, Error> {
    let mut policy = file.policy.build()?;
    simulate_policy_with(&mut policy, file, trace, options)
}

/// Runs any [`Policy`] (your own, say) over `trace`, with `file`'s measurement model
/// (`tick`, `window`, `windowUp`, `windowDown`, `scrapeInterval`); `file`'s decision
/// settings are not used.
pub fn simulate_policy(
    policy: &mut dyn Policy,
    file: &PolicyFile,
    trace: &Trace,
    capacity: Option<f64>,
) -> Result<SimRun, Error> {
    simulate_policy_with(
        policy,
        file,
        trace,
        SimOptions {
            capacity,
            ..SimOptions::default()
        },
    )
}

/// [`simulate_policy`] with every measurement option.
pub fn simulate_policy_with(
    policy: &mut dyn Policy,
    file: &PolicyFile,
    trace: &Trace,
    options: SimOptions,
) -> Result<SimRun, Error> {
    file.validate()?;
    let spec = &file.policy;
    let capacity = options.capacity.or(spec.capacity);
    if let Some(c) = capacity {
        Rate::try_new("capacity", c)?;
    }
    let per_endpoint = options.capacity_per_endpoint.or(spec.capacity_per_endpoint);
    if let Some(c) = per_endpoint {
        Rate::try_new("capacityPerEndpoint", c)?;
    }
    let health = spec.burst_health;
    let min_ready = health.map_or(1, |h| h.min_ready.max(1));
    let max_burst_errors = health
        .and_then(|h| h.max_error_ratio)
        .unwrap_or(UNHEALTHY_BURST_ERROR_RATIO);
    let capacity_at = |s: &Signals| match (per_endpoint, s.primary_ready) {
        (Some(per), Some(n)) => Some(per * f64::from(n)),
        _ => capacity,
    };
    let tick = file.run.tick.get().as_secs_f64();
    let two_windows = spec.has_two_windows();
    let mut model = ScrapeModel::new(file.sim.scrape_interval.get());
    let mut split = Split::ALL_PRIMARY;
    let mut timeline = Vec::new();
    let mut changes = Vec::new();
    let mut summary = Summary {
        changes: 0,
        first_burst_s: None,
        last_change_s: None,
        final_burst_weight: 0,
        overload_s: capacity.map(|_| 0.0),
        burst_share: 0.0,
        seconds_primary_over_capacity: None,
        seconds_on_unhealthy_burst: 0.0,
        changes_by_rule: BTreeMap::new(),
    };
    let (mut burst_requests, mut all_requests) = (0.0, 0.0);
    // The primary's load over the last tick, for the queueing model.
    let mut primary_load = trace.at(0.0).rps;
    let mut k: u64 = 0;
    loop {
        // Multiplying (not accumulating) keeps long runs free of float drift.
        let t = k as f64 * tick;
        if t > trace.duration() + 1e-9 {
            break;
        }
        model.advance(trace, t);
        let up = model.rate(t, spec.window_up());
        let down = model.rate(t, spec.window_down());
        let mut signals = trace.signals_at(t);
        let cap_now = capacity_at(&signals);
        if let Some(cap) = cap_now {
            if signals.primary_p99.is_none() {
                signals.primary_p99 = Millis::try_new("p99", model_p99_ms(primary_load, cap)).ok();
            }
            if signals.primary_error_ratio.is_none() {
                signals.primary_error_ratio =
                    Ratio::try_new("error ratio", model_error_ratio(primary_load, cap)).ok();
            }
        }
        let now = Timestamp::from_secs_f64(t).unwrap_or(Timestamp::ZERO);
        let signal = match (up, down) {
            (Some(u), Some(d)) => Signal::Observed(
                Observation::new(
                    Rates {
                        up: Rate::try_new("observed rate", u)?,
                        down: Rate::try_new("observed rate", d)?,
                    },
                    now,
                )
                .with_signals(signals),
            ),
            _ => Signal::NoData("fewer than two samples in the window".into()),
        };
        let decision = policy.decide(&signal, split, now);
        if decision.desired != split {
            summary.changes += 1;
            summary.last_change_s = Some(t);
            let rule = decision.reason.rule.name();
            *summary.changes_by_rule.entry(rule).or_insert(0) += 1;
            changes.push(Change {
                t,
                from: split.burst().get(),
                to: decision.desired.burst().get(),
                rule,
            });
            split = decision.desired;
        }
        if split.is_bursting() && summary.first_burst_s.is_none() {
            summary.first_burst_s = Some(t);
        }
        // Traffic until the next tick flows with this split.
        let t_next = (t + tick).min(trace.duration());
        if t_next > t {
            let dt = t_next - t;
            let served = trace.total_until(t_next) - trace.total_until(t);
            let to_burst = served * f64::from(split.burst().get()) / 100.0;
            all_requests += served;
            burst_requests += to_burst;
            let primary_rps = (served - to_burst) / dt;
            primary_load = primary_rps;
            if let (Some(cap), Some(over)) = (capacity, summary.overload_s.as_mut())
                && primary_rps > cap + 1e-9
            {
                *over += dt;
            }
            if let Some(cap) = cap_now {
                let over = summary.seconds_primary_over_capacity.get_or_insert(0.0);
                if primary_rps > cap + 1e-9 {
                    *over += dt;
                }
            }
            let truth = trace.signals_at(t);
            let burst_unhealthy = truth.burst_ready.is_some_and(|n| n < min_ready)
                || truth
                    .burst_error_ratio
                    .is_some_and(|r| r.get() > max_burst_errors);
            if split.is_bursting() && burst_unhealthy {
                summary.seconds_on_unhealthy_burst += dt;
            }
        }
        timeline.push(SimPoint {
            t,
            rps: trace.at(t).rps,
            observed: down,
            observed_up: two_windows.then_some(up),
            burst_weight: split.burst().get(),
            rule: decision.reason.rule.name(),
            p99_ms: signals.primary_p99.map(Millis::get),
            error_ratio: signals.primary_error_ratio.map(Ratio::get),
            primary_ready: signals.primary_ready,
            burst_ready: signals.burst_ready,
            capacity: cap_now,
        });
        k += 1;
    }
    summary.final_burst_weight = split.burst().get();
    summary.burst_share = if all_requests > 0.0 {
        burst_requests / all_requests
    } else {
        0.0
    };
    Ok(SimRun {
        summary,
        timeline,
        changes,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HumanDuration;
    use crate::policy::{Mode, OnMissing, PolicySpec};
    use proptest::prelude::*;

    #[test]
    fn seed_scenario_enters_burst_and_comes_back() {
        // Thresholds 15/10, 15 s window, 1 s tick, load 5 → 20 → 5 rps.
        let run = simulate(
            &PolicyFile::default(),
            &Trace::builtin("step", 0).unwrap(),
            None,
        )
        .unwrap();
        let s = &run.summary;
        assert_eq!(s.changes, 2);
        let first = s.first_burst_s.unwrap();
        // The 15 s rate crosses 15 rps when 2/3 of the window sees 20 rps: ~10 s after the step.
        assert!((68.0..=72.0).contains(&first), "first burst at {first}");
        let back = s.last_change_s.unwrap();
        // Back below 10 rps when 2/3 of the window sees 5 rps again: ~10 s after the step down.
        assert!((188.0..=192.0).contains(&back), "back at {back}");
        assert_eq!(s.final_burst_weight, 0);
        assert!(
            run.timeline
                .iter()
                .all(|p| p.burst_weight == 0 || p.burst_weight == 100)
        );
    }

    #[test]
    fn outage_holds_then_recovers() {
        let spec = PolicySpec::default();
        let run = simulate(&spec.into(), &Trace::builtin("outage", 0).unwrap(), None).unwrap();
        let during: Vec<_> = run
            .timeline
            .iter()
            .filter(|p| (120.0..160.0).contains(&p.t))
            .collect();
        assert!(during.iter().all(|p| p.observed.is_none()));
        // Missing data is never read as 0: burst is held through the outage.
        assert!(during.iter().all(|p| p.burst_weight == 100));
        assert_eq!(run.summary.changes, 2);
    }

    #[test]
    fn stale_data_goes_to_the_safe_target() {
        let spec = PolicySpec {
            on_missing: OnMissing::Primary,
            stale_after: HumanDuration::from_secs(20),
            ..PolicySpec::default()
        };
        let run = simulate(&spec.into(), &Trace::builtin("outage", 0).unwrap(), None).unwrap();
        // Last good sample around t=114 (window 15 s over scrapes up to 99): safe target by ~135.
        let fallback = run
            .timeline
            .iter()
            .find(|p| p.t > 100.0 && p.burst_weight == 0)
            .unwrap();
        assert!((120.0..=140.0).contains(&fallback.t), "{}", fallback.t);
        assert_eq!(fallback.rule, "stale_safe_target");
    }

    #[test]
    fn overload_and_share_with_capacity() {
        let spec = PolicySpec {
            mode: Mode::Overflow,
            capacity: Some(15.0),
            window: HumanDuration::from_secs(5),
            ..PolicySpec::default()
        };
        let run = simulate(&spec.into(), &Trace::builtin("step", 0).unwrap(), None).unwrap();
        let s = &run.summary;
        // 20 rps on 15 capacity needs 25 % to burst.
        assert!(run.timeline.iter().any(|p| p.burst_weight == 25));
        assert!(run.timeline.iter().all(|p| p.burst_weight <= 30));
        let over = s.overload_s.unwrap();
        assert!(over > 0.0 && over < 10.0, "overload {over}");
        // 120 s of 20 rps at ~25 % out of 2400+1500 requests: roughly 15 %.
        assert!((0.10..0.20).contains(&s.burst_share), "{}", s.burst_share);
    }

    #[test]
    fn two_windows_are_reported() {
        let spec = PolicySpec {
            window_up: Some(HumanDuration::from_secs(3)),
            window_down: Some(HumanDuration::from_secs(30)),
            ..PolicySpec::default()
        };
        let run = simulate(&spec.into(), &Trace::builtin("step", 0).unwrap(), None).unwrap();
        assert!(run.timeline.iter().all(|p| p.observed_up.is_some()));
        let first = run.summary.first_burst_s.unwrap();
        assert!(first <= 63.0, "short window reacts fast: {first}");
        let json = serde_json::to_value(&run).unwrap();
        assert!(json["timeline"][0].get("observed_up").is_some());
        let one = simulate(
            &PolicyFile::default(),
            &Trace::builtin("step", 0).unwrap(),
            None,
        )
        .unwrap();
        let json = serde_json::to_value(&one).unwrap();
        assert!(json["timeline"][0].get("observed_up").is_none());
        assert!(json["summary"]["overload_s"].is_null());
    }

    fn yaml(text: &str) -> PolicyFile {
        PolicyFile::from_yaml(text).unwrap()
    }

    #[test]
    fn queueing_model_rises_with_load_and_sheds_past_capacity() {
        assert_eq!(model_p99_ms(0.0, 20.0), MODEL_BASE_P99_MS);
        assert!((model_p99_ms(10.0, 20.0) - 100.0).abs() < 1e-9);
        assert_eq!(model_p99_ms(25.0, 20.0), MODEL_MAX_P99_MS);
        assert_eq!(model_error_ratio(15.0, 20.0), 0.0);
        assert!((model_error_ratio(25.0, 20.0) - 0.2).abs() < 1e-9);
        assert_eq!(model_error_ratio(5.0, 0.0), 1.0);
    }

    #[test]
    fn losing_endpoints_moves_traffic_at_once_with_capacity_from_endpoints() {
        let trace = Trace::builtin("endpoints-lost", 0).unwrap();
        let measure = SimOptions {
            capacity_per_endpoint: Some(10.0),
            ..SimOptions::default()
        };
        // Today's overflow with the capacity typed in for 4 endpoints.
        let fixed = simulate_with(
            &yaml("mode: overflow\ncapacity: 40\nwindow: 5s\n"),
            &trace,
            measure,
        )
        .unwrap();
        let endpoints = simulate_with(
            &yaml("mode: overflow\ncapacityPerEndpoint: 10\nwindow: 5s\n"),
            &trace,
            measure,
        )
        .unwrap();
        // 25 rps never exceeds 40: the fixed policy never moves, the primary runs over its
        // real capacity from 60 s to 240 s.
        assert_eq!(fixed.summary.changes, 0);
        let over_fixed = fixed.summary.seconds_primary_over_capacity.unwrap();
        assert!((175.0..=185.0).contains(&over_fixed), "{over_fixed}");
        let over = endpoints.summary.seconds_primary_over_capacity.unwrap();
        assert!(over <= 3.0, "over capacity for {over} s");
        // 2 ready x 10 = 20 for 25 rps: 20 %; 1 ready: 60 %; back to 0 after the scale-up.
        let at = |t: f64| {
            endpoints
                .timeline
                .iter()
                .find(|p| p.t >= t)
                .unwrap()
                .burst_weight
        };
        assert_eq!((at(100.0), at(200.0), at(350.0)), (20, 60, 0));
        assert_eq!(endpoints.timeline[0].capacity, Some(40.0));
        assert!(endpoints.summary.changes_by_rule["overflow_up"] >= 2);
    }

    #[test]
    fn the_guard_keeps_traffic_off_a_burst_side_that_is_down() {
        let trace = Trace::builtin("burst-down", 0).unwrap();
        let seed = simulate(&PolicyFile::default(), &trace, None).unwrap();
        // The seed bursts at ~70 s and keeps sending everything to a burst side with no
        // ready endpoint from 90 s to 150 s.
        let bad = seed.summary.seconds_on_unhealthy_burst;
        assert!((55.0..=61.0).contains(&bad), "{bad}");
        let guarded = simulate(
            &yaml("burstHealth: {minReady: 1, healthyAfter: 10s}\n"),
            &trace,
            None,
        )
        .unwrap();
        assert_eq!(guarded.summary.seconds_on_unhealthy_burst, 0.0);
        assert!(
            guarded
                .changes
                .iter()
                .any(|c| c.rule == "burst_unhealthy" && c.to == 0)
        );
        // Back on burst once it has been healthy for 10 s.
        let back = guarded
            .changes
            .iter()
            .find(|c| c.t > 150.0 && c.to > 0)
            .unwrap();
        assert!((160.0..=162.0).contains(&back.t), "{back:?}");
    }

    #[test]
    fn latency_from_the_queueing_model_triggers_before_the_rate_and_falls_after() {
        // The rate threshold (30) is never reached; capacity 24, p99 above 200 ms (75 %
        // utilisation, 18 rps) triggers. The cooldown keeps the lagging long window (still
        // below `low` right after the step) from bringing traffic back while the latency is
        // low only because the traffic left.
        let file = yaml(
            "high: 30\nlow: 15\ncapacity: 24\nwindowUp: 5s\nwindowDown: 20s\ncooldown: 20s\ntriggers: {latencyP99Ms: {high: 200, low: 120}}\n",
        );
        let run = simulate(&file, &Trace::builtin("step", 0).unwrap(), None).unwrap();
        let first = run.changes.first().unwrap();
        assert_eq!((first.rule, first.to), ("latency_high", 100));
        assert!((60.0..=62.0).contains(&first.t), "{first:?}");
        // With everything on burst the primary idles: its p99 falls back to the base.
        let after = run.timeline.iter().find(|p| p.t > first.t + 2.0).unwrap();
        assert_eq!(after.p99_ms, Some(MODEL_BASE_P99_MS));
        let json = serde_json::to_value(&run).unwrap();
        assert_eq!(json["summary"]["changes_by_rule"]["latency_high"], 1);
        assert_eq!(json["changes"][0]["rule"], "latency_high");
        assert!(json["timeline"][0]["p99_ms"].is_number());
    }

    #[test]
    fn scrape_model_matches_a_constant_rate() {
        let trace = Trace::from_csv("c", "0,7\n100,7\n").unwrap();
        let mut m = ScrapeModel::new(Duration::from_secs(1));
        m.advance(&trace, 50.0);
        let r = m.rate(50.0, Duration::from_secs(15)).unwrap();
        assert!((r - 7.0).abs() < 1e-9);
        assert_eq!(m.rate(0.5, Duration::from_secs(15)), None);
    }

    proptest! {
        /// Any CSV-built trace and any seed policy yields valid weights and consistent
        /// summaries.
        #[test]
        fn simulation_is_consistent(
            loads in proptest::collection::vec((0.0f64..60.0, any::<bool>()), 2..80),
        ) {
            let pts: Vec<TracePoint> = loads.iter().enumerate()
                .map(|(i, (rps, up))| TracePoint { t: i as f64 * 5.0, rps: *rps, up: *up })
                .collect();
            let trace = Trace::new("p", pts).unwrap();
            let run = simulate(&PolicyFile::default(), &trace, Some(15.0)).unwrap();
            let mut changes = 0;
            let mut prev = 0;
            for p in &run.timeline {
                prop_assert!(p.burst_weight == 0 || p.burst_weight == 100);
                if p.burst_weight != prev { changes += 1; prev = p.burst_weight; }
            }
            prop_assert_eq!(changes, run.summary.changes);
            prop_assert!((0.0..=1.0).contains(&run.summary.burst_share));
        }
    }
}
