//! Soak run of the demo app, by hand (not a test): a real `redis-server`, the
//! `hashr-worker` binary as a child process, and the frontend's load generator posting at a
//! fixed rate on loopback for a bounded time. Every 10 s it records the worker's RSS (from
//! `/proc/<pid>/status`) and the counts; at the end it compares hashes the worker
//! acknowledged (HTTP 200 comes only after the publish succeeded) with hashes received by a
//! separate Redis subscriber. Stops by itself.
//!
//! ```text
//! cargo build --release -p burst-bin --bin hashr-worker
//! cargo run --release -p burst-faults --example soak -- --seconds 600 --rate 3000 \
//!     --worker target/release/hashr-worker
//! ```
//!
//! Prints a Markdown table (for docs/reliability.md) and exits non-zero when a hash was lost
//! or the worker's RSS grew by more than 50 % between the first and the last third.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use burst_hashr::frontend::loadgen::{HttpSender, LoadGenerator};
use burst_testkit::ChildGuard;
use burst_testkit::redis::RedisServer;
use clap::Parser;
use futures::StreamExt;

/// Soak settings.
#[derive(Parser, Debug)]
struct Args {
    /// How long to send load, in seconds (at most 3600).
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Requests per second (at most 5000).
    #[arg(long, default_value_t = 3000.0)]
    rate: f64,
    /// Requests in flight at most.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// The hashr-worker binary.
    #[arg(long, default_value = "target/release/hashr-worker")]
    worker: PathBuf,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.seconds == 0 || args.seconds > 3600 || !(args.rate > 0.0 && args.rate <= 5000.0) {
        bail!("--seconds must be 1..=3600 and --rate 0..=5000");
    }
    if !args.worker.is_file() {
        bail!(
            "{} not found; build it with `cargo build --release -p burst-bin --bin hashr-worker`",
            args.worker.display()
        );
    }
    let redis = RedisServer::start().map_err(anyhow::Error::msg)?;
    let port = burst_testkit::free_port()?;
    let child = Command::new(&args.worker)
        .env("PORT", port.to_string())
        .env("REDIS_URL", redis.addr())
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", args.worker.display()))?;
    let pid = child.id();
    let _worker = ChildGuard::new(child);
    let base = format!("http://127.0.0.1:{port}/");
    let http = reqwest::Client::builder().no_proxy().build()?;
    let ready = Instant::now() + Duration::from_secs(10);
    while http
        .get(format!("{base}_healthz"))
        .send()
        .await
        .map(|r| !r.status().is_success())
        .unwrap_or(true)
    {
        if Instant::now() > ready {
            bail!("the worker did not become healthy within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // An independent subscriber counts what reaches Redis subscribers.
    let received = Arc::new(AtomicU64::new(0));
    let mut pubsub = redis::Client::open(redis.url())?.get_async_pubsub().await?;
    pubsub.subscribe("calculation").await?;
    let counter = received.clone();
    tokio::spawn(async move {
        let mut messages = pubsub.on_message();
        while messages.next().await.is_some() {
            counter.fetch_add(1, Ordering::Relaxed);
        }
    });

    let sender = HttpSender::new(
        url::Url::parse(&base)?,
        Duration::from_secs(5),
        args.concurrency,
    )?;
    let load = LoadGenerator::spawn(Arc::new(sender), args.concurrency);
    println!(
        "soak: {} rps for {} s against {} (pid {pid}), redis {}",
        args.rate,
        args.seconds,
        base,
        redis.addr()
    );
    println!("| t (s) | sent | ok (published) | failed | received | worker RSS (MiB) |");
    println!("|---:|---:|---:|---:|---:|---:|");
    let started = Instant::now();
    load.set_rate(args.rate);
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    tick.tick().await;
    loop {
        tick.tick().await;
        let t = started.elapsed().as_secs();
        let s = load.stats();
        let rss = rss_kib(pid).unwrap_or(0);
        samples.push((t, rss));
        println!(
            "| {t} | {} | {} | {} | {} | {:.1} |",
            s.sent,
            s.ok,
            s.failed,
            received.load(Ordering::Relaxed),
            rss as f64 / 1024.0
        );
        if t >= args.seconds {
            break;
        }
    }
    load.set_rate(0.0);
    let drain = Instant::now() + Duration::from_secs(15);
    while load.stats().in_flight > 0 && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Let the last messages arrive.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let s = load.stats();
    let got = received.load(Ordering::Relaxed);
    let third = samples.len() / 3;
    let mean =
        |xs: &[(u64, u64)]| xs.iter().map(|x| x.1).sum::<u64>() as f64 / xs.len().max(1) as f64;
    let first = mean(&samples[..third.max(1)]);
    let last = mean(&samples[samples.len() - third.max(1)..]);
    let max = samples.iter().map(|x| x.1).max().unwrap_or(0);
    let elapsed = started.elapsed().as_secs_f64();
    println!();
    println!("| figure | value |");
    println!("|---|---:|");
    println!("| run length | {elapsed:.0} s |");
    println!(
        "| requests sent | {} ({:.0} rps) |",
        s.sent,
        s.sent as f64 / elapsed
    );
    println!("| answered 200 (published) | {} |", s.ok);
    println!("| failed | {} {:?} |", s.failed, s.errors);
    println!("| skipped (concurrency cap) | {} |", s.skipped);
    println!("| received by the subscriber | {got} |");
    println!(
        "| lost (published - received) | {} |",
        s.ok as i64 - got as i64
    );
    println!(
        "| worker RSS: first third / last third / max | {:.1} / {:.1} / {:.1} MiB |",
        first / 1024.0,
        last / 1024.0,
        max as f64 / 1024.0
    );
    if got < s.ok {
        bail!(
            "{} published hashes never reached the subscriber",
            s.ok - got
        );
    }
    if last > first * 1.5 {
        bail!("worker RSS grew from {first} KiB to {last} KiB");
    }
    Ok(())
}
