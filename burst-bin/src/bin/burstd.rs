//! burstd: the in-cluster controller of burst.
//!
//! `burstd operator` watches BurstPolicy objects; `burstd run` runs one policy from flags,
//! `BURST_*` variables or a config file; `burstd crd` prints the CRD. Every flag can be set
//! with the environment variable shown in `--help`. The flags live in
//! `burst_operator::cli`, each mode behind one call (`operator::run`, `single::run`,
//! `haproxy::run`); this
//! file parses, sets up logging and the runtime (`burst_main`), dispatches, and maps the
//! outcome to an exit code.

use std::io::Write;
use std::process::ExitCode;

use burst_operator::cli::{Cli, Command, LogArgs, LogFormat};
use burst_operator::process::kube_client;
use burst_operator::{Error, api, haproxy, operator, single};
use clap::Parser;

/// Runs the command until it is done (`crd`) or until SIGTERM or Ctrl-C.
async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Crd => {
            let yaml = api::crd_yaml()?;
            let mut out = std::io::stdout().lock();
            match out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
                Err(source) if source.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::Stdout { source })
                }
                _ => Ok(()),
            }
        }
        Command::Operator(a) => {
            let options = a.common.options()?;
            let shutdown = burst_main::shutdown_signal();
            let clients = kube_client(options.api).await?;
            operator::run(clients, options, a.settings(), shutdown).await
        }
        Command::Run(a) => {
            if let Some(haproxy) = a.haproxy()? {
                let policy = haproxy::load(a.config.as_deref(), &a.overrides(), haproxy)?;
                tracing::info!(name = %policy.name, backend = %policy.haproxy.backend, "single-policy mode on HAProxy, without Kubernetes");
                let base = burst_core::ControllerConfig {
                    router_timeout: a.common.request_timeout,
                    ..burst_core::ControllerConfig::default()
                };
                let shutdown = burst_main::shutdown_signal();
                return haproxy::run(a.common.listen, base, policy, shutdown).await;
            }
            let options = a.common.options()?;
            let policy = single::load(a.config.as_deref(), &a.overrides())?;
            tracing::info!(namespace = %policy.namespace, name = %policy.name, target = %policy.spec.target.describe(&policy.namespace), "single-policy mode");
            let shutdown = burst_main::shutdown_signal();
            let clients = kube_client(options.api).await?;
            single::run(clients, options, policy, shutdown).await
        }
    }
}

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
    match burst_main::block_on(run(cli)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => {
            let e = anyhow::Error::from(e);
            tracing::error!(error = format!("{e:#}"), "burstd failed");
            burst_main::fail("burstd", burst_main::Exit::Runtime, &e)
        }
        Err(e) => burst_main::fail("burstd", burst_main::Exit::Runtime, &e),
    }
}
