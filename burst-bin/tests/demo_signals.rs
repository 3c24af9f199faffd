//! `burst demo --data-plane haproxy` stops the HAProxy it started when it is stopped by
//! SIGTERM (what systemd, Kubernetes and `kill` send), not only on Ctrl-C.
//! Needs Debian's `haproxy`.

mod common;

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::Value;

fn proxy_addr(event: &Value) -> SocketAddr {
    let url = event["proxy"].as_str().unwrap_or_else(|| panic!("{event}"));
    let host_port = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or(url);
    host_port.parse().unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[test]
fn sigterm_stops_the_demo_and_its_haproxy() {
    assert!(
        std::path::Path::new("/usr/sbin/haproxy").is_file(),
        "HAProxy is not installed: apt-get install -y --no-install-recommends haproxy"
    );
    let dir = tempfile::tempdir().unwrap();
    let ready = dir.path().join("ready.json");
    let mut child =
        common::start_demo_until_ready(&["demo", "--data-plane", "haproxy", "--port", "0"], &ready);
    let event: Value = serde_json::from_str(&std::fs::read_to_string(&ready).unwrap()).unwrap();
    let proxy = proxy_addr(&event);
    assert!(
        TcpStream::connect_timeout(&proxy, Duration::from_secs(2)).is_ok(),
        "HAProxy's frontend {proxy} does not answer while the demo runs: {event}"
    );

    let status = burst_testkit::terminate(&mut child, Duration::from_secs(20)).unwrap();
    assert!(
        status.success(),
        "the demo should exit 0 on SIGTERM: {status}"
    );
    // HAProxy is stopped with the demo: its frontend stops accepting within a bounded wait.
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect_timeout(&proxy, Duration::from_millis(500)).is_ok() {
        assert!(
            Instant::now() < deadline,
            "HAProxy's frontend {proxy} still answers 10 s after the demo exited"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
