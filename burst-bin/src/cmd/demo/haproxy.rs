//! `burst demo --data-plane haproxy`: a real HAProxy in front of the two workers, instead of
//! the built-in mesh proxy.
//!
//! The demo writes a configuration into a temporary directory (one frontend on a free
//! loopback port, one backend `workers` with the servers `primary` and `burst`, the
//! Prometheus exporter on its own port, the runtime API on `admin.sock`, `level admin`,
//! mode 600), starts `haproxy -db` (foreground) as a child process and stops it on drop.
//! The controller moves weights with [`HaproxyRouter`] and measures the backend's request
//! rate with [`HaproxySource`], both over the runtime API: what `burstd run
//! --haproxy-runtime-api` does on a VM (docs/haproxy.md).

use std::fmt::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use burst_core::Split;
use burst_haproxy::{HaproxyRouter, HaproxySource, HaproxyTarget, RuntimeAddr, RuntimeClient};
use url::Url;

/// The backend the frontend sends to.
const BACKEND: &str = "workers";
/// Its primary server.
const PRIMARY: &str = "primary";
/// Its burst server.
const BURST: &str = "burst";
/// How long HAProxy gets to answer on its runtime API after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// Where Debian installs HAProxy (`/usr/sbin` is not on every user's `PATH`).
const KNOWN_PATHS: [&str; 2] = ["/usr/sbin/haproxy", "/usr/local/sbin/haproxy"];
/// What to run when HAProxy is missing.
const INSTALL: &str = "apt-get install -y --no-install-recommends haproxy";

/// A running `haproxy` child process; killed when dropped.
pub(crate) struct LocalHaproxy {
    child: Child,
    dir: tempfile::TempDir,
    /// The frontend the load goes to.
    pub(crate) frontend: Url,
    /// HAProxy's own Prometheus exporter.
    pub(crate) metrics: Url,
}

impl LocalHaproxy {
    /// Writes the configuration (routing everything to `primary`, as the seed's 100/0) and
    /// starts HAProxy; waits until its runtime API answers.
    pub(crate) async fn start(
        primary: &Url,
        burst: &Url,
        metrics_port: u16,
    ) -> anyhow::Result<Self> {
        let binary = find_binary()?;
        let dir = tempfile::tempdir().context("creating a directory for HAProxy's files")?;
        let frontend_port = free_port(0)?;
        let metrics_port = free_port(metrics_port)?;
        let weights = burst_haproxy::to_weights(Split::ALL_PRIMARY);
        let config = config(
            dir.path(),
            frontend_port,
            metrics_port,
            (server_addr(primary)?, server_addr(burst)?),
            (weights.primary(), weights.burst()),
        );
        let cfg_path = dir.path().join("haproxy.cfg");
        std::fs::write(&cfg_path, config)
            .with_context(|| format!("writing {}", cfg_path.display()))?;
        let log_path = dir.path().join("haproxy.log");
        let log = std::fs::File::create(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;
        let child = Command::new(&binary)
            .arg("-db")
            .arg("-f")
            .arg(&cfg_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let mut h = LocalHaproxy {
            child,
            dir,
            frontend: loopback_url(frontend_port, "/")?,
            metrics: loopback_url(metrics_port, "/metrics")?,
        };
        h.wait_ready(&log_path).await?;
        Ok(h)
    }

    /// The runtime API's address.
    fn runtime_api(&self) -> RuntimeAddr {
        RuntimeAddr::Unix(self.dir.path().join("admin.sock"))
    }

    /// A client of the runtime API.
    fn client(&self) -> RuntimeClient {
        RuntimeClient::new(self.runtime_api())
    }

    /// The router moving the two servers' weights.
    pub(crate) fn router(&self) -> anyhow::Result<HaproxyRouter> {
        Ok(HaproxyRouter::new(
            self.client(),
            HaproxyTarget::new(BACKEND, PRIMARY, BURST)?,
        ))
    }

    /// The backend's request rate over `window` (and `long_window` when the policy has two).
    pub(crate) fn source(
        &self,
        window: Duration,
        long_window: Option<Duration>,
    ) -> anyhow::Result<HaproxySource> {
        Ok(HaproxySource::new(
            vec![self.client()],
            BACKEND,
            window,
            long_window,
        )?)
    }

    /// One line for the banner: where it listens and how it is driven.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} (backend {BACKEND}: servers {PRIMARY}, {BURST}; exporter {}; runtime API {})",
            self.frontend,
            self.metrics,
            self.runtime_api()
        )
    }

    async fn wait_ready(&mut self, log: &Path) -> anyhow::Result<()> {
        let client = self.client();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().context("waiting for HAProxy")? {
                bail!(
                    "haproxy exited at start ({status}): {}",
                    tail(log).trim_end()
                );
            }
            if client.command("show info").await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "haproxy did not answer on {} within {READY_TIMEOUT:?}: {}",
                    self.runtime_api(),
                    tail(log).trim_end()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for LocalHaproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The HAProxy configuration of the demo.
fn config(
    dir: &Path,
    frontend_port: u16,
    metrics_port: u16,
    (primary, burst): (String, String),
    (primary_weight, burst_weight): (u16, u16),
) -> String {
    let mut c = String::new();
    let d = dir.display();
    let _ = writeln!(
        c,
        "global\n    stats socket {d}/admin.sock mode 600 level admin\n"
    );
    let _ = writeln!(
        c,
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 30s\n    timeout server 30s\n"
    );
    let _ = writeln!(
        c,
        "frontend demo\n    bind 127.0.0.1:{frontend_port}\n    default_backend {BACKEND}\n"
    );
    let _ = writeln!(
        c,
        "backend {BACKEND}\n    balance roundrobin\n    \
         server {PRIMARY} {primary} weight {primary_weight}\n    \
         server {BURST} {burst} weight {burst_weight}\n"
    );
    let _ = writeln!(
        c,
        "frontend exporter\n    bind 127.0.0.1:{metrics_port}\n    \
         http-request use-service prometheus-exporter if {{ path /metrics }}"
    );
    c
}

/// `host:port` of a worker's URL, as a server line takes it.
fn server_addr(url: &Url) -> anyhow::Result<String> {
    let host = url.host_str().context("a worker URL without a host")?;
    let port = url
        .port_or_known_default()
        .context("a worker URL without a port")?;
    Ok(format!("{host}:{port}"))
}

/// `port`, or a free loopback port when it is 0.
fn free_port(port: u16) -> anyhow::Result<u16> {
    if port != 0 {
        return Ok(port);
    }
    let listener = TcpListener::bind("127.0.0.1:0").context("finding a free loopback port")?;
    Ok(listener.local_addr()?.port())
}

fn loopback_url(port: u16, path: &str) -> anyhow::Result<Url> {
    Url::parse(&format!("http://127.0.0.1:{port}{path}")).context("building a URL")
}

/// `haproxy` from `PATH`, else where Debian puts it.
fn find_binary() -> anyhow::Result<PathBuf> {
    let from_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("haproxy"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    from_path
        .into_iter()
        .chain(KNOWN_PATHS.iter().map(PathBuf::from))
        .find(|p| p.is_file())
        .with_context(|| {
            format!(
                "--data-plane haproxy needs HAProxy, which is not installed: {INSTALL} \
                 (or leave out --data-plane to use the built-in proxy)"
            )
        })
}

/// The last lines of HAProxy's log, for an error.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn config_routes_everything_to_primary_and_exposes_the_admin_socket() {
        let c = config(
            Path::new("/tmp/x"),
            8000,
            8001,
            ("127.0.0.1:1".into(), "127.0.0.1:2".into()),
            (100, 0),
        );
        assert!(
            c.contains("stats socket /tmp/x/admin.sock mode 600 level admin"),
            "{c}"
        );
        assert!(
            c.contains("bind 127.0.0.1:8000\n    default_backend workers"),
            "{c}"
        );
        assert!(c.contains("server primary 127.0.0.1:1 weight 100"), "{c}");
        assert!(c.contains("server burst 127.0.0.1:2 weight 0"), "{c}");
        assert!(c.contains("bind 127.0.0.1:8001"), "{c}");
    }

    #[test]
    fn server_addresses_come_from_worker_urls() {
        let u = Url::parse("http://127.0.0.1:4321/").unwrap();
        assert_eq!(server_addr(&u).unwrap(), "127.0.0.1:4321");
    }
}
