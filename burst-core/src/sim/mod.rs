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
//! The burst side's serving capacity is the trace's `burst_capacity` column where it gives
//! one ([`Trace::burst_capacity_at`]), else that of a modelled [`BurstSide`] (a cold side
//! that scales up with a delay; [`SimOptions::burst`] or the trace's own), else unlimited.
//! [`SimRun::record_burst_capacity`] turns a run's modelled burst side into that column.
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

use crate::forecast::Outlook;
use crate::policy::{Policy, PolicyFile, Signal};
use crate::scaler::{Prewarm, PrewarmAction};
use crate::{Error, Millis, Observation, Rate, Rates, Ratio, Signals, Split, Timestamp};

/// The queueing model's p99 latency of an idle primary, in milliseconds.
pub const MODEL_BASE_P99_MS: f64 = 50.0;
/// The queueing model's highest p99 (a saturated primary times requests out), in
/// milliseconds.
pub const MODEL_MAX_P99_MS: f64 = 2000.0;
/// The burst side's error ratio above which the simulator counts it unhealthy, when the
/// policy sets no `burstHealth.maxErrorRatio`.
pub const UNHEALTHY_BURST_ERROR_RATIO: f64 = 0.5;

/// The burst side's autoscaler target utilisation: it scales up when its load goes above
/// this share of its capacity (ordered or serving), to `load / target` (as an HPA does).
pub const BURST_TARGET_UTILISATION: f64 = 0.8;
/// How long the burst side's load must stay low before it scales back down to its initial
/// capacity (an HPA's default scale-down stabilization window).
pub const BURST_SCALE_DOWN_AFTER_S: f64 = 300.0;

pub use compare::{Quality, quality};
pub use trace::{COLD_BURST_PRIMARY_CAPACITY, Trace, TracePoint};

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
    /// The burst side's serving capacity in rps on this tick (with a burst-side model).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst_capacity: Option<f64>,
    /// Pre-warm: the forecast demand at the end of the lead time (`None`: no forecast, or
    /// no `prewarm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<f64>,
    /// Pre-warm: whether the burst side is prepared after this tick (`None`: no `prewarm`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prepared: Option<bool>,
}

/// A pre-warm action the simulator carried out (synchronously, always successful).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PrewarmEvent {
    /// Seconds since the start.
    pub t: f64,
    /// `prepare` or `release`.
    pub action: &'static str,
    /// Why: the forecast, traffic on burst, or the idle time.
    pub detail: String,
}

/// The burst side as the simulator models it: a capacity that starts at `initial` and
/// grows only `start` after a scale-up is ordered.
///
/// A scale-up is ordered when the burst side's load goes above
/// [`BURST_TARGET_UTILISATION`] of its capacity (serving or ordered), to
/// `load / BURST_TARGET_UTILISATION`, as an autoscaler would; and by a pre-warm's prepare,
/// to `prewarm`. It scales back to `initial` once its load has been low for
/// [`BURST_SCALE_DOWN_AFTER_S`] and it is not prepared (a release ends the prepared floor).
/// Requests beyond the capacity of the side they were sent to find no capacity (the mesh
/// routes by weight; nothing spills over).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BurstSide {
    /// Capacity in rps before any scale-up (a cold burst side: small).
    pub initial: f64,
    /// Time from ordering a scale-up (or a prepare) to the new capacity serving.
    pub start: Duration,
    /// Capacity in rps a pre-warm's prepare grows it to.
    pub prewarm: f64,
}

/// The burst side's state during a run.
#[derive(Debug, Clone)]
struct BurstState {
    model: BurstSide,
    capacity: f64,
    /// `(ready at, capacity)`, in order of ordering.
    pending: Vec<(f64, f64)>,
    prepared: bool,
    /// Last time its load was above its initial capacity's target share.
    last_busy: f64,
}

impl BurstSide {
    /// Checks the numbers; errors name the option.
    pub fn validate(&self) -> Result<(), Error> {
        for (key, v) in [
            ("burst-capacity", self.initial),
            ("burst-prewarm-capacity", self.prewarm),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(Error::InvalidSetting {
                    key,
                    message: format!("{v} is not a capacity; give requests/s >= 0"),
                });
            }
        }
        Ok(())
    }
}

impl BurstState {
    fn new(model: BurstSide) -> Self {
        BurstState {
            model,
            capacity: model.initial,
            pending: Vec::new(),
            prepared: false,
            last_busy: f64::NEG_INFINITY,
        }
    }

    /// The largest capacity serving or ordered.
    fn planned(&self) -> f64 {
        self.pending
            .iter()
            .map(|p| p.1)
            .fold(self.capacity, f64::max)
    }

    fn order(&mut self, now: f64, capacity: f64) {
        if capacity > self.planned() + 1e-9 {
            self.pending
                .push((now + self.model.start.as_secs_f64(), capacity));
        }
    }

    /// Orders that are due start serving; the autoscaler reacts to `load`; an idle,
    /// unprepared side scales back down.
    fn advance(&mut self, now: f64, load: f64) {
        let due: Vec<f64> = self
            .pending
            .iter()
            .filter(|p| p.0 <= now + 1e-9)
            .map(|p| p.1)
            .collect();
        self.pending.retain(|p| p.0 > now + 1e-9);
        self.capacity = due.into_iter().fold(self.capacity, f64::max);
        if load > BURST_TARGET_UTILISATION * self.planned() + 1e-9 {
            self.order(now, load / BURST_TARGET_UTILISATION);
        }
        if load > BURST_TARGET_UTILISATION * self.model.initial + 1e-9 {
            self.last_busy = now;
        }
        if !self.prepared
            && now - self.last_busy >= BURST_SCALE_DOWN_AFTER_S
            && self.capacity > self.model.initial
        {
            self.capacity = self.model.initial;
            self.pending.clear();
        }
    }

    /// The recorded capacity overrides the model: the side serves `capacity`, and orders
    /// still pending are void (the recording already shows what came of them). Whatever
    /// held it there held it until `now`: a scale-down waits its window from the last
    /// recorded tick.
    fn pin(&mut self, now: f64, capacity: f64) {
        self.capacity = capacity;
        self.pending.clear();
        self.last_busy = now;
    }

    fn prepare(&mut self, now: f64) {
        self.prepared = true;
        self.order(now, self.model.prewarm);
    }

    fn release(&mut self, now: f64, load: f64) {
        self.prepared = false;
        self.pending.clear();
        self.capacity = self
            .capacity
            .min((load / BURST_TARGET_UTILISATION).max(self.model.initial));
        self.last_busy = self.last_busy.min(now);
    }
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
    /// The burst side's capacity and start-up delay (default: the trace's, if it has one;
    /// without either the burst side has unlimited capacity, as before). Where the trace
    /// gives the burst side's capacity ([`Trace::burst_capacity_at`]), that capacity
    /// serves and the model's scale-ups do not change it; the model serves the stretches
    /// without one, starting from the last capacity the trace gave.
    pub burst: Option<BurstSide>,
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
    /// Seconds with the burst side's share of the load above its capacity (with a
    /// burst-side model).
    pub seconds_burst_over_capacity: Option<f64>,
    /// Requests beyond the capacity of the side they were sent to: the burst side's excess
    /// (with a burst-side model) plus the primary's (when its capacity is known).
    pub requests_without_capacity: Option<f64>,
    /// Pre-warm prepares carried out (`None` without `prewarm`).
    pub prewarm_prepares: Option<u32>,
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
    /// Every pre-warm prepare and release (empty without `prewarm`).
    pub prewarm: Vec<PrewarmEvent>,
}

impl SimRun {
    /// `trace` with this run's burst capacity as its `burst_capacity` column: at each of
    /// the trace's points, the capacity of the run's last tick at or before it (the trace's
    /// own values where it has them). A recording of the run's burst side, as a trace CSV
    /// can carry it: replayed without a burst-side model, the burst side serves the same
    /// capacity at the trace's points (the same run, with the same policy, where the ticks
    /// fall on the trace's points); its scale-ups no longer respond to the policy.
    pub fn record_burst_capacity(&self, trace: &Trace) -> Result<Trace, Error> {
        let capacity = trace
            .points()
            .iter()
            .map(|p| {
                let i = self.timeline.partition_point(|s| s.t <= p.t + 1e-9);
                trace.burst_capacity_at(p.t).or_else(|| {
                    i.checked_sub(1)
                        .and_then(|j| self.timeline.get(j))
                        .and_then(|s| s.burst_capacity)
                })
            })
            .collect();
        trace.clone().with_burst_capacity(capacity)
    }
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
    let burst_model = options.burst.or(trace.burst_side());
    if let Some(b) = &burst_model {
        b.validate()?;
    }
    let mut burst = burst_model.map(BurstState::new);
    let burst_known = burst.is_some() || trace.has_burst_capacity();
    let burst_per_endpoint = spec.burst_capacity_per_endpoint.or(per_endpoint);
    let mut prewarm: Option<Prewarm> = spec.prewarm()?;
    let mut prewarm_events = Vec::new();
    let probe = match &spec.warmup {
        Some(w) => w.build()?.probe(),
        None => crate::Weight::ZERO,
    };
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
        seconds_burst_over_capacity: burst_known.then_some(0.0),
        requests_without_capacity: None,
        prewarm_prepares: prewarm.as_ref().map(|_| 0),
    };
    let (mut burst_requests, mut all_requests) = (0.0, 0.0);
    // The burst side's load over the last tick, for its autoscaler and error model.
    let mut burst_load = 0.0;
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
        // The trace's burst capacity, where it gives one, overrides the model's.
        let recorded_burst = trace.burst_capacity_at(t);
        if let Some(b) = burst.as_mut() {
            b.advance(t, burst_load);
            if let Some(c) = recorded_burst {
                b.pin(t, c);
            }
        }
        if let Some(burst_cap) = recorded_burst.or(burst.as_ref().map(|b| b.capacity)) {
            if signals.burst_ready.is_none()
                && let Some(per) = burst_per_endpoint.filter(|p| *p > 0.0)
            {
                // Whole endpoints serving; the capacity is finite and >= 0, capped far
                // below u32::MAX, so the cast cannot truncate.
                signals.burst_ready = Some((burst_cap / per + 1e-9).floor().min(1e6) as u32);
            }
            if signals.burst_error_ratio.is_none() {
                signals.burst_error_ratio = Ratio::try_new(
                    "burst error ratio",
                    model_error_ratio(burst_load, burst_cap),
                )
                .ok();
            }
        }
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
        let mut forecast = None;
        if let Some(p) = prewarm.as_mut() {
            // A warm-up's probe alone is not traffic on burst: the pre-warm may still release.
            let on_burst = split.burst() > probe;
            let (outlook, action) = p.plan(signal.rates().map(|r| r.up), on_burst, now);
            if let Outlook::Below { at_lead, .. } | Outlook::Crossing { at_lead, .. } = outlook {
                forecast = Some(at_lead);
            }
            if let Some(action) = action {
                // The simulated scaler always succeeds at once.
                p.confirm(&action);
                let name = match action {
                    PrewarmAction::Prepare(_) => {
                        if let Some(n) = summary.prewarm_prepares.as_mut() {
                            *n += 1;
                        }
                        if let Some(b) = burst.as_mut() {
                            b.prepare(t);
                        }
                        "prepare"
                    }
                    PrewarmAction::Release { .. } => {
                        if let Some(b) = burst.as_mut() {
                            b.release(t, burst_load);
                        }
                        "release"
                    }
                };
                prewarm_events.push(PrewarmEvent {
                    t,
                    action: name,
                    detail: action.to_string(),
                });
            }
        }
        // A release may shrink the modelled side at once; a recorded capacity stays.
        let burst_cap = recorded_burst.or(burst.as_ref().map(|b| b.capacity));
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
            burst_load = to_burst / dt;
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
            let mut refused = None;
            if let Some(cap) = cap_now {
                *refused.get_or_insert(0.0) += (primary_rps - cap).max(0.0) * dt;
            }
            if let (Some(b), Some(over)) = (burst_cap, summary.seconds_burst_over_capacity.as_mut())
            {
                if burst_load > b + 1e-9 {
                    *over += dt;
                }
                *refused.get_or_insert(0.0) += (burst_load - b).max(0.0) * dt;
            }
            if let Some(r) = refused {
                *summary.requests_without_capacity.get_or_insert(0.0) += r;
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
            burst_capacity: burst_cap,
            forecast,
            prepared: prewarm.as_ref().map(Prewarm::is_prepared),
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
        prewarm: prewarm_events,
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

    fn cold(yaml_text: &str) -> SimRun {
        let trace = Trace::builtin("cold-burst", 0).unwrap();
        simulate(&yaml(yaml_text), &trace, Some(COLD_BURST_PRIMARY_CAPACITY)).unwrap()
    }

    const RECOMMENDED: &str = "windowUp: 2s\nwindowDown: 30s\ncooldown: 30s\n";

    #[test]
    fn a_cold_burst_side_refuses_what_it_cannot_serve_until_it_has_scaled() {
        let run = cold(RECOMMENDED);
        let s = &run.summary;
        // Everything moves at ~147 s onto 5 rps of burst capacity; the scale-up ordered then
        // serves 60 s later, and the rising load outgrows each order again.
        let over = s.seconds_burst_over_capacity.unwrap();
        assert!(over >= 60.0, "burst over capacity {over} s");
        assert!(s.requests_without_capacity.unwrap() > 500.0, "{s:?}");
        let at = |t: f64| run.timeline.iter().find(|p| p.t >= t).unwrap();
        assert_eq!(at(100.0).burst_capacity, Some(5.0));
        let first = s.first_burst_s.unwrap();
        assert!(at(first + 59.0).burst_capacity.unwrap() <= 5.0);
        assert!(at(first + 61.0).burst_capacity.unwrap() > 5.0);
        // Without a burst-side model the summary has no such figures.
        let unlimited = simulate(
            &PolicyFile::default(),
            &Trace::builtin("step", 0).unwrap(),
            Some(15.0),
        )
        .unwrap();
        assert_eq!(unlimited.summary.seconds_burst_over_capacity, None);
        // The primary's excess still counts: 20 rps on 15 for the 10 s before the switch.
        let refused = unlimited.summary.requests_without_capacity.unwrap();
        assert!((45.0..=55.0).contains(&refused), "{refused}");
    }

    #[test]
    fn prewarm_grows_the_burst_side_before_the_traffic_moves() {
        let plain = cold(RECOMMENDED);
        let run = cold(&format!("{RECOMMENDED}prewarm: {{lead: 90s, hold: 5m}}\n"));
        let prepare = run.prewarm.first().unwrap();
        assert_eq!(prepare.action, "prepare");
        assert!(prepare.detail.contains("forecast"), "{prepare:?}");
        let first = run.summary.first_burst_s.unwrap();
        // Prepared more than the start-up delay before the first traffic on burst.
        assert!(
            first - prepare.t >= 60.0,
            "prepare {} first {first}",
            prepare.t
        );
        assert_eq!(run.summary.seconds_burst_over_capacity, Some(0.0));
        assert_eq!(run.summary.requests_without_capacity, Some(0.0));
        assert!(plain.summary.requests_without_capacity.unwrap() > 500.0);
        assert_eq!(run.summary.prewarm_prepares, Some(1));
        assert!(run.timeline.iter().any(|p| p.forecast.is_some()));
        assert_eq!(run.timeline.last().unwrap().prepared, Some(true));
        assert_eq!(plain.timeline[0].prepared, None);
    }

    #[test]
    fn prewarm_is_released_after_hold_and_never_while_on_burst() {
        let run = cold(&format!("{RECOMMENDED}prewarm: {{lead: 90s, hold: 20s}}\n"));
        let release = run
            .prewarm
            .iter()
            .find(|e| e.action == "release")
            .expect("released once the load is gone");
        let at = |t: f64| run.timeline.iter().find(|p| p.t >= t).unwrap();
        assert_eq!(at(release.t).burst_weight, 0, "{release:?}");
        // The last tick on burst is at least `hold` before the release.
        let last_on_burst = run
            .timeline
            .iter()
            .filter(|p| p.t < release.t && p.burst_weight > 0)
            .map(|p| p.t)
            .fold(0.0, f64::max);
        assert!(
            release.t - last_on_burst >= 20.0,
            "{release:?} {last_on_burst}"
        );
        assert!(at(release.t).burst_capacity.unwrap() <= 5.0 + 1e-9);
    }

    #[test]
    fn warmup_ramps_through_its_steps_in_the_simulator() {
        let run = cold(&format!(
            "{RECOMMENDED}warmup: {{probeWeight: 2, ramp: [10, 25, 50, 100], rampOver: 20s}}\n"
        ));
        let ups: Vec<(u8, &str)> = run
            .changes
            .iter()
            .filter(|c| c.to > c.from)
            .map(|c| (c.to, c.rule))
            .collect();
        // The probe from the first tick (before the window has data).
        assert_eq!((ups[0].0, run.changes[0].t), (2, 0.0));
        let ramp: Vec<u8> = ups.iter().skip(1).take(4).map(|u| u.0).collect();
        assert_eq!(ramp, [10, 25, 50, 100]);
        assert!(ups.iter().skip(1).take(3).all(|u| u.1 == "warming"));
        // The probe stays on burst once the load is gone.
        assert_eq!(run.summary.final_burst_weight, 2);
        assert_eq!(run.summary.changes_by_rule.get("warming"), Some(&3));
    }

    /// The cold-burst trace with its burst side's capacity given by `capacity(t)` on every
    /// point.
    fn cold_with_capacity(capacity: impl Fn(f64) -> Option<f64>) -> Trace {
        let trace = Trace::builtin("cold-burst", 0).unwrap();
        let column = trace.points().iter().map(|p| capacity(p.t)).collect();
        trace.with_burst_capacity(column).unwrap()
    }

    #[test]
    fn a_recorded_burst_capacity_overrides_the_modelled_scale_up() {
        // The trace's own model (5 rps, 60 s) would leave ~1,050 requests without capacity;
        // a burst side recorded at 40 rps throughout serves everything.
        let warm = cold_with_capacity(|_| Some(40.0));
        let run = simulate(&yaml(RECOMMENDED), &warm, Some(COLD_BURST_PRIMARY_CAPACITY)).unwrap();
        assert_eq!(run.summary.seconds_burst_over_capacity, Some(0.0));
        assert_eq!(run.summary.requests_without_capacity, Some(0.0));
        assert!(run.timeline.iter().all(|p| p.burst_capacity == Some(40.0)));
        // Recorded at 5 rps throughout: the model's scale-ups never serve, not even a
        // pre-warm's prepare.
        let stuck = cold_with_capacity(|_| Some(5.0));
        let file = yaml(&format!("{RECOMMENDED}prewarm: {{lead: 90s, hold: 5m}}\n"));
        let run = simulate(&file, &stuck, Some(COLD_BURST_PRIMARY_CAPACITY)).unwrap();
        assert_eq!(run.summary.prewarm_prepares, Some(1));
        assert!(run.timeline.iter().all(|p| p.burst_capacity == Some(5.0)));
        let modelled = cold(RECOMMENDED).summary.requests_without_capacity.unwrap();
        let refused = run.summary.requests_without_capacity.unwrap();
        assert!(refused > modelled, "{refused} vs modelled {modelled}");
    }

    #[test]
    fn the_model_serves_the_stretches_without_a_recorded_capacity_from_the_last_one() {
        // Recorded at 30 rps for the first 2 minutes, then no data: the model goes on
        // from 30 (not from its initial 5) and scales up by itself later.
        let trace = cold_with_capacity(|t| (t < 120.0).then_some(30.0));
        let run = simulate(
            &PolicyFile::default(),
            &trace,
            Some(COLD_BURST_PRIMARY_CAPACITY),
        )
        .unwrap();
        let at = |t: f64| run.timeline.iter().find(|p| p.t >= t).unwrap();
        assert_eq!(at(119.0).burst_capacity, Some(30.0));
        assert_eq!(at(121.0).burst_capacity, Some(30.0));
        let most = run
            .timeline
            .iter()
            .filter_map(|p| p.burst_capacity)
            .fold(0.0, f64::max);
        assert!(
            most > 30.0,
            "the model scaled up past the recording: {most}"
        );
        // Without any model the stretches without data have no burst capacity (unlimited,
        // nothing counted), never 0.
        let column = trace
            .points()
            .iter()
            .map(|p| trace.burst_capacity_at(p.t))
            .collect();
        let csv = Trace::new("no model", trace.points().to_vec())
            .unwrap()
            .with_burst_capacity(column)
            .unwrap();
        let run = simulate(&PolicyFile::default(), &csv, Some(20.0)).unwrap();
        let at = |t: f64| run.timeline.iter().find(|p| p.t >= t).unwrap();
        assert_eq!(at(60.0).burst_capacity, Some(30.0));
        assert_eq!(at(200.0).burst_capacity, None);
        assert!(run.summary.seconds_burst_over_capacity.is_some());
    }

    #[test]
    fn a_recorded_run_replays_to_the_same_run_from_its_csv() {
        for policy in [
            String::new(),
            RECOMMENDED.to_string(),
            format!("{RECOMMENDED}prewarm: {{lead: 90s, hold: 5m}}\n"),
        ] {
            let file = yaml(&policy);
            let original = cold(&policy);
            let trace = Trace::builtin("cold-burst", 0).unwrap();
            let recorded = original.record_burst_capacity(&trace).unwrap();
            let csv = recorded.to_csv();
            assert!(csv.starts_with("t,rps,up,burst_capacity\n"), "{policy}");
            let replay_trace = Trace::from_csv("saved", &csv).unwrap();
            assert_eq!(replay_trace.burst_side(), None);
            let replay = simulate(&file, &replay_trace, Some(COLD_BURST_PRIMARY_CAPACITY)).unwrap();
            assert_eq!(replay.summary, original.summary, "{policy}");
            assert_eq!(replay.timeline, original.timeline, "{policy}");
        }
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
