//! Running the built `burst` binary from the CLI tests.
#![allow(dead_code)]

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `burst ARGS` with `stdin` written to its standard input (closed at once when
/// `None`); returns the exit code (-1 when killed by a signal), stdout and stderr.
pub fn burst_with_stdin(args: &[&str], stdin: Option<&str>) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burst"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("burst starts");
    let mut input = child.stdin.take().expect("stdin is piped");
    if let Some(s) = stdin {
        input
            .write_all(s.as_bytes())
            .expect("burst reads its stdin");
    }
    drop(input);
    let out = child.wait_with_output().expect("burst runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `burst ARGS` with an empty standard input.
pub fn burst(args: &[&str]) -> (i32, String, String) {
    burst_with_stdin(args, None)
}

/// Runs `burst ARGS` (stdin closed, `RUST_LOG=warn`, output captured in files so nothing
/// blocks), killing it and panicking with what it printed if it has not finished within
/// `limit`; returns the exit code (-1 when killed by a signal), stdout and stderr.
pub fn burst_bounded(args: &[&str], limit: Duration) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (out, err) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_burst"))
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).expect("a file for stdout"))
        .stderr(std::fs::File::create(&err).expect("a file for stderr"))
        .spawn()
        .expect("burst starts");
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(s) = child.try_wait().expect("burst's status") {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
    let (stdout, stderr) = (read(&out), read(&err));
    let status = status.unwrap_or_else(|| {
        panic!(
            "burst {args:?} did not finish within {limit:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
        )
    });
    (status.code().unwrap_or(-1), stdout, stderr)
}

/// Runs `burst demo --headless --json --port 0` with `policy` (YAML, written to a temporary
/// file) and `scenario`, bounded by `limit`; asserts that it succeeded and returns its JSON
/// report.
pub fn headless_report(policy: &str, scenario: &str, limit: Duration) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("policy.yaml");
    std::fs::write(&file, policy).expect("policy file written");
    let file = file.to_str().expect("UTF-8 path");
    let args = [
        "demo",
        "--headless",
        "--json",
        "--port",
        "0",
        "--policy",
        file,
        "--scenario",
        scenario,
    ];
    let (code, stdout, stderr) = burst_bounded(&args, limit);
    assert_eq!(code, 0, "burst demo failed\nstderr:\n{stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

/// Starts `burst demo ARGS --ready-file READY` (quiet, stdin closed) and waits, at most
/// 30 s, for the ready file; panics (killing the demo) when it does not appear or the demo
/// exits first.
pub fn start_demo_until_ready(args: &[&str], ready: &Path) -> std::process::Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_burst"))
        .args(args)
        .arg("--ready-file")
        .arg(ready)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("burst demo starts");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !ready.exists() {
        let exited = child.try_wait().ok().flatten().is_some();
        if Instant::now() > deadline || exited {
            let _ = child.kill();
            panic!("no ready file within 30 s (or the demo exited)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Asserts that a `burst demo --scenario` run moved traffic to the burst worker while the
/// load was high (at `rise` s or later, before `fall` s) and came back after it fell (at
/// `fall` s or later, before `end` s).
pub fn assert_followed_the_load(first_burst: f64, back: f64, rise: f64, fall: f64, end: f64) {
    assert!(
        (rise..fall).contains(&first_burst),
        "moved at {first_burst}s, load rose at {rise}s"
    );
    assert!(
        (fall..end).contains(&back),
        "came back at {back}s, load fell at {fall}s"
    );
}

/// Checks that a report's changes went through the warm-up ramp (a `warming` reason) and
/// that the first change moving traffic to burst was the ramp's first step, 10 %.
/// Returns that change's time and every change's reason.
pub fn assert_ramp_started_at_10(report: &serde_json::Value) -> (f64, Vec<String>) {
    let changes = report["changes"].as_array().expect("a changes list");
    let reasons: Vec<String> = changes
        .iter()
        .map(|c| c["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("warming")),
        "no ramp step in the changes: {reasons:#?}"
    );
    let first_up = changes
        .iter()
        .find(|c| c["burst_weight"].as_u64().unwrap_or(0) > 0)
        .expect("traffic never moved to burst");
    assert_eq!(first_up["burst_weight"], 10, "{first_up}");
    (first_up["t"].as_f64().expect("a change time"), reasons)
}
