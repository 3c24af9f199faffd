//! A tower layer on burstd's client that records when each VirtualService PATCH was sent,
//! when its answer arrived and the resourceVersion the server stored.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::Instant;

use axum::http::{Method, Request, Response};
use http_body_util::BodyExt as _;
use kube::client::DynBody;
use serde_json::Value;
use tower::{BoxError, Layer, Service};

use super::lock;

/// One PATCH of a VirtualService that burstd sent, as the API server answered it.
#[derive(Debug, Clone)]
pub(super) struct PatchRecord {
    pub(super) sent: Instant,
    pub(super) returned: Instant,
    pub(super) code: u16,
    pub(super) resource_version: Option<String>,
}

/// Every VirtualService PATCH burstd's client made.
#[derive(Debug, Clone, Default)]
pub(super) struct PatchLog(Arc<Mutex<Vec<PatchRecord>>>);

impl PatchLog {
    pub(super) fn push(&self, r: PatchRecord) {
        lock(&self.0).push(r);
    }

    pub(super) fn find(&self, resource_version: &str) -> Option<PatchRecord> {
        lock(&self.0)
            .iter()
            .find(|r| {
                (200..300).contains(&r.code)
                    && r.resource_version.as_deref() == Some(resource_version)
            })
            .cloned()
    }

    pub(super) fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

/// A tower layer timing the client's VirtualService PATCHes.
#[derive(Debug, Clone)]
pub(super) struct PatchTimingLayer {
    pub(super) log: PatchLog,
}

/// The service [`PatchTimingLayer`] builds.
#[derive(Debug, Clone)]
pub(super) struct PatchTiming<S> {
    inner: S,
    log: PatchLog,
}

impl<S> Layer<S> for PatchTimingLayer {
    type Service = PatchTiming<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PatchTiming {
            inner,
            log: self.log.clone(),
        }
    }
}

pub(super) type ResponseFuture =
    Pin<Box<dyn Future<Output = Result<Response<Box<DynBody>>, BoxError>> + Send>>;

impl<S> Service<Request<kube::client::Body>> for PatchTiming<S>
where
    S: Service<Request<kube::client::Body>, Response = Response<Box<DynBody>>, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Response<Box<DynBody>>;
    type Error = BoxError;
    type Future = ResponseFuture;

    fn poll_ready(&mut self, cx: &mut TaskContext<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<kube::client::Body>) -> Self::Future {
        let timed = req.method() == Method::PATCH && req.uri().path().contains("/virtualservices/");
        let sent = Instant::now();
        let answer = self.inner.call(req);
        if !timed {
            return Box::pin(answer);
        }
        let log = self.log.clone();
        Box::pin(async move {
            let response = answer.await?;
            let (parts, body) = response.into_parts();
            let bytes = body.collect().await?.to_bytes();
            let returned = Instant::now();
            let resource_version = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["metadata"]["resourceVersion"].as_str().map(str::to_owned));
            log.push(PatchRecord {
                sent,
                returned,
                code: parts.status.as_u16(),
                resource_version,
            });
            let body: Box<DynBody> = Box::new(
                http_body_util::Full::new(bytes).map_err(|never| -> BoxError { match never {} }),
            );
            Ok(Response::from_parts(parts, body))
        })
    }
}
