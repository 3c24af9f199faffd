//! `burst render`: print the DestinationRule and VirtualService that split a service between
//! the primary and the burst cluster (the seed's objects, on `networking.istio.io/v1`).
//!
//! In a multi-cluster mesh, select the subsets by the label Istio puts on every endpoint:
//! `--subset-label topology.istio.io/cluster --primary-label-value <primary cluster id>
//! --burst-label-value <burst cluster id>`.

use std::process::ExitCode;

use burst_core::{Split, Weight};
use burst_istio::render::{RenderOptions, render_yaml};

/// Arguments of `burst render`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Percentage of traffic for the burst cluster (0-100); the primary gets the rest.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    burst_weight: u8,
    /// Namespace of the service and the objects.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// The Kubernetes Service to split.
    #[arg(long, default_value = "worker-service")]
    service: String,
    /// Service port.
    #[arg(long, default_value_t = 80)]
    port: u16,
    /// Pod label that tells the clusters apart (e.g. topology.istio.io/cluster).
    #[arg(long, default_value = "cluster-type")]
    subset_label: String,
    /// Label value of the primary cluster's endpoints.
    #[arg(long, default_value = "primary-cluster")]
    primary_label_value: String,
    /// Label value of the burst cluster's endpoints.
    #[arg(long, default_value = "burst-cluster")]
    burst_label_value: String,
    /// Subset name of the primary side.
    #[arg(long, default_value = "primary")]
    primary_subset: String,
    /// Subset name of the burst side.
    #[arg(long, default_value = "burst")]
    burst_subset: String,
    /// `spec.gateways` of the VirtualService (repeat for several).
    #[arg(long = "gateway", default_value = "mesh")]
    gateways: Vec<String>,
    /// Load balancer of the DestinationRule (RANDOM, ROUND_ROBIN, LEAST_REQUEST, ...).
    #[arg(long, default_value = "RANDOM")]
    load_balancer: String,
}

/// Runs `burst render`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let split = Split::from_burst(Weight::try_new(i64::from(args.burst_weight))?);
    let opts = RenderOptions {
        namespace: args.namespace,
        service: args.service,
        port: args.port,
        subset_label: args.subset_label,
        primary_label_value: args.primary_label_value,
        burst_label_value: args.burst_label_value,
        primary_subset: args.primary_subset,
        burst_subset: args.burst_subset,
        gateways: args.gateways,
        load_balancer: args.load_balancer,
    };
    print!("{}", render_yaml(&opts, split)?);
    Ok(ExitCode::SUCCESS)
}
