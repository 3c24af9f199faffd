//! Soak run of the demo app, by hand (not a test): a real `redis-server`, the
//! `hashr-worker` binary as a child process, and the frontend's load generator posting at a
//! fixed rate on loopback for a bounded time. Every 10 s it records the worker's RSS (from
//! `/proc/<pid>/status`) and the counts; at the end it compares hashes the worker
//! acknowledged (HTTP 200 comes only after the publish succeeded) with hashes received by a
//! separate Redis subscriber. Stops by itself.
//!
//! ```text
//! cargo build --release -p burst-hashr --bin hashr-worker
//! cargo run --release -p burst-faults --example soak -- --seconds 600 --rate 3000 \
//!     --worker target/release/hashr-worker
//! ```
//!
//! With `--restart-redis-at 100 --restart-redis-at 200` Redis is killed at those seconds
//! and started again on the same port after `--redis-down-for` seconds, while the load goes
//! on. The worker answers 503 while Redis is down; the subscriber is the frontend's own
//! reconnecting [`RedisPubSub`], so the run shows that it resubscribes. Pub/sub keeps no
//! messages, so a restart may lose hashes that were acknowledged just before the kill or
//! published after Redis is back but before the subscriber has resubscribed. To tell those
//! apart from losses elsewhere, the load pauses and drains for a moment before each kill and
//! again 5 s after the resubscription: the gap (published - received) is then exact, must not
//! change between restarts, and what each restart cost is reported next to its window.
//!
//! Prints a Markdown table (for docs/reliability.md) and exits non-zero when a hash was lost
//! outside a restart, the subscriber did not resubscribe after one, or the worker's RSS grew
//! by more than 50 % between the first and the last third.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use burst_hashr::frontend::loadgen::{HttpSender, LoadGenerator};
use burst_hashr::pubsub::{CHANNEL, Event, PubSub, RedisPubSub};
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
    /// Kill Redis at this second of the run (repeatable); it comes back on the same port
    /// after `--redis-down-for`.
    #[arg(long, value_name = "SECONDS")]
    restart_redis_at: Vec<u64>,
    /// How long Redis stays down at each restart, in seconds (1..=60).
    #[arg(long, default_value_t = 3, value_name = "SECONDS")]
    redis_down_for: u64,
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
    if !(1..=60).contains(&args.redis_down_for) {
        bail!("--redis-down-for must be 1..=60 seconds");
    }
    if let Some(t) = args
        .restart_redis_at
        .iter()
        .find(|&&t| t == 0 || t + args.redis_down_for >= args.seconds)
    {
        bail!(
            "--restart-redis-at {t}: a restart must start after 0 s and end before the run does ({} s)",
            args.seconds
        );
    }
    let mut restarts = args.restart_redis_at.clone();
    restarts.sort_unstable();
    restarts.dedup();
    if !args.worker.is_file() {
        bail!(
            "{} not found; build it with `cargo build --release -p burst-hashr --bin hashr-worker`",
            args.worker.display()
        );
    }
    let mut redis = RedisServer::start().map_err(anyhow::Error::msg)?;
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

    // The frontend's reconnecting subscriber counts what reaches Redis subscribers, and how
    // often it has (re)subscribed.
    let received = Arc::new(AtomicU64::new(0));
    let subscribed = Arc::new(AtomicU64::new(0));
    let mut events = RedisPubSub::new(&redis.url())?.subscribe(CHANNEL).await?;
    let (counter, subs) = (received.clone(), subscribed.clone());
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            match event {
                Event::Message(_) => counter.fetch_add(1, Ordering::Relaxed),
                Event::Subscribed => subs.fetch_add(1, Ordering::Relaxed),
                Event::Lost { .. } => 0,
            };
        }
    });
    let first_subscription = Instant::now() + Duration::from_secs(10);
    while subscribed.load(Ordering::Relaxed) == 0 {
        if Instant::now() > first_subscription {
            bail!("the subscriber did not subscribe within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

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
    let mut windows: Vec<RestartWindow> = Vec::new();
    let mut next_row = 10;
    // Published - received after a drain: exact, and changed only by restarts.
    let mut settled_gap = 0u64;
    let mut lost_between_restarts = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.tick().await;
    loop {
        tick.tick().await;
        let t = started.elapsed().as_secs();
        if restarts.first().is_some_and(|&at| t >= at) {
            restarts.remove(0);
            let before = drained_gap(&load, &received, args.rate).await;
            lost_between_restarts += before.saturating_sub(settled_gap);
            let mut window = restart_redis(
                &mut redis,
                Duration::from_secs(args.redis_down_for),
                &load,
                &subscribed,
            )
            .await?;
            tokio::time::sleep(Duration::from_secs(5)).await;
            settled_gap = drained_gap(&load, &received, args.rate).await;
            window.lost = settled_gap.saturating_sub(before);
            println!(
                "| {} | Redis restarted: down {:.1} s, 503s while down {}, subscribed again after {:.2} s, published meanwhile {}, lost {} |  |",
                started.elapsed().as_secs(),
                window.down.as_secs_f64(),
                window.failed_while_down,
                window.resubscribed_after.as_secs_f64(),
                window.unprotected,
                window.lost
            );
            windows.push(window);
            continue;
        }
        if t < next_row && t < args.seconds {
            continue;
        }
        next_row = t + 10;
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
    let lost_in_restarts: u64 = windows.iter().map(|w| w.lost).sum();
    lost_between_restarts += s.ok.saturating_sub(got).saturating_sub(settled_gap);
    if !windows.is_empty() {
        println!(
            "| Redis restarts / 503s while down / subscriptions | {} / {} / {} |",
            windows.len(),
            windows.iter().map(|w| w.failed_while_down).sum::<u64>(),
            subscribed.load(Ordering::Relaxed)
        );
        println!(
            "| published between Redis up and resubscribed | {} |",
            windows.iter().map(|w| w.unprotected).sum::<u64>()
        );
        println!("| lost across restarts | {lost_in_restarts} |");
        println!("| **lost outside restarts** | **{lost_between_restarts}** |");
    }
    println!(
        "| worker RSS: first third / last third / max | {:.1} / {:.1} / {:.1} MiB |",
        first / 1024.0,
        last / 1024.0,
        max as f64 / 1024.0
    );
    if lost_between_restarts > 0 {
        bail!(
            "{lost_between_restarts} published hashes never reached the subscriber outside a Redis restart"
        );
    }
    if subscribed.load(Ordering::Relaxed) < 1 + windows.len() as u64 {
        bail!("the subscriber did not resubscribe after every Redis restart");
    }
    if last > first * 1.5 {
        bail!("worker RSS grew from {first} KiB to {last} KiB");
    }
    Ok(())
}

/// What one Redis restart cost.
struct RestartWindow {
    /// How long Redis was down (kill to ready again).
    down: Duration,
    /// Requests that failed while it was down (the worker's 503s).
    failed_while_down: u64,
    /// From Redis ready again to the subscriber's next `Subscribed`.
    resubscribed_after: Duration,
    /// Hashes acknowledged between Redis ready and resubscribed, plus those in flight then.
    unprotected: u64,
    /// Hashes acknowledged but never received across this restart (exact, from drains).
    lost: u64,
}

/// Pauses the load, waits (at most 15 s) for every request to finish and the last messages
/// to arrive, and returns published - received; then resumes the load at `rate`.
async fn drained_gap(load: &LoadGenerator, received: &AtomicU64, rate: f64) -> u64 {
    load.set_rate(0.0);
    let deadline = Instant::now() + Duration::from_secs(15);
    while load.stats().in_flight > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let gap = load
        .stats()
        .ok
        .saturating_sub(received.load(Ordering::Relaxed));
    load.set_rate(rate);
    gap
}

/// Kills Redis, keeps it down for `down_for`, starts it on the same port and waits (at most
/// 30 s) for the subscriber to subscribe again.
async fn restart_redis(
    redis: &mut RedisServer,
    down_for: Duration,
    load: &LoadGenerator,
    subscribed: &AtomicU64,
) -> anyhow::Result<RestartWindow> {
    let before = (load.stats().failed, subscribed.load(Ordering::Relaxed));
    let killed = Instant::now();
    tokio::task::block_in_place(|| redis.stop());
    tokio::time::sleep(down_for).await;
    tokio::task::block_in_place(|| redis.restart()).map_err(anyhow::Error::msg)?;
    let up = Instant::now();
    let at_up = load.stats();
    let deadline = up + Duration::from_secs(30);
    while subscribed.load(Ordering::Relaxed) <= before.1 {
        if Instant::now() > deadline {
            bail!("the subscriber did not resubscribe within 30 s of Redis coming back");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_sub = load.stats();
    Ok(RestartWindow {
        down: up - killed,
        failed_while_down: at_up.failed - before.0,
        resubscribed_after: up.elapsed(),
        unprotected: at_sub.ok - at_up.ok + at_sub.in_flight,
        lost: 0,
    })
}
