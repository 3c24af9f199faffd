//! The [`TrafficRouter`] capability.

use async_trait::async_trait;

use crate::{RouterError, Split};

/// Something that divides traffic between the primary and the burst destination.
///
/// Implementations: `burst_istio::VirtualServiceRouter`, `burst_istio::HttpRouteRouter`,
/// the demo's local proxy, and `burst_core::testing::MemoryRouter` (feature `test-util`).
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait TrafficRouter: Send + Sync {
    /// Reads the split that is in effect now.
    async fn current(&self) -> Result<Split, RouterError>;

    /// Applies `split`. On error, nothing may be left half-applied.
    async fn apply(&self, split: Split) -> Result<(), RouterError>;

    /// A short description for logs and status (e.g. `VirtualService default/worker`).
    fn describe(&self) -> String;
}

#[async_trait]
impl<T: TrafficRouter + ?Sized> TrafficRouter for std::sync::Arc<T> {
    async fn current(&self) -> Result<Split, RouterError> {
        (**self).current().await
    }
    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        (**self).apply(split).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

#[async_trait]
impl<T: TrafficRouter + ?Sized> TrafficRouter for Box<T> {
    async fn current(&self) -> Result<Split, RouterError> {
        (**self).current().await
    }
    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        (**self).apply(split).await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}
