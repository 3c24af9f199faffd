//! `burst demo --source pods`: the demand measured as burstd's pod source measures it in a
//! cluster, by scraping every pod's sidecar (`burst_pods::PodSource`).
//!
//! The two workers stand for the two pods of the Service `worker-service`: each gets a
//! small local stats server, its "sidecar", serving Envoy's `/stats/prometheus` with the
//! mesh proxy's `istio_requests_total` series that this worker received
//! (`reporter="destination"`, its `destination_subset`), as each pod's Istio sidecar reports
//! the requests it took in. The pod source sums the rates over both pods, so the demand
//! stays whole after traffic moves.
//!
//! The pods are described by one EndpointSlice of `worker-service`, with pod-network
//! addresses (`10.244.0.10`, `10.244.1.10`), the port `http-envoy-prom` (15090) and a
//! `targetRef` per pod. With `--kubeconfig` the demo applies that slice in the demo's
//! namespace and burstd watches it, as in a cluster; without, the source reads the same
//! slice from a fixed list (`EndpointWatcher::fixed`). Either way the API server refuses
//! loopback addresses in EndpointSlices, so every scrape of a pod's address goes to its
//! local stats server instead (`PodSource::with_url_rewrite`, the hook the tests use).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use burst_core::policy::PolicySpec;
use burst_hashr::mesh::{Mesh, Subset};
use burst_operator::api::{HttpSpec, PodPortSpec, PodsSpec, SourceSpec};
use burst_pods::{EndpointWatcher, MetricsPort, PodConfig, PodSource, UrlRewrite};
use http_body_util::BodyExt as _;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use url::Url;

use super::stack::serve_on;

/// The Service whose pods are scraped.
pub(super) const SERVICE: &str = "worker-service";
/// The namespace of the fixed list (without `--kubeconfig`).
pub(super) const STATIC_NAMESPACE: &str = "default";
/// The name of the metrics port in the EndpointSlice (as an Istio Service names it).
const PORT_NAME: &str = "http-envoy-prom";
/// The `destination_service` label of the mesh's series.
const DESTINATION_SERVICE: &str = "worker-service.default.svc.cluster.local";
/// Each scrape's timeout: below the tick, so an unreachable pod never delays a decision.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(800);
/// The largest body of the mesh's own `/metrics` the stats servers read.
const MAX_METRICS_BYTES: usize = 4 * 1024 * 1024;

/// One pod of `worker-service`: its name and address in the EndpointSlice, and the local
/// stats server that stands for its sidecar.
#[derive(Debug, Clone)]
struct SidecarPod {
    name: &'static str,
    address: &'static str,
    stats: Url,
}

/// The two workers as pods, their stats servers listening.
#[derive(Debug, Clone)]
pub(super) struct LocalPods {
    pods: Vec<SidecarPod>,
}

/// What a stats server needs: the mesh's admin routes and the subset it reports.
#[derive(Clone)]
struct StatsState {
    admin: axum::Router,
    subset: Subset,
}

impl LocalPods {
    /// Starts one stats server per worker (until `stop`), each serving the series of
    /// `mesh` that its worker received.
    pub(super) async fn start(
        mesh: &Mesh,
        stop: &CancellationToken,
        servers: &mut Vec<JoinHandle<Result<(), burst_hashr::Error>>>,
    ) -> anyhow::Result<LocalPods> {
        let mut pods = Vec::new();
        for (name, address, subset) in [
            ("primary-worker-0", "10.244.0.10", Subset::Primary),
            ("bursty-worker-0", "10.244.1.10", Subset::Burst),
        ] {
            let state = StatsState {
                admin: mesh.admin_router(),
                subset,
            };
            let router = axum::Router::new()
                .route(burst_pods::ENVOY_STATS_PATH, get(stats))
                .with_state(state);
            let (url, task) = serve_on("127.0.0.1:0", router, stop.clone().cancelled_owned())
                .await
                .with_context(|| format!("the stats server of pod {name} cannot listen"))?;
            servers.push(task);
            let stats = url
                .join(burst_pods::ENVOY_STATS_PATH.trim_start_matches('/'))
                .context("stats URL")?;
            pods.push(SidecarPod {
                name,
                address,
                stats,
            });
        }
        Ok(LocalPods { pods })
    }

    /// The EndpointSlice of `worker-service` in `namespace` listing both pods, ready, with
    /// their pod-network addresses and the metrics port.
    pub(super) fn slice(&self, namespace: &str) -> anyhow::Result<EndpointSlice> {
        let endpoints: Vec<serde_json::Value> = self
            .pods
            .iter()
            .map(|p| {
                serde_json::json!({
                    "addresses": [p.address],
                    "conditions": {"ready": true},
                    "targetRef": {"kind": "Pod", "name": p.name, "namespace": namespace},
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": format!("{SERVICE}-demo"),
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": SERVICE},
            },
            "addressType": "IPv4",
            "endpoints": endpoints,
            "ports": [{"name": PORT_NAME, "port": burst_pods::ENVOY_STATS_PORT, "protocol": "TCP"}],
        }))
        .context("building the demo's EndpointSlice")
    }

    /// Sends each pod's scrape to its local stats server (the pods' addresses are not on
    /// this machine); an unknown pod's URL is left alone.
    pub(super) fn rewrite(&self) -> UrlRewrite {
        let local: BTreeMap<&'static str, Url> = self
            .pods
            .iter()
            .map(|p| (p.name, p.stats.clone()))
            .collect();
        Arc::new(move |endpoint, url| {
            endpoint
                .pod
                .as_deref()
                .and_then(|name| local.get(name))
                .cloned()
                .unwrap_or(url)
        })
    }

    /// The local stats servers, `name=url`, for the banner.
    pub(super) fn describe(&self) -> String {
        self.pods
            .iter()
            .map(|p| format!("{} ({}) {}", p.name, p.address, p.stats))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The in-process controller's source: a [`PodSource`] on the fixed slice in
    /// `namespace` (with `--kubeconfig` only to describe what burstd builds).
    pub(super) fn source(&self, namespace: &str, spec: &PolicySpec) -> anyhow::Result<PodSource> {
        let watcher = EndpointWatcher::fixed(namespace, SERVICE, vec![self.slice(namespace)?])?;
        let mut config = PodConfig {
            service: SERVICE.into(),
            namespace: namespace.into(),
            port: MetricsPort::Name(PORT_NAME.into()),
            matchers: matchers(),
            window: spec.window_up(),
            long_window: spec.has_two_windows().then(|| spec.window_down()),
            ..PodConfig::default()
        };
        config.http.timeout = SCRAPE_TIMEOUT;
        let source = PodSource::new(config, Arc::new(watcher), &burst_prom::HttpClients::new())?;
        Ok(source.with_url_rewrite(self.rewrite()))
    }
}

/// The pod source as a BurstPolicy source (`source.pods`), for `--kubeconfig`.
pub(super) fn source_spec() -> SourceSpec {
    SourceSpec {
        pods: Some(PodsSpec {
            service: SERVICE.into(),
            port: Some(PodPortSpec::Name(PORT_NAME.into())),
            matchers: Some(matchers()),
            http: HttpSpec {
                timeout: Some(burst_core::HumanDuration::from(SCRAPE_TIMEOUT)),
                ..HttpSpec::default()
            },
            ..PodsSpec::default()
        }),
        ..SourceSpec::default()
    }
}

/// The requests each worker's sidecar received from the frontend's.
fn matchers() -> BTreeMap<String, String> {
    [
        ("reporter", "destination"),
        ("destination_service", DESTINATION_SERVICE),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// `GET /stats/prometheus` of one pod: the mesh's exposition with only this worker's
/// `istio_requests_total` series (those it received), as its own sidecar would report.
async fn stats(State(s): State<StatsState>) -> Response {
    let request = match Request::get("/metrics").body(Body::empty()) {
        Ok(r) => r,
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    // In-process: the mesh's admin routes answer without a network hop.
    let Ok(response) = s.admin.oneshot(request).await;
    let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
    let body = match http_body_util::Limited::new(response.into_body(), MAX_METRICS_BYTES)
        .collect()
        .await
    {
        Ok(b) => b.to_bytes(),
        Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
    };
    let text = keep_subset(&String::from_utf8_lossy(&body), s.subset);
    let mut out = Response::new(Body::from(text));
    if let Some(ct) = content_type {
        out.headers_mut().insert(header::CONTENT_TYPE, ct);
    }
    out
}

/// `text` without the `istio_requests_total` samples that are not destination-reported
/// requests of `subset`; every other line stays.
fn keep_subset(text: &str, subset: Subset) -> String {
    let label = format!("destination_subset=\"{}\"", subset.as_str());
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let istio_sample = line.starts_with("istio_requests");
        if !istio_sample || (line.contains("reporter=\"destination\"") && line.contains(&label)) {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn each_pod_keeps_only_what_its_worker_received() {
        let text = "# HELP istio_requests Requests.\n\
            # TYPE istio_requests counter\n\
            istio_requests_total{reporter=\"source\",destination_subset=\"primary\",response_code=\"200\"} 9\n\
            istio_requests_total{reporter=\"destination\",destination_subset=\"primary\",response_code=\"200\"} 8\n\
            istio_requests_total{reporter=\"destination\",destination_subset=\"burst\",response_code=\"200\"} 3\n\
            mesh_admin_requests_total 1\n\
            # EOF\n";
        let primary = keep_subset(text, Subset::Primary);
        assert!(primary.contains("\"primary\",response_code=\"200\"} 8"));
        assert!(!primary.contains("} 9") && !primary.contains("} 3"));
        assert!(primary.contains("# TYPE istio_requests counter"));
        assert!(primary.ends_with("mesh_admin_requests_total 1\n# EOF\n"));
        let burst = keep_subset(text, Subset::Burst);
        assert!(burst.contains("} 3") && !burst.contains("} 8"));
    }
}
