//! The one error enum of `burst-pods`.

use std::time::Duration;

use burst_core::SourceError;

/// Everything that can go wrong while configuring a pod source or watching a Service's
/// endpoints.
///
/// Too few pods answering a round is not an error but [`burst_core::Reading::NoData`],
/// whose reason counts the pods that did not answer. Each variant maps to a short, stable
/// [`Error::kind`] label for metrics.
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
    /// From `burst-prom`: a setting it checks (metric name, windows, timeout, CA bundle,
    /// token file, headers) was rejected.
    #[error(transparent)]
    Prom(#[from] burst_prom::Error),
    /// The first list of the Service's EndpointSlices did not arrive in time.
    #[error(
        "no EndpointSlice list for service {namespace}/{service} within {}; check that the API server is reachable and that this identity may list and watch endpointslices.discovery.k8s.io in {namespace}",
        humantime::format_duration(*.after)
    )]
    NotSynced {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        service: String,
        /// How long it waited.
        after: Duration,
    },
    /// The watch task ended (its runtime shut down); no endpoint updates arrive any more.
    #[error(
        "the EndpointSlice watch of service {namespace}/{service} has stopped; build a new watcher"
    )]
    WatchStopped {
        /// The Service's namespace.
        namespace: String,
        /// The Service's name.
        service: String,
    },
    /// A rate that is not a finite number >= 0 (cannot come from counters, but is checked
    /// at the boundary).
    #[error("rate of {selector} came out as {value}; the counters scraped are not valid")]
    InvalidValue {
        /// The selector whose rate it is.
        selector: String,
        /// The value computed.
        value: f64,
    },
}

impl Error {
    /// A short, stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Config { .. } => "config",
            Error::Prom(e) => e.kind(),
            Error::NotSynced { .. } => "not_synced",
            Error::WatchStopped { .. } => "watch_stopped",
            Error::InvalidValue { .. } => "invalid_value",
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
