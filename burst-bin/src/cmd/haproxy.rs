//! `burst haproxy`: read or change the primary/burst server weights of an HAProxy backend
//! over its runtime API (`stats socket`), without a reload.
//!
//! Several `--runtime-api` addresses (HAProxy instances sharing the backend) are read or
//! written together; a failure on any of them is an error (exit code 2) naming each one.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use burst_core::{Split, TrafficRouter, Weight};
use burst_haproxy::{
    HaproxyRouter, HaproxyTarget, MultiInstanceRouter, RuntimeAddr, RuntimeClient,
};
use clap::{Subcommand, ValueEnum};
use serde_json::json;

use super::print_stdout;

/// Arguments of `burst haproxy`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: HaproxyCommand,
}

#[derive(Debug, Subcommand)]
enum HaproxyCommand {
    /// Print the split the two servers' weights give.
    GetWeights {
        #[command(flatten)]
        select: Select,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Set the two servers' weights to a split (burst weight N%, primary 100-N), then read
    /// them back.
    SetWeights {
        #[command(flatten)]
        select: Select,
        /// Percentage of traffic for the burst server (0-100); the primary server gets the rest.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
        burst_weight: u8,
    },
}

#[derive(Debug, clap::Args)]
struct Select {
    /// HAProxy runtime API: `unix:PATH` or `tcp:HOST:PORT` (a `stats socket ... level admin`);
    /// repeat for several instances.
    #[arg(long = "runtime-api", value_name = "ADDR", required = true)]
    runtime_api: Vec<RuntimeAddr>,
    /// The backend holding both servers.
    #[arg(long, value_name = "NAME")]
    backend: String,
    /// The server that receives the primary share.
    #[arg(long, value_name = "NAME")]
    primary_server: String,
    /// The server that receives the burst share.
    #[arg(long, value_name = "NAME")]
    burst_server: String,
    /// Deadline of each runtime API exchange (connect, send, read).
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Output {
    /// `primary=80 burst=20`
    Text,
    /// `{"primary":80,"burst":20}`
    Json,
}

/// Runs `burst haproxy`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        HaproxyCommand::GetWeights { select, output } => {
            let router = select.router()?;
            let split = router.current().await.map_err(anyhow::Error::new)?;
            print_stdout(&format_split(split, output))?;
        }
        HaproxyCommand::SetWeights {
            select,
            burst_weight,
        } => {
            let router = select.router()?;
            let weight = Weight::try_new(i64::from(burst_weight))?;
            let split = Split::from_burst(weight);
            router.apply(split).await.map_err(anyhow::Error::new)?;
            let now = router.current().await.map_err(anyhow::Error::new)?;
            print_stdout(&format_split(now, Output::Text))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl Select {
    fn router(&self) -> anyhow::Result<Box<dyn TrafficRouter>> {
        let target = HaproxyTarget::new(&self.backend, &self.primary_server, &self.burst_server)?;
        let clients = self
            .runtime_api
            .iter()
            .map(|a| RuntimeClient::new(a.clone()).with_timeout(self.timeout))
            .collect::<Result<Vec<_>, _>>()
            .context("--timeout")?;
        Ok(match clients.as_slice() {
            [one] => Box::new(HaproxyRouter::new(one.clone(), target)),
            _ => Box::new(MultiInstanceRouter::over(clients, &target)?),
        })
    }
}

fn format_split(split: Split, output: Output) -> String {
    match output {
        Output::Text => format!("primary={} burst={}\n", split.primary(), split.burst()),
        Output::Json => format!(
            "{}\n",
            json!({"primary": split.primary().get(), "burst": split.burst().get()})
        ),
    }
}
