//! A real `haproxy` on free loopback ports with a generated configuration.
//!
//! One frontend sends to one backend (`app`, `balance roundrobin`) with two servers,
//! `primary` and `burst`. By default each server is a tiny HTTP responder on its own port
//! that answers its side's name (`primary` or `burst`), served by the same HAProxy
//! process (`http-request return`); [`HaproxyOptions::servers`] points them at real
//! workers instead. The runtime API listens on `<tmpdir>/admin.sock` (`level admin`),
//! `<tmpdir>/user.sock` (`level user`, for permission tests) and optionally on TCP; the
//! Prometheus exporter answers on a stats port at `/metrics`.
//!
//! ```no_run
//! use burst_testkit::haproxy::{HaproxyOptions, HaproxyServer};
//! let mut h = HaproxyServer::start(HaproxyOptions::default()).expect("haproxy");
//! println!("{} {}", h.frontend_url(), h.admin_socket().display());
//! h.restart().expect("same ports, counters from zero");
//! ```

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, free_port, loopback, require_binary};

/// How long `start` and `restart` wait for the frontend and the admin socket.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// How to configure the HAProxy under test.
#[derive(Debug, Clone)]
pub struct HaproxyOptions {
    /// The configured weights of `primary` and `burst` (what a restart goes back to).
    pub weights: (u16, u16),
    /// Also open the runtime API on a TCP port (`level admin`).
    pub tcp_runtime_api: bool,
    /// Real servers for `primary` and `burst`; `None` serves the built-in responders.
    pub servers: Option<(SocketAddr, SocketAddr)>,
}

impl Default for HaproxyOptions {
    fn default() -> Self {
        HaproxyOptions {
            weights: (100, 0),
            tcp_runtime_api: false,
            servers: None,
        }
    }
}

/// A `haproxy` child process (foreground, `-db`), killed when dropped.
#[derive(Debug)]
pub struct HaproxyServer {
    binary: PathBuf,
    dir: tempfile::TempDir,
    frontend_port: u16,
    stats_port: u16,
    tcp_api_port: Option<u16>,
    guard: ChildGuard,
}

impl HaproxyServer {
    /// The backend's name.
    pub const BACKEND: &'static str = "app";
    /// The primary server's name.
    pub const PRIMARY: &'static str = "primary";
    /// The burst server's name.
    pub const BURST: &'static str = "burst";

    /// Writes the configuration, starts `haproxy` and waits until its frontend and admin
    /// socket answer. Fails with the install command when HAProxy is not installed.
    pub fn start(options: HaproxyOptions) -> Result<Self, String> {
        let binary = require_binary("haproxy", "haproxy")?;
        let port = || free_port().map_err(|e| format!("no free port: {e}"));
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let frontend_port = port()?;
        let stats_port = port()?;
        let tcp_api_port = if options.tcp_runtime_api {
            Some(port()?)
        } else {
            None
        };
        let servers = match options.servers {
            Some(s) => (s, None),
            None => {
                let (p, b) = (port()?, port()?);
                ((loopback(p), loopback(b)), Some((p, b)))
            }
        };
        let mut cfg = String::new();
        let d = dir.path().display();
        let _ = writeln!(cfg, "global");
        let _ = writeln!(cfg, "    stats socket {d}/admin.sock mode 600 level admin");
        let _ = writeln!(cfg, "    stats socket {d}/user.sock mode 600 level user");
        if let Some(p) = tcp_api_port {
            let _ = writeln!(cfg, "    stats socket ipv4@127.0.0.1:{p} level admin");
        }
        let _ = writeln!(
            cfg,
            "defaults\n    mode http\n    timeout connect 2s\n    timeout client 10s\n    timeout server 10s\n"
        );
        let _ = writeln!(
            cfg,
            "frontend fe\n    bind 127.0.0.1:{frontend_port}\n    default_backend {}\n",
            Self::BACKEND
        );
        let _ = writeln!(
            cfg,
            "backend {}\n    balance roundrobin\n    server {} {} weight {}\n    server {} {} weight {}\n",
            Self::BACKEND,
            Self::PRIMARY,
            servers.0.0,
            options.weights.0,
            Self::BURST,
            servers.0.1,
            options.weights.1
        );
        let _ = writeln!(
            cfg,
            "frontend stats\n    bind 127.0.0.1:{stats_port}\n    http-request use-service prometheus-exporter if {{ path /metrics }}\n"
        );
        if let Some((p, b)) = servers.1 {
            for (name, port) in [(Self::PRIMARY, p), (Self::BURST, b)] {
                let _ = writeln!(
                    cfg,
                    "frontend side_{name}\n    bind 127.0.0.1:{port}\n    http-request return status 200 content-type text/plain string \"{name}\"\n"
                );
            }
        }
        let config = dir.path().join("haproxy.cfg");
        std::fs::write(&config, cfg)
            .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
        let check = Command::new(&binary)
            .args(["-c", "-q", "-f"])
            .arg(&config)
            .output()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        if !check.status.success() {
            return Err(format!(
                "haproxy rejected the generated config: {}",
                String::from_utf8_lossy(&check.stderr)
            ));
        }
        let guard = spawn(&binary, &config)?;
        let server = HaproxyServer {
            binary,
            dir,
            frontend_port,
            stats_port,
            tcp_api_port,
            guard,
        };
        server.wait_ready()?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT/`: the frontend that sends to the backend.
    pub fn frontend_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.frontend_port)
    }

    /// `http://127.0.0.1:PORT/metrics`: HAProxy's Prometheus exporter.
    pub fn metrics_url(&self) -> String {
        format!("http://127.0.0.1:{}/metrics", self.stats_port)
    }

    /// The admin-level runtime API socket.
    pub fn admin_socket(&self) -> PathBuf {
        self.dir.path().join("admin.sock")
    }

    /// The user-level runtime API socket (too low to change weights).
    pub fn user_socket(&self) -> PathBuf {
        self.dir.path().join("user.sock")
    }

    /// `unix:<admin socket>`, the runtime API address form burst takes.
    pub fn runtime_api(&self) -> String {
        format!("unix:{}", self.admin_socket().display())
    }

    /// `tcp:127.0.0.1:PORT` when started with a TCP runtime API.
    pub fn tcp_runtime_api(&self) -> Option<String> {
        self.tcp_api_port.map(|p| format!("tcp:127.0.0.1:{p}"))
    }

    /// The generated configuration file.
    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("haproxy.cfg")
    }

    /// Kills HAProxy (an outage); [`HaproxyServer::restart`] brings it back.
    pub fn stop(&mut self) {
        self.guard.stop();
    }

    /// Starts HAProxy again with the same configuration and ports: weights go back to the
    /// configured ones and every counter starts from 0, as after a restart in production.
    pub fn restart(&mut self) -> Result<(), String> {
        self.guard.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        let config = self.config_path();
        loop {
            self.guard = spawn(&self.binary, &config)?;
            match self.wait_ready() {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    self.guard.stop();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }

    fn wait_ready(&self) -> Result<(), String> {
        let deadline = Instant::now() + READY_TIMEOUT;
        let socket = self.admin_socket();
        loop {
            let front = TcpStream::connect_timeout(
                &loopback(self.frontend_port),
                Duration::from_millis(200),
            );
            let admin = std::os::unix::net::UnixStream::connect(&socket);
            if front.is_ok() && admin.is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(format!(
                    "haproxy did not open port {} and {} within {READY_TIMEOUT:?}",
                    self.frontend_port,
                    socket.display()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn spawn(binary: &Path, config: &Path) -> Result<ChildGuard, String> {
    let child = Command::new(binary)
        .arg("-db")
        .arg("-f")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    Ok(ChildGuard::new(child))
}
