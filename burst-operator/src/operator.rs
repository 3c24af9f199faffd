//! Operator mode: watch BurstPolicies and run one control loop per object ([`run`]: the
//! whole process, as burstd starts it; [`run_operator`]: the loops alone, in a context of
//! your own).
//!
//! - A kube-runtime watcher keeps the set of policies (list, then watch; re-lists after
//!   errors with backoff). `/readyz` turns ready after the first full list.
//! - Only the leader runs loops. A new object starts a loop; a new `generation` (any spec
//!   change: thresholds, target, `paused`, `dryRun`) stops the old loop, waits for it to
//!   finish its tick, and starts a new one; a deleted object stops its loop.
//! - Losing the lease aborts every loop at once (the router gate refuses writes even
//!   before that); winning it starts loops for every known policy.
//! - On shutdown, loops are asked to stop and given `shutdown_grace` to finish their tick;
//!   loops still running then are aborted (a route write is one atomic patch, so none is
//!   left half done).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;
use crate::api::BurstPolicy;
use crate::leader::LeaderState;
use crate::process::CommonOptions;
use crate::runner::{PolicyTask, RunContext, run_policy};
use crate::server::Readiness;

/// Operator settings.
#[derive(Debug, Clone)]
pub struct OperatorSettings {
    /// Watch only this namespace (`None`: all namespaces).
    pub namespace: Option<String>,
    /// How long loops get to finish on shutdown.
    pub shutdown_grace: Duration,
}

impl Default for OperatorSettings {
    fn default() -> Self {
        OperatorSettings {
            namespace: None,
            shutdown_grace: Duration::from_secs(15),
        }
    }
}

type Key = (String, String);

struct Running {
    generation: Option<i64>,
    uid: Option<String>,
    stop: watch::Sender<bool>,
    handle: JoinHandle<()>,
}

/// Which loops a watch event concerns.
enum Follow {
    All,
    One(Key),
}

/// The loops of every known policy: started, restarted and stopped as objects and the
/// leader state change.
struct Supervisor {
    ctx: Arc<RunContext>,
    desired: BTreeMap<Key, Arc<BurstPolicy>>,
    /// The objects of a re-list in progress (replace `desired` when it is done).
    relisting: Option<BTreeMap<Key, Arc<BurstPolicy>>>,
    running: BTreeMap<Key, Running>,
    stopping: Vec<JoinHandle<()>>,
}

impl Supervisor {
    fn key(p: &BurstPolicy) -> Key {
        (p.namespace().unwrap_or_default(), p.name_any())
    }

    /// Records a leader state: metrics, and readiness once the state is known.
    fn observe_leader(&self, state: &LeaderState, readiness: &Readiness) {
        if *state != LeaderState::Unknown {
            readiness.set_leader_known();
        }
        self.ctx.metrics.set_leader(*state == LeaderState::Leader);
    }

    /// Records a watch event in `desired`, and says which loops should follow it: none
    /// (`None`) in the middle of a re-list, all once it is done, else the one object's.
    fn observe(&mut self, event: Event<BurstPolicy>, readiness: &Readiness) -> Option<Follow> {
        let key = match event {
            Event::Init => {
                self.relisting = Some(BTreeMap::new());
                return None;
            }
            Event::InitApply(p) => {
                let p = Arc::new(p);
                if let Some(m) = self.relisting.as_mut() {
                    m.insert(Supervisor::key(&p), p);
                }
                return None;
            }
            Event::InitDone => {
                if let Some(m) = self.relisting.take() {
                    self.desired = m;
                }
                readiness.set_synced();
                tracing::info!(policies = self.desired.len(), "BurstPolicy cache synced");
                return Some(Follow::All);
            }
            Event::Apply(p) => {
                let p = Arc::new(p);
                let key = Supervisor::key(&p);
                self.desired.insert(key.clone(), p);
                key
            }
            Event::Delete(p) => {
                let key = Supervisor::key(&p);
                self.desired.remove(&key);
                key
            }
        };
        self.relisting.is_none().then_some(Follow::One(key))
    }

    fn task(&self, p: &BurstPolicy) -> PolicyTask {
        let namespace = p.namespace().unwrap_or_default();
        PolicyTask {
            status_api: Some(Api::namespaced(self.ctx.status_client.clone(), &namespace)),
            namespace,
            name: p.name_any(),
            generation: p.metadata.generation,
            spec: p.spec.clone(),
            previous: p.status.clone(),
            regarding: p.object_ref(&()),
        }
    }

    /// Brings the loops in line with `desired`: all of them, or only one object's (a
    /// status write of one loop is a watch event too, so at 1,000 policies walking every
    /// loop on each event was a tenth of burstd's CPU).
    fn reconcile(&mut self, follow: Follow) {
        self.stopping.retain(|h| !h.is_finished());
        if !self.ctx.leader.is_leader() {
            self.abort_all();
            return;
        }
        match follow {
            Follow::One(key) => self.follow(key),
            Follow::All => {
                let gone: Vec<Key> = self
                    .running
                    .keys()
                    .filter(|k| !self.desired.contains_key(*k))
                    .cloned()
                    .collect();
                let changed: Vec<Key> = self
                    .desired
                    .iter()
                    .filter(|(k, p)| !self.runs(k, p))
                    .map(|(k, _)| k.clone())
                    .collect();
                for k in gone.into_iter().chain(changed) {
                    self.follow(k);
                }
            }
        }
        self.ctx.metrics.set_policies(self.running.len());
    }

    /// Whether the loop of `key` runs this generation of `p`.
    fn runs(&self, key: &Key, p: &BurstPolicy) -> bool {
        self.running
            .get(key)
            .is_some_and(|r| r.generation == p.metadata.generation && r.uid == p.metadata.uid)
    }

    /// Stops the loop of a deleted object, and starts or restarts the loop of a new or
    /// changed one.
    fn follow(&mut self, key: Key) {
        match self.desired.get(&key).cloned() {
            None => {
                if let Some(r) = self.running.remove(&key) {
                    tracing::info!(policy = %format!("{}/{}", key.0, key.1), "policy deleted; stopping its loop");
                    let _ = r.stop.send(true);
                    self.stopping.push(r.handle);
                }
            }
            Some(p) if !self.runs(&key, &p) => {
                let previous = self.running.remove(&key);
                self.start(key, &p, previous);
            }
            Some(_) => {}
        }
    }

    fn start(&mut self, key: Key, p: &BurstPolicy, previous: Option<Running>) {
        let task = self.task(p);
        let (stop_tx, stop_rx) = watch::channel(false);
        let ctx = self.ctx.clone();
        let prev_handle = previous.map(|r| {
            tracing::info!(policy = %task.key(), "policy changed; restarting its loop");
            let _ = r.stop.send(true);
            r.handle
        });
        // Built and boxed outside the task's block, so the task holds the policy (several
        // KiB) once, inside this future, rather than once more as a captured variable.
        let run = Box::pin(run_policy(ctx, task, stop_rx));
        let handle = tokio::spawn(async move {
            // One loop per object at a time: the old one finishes its tick first.
            if let Some(h) = prev_handle {
                let _ = h.await;
            }
            run.await;
        });
        self.running.insert(
            key,
            Running {
                generation: p.metadata.generation,
                uid: p.metadata.uid.clone(),
                stop: stop_tx,
                handle,
            },
        );
    }

    fn abort_all(&mut self) {
        if !self.running.is_empty() {
            tracing::warn!(
                loops = self.running.len(),
                "not the leader: stopping every control loop now"
            );
        }
        for (_, r) in std::mem::take(&mut self.running) {
            r.handle.abort();
        }
        for h in self.stopping.drain(..) {
            h.abort();
        }
        self.ctx.metrics.set_policies(0);
    }

    async fn shutdown(&mut self, grace: Duration) {
        let mut handles: Vec<JoinHandle<()>> = Vec::new();
        for (_, r) in std::mem::take(&mut self.running) {
            let _ = r.stop.send(true);
            handles.push(r.handle);
        }
        handles.append(&mut self.stopping);
        let aborts: Vec<_> = handles.iter().map(JoinHandle::abort_handle).collect();
        let all = futures::future::join_all(handles);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(grace = ?grace, "control loops did not stop in time; abandoning them");
            for a in aborts {
                a.abort();
            }
        }
        self.ctx.metrics.set_policies(0);
    }
}

/// Operator mode, the whole process: endpoints, leader election, and one loop per
/// BurstPolicy until `shutdown` completes (see [`crate::process`] for the shutdown order).
pub async fn run(
    client: impl Into<crate::client::KubeClients>,
    options: CommonOptions,
    settings: OperatorSettings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let p = crate::process::setup(client.into(), &options).await?;
    let ctx = p.ctx.clone();
    let readiness = p.readiness.clone();
    p.run(run_operator(ctx, settings, readiness, shutdown))
        .await
}

/// Runs the operator until `shutdown` completes: every BurstPolicy event and every leader
/// change ends in the supervisor's `reconcile`, which starts, restarts and stops loops (one
/// [`run_policy`] per object). See the [module docs](self).
pub async fn run_operator(
    ctx: Arc<RunContext>,
    settings: OperatorSettings,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) {
    let api: Api<BurstPolicy> = match &settings.namespace {
        Some(ns) => Api::namespaced(ctx.watch_client.clone(), ns),
        None => Api::all(ctx.watch_client.clone()),
    };
    // `managedFields` is dropped on arrival: burstd never reads it, and at 1,000 policies
    // the copies kept in `desired` were the largest part of the watched objects.
    let mut policies = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .modify(|p| p.metadata.managed_fields = None)
        .boxed();
    let mut leader_rx = ctx.leader.subscribe();
    let mut sup = Supervisor {
        ctx: ctx.clone(),
        desired: BTreeMap::new(),
        relisting: None,
        running: BTreeMap::new(),
        stopping: Vec::new(),
    };
    let initial = leader_rx.borrow().clone();
    sup.observe_leader(&initial, &readiness);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            changed = leader_rx.changed() => {
                if changed.is_err() {
                    // The elector is gone (it stopped on shutdown): no more writes.
                    sup.abort_all();
                    break;
                }
                let state = leader_rx.borrow_and_update().clone();
                sup.observe_leader(&state, &readiness);
                sup.reconcile(Follow::All);
            }
            event = policies.next() => match event {
                None => break,
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "watching BurstPolicies failed; retrying");
                }
                Some(Ok(ev)) => {
                    if let Some(follow) = sup.observe(ev, &readiness) {
                        sup.reconcile(follow);
                    }
                }
            }
        }
    }
    sup.shutdown(settings.shutdown_grace).await;
    tracing::info!("operator stopped");
}
