//! `burst render` (being built).

use std::process::ExitCode;

/// Arguments of `burst render`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `burst render`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`burst render` is not available in this build yet")
}
