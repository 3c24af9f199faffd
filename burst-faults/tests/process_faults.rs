//! Process fault family: the real `burstd` binary (single-policy mode, leader election on)
//! against the in-process fake API server and a `/metrics` endpoint whose demand the test
//! sets.
//!
//! - SIGTERM during an apply: the route PATCH is held by the API server; SIGTERM arrives
//!   while it is in flight. burstd must finish that tick (the write lands whole, exactly
//!   once), release its Lease and exit 0; the route stays valid.
//! - Leader handover while load crosses the threshold: two replicas share one Lease; the
//!   leader bursts under high load, then the load drops below the low threshold at the
//!   moment the leader is stopped (SIGTERM: the Lease
//!   is released; SIGKILL: it must expire). At every route write, the Lease holder recorded
//!   by the API server at that instant must be the writer (each replica has its own field
//!   manager), writes of the old leader all come before those of the new one, and the new
//!   leader applies the split the new load calls for.
//!
//! Needs the `burstd` binary next to this test's executable (`cargo test --workspace`
//! builds it; alone: `cargo build -p burst-bin --bin burstd`). Rounds repeat for
//! `BURST_FAULTS_BUDGET_SECS` (default: one). Summary line: `process: N passed, N failed`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burst_fake_kube::{FakeKube, Fault, ObjectKey};
use burst_faults::tally::{CaseStats, Family};
use burst_testkit::schema;
use http::Method;
use serde_json::{Value, json};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn burstd_binary() -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    // target/<profile>/deps/process_faults-<hash> → target/<profile>/burstd
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .map(|d| d.join("burstd"))
        .ok_or("no target directory")?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!(
            "{} not found: build it with `cargo build -p burst-bin --bin burstd` (cargo test --workspace does)",
            bin.display()
        ))
    }
}

/// Kills the child on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.0.id().to_string()])
            .status();
    }

    /// Waits for the exit (at most `limit`); returns the status and stderr.
    async fn wait(
        &mut self,
        limit: Duration,
    ) -> Result<(std::process::ExitStatus, String), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.0.try_wait().map_err(|e| e.to_string())? {
                let mut stderr = String::new();
                if let Some(e) = self.0.stderr.as_mut() {
                    let _ = std::io::Read::read_to_string(e, &mut stderr);
                }
                return Ok((s, stderr));
            }
            ensure!(
                Instant::now() < deadline,
                "burstd did not exit within {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn lease_key() -> ObjectKey {
    ObjectKey {
        group: "coordination.k8s.io".into(),
        plural: "leases".into(),
        namespace: Some("burst-system".into()),
        name: "burstd".into(),
    }
}

/// The fake API server, the demand endpoint and a kubeconfig.
struct Cluster {
    fake: FakeKube,
    demand: Arc<AtomicU64>,
    metrics_url: String,
    kubeconfig: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cluster {
    async fn start() -> Cluster {
        let fake = FakeKube::start().await.unwrap();
        fake.insert(
            "virtualservices",
            json!({
                "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                "metadata": {"name": "worker-virtual-service", "namespace": "default"},
                "spec": {"hosts": ["worker-service"], "http": [{"route": [
                    {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                    {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}]}]}
            }),
        )
        .unwrap();
        let demand = Arc::new(AtomicU64::new(5.0f64.to_bits()));
        let d = demand.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_url = format!("http://{}/metrics", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let app =
                axum::Router::new().route(
                    "/metrics",
                    axum::routing::get(move || {
                        let d = d.clone();
                        async move {
                            format!("demand_rps {}\n", f64::from_bits(d.load(Ordering::SeqCst)))
                        }
                    }),
                );
            let _ = axum::serve(listener, app).await;
        });
        let dir = tempfile::tempdir().unwrap();
        let kubeconfig = dir.path().join("kubeconfig");
        std::fs::write(&kubeconfig, fake.kubeconfig("default", "t")).unwrap();
        Cluster {
            fake,
            demand,
            metrics_url,
            kubeconfig,
            _dir: dir,
        }
    }

    fn set_demand(&self, rps: f64) {
        self.demand.store(rps.to_bits(), Ordering::SeqCst);
    }

    fn route(&self) -> Value {
        self.fake
            .object(
                "networking.istio.io",
                "virtualservices",
                Some("default"),
                "worker-virtual-service",
            )
            .unwrap()
    }

    fn burst_weight(&self) -> i64 {
        self.route()["spec"]["http"][0]["route"][1]["weight"]
            .as_i64()
            .unwrap_or(-1)
    }

    fn holder(&self) -> Option<String> {
        self.fake.with_store(|s| {
            s.object(&lease_key())
                .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned))
        })
    }

    /// Route PATCHes that reached the store, as (field manager, status).
    fn route_writes(&self) -> Vec<(String, u16)> {
        self.fake
            .writes()
            .into_iter()
            .filter(|w| w.path.contains("virtualservices"))
            .map(|w| (w.field_manager.unwrap_or_default(), w.status))
            .collect()
    }

    fn burstd(&self, identity: &str) -> Result<Proc, String> {
        let port = burst_testkit::free_port().map_err(|e| e.to_string())?;
        let child = Command::new(burstd_binary()?)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("BURST_LISTEN", format!("127.0.0.1:{port}"))
            .env("BURST_LEASE_NAMESPACE", "burst-system")
            .env("BURST_IDENTITY", identity)
            .env("BURST_FIELD_MANAGER", format!("burstd-{identity}"))
            .env("BURST_LEASE_DURATION", "2s")
            .env("BURST_RENEW_DEADLINE", "1s")
            .env("BURST_RETRY_PERIOD", "200ms")
            .env("BURST_EVENTS", "false")
            .env("BURST_SCRAPE_TARGETS", &self.metrics_url)
            .env("BURST_SCRAPE_METRIC", "demand_rps")
            .env("BURST_SCRAPE_GAUGE", "true")
            .env("BURST_VIRTUAL_SERVICE", "worker-virtual-service")
            .env("BURST_TICK", "100ms")
            .env("BURST_REQUEST_TIMEOUT", "5s")
            .env("BURST_LOG", "info")
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start burstd: {e}"))?;
        Ok(Proc(child))
    }
}

async fn until(limit: Duration, what: &str, f: impl Fn() -> bool) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    while !f() {
        ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

async fn sigterm_during_an_apply() -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let c = Cluster::start().await;
    let mut d = c.burstd("solo")?;
    until(Duration::from_secs(15), "leadership", || {
        c.holder().as_deref() == Some("solo")
    })
    .await?;
    // The next route PATCH is held for 1.5 s by the API server.
    c.fake.inject(
        Fault::delay(Duration::from_millis(1500))
            .on(Method::PATCH)
            .path("virtualservices"),
    );
    c.set_demand(25.0);
    until(Duration::from_secs(10), "the PATCH in flight", || {
        c.fake
            .fired()
            .iter()
            .any(|f| f.method == Method::PATCH && f.path.contains("virtualservices"))
    })
    .await?;
    stats.inject("sigterm_during_patch", 1);
    d.signal("-TERM");
    let (status, stderr) = d.wait(Duration::from_secs(20)).await?;
    ensure!(
        status.success(),
        "burstd exited with {status} after SIGTERM:\n{stderr}"
    );
    let writes = c.route_writes();
    stats.written = writes.len() as u64;
    ensure!(
        writes == [("burstd-solo".to_string(), 200)],
        "want exactly the one held PATCH, completed: {writes:?}\n{stderr}"
    );
    ensure!(
        c.burst_weight() == 100,
        "the in-flight apply did not land: burst weight {}",
        c.burst_weight()
    );
    schema::check(&c.route()).map_err(|e| format!("route invalid after SIGTERM: {e:?}"))?;
    stats.checked = 1;
    ensure!(
        c.holder().is_none(),
        "the Lease was not released: {:?}",
        c.holder()
    );
    Ok(stats)
}

async fn handover(signal: &'static str) -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let c = Cluster::start().await;
    // At every route write, note who holds the Lease at that instant.
    let holders: Arc<Mutex<Vec<Option<String>>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = holders.clone();
    c.fake.inject(
        Fault::mutate(move |store| {
            let h = store
                .object(&lease_key())
                .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_owned));
            sink.lock().unwrap().push(h);
        })
        .on(Method::PATCH)
        .path("virtualservices")
        .times(1_000_000),
    );
    // a leads and bursts under high load.
    c.set_demand(25.0);
    let mut a = c.burstd("a")?;
    until(Duration::from_secs(15), "a leads and bursts", || {
        c.holder().as_deref() == Some("a") && c.burst_weight() == 100
    })
    .await?;
    let mut b = c.burstd("b")?;
    // b runs as a follower for a while: it must not write.
    tokio::time::sleep(Duration::from_millis(800)).await;
    ensure!(
        c.holder().as_deref() == Some("a"),
        "b took the Lease from a live leader"
    );
    // The load falls below the low threshold as the leader goes away.
    c.set_demand(5.0);
    a.signal(signal);
    stats.inject(&format!("leader_{signal}"), 1);
    let _ = a.wait(Duration::from_secs(20)).await?;
    until(
        Duration::from_secs(20),
        "b leads and goes back to primary",
        || c.holder().as_deref() == Some("b") && c.burst_weight() == 0,
    )
    .await?;
    // Hold a moment: nobody else writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = c.route_writes();
    let holders = holders.lock().unwrap().clone();
    stats.written = writes.len() as u64;
    ensure!(
        writes.len() == holders.len(),
        "{} route writes, {} holder records",
        writes.len(),
        holders.len()
    );
    let mut seen_b = false;
    for ((manager, status), holder) in writes.iter().zip(&holders) {
        let writer = manager.trim_start_matches("burstd-");
        ensure!(
            holder.as_deref() == Some(writer),
            "{manager} wrote (status {status}) while the Lease was held by {holder:?}: two writers"
        );
        seen_b |= writer == "b";
        ensure!(
            !(seen_b && writer == "a"),
            "a wrote after b took over: {writes:?}"
        );
        stats.checked += 1;
    }
    // The old leader may still have written the new split between the load change and
    // the signal (it held the Lease then); otherwise the new leader did.
    stats.inject(
        if seen_b {
            "crossing_written_by_new_leader"
        } else {
            "crossing_written_by_old_leader"
        },
        1,
    );
    ensure!(
        writes.first().is_some_and(|w| w.0 == "burstd-a"),
        "a never wrote the burst split: {writes:?}"
    );
    schema::check(&c.route()).map_err(|e| format!("route invalid after handover: {e:?}"))?;
    b.signal("-TERM");
    let (status, stderr) = b.wait(Duration::from_secs(20)).await?;
    ensure!(status.success(), "b exited with {status}:\n{stderr}");
    Ok(stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_faults() {
    burstd_binary().unwrap();
    let budget = burst_faults::budget(Duration::ZERO);
    let started = Instant::now();
    let mut family = Family::new("process");
    loop {
        family.record("sigterm_during_an_apply", sigterm_during_an_apply().await);
        family.record("handover_on_sigterm", handover("-TERM").await);
        family.record("handover_on_sigkill", handover("-KILL").await);
        family.end_round();
        if started.elapsed() >= budget || family.failed() > 0 {
            break;
        }
    }
    family.report();
    assert_eq!(family.failed(), 0, "{:#?}", family.failures());
}
