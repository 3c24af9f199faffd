//! The shared EndpointSlice watchers ([`EndpointWatchers`]) and the ready-endpoint signals
//! ([`WithReadyEndpoints`]) against a real kube-apiserver, plus PodSource's latency and
//! error-ratio signals from pods that serve Istio's histogram and response codes.
//!
//! As in `pods.rs`, slices hold pod-network addresses (the API server refuses loopback
//! ones) and the pod source scrapes each pod's local server through a URL rewrite.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, bail};
use burst_core::{MetricSource, Reading, Signals, Timestamp};
use burst_pods::{
    EndpointWatcher, EndpointWatchers, PodConfig, PodSource, ReadyEndpoint, UrlRewrite,
    WithReadyEndpoints,
};
use burst_prom::{HttpClients, HttpConfig, ManualClock, ScrapeSignals};
use burst_testkit::kube::ControlPlane;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::json;
use url::Url;

const WAIT: Duration = Duration::from_secs(20);

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane")
}

/// A sidecar-like server: Istio's latency histogram and request counter by response
/// code, growing by the per-second amounts the test adds.
struct Pod {
    name: String,
    address: String,
    port: u16,
    /// Cumulative counts per bucket bound (ms: 10, 100, 500, +Inf) and per code (200, 503).
    counts: Arc<Mutex<([f64; 4], [f64; 2])>>,
    server: tokio::task::JoinHandle<()>,
}

impl Pod {
    async fn start(name: &str) -> Result<Pod> {
        let port = burst_testkit::free_port()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let counts = Arc::new(Mutex::new(([0.0; 4], [0.0; 2])));
        let state = counts.clone();
        let app = axum::Router::new().route(
            "/stats/prometheus",
            axum::routing::get(move || {
                let (b, c) = *state.lock().unwrap();
                async move {
                    let mut s = String::from(
                        "# TYPE istio_request_duration_milliseconds histogram\n",
                    );
                    for (le, v) in ["10", "100", "500", "+Inf"].iter().zip(b) {
                        s.push_str(&format!(
                            "istio_request_duration_milliseconds_bucket{{reporter=\"destination\",le=\"{le}\"}} {v}\n"
                        ));
                    }
                    s.push_str("# TYPE istio_requests_total counter\n");
                    for (code, v) in ["200", "503"].iter().zip(c) {
                        s.push_str(&format!(
                            "istio_requests_total{{reporter=\"destination\",response_code=\"{code}\"}} {v}\n"
                        ));
                    }
                    s
                }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Pod {
            name: name.to_owned(),
            address: pod_address(),
            port,
            counts,
            server,
        })
    }

    /// One second of traffic: `fast` requests under 10 ms, `slow` in (100, 500] ms,
    /// `errors` of them answered 503.
    fn add(&self, fast: f64, slow: f64, errors: f64) {
        let mut c = self.counts.lock().unwrap();
        let per_bucket = [fast, 0.0, slow, 0.0];
        let mut cum = 0.0;
        for (v, inc) in c.0.iter_mut().zip(per_bucket) {
            cum += inc;
            *v += cum;
        }
        c.1[0] += fast + slow - errors;
        c.1[1] += errors;
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn pod_address() -> String {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("10.245.{}.{}", n / 250, n % 250 + 1)
}

/// A namespace; Services are created on demand (no selector: the test writes slices).
struct Cluster {
    ns: String,
    client: kube::Client,
    local: Arc<Mutex<HashMap<String, u16>>>,
}

impl Cluster {
    async fn new(prefix: &str) -> Result<Cluster> {
        let cp = cp();
        let ns = cp
            .create_namespace(prefix)
            .await
            .map_err(anyhow::Error::msg)?;
        let client = cp.admin_client().await.map_err(anyhow::Error::msg)?;
        Ok(Cluster {
            ns,
            client,
            local: Arc::default(),
        })
    }

    async fn service(&self, name: &str) -> Result<()> {
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": name},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}
        }))?;
        Api::<Service>::namespaced(self.client.clone(), &self.ns)
            .create(&PostParams::default(), &svc)
            .await?;
        Ok(())
    }

    fn slices(&self) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// Writes (server-side apply) the slice of `service` holding `pods` with readiness.
    async fn set_slice(&self, service: &str, pods: &[(&Pod, bool)]) -> Result<()> {
        let endpoints: Vec<_> = pods
            .iter()
            .map(|(p, ready)| {
                self.local.lock().unwrap().insert(p.address.clone(), p.port);
                json!({
                    "addresses": [p.address],
                    "conditions": {"ready": ready},
                    "targetRef": {"kind": "Pod", "name": p.name, "namespace": self.ns},
                })
            })
            .collect();
        let slice = json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{service}-1"),
                "namespace": self.ns,
                "labels": {"kubernetes.io/service-name": service},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": "http-envoy-prom", "port": 15090, "protocol": "TCP"}],
        });
        self.slices()
            .patch(
                &format!("{service}-1"),
                &PatchParams::apply("burst-pods-test").force(),
                &Patch::Apply(slice),
            )
            .await?;
        Ok(())
    }

    fn rewrite(&self) -> UrlRewrite {
        let ports = self.local.clone();
        Arc::new(move |endpoint: &ReadyEndpoint, mut url: Url| {
            if let Some(port) = ports.lock().unwrap().get(&endpoint.address) {
                url.set_host(Some("127.0.0.1")).unwrap();
                url.set_port(Some(*port)).unwrap();
            }
            url
        })
    }

    fn config(&self, service: &str) -> PodConfig {
        PodConfig {
            service: service.into(),
            namespace: self.ns.clone(),
            window: Duration::from_secs(15),
            http: HttpConfig {
                timeout: Duration::from_millis(500),
                ..HttpConfig::default()
            },
            signals: ScrapeSignals::istio(),
            ..PodConfig::default()
        }
    }
}

async fn wait_count(watcher: &EndpointWatcher, n: usize) -> Result<()> {
    if watcher.wait_for(WAIT, |e| e.len() == n).await.is_none() {
        bail!(
            "{}/{}: not {n} ready endpoints within {WAIT:?} (has {})",
            watcher.namespace(),
            watcher.service(),
            watcher.ready_count()
        );
    }
    Ok(())
}

fn signals(r: Reading) -> Result<Signals> {
    match r {
        Reading::Value(o) => Ok(o.signals),
        Reading::NoData { reason } => bail!("expected a value, got no data: {reason}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_on_one_service_share_one_watch_until_the_last_drops_it() -> Result<()> {
    let c = Cluster::new("shared-watch").await?;
    c.service("checkout").await?;
    c.service("checkout-burst").await?;
    let watchers = EndpointWatchers::new();

    // Two policies' pod sources on the same Service, and a third policy's ready-endpoint
    // signal on it: one watch.
    let one = PodSource::shared(
        c.config("checkout"),
        &watchers,
        &c.client,
        &HttpClients::new(),
    )?;
    let two = PodSource::shared(
        c.config("checkout"),
        &watchers,
        &c.client,
        &HttpClients::new(),
    )?;
    let primary = watchers.get_or_start(&c.client, &c.ns, "checkout")?;
    assert_eq!(watchers.started(), 1, "one watch for three users");
    assert!(Arc::ptr_eq(one.watcher(), two.watcher()));
    assert!(Arc::ptr_eq(one.watcher(), &primary));
    // Another Service gets its own.
    let burst = watchers.get_or_start(&c.client, &c.ns, "checkout-burst")?;
    assert_eq!((watchers.started(), watchers.active()), (2, 2));

    // The shared watch serves every user.
    let pod = Pod::start("a").await?;
    c.set_slice("checkout", &[(&pod, true)]).await?;
    wait_count(&primary, 1).await?;
    assert_eq!(one.watcher().ready_count(), 1);

    // Users leave; the watch lives while any holds it, a clone of the registry sees the same.
    let clone = watchers.clone();
    drop(one);
    drop(primary);
    assert_eq!(clone.active(), 2, "`two` still holds the checkout watcher");
    let weak = Arc::downgrade(two.watcher());
    drop(two);
    assert_eq!(clone.active(), 1, "only checkout-burst is held");
    assert!(
        weak.upgrade().is_none(),
        "the watcher is gone with its last user"
    );
    // The next user starts a new watch.
    let again = clone.get_or_start(&c.client, &c.ns, "checkout")?;
    assert_eq!(clone.started(), 3);
    again.wait_synced(WAIT).await?;
    assert_eq!(again.ready_count(), 1);
    drop(burst);
    // A bad Service name is refused naming the key, and starts nothing.
    let e = watchers.get_or_start(&c.client, &c.ns, "a/b").unwrap_err();
    assert!(e.to_string().contains("service"), "{e}");
    assert_eq!(watchers.started(), 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_endpoints_and_pod_signals_follow_the_slices() -> Result<()> {
    let c = Cluster::new("ready-signals").await?;
    c.service("checkout").await?;
    c.service("checkout-burst").await?;
    let (a, b, x) = (
        Pod::start("a").await?,
        Pod::start("b").await?,
        Pod::start("x").await?,
    );
    c.set_slice("checkout", &[(&a, true), (&b, true), (&x, false)])
        .await?;
    c.set_slice("checkout-burst", &[]).await?;

    let watchers = EndpointWatchers::new();
    let clock = Arc::new(ManualClock::new(
        Timestamp::from_secs_f64(1_000_000.0).unwrap(),
    ));
    let pods = PodSource::with_clock(
        c.config("checkout"),
        watchers.get_or_start(&c.client, &c.ns, "checkout")?,
        &HttpClients::new(),
        clock.clone(),
    )?
    .with_url_rewrite(c.rewrite());
    let source = WithReadyEndpoints::new(pods)
        .primary(watchers.get_or_start(&c.client, &c.ns, "checkout")?)
        .burst(watchers.get_or_start(&c.client, &c.ns, "checkout-burst")?);
    assert_eq!(
        watchers.started(),
        2,
        "the pod source and the primary count share a watch"
    );
    let primary = watchers.get_or_start(&c.client, &c.ns, "checkout")?;
    let burst = watchers.get_or_start(&c.client, &c.ns, "checkout-burst")?;
    wait_count(&primary, 2).await?;
    burst.wait_synced(WAIT).await?;
    assert!(
        source.describe().contains("burst ready endpoints of"),
        "{}",
        source.describe()
    );

    // Two scrapes one second apart. Pod a: 90 fast, 10 slow, 2 errors; pod b: 100 fast.
    source.observe().await?;
    a.add(90.0, 10.0, 2.0);
    b.add(100.0, 0.0, 0.0);
    clock.advance(Duration::from_secs(1));
    let s = signals(source.observe().await?)?;
    assert_eq!(s.primary_ready, Some(2), "x is not ready");
    assert_eq!(
        s.burst_ready,
        Some(0),
        "a listed Service with no endpoints is 0, not no data"
    );
    // Summed by le over both pods: 190, 190, 200, 200. Rank 198 in (100, 500]:
    // 100 + 400 * 8 / 10 = 420 ms.
    let p99 = s.primary_p99.unwrap().get();
    assert!((p99 - 420.0).abs() < 1e-9, "p99 {p99}");
    let ratio = s.primary_error_ratio.unwrap().get();
    assert!((ratio - 0.01).abs() < 1e-12, "error ratio {ratio}");
    assert_eq!(s.burst_error_ratio, None);

    // The burst side gets a ready endpoint; the primary loses one.
    c.set_slice("checkout-burst", &[(&x, true)]).await?;
    c.set_slice("checkout", &[(&a, true), (&b, false)]).await?;
    wait_count(&burst, 1).await?;
    wait_count(&primary, 1).await?;
    a.add(100.0, 0.0, 0.0);
    clock.advance(Duration::from_secs(1));
    let s = signals(source.observe().await?)?;
    assert_eq!((s.primary_ready, s.burst_ready), (Some(1), Some(1)));

    // The burst Service's slice is deleted: 0 ready endpoints.
    c.slices()
        .delete("checkout-burst-1", &DeleteParams::default())
        .await?;
    wait_count(&burst, 0).await?;
    a.add(100.0, 0.0, 0.0);
    clock.advance(Duration::from_secs(1));
    assert_eq!(signals(source.observe().await?)?.burst_ready, Some(0));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_that_cannot_list_is_no_data_not_zero() -> Result<()> {
    let c = Cluster::new("ready-denied").await?;
    c.service("checkout").await?;
    // A ServiceAccount without any RBAC: its list of EndpointSlices is refused, so the
    // watcher never syncs and the count is unknown.
    let token = cp()
        .service_account_token(&c.ns, "nobody")
        .await
        .map_err(anyhow::Error::msg)?;
    let denied = cp().client(&token).await.map_err(anyhow::Error::msg)?;
    let watchers = EndpointWatchers::new();
    let watcher = watchers.get_or_start(&denied, &c.ns, "checkout")?;
    let inner = burst_core::testing::MemorySource::new();
    let source = WithReadyEndpoints::new(inner).primary(watcher.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!watcher.is_synced());
    assert_eq!(source.ready_signals(), Signals::NONE);
    Ok(())
}
