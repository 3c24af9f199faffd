//! `control-plane-startup`: how long `burst_testkit::kube::ControlPlane::start` takes
//! (etcd and kube-apiserver started, `/readyz` answered), and how long a test then waits
//! for the CRDs it installs to be Established.
//!
//! ```text
//! scripts/control-plane.sh build
//! cargo run --release -p burst-benches --bin control-plane-startup -- [--runs 5]
//! ```

use std::time::{Duration, Instant};

use anyhow::Context;
use burst_testkit::kube::ControlPlane;

/// How long a real etcd + kube-apiserver takes to be ready, and the CRDs a test installs to
/// be Established.
#[derive(Debug, clap::Parser)]
#[command(name = "control-plane-startup")]
struct Args {
    /// Control planes to start, one after the other.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
}

fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    match burst_main::block_on(run(args)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let runs = args.runs;
    let mut ready = Vec::new();
    let mut crds = Vec::new();
    for i in 0..runs {
        // Starting blocks (child processes, readiness polls with their own runtime): off the
        // async workers.
        let cp = tokio::task::spawn_blocking(ControlPlane::start)
            .await
            .context("the control plane's start panicked")?
            .map_err(anyhow::Error::msg)?;
        let t = Instant::now();
        cp.install_crd_files(&[
            "schemas/istio/crd-all.gen.yaml",
            "schemas/gateway-api/gateway.networking.k8s.io_httproutes.yaml",
            "deploy/crd/burstpolicies.bursting.dev.yaml",
        ])
        .await
        .map_err(anyhow::Error::msg)?;
        let installed = t.elapsed();
        eprintln!(
            "run {}: ready in {:.2} s, CRDs Established in {:.2} s",
            i + 1,
            cp.started_in().as_secs_f64(),
            installed.as_secs_f64()
        );
        ready.push(cp.started_in());
        crds.push(installed);
    }
    println!(
        "control plane ready (min / median / max): {}",
        summary(&mut ready)
    );
    println!(
        "Istio + HTTPRoute + BurstPolicy CRDs Established: {}",
        summary(&mut crds)
    );
    Ok(())
}

fn summary(values: &mut [Duration]) -> String {
    values.sort();
    let n = values.len();
    let median = if n % 2 == 1 {
        values[n / 2].as_secs_f64()
    } else {
        (values[n / 2 - 1] + values[n / 2]).as_secs_f64() / 2.0
    };
    format!(
        "{:.2} / {median:.2} / {:.2} s over {n} runs",
        values[0].as_secs_f64(),
        values[n - 1].as_secs_f64()
    )
}
