//! A real `redis-server` on a free loopback port, for wire-compatibility tests.
//!
//! ```no_run
//! let mut redis = burst_testkit::redis::RedisServer::start().expect("redis-server");
//! println!("{}", redis.url()); // redis://127.0.0.1:PORT/
//! redis.stop();                 // simulate an outage
//! redis.restart().expect("back on the same port");
//! ```

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{ChildGuard, free_port, loopback, require_binary};

/// How long `start` and `restart` wait for `PING` to be answered.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` child process (no persistence), killed when dropped.
#[derive(Debug)]
pub struct RedisServer {
    binary: PathBuf,
    port: u16,
    dir: tempfile::TempDir,
    guard: ChildGuard,
}

impl RedisServer {
    /// Starts `redis-server` on a free port and waits until it answers `PING`.
    /// Fails with the install command when Redis is not installed.
    pub fn start() -> Result<Self, String> {
        let binary = require_binary("redis-server", "redis-server")?;
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let dir = tempfile::tempdir().map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let guard = spawn(&binary, port, &dir)?;
        let server = RedisServer {
            binary,
            port,
            dir,
            guard,
        };
        wait_ready(port)?;
        Ok(server)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as the original `REDIS_URL` took it.
    pub fn addr(&self) -> String {
        loopback(self.port).to_string()
    }

    /// `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server (an outage); [`RedisServer::restart`] brings it back.
    pub fn stop(&mut self) {
        self.guard.stop();
    }

    /// Starts the server again on the same port (stopping it first if it runs).
    pub fn restart(&mut self) -> Result<(), String> {
        self.guard.stop();
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.guard = spawn(&self.binary, self.port, &self.dir)?;
            match wait_ready(self.port) {
                Ok(()) => return Ok(()),
                // The old socket may linger for a moment; try again within the deadline.
                Err(e) if Instant::now() >= deadline => return Err(e),
                Err(_) => {
                    self.guard.stop();
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

fn spawn(binary: &PathBuf, port: u16, dir: &tempfile::TempDir) -> Result<ChildGuard, String> {
    let child = Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", binary.display()))?;
    Ok(ChildGuard::new(child))
}

/// Sends `PING` until `+PONG` comes back, for at most [`READY_TIMEOUT`].
fn wait_ready(port: u16) -> Result<(), String> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut last = String::new();
    while Instant::now() < deadline {
        match ping(port) {
            Ok(()) => return Ok(()),
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!(
        "redis-server on port {port} did not answer PING within {READY_TIMEOUT:?}: {last}"
    ))
}

fn ping(port: u16) -> Result<(), String> {
    let mut s = TcpStream::connect_timeout(&loopback(port), Duration::from_millis(200))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .map_err(|e| e.to_string())?;
    s.write_all(b"PING\r\n").map_err(|e| e.to_string())?;
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).map_err(|e| e.to_string())?;
    if &buf == b"+PONG\r\n" {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer {:?}",
            String::from_utf8_lossy(&buf)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_stops_and_restarts_on_the_same_port() {
        let mut r = RedisServer::start().unwrap();
        assert!(ping(r.port()).is_ok());
        r.stop();
        assert!(ping(r.port()).is_err());
        r.restart().unwrap();
        assert!(ping(r.port()).is_ok());
        assert_eq!(r.url(), format!("redis://127.0.0.1:{}/", r.port()));
    }
}
