//! [`MemoryRouter`]: an in-memory [`TrafficRouter`].

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{RouterError, Split, TrafficRouter};

/// An in-memory router for tests, simulations and embedding.
///
/// It holds a split, records every successful apply, and can be told to fail the next calls.
#[derive(Debug)]
pub struct MemoryRouter {
    state: Mutex<RouterState>,
}

#[derive(Debug)]
struct RouterState {
    split: Split,
    applied: Vec<Split>,
    fail_reads: VecDeque<RouterError>,
    fail_applies: VecDeque<RouterError>,
}

impl MemoryRouter {
    /// A router whose current split is `initial`.
    pub fn new(initial: Split) -> Self {
        MemoryRouter {
            state: Mutex::new(RouterState {
                split: initial,
                applied: Vec::new(),
                fail_reads: VecDeque::new(),
                fail_applies: VecDeque::new(),
            }),
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut RouterState) -> R) -> R {
        f(&mut crate::lock(&self.state))
    }

    /// The split in effect.
    pub fn split(&self) -> Split {
        self.with_state(|s| s.split)
    }

    /// Changes the split behind the controller's back (drift).
    pub fn set_externally(&self, split: Split) {
        self.with_state(|s| s.split = split);
    }

    /// Every split applied successfully, in order.
    pub fn applied(&self) -> Vec<Split> {
        self.with_state(|s| s.applied.clone())
    }

    /// Makes the next `current` call fail with `error`.
    pub fn fail_next_read(&self, error: RouterError) {
        self.with_state(|s| s.fail_reads.push_back(error));
    }

    /// Drops every queued failure.
    pub fn clear_faults(&self) {
        self.with_state(|s| {
            s.fail_reads.clear();
            s.fail_applies.clear();
        });
    }

    /// Makes the next `apply` call fail with `error` (the split stays as it was).
    pub fn fail_next_apply(&self, error: RouterError) {
        self.with_state(|s| s.fail_applies.push_back(error));
    }
}

#[async_trait]
impl TrafficRouter for MemoryRouter {
    async fn current(&self) -> Result<Split, RouterError> {
        self.with_state(|s| match s.fail_reads.pop_front() {
            Some(e) => Err(e),
            None => Ok(s.split),
        })
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        self.with_state(|s| match s.fail_applies.pop_front() {
            Some(e) => Err(e),
            None => {
                s.split = split;
                s.applied.push(split);
                Ok(())
            }
        })
    }

    fn describe(&self) -> String {
        "in-memory router".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn failed_apply_leaves_split_unchanged() {
        let r = MemoryRouter::new(Split::ALL_PRIMARY);
        r.fail_next_apply(RouterError::new("conflict", "409"));
        assert!(r.apply(Split::ALL_BURST).await.is_err());
        assert_eq!(r.current().await.unwrap(), Split::ALL_PRIMARY);
        r.apply(Split::ALL_BURST).await.unwrap();
        assert_eq!(r.split(), Split::ALL_BURST);
        assert_eq!(r.applied(), vec![Split::ALL_BURST]);
    }
}
