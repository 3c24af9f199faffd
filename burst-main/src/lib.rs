//! What every burst binary's `main` does, once: set up logging, build the tokio runtime,
//! wait for SIGTERM or Ctrl-C, and turn the outcome into an exit code.
//!
//! A binary's `main` stays a few lines long:
//!
//! ```no_run
//! use std::process::ExitCode;
//!
//! fn main() -> ExitCode {
//!     burst_main::init_logging_from_env("info");
//!     let outcome = burst_main::block_on(async {
//!         // serve until SIGTERM or Ctrl-C
//!         burst_main::shutdown_signal().await;
//!         Ok::<(), String>(())
//!     });
//!     match outcome {
//!         Ok(Ok(())) => ExitCode::SUCCESS,
//!         Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
//!         Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
//!     }
//! }
//! ```
//!
//! Exit codes are the same in every binary: 0 for success, [`Exit::Runtime`] (1) when the
//! work failed, [`Exit::Usage`] (2) when the arguments, the environment or the
//! configuration were wrong. No feature flags.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// Format of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, the event's fields flattened into it.
    Json,
}

/// Why logging could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The filter is neither a level nor a list of directives.
    #[error("`{filter}` is not a level or filter (e.g. info, debug, info,burst_operator=debug)")]
    Filter {
        /// The filter as given.
        filter: String,
        /// What the parser said.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber was already set.
    #[error("cannot set up logging: {0}")]
    Init(String),
}

/// How a failed binary exits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// The work failed (exit code 1).
    Runtime,
    /// The arguments, the environment or the configuration were wrong (exit code 2).
    Usage,
}

impl Exit {
    /// The process exit code: 1 or 2.
    pub fn code(self) -> u8 {
        match self {
            Exit::Runtime => 1,
            Exit::Usage => 2,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e.code())
    }
}

/// Sends log lines in `format` to stderr, filtered by `filter` (a level such as `info`, or
/// directives such as `info,burst_operator=debug`).
pub fn init_logging(filter: &str, format: LogFormat) -> Result<(), LogError> {
    let env_filter =
        tracing_subscriber::EnvFilter::try_new(filter).map_err(|source| LogError::Filter {
            filter: filter.to_owned(),
            source,
        })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(env_filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| LogError::Init(e.to_string()))
}

/// Text log lines on stderr, filtered by `RUST_LOG`, else by `default_filter`. A `RUST_LOG`
/// that does not parse falls back to `default_filter` too, so logging never stops a binary.
pub fn init_logging_from_env(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    // A second call (tests) keeps the first subscriber.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Builds the multi-threaded tokio runtime (all drivers on) and runs `future` to its end.
/// The error is the runtime's: the future did not run.
pub fn block_on<F: Future>(future: F) -> Result<F::Output, RuntimeError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(RuntimeError)?;
    Ok(runtime.block_on(future))
}

/// The tokio runtime could not be built (no threads, no file descriptors left).
#[derive(Debug, thiserror::Error)]
#[error("cannot start the async runtime: {0}")]
pub struct RuntimeError(#[source] std::io::Error);

/// Resolves on the first SIGTERM or Ctrl-C (SIGINT), logging which one. Where SIGTERM
/// cannot be listened for (or off Unix) only Ctrl-C counts.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Prints `{prefix}: {error}` on stderr and returns `exit`'s code. `{error:#}` is used, so
/// an `anyhow` chain prints every cause.
pub fn fail(prefix: &str, exit: Exit, error: &dyn Display) -> ExitCode {
    eprintln!("{prefix}: {error:#}");
    exit.into()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn exit_codes_are_one_for_runtime_and_two_for_usage() {
        assert_eq!(Exit::Runtime.code(), 1);
        assert_eq!(Exit::Usage.code(), 2);
        assert_eq!(ExitCode::from(Exit::Usage), ExitCode::from(2));
    }

    #[test]
    fn a_bad_filter_names_itself_and_examples() {
        let e = init_logging("info,=[", LogFormat::Text).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("`info,=[`"), "{text}");
        assert!(text.contains("e.g. info"), "{text}");
    }

    #[test]
    fn block_on_runs_the_future_on_a_multi_thread_runtime() {
        let flavor = block_on(async { tokio::runtime::Handle::current().runtime_flavor() });
        assert_eq!(flavor.unwrap(), tokio::runtime::RuntimeFlavor::MultiThread);
    }

    #[cfg(unix)]
    #[test]
    fn sigterm_resolves_the_shutdown_signal() {
        use tokio::signal::unix::{SignalKind, signal};
        let resolved = block_on(async {
            // With a listener installed, SIGTERM no longer ends this test process.
            let _guard = signal(SignalKind::terminate()).unwrap();
            let waiting = tokio::spawn(shutdown_signal());
            // The task installs its own listener when first polled: send until it resolves.
            for _ in 0..200 {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &std::process::id().to_string()])
                    .status();
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                if waiting.is_finished() {
                    return true;
                }
            }
            false
        });
        assert!(resolved.unwrap());
    }
}
