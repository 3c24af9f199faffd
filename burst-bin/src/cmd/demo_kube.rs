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

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context as TaskContext, Poll};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use axum::http::{Method, Request, Response};
use burst_core::policy::PolicyFile;
use burst_core::{Split, TrafficRouter};
use burst_hashr::mesh::Mesh;
use burst_istio::RouteConfig;
use burst_istio::VsTarget;
use burst_operator::adapters::ResolvedAuth;
use burst_operator::api::{
    BurstPolicy, BurstPolicySpec, PolicySettings, PrometheusSpec, ScrapeSpec, SourceSpec,
};
use burst_operator::app::CommonOptions;
use burst_operator::operator::OperatorSettings;
use futures::StreamExt as _;
use http_body_util::BodyExt as _;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::PostParams;
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, Patch, PatchParams,
};
use kube::client::{ClientBuilder, DynBody};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;
use serde_json::{Value, json};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::{BoxError, Layer, Service};

use super::demo::{Change, TickLog};

/// The Istio CRDs this project validates against; the demo installs the VirtualService one.
const ISTIO_CRDS: &str = include_str!("../../../schemas/istio/crd-all.gen.yaml");
/// The BurstPolicy CRD, as `burstd crd` prints it.
const BURSTPOLICY_CRD: &str = include_str!("../../../deploy/crd/burstpolicies.bursting.dev.yaml");
/// The seed's Istio objects; the demo applies the worker VirtualService.
const SEED_ISTIO: &str = include_str!("../../../deploy/app/primary/istio.yaml");
/// The seed's BurstPolicy; the demo replaces its source with the local one.
const SEED_POLICY: &str = include_str!("../../../deploy/app/primary/burstpolicy.yaml");

const VS_CRD: &str = "virtualservices.networking.istio.io";
const POLICY_CRD: &str = "burstpolicies.bursting.dev";
/// Field manager of what the demo itself applies (burstd writes as `burstd`).
const DEMO_MANAGER: &str = "burst-demo";
/// Longest wait for one setup request.
const REQUEST_LIMIT: Duration = Duration::from_secs(15);

/// Where the demo runs in the cluster.
#[derive(Debug, Clone)]
pub struct Target {
    /// The kubeconfig file.
    pub kubeconfig: PathBuf,
    /// The namespace the demo creates (if missing) and works in.
    pub namespace: String,
}

/// One PATCH of a VirtualService that burstd sent, as the API server answered it.
#[derive(Debug, Clone)]
struct PatchRecord {
    sent: Instant,
    returned: Instant,
    code: u16,
    resource_version: Option<String>,
}

/// Every VirtualService PATCH burstd's client made.
#[derive(Debug, Clone, Default)]
struct PatchLog(Arc<Mutex<Vec<PatchRecord>>>);

impl PatchLog {
    fn push(&self, r: PatchRecord) {
        lock(&self.0).push(r);
    }

    fn find(&self, resource_version: &str) -> Option<PatchRecord> {
        lock(&self.0)
            .iter()
            .find(|r| {
                (200..300).contains(&r.code)
                    && r.resource_version.as_deref() == Some(resource_version)
            })
            .cloned()
    }

    fn len(&self) -> usize {
        lock(&self.0).len()
    }
}

/// A tower layer timing the client's VirtualService PATCHes.
#[derive(Debug, Clone)]
struct PatchTimingLayer {
    log: PatchLog,
}

/// The service [`PatchTimingLayer`] builds.
#[derive(Debug, Clone)]
struct PatchTiming<S> {
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

type ResponseFuture =
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

/// Min, median and max of a set of latencies, in milliseconds.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyStats {
    /// How many values.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl LatencyStats {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<LatencyStats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(LatencyStats {
            count: n,
            min: v[0],
            median,
            max: v[n - 1],
        })
    }
}

/// One version of the VirtualService's weights, as the proxy's watch saw it.
#[derive(Debug, Clone, Serialize)]
pub struct VsVersion {
    /// Seconds since the scenario started (negative: before it, e.g. the seed).
    pub t: f64,
    /// The server's resourceVersion.
    pub resource_version: String,
    /// Primary weight.
    pub primary: u8,
    /// Burst weight.
    pub burst: u8,
}

/// The VirtualService part of the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct VsReport {
    /// The API server.
    pub server: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Every weight pair the watch delivered, in order.
    pub history: Vec<VsVersion>,
    /// The weights read from the server at the end (`None`: the read failed).
    pub final_weights: Option<Weights>,
    /// VirtualService PATCHes burstd sent.
    pub patches: usize,
}

/// Two weights.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Weights {
    /// Primary.
    pub primary: u8,
    /// Burst.
    pub burst: u8,
}

impl From<Split> for Weights {
    fn from(s: Split) -> Self {
        Weights {
            primary: s.primary().get(),
            burst: s.burst().get(),
        }
    }
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
    operator: JoinHandle<Result<(), burst_operator::Error>>,
    watches: Vec<JoinHandle<()>>,
    /// Wall-clock start, to tell this run's Events from earlier runs'.
    since: std::time::SystemTime,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A readable account of a client error: status code and message for API errors, the
/// chain of causes otherwise.
fn describe(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => format!("{} {}: {}", s.code, s.reason, s.message),
        other => {
            let mut s = other.to_string();
            let mut cur = std::error::Error::source(other);
            while let Some(c) = cur {
                let m = c.to_string();
                if !s.contains(&m) {
                    s.push_str(": ");
                    s.push_str(&m);
                }
                cur = c.source();
            }
            s
        }
    }
}

async fn bounded<T>(
    what: &str,
    fut: impl Future<Output = Result<T, kube::Error>>,
) -> anyhow::Result<Result<T, kube::Error>> {
    tokio::time::timeout(REQUEST_LIMIT, fut)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer within {}s", REQUEST_LIMIT.as_secs()))
}

/// A permission to check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Permission {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    namespaced: bool,
}

impl Permission {
    fn describe(&self, namespace: &str) -> String {
        let res = match self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_owned(),
        };
        let res = if self.group.is_empty() {
            res
        } else {
            format!("{res}.{}", self.group)
        };
        if self.namespaced {
            format!("{} {res} in namespace {namespace}", self.verb)
        } else {
            format!("{} {res} (cluster-wide)", self.verb)
        }
    }
}

/// What the demo and the in-process burstd need (burstd's part comes from its list of API
/// calls: VirtualService target, no leader election, no Secrets).
fn needed_permissions(namespace_exists: bool, missing_crds: &[&str]) -> Vec<Permission> {
    let p = |verb, group, resource, subresource, namespaced| Permission {
        verb,
        group,
        resource,
        subresource,
        namespaced,
    };
    let mut out = Vec::new();
    for c in burst_operator::api_calls::API_CALLS {
        if c.optional.is_some()
            || c.scope != burst_operator::api_calls::Scope::Cluster
            || c.resource == "httproutes"
        {
            continue;
        }
        let (resource, sub) = match c.resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (c.resource, None),
        };
        for v in c.verbs {
            out.push(p(v, c.group, resource, sub, true));
        }
    }
    // The demo's own calls: the seed objects, the proxy's watch, the status watch, the
    // Events behind each change's reason.
    for v in ["get", "list", "watch", "create", "patch"] {
        out.push(p(v, "networking.istio.io", "virtualservices", None, true));
        out.push(p(v, "bursting.dev", "burstpolicies", None, true));
    }
    out.push(p("list", "events.k8s.io", "events", None, true));
    if !namespace_exists {
        out.push(p("create", "", "namespaces", None, false));
    }
    if !missing_crds.is_empty() {
        for v in ["create", "patch"] {
            out.push(p(
                v,
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                None,
                false,
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Reads the kubeconfig, checks that the server answers and accepts the credentials, and
/// that they allow everything the demo will do. Writes nothing.
pub async fn connect(target: Target) -> anyhow::Result<Cluster> {
    let path = &target.kubeconfig;
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot use kubeconfig {}: {e}; pass a kubeconfig file for the cluster (kubectl's ~/.kube/config works)",
            path.display()
        )
    })?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", path.display()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = None;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config.clone()).map_err(|e| {
        anyhow::anyhow!("kubeconfig {}: cannot build a client: {e}", path.display())
    })?;
    let patches = PatchLog::default();
    let operator_client = ClientBuilder::try_from(config)
        .map_err(|e| anyhow::anyhow!("kubeconfig {}: cannot build a client: {e}", path.display()))?
        .with_layer(&PatchTimingLayer {
            log: patches.clone(),
        })
        .build();

    let user = whoami(&client, &server, path).await?;
    let namespace = &target.namespace;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let namespace_exists = match bounded("reading the namespace", ns_api.get_opt(namespace)).await?
    {
        Ok(Some(ns)) => {
            let terminating = ns.metadata.deletion_timestamp.is_some()
                || ns.status.and_then(|s| s.phase).as_deref() == Some("Terminating");
            if terminating {
                bail!(
                    "namespace {namespace} on {server} is being deleted, so nothing can be created in it; pick another one with --namespace"
                );
            }
            true
        }
        Ok(None) => false,
        // Reading may be forbidden where creating is not: the review below decides.
        Err(kube::Error::Api(s)) if s.code == 403 => false,
        Err(e) => bail!(
            "cannot read namespace {namespace} on {server}: {}",
            describe(&e)
        ),
    };
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing_crds = Vec::new();
    for name in [VS_CRD, POLICY_CRD] {
        match bounded("reading the CRDs", crd_api.get_opt(name)).await? {
            Ok(Some(_)) => {}
            Ok(None) | Err(kube::Error::Api(_)) => missing_crds.push(name),
            Err(e) => bail!("cannot read CRD {name} on {server}: {}", describe(&e)),
        }
    }
    let denied = denied_permissions(
        &client,
        namespace,
        &needed_permissions(namespace_exists, &missing_crds),
    )
    .await?;
    if !denied.is_empty() {
        let list: Vec<String> = denied
            .iter()
            .map(|p| format!("  - {}", p.describe(namespace)))
            .collect();
        bail!(
            "the kubeconfig's user {user} on {server} may not do what the demo needs:\n{}\n\
             Use a kubeconfig whose user holds these rights (e.g. cluster-admin on a test cluster); nothing was created.",
            list.join("\n")
        );
    }
    Ok(Cluster {
        target,
        server,
        user,
        client,
        operator_client,
        patches,
        namespace_exists,
        missing_crds,
    })
}

/// The user name the server sees (SelfSubjectReview); a refused credential is an error.
async fn whoami(client: &kube::Client, server: &str, path: &Path) -> anyhow::Result<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    match bounded(
        &format!("the API server {server} (kubeconfig {})", path.display()),
        api.create(&PostParams::default(), &review),
    )
    .await?
    {
        Ok(r) => Ok(r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .map_or_else(|| "(unnamed)".to_owned(), |u| format!("`{u}`"))),
        Err(kube::Error::Api(s)) if s.code == 401 => bail!(
            "the API server {server} refused the credentials in kubeconfig {} (401 Unauthorized); \
             the token or certificate is wrong or expired",
            path.display()
        ),
        // Old servers, or the review itself forbidden: the user stays unnamed.
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Ok("(unnamed)".to_owned()),
        Err(e) => bail!(
            "cannot reach the API server {server} from kubeconfig {}: {}; is it running, and is the kubeconfig's server address right?",
            path.display(),
            describe(&e)
        ),
    }
}

async fn denied_permissions(
    client: &kube::Client,
    namespace: &str,
    wanted: &[Permission],
) -> anyhow::Result<Vec<Permission>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut denied = Vec::new();
    for p in wanted {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(p.verb.to_owned()),
                    group: Some(p.group.to_owned()),
                    resource: Some(p.resource.to_owned()),
                    subresource: p.subresource.map(str::to_owned),
                    namespace: p.namespaced.then(|| namespace.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = bounded(
            "checking permissions",
            api.create(&PostParams::default(), &review),
        )
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot check permissions (SelfSubjectAccessReview): {}",
                describe(&e)
            )
        })?;
        if !answer.status.is_some_and(|s| s.allowed) {
            denied.push(p.clone());
        }
    }
    Ok(denied)
}

/// The seed VirtualService (`worker-virtual-service`) placed in `namespace`.
fn seed_virtual_service(namespace: &str) -> anyhow::Result<Value> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(SEED_ISTIO)
        .context("deploy/app/primary/istio.yaml (compiled in) does not parse")?;
    let mut vs = docs
        .into_iter()
        .find(|d| {
            d["kind"] == "VirtualService" && d["metadata"]["name"] == "worker-virtual-service"
        })
        .context("deploy/app/primary/istio.yaml (compiled in) has no worker-virtual-service")?;
    vs["metadata"]["namespace"] = json!(namespace);
    Ok(vs)
}

/// The seed BurstPolicy placed in `namespace`, measuring with `source`, deciding with `policy`.
fn seed_policy(
    namespace: &str,
    source: SourceSpec,
    policy: PolicySettings,
) -> anyhow::Result<BurstPolicy> {
    let mut bp: BurstPolicy = serde_saphyr::from_str(SEED_POLICY)
        .context("deploy/app/primary/burstpolicy.yaml (compiled in) does not parse")?;
    bp.metadata.namespace = Some(namespace.to_owned());
    bp.spec.source = source;
    bp.spec.policy = policy;
    bp.status = None;
    Ok(bp)
}

/// The BurstPolicy form of a `burst simulate` policy file.
pub fn policy_settings(file: &PolicyFile) -> PolicySettings {
    PolicySettings {
        policy: file.policy.clone(),
        run: file.run,
    }
}

/// The demo's metric source as a BurstPolicy source: Prometheus with the seed's variables,
/// or a direct scrape of the proxy's `/metrics` with the seed's labels.
pub fn source_spec(prometheus_url: Option<&str>, metrics: &url::Url) -> SourceSpec {
    let seed_labels = [
        ("reporter", "source"),
        ("source_workload", "frontend-deployment"),
    ];
    match prometheus_url {
        Some(url) => {
            let mut variables: BTreeMap<String, String> = seed_labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            variables.insert("service".into(), "worker-service".into());
            variables.insert("namespace".into(), "default".into());
            SourceSpec {
                prometheus: Some(PrometheusSpec {
                    url: url.to_owned(),
                    variables,
                    ..PrometheusSpec::default()
                }),
                scrape: None,
            }
        }
        None => {
            let mut matchers: BTreeMap<String, String> = seed_labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            matchers.insert(
                "destination_service".into(),
                "worker-service.default.svc.cluster.local".into(),
            );
            SourceSpec {
                prometheus: None,
                scrape: Some(ScrapeSpec {
                    targets: vec![metrics.to_string()],
                    metric: "istio_requests_total".into(),
                    matchers,
                    ..ScrapeSpec::default()
                }),
            }
        }
    }
}

/// How burstd will describe the source of `spec` (the same source it builds).
pub fn describe_source(spec: &BurstPolicySpec) -> anyhow::Result<String> {
    let policy = spec.validate()?;
    let source = spec
        .source
        .to_config(&policy, &ResolvedAuth::default())?
        .build(&burst_prom::HttpClients::new())?;
    Ok(source.describe())
}

fn vs_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
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
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let established = bounded("reading a CRD", api.get(name))
                .await?
                .map_err(|e| anyhow::anyhow!("cannot read CRD {name}: {}", describe(&e)))?
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "CRD {name} was not Established within 30 s on {}",
                    self.server
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Applies the seed BurstPolicy with `source` and `policy`, starts the mesh's watch of
    /// the VirtualService (applying every weight pair to `mesh`) and burstd's operator, and
    /// waits until the proxy holds the VirtualService's split and burstd has decided once.
    pub async fn start(
        self,
        mesh: &Mesh,
        source: SourceSpec,
        policy: PolicySettings,
        log: Arc<Mutex<TickLog>>,
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
        let watches = vec![
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

        let mut options = CommonOptions::new("burst-demo");
        options.listen = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        options.status_interval = Duration::from_secs(1);
        options.shutdown_grace = Duration::from_secs(5);
        options.request_timeout = Duration::from_secs(10);
        let settings = OperatorSettings {
            namespace: Some(ns.clone()),
            shutdown_grace: Duration::from_secs(5),
        };
        let operator = tokio::spawn(burst_operator::app::run_operator_mode(
            self.operator_client.clone(),
            options,
            settings,
            stop.clone().cancelled_owned(),
        ));
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
            operator,
            watches,
            since,
        };
        running.wait_ready().await?;
        Ok(running)
    }
}

/// The proxy's side of istiod: every weight pair the VirtualService holds goes to the mesh.
async fn follow_virtual_service(
    api: Api<DynamicObject>,
    name: String,
    target: VsTarget,
    mesh: Mesh,
    state: Arc<Mutex<VsState>>,
    log: Arc<Mutex<TickLog>>,
    started: Instant,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let router = mesh.router();
    while let Some(event) = stream.next().await {
        let object = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => o,
            Ok(Event::InitDone) => {
                lock(&state).synced = true;
                continue;
            }
            Ok(Event::Init) => continue,
            Ok(Event::Delete(_)) => {
                tracing::warn!(vs = %name, "the VirtualService was deleted; the proxy keeps its last split");
                continue;
            }
            Err(e) => {
                tracing::warn!(vs = %name, error = %e, "watching the VirtualService failed; retrying");
                continue;
            }
        };
        let rv = object.metadata.resource_version.clone().unwrap_or_default();
        let split = match serde_json::to_value(&object)
            .map_err(|e| e.to_string())
            .and_then(|v| target.read(&v).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(vs = %name, resource_version = %rv, error = %e, "the VirtualService has no weights the proxy can follow; keeping the split");
                continue;
            }
        };
        let from = mesh.split();
        if from != split
            && let Err(e) = router.apply(split).await
        {
            tracing::warn!(vs = %name, error = %e, "the proxy could not apply the split");
            continue;
        }
        let applied = Instant::now();
        {
            let mut s = lock(&state);
            if s.history.last().is_none_or(|(_, _, last)| *last != split) {
                s.history.push((applied, rv.clone(), split));
            }
        }
        if from != split {
            lock(&log).changes.push(Change {
                t: applied.saturating_duration_since(started).as_secs_f64(),
                from: from.to_string(),
                to: split.to_string(),
                burst_weight: split.burst().get(),
                reason: format!("VirtualService {name} resourceVersion {rv}"),
                resource_version: Some(rv),
                patch_sent_to_proxy_ms: None,
                patch_answered_to_proxy_ms: None,
                patch_round_trip_ms: None,
                applied_at: Some(applied),
            });
        }
    }
}

/// burstd's view, from the BurstPolicy's status: the measured rate and the last rule.
async fn follow_policy_status(
    api: Api<BurstPolicy>,
    name: String,
    state: Arc<Mutex<VsState>>,
    log: Arc<Mutex<TickLog>>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let policy = match event {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(policy = %name, error = %e, "watching the BurstPolicy failed; retrying");
                continue;
            }
        };
        let Some(status) = policy.status else {
            continue;
        };
        if let Some(d) = &status.last_decision {
            lock(&state).decided = true;
            let mut l = lock(&log);
            l.rule = Some(d.rule.clone());
            l.observed = status.observed_rps;
        }
    }
}

impl Running {
    /// A one-line description of the router for the banner and the summary.
    pub fn describe(&self) -> String {
        format!(
            "burstd operator (in-process, as {}) patches VirtualService {}/{} on {}; the mesh proxy follows it by watch",
            self.user, self.namespace, self.vs_name, self.server
        )
    }

    async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (synced, decided) = {
                let s = lock(&self.state);
                (s.synced, s.decided)
            };
            if synced && decided {
                return Ok(());
            }
            if self.operator.is_finished() {
                bail!(
                    "burstd's operator stopped during start-up (run with RUST_LOG=info for its log)"
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "within 30 s {}; run with RUST_LOG=info to see burstd's log",
                    if synced {
                        format!(
                            "burstd did not report a decision on BurstPolicy {}/{}",
                            self.namespace, self.policy_name
                        )
                    } else {
                        format!(
                            "the mesh proxy could not list VirtualService {}/{}",
                            self.namespace, self.vs_name
                        )
                    }
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fills each change's latencies and reason (from burstd's `SplitChanged` Events), and
    /// reads the VirtualService once more. `clock` is the scenario's start.
    pub async fn report(&self, changes: &mut [Change], clock: Instant) -> VsReport {
        for c in changes.iter_mut() {
            let (Some(rv), Some(applied)) = (&c.resource_version, c.applied_at) else {
                continue;
            };
            if let Some(p) = self.patches.find(rv) {
                c.patch_sent_to_proxy_ms = Some(signed_ms(applied, p.sent));
                c.patch_answered_to_proxy_ms = Some(signed_ms(applied, p.returned));
                c.patch_round_trip_ms = Some(signed_ms(p.returned, p.sent));
            }
        }
        self.explain(changes).await;
        let history = lock(&self.state)
            .history
            .iter()
            .map(|(at, rv, split)| VsVersion {
                t: signed_ms(*at, clock) / 1000.0,
                resource_version: rv.clone(),
                primary: split.primary().get(),
                burst: split.burst().get(),
            })
            .collect();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &vs_resource());
        let final_weights = match tokio::time::timeout(REQUEST_LIMIT, api.get(&self.vs_name)).await
        {
            Ok(Ok(o)) => serde_json::to_value(&o)
                .ok()
                .and_then(|v| self.vs_target.read(&v).ok())
                .map(Weights::from),
            _ => None,
        };
        VsReport {
            server: self.server.clone(),
            namespace: self.namespace.clone(),
            name: self.vs_name.clone(),
            history,
            final_weights,
            patches: self.patches.len(),
        }
    }

    /// Replaces each change's reason with the note of burstd's `SplitChanged` Event for it.
    async fn explain(&self, changes: &mut [Change]) {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let Ok(Ok(list)) =
            tokio::time::timeout(REQUEST_LIMIT, api.list(&ListParams::default().limit(500))).await
        else {
            return;
        };
        let since = k8s_openapi::jiff::Timestamp::try_from(self.since).ok();
        let mut notes: Vec<(k8s_openapi::jiff::Timestamp, String)> = list
            .items
            .into_iter()
            .filter(|e| e.reason.as_deref() == Some("SplitChanged"))
            .filter(|e| {
                e.regarding.as_ref().and_then(|r| r.name.as_deref())
                    == Some(self.policy_name.as_str())
            })
            .filter_map(|e| Some((e.event_time?.0, e.note?)))
            .filter(|(t, _)| since.is_none_or(|s| *t >= s))
            .collect();
        notes.sort_by_key(|a| a.0);
        let mut used = vec![false; notes.len()];
        for c in changes.iter_mut() {
            let head = format!("{} -> {} (", c.from, c.to);
            if let Some(i) = (0..notes.len()).find(|i| !used[*i] && notes[*i].1.starts_with(&head))
            {
                used[i] = true;
                let note = &notes[i].1;
                c.reason = note[head.len()..].trim_end_matches(')').to_owned();
            }
        }
    }

    /// Stops the watches and waits (bounded) for the operator, which stops on the demo's
    /// cancellation token.
    pub async fn shutdown(self) {
        for w in &self.watches {
            w.abort();
        }
        match tokio::time::timeout(Duration::from_secs(8), self.operator).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "burstd's operator stopped with an error"),
            Err(_) => tracing::warn!("burstd's operator did not stop within 8 s"),
            _ => {}
        }
    }
}

/// `a - b` in milliseconds, negative when `a` is earlier.
fn signed_ms(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(b.duration_since(a).as_secs_f64() * 1000.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_files_become_the_same_policy_in_a_burstpolicy() {
        for yaml in [
            "",
            "high: 15\nlow: 10\nwindow: 2s\ntick: 500ms\n",
            "mode: overflow\ncapacity: 40\nhigh: 15\nlow: 10\nwindow_up: 2s\nwindow_down: 30s\ncooldown: 30s\non_missing: primary\n",
        ] {
            let file = PolicyFile::from_yaml(yaml).unwrap();
            let bp = seed_policy(
                "ns",
                source_spec(
                    None,
                    &url::Url::parse("http://127.0.0.1:9/metrics").unwrap(),
                ),
                policy_settings(&file),
            )
            .unwrap();
            let back = bp.spec.validate().unwrap();
            assert_eq!(back, file.policy, "{yaml}");
            assert_eq!(bp.spec.policy.run, file.run, "{yaml}");
        }
    }

    #[test]
    fn seed_objects_land_in_the_namespace_and_keep_the_seed_target() {
        let vs = seed_virtual_service("demo-1").unwrap();
        assert_eq!(vs["metadata"]["namespace"], "demo-1");
        assert_eq!(VsTarget::default().read(&vs).unwrap(), Split::ALL_PRIMARY);
        let metrics = url::Url::parse("http://127.0.0.1:9/metrics").unwrap();
        let bp = seed_policy(
            "demo-1",
            source_spec(None, &metrics),
            PolicySettings::default(),
        )
        .unwrap();
        assert_eq!(bp.metadata.namespace.as_deref(), Some("demo-1"));
        assert_eq!(bp.spec.target.name, "worker-virtual-service");
        let scrape = bp.spec.source.scrape.as_ref().unwrap();
        assert_eq!(scrape.targets, [metrics.to_string()]);
        assert_eq!(scrape.matchers["source_workload"], "frontend-deployment");
        let d = describe_source(&bp.spec).unwrap();
        assert!(
            d.contains("istio_requests_total") && d.contains("127.0.0.1:9"),
            "{d}"
        );
        let p = source_spec(Some("http://127.0.0.1:9090"), &metrics);
        assert_eq!(p.prometheus.unwrap().variables["service"], "worker-service");
    }

    #[test]
    fn compiled_in_crds_hold_both_definitions() {
        for (source, name) in [(ISTIO_CRDS, VS_CRD), (BURSTPOLICY_CRD, POLICY_CRD)] {
            let needle = format!("name: {name}\n");
            let doc = source
                .split("\n---")
                .find(|d| d.contains(&needle) && d.contains("kind: CustomResourceDefinition"))
                .unwrap();
            let v: Value = serde_saphyr::from_str(doc).unwrap();
            assert_eq!(v["metadata"]["name"], name);
        }
    }

    #[test]
    fn permissions_cover_burstd_and_grow_with_what_is_missing() {
        let base = needed_permissions(true, &[]);
        let has = |ps: &[Permission], verb: &str, resource: &str| {
            ps.iter().any(|p| p.verb == verb && p.resource == resource)
        };
        assert!(has(&base, "patch", "virtualservices"));
        assert!(
            base.iter()
                .any(|p| p.subresource == Some("status") && p.verb == "patch")
        );
        assert!(has(&base, "create", "events"));
        assert!(!has(&base, "get", "leases") && !has(&base, "get", "httproutes"));
        assert!(!has(&base, "create", "namespaces"));
        let all = needed_permissions(false, &[VS_CRD]);
        assert!(has(&all, "create", "namespaces"));
        assert!(has(&all, "create", "customresourcedefinitions"));
        assert_eq!(
            Permission {
                verb: "patch",
                group: "bursting.dev",
                resource: "burstpolicies",
                subresource: Some("status"),
                namespaced: true
            }
            .describe("x"),
            "patch burstpolicies/status.bursting.dev in namespace x"
        );
    }

    #[test]
    fn latency_stats_and_signed_differences() {
        assert_eq!(LatencyStats::of(&[]), None);
        let s = LatencyStats::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.count, s.min, s.median, s.max), (3, 1.0, 2.0, 3.0));
        assert_eq!(LatencyStats::of(&[1.0, 4.0]).unwrap().median, 2.5);
        let a = Instant::now();
        let b = a + Duration::from_millis(5);
        assert!((signed_ms(b, a) - 5.0).abs() < 1e-9);
        assert!((signed_ms(a, b) + 5.0).abs() < 1e-9);
    }
}
