//! The one error enum of `burst-prom`.

use std::path::PathBuf;

use burst_core::SourceError;

/// Everything that can go wrong while configuring or querying a Prometheus source.
///
/// "No data" (an empty result, a stale sample, too few scrapes yet) is not an error: it is
/// [`burst_core::Reading::NoData`]. Each variant maps to a short, stable [`Error::kind`]
/// label for metrics.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A setting with an invalid value.
    #[error("invalid setting `{key}`: {message}")]
    Config {
        /// The setting, as named in the configuration or on the command line.
        key: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A PromQL template that cannot be filled.
    #[error("query template: {0}")]
    Template(String),
    /// A CA bundle that cannot be read or holds no usable certificate.
    #[error("CA bundle {path}: {message}; give a PEM file with one or more CA certificates")]
    CaBundle {
        /// The file given.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A bearer token file that cannot be read or is empty.
    #[error(
        "bearer token file {path}: {message}; the file must exist and hold the token (e.g. a projected service-account token)"
    )]
    TokenFile {
        /// The file given.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The request did not complete within the configured timeout.
    #[error("{url}: no answer within {}; raise the timeout or check the server", humantime::format_duration(*.after))]
    Timeout {
        /// The URL requested.
        url: String,
        /// The configured timeout.
        after: std::time::Duration,
    },
    /// The server could not be reached (connection refused, DNS, TLS handshake...).
    #[error("{url}: request failed: {message}")]
    Connect {
        /// The URL requested.
        url: String,
        /// The transport error, with its causes.
        message: String,
    },
    /// The server answered with a non-success HTTP status and no Prometheus error body.
    #[error("{url}: HTTP {status}: {body}")]
    HttpStatus {
        /// The URL requested.
        url: String,
        /// The status code.
        status: u16,
        /// The start of the response body.
        body: String,
    },
    /// The response body is larger than the configured limit.
    #[error(
        "{url}: response larger than {limit} bytes; raise `max_response_bytes` or narrow the query"
    )]
    TooLarge {
        /// The URL requested.
        url: String,
        /// The limit in bytes.
        limit: usize,
    },
    /// Prometheus answered `"status": "error"`.
    #[error("prometheus error ({error_type}): {message}")]
    Prometheus {
        /// Prometheus' `errorType` (e.g. `bad_data`, `timeout`, `execution`).
        error_type: String,
        /// Prometheus' own `error` message.
        message: String,
    },
    /// A response body that is not a valid Prometheus API answer.
    #[error("unreadable Prometheus response: {0}")]
    Response(String),
    /// A result type the source cannot turn into one number (`matrix`, `string`).
    #[error(
        "query returned a {0} result; use an instant vector or scalar expression (e.g. `sum(rate(x[15s]))`, not `x[15s]`)"
    )]
    ResultType(String),
    /// A sample value that is NaN, infinite or negative.
    #[error("series {series} has value {value}: a rate must be a finite number >= 0")]
    InvalidValue {
        /// The series' label set (or target and series for scrapes).
        series: String,
        /// The value as read.
        value: f64,
    },
    /// Several series where the configured rule says there must be one.
    #[error(
        "query returned {count} series where one was expected: {label_sets}; aggregate them in the query (`sum(...)`) or set `series: sum` or `series: max`"
    )]
    SeveralSeries {
        /// How many series came back.
        count: usize,
        /// Their label sets.
        label_sets: String,
    },
    /// A range query that returned several series; a trace needs one.
    #[error(
        "range query returned {count} series where one was expected: {label_sets}; wrap the query in sum(...) (e.g. `sum(rate(x[1m]))`) so it returns one series"
    )]
    SeveralRangeSeries {
        /// How many distinct series came back (over all chunks).
        count: usize,
        /// Their label sets.
        label_sets: String,
    },
    /// A range query whose result holds no sample at all.
    #[error(
        "query `{query}` returned no samples between {start} and {end}; check the query (e.g. with `burst query`) and that Prometheus holds data for that time (retention)"
    )]
    NoSamples {
        /// The PromQL.
        query: String,
        /// The range's start, as given to Prometheus (Unix seconds).
        start: String,
        /// The range's end, as given to Prometheus (Unix seconds).
        end: String,
    },
    /// A scrape target that could not be read.
    #[error("scrape {url}: {message}")]
    Scrape {
        /// The target URL.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// A scrape target whose body is not in the Prometheus text format.
    #[error("scrape {url}: line {line}: {message}")]
    Exposition {
        /// The target URL.
        url: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong with the line.
        message: String,
    },
    /// Several scrape targets failed in one round.
    #[error("{failed} of {total} scrape targets failed: {first}")]
    ScrapeTargets {
        /// How many failed.
        failed: usize,
        /// How many targets there are.
        total: usize,
        /// The first failure.
        first: Box<Error>,
    },
}

impl Error {
    /// A short, stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Template(_) => "template",
            Error::CaBundle { .. } => "tls_config",
            Error::TokenFile { .. } => "token_file",
            Error::Timeout { .. } => "timeout",
            Error::Connect { .. } => "connect",
            Error::HttpStatus { .. } => "http_status",
            Error::TooLarge { .. } => "too_large",
            Error::Prometheus { .. } => "prometheus",
            Error::Response(_) => "response",
            Error::ResultType(_) => "result_type",
            Error::InvalidValue { .. } => "invalid_value",
            Error::SeveralSeries { .. } => "several_series",
            Error::SeveralRangeSeries { .. } => "several_series",
            Error::NoSamples { .. } => "no_samples",
            Error::Scrape { .. } => "scrape",
            Error::Exposition { .. } => "exposition",
            Error::ScrapeTargets { first, .. } => first.kind(),
        }
    }

    pub(crate) fn config(key: &'static str, message: impl Into<String>) -> Error {
        Error::Config {
            key,
            message: message.into(),
        }
    }
}

impl From<Error> for SourceError {
    fn from(e: Error) -> SourceError {
        SourceError::new(e.kind(), e)
    }
}
