//! One control loop: a [`burst_core::Controller`] for one policy, plus its status and Events.
//!
//! [`run_policy`] builds the loop's parts ([`build_parts`]: the spec converted by
//! [`crate::adapters`], Secrets read by [`crate::secrets`], the source built by
//! [`burst_prom::SourceConfig::build`] or, for `source.pods`, a [`burst_pods::PodSource`] on
//! its own EndpointSlice watcher, the router by [`burst_istio::RouteConfig::build`]
//! and wrapped in [`LeaderGated`]), then runs the controller until it is told to stop.
//!
//! The controller's observer turns each tick into a status update ([`StatusTracker`]) and
//! metrics; a writer task patches the BurstPolicy's status and records Events, only while
//! this instance leads. Stopping the loop lets the tick in progress finish (an apply is a
//! single atomic JSON patch, so it is either done or not), then flushes the last status.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use burst_core::policy::{AnyPolicy, PolicySpec};
use burst_core::{
    Controller, ControllerConfig, MetricSource, RouterError, TickObserver, TickReport, Timestamp,
    TrafficRouter,
};
use burst_istio::{Converging, MultiClusterRouter, RouteCaches, RouterOptions, kube_error_kind};
use burst_pods::PodSource;
use burst_prom::HttpClients;
use k8s_openapi::api::core::v1::ObjectReference;
use kube::api::{Api, Patch, PatchParams};
use serde_json::json;
use tokio::sync::{mpsc, watch};

use crate::Error;
use crate::adapters::SourceSetup;
use crate::api::{BurstPolicy, BurstPolicySpec, BurstPolicyStatus};
use crate::events::EventRecorder;
use crate::leader::{LeaderGated, LeaderHandle};
use crate::metrics::Metrics;
use crate::pin::{Pin, Pinned};
use crate::secrets::{client_from_kubeconfig, resolve_auth, secret_value};
use crate::status::{EventNote, StatusTracker, Update};

/// What every loop shares.
#[derive(Clone)]
pub struct RunContext {
    /// The client of the local cluster.
    pub client: kube::Client,
    /// The client for watches (`client` unless [`crate::process`] sets its own).
    pub watch_client: kube::Client,
    /// The client for status writes (`client` unless [`crate::process`] sets its own,
    /// bounded apart from `client`: see [`crate::client::KubeClients::status`]).
    pub status_client: kube::Client,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Leader state; writes happen only while it says leader.
    pub leader: LeaderHandle,
    /// Event recorder (`None`: no Events).
    pub events: Option<EventRecorder>,
    /// Field manager recorded on route and status writes.
    pub field_manager: String,
    /// Timeout of each Kubernetes request a router makes (and of the last status flush).
    pub request_timeout: Duration,
    /// The HTTP clients of metric sources: loops whose sources have the same connection
    /// settings share one client (TLS roots, connection pool) instead of one per policy.
    pub http_clients: HttpClients,
    /// Timeouts and backoff of the controller (tick and dry run come from each policy).
    pub controller: ControllerConfig,
    /// Shortest interval between status writes that only change the measured rate.
    pub status_interval: Duration,
    /// Delay before retrying to build a loop whose parts could not be built.
    pub rebuild_after: Duration,
    /// For tests only: rewrites every pod metrics URL of `spec.source.pods` sources (see
    /// [`burst_pods::PodSource::with_url_rewrite`]). The API server refuses loopback
    /// addresses in EndpointSlices, so tests name other addresses there and map them to
    /// local metric servers here. `None` (the default, and always in burstd) scrapes the
    /// addresses the EndpointSlices give.
    pub pod_url_rewrite: Option<burst_pods::UrlRewrite>,
    /// One EndpointSlice watch per Service, shared by the pod sources and ready-endpoint
    /// signals of every loop.
    pub endpoint_watchers: burst_pods::EndpointWatchers,
    /// The watch-fed route copies of the local cluster, shared by every loop's router
    /// (`None`: every read is a GET, as `explain` does). Routers of extra clusters always
    /// read with GETs.
    pub route_caches: Option<RouteCaches>,
    /// The burst cluster's client for pre-warm scalers (`burstd run --prewarm-kubeconfig`);
    /// `None`: `spec.prewarm`'s `kubeconfigSecretRef`, else [`client`](Self::client).
    pub prewarm_client: Option<kube::Client>,
}

impl std::fmt::Debug for RunContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunContext")
            .field("leader", &self.leader.state())
            .field("field_manager", &self.field_manager)
            .field("request_timeout", &self.request_timeout)
            .field("controller", &self.controller)
            .field("status_interval", &self.status_interval)
            .finish_non_exhaustive()
    }
}

impl RunContext {
    /// Defaults around a client.
    pub fn new(client: kube::Client, metrics: Arc<Metrics>, leader: LeaderHandle) -> RunContext {
        RunContext {
            watch_client: client.clone(),
            status_client: client.clone(),
            client,
            metrics,
            leader,
            events: None,
            field_manager: "burstd".to_owned(),
            request_timeout: Duration::from_secs(10),
            http_clients: HttpClients::new(),
            controller: ControllerConfig::default(),
            status_interval: Duration::from_secs(30),
            rebuild_after: Duration::from_secs(30),
            pod_url_rewrite: None,
            endpoint_watchers: burst_pods::EndpointWatchers::new(),
            route_caches: None,
            prewarm_client: None,
        }
    }
}

/// One policy to run.
#[derive(Debug, Clone)]
pub struct PolicyTask {
    /// Namespace of the policy and its target.
    pub namespace: String,
    /// Name of the policy (for single-policy mode: a label for logs and metrics).
    pub name: String,
    /// `metadata.generation`.
    pub generation: Option<i64>,
    /// The spec.
    pub spec: BurstPolicySpec,
    /// The status found on the object (carried over).
    pub previous: Option<BurstPolicyStatus>,
    /// Where to write the status (`None` in single-policy mode).
    pub status_api: Option<Api<BurstPolicy>>,
    /// What the Events are about.
    pub regarding: ObjectReference,
}

impl PolicyTask {
    /// `namespace/name`.
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }
}

fn now() -> Timestamp {
    Timestamp::from_duration(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default(),
    )
}

struct Observer {
    key: String,
    tracker: Arc<Mutex<StatusTracker>>,
    tx: mpsc::Sender<Box<Update>>,
    metrics: Arc<Metrics>,
}

impl Observer {
    fn send(&self, update: Update) {
        if !update.write && update.events.is_empty() {
            // Nothing for the writer to do (most ticks): do not wake it.
            return;
        }
        if let Err(e) = self.tx.try_send(Box::new(update)) {
            // The writer is behind (API server slow): the next update carries the full
            // status again; only Events can be lost.
            tracing::warn!(policy = %self.key, error = %e, "status writer is behind; dropping an update");
        }
    }
}

impl TickObserver for Observer {
    fn on_tick(&mut self, report: &TickReport) {
        self.metrics.record_tick(&self.key, report);
        tracing::debug!(policy = %self.key, signal = ?report.signal, desired = %report.decision.desired, reason = %report.decision.reason.detail, outcome = ?report.outcome, "tick");
        let update = self
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .on_tick(report);
        self.send(update);
    }

    fn on_start_error(&mut self, error: &RouterError) {
        self.metrics.router_error(&self.key, error.kind());
        let update = self
            .tracker
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .start_error(error, now());
        self.send(update);
    }
}

/// Writes status updates and Events while this instance leads.
struct Writer {
    key: String,
    ctx: Arc<RunContext>,
    status_api: Option<Api<BurstPolicy>>,
    name: String,
    regarding: ObjectReference,
    tracker: Arc<Mutex<StatusTracker>>,
}

impl Writer {
    async fn handle(&self, update: Update) {
        if !self.ctx.leader.is_leader() {
            return;
        }
        for note in &update.events {
            self.record(note).await;
        }
        // Asked again: the update may have been made while the last write was in flight.
        let worth = update.write
            && self
                .tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .worth_writing(&update.status, now());
        if worth {
            self.write_status(update.status).await;
        }
    }

    async fn record(&self, note: &EventNote) {
        tracing::info!(policy = %self.key, reason = note.reason, note = %note.note, "event");
        if let Some(rec) = &self.ctx.events
            && let Err(e) = rec.record(&self.regarding, note).await
        {
            tracing::warn!(policy = %self.key, error = %e, "recording an Event failed");
            self.ctx.metrics.event_error(kube_error_kind(&e));
        }
    }

    async fn write_status(&self, status: BurstPolicyStatus) {
        let Some(api) = &self.status_api else {
            self.tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .written(status, now());
            return;
        };
        let patch = json!({ "status": status });
        match api
            .patch_status(
                &self.name,
                &PatchParams {
                    field_manager: Some(self.ctx.field_manager.clone()),
                    ..PatchParams::default()
                },
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => self
                .tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .written(status, now()),
            Err(e) => {
                tracing::warn!(policy = %self.key, error = %e, "writing the status failed");
                self.ctx.metrics.status_write_error(kube_error_kind(&e));
            }
        }
    }
}

/// The parts of one control loop.
pub struct Parts {
    /// The validated policy settings.
    pub spec: PolicySpec,
    /// The metric source.
    pub source: Box<dyn MetricSource>,
    /// The decision policy, behind `spec.pin` if there is one.
    pub policy: Pinned<AnyPolicy>,
    /// The router, gated on leadership.
    pub router: LeaderGated<Box<dyn TrafficRouter>>,
    /// The pre-warm scaler of `spec.prewarm` (not gated yet: the runner recovers with it).
    pub scaler: Option<burst_scale::KubeScaler>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("spec", &self.spec)
            .field("source", &self.source.describe())
            .field("router", &self.router.describe())
            .finish_non_exhaustive()
    }
}

/// Builds the parts of a loop for `spec`, a policy in `namespace`: reads its Secrets and
/// the kubeconfigs of its extra clusters, builds the source and the router(s).
pub async fn build_parts(
    ctx: &RunContext,
    namespace: &str,
    spec: &BurstPolicySpec,
) -> Result<Parts, Error> {
    let policy_spec = spec.validate()?;
    let auth = resolve_auth(&ctx.client, namespace, spec).await?;
    let source = build_source(ctx, namespace, spec, &policy_spec, &auth)?;
    let route = spec.target.to_route()?;
    let options = RouterOptions {
        api_version: spec
            .target
            .api_version
            .clone()
            .unwrap_or_else(|| "v1".to_owned()),
        // The controller never applies in dry run; if anything did, the server would not store it.
        dry_run: spec.dry_run,
        field_manager: ctx.field_manager.clone(),
        request_timeout: ctx.request_timeout,
        ..RouterOptions::default()
    };
    let name = &spec.target.name;
    let local = match &ctx.route_caches {
        Some(caches) => route.clone().build_cached(
            ctx.client.clone(),
            caches,
            namespace,
            name,
            options.clone(),
        )?,
        None => route
            .clone()
            .build(ctx.client.clone(), namespace, name, options.clone())?,
    };
    let router: Box<dyn TrafficRouter> = if spec.target.clusters.is_empty() {
        local
    } else {
        let mut members = vec![("local".to_owned(), local)];
        for c in &spec.target.clusters {
            let yaml = secret_value(&ctx.client, namespace, &c.kubeconfig_secret_ref).await?;
            let remote = client_from_kubeconfig(&c.name, &yaml).await?;
            let router = route
                .clone()
                .build(remote, namespace, name, options.clone())?;
            members.push((c.name.clone(), router));
        }
        Box::new(Converging::new(
            MultiClusterRouter::new(members)?,
            ctx.leader.write_permission(),
        ))
    };
    let scaler = crate::prewarm::build_for(ctx, namespace, spec, &policy_spec).await?;
    Ok(Parts {
        scaler,
        policy: Pinned::new(policy_spec.build()?, Pin::from_spec(spec.pin.as_ref())?),
        spec: policy_spec,
        source,
        router: LeaderGated::new(router, ctx.leader.clone()),
    })
}

/// The metric source of `spec`. Pod sources and ready-endpoint counts read the shared
/// EndpointSlice watcher of their Service (`ctx.endpoint_watchers`), started with the
/// runner's client when no loop holds it yet and stopped when the last one drops it.
fn build_source(
    ctx: &RunContext,
    namespace: &str,
    spec: &BurstPolicySpec,
    policy_spec: &PolicySpec,
    auth: &crate::adapters::ResolvedAuth,
) -> Result<Box<dyn MetricSource>, Error> {
    let source: Box<dyn MetricSource> = match spec.source.to_setup(namespace, policy_spec, auth)? {
        SourceSetup::Http(config) => config.build(&ctx.http_clients)?,
        SourceSetup::Pods(config) => {
            let w = &ctx.endpoint_watchers;
            let mut source = PodSource::shared(config, w, &ctx.watch_client, &ctx.http_clients)?;
            if let Some(rewrite) = &ctx.pod_url_rewrite {
                source = source.with_url_rewrite(rewrite.clone());
            }
            Box::new(source)
        }
    };
    let Some(ready) = spec.source.ready_endpoints(namespace)? else {
        return Ok(source);
    };
    let mut with_ready = burst_pods::WithReadyEndpoints::new(source);
    for (side, service) in [(true, ready.primary), (false, ready.burst)] {
        if let Some((ns, svc)) = service {
            let w = ctx
                .endpoint_watchers
                .get_or_start(&ctx.watch_client, &ns, &svc)?;
            with_ready = if side {
                with_ready.primary(w)
            } else {
                with_ready.burst(w)
            };
        }
    }
    Ok(Box::new(with_ready))
}

/// Runs `task` until `stop` turns true. See the [module docs](self).
///
/// Not an `async fn`: that would keep the whole task (about 3 KiB, most of it the spec)
/// in the loop's future for as long as the loop runs. The task is taken apart here, and
/// the future keeps only what the loop needs; the spec goes once the parts are built.
pub fn run_policy(
    ctx: Arc<RunContext>,
    task: PolicyTask,
    mut stop: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let key = task.key();
    let tracker = Arc::new(Mutex::new(
        StatusTracker::new(
            task.generation,
            task.spec.dry_run,
            ctx.status_interval,
            task.previous,
        )
        // An invalid pin fails `build_parts` and is reported there.
        .with_pin(Pin::from_spec(task.spec.pin.as_ref()).ok().flatten()),
    ));
    let writer = Writer {
        key: key.clone(),
        ctx: ctx.clone(),
        status_api: task.status_api,
        name: task.name,
        regarding: task.regarding,
        tracker: tracker.clone(),
    };
    let namespace = task.namespace;
    let spec = Box::new(task.spec);
    async move {
        // Boxed: the channel allocates its slots in blocks of 32 up front, and an `Update`
        // (a whole status) is large; 1,000 loops' idle channels were megabytes.
        let (tx, mut rx) = mpsc::channel::<Box<Update>>(64);
        let writer_task = tokio::spawn(async move {
            while let Some(update) = rx.recv().await {
                // What queued while the last write ran folds into one update: every Event,
                // the newest status, and at most one status write.
                let mut update = *update;
                while let Ok(next) = rx.try_recv() {
                    update = update.then(*next);
                }
                // Boxed: the status patch's future is large and exists only while it runs.
                Box::pin(writer.handle(update)).await;
            }
        });
        let stopped = {
            let mut stop = stop.clone();
            async move {
                let _ = stop.wait_for(|s| *s).await;
            }
        };

        if spec.paused {
            drop(spec);
            tracing::info!(policy = %key, "paused");
            let update = tracker
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .paused(now());
            let _ = tx.send(Box::new(update)).await;
            stopped.await;
        } else {
            let setup = Setup {
                ctx: &ctx,
                namespace: &namespace,
                spec,
                key: &key,
            };
            // Boxed: it holds the controller while the loop runs.
            Box::pin(run_controller(
                setup,
                tracker,
                tx.clone(),
                stopped,
                &mut stop,
            ))
            .await;
        }
        drop(tx);
        // Flush the last status, but do not hang on a dead API server.
        if tokio::time::timeout(ctx.request_timeout, writer_task)
            .await
            .is_err()
        {
            tracing::warn!(policy = %key, "status writer did not finish in time");
        }
        ctx.metrics.forget_policy(&key);
        tracing::info!(policy = %key, "control loop stopped");
    }
}

/// What [`run_controller`] builds the loop's parts from.
struct Setup<'a> {
    ctx: &'a Arc<RunContext>,
    namespace: &'a str,
    spec: Box<BurstPolicySpec>,
    key: &'a str,
}

async fn run_controller(
    setup: Setup<'_>,
    tracker: Arc<Mutex<StatusTracker>>,
    tx: mpsc::Sender<Box<Update>>,
    stopped: impl Future<Output = ()> + Send,
    stop: &mut watch::Receiver<bool>,
) {
    let Setup {
        ctx,
        namespace,
        spec,
        key,
    } = setup;
    let mut delay = Duration::from_secs(1).min(ctx.rebuild_after);
    let parts = loop {
        match Box::pin(build_parts(ctx, namespace, &spec)).await {
            Ok(p) => break p,
            Err(e) => {
                tracing::warn!(policy = %key, kind = e.kind(), error = %e, retry_in = ?delay, "cannot set up the control loop");
                let update = tracker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .invalid(e.kind(), &e.to_string(), now());
                let _ = tx.send(Box::new(update)).await;
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    _ = tokio::time::sleep(delay) => {}
                }
                delay = (delay * 2).min(ctx.rebuild_after);
            }
        }
    };
    let config = ControllerConfig {
        dry_run: spec.dry_run,
        ..spec.policy.run.controller_config(ctx.controller)
    };
    // The parts hold what the loop needs of the spec from here on.
    drop(spec);
    let observer = Observer {
        key: key.to_owned(),
        tracker,
        tx,
        metrics: ctx.metrics.clone(),
    };
    let stopped = start_controller(ctx, key, parts, config, observer, stopped).await;
    tracing::debug!(policy = %key, ticks = stopped.ticks, belief = ?stopped.belief, "controller returned");
}

/// The controller of `parts`, pre-warm attached, running until `stopped`: built outside
/// an `async fn` and boxed, so the parts and the controller are held once, in the box,
/// rather than once more in every future around it.
fn start_controller<'a>(
    ctx: &'a Arc<RunContext>,
    key: &'a str,
    parts: Parts,
    config: ControllerConfig,
    observer: Observer,
    stopped: impl Future<Output = ()> + Send + 'a,
) -> std::pin::Pin<Box<dyn Future<Output = burst_core::Stopped> + Send + 'a>> {
    ctx.metrics.policy_started(key, &parts.spec, now());
    tracing::info!(policy = %key, source = %parts.source.describe(), router = %burst_core::TrafficRouter::describe(&parts.router), tick = ?config.tick, dry_run = config.dry_run, "control loop starting");
    let controller =
        Controller::new(parts.source, parts.policy, parts.router, config).with_observer(observer);
    match parts.scaler {
        None => Box::pin(controller.run(stopped)),
        Some(scaler) => {
            let spec = parts.spec;
            Box::pin(async move {
                crate::prewarm::attach(ctx, key, &spec, scaler, controller)
                    .await
                    .run(stopped)
                    .await
            })
        }
    }
}

/// What a policy would decide now, from [`explain`].
#[derive(Debug, Clone)]
pub struct Explanation {
    /// What the source gave.
    pub signal: burst_core::policy::Signal,
    /// The split the route holds now.
    pub current: burst_core::Split,
    /// The decision and its reason.
    pub decision: burst_core::policy::Decision,
    /// The source, as its description.
    pub source: String,
    /// The router, as its description.
    pub router: String,
}

/// Asks the policy of `spec` (a policy in `namespace`) what it would decide now, from its
/// live source and the route's current split, without writing anything: the parts are
/// built in dry run behind a leader gate that is never open, so no route write can happen.
///
/// The policy is fresh: `sustain` and `cooldown` timers start now, as after a restart of
/// burstd, so a sustained switch shows as `sustaining` here.
pub async fn explain(
    client: kube::Client,
    namespace: &str,
    spec: &BurstPolicySpec,
    request_timeout: Duration,
) -> Result<Explanation, Error> {
    use burst_core::policy::Policy as _;

    let (never, rx) = watch::channel(crate::leader::LeaderState::Follower {
        holder: Some("kubectl-burst explain (never writes)".to_owned()),
    });
    let leader = LeaderHandle::from_receiver(rx);
    drop(never);
    let mut ctx = RunContext::new(client, Arc::new(Metrics::new()), leader);
    ctx.request_timeout = request_timeout;
    let mut spec = spec.clone();
    spec.dry_run = true;
    let mut parts = build_parts(&ctx, namespace, &spec).await?;
    let config = spec.policy.run.controller_config(ctx.controller);
    let router_text = burst_core::TrafficRouter::describe(&parts.router);
    let current = match tokio::time::timeout(request_timeout, parts.router.current()).await {
        Ok(Ok(split)) => split,
        Ok(Err(e)) => {
            return Err(Error::Explain {
                message: format!("reading {router_text}: {e}"),
            });
        }
        Err(_) => {
            return Err(Error::Explain {
                message: format!(
                    "reading {router_text} took longer than {}",
                    burst_core::HumanDuration::from(request_timeout)
                ),
            });
        }
    };
    let signal = match tokio::time::timeout(config.source_timeout, parts.source.observe()).await {
        Ok(Ok(reading)) => burst_core::policy::Signal::from(reading),
        Ok(Err(e)) => burst_core::policy::Signal::Error(e),
        Err(_) => burst_core::policy::Signal::Error(burst_core::SourceError::timeout(
            &parts.source.describe(),
            config.source_timeout,
        )),
    };
    let decision = parts.policy.decide(&signal, current, now());
    Ok(Explanation {
        source: parts.source.describe(),
        router: router_text,
        signal,
        current,
        decision,
    })
}
