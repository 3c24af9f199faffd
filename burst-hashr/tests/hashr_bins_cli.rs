//! The deployable String Hashr binaries answer `--help` and `--version` without starting a
//! server, and refuse other arguments (they are configured by environment variables only).
//! Every run is bounded: a binary that starts serving instead fails the test.

#![allow(clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use burst_testkit::run_bounded;

fn run(bin: &str, args: &[&str]) -> burst_testkit::Finished {
    let mut cmd = Command::new(bin);
    cmd.args(args)
        // A port nobody uses, in case a regression makes it serve.
        .env("PORT", burst_testkit::free_port().unwrap().to_string())
        .env_remove("REDIS_URL");
    run_bounded(cmd, Duration::from_secs(20)).unwrap_or_else(|e| panic!("{bin} {args:?}: {e}"))
}

const BINS: [(&str, &[&str]); 2] = [
    (
        env!("CARGO_BIN_EXE_hashr-worker"),
        &[
            "PORT",
            "REDIS_URL",
            "PREFIX",
            "BODY_LIMIT_BYTES",
            "TZ",
            "RUST_LOG",
        ],
    ),
    (
        env!("CARGO_BIN_EXE_hashr-frontend"),
        &[
            "PORT",
            "PROCESSOR_URL",
            "REDIS_URL",
            "MAX_FREQUENCY",
            "CONCURRENCY",
            "RUST_LOG",
        ],
    ),
];

#[test]
fn help_lists_every_environment_variable() {
    for (bin, vars) in BINS {
        for flag in ["--help", "-h"] {
            let out = run(bin, &[flag]);
            assert!(out.success, "{bin} {flag}: {}", out.stderr);
            for var in vars {
                assert!(
                    out.stdout.contains(var),
                    "{bin} --help lacks {var}:\n{}",
                    out.stdout
                );
            }
        }
    }
}

#[test]
fn version_prints_the_package_version() {
    for (bin, _) in BINS {
        let out = run(bin, &["--version"]);
        assert!(out.success);
        assert!(
            out.stdout.trim().ends_with(env!("CARGO_PKG_VERSION")),
            "{}",
            out.stdout
        );
    }
}

#[test]
fn other_arguments_are_refused_with_a_pointer_to_help() {
    for (bin, _) in BINS {
        let out = run(bin, &["--port", "9000"]);
        assert!(!out.success);
        assert!(
            out.stderr.contains("takes no arguments (got `--port`)")
                && out.stderr.contains("--help"),
            "{}",
            out.stderr
        );
    }
}
