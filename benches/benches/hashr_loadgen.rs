//! Load generator accuracy: asked vs achieved rate at 1, 20, 500 and 5,000 requests/s.
//!
//! Not a criterion benchmark: each rate runs for a fixed wall-clock window against a
//! counting HTTP sink on loopback, through the real `HttpSender` (reqwest), and the
//! achieved rates are printed as a Markdown table. "achieved" is measured at the sink:
//! (arrivals - 1) / (last arrival - first arrival), so it does not depend on where the
//! window's edges fall; "vs schedule" compares the requests sent with the number due in
//! the window (`ceil(window * rate)`).
//!
//! ```text
//! cargo bench -p burst-benches --bench hashr_loadgen            # 10 s per rate
//! HASHR_BENCH_SECS=3 cargo bench -p burst-benches --bench hashr_loadgen
//! ```
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::routing::post;
use burst_hashr::frontend::loadgen::{HttpSender, LoadGenerator};

/// (arrivals, first arrival, last arrival) at the sink.
type Arrivals = (u64, Option<Instant>, Option<Instant>);

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this target without it:
    // keep that run quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let secs: f64 = std::env::var("HASHR_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 0.5 } else { 10.0 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(secs));
}

async fn run(secs: f64) {
    let sink: Arc<Mutex<Arrivals>> = Arc::default();
    let h = sink.clone();
    let app = Router::new().route(
        "/",
        post(move || {
            let h = h.clone();
            async move {
                let now = Instant::now();
                let mut g = h.lock().unwrap();
                g.0 += 1;
                g.1.get_or_insert(now);
                g.2 = Some(now);
                "OK"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = url::Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    println!("window: {secs} s per rate, concurrency cap 256, loopback HTTP sink");
    println!();
    println!(
        "| asked (req/s) | due in window | fired (sent + skipped) | vs schedule | achieved at sink (req/s) | error vs asked | failed | skipped (cap) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for rate in [1.0, 20.0, 500.0, 5000.0] {
        let sender = HttpSender::new(url.clone(), Duration::from_secs(5), 256).unwrap();
        let g = LoadGenerator::spawn(Arc::new(sender), 256);
        *sink.lock().unwrap() = (0, None, None);
        let started = Instant::now();
        g.set_rate(rate);
        tokio::time::sleep(Duration::from_secs_f64(secs)).await;
        let window = started.elapsed().as_secs_f64();
        let s = g.stats();
        g.set_rate(0.0);
        // Let in-flight requests finish before counting answers.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (arrivals, first, last) = *sink.lock().unwrap();
        let achieved = match (first, last) {
            (Some(f), Some(l)) if arrivals > 1 => (arrivals - 1) as f64 / (l - f).as_secs_f64(),
            _ => f64::NAN,
        };
        // Requests due in [0, window): k / rate < window.
        let expected = (window * rate).ceil();
        let fired = s.sent + s.skipped;
        println!(
            "| {rate} | {expected} | {fired} | {:+} | {achieved:.3} | {:+.3} % | {} | {} |",
            fired as f64 - expected,
            (achieved - rate) / rate * 100.0,
            s.failed,
            s.skipped,
        );
    }
}
