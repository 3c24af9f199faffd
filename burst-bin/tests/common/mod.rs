//! Running the built `burst` binary from the CLI tests.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

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
