//! The BurstPolicy spec: where the rate comes from ([`SourceSpec`]), which route changes
//! ([`TargetSpec`]), and the [`BurstPolicy`] object the `CustomResource` derive makes of
//! them. `spec.policy` lives in [`super::policy_settings`].

use std::collections::BTreeMap;

use burst_core::HumanDuration;
use burst_core::policy::PolicySpec;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::policy_settings::PolicySettings;
use super::status::BurstPolicyStatus;
use crate::Error;

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
    /// Where the request rate comes from: exactly one of `prometheus`, `scrape` or `pods`.
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
    /// Hold a fixed split until a time, overriding the policy's decision (drift is still
    /// repaired); the policy takes over again by itself after `until`. Set by
    /// `kubectl burst pin`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pin: Option<PinSpec>,
    /// Grow the burst side ahead of the traffic: the scaler (the timing is
    /// `spec.policy.prewarm`). See docs/prewarm.md.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prewarm: Option<super::prewarm::PrewarmSpec>,
}

/// A fixed split held until a time.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PinSpec {
    /// Weight of the burst destination while pinned, 0 to 100.
    #[schemars(range(min = 0, max = 100), extend("format" = "int32"))]
    pub burst_weight: u8,
    /// When the pin ends (RFC 3339, e.g. `2026-12-03T04:00:00Z`).
    pub until: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}

/// The metric source: set exactly one of the three.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "(has(self.prometheus) ? 1 : 0) + (has(self.scrape) ? 1 : 0) + (has(self.pods) ? 1 : 0) == 1",
    "message": "set exactly one of `prometheus` (a query), `scrape` (targets) and `pods` (a Service's pods)"
}]))]
pub struct SourceSpec {
    /// Query Prometheus' HTTP API (or Thanos, Mimir, Cortex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<PrometheusSpec>,
    /// Scrape `/metrics` endpoints directly, without a Prometheus server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scrape: Option<ScrapeSpec>,
    /// Scrape every ready pod of a Service in the policy's namespace (found through its
    /// EndpointSlices), e.g. the Istio sidecars' `:15090/stats/prometheus`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pods: Option<PodsSpec>,
    /// Count the ready endpoints of the primary's and the burst side's Services from a
    /// watch of their EndpointSlices (shared by every policy on the same Service), as the
    /// `primaryReady` and `burstReady` signals; works with any of the three sources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_endpoints: Option<ReadyEndpointsSpec>,
}

/// The Services whose ready endpoints are counted.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "has(self.primary) || has(self.burst)",
    "message": "name the `primary` and/or the `burst` Service whose ready endpoints are counted"
}]))]
pub struct ReadyEndpointsSpec {
    /// The primary's Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<ServiceRefSpec>,
    /// The burst side's Service (in the cluster burstd runs in).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<ServiceRefSpec>,
}

/// A Service by name.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "self.service.size() > 0",
    "message": "`service` is the name of a Service, e.g. checkout",
    "fieldPath": ".service"
}]))]
pub struct ServiceRefSpec {
    /// The Service's name.
    pub service: String,
    /// Its namespace (default: the policy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Signals a scraping source (`scrape`, `pods`) measures from the same scrapes besides
/// the rate; reported as the primary's.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.latencyHistogram) || !self.latencyHistogram.endsWith('_bucket')",
    "message": "`latencyHistogram` is the histogram's name without `_bucket`, e.g. istio_request_duration_milliseconds",
    "fieldPath": ".latencyHistogram"
}]))]
pub struct ScrapeSignalsSpec {
    /// A histogram (name without `_bucket`, selected with the source's matchers) whose
    /// p99 becomes the `latencyP99` signal, e.g. `istio_request_duration_milliseconds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_histogram: Option<String>,
    /// The unit of its bucket bounds: `ms` (default) or `s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_unit: Option<LatencyUnitSpec>,
    /// Measure the error ratio (5xx and 429 over all) of the selected series.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub error_ratio: bool,
    /// The label holding the response code (default `response_code`, Istio's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_label: Option<String>,
}

/// The unit of a latency histogram's bucket bounds.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum LatencyUnitSpec {
    /// Milliseconds.
    #[serde(rename = "ms")]
    Milliseconds,
    /// Seconds.
    #[serde(rename = "s")]
    Seconds,
}

/// One PromQL query per signal; `default` selects the built-in query (Istio's metrics
/// for latency and errors, kube-state-metrics' `kube_endpoint_address` for ready
/// endpoints). Queries take the source's `variables` and `{{window}}`.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrometheusSignalsSpec {
    /// The primary's p99 latency in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_p99: Option<String>,
    /// The primary's error ratio (0 to 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<String>,
    /// The primary's ready endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_ready: Option<String>,
    /// The burst side's ready endpoints (variables `burst_service`, `burst_namespace`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_ready: Option<String>,
    /// The burst side's error ratio (the default needs variable `burst_cluster`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst_error_ratio: Option<String>,
}

/// Direct scraping of a Service's pods, found through a watch of its EndpointSlices.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.quorum) || self.quorum > 0.0",
    "message": "`quorum` is the share of pods that must answer: above 0 and at most 1, e.g. 0.5",
    "fieldPath": ".quorum"
}]))]
pub struct PodsSpec {
    /// The Service, in the policy's namespace, whose ready pods are scraped.
    pub service: String,
    /// The metrics port: a number, or the name of a port of the Service (default 15090,
    /// Envoy's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "int_or_string")]
    pub port: Option<PodPortSpec>,
    /// The metrics path (default `/stats/prometheus`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `http` (default) or `https`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<PodSchemeSpec>,
    /// The counter to sum over pods (default `istio_requests_total`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric: Option<String>,
    /// Label equality matchers (an empty value matches a missing label). Default
    /// `reporter: destination`, the requests each pod's sidecar received.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matchers: Option<BTreeMap<String, String>>,
    /// The share of ready pods that must answer a round, above 0 and at most 1 (default
    /// 0.5); below it the reading is "no data".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub quorum: Option<f64>,
    /// How many pods are scraped at once (default 32).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1024), extend("format" = "int32"))]
    pub concurrency: Option<u16>,
    /// Latency and error-ratio signals from the same scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<ScrapeSignalsSpec>,
    /// HTTP settings: timeout, authentication, TLS, headers.
    #[serde(default, flatten)]
    pub http: HttpSpec,
}

/// Kubernetes' int-or-string (a structural schema may not use `anyOf` of two types).
fn int_or_string(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "description": "The metrics port: a number, or the name of a port of the Service (default 15090, Envoy's)."
    })
}

/// A metrics port: a number or a port name.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(untagged)]
pub enum PodPortSpec {
    /// A port number.
    Number(u16),
    /// The name of a port of the Service.
    Name(String),
}

/// `http` or `https`.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PodSchemeSpec {
    /// Plain HTTP.
    Http,
    /// HTTPS.
    Https,
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
    pub max_age: Option<HumanDuration>,
    /// One query per signal besides the demand; a failing signal query leaves only that
    /// signal without data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<PrometheusSignalsSpec>,
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
    /// Latency and error-ratio signals from the same scrapes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<ScrapeSignalsSpec>,
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
    pub timeout: Option<HumanDuration>,
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
    /// Checks everything that can be checked without IO (the conversions of
    /// [`crate::adapters`], without Secret values).
    pub fn validate(&self) -> Result<PolicySpec, Error> {
        self.policy.validate()?;
        if let Some(pin) = &self.pin {
            pin.split()?;
        }
        let policy = self.policy.policy.clone();
        // The namespace only names where the pod source looks; any valid one checks the rest.
        self.source.to_setup(
            "default",
            &policy,
            &crate::adapters::ResolvedAuth::default(),
        )?;
        self.target.to_route()?;
        Ok(policy)
    }
}

impl TargetSpec {
    /// A short description: `VirtualService default/worker`.
    pub fn describe(&self, namespace: &str) -> String {
        format!("{} {namespace}/{}", self.kind.as_str(), self.name)
    }
}

impl PinSpec {
    /// The pinned split; a weight above 100 is an error naming the field.
    pub fn split(&self) -> Result<burst_core::Split, Error> {
        burst_core::Weight::try_new(i64::from(self.burst_weight))
            .map(burst_core::Split::from_burst)
            .map_err(|e| {
                Error::invalid(
                    "spec.pin.burstWeight",
                    format!("{e}; give a burst weight from 0 to 100"),
                )
            })
    }

    /// `until` as a [`burst_core::Timestamp`] (times before 1970 read as 1970).
    pub fn until_timestamp(&self) -> burst_core::Timestamp {
        let nanos = self.until.0.as_nanosecond();
        let nanos = u64::try_from(nanos).unwrap_or(0);
        burst_core::Timestamp::from_duration(std::time::Duration::from_nanos(nanos))
    }
}
