//! `burst vs` and `burst httproute` (being built).

use std::process::ExitCode;

/// Arguments of `burst vs`.
#[derive(Debug, clap::Args)]
pub struct VsArgs {}

/// Arguments of `burst httproute`.
#[derive(Debug, clap::Args)]
pub struct HttpRouteArgs {}

/// Runs `burst vs`.
pub async fn run_vs(_args: VsArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`burst vs` is not available in this build yet")
}

/// Runs `burst httproute`.
pub async fn run_httproute(_args: HttpRouteArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("`burst httproute` is not available in this build yet")
}
