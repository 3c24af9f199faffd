//! The production wiring in 40 lines: a [`PrometheusSource`] measuring demand, the seed
//! policy, and a [`VirtualServiceRouter`] moving the weights of an Istio VirtualService.
//!
//! It needs a real Prometheus and a real cluster. The kubeconfig comes from `KUBECONFIG`
//! (or `~/.kube/config`, or the in-cluster service account), the VirtualService must have
//! one HTTP route with two destinations, subsets `primary` and `burst`. Settings come from
//! environment variables, each with the seed's default:
//!
//! ```text
//! PROMETHEUS_URL=http://localhost:9090 NAMESPACE=default VIRTUAL_SERVICE=worker-virtual-service \
//!   cargo run -p burst-examples --example prometheus_to_virtualservice
//! ```
//!
//! | variable | default |
//! |---|---|
//! | `PROMETHEUS_URL` | `http://localhost:9090` |
//! | `QUERY` | the seed's: `istio_requests_total` at the source, for `worker-service.default` called by `frontend-deployment`; `{{window}}` is filled in |
//! | `NAMESPACE` | the kubeconfig context's |
//! | `VIRTUAL_SERVICE` | `worker-virtual-service` |
//! | `TICK` | `1s` (forms as in policies: `500ms`, `1m30s`) |
//!
//! It runs until Ctrl-C (SIGINT). The policy is the seed's hysteresis (15/10 rps); build your own [`PolicySpec`] for others.
//! Logs (every change, every error) go to stderr at level info.

use std::env::var;

use burst_core::policy::PolicySpec;
use burst_core::{Controller, ControllerConfig, HumanDuration, TickReport};
use burst_istio::{RouterOptions, VirtualServiceRouter, VsTarget};
use burst_prom::{PrometheusConfig, PrometheusSource};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init(); // info and up
    let setting = |name: &str, default: &str| var(name).unwrap_or_else(|_| default.to_owned());

    // The source: the seed's query (or QUERY) against Prometheus.
    let url = setting("PROMETHEUS_URL", "http://localhost:9090");
    let mut prometheus = PrometheusConfig {
        url,
        ..PrometheusConfig::default()
    };
    prometheus.query = var("QUERY").unwrap_or(prometheus.query);
    let source = PrometheusSource::new(prometheus)?;

    // The router: the two weights of one VirtualService, nothing else in it.
    let client = kube::Client::try_default().await?;
    let namespace = var("NAMESPACE").unwrap_or_else(|_| client.default_namespace().to_owned());
    let name = setting("VIRTUAL_SERVICE", "worker-virtual-service");
    let (target, options) = (VsTarget::default(), RouterOptions::default());
    let router = VirtualServiceRouter::new(client, &namespace, &name, target, options)?;

    // The seed's policy, and the loop every TICK.
    let policy = PolicySpec::default().build()?;
    let tick: HumanDuration = setting("TICK", "1s").parse()?;
    let config = ControllerConfig {
        tick: tick.into(),
        ..ControllerConfig::default()
    };

    // Print every tick; on Ctrl-C (SIGINT), finish the tick in progress and stop.
    let print = |r: &TickReport| {
        println!(
            "tick: {:?} -> split {} ({})",
            r.outcome, r.belief, r.decision.reason
        );
    };
    let controller = Controller::new(source, policy, router, config).with_observer(print);
    let shutdown = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let stopped = controller.run(shutdown).await;
    let end = stopped.belief.map_or("unknown".into(), |s| s.to_string());
    println!("stopped after {} ticks; in effect: {end}", stopped.ticks);
    Ok(())
}
