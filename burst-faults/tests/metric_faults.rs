//! Metric fault family: a real `burst_core::Controller` (policy: hysteresis 15/10 rps,
//! `on_missing: primary`, `stale_after: 2s`) reads a REAL Prometheus (Debian package
//! `prometheus`, a child process) through `PrometheusSource`, and a `/metrics` target
//! directly through `ScrapeSource`, while they are broken on purpose: Prometheus killed,
//! restarted, slowed past the timeout (a proxy in front that delays), answering 500,
//! garbage, truncated JSON, an empty vector, NaN, dropped connections; the target stopped,
//! cut, garbled, or its counter reset.
//!
//! The true load is 30 rps all along, so the controller should burst and stay there. For
//! every tick the test checks:
//! - the split only ever moves for a reason the policy allows: while data is missing, it
//!   holds; once data has been missing for `stale_after` it moves to the safe state (all
//!   primary) once; a move back to the primary caused by a wrong measurement or an error is
//!   a failure ("never a fall-back caused by an error");
//! - every fault shows up as the expected error kind (or as "no data");
//! - when the fault is healed, the first good sample moves the split back to burst on that
//!   very tick.
//!
//! Real time, with small windows (5 s rate window, 1 s scrapes, 400 ms ticks). Each case
//! runs once per round; rounds repeat for `BURST_FAULTS_BUDGET_SECS` (default: one round).
//! Summary line: `metric: N passed, N failed`.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use burst_core::policy::{AnyPolicy, OnMissing, PolicySpec, Rule, Signal};
use burst_core::testing::MemoryRouter;
use burst_core::{
    Controller, ControllerConfig, MetricSource, Outcome, Split, TickReport, Timestamp,
};
use burst_faults::prom::RestartablePrometheus;
use burst_faults::proxy::{Behaviour, FaultProxy};
use burst_faults::tally::{CaseStats, Family};
use burst_prom::{HttpConfig, PrometheusConfig, PrometheusSource, ScrapeConfig, ScrapeSource};
use burst_testkit::prometheus::{IstioSeries, IstioTarget};

/// The target's true load: well above the high threshold (15).
const LOAD: f64 = 30.0;
/// The policy's `stale_after`.
const STALE: Duration = Duration::from_secs(2);
const TICK: Duration = Duration::from_millis(400);
/// How long a fault that should reach the safe state is held.
const FAULT_HOLD: Duration = Duration::from_millis(3600);
const HTTP_TIMEOUT: Duration = Duration::from_millis(500);

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn policy() -> AnyPolicy {
    PolicySpec {
        on_missing: OnMissing::Primary,
        stale_after: STALE.into(),
        ..PolicySpec::default()
    }
    .build()
    .unwrap()
}

fn http() -> HttpConfig {
    HttpConfig {
        timeout: HTTP_TIMEOUT,
        ..HttpConfig::default()
    }
}

fn signal_kind(s: &Signal) -> String {
    match s {
        Signal::Rates(_) | Signal::Observed(_) => "rates".into(),
        Signal::NoData(_) => "no_data".into(),
        Signal::Error(e) => e.kind().to_owned(),
    }
}

/// A controller over one source, with the checks of every tick.
struct Probe<S> {
    name: &'static str,
    ctl: Controller<S, AnyPolicy, Arc<MemoryRouter>>,
    router: Arc<MemoryRouter>,
    last_good: Option<Timestamp>,
    /// Error kinds seen since the last `take_kinds`.
    kinds: BTreeMap<String, u64>,
    applied: usize,
    /// Router writes before the current case's fault.
    mark: usize,
    /// Lowest plausible measurement once warmed up (see `new`).
    min_rate: f64,
    warmed: bool,
    /// The last few ticks, for failure messages.
    recent: std::collections::VecDeque<String>,
}

impl<S: MetricSource> Probe<S> {
    /// A probe whose measurements, once it has burst, must stay above `min_rate`.
    /// The scrape source computes exact rates, so 15 (the high threshold) is the bound; a
    /// Prometheus `rate()` extrapolates over the window and legitimately reads low while a
    /// window holds only a few samples (start, restart), so 0 is its bound and only a move
    /// that such a reading causes counts as a failure.
    fn new(name: &'static str, source: S, min_rate: f64) -> Self {
        let router = Arc::new(MemoryRouter::new(Split::ALL_PRIMARY));
        let ctl = Controller::new(
            source,
            policy(),
            router.clone(),
            ControllerConfig {
                tick: TICK,
                source_timeout: Duration::from_secs(3),
                router_timeout: Duration::from_secs(1),
                backoff_initial: Duration::from_millis(100),
                backoff_max: Duration::from_secs(1),
                dry_run: false,
            },
        );
        Probe {
            name,
            ctl,
            router,
            last_good: None,
            kinds: BTreeMap::new(),
            applied: 0,
            mark: 0,
            min_rate,
            warmed: false,
            recent: std::collections::VecDeque::new(),
        }
    }

    /// One tick, checked: a move is either the first good sample's burst, or the safe state
    /// after `stale_after` without data.
    async fn tick(&mut self) -> Result<TickReport, String> {
        let r = self
            .ctl
            .tick()
            .await
            .map_err(|e| format!("{}: tick failed: {e}", self.name))?;
        *self.kinds.entry(signal_kind(&r.signal)).or_default() += 1;
        if self.recent.len() >= 10 {
            self.recent.pop_front();
        }
        self.recent
            .push_back(format!("[{}] {:?}", r.signal, r.outcome));
        let checked = self.check(&r);
        checked.map_err(|e| format!("{e}; recent ticks: {:#?}", self.recent))?;
        Ok(r)
    }

    fn check(&mut self, r: &TickReport) -> Result<(), String> {
        match (&r.signal, &r.outcome) {
            (
                Signal::Rates(rates) | Signal::Observed(burst_core::Observation { rates, .. }),
                outcome,
            ) => {
                self.last_good = Some(r.at);
                ensure!(
                    !self.warmed || rates.up.get() > self.min_rate,
                    "{}: measured {} rps, but the load is {LOAD}: a wrong value reached the policy",
                    self.name,
                    rates.up
                );
                if let Outcome::Applied { to, .. } = outcome {
                    ensure!(
                        *to == Split::ALL_BURST,
                        "{}: a measurement moved the split to {to}",
                        self.name
                    );
                }
            }
            (_, Outcome::Unchanged) => {}
            (signal, Outcome::Applied { to, .. }) => {
                let missing = self
                    .last_good
                    .map_or(Duration::MAX, |g| r.at.saturating_since(g));
                ensure!(
                    r.decision.reason.rule == Rule::StaleSafeTarget
                        && *to == Split::ALL_PRIMARY
                        && missing >= STALE,
                    "{}: moved to {to} on `{signal}` after {missing:?} without data ({}): a fall-back caused by an error",
                    self.name,
                    r.decision.reason
                );
            }
            (_, other) => return Err(format!("{}: unexpected outcome {other:?}", self.name)),
        }
        if matches!(r.outcome, Outcome::Applied { .. }) {
            self.applied += 1;
        }
        self.warmed |= r.belief == Split::ALL_BURST;
        ensure!(
            self.ctl.belief() == Some(self.router.split()),
            "{}: belief {:?} but the router holds {}",
            self.name,
            self.ctl.belief(),
            self.router.split()
        );
        Ok(())
    }

    /// Ticks until a tick satisfies `done`, for at most `limit`.
    async fn tick_until(
        &mut self,
        limit: Duration,
        what: &str,
        done: impl Fn(&TickReport) -> bool,
    ) -> Result<TickReport, String> {
        let deadline = Instant::now() + limit;
        loop {
            let r = self.tick().await?;
            if done(&r) {
                return Ok(r);
            }
            ensure!(
                Instant::now() < deadline,
                "{}: {what}: not within {limit:?} (last signal: {})",
                self.name,
                r.signal
            );
            tokio::time::sleep(TICK).await;
        }
    }

    /// Ticks until bursting on good data.
    async fn ensure_bursting(&mut self, limit: Duration) -> Result<(), String> {
        self.tick_until(limit, "burst on good data", |r| {
            r.signal.rates().is_some() && r.belief == Split::ALL_BURST
        })
        .await
        .map(|_| ())
    }

    /// Ticks until the short-window rate is within 20 % of the true load, while bursting.
    async fn ensure_steady(&mut self, limit: Duration) -> Result<(), String> {
        self.tick_until(limit, "a steady rate while bursting", |r| {
            r.signal
                .rates()
                .is_some_and(|x| (x.up.get() - LOAD).abs() <= LOAD * 0.2)
                && r.belief == Split::ALL_BURST
        })
        .await
        .map(|_| ())
    }

    /// Ticks for `period`, every tick checked.
    async fn ride(&mut self, period: Duration) -> Result<(), String> {
        let until = Instant::now() + period;
        while Instant::now() < until {
            self.tick().await?;
            tokio::time::sleep(TICK).await;
        }
        Ok(())
    }

    /// Ticks through a fault held for `hold`; checks the expected kind showed up and,
    /// when data was missing for longer than `stale_after`, that the safe state was reached.
    async fn through_fault(
        &mut self,
        hold: Duration,
        expect: &str,
        stats: &mut CaseStats,
    ) -> Result<(), String> {
        self.kinds.clear();
        self.mark();
        let until = Instant::now() + hold;
        while Instant::now() < until {
            self.tick().await?;
            tokio::time::sleep(TICK).await;
        }
        ensure!(
            self.kinds.contains_key(expect),
            "{}: expected `{expect}` during the fault, saw {:?}",
            self.name,
            self.kinds
        );
        for (k, n) in &self.kinds {
            if k != "rates" {
                stats.inject(&format!("{}:{k}", self.name), *n);
            }
        }
        let missing = self
            .last_good
            .map_or(Duration::MAX, |g| self.ctl_now().saturating_since(g));
        if missing >= STALE + TICK {
            ensure!(
                self.router.split() == Split::ALL_PRIMARY,
                "{}: data missing for {missing:?} but the split is {}, not the safe state",
                self.name,
                self.router.split()
            );
        }
        Ok(())
    }

    /// Marks the start of a case's fault, for counting its writes.
    fn mark(&mut self) {
        self.mark = self.router.applied().len();
    }

    fn ctl_now(&self) -> Timestamp {
        Timestamp::from_duration(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default(),
        )
    }

    /// After healing: the first sample above the high threshold must move the split back
    /// to burst on that very tick. A probe with `min_rate` above 0 (exact rates) must not
    /// read low at all; for Prometheus, samples whose window still holds the gap read low
    /// (rate() extrapolates over the window) and are counted.
    async fn recovers(&mut self, limit: Duration, stats: &mut CaseStats) -> Result<(), String> {
        let mut low = 0u64;
        let r = loop {
            let r = self
                .tick_until(limit, "a good sample after healing", |r| {
                    r.signal.rates().is_some()
                })
                .await?;
            match r.signal.rates() {
                Some(rates) if rates.up.get() > 15.0 => break r,
                Some(rates) => {
                    ensure!(
                        self.min_rate == 0.0,
                        "{}: the first sample after healing read {}",
                        self.name,
                        rates.up
                    );
                    low += 1;
                    ensure!(low < 20, "{}: rates stay low after healing", self.name);
                    tokio::time::sleep(TICK).await;
                }
                None => unreachable!(),
            }
        };
        ensure!(
            r.belief == Split::ALL_BURST,
            "{}: the first sample above the threshold ({}) left the split at {}; recent ticks: {:#?}",
            self.name,
            r.signal,
            r.belief,
            self.recent
        );
        if low > 0 {
            stats.inject(&format!("{}:low_samples_after_gap", self.name), low);
        }
        stats.written = (self.router.applied().len() - self.mark) as u64;
        stats.checked = stats.written;
        Ok(())
    }
}

fn empty_vector() -> String {
    r#"{"status":"success","data":{"resultType":"vector","result":[]}}"#.into()
}

fn nan_vector() -> String {
    r#"{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"NaN"]}]}}"#.into()
}

fn nan_exposition() -> String {
    "# TYPE istio_requests_total counter\nistio_requests_total{reporter=\"source\"} NaN\n".into()
}

/// One HTTP-level fault through the proxy.
async fn proxied<S: MetricSource>(
    probe: &mut Probe<S>,
    proxy: &FaultProxy,
    fault: Behaviour,
    expect: &str,
) -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    probe.ensure_bursting(Duration::from_secs(20)).await?;
    proxy.set(fault).await?;
    let result = probe.through_fault(FAULT_HOLD, expect, &mut stats).await;
    proxy.set(Behaviour::Pass).await?;
    result?;
    probe.recovers(Duration::from_secs(20), &mut stats).await?;
    Ok(stats)
}

/// The counter restarts from 0: the rate must stay right (no fall-back, no error).
async fn counter_reset<S: MetricSource>(
    probe: &mut Probe<S>,
    target: &IstioTarget,
) -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    probe.ensure_steady(Duration::from_secs(30)).await?;
    let applied = probe.router.applied().len();
    target.reset();
    stats.inject(&format!("{}:counter_reset", probe.name), 1);
    probe.kinds.clear();
    let until = Instant::now() + Duration::from_secs(4);
    while Instant::now() < until {
        probe.tick().await?;
        tokio::time::sleep(TICK).await;
    }
    ensure!(
        probe.kinds.keys().all(|k| k == "rates"),
        "{}: a counter reset gave {:?}; recent ticks: {:#?}",
        probe.name,
        probe.kinds,
        probe.recent
    );
    ensure!(
        probe.router.applied().len() == applied,
        "{}: the split moved after a counter reset",
        probe.name
    );
    Ok(stats)
}

async fn prometheus_cases(rounds_budget: Duration) -> Vec<(String, Result<CaseStats, String>)> {
    let mut out = Vec::new();
    let target = IstioTarget::start(vec![IstioSeries::seed("source", LOAD)])
        .await
        .unwrap();
    let mut prom = RestartablePrometheus::start(&[target.host_port()]).unwrap();
    let proxy = FaultProxy::start(&prom.url()).await.unwrap();
    let source = |url: String| {
        PrometheusSource::new(PrometheusConfig {
            url,
            // Two windows, as recommended: 5 s to move to burst, 20 s to come back. A
            // window that holds an outage reads low; the long one keeps that from
            // looking like a drop in load.
            window: Duration::from_secs(5),
            long_window: Some(Duration::from_secs(20)),
            http: http(),
            ..PrometheusConfig::default()
        })
        .unwrap()
    };
    let mut direct = Probe::new("prometheus", source(prom.url()), 0.0);
    let mut via = Probe::new("prometheus-via-proxy", source(proxy.url()), 0.0);
    // Prometheus needs a few scrapes before the first rate.
    if let Err(e) = direct.ensure_bursting(Duration::from_secs(40)).await {
        out.push((
            "prometheus/warm-up".into(),
            Err(format!("{e}\n{}", prom.log())),
        ));
        return out;
    }
    let started = Instant::now();
    loop {
        // Killed, held down past stale_after, started again.
        let mut stats = CaseStats::default();
        let r = async {
            direct.ensure_bursting(Duration::from_secs(20)).await?;
            tokio::task::block_in_place(|| prom.kill());
            stats.inject("prometheus:killed", 1);
            let held = direct
                .through_fault(FAULT_HOLD, "connect", &mut stats)
                .await;
            tokio::task::block_in_place(|| prom.restart())?;
            held?;
            direct.recovers(Duration::from_secs(30), &mut stats).await?;
            Ok(stats)
        }
        .await;
        out.push(("prometheus/stopped".into(), r));

        // Restarted at once: a short outage, held without a fall-back if short enough.
        let mut stats = CaseStats::default();
        let r = async {
            direct.ensure_steady(Duration::from_secs(30)).await?;
            direct.mark();
            tokio::task::block_in_place(|| prom.restart())?;
            stats.inject("prometheus:restarted", 1);
            // Right after a restart the WAL's samples answer, then nothing new arrives
            // until the scrape loop starts (~5 s): rates decay, then go missing.
            direct.ride(Duration::from_secs(8)).await?;
            direct.recovers(Duration::from_secs(30), &mut stats).await?;
            Ok(stats)
        }
        .await;
        out.push(("prometheus/restarted".into(), r));

        out.push((
            "prometheus/counter_reset".into(),
            counter_reset(&mut direct, &target).await,
        ));
        let cases: Vec<(&str, Behaviour, &str)> = vec![
            (
                "slow_past_timeout",
                Behaviour::Delay(HTTP_TIMEOUT * 3),
                "timeout",
            ),
            (
                "http_500",
                Behaviour::Status(500, "internal error".into()),
                "http_status",
            ),
            (
                "garbage_json",
                Behaviour::Body("{\"status\":\"succ<html>".into()),
                "response",
            ),
            ("truncated_json", Behaviour::Truncate, "response"),
            ("empty_vector", Behaviour::Body(empty_vector()), "no_data"),
            ("nan", Behaviour::Body(nan_vector()), "invalid_value"),
            ("dropped_connection", Behaviour::Drop, "connect"),
            ("refused", Behaviour::Refuse, "connect"),
        ];
        for (name, fault, expect) in cases {
            let r = proxied(&mut via, &proxy, fault, expect).await;
            out.push((format!("prometheus/{name}"), r));
        }
        if started.elapsed() >= rounds_budget || out.iter().any(|(_, r)| r.is_err()) {
            break;
        }
    }
    out
}

async fn scrape_cases(rounds_budget: Duration) -> Vec<(String, Result<CaseStats, String>)> {
    let mut out = Vec::new();
    let mut target = IstioTarget::start(vec![IstioSeries::seed("source", LOAD)])
        .await
        .unwrap();
    let proxy = FaultProxy::start(&format!("http://{}", target.host_port()))
        .await
        .unwrap();
    let source = |url: String| {
        ScrapeSource::new(ScrapeConfig {
            targets: vec![url],
            metric: "istio_requests_total".into(),
            matchers: [("reporter".to_string(), "source".to_string())].into(),
            window: Duration::from_secs(3),
            http: http(),
            ..ScrapeConfig::default()
        })
        .unwrap()
    };
    let mut direct = Probe::new("scrape", source(target.metrics_url()), 15.0);
    let mut via = Probe::new(
        "scrape-via-proxy",
        source(format!("{}/metrics", proxy.url())),
        15.0,
    );
    let started = Instant::now();
    loop {
        let mut stats = CaseStats::default();
        let r = async {
            direct.ensure_bursting(Duration::from_secs(10)).await?;
            target.stop();
            stats.inject("scrape:target_stopped", 1);
            let held = direct
                .through_fault(FAULT_HOLD, "connect", &mut stats)
                .await;
            target.resume().await?;
            held?;
            direct.recovers(Duration::from_secs(10), &mut stats).await?;
            Ok(stats)
        }
        .await;
        out.push(("scrape/target_stopped".into(), r));
        out.push((
            "scrape/counter_reset".into(),
            counter_reset(&mut direct, &target).await,
        ));
        let cases: Vec<(&str, Behaviour, &str)> = vec![
            (
                "slow_past_timeout",
                Behaviour::Delay(HTTP_TIMEOUT * 3),
                "timeout",
            ),
            (
                "http_500",
                Behaviour::Status(500, "internal error".into()),
                "scrape",
            ),
            (
                "garbage",
                Behaviour::Body("<html>not metrics</html>\n".into()),
                "exposition",
            ),
            ("truncated", Behaviour::Truncate, "exposition"),
            ("cut_in_last_number", Behaviour::CutTail(3), "exposition"),
            ("empty_body", Behaviour::Body(String::new()), "no_data"),
            ("nan", Behaviour::Body(nan_exposition()), "invalid_value"),
            ("dropped_connection", Behaviour::Drop, "connect"),
        ];
        for (name, fault, expect) in cases {
            let r = proxied(&mut via, &proxy, fault, expect).await;
            out.push((format!("scrape/{name}"), r));
        }
        if started.elapsed() >= rounds_budget || out.iter().any(|(_, r)| r.is_err()) {
            break;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_faults() {
    let budget = burst_faults::budget(Duration::ZERO);
    let (prom, scrape) = tokio::join!(prometheus_cases(budget), scrape_cases(budget));
    let mut family = Family::new("metric");
    // Rounds of the slower loop (Prometheus); the scrape loop may run one more.
    let rounds = prom
        .iter()
        .filter(|(c, _)| c == "prometheus/stopped")
        .count();
    for (case, result) in prom.into_iter().chain(scrape) {
        family.record(&case, result);
    }
    for _ in 0..rounds.max(1) {
        family.end_round();
    }
    family.report();
    assert_eq!(family.failed(), 0, "{:#?}", family.failures());
    assert!(family.passed() >= 19, "not every case ran");
}
