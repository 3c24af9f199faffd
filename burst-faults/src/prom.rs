//! [`RestartablePrometheus`]: a real Prometheus that can be killed and started again on the
//! same port with the same data, as after a crash or a rolling restart.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burst_testkit::prometheus::http_get_status;
use burst_testkit::{ChildGuard, free_port, loopback, require_binary};

/// How long a start waits for `/-/ready`.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A `prometheus` child process scraping a list of targets every second.
#[derive(Debug)]
pub struct RestartablePrometheus {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    guard: Option<ChildGuard>,
    starts: u32,
}

impl RestartablePrometheus {
    /// Writes the configuration (1 s scrape and evaluation interval, scrape timeout 1 s),
    /// starts Prometheus on a free loopback port and waits until it is ready. Fails with the
    /// install command when Prometheus is missing.
    pub fn start(targets: &[String]) -> Result<Self, String> {
        let binary = require_binary("prometheus", "prometheus")?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: target\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config)
            .map_err(|e| format!("cannot write the configuration: {e}"))?;
        let mut p = RestartablePrometheus {
            binary,
            port,
            dir,
            guard: None,
            starts: 0,
        };
        p.spawn()?;
        Ok(p)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many times the process was started.
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// Kills the process (SIGKILL, as a crash) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut g) = self.guard.take() {
            g.stop();
        }
    }

    /// Whether the process runs.
    pub fn is_running(&self) -> bool {
        self.guard.is_some()
    }

    /// Starts the process again on the same port with the same data directory (the WAL is
    /// replayed), and waits until it is ready.
    pub fn restart(&mut self) -> Result<(), String> {
        self.kill();
        self.spawn()
    }

    /// Its log so far (all starts).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("prometheus.log")).unwrap_or_default()
    }

    fn spawn(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let log = File::options()
                .create(true)
                .append(true)
                .open(self.dir.path().join("prometheus.log"))
                .map_err(|e| format!("cannot open the log: {e}"))?;
            let log_err = log
                .try_clone()
                .map_err(|e| format!("cannot share the log: {e}"))?;
            let child = Command::new(&self.binary)
                .arg(format!(
                    "--config.file={}",
                    self.dir.path().join("prometheus.yml").display()
                ))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    self.dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address={}", loopback(self.port)))
                .arg("--log.level=warn")
                .stdin(Stdio::null())
                .stdout(log)
                .stderr(log_err)
                .spawn()
                .map_err(|e| format!("cannot start {}: {e}", self.binary.display()))?;
            self.guard = Some(ChildGuard::new(child));
            self.starts += 1;
            match self.wait_ready(deadline) {
                Ok(()) => return Ok(()),
                // The old socket or the TSDB lock may linger a moment after a kill.
                Err(_) if Instant::now() < deadline => {
                    self.kill();
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn wait_ready(&mut self, deadline: Instant) -> Result<(), String> {
        let mut last = String::from("not tried");
        while Instant::now() < deadline {
            match http_get_status(self.port, "/-/ready") {
                Ok(200) => return Ok(()),
                Ok(code) => last = format!("/-/ready answered {code}"),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Err(format!(
            "prometheus on port {} not ready ({last}); its log:\n{}",
            self.port,
            self.log()
        ))
    }
}
