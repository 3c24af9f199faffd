//! Keeping the clusters of a multi-cluster target on one split.
//!
//! [`MultiClusterRouter::current`] fails with a drift error ([`Error::is_drift`]) when the
//! clusters disagree, and a controller never writes on a failed read, so on its own a
//! disagreement would last. [`Converging`] turns it into something the controller repairs:
//!
//! - after an apply, a disagreement reads as the split that differs from the one applied,
//!   so the controller sees drift and writes its split to every cluster again;
//! - before any apply (start-up), the first cluster (the local one) is authoritative: its
//!   split is written to the others, and that split is the one in effect. This start-up
//!   write happens only when the [`WritePermission`] allows it (burstd: while it leads).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use burst_core::{RouterError, Split, TrafficRouter};

use crate::{Error, MultiClusterRouter};

/// Asked before [`Converging`] writes on its own (the start-up convergence). `true`
/// allows the write. burstd passes "this instance holds the leader lease".
pub type WritePermission = Arc<dyn Fn() -> bool + Send + Sync>;

/// A [`MultiClusterRouter`] that converges drifted clusters: after an apply, a
/// disagreement reads as the odd split (so the controller rewrites it); at start-up the
/// first cluster's split is written to the others when the [`WritePermission`] allows.
pub struct Converging {
    inner: MultiClusterRouter,
    may_write: WritePermission,
    applied: Mutex<Option<Split>>,
}

impl Converging {
    /// Wraps `inner`; converges at start-up only while `may_write` answers `true`.
    pub fn new(inner: MultiClusterRouter, may_write: WritePermission) -> Self {
        Converging {
            inner,
            may_write,
            applied: Mutex::new(None),
        }
    }

    fn applied(&self) -> Option<Split> {
        *burst_core::lock(&self.applied)
    }

    fn set_applied(&self, split: Split) {
        *burst_core::lock(&self.applied) = Some(split);
    }
}

#[async_trait]
impl TrafficRouter for Converging {
    async fn current(&self) -> Result<Split, RouterError> {
        let err = match self.inner.current().await {
            Ok(s) => return Ok(s),
            Err(e) if Error::of(&e).is_some_and(Error::is_drift) => e,
            Err(e) => return Err(e),
        };
        let reports = self.inner.read_all().await;
        let splits: Vec<Split> = reports
            .iter()
            .filter_map(|r| r.result.as_ref().ok().copied())
            .collect();
        if splits.len() != reports.len() {
            return Err(err);
        }
        match self.applied() {
            Some(applied) => Ok(splits
                .into_iter()
                .find(|s| *s != applied)
                .unwrap_or(applied)),
            None => {
                let Some(local) = splits.first().copied() else {
                    return Err(err);
                };
                if !(self.may_write)() {
                    return Err(err);
                }
                tracing::warn!(router = %self.inner.describe(), split = %local, error = %err, "clusters disagree at start-up; writing the local cluster's split to all");
                self.inner.apply(local).await?;
                self.set_applied(local);
                Ok(local)
            }
        }
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        let r = self.inner.apply(split).await;
        // Even a partial failure leaves some clusters at `split`: that is what was applied.
        self.set_applied(split);
        r
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use burst_core::testing::MemoryRouter;
    use std::sync::atomic::{AtomicBool, Ordering};

    fn multi(
        a: Split,
        b: Split,
        may_write: WritePermission,
    ) -> (Arc<MemoryRouter>, Arc<MemoryRouter>, Converging) {
        let ra = Arc::new(MemoryRouter::new(a));
        let rb = Arc::new(MemoryRouter::new(b));
        let m = MultiClusterRouter::new(vec![
            (
                "local".into(),
                Box::new(ra.clone()) as Box<dyn TrafficRouter>,
            ),
            ("west".into(), Box::new(rb.clone())),
        ])
        .unwrap();
        (ra, rb, Converging::new(m, may_write))
    }

    fn allowed() -> WritePermission {
        Arc::new(|| true)
    }

    #[tokio::test]
    async fn clusters_converge_on_the_local_split_at_start_up() {
        let (ra, rb, c) = multi(Split::ALL_BURST, Split::ALL_PRIMARY, allowed());
        assert_eq!(c.current().await.unwrap(), Split::ALL_BURST);
        assert_eq!(
            (ra.split(), rb.split()),
            (Split::ALL_BURST, Split::ALL_BURST)
        );
    }

    #[tokio::test]
    async fn after_an_apply_a_disagreement_reads_as_the_odd_split() {
        let (_, rb, c) = multi(Split::ALL_PRIMARY, Split::ALL_PRIMARY, allowed());
        c.apply(Split::ALL_BURST).await.unwrap();
        rb.set_externally(Split::ALL_PRIMARY);
        assert_eq!(c.current().await.unwrap(), Split::ALL_PRIMARY);
        c.apply(Split::ALL_BURST).await.unwrap();
        assert_eq!(c.current().await.unwrap(), Split::ALL_BURST);
    }

    #[tokio::test]
    async fn without_permission_nothing_is_written_until_it_is_given() {
        let permitted = Arc::new(AtomicBool::new(false));
        let flag = permitted.clone();
        let (ra, rb, c) = multi(
            Split::ALL_BURST,
            Split::ALL_PRIMARY,
            Arc::new(move || flag.load(Ordering::SeqCst)),
        );
        let e = c.current().await.unwrap_err();
        assert_eq!(e.kind(), "drift");
        assert!(Error::of(&e).is_some_and(Error::is_drift));
        assert_eq!((ra.applied(), rb.applied()), (vec![], vec![]));
        assert_eq!(rb.split(), Split::ALL_PRIMARY);

        permitted.store(true, Ordering::SeqCst);
        assert_eq!(c.current().await.unwrap(), Split::ALL_BURST);
        assert_eq!(rb.split(), Split::ALL_BURST);
    }

    #[tokio::test]
    async fn other_read_errors_pass_through_untouched() {
        let (_, rb, c) = multi(Split::ALL_PRIMARY, Split::ALL_PRIMARY, allowed());
        rb.fail_next_read(RouterError::new("timeout", "slow"));
        let e = c.current().await.unwrap_err();
        assert_eq!(e.kind(), "cluster_failure");
        // A plain string error of kind `drift` is not a drift to converge.
        rb.fail_next_read(RouterError::new("drift", "not a burst-istio drift"));
        assert_eq!(c.current().await.unwrap_err().kind(), "cluster_failure");
    }
}
