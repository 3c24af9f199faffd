//! The [`MetricSource`] capability.

use async_trait::async_trait;

use crate::{Observation, SourceError};

/// What a metric source saw: a measurement, or explicitly nothing.
///
/// "No data" (an empty query result, a stale sample, a target that is gone) is its own
/// outcome and is never read as a rate of 0.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// A valid measurement.
    Value(Observation),
    /// The source answered, but had no sample to give.
    NoData {
        /// Why there is no data (e.g. `empty vector`, `sample 42s old`).
        reason: String,
    },
}

/// Something that measures the demand (requests per second, or another rate).
///
/// Implementations: `burst_prom::PrometheusSource`, `burst_prom::ScrapeSource`,
/// `burst_core::testing::MemorySource` (feature `test-util`).
#[async_trait]
pub trait MetricSource: Send + Sync {
    /// Takes one measurement.
    async fn observe(&self) -> Result<Reading, SourceError>;

    /// A short description for logs and status (e.g. the query or the target URLs).
    fn describe(&self) -> String;
}

#[async_trait]
impl<T: MetricSource + ?Sized> MetricSource for std::sync::Arc<T> {
    async fn observe(&self) -> Result<Reading, SourceError> {
        (**self).observe().await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

#[async_trait]
impl<T: MetricSource + ?Sized> MetricSource for Box<T> {
    async fn observe(&self) -> Result<Reading, SourceError> {
        (**self).observe().await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
