//! `burstd run` on a real `haproxy`, with no Kubernetes at all: load through the frontend
//! moves the backend's weights to the burst server and back, measured from `show stat`.

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use burst_core::{Split, TrafficRouter};
use burst_haproxy::{HaproxyRouter, HaproxyTarget, RuntimeClient};
use burst_testkit::haproxy::{HaproxyOptions, HaproxyServer};

/// Kills burstd if a test fails before stopping it.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn burstd() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_burstd"));
    c.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

fn router(h: &HaproxyServer) -> HaproxyRouter {
    HaproxyRouter::new(
        RuntimeClient::new(h.runtime_api().parse().unwrap()),
        HaproxyTarget::new(
            HaproxyServer::BACKEND,
            HaproxyServer::PRIMARY,
            HaproxyServer::BURST,
        )
        .unwrap(),
    )
}

async fn wait_for_split(r: &HaproxyRouter, want: Split, what: &str) {
    // Bounded: 300 polls of 50 ms.
    for _ in 0..300 {
        if r.current().await.ok() == Some(want) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what}: the backend never reached {want}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn burstd_bursts_an_haproxy_backend_and_comes_back() {
    let h = HaproxyServer::start(HaproxyOptions::default()).unwrap();
    let port = burst_testkit::free_port().unwrap();
    let child = burstd()
        .env("BURST_LISTEN", format!("127.0.0.1:{port}"))
        .env("BURST_HAPROXY_RUNTIME_API", h.runtime_api())
        .env("BURST_HAPROXY_BACKEND", HaproxyServer::BACKEND)
        .env("BURST_HAPROXY_PRIMARY_SERVER", HaproxyServer::PRIMARY)
        .env("BURST_HAPROXY_BURST_SERVER", HaproxyServer::BURST)
        .env("BURST_TICK", "200ms")
        .env("BURST_WINDOW", "2s")
        .env("BURST_HIGH", "15")
        .env("BURST_LOW", "5")
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = Child(child);
    let r = router(&h);

    // About 50 requests per second through the frontend until told to stop.
    let load = Arc::new(AtomicBool::new(true));
    let generator = {
        let (load, url) = (load.clone(), h.frontend_url());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            // Bounded: at most 60 s of load.
            for _ in 0..3000 {
                if !load.load(Ordering::Relaxed) {
                    return;
                }
                let _ = http.get(&url).send().await;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    wait_for_split(&r, Split::ALL_BURST, "under load").await;
    let http = reqwest::Client::new();
    let ready = http
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = http
        .get(format!("http://127.0.0.1:{port}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains(HaproxyServer::BACKEND), "{metrics}");

    load.store(false, Ordering::Relaxed);
    generator.await.unwrap();
    wait_for_split(&r, Split::ALL_PRIMARY, "after the load stopped").await;

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    for _ in 0..200 {
        if let Some(s) = child.0.try_wait().unwrap() {
            assert!(s.success(), "burstd exited with {s}");
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("burstd did not exit after SIGTERM");
}

#[test]
fn haproxy_flags_are_checked() {
    for (args, message) in [
        (
            vec![
                "--haproxy-runtime-api",
                "unix:/x",
                "--haproxy-backend",
                "app",
                "--haproxy-primary-server",
                "p",
                "--haproxy-burst-server",
                "b",
                "--virtual-service",
                "vs",
            ],
            "--virtual-service",
        ),
        (
            vec![
                "--haproxy-runtime-api",
                "unix:/x",
                "--haproxy-primary-server",
                "p",
                "--haproxy-burst-server",
                "b",
            ],
            "--haproxy-backend",
        ),
        (
            vec!["--haproxy-runtime-api", "/run/haproxy.sock"],
            "must start with `unix:` or `tcp:`",
        ),
        (
            vec![
                "--haproxy-runtime-api",
                "unix:/x",
                "--haproxy-backend",
                "app",
                "--haproxy-primary-server",
                "p",
                "--haproxy-burst-server",
                "p",
            ],
            "must differ from the primary server",
        ),
    ] {
        let out = burstd().arg("run").args(&args).output().unwrap();
        assert!(!out.status.success(), "{args:?} succeeded");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(message), "{args:?}: {err}");
    }
}

/// deploy/haproxy: the HAProxy config is valid for the real haproxy, every variable of the
/// environment file is one `burstd run` knows, and the unit runs `burstd run` with it.
#[test]
fn deploy_example_is_consistent() {
    let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/haproxy");
    let haproxy = burst_testkit::require_binary("haproxy", "haproxy").unwrap();
    let check = Command::new(haproxy)
        .args(["-c", "-f"])
        .arg(dir.join("haproxy.cfg"))
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );

    let help = burstd().args(["run", "--help"]).output().unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let env = std::fs::read_to_string(dir.join("burstd.env")).unwrap();
    let mut keys = 0;
    for line in env.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, _) = line.split_once('=').unwrap();
        assert!(
            help.contains(&format!("env: {key}=")),
            "burstd.env sets {key}, which `burstd run` does not read"
        );
        keys += 1;
    }
    assert!(keys >= 5);
    let unit = std::fs::read_to_string(dir.join("burstd.service")).unwrap();
    assert!(unit.contains("EnvironmentFile=/etc/burst/burstd.env"));
    assert!(unit.contains("ExecStart=/usr/local/bin/burstd run\n"));
    assert!(unit.contains("SupplementaryGroups=haproxy"));
}
