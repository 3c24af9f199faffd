//! From a BurstPolicy spec to the adapters' settings: [`SourceSpec`] → [`SourceSetup`]
//! ([`burst_prom::SourceConfig`] for `prometheus` and `scrape`, [`burst_pods::PodConfig`]
//! for `pods`), [`TargetSpec`] → [`burst_istio::RouteConfig`].
//!
//! Every check here names the `spec.` field at fault; [`crate::api::BurstPolicySpec::validate`] runs
//! them without Secret values, the runner again with the values read by
//! [`crate::secrets`].

use burst_core::policy::PolicySpec;
use burst_istio::{BackendSelector, HttpRouteTarget, RouteConfig, RouteSelector, VsTarget};
use burst_prom::{
    LatencyUnit, PrometheusConfig, ScrapeConfig, ScrapeMode, ScrapeSignals, SeriesRule,
    SignalQueries, SourceConfig,
};

use crate::Error;
use crate::api::{
    AuthSpec, BackendRefSpec, HttpSpec, LatencyUnitSpec, PodPortSpec, PodSchemeSpec, PodsSpec,
    PrometheusSignalsSpec, ScrapeModeSpec, ScrapeSignalsSpec, SeriesSpec, ServiceRefSpec,
    SourceSpec, TargetKind, TargetSpec,
};

/// What a `spec.source` becomes: settings of an HTTP source (Prometheus or scrape targets,
/// built by [`SourceConfig::build`]), or of a pod source (needs a kube client for the
/// EndpointSlice watch, built by the runner).
#[derive(Debug, Clone, PartialEq)]
pub enum SourceSetup {
    /// `prometheus` or `scrape`.
    Http(SourceConfig),
    /// `pods`.
    Pods(burst_pods::PodConfig),
}

/// The Services whose ready endpoints a policy counts (`spec.source.readyEndpoints`),
/// each as (namespace, Service).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadyEndpointsSetup {
    /// The primary's Service.
    pub primary: Option<(String, String)>,
    /// The burst side's Service.
    pub burst: Option<(String, String)>,
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
        if let Some(t) = self.timeout {
            c.timeout = t.get();
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

impl SourceSpec {
    /// Which spec is set; exactly one must be.
    pub fn which(&self) -> Result<(&HttpSpec, &'static str), Error> {
        match (&self.prometheus, &self.scrape, &self.pods) {
            (Some(p), None, None) => Ok((&p.http, "spec.source.prometheus")),
            (None, Some(s), None) => Ok((&s.http, "spec.source.scrape")),
            (None, None, Some(p)) => Ok((&p.http, "spec.source.pods")),
            (None, None, None) => Err(Error::invalid(
                "spec.source",
                "set `prometheus` (a query), `scrape` (targets) or `pods` (a Service's pods)",
            )),
            _ => Err(Error::invalid(
                "spec.source",
                "set only one of `prometheus`, `scrape` and `pods`",
            )),
        }
    }

    /// The source settings for `policy`'s windows, for a policy in `namespace` (the pod
    /// source's Service is looked up there); `auth` carries Secret values.
    pub fn to_setup(
        &self,
        namespace: &str,
        policy: &PolicySpec,
        auth: &ResolvedAuth,
    ) -> Result<SourceSetup, Error> {
        self.ready_endpoints(namespace)?;
        match &self.pods {
            Some(pods) if self.prometheus.is_none() && self.scrape.is_none() => {
                let (http, field) = self.which()?;
                let http = http.to_http_config(field, auth)?;
                let (window, long_window) =
                    burst_prom::windows(policy.window_up(), policy.window_down());
                Ok(SourceSetup::Pods(pods.to_pod_config(
                    namespace,
                    window,
                    long_window,
                    http,
                )?))
            }
            _ => self.to_config(policy, auth).map(SourceSetup::Http),
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
        let (window, long_window) = burst_prom::windows(policy.window_up(), policy.window_down());
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
            if let Some(d) = p.max_age {
                c.max_age = d.get();
            }
            if let Some(signals) = &p.signals {
                c.signals = signals.to_queries()?;
            }
            return Ok(SourceConfig::Prometheus(c));
        }
        let s = self.scrape.as_ref().ok_or_else(|| {
            Error::invalid(
                "spec.source.pods",
                "a pod source needs a kube client; build it with `to_setup` (burstd does)",
            )
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
            signals: scrape_signals(s.signals.as_ref(), "spec.source.scrape.signals")?,
        }))
    }

    /// The Services whose ready endpoints are counted, for a policy in `namespace` (the
    /// default namespace of both); `None` without `readyEndpoints`.
    pub fn ready_endpoints(&self, namespace: &str) -> Result<Option<ReadyEndpointsSetup>, Error> {
        let Some(r) = &self.ready_endpoints else {
            return Ok(None);
        };
        let field = "spec.source.readyEndpoints";
        if r.primary.is_none() && r.burst.is_none() {
            return Err(Error::invalid(
                field,
                "names no Service; set `primary: {service: ...}` and/or `burst: {service: ...}`",
            ));
        }
        let service = |s: &Option<ServiceRefSpec>, side: &str| -> Result<_, Error> {
            let Some(s) = s else { return Ok(None) };
            if !is_object_name(&s.service) {
                return Err(Error::invalid(
                    format!("{field}.{side}.service"),
                    format!("`{}` is not a Service name; give e.g. checkout", s.service),
                ));
            }
            let ns = match &s.namespace {
                Some(ns) if !is_object_name(ns) => {
                    return Err(Error::invalid(
                        format!("{field}.{side}.namespace"),
                        format!("`{ns}` is not a namespace name; leave it out for the policy's"),
                    ));
                }
                Some(ns) => ns.clone(),
                None => namespace.to_owned(),
            };
            Ok(Some((ns, s.service.clone())))
        };
        Ok(Some(ReadyEndpointsSetup {
            primary: service(&r.primary, "primary")?,
            burst: service(&r.burst, "burst")?,
        }))
    }

    /// The `auth` settings, if any.
    pub fn auth(&self) -> Option<&AuthSpec> {
        self.which().ok().and_then(|(h, _)| h.auth.as_ref())
    }
}

impl PodsSpec {
    /// The pod source's settings for a policy in `namespace`; every field is checked.
    pub fn to_pod_config(
        &self,
        namespace: &str,
        window: std::time::Duration,
        long_window: Option<std::time::Duration>,
        http: burst_prom::HttpConfig,
    ) -> Result<burst_pods::PodConfig, Error> {
        let field = "spec.source.pods";
        if self.service.is_empty() || self.service.contains(['/', ',', '=', ' ']) {
            return Err(Error::invalid(
                format!("{field}.service"),
                format!(
                    "`{}` is not a Service name; give the name of a Service in the policy's namespace",
                    self.service
                ),
            ));
        }
        let mut c = burst_pods::PodConfig {
            service: self.service.clone(),
            namespace: namespace.to_owned(),
            window,
            long_window,
            http,
            ..burst_pods::PodConfig::default()
        };
        match &self.port {
            Some(PodPortSpec::Number(0)) => {
                return Err(Error::invalid(
                    format!("{field}.port"),
                    "0 is not a port; give a port number such as 15090 or a Service port name",
                ));
            }
            Some(PodPortSpec::Number(n)) => c.port = burst_pods::MetricsPort::Number(*n),
            Some(PodPortSpec::Name(n)) => {
                if n.is_empty() {
                    return Err(Error::invalid(
                        format!("{field}.port"),
                        "empty port name; give a port number such as 15090 or a Service port name",
                    ));
                }
                c.port = burst_pods::MetricsPort::Name(n.clone());
            }
            None => {}
        }
        if let Some(p) = &self.path {
            if !p.starts_with('/') {
                return Err(Error::invalid(
                    format!("{field}.path"),
                    format!("`{p}` is not an absolute path; give e.g. /stats/prometheus"),
                ));
            }
            c.path = p.clone();
        }
        if let Some(scheme) = self.scheme {
            c.scheme = match scheme {
                PodSchemeSpec::Http => burst_pods::Scheme::Http,
                PodSchemeSpec::Https => burst_pods::Scheme::Https,
            };
        }
        if let Some(m) = &self.metric {
            if m.is_empty() {
                return Err(Error::invalid(
                    format!("{field}.metric"),
                    "is empty; give a counter name, e.g. istio_requests_total",
                ));
            }
            c.metric = m.clone();
        }
        if let Some(m) = &self.matchers {
            c.matchers = m.clone();
        }
        if let Some(q) = self.quorum {
            if !(q > 0.0 && q <= 1.0) {
                return Err(Error::invalid(
                    format!("{field}.quorum"),
                    format!(
                        "{q} is not a share of pods; give a number above 0 and at most 1, e.g. 0.5"
                    ),
                ));
            }
            c.quorum = q;
        }
        if let Some(n) = self.concurrency {
            if n == 0 {
                return Err(Error::invalid(
                    format!("{field}.concurrency"),
                    "0 would scrape nothing; give e.g. 32",
                ));
            }
            c.concurrency = usize::from(n);
        }
        c.signals = scrape_signals(self.signals.as_ref(), "spec.source.pods.signals")?;
        Ok(c)
    }
}

impl PrometheusSignalsSpec {
    /// The signal queries; each given template must parse (its variables are checked
    /// when the source is built).
    pub fn to_queries(&self) -> Result<SignalQueries, Error> {
        let field = "spec.source.prometheus.signals";
        for (key, q) in [
            ("latencyP99", &self.latency_p99),
            ("errorRatio", &self.error_ratio),
            ("primaryReady", &self.primary_ready),
            ("burstReady", &self.burst_ready),
            ("burstErrorRatio", &self.burst_error_ratio),
        ] {
            if let Some(q) = q
                && q.trim() != burst_prom::signal_queries::DEFAULT
            {
                burst_prom::template::QueryTemplate::parse(q).map_err(|e| {
                    Error::invalid(
                        format!("{field}.{key}"),
                        format!("{e}; give a PromQL template or `default`"),
                    )
                })?;
            }
        }
        Ok(SignalQueries {
            latency_p99: self.latency_p99.clone(),
            error_ratio: self.error_ratio.clone(),
            primary_ready: self.primary_ready.clone(),
            burst_ready: self.burst_ready.clone(),
            burst_error_ratio: self.burst_error_ratio.clone(),
        })
    }
}

/// The signals of a scraping source; errors name `field`'s keys.
fn scrape_signals(spec: Option<&ScrapeSignalsSpec>, field: &str) -> Result<ScrapeSignals, Error> {
    let Some(spec) = spec else {
        return Ok(ScrapeSignals::default());
    };
    let mut s = ScrapeSignals {
        latency_histogram: spec.latency_histogram.clone(),
        latency_unit: match spec.latency_unit {
            Some(LatencyUnitSpec::Seconds) => LatencyUnit::Seconds,
            Some(LatencyUnitSpec::Milliseconds) | None => LatencyUnit::Milliseconds,
        },
        error_ratio: spec.error_ratio,
        ..ScrapeSignals::default()
    };
    if let Some(l) = &spec.code_label {
        s.code_label = l.clone();
    }
    s.validate().map_err(|e| {
        let key = match &e {
            burst_prom::Error::Config { key, .. } if *key == "code_label" => "codeLabel",
            _ => "latencyHistogram",
        };
        Error::invalid(format!("{field}.{key}"), e.to_string())
    })?;
    Ok(s)
}

/// A DNS-1123 label-ish object name: lowercase letters, digits and `-`, 1-63 long.
fn is_object_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
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
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::api::{
        BackendsSpec, BurstPolicySpec, ClusterSpec, PrometheusSpec, ScrapeSpec, SecretKeyRef,
    };

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
    fn resolved_auth_debug_hides_secrets() {
        let a = ResolvedAuth {
            bearer_token: Some("tok-s3cret".into()),
            basic: Some(("admin".into(), "pw-s3cret".into())),
        };
        let shown = format!("{a:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("admin") && shown.contains("***"), "{shown}");
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
    fn two_windows_go_to_the_source() {
        let mut spec = seed_spec();
        spec.policy.policy.window_up = Some(burst_core::HumanDuration::from_secs(5));
        spec.policy.policy.window_down = Some(burst_core::HumanDuration::from_secs(60));
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
        spec.source.scrape = None;
        spec.source.pods = Some(crate::api::PodsSpec {
            service: "checkout".into(),
            ..Default::default()
        });
        assert!(
            spec.validate()
                .unwrap_err()
                .to_string()
                .contains("only one")
        );
        spec.source.prometheus = None;
        assert!(spec.validate().is_ok());
    }

    fn pods_spec(pods: &str) -> BurstPolicySpec {
        serde_saphyr::from_str(&format!(
            "source:\n  pods: {pods}\ntarget: {{name: worker-virtual-service}}\n"
        ))
        .unwrap()
    }

    #[test]
    fn pods_defaults_are_envoys_and_the_namespace_is_the_policys() {
        let spec = pods_spec("{service: checkout}");
        let p = spec.validate().unwrap();
        let SourceSetup::Pods(c) = spec
            .source
            .to_setup("shop", &p, &ResolvedAuth::default())
            .unwrap()
        else {
            panic!("not a pod source")
        };
        assert_eq!(
            (c.service.as_str(), c.namespace.as_str()),
            ("checkout", "shop")
        );
        assert_eq!(c.port, burst_pods::MetricsPort::Number(15090));
        assert_eq!(c.path, "/stats/prometheus");
        assert_eq!(c.metric, "istio_requests_total");
        assert_eq!(c.matchers["reporter"], "destination");
        assert_eq!(c.window, Duration::from_secs(15));
        assert!((c.quorum - 0.5).abs() < 1e-9);
        // A pod source is not an HTTP source: `to_config` says how to build it.
        assert!(
            spec.source
                .to_config(&p, &ResolvedAuth::default())
                .unwrap_err()
                .to_string()
                .contains("spec.source.pods")
        );
    }

    #[test]
    fn pods_settings_are_carried_and_checked() {
        let spec = pods_spec(
            "{service: checkout, port: http-envoy-prom, path: /stats, scheme: https, metric: reqs, \
             matchers: {reporter: source}, quorum: 1, concurrency: 4, timeout: 800ms}",
        );
        let p = spec.validate().unwrap();
        let auth = ResolvedAuth {
            bearer_token: Some("tok".into()),
            basic: None,
        };
        let SourceSetup::Pods(c) = spec.source.to_setup("shop", &p, &auth).unwrap() else {
            panic!("not a pod source")
        };
        assert_eq!(
            c.port,
            burst_pods::MetricsPort::Name("http-envoy-prom".into())
        );
        assert_eq!(c.scheme, burst_pods::Scheme::Https);
        assert_eq!((c.path.as_str(), c.metric.as_str()), ("/stats", "reqs"));
        assert_eq!(c.matchers["reporter"], "source");
        assert_eq!(c.concurrency, 4);
        assert_eq!(c.http.timeout, Duration::from_millis(800));
        assert_eq!(c.http.headers["Authorization"], "Bearer tok");
        let numbered = pods_spec("{service: checkout, port: 9102}")
            .source
            .to_setup("shop", &p, &ResolvedAuth::default())
            .unwrap();
        assert!(
            matches!(&numbered, SourceSetup::Pods(c) if c.port == burst_pods::MetricsPort::Number(9102)),
            "{numbered:?}"
        );
        for (bad, field) in [
            ("{service: ''}", "spec.source.pods.service"),
            ("{service: a/b}", "spec.source.pods.service"),
            ("{service: c, port: 0}", "spec.source.pods.port"),
            ("{service: c, port: ''}", "spec.source.pods.port"),
            ("{service: c, path: stats}", "spec.source.pods.path"),
            ("{service: c, metric: ''}", "spec.source.pods.metric"),
            ("{service: c, quorum: 0}", "spec.source.pods.quorum"),
            ("{service: c, quorum: 1.5}", "spec.source.pods.quorum"),
            (
                "{service: c, concurrency: 0}",
                "spec.source.pods.concurrency",
            ),
        ] {
            let e = pods_spec(bad).validate().unwrap_err().to_string();
            assert!(e.contains(field), "{bad}: {e}");
        }
    }

    #[test]
    fn signal_settings_reach_every_source_kind() {
        let spec: BurstPolicySpec = serde_saphyr::from_str(
            r#"
source:
  prometheus:
    url: "http://prometheus:9090"
    variables: {burst_cluster: west}
    signals: {latencyP99: default, errorRatio: "sum(rate(e[{{window}}]))", burstErrorRatio: default}
target: {name: worker-virtual-service}
"#,
        )
        .unwrap();
        let p = spec.validate().unwrap();
        let SourceConfig::Prometheus(c) =
            spec.source.to_config(&p, &ResolvedAuth::default()).unwrap()
        else {
            panic!("not prometheus")
        };
        assert_eq!(c.signals.latency_p99.as_deref(), Some("default"));
        assert_eq!(
            c.signals.error_ratio.as_deref(),
            Some("sum(rate(e[{{window}}]))")
        );
        assert_eq!(c.signals.primary_ready, None);
        let Ok(burst_prom::Source::Prometheus(built)) =
            SourceConfig::Prometheus(c).connect(&burst_prom::HttpClients::new())
        else {
            panic!("did not build")
        };
        let queries: Vec<_> = built.signal_queries().collect();
        assert_eq!(queries.len(), 3);
        assert!(
            queries[2].1.contains(r#"destination_cluster="west""#),
            "{queries:?}"
        );

        let spec = pods_spec(
            "{service: checkout, signals: {latencyHistogram: istio_request_duration_milliseconds, errorRatio: true}}",
        );
        let SourceSetup::Pods(c) = spec
            .source
            .to_setup("shop", &p, &ResolvedAuth::default())
            .unwrap()
        else {
            panic!("not a pod source")
        };
        assert_eq!(c.signals, ScrapeSignals::istio());

        let spec: BurstPolicySpec = serde_saphyr::from_str(
            r#"
source:
  scrape:
    targets: ["http://10.0.0.1:9090/metrics"]
    metric: http_requests_total
    signals: {latencyHistogram: http_request_duration_seconds, latencyUnit: s, errorRatio: true, codeLabel: code}
target: {name: worker-virtual-service}
"#,
        )
        .unwrap();
        let SourceConfig::Scrape(c) = spec.source.to_config(&p, &ResolvedAuth::default()).unwrap()
        else {
            panic!("not scrape")
        };
        assert_eq!(c.signals.latency_unit, LatencyUnit::Seconds);
        assert_eq!(c.signals.code_label, "code");
    }

    #[test]
    fn signal_errors_name_the_key() {
        for (source, field) in [
            (
                "{pods: {service: c, signals: {latencyHistogram: h_bucket}}}",
                "spec.source.pods.signals.latencyHistogram",
            ),
            (
                "{pods: {service: c, signals: {errorRatio: true, codeLabel: 'response-code'}}}",
                "spec.source.pods.signals.codeLabel",
            ),
            (
                "{prometheus: {url: 'http://p:9090', signals: {latencyP99: 'x{{'}}}",
                "spec.source.prometheus.signals.latencyP99",
            ),
            (
                "{prometheus: {url: 'http://p:9090'}, readyEndpoints: {}}",
                "spec.source.readyEndpoints",
            ),
            (
                "{prometheus: {url: 'http://p:9090'}, readyEndpoints: {primary: {service: 'A_b'}}}",
                "spec.source.readyEndpoints.primary.service",
            ),
            (
                "{prometheus: {url: 'http://p:9090'}, readyEndpoints: {burst: {service: b, namespace: 'x/y'}}}",
                "spec.source.readyEndpoints.burst.namespace",
            ),
        ] {
            let spec: BurstPolicySpec = serde_saphyr::from_str(&format!(
                "source: {source}\ntarget: {{name: worker-virtual-service}}\n"
            ))
            .unwrap();
            let e = spec.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{source}: {e}");
        }
    }

    #[test]
    fn ready_endpoints_default_to_the_policys_namespace() {
        let spec: BurstPolicySpec = serde_saphyr::from_str(
            r#"
source:
  prometheus: {url: "http://prometheus:9090"}
  readyEndpoints:
    primary: {service: checkout}
    burst: {service: checkout-burst, namespace: burst}
target: {name: worker-virtual-service}
"#,
        )
        .unwrap();
        spec.validate().unwrap();
        let r = spec.source.ready_endpoints("shop").unwrap().unwrap();
        assert_eq!(r.primary, Some(("shop".into(), "checkout".into())));
        assert_eq!(r.burst, Some(("burst".into(), "checkout-burst".into())));
        assert_eq!(seed_spec().source.ready_endpoints("shop").unwrap(), None);
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
}
