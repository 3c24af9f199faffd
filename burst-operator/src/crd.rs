//! The `BurstPolicy` custom resource (`bursting.dev/v1alpha1`).
//!
//! ```yaml
//! apiVersion: bursting.dev/v1alpha1
//! kind: BurstPolicy
//! metadata: {name: worker, namespace: default}
//! spec:
//!   source:
//!     prometheus:
//!       url: http://prometheus.istio-system:9090
//!       variables: {service: worker-service, namespace: default}
//!   policy: {high: 15, low: 10}          # every key optional; defaults are the seed
//!   target:
//!     kind: VirtualService
//!     name: worker-virtual-service
//!     subsets: {primary: primary, burst: burst}
//! ```
//!
//! The target must live in the policy's own namespace: whoever may create a BurstPolicy in
//! a namespace can only move that namespace's traffic. Secrets referenced by a policy are
//! read from the policy's namespace too.
//!
//! Field names are camelCase (the Kubernetes convention); `spec.policy` holds the keys of
//! `burst simulate`'s policy file (`burst_weight` is `burstWeight`, and so on).
//!
//! The API server refuses a policy that breaks the schema when it is applied, naming the
//! field: wrong types, missing fields, values out of range, unknown enum values, and the
//! CEL rules here (exactly one source, `low` below `high` when both are given, `backends`
//! only and always for HTTPRoute, two different subsets, cluster names unique and not
//! `local`). What needs more than the object (durations, `low` against the default `high`,
//! overflow without `capacity`) burstd checks and reports as the `InvalidSpec` condition.

use std::collections::BTreeMap;
use std::time::Duration;

use burst_core::policy::{LoopSpec, Mode, OnMissing, PolicySpec};
use burst_core::{Rates, Split};
use burst_istio::{BackendSelector, HttpRouteTarget, RouteSelector, VsTarget};
use burst_prom::{PrometheusConfig, ScrapeConfig, ScrapeMode, SeriesRule};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, CustomResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The API group of [`BurstPolicy`].
pub const GROUP: &str = "bursting.dev";
/// The served version.
pub const VERSION: &str = "v1alpha1";
/// The resource plural.
pub const PLURAL: &str = "burstpolicies";

/// A traffic policy: measure a request rate, decide a split, write it to a route.
#[derive(CustomResource, Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[kube(
    group = "bursting.dev",
    version = "v1alpha1",
    kind = "BurstPolicy",
    plural = "burstpolicies",
    singular = "burstpolicy",
    shortname = "bp",
    category = "bursting",
    namespaced,
    status = "BurstPolicyStatus",
    doc = "Moves HTTP traffic between a primary and a burst destination by changing route weights from a measured request rate.",
    printcolumn = r#"{"name":"Target","type":"string","jsonPath":".spec.target.name","description":"The VirtualService or HTTPRoute whose weights are changed"}"#,
    printcolumn = r#"{"name":"Mode","type":"string","jsonPath":".status.mode","description":"Primary, Burst, Split, Paused, Pending or Unknown"}"#,
    printcolumn = r#"{"name":"Burst %","type":"integer","jsonPath":".status.burstWeight","description":"Weight of the burst destination"}"#,
    printcolumn = r#"{"name":"Observed RPS","type":"number","jsonPath":".status.observedRps","description":"Last measured request rate (short window)"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct BurstPolicySpec {
    /// Where the request rate comes from: exactly one of `prometheus` or `scrape`.
    pub source: SourceSpec,
    /// The decision policy; every field is optional and defaults to the seed (hysteresis
    /// 15/10 rps over 15 s, 1 s tick).
    #[serde(default)]
    pub policy: PolicySettings,
    /// The route whose weights are changed.
    pub target: TargetSpec,
    /// Decide, log and report in status, but never change the route.
    #[serde(default)]
    pub dry_run: bool,
    /// Stop controlling the route; the weights stay as they are.
    #[serde(default)]
    pub paused: bool,
}

/// The metric source: set exactly one of the two.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.prometheus) != has(self.scrape)",
    "message": "set exactly one of `prometheus` (a query) and `scrape` (targets)"
}]))]
pub struct SourceSpec {
    /// Query Prometheus' HTTP API (or Thanos, Mimir, Cortex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSpec>,
    /// Scrape `/metrics` endpoints directly, without a Prometheus server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeSpec>,
}

/// A Prometheus instant query.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSpec {
    /// Base URL of the Prometheus API, e.g. `http://prometheus.istio-system:9090`.
    pub url: String,
    /// PromQL template with `{{ variable }}` placeholders; `{{window}}` is filled from the
    /// policy's windows. Default: the seed's query, measured at the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<String>,
    /// Values of the template's variables (defaults: `reporter=source`,
    /// `service=worker-service`, `namespace=default`, `source_workload=frontend-deployment`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// What to do when the query returns several series: `error` (default), `sum`, `max`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub series: Option<SeriesSpec>,
    /// Samples older than this read as "no data" (default `1m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<String>,
    /// HTTP settings: timeout, authentication, TLS, headers.
    #[serde(default, flatten)]
    pub http: HttpSpec,
}

/// How several series are combined.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SeriesSpec {
    /// Fail, naming the series found.
    Error,
    /// Add the values.
    Sum,
    /// Take the largest.
    Max,
}

/// Direct scraping of Prometheus text endpoints.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeSpec {
    /// The `/metrics` URLs; their series are summed.
    pub targets: Vec<String>,
    /// Metric name, e.g. `istio_requests_total`.
    pub metric: String,
    /// Label equality matchers (an empty value matches a missing label).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub matchers: BTreeMap<String, String>,
    /// `counter` (rate of increase, default) or `gauge` (the value already is a rate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ScrapeModeSpec>,
    /// HTTP settings: timeout, authentication, TLS, headers.
    #[serde(default, flatten)]
    pub http: HttpSpec,
}

/// How scraped samples become a rate.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScrapeModeSpec {
    /// Per-second increase of a counter.
    Counter,
    /// A gauge that already holds a rate.
    Gauge,
}

/// HTTP settings of a source.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpSpec {
    /// Longest time one request may take (default `5s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Authentication.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthSpec>,
    /// TLS settings; certificates are verified by default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,
    /// Headers added to every request (e.g. `X-Scope-OrgID`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

/// Credentials; at most one of the three.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// A bearer token file inside burstd's pod (re-read when it changes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_file: Option<String>,
    /// A bearer token in a Secret of the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bearer_token_secret_ref: Option<SecretKeyRef>,
    /// Basic-auth credentials in a Secret of the policy's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub basic_auth_secret_ref: Option<BasicAuthSecretRef>,
}

/// One key of a Secret in the policy's namespace.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Secret name.
    pub name: String,
    /// Key in the Secret's data.
    pub key: String,
}

/// A Secret holding a user name and a password.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuthSecretRef {
    /// Secret name.
    pub name: String,
    /// Key of the user name (default `username`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_key: Option<String>,
    /// Key of the password (default `password`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_key: Option<String>,
}

/// TLS settings.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// A PEM bundle of extra CAs, as a file inside burstd's pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// Accept any certificate. For lab setups only.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub insecure_skip_verify: bool,
}

/// The decision policy; the keys of `burst simulate`'s policy file, in camelCase.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.high) || !has(self.low) || self.low < self.high",
    "message": "`low` must be below `high`",
    "fieldPath": ".low"
}]))]
pub struct PolicySettings {
    /// `hysteresis` (all-or-nothing between two thresholds, the default) or `overflow`
    /// (proportional to the load above `capacity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PolicyModeSpec>,
    /// High threshold in rps (default 15): above it, move to burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Low threshold in rps (default 10): below it, come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Hysteresis: burst weight while bursting, 1..=100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub burst_weight: Option<i64>,
    /// Overflow: rps the primary serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    /// Overflow: weight step in percentage points (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub step: Option<i64>,
    /// Overflow: largest increase of the burst weight per tick (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_up: Option<i64>,
    /// Overflow: largest decrease of the burst weight per tick (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_down: Option<i64>,
    /// Overflow: spare room, as a fraction of capacity, needed before coming back (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_band: Option<f64>,
    /// Hysteresis: how long the switch condition must hold (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustain: Option<String>,
    /// Minimum time between changes (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    /// Where traffic goes once data has been missing for `staleAfter`: `hold` (default),
    /// `primary` or `burst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<OnMissingSpec>,
    /// How long data may be missing before `onMissing` applies (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<String>,
    /// Decision interval (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<String>,
    /// Rate window for both directions (default `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Short window deciding moves to burst (default: `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_up: Option<String>,
    /// Long window deciding moves back (default: `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_down: Option<String>,
}

/// Which policy runs.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyModeSpec {
    /// All-or-nothing between two thresholds.
    Hysteresis,
    /// Proportional to the load above `capacity`.
    Overflow,
}

/// Safe target when data is stale.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnMissingSpec {
    /// Keep the last decision.
    Hold,
    /// Everything to the primary.
    Primary,
    /// Everything to burst.
    Burst,
}

/// The route to change.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "self.kind != 'HTTPRoute' || has(self.backends)",
        "message": "an HTTPRoute target needs `backends: {primary: {name: ...}, burst: {name: ...}}`",
        "fieldPath": ".backends"
    },
    {
        "rule": "self.kind == 'HTTPRoute' || !has(self.backends)",
        "message": "`backends` is for HTTPRoute targets; a VirtualService names `subsets`",
        "fieldPath": ".backends"
    },
    {
        "rule": "self.kind != 'HTTPRoute' || (!has(self.subsets) && !has(self.host))",
        "message": "`subsets` and `host` are for VirtualService targets; an HTTPRoute names `backends`",
        "fieldPath": ".subsets"
    }
]))]
pub struct TargetSpec {
    /// `VirtualService` (default) or `HTTPRoute`.
    #[serde(default)]
    pub kind: TargetKind,
    /// Name of the object, in the policy's namespace.
    pub name: String,
    /// API version (default `v1`; `v1beta1` for old Istio or Gateway API releases).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// Name of the route (VirtualService `spec.http[].name`, HTTPRoute `spec.rules[].name`).
    /// Default: the only route that holds both destinations.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// VirtualService: the two subsets (default `primary` and `burst`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subsets: Option<SubsetsSpec>,
    /// VirtualService: only destinations with this host count (default: any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// HTTPRoute: the two backendRefs (required for HTTPRoute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backends: Option<BackendsSpec>,
    /// Multi-primary meshes: the same object in more clusters, each reached with a
    /// kubeconfig stored in a Secret of the policy's namespace. Every cluster gets the
    /// same split; differing splits are reported as drift.
    // A list keyed by name: the server refuses two clusters of one name.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend(
        "x-kubernetes-list-type" = "map",
        "x-kubernetes-list-map-keys" = ["name"],
        "x-kubernetes-validations" = [{
            "rule": "self.all(c, c.name != 'local')",
            "message": "`local` is the cluster burstd runs in; give the other clusters other names"
        }]
    ))]
    pub clusters: Vec<ClusterSpec>,
}

/// The kind of route.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Default, JsonSchema)]
pub enum TargetKind {
    /// `networking.istio.io` VirtualService.
    #[default]
    VirtualService,
    /// `gateway.networking.k8s.io` HTTPRoute.
    #[serde(rename = "HTTPRoute")]
    HttpRoute,
}

/// The two VirtualService subsets.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.primary != self.burst",
    "message": "`primary` and `burst` must be two different subsets"
}]))]
pub struct SubsetsSpec {
    /// Subset receiving the primary share.
    pub primary: String,
    /// Subset receiving the burst share.
    pub burst: String,
}

/// The two HTTPRoute backends.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendsSpec {
    /// Backend receiving the primary share.
    pub primary: BackendRefSpec,
    /// Backend receiving the burst share.
    pub burst: BackendRefSpec,
}

/// Selects one `backendRef`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackendRefSpec {
    /// `backendRefs[].name`.
    pub name: String,
    /// `backendRefs[].port`, if it must match.
    // schemars calls a u16 `format: uint16`, which Kubernetes does not know (the API
    // server warns and ignores it); a port is an int32 in 1..=65535, as in Gateway API.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535), extend("format" = "int32"))]
    pub port: Option<u16>,
    /// `backendRefs[].namespace`, if it must match.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// One more cluster holding a copy of the target.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSpec {
    /// A unique name (the local cluster is `local`).
    pub name: String,
    /// The Secret key holding a kubeconfig for the cluster. Token or client-certificate
    /// credentials only: exec credential plugins are refused.
    pub kubeconfig_secret_ref: SecretKeyRef,
}

/// What burstd reports about a policy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BurstPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: Option<i64>,
    /// Where traffic goes: `Primary`, `Burst`, `Split`, or `Paused`, `Pending`, `Unknown`.
    #[serde(default)]
    pub mode: Option<StatusMode>,
    /// Weight of the burst destination in effect.
    #[serde(default)]
    pub burst_weight: Option<i64>,
    /// The split in effect.
    #[serde(default)]
    pub split: Option<SplitStatus>,
    /// The split the policy wants (differs from `split` in dry run or while an apply fails).
    #[serde(default)]
    pub desired_split: Option<SplitStatus>,
    /// Last measured rate, short window (absent when there is no data).
    #[serde(default)]
    pub observed_rps: Option<f64>,
    /// Last measured rate, long window (absent when there is no data).
    #[serde(default)]
    pub observed_rps_long: Option<f64>,
    /// What the source gave last: a value, no data, or an error.
    #[serde(default)]
    pub observation: Option<ObservationStatus>,
    /// The policy's last decision.
    #[serde(default)]
    pub last_decision: Option<DecisionStatus>,
    /// When the split last changed.
    #[serde(default)]
    pub last_transition_time: Option<Time>,
    /// Why the split last changed.
    #[serde(default)]
    pub last_transition_reason: Option<String>,
    /// Whether the policy runs in dry run.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// `Ready` (the route is controlled) and `Degraded` (a source or router error).
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// Where traffic goes.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum StatusMode {
    /// Not started yet.
    Pending,
    /// All traffic to the primary.
    Primary,
    /// All traffic to burst.
    Burst,
    /// Traffic divided between both.
    Split,
    /// The policy is paused.
    Paused,
    /// The split in effect cannot be read.
    Unknown,
}

/// Two weights.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitStatus {
    /// Primary weight.
    pub primary: i64,
    /// Burst weight.
    pub burst: i64,
}

/// What the source gave.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservationStatus {
    /// `Value`, `NoData` or `Error`.
    pub state: ObservationState,
    /// The reading, the no-data reason or the error.
    pub message: String,
    /// Error kind (`timeout`, `http`, ...), for errors.
    #[serde(default)]
    pub error_kind: Option<String>,
}

/// Kinds of observations.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum ObservationState {
    /// A rate was measured.
    Value,
    /// The source answered without data.
    NoData,
    /// The source failed.
    Error,
}

/// A decision and its reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStatus {
    /// The rule that fired (`above_high`, `in_band`, ...).
    pub rule: String,
    /// The values it looked at.
    pub detail: String,
}

impl From<Split> for SplitStatus {
    fn from(s: Split) -> Self {
        SplitStatus {
            primary: i64::from(s.primary().get()),
            burst: i64::from(s.burst().get()),
        }
    }
}

impl StatusMode {
    /// The mode for a split in effect.
    pub fn of(split: Split) -> StatusMode {
        match split.burst().get() {
            0 => StatusMode::Primary,
            100 => StatusMode::Burst,
            _ => StatusMode::Split,
        }
    }
}

/// The CRD, as the API server wants it.
pub fn crd() -> CustomResourceDefinition {
    BurstPolicy::crd()
}

/// The CRD as YAML, with a header saying how it was produced.
pub fn crd_yaml() -> Result<String, Error> {
    let yaml = serde_saphyr::to_string(&crd()).map_err(|e| Error::Encode {
        what: "the BurstPolicy CRD",
        message: e.to_string(),
    })?;
    Ok(format!(
        "# Generated by `burstd crd` from burst-operator/src/crd.rs. Do not edit by hand.\n---\n{yaml}"
    ))
}

/// The policy's windows as the sources want them: `(short, optional long)`.
pub fn source_windows(policy: &PolicySpec) -> (Duration, Option<Duration>) {
    let (up, down) = (policy.window_up(), policy.window_down());
    if up == down {
        (up, None)
    } else {
        (up.min(down), Some(up.max(down)))
    }
}

/// A duration field (`15s`, `1m 30s`).
fn duration(field: &str, value: &Option<String>) -> Result<Option<Duration>, Error> {
    value
        .as_deref()
        .map(|v| {
            humantime::parse_duration(v).map_err(|e| {
                Error::invalid(
                    field,
                    format!("`{v}` is not a duration ({e}); write e.g. `15s` or `1m 30s`"),
                )
            })
        })
        .transpose()
}

/// `burst_weight` → `burstWeight`.
fn camel(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

impl PolicySettings {
    /// The loop settings (`tick`), checked.
    pub fn loop_spec(&self) -> Result<LoopSpec, Error> {
        let mut l = LoopSpec::default();
        if let Some(d) = duration("spec.policy.tick", &self.tick)? {
            l.tick = d.into();
        }
        l.validate()
            .map_err(|e| Error::invalid("spec.policy.tick", e.to_string()))?;
        Ok(l)
    }

    /// The policy file equivalent, validated; errors name the `spec.policy` field.
    pub fn to_policy_spec(&self) -> Result<PolicySpec, Error> {
        let f = |k: &str| format!("spec.policy.{k}");
        let mut p = PolicySpec::default();
        if let Some(m) = self.mode {
            p.mode = match m {
                PolicyModeSpec::Hysteresis => Mode::Hysteresis,
                PolicyModeSpec::Overflow => Mode::Overflow,
            };
        }
        p.high = self.high.unwrap_or(p.high);
        p.low = self.low.unwrap_or(p.low);
        p.burst_weight = self.burst_weight.unwrap_or(p.burst_weight);
        p.capacity = self.capacity.or(p.capacity);
        p.step = self.step.unwrap_or(p.step);
        p.max_up = self.max_up.unwrap_or(p.max_up);
        p.max_down = self.max_down.unwrap_or(p.max_down);
        p.dead_band = self.dead_band.unwrap_or(p.dead_band);
        if let Some(d) = duration(&f("sustain"), &self.sustain)? {
            p.sustain = d.into();
        }
        if let Some(d) = duration(&f("cooldown"), &self.cooldown)? {
            p.cooldown = d.into();
        }
        if let Some(m) = self.on_missing {
            p.on_missing = match m {
                OnMissingSpec::Hold => OnMissing::Hold,
                OnMissingSpec::Primary => OnMissing::Primary,
                OnMissingSpec::Burst => OnMissing::Burst,
            };
        }
        if let Some(d) = duration(&f("staleAfter"), &self.stale_after)? {
            p.stale_after = d.into();
        }
        self.loop_spec()?;
        if let Some(d) = duration(&f("window"), &self.window)? {
            p.window = d.into();
        }
        p.window_up = duration(&f("windowUp"), &self.window_up)?.map(Into::into);
        p.window_down = duration(&f("windowDown"), &self.window_down)?.map(Into::into);
        p.validate().map_err(|e| match e {
            burst_core::Error::InvalidSetting { key, message } => {
                let fields: Vec<String> = key.split('/').map(|k| f(&camel(k))).collect();
                Error::invalid(fields.join("/"), message)
            }
            other => Error::invalid("spec.policy", other.to_string()),
        })?;
        if p.window_up() > p.window_down() {
            return Err(Error::invalid(
                "spec.policy.windowUp",
                format!(
                    "{} is longer than windowDown {}; the window deciding moves to burst must be the shorter one",
                    humantime::format_duration(p.window_up()),
                    humantime::format_duration(p.window_down())
                ),
            ));
        }
        Ok(p)
    }
}

/// Credentials resolved from Secrets, ready for the HTTP client.
///
/// `Debug` shows whether a credential is set, never its value.
#[derive(Clone, Default, PartialEq)]
pub struct ResolvedAuth {
    /// `Authorization: Bearer ...` value from a Secret.
    pub bearer_token: Option<String>,
    /// Basic-auth user name and password from a Secret.
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for ResolvedAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResolvedAuth")
            .field("bearer_token", &self.bearer_token.as_ref().map(|_| "***"))
            .field(
                "basic",
                &self.basic.as_ref().map(|(user, _)| (user.as_str(), "***")),
            )
            .finish()
    }
}

impl HttpSpec {
    /// The HTTP settings; `auth` carries what was read from Secrets.
    pub fn to_http_config(
        &self,
        field: &str,
        auth: &ResolvedAuth,
    ) -> Result<burst_prom::HttpConfig, Error> {
        let mut c = burst_prom::HttpConfig::default();
        if let Some(t) = duration(&format!("{field}.timeout"), &self.timeout)? {
            c.timeout = t;
        }
        c.headers = self.headers.clone();
        if let Some(a) = &self.auth {
            let set = [
                a.bearer_token_file.is_some(),
                a.bearer_token_secret_ref.is_some(),
                a.basic_auth_secret_ref.is_some(),
            ];
            if set.iter().filter(|s| **s).count() > 1 {
                return Err(Error::invalid(
                    format!("{field}.auth"),
                    "set only one of bearerTokenFile, bearerTokenSecretRef and basicAuthSecretRef",
                ));
            }
            c.bearer_token_file = a.bearer_token_file.as_ref().map(Into::into);
        }
        if let Some(token) = &auth.bearer_token {
            c.headers
                .insert("Authorization".into(), format!("Bearer {}", token.trim()));
        }
        if let Some((username, password)) = &auth.basic {
            c.basic_auth = Some(burst_prom::BasicAuth {
                username: username.clone(),
                password: password.clone(),
            });
        }
        if let Some(tls) = &self.tls {
            c.ca_file = tls.ca_file.as_ref().map(Into::into);
            c.insecure_skip_verify = tls.insecure_skip_verify;
        }
        Ok(c)
    }
}

/// The metric source settings, one of two kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    /// A Prometheus query.
    Prometheus(PrometheusConfig),
    /// Direct scraping.
    Scrape(ScrapeConfig),
}

impl SourceSpec {
    /// Which spec is set; exactly one must be.
    pub fn which(&self) -> Result<(&HttpSpec, &'static str), Error> {
        match (&self.prometheus, &self.scrape) {
            (Some(p), None) => Ok((&p.http, "spec.source.prometheus")),
            (None, Some(s)) => Ok((&s.http, "spec.source.scrape")),
            (None, None) => Err(Error::invalid(
                "spec.source",
                "set `prometheus` (a query) or `scrape` (targets)",
            )),
            (Some(_), Some(_)) => Err(Error::invalid(
                "spec.source",
                "set only one of `prometheus` and `scrape`",
            )),
        }
    }

    /// The source settings for `policy`'s windows; `auth` carries Secret values.
    pub fn to_config(
        &self,
        policy: &PolicySpec,
        auth: &ResolvedAuth,
    ) -> Result<SourceConfig, Error> {
        let (http, field) = self.which()?;
        let http = http.to_http_config(field, auth)?;
        let (window, long_window) = source_windows(policy);
        if let Some(p) = &self.prometheus {
            if p.url.trim().is_empty() {
                return Err(Error::invalid(
                    "spec.source.prometheus.url",
                    "is empty; give the Prometheus base URL, e.g. http://prometheus.istio-system:9090",
                ));
            }
            let mut c = PrometheusConfig {
                url: p.url.clone(),
                variables: p.variables.clone(),
                window,
                long_window,
                http,
                ..PrometheusConfig::default()
            };
            if let Some(q) = &p.query {
                c.query = q.clone();
            }
            if let Some(s) = p.series {
                c.series = match s {
                    SeriesSpec::Error => SeriesRule::Error,
                    SeriesSpec::Sum => SeriesRule::Sum,
                    SeriesSpec::Max => SeriesRule::Max,
                };
            }
            if let Some(d) = duration("spec.source.prometheus.maxAge", &p.max_age)? {
                c.max_age = d;
            }
            return Ok(SourceConfig::Prometheus(c));
        }
        let s = self.scrape.as_ref().ok_or_else(|| {
            Error::invalid("spec.source", "set `prometheus` or `scrape`".to_owned())
        })?;
        Ok(SourceConfig::Scrape(ScrapeConfig {
            targets: s.targets.clone(),
            metric: s.metric.clone(),
            matchers: s.matchers.clone(),
            mode: match s.mode {
                Some(ScrapeModeSpec::Gauge) => ScrapeMode::Gauge,
                Some(ScrapeModeSpec::Counter) | None => ScrapeMode::Counter,
            },
            window,
            long_window,
            http,
        }))
    }

    /// The `auth` settings, if any.
    pub fn auth(&self) -> Option<&AuthSpec> {
        self.which().ok().and_then(|(h, _)| h.auth.as_ref())
    }
}

/// The route settings, one of two kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteConfig {
    /// A VirtualService.
    VirtualService(VsTarget),
    /// An HTTPRoute.
    HttpRoute(HttpRouteTarget),
}

impl TargetSpec {
    /// Checks the fields and builds the route selection.
    pub fn to_route(&self) -> Result<RouteConfig, Error> {
        if self.name.is_empty() || self.name.contains('/') {
            return Err(Error::invalid(
                "spec.target.name",
                format!(
                    "`{}` is not an object name; give the name of the {} in the policy's namespace",
                    self.name,
                    self.kind.as_str()
                ),
            ));
        }
        let route = match &self.route {
            Some(r) if !r.is_empty() => RouteSelector::Name(r.clone()),
            _ => RouteSelector::Only,
        };
        let mut seen = std::collections::BTreeSet::from(["local"]);
        for c in &self.clusters {
            if !seen.insert(c.name.as_str()) || c.name.is_empty() {
                return Err(Error::invalid(
                    "spec.target.clusters",
                    format!(
                        "cluster name `{}` is empty, repeated or `local` (the cluster burstd runs in)",
                        c.name
                    ),
                ));
            }
        }
        match self.kind {
            TargetKind::VirtualService => {
                if self.backends.is_some() {
                    return Err(Error::invalid(
                        "spec.target.backends",
                        "is for HTTPRoute targets; a VirtualService names `subsets`",
                    ));
                }
                let mut t = VsTarget::default().route(route);
                if let Some(s) = &self.subsets {
                    if s.primary.is_empty() || s.burst.is_empty() || s.primary == s.burst {
                        return Err(Error::invalid(
                            "spec.target.subsets",
                            format!(
                                "primary `{}` and burst `{}` must be two different, non-empty subset names",
                                s.primary, s.burst
                            ),
                        ));
                    }
                    t = t.subsets(s.primary.clone(), s.burst.clone());
                }
                if let Some(h) = &self.host {
                    t = t.host(h.clone());
                }
                Ok(RouteConfig::VirtualService(t))
            }
            TargetKind::HttpRoute => {
                if self.subsets.is_some() || self.host.is_some() {
                    return Err(Error::invalid(
                        "spec.target.subsets",
                        "`subsets` and `host` are for VirtualService targets; an HTTPRoute names `backends`",
                    ));
                }
                let b = self.backends.as_ref().ok_or_else(|| {
                    Error::invalid(
                        "spec.target.backends",
                        "an HTTPRoute target needs `backends: {primary: {name: ...}, burst: {name: ...}}`",
                    )
                })?;
                let sel = |r: &BackendRefSpec| {
                    let mut s = BackendSelector::new(r.name.clone());
                    if let Some(p) = r.port {
                        s = s.port(p);
                    }
                    if let Some(n) = &r.namespace {
                        s = s.namespace(n.clone());
                    }
                    s
                };
                if b.primary == b.burst {
                    return Err(Error::invalid(
                        "spec.target.backends",
                        "primary and burst select the same backendRef",
                    ));
                }
                Ok(RouteConfig::HttpRoute(
                    HttpRouteTarget::new(sel(&b.primary), sel(&b.burst)).rule(route),
                ))
            }
        }
    }

    /// A short description: `VirtualService default/worker`.
    pub fn describe(&self, namespace: &str) -> String {
        format!("{} {namespace}/{}", self.kind.as_str(), self.name)
    }
}

impl TargetKind {
    /// `VirtualService` or `HTTPRoute`.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetKind::VirtualService => "VirtualService",
            TargetKind::HttpRoute => "HTTPRoute",
        }
    }

    /// `(group, plural)` of the kind.
    pub fn resource(self) -> (&'static str, &'static str) {
        match self {
            TargetKind::VirtualService => (burst_istio::ISTIO_GROUP, "virtualservices"),
            TargetKind::HttpRoute => (burst_istio::GATEWAY_GROUP, "httproutes"),
        }
    }
}

impl BurstPolicySpec {
    /// Checks everything that can be checked without IO.
    pub fn validate(&self) -> Result<PolicySpec, Error> {
        let policy = self.policy.to_policy_spec()?;
        self.source.to_config(&policy, &ResolvedAuth::default())?;
        self.target.to_route()?;
        Ok(policy)
    }
}

/// Rates as status fields: `(short, long)`.
pub fn observed(rates: &Rates) -> (f64, f64) {
    (rates.up.get(), rates.down.get())
}

#[cfg(test)]
mod tests {
    #[test]
    fn resolved_auth_debug_hides_secrets() {
        let a = super::ResolvedAuth {
            bearer_token: Some("tok-s3cret".into()),
            basic: Some(("admin".into(), "pw-s3cret".into())),
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("admin") && shown.contains("***"), "{shown}");
    }

    use super::*;

    fn seed_spec() -> BurstPolicySpec {
        serde_saphyr::from_str(
            r#"
source:
  prometheus: {url: "http://prometheus:9090"}
target: {name: worker-virtual-service}
"#,
        )
        .unwrap()
    }

    #[test]
    fn defaults_are_the_seed() {
        let spec = seed_spec();
        let p = spec.validate().unwrap();
        assert_eq!((p.high, p.low), (15.0, 10.0));
        assert_eq!(spec.target.kind, TargetKind::VirtualService);
        let RouteConfig::VirtualService(vs) = spec.target.to_route().unwrap() else {
            panic!("not a VS")
        };
        assert_eq!(
            (vs.primary_subset.as_str(), vs.burst_subset.as_str()),
            ("primary", "burst")
        );
        let SourceConfig::Prometheus(c) =
            spec.source.to_config(&p, &ResolvedAuth::default()).unwrap()
        else {
            panic!("not prometheus")
        };
        assert_eq!(c.window, Duration::from_secs(15));
        assert_eq!(c.long_window, None);
    }

    #[test]
    fn policy_errors_name_the_camel_case_field() {
        let cases = [
            (r#"{"low": 20}"#, "spec.policy.high/spec.policy.low"),
            (r#"{"step": 0}"#, "spec.policy.step"),
            (r#"{"tick": "soon"}"#, "spec.policy.tick"),
            (r#"{"mode": "overflow"}"#, "spec.policy.capacity"),
            (r#"{"burstWeight": 0}"#, "spec.policy.burstWeight"),
            (
                r#"{"windowUp": "1m", "windowDown": "10s"}"#,
                "spec.policy.windowUp",
            ),
        ];
        for (json, field) in cases {
            let s: PolicySettings = serde_json::from_str(json).unwrap();
            let e = s.to_policy_spec().unwrap_err().to_string();
            assert!(e.contains(field), "{json} → {e}");
        }
    }

    #[test]
    fn two_windows_go_to_the_source() {
        let mut spec = seed_spec();
        spec.policy.window_up = Some("5s".into());
        spec.policy.window_down = Some("1m".into());
        let p = spec.validate().unwrap();
        let SourceConfig::Prometheus(c) =
            spec.source.to_config(&p, &ResolvedAuth::default()).unwrap()
        else {
            panic!()
        };
        assert_eq!(
            (c.window, c.long_window),
            (Duration::from_secs(5), Some(Duration::from_secs(60)))
        );
    }

    #[test]
    fn source_must_be_exactly_one() {
        let mut spec = seed_spec();
        spec.source.prometheus = None;
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("spec.source")
        );
        spec.source.prometheus = Some(PrometheusSpec::default());
        spec.source.scrape = Some(ScrapeSpec::default());
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("only one")
        );
    }

    #[test]
    fn httproute_needs_backends_and_vs_refuses_them() {
        let mut spec = seed_spec();
        spec.target.kind = TargetKind::HttpRoute;
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("spec.target.backends")
        );
        spec.target.backends = Some(BackendsSpec {
            primary: BackendRefSpec {
                name: "worker-primary".into(),
                port: Some(80),
                namespace: None,
            },
            burst: BackendRefSpec {
                name: "worker-burst".into(),
                port: Some(80),
                namespace: None,
            },
        });
        assert!(matches!(
            spec.target.to_route().unwrap(),
            RouteConfig::HttpRoute(_)
        ));
        spec.target.kind = TargetKind::VirtualService;
        assert!(spec.validate().is_err());
    }

    #[test]
    fn clusters_need_unique_names() {
        let mut spec = seed_spec();
        let c = |n: &str| ClusterSpec {
            name: n.into(),
            kubeconfig_secret_ref: SecretKeyRef {
                name: "k".into(),
                key: "config".into(),
            },
        };
        spec.target.clusters = vec![c("west"), c("west")];
        assert!(spec.validate().is_err());
        spec.target.clusters = vec![c("local")];
        assert!(spec.validate().is_err());
        spec.target.clusters = vec![c("west"), c("east")];
        assert!(spec.validate().is_ok());
    }

    #[test]
    fn only_one_credential() {
        let mut spec = seed_spec();
        let p = spec.source.prometheus.as_mut().unwrap();
        p.http.auth = Some(AuthSpec {
            bearer_token_file: Some("/t".into()),
            bearer_token_secret_ref: Some(SecretKeyRef {
                name: "s".into(),
                key: "token".into(),
            }),
            basic_auth_secret_ref: None,
        });
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("only one")
        );
    }

    #[test]
    fn secret_token_becomes_a_header() {
        let spec = seed_spec();
        let auth = ResolvedAuth {
            bearer_token: Some("abc\n".into()),
            basic: None,
        };
        let p = spec.validate().unwrap();
        let SourceConfig::Prometheus(c) = spec.source.to_config(&p, &auth).unwrap() else {
            panic!()
        };
        assert_eq!(c.http.headers["Authorization"], "Bearer abc");
    }

    #[test]
    fn crd_has_status_printer_columns_and_group() {
        let crd = crd();
        assert_eq!(crd.spec.group, GROUP);
        assert_eq!(crd.spec.names.plural, PLURAL);
        let v = &crd.spec.versions[0];
        assert_eq!(v.name, VERSION);
        assert!(v.subresources.as_ref().unwrap().status.is_some());
        let cols: Vec<&str> = v
            .additional_printer_columns
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(cols, ["Target", "Mode", "Burst %", "Observed RPS", "Age"]);
        assert!(
            crd_yaml()
                .unwrap()
                .contains("kind: CustomResourceDefinition")
        );
    }

    #[test]
    fn camel_case_keys() {
        assert_eq!(camel("burst_weight"), "burstWeight");
        assert_eq!(camel("high"), "high");
    }
}
