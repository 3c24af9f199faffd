//! burstd: the in-cluster controller of burst.
//!
//! `burstd operator` watches BurstPolicy objects; `burstd run` runs one policy from flags,
//! `BURST_*` variables or a config file; `burstd crd` prints the CRD. Every flag can be set
//! with the environment variable shown in `--help`. The flags live in
//! `burst_operator::cli`, the modes behind `burst_operator::app::run`; this file parses,
//! sets up logging and the runtime (`burst_main`), and maps the outcome to an exit code.

use std::process::ExitCode;

use burst_operator::app;
use burst_operator::cli::{Cli, LogArgs, LogFormat};
use clap::Parser;

fn init_tracing(log: &LogArgs) -> anyhow::Result<()> {
    let format = match log.log_format {
        LogFormat::Json => burst_main::LogFormat::Json,
        LogFormat::Text => burst_main::LogFormat::Text,
    };
    burst_main::init_logging(&log.log_level, format).map_err(|e| match e {
        burst_main::LogError::Filter { ref source, .. } => {
            anyhow::anyhow!("--log-level / BURST_LOG {e}: {source}")
        }
        e => e.into(),
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_tracing(&cli.log) {
        return burst_main::fail("burstd", burst_main::Exit::Usage, &e);
    }
    match burst_main::block_on(app::run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let e = anyhow::Error::from(e);
            tracing::error!(error = format!("{e:#}"), "burstd failed");
            burst_main::fail("burstd", burst_main::Exit::Runtime, &e)
        }
        Err(e) => burst_main::fail("burstd", burst_main::Exit::Runtime, &e),
    }
}
