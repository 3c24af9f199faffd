//! burstd's entry ([`run`]) and the process around the loops, for both modes: endpoints,
//! leader election, shutdown.
//!
//! Operator mode hands the loops to [`crate::operator`]; single-policy mode runs its one
//! loop ([`crate::runner::run_policy`]) directly, while this instance leads.
//!
//! Shutdown order (on SIGTERM or Ctrl-C): control loops are asked to stop and finish their
//! tick (bounded by the grace period), then the Lease is released, then the HTTP server
//! stops. A follower therefore takes over at its next retry instead of after expiry.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::cli::{Cli, Command};
use crate::events::EventRecorder;
use crate::leader::LeaderState;
use crate::leader::{LeaderElector, LeaderHandle, LeaseSettings};
use crate::metrics::Metrics;
use crate::operator::{OperatorSettings, run_operator};
use crate::runner::{PolicyTask, RunContext, run_policy};
use crate::server::{Readiness, Server};
use crate::single::SinglePolicy;

async fn client() -> Result<kube::Client, Error> {
    kube::Client::try_default()
        .await
        .map_err(|source| Error::NoCluster { source })
}

/// burstd's entry: runs the command of `cli` until it is done (`crd`) or until SIGTERM or
/// Ctrl-C.
///
/// Logging is the caller's to set up (from [`Cli::log`](crate::cli::Cli::log)).
pub async fn run(cli: Cli) -> Result<(), Error> {
    match cli.command {
        Command::Crd => {
            let yaml = crate::api::crd_yaml()?;
            let mut out = std::io::stdout().lock();
            match out.write_all(yaml.as_bytes()).and_then(|()| out.flush()) {
                Err(source) if source.kind() != std::io::ErrorKind::BrokenPipe => {
                    Err(Error::Stdout { source })
                }
                _ => Ok(()),
            }
        }
        Command::Operator(a) => {
            let options = a.common.options()?;
            let settings = OperatorSettings {
                namespace: a.watch_namespace.clone(),
                shutdown_grace: a.common.shutdown_grace,
            };
            let client = client().await?;
            run_operator_mode(client, options, settings, burst_main::shutdown_signal()).await?;
            Ok(())
        }
        Command::Run(a) => {
            if let Some(haproxy) = a.haproxy()? {
                let policy = crate::haproxy::load(a.config.as_deref(), &a.overrides(), haproxy)?;
                tracing::info!(name = %policy.name, backend = %policy.haproxy.backend, "single-policy mode on HAProxy, without Kubernetes");
                let base = burst_core::ControllerConfig {
                    router_timeout: a.common.request_timeout,
                    ..burst_core::ControllerConfig::default()
                };
                return crate::haproxy::run(
                    a.common.listen,
                    base,
                    policy,
                    burst_main::shutdown_signal(),
                )
                .await;
            }
            let options = a.common.options()?;
            let policy = crate::single::load(a.config.as_deref(), &a.overrides())?;
            tracing::info!(namespace = %policy.namespace, name = %policy.name, target = %policy.spec.target.describe(&policy.namespace), "single-policy mode");
            let client = client().await?;
            run_single_mode(client, options, policy, burst_main::shutdown_signal()).await?;
            Ok(())
        }
    }
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

/// Runs `task` while this instance leads, until `shutdown` completes: started when the
/// lease is won, aborted at once when it is lost (the router gate refuses writes even
/// before), asked to finish its tick within `grace` on shutdown.
async fn run_single(
    ctx: Arc<RunContext>,
    task: PolicyTask,
    grace: Duration,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) {
    let mut leader_rx = ctx.leader.subscribe();
    let mut running: Option<(watch::Sender<bool>, JoinHandle<()>)> = None;
    readiness.set_synced();
    tokio::pin!(shutdown);
    loop {
        let state = leader_rx.borrow_and_update().clone();
        if state != LeaderState::Unknown {
            readiness.set_leader_known();
        }
        ctx.metrics.set_leader(state == LeaderState::Leader);
        match (running.take(), ctx.leader.is_leader()) {
            (None, true) => {
                let (stop_tx, stop_rx) = watch::channel(false);
                let handle = tokio::spawn(run_policy(ctx.clone(), task.clone(), stop_rx));
                running = Some((stop_tx, handle));
            }
            (Some((_, handle)), false) => {
                tracing::warn!("not the leader: stopping the control loop now");
                handle.abort();
            }
            (r, _) => running = r,
        }
        ctx.metrics.set_policies(usize::from(running.is_some()));
        tokio::select! {
            _ = &mut shutdown => break,
            changed = leader_rx.changed() => if changed.is_err() {
                // The elector is gone (it stopped on shutdown): no more writes.
                if let Some((_, handle)) = running.take() {
                    handle.abort();
                }
                break;
            },
        }
    }
    if let Some((stop, handle)) = running.take() {
        let _ = stop.send(true);
        let abort = handle.abort_handle();
        if tokio::time::timeout(grace, handle).await.is_err() {
            tracing::warn!(grace = ?grace, "control loop did not stop in time; abandoning it");
            abort.abort();
        }
    }
    ctx.metrics.set_policies(0);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::api::BurstPolicySpec;

    fn policies_running(m: &Metrics) -> String {
        m.encode()
            .lines()
            .find(|l| l.starts_with("burstd_policies "))
            .unwrap_or_default()
            .to_owned()
    }

    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("timed out waiting for {what}");
    }

    #[tokio::test]
    async fn single_mode_runs_its_loop_only_while_leading() {
        // Nothing listens on port 1: the loop starts and its router reads fail; what is
        // checked is when the loop runs.
        let client =
            kube::Client::try_from(kube::Config::new("http://127.0.0.1:1".parse().unwrap()))
                .unwrap();
        let (leader_tx, leader_rx) = watch::channel(LeaderState::Follower { holder: None });
        let metrics = Arc::new(Metrics::new());
        let ctx = Arc::new(RunContext::new(
            client,
            metrics.clone(),
            crate::leader::LeaderHandle::from_receiver(leader_rx),
        ));
        let spec: BurstPolicySpec = serde_saphyr::from_str(
            "source: {prometheus: {url: 'http://127.0.0.1:1'}}\ntarget: {name: worker}\n",
        )
        .unwrap();
        let task = PolicyTask {
            namespace: "default".into(),
            name: "worker".into(),
            generation: Some(1),
            spec,
            previous: None,
            status_api: None,
            regarding: ObjectReference::default(),
        };
        let readiness = Arc::new(Readiness::new());
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let run = tokio::spawn(run_single(
            ctx,
            task,
            Duration::from_secs(5),
            readiness.clone(),
            async {
                let _ = stop_rx.await;
            },
        ));

        until("a known follower to be ready", || readiness.check().is_ok()).await;
        assert_eq!(policies_running(&metrics), "burstd_policies 0");
        assert!(metrics.encode().contains("burstd_leader 0"));

        leader_tx.send(LeaderState::Leader).unwrap();
        until("the loop to start", || {
            policies_running(&metrics) == "burstd_policies 1"
        })
        .await;
        leader_tx
            .send(LeaderState::Follower { holder: None })
            .unwrap();
        until("the loop to stop", || {
            policies_running(&metrics) == "burstd_policies 0"
        })
        .await;
        leader_tx.send(LeaderState::Leader).unwrap();
        until("the loop to start again", || {
            policies_running(&metrics) == "burstd_policies 1"
        })
        .await;

        stop_tx.send(()).unwrap();
        tokio::time::timeout(Duration::from_secs(10), run)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(policies_running(&metrics), "burstd_policies 0");
    }
}
