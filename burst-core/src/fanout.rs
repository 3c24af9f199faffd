//! One split on several routers at once: the fan-out that multi-cluster and multi-instance
//! routers share.
//!
//! [`Members`] holds named routers (names unique and non-empty, at least one), reads or
//! writes all of them concurrently, and reports each member's outcome. [`Failures`] sums up
//! what went wrong for an adapter's own error type: which members failed, why, and which
//! succeeded (those keep the new split; the next apply converges the rest).
//!
//! `burst_istio::MultiClusterRouter` and `burst_haproxy::MultiInstanceRouter` are built on
//! it; they differ only in what a disagreement between members means.

use futures::future::join_all;
use tracing::{info, warn};

use crate::{RouterError, Split, TrafficRouter};

/// Named routers that are read and written together.
pub struct Members {
    members: Vec<(String, Box<dyn TrafficRouter>)>,
}

/// Why a member list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MembersError {
    /// No member at all.
    #[error("the list is empty; give at least one")]
    Empty,
    /// A name is empty or given twice.
    #[error("`{0}` is empty or given twice; names must be non-empty and unique")]
    BadName(String),
}

/// One member's outcome.
#[derive(Debug)]
pub struct MemberReport<T> {
    /// The member's name.
    pub member: String,
    /// What happened there.
    pub result: Result<T, RouterError>,
}

/// What failed in one fan-out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failures {
    /// How many members were asked.
    pub total: usize,
    /// `(member, error kind, message)` of each member that failed.
    pub failed: Vec<(String, &'static str, String)>,
    /// The members that succeeded.
    pub succeeded: Vec<String>,
}

impl Members {
    /// A member list: `(name, router)` pairs, names non-empty and unique, at least one.
    pub fn new(members: Vec<(String, Box<dyn TrafficRouter>)>) -> Result<Members, MembersError> {
        if members.is_empty() {
            return Err(MembersError::Empty);
        }
        for (i, (name, _)) in members.iter().enumerate() {
            if name.is_empty() || members[..i].iter().any(|(n, _)| n == name) {
                return Err(MembersError::BadName(name.clone()));
            }
        }
        Ok(Members { members })
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.members.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// How many members there are (at least one).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always `false`: a member list is never empty. (For clippy's `len` convention.)
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The first member's router (the list is never empty).
    pub fn first(&self) -> Option<&dyn TrafficRouter> {
        self.members.first().map(|(_, r)| r.as_ref())
    }

    /// Reads every member concurrently.
    pub async fn read_all(&self) -> Vec<MemberReport<Split>> {
        join_all(self.members.iter().map(|(name, r)| async move {
            MemberReport {
                member: name.clone(),
                result: r.current().await,
            }
        }))
        .await
    }

    /// Applies `split` to every member concurrently, logging each outcome.
    pub async fn apply_all(&self, split: Split) -> Vec<MemberReport<()>> {
        join_all(self.members.iter().map(|(name, r)| async move {
            let result = r.apply(split).await;
            match &result {
                Ok(()) => info!(member = %name, %split, "split applied"),
                Err(e) => {
                    warn!(member = %name, %split, kind = e.kind(), error = %e, "split not applied")
                }
            }
            MemberReport {
                member: name.clone(),
                result,
            }
        }))
        .await
    }
}

impl Failures {
    /// What failed in `reports`, or `None` when every member succeeded.
    pub fn of<T>(reports: &[MemberReport<T>]) -> Option<Failures> {
        let failed: Vec<(String, &'static str, String)> = reports
            .iter()
            .filter_map(|r| {
                r.result
                    .as_ref()
                    .err()
                    .map(|e| (r.member.clone(), e.kind(), e.to_string()))
            })
            .collect();
        (!failed.is_empty()).then(|| Failures {
            total: reports.len(),
            failed,
            succeeded: reports
                .iter()
                .filter(|r| r.result.is_ok())
                .map(|r| r.member.clone())
                .collect(),
        })
    }
}

/// The splits of the members that answered, in member order.
pub fn splits(reports: Vec<MemberReport<Split>>) -> Vec<(String, Split)> {
    reports
        .into_iter()
        .filter_map(|r| r.result.ok().map(|s| (r.member, s)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::MemoryRouter;
    use std::sync::Arc;

    fn members(names: &[&str]) -> (Members, Vec<Arc<MemoryRouter>>) {
        let routers: Vec<_> = names
            .iter()
            .map(|_| Arc::new(MemoryRouter::new(Split::ALL_PRIMARY)))
            .collect();
        let m = Members::new(
            names
                .iter()
                .zip(&routers)
                .map(|(n, r)| {
                    (
                        (*n).to_owned(),
                        Box::new(r.clone()) as Box<dyn TrafficRouter>,
                    )
                })
                .collect(),
        )
        .unwrap();
        (m, routers)
    }

    #[test]
    fn empty_and_duplicate_names_are_refused() {
        assert_eq!(Members::new(vec![]).err(), Some(MembersError::Empty));
        let twice = vec![
            (
                "a".to_owned(),
                Box::new(MemoryRouter::new(Split::ALL_PRIMARY)) as Box<dyn TrafficRouter>,
            ),
            (
                "a".to_owned(),
                Box::new(MemoryRouter::new(Split::ALL_PRIMARY)),
            ),
        ];
        assert_eq!(
            Members::new(twice).err(),
            Some(MembersError::BadName("a".into()))
        );
        let blank = vec![(
            String::new(),
            Box::new(MemoryRouter::new(Split::ALL_PRIMARY)) as Box<dyn TrafficRouter>,
        )];
        assert!(matches!(Members::new(blank), Err(MembersError::BadName(_))));
    }

    #[tokio::test]
    async fn failures_name_failed_and_succeeded_members() {
        let (m, routers) = members(&["a", "b", "c"]);
        routers[1].fail_next_apply(RouterError::new("timeout", "slow"));
        let reports = m.apply_all(Split::ALL_BURST).await;
        let f = Failures::of(&reports).unwrap();
        assert_eq!(f.total, 3);
        assert_eq!(
            f.failed,
            vec![("b".to_owned(), "timeout", "slow".to_owned())]
        );
        assert_eq!(f.succeeded, vec!["a".to_owned(), "c".to_owned()]);
        assert_eq!(routers[0].split(), Split::ALL_BURST);
        assert_eq!(routers[1].split(), Split::ALL_PRIMARY);
        let read = splits(m.read_all().await);
        assert_eq!(read.len(), 3);
        assert_eq!(read[1], ("b".to_owned(), Split::ALL_PRIMARY));
        assert!(Failures::of(&m.apply_all(Split::ALL_BURST).await).is_none());
        assert_eq!(m.names(), vec!["a", "b", "c"]);
    }
}
