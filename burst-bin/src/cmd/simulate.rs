//! `burst simulate` (being built).

use std::process::ExitCode;

/// Arguments of `burst simulate`.
#[derive(Debug, clap::Args)]
pub struct Args {}

/// Runs `burst simulate`.
pub async fn run(_args: Args) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`burst simulate` is not available in this build yet")
}
