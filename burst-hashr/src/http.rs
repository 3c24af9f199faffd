//! HTTP plumbing shared by the worker, the frontend and the mesh proxy: size limits,
//! request metrics, JSON errors and serving with graceful shutdown.

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::Error;

/// Largest accepted request head (URI plus all header names and values), in bytes.
/// Larger requests get `431 Request Header Fields Too Large`.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// Content type of `/metrics` (OpenMetrics text, which Prometheus scrapes natively).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of `http_requests`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    path: String,
    status: u16,
}

/// Labels of `http_request_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PathLabels {
    path: String,
}

type HistogramFamily = Family<PathLabels, Histogram, fn() -> Histogram>;

/// Request counters by method, route and status, and a latency histogram by route.
#[derive(Clone, Debug)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    duration: HistogramFamily,
}

impl HttpMetrics {
    /// Creates the metrics and registers them as `http_requests_total` and
    /// `http_request_duration_seconds` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<RequestLabels, Counter>::default();
        let duration: HistogramFamily =
            Family::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 14)));
        registry.register(
            "http_requests",
            "HTTP requests served, by method, route and status code",
            requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time to answer an HTTP request, by route",
            duration.clone(),
        );
        HttpMetrics { requests, duration }
    }

    /// Adds the metrics and header-limit middleware to `router`.
    pub fn wrap<S: Clone + Send + Sync + 'static>(self, router: Router<S>) -> Router<S> {
        router
            .layer(axum::middleware::from_fn_with_state(self, track))
            .layer(axum::middleware::from_fn(limit_headers))
    }
}

async fn track(State(metrics): State<HttpMetrics>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().as_str().to_owned();
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let response = next.run(req).await;
    metrics
        .requests
        .get_or_create(&RequestLabels {
            method,
            path: path.clone(),
            status: response.status().as_u16(),
        })
        .inc();
    metrics
        .duration
        .get_or_create(&PathLabels { path })
        .observe(started.elapsed().as_secs_f64());
    response
}

/// Refuses requests whose URI and headers together exceed [`MAX_HEADER_BYTES`].
pub async fn limit_headers(req: Request, next: Next) -> Response {
    let size: usize = req.uri().to_string().len()
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.as_bytes().len() + 4)
            .sum::<usize>();
    if size > MAX_HEADER_BYTES {
        return json_error(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "request line and headers are {size} bytes; at most {MAX_HEADER_BYTES} are accepted"
            ),
        );
    }
    next.run(req).await
}

/// A JSON error body `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        axum::Json(serde_json::json!({ "error": message.into() })),
    )
        .into_response()
}

/// Renders `registry` as a `/metrics` response.
pub fn metrics_response(registry: &Registry) -> Response {
    let mut body = String::new();
    match prometheus_client::encoding::text::encode(&mut body, registry) {
        Ok(()) => {
            let mut r = body.into_response();
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(METRICS_CONTENT_TYPE),
            );
            r
        }
        Err(e) => json_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode metrics: {e}"),
        ),
    }
}

/// Reads `body` into memory, refusing more than `limit` bytes with `413`.
///
/// A `Content-Length` above the limit is refused before reading.
pub async fn read_limited(
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: usize,
) -> Result<bytes::Bytes, Response> {
    use futures::StreamExt;
    let too_large = |n: String| {
        json_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is {n} bytes; at most {limit} bytes are accepted"),
        )
    };
    if let Some(len) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limit as u64
    {
        return Err(too_large(len.to_string()));
    }
    let mut stream = body.into_data_stream();
    let mut buf = bytes::BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            json_error(
                StatusCode::BAD_REQUEST,
                format!("cannot read the request body: {e}"),
            )
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large(format!("more than {limit}")));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// True when `headers` declare a JSON body (`application/json`, parameters allowed).
pub fn is_json(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// A `415` explaining that a JSON body is expected.
pub fn unsupported_media_type(headers: &axum::http::HeaderMap) -> Response {
    let got = headers.get(header::CONTENT_TYPE).map_or_else(
        || "none".to_owned(),
        |v| format!("{:?}", String::from_utf8_lossy(v.as_bytes())),
    );
    json_error(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        format!(
            "content type {got} is not supported; send a JSON body with `Content-Type: application/json`"
        ),
    )
}

/// A registry shared between handlers.
pub type SharedRegistry = Arc<Registry>;

/// Binds `addr` (e.g. `127.0.0.1:0`).
pub async fn bind(addr: &str) -> Result<TcpListener, Error> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| Error::Serve {
            addr: addr.to_owned(),
            source,
        })
}

/// Serves `router` on `listener` until `shutdown` completes, then finishes open requests.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let addr = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| Error::Serve { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> (Router, Registry) {
        let mut registry = Registry::default();
        let m = HttpMetrics::register(&mut registry);
        (
            m.wrap(Router::new().route("/x/{id}", get(|| async { "hi" }))),
            registry,
        )
    }

    #[tokio::test]
    async fn oversized_headers_get_431() {
        let (app, _) = app();
        let big = "a".repeat(MAX_HEADER_BYTES + 1);
        let res = app
            .oneshot(
                Request::get("/x/1")
                    .header("x-big", big)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }

    #[tokio::test]
    async fn requests_are_counted_by_route_and_status() {
        let (app, registry) = app();
        let res = app
            .clone()
            .oneshot(Request::get("/x/7").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let res = app
            .oneshot(Request::get("/nope").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        assert!(
            text.contains(r#"http_requests_total{method="GET",path="/x/{id}",status="200"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_requests_total{method="GET",path="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"http_request_duration_seconds_count{path="/x/{id}"} 1"#),
            "{text}"
        );
    }
}
