//! Test support for burst.
//!
//! Real servers from Debian's packages are started as child processes on free loopback
//! ports and stopped when their guard is dropped. A missing server binary is an error that
//! names the package to install, never a silently skipped test.

pub mod prometheus;
pub mod redis;
pub mod schema;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Child;

/// A free TCP port on 127.0.0.1 (bound once and released, so a race is possible but rare).
pub fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}

/// `127.0.0.1:port`.
pub fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

/// Finds `binary` under /usr/bin, /usr/sbin or /usr/local/bin, or fails with the install
/// command for `package`.
pub fn require_binary(binary: &str, package: &str) -> Result<std::path::PathBuf, String> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let p = Path::new(dir).join(binary);
        if p.is_file() {
            return Ok(p);
        }
    }
    Err(format!(
        "`{binary}` is not installed; this test needs the real server. Install it with: \
         apt-get update && apt-get install -y --no-install-recommends {package}"
    ))
}

/// Kills and reaps a child process when dropped.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    /// Guards `child`.
    pub fn new(child: Child) -> Self {
        ChildGuard { child: Some(child) }
    }

    /// The process id.
    pub fn id(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the process now and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable() {
        let p = free_port().unwrap();
        assert!(TcpListener::bind(loopback(p)).is_ok());
    }

    #[test]
    fn missing_binary_names_the_package() {
        let e = require_binary("no-such-server-xyz", "no-such-pkg").unwrap_err();
        assert!(e.contains("apt-get install -y --no-install-recommends no-such-pkg"));
    }
}
