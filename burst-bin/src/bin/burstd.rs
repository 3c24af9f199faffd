//! burstd: the in-cluster controller of burst.
//!
//! `burstd operator` watches BurstPolicy objects; `burstd run` runs one policy from flags,
//! `BURST_*` variables or a config file; `burstd crd` prints the CRD. Every flag can be set
//! with the environment variable shown in `--help`. The flags live in
//! `burst_operator::cli`, the modes behind `burst_operator::app::run`; this file parses,
//! sets up logging and the runtime, and maps the outcome to an exit code.

use std::process::ExitCode;

use anyhow::Context;
use burst_operator::app;
use burst_operator::cli::{Cli, LogArgs, LogFormat};
use clap::Parser;

fn init_tracing(log: &LogArgs) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.log_level).with_context(|| {
        format!(
            "--log-level / BURST_LOG `{}` is not a level or filter (e.g. info, debug, info,burst_operator=debug)",
            log.log_level
        )
    })?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match log.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = init_tracing(&cli.log) {
        eprintln!("burstd: {e:#}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("burstd: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(app::run(cli)).map_err(anyhow::Error::from) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "burstd failed");
            eprintln!("burstd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
