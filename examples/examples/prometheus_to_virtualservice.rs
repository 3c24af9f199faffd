//! The production wiring in a few lines: a [`PrometheusSource`] measuring demand, the seed
//! policy, and a [`VirtualServiceRouter`] moving the weights of an Istio VirtualService.
//!
//! It needs a real Prometheus and a real cluster. The kubeconfig comes from `KUBECONFIG`
//! (or `~/.kube/config`, or the in-cluster service account), the VirtualService must have
//! one HTTP route with two destinations, subsets `primary` and `burst`. Every setting is an
//! argument or an environment variable:
//!
//! ```text
//! PROMETHEUS_URL=http://localhost:9090 NAMESPACE=default VIRTUAL_SERVICE=worker-virtual-service \
//!   cargo run -p burst-examples --example prometheus_to_virtualservice -- --ticks 60
//! ```
//!
//! The default query is the seed's (`istio_requests_total` at the source, for
//! `worker-service.default` called by `frontend-deployment`, over 15 s); pass `--query`
//! for your own. It runs `--ticks` ticks (every `--tick`), or until Ctrl-C without it.
//! `RUST_LOG=info` (the default) logs every change; `RUST_LOG=debug` logs much more.

use std::sync::Arc;
use std::time::Duration;

use burst_core::policy::PolicySpec;
use burst_core::{Controller, ControllerConfig, TickReport};
use burst_istio::{RouterOptions, VirtualServiceRouter, VsTarget};
use burst_prom::{PrometheusConfig, PrometheusSource};
use clap::Parser;
use tokio::sync::Notify;

/// Moves an Istio VirtualService's weights from a Prometheus query.
#[derive(Debug, Parser)]
struct Args {
    /// Prometheus (or Thanos, Mimir) base URL.
    #[arg(long, env = "PROMETHEUS_URL", default_value = "http://localhost:9090")]
    prometheus_url: String,
    /// PromQL giving the demand in requests per second; `{{window}}` is filled in.
    #[arg(long, env = "QUERY")]
    query: Option<String>,
    /// Namespace of the VirtualService (default: the kubeconfig context's).
    #[arg(long, env = "NAMESPACE")]
    namespace: Option<String>,
    /// Name of the VirtualService.
    #[arg(
        long,
        env = "VIRTUAL_SERVICE",
        default_value = "worker-virtual-service"
    )]
    virtual_service: String,
    /// Above this rate (rps) traffic moves to burst.
    #[arg(long, env = "HIGH", default_value_t = 15.0)]
    high: f64,
    /// Below this rate (rps) traffic comes back to the primary.
    #[arg(long, env = "LOW", default_value_t = 10.0)]
    low: f64,
    /// Decision interval.
    #[arg(long, env = "TICK", default_value = "1s", value_parser = humantime::parse_duration)]
    tick: Duration,
    /// Stop after this many ticks (default: run until Ctrl-C).
    #[arg(long, env = "TICKS")]
    ticks: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();

    let mut prometheus = PrometheusConfig {
        url: args.prometheus_url,
        ..PrometheusConfig::default()
    };
    if let Some(query) = args.query {
        prometheus.query = query;
    }
    let source = PrometheusSource::new(prometheus)?;
    let client = kube::Client::try_default().await?;
    let namespace = args
        .namespace
        .unwrap_or_else(|| client.default_namespace().to_owned());
    let router = VirtualServiceRouter::new(
        client,
        &namespace,
        &args.virtual_service,
        VsTarget::default(),
        RouterOptions::default(),
    )?;
    let policy = PolicySpec {
        high: args.high,
        low: args.low,
        ..PolicySpec::default()
    }
    .build()?;
    let config = ControllerConfig {
        tick: args.tick,
        ..ControllerConfig::default()
    };

    let (done, mut ticks) = (Arc::new(Notify::new()), 0);
    let on_done = done.clone();
    let observer = move |r: &TickReport| {
        ticks += 1;
        println!(
            "tick {ticks}: {:?} -> split {} ({})",
            r.outcome, r.belief, r.decision.reason
        );
        if Some(ticks) == args.ticks {
            on_done.notify_one();
        }
    };
    let shutdown = async {
        tokio::select! {
            _ = done.notified() => {}
            // Without a Ctrl-C handler (an error), only `--ticks` stops the loop.
            Ok(()) = tokio::signal::ctrl_c() => {}
        }
    };
    let stopped = Controller::new(source, policy, router, config)
        .with_observer(observer)
        .run(shutdown)
        .await;
    let end = stopped.belief.map_or("unknown".into(), |s| s.to_string());
    println!(
        "stopped after {} ticks; split in effect: {end}",
        stopped.ticks
    );
    Ok(())
}
