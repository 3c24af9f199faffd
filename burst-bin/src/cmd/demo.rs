//! `burst demo` (being built).

use std::process::ExitCode;

/// Arguments of `burst demo`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `burst demo`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`burst demo` is not available in this build yet")
}
