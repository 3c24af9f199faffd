//! `haproxy-runtime`: how long the HAProxy router's calls take against a real `haproxy`
//! (started by `burst_testkit::haproxy` on loopback), over its unix-socket runtime API.
//!
//! ```text
//! cargo run --release -p burst-benches --bin haproxy-runtime -- [ITERATIONS]
//! ```
//!
//! Prints p50, p99 and max of `current()` (one `show stat`) and `apply()` (read, both
//! `set weight` on one line, read back: three connections), alternating 70/30 and 30/70.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use burst_core::{Split, TrafficRouter};
use burst_haproxy::{HaproxyRouter, HaproxyTarget, RuntimeClient};
use burst_testkit::haproxy::{HaproxyOptions, HaproxyServer};

/// Times the HAProxy router's `current()` and `apply()` against a real haproxy.
#[derive(Debug, clap::Parser)]
#[command(name = "haproxy-runtime")]
struct Args {
    /// Calls of each kind.
    #[arg(default_value_t = 2000)]
    iterations: usize,
}

fn main() -> ExitCode {
    let args = <Args as clap::Parser>::parse();
    match burst_main::block_on(run(args.iterations)) {
        Ok(Ok(())) => ExitCode::SUCCESS,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
    }
}

async fn run(iterations: usize) -> anyhow::Result<()> {
    let h = HaproxyServer::start(HaproxyOptions::default()).map_err(anyhow::Error::msg)?;
    let router = HaproxyRouter::new(
        RuntimeClient::new(h.runtime_api().parse()?),
        HaproxyTarget::new(
            HaproxyServer::BACKEND,
            HaproxyServer::PRIMARY,
            HaproxyServer::BURST,
        )?,
    );
    let splits = [Split::try_new(70, 30)?, Split::try_new(30, 70)?];
    let (mut reads, mut writes) = (Vec::new(), Vec::new());
    for i in 0..iterations {
        let t = Instant::now();
        router.apply(splits[i % 2]).await?;
        writes.push(t.elapsed());
        let t = Instant::now();
        let now = router.current().await?;
        reads.push(t.elapsed());
        anyhow::ensure!(
            now == splits[i % 2],
            "read {now}, applied {}",
            splits[i % 2]
        );
    }
    println!("{iterations} calls each");
    report("current()", &mut reads);
    report("apply()", &mut writes);
    Ok(())
}

fn report(what: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| {
        // Nearest rank; the index is within bounds for q in [0, 1].
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i]
    };
    println!(
        "{what:10} p50 {:>8.1} µs  p99 {:>8.1} µs  max {:>8.1} µs",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        at(1.0).as_secs_f64() * 1e6
    );
}
