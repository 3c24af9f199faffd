//! Leader election on a `coordination.k8s.io/v1` Lease.
//!
//! Only the leader writes (routes, status, events). The rules, as in client-go:
//!
//! - A candidate takes the Lease when it does not exist, has no holder, or its record has
//!   not changed for `leaseDurationSeconds` as measured on the candidate's own monotonic
//!   clock (so clock skew between nodes does not matter). Every write is a `PUT` carrying
//!   the `resourceVersion` read, so two candidates can never both win: one gets `409`.
//! - The leader renews every `retry_period`. When it has not renewed successfully for
//!   `renew_deadline` (shorter than the lease duration), or finds another holder, it steps
//!   down at once, before anybody else may take over.
//! - On shutdown the leader releases the Lease (empty holder), so a follower takes over
//!   at its next retry instead of waiting for expiry.
//!
//! A follower that finds a leader gone (killed, cut off) therefore takes over no earlier than
//! `lease_duration` after the leader's last renewal, and no later than
//! `lease_duration + 2 × (retry_period + renew_deadline / 2)`: an election round (a request
//! bounded by `renew_deadline / 2`, then `retry_period` of sleep) may pass before it sees
//! the last renewal, and another after the lease expired. After a release it takes over
//! within one round. burst-faults' process tests measure both from the Lease records the
//! API server accepted (defaults: 15 s to 29 s; measured about 2.2 s with a 2 s lease).
//!
//! Writes check leadership in one place: every loop's router is wrapped in [`LeaderGated`]
//! ([`gate`]); status and Events are written only while [`LeaderHandle::is_leader`].

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::Error;

pub mod gate;

pub use gate::LeaderGated;

/// Lease settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Lease name (default `burstd`).
    pub name: String,
    /// Namespace of the Lease (burstd's own).
    pub namespace: String,
    /// This instance's identity (the pod name).
    pub identity: String,
    /// How long a lease is valid without renewal (default 15 s).
    pub lease_duration: Duration,
    /// The leader steps down when it could not renew for this long (default 10 s).
    pub renew_deadline: Duration,
    /// Interval between attempts to acquire or renew (default 2 s).
    pub retry_period: Duration,
}

impl LeaseSettings {
    /// Defaults for `identity` in `namespace`.
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> LeaseSettings {
        LeaseSettings {
            name: "burstd".to_owned(),
            namespace: namespace.into(),
            identity: identity.into(),
            lease_duration: Duration::from_secs(15),
            renew_deadline: Duration::from_secs(10),
            retry_period: Duration::from_secs(2),
        }
    }

    /// Checks `retry_period < renew_deadline < lease_duration` and the names.
    pub fn validate(&self) -> Result<(), Error> {
        if self.name.is_empty() || self.namespace.is_empty() || self.identity.is_empty() {
            return Err(Error::invalid(
                "lease",
                "lease name, lease namespace and identity must be non-empty (set --lease-namespace / POD_NAMESPACE and --identity / POD_NAME)",
            ));
        }
        if !(self.retry_period < self.renew_deadline && self.renew_deadline < self.lease_duration) {
            return Err(Error::invalid(
                "lease",
                format!(
                    "need retry period ({}) < renew deadline ({}) < lease duration ({})",
                    burst_core::HumanDuration::from(self.retry_period),
                    burst_core::HumanDuration::from(self.renew_deadline),
                    burst_core::HumanDuration::from(self.lease_duration)
                ),
            ));
        }
        if self.lease_duration.as_secs() < 1 || self.lease_duration.subsec_nanos() != 0 {
            return Err(Error::invalid(
                "lease duration",
                "must be a whole number of seconds, at least 1s (leaseDurationSeconds)",
            ));
        }
        Ok(())
    }
}

/// Who leads, as far as this instance knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaderState {
    /// Not known yet.
    Unknown,
    /// This instance holds the Lease.
    Leader,
    /// Another instance (or nobody, after a step-down) holds it.
    Follower {
        /// The holder, if known.
        holder: Option<String>,
    },
}

/// A read-only view of the leader state.
#[derive(Debug, Clone)]
pub struct LeaderHandle {
    rx: watch::Receiver<LeaderState>,
    // Keeps the channel open for `always()`.
    _keep: Option<std::sync::Arc<watch::Sender<LeaderState>>>,
}

impl LeaderHandle {
    /// A handle that is always leader (leader election off).
    pub fn always() -> LeaderHandle {
        let (tx, rx) = watch::channel(LeaderState::Leader);
        LeaderHandle {
            rx,
            _keep: Some(std::sync::Arc::new(tx)),
        }
    }

    /// A handle over a channel someone else drives (tests, embedding).
    pub fn from_receiver(rx: watch::Receiver<LeaderState>) -> LeaderHandle {
        LeaderHandle { rx, _keep: None }
    }

    /// Whether this instance may write now.
    pub fn is_leader(&self) -> bool {
        *self.rx.borrow() == LeaderState::Leader
    }

    /// The current state.
    pub fn state(&self) -> LeaderState {
        self.rx.borrow().clone()
    }

    /// A receiver for changes.
    pub fn subscribe(&self) -> watch::Receiver<LeaderState> {
        self.rx.clone()
    }

    /// "Leads now" as a [`burst_istio::WritePermission`], for the multi-cluster router's
    /// start-up convergence.
    pub fn write_permission(&self) -> burst_istio::WritePermission {
        let handle = self.clone();
        std::sync::Arc::new(move || handle.is_leader())
    }
}

/// What the elector last saw of the Lease record.
#[derive(Debug, Clone, PartialEq)]
struct Observed {
    holder: Option<String>,
    renew: Option<String>,
    transitions: Option<i32>,
    duration: Duration,
}

/// Runs the election loop; see the [module docs](self).
pub struct LeaderElector {
    api: Api<Lease>,
    settings: LeaseSettings,
    tx: watch::Sender<LeaderState>,
    observed: Option<(Observed, Instant)>,
    last_renew: Option<Instant>,
}

enum Round {
    Leader,
    Follower(Option<String>),
}

impl LeaderElector {
    /// An elector and the handle to watch it.
    pub fn new(
        client: kube::Client,
        settings: LeaseSettings,
    ) -> Result<(LeaderElector, LeaderHandle), Error> {
        settings.validate()?;
        let (tx, rx) = watch::channel(LeaderState::Unknown);
        Ok((
            LeaderElector {
                api: Api::namespaced(client, &settings.namespace),
                settings,
                tx,
                observed: None,
                last_renew: None,
            },
            LeaderHandle { rx, _keep: None },
        ))
    }

    fn set(&self, state: LeaderState) {
        self.tx.send_if_modified(|s| {
            if *s == state {
                return false;
            }
            match &state {
                LeaderState::Leader => tracing::info!(identity = %self.settings.identity, lease = %self.settings.name, "became leader"),
                LeaderState::Follower { holder } => tracing::info!(identity = %self.settings.identity, holder = ?holder, "following"),
                LeaderState::Unknown => {}
            }
            *s = state;
            true
        });
    }

    fn is_leader(&self) -> bool {
        *self.tx.borrow() == LeaderState::Leader
    }

    /// Runs until `shutdown` completes, then releases the Lease if held.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let call_timeout = self.settings.renew_deadline / 2;
            let round = tokio::time::timeout(call_timeout, self.round()).await;
            match round {
                Ok(Ok(Round::Leader)) => {
                    self.last_renew = Some(Instant::now());
                    self.set(LeaderState::Leader);
                }
                Ok(Ok(Round::Follower(holder))) => {
                    self.last_renew = None;
                    self.set(LeaderState::Follower { holder });
                }
                Ok(Err(e)) => {
                    tracing::warn!(kind = e.kind(), error = %e, "lease round failed");
                    self.after_failure();
                }
                Err(_) => {
                    tracing::warn!(timeout = ?call_timeout, "lease round timed out");
                    self.after_failure();
                }
            }
            // Sleep, but step down the moment the renew deadline passes.
            let wake = Instant::now() + self.settings.retry_period;
            let deadline = match (self.is_leader(), self.last_renew) {
                (true, Some(t)) => (t + self.settings.renew_deadline).min(wake),
                _ => wake,
            };
            tokio::select! {
                _ = &mut shutdown => break,
                _ = tokio::time::sleep_until(deadline) => {}
            }
            self.check_deadline();
        }
        if self.is_leader() {
            // Stop writes before the Lease is given away.
            self.set(LeaderState::Follower { holder: None });
            match tokio::time::timeout(self.settings.retry_period, self.release()).await {
                Ok(Ok(())) => tracing::info!(lease = %self.settings.name, "lease released"),
                Ok(Err(e)) => tracing::warn!(error = %e, "releasing the lease failed"),
                Err(_) => tracing::warn!("releasing the lease timed out"),
            }
        } else {
            self.set(LeaderState::Follower { holder: None });
        }
    }

    fn after_failure(&mut self) {
        if !self.is_leader() && *self.tx.borrow() == LeaderState::Unknown {
            // Still unknown after a failed round: we know we do not lead.
            self.set(LeaderState::Follower { holder: None });
        }
        self.check_deadline();
    }

    fn check_deadline(&mut self) {
        if let (true, Some(t)) = (self.is_leader(), self.last_renew)
            && t.elapsed() >= self.settings.renew_deadline
        {
            tracing::warn!(deadline = ?self.settings.renew_deadline, "could not renew the lease in time; stepping down");
            self.last_renew = None;
            self.set(LeaderState::Follower { holder: None });
        }
    }

    fn now() -> MicroTime {
        MicroTime(Timestamp::now())
    }

    fn duration_seconds(&self) -> i32 {
        i32::try_from(self.settings.lease_duration.as_secs()).unwrap_or(i32::MAX)
    }

    async fn round(&mut self) -> Result<Round, Error> {
        let me = self.settings.identity.clone();
        let name = self.settings.name.clone();
        let existing = self
            .api
            .get_opt(&name)
            .await
            .map_err(|e| Error::kube("get lease", e))?;
        let Some(mut lease) = existing else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(name.clone()),
                    namespace: Some(self.settings.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(me),
                    lease_duration_seconds: Some(self.duration_seconds()),
                    acquire_time: Some(Self::now()),
                    renew_time: Some(Self::now()),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(Round::Leader),
                Err(kube::Error::Api(s)) if s.code == 409 => Ok(Round::Follower(None)),
                Err(e) => Err(Error::kube("create lease", e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        let observed = Observed {
            holder: holder.clone(),
            renew: spec.renew_time.as_ref().map(|t| t.0.to_string()),
            transitions: spec.lease_transitions,
            duration: Duration::from_secs(
                u64::try_from(spec.lease_duration_seconds.unwrap_or(0)).unwrap_or(0),
            ),
        };
        let seen_at = match &self.observed {
            Some((o, at)) if *o == observed => *at,
            _ => Instant::now(),
        };
        self.observed = Some((observed.clone(), seen_at));
        let mine = holder.as_deref() == Some(me.as_str());
        let expired = holder.is_none() || seen_at.elapsed() >= observed.duration;
        if !mine && !expired {
            return Ok(Round::Follower(holder));
        }
        let mut new_spec = spec.clone();
        new_spec.renew_time = Some(Self::now());
        new_spec.lease_duration_seconds = Some(self.duration_seconds());
        if !mine {
            new_spec.holder_identity = Some(me.clone());
            new_spec.acquire_time = Some(Self::now());
            new_spec.lease_transitions =
                Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        lease.spec = Some(new_spec);
        match self
            .api
            .replace(&name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                if !mine {
                    tracing::info!(identity = %me, previous = ?holder, "acquired the lease");
                }
                Ok(Round::Leader)
            }
            Err(kube::Error::Api(s)) if s.code == 409 => {
                // Someone else wrote first: whoever it was, we do not lead now.
                Ok(Round::Follower(None))
            }
            Err(e) => Err(Error::kube("update lease", e)),
        }
    }

    async fn release(&self) -> Result<(), Error> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.settings.name)
            .await
            .map_err(|e| Error::kube("get lease", e))?
        else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(Self::now());
        lease.spec = Some(spec);
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map_err(|e| Error::kube("release lease", e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let s = LeaseSettings::new("burst-system", "pod-a");
        assert!(s.validate().is_ok());
        let bad = LeaseSettings {
            renew_deadline: Duration::from_secs(20),
            ..s.clone()
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("renew deadline")
        );
        let bad = LeaseSettings {
            identity: String::new(),
            ..s.clone()
        };
        assert!(bad.validate().is_err());
        let bad = LeaseSettings {
            lease_duration: Duration::from_millis(15_500),
            ..s
        };
        assert!(bad.validate().is_err());
    }

    #[test]
    fn always_is_leader() {
        let h = LeaderHandle::always();
        assert!(h.is_leader());
        assert_eq!(h.state(), LeaderState::Leader);
    }
}
