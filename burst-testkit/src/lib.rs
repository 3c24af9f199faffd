//! Test support for burst.
//!
//! Real servers from Debian's packages, and a real Kubernetes control plane built from its
//! Go modules ([`kube`]), are started as child processes on free loopback ports and stopped
//! when their guard is dropped. A missing server binary is an error that
//! names the package to install, never a silently skipped test.

pub mod haproxy;
pub mod kube;
pub mod prometheus;
pub mod redis;
pub mod schema;
pub mod serve;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Child;

/// A free TCP port on 127.0.0.1 for a server a test starts itself.
///
/// Ports come from below the kernel's ephemeral range (`ip_local_port_range`), so the
/// outgoing connections other tests open can never take a port between this call and the
/// server's bind. No port is handed out twice in one process, and each process starts at an
/// offset of its own so parallel test binaries rarely probe the same ports. Every candidate is
/// bound once before it is returned, so it was free a moment ago.
pub fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

    let (low, high) = candidate_range(ephemeral_range());
    let span = u32::from(high - low) + 1;
    let offset = std::process::id().wrapping_mul(2_654_435_761) % span;
    for _ in 0..span {
        let step = NEXT.fetch_add(1, Ordering::Relaxed);
        // `span` is at most 65_536 and the sum is reduced modulo it, so the result fits.
        let port = low + u16::try_from((offset + step) % span).unwrap_or(0);
        let mut given = GIVEN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if given.contains(&port) {
            continue;
        }
        if TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
            given.push(port);
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("no free loopback port between {low} and {high}"),
    ))
}

/// The kernel's ephemeral port range, or Linux's default when it cannot be read.
fn ephemeral_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(str::parse::<u16>);
            match (it.next(), it.next()) {
                (Some(Ok(a)), Some(Ok(b))) if a <= b => Some((a, b)),
                _ => None,
            }
        })
        .unwrap_or((32_768, 60_999))
}

/// Ports outside `ephemeral`: below it when there is room (from 10000), else above it.
fn candidate_range((eph_low, eph_high): (u16, u16)) -> (u16, u16) {
    if eph_low > 12_000 {
        (10_000, eph_low - 1)
    } else if eph_high < 63_000 {
        (eph_high + 1, u16::MAX)
    } else {
        (1_024, u16::MAX)
    }
}

/// A binary of this workspace built next to the running test's executable
/// (`target/<profile>/<name>`, the test being `target/<profile>/deps/<test>-<hash>`), or an
/// error with the command that builds it (`cargo test --workspace` builds every binary).
pub fn workspace_binary(name: &str, package: &str) -> Result<std::path::PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find this test's path: {e}"))?;
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join(name))
        .ok_or("this test does not run from a cargo target directory")?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build -p {package} --bin {name}` (cargo test --workspace does)",
            bin.display()
        ))
    }
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

/// What a bounded run of a command printed, and whether it succeeded.
#[derive(Debug)]
pub struct Finished {
    /// Whether the process exited with status 0.
    pub success: bool,
    /// Everything written to stdout.
    pub stdout: String,
    /// Everything written to stderr.
    pub stderr: String,
}

/// Sends SIGINT (Ctrl-C) to `child` and waits, bounded by `limit`, for it to exit; kills it
/// and returns an error when it does not stop in time.
pub fn interrupt(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, String> {
    send_signal(child, "INT", limit)
}

/// Sends SIGTERM (what Kubernetes and systemd send) to `child` and waits, bounded by
/// `limit`, for it to exit; kills it and returns an error when it does not stop in time.
pub fn terminate(
    child: &mut std::process::Child,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, String> {
    send_signal(child, "TERM", limit)
}

fn send_signal(
    child: &mut std::process::Child,
    signal: &str,
    limit: std::time::Duration,
) -> Result<std::process::ExitStatus, String> {
    // `kill` from procps: the workspace has no signal-sending dependency, and this is tests only.
    let _ = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &child.id().to_string()])
        .status();
    let deadline = std::time::Instant::now() + limit;
    loop {
        if let Some(s) = child.try_wait().map_err(|e| e.to_string())? {
            return Ok(s);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "process {} did not stop within {limit:?} of SIG{signal}",
                child.id()
            ));
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// Runs `command` (stdin closed, output captured in files so nothing blocks), killing it if
/// it has not finished within `limit`. A timeout is an error carrying what it printed.
pub fn run_bounded(
    mut command: std::process::Command,
    limit: std::time::Duration,
) -> Result<Finished, String> {
    use std::process::Stdio;
    let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let file = |p: &Path| std::fs::File::create(p).map_err(|e| format!("{}: {e}", p.display()));
    let child = command
        .stdin(Stdio::null())
        .stdout(file(&out)?)
        .stderr(file(&err)?)
        .spawn()
        .map_err(|e| format!("cannot start {command:?}: {e}"))?;
    let mut guard = ChildGuard::new(child);
    let deadline = std::time::Instant::now() + limit;
    let status = loop {
        let Some(child) = guard.child.as_mut() else {
            break None;
        };
        match child.try_wait().map_err(|e| e.to_string())? {
            Some(s) => break Some(s),
            None if std::time::Instant::now() > deadline => break None,
            None => std::thread::sleep(std::time::Duration::from_millis(100)),
        }
    };
    guard.stop();
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (stdout, stderr) = (read(&out), read(&err));
    match status {
        Some(s) => Ok(Finished {
            success: s.success(),
            stdout,
            stderr,
        }),
        None => Err(format!(
            "{command:?} did not finish within {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_runs_capture_output_and_stop_hung_processes() {
        let mut echo = std::process::Command::new("sh");
        echo.args(["-c", "echo out; echo err >&2"]);
        let f = run_bounded(echo, std::time::Duration::from_secs(10)).unwrap();
        assert!(f.success);
        assert_eq!((f.stdout.as_str(), f.stderr.as_str()), ("out\n", "err\n"));
        let mut hang = std::process::Command::new("sleep");
        hang.arg("30");
        let e = run_bounded(hang, std::time::Duration::from_millis(300)).unwrap_err();
        assert!(e.contains("did not finish"), "{e}");
    }

    #[test]
    fn free_ports_are_bindable_distinct_and_outside_the_ephemeral_range() {
        let (eph_low, eph_high) = ephemeral_range();
        let mut seen = std::collections::HashSet::new();
        for _ in 0..50 {
            let p = free_port().unwrap();
            assert!(!(eph_low..=eph_high).contains(&p), "{p} is ephemeral");
            assert!(seen.insert(p), "{p} handed out twice");
            // Free a moment ago: bindable now, unless another process on the machine (a
            // server of a test running beside this one) has taken it since, in which case
            // something listens there now.
            let taken_since = || std::net::TcpStream::connect(loopback(p)).is_ok();
            assert!(
                TcpListener::bind(loopback(p)).is_ok() || taken_since(),
                "{p} is neither bindable nor taken by a listener"
            );
        }
    }

    #[test]
    fn candidate_ranges_avoid_the_ephemeral_range() {
        assert_eq!(candidate_range((32_768, 60_999)), (10_000, 32_767));
        assert_eq!(candidate_range((1_024, 40_000)), (40_001, u16::MAX));
        assert_eq!(candidate_range((1_024, 65_535)), (1_024, u16::MAX));
    }

    #[test]
    fn missing_binary_names_the_package() {
        let e = require_binary("no-such-server-xyz", "no-such-pkg").unwrap_err();
        assert!(e.contains("apt-get install -y --no-install-recommends no-such-pkg"));
    }
}
