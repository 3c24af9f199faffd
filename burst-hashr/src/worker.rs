//! The worker: hashes `{"str": ...}` and publishes the result.
//!
//! | route | answer |
//! |---|---|
//! | `POST /` | `200 OK` after the hash was published; `400`/`413`/`415` JSON errors for bad input; `503` when the pub/sub backend is down |
//! | `GET /` | `ok` (liveness) |
//! | `GET /_healthz` | `ok`, or `503` while the pub/sub backend is unreachable or a fault makes the worker unavailable (readiness) |
//!
//! Injected [`Faults`] (slow, down, cold start) apply to `POST /` and readiness.
//! | `GET /metrics` | request counters by status, latency histogram, publish counters |
//!
//! ```no_run
//! # async fn run() -> Result<(), burst_hashr::Error> {
//! use std::sync::Arc;
//! use burst_hashr::pubsub::MemoryPubSub;
//! use burst_hashr::worker::{Worker, WorkerConfig};
//!
//! let worker = Worker::new(WorkerConfig::with_prefix("bursty-"), Arc::new(MemoryPubSub::new()));
//! let listener = burst_hashr::http::bind("127.0.0.1:8081").await?;
//! burst_hashr::http::serve(listener, worker.router(), std::future::pending()).await
//! # }
//! ```

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use serde_json::Value;

use crate::config::DEFAULT_BODY_LIMIT;
use crate::faults::{Faults, Verdict};
use crate::http::{
    HttpMetrics, is_json, json_error, metrics_response, read_limited, unsupported_media_type,
};
use crate::pubsub::{CHANNEL, PubSub};
use crate::{Error, hash};

/// What a worker does with each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// Prepended to each hash (`bursty-` in the burst cluster).
    pub prefix: String,
    /// Largest accepted body in bytes.
    pub body_limit: usize,
    /// Channel to publish on.
    pub channel: String,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            prefix: String::new(),
            body_limit: DEFAULT_BODY_LIMIT,
            channel: CHANNEL.to_owned(),
        }
    }
}

impl WorkerConfig {
    /// Defaults with `prefix`.
    pub fn with_prefix(prefix: impl Into<String>) -> Self {
        WorkerConfig {
            prefix: prefix.into(),
            ..Self::default()
        }
    }
}

/// A String Hashr worker.
pub struct Worker {
    config: WorkerConfig,
    bus: Arc<dyn PubSub>,
    registry: Registry,
    published: Counter,
    publish_failures: Counter,
    failure_log: FailureLog,
    http: HttpMetrics,
    faults: Arc<Faults>,
}

/// Logs publish failures at most once per [`FailureLog::EVERY`] (an outage under load would
/// otherwise log once per request), with how many were folded into each line, and logs the
/// first success after failures.
#[derive(Debug, Default)]
struct FailureLog {
    /// When the last failure was logged; `None` while publishing works.
    last: std::sync::Mutex<Option<std::time::Instant>>,
    /// Failures since the last logged one.
    folded: std::sync::atomic::AtomicU64,
}

impl FailureLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(10);

    /// Records a failure at `now`; `Some(n)` when it should be logged, `n` being the failures
    /// not logged since the previous line.
    fn failure(&self, now: std::time::Instant) -> Option<u64> {
        use std::sync::atomic::Ordering;
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        match *last {
            Some(t) if now.duration_since(t) < Self::EVERY => {
                self.folded.fetch_add(1, Ordering::Relaxed);
                None
            }
            _ => {
                *last = Some(now);
                Some(self.folded.swap(0, Ordering::Relaxed))
            }
        }
    }

    /// Records a success; `Some(n)` on the first one after failures (`n` not yet logged).
    fn success(&self) -> Option<u64> {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        last.take()
            .map(|_| self.folded.swap(0, std::sync::atomic::Ordering::Relaxed))
    }
}

impl std::fmt::Debug for Worker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("config", &self.config)
            .field("bus", &self.bus.describe())
            .finish()
    }
}

impl Worker {
    /// A worker publishing through `bus`.
    pub fn new(config: WorkerConfig, bus: Arc<dyn PubSub>) -> Arc<Self> {
        let mut registry = Registry::default();
        let published = Counter::default();
        let publish_failures = Counter::default();
        registry.register("hashr_published", "Hashes published", published.clone());
        registry.register(
            "hashr_publish_failures",
            "Hashes that could not be published (answered 503)",
            publish_failures.clone(),
        );
        let http = HttpMetrics::register(&mut registry);
        Arc::new(Worker {
            config,
            bus,
            registry,
            published,
            publish_failures,
            failure_log: FailureLog::default(),
            http,
            faults: Arc::new(Faults::new()),
        })
    }

    /// The worker's HTTP routes, with metrics and size limits.
    pub fn router(self: &Arc<Self>) -> Router {
        let routes = Router::new()
            .route("/", get(|| async { "ok" }).post(hash_handler))
            .route("/_healthz", get(healthz))
            .route("/metrics", get(metrics))
            .with_state(self.clone());
        self.http.clone().wrap(routes)
    }

    /// Hashes published so far.
    pub fn published(&self) -> u64 {
        self.published.get()
    }

    /// The worker's injected faults (none unless someone sets them; see [`Faults`]).
    pub fn faults(&self) -> &Arc<Faults> {
        &self.faults
    }
}

async fn hash_handler(State(w): State<Arc<Worker>>, headers: HeaderMap, body: Body) -> Response {
    match w.faults.verdict(std::time::Instant::now()) {
        Verdict::Unavailable(reason) => return json_error(StatusCode::SERVICE_UNAVAILABLE, reason),
        Verdict::Serve { delay } if !delay.is_zero() => tokio::time::sleep(delay).await,
        Verdict::Serve { .. } => {}
    }
    if !is_json(&headers) {
        return unsupported_media_type(&headers);
    }
    let bytes = match read_limited(&headers, body, w.config.body_limit).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let input = match parse_input(&bytes) {
        Ok(s) => s,
        Err(msg) => return json_error(StatusCode::BAD_REQUEST, msg),
    };
    let message = hash::message(
        &w.config.prefix,
        &input,
        hash::local_hour(),
        &mut rand::rng(),
    );
    match w.bus.publish(&w.config.channel, &message).await {
        Ok(()) => {
            w.published.inc();
            if let Some(unlogged) = w.failure_log.success() {
                tracing::info!(unlogged_failures = unlogged, "publishing again");
            }
            "OK".into_response()
        }
        Err(e) => {
            w.publish_failures.inc();
            if let Some(folded) = w.failure_log.failure(std::time::Instant::now()) {
                tracing::warn!(error = %e, kind = e.kind(), failures_since_last_log = folded, "publish failed (logged at most every 10 s; hashr_publish_failures counts all)");
            }
            json_error(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("the hash was not published: {e}; retry when the backend is back"),
            )
        }
    }
}

/// Extracts `str` from a JSON body, or says what is wrong with it.
fn parse_input(bytes: &[u8]) -> Result<String, String> {
    const EXAMPLE: &str = r#"send a JSON object like {"str": "text to hash"}"#;
    let value: Value = serde_json::from_slice(bytes)
        .map_err(|e| format!("the body is not valid JSON ({e}); {EXAMPLE}"))?;
    let Value::Object(mut map) = value else {
        return Err(format!(
            "the body is JSON {}, not an object; {EXAMPLE}",
            type_name(&value)
        ));
    };
    match map.remove("str") {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(format!(
            "field `str` is {}, not a string; {EXAMPLE}",
            type_name(&other)
        )),
        None => Err(format!("field `str` is missing; {EXAMPLE}")),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

async fn healthz(State(w): State<Arc<Worker>>) -> Response {
    if let Verdict::Unavailable(reason) = w.faults.verdict(std::time::Instant::now()) {
        return json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        );
    }
    match w.bus.ping().await {
        Ok(()) => "ok".into_response(),
        Err(e) => json_error(StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {e}")),
    }
}

async fn metrics(State(w): State<Arc<Worker>>) -> Response {
    metrics_response(&w.registry)
}

/// Runs a worker from environment settings until `shutdown` completes.
pub async fn run(
    env: crate::config::WorkerEnv,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let bus: Arc<dyn PubSub> = match &env.redis_url {
        Some(url) => Arc::new(crate::pubsub::RedisPubSub::new(url)?),
        None => {
            tracing::warn!("REDIS_URL is not set: hashes go to an in-process bus nobody else sees");
            Arc::new(crate::pubsub::MemoryPubSub::new())
        }
    };
    let worker = Worker::new(
        WorkerConfig {
            prefix: env.prefix.clone(),
            body_limit: env.body_limit,
            channel: CHANNEL.to_owned(),
        },
        bus.clone(),
    );
    let listener = crate::http::bind(&format!("0.0.0.0:{}", env.port)).await?;
    tracing::info!(port = env.port, prefix = %env.prefix, bus = %bus.describe(), "worker listening");
    crate::http::serve(listener, worker.router(), shutdown).await
}

#[cfg(test)]
mod tests {

    #[test]
    fn publish_failures_are_logged_at_most_every_ten_seconds() {
        let log = FailureLog::default();
        let t0 = std::time::Instant::now();
        assert_eq!(
            log.success(),
            None,
            "nothing to report while publishing works"
        );
        assert_eq!(log.failure(t0), Some(0));
        for i in 1..=5 {
            assert_eq!(log.failure(t0 + std::time::Duration::from_secs(i)), None);
        }
        assert_eq!(log.failure(t0 + FailureLog::EVERY), Some(5));
        assert_eq!(log.failure(t0 + FailureLog::EVERY * 2), Some(0));
        assert_eq!(log.failure(t0 + FailureLog::EVERY * 2), None);
        assert_eq!(
            log.success(),
            Some(1),
            "recovery reports the unlogged failure"
        );
        assert_eq!(log.success(), None);
        assert_eq!(
            log.failure(t0 + FailureLog::EVERY * 2),
            Some(0),
            "a new outage logs at once"
        );
    }

    use super::*;
    use crate::pubsub::{Event, MemoryPubSub};
    use axum::http::Request;
    use futures::StreamExt;
    use tower::ServiceExt;

    /// A bus that is always down.
    struct DownBus;

    #[async_trait::async_trait]
    impl PubSub for DownBus {
        async fn publish(&self, _: &str, _: &str) -> Result<(), Error> {
            Err(Error::PubSubUnavailable {
                backend: "redis at redis://nowhere:6379/".into(),
                message: "cannot connect: connection refused".into(),
            })
        }
        async fn subscribe(&self, _: &str) -> Result<crate::pubsub::EventStream, Error> {
            Ok(futures::stream::empty().boxed())
        }
        async fn ping(&self) -> Result<(), Error> {
            self.publish("", "").await
        }
        fn describe(&self) -> String {
            "down".into()
        }
    }

    fn post(body: impl Into<Body>, content_type: Option<&str>) -> Request<Body> {
        let mut b = Request::post("/");
        if let Some(ct) = content_type {
            b = b.header("content-type", ct);
        }
        b.body(body.into()).unwrap()
    }

    async fn body_text(r: Response) -> String {
        let b = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        String::from_utf8(b.to_vec()).unwrap()
    }

    async fn error_of(r: Response) -> String {
        let v: Value = serde_json::from_str(&body_text(r).await).unwrap();
        v["error"].as_str().unwrap().to_owned()
    }

    #[tokio::test]
    async fn valid_request_publishes_prefixed_hash_then_answers_ok() {
        let bus = Arc::new(MemoryPubSub::new());
        let mut sub = bus.subscribe(CHANNEL).await.unwrap();
        assert_eq!(sub.next().await, Some(Event::Subscribed));
        let w = Worker::new(WorkerConfig::with_prefix("bursty-"), bus.clone());
        let r = w
            .router()
            .oneshot(post(
                r#"{"str":"abc"}"#,
                Some("application/json; charset=utf-8"),
            ))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body_text(r).await, "OK");
        let Some(Event::Message(m)) = sub.next().await else {
            panic!("no message")
        };
        assert!(m.starts_with("bursty-"), "{m}");
        assert_eq!(m.len(), "bursty-".len() + hash::HASH_LEN);
        assert_eq!(w.published(), 1);
    }

    #[tokio::test]
    async fn missing_or_non_string_str_is_400_with_reason() {
        let w = Worker::new(WorkerConfig::default(), Arc::new(MemoryPubSub::new()));
        for (body, needle) in [
            ("{}", "field `str` is missing"),
            (r#"{"str": 5}"#, "field `str` is a number"),
            (r#"{"str": null}"#, "field `str` is null"),
            (r#"{"str": ["a"]}"#, "field `str` is an array"),
            (r#"["a"]"#, "not an object"),
            ("not json", "not valid JSON"),
            ("", "not valid JSON"),
        ] {
            let r = w
                .router()
                .oneshot(post(body, Some("application/json")))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
            let e = error_of(r).await;
            assert!(e.contains(needle), "{body}: {e}");
        }
        assert_eq!(w.published(), 0);
    }

    #[tokio::test]
    async fn wrong_content_type_is_415() {
        let w = Worker::new(WorkerConfig::default(), Arc::new(MemoryPubSub::new()));
        for ct in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let r = w
                .router()
                .oneshot(post(r#"{"str":"a"}"#, ct))
                .await
                .unwrap();
            assert_eq!(r.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
            assert!(error_of(r).await.contains("Content-Type: application/json"));
        }
    }

    #[tokio::test]
    async fn body_over_limit_is_413_with_or_without_content_length() {
        let config = WorkerConfig {
            body_limit: 100,
            ..WorkerConfig::default()
        };
        let w = Worker::new(config, Arc::new(MemoryPubSub::new()));
        let big = format!(r#"{{"str":"{}"}}"#, "x".repeat(200));
        let r = w
            .router()
            .oneshot(
                Request::post("/")
                    .header("content-type", "application/json")
                    .header("content-length", big.len())
                    .body(Body::from(big.clone()))
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(error_of(r).await.contains("at most 100 bytes"));
        // Streamed body without Content-Length.
        let chunks = futures::stream::iter(
            big.into_bytes()
                .chunks(10)
                .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
                .collect::<Vec<_>>(),
        );
        let r = w
            .router()
            .oneshot(post(Body::from_stream(chunks), Some("application/json")))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
        // Exactly at the limit is fine.
        let ok = format!(r#"{{"str":"{}"}}"#, "x".repeat(100 - 10));
        assert_eq!(ok.len(), 100);
        let r = w
            .router()
            .oneshot(post(ok, Some("application/json")))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unavailable_backend_is_503_and_not_ready() {
        let w = Worker::new(WorkerConfig::default(), Arc::new(DownBus));
        let r = w
            .router()
            .oneshot(post(r#"{"str":"a"}"#, Some("application/json")))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let e = error_of(r).await;
        assert!(
            e.contains("was not published") && e.contains("connection refused"),
            "{e}"
        );
        let r = w
            .router()
            .oneshot(Request::get("/_healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Liveness stays ok.
        let r = w
            .router()
            .oneshot(Request::get("/").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body_text(r).await, "ok");
    }

    #[tokio::test(start_paused = true)]
    async fn injected_faults_slow_down_and_take_down_the_worker() {
        let w = Worker::new(
            WorkerConfig::default(),
            Arc::new(crate::pubsub::MemoryPubSub::new()),
        );
        let ok = |r: &Response| r.status() == StatusCode::OK;
        let health = || {
            w.router()
                .oneshot(Request::get("/_healthz").body(Body::empty()).unwrap())
        };
        // Slow: the answer waits for the delay (paused clock: time advances exactly).
        w.faults().set_delay(std::time::Duration::from_millis(200));
        let t0 = tokio::time::Instant::now();
        let r = w
            .router()
            .oneshot(post(r#"{"str":"a"}"#, Some("application/json")))
            .await
            .unwrap();
        assert!(ok(&r));
        assert!(t0.elapsed() >= std::time::Duration::from_millis(200));
        assert!(ok(&health().await.unwrap()));
        // Down: 503 with the reason, readiness fails, nothing is published.
        w.faults().set_down(true);
        let r = w
            .router()
            .oneshot(post(r#"{"str":"a"}"#, Some("application/json")))
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(error_of(r).await.contains("down"));
        assert_eq!(
            health().await.unwrap().status(),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(w.published(), 1);
        w.faults().clear();
        assert!(ok(&health().await.unwrap()));
    }

    #[tokio::test]
    async fn health_and_metrics() {
        let w = Worker::new(WorkerConfig::default(), Arc::new(MemoryPubSub::new()));
        let r = w
            .router()
            .oneshot(Request::get("/_healthz").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body_text(r).await, "ok");
        let _ = w
            .router()
            .oneshot(post("{}", Some("application/json")))
            .await
            .unwrap();
        let r = w
            .router()
            .oneshot(Request::get("/metrics").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let text = body_text(r).await;
        assert!(
            text.contains(r#"http_requests_total{method="POST",path="/",status="400"} 1"#),
            "{text}"
        );
        assert!(
            text.contains("http_request_duration_seconds_bucket"),
            "{text}"
        );
        assert!(text.contains("hashr_published_total 0"), "{text}");
    }
}
