//! The signal queries of a [`crate::PrometheusSource`]: one PromQL template per signal,
//! with Istio and kube-state-metrics defaults.

use std::collections::BTreeMap;

use burst_core::{Millis, Ratio, Signals, Timestamp};
use serde::Deserialize;

use crate::Error;
use crate::api::QueryData;
use crate::prometheus::{Selected, SeriesRule, select};
use crate::template::QueryTemplate;

/// The value of a signal query that selects its built-in default.
pub const DEFAULT: &str = "default";

/// The primary's p99 latency (ms) from Istio's histogram, at the primary's sidecars.
pub const DEFAULT_LATENCY_P99_QUERY: &str = concat!(
    r#"histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{"#,
    r#"reporter="destination",destination_service="{{service}}.{{namespace}}.svc.cluster.local"}[{{window}}])))"#,
);

/// The primary's error ratio: 5xx and 429 over all requests, at the primary's sidecars
/// (0 when no request failed, no data when there were no requests).
pub const DEFAULT_ERROR_RATIO_QUERY: &str = concat!(
    r#"(sum(rate(istio_requests_total{reporter="destination","#,
    r#"destination_service="{{service}}.{{namespace}}.svc.cluster.local",response_code=~"5..|429"}[{{window}}]))"#,
    r#" or on() vector(0))"#,
    r#" / sum(rate(istio_requests_total{reporter="destination","#,
    r#"destination_service="{{service}}.{{namespace}}.svc.cluster.local"}[{{window}}]))"#,
);

/// The primary Service's ready endpoints from kube-state-metrics (`kube_endpoint_address`
/// with `ready="true"`; 0 when the Endpoints object exists with none ready).
pub const DEFAULT_PRIMARY_READY_QUERY: &str = concat!(
    r#"sum(kube_endpoint_address{namespace="{{namespace}}",endpoint="{{service}}",ready="true"})"#,
    r#" or on() (0 * max(kube_endpoint_info{namespace="{{namespace}}",endpoint="{{service}}"}))"#,
);

/// The burst Service's ready endpoints from kube-state-metrics, where this Prometheus sees
/// the burst cluster's (`burst_service`, `burst_namespace`; they default to `service`
/// and `namespace`).
pub const DEFAULT_BURST_READY_QUERY: &str = concat!(
    r#"sum(kube_endpoint_address{namespace="{{burst_namespace}}",endpoint="{{burst_service}}",ready="true"})"#,
    r#" or on() (0 * max(kube_endpoint_info{namespace="{{burst_namespace}}",endpoint="{{burst_service}}"}))"#,
);

/// The burst side's error ratio as the primary's clients see it: source-reported requests
/// to the Service answered from the burst cluster (`destination_cluster`, variable
/// `burst_cluster`, which has no default).
pub const DEFAULT_BURST_ERROR_RATIO_QUERY: &str = concat!(
    r#"(sum(rate(istio_requests_total{reporter="source","#,
    r#"destination_service="{{service}}.{{namespace}}.svc.cluster.local",destination_cluster="{{burst_cluster}}","#,
    r#"response_code=~"5..|429"}[{{window}}]))"#,
    r#" or on() vector(0))"#,
    r#" / sum(rate(istio_requests_total{reporter="source","#,
    r#"destination_service="{{service}}.{{namespace}}.svc.cluster.local",destination_cluster="{{burst_cluster}}"}[{{window}}]))"#,
);

/// One PromQL template per signal, each optional (`None`: the signal is not measured;
/// [`DEFAULT`], i.e. `"default"`: the built-in query). Templates take the source's
/// variables, `{{window}}` (the short window), and `burst_service`/`burst_namespace`
/// (defaulting to `service`/`namespace`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SignalQueries {
    /// The primary's p99 latency in milliseconds ([`DEFAULT_LATENCY_P99_QUERY`]).
    pub latency_p99: Option<String>,
    /// The primary's error ratio, 0 to 1 ([`DEFAULT_ERROR_RATIO_QUERY`]).
    pub error_ratio: Option<String>,
    /// The primary's ready endpoints ([`DEFAULT_PRIMARY_READY_QUERY`]).
    pub primary_ready: Option<String>,
    /// The burst side's ready endpoints ([`DEFAULT_BURST_READY_QUERY`]).
    pub burst_ready: Option<String>,
    /// The burst side's error ratio ([`DEFAULT_BURST_ERROR_RATIO_QUERY`]).
    pub burst_error_ratio: Option<String>,
}

/// Which signal a query measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalKind {
    /// `latency_p99`.
    LatencyP99,
    /// `error_ratio`.
    ErrorRatio,
    /// `primary_ready`.
    PrimaryReady,
    /// `burst_ready`.
    BurstReady,
    /// `burst_error_ratio`.
    BurstErrorRatio,
}

/// A rendered signal query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SignalQuery {
    pub(crate) kind: SignalKind,
    pub(crate) promql: String,
}

impl SignalKind {
    /// The setting's name (`latency_p99`, ...).
    pub fn key(self) -> &'static str {
        match self {
            SignalKind::LatencyP99 => "signals.latency_p99",
            SignalKind::ErrorRatio => "signals.error_ratio",
            SignalKind::PrimaryReady => "signals.primary_ready",
            SignalKind::BurstReady => "signals.burst_ready",
            SignalKind::BurstErrorRatio => "signals.burst_error_ratio",
        }
    }

    fn default_query(self) -> &'static str {
        match self {
            SignalKind::LatencyP99 => DEFAULT_LATENCY_P99_QUERY,
            SignalKind::ErrorRatio => DEFAULT_ERROR_RATIO_QUERY,
            SignalKind::PrimaryReady => DEFAULT_PRIMARY_READY_QUERY,
            SignalKind::BurstReady => DEFAULT_BURST_READY_QUERY,
            SignalKind::BurstErrorRatio => DEFAULT_BURST_ERROR_RATIO_QUERY,
        }
    }

    /// Several series: ready counts add up; a latency or ratio must be one number.
    fn series_rule(self, configured: SeriesRule) -> SeriesRule {
        match self {
            SignalKind::PrimaryReady | SignalKind::BurstReady => SeriesRule::Sum,
            _ => configured,
        }
    }

    /// Puts `value` into `signals`; a value out of the signal's range is an error.
    fn fill(self, signals: &mut Signals, value: f64) -> Result<(), burst_core::Error> {
        match self {
            SignalKind::LatencyP99 => {
                signals.primary_p99 = Some(Millis::try_new("latencyP99", value)?)
            }
            SignalKind::ErrorRatio => {
                signals.primary_error_ratio = Some(Ratio::try_new("errorRatio", value)?);
            }
            SignalKind::BurstErrorRatio => {
                signals.burst_error_ratio = Some(Ratio::try_new("burstErrorRatio", value)?);
            }
            SignalKind::PrimaryReady => signals.primary_ready = Some(count(value)),
            SignalKind::BurstReady => signals.burst_ready = Some(count(value)),
        }
        Ok(())
    }
}

fn count(value: f64) -> u32 {
    // `select` has checked finite and >= 0.
    value.round().min(f64::from(u32::MAX)) as u32
}

impl SignalQueries {
    /// Whether any signal is queried.
    pub fn any(&self) -> bool {
        self.entries().any(|(_, q)| q.is_some())
    }

    fn entries(&self) -> impl Iterator<Item = (SignalKind, &Option<String>)> {
        [
            (SignalKind::LatencyP99, &self.latency_p99),
            (SignalKind::ErrorRatio, &self.error_ratio),
            (SignalKind::PrimaryReady, &self.primary_ready),
            (SignalKind::BurstReady, &self.burst_ready),
            (SignalKind::BurstErrorRatio, &self.burst_error_ratio),
        ]
        .into_iter()
    }

    /// Parses and renders every given query with `vars` (which hold `window`); errors
    /// name the signal's setting.
    pub(crate) fn render(
        &self,
        vars: &BTreeMap<String, String>,
    ) -> Result<Vec<SignalQuery>, Error> {
        let mut vars = vars.clone();
        for (burst, primary) in [
            ("burst_service", "service"),
            ("burst_namespace", "namespace"),
        ] {
            if !vars.contains_key(burst)
                && let Some(v) = vars.get(primary).cloned()
            {
                vars.insert(burst.into(), v);
            }
        }
        self.entries()
            .filter_map(|(kind, q)| q.as_ref().map(|q| (kind, q)))
            .map(|(kind, q)| {
                let text = if q.trim() == DEFAULT {
                    kind.default_query()
                } else {
                    q.as_str()
                };
                let promql = QueryTemplate::parse(text)
                    .and_then(|t| t.render(&vars))
                    .map_err(|e| Error::config(kind.key(), e.to_string()))?;
                Ok(SignalQuery { kind, promql })
            })
            .collect()
    }
}

/// Turns one signal query's answer into `signals`. "No data" (empty vector, stale
/// sample, NaN as from 0/0 when there were no requests) leaves the signal `None`; an
/// answer that cannot be a value of the signal is an error for the caller to log.
pub(crate) fn apply(
    query: &SignalQuery,
    data: QueryData,
    configured: SeriesRule,
    now: Timestamp,
    max_age: std::time::Duration,
    signals: &mut Signals,
) -> Result<Option<String>, Error> {
    if let QueryData::Vector(v) = &data
        && v.len() == 1
        && v[0].value.is_nan()
    {
        return Ok(Some("NaN (no requests in the window)".into()));
    }
    if let QueryData::Scalar(s) = &data
        && s.value.is_nan()
    {
        return Ok(Some("NaN (no requests in the window)".into()));
    }
    match select(data, query.kind.series_rule(configured), now, max_age)? {
        Selected::Value { value, .. } => {
            query
                .kind
                .fill(signals, value)
                .map_err(|e| Error::Response(format!("{}: {e}", query.kind.key())))?;
            Ok(None)
        }
        Selected::NoData(reason) => Ok(Some(reason)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        let mut v = crate::template::default_variables();
        v.insert("window".into(), "15s".into());
        v
    }

    #[test]
    fn defaults_render_with_the_source_variables() {
        let q = SignalQueries {
            latency_p99: Some(DEFAULT.into()),
            error_ratio: Some(DEFAULT.into()),
            primary_ready: Some(DEFAULT.into()),
            burst_ready: Some(DEFAULT.into()),
            burst_error_ratio: None,
        };
        let r = q.render(&vars()).unwrap();
        assert_eq!(r.len(), 4);
        assert_eq!(
            r[0].promql,
            r#"histogram_quantile(0.99, sum by (le) (rate(istio_request_duration_milliseconds_bucket{reporter="destination",destination_service="worker-service.default.svc.cluster.local"}[15s])))"#
        );
        assert!(
            r[1].promql.contains(r#"response_code=~"5..|429""#),
            "{}",
            r[1].promql
        );
        assert!(
            r[2].promql
                .contains(r#"endpoint="worker-service",ready="true""#)
        );
        // burst_service falls back to service.
        assert!(
            r[3].promql
                .contains(r#"namespace="default",endpoint="worker-service""#)
        );
        let mut v = vars();
        v.insert("burst_service".into(), "worker-burst".into());
        let r = q.render(&v).unwrap();
        assert!(r[3].promql.contains(r#"endpoint="worker-burst""#));
    }

    #[test]
    fn errors_name_the_signal() {
        let q = SignalQueries {
            burst_error_ratio: Some(DEFAULT.into()),
            ..SignalQueries::default()
        };
        let e = q.render(&vars()).unwrap_err().to_string();
        assert!(
            e.contains("signals.burst_error_ratio") && e.contains("burst_cluster"),
            "{e}"
        );
        let q = SignalQueries {
            latency_p99: Some("x{{".into()),
            ..SignalQueries::default()
        };
        let e = q.render(&vars()).unwrap_err().to_string();
        assert!(e.contains("signals.latency_p99"), "{e}");
        assert!(!SignalQueries::default().any());
    }
}
