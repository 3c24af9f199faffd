//! `burst`: simulate policies, query metrics, edit route weights, render manifests and run
//! the whole demo on one machine.
//!
//! Every subcommand lives in its own module under `cmd/`; `main` only parses arguments,
//! sets up logging and dispatches.

mod cmd;
mod plot;
mod report;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Cloud bursting for Kubernetes: move HTTP traffic between a primary and a burst cluster
/// when load crosses a threshold.
#[derive(Debug, Parser)]
#[command(name = "burst", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a policy against a load trace on a virtual clock and print what it would do.
    Simulate(Box<cmd::simulate::Args>),
    /// Evaluate a metric source once (Prometheus query, direct scrape or a Service's pods)
    /// and print the value.
    Query(Box<cmd::query::Args>),
    /// Read or change the primary/burst weights of an Istio VirtualService file.
    #[command(name = "vs")]
    VirtualService(cmd::vs::VsArgs),
    /// Read or change the backend weights of a Gateway API HTTPRoute file.
    #[command(name = "httproute")]
    HttpRoute(cmd::vs::HttpRouteArgs),
    /// Read or change the primary/burst server weights of an HAProxy backend (runtime API).
    Haproxy(cmd::haproxy::Args),
    /// Print the Istio objects (VirtualService + DestinationRule) for a split.
    Render(cmd::render::Args),
    /// Run String Hashr, a local mesh proxy and the controller on this machine.
    Demo(cmd::demo::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Logs go to stderr; `RUST_LOG` sets the level (default `warn`).
    burst_main::init_logging_from_env("warn");
    let result = burst_main::block_on(async {
        match cli.command {
            Command::Simulate(a) => cmd::simulate::run(*a).await,
            Command::Query(a) => cmd::query::run(*a).await,
            Command::VirtualService(a) => cmd::vs::run_vs(a).await,
            Command::HttpRoute(a) => cmd::vs::run_httproute(a).await,
            Command::Haproxy(a) => cmd::haproxy::run(a).await,
            Command::Render(a) => cmd::render::run(a).await,
            Command::Demo(a) => cmd::demo::run(a).await,
        }
    });
    // Every error of `burst` is reported as a usage error (2), as it always was.
    match result {
        Ok(Ok(code)) => code,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Usage, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
    }
}
