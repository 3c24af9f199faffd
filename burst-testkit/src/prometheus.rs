//! A real Prometheus server and an Istio-like `/metrics` target, for tests of metric
//! sources.
//!
//! ```no_run
//! # async fn demo() -> Result<(), String> {
//! use burst_testkit::prometheus::{IstioSeries, IstioTarget, PrometheusServer, PrometheusOptions};
//!
//! // A target whose `istio_requests_total` grows by 12 per second.
//! let target = IstioTarget::start(vec![IstioSeries::seed("source", 12.0)]).await?;
//! let prom = PrometheusServer::start(PrometheusOptions::scraping(&[target.host_port()]))?;
//! println!("query {} ; scrape {}", prom.url(), target.metrics_url());
//! # Ok(()) }
//! ```
//!
//! Size: About 530 lines of code and a short test: the server (start, backfilled history,
//! stop) and the target it scrapes stay in one file because the tests use them as a pair.

use std::fs::File;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::header;
use axum::response::IntoResponse;

use crate::{free_port, loopback, require_binary};

/// How long `start` waits for Prometheus to be ready.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// How long `start` lets `promtool` write the backfilled blocks.
const BACKFILL_TIMEOUT: Duration = Duration::from_secs(60);

/// What the Prometheus under test scrapes and how it serves.
#[derive(Debug, Clone)]
pub struct PrometheusOptions {
    /// `host:port` of each scrape target.
    pub targets: Vec<String>,
    /// The targets' metrics path (default `/metrics`).
    pub metrics_path: String,
    /// Scrape and rule evaluation interval (default 1 s; the scrape timeout equals it).
    pub scrape_interval: Duration,
    /// Serve HTTPS with this certificate and key (PEM files) instead of HTTP.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// History to load before Prometheus starts: OpenMetrics text (timestamps in seconds,
    /// ending with `# EOF`), written into the data directory by
    /// `promtool tsdb create-blocks-from openmetrics`.
    pub backfill: Option<String>,
}

impl PrometheusOptions {
    /// Scrapes `targets` (`host:port`) every second at `/metrics`, over plain HTTP.
    pub fn scraping(targets: &[String]) -> Self {
        PrometheusOptions {
            targets: targets.to_vec(),
            metrics_path: "/metrics".into(),
            scrape_interval: Duration::from_secs(1),
            tls: None,
            backfill: None,
        }
    }

    /// Scrapes nothing and serves `openmetrics` (see [`PrometheusOptions::backfill`]) as
    /// recorded history. Keep the samples within the last two weeks: Prometheus deletes
    /// blocks older than its retention (15 days) when it starts.
    pub fn history(openmetrics: impl Into<String>) -> Self {
        PrometheusOptions {
            backfill: Some(openmetrics.into()),
            ..PrometheusOptions::scraping(&[])
        }
    }
}

/// A `prometheus` child process with a temporary data directory, killed (and waited for)
/// when dropped.
#[derive(Debug)]
pub struct PrometheusServer {
    port: u16,
    tls: bool,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl PrometheusServer {
    /// Writes the configuration, starts Prometheus on a free loopback port and waits (at
    /// most 20 s) until it is ready. Fails with the install command when Prometheus is not
    /// installed, and with its log when it does not come up.
    pub fn start(options: PrometheusOptions) -> Result<Self, String> {
        let binary = require_binary("prometheus", "prometheus")?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let config = dir.path().join("prometheus.yml");
        write_file(&config, &config_yaml(&options))?;
        if let Some(history) = &options.backfill {
            backfill(dir.path(), history)?;
        }
        let mut command = Command::new(&binary);
        command
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address={}", loopback(port)))
            .arg("--log.level=info");
        if let Some((cert, key)) = &options.tls {
            let web = dir.path().join("web.yml");
            write_file(
                &web,
                &format!(
                    "tls_server_config:\n  cert_file: {}\n  key_file: {}\n",
                    cert.display(),
                    key.display()
                ),
            )?;
            command.arg(format!("--web.config.file={}", web.display()));
        }
        let log = File::create(dir.path().join("prometheus.log"))
            .map_err(|e| format!("cannot create the log file: {e}"))?;
        let log_err = log
            .try_clone()
            .map_err(|e| format!("cannot share the log file: {e}"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
        let mut server = PrometheusServer {
            port,
            tls: options.tls.is_some(),
            dir,
            child: Some(child),
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// The base URL (`http://127.0.0.1:PORT`, or `https://` with TLS).
    pub fn url(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What Prometheus has logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// Kills Prometheus and waits for the process to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let mut last = String::from("not tried");
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "prometheus exited with {status} before it was ready; its log:\n{}",
                    self.log()
                ));
            }
            let ready = if self.tls {
                // /-/ready would need a TLS client; Prometheus logs when it is ready.
                self.log()
                    .contains("Server is ready to receive web requests")
            } else {
                match http_get_status(self.port, "/-/ready") {
                    Ok(200) => true,
                    Ok(code) => {
                        last = format!("/-/ready answered {code}");
                        false
                    }
                    Err(e) => {
                        last = e;
                        false
                    }
                }
            };
            if ready {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "prometheus on port {} was not ready within {READY_TIMEOUT:?} ({last}); its log:\n{}",
            self.port,
            self.log()
        ))
    }
}

impl Drop for PrometheusServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `openmetrics` as TSDB blocks into `dir/data` with `promtool` (at most 60 s).
fn backfill(dir: &Path, openmetrics: &str) -> Result<(), String> {
    let promtool = require_binary("promtool", "prometheus")?;
    let input = dir.join("backfill.om");
    write_file(&input, openmetrics)?;
    let log_path = dir.join("promtool.log");
    let log = File::create(&log_path).map_err(|e| format!("cannot create the log file: {e}"))?;
    let log_err = log
        .try_clone()
        .map_err(|e| format!("cannot share the log file: {e}"))?;
    let mut child = Command::new(&promtool)
        .args(["tsdb", "create-blocks-from", "openmetrics"])
        .arg(&input)
        .arg(dir.join("data"))
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", promtool.display()))?;
    let deadline = Instant::now() + BACKFILL_TIMEOUT;
    let log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                return Err(format!(
                    "promtool tsdb create-blocks-from openmetrics exited with {status}; its output:\n{}",
                    log()
                ));
            }
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "promtool did not finish the backfill within {BACKFILL_TIMEOUT:?}; its output:\n{}",
                    log()
                ));
            }
            Err(e) => return Err(format!("cannot wait for promtool: {e}")),
        }
    }
}

fn config_yaml(options: &PrometheusOptions) -> String {
    let secs = options.scrape_interval.as_secs_f64();
    let targets: Vec<String> = options.targets.iter().map(|t| format!("'{t}'")).collect();
    format!(
        "global:\n  scrape_interval: {secs}s\n  scrape_timeout: {secs}s\n  evaluation_interval: {secs}s\n\
         scrape_configs:\n  - job_name: target\n    metrics_path: '{}'\n    static_configs:\n      - targets: [{}]\n",
        options.metrics_path,
        targets.join(", ")
    )
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// A plain HTTP/1.0 GET on 127.0.0.1, returning the status code.
pub fn http_get_status(port: u16, path: &str) -> Result<u16, String> {
    let mut s = TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(1)))
        .map_err(|e| e.to_string())?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&head);
    text.get(9..12)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))
}

/// A recorded demand history for replay tests, as OpenMetrics text for
/// [`PrometheusOptions::history`]: the counter `replay_requests_total` of two instances,
/// scraped every [`DemandHistory::SCRAPE`] seconds for [`DemandHistory::DURATION`] seconds.
///
/// `sum(rate(replay_requests_total[1m]))` is 5 rps, 20 rps from
/// [`DemandHistory::STEP_UP_AT`] to [`DemandHistory::STEP_DOWN_AT`], then 5 rps again.
/// Instance `b` serves a steady 1 rps; instance `a` the rest. No sample exists in
/// [`DemandHistory::GAP`] (a scrape outage), and instance `a`'s counter restarts from 0
/// at [`DemandHistory::RESET_AT`] (a process restart). Times are seconds after `start`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemandHistory {
    /// Unix seconds of the first sample.
    pub start: u64,
    /// The samples, ending with `# EOF`.
    pub openmetrics: String,
}

impl DemandHistory {
    /// Length of the history in seconds.
    pub const DURATION: u64 = 4 * 3600;
    /// Seconds between samples.
    pub const SCRAPE: u64 = 5;
    /// The demand steps from 5 to 20 rps here.
    pub const STEP_UP_AT: u64 = 3600;
    /// The demand steps back from 20 to 5 rps here.
    pub const STEP_DOWN_AT: u64 = 5400;
    /// No samples in `[GAP.0, GAP.1)`.
    pub const GAP: (u64, u64) = (7200, 7500);
    /// Instance `a`'s counter restarts here.
    pub const RESET_AT: u64 = 9000;

    /// The history starting `ago` seconds before now, on a whole minute.
    pub fn ending_before_now(ago: Duration) -> Self {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let start = now.saturating_sub(ago.as_secs()) / 60 * 60;
        DemandHistory::starting_at(start)
    }

    /// The history starting at `start` (Unix seconds).
    pub fn starting_at(start: u64) -> Self {
        let total_rps = |t: u64| {
            if (Self::STEP_UP_AT..Self::STEP_DOWN_AT).contains(&t) {
                20.0
            } else {
                5.0
            }
        };
        let mut out = String::from("# TYPE replay_requests counter\n");
        let (mut a, mut b) = (0.0_f64, 0.0_f64);
        let mut t = 0;
        while t <= Self::DURATION {
            if t > 0 {
                let rate_a = total_rps(t - Self::SCRAPE) - 1.0;
                // A restarted process counts from 0: its first sample holds only what it
                // served since the restart.
                a = if t == Self::RESET_AT {
                    rate_a * Self::SCRAPE as f64
                } else {
                    a + rate_a * Self::SCRAPE as f64
                };
                b += Self::SCRAPE as f64;
            }
            if !(Self::GAP.0..Self::GAP.1).contains(&t) {
                let at = start + t;
                out.push_str(&format!(
                    "replay_requests_total{{instance=\"a\"}} {a} {at}\nreplay_requests_total{{instance=\"b\"}} {b} {at}\n"
                ));
            }
            t += Self::SCRAPE;
        }
        out.push_str("# EOF\n");
        DemandHistory {
            start,
            openmetrics: out,
        }
    }
}

/// One `istio_requests_total` series and the rate at which the target drives it.
#[derive(Debug, Clone, PartialEq)]
pub struct IstioSeries {
    /// `reporter` label (`source` or `destination`).
    pub reporter: String,
    /// `destination_service` label.
    pub destination_service: String,
    /// `source_workload` label (`source_app` is derived from it).
    pub source_workload: String,
    /// Increase per second.
    pub rate: f64,
}

impl IstioSeries {
    /// The seed's series (worker-service, called by frontend-deployment) as seen by
    /// `reporter`, growing by `rate` per second.
    pub fn seed(reporter: &str, rate: f64) -> Self {
        IstioSeries {
            reporter: reporter.into(),
            destination_service: "worker-service.default.svc.cluster.local".into(),
            source_workload: "frontend-deployment".into(),
            rate,
        }
    }
}

#[derive(Debug)]
struct Counter {
    series: IstioSeries,
    origin: Instant,
}

impl Counter {
    /// Whole requests so far, like a real counter.
    fn value(&self) -> f64 {
        (self.series.rate * self.origin.elapsed().as_secs_f64()).floor()
    }
}

/// An HTTP server on 127.0.0.1 exposing `istio_requests_total` counters that grow at
/// known rates. It can be stopped (connections refused), resumed on the same port, and
/// its counters reset as by a process restart.
#[derive(Debug)]
pub struct IstioTarget {
    addr: SocketAddr,
    counters: Arc<Mutex<Vec<Counter>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl IstioTarget {
    /// Starts serving `/metrics` on a free port; every counter starts at 0 now.
    pub async fn start(series: Vec<IstioSeries>) -> Result<Self, String> {
        let now = Instant::now();
        let counters = series
            .into_iter()
            .map(|series| Counter {
                series,
                origin: now,
            })
            .collect();
        let listener = tokio::net::TcpListener::bind(loopback(0))
            .await
            .map_err(|e| format!("cannot bind the target: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?;
        let mut target = IstioTarget {
            addr,
            counters: Arc::new(Mutex::new(counters)),
            task: None,
        };
        target.serve(listener);
        Ok(target)
    }

    /// `127.0.0.1:PORT`, as a Prometheus static target.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT/metrics`.
    pub fn metrics_url(&self) -> String {
        format!("http://{}/metrics", self.addr)
    }

    /// Restarts every counter from 0 (what a process restart does to counters).
    pub fn reset(&self) {
        let now = Instant::now();
        for c in self.lock().iter_mut() {
            c.origin = now;
        }
    }

    /// The current value of series `index`.
    pub fn value(&self, index: usize) -> Option<f64> {
        self.lock().get(index).map(Counter::value)
    }

    /// Stops serving: new connections are refused until [`IstioTarget::resume`].
    pub fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    /// Serves again on the same port; the counters went on counting meanwhile.
    pub async fn resume(&mut self) -> Result<(), String> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(5);
        let listener = loop {
            match tokio::net::TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() >= deadline => {
                    return Err(format!("cannot bind {} again: {e}", self.addr));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        self.serve(listener);
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Counter>> {
        self.counters.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn serve(&mut self, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(metrics))
            .layer(DefaultBodyLimit::max(1024))
            .with_state(self.counters.clone());
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }
}

impl Drop for IstioTarget {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn metrics(State(counters): State<Arc<Mutex<Vec<Counter>>>>) -> impl IntoResponse {
    let mut body = String::from(
        "# HELP istio_requests_total Total number of requests.\n# TYPE istio_requests_total counter\n",
    );
    for c in counters.lock().unwrap_or_else(|p| p.into_inner()).iter() {
        let s = &c.series;
        let app = s.source_workload.trim_end_matches("-deployment");
        body.push_str(&format!(
            "istio_requests_total{{reporter=\"{}\",destination_service=\"{}\",source_workload=\"{}\",source_app=\"{app}\",response_code=\"200\"}} {}\n",
            s.reporter,
            s.destination_service,
            s.source_workload,
            c.value()
        ));
    }
    (
        [
            (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
            // No keep-alive: a stopped target must refuse the next scrape, not answer it
            // on a connection left open.
            (header::CONNECTION, "close"),
        ],
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lists_targets_and_intervals() {
        let y = config_yaml(&PrometheusOptions::scraping(&["127.0.0.1:1".into()]));
        assert!(y.contains("scrape_interval: 1s"), "{y}");
        assert!(y.contains("targets: ['127.0.0.1:1']"), "{y}");
    }

    #[tokio::test]
    async fn target_serves_counters_stops_and_resumes() {
        let mut t = IstioTarget::start(vec![IstioSeries::seed("source", 1000.0)])
            .await
            .unwrap();
        let port = t.addr.port();
        let status = tokio::task::spawn_blocking(move || http_get_status(port, "/metrics"))
            .await
            .unwrap();
        assert_eq!(status, Ok(200));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(t.value(0).unwrap() >= 10.0);
        t.reset();
        assert!(t.value(0).unwrap() < 10.0);
        t.stop();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let down = tokio::task::spawn_blocking(move || http_get_status(port, "/metrics"))
            .await
            .unwrap();
        assert!(down.is_err(), "{down:?}");
        t.resume().await.unwrap();
        let up = tokio::task::spawn_blocking(move || http_get_status(port, "/metrics"))
            .await
            .unwrap();
        assert_eq!(up, Ok(200));
    }

    #[test]
    fn backfilled_history_is_served() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let t0 = now - 3600;
        let history = format!(
            "# TYPE kept counter\nkept_total 5 {t0}\nkept_total 7 {}\n# EOF\n",
            t0 + 10
        );
        let p = PrometheusServer::start(PrometheusOptions::history(history)).unwrap();
        let body = http_get_body(
            p.port(),
            &format!("/api/v1/query?query=kept_total&time={}", t0 + 10),
        )
        .unwrap();
        assert!(body.contains(r#""7""#), "{body}");
        let bad = PrometheusServer::start(PrometheusOptions::history("not openmetrics"));
        assert!(bad.unwrap_err().contains("promtool"));
    }

    /// A plain HTTP/1.0 GET, returning the body.
    fn http_get_body(port: u16, path: &str) -> Result<String, String> {
        let mut s = TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200))
            .map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").map_err(|e| e.to_string())?;
        let mut text = String::new();
        s.read_to_string(&mut text).map_err(|e| e.to_string())?;
        Ok(text)
    }

    #[test]
    fn prometheus_starts_ready_and_stops() {
        let mut p = PrometheusServer::start(PrometheusOptions::scraping(&[])).unwrap();
        assert_eq!(http_get_status(p.port(), "/-/ready"), Ok(200));
        p.stop();
        assert!(http_get_status(p.port(), "/-/ready").is_err());
    }
}
