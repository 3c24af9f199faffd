//! `mesh-proxy`: the local mesh proxy (`burst_hashr::mesh`) as a process of its own, for
//! load tests with wrk (`scripts/bench-proxy.sh`).
//!
//! ```text
//! mesh-proxy PORT PRIMARY_URL BURST_URL [BURST_WEIGHT]
//! ```
//!
//! Forwards every request on `127.0.0.1:PORT` to the primary or the burst upstream (all to
//! the primary unless `BURST_WEIGHT` is given) and prints `listening on ADDR` once ready.
//! Stops on Ctrl-C.

use std::process::ExitCode;

use anyhow::Context;
use burst_core::{Split, Weight};
use burst_hashr::mesh::{Mesh, MeshConfig};
use url::Url;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: mesh-proxy PORT PRIMARY_URL BURST_URL [BURST_WEIGHT]";
    let [port, primary, burst, rest @ ..] = args.as_slice() else {
        anyhow::bail!("{usage}");
    };
    let port: u16 = port
        .parse()
        .with_context(|| format!("PORT `{port}` is not a port number; {usage}"))?;
    let primary = Url::parse(primary).with_context(|| format!("PRIMARY_URL `{primary}`"))?;
    let burst = Url::parse(burst).with_context(|| format!("BURST_URL `{burst}`"))?;
    let weight: u8 = match rest.first() {
        Some(w) => w
            .parse()
            .with_context(|| format!("BURST_WEIGHT `{w}` must be 0..=100"))?,
        None => 0,
    };
    let mut config = MeshConfig::new(primary, burst);
    config.initial = Split::from_burst(Weight::try_new(i64::from(weight))?);
    let mesh = Mesh::new(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let listener = burst_hashr::http::bind(&format!("127.0.0.1:{port}")).await?;
        println!("listening on {}", listener.local_addr()?);
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        burst_hashr::http::serve(listener, mesh.proxy_router(), stop).await?;
        anyhow::Ok(())
    })
}
