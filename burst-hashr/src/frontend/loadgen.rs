//! The server-side load generator: posts `{"str": <random base-36>}` at a set rate.
//!
//! Request `k` after a (re)start is due at `start + k / rate`, computed from the absolute
//! start time, so timer rounding never accumulates into drift. Each timer wake sends every
//! request that is due (several per wake at high rates: tokio's timer has millisecond
//! resolution). At most `concurrency` requests are in flight; a request that would exceed
//! the cap is not sent and is counted as `skipped`, so an overloaded processor shows up as
//! skipped requests instead of a silently lower rate.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rand::Rng;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use url::Url;

use crate::Error;

/// Why one load request failed; `kind` is a short label (`http_503`, `connect`, `timeout`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendFailure {
    /// Short, stable label for counters and the page.
    pub kind: String,
}

/// Sends one load request.
#[async_trait]
pub trait RequestSender: Send + Sync {
    /// Sends `body` (a JSON document) once.
    async fn send(&self, body: String) -> Result<(), SendFailure>;
}

/// Posts JSON bodies to a URL with reqwest.
#[derive(Debug, Clone)]
pub struct HttpSender {
    client: reqwest::Client,
    url: Url,
}

impl HttpSender {
    /// A sender posting to `url` with a per-request `timeout`.
    pub fn new(url: Url, timeout: Duration, pool: usize) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(2)))
            .pool_max_idle_per_host(pool)
            // The processor is a service next to us; an environment proxy would be wrong.
            .no_proxy()
            .build()
            .map_err(Error::HttpClient)?;
        Ok(HttpSender { client, url })
    }
}

#[async_trait]
impl RequestSender for HttpSender {
    async fn send(&self, body: String) -> Result<(), SendFailure> {
        let res = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await;
        match res {
            Ok(r) if r.status().is_success() => {
                // Drain so the connection is reused.
                let _ = r.bytes().await;
                Ok(())
            }
            Ok(r) => Err(SendFailure {
                kind: format!("http_{}", r.status().as_u16()),
            }),
            Err(e) if e.is_timeout() => Err(SendFailure {
                kind: "timeout".into(),
            }),
            Err(e) if e.is_connect() => Err(SendFailure {
                kind: "connect".into(),
            }),
            Err(_) => Err(SendFailure {
                kind: "other".into(),
            }),
        }
    }
}

/// Counters of a [`LoadGenerator`].
#[derive(Debug, Default)]
pub struct LoadStats {
    sent: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    in_flight: AtomicU64,
    errors: Mutex<BTreeMap<String, u64>>,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LoadSnapshot {
    /// Requests started.
    pub sent: u64,
    /// Requests answered with 2xx.
    pub ok: u64,
    /// Requests that failed.
    pub failed: u64,
    /// Requests not sent because `concurrency` were in flight.
    pub skipped: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Failures by kind.
    pub errors: BTreeMap<String, u64>,
}

impl LoadStats {
    /// Current values.
    pub fn snapshot(&self) -> LoadSnapshot {
        LoadSnapshot {
            sent: self.sent.load(Ordering::Relaxed),
            ok: self.ok.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            skipped: self.skipped.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            errors: match self.errors.lock() {
                Ok(g) => g.clone(),
                Err(p) => p.into_inner().clone(),
            },
        }
    }

    fn record_failure(&self, kind: String) {
        self.failed.fetch_add(1, Ordering::Relaxed);
        let mut g = match self.errors.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g.entry(kind).or_insert(0) += 1;
    }
}

/// Sends requests at a settable rate until dropped.
#[derive(Debug)]
pub struct LoadGenerator {
    rate: watch::Sender<f64>,
    stats: Arc<LoadStats>,
    task: JoinHandle<()>,
}

impl Drop for LoadGenerator {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LoadGenerator {
    /// Starts a stopped generator (rate 0) sending through `sender` with at most
    /// `concurrency` requests in flight.
    pub fn spawn(sender: Arc<dyn RequestSender>, concurrency: usize) -> Self {
        let (rate, rx) = watch::channel(0.0);
        let stats = Arc::new(LoadStats::default());
        let task = tokio::spawn(schedule(rx, sender, stats.clone(), concurrency.max(1)));
        LoadGenerator { rate, stats, task }
    }

    /// Sets the rate in requests per second (0 stops). The schedule restarts now.
    /// Values that are not finite or negative stop the generator; validate user input
    /// with [`parse_frequency`] first.
    pub fn set_rate(&self, rate: f64) {
        let rate = if rate.is_finite() && rate > 0.0 {
            rate
        } else {
            0.0
        };
        self.rate.send_replace(rate);
    }

    /// The rate in effect.
    pub fn rate(&self) -> f64 {
        *self.rate.borrow()
    }

    /// The counters.
    pub fn stats(&self) -> LoadSnapshot {
        self.stats.snapshot()
    }
}

async fn schedule(
    mut rate_rx: watch::Receiver<f64>,
    sender: Arc<dyn RequestSender>,
    stats: Arc<LoadStats>,
    concurrency: usize,
) {
    let permits = Arc::new(Semaphore::new(concurrency));
    loop {
        let rate = *rate_rx.borrow_and_update();
        if rate <= 0.0 {
            if rate_rx.changed().await.is_err() {
                return;
            }
            continue;
        }
        let start = Instant::now();
        let due = |k: u64| start + Duration::from_secs_f64(k as f64 / rate);
        let mut k: u64 = 0;
        loop {
            tokio::select! {
                biased;
                changed = rate_rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    break;
                }
                _ = tokio::time::sleep_until(due(k)) => {}
            }
            let now = Instant::now();
            while due(k) <= now {
                fire(&sender, &stats, &permits);
                k += 1;
            }
        }
    }
}

fn fire(sender: &Arc<dyn RequestSender>, stats: &Arc<LoadStats>, permits: &Arc<Semaphore>) {
    let Ok(permit) = permits.clone().try_acquire_owned() else {
        stats.skipped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    stats.sent.fetch_add(1, Ordering::Relaxed);
    stats.in_flight.fetch_add(1, Ordering::Relaxed);
    let body = serde_json::json!({ "str": random_base36(&mut rand::rng()) }).to_string();
    let sender = sender.clone();
    let stats = stats.clone();
    tokio::spawn(async move {
        match sender.send(body).await {
            Ok(()) => {
                stats.ok.fetch_add(1, Ordering::Relaxed);
            }
            Err(f) => stats.record_failure(f.kind),
        }
        stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        drop(permit);
    });
}

/// A random lower-case base-36 string of 8 characters, like the original's
/// `Math.random().toString(36)` inputs.
pub fn random_base36(rng: &mut impl Rng) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..8)
        .map(|_| char::from(DIGITS[rng.random_range(0..36)]))
        .collect()
}

/// Validates a frequency typed by a user: a number of requests per second from 0 (stop) to
/// `max`. Empty, non-numeric, negative, non-finite and too large values are refused with a
/// message saying what to type instead.
///
/// ```
/// use burst_hashr::frontend::loadgen::parse_frequency;
/// assert_eq!(parse_frequency(" 20 ", 5000.0)?, 20.0);
/// assert_eq!(parse_frequency("0", 5000.0)?, 0.0);
/// assert!(parse_frequency("", 5000.0).is_err());
/// assert!(parse_frequency("9000", 5000.0).is_err());
/// # Ok::<(), burst_hashr::Error>(())
/// ```
pub fn parse_frequency(input: &str, max: f64) -> Result<f64, Error> {
    let refuse = |reason: String| Error::InvalidFrequency {
        input: input.to_owned(),
        reason,
    };
    let t = input.trim();
    if t.is_empty() {
        return Err(refuse(
            "it is empty; type a number of requests per second, e.g. 5 (0 stops)".into(),
        ));
    }
    let value: f64 = t.parse().map_err(|_| {
        refuse(format!(
            "it is not a number; type requests per second from 0 to {max}, e.g. 5"
        ))
    })?;
    if !value.is_finite() {
        return Err(refuse(format!(
            "it is not a finite number; type requests per second from 0 to {max}"
        )));
    }
    if value < 0.0 {
        return Err(refuse(format!(
            "it is negative; type requests per second from 0 to {max} (0 stops)"
        )));
    }
    if value > max {
        return Err(refuse(format!(
            "it is above the limit of {max} requests per second"
        )));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts sends and answers at once.
    #[derive(Default)]
    struct Counting {
        bodies: Mutex<Vec<String>>,
    }

    #[async_trait]
    impl RequestSender for Counting {
        async fn send(&self, body: String) -> Result<(), SendFailure> {
            self.bodies.lock().unwrap().push(body);
            Ok(())
        }
    }

    /// Never answers.
    struct Stuck;

    #[async_trait]
    impl RequestSender for Stuck {
        async fn send(&self, _: String) -> Result<(), SendFailure> {
            std::future::pending().await
        }
    }

    /// Always fails.
    struct Failing;

    #[async_trait]
    impl RequestSender for Failing {
        async fn send(&self, _: String) -> Result<(), SendFailure> {
            Err(SendFailure {
                kind: "http_503".into(),
            })
        }
    }

    /// Advances virtual time by `d`, then lets the generator run at that instant.
    async fn run_for(g: &LoadGenerator, d: Duration) {
        tokio::time::sleep(d).await;
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        let _ = g;
    }

    #[tokio::test(start_paused = true)]
    async fn exact_count_over_a_virtual_interval() {
        let sender = Arc::new(Counting::default());
        let g = LoadGenerator::spawn(sender.clone(), 1000);
        g.set_rate(20.0);
        // Requests due at 0, 0.05, ..., 9.95 s: exactly 200 before 9.99 s.
        run_for(&g, Duration::from_millis(9990)).await;
        assert_eq!(g.stats().sent, 200);
        assert_eq!(sender.bodies.lock().unwrap().len(), 200);
        assert_eq!(g.stats().ok, 200);
        // A rate that does not divide a millisecond: 7 rps, due at k/7 < 2.999 s -> 21.
        let before = g.stats().sent;
        g.set_rate(7.0);
        run_for(&g, Duration::from_millis(2999)).await;
        assert_eq!(g.stats().sent - before, 21);
    }

    #[tokio::test(start_paused = true)]
    async fn high_rate_sends_several_per_wake_without_drift() {
        let sender = Arc::new(Counting::default());
        let g = LoadGenerator::spawn(sender.clone(), 100_000);
        g.set_rate(5000.0);
        run_for(&g, Duration::from_secs(2)).await;
        // Due at k/5000 s <= 2 s for k = 0..=10000: exactly 10,001, although the timer
        // only wakes once per millisecond.
        assert_eq!(g.stats().sent, 10_001);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_stops_and_bodies_are_base36_json() {
        let sender = Arc::new(Counting::default());
        let g = LoadGenerator::spawn(sender.clone(), 10);
        g.set_rate(10.0);
        run_for(&g, Duration::from_millis(950)).await;
        assert_eq!(g.stats().sent, 10);
        g.set_rate(0.0);
        run_for(&g, Duration::from_secs(5)).await;
        assert_eq!(g.stats().sent, 10);
        assert_eq!(g.rate(), 0.0);
        for b in sender.bodies.lock().unwrap().iter() {
            let v: serde_json::Value = serde_json::from_str(b).unwrap();
            let s = v["str"].as_str().unwrap();
            assert_eq!(s.len(), 8);
            assert!(
                s.chars()
                    .all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()),
                "{s}"
            );
        }
    }

    #[tokio::test(start_paused = true)]
    async fn concurrency_cap_skips_instead_of_slowing_down() {
        let g = LoadGenerator::spawn(Arc::new(Stuck), 3);
        g.set_rate(10.0);
        run_for(&g, Duration::from_millis(950)).await;
        let s = g.stats();
        assert_eq!(s.sent, 3);
        assert_eq!(s.in_flight, 3);
        assert_eq!(s.skipped, 7);
    }

    #[tokio::test(start_paused = true)]
    async fn failures_are_counted_by_kind() {
        let g = LoadGenerator::spawn(Arc::new(Failing), 10);
        g.set_rate(4.0);
        run_for(&g, Duration::from_millis(900)).await;
        let s = g.stats();
        assert_eq!(s.failed, 4);
        assert_eq!(s.errors.get("http_503"), Some(&4));
        assert_eq!(s.ok, 0);
    }

    #[test]
    fn frequency_validation() {
        assert_eq!(parse_frequency("5", 5000.0).unwrap(), 5.0);
        assert_eq!(parse_frequency("0.5", 5000.0).unwrap(), 0.5);
        assert_eq!(parse_frequency("5000", 5000.0).unwrap(), 5000.0);
        for (input, needle) in [
            ("", "empty"),
            ("   ", "empty"),
            ("abc", "not a number"),
            ("5rps", "not a number"),
            ("-1", "negative"),
            ("NaN", "not a finite number"),
            ("inf", "not a finite number"),
            ("5001", "above the limit of 5000"),
            ("1e9", "above the limit"),
        ] {
            let e = parse_frequency(input, 5000.0).unwrap_err();
            assert_eq!(e.kind(), "invalid_frequency");
            assert!(e.to_string().contains(needle), "{input}: {e}");
        }
    }
}
