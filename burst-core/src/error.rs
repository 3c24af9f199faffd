//! The one error enum of `burst-core`, and the three error types adapters return.

use std::fmt;
use std::sync::Arc;

/// A boxed error, as adapters return them through [`SourceError`], [`RouterError`] and
/// [`ScalerError`].
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Invalid values and configuration rejected by `burst-core`.
///
/// Every message names the offending value and what a valid one looks like.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A weight outside `0..=100`.
    #[error("weight {0} is out of range: a weight is a percentage from 0 to 100")]
    WeightOutOfRange(i64),
    /// Two weights that do not add up to 100.
    #[error(
        "weights {primary} (primary) + {burst} (burst) = {sum}: the two weights of a split must sum to 100"
    )]
    SplitSum {
        /// Primary weight given.
        primary: u8,
        /// Burst weight given.
        burst: u8,
        /// Their sum.
        sum: u16,
    },
    /// A rate that is NaN, infinite or negative.
    #[error("{what} = {value} is not a valid rate: it must be a finite number >= 0")]
    InvalidRate {
        /// Which quantity was being built (e.g. `high threshold`).
        what: &'static str,
        /// The rejected value.
        value: f64,
    },
    /// A threshold pair whose low bound is not strictly below its high bound.
    #[error("thresholds low={low} high={high}: low must be strictly below high")]
    ThresholdOrder {
        /// Low threshold given.
        low: f64,
        /// High threshold given.
        high: f64,
    },
    /// A policy or simulation setting with an invalid value.
    #[error("invalid setting `{key}`: {message}")]
    InvalidSetting {
        /// The configuration key, as written in `policy.yaml`.
        key: &'static str,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A duration that is not written like `15s`, `1m30s` or `500ms`.
    #[error("`{0}` is not a duration; write it like `15s`, `1m30s` or `500ms`")]
    Duration(String),
    /// A policy file that could not be parsed.
    #[error("policy file: {0}")]
    PolicyFile(String),
    /// A load trace that could not be parsed.
    #[error("trace line {line}: {message}")]
    Trace {
        /// 1-based line number in the CSV.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// An unknown built-in trace name.
    #[error("unknown built-in trace `{0}`; known: {known}", known = crate::sim::Trace::BUILTIN_NAMES.join(", "))]
    UnknownTrace(String),
}

/// An error and its causes, joined with `: `, each cause only when its text is not already
/// in the message (client libraries often hide the cause, or repeat it).
///
/// ```
/// let io = std::io::Error::other("connection refused");
/// assert_eq!(burst_core::error_chain(&io), "connection refused");
/// ```
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cause = c.source();
    }
    out
}

/// Why a [`crate::MetricSource`] could not produce a reading.
///
/// A source error is never read as a rate of 0: the policy treats it like missing data.
/// `kind` is a short, stable label (e.g. `timeout`, `http`, `parse`) for metrics; the
/// adapter's own typed error is inside, found with [`downcast_ref`](Self::downcast_ref)
/// (e.g. `e.downcast_ref::<burst_prom::Error>()`). Cloning is cheap (the error is shared),
/// so [`crate::policy::Signal`] and [`crate::TickReport`] carry it whole.
#[derive(Debug, Clone)]
pub struct SourceError {
    kind: &'static str,
    inner: Arc<dyn std::error::Error + Send + Sync + 'static>,
}

/// Why a [`crate::TrafficRouter`] could not read or apply a split.
///
/// `kind` is a short, stable label (e.g. `conflict`, `not_found`, `timeout`) for metrics;
/// the adapter's own typed error is inside, found with [`downcast_ref`](Self::downcast_ref)
/// (e.g. `e.downcast_ref::<burst_istio::Error>()`). Cloning is cheap (the error is shared).
#[derive(Debug, Clone)]
pub struct RouterError {
    kind: &'static str,
    inner: Arc<dyn std::error::Error + Send + Sync + 'static>,
}

/// Why a [`crate::CapacityScaler`] could not prepare or release the burst side.
///
/// `kind` is a short, stable label (e.g. `conflict`, `not_found`, `forbidden`) for metrics;
/// the adapter's own typed error is inside, found with [`downcast_ref`](Self::downcast_ref)
/// (e.g. `e.downcast_ref::<burst_scale::Error>()`). Cloning is cheap (the error is shared).
#[derive(Debug, Clone)]
pub struct ScalerError {
    kind: &'static str,
    inner: Arc<dyn std::error::Error + Send + Sync + 'static>,
}

macro_rules! adapter_error {
    ($name:ident) => {
        impl $name {
            /// Wraps `error` under the metric label `kind`.
            pub fn new(kind: &'static str, error: impl Into<BoxError>) -> Self {
                Self {
                    kind,
                    inner: Arc::from(error.into()),
                }
            }

            /// The adapter's typed error, if it is an `E`.
            pub fn downcast_ref<E: std::error::Error + 'static>(&self) -> Option<&E> {
                self.inner.downcast_ref::<E>()
            }

            /// A short, stable label for logs and metrics.
            pub fn kind(&self) -> &'static str {
                self.kind
            }

            /// The wrapped error.
            pub fn inner(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
                &*self.inner
            }

            /// A timeout of `what` after `after`.
            pub fn timeout(what: &str, after: std::time::Duration) -> Self {
                Self::new(
                    "timeout",
                    format!(
                        "{what} did not answer within {}",
                        humantime::format_duration(after)
                    ),
                )
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.inner, f)
            }
        }

        /// Two errors are equal when their kind and message are (for comparing reports).
        impl PartialEq for $name {
            fn eq(&self, other: &Self) -> bool {
                self.kind == other.kind && self.to_string() == other.to_string()
            }
        }

        impl std::error::Error for $name {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.inner.source()
            }
        }
    };
}

adapter_error!(SourceError);
adapter_error!(RouterError);
adapter_error!(ScalerError);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_error_shows_inner_message_and_kind() {
        let e = RouterError::new("conflict", "object changed");
        assert_eq!(e.to_string(), "object changed");
        assert_eq!(e.kind(), "conflict");
        let t = SourceError::timeout("prometheus", std::time::Duration::from_secs(2));
        assert_eq!(t.kind(), "timeout");
        assert_eq!(t.to_string(), "prometheus did not answer within 2s");
        assert_eq!(e.clone(), e);
        assert_ne!(e, RouterError::new("conflict", "something else"));
    }

    #[test]
    fn the_typed_error_is_found_by_downcast() {
        #[derive(Debug, thiserror::Error, PartialEq)]
        #[error("route gone")]
        struct Gone;
        let e = RouterError::new("not_found", Gone);
        assert_eq!(e.downcast_ref::<Gone>(), Some(&Gone));
        assert!(e.downcast_ref::<std::io::Error>().is_none());
        assert_eq!(e.clone().downcast_ref::<Gone>(), Some(&Gone));
    }
}
