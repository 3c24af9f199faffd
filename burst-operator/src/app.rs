//! Whole-process wiring for both modes: endpoints, leader election, loops, shutdown.
//!
//! Shutdown order (on SIGTERM or Ctrl-C): control loops are asked to stop and finish their
//! tick (bounded by the grace period), then the Lease is released, then the HTTP server
//! stops. A follower therefore takes over at its next retry instead of after expiry.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;

use crate::Error;
use crate::events::EventRecorder;
use crate::leader::{LeaderElector, LeaderHandle, LeaseSettings};
use crate::metrics::Metrics;
use crate::operator::{OperatorSettings, run_operator, run_single};
use crate::runner::{PolicyTask, RunContext};
use crate::server::{Readiness, Server};
use crate::single::SinglePolicy;
use crate::wiring::WiringOptions;

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
}

impl CommonOptions {
    /// Defaults for `identity`.
    pub fn new(identity: impl Into<String>) -> CommonOptions {
        CommonOptions {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            lease: None,
            identity: identity.into(),
            field_manager: "burstd".to_owned(),
            status_interval: Duration::from_secs(10),
            shutdown_grace: Duration::from_secs(15),
            request_timeout: Duration::from_secs(10),
            events: true,
        }
    }
}

/// Completes on SIGTERM or Ctrl-C (used by burstd and the String Hashr binaries).
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("interrupt: shutting down"),
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; only Ctrl-C stops the process");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

struct Process {
    ctx: Arc<RunContext>,
    readiness: Arc<Readiness>,
    elector: Option<(LeaderElector, tokio::sync::oneshot::Receiver<()>)>,
    elector_stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Server,
}

async fn setup(client: kube::Client, o: &CommonOptions) -> Result<Process, Error> {
    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new());
    let server = Server::bind(o.listen, metrics.clone(), readiness.clone()).await?;
    let (leader, elector, elector_stop) = match &o.lease {
        Some(settings) => {
            let (elector, handle) = LeaderElector::new(client.clone(), settings.clone())?;
            let (tx, rx) = tokio::sync::oneshot::channel();
            (handle, Some((elector, rx)), Some(tx))
        }
        None => {
            readiness.set_leader_known();
            (LeaderHandle::always(), None, None)
        }
    };
    let mut ctx = RunContext::new(client.clone(), metrics, leader);
    ctx.events = o
        .events
        .then(|| EventRecorder::new(client, o.identity.clone()));
    ctx.wiring = WiringOptions {
        field_manager: o.field_manager.clone(),
        request_timeout: o.request_timeout,
        ..WiringOptions::default()
    };
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
    async fn run<F>(mut self, body: F) -> Result<(), Error>
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

/// Operator mode: watch BurstPolicies until `shutdown` completes.
pub async fn run_operator_mode(
    client: kube::Client,
    options: CommonOptions,
    settings: OperatorSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let p = setup(client, &options).await?;
    let ctx = p.ctx.clone();
    let readiness = p.readiness.clone();
    p.run(run_operator(ctx, settings, readiness, shutdown))
        .await
}

/// Single-policy mode: run `policy` until `shutdown` completes.
pub async fn run_single_mode(
    client: kube::Client,
    options: CommonOptions,
    policy: SinglePolicy,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let p = setup(client, &options).await?;
    let (group, _) = policy.spec.target.kind.resource();
    let api_version = format!(
        "{group}/{}",
        policy.spec.target.api_version.as_deref().unwrap_or("v1")
    );
    let task = PolicyTask {
        namespace: policy.namespace.clone(),
        name: policy.name.clone(),
        generation: Some(1),
        regarding: ObjectReference {
            api_version: Some(api_version),
            kind: Some(policy.spec.target.kind.as_str().to_owned()),
            name: Some(policy.spec.target.name.clone()),
            namespace: Some(policy.namespace.clone()),
            ..ObjectReference::default()
        },
        spec: policy.spec,
        previous: None,
        status_api: None,
    };
    let ctx = p.ctx.clone();
    let readiness = p.readiness.clone();
    let grace = options.shutdown_grace;
    p.run(run_single(ctx, task, grace, readiness, shutdown))
        .await
}
