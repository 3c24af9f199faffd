//! `burst demo --prometheus-url`: the controller measures through a real Prometheus that
//! scrapes the mesh proxy, with the seed's query, and bursts and comes back as with the
//! direct scrape.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use burst_testkit::{free_port, loopback, require_binary};
use common::{assert_followed_the_load, burst_bounded};
use serde_json::Value;

#[test]
fn demo_measures_through_prometheus_with_the_seed_query() {
    let prometheus = require_binary("prometheus", "prometheus").unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let (metrics_port, prom_port) = (free_port().unwrap(), free_port().unwrap());
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: mesh\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let prom = Command::new(prometheus)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address=127.0.0.1:{prom_port}"))
        .arg("--log.level=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _prom = burst_testkit::ChildGuard::new(prom);
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect_timeout(&loopback(prom_port), Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "prometheus did not listen within 20 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "high: 15\nlow: 10\nwindow: 3s\ntick: 1s\n").unwrap();
    let (code, stdout, stderr) = burst_bounded(
        &[
            "demo",
            "--headless",
            "--json",
            "--port",
            "0",
            "--metrics-port",
            &metrics_port.to_string(),
            "--prometheus-url",
            &format!("http://127.0.0.1:{prom_port}"),
            "--policy",
            policy.to_str().unwrap(),
            "--scenario",
            "5rps:12s,25rps:15s,5rps:15s",
        ],
        Duration::from_secs(120),
    );
    assert_eq!(code, 0, "burst demo failed\nstderr:\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let s = &report["summary"];
    let d = &report["demo"];
    let source = d["source"].as_str().unwrap();
    assert!(
        source.contains("prometheus") && source.contains("istio_requests_total"),
        "{source}"
    );
    let first_burst = s["first_burst_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("never moved: {s}\n{stderr}"));
    let back = s["back_to_primary_s"]
        .as_f64()
        .unwrap_or_else(|| panic!("never came back: {s}"));
    assert_followed_the_load(first_burst, back, 12.0, 27.0, 42.0);
    assert!(d["bursty_hashes"].as_u64().unwrap() > 0, "{d}");
    assert_eq!(d["bursty_while_primary"], 0, "{d}");
    assert_eq!(s["final_burst_weight"], 0);
}
