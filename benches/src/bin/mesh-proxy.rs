//! `mesh-proxy`: the local mesh proxy (`burst_hashr::mesh`) as a process of its own, for
//! load tests with wrk (`scripts/bench-proxy.sh`).
//!
//! ```text
//! mesh-proxy PORT PRIMARY_URL BURST_URL [BURST_WEIGHT]
//! ```
//!
//! Forwards every request on `127.0.0.1:PORT` to the primary or the burst upstream (all to
//! the primary unless `BURST_WEIGHT` is given) and prints `listening on ADDR` once ready.
//! Stops on Ctrl-C. `--help` lists the arguments.

use std::process::ExitCode;

use burst_core::{Split, Weight};
use burst_hashr::mesh::{Mesh, MeshConfig};
use url::Url;

/// The local mesh proxy as a process of its own: forwards every request on
/// 127.0.0.1:PORT to the primary or the burst upstream, prints `listening on ADDR` once
/// ready, and stops on Ctrl-C.
#[derive(Debug, clap::Parser)]
#[command(name = "mesh-proxy")]
struct Args {
    /// Port to listen on (127.0.0.1; 0 picks a free one).
    port: u16,
    /// The primary upstream, e.g. http://127.0.0.1:8081/.
    primary_url: Url,
    /// The burst upstream.
    burst_url: Url,
    /// Share of requests sent to burst, 0..=100.
    #[arg(default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=100))]
    burst_weight: u8,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    let mesh = match mesh(&args) {
        Ok(m) => m,
        Err(e) => return burst_main::fail("error", burst_main::Exit::Usage, &e),
    };
    match burst_main::block_on(serve(args.port, mesh)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
    }
}

fn mesh(args: &Args) -> anyhow::Result<Mesh> {
    let mut config = MeshConfig::new(args.primary_url.clone(), args.burst_url.clone());
    config.initial = Split::from_burst(Weight::try_new(i64::from(args.burst_weight))?);
    Ok(Mesh::new(config)?)
}

async fn serve(port: u16, mesh: Mesh) -> anyhow::Result<()> {
    let listener = burst_hashr::http::bind(&format!("127.0.0.1:{port}")).await?;
    println!("listening on {}", listener.local_addr()?);
    // Ctrl-C stops it gracefully; the bench scripts' SIGTERM ends it at once, as before.
    let stop = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    burst_hashr::http::serve(listener, mesh.proxy_router(), stop).await?;
    Ok(())
}
