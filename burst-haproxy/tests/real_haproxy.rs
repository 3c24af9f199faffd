//! The router and the source against a real `haproxy` (Debian's package), started on free
//! loopback ports by `burst_testkit::haproxy`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use burst_core::{MetricSource, Reading, Split, Timestamp, TrafficRouter};
use burst_haproxy::{
    Error, HaproxyRouter, HaproxySource, HaproxyTarget, MultiInstanceRouter, RuntimeClient,
};
use burst_testkit::haproxy::{HaproxyOptions, HaproxyServer};

fn target() -> HaproxyTarget {
    HaproxyTarget::new(
        HaproxyServer::BACKEND,
        HaproxyServer::PRIMARY,
        HaproxyServer::BURST,
    )
    .expect("valid names")
}

fn client(addr: &str) -> RuntimeClient {
    RuntimeClient::new(addr.parse().expect("address"))
}

fn router(h: &HaproxyServer) -> HaproxyRouter {
    HaproxyRouter::new(client(&h.runtime_api()), target())
}

fn split(primary: i64, burst: i64) -> Split {
    Split::try_new(primary, burst).expect("split")
}

/// Sends `n` requests through the frontend; returns how many the primary and the burst
/// server answered.
async fn send(h: &HaproxyServer, n: usize) -> (usize, usize) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let (mut primary, mut burst) = (0, 0);
    for _ in 0..n {
        let body = http
            .get(h.frontend_url())
            .send()
            .await
            .expect("request")
            .text()
            .await
            .expect("body");
        match body.as_str() {
            "primary" => primary += 1,
            "burst" => burst += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    (primary, burst)
}

fn error_of(e: &burst_core::RouterError) -> &Error {
    Error::of(e).unwrap_or_else(|| panic!("not a burst-haproxy error: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weights_set_through_the_router_move_real_traffic() {
    let h = HaproxyServer::start(HaproxyOptions {
        tcp_runtime_api: true,
        ..HaproxyOptions::default()
    })
    .expect("haproxy");
    let r = router(&h);
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);

    r.apply(split(70, 30)).await.unwrap();
    assert_eq!(r.current().await.unwrap(), split(70, 30));
    let (p, b) = send(&h, 1000).await;
    assert_eq!(p + b, 1000);
    assert!(
        (670..=730).contains(&p),
        "70/30 sent {p} to the primary, {b} to burst"
    );

    r.apply(Split::ALL_BURST).await.unwrap();
    assert_eq!(send(&h, 200).await, (0, 200));

    // The same backend through the TCP runtime API.
    let tcp = HaproxyRouter::new(client(&h.tcp_runtime_api().expect("tcp api")), target());
    assert_eq!(tcp.current().await.unwrap(), Split::ALL_BURST);
    tcp.apply(Split::ALL_PRIMARY).await.unwrap();
    assert_eq!(send(&h, 200).await, (200, 0));
    assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_get_one_split_and_report_each_failure() {
    let a = HaproxyServer::start(HaproxyOptions::default()).expect("haproxy a");
    let mut b = HaproxyServer::start(HaproxyOptions::default()).expect("haproxy b");
    let m = MultiInstanceRouter::over(
        vec![client(&a.runtime_api()), client(&b.runtime_api())],
        &target(),
    )
    .unwrap();
    m.apply(split(60, 40)).await.unwrap();
    assert_eq!(router(&a).current().await.unwrap(), split(60, 40));
    assert_eq!(router(&b).current().await.unwrap(), split(60, 40));
    // Someone sets b by hand: the odd split is reported, so a controller writes again.
    router(&b).apply(split(90, 10)).await.unwrap();
    assert_eq!(m.current().await.unwrap(), split(90, 10));
    b.stop();
    let e = m.apply(split(50, 50)).await.unwrap_err();
    assert_eq!(e.kind(), "instance_failure");
    let text = e.to_string();
    assert!(text.contains("failed on 1 of 2"), "{text}");
    assert!(
        text.contains(&a.runtime_api()) && text.contains(&b.runtime_api()),
        "{text}"
    );
    assert_eq!(router(&a).current().await.unwrap(), split(50, 50));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_run_router_errors_then_repairs_and_source_survives_the_reset() {
    let mut h = HaproxyServer::start(HaproxyOptions::default()).expect("haproxy");
    let r = router(&h);
    let now = Arc::new(Mutex::new(1000.0_f64));
    let clock = {
        let now = now.clone();
        Arc::new(move || Timestamp::from_secs_f64(*now.lock().unwrap()).unwrap())
    };
    let set = |t: f64| *now.lock().unwrap() = t;
    let source = HaproxySource::with_clock(
        vec![client(&h.runtime_api())],
        HaproxyServer::BACKEND,
        Duration::from_secs(60),
        None,
        clock,
    )
    .unwrap();
    let desired = split(30, 70);
    r.apply(desired).await.unwrap();

    assert!(matches!(
        source.observe().await.unwrap(),
        Reading::NoData { .. }
    ));
    send(&h, 50).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    set(1010.0);
    match source.observe().await.unwrap() {
        Reading::Value(o) => assert_eq!(f64::from(o.rates.up), 5.0),
        other => panic!("expected 5 req/s, got {other:?}"),
    }

    h.stop();
    let down = r.current().await.unwrap_err();
    assert!(error_of(&down).is_unreachable(), "{down}");
    assert!(down.to_string().contains("connection refused"), "{down}");
    assert!(r.apply(Split::ALL_BURST).await.is_err());
    set(1020.0);
    let e = source.observe().await.unwrap_err();
    assert_eq!(e.kind(), "connection_refused", "{e}");

    h.restart().expect("restart");
    // The restart restored the configured weights: the split read differs from the one
    // applied, which is the drift a controller repairs by applying again.
    let after = r.current().await.unwrap();
    assert_eq!(after, Split::ALL_PRIMARY);
    assert_ne!(after, desired);
    r.apply(desired).await.unwrap();
    assert_eq!(r.current().await.unwrap(), desired);

    // The backend counter restarted from 0: 50 before + 20 after, no negative spike.
    let (p, b) = send(&h, 20).await;
    assert_eq!(p + b, 20);
    tokio::time::sleep(Duration::from_millis(200)).await;
    set(1030.0);
    match source.observe().await.unwrap() {
        Reading::Value(o) => assert_eq!(f64::from(o.rates.up), 70.0 / 30.0),
        other => panic!("expected a rate, got {other:?}"),
    }
}
