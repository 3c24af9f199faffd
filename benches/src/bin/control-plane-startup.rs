//! `control-plane-startup`: how long `burst_testkit::kube::ControlPlane::start` takes
//! (etcd and kube-apiserver started, `/readyz` answered), and how long a test then waits
//! for the CRDs it installs to be Established.
//!
//! ```text
//! scripts/control-plane.sh build
//! cargo run --release -p burst-benches --bin control-plane-startup -- [--runs 5]
//! ```

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use burst_testkit::kube::ControlPlane;

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs = match args.as_slice() {
        [] => 5,
        [flag, n] if flag == "--runs" => n.parse().context("--runs takes a number")?,
        _ => bail!("usage: control-plane-startup [--runs N]"),
    };
    if runs == 0 {
        bail!("--runs must be at least 1");
    }
    let rt = tokio::runtime::Runtime::new().context("cannot start the async runtime")?;
    let mut ready = Vec::new();
    let mut crds = Vec::new();
    for i in 0..runs {
        let cp = ControlPlane::start().map_err(anyhow::Error::msg)?;
        let t = Instant::now();
        rt.block_on(cp.install_crd_files(&[
            "schemas/istio/crd-all.gen.yaml",
            "schemas/gateway-api/gateway.networking.k8s.io_httproutes.yaml",
            "deploy/crd/burstpolicies.bursting.dev.yaml",
        ]))
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
