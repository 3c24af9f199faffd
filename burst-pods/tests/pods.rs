//! PodSource and EndpointWatcher against a real kube-apiserver: a Service and its
//! EndpointSlices, one per pod, and local HTTP servers on 127.0.0.1 that serve
//! Envoy-style `istio_requests_total` counters the test sets. The clock is a ManualClock,
//! so the rates are exact; the scrapes and the watch are real.
//!
//! The API server refuses loopback addresses in EndpointSlices ("may not be in the
//! loopback range (127.0.0.0/8, ::1/128)"), so each slice holds a pod-network address
//! (10.244.x.y, unique per pod) and the source is built with a URL rewrite that sends the
//! scrape of that address to the pod's local server: everything else (which endpoints are
//! ready, keys, ports, paths) comes from the server's slices.

#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use axum::extract::State;
use burst_core::{MetricSource, Reading, Timestamp};
use burst_pods::{EndpointWatcher, MetricsPort, PodConfig, PodSource, ReadyEndpoint, UrlRewrite};
use burst_prom::{HttpClients, HttpConfig, ManualClock};
use burst_testkit::kube::ControlPlane;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, PatchParams, PostParams};
use serde_json::json;
use url::Url;

const SERVICE: &str = "checkout";
const PORT_NAME: &str = "http-envoy-prom";
const WAIT: Duration = Duration::from_secs(20);

fn cp() -> &'static ControlPlane {
    ControlPlane::shared().expect("the real control plane")
}

/// One pod's sidecar: serves `istio_requests_total` with the destination counter the
/// test sets (and a source-reported series that must not be counted).
struct Pod {
    name: String,
    /// The address in its EndpointSlice.
    address: String,
    /// The port of its local server.
    port: u16,
    counter: Arc<Mutex<f64>>,
    server: tokio::task::JoinHandle<()>,
}

impl Pod {
    async fn start(name: &str, value: f64) -> Result<Pod> {
        Pod::start_padded(name, value, 0).await
    }

    /// A pod whose stats page carries `padding` bytes of other metrics (Envoy's pages are
    /// large).
    async fn start_padded(name: &str, value: f64, padding: usize) -> Result<Pod> {
        let port = burst_testkit::free_port()?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
        let counter = Arc::new(Mutex::new(value));
        let filler: Arc<str> = "envoy_cluster_upstream_cx_total{cluster=\"x\"} 1\n"
            .repeat(padding / 48 + 1)
            .into();
        let filler = if padding == 0 { Arc::from("") } else { filler };
        let state = counter.clone();
        let app = axum::Router::new().route(
            "/stats/prometheus",
            axum::routing::get(move || {
                let (state, filler) = (state.clone(), filler.clone());
                async move { format!("{}{filler}", envoy_stats(State(state)).await) }
            }),
        );
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Pod {
            name: name.to_owned(),
            address: pod_address(),
            port,
            counter,
            server,
        })
    }

    fn set(&self, value: f64) {
        *self.counter.lock().unwrap() = value;
    }

    fn add(&self, by: f64) {
        *self.counter.lock().unwrap() += by;
    }

    /// Stops serving: connections are refused from now on.
    fn stop(&self) {
        self.server.abort();
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn envoy_stats(State(counter): State<Arc<Mutex<f64>>>) -> String {
    let v = *counter.lock().unwrap();
    format!(
        "# TYPE istio_requests_total counter\n\
         istio_requests_total{{response_code=\"200\",reporter=\"destination\",source_workload=\"web\"}} {v}\n\
         istio_requests_total{{response_code=\"200\",reporter=\"source\",destination_workload=\"db\"}} {}\n\
         # TYPE envoy_server_uptime gauge\n\
         envoy_server_uptime 12\n",
        v * 7.0
    )
}

/// A namespace with Service [`SERVICE`] (no selector: the test writes its slices).
struct Cluster {
    ns: String,
    client: kube::Client,
    local: Local,
}

impl Cluster {
    async fn new(prefix: &str) -> Result<Cluster> {
        let cp = cp();
        let ns = cp
            .create_namespace(prefix)
            .await
            .map_err(anyhow::Error::msg)?;
        let client = cp.admin_client().await.map_err(anyhow::Error::msg)?;
        let svc: Service = serde_json::from_value(json!({
            "metadata": {"name": SERVICE},
            "spec": {"ports": [{"name": PORT_NAME, "port": 15090, "protocol": "TCP"}]}
        }))?;
        Api::<Service>::namespaced(client.clone(), &ns)
            .create(&PostParams::default(), &svc)
            .await?;
        Ok(Cluster {
            ns,
            client,
            local: Local::default(),
        })
    }

    fn slices(&self) -> Api<EndpointSlice> {
        Api::namespaced(self.client.clone(), &self.ns)
    }

    /// One slice per pod (the slice's port is the pod's server port).
    async fn add_pod(&self, pod: &Pod, ready: bool) -> Result<()> {
        self.local.add(pod);
        let slice: EndpointSlice = serde_json::from_value(slice_json(&self.ns, pod, ready))?;
        self.slices().create(&PostParams::default(), &slice).await?;
        Ok(())
    }

    async fn set_ready(&self, pod: &Pod, ready: bool) -> Result<()> {
        self.slices()
            .patch(
                &slice_name(pod),
                &PatchParams::apply("burst-pods-test").force(),
                &kube::api::Patch::Apply(slice_json(&self.ns, pod, ready)),
            )
            .await?;
        Ok(())
    }

    async fn remove_pod(&self, pod: &Pod) -> Result<()> {
        self.slices()
            .delete(&slice_name(pod), &DeleteParams::default())
            .await?;
        Ok(())
    }

    fn watcher(&self) -> Result<Arc<EndpointWatcher>> {
        Ok(Arc::new(EndpointWatcher::start(
            self.client.clone(),
            &self.ns,
            SERVICE,
        )?))
    }

    /// A source on `watcher` reading `clock`, scraping the pods' local servers.
    fn source(
        &self,
        config: PodConfig,
        watcher: Arc<EndpointWatcher>,
        clock: Arc<ManualClock>,
    ) -> Result<PodSource> {
        Ok(
            PodSource::with_clock(config, watcher, &HttpClients::new(), clock)?
                .with_url_rewrite(self.local.rewrite()),
        )
    }

    /// The defaults (port 15090, `/stats/prometheus`, reporter="destination") with a
    /// short scrape timeout.
    fn config(&self) -> PodConfig {
        PodConfig {
            service: SERVICE.into(),
            namespace: self.ns.clone(),
            window: Duration::from_secs(15),
            http: HttpConfig {
                timeout: Duration::from_millis(500),
                ..HttpConfig::default()
            },
            ..PodConfig::default()
        }
    }
}

/// A pod-network address unique in this test binary.
fn pod_address() -> String {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("10.244.{}.{}", n / 250, n % 250 + 1)
}

/// Sends the scrape of each slice address to that pod's local server.
#[derive(Default, Clone)]
struct Local(Arc<Mutex<HashMap<String, u16>>>);

impl Local {
    fn add(&self, pod: &Pod) {
        self.0.lock().unwrap().insert(pod.address.clone(), pod.port);
    }

    fn rewrite(&self) -> UrlRewrite {
        let ports = self.0.clone();
        Arc::new(move |endpoint: &ReadyEndpoint, mut url: Url| {
            if let Some(port) = ports.lock().unwrap().get(&endpoint.address) {
                url.set_host(Some("127.0.0.1")).unwrap();
                url.set_port(Some(*port)).unwrap();
            }
            url
        })
    }
}

fn slice_name(pod: &Pod) -> String {
    format!("{SERVICE}-{}", pod.name)
}

fn slice_json(ns: &str, pod: &Pod, ready: bool) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": slice_name(pod),
            "namespace": ns,
            "labels": {"kubernetes.io/service-name": SERVICE},
        },
        "addressType": "IPv4",
        "endpoints": [{
            "addresses": [pod.address],
            "conditions": {"ready": ready},
            "targetRef": {"kind": "Pod", "name": pod.name, "namespace": ns},
        }],
        "ports": [{"name": PORT_NAME, "port": 15090, "protocol": "TCP"}],
    })
}

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(
        Timestamp::from_secs_f64(1_000_000.0).unwrap(),
    ))
}

async fn wait_count(watcher: &EndpointWatcher, n: usize) -> Result<()> {
    match watcher.wait_for(WAIT, |e| e.len() == n).await {
        Some(_) => Ok(()),
        None => bail!(
            "the watcher did not see {n} ready endpoints within {WAIT:?} (has {})",
            watcher.ready_count()
        ),
    }
}

fn value(r: &Reading) -> Result<f64> {
    match r {
        Reading::Value(o) => Ok(o.rates.up.get()),
        Reading::NoData { reason } => bail!("expected a value, got no data: {reason}"),
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

/// One tick: every pod's counter grows by its per-second rate, the clock moves 1 s,
/// the source scrapes.
async fn tick(source: &PodSource, clock: &ManualClock, pods: &[(&Pod, f64)]) -> Result<Reading> {
    for (pod, rate) in pods {
        pod.add(*rate);
    }
    clock.advance(Duration::from_secs(1));
    Ok(source.observe().await?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watcher_lists_ready_endpoints_and_follows_changes() -> Result<()> {
    let c = Cluster::new("pods-watch").await?;
    let (a, b) = (Pod::start("a", 0.0).await?, Pod::start("b", 0.0).await?);
    c.add_pod(&a, true).await?;
    c.add_pod(&b, false).await?;
    let watcher = c.watcher()?;
    watcher.wait_synced(WAIT).await?;
    let ready = watcher.ready_endpoints();
    assert_eq!(ready.len(), 1, "only the ready endpoint: {ready:?}");
    assert_eq!(ready[0].pod.as_deref(), Some("a"));
    assert_eq!(ready[0].address, a.address);
    assert_eq!(ready[0].ports.get(PORT_NAME), Some(&15090));

    c.set_ready(&b, true).await?;
    wait_count(&watcher, 2).await?;
    c.remove_pod(&a).await?;
    let now = watcher
        .wait_for(WAIT, |e| e.len() == 1 && e[0].pod.as_deref() == Some("b"))
        .await
        .context("the watcher did not see a's slice go")?;
    assert_eq!(now[0].address, b.address);

    // Another Service's slices are not ours.
    let other = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "other-x", "labels": {"kubernetes.io/service-name": "other"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"]}],
        "ports": [{"name": PORT_NAME, "port": 1, "protocol": "TCP"}],
    });
    c.slices()
        .create(&PostParams::default(), &serde_json::from_value(other)?)
        .await?;
    c.set_ready(&b, true).await?;
    assert!(
        watcher
            .wait_for(Duration::from_secs(2), |e| e.len() != 1)
            .await
            .is_none(),
        "a slice of another Service was counted: {:?}",
        watcher.ready_endpoints()
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_is_summed_over_pods() -> Result<()> {
    let c = Cluster::new("pods-rate").await?;
    let pods = [
        Pod::start("p0", 100.0).await?,
        Pod::start("p1", 2000.0).await?,
        Pod::start("p2", 5.0).await?,
    ];
    for p in &pods {
        c.add_pod(p, true).await?;
    }
    let watcher = c.watcher()?;
    wait_count(&watcher, 3).await?;
    let clock = clock();
    let source = c.source(c.config(), watcher, clock.clone())?;
    let rates = [(&pods[0], 10.0), (&pods[1], 20.0), (&pods[2], 30.0)];

    match source.observe().await? {
        Reading::NoData { reason } => assert!(reason.contains("two scrapes"), "{reason}"),
        other => bail!("one scrape cannot give a rate: {other:?}"),
    }
    for _ in 0..5 {
        let r = value(&tick(&source, &clock, &rates).await?)?;
        // Only reporter="destination" counts: the source series grows 7x as fast.
        assert!(close(r, 60.0), "rate {r}, want 60");
    }
    let stats = source.last_round();
    assert_eq!((stats.targets, stats.answered, stats.failed), (3, 3, 0));
    assert!(
        source
            .describe()
            .contains("istio_requests_total{reporter=\"destination\"}")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_added_and_removed_mid_run_give_no_spike_and_no_negative() -> Result<()> {
    let c = Cluster::new("pods-churn").await?;
    let a = Pod::start("a", 0.0).await?;
    let b = Pod::start("b", 300.0).await?;
    // A pod that joins with a large counter (it served traffic before it became ready).
    let late = Pod::start("late", 50_000.0).await?;
    c.add_pod(&a, true).await?;
    c.add_pod(&b, true).await?;
    let watcher = c.watcher()?;
    wait_count(&watcher, 2).await?;
    let clock = clock();
    let source = c.source(c.config(), watcher.clone(), clock.clone())?;
    source.observe().await?;
    for _ in 0..5 {
        let r = value(&tick(&source, &clock, &[(&a, 10.0), (&b, 10.0)]).await?)?;
        assert!(close(r, 20.0), "rate {r}, want 20");
    }

    c.add_pod(&late, true).await?;
    wait_count(&watcher, 3).await?;
    let all = [(&a, 10.0), (&b, 10.0), (&late, 10.0)];
    let mut last = 0.0;
    for _ in 0..20 {
        let r = value(&tick(&source, &clock, &all).await?)?;
        assert!(r <= 30.0 + 1e-9, "a pod joining made the rate spike to {r}");
        assert!(
            r >= last - 1e-9,
            "rate fell from {last} to {r} while pods were added"
        );
        last = r;
    }
    assert!(
        close(last, 30.0),
        "after a full window the rate is {last}, want 30"
    );
    assert_eq!(source.last_round().targets, 3);

    // a goes away (its slice is deleted) while its server keeps counting.
    c.remove_pod(&a).await?;
    wait_count(&watcher, 2).await?;
    let two = [(&a, 10.0), (&b, 10.0), (&late, 10.0)];
    for _ in 0..20 {
        let r = value(&tick(&source, &clock, &two).await?)?;
        assert!(r >= 20.0 - 1e-9, "a pod leaving made the rate drop to {r}");
        assert!(r <= 30.0 + 1e-9, "a pod leaving made the rate rise to {r}");
        last = r;
    }
    assert!(
        close(last, 20.0),
        "after a full window the rate is {last}, want 20"
    );
    assert_eq!(source.last_round().targets, 2);
    assert_eq!(source.tracked_series(), 2, "a's series leaves the buffer");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_restart_is_a_counter_reset_not_a_spike() -> Result<()> {
    let c = Cluster::new("pods-restart").await?;
    let a = Pod::start("a", 90_000.0).await?;
    let b = Pod::start("b", 1_000.0).await?;
    c.add_pod(&a, true).await?;
    c.add_pod(&b, true).await?;
    let watcher = c.watcher()?;
    wait_count(&watcher, 2).await?;
    let clock = clock();
    let source = c.source(c.config(), watcher, clock.clone())?;
    source.observe().await?;
    for _ in 0..5 {
        let r = value(&tick(&source, &clock, &[(&a, 10.0), (&b, 10.0)]).await?)?;
        assert!(close(r, 20.0), "rate {r}, want 20");
    }
    // a's proxy restarts: its counter starts again from 0 and has counted 10 since.
    a.set(0.0);
    for _ in 0..20 {
        let r = value(&tick(&source, &clock, &[(&a, 10.0), (&b, 10.0)]).await?)?;
        assert!(close(r, 20.0), "around a restart the rate is {r}, want 20");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_pods_below_and_above_the_quorum() -> Result<()> {
    let c = Cluster::new("pods-quorum").await?;
    let pods = [
        Pod::start("p0", 0.0).await?,
        Pod::start("p1", 0.0).await?,
        Pod::start("p2", 0.0).await?,
        Pod::start("p3", 0.0).await?,
    ];
    for p in &pods {
        c.add_pod(p, true).await?;
    }
    // A fifth pod whose proxy accepts connections and never answers: only the scrape
    // timeout ends its scrape. (A real server cannot be told to hang on demand.)
    let hang = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
    let hung = Pod {
        name: "hung".into(),
        address: pod_address(),
        port: hang.local_addr()?.port(),
        counter: Arc::new(Mutex::new(0.0)),
        server: tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((s, _)) = hang.accept().await {
                open.push(s);
            }
        }),
    };
    c.add_pod(&hung, true).await?;
    let watcher = c.watcher()?;
    wait_count(&watcher, 5).await?;
    let clock = clock();
    let source = c.source(c.config(), watcher.clone(), clock.clone())?;
    let all: Vec<(&Pod, f64)> = pods.iter().map(|p| (p, 5.0)).collect();
    source.observe().await?;
    // 4 of 5 answer (80 % >= 50 %): a value from the pods that answered.
    for _ in 0..3 {
        let r = value(&tick(&source, &clock, &all).await?)?;
        assert!(
            close(r, 20.0),
            "rate {r}, want 20 from the four pods that answer"
        );
        let s = source.last_round();
        assert_eq!((s.targets, s.answered, s.failed), (5, 4, 1));
    }
    // Two more stop: 2 of 5 answer (40 % < 50 %): no data, naming the count.
    pods[0].stop();
    pods[1].stop();
    match tick(&source, &clock, &all).await? {
        Reading::NoData { reason } => {
            assert!(
                reason.contains("only 2 of 5 pods") && reason.contains("3 unreachable"),
                "{reason}"
            );
            assert!(reason.contains("quorum of 50%"), "{reason}");
            assert!(reason.contains("first failure: pod"), "{reason}");
        }
        other => bail!("below the quorum the reading must be no data, got {other:?}"),
    }
    assert_eq!(source.last_round().failed, 3);

    // The same round with a quorum of 40 % is a value.
    let lenient = c.source(
        PodConfig {
            quorum: 0.4,
            ..c.config()
        },
        watcher,
        clock.clone(),
    )?;
    lenient.observe().await?;
    let r = value(&tick(&lenient, &clock, &all).await?)?;
    assert!(
        close(r, 10.0),
        "rate {r}, want 10 from the two pods that answer"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_pods() -> Result<()> {
    let c = Cluster::new("pods-100").await?;
    let mut pods = Vec::new();
    for i in 0..100 {
        let p = Pod::start(&format!("p{i}"), f64::from(i) * 1000.0).await?;
        c.add_pod(&p, true).await?;
        pods.push(p);
    }
    let watcher = c.watcher()?;
    wait_count(&watcher, 100).await?;
    let clock = clock();
    let source = c.source(
        PodConfig {
            concurrency: 8,
            ..c.config()
        },
        watcher,
        clock.clone(),
    )?;
    // Pod i serves i + 1 requests per second: 5050 in all.
    let rates: Vec<(&Pod, f64)> = pods
        .iter()
        .zip(1..)
        .map(|(p, r)| (p, f64::from(r)))
        .collect();
    source.observe().await?;
    for _ in 0..3 {
        let r = value(&tick(&source, &clock, &rates).await?)?;
        assert!(close(r, 5050.0), "rate {r}, want 5050");
    }
    let s = source.last_round();
    assert_eq!((s.targets, s.answered, s.failed), (100, 100, 0));
    assert_eq!(source.tracked_series(), 100);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_are_checked() -> Result<()> {
    let c = Cluster::new("pods-config").await?;
    let watcher = c.watcher()?;
    let clients = HttpClients::new();
    for (config, key) in [
        (
            PodConfig {
                quorum: 0.0,
                ..c.config()
            },
            "quorum",
        ),
        (
            PodConfig {
                quorum: 1.5,
                ..c.config()
            },
            "quorum",
        ),
        (
            PodConfig {
                concurrency: 0,
                ..c.config()
            },
            "concurrency",
        ),
        (
            PodConfig {
                path: "stats".into(),
                ..c.config()
            },
            "path",
        ),
        (
            PodConfig {
                port: MetricsPort::Number(0),
                ..c.config()
            },
            "port",
        ),
        (
            PodConfig {
                service: "other".into(),
                ..c.config()
            },
            "service",
        ),
    ] {
        match PodSource::new(config, watcher.clone(), &clients) {
            Err(burst_pods::Error::Config { key: k, message }) => {
                assert_eq!(k, key, "{message}")
            }
            other => bail!("expected a config error for {key}, got {other:?}"),
        }
    }
    match PodSource::new(
        PodConfig {
            metric: "1bad".into(),
            ..c.config()
        },
        watcher.clone(),
        &clients,
    ) {
        Err(e @ burst_pods::Error::Prom(_)) => assert_eq!(e.kind(), "config"),
        other => bail!("expected burst-prom's config error, got {other:?}"),
    }
    // No slices at all: no data, not 0.
    let source = PodSource::new(c.config(), watcher.clone(), &clients)?;
    watcher.wait_synced(WAIT).await?;
    match source.observe().await? {
        Reading::NoData { reason } => assert!(reason.contains("no ready endpoints"), "{reason}"),
        other => bail!("no endpoints must be no data, got {other:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_answering_more_than_the_size_cap_counts_as_failed() -> Result<()> {
    let c = Cluster::new("pods-cap").await?;
    let small = Pod::start("small", 0.0).await?;
    let huge = Pod::start_padded("huge", 0.0, 256 * 1024).await?;
    c.add_pod(&small, true).await?;
    c.add_pod(&huge, true).await?;
    let watcher = c.watcher()?;
    wait_count(&watcher, 2).await?;
    let clock = clock();
    let mut config = c.config();
    config.http.max_response_bytes = 64 * 1024;
    let source = c.source(config, watcher, clock.clone())?;
    source.observe().await?;
    let r = value(&tick(&source, &clock, &[(&small, 4.0), (&huge, 100.0)]).await?)?;
    assert!(
        close(r, 4.0),
        "rate {r}: only the pod within the cap counts"
    );
    let s = source.last_round();
    assert_eq!((s.answered, s.failed), (1, 1));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dual_stack_pod_is_scraped_once() -> Result<()> {
    let c = Cluster::new("pods-dual").await?;
    let pod = Pod::start("dual", 0.0).await?;
    let other = Pod::start("other", 0.0).await?;
    c.add_pod(&pod, true).await?;
    c.add_pod(&other, true).await?;
    // The same pod in an IPv6 slice, as in a dual-stack cluster.
    let v6 = json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "checkout-dual-v6",
                     "labels": {"kubernetes.io/service-name": SERVICE}},
        "addressType": "IPv6",
        "endpoints": [{"addresses": ["fd00:10:244::7"],
                       "targetRef": {"kind": "Pod", "name": "dual", "namespace": c.ns}}],
        "ports": [{"name": PORT_NAME, "port": 15090, "protocol": "TCP"}],
    });
    c.slices()
        .create(&PostParams::default(), &serde_json::from_value(v6)?)
        .await?;
    c.local
        .0
        .lock()
        .unwrap()
        .insert("fd00:10:244::7".into(), pod.port);
    let watcher = c.watcher()?;
    wait_count(&watcher, 3).await?;
    let clock = clock();
    let source = c.source(c.config(), watcher, clock.clone())?;
    source.observe().await?;
    let r = value(&tick(&source, &clock, &[(&pod, 6.0), (&other, 1.0)]).await?)?;
    assert!(
        close(r, 7.0),
        "rate {r}, want 7: the dual-stack pod counted once"
    );
    assert_eq!(source.last_round().targets, 2);
    Ok(())
}
