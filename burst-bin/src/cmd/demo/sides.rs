//! The two sides of the demo as a scenario can change them: each worker's injected faults
//! and the number of ready endpoints each side reports; and [`DemoScaler`], the demo's
//! pre-warm scaler, whose prepare ends the burst worker's cold start (`burst:cold=30s`).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use burst_core::scaler::PrewarmReason;
use burst_core::{CapacityScaler, MetricSource, Reading, ScalerError, Signals, SourceError};
use burst_hashr::faults::Faults;
use serde::Serialize;

use super::scenario::{Event, Side, SideEvent};

/// Ready endpoints each side reports until a scenario says otherwise.
pub(crate) const DEFAULT_READY: u32 = 2;

/// The primary's and the burst side's faults and ready endpoints. Shared by the load driver
/// (which applies scenario events) and the demo's metric source (which reports them).
#[derive(Debug)]
pub(crate) struct Sides {
    faults: [Arc<Faults>; 2],
    ready: [AtomicU32; 2],
    /// When each side's injected cold start ends (`None`: not cold).
    cold_until: [Mutex<Option<Instant>>; 2],
}

/// One pre-warm call the demo's scaler received: the `"prewarm"` list of the demo's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct PrewarmNote {
    /// Seconds since the demo started (in the report: since the scenario started).
    pub(crate) t: f64,
    /// `prepare` or `release`.
    pub(crate) action: &'static str,
    /// Why (`forecast: crossing in 20s: ...`, `traffic is on burst`), for a prepare.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) reason: Option<String>,
    /// A prepare that found the burst worker cold: the seconds of cold start it cut short.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) warmed_early_s: Option<f64>,
}

/// The demo's [`CapacityScaler`]: preparing the burst side ends the burst worker's cold
/// start (as a real pre-warm would have started its pods earlier); releasing gives nothing
/// back (the worker stays warm). Every call is noted in `notes`.
pub(crate) struct DemoScaler {
    sides: Arc<Sides>,
    notes: Arc<Mutex<Vec<PrewarmNote>>>,
    started: Instant,
}

impl Sides {
    /// Sides steering these workers' faults, each with [`DEFAULT_READY`] ready endpoints.
    pub(crate) fn new(primary: Arc<Faults>, burst: Arc<Faults>) -> Sides {
        Sides {
            faults: [primary, burst],
            ready: [AtomicU32::new(DEFAULT_READY), AtomicU32::new(DEFAULT_READY)],
            cold_until: [Mutex::new(None), Mutex::new(None)],
        }
    }

    /// Ends `side`'s cold start at `now`, if it is cold: returns how much earlier than
    /// injected it is warm (`None`: it was not cold).
    pub(crate) fn warm(&self, side: Side, now: Instant) -> Option<Duration> {
        let i = Self::index(side);
        let mut until = burst_core::lock(&self.cold_until[i]);
        let end = until.take().filter(|end| *end > now)?;
        self.faults[i].cold_start(now, Duration::ZERO);
        tracing::info!(side = ?side, early_by = ?end.saturating_duration_since(now), "pre-warm ended the cold start");
        Some(end.saturating_duration_since(now))
    }

    fn index(side: Side) -> usize {
        match side {
            Side::Primary => 0,
            Side::Burst => 1,
        }
    }

    /// Applies one scenario event at `now`.
    pub(crate) fn apply(&self, e: SideEvent, now: Instant) {
        let i = Self::index(e.side);
        let faults = &self.faults[i];
        match e.event {
            Event::Slow(d) => faults.set_delay(d),
            Event::Down => faults.set_down(true),
            Event::Cold(d) => {
                faults.cold_start(now, d);
                *burst_core::lock(&self.cold_until[i]) = Some(now + d);
            }
            Event::Up => {
                faults.clear();
                *burst_core::lock(&self.cold_until[i]) = None;
            }
            Event::Ready(n) => self.ready[i].store(n, Ordering::Relaxed),
        }
        tracing::info!(side = ?e.side, event = ?e.event, "scenario event applied");
    }

    /// Ready endpoints `side` reports. A side that is down or still cold reports none.
    pub(crate) fn ready(&self, side: Side, now: Instant) -> u32 {
        let i = Self::index(side);
        match self.faults[i].verdict(now) {
            burst_hashr::faults::Verdict::Unavailable(_) => 0,
            burst_hashr::faults::Verdict::Serve { .. } => self.ready[i].load(Ordering::Relaxed),
        }
    }
}

impl DemoScaler {
    /// A scaler warming `sides`' burst worker, noting calls at seconds since `started`.
    pub(crate) fn new(
        sides: Arc<Sides>,
        notes: Arc<Mutex<Vec<PrewarmNote>>>,
        started: Instant,
    ) -> DemoScaler {
        DemoScaler {
            sides,
            notes,
            started,
        }
    }

    fn note(&self, action: &'static str, reason: Option<String>, warmed: Option<Duration>) {
        let note = PrewarmNote::now(self.started, action, reason, warmed);
        burst_core::lock(&self.notes).push(note);
    }
}

impl PrewarmNote {
    /// A call noted now, at seconds since `started`; `warmed`: the cold start it cut short.
    pub(crate) fn now(
        started: Instant,
        action: &'static str,
        reason: Option<String>,
        warmed: Option<Duration>,
    ) -> PrewarmNote {
        PrewarmNote {
            t: started.elapsed().as_secs_f64(),
            action,
            reason,
            warmed_early_s: warmed.map(|d| d.as_secs_f64()),
        }
    }
}

#[async_trait]
impl CapacityScaler for DemoScaler {
    async fn prepare(&self, why: &PrewarmReason) -> Result<(), ScalerError> {
        let warmed = self.sides.warm(Side::Burst, Instant::now());
        self.note("prepare", Some(why.to_string()), warmed);
        Ok(())
    }

    async fn release(&self) -> Result<(), ScalerError> {
        self.note("release", None, None);
        Ok(())
    }

    fn describe(&self) -> String {
        "the demo's burst worker (a prepare ends its cold start)".to_owned()
    }
}

/// A metric source that adds the sides' ready endpoints to what `inner` measures, as a
/// Kubernetes cluster's EndpointSlices would report them.
pub(crate) struct WithSides {
    inner: Box<dyn MetricSource>,
    sides: Arc<Sides>,
}

impl WithSides {
    pub(crate) fn new(inner: Box<dyn MetricSource>, sides: Arc<Sides>) -> WithSides {
        WithSides { inner, sides }
    }
}

#[async_trait]
impl MetricSource for WithSides {
    async fn observe(&self) -> Result<Reading, SourceError> {
        Ok(match self.inner.observe().await? {
            Reading::Value(o) => {
                let now = Instant::now();
                let ready = Signals {
                    primary_ready: Some(self.sides.ready(Side::Primary, now)),
                    burst_ready: Some(self.sides.ready(Side::Burst, now)),
                    ..Signals::NONE
                };
                Reading::Value(o.with_signals(o.signals.or(ready)))
            }
            no_data => no_data,
        })
    }

    fn describe(&self) -> String {
        format!(
            "{} + the demo's ready endpoints per side",
            self.inner.describe()
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::Duration;

    use super::*;

    #[test]
    fn events_change_faults_and_ready_counts() {
        let (p, b) = (Arc::new(Faults::new()), Arc::new(Faults::new()));
        let sides = Sides::new(p.clone(), b.clone());
        let t0 = Instant::now();
        assert_eq!(sides.ready(Side::Primary, t0), DEFAULT_READY);
        sides.apply(
            SideEvent {
                side: Side::Primary,
                event: Event::Ready(1),
            },
            t0,
        );
        assert_eq!(sides.ready(Side::Primary, t0), 1);
        sides.apply(
            SideEvent {
                side: Side::Burst,
                event: Event::Cold(Duration::from_secs(20)),
            },
            t0,
        );
        assert_eq!(sides.ready(Side::Burst, t0 + Duration::from_secs(5)), 0);
        assert_eq!(
            sides.ready(Side::Burst, t0 + Duration::from_secs(21)),
            DEFAULT_READY
        );
        sides.apply(
            SideEvent {
                side: Side::Burst,
                event: Event::Down,
            },
            t0,
        );
        assert_eq!(sides.ready(Side::Burst, t0), 0);
        sides.apply(
            SideEvent {
                side: Side::Burst,
                event: Event::Up,
            },
            t0,
        );
        assert_eq!(sides.ready(Side::Burst, t0), DEFAULT_READY);
        sides.apply(
            SideEvent {
                side: Side::Primary,
                event: Event::Slow(Duration::from_millis(200)),
            },
            t0,
        );
        assert_eq!(
            p.verdict(t0),
            burst_hashr::faults::Verdict::Serve {
                delay: Duration::from_millis(200)
            }
        );
    }

    #[tokio::test]
    async fn a_prepare_ends_the_burst_workers_cold_start_once() {
        let (p, b) = (Arc::new(Faults::new()), Arc::new(Faults::new()));
        let sides = Arc::new(Sides::new(p, b.clone()));
        let t0 = Instant::now();
        sides.apply(
            SideEvent {
                side: Side::Burst,
                event: Event::Cold(Duration::from_secs(30)),
            },
            t0,
        );
        assert_eq!(sides.ready(Side::Burst, t0), 0);
        let notes = Arc::new(Mutex::new(Vec::new()));
        let scaler = DemoScaler::new(sides.clone(), notes.clone(), t0);
        scaler.prepare(&PrewarmReason::OnBurst).await.unwrap();
        let now = Instant::now();
        assert_eq!(sides.ready(Side::Burst, now), DEFAULT_READY);
        assert!(matches!(
            b.verdict(now),
            burst_hashr::faults::Verdict::Serve { .. }
        ));
        // Warm already: a second prepare cuts nothing short.
        scaler.prepare(&PrewarmReason::OnBurst).await.unwrap();
        scaler.release().await.unwrap();
        let notes = notes.lock().unwrap().clone();
        assert_eq!(notes.len(), 3);
        assert!(
            notes[0].warmed_early_s.is_some_and(|s| s > 29.0),
            "{notes:?}"
        );
        assert_eq!(notes[1].warmed_early_s, None);
        assert_eq!(notes[2].action, "release");
    }
}
