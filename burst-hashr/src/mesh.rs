//! A local stand-in for the service mesh: a weighted reverse proxy with Istio-shaped metrics.
//!
//! The proxy forwards every request (any method and path) to the primary or the burst
//! upstream. The choice is a **smooth weighted round-robin** (the algorithm of nginx's
//! upstream module): deterministic, and after every 100 requests the shares are exactly the
//! split's weights, interleaved as evenly as possible (70/30 gives `P P B P P B P ...`).
//! Istio's `RANDOM` load balancer would converge to the same shares; determinism makes the
//! demo's timeline and the tests exact.
//!
//! Each request is counted in `istio_requests_total` twice, as Istio's sidecars do: once with
//! `reporter="source"` (the client side, also when the upstream is unreachable: code 503)
//! and once with `reporter="destination"` when the upstream answered. Labels:
//! `reporter`, `source_workload`, `destination_service`, `destination_subset`,
//! `response_code`. Each is also observed in the histogram
//! `istio_request_duration_milliseconds` (Istio's default buckets), from which p99 latency is
//! computed. The counters are served on a separate admin router (as Envoy's stats
//! port), so the proxy itself forwards `/metrics` like any other path.
//!
//! The split is changed through [`MeshRouter`], a [`burst_core::TrafficRouter`]. `burst demo`
//! drives it from its in-process controller; `burst demo --kubeconfig` only from a watch of
//! a VirtualService in a Kubernetes API server (as istiod pushes routes to Envoy), so the
//! proxy follows whatever the server holds, whoever wrote it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use burst_core::{RouterError, Split, TrafficRouter};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use url::Url;

use crate::Error;
use crate::http::{HttpMetrics, json_error, metrics_response, read_limited};

/// Largest upstream response body the proxy relays.
const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;

/// One of the two destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Subset {
    /// The primary cluster.
    Primary,
    /// The burst cluster.
    Burst,
}

impl Subset {
    /// The `destination_subset` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Subset::Primary => "primary",
            Subset::Burst => "burst",
        }
    }
}

/// Smooth weighted round-robin over the two subsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmoothWeighted {
    weights: [i64; 2],
    current: [i64; 2],
}

impl SmoothWeighted {
    /// A balancer for `split`.
    pub fn new(split: Split) -> Self {
        SmoothWeighted {
            weights: [
                i64::from(split.primary().get()),
                i64::from(split.burst().get()),
            ],
            current: [0, 0],
        }
    }

    /// The next destination.
    pub fn pick(&mut self) -> Subset {
        let total = self.weights[0] + self.weights[1];
        self.current[0] += self.weights[0];
        self.current[1] += self.weights[1];
        let best = if self.current[1] > self.current[0] {
            1
        } else {
            0
        };
        self.current[best] -= total;
        if best == 0 {
            Subset::Primary
        } else {
            Subset::Burst
        }
    }

    /// The split this balancer follows.
    pub fn split(&self) -> Split {
        // Weights come from a valid Split, so they are in range and sum to 100.
        Split::try_new(self.weights[0], self.weights[1]).unwrap_or(Split::ALL_PRIMARY)
    }
}

/// Settings of the mesh proxy.
#[derive(Debug, Clone, PartialEq)]
pub struct MeshConfig {
    /// The primary upstream (e.g. the primary worker).
    pub primary: Url,
    /// The burst upstream.
    pub burst: Url,
    /// `source_workload` label (the seed's query selects `frontend-deployment`).
    pub source_workload: String,
    /// `destination_service` label.
    pub destination_service: String,
    /// Largest request body forwarded.
    pub body_limit: usize,
    /// Timeout of one upstream request (answered 504 when exceeded).
    pub timeout: Duration,
    /// The split at start.
    pub initial: Split,
}

impl MeshConfig {
    /// Defaults (labels as in the seed system, 100/0) for two upstreams.
    pub fn new(primary: Url, burst: Url) -> Self {
        MeshConfig {
            primary,
            burst,
            source_workload: "frontend-deployment".into(),
            destination_service: "worker-service.default.svc.cluster.local".into(),
            body_limit: crate::config::DEFAULT_BODY_LIMIT + 1024,
            timeout: Duration::from_secs(10),
            initial: Split::ALL_PRIMARY,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct IstioLabels {
    reporter: &'static str,
    source_workload: String,
    destination_service: String,
    destination_subset: &'static str,
    response_code: u16,
}

/// Istio's default buckets for `istio_request_duration_milliseconds` (in ms).
const ISTIO_DURATION_BUCKETS_MS: [f64; 19] = [
    0.5, 1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0, 30000.0,
    60000.0, 300000.0, 600000.0, 1800000.0, 3600000.0,
];

/// The proxy. Cheap to clone.
#[derive(Clone)]
pub struct Mesh {
    inner: Arc<Inner>,
}

struct Inner {
    config: MeshConfig,
    bases: [String; 2],
    client: reqwest::Client,
    balancer: Mutex<SmoothWeighted>,
    requests: Family<IstioLabels, Counter>,
    durations: Family<IstioLabels, Histogram, fn() -> Histogram>,
    registry: Registry,
    http: HttpMetrics,
}

impl std::fmt::Debug for Mesh {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mesh")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// Changes the proxy's split; what the controller drives in the demo.
#[derive(Clone)]
pub struct MeshRouter {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MeshRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&TrafficRouter::describe(self))
    }
}

impl Mesh {
    /// A proxy for `config`.
    pub fn new(config: MeshConfig) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(2)))
            .no_proxy()
            .build()
            .map_err(Error::HttpClient)?;
        let requests = Family::<IstioLabels, Counter>::default();
        let mut registry = Registry::default();
        registry.register(
            "istio_requests",
            "Requests through the mesh, as Istio's standard metric",
            requests.clone(),
        );
        let durations: Family<IstioLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(|| Histogram::new(ISTIO_DURATION_BUCKETS_MS));
        registry.register(
            "istio_request_duration_milliseconds",
            "Request duration through the mesh, as Istio's standard histogram",
            durations.clone(),
        );
        let http = HttpMetrics::register(registry.sub_registry_with_prefix("mesh_admin"));
        let base = |u: &Url| u.as_str().trim_end_matches('/').to_owned();
        Ok(Mesh {
            inner: Arc::new(Inner {
                bases: [base(&config.primary), base(&config.burst)],
                balancer: Mutex::new(SmoothWeighted::new(config.initial)),
                config,
                client,
                requests,
                durations,
                registry,
                http,
            }),
        })
    }

    /// The forwarding routes: every method and path goes to an upstream.
    pub fn proxy_router(&self) -> Router {
        Router::new()
            .fallback(proxy)
            .with_state(self.inner.clone())
            .layer(axum::middleware::from_fn(crate::http::limit_headers))
    }

    /// The admin routes: `GET /metrics`, `GET /_healthz`, `GET /split`.
    pub fn admin_router(&self) -> Router {
        let routes = Router::new()
            .route("/metrics", get(metrics))
            .route("/_healthz", get(|| async { "ok" }))
            .route("/split", get(split))
            .with_state(self.inner.clone());
        self.inner.http.clone().wrap(routes)
    }

    /// A [`TrafficRouter`] changing this proxy's split.
    pub fn router(&self) -> MeshRouter {
        MeshRouter {
            inner: self.inner.clone(),
        }
    }

    /// The split in effect.
    pub fn split(&self) -> Split {
        self.inner.split()
    }
}

impl Inner {
    fn balancer(&self) -> std::sync::MutexGuard<'_, SmoothWeighted> {
        match self.balancer.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn split(&self) -> Split {
        self.balancer().split()
    }

    /// Counts one request in `istio_requests_total` and its duration since `started` in
    /// `istio_request_duration_milliseconds`, as one reporter sees it.
    fn count(&self, reporter: &'static str, subset: Subset, code: u16, started: Instant) {
        let labels = IstioLabels {
            reporter,
            source_workload: self.config.source_workload.clone(),
            destination_service: self.config.destination_service.clone(),
            destination_subset: subset.as_str(),
            response_code: code,
        };
        self.durations
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64() * 1000.0);
        self.requests.get_or_create(&labels).inc();
    }
}

#[async_trait]
impl TrafficRouter for MeshRouter {
    async fn current(&self) -> Result<Split, RouterError> {
        Ok(self.inner.split())
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        *self.inner.balancer() = SmoothWeighted::new(split);
        tracing::info!(
            primary = split.primary().get(),
            burst = split.burst().get(),
            "mesh split applied"
        );
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "local mesh proxy (primary {}, burst {})",
            self.inner.config.primary, self.inner.config.burst
        )
    }
}

fn hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
            | "host"
            | "content-length"
    )
}

async fn proxy(State(m): State<Arc<Inner>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let bytes = match read_limited(&parts.headers, body, m.config.body_limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let started = Instant::now();
    let subset = m.balancer().pick();
    let base = match subset {
        Subset::Primary => &m.bases[0],
        Subset::Burst => &m.bases[1],
    };
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut rb = m
        .client
        .request(parts.method.clone(), format!("{base}{path}"));
    for (k, v) in &parts.headers {
        if !hop_by_hop(k) {
            rb = rb.header(k, v);
        }
    }
    match rb.body(bytes).send().await {
        Ok(mut upstream) => {
            let code = upstream.status();
            let mut out = Vec::new();
            loop {
                match upstream.chunk().await {
                    Ok(Some(c)) if out.len() + c.len() <= MAX_RESPONSE_BYTES => {
                        out.extend_from_slice(&c)
                    }
                    Ok(Some(_)) => {
                        m.count("source", subset, 502, started);
                        m.count("destination", subset, code.as_u16(), started);
                        return json_error(
                            StatusCode::BAD_GATEWAY,
                            format!(
                                "upstream {} answered more than {MAX_RESPONSE_BYTES} bytes",
                                subset.as_str()
                            ),
                        );
                    }
                    Ok(None) => break,
                    Err(e) => {
                        m.count("source", subset, 502, started);
                        return json_error(
                            StatusCode::BAD_GATEWAY,
                            format!("upstream {} broke off its answer: {e}", subset.as_str()),
                        );
                    }
                }
            }
            m.count("destination", subset, code.as_u16(), started);
            m.count("source", subset, code.as_u16(), started);
            let mut response = Response::new(Body::from(out));
            *response.status_mut() = code;
            for (k, v) in upstream.headers() {
                if !hop_by_hop(k) {
                    response.headers_mut().append(k.clone(), v.clone());
                }
            }
            response.headers_mut().insert(
                HeaderName::from_static("x-mesh-subset"),
                header::HeaderValue::from_static(subset.as_str()),
            );
            response
        }
        Err(e) => {
            let (code, what) = if e.is_timeout() {
                (StatusCode::GATEWAY_TIMEOUT, "did not answer in time")
            } else {
                (StatusCode::SERVICE_UNAVAILABLE, "is unreachable")
            };
            m.count("source", subset, code.as_u16(), started);
            tracing::warn!(subset = subset.as_str(), error = %e, "upstream failed");
            json_error(code, format!("upstream {} {what}: {e}", subset.as_str()))
        }
    }
}

async fn metrics(State(m): State<Arc<Inner>>) -> Response {
    metrics_response(&m.registry)
}

async fn split(State(m): State<Arc<Inner>>) -> Response {
    let s = m.split();
    axum::Json(serde_json::json!({ "primary": s.primary().get(), "burst": s.burst().get() }))
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(p: i64, b: i64) -> Split {
        Split::try_new(p, b).unwrap()
    }

    #[test]
    fn smooth_weighted_is_exact_per_hundred_and_interleaved() {
        let mut w = SmoothWeighted::new(split(70, 30));
        let picks: Vec<Subset> = (0..100).map(|_| w.pick()).collect();
        assert_eq!(picks.iter().filter(|s| **s == Subset::Burst).count(), 30);
        // Never more than 3 primaries in a row at 70/30.
        let mut run = 0;
        for p in &picks {
            run = if *p == Subset::Primary { run + 1 } else { 0 };
            assert!(run <= 3);
        }
        let mut all = SmoothWeighted::new(Split::ALL_BURST);
        assert!((0..10).all(|_| all.pick() == Subset::Burst));
        let mut none = SmoothWeighted::new(Split::ALL_PRIMARY);
        assert!((0..10).all(|_| none.pick() == Subset::Primary));
        assert_eq!(w.split(), split(70, 30));
    }

    #[tokio::test]
    async fn router_changes_and_reports_the_split() {
        let mesh = Mesh::new(MeshConfig::new(
            Url::parse("http://127.0.0.1:1/").unwrap(),
            Url::parse("http://127.0.0.1:2/").unwrap(),
        ))
        .unwrap();
        let r = mesh.router();
        assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
        r.apply(split(40, 60)).await.unwrap();
        assert_eq!(mesh.split(), split(40, 60));
        assert!(r.describe().contains("127.0.0.1:2"));
    }
}
