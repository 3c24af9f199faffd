//! Your own [`MetricSource`]: the request rate of your own process, computed from a counter
//! your request handler increments, with no Prometheus in between.
//!
//! The app here handles 100 requests per second for a moment, then 500. The source turns
//! the counter into a rate on every `observe` (the controller calls it once per tick, so
//! the rate is over the last tick); its first call has nothing to compare with and says so
//! with [`Reading::NoData`], which the policy holds on, never reading it as 0. A controller
//! with the seed's hysteresis policy (thresholds scaled to 300/200 rps) moves the split of
//! a [`MemoryRouter`] to the burst destination once the rate crosses 300 rps, and the
//! program stops as soon as the split has flipped (or fails after 10 s).
//!
//! `cargo run -p burst-examples --example custom_source`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use burst_core::policy::PolicySpec;
use burst_core::testing::MemoryRouter;
use burst_core::{
    Controller, ControllerConfig, MetricSource, Observation, Outcome, Rate, Rates, Reading,
    SourceError, Split, TickReport, Timestamp,
};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Your application: its request handler counts what it serves.
#[derive(Debug, Default)]
struct App {
    handled: AtomicU64,
}

impl App {
    fn handle_request(&self) {
        self.handled.fetch_add(1, Ordering::Relaxed);
    }
}

/// Requests per second served by [`App`] since the previous `observe`.
struct ServedRate {
    app: Arc<App>,
    previous: Mutex<Option<(Instant, u64)>>,
}

#[async_trait]
impl MetricSource for ServedRate {
    async fn observe(&self) -> Result<Reading, SourceError> {
        let (now, count) = (Instant::now(), self.app.handled.load(Ordering::Relaxed));
        let previous = self
            .previous
            .lock()
            .map_err(|_| SourceError::new("internal", "the previous sample's lock is poisoned"))?
            .replace((now, count));
        let Some((then, before)) = previous else {
            return Ok(Reading::NoData {
                reason: "first sample: a rate needs two".into(),
            });
        };
        let secs = now.duration_since(then).as_secs_f64();
        if secs <= 0.0 {
            return Ok(Reading::NoData {
                reason: "two samples at the same instant".into(),
            });
        }
        let rps = count.saturating_sub(before) as f64 / secs;
        let rate = Rate::try_new("served requests per second", rps)
            .map_err(|e| SourceError::new("invalid_value", e))?;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        Ok(Reading::Value(Observation::new(
            Rates::single(rate),
            Timestamp::from_duration(wall),
        )))
    }

    fn describe(&self) -> String {
        "requests served by this process".into()
    }
}

/// Serves 100 rps for `quiet`, then 500 rps until aborted (a request every 10 ms, or five).
async fn load(app: Arc<App>, quiet: Duration) {
    let start = Instant::now();
    let mut every = tokio::time::interval(Duration::from_millis(10));
    loop {
        every.tick().await;
        let batch = if start.elapsed() < quiet { 1 } else { 5 };
        for _ in 0..batch {
            app.handle_request();
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let app = Arc::new(App::default());
    let traffic = tokio::spawn(load(app.clone(), Duration::from_millis(500)));

    let source = ServedRate {
        app,
        previous: Mutex::new(None),
    };
    let policy = PolicySpec {
        high: 300.0,
        low: 200.0,
        ..PolicySpec::default()
    }
    .build()?;
    let router = Arc::new(MemoryRouter::new(Split::ALL_PRIMARY));
    let config = ControllerConfig {
        tick: Duration::from_millis(50),
        ..ControllerConfig::default()
    };
    let flipped = Arc::new(Notify::new());
    let on_flip = flipped.clone();
    let controller = Controller::new(source, policy, router.clone(), config).with_observer(
        move |r: &TickReport| {
            let rate = r.signal.rates().map_or_else(
                || r.signal.to_string(),
                |x| format!("{:.0} rps", x.up.get()),
            );
            println!(
                "{rate:<40} {:<12} belief {}",
                r.decision.reason.rule.name(),
                r.belief
            );
            if let Outcome::Applied { from, to } = r.outcome {
                println!("flipped: {from} -> {to} (rule {})", r.decision.reason.rule);
                on_flip.notify_one();
            }
        },
    );
    let stopped =
        tokio::time::timeout(Duration::from_secs(10), controller.run(flipped.notified())).await;
    traffic.abort();
    let stopped = stopped.map_err(|_| anyhow::anyhow!("the split did not flip within 10 s"))?;
    anyhow::ensure!(
        router.split() == Split::ALL_BURST,
        "stopped with the split at {}, expected {}",
        router.split(),
        Split::ALL_BURST
    );
    println!(
        "stopped after {} ticks with the split at {}",
        stopped.ticks,
        router.split()
    );
    Ok(())
}
