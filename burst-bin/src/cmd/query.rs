//! `burst query` (being built).

use std::process::ExitCode;

/// Arguments of `burst query`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `burst query`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`burst query` is not available in this build yet")
}
