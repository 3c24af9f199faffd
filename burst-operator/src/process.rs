//! The process around the control loops, for both modes: the `/metrics`, `/healthz` and
//! `/readyz` endpoints, leader election, and the shutdown order. [`crate::operator::run`]
//! and [`crate::single::run`] put their loops inside it.
//!
//! Shutdown order (on SIGTERM or Ctrl-C): control loops are asked to stop and finish their
//! tick (bounded by the grace period), then the Lease is released, then the HTTP server
//! stops. A follower therefore takes over at its next retry instead of after expiry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::Error;
use crate::events::EventRecorder;
use crate::leader::{LeaderElector, LeaderHandle, LeaseSettings};
use crate::metrics::Metrics;
use crate::runner::RunContext;
use crate::server::{Readiness, Server};

/// Clients from the kubeconfig or the in-cluster service account, as `kubectl` finds it,
/// built as `options` say ([`crate::client`]).
pub async fn kube_client(
    options: crate::client::ClientOptions,
) -> Result<crate::client::KubeClients, Error> {
    let config = kube::Config::infer().await.map_err(|e| Error::NoCluster {
        source: kube::Error::InferConfig(e),
    })?;
    let (clients, _) =
        crate::client::clients(config, options).map_err(|source| Error::NoCluster { source })?;
    Ok(clients)
}

/// Settings both modes share.
#[derive(Debug, Clone)]
pub struct CommonOptions {
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: SocketAddr,
    /// Leader election (`None`: off, this instance always writes).
    pub lease: Option<LeaseSettings>,
    /// This instance's name in Events and the Lease.
    pub identity: String,
    /// Field manager of route writes.
    pub field_manager: String,
    /// Shortest interval between status writes that only change the measured rate.
    pub status_interval: Duration,
    /// Time loops get to finish on shutdown.
    pub shutdown_grace: Duration,
    /// Timeout of each Kubernetes request a router makes.
    pub request_timeout: Duration,
    /// Record Kubernetes Events.
    pub events: bool,
    /// How requests reach the API server: protocol and bound ([`crate::client`]).
    pub api: crate::client::ClientOptions,
}

impl CommonOptions {
    /// Defaults for `identity`.
    pub fn new(identity: impl Into<String>) -> CommonOptions {
        CommonOptions {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            lease: None,
            identity: identity.into(),
            field_manager: "burstd".to_owned(),
            status_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(15),
            request_timeout: Duration::from_secs(10),
            events: true,
            api: crate::client::ClientOptions::default(),
        }
    }
}

/// The endpoints and the elector, started by [`setup`], run around a mode's loops.
pub(crate) struct Process {
    pub(crate) ctx: Arc<RunContext>,
    pub(crate) readiness: Arc<Readiness>,
    elector: Option<(LeaderElector, tokio::sync::oneshot::Receiver<()>)>,
    elector_stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Server,
}

/// Binds the endpoints and prepares the elector and the loops' shared context.
pub(crate) async fn setup(
    clients: crate::client::KubeClients,
    o: &CommonOptions,
) -> Result<Process, Error> {
    let client = clients.requests;
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new());
    let server = Server::bind(o.listen, metrics.clone(), readiness.clone()).await?;
    let (leader, elector, elector_stop) = match &o.lease {
        Some(settings) => {
            let (elector, handle) = LeaderElector::new(clients.watches.clone(), settings.clone())?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            (handle, Some((elector, rx)), Some(tx))
        }
        None => {
            readiness.set_leader_known();
            (LeaderHandle::always(), None, None)
        }
    };
    let mut ctx = RunContext::new(client.clone(), metrics, leader);
    ctx.route_caches = Some(burst_istio::RouteCaches::new(clients.watches.clone()));
    ctx.watch_client = clients.watches;
    ctx.status_client = clients.status.clone();
    ctx.events = o
        .events
        .then(|| EventRecorder::new(clients.status, o.identity.clone()));
    ctx.field_manager = o.field_manager.clone();
    ctx.request_timeout = o.request_timeout;
    ctx.controller.router_timeout = o.request_timeout;
    ctx.status_interval = o.status_interval;
    Ok(Process {
        ctx: Arc::new(ctx),
        readiness,
        elector,
        elector_stop,
        server,
    })
}

impl Process {
    /// Runs `body` with the server and elector around it, in the shutdown order above.
    pub(crate) async fn run<F>(mut self, body: F) -> Result<(), Error>
    where
        F: Future<Output = ()>,
    {
        tracing::info!(addr = %self.server.local_addr()?, "serving /metrics, /healthz, /readyz");
        let (server_stop_tx, server_stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(self.server.serve(async {
            let _ = server_stop_rx.await;
        }));
        let elector = self.elector.take().map(|(e, rx)| {
            tokio::spawn(e.run(async {
                let _ = rx.await;
            }))
        });
        body.await;
        if let Some(tx) = self.elector_stop.take() {
            let _ = tx.send(());
        }
        if let Some(e) = elector {
            let _ = e.await;
        }
        let _ = server_stop_tx.send(());
        let _ = server.await;
        Ok(())
    }
}
