//! [`MemoryScaler`]: an in-memory [`CapacityScaler`].

use std::collections::VecDeque;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::scaler::PrewarmReason;
use crate::{CapacityScaler, ScalerError};

/// One call a [`MemoryScaler`] received, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum ScalerCall {
    /// `prepare(why)`, and whether it succeeded.
    Prepare {
        /// The reason given.
        why: PrewarmReason,
        /// Whether the call succeeded.
        ok: bool,
    },
    /// `release()`, and whether it succeeded.
    Release {
        /// Whether the call succeeded.
        ok: bool,
    },
}

/// An in-memory scaler for tests, simulations and embedding.
///
/// It records every call, holds whether the burst side is prepared, and can be told to fail
/// the next calls (a failed call changes nothing).
#[derive(Debug, Default)]
pub struct MemoryScaler {
    state: Mutex<ScalerState>,
}

#[derive(Debug, Default)]
struct ScalerState {
    prepared: bool,
    calls: Vec<ScalerCall>,
    fail_prepares: VecDeque<ScalerError>,
    fail_releases: VecDeque<ScalerError>,
}

impl MemoryScaler {
    /// A scaler with nothing prepared.
    pub fn new() -> Self {
        MemoryScaler::default()
    }

    fn with_state<R>(&self, f: impl FnOnce(&mut ScalerState) -> R) -> R {
        f(&mut crate::lock(&self.state))
    }

    /// Whether the burst side is prepared now.
    pub fn is_prepared(&self) -> bool {
        self.with_state(|s| s.prepared)
    }

    /// Every call received, in order.
    pub fn calls(&self) -> Vec<ScalerCall> {
        self.with_state(|s| s.calls.clone())
    }

    /// Makes the next `prepare` fail with `error`.
    pub fn fail_next_prepare(&self, error: ScalerError) {
        self.with_state(|s| s.fail_prepares.push_back(error));
    }

    /// Makes the next `release` fail with `error`.
    pub fn fail_next_release(&self, error: ScalerError) {
        self.with_state(|s| s.fail_releases.push_back(error));
    }
}

#[async_trait]
impl CapacityScaler for MemoryScaler {
    async fn prepare(&self, why: &PrewarmReason) -> Result<(), ScalerError> {
        self.with_state(|s| {
            let result = match s.fail_prepares.pop_front() {
                Some(e) => Err(e),
                None => {
                    s.prepared = true;
                    Ok(())
                }
            };
            s.calls.push(ScalerCall::Prepare {
                why: *why,
                ok: result.is_ok(),
            });
            result
        })
    }

    async fn release(&self) -> Result<(), ScalerError> {
        self.with_state(|s| {
            let result = match s.fail_releases.pop_front() {
                Some(e) => Err(e),
                None => {
                    s.prepared = false;
                    Ok(())
                }
            };
            s.calls.push(ScalerCall::Release { ok: result.is_ok() });
            result
        })
    }

    fn describe(&self) -> String {
        "in-memory scaler".into()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::Timestamp;
    use crate::forecast::Outlook;
    use crate::scaler::{PrewarmAction, PrewarmSettings, PrewarmState};

    #[tokio::test]
    async fn failed_calls_change_nothing_and_are_recorded() {
        let s = MemoryScaler::new();
        s.fail_next_prepare(ScalerError::new("conflict", "409"));
        let e = s.prepare(&PrewarmReason::OnBurst).await.unwrap_err();
        assert_eq!(e.kind(), "conflict");
        assert!(!s.is_prepared());
        s.prepare(&PrewarmReason::OnBurst).await.unwrap();
        assert!(s.is_prepared());
        s.fail_next_release(ScalerError::new("timeout", "slow"));
        assert!(s.release().await.is_err());
        assert!(s.is_prepared());
        s.release().await.unwrap();
        assert!(!s.is_prepared());
        assert_eq!(
            s.calls(),
            vec![
                ScalerCall::Prepare {
                    why: PrewarmReason::OnBurst,
                    ok: false
                },
                ScalerCall::Prepare {
                    why: PrewarmReason::OnBurst,
                    ok: true
                },
                ScalerCall::Release { ok: false },
                ScalerCall::Release { ok: true },
            ]
        );
    }

    /// The loop the controller will run: step, call, confirm on success.
    #[tokio::test]
    async fn the_state_machine_drives_the_scaler_through_a_failed_prepare() {
        let scaler = MemoryScaler::new();
        let settings =
            PrewarmSettings::try_new(Duration::from_secs(30), Duration::from_secs(20)).unwrap();
        let mut state = PrewarmState::new(settings);
        scaler.fail_next_prepare(ScalerError::new("server", "500"));
        let rising = Outlook::Crossing {
            now: 10.0,
            after: Duration::from_secs(10),
            at_lead: 20.0,
        };
        let calm = Outlook::Below {
            now: 2.0,
            at_lead: 2.0,
        };
        let script = [
            (rising, false),
            (rising, false),
            (calm, true),
            (calm, false),
            (calm, false),
        ];
        for (i, (outlook, on_burst)) in script.into_iter().enumerate() {
            let now = Timestamp::from_duration(Duration::from_secs(i as u64 * 10));
            if let Some(action) = state.step(&outlook, on_burst, now) {
                let result = match &action {
                    PrewarmAction::Prepare(why) => scaler.prepare(why).await,
                    PrewarmAction::Release { .. } => scaler.release().await,
                };
                if result.is_ok() {
                    state.confirm(&action);
                }
            }
        }
        assert!(!scaler.is_prepared());
        let calls: Vec<(&str, bool)> = scaler
            .calls()
            .iter()
            .map(|c| match c {
                ScalerCall::Prepare { ok, .. } => ("prepare", *ok),
                ScalerCall::Release { ok } => ("release", *ok),
            })
            .collect();
        // Burst at 20 s, released at 40 s (hold 20 s), not at 30 s.
        assert_eq!(
            calls,
            vec![("prepare", false), ("prepare", true), ("release", true)]
        );
    }
}
