//! What the deployable String Hashr binaries share: logging, the runtime, and shutdown on
//! Ctrl-C or SIGTERM.

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;

/// What the command line asked for: these binaries are configured by environment variables
/// only, as in a container, and take no arguments but `--help` and `--version`.
enum Cli {
    Serve,
    Exit(ExitCode),
}

fn command_line(usage: &str) -> Cli {
    let name = env!("CARGO_BIN_NAME");
    match std::env::args().nth(1).as_deref() {
        None => Cli::Serve,
        Some("-h" | "--help") => {
            println!("{usage}");
            Cli::Exit(ExitCode::SUCCESS)
        }
        Some("-V" | "--version") => {
            println!("{name} {}", env!("CARGO_PKG_VERSION"));
            Cli::Exit(ExitCode::SUCCESS)
        }
        Some(other) => {
            eprintln!(
                "error: {name} takes no arguments (got `{other}`); it is configured by \
                 environment variables, see `{name} --help`"
            );
            Cli::Exit(ExitCode::from(2))
        }
    }
}

/// Answers `--help` / `--version` with `usage`, else sets up logging, reads the
/// configuration, and runs `serve` until Ctrl-C or SIGTERM. Configuration errors and
/// arguments exit with 2, runtime errors with 1.
pub fn serve<E, C: Display, R: Display, Fut>(
    usage: &str,
    config: impl FnOnce() -> Result<E, C>,
    serve: impl FnOnce(E, std::pin::Pin<Box<dyn Future<Output = ()> + Send>>) -> Fut,
) -> ExitCode
where
    Fut: Future<Output = Result<(), R>>,
{
    if let Cli::Exit(code) = command_line(usage) {
        return code;
    }
    burst_main::init_logging_from_env("info");
    let config = match config() {
        Ok(c) => c,
        Err(e) => return burst_main::fail("error", burst_main::Exit::Usage, &e),
    };
    match burst_main::block_on(async {
        serve(config, Box::pin(burst_main::shutdown_signal())).await
    }) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
    }
}
