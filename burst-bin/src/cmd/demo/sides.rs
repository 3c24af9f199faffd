//! The two sides of the demo as a scenario can change them: each worker's injected faults
//! and the number of ready endpoints each side reports.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use burst_core::{MetricSource, Reading, Signals, SourceError};
use burst_hashr::faults::Faults;

use super::scenario::{Event, Side, SideEvent};

/// Ready endpoints each side reports until a scenario says otherwise.
pub(crate) const DEFAULT_READY: u32 = 2;

/// The primary's and the burst side's faults and ready endpoints. Shared by the load driver
/// (which applies scenario events) and the demo's metric source (which reports them).
#[derive(Debug)]
pub(crate) struct Sides {
    faults: [Arc<Faults>; 2],
    ready: [AtomicU32; 2],
}

impl Sides {
    /// Sides steering these workers' faults, each with [`DEFAULT_READY`] ready endpoints.
    pub(crate) fn new(primary: Arc<Faults>, burst: Arc<Faults>) -> Sides {
        Sides {
            faults: [primary, burst],
            ready: [AtomicU32::new(DEFAULT_READY), AtomicU32::new(DEFAULT_READY)],
        }
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
            Event::Cold(d) => faults.cold_start(now, d),
            Event::Up => faults.clear(),
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
}
