//! Faults a worker can be told to show: slowness, being down, a cold start.
//!
//! `burst demo` uses them to play a suffering primary or a broken burst side on command
//! (scenario steps such as `primary:slow=200ms`, `burst:down`, `burst:cold=20s`), so that the
//! policies' latency trigger, health guard and warm-up can be watched on real requests.
//! Faults are set in-process through [`Faults`]; a worker started by the `hashr-worker`
//! binary has none.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// The longest delay a worker accepts (a longer one would only hit the proxy's timeout).
pub const MAX_DELAY: Duration = Duration::from_secs(30);

/// What a worker should do with the next request, given its faults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Serve it, after waiting `delay` (zero when the worker is not slowed down).
    Serve {
        /// Added latency.
        delay: Duration,
    },
    /// Answer 503 with this reason (down, or still warming up); readiness fails too.
    Unavailable(String),
}

/// A worker's injected faults. Shared (`Arc`) between the worker and whoever steers it.
#[derive(Debug, Default)]
pub struct Faults {
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone, Copy)]
struct State {
    delay: Duration,
    down: bool,
    warm_at: Option<Instant>,
}

impl Faults {
    /// No fault.
    pub fn new() -> Faults {
        Faults::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        burst_core::lock(&self.state)
    }

    /// Adds `delay` to every answer (capped at [`MAX_DELAY`]); zero removes it.
    pub fn set_delay(&self, delay: Duration) {
        self.state().delay = delay.min(MAX_DELAY);
    }

    /// Takes the worker down (every request and readiness answer 503) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// A cold start: the worker answers 503 until `warm_for` after `now`, then serves.
    pub fn cold_start(&self, now: Instant, warm_for: Duration) {
        self.state().warm_at = Some(now + warm_for);
    }

    /// Removes every fault.
    pub fn clear(&self) {
        *self.state() = State::default();
    }

    /// What to do with a request arriving at `now`.
    pub fn verdict(&self, now: Instant) -> Verdict {
        let s = *self.state();
        if s.down {
            return Verdict::Unavailable("this worker is down (fault injected by the demo)".into());
        }
        if let Some(warm_at) = s.warm_at
            && now < warm_at
        {
            let left = warm_at.saturating_duration_since(now);
            return Verdict::Unavailable(format!(
                "this worker is warming up; ready in {:.1}s (cold start injected by the demo)",
                left.as_secs_f64()
            ));
        }
        Verdict::Serve { delay: s.delay }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_combine_and_clear() {
        let f = Faults::new();
        let t0 = Instant::now();
        assert_eq!(
            f.verdict(t0),
            Verdict::Serve {
                delay: Duration::ZERO
            }
        );
        f.set_delay(Duration::from_millis(200));
        assert_eq!(
            f.verdict(t0),
            Verdict::Serve {
                delay: Duration::from_millis(200)
            }
        );
        f.set_delay(Duration::from_secs(3600));
        assert_eq!(f.verdict(t0), Verdict::Serve { delay: MAX_DELAY });
        f.set_down(true);
        assert!(matches!(f.verdict(t0), Verdict::Unavailable(r) if r.contains("down")));
        f.set_down(false);
        f.cold_start(t0, Duration::from_secs(20));
        assert!(
            matches!(f.verdict(t0 + Duration::from_secs(5)), Verdict::Unavailable(r) if r.contains("ready in 15.0s"))
        );
        assert_eq!(
            f.verdict(t0 + Duration::from_secs(20)),
            Verdict::Serve { delay: MAX_DELAY }
        );
        f.clear();
        assert_eq!(
            f.verdict(t0),
            Verdict::Serve {
                delay: Duration::ZERO
            }
        );
    }
}
