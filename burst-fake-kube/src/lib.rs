//! # burst-fake-kube
//!
//! An in-process fake Kubernetes API server for tests, driven through the real
//! [`kube::Client`]. No Kubernetes API server can run on our machines, so tests of code that
//! talks to one run against this: it keeps the protocol's semantics that such code depends
//! on, and can be told to misbehave.
//!
//! What it does, like the real server:
//! - generic over resources, addressed by group, version, plural, namespace and name:
//!   GET, LIST (with equality label selectors), POST, PUT, PATCH, DELETE;
//! - `metadata.resourceVersion` from one counter, bumped on every write that changes
//!   something; PUT needs the current one (else `409 Conflict`); `metadata.generation`
//!   increments when anything outside `metadata` and `status` changes;
//! - PATCH as merge patch, JSON patch (a failing `test` op is `422` and nothing is written)
//!   and server-side apply (merge semantics; creates; `fieldManager` required); strategic
//!   merge patch is refused with `415`, as for custom resources;
//! - `dryRun=All` computes the answer and stores nothing;
//! - errors are `Status` objects with `reason`, `code` and `details`; bodies over 3 MiB are
//!   refused.
//!
//! What tests add: [`Fault`]s (answer 404/409/500..., delay, drop the connection, or let
//! "another writer" change the store first) and a record of every write
//! ([`FakeKube::writes`]).
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use burst_fake_kube::{FakeKube, Fault};
//! use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
//! use serde_json::json;
//!
//! let fake = FakeKube::start().await?;
//! fake.insert("virtualservices", json!({
//!     "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
//!     "metadata": {"name": "worker", "namespace": "default"}, "spec": {"hosts": ["w"]}
//! }))?;
//! let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
//! let ar = ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
//! let api: Api<DynamicObject> = Api::namespaced_with(fake.client()?, "default", &ar);
//!
//! assert_eq!(api.get("worker").await?.metadata.resource_version.as_deref(), Some("1"));
//! fake.inject(Fault::status(500).times(1));
//! assert!(api.get("worker").await.is_err());
//! # Ok(()) }
//! ```
//!
//! ## Layout, for extending it
//! - [`store`]: objects and their metadata rules (add a status subresource, leases or
//!   events here: they are objects with a few extra rules);
//! - [`fault`]: fault rules, checked before a request reaches the store;
//! - [`router`]: REST paths to store calls and the write record (add `?watch=true` here,
//!   fed by a broadcast of store changes);
//! - [`status`]: `Status` bodies.
//!
//! - [`watch`]: `?watch=true` streams, resumable from a resourceVersion, with bookmarks;
//! - [`subresource`]: the `status` subresource of custom resources
//!   ([`FakeKube::install_crd`]).
//!
//! Not served yet (answered with a `Status` saying so): other subresources, discovery
//! (`/apis`), field selectors on lists, set-based label selectors. No feature flags.

pub mod fault;
pub mod router;
pub mod status;
pub mod store;
pub mod subresource;
pub mod watch;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tower::ServiceExt;
use tracing::{debug, warn};

pub use fault::{Fault, FaultAction, FiredFault};
pub use router::RecordedWrite;
pub use status::ApiError;
pub use store::{ObjectKey, ResourceRef, Store};

use router::{Shared, lock};

/// What can go wrong setting up the fake.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The listening socket could not be opened.
    #[error("cannot listen on 127.0.0.1: {0}")]
    Bind(#[source] std::io::Error),
    /// A `kube::Client` for the fake could not be built.
    #[error("cannot build a kube client for {url}: {detail}")]
    Client {
        /// The fake's URL.
        url: String,
        /// Why.
        detail: String,
    },
    /// An object given to [`FakeKube::insert`] was refused.
    #[error("object refused: {0}")]
    Api(#[from] ApiError),
}

impl Error {
    /// A short, stable label.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Bind(_) => "bind",
            Error::Client { .. } => "client",
            Error::Api(_) => "api",
        }
    }
}

/// The error that makes hyper close a connection without answering.
#[derive(Debug)]
struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by fault injection")
    }
}

impl std::error::Error for DropConnection {}

/// A running fake API server on `127.0.0.1:<free port>`; stops when dropped.
#[derive(Debug)]
pub struct FakeKube {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl FakeKube {
    /// Starts a server with an empty store.
    pub async fn start() -> Result<FakeKube, Error> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .map_err(Error::Bind)?;
        let addr = listener.local_addr().map_err(Error::Bind)?;
        let shared = Arc::new(Shared::default());
        let app = router::app(shared.clone());
        let state = shared.clone();
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            debug!(%peer, "connection");
                            let app = app.clone();
                            let state = state.clone();
                            connections.spawn(async move {
                                let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                                    serve_one(state.clone(), app.clone(), req)
                                });
                                let _ = hyper::server::conn::http1::Builder::new()
                                    .max_buf_size(256 * 1024)
                                    .serve_connection(TokioIo::new(stream), service)
                                    .await;
                            });
                        }
                        Err(e) => {
                            warn!(error = %e, "accept failed");
                            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        });
        Ok(FakeKube { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig selecting this server (plain HTTP on loopback; the token is sent but
    /// not checked), with `namespace` as the context's default, for processes such as
    /// `burstd` that read their configuration from a file.
    pub fn kubeconfig(&self, namespace: &str, token: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\n\
             clusters: [{{name: fake, cluster: {{server: \"{}\"}}}}]\n\
             users: [{{name: u, user: {{token: {token}}}}}]\n\
             contexts: [{{name: fake, context: {{cluster: fake, user: u, namespace: {namespace}}}}}]\n\
             current-context: fake\n",
            self.url()
        )
    }

    /// A real `kube::Client` talking to this server (default namespace `default`).
    pub fn client(&self) -> Result<kube::Client, Error> {
        let url = self.url();
        let uri: http::Uri = url
            .parse()
            .map_err(|e: http::uri::InvalidUri| Error::Client {
                url: url.clone(),
                detail: e.to_string(),
            })?;
        kube::Client::try_from(kube::Config::new(uri)).map_err(|e| Error::Client {
            url,
            detail: e.to_string(),
        })
    }

    /// Stores `obj` (replacing any object with that name) as a resource of `plural`, with
    /// group and version from its `apiVersion`. Returns it with its system metadata.
    pub fn insert(&self, plural: &str, obj: Value) -> Result<Value, Error> {
        Ok(lock(&self.shared.store).seed(plural, obj)?)
    }

    /// The stored object, if any.
    pub fn object(
        &self,
        group: &str,
        plural: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        lock(&self.shared.store)
            .object(&ObjectKey {
                group: group.to_owned(),
                plural: plural.to_owned(),
                namespace: namespace.map(str::to_owned),
                name: name.to_owned(),
            })
            .cloned()
    }

    /// Runs `f` on the store (e.g. to change an object behind a client's back).
    pub fn with_store<R>(&self, f: impl FnOnce(&mut Store) -> R) -> R {
        f(&mut lock(&self.shared.store))
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.faults).push(fault);
    }

    /// Removes all pending fault rules.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Faults that fired so far.
    pub fn fired(&self) -> Vec<FiredFault> {
        lock(&self.shared.faults).fired().to_vec()
    }

    /// Every write request that reached the store (not those answered by a fault).
    pub fn writes(&self) -> Vec<RecordedWrite> {
        lock(&self.shared.writes).clone()
    }

    /// Forgets the recorded writes.
    pub fn clear_writes(&self) {
        lock(&self.shared.writes).clear();
    }
}

impl Drop for FakeKube {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve_one(
    shared: Arc<Shared>,
    app: axum::Router,
    req: hyper::Request<Incoming>,
) -> Result<axum::response::Response, DropConnection> {
    let action = lock(&shared.faults).take(req.method(), req.uri().path());
    match action {
        Some(FaultAction::Drop) => return Err(DropConnection),
        Some(FaultAction::Status(code)) => {
            let e = ApiError::new(
                code,
                format!("injected fault: {}", status::reason_for(code)),
            );
            return Ok(router::status_response(&e));
        }
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultAction::Mutate(hook)) => hook(&mut lock(&shared.store)),
        None => {}
    }
    match app.oneshot(req.map(axum::body::Body::new)).await {
        Ok(r) => Ok(r),
        Err(never) => match never {},
    }
}
