//! Process fault family: the real `burstd` binary against a real kube-apiserver and etcd
//! (burst-testkit's control plane), with a `/metrics` endpoint whose demand the test sets.
//! Each case has a namespace of its own; the Lease lives in it.
//!
//! - SIGTERM during an apply: the route PATCH is held for 1.5 s by the fault proxy in front
//!   of the server; SIGTERM arrives while it is in flight. burstd must finish that tick (the
//!   write lands whole, exactly once, before the Lease is released), release its Lease and
//!   exit 0; the route stays valid.
//! - Leader handover while load crosses the threshold: two replicas share one Lease; the
//!   leader bursts under high load, then the load drops below the low threshold at the
//!   moment the leader is stopped (SIGTERM: the Lease is released; SIGKILL: it must expire).
//!   Just before every route write reaches the server, the proxy reads the Lease from the
//!   server: its holder must be the writer (each replica has its own field manager). The
//!   old leader's writes all come before the new one's and none comes after its last
//!   renewal plus the renew deadline. From the Lease records the server accepted: after a
//!   SIGKILL the new leader acquires no earlier than `lease_duration` after the old one's
//!   last renewal and no later than `lease_duration + 2 × (retry_period + renew_deadline/2)`
//!   (a candidate notices the last renewal at most one election round late and takes over
//!   at most one round after expiry); after a SIGTERM within one round of the release.
//! - The same handover (SIGKILL) with two operator replicas and Events on: every route
//!   write, status write and Event of either replica reaches the server while the Lease
//!   names it.
//! - Two replicas started at once: when both try to create the Lease, the server answers
//!   one of them 409; exactly one leads, leadership does not flap, only it writes.
//! - Leader cut off from the Lease: the leader's Lease writes fail (500 from its own proxy)
//!   while its route writes would still go through. It must step down within the renew
//!   deadline, and when the load then changes it must not write; the other replica takes
//!   over after expiry and writes the new split.
//! - kube-apiserver restart (operator mode, a private control plane): after the restart a
//!   changed and a new BurstPolicy are acted on: the watch re-establishes. (The restarted
//!   server answers the resumed watch with 410 "too old resource version"; the watcher
//!   lists again.)
//! - etcd restart (operator mode): while etcd is down the leader cannot renew and steps
//!   down; the process stays up; when etcd is back it leads again and acts on a changed
//!   BurstPolicy. SIGTERM while etcd is down again still ends in exit 0.
//!
//! Needs the `burstd` binary next to this test's executable (`cargo test --workspace`
//! builds it; alone: `cargo build -p burst-bin --bin burstd`) and the control plane
//! (`scripts/control-plane.sh build`). Rounds repeat for `BURST_FAULTS_BUDGET_SECS`
//! (default: one). Summary line: `process: N passed, N failed`.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burst_faults::tally::{CaseStats, Family};
use burst_testkit::kube::{
    ApiProxy, ControlPlane, Fault, RecordedWrite, burst_policies, virtual_services,
};
use burst_testkit::schema;
use http::Method;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

/// Lease settings of the handover cases: `(lease_duration, renew_deadline, retry_period)`.
const LEASE: (Duration, Duration, Duration) = (
    Duration::from_secs(2),
    Duration::from_secs(1),
    Duration::from_millis(200),
);

/// One election round at most: the round's own timeout (`renew_deadline / 2`) plus the
/// sleep until the next one (`retry_period`).
fn election_round() -> Duration {
    LEASE.1 / 2 + LEASE.2
}

fn burstd_binary() -> Result<PathBuf, String> {
    burst_testkit::workspace_binary("burstd", "burst-bin")
}

fn err(e: impl std::fmt::Display) -> String {
    e.to_string()
}

/// A running burstd; killed on drop. Its log goes to a file (a pipe nobody reads could fill
/// up and stall it).
struct Proc {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status();
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the exit (at most `limit`); returns the status and the log.
    async fn wait(
        &mut self,
        limit: Duration,
    ) -> Result<(std::process::ExitStatus, String), String> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().map_err(err)? {
                return Ok((s, self.log()));
            }
            ensure!(
                Instant::now() < deadline,
                "burstd did not exit within {limit:?}:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// SIGTERM, then waits for the exit (at most `limit`); fails unless `name` exited 0.
    /// Returns the log.
    async fn stop(&mut self, name: &str, limit: Duration) -> Result<String, String> {
        self.signal("-TERM");
        let (status, log) = self.wait(limit).await?;
        ensure!(status.success(), "{name} exited with {status}:\n{log}");
        Ok(log)
    }

    /// `burstd_leader` from its /metrics (`None`: not answering).
    async fn leader_metric(&self) -> Option<bool> {
        let text = reqwest::get(format!("http://127.0.0.1:{}/metrics", self.port))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("burstd_leader "))
            .map(|v| v.trim() == "1")
    }
}

/// How burstd runs: one policy from flags, or the operator watching the namespace.
#[derive(Clone, Copy)]
enum Mode {
    Single,
    Operator,
}

/// A namespace on a real API server with the worker VirtualService, the demand endpoint and
/// a directory for kubeconfigs and logs.
struct Cluster<'a> {
    cp: &'a ControlPlane,
    admin: kube::Client,
    ns: String,
    demand: Arc<AtomicU64>,
    metrics_url: String,
    dir: tempfile::TempDir,
}

impl<'a> Cluster<'a> {
    async fn start(cp: &'a ControlPlane, prefix: &str) -> Result<Cluster<'a>, String> {
        cp.install_crd_files(&[
            "schemas/istio/crd-all.gen.yaml",
            "deploy/crd/burstpolicies.bursting.dev.yaml",
        ])
        .await?;
        let ns = cp.create_namespace(prefix).await?;
        let admin = cp.admin_client().await?;
        let demand = Arc::new(AtomicU64::new(5.0f64.to_bits()));
        let d = demand.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(err)?;
        let metrics_url = format!("http://{}/metrics", listener.local_addr().map_err(err)?);
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
        let c = Cluster {
            cp,
            admin,
            ns,
            demand,
            metrics_url,
            dir: tempfile::tempdir().map_err(err)?,
        };
        c.create_route("worker-virtual-service").await?;
        Ok(c)
    }

    /// A new admin client (after a restart of the API server).
    async fn reconnect(&mut self) -> Result<(), String> {
        self.admin = self.cp.admin_client().await?;
        Ok(())
    }

    async fn create_route(&self, name: &str) -> Result<(), String> {
        let vs: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {"hosts": ["worker-service"], "http": [{"route": [
                {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
                {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}]}]}
        }))
        .map_err(err)?;
        Api::<DynamicObject>::namespaced_with(self.admin.clone(), &self.ns, &virtual_services())
            .create(&PostParams::default(), &vs)
            .await
            .map_err(|e| format!("cannot create VirtualService {name}: {e}"))?;
        Ok(())
    }

    fn policies(&self) -> Api<DynamicObject> {
        Api::namespaced_with(self.admin.clone(), &self.ns, &burst_policies())
    }

    /// Creates BurstPolicy `name` for route `target` (ticks of 100 ms, the demand gauge).
    async fn create_policy(&self, name: &str, target: &str) -> Result<(), String> {
        let p: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
            "metadata": {"name": name, "namespace": self.ns},
            "spec": {
                "source": {"scrape": {"targets": [self.metrics_url], "metric": "demand_rps", "mode": "gauge"}},
                "policy": {"tick": "100ms"},
                "target": {"name": target}
            }
        }))
        .map_err(err)?;
        self.policies()
            .create(&PostParams::default(), &p)
            .await
            .map_err(|e| format!("cannot create BurstPolicy {name}: {e}"))?;
        Ok(())
    }

    /// Moves the thresholds of BurstPolicy `name` above any demand the tests set: the
    /// policy then wants everything on the primary.
    async fn raise_thresholds(&self, name: &str) -> Result<(), String> {
        self.policies()
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"policy": {"high": 400, "low": 300}}})),
            )
            .await
            .map_err(|e| format!("cannot change BurstPolicy {name}: {e}"))?;
        Ok(())
    }

    fn set_demand(&self, rps: f64) {
        self.demand.store(rps.to_bits(), Ordering::SeqCst);
    }

    async fn route(&self, name: &str) -> Result<Value, String> {
        let vs = Api::<DynamicObject>::namespaced_with(
            self.admin.clone(),
            &self.ns,
            &virtual_services(),
        )
        .get(name)
        .await
        .map_err(|e| format!("cannot read VirtualService {name}: {e}"))?;
        serde_json::to_value(vs).map_err(err)
    }

    /// The burst weight of route `name` (-1: unreadable).
    async fn burst_weight(&self, name: &str) -> i64 {
        match self.route(name).await {
            Ok(r) => r["spec"]["http"][0]["route"][1]["weight"]
                .as_i64()
                .unwrap_or(-1),
            Err(_) => -1,
        }
    }

    async fn holder(&self) -> Option<String> {
        Api::<Lease>::namespaced(self.admin.clone(), &self.ns)
            .get_opt("burstd")
            .await
            .ok()
            .flatten()
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
    }

    /// Whether `identity` holds the Lease and the worker route sends `weight` % to burst.
    async fn leads_at(&self, identity: &str, weight: i64) -> bool {
        self.holder().await.as_deref() == Some(identity)
            && self.burst_weight("worker-virtual-service").await == weight
    }

    /// burstd as `identity` through `proxy` with the admin token, Lease settings [`LEASE`].
    fn burstd_via(&self, identity: &str, proxy: &ApiProxy, mode: Mode) -> Result<Proc, String> {
        let kubeconfig = proxy.kubeconfig(self.cp.admin_token(), &self.ns);
        self.burstd(identity, &kubeconfig, mode, LEASE)
    }

    /// burstd as `identity` straight to the server with the admin token.
    fn burstd_direct(
        &self,
        identity: &str,
        mode: Mode,
        lease: (Duration, Duration, Duration),
    ) -> Result<Proc, String> {
        let kubeconfig = self.cp.kubeconfig(self.cp.admin_token(), &self.ns);
        self.burstd(identity, &kubeconfig, mode, lease)
    }

    /// burstd as `identity` with `kubeconfig`, Lease settings `lease`.
    fn burstd(
        &self,
        identity: &str,
        kubeconfig: &str,
        mode: Mode,
        lease: (Duration, Duration, Duration),
    ) -> Result<Proc, String> {
        let port = burst_testkit::free_port().map_err(err)?;
        let kc = self.dir.path().join(format!("kubeconfig-{identity}"));
        std::fs::write(&kc, kubeconfig).map_err(err)?;
        let log = self.dir.path().join(format!("burstd-{identity}.log"));
        let out = std::fs::File::create(&log).map_err(err)?;
        let ms = |d: Duration| format!("{}ms", d.as_millis());
        let mut cmd = Command::new(burstd_binary()?);
        cmd.env_clear()
            .env("KUBECONFIG", &kc)
            .env("BURST_LISTEN", format!("127.0.0.1:{port}"))
            .env("BURST_LEASE_NAMESPACE", &self.ns)
            .env("BURST_IDENTITY", identity)
            .env("BURST_FIELD_MANAGER", format!("burstd-{identity}"))
            .env("BURST_LEASE_DURATION", ms(lease.0))
            .env("BURST_RENEW_DEADLINE", ms(lease.1))
            .env("BURST_RETRY_PERIOD", ms(lease.2))
            .env("BURST_EVENTS", matches!(mode, Mode::Operator).to_string())
            .env("BURST_REQUEST_TIMEOUT", "5s")
            .env("BURST_LOG", "info");
        match mode {
            Mode::Single => {
                cmd.env("BURST_SCRAPE_TARGETS", &self.metrics_url)
                    .env("BURST_SCRAPE_METRIC", "demand_rps")
                    .env("BURST_SCRAPE_GAUGE", "true")
                    .env("BURST_VIRTUAL_SERVICE", "worker-virtual-service")
                    .env("BURST_NAMESPACE", &self.ns)
                    .env("BURST_TICK", "100ms")
                    .arg("run");
            }
            Mode::Operator => {
                cmd.env("BURST_WATCH_NAMESPACE", &self.ns)
                    .env("BURST_STATUS_INTERVAL", "500ms")
                    .arg("operator");
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(out)
            .spawn()
            .map_err(|e| format!("cannot start burstd: {e}"))?;
        Ok(Proc { child, log, port })
    }
}

/// Polls `f` every 20 ms until it holds; fails after `limit`.
async fn until<F, Fut>(limit: Duration, what: &str, mut f: F) -> Result<(), String>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while !f().await {
        ensure!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

fn route_writes(writes: &[RecordedWrite]) -> Vec<(String, u16)> {
    writes
        .iter()
        .filter(|w| w.path.contains("virtualservices"))
        .map(|w| (w.field_manager.clone().unwrap_or_default(), w.status))
        .collect()
}

/// A Lease record the server accepted.
#[derive(Debug, Clone)]
struct LeaseRecord {
    holder: Option<String>,
    acquire: Option<Timestamp>,
    renew: Option<Timestamp>,
}

/// Lease holders read just before route writes, with the time of the read.
type HolderLog = Arc<Mutex<Vec<(Timestamp, Option<String>)>>>;

/// Every Lease record the server accepted (create or update), in order.
fn lease_records(writes: &[RecordedWrite]) -> Vec<LeaseRecord> {
    writes
        .iter()
        .filter(|w| w.path.contains("/leases") && (w.status == 200 || w.status == 201))
        .filter_map(|w| serde_json::from_value::<Lease>(w.body.clone()).ok())
        .filter_map(|l| l.spec)
        .map(|s| LeaseRecord {
            holder: s.holder_identity.filter(|h| !h.is_empty()),
            acquire: s.acquire_time.map(|t| t.0),
            renew: s.renew_time.map(|t| t.0),
        })
        .collect()
}

fn since(later: Timestamp, earlier: Timestamp) -> f64 {
    later.duration_since(earlier).as_secs_f64()
}

/// What burstd logged about the watch and the Lease, for the run's output.
fn log_summary(log: &str) -> String {
    let count = |needle: &str| log.lines().filter(|l| l.contains(needle)).count();
    format!(
        "watch errors {}, lease rounds failed {} (timed out {}), stepped down {}, became leader {}",
        count("watching BurstPolicies failed"),
        count("lease round failed"),
        count("lease round timed out"),
        count("stepping down"),
        count("became leader"),
    )
}

/// Runs `f` on a blocking thread (control-plane restarts block).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f).await.map_err(err)?
}

async fn sigterm_during_an_apply() -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let cp = ControlPlane::shared()?;
    let c = Cluster::start(cp, "sigterm").await?;
    let proxy = ApiProxy::start(cp).await?;
    let mut d = c.burstd_via("solo", &proxy, Mode::Single)?;
    until(Duration::from_secs(15), "leadership", || async {
        c.holder().await.as_deref() == Some("solo")
    })
    .await?;
    // The next route PATCH is held for 1.5 s on its way to the server.
    proxy.inject(
        Fault::delay(Duration::from_millis(1500))
            .on(Method::PATCH)
            .path("virtualservices"),
    );
    c.set_demand(25.0);
    until(Duration::from_secs(10), "the PATCH in flight", || async {
        proxy
            .fired()
            .iter()
            .any(|f| f.method == Method::PATCH && f.path.contains("virtualservices"))
    })
    .await?;
    stats.inject("sigterm_during_patch", 1);
    d.signal("-TERM");
    let (status, log) = d.wait(Duration::from_secs(20)).await?;
    ensure!(
        status.success(),
        "burstd exited with {status} after SIGTERM:\n{log}"
    );
    let writes = proxy.writes();
    let route = route_writes(&writes);
    stats.written = route.len() as u64;
    ensure!(
        route == [("burstd-solo".to_string(), 200)],
        "want exactly the one held PATCH, completed: {route:?}\n{log}"
    );
    let weight = c.burst_weight("worker-virtual-service").await;
    ensure!(
        weight == 100,
        "the in-flight apply did not land: burst weight {weight}"
    );
    schema::check(&c.route("worker-virtual-service").await?)
        .map_err(|e| format!("route invalid after SIGTERM: {e:?}"))?;
    stats.checked = 1;
    ensure!(
        c.holder().await.is_none(),
        "the Lease was not released: {:?}",
        c.holder().await
    );
    // The release is the last Lease write, after the held PATCH completed.
    let patch_at = writes
        .iter()
        .position(|w| w.path.contains("virtualservices"));
    let release_at = writes
        .iter()
        .rposition(|w| w.path.contains("/leases") && w.status == 200);
    ensure!(
        patch_at < release_at,
        "the Lease was released before the held PATCH completed: {:?}",
        writes
            .iter()
            .map(|w| (&w.method, &w.path, w.status))
            .collect::<Vec<_>>()
    );
    Ok(stats)
}

/// Before every route PATCH through `proxy` reaches the server, reads the Lease's holder
/// from the server and records it with the time.
fn record_holders(proxy: &ApiProxy, ns: &str) -> HolderLog {
    record_holders_on(proxy, ns, &[(Method::PATCH, "virtualservices")])
}

/// [`record_holders`] for the requests matching any of `(method, path part)`.
fn record_holders_on(proxy: &ApiProxy, ns: &str, on: &[(Method, &str)]) -> HolderLog {
    let holders = HolderLog::default();
    for (method, path) in on {
        let sink = holders.clone();
        let ns = ns.to_owned();
        proxy.inject(
            Fault::before(move |admin| {
                let sink = sink.clone();
                let ns = ns.clone();
                async move {
                    let holder = Api::<Lease>::namespaced(admin, &ns)
                        .get_opt("burstd")
                        .await
                        .ok()
                        .flatten()
                        .and_then(|l| l.spec)
                        .and_then(|s| s.holder_identity);
                    sink.lock().unwrap().push((Timestamp::now(), holder));
                }
            })
            .on(method.clone())
            .path(*path)
            .times(1_000_000),
        );
    }
    holders
}

async fn handover(signal: &'static str) -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let cp = ControlPlane::shared()?;
    let c = Cluster::start(cp, "handover").await?;
    let proxy = ApiProxy::start(cp).await?;
    let holders = record_holders(&proxy, &c.ns);
    // a leads and bursts under high load.
    c.set_demand(25.0);
    let mut a = c.burstd_via("a", &proxy, Mode::Single)?;
    until(Duration::from_secs(15), "a leads and bursts", || async {
        c.leads_at("a", 100).await
    })
    .await?;
    let mut b = c.burstd_via("b", &proxy, Mode::Single)?;
    // b runs as a follower for a while: it must not write.
    tokio::time::sleep(Duration::from_millis(800)).await;
    ensure!(
        c.holder().await.as_deref() == Some("a"),
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
        || async { c.leads_at("b", 0).await },
    )
    .await?;
    // Hold a moment: nobody else writes.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let writes = proxy.writes();
    let route = route_writes(&writes);
    let holders = holders.lock().unwrap().clone();
    stats.written = route.len() as u64;
    ensure!(
        route.len() == holders.len(),
        "{} route writes, {} holder records",
        route.len(),
        holders.len()
    );
    // The Lease history as the server accepted it.
    let records = lease_records(&writes);
    let last_of_a = records
        .iter()
        .rposition(|r| r.holder.as_deref() == Some("a"))
        .ok_or("no Lease record of a")?;
    let a_renewed = records[last_of_a]
        .renew
        .ok_or("a's last Lease record has no renewTime")?;
    let b_acquired = records
        .iter()
        .find(|r| r.holder.as_deref() == Some("b"))
        .and_then(|r| r.acquire)
        .ok_or("no Lease record of b with acquireTime")?;
    let renew_deadline = LEASE.1.as_secs_f64();
    let mut seen_b = false;
    for ((manager, status), (at, holder)) in route.iter().zip(&holders) {
        let writer = manager.trim_start_matches("burstd-");
        ensure!(
            holder.as_deref() == Some(writer),
            "{manager} wrote (status {status}) while the Lease was held by {holder:?}: two writers"
        );
        seen_b |= writer == "b";
        ensure!(
            !(seen_b && writer == "a"),
            "a wrote after b took over: {route:?}"
        );
        ensure!(
            writer != "a" || since(*at, a_renewed) < renew_deadline,
            "a wrote {:.3} s after its last renewal, past its renew deadline",
            since(*at, a_renewed)
        );
        ensure!(
            writer != "b" || *at >= b_acquired,
            "b wrote before it acquired the Lease"
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
        route.first().is_some_and(|w| w.0 == "burstd-a"),
        "a never wrote the burst split: {route:?}"
    );
    // How fast b took over, from the records on the server.
    let (lease_duration, round) = (LEASE.0.as_secs_f64(), election_round().as_secs_f64());
    if signal == "-KILL" {
        let gap = since(b_acquired, a_renewed);
        let bound = lease_duration + 2.0 * round;
        ensure!(
            (lease_duration..=bound).contains(&gap),
            "b acquired {gap:.3} s after a's last renewal; the settings promise {lease_duration} s to {bound:.1} s"
        );
        eprintln!(
            "process: SIGKILL handover {gap:.3} s after the last renewal (bound {bound:.1} s)"
        );
    } else {
        let release = records[last_of_a..]
            .iter()
            .find(|r| r.holder.is_none())
            .and_then(|r| r.renew)
            .ok_or("a did not release the Lease on SIGTERM")?;
        let gap = since(b_acquired, release);
        ensure!(
            (0.0..=round).contains(&gap),
            "b acquired {gap:.3} s after a released the Lease; want within one round ({round:.1} s)"
        );
        eprintln!("process: SIGTERM handover {gap:.3} s after the release (bound {round:.1} s)");
    }
    schema::check(&c.route("worker-virtual-service").await?)
        .map_err(|e| format!("route invalid after handover: {e:?}"))?;
    b.stop("b", Duration::from_secs(20)).await?;
    Ok(stats)
}

/// The leader can still write routes but no longer its Lease: it must stop writing within
/// its renew deadline, before anybody else may take over.
async fn leader_cut_off_from_the_lease() -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let cp = ControlPlane::shared()?;
    let c = Cluster::start(cp, "cutoff").await?;
    // One proxy per replica, so the fault hits the leader only.
    let (pa, pb) = (ApiProxy::start(cp).await?, ApiProxy::start(cp).await?);
    c.set_demand(25.0);
    let mut a = c.burstd_via("a", &pa, Mode::Single)?;
    until(Duration::from_secs(15), "a leads and bursts", || async {
        c.leads_at("a", 100).await
    })
    .await?;
    let mut b = c.burstd_via("b", &pb, Mode::Single)?;
    until(Duration::from_secs(15), "b follows", || async {
        b.leader_metric().await == Some(false)
    })
    .await?;
    let before = pa.writes().len();
    pa.inject(
        Fault::status(500)
            .on(Method::PUT)
            .path("/leases/")
            .times(1_000_000),
    );
    stats.inject("lease_writes_refused", 1);
    until(
        LEASE.1 + election_round() + Duration::from_secs(5),
        "a steps down",
        || async { a.leader_metric().await == Some(false) },
    )
    .await?;
    ensure!(
        c.holder().await.as_deref() == Some("a"),
        "the Lease changed hands before a stepped down: {:?}",
        c.holder().await
    );
    // Now a would write the new split if it still believed it leads.
    c.set_demand(5.0);
    until(
        Duration::from_secs(20),
        "b leads and goes back to primary",
        || async { c.leads_at("b", 0).await },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let a_route = route_writes(&pa.writes()[before..]);
    ensure!(
        a_route.is_empty(),
        "a wrote the route after it lost the Lease: {a_route:?}"
    );
    let b_route = route_writes(&pb.writes());
    ensure!(
        b_route.iter().all(|(m, s)| m == "burstd-b" && *s == 200) && !b_route.is_empty(),
        "b's route writes: {b_route:?}"
    );
    stats.written = b_route.len() as u64;
    stats.checked = 1;
    ensure!(a.running(), "a exited:\n{}", a.log());
    for (name, p) in [("b", &mut b), ("a", &mut a)] {
        p.stop(name, Duration::from_secs(20)).await?;
    }
    Ok(stats)
}

async fn watch_after_apiserver_restart() -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let cp = Arc::new(blocking(ControlPlane::start).await?);
    let mut c = Cluster::start(&cp, "restart").await?;
    c.create_route("other-virtual-service").await?;
    c.create_policy("worker", "worker-virtual-service").await?;
    c.set_demand(25.0);
    // Lease settings that outlast the restart: what is tested is the watch.
    let lease = (
        Duration::from_secs(30),
        Duration::from_secs(20),
        Duration::from_millis(500),
    );
    let mut d = c.burstd_direct("op", Mode::Operator, lease)?;
    until(Duration::from_secs(20), "the operator bursts", || async {
        c.burst_weight("worker-virtual-service").await == 100
    })
    .await?;
    let restarting = cp.clone();
    blocking(move || restarting.restart_apiserver()).await?;
    stats.inject("apiserver_restart", 1);
    c.reconnect().await?;
    // A changed and a new policy, both only visible through a watch made after the restart.
    c.raise_thresholds("worker").await?;
    c.create_policy("other", "other-virtual-service").await?;
    until(
        Duration::from_secs(30),
        "the changed policy back to primary and the new one bursting",
        || async {
            c.burst_weight("worker-virtual-service").await == 0
                && c.burst_weight("other-virtual-service").await == 100
        },
    )
    .await?;
    stats.written = 2;
    stats.checked = 1;
    ensure!(d.running(), "burstd exited:\n{}", d.log());
    let log = d.stop("burstd", Duration::from_secs(30)).await?;
    eprintln!("process: apiserver restart: {}", log_summary(&log));
    ensure!(
        c.holder().await.is_none(),
        "the Lease was not released: {:?}",
        c.holder().await
    );
    Ok(stats)
}

/// Stops etcd of `cp` (a blocking call, off the runtime's threads).
async fn stop_etcd(cp: &Arc<ControlPlane>) -> Result<(), String> {
    let stopping = cp.clone();
    blocking(move || {
        stopping.stop_etcd();
        Ok(())
    })
    .await
}

async fn etcd_restart() -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let cp = Arc::new(blocking(ControlPlane::start).await?);
    let c = Cluster::start(&cp, "etcd").await?;
    c.create_policy("worker", "worker-virtual-service").await?;
    c.set_demand(25.0);
    let mut d = c.burstd_direct("op", Mode::Operator, LEASE)?;
    until(Duration::from_secs(20), "the operator bursts", || async {
        c.burst_weight("worker-virtual-service").await == 100
            && d.leader_metric().await == Some(true)
    })
    .await?;
    stop_etcd(&cp).await?;
    stats.inject("etcd_stopped", 1);
    // Renewals cannot be stored: the leader steps down within its renew deadline.
    let stepped_down = until(
        LEASE.1 + election_round() + Duration::from_secs(10),
        "the leader steps down while etcd is down",
        || async { d.leader_metric().await == Some(false) },
    )
    .await;
    let starting = cp.clone();
    blocking(move || starting.start_etcd()).await?;
    stepped_down?;
    ensure!(
        d.running(),
        "burstd exited while etcd was down:\n{}",
        d.log()
    );
    until(
        Duration::from_secs(30),
        "the leader leads again",
        || async { d.leader_metric().await == Some(true) },
    )
    .await?;
    c.raise_thresholds("worker").await?;
    until(
        Duration::from_secs(30),
        "the changed policy back to primary",
        || async { c.burst_weight("worker-virtual-service").await == 0 },
    )
    .await?;
    stats.written = 1;
    stats.checked = 1;
    // SIGTERM while etcd is down again (by the time the stop returns, burstd has stepped
    // down): shutting down needs nothing from the server, so burstd still exits 0.
    stop_etcd(&cp).await?;
    stats.inject("sigterm_while_etcd_down", 1);
    let log = d
        .stop(
            "burstd on SIGTERM while etcd was down",
            Duration::from_secs(40),
        )
        .await?;
    ensure!(
        log.contains("operator stopped"),
        "burstd on SIGTERM while etcd was down did not log \"operator stopped\":\n{log}"
    );
    eprintln!("process: etcd restart: {}", log_summary(&log));
    Ok(stats)
}

/// Two replicas start at once on a namespace without a Lease: both may try to create it;
/// the server lets one create succeed (the other gets 409) and only that one writes.
async fn simultaneous_start() -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let cp = ControlPlane::shared()?;
    let c = Cluster::start(cp, "race").await?;
    let proxy = ApiProxy::start(cp).await?;
    let holders = record_holders(&proxy, &c.ns);
    c.set_demand(25.0);
    let mut a = c.burstd_via("a", &proxy, Mode::Single)?;
    let mut b = c.burstd_via("b", &proxy, Mode::Single)?;
    until(Duration::from_secs(20), "one of them bursts", || async {
        c.burst_weight("worker-virtual-service").await == 100
    })
    .await?;
    // Several election rounds: leadership must not flap between them.
    tokio::time::sleep(LEASE.0).await;
    let holder = c.holder().await.ok_or("nobody holds the Lease")?;
    let (la, lb) = (a.leader_metric().await, b.leader_metric().await);
    ensure!(
        (la, lb) == (Some(holder == "a"), Some(holder == "b")),
        "the Lease is held by {holder} but a says leader={la:?}, b says leader={lb:?}"
    );
    let writes = proxy.writes();
    let creates: Vec<u16> = writes
        .iter()
        .filter(|w| w.method == Method::POST && w.path.ends_with("/leases"))
        .map(|w| w.status)
        .collect();
    ensure!(
        creates.iter().filter(|s| **s == 201).count() == 1
            && creates.iter().all(|s| *s == 201 || *s == 409),
        "Lease creates answered {creates:?}; want one 201 and at most one 409"
    );
    stats.inject(
        if creates.len() == 2 {
            "create_race_409"
        } else {
            "create_no_race"
        },
        1,
    );
    let records = lease_records(&writes);
    ensure!(
        records
            .iter()
            .all(|r| r.holder.as_deref() == Some(holder.as_str())),
        "the Lease changed hands without a fault: {records:?}"
    );
    let route = route_writes(&writes);
    let holders = holders.lock().unwrap().clone();
    ensure!(
        route.len() == holders.len() && !route.is_empty(),
        "{} route writes, {} holder records",
        route.len(),
        holders.len()
    );
    for ((manager, status), (_, h)) in route.iter().zip(&holders) {
        ensure!(
            *manager == format!("burstd-{holder}") && h.as_deref() == Some(holder.as_str()),
            "{manager} wrote (status {status}) while {h:?} held the Lease"
        );
        stats.checked += 1;
    }
    stats.written = route.len() as u64;
    for (name, p) in [("a", &mut a), ("b", &mut b)] {
        p.stop(name, Duration::from_secs(20)).await?;
    }
    Ok(stats)
}

/// Two operator replicas, each through a proxy of its own, Events on; the leader is killed
/// as the load falls. Every route write, status write and Event of either replica must
/// reach the server while the Lease names that replica.
async fn operator_handover_on_sigkill() -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    let cp = ControlPlane::shared()?;
    let c = Cluster::start(cp, "ophandover").await?;
    c.create_policy("worker", "worker-virtual-service").await?;
    let (pa, pb) = (ApiProxy::start(cp).await?, ApiProxy::start(cp).await?);
    let writes_of = [(Method::PATCH, ""), (Method::POST, "/events")];
    let (ha, hb) = (
        record_holders_on(&pa, &c.ns, &writes_of),
        record_holders_on(&pb, &c.ns, &writes_of),
    );
    let mode = || async {
        c.policies()
            .get_status("worker")
            .await
            .ok()
            .and_then(|p| p.data["status"]["mode"].as_str().map(str::to_owned))
    };
    c.set_demand(25.0);
    let mut a = c.burstd_via("a", &pa, Mode::Operator)?;
    until(
        Duration::from_secs(20),
        "a bursts and reports it",
        || async { c.leads_at("a", 100).await && mode().await.as_deref() == Some("Burst") },
    )
    .await?;
    let mut b = c.burstd_via("b", &pb, Mode::Operator)?;
    until(Duration::from_secs(15), "b follows", || async {
        b.leader_metric().await == Some(false)
    })
    .await?;
    c.set_demand(5.0);
    a.signal("-KILL");
    stats.inject("operator_leader_-KILL", 1);
    let _ = a.wait(Duration::from_secs(20)).await?;
    until(
        Duration::from_secs(20),
        "b goes back to primary and reports it",
        || async { c.leads_at("b", 0).await && mode().await.as_deref() == Some("Primary") },
    )
    .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (name, proxy, holders) in [("a", &pa, &ha), ("b", &pb, &hb)] {
        let writes: Vec<RecordedWrite> = proxy
            .writes()
            .into_iter()
            .filter(|w| !w.path.contains("/leases"))
            .collect();
        let holders = holders.lock().unwrap().clone();
        ensure!(
            writes.len() == holders.len(),
            "{name}: {} writes, {} holder records",
            writes.len(),
            holders.len()
        );
        for (_, h) in &holders {
            ensure!(
                h.as_deref() == Some(name),
                "{name} wrote while the Lease was held by {h:?}: {:?}",
                writes
                    .iter()
                    .map(|w| (&w.method, &w.path, w.status))
                    .collect::<Vec<_>>()
            );
        }
        let count = |part: &str| writes.iter().filter(|w| w.path.contains(part)).count();
        let (routes, statuses, events) = (
            count("virtualservices"),
            count("burstpolicies/worker/status"),
            count("/events"),
        );
        ensure!(
            routes > 0 && statuses > 0 && events > 0,
            "{name} wrote {routes} routes, {statuses} statuses, {events} Events; want each"
        );
        let manager = format!("burstd-{name}");
        ensure!(
            writes
                .iter()
                .filter(|w| w.method == Method::PATCH)
                .all(|w| w.field_manager.as_deref() == Some(manager.as_str()) && w.status == 200),
            "{name}'s PATCHes: {:?}",
            writes
                .iter()
                .map(|w| (&w.path, &w.field_manager, w.status))
                .collect::<Vec<_>>()
        );
        ensure!(
            writes
                .iter()
                .filter(|w| w.path.contains("/events"))
                .all(|w| w.body["reportingInstance"] == name && w.status == 201),
            "{name}'s Events are not reported as {name}"
        );
        stats.checked += holders.len() as u64;
        stats.written += writes.len() as u64;
    }
    b.stop("b", Duration::from_secs(20)).await?;
    Ok(stats)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_faults() {
    burstd_binary().unwrap();
    ControlPlane::shared().expect("the real control plane");
    let budget = burst_faults::budget(Duration::ZERO);
    let started = Instant::now();
    let mut family = Family::new("process");
    loop {
        family.record("sigterm_during_an_apply", sigterm_during_an_apply().await);
        family.record("simultaneous_start", simultaneous_start().await);
        family.record("handover_on_sigterm", handover("-TERM").await);
        family.record("handover_on_sigkill", handover("-KILL").await);
        family.record(
            "operator_handover_on_sigkill",
            operator_handover_on_sigkill().await,
        );
        family.record(
            "leader_cut_off_from_the_lease",
            leader_cut_off_from_the_lease().await,
        );
        family.record(
            "watch_after_apiserver_restart",
            watch_after_apiserver_restart().await,
        );
        family.record("etcd_restart", etcd_restart().await);
        family.end_round();
        if started.elapsed() >= budget || family.failed() > 0 {
            break;
        }
    }
    family.report();
    assert_eq!(family.failed(), 0, "{:#?}", family.failures());
}
