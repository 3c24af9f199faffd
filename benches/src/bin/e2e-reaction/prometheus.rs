//! A `prometheus` child process per run, discovering the demo's metrics endpoint through
//! a file (`file_sd_configs`), since the demo picks its ports at start.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::bail;
use tokio::process::{Child, Command};
use url::Url;

use crate::Source;

/// One `prometheus` child process discovering its target through a file.
pub(super) struct Prometheus {
    _child: Child,
    port: u16,
    interval: Duration,
    targets: PathBuf,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// A fresh Prometheus for a run measuring through it: samples of an earlier run still
    /// inside the rate window would otherwise be read by the next demo at its start.
    pub(super) async fn start_for(
        source: Source,
        interval: Duration,
        http: &reqwest::Client,
    ) -> anyhow::Result<Option<Prometheus>> {
        match source {
            Source::Prometheus => Ok(Some(Prometheus::start(interval, http).await?)),
            Source::Scrape | Source::Pods => Ok(None),
        }
    }

    /// Starts Prometheus scraping and evaluating every `interval` (whole seconds).
    pub(super) async fn start(
        interval: Duration,
        http: &reqwest::Client,
    ) -> anyhow::Result<Prometheus> {
        let dir = tempfile::tempdir()?;
        let binary = burst_testkit::require_binary("prometheus", "prometheus")
            .map_err(anyhow::Error::msg)?;
        let port = burst_testkit::free_port()?;
        let targets = dir.path().join("targets.json");
        std::fs::write(&targets, "[]")?;
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global: {{scrape_interval: {s}s, scrape_timeout: {t}s, evaluation_interval: {s}s}}\n\
                 scrape_configs:\n\
                 - job_name: demo\n  \
                   file_sd_configs: [{{files: ['{}'], refresh_interval: 1s}}]\n",
                targets.display(),
                s = interval.as_secs(),
                t = interval.as_secs().min(10),
            ),
        )?;
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let p = Prometheus {
            _child: child,
            port,
            interval,
            targets,
            _dir: dir,
        };
        let ready = format!("{}/-/ready", p.url());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = http.get(&ready).send().await
                && r.status().is_success()
            {
                return Ok(p);
            }
            if Instant::now() > deadline {
                bail!("prometheus did not become ready within 30 s");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The scrape (and evaluation) interval.
    pub(super) fn interval(&self) -> Duration {
        self.interval
    }

    pub(super) fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Points the scrape job at `host_port` (written atomically, picked up by file SD).
    pub(super) fn set_target(&self, host_port: &str) -> anyhow::Result<()> {
        let tmp = self.targets.with_extension("tmp");
        std::fs::write(
            &tmp,
            serde_json::json!([{ "targets": [host_port] }]).to_string(),
        )?;
        std::fs::rename(&tmp, &self.targets)?;
        Ok(())
    }

    /// Waits until a rate of the demo's requests can be queried.
    pub(super) async fn wait_for_data(
        &self,
        http: &reqwest::Client,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        // Two scrapes must fall inside the window for rate() to have a value.
        let query = format!(
            r#"sum(rate(istio_requests_total{{reporter="source"}}[{}s]))"#,
            (self.interval.as_secs() * 2).max(2)
        );
        loop {
            let v: serde_json::Value = http
                .get(Url::parse_with_params(
                    &format!("{}/api/v1/query", self.url()),
                    [("query", query.as_str())],
                )?)
                .send()
                .await?
                .json()
                .await?;
            if v["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("Prometheus has no rate of the demo's requests after {limit:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}
