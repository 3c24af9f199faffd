//! One split, several clusters: a [`TrafficRouter`] over many.
//!
//! In a multi-primary Istio mesh every primary cluster has its own control plane and its
//! own copy of the VirtualService; they must agree. [`MultiClusterRouter`] applies a split
//! to every cluster concurrently and reports each cluster's outcome.
//!
//! Rules:
//! - `apply` succeeds only if every cluster succeeded; otherwise the error (kind
//!   `cluster_failure`) names the clusters that failed, why, and those that succeeded.
//!   Clusters that succeeded keep the new split: the next apply converges the rest.
//! - `current` succeeds only if every cluster answered and all hold the same split.
//!   Different splits are an error of kind `drift` naming each cluster's split, so a
//!   controller never acts on one cluster's view while another sends traffic elsewhere;
//!   applying any split ends the drift.

use async_trait::async_trait;
use burst_core::fanout::{Failures, MemberReport, Members, MembersError, splits};
use burst_core::{RouterError, Split, TrafficRouter};

use crate::Error;

/// One cluster's outcome (`member` is the cluster's name).
pub type ClusterReport<T> = MemberReport<T>;

/// Applies one split to the same object in several clusters.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use burst_core::testing::MemoryRouter;
/// use burst_core::{Split, TrafficRouter};
/// use burst_istio::MultiClusterRouter;
///
/// let router = MultiClusterRouter::new(vec![
///     ("east".to_owned(), Box::new(MemoryRouter::new(Split::ALL_PRIMARY)) as Box<dyn TrafficRouter>),
///     ("west".to_owned(), Box::new(MemoryRouter::new(Split::ALL_BURST))),
/// ])?;
/// assert_eq!(router.current().await.unwrap_err().kind(), "drift");
/// router.apply(Split::try_new(70, 30)?).await?;
/// assert_eq!(router.current().await?, Split::try_new(70, 30)?);
/// # Ok(()) }
/// ```
pub struct MultiClusterRouter {
    object: String,
    members: Members,
}

impl MultiClusterRouter {
    /// A router over `(cluster name, router)` pairs; names must be unique, the list non-empty.
    pub fn new(members: Vec<(String, Box<dyn TrafficRouter>)>) -> Result<Self, Error> {
        let members = Members::new(members).map_err(|e| {
            let (what, value) = match &e {
                MembersError::Empty => ("cluster list", String::new()),
                MembersError::BadName(n) => ("cluster name", n.clone()),
            };
            Error::InvalidOption {
                what,
                value,
                problem: e.to_string(),
            }
        })?;
        let object = members.first().map(|r| r.describe()).unwrap_or_default();
        Ok(MultiClusterRouter { object, members })
    }

    /// The cluster names, in order.
    pub fn clusters(&self) -> Vec<&str> {
        self.members.names()
    }

    /// Reads every cluster concurrently.
    pub async fn read_all(&self) -> Vec<ClusterReport<Split>> {
        self.members.read_all().await
    }

    /// Applies `split` to every cluster concurrently.
    pub async fn apply_all(&self, split: Split) -> Vec<ClusterReport<()>> {
        self.members.apply_all(split).await
    }

    fn failure<T>(&self, action: &'static str, reports: &[ClusterReport<T>]) -> Option<Error> {
        Failures::of(reports).map(|f| Error::ClusterFailure {
            object: self.object.clone(),
            action,
            total: f.total,
            failures: f.failed,
            succeeded: f.succeeded,
        })
    }
}

#[async_trait]
impl TrafficRouter for MultiClusterRouter {
    async fn current(&self) -> Result<Split, RouterError> {
        let reports = self.read_all().await;
        if let Some(e) = self.failure("read", &reports) {
            return Err(e.into());
        }
        let splits = splits(reports);
        let first = splits.first().map(|(_, s)| *s);
        match first {
            Some(s) if splits.iter().all(|(_, x)| *x == s) => Ok(s),
            _ => Err(Error::Drift {
                object: self.object.clone(),
                splits,
            }
            .into()),
        }
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        let reports = self.apply_all(split).await;
        match self.failure("apply", &reports) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!("{} in clusters {}", self.object, self.clusters().join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::testing::MemoryRouter;
    use std::sync::Arc;

    fn pair(a: Split, b: Split) -> (Arc<MemoryRouter>, Arc<MemoryRouter>, MultiClusterRouter) {
        let ra = Arc::new(MemoryRouter::new(a));
        let rb = Arc::new(MemoryRouter::new(b));
        let m = MultiClusterRouter::new(vec![
            ("a".into(), Box::new(ra.clone()) as Box<dyn TrafficRouter>),
            ("b".into(), Box::new(rb.clone())),
        ])
        .unwrap();
        (ra, rb, m)
    }

    #[tokio::test]
    async fn partial_apply_names_failed_and_succeeded_clusters() {
        let (ra, rb, m) = pair(Split::ALL_PRIMARY, Split::ALL_PRIMARY);
        rb.fail_next_apply(RouterError::new("timeout", "slow"));
        let e = m.apply(Split::ALL_BURST).await.unwrap_err();
        assert_eq!(e.kind(), "cluster_failure");
        let msg = e.to_string();
        assert!(msg.contains("b (timeout): slow"), "{msg}");
        assert!(msg.contains("succeeded in a"), "{msg}");
        assert_eq!(ra.split(), Split::ALL_BURST);
        assert_eq!(rb.split(), Split::ALL_PRIMARY);
        assert_eq!(m.current().await.unwrap_err().kind(), "drift");
        m.apply(Split::ALL_BURST).await.unwrap();
        assert_eq!(m.current().await.unwrap(), Split::ALL_BURST);
    }

    #[tokio::test]
    async fn read_failure_is_reported_per_cluster() {
        let (_, rb, m) = pair(Split::ALL_PRIMARY, Split::ALL_PRIMARY);
        rb.fail_next_read(RouterError::new("not_found", "gone"));
        let e = m.current().await.unwrap_err();
        assert_eq!(e.kind(), "cluster_failure");
        assert!(e.to_string().contains("b (not_found): gone"));
    }

    #[test]
    fn duplicate_cluster_names_are_refused() {
        let r = MultiClusterRouter::new(vec![
            (
                "a".into(),
                Box::new(MemoryRouter::new(Split::ALL_PRIMARY)) as Box<dyn TrafficRouter>,
            ),
            ("a".into(), Box::new(MemoryRouter::new(Split::ALL_PRIMARY))),
        ]);
        assert!(r.is_err());
        assert!(MultiClusterRouter::new(vec![]).is_err());
    }
}
