//! The control loop: measure, decide, apply, on a fixed tick.
//!
//! A [`Controller`] owns a [`MetricSource`], a [`Policy`] and a [`TrafficRouter`]. On start
//! it reads the split really in effect (it never assumes one). Each tick it measures (with a
//! timeout), reads the route again (to notice drift), asks the policy, and applies only when
//! the desired split differs from the one in effect. When an apply fails, the controller's
//! belief stays what is really applied, and it retries with capped exponential backoff.
//!
//! Every tick is reported to a [`TickObserver`] (logs, metrics, status).
//!
//! With [`Controller::with_prewarm`], each tick also feeds the measured demand (the short
//! window's rate) to a [`Prewarm`] and lets it prepare or release the burst side through a
//! [`CapacityScaler`] (see [`crate::scaler`]); the report is in [`TickReport::prewarm`].
//! Traffic counts as "on burst" for it when the split in effect or the one decided sends
//! more than the probe weight ([`Controller::with_prewarm_probe`]) to burst.
//!
//! Size: About 490 lines of code (one loop: start, tick, backoff, drift, pre-warm, observers) and ~325 lines of its unit tests, kept beside the loop they pin down.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::{Instant, MissedTickBehavior, timeout};

use crate::policy::{Decision, Policy, Signal};
use crate::scaler::{Prewarm, PrewarmReport};
use crate::{
    CapacityScaler, MetricSource, RouterError, SourceError, Split, Timestamp, TrafficRouter, Weight,
};

/// Timing settings of a [`Controller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ControllerConfig {
    /// Decision interval.
    pub tick: Duration,
    /// Longest wait for one measurement; a timeout counts as a source error.
    pub source_timeout: Duration,
    /// Longest wait for one router call (read or apply).
    pub router_timeout: Duration,
    /// First retry delay after a failed apply or start-up read.
    pub backoff_initial: Duration,
    /// Cap of the retry delay.
    pub backoff_max: Duration,
    /// Decide and report, but never apply.
    pub dry_run: bool,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        ControllerConfig {
            tick: Duration::from_secs(1),
            source_timeout: Duration::from_secs(5),
            router_timeout: Duration::from_secs(10),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            dry_run: false,
        }
    }
}

/// What happened to the route on one tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The desired split was already in effect.
    Unchanged,
    /// The split was changed.
    Applied {
        /// Split before.
        from: Split,
        /// Split now.
        to: Split,
    },
    /// Applying failed; the split in effect is unchanged.
    Failed {
        /// The split that could not be applied.
        to: Split,
        /// Why: a stable `kind()` label, and the router's typed error inside.
        error: RouterError,
        /// Delay before the next attempt.
        retry_in: Duration,
    },
    /// A change is wanted, but a previous failure's backoff has not elapsed.
    BackingOff {
        /// The split wanted.
        to: Split,
        /// Time left before the next attempt.
        retry_in: Duration,
    },
    /// Dry run: the split that would have been applied.
    DryRun {
        /// Split in effect.
        from: Split,
        /// Split the policy wants.
        to: Split,
    },
}

/// Everything about one tick, for observers.
#[derive(Debug, Clone, PartialEq)]
pub struct TickReport {
    /// When the tick started.
    pub at: Timestamp,
    /// What the source gave.
    pub signal: Signal,
    /// The policy's decision and reason.
    pub decision: Decision,
    /// The split read from the router this tick, if the read worked.
    pub actual: Option<Split>,
    /// The read error, if the read failed (the router's typed error inside).
    pub read_error: Option<RouterError>,
    /// The split found in effect when it differed from what this controller had applied.
    pub drift: Option<Split>,
    /// What was done to the route.
    pub outcome: Outcome,
    /// What the controller believes is in effect after the tick.
    pub belief: Split,
    /// How long the tick took.
    pub elapsed: Duration,
    /// The pre-warm's forecast, action and result (`None` without pre-warming).
    pub prewarm: Option<PrewarmReport>,
}

/// Receives every [`TickReport`].
pub trait TickObserver: Send {
    /// Called after each tick.
    fn on_tick(&mut self, report: &TickReport);

    /// Called when the start-up read of the route fails (the controller retries).
    fn on_start_error(&mut self, _error: &RouterError) {}
}

impl<F: FnMut(&TickReport) + Send> TickObserver for F {
    fn on_tick(&mut self, report: &TickReport) {
        self(report)
    }
}

/// An observer that does nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoObserver;

impl TickObserver for NoObserver {
    fn on_tick(&mut self, _report: &TickReport) {}
}

/// How the loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Ticks run.
    pub ticks: u64,
    /// What the controller believed was in effect at the end (`None` if it never started).
    pub belief: Option<Split>,
}

/// Wires a source, a policy and a router. See the [module docs](self).
pub struct Controller<S, P, R> {
    source: S,
    policy: P,
    router: R,
    config: ControllerConfig,
    // A Mutex makes the controller Sync (so `run` can be spawned) without asking observers to be.
    observer: std::sync::Mutex<Box<dyn TickObserver>>,
    clock: Clock,
    state: Option<State>,
    prewarm: Option<PrewarmLoop>,
}

/// The pre-warm part of a controller: the decision, the scaler, and the burst weight that
/// does not count as traffic on burst (a warm-up probe).
struct PrewarmLoop {
    prewarm: Prewarm,
    scaler: Box<dyn CapacityScaler>,
    probe: Weight,
}

#[derive(Debug, Clone, Copy)]
struct State {
    belief: Split,
    /// Whether the last router write is known to have worked (a differing read is drift).
    trusted: bool,
    failures: u32,
    next_attempt: Option<Timestamp>,
}

/// Monotonic time anchored at the wall clock once, so tokio's paused time drives it in tests.
#[derive(Debug, Clone, Copy)]
struct Clock {
    origin: Instant,
    wall: Duration,
}

impl<S: MetricSource, P: Policy, R: TrafficRouter> Controller<S, P, R> {
    /// A controller; call [`run`](Self::run), or [`start`](Self::start) then
    /// [`tick`](Self::tick) to drive it yourself.
    pub fn new(source: S, policy: P, router: R, config: ControllerConfig) -> Self {
        Controller {
            source,
            policy,
            router,
            config,
            observer: std::sync::Mutex::new(Box::new(NoObserver)),
            clock: Clock {
                origin: Instant::now(),
                wall: SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default(),
            },
            state: None,
            prewarm: None,
        }
    }

    /// Pre-warms the burst side through `scaler` as `prewarm` decides, every tick (the
    /// scaler's calls get the router timeout). In a dry run the actions are reported but
    /// never called.
    pub fn with_prewarm(mut self, prewarm: Prewarm, scaler: Box<dyn CapacityScaler>) -> Self {
        self.prewarm = Some(PrewarmLoop {
            prewarm,
            scaler,
            probe: Weight::ZERO,
        });
        self
    }

    /// A burst weight up to `probe` (a warm-up's probe share) does not count as traffic on
    /// burst for pre-warming, so a probe alone never keeps the burst side prepared.
    pub fn with_prewarm_probe(mut self, probe: Weight) -> Self {
        if let Some(p) = &mut self.prewarm {
            p.probe = probe;
        }
        self
    }

    /// Records that the burst side was found prepared at start-up (e.g. a scaler that
    /// recovered a previous run's pre-warm): it is kept until `hold` after `now`.
    pub fn assume_prewarmed(&mut self) {
        let now = self.now();
        if let Some(p) = &mut self.prewarm {
            p.prewarm.state_mut().assume_prepared(now);
        }
    }

    /// Whether pre-warming is on and the burst side is prepared.
    pub fn is_prewarmed(&self) -> bool {
        self.prewarm
            .as_ref()
            .is_some_and(|p| p.prewarm.is_prepared())
    }

    /// Sets the observer that receives every tick report.
    pub fn with_observer(mut self, observer: impl TickObserver + 'static) -> Self {
        self.observer = std::sync::Mutex::new(Box::new(observer));
        self
    }

    /// The router.
    pub fn router(&self) -> &R {
        &self.router
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// What the controller believes is in effect (`None` before start).
    pub fn belief(&self) -> Option<Split> {
        self.state.map(|s| s.belief)
    }

    fn observe(&self, f: impl FnOnce(&mut dyn TickObserver)) {
        f(crate::lock(&self.observer).as_mut());
    }

    fn now(&self) -> Timestamp {
        Timestamp::from_duration(self.clock.wall + self.clock.origin.elapsed())
    }

    /// Reads the split in effect and takes it as the starting point.
    pub async fn start(&mut self) -> Result<Split, RouterError> {
        let split = self.read_route().await?;
        tracing::info!(router = %self.router.describe(), split = %split, "read the split in effect");
        self.state = Some(State {
            belief: split,
            trusted: true,
            failures: 0,
            next_attempt: None,
        });
        Ok(split)
    }

    async fn read_route(&self) -> Result<Split, RouterError> {
        match timeout(self.config.router_timeout, self.router.current()).await {
            Ok(r) => r,
            Err(_) => Err(RouterError::timeout(
                &format!("reading {}", self.router.describe()),
                self.config.router_timeout,
            )),
        }
    }

    async fn measure(&self) -> Signal {
        match timeout(self.config.source_timeout, self.source.observe()).await {
            Ok(Ok(reading)) => Signal::from(reading),
            Ok(Err(e)) => Signal::Error(e),
            Err(_) => Signal::Error(SourceError::timeout(
                &self.source.describe(),
                self.config.source_timeout,
            )),
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let exp = failures.saturating_sub(1).min(20);
        self.config
            .backoff_initial
            .saturating_mul(1u32 << exp)
            .min(self.config.backoff_max)
    }

    /// Runs one tick. Starts first if [`start`](Self::start) has not succeeded yet; if that
    /// read fails, the error is returned and nothing else happens.
    pub async fn tick(&mut self) -> Result<TickReport, RouterError> {
        let started = Instant::now();
        let mut state = match self.state {
            Some(s) => s,
            None => {
                self.start().await?;
                self.state
                    .ok_or_else(|| RouterError::new("internal", "start left no state"))?
            }
        };
        let now = self.now();
        let signal = self.measure().await;

        let (actual, read_error) = match self.read_route().await {
            Ok(split) => (Some(split), None),
            Err(e) => {
                tracing::warn!(router = %self.router.describe(), kind = e.kind(), error = %e, "reading the route failed");
                (None, Some(e))
            }
        };
        let mut drift = None;
        if let Some(a) = actual.filter(|a| *a != state.belief) {
            if state.trusted && !self.config.dry_run {
                tracing::warn!(router = %self.router.describe(), applied = %state.belief, found = %a, "route drifted from the applied split");
                drift = Some(a);
            } else {
                state.belief = a;
            }
        }

        let decision = self.policy.decide(&signal, state.belief, now);
        let in_effect = actual.unwrap_or(state.belief);
        let to = decision.desired;
        let outcome = if to == in_effect {
            Outcome::Unchanged
        } else if self.config.dry_run {
            tracing::info!(router = %self.router.describe(), from = %in_effect, to = %to, reason = %decision.reason, "dry run: would apply");
            Outcome::DryRun {
                from: in_effect,
                to,
            }
        } else if let Some(left) = state
            .next_attempt
            .map(|t| t.saturating_since(now))
            .filter(|d| !d.is_zero())
        {
            Outcome::BackingOff { to, retry_in: left }
        } else {
            self.apply(&mut state, in_effect, to, now).await
        };
        state.belief = match &outcome {
            Outcome::Applied { to, .. } => *to,
            // The route drifted to exactly what the policy now wants: that is the truth.
            Outcome::Unchanged => actual.unwrap_or(state.belief),
            _ => state.belief,
        };
        self.state = Some(state);
        let prewarm = self
            .prewarm_tick(&signal, [in_effect, decision.desired, state.belief], now)
            .await;
        let report = TickReport {
            at: now,
            signal,
            decision,
            actual,
            read_error,
            drift,
            outcome,
            belief: state.belief,
            elapsed: started.elapsed(),
            prewarm,
        };
        self.observe(|o| o.on_tick(&report));
        Ok(report)
    }

    async fn prewarm_tick(
        &mut self,
        signal: &Signal,
        splits: [Split; 3],
        now: Timestamp,
    ) -> Option<PrewarmReport> {
        let p = self.prewarm.as_mut()?;
        let demand = signal.rates().map(|r| r.up);
        let on_burst = splits.iter().any(|s| s.burst() > p.probe);
        if self.config.dry_run {
            let (outlook, action) = p.prewarm.plan(demand, on_burst, now);
            if let Some(a) = &action {
                tracing::info!(scaler = %p.scaler.describe(), action = %a, "dry run: would pre-warm");
            }
            return Some(PrewarmReport {
                outlook,
                action,
                result: None,
                prepared: p.prewarm.is_prepared(),
            });
        }
        let report = p
            .prewarm
            .tick(&p.scaler, demand, on_burst, now, self.config.router_timeout)
            .await;
        Some(report)
    }

    async fn apply(&self, state: &mut State, from: Split, to: Split, now: Timestamp) -> Outcome {
        let result = match timeout(self.config.router_timeout, self.router.apply(to)).await {
            Ok(r) => r,
            Err(_) => Err(RouterError::timeout(
                &format!("applying to {}", self.router.describe()),
                self.config.router_timeout,
            )),
        };
        match result {
            Ok(()) => {
                tracing::info!(router = %self.router.describe(), from = %from, to = %to, "applied split");
                state.trusted = true;
                state.failures = 0;
                state.next_attempt = None;
                Outcome::Applied { from, to }
            }
            Err(e) => {
                state.failures = state.failures.saturating_add(1);
                let retry_in = self.backoff(state.failures);
                state.next_attempt = Some(now.saturating_add(retry_in));
                // The write may or may not have landed (a timeout): re-read before judging drift.
                state.trusted = false;
                tracing::warn!(router = %self.router.describe(), to = %to, kind = e.kind(), error = %e, retry_in = ?retry_in, "applying the split failed");
                Outcome::Failed {
                    to,
                    error: e,
                    retry_in,
                }
            }
        }
    }

    /// Runs until `shutdown` completes: reads the route (retrying with backoff), then ticks.
    ///
    /// A tick in progress when `shutdown` fires is finished, so an apply is never cut in half.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Stopped {
        tokio::pin!(shutdown);
        let mut failures = 0u32;
        while self.state.is_none() {
            // Boxed here and below: a tick's futures (source and router requests) are
            // large, and inline they would stay in the loop's task between ticks. Boxed,
            // they exist only while a tick runs (a thousand idle loops: ~20 MB less).
            match Box::pin(self.start()).await {
                Ok(_) => {}
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let delay = self.backoff(failures);
                    tracing::warn!(router = %self.router.describe(), kind = e.kind(), error = %e, retry_in = ?delay, "cannot read the split in effect");
                    self.observe(|o| o.on_start_error(&e));
                    tokio::select! {
                        _ = &mut shutdown => return Stopped { ticks: 0, belief: None },
                        _ = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        let mut interval = tokio::time::interval(self.config.tick);
        interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut ticks = 0u64;
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break,
                _ = interval.tick() => {
                    // Started above, so `tick` cannot fail on the start-up read.
                    if Box::pin(self.tick()).await.is_ok() {
                        ticks += 1;
                    }
                }
            }
        }
        tracing::info!(router = %self.router.describe(), ticks, "controller stopped");
        Stopped {
            ticks,
            belief: self.belief(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{PolicySpec, Rule};
    use crate::testing::{MemoryRouter, MemorySource, Scripted};
    use crate::{Observation, Rate, Rates, Reading};
    use async_trait::async_trait;
    use std::sync::{Arc, Mutex};

    fn value(rps: f64) -> Scripted {
        Scripted::Reading(Reading::Value(Observation::new(
            Rates::single(Rate::try_new("r", rps).unwrap()),
            Timestamp::ZERO,
        )))
    }

    type TestController =
        Controller<Arc<MemorySource>, crate::policy::AnyPolicy, Arc<MemoryRouter>>;

    fn seed_controller(initial: Split) -> (TestController, Arc<MemorySource>, Arc<MemoryRouter>) {
        let src = Arc::new(MemorySource::new());
        let router = Arc::new(MemoryRouter::new(initial));
        let policy = PolicySpec::default().build().unwrap();
        let c = Controller::new(
            src.clone(),
            policy,
            router.clone(),
            ControllerConfig::default(),
        );
        (c, src, router)
    }

    #[tokio::test(start_paused = true)]
    async fn the_policy_sees_the_observations_signals() {
        let src = Arc::new(MemorySource::new());
        let router = Arc::new(MemoryRouter::new(Split::ALL_PRIMARY));
        let policy = PolicySpec {
            triggers: Some(crate::policy::TriggersSpec {
                latency_p99_ms: Some(crate::policy::BandSpec {
                    high: 250.0,
                    low: 150.0,
                }),
                ..crate::policy::TriggersSpec::default()
            }),
            ..PolicySpec::default()
        }
        .build()
        .unwrap();
        let mut c = Controller::new(
            src.clone(),
            policy,
            router.clone(),
            ControllerConfig::default(),
        );
        // 5 rps is far below `high`, but the source's p99 is 400 ms.
        let slow = crate::Signals {
            primary_p99: Some(crate::Millis::try_new("p99", 400.0).unwrap()),
            ..crate::Signals::NONE
        };
        src.set(Scripted::Reading(Reading::Value(
            Observation::new(
                Rates::single(Rate::try_new("r", 5.0).unwrap()),
                Timestamp::ZERO,
            )
            .with_signals(slow),
        )));
        let r = c.tick().await.unwrap();
        assert_eq!(r.decision.reason.rule, Rule::LatencyHigh);
        assert_eq!(r.signal.signals(), slow);
        assert_eq!(router.applied(), vec![Split::ALL_BURST]);
    }

    #[tokio::test(start_paused = true)]
    async fn start_reads_the_real_split() {
        let (mut c, src, router) = seed_controller(Split::ALL_BURST);
        assert_eq!(c.start().await.unwrap(), Split::ALL_BURST);
        // 12 rps is inside the band: a controller that assumed "natural" would do nothing,
        // one that knows it is bursting holds the burst split. Nothing is written either way.
        src.set(value(12.0));
        let r = c.tick().await.unwrap();
        assert_eq!(r.outcome, Outcome::Unchanged);
        assert_eq!(r.belief, Split::ALL_BURST);
        assert!(router.applied().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reads_before_it_writes_and_writes_once() {
        use crate::router::MockTrafficRouter;
        let mut router = MockTrafficRouter::new();
        let mut seq = mockall::Sequence::new();
        router.expect_describe().return_const("mock".to_string());
        // Start-up read, then the tick's drift check, then exactly one apply.
        router
            .expect_current()
            .times(2)
            .in_sequence(&mut seq)
            .returning(|| Ok(Split::ALL_PRIMARY));
        router
            .expect_apply()
            .withf(|s| *s == Split::ALL_BURST)
            .times(1)
            .in_sequence(&mut seq)
            .returning(|_| Ok(()));
        router
            .expect_current()
            .times(1)
            .in_sequence(&mut seq)
            .returning(|| Ok(Split::ALL_BURST));
        let src = MemorySource::new();
        src.set(value(25.0));
        let mut c = Controller::new(
            src,
            PolicySpec::default().build().unwrap(),
            router,
            ControllerConfig::default(),
        );
        assert!(matches!(
            c.tick().await.unwrap().outcome,
            Outcome::Applied { .. }
        ));
        assert_eq!(c.tick().await.unwrap().outcome, Outcome::Unchanged);
    }

    #[tokio::test(start_paused = true)]
    async fn applies_only_on_change_and_reports_reasons() {
        let (mut c, src, router) = seed_controller(Split::ALL_PRIMARY);
        src.set(value(20.0));
        let r = c.tick().await.unwrap();
        assert_eq!(
            r.outcome,
            Outcome::Applied {
                from: Split::ALL_PRIMARY,
                to: Split::ALL_BURST
            }
        );
        assert_eq!(r.decision.reason.rule, Rule::AboveHigh);
        let r = c.tick().await.unwrap();
        assert_eq!(r.outcome, Outcome::Unchanged);
        assert_eq!(router.applied(), vec![Split::ALL_BURST]);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_apply_keeps_belief_and_backs_off() {
        let (mut c, src, router) = seed_controller(Split::ALL_PRIMARY);
        src.set(value(20.0));
        router.fail_next_apply(RouterError::new("conflict", "409"));
        let r = c.tick().await.unwrap();
        assert!(
            matches!(&r.outcome, Outcome::Failed { error, retry_in, .. } if error.kind() == "conflict" && *retry_in == Duration::from_secs(1))
        );
        assert_eq!(r.belief, Split::ALL_PRIMARY);
        assert_eq!(router.split(), Split::ALL_PRIMARY);
        // Next failure doubles the delay.
        tokio::time::advance(Duration::from_secs(1)).await;
        router.fail_next_apply(RouterError::new("server", "500"));
        let r = c.tick().await.unwrap();
        assert!(
            matches!(&r.outcome, Outcome::Failed { retry_in, .. } if *retry_in == Duration::from_secs(2))
        );
        tokio::time::advance(Duration::from_secs(1)).await;
        let r = c.tick().await.unwrap();
        assert!(
            matches!(r.outcome, Outcome::BackingOff { .. }),
            "{:?}",
            r.outcome
        );
        assert!(router.applied().is_empty());
        tokio::time::advance(Duration::from_secs(1)).await;
        let r = c.tick().await.unwrap();
        assert!(matches!(r.outcome, Outcome::Applied { .. }));
        assert_eq!(r.belief, Split::ALL_BURST);
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_is_capped() {
        let (c, _, _) = seed_controller(Split::ALL_PRIMARY);
        assert_eq!(c.backoff(1), Duration::from_secs(1));
        assert_eq!(c.backoff(4), Duration::from_secs(8));
        assert_eq!(c.backoff(7), Duration::from_secs(60));
        assert_eq!(c.backoff(u32::MAX), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn drift_is_repaired() {
        let (mut c, src, router) = seed_controller(Split::ALL_PRIMARY);
        src.set(value(20.0));
        c.tick().await.unwrap();
        router.set_externally(Split::ALL_PRIMARY);
        let r = c.tick().await.unwrap();
        assert_eq!(r.drift, Some(Split::ALL_PRIMARY));
        assert_eq!(
            r.outcome,
            Outcome::Applied {
                from: Split::ALL_PRIMARY,
                to: Split::ALL_BURST
            }
        );
        assert_eq!(router.split(), Split::ALL_BURST);
    }

    #[tokio::test(start_paused = true)]
    async fn drift_to_the_wanted_split_is_adopted() {
        let (mut c, src, router) = seed_controller(Split::ALL_PRIMARY);
        src.set(value(20.0));
        c.tick().await.unwrap();
        // Someone moves traffic back just as the load drops: nothing to write, and the
        // controller believes what is in effect.
        router.set_externally(Split::ALL_PRIMARY);
        src.set(value(1.0));
        let r = c.tick().await.unwrap();
        assert_eq!(r.drift, Some(Split::ALL_PRIMARY));
        assert_eq!(r.outcome, Outcome::Unchanged);
        assert_eq!(r.belief, Split::ALL_PRIMARY);
        assert_eq!(router.applied(), vec![Split::ALL_BURST]);
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_failure_the_read_split_is_believed_not_called_drift() {
        let (mut c, src, router) = seed_controller(Split::ALL_PRIMARY);
        src.set(value(12.0));
        c.tick().await.unwrap();
        router.fail_next_apply(RouterError::new("timeout", "slow"));
        src.set(value(20.0));
        assert!(matches!(
            c.tick().await.unwrap().outcome,
            Outcome::Failed { .. }
        ));
        // The write landed after all (someone else, or a late success).
        router.set_externally(Split::ALL_BURST);
        tokio::time::advance(Duration::from_secs(2)).await;
        let r = c.tick().await.unwrap();
        assert_eq!(r.drift, None);
        assert_eq!(r.belief, Split::ALL_BURST);
        assert_eq!(r.outcome, Outcome::Unchanged);
    }

    #[tokio::test(start_paused = true)]
    async fn source_errors_are_not_zero() {
        let (mut c, src, router) = seed_controller(Split::ALL_PRIMARY);
        src.set(value(20.0));
        c.tick().await.unwrap();
        src.set(Scripted::Error {
            kind: "http",
            message: "connection refused".into(),
        });
        for _ in 0..10 {
            let r = c.tick().await.unwrap();
            assert_eq!(r.decision.reason.rule, Rule::MissingHold);
        }
        assert_eq!(router.split(), Split::ALL_BURST);
    }

    #[tokio::test(start_paused = true)]
    async fn dry_run_never_writes() {
        let (c, src, router) = seed_controller(Split::ALL_PRIMARY);
        let mut c = Controller {
            config: ControllerConfig {
                dry_run: true,
                ..c.config
            },
            ..c
        };
        src.set(value(20.0));
        let r = c.tick().await.unwrap();
        assert_eq!(
            r.outcome,
            Outcome::DryRun {
                from: Split::ALL_PRIMARY,
                to: Split::ALL_BURST
            }
        );
        assert!(router.applied().is_empty());
        // Someone else changes the route: in dry run, that is the new truth, not drift.
        router.set_externally(Split::ALL_BURST);
        let r = c.tick().await.unwrap();
        assert_eq!((r.drift, r.outcome), (None, Outcome::Unchanged));
    }

    /// A source that never answers.
    struct Hanging;
    #[async_trait]
    impl MetricSource for Hanging {
        async fn observe(&self) -> Result<Reading, crate::SourceError> {
            std::future::pending().await
        }
        fn describe(&self) -> String {
            "hanging source".into()
        }
    }

    /// A router whose apply never answers.
    struct SlowRouter(MemoryRouter);
    #[async_trait]
    impl TrafficRouter for SlowRouter {
        async fn current(&self) -> Result<Split, RouterError> {
            self.0.current().await
        }
        async fn apply(&self, _: Split) -> Result<(), RouterError> {
            std::future::pending().await
        }
        fn describe(&self) -> String {
            "slow router".into()
        }
    }

    #[tokio::test(start_paused = true)]
    async fn timeouts_are_enforced() {
        let cfg = ControllerConfig::default();
        let mut c = Controller::new(
            Hanging,
            PolicySpec::default().build().unwrap(),
            MemoryRouter::new(Split::ALL_PRIMARY),
            cfg,
        );
        let t0 = Instant::now();
        let r = c.tick().await.unwrap();
        assert!(matches!(&r.signal, Signal::Error(e) if e.kind() == "timeout"));
        assert_eq!(t0.elapsed(), cfg.source_timeout);

        let src = MemorySource::new();
        src.set(value(30.0));
        let mut c = Controller::new(
            src,
            PolicySpec::default().build().unwrap(),
            SlowRouter(MemoryRouter::new(Split::ALL_PRIMARY)),
            cfg,
        );
        let r = c.tick().await.unwrap();
        assert!(matches!(&r.outcome, Outcome::Failed { error, .. } if error.kind() == "timeout"));
        assert_eq!(r.belief, Split::ALL_PRIMARY);
    }

    fn prewarm(lead: u64, hold: u64) -> Prewarm {
        use crate::forecast::ForecastMethod;
        use crate::scaler::PrewarmSettings;
        Prewarm::try_new(
            ForecastMethod::default(),
            PrewarmSettings::try_new(Duration::from_secs(lead), Duration::from_secs(hold)).unwrap(),
            Rate::try_new("trigger", 15.0).unwrap(),
            Duration::from_secs(30),
        )
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn prewarm_prepares_before_the_crossing_and_releases_after_hold() {
        use crate::scaler::PrewarmAction;
        use crate::testing::{MemoryScaler, ScalerCall};
        let (c, src, _router) = seed_controller(Split::ALL_PRIMARY);
        let scaler = Arc::new(MemoryScaler::new());
        let mut c = c.with_prewarm(prewarm(30, 10), Box::new(scaler.clone()));
        // Flat at 5, rising 1 rps/s to 25 (the policy bursts above 15), held, then down to 1.
        let rate = |t: u64| match t {
            0..10 => 5.0,
            10..30 => (t - 5).min(25) as f64,
            _ => 1.0,
        };
        let mut prepared_at = None;
        let mut first_burst = None;
        let mut last_burst = None;
        let mut released_at = None;
        for t in 0..90u64 {
            src.set(value(rate(t)));
            let r = c.tick().await.unwrap();
            let p = r.prewarm.as_ref().expect("a pre-warm report every tick");
            let on_burst = r.belief.is_bursting() || r.decision.desired.is_bursting();
            if on_burst {
                first_burst.get_or_insert(t);
                last_burst = Some(t);
            }
            match p.action {
                Some(PrewarmAction::Prepare(_)) => {
                    assert!(matches!(p.result, Some(Ok(()))), "{p:?}");
                    prepared_at.get_or_insert(t);
                }
                Some(PrewarmAction::Release { idle_for }) => {
                    assert!(!on_burst, "released at {t}s while traffic is on burst");
                    assert!(idle_for >= Duration::from_secs(10));
                    released_at.get_or_insert(t);
                }
                None => {}
            }
            assert_eq!(p.prepared, scaler.is_prepared(), "at {t}s");
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        let (prepared_at, first_burst, last_burst, released_at) = (
            prepared_at.expect("prepared"),
            first_burst.expect("burst"),
            last_burst.unwrap(),
            released_at.expect("released"),
        );
        assert!(
            prepared_at < first_burst,
            "prepared at {prepared_at}s, traffic moved at {first_burst}s"
        );
        assert!(
            released_at >= last_burst + 10,
            "released at {released_at}s, last burst at {last_burst}s"
        );
        assert!(!scaler.is_prepared());
        let calls = scaler.calls();
        assert_eq!(calls.len(), 2, "{calls:?}");
        assert!(matches!(
            calls[0],
            ScalerCall::Prepare {
                why: crate::scaler::PrewarmReason::Forecast(_),
                ok: true
            }
        ));
        assert!(matches!(calls[1], ScalerCall::Release { ok: true }));
    }

    #[tokio::test(start_paused = true)]
    async fn prewarm_in_dry_run_reports_but_never_calls() {
        use crate::testing::MemoryScaler;
        let (c, src, _router) = seed_controller(Split::ALL_PRIMARY);
        let c = Controller {
            config: ControllerConfig {
                dry_run: true,
                ..c.config
            },
            ..c
        };
        let scaler = Arc::new(MemoryScaler::new());
        let mut c = c.with_prewarm(prewarm(30, 10), Box::new(scaler.clone()));
        src.set(value(30.0));
        let r = c.tick().await.unwrap();
        let p = r.prewarm.unwrap();
        assert!(p.action.is_some(), "{p:?}");
        assert_eq!((p.result, p.prepared), (None, false));
        assert!(scaler.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_alone_does_not_keep_the_burst_side_prepared() {
        use crate::testing::MemoryScaler;
        // A route that keeps 3 % on burst (a warm-up probe) at a calm, flat rate.
        let (c, src, _router) = seed_controller(Split::try_new(97, 3).unwrap());
        let scaler = Arc::new(MemoryScaler::new());
        let mut c = c
            .with_prewarm(prewarm(30, 10), Box::new(scaler.clone()))
            .with_prewarm_probe(Weight::try_new(3).unwrap());
        src.set(value(12.0));
        for _ in 0..20 {
            let r = c.tick().await.unwrap();
            assert_eq!(r.prewarm.unwrap().action, None);
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        assert!(scaler.calls().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn run_retries_start_and_stops_on_shutdown() {
        let src = Arc::new(MemorySource::new());
        src.set(value(20.0));
        let router = Arc::new(MemoryRouter::new(Split::ALL_PRIMARY));
        router.fail_next_read(RouterError::new("unavailable", "api down"));
        let reports = Arc::new(Mutex::new(Vec::new()));
        let sink = reports.clone();
        let c = Controller::new(
            src.clone(),
            PolicySpec::default().build().unwrap(),
            router.clone(),
            ControllerConfig::default(),
        )
        .with_observer(move |r: &TickReport| sink.lock().unwrap().push(r.outcome.clone()));
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let handle = tokio::spawn(c.run(async {
            let _ = rx.await;
        }));
        tokio::time::sleep(Duration::from_millis(5500)).await;
        tx.send(()).unwrap();
        let stopped = handle.await.unwrap();
        // 1 s start-up backoff, then ticks at 1, 2, 3, 4, 5 s.
        assert_eq!(stopped.ticks, 5);
        assert_eq!(stopped.belief, Some(Split::ALL_BURST));
        let outcomes = reports.lock().unwrap().clone();
        assert!(matches!(outcomes[0], Outcome::Applied { .. }));
        assert!(outcomes[1..].iter().all(|o| *o == Outcome::Unchanged));
        // Stopped: no more source calls.
        let calls = src.calls();
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(src.calls(), calls);
    }
}
