//! One split on several HAProxy instances: [`MultiInstanceRouter`].
//!
//! The same shape as `burst_istio::MultiClusterRouter` with its `Converging` wrapper in
//! one: an active/active pair of HAProxy instances must agree on the split, and a
//! disagreement must be something the controller repairs, not a dead end.

use std::sync::Mutex;

use async_trait::async_trait;
use burst_core::fanout::{Failures, MemberReport, Members, MembersError, splits};
use burst_core::{RouterError, Split, TrafficRouter, lock};
use tracing::warn;

use crate::Error;
use crate::router::{HaproxyRouter, HaproxyTarget};
use crate::runtime::RuntimeClient;

/// One instance's outcome in a [`MultiInstanceRouter`] (`member` is the instance's name).
pub type InstanceReport<T> = MemberReport<T>;

/// One split on several HAProxy instances (e.g. an active/active pair behind a VIP).
///
/// - `apply` writes to every instance concurrently and succeeds only if every instance
///   did; otherwise the error (kind `instance_failure`) names each failed instance, why,
///   and those that succeeded (which keep the new split; the next apply converges the
///   rest).
/// - `current` reads every instance; any failure is an `instance_failure`. When the
///   instances disagree after an apply, it returns the split that differs from the one
///   applied, so the controller sees drift and writes again. Before any apply (start-up),
///   the first instance is authoritative: its split is written to the others.
pub struct MultiInstanceRouter {
    backend: String,
    members: Members,
    applied: Mutex<Option<Split>>,
}

impl MultiInstanceRouter {
    /// A router over `(instance name, router)` pairs for backend `backend` (used in
    /// messages); names must be unique and non-empty, the list non-empty.
    pub fn new(
        backend: impl Into<String>,
        members: Vec<(String, Box<dyn TrafficRouter>)>,
    ) -> Result<Self, Error> {
        let members = Members::new(members).map_err(|e| {
            let (what, value) = match &e {
                MembersError::Empty => ("HAProxy instance list", String::new()),
                MembersError::BadName(n) => ("HAProxy instance name", n.clone()),
            };
            Error::InvalidOption {
                what,
                value,
                problem: e.to_string(),
            }
        })?;
        Ok(MultiInstanceRouter {
            backend: backend.into(),
            members,
            applied: Mutex::new(None),
        })
    }

    /// One router per runtime API address, all for `target`, named by their address.
    pub fn over(clients: Vec<RuntimeClient>, target: &HaproxyTarget) -> Result<Self, Error> {
        let members = clients
            .into_iter()
            .map(|c| {
                (
                    c.addr().to_string(),
                    Box::new(HaproxyRouter::new(c, target.clone())) as Box<dyn TrafficRouter>,
                )
            })
            .collect();
        MultiInstanceRouter::new(target.backend(), members)
    }

    /// The instance names, in order.
    pub fn instances(&self) -> Vec<&str> {
        self.members.names()
    }

    /// Reads every instance concurrently.
    pub async fn read_all(&self) -> Vec<InstanceReport<Split>> {
        self.members.read_all().await
    }

    /// Applies `split` to every instance concurrently.
    pub async fn apply_all(&self, split: Split) -> Vec<InstanceReport<()>> {
        self.members.apply_all(split).await
    }

    fn applied(&self) -> Option<Split> {
        *lock(&self.applied)
    }

    fn failure<T>(&self, action: &'static str, reports: &[InstanceReport<T>]) -> Option<Error> {
        Failures::of(reports).map(|f| Error::InstanceFailure {
            backend: self.backend.clone(),
            action,
            total: f.total,
            failures: f.failed,
            succeeded: f.succeeded,
        })
    }
}

#[async_trait]
impl TrafficRouter for MultiInstanceRouter {
    async fn current(&self) -> Result<Split, RouterError> {
        let reports = self.read_all().await;
        if let Some(e) = self.failure("read", &reports) {
            return Err(e.into());
        }
        let splits = splits(reports);
        let Some(&(_, first)) = splits.first() else {
            return Err(Error::Drift {
                backend: self.backend.clone(),
                splits,
            }
            .into());
        };
        if splits.iter().all(|(_, s)| *s == first) {
            return Ok(first);
        }
        warn!(backend = %self.backend, error = %Error::Drift { backend: self.backend.clone(), splits: splits.clone() }, "instances disagree");
        match self.applied() {
            Some(applied) => Ok(splits
                .iter()
                .map(|(_, s)| *s)
                .find(|s| *s != applied)
                .unwrap_or(first)),
            None => {
                // Start-up: the first instance is authoritative.
                self.apply(first).await?;
                Ok(first)
            }
        }
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        let reports = self.apply_all(split).await;
        *lock(&self.applied) = Some(split);
        match self.failure("apply", &reports) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "HAProxy backend {} on {} instance(s): {}",
            self.backend,
            self.members.len(),
            self.instances().join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::testing::MemoryRouter;

    fn multi(
        members: Vec<(&str, Split)>,
    ) -> (MultiInstanceRouter, Vec<std::sync::Arc<MemoryRouter>>) {
        let routers: Vec<_> = members
            .iter()
            .map(|(_, s)| std::sync::Arc::new(MemoryRouter::new(*s)))
            .collect();
        let m = MultiInstanceRouter::new(
            "app",
            members
                .iter()
                .zip(&routers)
                .map(|((n, _), r)| (n.to_string(), Box::new(r.clone()) as Box<dyn TrafficRouter>))
                .collect(),
        )
        .unwrap();
        (m, routers)
    }

    #[tokio::test]
    async fn instances_converge_on_the_first_at_start_and_on_the_applied_split_later() {
        let s = |b| Split::try_new(100 - b, b).unwrap();
        let (m, routers) = multi(vec![("a", s(30)), ("b", s(0))]);
        // Start-up: the first instance is authoritative and is written to the others.
        assert_eq!(m.current().await.unwrap(), s(30));
        assert_eq!(routers[1].current().await.unwrap(), s(30));
        m.apply(s(50)).await.unwrap();
        // Someone changes one instance: the odd split is what current() reports.
        routers[1].apply(s(10)).await.unwrap();
        assert_eq!(m.current().await.unwrap(), s(10));
        assert!(MultiInstanceRouter::new("app", vec![]).is_err());
        assert!(m.describe().contains("2 instance(s): a, b"));
    }
}
