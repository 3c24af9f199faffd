//! `burst demo --kubeconfig`: the demo's loop closes through a real Kubernetes API server.
//!
//! Without `--kubeconfig` the demo's controller sets the mesh proxy's split directly. With
//! it, nothing in the process talks to the proxy's split except a watch on the API server:
//!
//! ```text
//!  mesh /metrics ──scrape──▶ burstd operator (burst-operator, in-process, as `burstd operator`)
//!                                 │ JSON patch of the two weights
//!                                 ▼
//!                      VirtualService in the API server
//!                                 │ watch (kube-runtime watcher), as istiod → Envoy
//!                                 ▼
//!                        mesh proxy's split ──▶ primary / bursty- worker
//! ```
//!
//! Pre-warming (the policy file's `prewarm`) closes the same way: the seed BurstPolicy gets
//! `spec.prewarm.scaler.kubernetes` naming the Deployment `bursty-worker`, which the demo
//! applies scaled to zero; burstd's pre-warm raises its replicas (and puts them back), and
//! a watch of that Deployment ends the local burst worker's cold start when it is scaled
//! up, as the burst cluster's pods would have started. Nothing in the process calls the
//! scaler itself.
//!
//! Setup, in an order that leaves nothing half made when a step fails: read the kubeconfig
//! and check the credentials ([`connect`]: a SelfSubjectReview, then one
//! SelfSubjectAccessReview per permission the demo and burstd need, before anything is
//! written); then create the namespace, install the VirtualService and BurstPolicy CRDs if
//! they are missing, and apply the seed VirtualService ([`Cluster::prepare`]); then, once the
//! local servers run, apply the seed BurstPolicy with the demo's metric source and start the
//! operator and the watches ([`Cluster::start`]).
//!
//! The latency of each change: a tower layer on burstd's client records when each
//! VirtualService PATCH was sent, when the server's answer arrived and the resourceVersion
//! the server stored; the proxy's watch records when it applied the event carrying that
//! resourceVersion. The server stored the change between the PATCH's sending and its
//! answer, so *sent → applied* bounds store → proxy from above, and *answered → applied*
//! from below (on loopback the watch event often overtakes the answer: that one is then
//! negative).
//!
//! Modules: [`access`] (the kubeconfig and the permission check), [`seed`] (the objects the
//! demo applies), [`timing`] (the PATCH timing layer on burstd's client) and [`running`]
//! (burstd and the watches while the demo runs, and their report).

mod access;
mod running;
mod seed;
mod timing;

pub use access::connect;
pub use running::{LatencyStats, VsReport};
pub use seed::{describe_source, policy_settings, source_spec};

use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use burst_core::Split;
use burst_hashr::mesh::Mesh;
use burst_istio::RouteConfig;
use burst_istio::VsTarget;
use burst_operator::api::{BurstPolicy, PolicySettings, SourceSpec};
use burst_operator::operator::OperatorSettings;
use burst_operator::process::CommonOptions;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::runtime::wait::{await_condition, conditions};
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::TickLog;
use burst_core::lock;
use running::{follow_burst_deployment, follow_policy_status, follow_virtual_service};
use seed::{
    BURSTPOLICY_CRD, DEMO_MANAGER, ISTIO_CRDS, VS_CRD, seed_policy, seed_virtual_service,
    vs_resource,
};
use timing::PatchLog;

/// Longest wait for one setup request.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// Where the demo runs in the cluster.
#[derive(Debug, Clone)]
pub struct Target {
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// The namespace the demo creates (if missing) and works in.
    pub namespace: String,
    /// Whether the demo applies an EndpointSlice there (`--source pods`).
    pub endpoint_slices: bool,
    /// Whether the policy pre-warms: the demo applies the burst Deployment and watches it.
    pub prewarm: bool,
}

/// Where the burst Deployment's pre-warm lands: the local burst worker's cold start, and
/// the demo's pre-warm notes.
pub struct PrewarmSink {
    /// The sides of the demo (the burst worker's cold start).
    pub sides: Arc<super::sides::Sides>,
    /// The notes the report and the page read.
    pub notes: super::PrewarmNotes,
}

/// `--source pods`: the EndpointSlice describing the workers as pods, and where their
/// scrapes really go (the slice's addresses are not on this machine).
pub struct PodSlice {
    /// The slice, in the demo's namespace.
    pub slice: k8s_openapi::api::discovery::v1::EndpointSlice,
    /// Maps each pod's metrics URL to its local stats server.
    pub rewrite: burst_pods::UrlRewrite,
}

/// A cluster the demo may use: credentials and permissions checked, nothing written yet.
pub struct Cluster {
    target: Target,
    server: String,
    user: String,
    client: kube::Client,
    operator_client: kube::Client,
    patches: PatchLog,
    namespace_exists: bool,
    missing_crds: Vec<&'static str>,
}

/// What the kube side shares with the report.
#[derive(Debug, Default)]
struct VsState {
    history: Vec<(Instant, String, Split)>,
    synced: bool,
    decided: bool,
}

/// The operator and the watches, running.
pub struct Running {
    server: String,
    user: String,
    namespace: String,
    vs_name: String,
    policy_name: String,
    vs_target: VsTarget,
    client: kube::Client,
    patches: PatchLog,
    state: Arc<Mutex<VsState>>,
    /// The pre-warm notes, whose reasons the report takes from burstd's `Prewarm` Events.
    prewarm_notes: Option<super::PrewarmNotes>,
    operator: JoinHandle<Result<(), burst_operator::Error>>,
    watches: Vec<JoinHandle<()>>,
    /// Wall-clock start, to tell this run's Events from earlier runs'.
    since: std::time::SystemTime,
}

/// burstd's operator as `burstd operator` runs it (`operator::run`), but with every pod
/// source's scrapes sent through `rewrite` (`RunContext::pod_url_rewrite`, the test hook):
/// the demo's EndpointSlice names pod-network addresses, its stats servers listen on
/// loopback. Without burstd's own /metrics endpoint, which the demo does not use.
async fn operator_with_pod_rewrite(
    client: kube::Client,
    options: CommonOptions,
    settings: OperatorSettings,
    rewrite: burst_pods::UrlRewrite,
    shutdown: impl Future<Output = ()>,
) -> Result<(), burst_operator::Error> {
    let metrics = Arc::new(burst_operator::metrics::Metrics::new());
    let leader = burst_operator::leader::LeaderHandle::always();
    let mut ctx = burst_operator::runner::RunContext::new(client.clone(), metrics, leader);
    ctx.events = options
        .events
        .then(|| burst_operator::events::EventRecorder::new(client, options.identity.clone()));
    ctx.field_manager = options.field_manager.clone();
    ctx.request_timeout = options.request_timeout;
    ctx.controller.router_timeout = options.request_timeout;
    ctx.status_interval = options.status_interval;
    ctx.pod_url_rewrite = Some(rewrite);
    let readiness = Arc::new(burst_operator::server::Readiness::new());
    readiness.set_leader_known();
    burst_operator::operator::run_operator(Arc::new(ctx), settings, readiness, shutdown).await;
    Ok(())
}

/// A readable account of a client error: status code and message for API errors, the
/// chain of causes otherwise.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => burst_core::error_chain(other),
    }
}

/// `fut`, or an error naming `what` when it takes longer than [`REQUEST_LIMIT`].
async fn bounded<T>(
    what: &str,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> anyhow::Result<Result<T, kube::Error>> {
    tokio::time::timeout(REQUEST_LIMIT, fut)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer within {}s", REQUEST_LIMIT.as_secs()))
}

impl Cluster {
    /// Creates the namespace if missing, installs missing CRDs, applies the seed
    /// VirtualService (its weights back to 100/0).
    pub async fn prepare(&self) -> anyhow::Result<()> {
        let ns = &self.target.namespace;
        let server = &self.server;
        if !self.namespace_exists {
            let api: Api<Namespace> = Api::all(self.client.clone());
            let object: Namespace = serde_json::from_value(json!({"metadata": {"name": ns}}))?;
            match bounded(
                "creating the namespace",
                api.create(&PostParams::default(), &object),
            )
            .await?
            {
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 409 => {}
                Err(e) => bail!(
                    "cannot create namespace {ns} on {server}: {}; pick another name with --namespace",
                    describe(&e)
                ),
            }
        }
        for name in &self.missing_crds {
            self.install_crd(name).await?;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &vs_resource());
        let vs = seed_virtual_service(ns)?;
        let name = vs["metadata"]["name"]
            .as_str()
            .unwrap_or("worker-virtual-service")
            .to_owned();
        // Right after a CRD turns Established the server may still answer 404 for its
        // resource for a moment.
        let mut attempt = 0;
        loop {
            attempt += 1;
            match bounded(
                "applying the VirtualService",
                api.patch(
                    &name,
                    &PatchParams::apply(DEMO_MANAGER).force(),
                    &Patch::Apply(&vs),
                ),
            )
            .await?
            {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(s)) if s.code == 404 && attempt < 50 => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => bail!(
                    "the API server {server} refused the seed VirtualService {ns}/{name}: {}",
                    describe(&e)
                ),
            }
        }
    }

    /// Applies the burst Deployment scaled to zero (server-side apply: a rerun scales it
    /// back to zero).
    async fn apply_burst_deployment(&self) -> anyhow::Result<()> {
        let ns = &self.target.namespace;
        let doc = seed::burst_deployment(ns)?;
        let api: Api<k8s_openapi::api::apps::v1::Deployment> =
            Api::namespaced(self.client.clone(), ns);
        bounded(
            "applying the burst Deployment",
            api.patch(
                seed::BURST_DEPLOYMENT,
                &PatchParams::apply(DEMO_MANAGER).force(),
                &Patch::Apply(&doc),
            ),
        )
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "the API server {} refused the Deployment {ns}/{}: {}",
                self.server,
                seed::BURST_DEPLOYMENT,
                describe(&e)
            )
        })?;
        Ok(())
    }

    /// Applies `slice` (server-side apply, so a rerun in the same namespace updates it).
    async fn apply_slice(
        &self,
        slice: &k8s_openapi::api::discovery::v1::EndpointSlice,
    ) -> anyhow::Result<()> {
        let ns = &self.target.namespace;
        let name = slice.metadata.name.clone().unwrap_or_default();
        let api: Api<k8s_openapi::api::discovery::v1::EndpointSlice> =
            Api::namespaced(self.client.clone(), ns);
        bounded(
            "applying the EndpointSlice",
            api.patch(
                &name,
                &PatchParams::apply(DEMO_MANAGER).force(),
                &Patch::Apply(slice),
            ),
        )
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "the API server {} refused the EndpointSlice {ns}/{name}: {}",
                self.server,
                describe(&e)
            )
        })?;
        Ok(())
    }

    async fn install_crd(&self, name: &str) -> anyhow::Result<()> {
        let source = if name == VS_CRD {
            ISTIO_CRDS
        } else {
            BURSTPOLICY_CRD
        };
        let needle = format!("name: {name}\n");
        let doc = source
            .split("\n---")
            .find(|d| d.contains(&needle) && d.contains("kind: CustomResourceDefinition"))
            .with_context(|| format!("the compiled-in CRDs lack {name}"))?;
        let crd: Value = serde_saphyr::from_str(doc)
            .with_context(|| format!("the compiled-in CRD {name} does not parse"))?;
        let api: Api<CustomResourceDefinition> = Api::all(self.client.clone());
        bounded(
            "installing a CRD",
            api.patch(
                name,
                &PatchParams::apply(DEMO_MANAGER).force(),
                &Patch::Apply(&crd),
            ),
        )
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "the API server {} refused CRD {name}: {}",
                self.server,
                describe(&e)
            )
        })?;
        let established = await_condition(api, name, conditions::is_crd_established());
        match tokio::time::timeout(Duration::from_secs(30), established).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => bail!("cannot watch CRD {name} on {}: {e}", self.server),
            Err(_) => bail!(
                "CRD {name} was not Established within 30 s on {}",
                self.server
            ),
        }
    }

    /// Applies the seed BurstPolicy with `source` and `policy` (and, for the pod source,
    /// the EndpointSlice of `pods`; when the policy pre-warms, the burst Deployment),
    /// starts the mesh's watch of the VirtualService (applying every weight pair to
    /// `mesh`), the watch of the burst Deployment (its pre-warm goes to `prewarm`) and
    /// burstd's operator, and waits until the proxy holds the VirtualService's split and
    /// burstd has decided once.
    #[allow(clippy::too_many_arguments)]
    pub async fn start(
        self,
        mesh: &Mesh,
        pods: Option<PodSlice>,
        source: SourceSpec,
        policy: PolicySettings,
        log: Arc<Mutex<TickLog>>,
        prewarm: PrewarmSink,
        started: Instant,
        stop: &CancellationToken,
    ) -> anyhow::Result<Running> {
        let ns = self.target.namespace.clone();
        let bp = seed_policy(&ns, source, policy)?;
        let RouteConfig::VirtualService(vs_target) = bp.spec.target.to_route()? else {
            bail!("the seed BurstPolicy does not target a VirtualService");
        };
        let policy_name = bp
            .metadata
            .name
            .clone()
            .unwrap_or_else(|| "worker".to_owned());
        let vs_name = bp.spec.target.name.clone();
        if let Some(p) = &pods {
            self.apply_slice(&p.slice).await?;
        }
        let prewarms = bp.spec.prewarm.is_some();
        if prewarms {
            // Before the policy: burstd's scaler reads it on its first prepare.
            self.apply_burst_deployment().await?;
        }
        let bp_api: Api<BurstPolicy> = Api::namespaced(self.client.clone(), &ns);
        let mut doc = serde_json::to_value(&bp)?;
        doc["apiVersion"] = json!("bursting.dev/v1alpha1");
        doc["kind"] = json!("BurstPolicy");
        bounded(
            "applying the BurstPolicy",
            bp_api.patch(
                &policy_name,
                &PatchParams::apply(DEMO_MANAGER).force(),
                &Patch::Apply(&doc),
            ),
        )
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "the API server {} refused the seed BurstPolicy {ns}/{policy_name}: {}",
                self.server,
                describe(&e)
            )
        })?;

        let since = std::time::SystemTime::now();
        let state = Arc::new(Mutex::new(VsState::default()));
        let vs_api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &ns, &vs_resource());
        let mut watches = vec![
            tokio::spawn(follow_virtual_service(
                vs_api,
                vs_name.clone(),
                vs_target.clone(),
                mesh.clone(),
                state.clone(),
                log.clone(),
                started,
            )),
            tokio::spawn(follow_policy_status(
                bp_api,
                policy_name.clone(),
                state.clone(),
                log,
            )),
        ];
        if prewarms {
            watches.push(tokio::spawn(follow_burst_deployment(
                Api::namespaced(self.client.clone(), &ns),
                seed::BURST_DEPLOYMENT.to_owned(),
                prewarm.sides,
                prewarm.notes.clone(),
                started,
            )));
        }

        let mut options = CommonOptions::new("burst-demo");
        options.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        options.status_interval = Duration::from_secs(1);
        options.shutdown_grace = Duration::from_secs(5);
        options.request_timeout = Duration::from_secs(10);
        let settings = OperatorSettings {
            namespace: Some(ns.clone()),
            shutdown_grace: Duration::from_secs(5),
        };
        let operator = match pods {
            None => tokio::spawn(burst_operator::operator::run(
                self.operator_client.clone(),
                options,
                settings,
                stop.clone().cancelled_owned(),
            )),
            Some(p) => tokio::spawn(operator_with_pod_rewrite(
                self.operator_client.clone(),
                options,
                settings,
                p.rewrite,
                stop.clone().cancelled_owned(),
            )),
        };
        let running = Running {
            server: self.server.clone(),
            user: self.user.clone(),
            namespace: ns,
            vs_name,
            policy_name,
            vs_target,
            client: self.client.clone(),
            patches: self.patches.clone(),
            state,
            prewarm_notes: prewarms.then_some(prewarm.notes),
            operator,
            watches,
            since,
        };
        running.wait_ready().await?;
        Ok(running)
    }
}
