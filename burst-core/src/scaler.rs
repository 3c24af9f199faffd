//! Pre-warming: the [`CapacityScaler`] capability and the pure [`PrewarmState`] machine.
//!
//! A burst side that starts small takes time to grow (pods: tens of seconds; VMs: minutes).
//! Pre-warming asks it to grow *before* the traffic arrives: when the [forecast](crate::forecast)
//! says the demand will cross the trigger within `lead`, the controller calls
//! [`CapacityScaler::prepare`]; `hold` after the last time it was needed (traffic on burst,
//! or a crossing forecast), it calls [`CapacityScaler::release`].
//!
//! [`PrewarmState`] decides when, from the [`Outlook`], whether traffic is on burst, and the
//! time passed in. It never asks for a release while traffic is on burst, nor sooner than
//! `hold` after the last need; an action is repeated on the next step until the caller
//! [confirms](PrewarmState::confirm) it, so a failed call is retried. [`Prewarm`] holds a
//! forecaster, the state and the trigger, and does one tick's forecast, decision and call.
//!
//! ```
//! use burst_core::forecast::Outlook;
//! use burst_core::scaler::{PrewarmAction, PrewarmSettings, PrewarmState};
//! use burst_core::Timestamp;
//! use std::time::Duration;
//!
//! let settings = PrewarmSettings::try_new(Duration::from_secs(60), Duration::from_secs(300))?;
//! let mut state = PrewarmState::new(settings);
//! let at = |s| Timestamp::from_duration(Duration::from_secs(s));
//! let rising = Outlook::Crossing { now: 12.0, after: Duration::from_secs(40), at_lead: 18.0 };
//! let calm = Outlook::Below { now: 4.0, at_lead: 4.0 };
//!
//! let Some(action @ PrewarmAction::Prepare(_)) = state.step(&rising, false, at(0)) else {
//!     panic!("expected a prepare");
//! };
//! state.confirm(&action); // the scaler's prepare() succeeded
//! assert_eq!(state.step(&calm, true, at(100)), None); // on burst: held
//! assert_eq!(state.step(&calm, false, at(399)), None); // 299 s after the last burst
//! assert!(matches!(state.step(&calm, false, at(400)), Some(PrewarmAction::Release { .. })));
//! # Ok::<(), burst_core::Error>(())
//! ```

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;

use crate::forecast::{ForecastMethod, Forecaster, Outlook};
use crate::{Error, Rate, ScalerError, Timestamp};

/// Something that can grow the burst side ahead of the traffic, and let it shrink again.
///
/// Both calls are idempotent: preparing a prepared side, or releasing one that is not
/// prepared, changes nothing and succeeds. On error, nothing may be left half-done.
///
/// Implementations: `burst_scale::KubeScaler` (a Deployment's HPA `minReplicas`, or its
/// replicas), `burst_core::testing::MemoryScaler` (feature `test-util`).
#[async_trait]
pub trait CapacityScaler: Send + Sync {
    /// Grows the burst side to its pre-warm size, for the reason given.
    async fn prepare(&self, why: &PrewarmReason) -> Result<(), ScalerError>;

    /// Gives the burst side back to its own scaling (restores what `prepare` changed).
    async fn release(&self) -> Result<(), ScalerError>;

    /// A short description for logs and status (e.g. `HPA burst/worker minReplicas → 5`).
    fn describe(&self) -> String;
}

/// Why the burst side is being prepared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrewarmReason {
    /// The forecast crosses the trigger within the lead time.
    Forecast(Outlook),
    /// Traffic is on burst now (prepare if not yet done, e.g. the forecast missed a jump).
    OnBurst,
}

/// When to prepare and release: validated `lead` and `hold`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrewarmSettings {
    lead: Duration,
    hold: Duration,
}

/// What the controller should ask the [`CapacityScaler`] to do now.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PrewarmAction {
    /// Call [`CapacityScaler::prepare`] with this reason.
    Prepare(PrewarmReason),
    /// Call [`CapacityScaler::release`]: nothing needed the burst side for `idle_for`.
    Release {
        /// Time since the last need (at least `hold`).
        idle_for: Duration,
    },
}

/// The pre-warm decision, pure: feed it each tick's outlook, whether traffic is on burst,
/// and the time. See the [module docs](self).
#[derive(Debug, Clone, PartialEq)]
pub struct PrewarmState {
    settings: PrewarmSettings,
    /// Last time the burst side was needed (on burst, or a crossing forecast).
    last_need: Option<Timestamp>,
    /// A prepare was asked for since the last confirmed release (it may have taken effect
    /// even if the call reported an error, so a release is owed).
    owed_release: bool,
    /// The last prepare was confirmed.
    prepared: bool,
}

/// Forecaster, [`PrewarmState`] and trigger together: what a controller holds to pre-warm.
///
/// Each tick: [`tick`](Self::tick) with the demand measured (if any), whether traffic is on
/// burst, the scaler and the time; it forecasts, decides, calls the scaler (with a timeout)
/// and confirms on success. [`plan`](Self::plan) and [`confirm`](Self::confirm) are the
/// same steps without IO, for the simulator.
#[derive(Debug, Clone)]
pub struct Prewarm {
    forecaster: Forecaster,
    state: PrewarmState,
    trigger: Rate,
}

/// What one pre-warm tick saw and did, for decisions, status, Events and metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct PrewarmReport {
    /// The forecast for the trigger within the lead time.
    pub outlook: Outlook,
    /// The action due, if any.
    pub action: Option<PrewarmAction>,
    /// The scaler's answer to it (`None` when there was no action).
    pub result: Option<Result<(), ScalerError>>,
    /// Whether the burst side is prepared after the tick.
    pub prepared: bool,
}

impl fmt::Display for PrewarmReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrewarmReason::Forecast(o) => write!(f, "forecast: {o}"),
            PrewarmReason::OnBurst => f.write_str("traffic is on burst"),
        }
    }
}

impl PrewarmReason {
    /// A short, stable label for metrics and Events (`forecast`, `on_burst`).
    pub fn kind(&self) -> &'static str {
        match self {
            PrewarmReason::Forecast(_) => "forecast",
            PrewarmReason::OnBurst => "on_burst",
        }
    }
}

impl fmt::Display for PrewarmAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrewarmAction::Prepare(why) => write!(f, "prewarm ({why})"),
            PrewarmAction::Release { idle_for } => write!(
                f,
                "release (not needed for {})",
                humantime::format_duration(Duration::from_secs(idle_for.as_secs()))
            ),
        }
    }
}

impl PrewarmSettings {
    /// `lead`: how far ahead to look (above zero, e.g. the burst side's start-up time plus
    /// a margin). `hold`: how long after the last need to keep it (zero releases at once).
    pub fn try_new(lead: Duration, hold: Duration) -> Result<Self, Error> {
        if lead.is_zero() {
            return Err(Error::InvalidSetting {
                key: "prewarm.lead",
                message: "must be longer than 0s: the time the burst side takes to grow, plus a margin (e.g. 90s)".into(),
            });
        }
        Ok(PrewarmSettings { lead, hold })
    }

    /// How far ahead the forecast looks.
    pub const fn lead(self) -> Duration {
        self.lead
    }

    /// How long the burst side stays prepared after the last need.
    pub const fn hold(self) -> Duration {
        self.hold
    }
}

impl PrewarmState {
    /// A state with nothing prepared.
    pub const fn new(settings: PrewarmSettings) -> Self {
        PrewarmState {
            settings,
            last_need: None,
            owed_release: false,
            prepared: false,
        }
    }

    /// The settings.
    pub const fn settings(&self) -> PrewarmSettings {
        self.settings
    }

    /// Whether the last prepare was confirmed and no release has been since.
    pub const fn is_prepared(&self) -> bool {
        self.prepared
    }

    /// The last time the burst side was needed.
    pub const fn last_need(&self) -> Option<Timestamp> {
        self.last_need
    }

    /// The action due `now`, if any. `outlook` should be the forecast for the trigger and
    /// [`PrewarmSettings::lead`]; `on_burst` whether any traffic goes to burst now.
    ///
    /// An action returned and not [confirmed](Self::confirm) is returned again on the next
    /// step while it is still due (a failed call is retried).
    pub fn step(
        &mut self,
        outlook: &Outlook,
        on_burst: bool,
        now: Timestamp,
    ) -> Option<PrewarmAction> {
        let forecast_need = match outlook {
            Outlook::Crossing { after, .. } => *after <= self.settings.lead,
            Outlook::Below { .. } | Outlook::Unknown { .. } => false,
        };
        if on_burst || forecast_need {
            // A clock that runs backwards must not move the last need back.
            self.last_need = Some(self.last_need.map_or(now, |t| t.max(now)));
            if self.prepared {
                return None;
            }
            self.owed_release = true;
            let why = if forecast_need {
                PrewarmReason::Forecast(*outlook)
            } else {
                PrewarmReason::OnBurst
            };
            return Some(PrewarmAction::Prepare(why));
        }
        if !self.owed_release {
            return None;
        }
        let idle_for = now.saturating_since(self.last_need.unwrap_or(now));
        (idle_for >= self.settings.hold).then_some(PrewarmAction::Release { idle_for })
    }

    /// Records that `action` succeeded.
    pub fn confirm(&mut self, action: &PrewarmAction) {
        match action {
            PrewarmAction::Prepare(_) => {
                self.prepared = true;
                self.owed_release = true;
            }
            PrewarmAction::Release { .. } => {
                self.prepared = false;
                self.owed_release = false;
            }
        }
    }

    /// Records that the burst side is prepared without a call from this state: a restarted
    /// controller that found its scaler prepared, and keeps it so until `hold` after `now`.
    pub fn assume_prepared(&mut self, now: Timestamp) {
        self.prepared = true;
        self.owed_release = true;
        self.last_need = Some(self.last_need.map_or(now, |t| t.max(now)));
    }
}

impl Prewarm {
    /// Pre-warming with `method`, `settings`, towards `trigger` (the policy's high
    /// threshold, say). Forecasts from samples older than `stale_after` are not trusted.
    pub fn try_new(
        method: ForecastMethod,
        settings: PrewarmSettings,
        trigger: Rate,
        stale_after: Duration,
    ) -> Result<Self, Error> {
        Ok(Prewarm {
            forecaster: Forecaster::try_new(method, stale_after)?,
            state: PrewarmState::new(settings),
            trigger,
        })
    }

    /// The state machine (e.g. to [`assume_prepared`](PrewarmState::assume_prepared)).
    pub fn state_mut(&mut self) -> &mut PrewarmState {
        &mut self.state
    }

    /// Whether the burst side is prepared.
    pub fn is_prepared(&self) -> bool {
        self.state.is_prepared()
    }

    /// Feeds `demand` (when measured) to the forecaster and returns the outlook and the
    /// action due. Pure.
    pub fn plan(
        &mut self,
        demand: Option<Rate>,
        on_burst: bool,
        now: Timestamp,
    ) -> (Outlook, Option<PrewarmAction>) {
        if let Some(d) = demand {
            self.forecaster.observe(now, d);
        }
        let outlook = self
            .forecaster
            .outlook(self.trigger, self.state.settings().lead(), now);
        let action = self.state.step(&outlook, on_burst, now);
        (outlook, action)
    }

    /// Records that `action` succeeded.
    pub fn confirm(&mut self, action: &PrewarmAction) {
        self.state.confirm(action);
    }

    /// [`plan`](Self::plan), then the call to `scaler` (at most `timeout`), then
    /// [`confirm`](Self::confirm) if it succeeded. A failed call is retried next tick.
    pub async fn tick(
        &mut self,
        scaler: &(impl CapacityScaler + ?Sized),
        demand: Option<Rate>,
        on_burst: bool,
        now: Timestamp,
        timeout: Duration,
    ) -> PrewarmReport {
        let (outlook, action) = self.plan(demand, on_burst, now);
        let result = match &action {
            None => None,
            Some(a) => {
                let call = async {
                    match a {
                        PrewarmAction::Prepare(why) => scaler.prepare(why).await,
                        PrewarmAction::Release { .. } => scaler.release().await,
                    }
                };
                let r = match tokio::time::timeout(timeout, call).await {
                    Ok(r) => r,
                    Err(_) => Err(ScalerError::timeout(&scaler.describe(), timeout)),
                };
                match &r {
                    Ok(()) => {
                        tracing::info!(scaler = %scaler.describe(), action = %a, "pre-warm action done");
                        self.confirm(a);
                    }
                    Err(e) => {
                        tracing::warn!(scaler = %scaler.describe(), action = %a, kind = e.kind(), error = %e, "pre-warm action failed; retried next tick");
                    }
                }
                Some(r)
            }
        };
        PrewarmReport {
            outlook,
            action,
            result,
            prepared: self.state.is_prepared(),
        }
    }
}

#[async_trait]
impl<T: CapacityScaler + ?Sized> CapacityScaler for std::sync::Arc<T> {
    async fn prepare(&self, why: &PrewarmReason) -> Result<(), ScalerError> {
        (**self).prepare(why).await
    }
    async fn release(&self) -> Result<(), ScalerError> {
        (**self).release().await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

#[async_trait]
impl<T: CapacityScaler + ?Sized> CapacityScaler for Box<T> {
    async fn prepare(&self, why: &PrewarmReason) -> Result<(), ScalerError> {
        (**self).prepare(why).await
    }
    async fn release(&self) -> Result<(), ScalerError> {
        (**self).release().await
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn at(s: u64) -> Timestamp {
        Timestamp::from_duration(Duration::from_secs(s))
    }

    fn settings(lead: u64, hold: u64) -> PrewarmSettings {
        PrewarmSettings::try_new(Duration::from_secs(lead), Duration::from_secs(hold)).unwrap()
    }

    const CALM: Outlook = Outlook::Below {
        now: 1.0,
        at_lead: 1.0,
    };

    fn rising(after: u64) -> Outlook {
        Outlook::Crossing {
            now: 10.0,
            after: Duration::from_secs(after),
            at_lead: 20.0,
        }
    }

    #[test]
    fn zero_lead_is_rejected_with_the_key() {
        let e = PrewarmSettings::try_new(Duration::ZERO, Duration::ZERO).unwrap_err();
        assert!(e.to_string().contains("prewarm.lead"), "{e}");
        assert!(PrewarmSettings::try_new(Duration::from_secs(1), Duration::ZERO).is_ok());
    }

    #[test]
    fn an_unconfirmed_prepare_is_repeated_and_still_released() {
        let mut s = PrewarmState::new(settings(60, 10));
        let a = s.step(&rising(30), false, at(0)).unwrap();
        assert_eq!(
            a,
            PrewarmAction::Prepare(PrewarmReason::Forecast(rising(30)))
        );
        // The call failed: asked again.
        assert_eq!(
            s.step(&rising(29), false, at(1)),
            Some(PrewarmAction::Prepare(PrewarmReason::Forecast(rising(29))))
        );
        assert!(!s.is_prepared());
        // The need is gone before it was confirmed: it may have taken effect, so release.
        assert_eq!(s.step(&CALM, false, at(5)), None);
        assert_eq!(
            s.step(&CALM, false, at(11)),
            Some(PrewarmAction::Release {
                idle_for: Duration::from_secs(10)
            })
        );
        s.confirm(&PrewarmAction::Release {
            idle_for: Duration::from_secs(10),
        });
        assert_eq!(s.step(&CALM, false, at(100)), None);
    }

    #[test]
    fn burst_without_a_forecast_prepares_too() {
        let mut s = PrewarmState::new(settings(60, 10));
        let unknown = Outlook::Unknown { reason: "x" };
        assert_eq!(s.step(&unknown, false, at(0)), None);
        let a = s.step(&unknown, true, at(1)).unwrap();
        assert_eq!(a, PrewarmAction::Prepare(PrewarmReason::OnBurst));
        assert_eq!(a.to_string(), "prewarm (traffic is on burst)");
        s.confirm(&a);
        assert!(s.is_prepared());
        assert_eq!(s.step(&unknown, true, at(2)), None);
    }

    #[test]
    fn a_crossing_beyond_the_lead_is_not_a_need() {
        let mut s = PrewarmState::new(settings(30, 10));
        assert_eq!(s.step(&rising(31), false, at(0)), None);
        assert!(s.step(&rising(30), false, at(1)).is_some());
    }

    #[test]
    fn assume_prepared_holds_then_releases() {
        let mut s = PrewarmState::new(settings(30, 10));
        s.assume_prepared(at(100));
        assert!(s.is_prepared());
        assert_eq!(s.step(&CALM, false, at(109)), None);
        assert!(matches!(
            s.step(&CALM, false, at(110)),
            Some(PrewarmAction::Release { .. })
        ));
    }

    #[tokio::test]
    async fn prewarm_ticks_forecast_call_and_confirm() {
        use crate::testing::{MemoryScaler, ScalerCall};
        let scaler = MemoryScaler::new();
        let mut p = Prewarm::try_new(
            ForecastMethod::default(),
            settings(30, 10),
            Rate::try_new("trigger", 15.0).unwrap(),
            Duration::from_secs(30),
        )
        .unwrap();
        let t = Duration::from_secs(1);
        let rps = |v| Some(Rate::try_new("rps", v).unwrap());
        // Flat at 5: nothing. Rising 1 rps/s from 5: a crossing of 15 within 30 s.
        for s in 0..5 {
            let r = p.tick(&scaler, rps(5.0), false, at(s), t).await;
            assert_eq!(r.action, None, "{r:?}");
        }
        scaler.fail_next_prepare(ScalerError::new("server", "500"));
        let mut reports = Vec::new();
        for s in 5..12 {
            reports.push(p.tick(&scaler, rps(s as f64), false, at(s), t).await);
        }
        let first = reports.iter().find(|r| r.action.is_some()).unwrap();
        assert!(first.outlook.is_crossing());
        assert_eq!(
            first.result.as_ref().unwrap().as_ref().unwrap_err().kind(),
            "server"
        );
        assert!(p.is_prepared());
        assert!(scaler.is_prepared());
        // No data for a while: the forecast goes stale, the hold runs out, released.
        let r = p.tick(&scaler, None, false, at(60), t).await;
        assert!(
            matches!(r.action, Some(PrewarmAction::Release { .. })),
            "{r:?}"
        );
        assert!(!scaler.is_prepared());
        assert_eq!(
            scaler
                .calls()
                .iter()
                .filter(|c| matches!(c, ScalerCall::Prepare { ok: true, .. }))
                .count(),
            1
        );
    }

    fn outlook() -> impl Strategy<Value = Outlook> {
        prop_oneof![
            Just(Outlook::Unknown { reason: "none" }),
            Just(CALM),
            (0u64..120).prop_map(rising),
        ]
    }

    proptest! {
        /// Over any run (forecasts, bursts, failed calls, uneven time steps): never a
        /// release while traffic is on burst, never one sooner than `hold` after the last
        /// burst, and a prepare is always followed, once nothing needs it, by a release.
        #[test]
        fn released_only_hold_after_the_last_burst_and_never_on_burst(
            lead in 1u64..120,
            hold in 0u64..300,
            ticks in prop::collection::vec((outlook(), any::<bool>(), 0u64..20, any::<bool>()), 1..200),
        ) {
            let mut s = PrewarmState::new(settings(lead, hold));
            let mut now = 0u64;
            let mut last_burst: Option<u64> = None;
            let mut maybe_prepared = false;
            for (o, on_burst, dt, call_ok) in ticks {
                now += dt;
                if on_burst {
                    last_burst = Some(now);
                }
                match s.step(&o, on_burst, at(now)) {
                    Some(a @ PrewarmAction::Release { idle_for }) => {
                        prop_assert!(!on_burst, "released while on burst");
                        prop_assert!(idle_for >= Duration::from_secs(hold));
                        if let Some(b) = last_burst {
                            prop_assert!(now - b >= hold, "released {}s after the last burst, hold {hold}s", now - b);
                        }
                        prop_assert!(maybe_prepared, "released what was never prepared");
                        if call_ok {
                            s.confirm(&a);
                            maybe_prepared = false;
                        }
                    }
                    Some(a @ PrewarmAction::Prepare(_)) => {
                        prop_assert!(!s.is_prepared());
                        maybe_prepared = true;
                        if call_ok {
                            s.confirm(&a);
                        }
                    }
                    None => {
                        if on_burst {
                            prop_assert!(s.is_prepared(), "on burst but neither prepared nor asked to");
                        }
                    }
                }
            }
            // Calm from here on: the release comes exactly `hold` after the last need.
            if maybe_prepared {
                let need = s.last_need().unwrap().as_duration().as_secs();
                let later = need.max(now) + hold;
                let a = s.step(&CALM, false, at(later));
                prop_assert!(matches!(a, Some(PrewarmAction::Release { .. })), "{a:?}");
            }
        }
    }
}
