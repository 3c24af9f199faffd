//! [`PrometheusSource`]: a [`MetricSource`] backed by Prometheus' HTTP query API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use burst_core::{
    MetricSource, Observation, Rate, Rates, Reading, Signals, SourceError, Timestamp,
};
use serde::Deserialize;
use url::Url;

use crate::Error;
use crate::api::{QueryData, QueryResponse, Sample, body_excerpt, format_labels, parse_response};
use crate::clock::{Clock, SystemClock};
use crate::http::{HttpClient, HttpClients, HttpConfig};
use crate::signal_queries::{self, SignalQueries, SignalQuery};
use crate::template::{DEFAULT_QUERY, QueryTemplate, default_variables, promql_duration};

/// The expression [`PrometheusSource::probe`] evaluates.
pub const PROBE_QUERY: &str = "vector(1)";

/// What to do when a query returns more than one series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeriesRule {
    /// Fail, naming the label sets found (the default: an ambiguous query is a mistake).
    #[default]
    Error,
    /// Add the values up.
    Sum,
    /// Take the largest value.
    Max,
}

/// Settings of a [`PrometheusSource`].
///
/// Every field has a default, so `PrometheusConfig::default()` queries
/// `http://localhost:9090` with the seed's query at the source over 15 s.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrometheusConfig {
    /// Base URL of Prometheus (or of a compatible API: Thanos, Mimir, Cortex), with any
    /// path prefix, e.g. `http://prometheus.istio-system:9090`.
    pub url: String,
    /// The PromQL template; see [`crate::template`]. Default: [`DEFAULT_QUERY`].
    pub query: String,
    /// Values of the template's variables, merged over the defaults (`reporter=source`,
    /// `service=worker-service`, `namespace=default`, `source_workload=frontend-deployment`).
    /// `window` is set from [`Self::window`] and [`Self::long_window`].
    pub variables: BTreeMap<String, String>,
    /// The (short) rate window, filled into `{{window}}` (default 15 s).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// An optional long window: the query runs once per window and the reading carries
    /// both rates (`up` = short window, `down` = long window).
    #[serde(with = "humantime_serde")]
    pub long_window: Option<Duration>,
    /// What to do with several series (default: error).
    pub series: SeriesRule,
    /// Samples older than this are stale and read as "no data" (default 1 min).
    #[serde(with = "humantime_serde")]
    pub max_age: Duration,
    /// Queries whose URL-encoded form is longer than this many bytes are sent as a POST
    /// form instead of a GET, so proxies' URL limits are never hit (default 2000).
    pub post_above_bytes: usize,
    /// HTTP settings: timeout, authentication, TLS, extra headers.
    pub http: HttpConfig,
    /// One query per signal besides the demand (latency, error ratios, ready endpoints);
    /// none by default. A signal query that fails leaves its signal without data.
    pub signals: SignalQueries,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            url: "http://localhost:9090".into(),
            query: DEFAULT_QUERY.into(),
            variables: BTreeMap::new(),
            window: Duration::from_secs(15),
            long_window: None,
            series: SeriesRule::Error,
            max_age: Duration::from_secs(60),
            post_above_bytes: 2000,
            http: HttpConfig::default(),
            signals: SignalQueries::default(),
        }
    }
}

/// A metric source that evaluates an instant query against Prometheus' HTTP API.
///
/// Cheap to share: it holds one pooled HTTP client and reuses connections.
#[derive(Debug)]
pub struct PrometheusSource {
    endpoint: Url,
    /// One rendered query per window, shortest first.
    queries: Vec<WindowQuery>,
    series: SeriesRule,
    max_age: Duration,
    post_above_bytes: usize,
    http: HttpClient,
    clock: Arc<dyn Clock>,
    /// One rendered query per signal asked for, over the short window.
    signals: Vec<SignalQuery>,
}

#[derive(Debug, Clone)]
struct WindowQuery {
    window: Duration,
    promql: String,
}

/// One number from one query, or the reason there is none.
#[derive(Debug, Clone, PartialEq)]
pub enum Selected {
    /// The value and its sample time.
    Value {
        /// A finite value `>= 0`.
        value: f64,
        /// The sample's time.
        at: Timestamp,
    },
    /// No usable sample.
    NoData(String),
}

impl PrometheusSource {
    /// Builds a source reading the system clock; checks every setting.
    pub fn new(config: PrometheusConfig) -> Result<PrometheusSource, Error> {
        PrometheusSource::with_clock(config, Arc::new(SystemClock))
    }

    /// Builds a source that reads the time from `clock` (for staleness checks).
    pub fn with_clock(
        config: PrometheusConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<PrometheusSource, Error> {
        PrometheusSource::with_clock_and_clients(config, clock, &HttpClients::new())
    }

    /// Builds a source that shares its HTTP client with the other sources built with
    /// `clients` and the same connection settings (see [`HttpClients`]).
    pub fn with_clients(
        config: PrometheusConfig,
        clients: &HttpClients,
    ) -> Result<PrometheusSource, Error> {
        PrometheusSource::with_clock_and_clients(config, Arc::new(SystemClock), clients)
    }

    /// Builds a source reading the time from `clock` and sharing its HTTP client through
    /// `clients`.
    pub fn with_clock_and_clients(
        config: PrometheusConfig,
        clock: Arc<dyn Clock>,
        clients: &HttpClients,
    ) -> Result<PrometheusSource, Error> {
        let endpoint = query_endpoint(&config.url)?;
        let template = QueryTemplate::parse(&config.query)?;
        if config.max_age.is_zero() {
            return Err(Error::config(
                "max_age",
                "0s would make every sample stale; use e.g. 1m",
            ));
        }
        let windows = crate::rate_windows(config.window, config.long_window)?;
        if windows.len() > 1 && !template.uses("window") {
            return Err(Error::config(
                "long_window",
                "the query has no `{{window}}` placeholder, so both windows would run the same query; add `[{{window}}]` to the query or drop long_window",
            ));
        }
        let mut vars = default_variables();
        vars.extend(config.variables.clone());
        vars.insert("window".into(), promql_duration(windows[0]));
        let signals = config.signals.render(&vars)?;
        let queries = windows
            .into_iter()
            .map(|window| {
                vars.insert("window".into(), promql_duration(window));
                Ok(WindowQuery {
                    window,
                    promql: template.render(&vars)?,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok(PrometheusSource {
            endpoint,
            queries,
            series: config.series,
            max_age: config.max_age,
            post_above_bytes: config.post_above_bytes,
            http: HttpClient::new(&config.http, clients)?,
            clock,
            signals,
        })
    }

    /// The rendered queries, one per window (short first).
    pub fn queries(&self) -> impl Iterator<Item = &str> {
        self.queries.iter().map(|q| q.promql.as_str())
    }

    /// The rendered signal queries: (setting, PromQL).
    pub fn signal_queries(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.signals
            .iter()
            .map(|q| (q.kind.key(), q.promql.as_str()))
    }

    /// Evaluates every signal query once. A query that fails or gives no data leaves its
    /// signal `None` (logged: WARN for errors, DEBUG for no data); it never fails the
    /// observation.
    pub async fn evaluate_signals(&self) -> Signals {
        let answers = futures::future::join_all(
            self.signals
                .iter()
                .map(|q| async move { (q, self.query(&q.promql).await) }),
        )
        .await;
        let now = self.clock.now();
        let mut signals = Signals::NONE;
        for (q, answer) in answers {
            let applied = answer.and_then(|r| {
                signal_queries::apply(q, r.data, self.series, now, self.max_age, &mut signals)
            });
            match applied {
                Ok(None) => {}
                Ok(Some(reason)) => {
                    tracing::debug!(signal = q.kind.key(), reason = %reason, "signal query gave no data");
                }
                Err(e) => tracing::warn!(
                    signal = q.kind.key(),
                    kind = e.kind(),
                    error = %e,
                    query = %q.promql,
                    "signal query failed; the signal has no data this tick"
                ),
            }
        }
        signals
    }

    /// The `/api/v1/query` URL used.
    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    /// Evaluates any PromQL expression once, at the server's current time.
    ///
    /// Long expressions go as a POST form. Warnings in the answer are logged.
    pub async fn query(&self, promql: &str) -> Result<QueryResponse, Error> {
        let form: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("query", promql)
            .finish();
        let response = call_api(
            &self.http,
            &self.endpoint,
            form,
            self.post_above_bytes,
            parse_response,
        )
        .await?;
        for warning in &response.warnings {
            tracing::warn!(query = promql, warning = %warning, "prometheus answered with a warning");
        }
        for info in &response.infos {
            tracing::debug!(query = promql, info = %info, "prometheus answered with a notice");
        }
        Ok(response)
    }

    /// Evaluates the configured query (once per window) and turns the answers into a
    /// [`Reading`]: both rates, or "no data" when any window has none.
    pub async fn evaluate(&self) -> Result<Reading, Error> {
        let demand = futures::future::join_all(self.queries.iter().map(|q| async move {
            let response = self.query(&q.promql).await?;
            select(response.data, self.series, self.clock.now(), self.max_age)
        }));
        let (answers, signals) = futures::join!(demand, self.evaluate_signals());
        let mut values = Vec::with_capacity(answers.len());
        for (answer, q) in answers.into_iter().zip(&self.queries) {
            match answer? {
                Selected::Value { value, at } => values.push((value, at)),
                Selected::NoData(reason) => {
                    let reason = if self.queries.len() > 1 {
                        format!("{reason} (window {})", promql_duration(q.window))
                    } else {
                        reason
                    };
                    return Ok(Reading::NoData { reason });
                }
            }
        }
        let rate = |v: f64| {
            Rate::try_new("query value", v).map_err(|_| Error::InvalidValue {
                series: "(result)".into(),
                value: v,
            })
        };
        let (up, up_at) = values[0];
        let (down, down_at) = values.last().copied().unwrap_or((up, up_at));
        Ok(Reading::Value(
            Observation::new(
                Rates {
                    up: rate(up)?,
                    down: rate(down)?,
                },
                up_at.min(down_at),
            )
            .with_signals(signals),
        ))
    }

    /// Checks that Prometheus answers queries: evaluates `vector(1)` and expects 1.
    /// Meant for readiness probes.
    pub async fn probe(&self) -> Result<(), Error> {
        let response = self.query(PROBE_QUERY).await?;
        match response.data {
            QueryData::Vector(v) if v.len() == 1 && v[0].value == 1.0 => Ok(()),
            QueryData::Scalar(s) if s.value == 1.0 => Ok(()),
            other => Err(Error::Response(format!(
                "`{PROBE_QUERY}` should give one sample of value 1, got {other:?}"
            ))),
        }
    }
}

#[async_trait]
impl MetricSource for PrometheusSource {
    async fn observe(&self) -> Result<Reading, SourceError> {
        self.evaluate().await.map_err(SourceError::from)
    }

    fn describe(&self) -> String {
        format!(
            "prometheus {} query {}",
            self.endpoint, self.queries[0].promql
        )
    }
}

/// Turns a query result into one value, applying the several-series `rule` and the
/// staleness limit. Empty vectors and stale samples are "no data", never 0.
pub fn select(
    data: QueryData,
    rule: SeriesRule,
    now: Timestamp,
    max_age: Duration,
) -> Result<Selected, Error> {
    let samples = match data {
        QueryData::Vector(v) if v.is_empty() => {
            return Ok(Selected::NoData(
                "empty vector: the query matched no series".into(),
            ));
        }
        QueryData::Vector(v) => v,
        QueryData::Scalar(s) => vec![s],
        QueryData::Other(kind) => return Err(Error::ResultType(kind)),
    };
    for s in &samples {
        if !(s.value.is_finite() && s.value >= 0.0) {
            return Err(Error::InvalidValue {
                series: format_labels(&s.labels),
                value: s.value,
            });
        }
    }
    let value = match (samples.len(), rule) {
        (1, _) => samples[0].value,
        (n, SeriesRule::Error) => {
            return Err(Error::SeveralSeries {
                count: n,
                label_sets: describe_series(&samples),
            });
        }
        (_, SeriesRule::Sum) => samples.iter().map(|s| s.value).sum(),
        (_, SeriesRule::Max) => samples.iter().map(|s| s.value).fold(0.0, f64::max),
    };
    let oldest = samples
        .iter()
        .map(|s| s.timestamp)
        .fold(f64::INFINITY, f64::min);
    let at = Timestamp::from_secs_f64(oldest).ok_or_else(|| {
        Error::Response(format!(
            "sample timestamp {oldest} is not a time after 1970"
        ))
    })?;
    let age = now.saturating_since(at);
    if age > max_age {
        return Ok(Selected::NoData(format!(
            "stale: the sample is {} old, older than max_age {}",
            humantime::format_duration(Duration::from_millis(age.as_millis() as u64)),
            humantime::format_duration(max_age)
        )));
    }
    Ok(Selected::Value { value, at })
}

/// Sends one API request (`form` as the URL's query, or as a POST form when longer than
/// `post_above_bytes`) and parses the answer with `parse`. Prometheus sends 400/422/503 with
/// a JSON error body: its message is kept; any other non-success status is
/// [`Error::HttpStatus`].
pub(crate) async fn call_api<T>(
    http: &HttpClient,
    endpoint: &Url,
    form: String,
    post_above_bytes: usize,
    parse: impl Fn(&[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    let url = endpoint.as_str();
    let request = if form.len() > post_above_bytes {
        http.post(url)
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(form)
    } else {
        let mut with_query = endpoint.clone();
        with_query.set_query(Some(&form));
        http.get(with_query.as_str())
    };
    let body = http.send(request, url).await?;
    match parse(&body.bytes) {
        Ok(r) if body.status.is_success() => Ok(r),
        Err(e @ Error::Prometheus { .. }) => Err(e),
        Err(e) if body.status.is_success() => Err(e),
        _ => Err(Error::HttpStatus {
            url: url.to_owned(),
            status: body.status.as_u16(),
            body: body_excerpt(&body.bytes, 200),
        }),
    }
}

fn describe_series(samples: &[Sample]) -> String {
    const SHOWN: usize = 5;
    let mut out: Vec<String> = samples
        .iter()
        .take(SHOWN)
        .map(|s| format_labels(&s.labels))
        .collect();
    if samples.len() > SHOWN {
        out.push(format!("and {} more", samples.len() - SHOWN));
    }
    out.join(", ")
}

fn query_endpoint(base: &str) -> Result<Url, Error> {
    api_endpoint(base, "api/v1/query")
}

/// `base` (any path prefix kept) joined with the API path `api` (e.g. `api/v1/query_range`).
pub(crate) fn api_endpoint(base: &str, api: &str) -> Result<Url, Error> {
    let bad = |why: String| Error::config("url", why);
    let mut url = Url::parse(base).map_err(|e| {
        bad(format!(
            "`{base}` is not a URL ({e}); give e.g. http://prometheus:9090"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad(format!(
            "`{base}` must start with http:// or https://, e.g. http://prometheus:9090"
        )));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad(format!(
            "`{base}` has a query or fragment; give the base URL only"
        )));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    url.join(api)
        .map_err(|e| bad(format!("cannot append {api} to `{base}`: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keeps_path_prefixes() {
        assert_eq!(
            query_endpoint("http://p:9090").unwrap().as_str(),
            "http://p:9090/api/v1/query"
        );
        assert_eq!(
            query_endpoint("https://h/prometheus").unwrap().as_str(),
            "https://h/prometheus/api/v1/query"
        );
        assert_eq!(
            query_endpoint("https://h/prometheus/").unwrap().as_str(),
            "https://h/prometheus/api/v1/query"
        );
        for bad in ["prometheus:9090", "ftp://h", "http://h?x=1", "not a url"] {
            let e = query_endpoint(bad).unwrap_err();
            assert_eq!(e.kind(), "config", "{bad}");
        }
    }

    #[test]
    fn config_checks() {
        let bad = PrometheusConfig {
            long_window: Some(Duration::from_secs(5)),
            ..PrometheusConfig::default()
        };
        let e = PrometheusSource::new(bad).unwrap_err();
        assert!(e.to_string().contains("long_window"), "{e}");

        let no_window = PrometheusConfig {
            query: "sum(rate(x[1m]))".into(),
            long_window: Some(Duration::from_secs(60)),
            ..PrometheusConfig::default()
        };
        let e = PrometheusSource::new(no_window).unwrap_err();
        assert!(e.to_string().contains("{{window}}"), "{e}");

        let s = PrometheusSource::new(PrometheusConfig {
            long_window: Some(Duration::from_secs(60)),
            variables: [("service".to_string(), "api".to_string())].into(),
            ..PrometheusConfig::default()
        })
        .unwrap();
        let q: Vec<&str> = s.queries().collect();
        assert_eq!(q.len(), 2);
        assert!(q[0].contains("[15s]") && q[1].contains("[60s]"), "{q:?}");
        assert!(q[0].contains("api.default.svc.cluster.local"), "{q:?}");
        assert!(q[0].contains(r#"reporter="source""#), "{q:?}");
    }

    #[test]
    fn config_deserialises() {
        let c: PrometheusConfig = serde_json::from_str(
            r#"{"url":"http://p:9090","window":"5s","long_window":"1m","series":"sum",
                "variables":{"namespace":"shop"},"http":{"timeout":"2s"}}"#,
        )
        .unwrap();
        assert_eq!(c.window, Duration::from_secs(5));
        assert_eq!(c.long_window, Some(Duration::from_secs(60)));
        assert_eq!(c.series, SeriesRule::Sum);
        assert_eq!(c.http.timeout, Duration::from_secs(2));
        let e = serde_json::from_str::<PrometheusConfig>(r#"{"qurey":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("qurey"), "{e}");
    }
}
