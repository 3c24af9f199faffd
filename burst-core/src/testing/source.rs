//! [`MemorySource`]: a scripted [`MetricSource`].

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::{MetricSource, Reading, SourceError};

/// A scripted source for tests, simulations and embedding.
///
/// It returns queued results in order; when the queue is empty it repeats the fallback
/// (initially "no data").
#[derive(Debug)]
pub struct MemorySource {
    state: Mutex<MemoryState>,
}

#[derive(Debug)]
struct MemoryState {
    queue: VecDeque<Scripted>,
    fallback: Scripted,
    calls: u64,
}

/// One scripted outcome of a [`MemorySource`].
#[derive(Debug, Clone, PartialEq)]
pub enum Scripted {
    /// Return this reading.
    Reading(Reading),
    /// Fail with a [`SourceError`] of this kind and message.
    Error {
        /// Error kind label.
        kind: &'static str,
        /// Error message.
        message: String,
    },
}

impl MemorySource {
    /// A source that answers "no data" until told otherwise.
    pub fn new() -> Self {
        MemorySource {
            state: Mutex::new(MemoryState {
                queue: VecDeque::new(),
                fallback: Scripted::Reading(Reading::NoData {
                    reason: "nothing scripted".into(),
                }),
                calls: 0,
            }),
        }
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut MemoryState) -> R) -> R {
        f(&mut crate::lock(&self.state))
    }

    /// Queues one outcome.
    pub fn push(&self, outcome: Scripted) {
        self.with_state(|s| s.queue.push_back(outcome));
    }

    /// Sets the outcome repeated once the queue is empty.
    pub fn set(&self, outcome: Scripted) {
        self.with_state(|s| s.fallback = outcome);
    }

    /// How many times `observe` was called.
    pub fn calls(&self) -> u64 {
        self.with_state(|s| s.calls)
    }
}

impl Default for MemorySource {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait]
impl MetricSource for MemorySource {
    async fn observe(&self) -> Result<Reading, SourceError> {
        let next = self.with_state(|s| {
            s.calls += 1;
            s.queue.pop_front().unwrap_or_else(|| s.fallback.clone())
        });
        match next {
            Scripted::Reading(r) => Ok(r),
            Scripted::Error { kind, message } => Err(SourceError::new(kind, message)),
        }
    }

    fn describe(&self) -> String {
        "in-memory source".into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Observation, Rate, Rates, Timestamp};

    #[tokio::test]
    async fn memory_source_replays_queue_then_fallback() {
        let src = MemorySource::new();
        let obs = Observation::new(
            Rates::single(Rate::try_new("r", 3.0).unwrap()),
            Timestamp::ZERO,
        );
        src.push(Scripted::Reading(Reading::Value(obs)));
        src.push(Scripted::Error {
            kind: "http",
            message: "boom".into(),
        });
        assert_eq!(src.observe().await.unwrap(), Reading::Value(obs));
        let err = src.observe().await.unwrap_err();
        assert_eq!((err.kind(), err.to_string().as_str()), ("http", "boom"));
        assert!(matches!(
            src.observe().await.unwrap(),
            Reading::NoData { .. }
        ));
        assert_eq!(src.calls(), 3);
    }
}
