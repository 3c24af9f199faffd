//! burstd's HTTP endpoints: `/metrics`, `/healthz`, `/readyz`.
//!
//! - `/healthz` answers `ok` while the process serves requests (liveness).
//! - `/readyz` answers `ok` once the BurstPolicy cache has synced (operator mode) and the
//!   leader state is known; otherwise `503` with what is missing.
//! - `/metrics`: see [`crate::metrics`].
//!
//! Only `GET` is served. Request headers are limited to 16 KiB, bodies to 1 KiB, and at most
//! 64 requests are handled at once; a client that sends its headers slower than 10 s is
//! disconnected.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::Error;
use crate::metrics::Metrics;

/// Largest request header block accepted.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1024;
/// Requests handled at once.
pub const MAX_CONCURRENT_REQUESTS: usize = 64;

/// What `/readyz` waits for.
#[derive(Debug, Default)]
pub struct Readiness {
    synced: AtomicBool,
    leader_known: AtomicBool,
}

impl Readiness {
    /// Nothing known yet.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// The watch cache has synced (or there is no cache, in single-policy mode).
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::SeqCst);
    }

    /// The leader state is known (leader or follower, or election is off).
    pub fn set_leader_known(&self) {
        self.leader_known.store(true, Ordering::SeqCst);
    }

    /// `Ok` when ready, else what is missing.
    pub fn check(&self) -> Result<(), String> {
        let mut missing = Vec::new();
        if !self.synced.load(Ordering::SeqCst) {
            missing.push("BurstPolicy cache not synced");
        }
        if !self.leader_known.load(Ordering::SeqCst) {
            missing.push("leader state not known");
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(missing.join("; "))
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The endpoints as an axum router (for tests and embedding).
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower_http::limit::RequestBodyLimitLayer::new(
            MAX_BODY_BYTES,
        ))
        .layer(tower::limit::ConcurrencyLimitLayer::new(
            MAX_CONCURRENT_REQUESTS,
        ))
        .with_state(AppState { metrics, readiness })
}

async fn metrics_handler(State(s): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.encode(),
    )
        .into_response()
}

async fn readyz(State(s): State<AppState>) -> Response {
    match s.readiness.check() {
        Ok(()) => (StatusCode::OK, "ok".to_owned()).into_response(),
        Err(missing) => (StatusCode::SERVICE_UNAVAILABLE, missing).into_response(),
    }
}

/// A bound listener, ready to serve.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    app: Router,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port).
    pub async fn bind(
        addr: SocketAddr,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
    ) -> Result<Server, Error> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Listen { addr, source })?;
        Ok(Server {
            listener,
            app: router(metrics, readiness),
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, Error> {
        self.listener.local_addr().map_err(|source| Error::Listen {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            source,
        })
    }

    /// Serves until `shutdown` completes; open connections are dropped then.
    pub async fn serve(self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                _ = &mut shutdown => break,
                accepted = self.listener.accept() => match accepted {
                    Ok((stream, _peer)) => {
                        let app = self.app.clone();
                        connections.spawn(async move {
                            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                                app.clone().oneshot(req.map(axum::body::Body::new))
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .max_buf_size(MAX_HEADER_BYTES)
                                .timer(TokioTimer::new())
                                .header_read_timeout(Duration::from_secs(10))
                                .serve_connection(TokioIo::new(stream), service)
                                .await;
                        });
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
        connections.abort_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn start() -> (SocketAddr, Arc<Readiness>, tokio::sync::oneshot::Sender<()>) {
        let readiness = Arc::new(Readiness::new());
        let s = Server::bind(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Arc::new(Metrics::new()),
            readiness.clone(),
        )
        .await
        .unwrap();
        let addr = s.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        tokio::spawn(s.serve(async {
            let _ = rx.await;
        }));
        (addr, readiness, tx)
    }

    #[tokio::test]
    async fn health_readiness_and_metrics() {
        let (addr, readiness, _stop) = start().await;
        let c = reqwest::Client::new();
        let url = |p: &str| format!("http://{addr}{p}");
        let r = c.get(url("/healthz")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let r = c.get(url("/readyz")).send().await.unwrap();
        assert_eq!(r.status(), 503);
        let body = r.text().await.unwrap();
        assert!(
            body.contains("not synced") && body.contains("leader"),
            "{body}"
        );
        readiness.set_synced();
        readiness.set_leader_known();
        assert_eq!(c.get(url("/readyz")).send().await.unwrap().status(), 200);
        let m = c.get(url("/metrics")).send().await.unwrap();
        assert_eq!(m.status(), 200);
        assert!(m.text().await.unwrap().contains("burstd_leader"));
        assert_eq!(c.post(url("/metrics")).send().await.unwrap().status(), 405);
    }

    #[tokio::test]
    async fn oversized_requests_are_refused() {
        let (addr, _, _stop) = start().await;
        let c = reqwest::Client::new();
        let r = c
            .get(format!("http://{addr}/healthz"))
            .body(vec![b'x'; MAX_BODY_BYTES * 4])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 413);
        // Headers beyond the limit: the server closes the connection or answers 431.
        let big = "y".repeat(MAX_HEADER_BYTES * 2);
        match c
            .get(format!("http://{addr}/healthz"))
            .header("x-big", big)
            .send()
            .await
        {
            Ok(r) => assert_eq!(r.status(), 431),
            Err(e) => assert!(e.is_request() || e.is_connect() || e.is_body(), "{e}"),
        }
    }
}
