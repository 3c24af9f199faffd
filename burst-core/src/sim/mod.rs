//! A deterministic simulator: a policy against a load trace on a virtual clock.
//!
//! The measured rate is modelled on Prometheus: a counter of all requests (measured at the
//! source, so independent of the split) is scraped every `scrape_interval`, and
//! `rate(x[window])` is the counter's increase between the first and last sample inside the
//! window divided by the time between them. Fewer than two samples in the window (an outage,
//! or the first seconds) is "no data". Reaction delays are therefore realistic.
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

use std::time::Duration;

use serde::Serialize;

use crate::policy::{Policy, PolicyFile, Signal};
use crate::{Error, Rate, Rates, Split, Timestamp};

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
}

/// A simulation's timeline and summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SimRun {
    /// Summary figures.
    pub summary: Summary,
    /// One point per tick.
    pub timeline: Vec<SimPoint>,
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

/// Runs `file`'s policy over `trace`, starting from all traffic on the primary.
///
/// `capacity` (rps the primary serves) enables `overload_s`; without it, the policy's own
/// `capacity` is used when set.
pub fn simulate(file: &PolicyFile, trace: &Trace, capacity: Option<f64>) -> Result<SimRun, Error> {
    let mut policy = file.policy.build()?;
    simulate_policy(&mut policy, file, trace, capacity)
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
    file.validate()?;
    let spec = &file.policy;
    let capacity = capacity.or(spec.capacity);
    if let Some(c) = capacity {
        Rate::try_new("capacity", c)?;
    }
    let tick = file.run.tick.get().as_secs_f64();
    let two_windows = spec.has_two_windows();
    let mut model = ScrapeModel::new(file.sim.scrape_interval.get());
    let mut split = Split::ALL_PRIMARY;
    let mut timeline = Vec::new();
    let mut summary = Summary {
        changes: 0,
        first_burst_s: None,
        last_change_s: None,
        final_burst_weight: 0,
        overload_s: capacity.map(|_| 0.0),
        burst_share: 0.0,
    };
    let (mut burst_requests, mut all_requests) = (0.0, 0.0);
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
        let signal = match (up, down) {
            (Some(u), Some(d)) => Signal::Rates(Rates {
                up: Rate::try_new("observed rate", u)?,
                down: Rate::try_new("observed rate", d)?,
            }),
            _ => Signal::NoData("fewer than two samples in the window".into()),
        };
        let now = Timestamp::from_secs_f64(t).unwrap_or(Timestamp::ZERO);
        let decision = policy.decide(&signal, split, now);
        if decision.desired != split {
            summary.changes += 1;
            summary.last_change_s = Some(t);
            split = decision.desired;
        }
        if split.is_bursting() && summary.first_burst_s.is_none() {
            summary.first_burst_s = Some(t);
        }
        // Traffic until the next tick flows with this split.
        let t_next = (t + tick).min(trace.duration());
        if t_next > t {
            let served = trace.total_until(t_next) - trace.total_until(t);
            let to_burst = served * f64::from(split.burst().get()) / 100.0;
            all_requests += served;
            burst_requests += to_burst;
            if let (Some(cap), Some(over)) = (capacity, summary.overload_s.as_mut()) {
                let primary_rps = (served - to_burst) / (t_next - t);
                if primary_rps > cap + 1e-9 {
                    *over += t_next - t;
                }
            }
        }
        timeline.push(SimPoint {
            t,
            rps: trace.at(t).rps,
            observed: down,
            observed_up: two_windows.then_some(up),
            burst_weight: split.burst().get(),
            rule: decision.reason.rule.name(),
        });
        k += 1;
    }
    summary.final_burst_weight = split.burst().get();
    summary.burst_share = if all_requests > 0.0 {
        burst_requests / all_requests
    } else {
        0.0
    };
    Ok(SimRun { summary, timeline })
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
