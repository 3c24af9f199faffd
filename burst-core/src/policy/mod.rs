//! Pure, deterministic decision policies.
//!
//! A [`Policy`] turns a [`Signal`] (rates, or why there are none), the split in effect and
//! the current time into a [`Decision`]: the desired split and the reason for it. Policies
//! never read a clock and never do IO, so every rule can be tested and simulated exactly.
//!
//! - [`Hysteresis`]: the seed's all-or-nothing switch with a dead band between two
//!   thresholds, plus optional `sustain` and `cooldown`.
//! - [`Overflow`]: proportional; sends to burst only the share of traffic above the
//!   primary's capacity, in steps, with a dead band and per-tick rate limits.
//!
//! Both apply the same no-data rule ([`OnMissing`]) and read two windows ([`Rates`]): the
//! short one decides moving traffic to burst, the long one decides bringing it back.
//!
//! Both also read the observation's other [`Signals`](crate::Signals) through the same
//! [`SignalRules`]: latency and error-ratio triggers (any one fires to enter burst; leaving
//! needs every one below its low), capacity from the primary's ready endpoints, and the
//! burst side's health guard, which never lets traffic onto a burst side that is not ready.

mod hysteresis;
mod overflow;
mod spec;
mod triggers;
mod warmup;

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Observation, Rates, Reading, Signals, Split, Timestamp};

pub use hysteresis::{Hysteresis, HysteresisConfig};
pub use overflow::{Overflow, OverflowConfig};
pub use spec::{
    BandSpec, BurstHealthSpec, CelRule, LoopSpec, Mode, PolicyFile, PolicySpec, PrewarmSpec,
    SimSpec, TriggersSpec, WarmupSpec, first_bad_key,
};
pub use triggers::{BurstHealth, CapacityRule, OnUnhealthy, SignalRules};
pub use warmup::{Warmed, Warmup, WarmupConfig, WarmupInput};

/// What the policy gets to see on a tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// Measured rates alone (no other signal was measured); the same as
    /// [`Signal::Observed`] with [`Signals::NONE`].
    Rates(Rates),
    /// A whole observation: the rates and the other signals (latency, errors, ready
    /// endpoints), as the controller passes them on from a [`Reading::Value`].
    Observed(Observation),
    /// The source answered without data.
    NoData(String),
    /// The source failed; treated exactly like missing data, never like 0. The adapter's
    /// typed error is inside ([`crate::SourceError::downcast_ref`]).
    Error(crate::SourceError),
}

/// Where to send traffic once data has been missing for `stale_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum OnMissing {
    /// Keep the last decision, however long data is missing.
    #[default]
    Hold,
    /// Send everything back to the primary.
    Primary,
    /// Send everything to the burst destination.
    Burst,
}

impl OnMissing {
    /// The names, as written in files, flags and BurstPolicies.
    pub const NAMES: [&'static str; 3] = ["hold", "primary", "burst"];
}

impl std::str::FromStr for OnMissing {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hold" => Ok(OnMissing::Hold),
            "primary" => Ok(OnMissing::Primary),
            "burst" => Ok(OnMissing::Burst),
            other => Err(crate::Error::InvalidSetting {
                key: "onMissing",
                message: format!("`{other}` is not a choice; use hold, primary or burst"),
            }),
        }
    }
}

/// The no-data rule shared by every policy.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MissingRule {
    /// Safe target once data is stale.
    pub on_missing: OnMissing,
    /// How long data may be missing before the safe target applies.
    pub stale_after: Duration,
}

/// The policy's answer for one tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The split the policy wants in effect.
    pub desired: Split,
    /// Why.
    pub reason: Reason,
}

/// Why a decision was taken: the rule that fired and the values it looked at.
#[derive(Debug, Clone, PartialEq)]
pub struct Reason {
    /// The rule that fired.
    pub rule: Rule,
    /// The rates looked at (none when data was missing).
    pub rates: Option<Rates>,
    /// The split in effect when deciding.
    pub current: Split,
    /// Human-readable detail: thresholds, capacity, timers.
    pub detail: String,
}

/// The rule behind a [`Decision`].
///
/// Serialized as its [`name`](Rule::name) (`"above_high"`, or a custom rule's own name).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rule {
    /// Rate above the high threshold: move to the burst split.
    AboveHigh,
    /// Rate below the low threshold while bursting: move back to the primary.
    BelowLow,
    /// Rate inside the band, or on the side that needs no change: hold.
    InBand,
    /// A switch is wanted but the condition has not held for `sustain` yet.
    Sustaining,
    /// A switch is wanted but the last change was less than `cooldown` ago.
    Cooldown,
    /// Overflow: primary over capacity, burst share goes up.
    OverflowUp,
    /// Overflow: spare capacity, burst share goes down.
    OverflowDown,
    /// Overflow: the split is close enough to the target (dead band): hold.
    DeadBand,
    /// Data missing for less than `stale_after` (or `on_missing: hold`): hold.
    MissingHold,
    /// Data missing for `stale_after`: the configured safe target.
    StaleSafeTarget,
    /// Warm-up: the burst weight goes up through the ramp's steps, not at once.
    Warming,
    /// The primary's p99 latency above its trigger's high: move to burst.
    LatencyHigh,
    /// The primary's error ratio above its trigger's high: move to burst.
    ErrorRatioHigh,
    /// The burst side is unhealthy (too few ready endpoints, too many errors, or no data
    /// about it): no traffic is moved onto it, and `onUnhealthy` decides what it keeps.
    BurstUnhealthy,
    /// Both sides are over capacity: the load is split in proportion to their capacities.
    BothOverloaded,
    /// A rule of a policy written outside burst, named by that policy (a stable snake_case
    /// name such as `"business_hours"`; it becomes a metric label and a status field).
    Custom(&'static str),
}

/// A decision policy. Pure: same inputs, same outputs; time is passed in.
pub trait Policy: Send {
    /// Decides the desired split given the signal, the split in effect, and the time.
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision;
}

impl<P: Policy + ?Sized> Policy for Box<P> {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        (**self).decide(signal, current, now)
    }
}

/// Either policy, as built from a [`PolicySpec`], possibly with a warm-up after it.
#[derive(Debug, Clone)]
pub enum AnyPolicy {
    /// See [`Hysteresis`].
    Hysteresis(Hysteresis),
    /// See [`Overflow`].
    Overflow(Overflow),
    /// A policy followed by a [`Warmup`] (the `warmup` key); see [`Warmed`].
    Warmed(Box<Warmed>),
}

impl Policy for AnyPolicy {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        match self {
            AnyPolicy::Hysteresis(p) => p.decide(signal, current, now),
            AnyPolicy::Overflow(p) => p.decide(signal, current, now),
            AnyPolicy::Warmed(p) => p.decide(signal, current, now),
        }
    }
}

impl Rule {
    /// A stable snake_case name, for metrics and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Rule::AboveHigh => "above_high",
            Rule::BelowLow => "below_low",
            Rule::InBand => "in_band",
            Rule::Sustaining => "sustaining",
            Rule::Cooldown => "cooldown",
            Rule::OverflowUp => "overflow_up",
            Rule::OverflowDown => "overflow_down",
            Rule::DeadBand => "dead_band",
            Rule::MissingHold => "missing_hold",
            Rule::StaleSafeTarget => "stale_safe_target",
            Rule::Warming => "warming",
            Rule::LatencyHigh => "latency_high",
            Rule::ErrorRatioHigh => "error_ratio_high",
            Rule::BurstUnhealthy => "burst_unhealthy",
            Rule::BothOverloaded => "both_overloaded",
            Rule::Custom(name) => name,
        }
    }
}

impl Serialize for Rule {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.rule)?;
        match &self.rates {
            Some(r) => write!(f, "rate {r}")?,
            None => write!(f, "no data")?,
        }
        write!(f, ", split {} ({})", self.current, self.detail)
    }
}

impl Signal {
    /// The rates, if there are any.
    pub fn rates(&self) -> Option<Rates> {
        match self {
            Signal::Rates(r) => Some(*r),
            Signal::Observed(o) => Some(o.rates),
            _ => None,
        }
    }

    /// The signals besides the rate ([`Signals::NONE`] without an observation).
    pub fn signals(&self) -> Signals {
        match self {
            Signal::Observed(o) => o.signals,
            _ => Signals::NONE,
        }
    }
}

impl From<Reading> for Signal {
    /// A source's reading as the policy sees it: the whole observation, or why there is none.
    fn from(reading: Reading) -> Signal {
        match reading {
            Reading::Value(o) => Signal::Observed(o),
            Reading::NoData { reason } => Signal::NoData(reason),
        }
    }
}

impl fmt::Display for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Signal::Rates(r) => write!(f, "{r}"),
            Signal::Observed(o) => write!(f, "{}", o.rates),
            Signal::NoData(why) => write!(f, "no data ({why})"),
            Signal::Error(e) => write!(f, "source error [{}]: {e}", e.kind()),
        }
    }
}

/// Tracks the state every policy shares: when data was last present, and when the split
/// in effect last changed (seen through `current`, so a failed apply never counts).
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    first_seen: Option<Timestamp>,
    last_data: Option<Timestamp>,
    last_split: Option<Split>,
    last_change: Option<Timestamp>,
}

impl Tracker {
    /// Records this tick; returns the rates or, when data is missing, the decision to take.
    pub(crate) fn observe(
        &mut self,
        rule: MissingRule,
        signal: &Signal,
        current: Split,
        now: Timestamp,
    ) -> Result<Rates, Decision> {
        self.first_seen.get_or_insert(now);
        match self.last_split {
            Some(prev) if prev != current => self.last_change = Some(now),
            _ => {}
        }
        self.last_split = Some(current);

        if let Some(rates) = signal.rates() {
            self.last_data = Some(now);
            return Ok(rates);
        }
        let since = self.last_data.or(self.first_seen).unwrap_or(now);
        Err(missing_decision(
            rule,
            &signal.to_string(),
            now.saturating_since(since),
            current,
            None,
        ))
    }

    /// Time left before `cooldown` allows another change (`None` when allowed now).
    pub(crate) fn cooldown_left(&self, cooldown: Duration, now: Timestamp) -> Option<Duration> {
        let last = self.last_change?;
        let since = now.saturating_since(last);
        (since < cooldown).then(|| cooldown - since)
    }
}

/// The no-data rule's decision for `what` (the signal or the source's answer), missing for
/// `missing_for`: hold until `stale_after`, then the safe target.
pub(crate) fn missing_decision(
    rule: MissingRule,
    what: &str,
    missing_for: Duration,
    current: Split,
    rates: Option<Rates>,
) -> Decision {
    let stale = missing_for >= rule.stale_after;
    let safe = match rule.on_missing {
        OnMissing::Hold => None,
        OnMissing::Primary => Some(Split::ALL_PRIMARY),
        OnMissing::Burst => Some(Split::ALL_BURST),
    };
    let (rule_fired, desired, detail) = match safe {
        Some(target) if stale => (
            Rule::StaleSafeTarget,
            target,
            format!(
                "{what}; missing for {}, stale_after {}: safe target {target}",
                fmt_dur(missing_for),
                fmt_dur(rule.stale_after)
            ),
        ),
        _ => (
            Rule::MissingHold,
            current,
            format!(
                "{what}; missing for {}, holding the last decision",
                fmt_dur(missing_for)
            ),
        ),
    };
    Decision {
        desired,
        reason: Reason {
            rule: rule_fired,
            rates,
            current,
            detail,
        },
    }
}

/// Formats a duration for reasons, with millisecond precision.
pub(crate) fn fmt_dur(d: Duration) -> String {
    let ms = Duration::from_millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    humantime::format_duration(ms).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rate;

    fn secs(s: u64) -> Timestamp {
        Timestamp::from_duration(Duration::from_secs(s))
    }

    #[test]
    fn missing_data_holds_until_stale_then_goes_to_safe_target() {
        let rule = MissingRule {
            on_missing: OnMissing::Primary,
            stale_after: Duration::from_secs(30),
        };
        let mut t = Tracker::default();
        let rates = Signal::Rates(Rates::single(Rate::try_new("r", 20.0).unwrap()));
        assert!(t.observe(rule, &rates, Split::ALL_BURST, secs(0)).is_ok());
        let err = Signal::Error(crate::SourceError::new("http", "down"));
        let d = t
            .observe(rule, &err, Split::ALL_BURST, secs(29))
            .unwrap_err();
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_BURST, Rule::MissingHold)
        );
        let d = t
            .observe(rule, &err, Split::ALL_BURST, secs(30))
            .unwrap_err();
        assert_eq!(
            (d.desired, d.reason.rule),
            (Split::ALL_PRIMARY, Rule::StaleSafeTarget)
        );
        assert!(
            d.reason.to_string().contains("source error [http]"),
            "{}",
            d.reason
        );
    }

    #[test]
    fn custom_rules_carry_their_own_name_everywhere() {
        let rule = Rule::Custom("business_hours");
        let copy = rule;
        assert_eq!(
            (rule.name(), copy.to_string()),
            ("business_hours", "business_hours".to_string())
        );
        assert_ne!(rule, Rule::Custom("night_prewarm"));
        assert_eq!(
            serde_json::to_value([rule, Rule::AboveHigh]).unwrap(),
            serde_json::json!(["business_hours", "above_high"])
        );
        let reason = Reason {
            rule,
            rates: None,
            current: Split::ALL_PRIMARY,
            detail: "closed".into(),
        };
        assert!(
            reason.to_string().starts_with("business_hours: no data"),
            "{reason}"
        );
    }

    #[test]
    fn hold_never_moves() {
        let rule = MissingRule {
            on_missing: OnMissing::Hold,
            stale_after: Duration::ZERO,
        };
        let mut t = Tracker::default();
        let d = t
            .observe(
                rule,
                &Signal::NoData("empty".into()),
                Split::ALL_BURST,
                secs(1000),
            )
            .unwrap_err();
        assert_eq!(d.desired, Split::ALL_BURST);
    }

    #[test]
    fn cooldown_counts_from_the_observed_change() {
        let rule = MissingRule {
            on_missing: OnMissing::Hold,
            stale_after: Duration::ZERO,
        };
        let mut t = Tracker::default();
        let sig = Signal::Rates(Rates::single(Rate::ZERO));
        let _ = t.observe(rule, &sig, Split::ALL_PRIMARY, secs(0));
        assert_eq!(t.cooldown_left(Duration::from_secs(10), secs(1)), None);
        let _ = t.observe(rule, &sig, Split::ALL_BURST, secs(5));
        assert_eq!(
            t.cooldown_left(Duration::from_secs(10), secs(8)),
            Some(Duration::from_secs(7))
        );
        assert_eq!(t.cooldown_left(Duration::from_secs(10), secs(15)), None);
    }
}
