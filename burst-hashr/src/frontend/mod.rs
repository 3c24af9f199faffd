//! The frontend: the String Hashr page, the load generator and the relay of hashes.
//!
//! | route | what |
//! |---|---|
//! | `GET /` | the page ("String Hashr", "What's the frequency?", "The current hash values") |
//! | `GET /assets/bootstrap.min.css`, `GET /assets/app.js` | served from the binary (no CDN) |
//! | `GET /events` | Server-Sent Events: `hello` (history, chart series, status), `hashes` (batches, oldest first), `status` (every second) |
//! | `POST /api/frequency` | `{"frequency": "20"}` sets the global rate; invalid values get `422` with a message |
//! | `GET /api/status` | the status as JSON (with `controller` when one is set: [`controller`]) |
//! | `GET /_healthz` | `ok` while subscribed to the hash channel, else `503` |
//! | `GET /metrics` | HTTP, load generator and relay metrics |
//!
//! ```no_run
//! # async fn run() -> Result<(), burst_hashr::Error> {
//! use std::sync::Arc;
//! use burst_hashr::frontend::{Frontend, FrontendConfig};
//! use burst_hashr::pubsub::MemoryPubSub;
//!
//! let url = url::Url::parse("http://127.0.0.1:8081/").expect("valid URL");
//! let frontend = Frontend::start(FrontendConfig::new(url), Arc::new(MemoryPubSub::new())).await?;
//! frontend.set_frequency("20")?;
//! let listener = burst_hashr::http::bind("127.0.0.1:8080").await?;
//! burst_hashr::http::serve(listener, frontend.router(), frontend.shutdown_signal()).await
//! # }
//! ```

pub mod controller;
pub mod loadgen;
pub mod relay;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use futures::{Stream, StreamExt};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use self::controller::ControllerView;
use self::loadgen::{HttpSender, LoadGenerator, LoadSnapshot, RequestSender, parse_frequency};
use self::relay::{Relay, RelayCounts};
use crate::Error;
use crate::config::{DEFAULT_CONCURRENCY, DEFAULT_MAX_FREQUENCY};
use crate::http::{
    HttpMetrics, is_json, json_error, metrics_response, read_limited, unsupported_media_type,
};
use crate::pubsub::{CHANNEL, PubSub};

const PAGE: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
/// Bootstrap 5.3.9 (MIT), vendored with its license header.
const BOOTSTRAP_CSS: &[u8] = include_bytes!("../../assets/bootstrap.min.css");
/// Largest accepted body on the frontend's own endpoints.
const FRONTEND_BODY_LIMIT: usize = 1024;

/// Frontend settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontendConfig {
    /// Where the load generator posts.
    pub processor_url: Url,
    /// Highest accepted frequency.
    pub max_frequency: f64,
    /// Cap on load requests in flight.
    pub concurrency: usize,
    /// Timeout of one load request.
    pub request_timeout: Duration,
    /// Hashes each browser may fall behind before the oldest are dropped.
    pub browser_buffer: usize,
    /// Hashes shown to a page that opens later.
    pub history: usize,
    /// Chart points kept (one per second).
    pub series_len: usize,
    /// Channel to relay.
    pub channel: String,
}

impl FrontendConfig {
    /// Defaults for `processor_url`.
    pub fn new(processor_url: Url) -> Self {
        FrontendConfig {
            processor_url,
            max_frequency: DEFAULT_MAX_FREQUENCY,
            concurrency: DEFAULT_CONCURRENCY,
            request_timeout: Duration::from_secs(5),
            browser_buffer: 1024,
            history: 50,
            series_len: 120,
            channel: CHANNEL.to_owned(),
        }
    }
}

/// What the page shows, refreshed every second.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Status {
    /// The global rate set by any browser (requests per second).
    pub frequency: f64,
    /// Highest accepted frequency.
    pub max_frequency: f64,
    /// Requests started during the last second.
    pub sent_per_sec: f64,
    /// Hashes received during the last second.
    pub received_per_sec: f64,
    /// `bursty-` hashes received during the last second.
    pub bursty_per_sec: f64,
    /// Share of `bursty-` hashes during the last second (`None` when none arrived).
    pub bursty_share: Option<f64>,
    /// Load generator counters.
    pub load: LoadSnapshot,
    /// Hashes received in total.
    pub received_total: u64,
    /// `bursty-` hashes received in total.
    pub bursty_total: u64,
    /// Hashes browsers lost because they were too slow.
    pub dropped_total: u64,
    /// Subscription state, e.g. `subscribed`.
    pub subscription: String,
    /// Times the subscription became active.
    pub subscriptions: u64,
    /// What the controller steering the traffic reports (`None`: none was set).
    pub controller: Option<ControllerView>,
}

/// One chart point.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// Requests started per second.
    pub sent_per_sec: f64,
    /// Share of `bursty-` hashes, if any arrived.
    pub bursty_share: Option<f64>,
}

/// A running frontend. Cloning shares it; background tasks stop when the last clone is
/// dropped or [`Frontend::shutdown`] is called.
#[derive(Clone)]
pub struct Frontend {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for Frontend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Frontend")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

struct Shared {
    config: FrontendConfig,
    loadgen: LoadGenerator,
    relay: Arc<Relay>,
    status: watch::Receiver<Status>,
    series: Mutex<VecDeque<Point>>,
    controller: Mutex<Option<ControllerView>>,
    registry: Registry,
    http: HttpMetrics,
    shutdown: CancellationToken,
    /// Kept so an in-process bus lives as long as the frontend.
    _bus: Arc<dyn PubSub>,
}

struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

#[derive(Clone, Default)]
struct FrontendMetrics {
    sent: Counter,
    ok: Counter,
    failed: Counter,
    skipped: Counter,
    received: Counter,
    bursty: Counter,
    dropped: Counter,
    in_flight: Gauge,
    frequency: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl FrontendMetrics {
    fn register(&self, r: &mut Registry) {
        r.register(
            "hashr_load_sent",
            "Load requests started",
            self.sent.clone(),
        );
        r.register(
            "hashr_load_ok",
            "Load requests answered 2xx",
            self.ok.clone(),
        );
        r.register(
            "hashr_load_failed",
            "Load requests that failed",
            self.failed.clone(),
        );
        r.register(
            "hashr_load_skipped",
            "Load requests not sent because the concurrency cap was reached",
            self.skipped.clone(),
        );
        r.register(
            "hashr_load_in_flight",
            "Load requests in flight",
            self.in_flight.clone(),
        );
        r.register(
            "hashr_load_frequency",
            "Requested load in requests per second",
            self.frequency.clone(),
        );
        r.register(
            "hashr_relay_received",
            "Hashes received from the channel",
            self.received.clone(),
        );
        r.register(
            "hashr_relay_bursty",
            "bursty- hashes received",
            self.bursty.clone(),
        );
        r.register(
            "hashr_relay_dropped",
            "Hashes dropped because a browser fell behind",
            self.dropped.clone(),
        );
    }
}

impl Frontend {
    /// Starts a frontend posting to `config.processor_url` over HTTP and relaying `bus`.
    pub async fn start(config: FrontendConfig, bus: Arc<dyn PubSub>) -> Result<Self, Error> {
        let sender = HttpSender::new(
            config.processor_url.clone(),
            config.request_timeout,
            config.concurrency,
        )?;
        Self::start_with_sender(config, bus, Arc::new(sender)).await
    }

    /// Starts a frontend whose load goes through `sender` (for tests and benchmarks).
    pub async fn start_with_sender(
        config: FrontendConfig,
        bus: Arc<dyn PubSub>,
        sender: Arc<dyn RequestSender>,
    ) -> Result<Self, Error> {
        let events = bus.subscribe(&config.channel).await?;
        let relay = Relay::new(config.browser_buffer, config.history);
        let relay_task = tokio::spawn(relay.clone().run(events));
        let loadgen = LoadGenerator::spawn(sender, config.concurrency);
        let (status_tx, status_rx) = watch::channel(Status {
            max_frequency: config.max_frequency,
            subscription: relay.state().to_string(),
            ..Status::default()
        });
        let mut registry = Registry::default();
        let metrics = FrontendMetrics::default();
        metrics.register(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        let shared = Arc::new(Shared {
            config,
            loadgen,
            relay,
            status: status_rx,
            series: Mutex::new(VecDeque::new()),
            controller: Mutex::new(None),
            registry,
            http,
            shutdown: CancellationToken::new(),
            _bus: bus,
        });
        let ticker = tokio::spawn(tick(shared.clone(), status_tx, metrics));
        Ok(Frontend {
            shared,
            _tasks: Arc::new(Tasks(vec![relay_task, ticker])),
        })
    }

    /// The HTTP routes, with metrics and size limits.
    pub fn router(&self) -> Router {
        let routes = Router::new()
            .route("/", get(page))
            .route("/assets/bootstrap.min.css", get(bootstrap_css))
            .route("/assets/app.js", get(app_js))
            .route("/events", get(events))
            .route("/api/frequency", post(set_frequency))
            .route("/api/status", get(status))
            .route("/_healthz", get(healthz))
            .route("/metrics", get(metrics))
            .with_state(self.shared.clone());
        self.shared.http.clone().wrap(routes)
    }

    /// Validates and applies a frequency typed by a user; returns the rate now in effect.
    pub fn set_frequency(&self, input: &str) -> Result<f64, Error> {
        let f = parse_frequency(input, self.shared.config.max_frequency)?;
        self.shared.loadgen.set_rate(f);
        tracing::info!(frequency = f, "frequency set");
        Ok(f)
    }

    /// The rate in effect.
    pub fn frequency(&self) -> f64 {
        self.shared.loadgen.rate()
    }

    /// Sets what the page shows of the controller steering the traffic, from the next
    /// status on (`None` hides it).
    pub fn set_controller(&self, view: Option<ControllerView>) {
        *burst_core::lock(&self.shared.controller) = view;
    }

    /// The latest status (refreshed every second).
    pub fn status(&self) -> Status {
        self.shared.status.borrow().clone()
    }

    /// Load generator counters now.
    pub fn load(&self) -> LoadSnapshot {
        self.shared.loadgen.stats()
    }

    /// Relay counters now.
    pub fn relay(&self) -> RelayCounts {
        self.shared.relay.counts()
    }

    /// Stops the load and ends every browser feed, so a graceful server shutdown completes.
    pub fn shutdown(&self) {
        self.shared.loadgen.set_rate(0.0);
        self.shared.shutdown.cancel();
    }

    /// Completes when [`Frontend::shutdown`] is called; pass it to [`crate::http::serve`].
    pub fn shutdown_signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        self.shared.shutdown.clone().cancelled_owned()
    }
}

async fn tick(shared: Arc<Shared>, tx: watch::Sender<Status>, m: FrontendMetrics) {
    let mut interval = tokio::time::interval(Duration::from_secs(1));
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    interval.tick().await;
    let mut last_at = Instant::now();
    let mut last_load = shared.loadgen.stats();
    let mut last_relay = shared.relay.counts();
    loop {
        interval.tick().await;
        let now = Instant::now();
        let secs = now.duration_since(last_at).as_secs_f64().max(1e-3);
        let load = shared.loadgen.stats();
        let relay = shared.relay.counts();
        let received = relay.received - last_relay.received;
        let bursty = relay.bursty - last_relay.bursty;
        let sent = load.sent - last_load.sent;
        m.sent.inc_by(sent);
        m.ok.inc_by(load.ok - last_load.ok);
        m.failed.inc_by(load.failed - last_load.failed);
        m.skipped.inc_by(load.skipped - last_load.skipped);
        m.received.inc_by(received);
        m.bursty.inc_by(bursty);
        m.dropped.inc_by(relay.dropped - last_relay.dropped);
        m.in_flight
            .set(i64::try_from(load.in_flight).unwrap_or(i64::MAX));
        m.frequency.set(shared.loadgen.rate());
        let status = Status {
            frequency: shared.loadgen.rate(),
            max_frequency: shared.config.max_frequency,
            sent_per_sec: sent as f64 / secs,
            received_per_sec: received as f64 / secs,
            bursty_per_sec: bursty as f64 / secs,
            bursty_share: (received > 0).then(|| bursty as f64 / received as f64),
            load: load.clone(),
            received_total: relay.received,
            bursty_total: relay.bursty,
            dropped_total: relay.dropped,
            subscription: shared.relay.state().to_string(),
            subscriptions: relay.subscriptions,
            controller: burst_core::lock(&shared.controller).clone(),
        };
        {
            let mut series = match shared.series.lock() {
                Ok(g) => g,
                Err(p) => p.into_inner(),
            };
            if series.len() >= shared.config.series_len {
                series.pop_front();
            }
            series.push_back(Point {
                sent_per_sec: status.sent_per_sec,
                bursty_share: status.bursty_share,
            });
        }
        tx.send_replace(status);
        last_at = now;
        last_load = load;
        last_relay = relay;
    }
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

fn asset(content_type: &'static str, body: &'static [u8]) -> Response {
    let mut r = Body::from(body).into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    r
}

async fn bootstrap_css() -> Response {
    asset("text/css; charset=utf-8", BOOTSTRAP_CSS)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS.as_bytes())
}

#[derive(Serialize)]
struct Hello<'a> {
    history: Vec<&'a str>,
    series: Vec<Point>,
    status: &'a Status,
}

fn json_event(name: &'static str, value: &impl Serialize) -> SseEvent {
    match SseEvent::default().event(name).json_data(value) {
        Ok(e) => e,
        Err(e) => SseEvent::default().event("error").data(e.to_string()),
    }
}

async fn events(
    State(s): State<Arc<Shared>>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let status = s.status.borrow().clone();
    let series: Vec<Point> = match s.series.lock() {
        Ok(g) => g.iter().copied().collect(),
        Err(p) => p.into_inner().iter().copied().collect(),
    };
    let history = s.relay.history();
    let hello = json_event(
        "hello",
        &Hello {
            history: history.iter().map(|h| &**h).collect(),
            series,
            status: &status,
        },
    );
    let hashes = s
        .relay
        .feed(500)
        .map(|batch| json_event("hashes", &batch.iter().map(|h| &**h).collect::<Vec<&str>>()));
    let mut rx = s.status.clone();
    rx.mark_unchanged();
    let statuses = futures::stream::unfold(rx, |mut rx| async move {
        rx.changed().await.ok()?;
        let st = rx.borrow_and_update().clone();
        Some((json_event("status", &st), rx))
    });
    let stream = futures::stream::once(async move { hello })
        .chain(futures::stream::select(hashes, statuses))
        .map(Ok)
        .take_until(s.shutdown.clone().cancelled_owned());
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[derive(serde::Deserialize)]
struct FrequencyBody {
    frequency: serde_json::Value,
}

async fn set_frequency(State(s): State<Arc<Shared>>, headers: HeaderMap, body: Body) -> Response {
    if !is_json(&headers) {
        return unsupported_media_type(&headers);
    }
    let bytes = match read_limited(&headers, body, FRONTEND_BODY_LIMIT).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let parsed: FrequencyBody = match serde_json::from_slice(&bytes) {
        Ok(p) => p,
        Err(e) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                format!(r#"the body must be JSON like {{"frequency": "5"}} ({e})"#),
            );
        }
    };
    let input = match &parsed.frequency {
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Number(n) => n.to_string(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    match parse_frequency(&input, s.config.max_frequency) {
        Ok(f) => {
            s.loadgen.set_rate(f);
            tracing::info!(frequency = f, "frequency set");
            axum::Json(serde_json::json!({ "frequency": f })).into_response()
        }
        Err(e) => json_error(StatusCode::UNPROCESSABLE_ENTITY, e.to_string()),
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Response {
    axum::Json(s.status.borrow().clone()).into_response()
}

async fn healthz(State(s): State<Arc<Shared>>) -> Response {
    match s.relay.state() {
        relay::SubscriptionState::Subscribed => "ok".into_response(),
        other => json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not subscribed to channel `{}`: {other}", s.config.channel),
        ),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    metrics_response(&s.registry)
}

/// Runs a frontend from environment settings until `shutdown` completes.
pub async fn run(
    env: crate::config::FrontendEnv,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let bus: Arc<dyn PubSub> = match &env.redis_url {
        Some(url) => Arc::new(crate::pubsub::RedisPubSub::new(url)?),
        None => {
            tracing::warn!("REDIS_URL is not set: only hashes published in this process are shown");
            Arc::new(crate::pubsub::MemoryPubSub::new())
        }
    };
    let mut config = FrontendConfig::new(env.processor_url.clone());
    config.max_frequency = env.max_frequency;
    config.concurrency = env.concurrency;
    let frontend = Frontend::start(config, bus).await?;
    let listener = crate::http::bind(&format!("0.0.0.0:{}", env.port)).await?;
    tracing::info!(port = env.port, processor = %env.processor_url, "frontend listening");
    let f = frontend.clone();
    let signal = frontend.shutdown_signal();
    tokio::spawn(async move {
        shutdown.await;
        f.shutdown();
    });
    crate::http::serve(listener, frontend.router(), signal).await
}

#[cfg(test)]
mod tests;
