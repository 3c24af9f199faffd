//! Single-policy mode at run time: the one loop, run while this instance leads.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::SinglePolicy;
use crate::Error;
use crate::leader::LeaderState;
use crate::process::CommonOptions;
use crate::runner::{PolicyTask, RunContext, run_policy};
use crate::secrets::client_from_kubeconfig;
use crate::server::Readiness;

/// Single-policy mode, the whole process: endpoints, leader election, and the one loop
/// while this instance leads, until `shutdown` completes (see [`crate::process`]).
pub async fn run(
    client: impl Into<crate::client::KubeClients>,
    options: CommonOptions,
    policy: SinglePolicy,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    // A kubeconfig that cannot be used fails here, at start, not in the loop.
    let prewarm_client = match &policy.prewarm_kubeconfig {
        Some(path) => Some(prewarm_client(path).await?),
        None => None,
    };
    let mut p = crate::process::setup(client.into(), &options).await?;
    if prewarm_client.is_some() {
        // Nothing shares the context yet: this does not clone it.
        Arc::make_mut(&mut p.ctx).prewarm_client = prewarm_client;
    }
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

/// The client of the burst cluster from the kubeconfig at `path` (`--prewarm-kubeconfig`).
async fn prewarm_client(path: &Path) -> Result<kube::Client, Error> {
    let yaml = std::fs::read_to_string(path).map_err(|e| Error::Kubeconfig {
        cluster: "prewarm".to_owned(),
        message: format!(
            "cannot read --prewarm-kubeconfig {}: {e}; give the burst cluster's kubeconfig",
            path.display()
        ),
    })?;
    client_from_kubeconfig("prewarm", &yaml).await
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
    use crate::metrics::Metrics;

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
