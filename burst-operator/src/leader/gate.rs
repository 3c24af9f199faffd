//! The one leadership check on the write path: [`LeaderGated`].

use async_trait::async_trait;
use burst_core::scaler::PrewarmReason;
use burst_core::{CapacityScaler, RouterError, ScalerError, Split, TrafficRouter};

use super::LeaderHandle;

/// A router that refuses to write unless this instance leads.
///
/// The operator also stops every loop the moment the lease is lost; this gate closes the
/// window between losing the lease and the loop noticing.
pub struct LeaderGated<R> {
    inner: R,
    leader: LeaderHandle,
}

impl<R> LeaderGated<R> {
    /// Gates `inner` on `leader`.
    pub fn new(inner: R, leader: LeaderHandle) -> Self {
        LeaderGated { inner, leader }
    }
}

#[async_trait]
impl<R: TrafficRouter> TrafficRouter for LeaderGated<R> {
    async fn current(&self) -> Result<Split, RouterError> {
        self.inner.current().await
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        if !self.leader.is_leader() {
            return Err(RouterError::new(
                "not_leader",
                "this instance does not hold the leader lease; not writing",
            ));
        }
        self.inner.apply(split).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// A pre-warm scaler that refuses to write unless this instance leads (`not_leader`: the
/// pre-warm is asked again on the next tick, so a new leader does it).
#[async_trait]
impl<S: CapacityScaler> CapacityScaler for LeaderGated<S> {
    async fn prepare(&self, why: &PrewarmReason) -> Result<(), ScalerError> {
        if !self.leader.is_leader() {
            return Err(ScalerError::new(
                "not_leader",
                "this instance does not hold the leader lease; not pre-warming",
            ));
        }
        self.inner.prepare(why).await
    }

    async fn release(&self) -> Result<(), ScalerError> {
        if !self.leader.is_leader() {
            return Err(ScalerError::new(
                "not_leader",
                "this instance does not hold the leader lease; not releasing",
            ));
        }
        self.inner.release().await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::leader::LeaderState;
    use burst_core::testing::MemoryRouter;

    #[tokio::test]
    async fn gate_blocks_writes_of_followers() {
        let (tx, rx) = tokio::sync::watch::channel(LeaderState::Leader);
        let handle = LeaderHandle::from_receiver(rx);
        let r = LeaderGated::new(MemoryRouter::new(Split::ALL_PRIMARY), handle);
        r.apply(Split::ALL_BURST).await.unwrap();
        tx.send(LeaderState::Follower { holder: None }).unwrap();
        let e = r.apply(Split::ALL_PRIMARY).await.unwrap_err();
        assert_eq!(e.kind(), "not_leader");
        assert_eq!(r.current().await.unwrap(), Split::ALL_BURST);
    }
}
