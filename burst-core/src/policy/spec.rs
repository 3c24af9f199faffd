//! The typed policy model: what to decide ([`PolicySpec`]), how often ([`LoopSpec`]), and
//! how the simulator measures ([`SimSpec`]); together, as written in `policy.yaml`,
//! [`PolicyFile`].
//!
//! These types are the one model every surface fills: `policy.yaml` (`burst simulate`,
//! `burst demo`), the BurstPolicy CRD's `spec.policy` (whose schema is generated from them,
//! with the `schema` feature), and burstd's flags and `BURST_*` variables. Keys are
//! camelCase, as in Kubernetes; files may also write them in snake_case (`burst_weight`).
//! Every field has a default; the defaults reproduce the seed (hysteresis 15/10 rps, rate
//! over 15 s, 1 s tick, 0/100 split).
//!
//! The rules that need more than one field (low below high, overflow needs a capacity,
//! windowUp not longer than windowDown, ...) live in [`PolicySpec::validate`] and, for the
//! CRD, in the same words as CEL rules ([`PolicySpec::CEL_RULES`]), so the API server
//! refuses a bad BurstPolicy before burstd sees it.
//!
//! Size: About 600 lines, most of them documentation: every field's doc comment becomes the CRD's field description, and the CEL rules are a table; ~150 lines are unit tests.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AnyPolicy, BurstHealth, CapacityRule, Hysteresis, HysteresisConfig, MissingRule, OnMissing,
    OnUnhealthy, Overflow, OverflowConfig, SignalRules, Warmed, Warmup, WarmupConfig,
};
use crate::forecast::ForecastMethod;
use crate::scaler::{Prewarm, PrewarmSettings};
use crate::{ControllerConfig, Error, HumanDuration, Rate, Ratio, Thresholds, Weight};

/// Which policy to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// [`Hysteresis`]: all-or-nothing between two thresholds (the seed).
    #[default]
    Hysteresis,
    /// [`Overflow`]: proportional to the load above `capacity`.
    Overflow,
}

impl Mode {
    /// The names, as written in files, flags and BurstPolicies.
    pub const NAMES: [&'static str; 2] = ["hysteresis", "overflow"];
}

impl std::str::FromStr for Mode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "hysteresis" => Ok(Mode::Hysteresis),
            "overflow" => Ok(Mode::Overflow),
            other => Err(Error::InvalidSetting {
                key: "mode",
                message: format!("`{other}` is not a mode; use hysteresis or overflow"),
            }),
        }
    }
}

/// The decision settings: thresholds, weights, timers, the no-data rule and the rate
/// windows the decision reads.
///
/// ```yaml
/// mode: hysteresis        # or overflow
/// high: 15                # rps; above it (short window) → burst
/// low: 10                 # rps; below it (long window) → back to primary
/// burstWeight: 100        # hysteresis: burst % while bursting
/// capacity: 15            # overflow: rps the primary serves
/// step: 5                 # overflow: weights move in 5 % steps
/// maxUp: 100              # overflow: largest increase per tick
/// maxDown: 10             # overflow: largest decrease per tick
/// deadBand: 0.1           # overflow: spare room needed before coming back
/// sustain: 0s             # hysteresis: condition must hold this long
/// cooldown: 0s            # minimum time between changes
/// onMissing: hold         # hold | primary | burst
/// staleAfter: 1m          # data missing this long → onMissing target
/// window: 15s             # rate window
/// windowUp: 5s            # optional: short window for moving to burst
/// windowDown: 30s         # optional: long window for coming back
/// capacityPerEndpoint: 10 # optional: capacity = 10 rps x the primary's ready endpoints
/// burstCapacityPerEndpoint: 10  # optional: per burst endpoint (default: capacityPerEndpoint)
/// highFraction: 1.0       # optional, hysteresis: high = 1.0 x capacity (with lowFraction)
/// lowFraction: 0.66       # optional, hysteresis: low = 0.66 x capacity
/// triggers:               # optional: more reasons to burst (any one fires)
///   latencyP99Ms: {high: 250, low: 150}
///   errorRatio: {high: 0.05, low: 0.01}
/// burstHealth:            # optional: never send traffic to a burst side that is not ready
///   minReady: 1
///   maxErrorRatio: 0.2
///   onUnhealthy: primary  # primary | hold
///   healthyAfter: 30s
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("x-kubernetes-validations" = CelRule::json(PolicySpec::CEL_RULES)))
)]
#[serde(default, rename_all = "camelCase")]
pub struct PolicySpec {
    /// `hysteresis` (all-or-nothing between two thresholds, the seed) or `overflow`
    /// (proportional to the load above `capacity`).
    pub mode: Mode,
    /// High threshold in rps: above it (short window), move to burst.
    pub high: f64,
    /// Low threshold in rps: below it (long window), come back. Must be below `high`.
    pub low: f64,
    /// Hysteresis: burst weight while bursting, 1..=100.
    #[serde(alias = "burst_weight")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100)))]
    pub burst_weight: i64,
    /// Overflow: the rps the primary serves; traffic above it goes to burst. Required
    /// with `mode: overflow`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    /// Overflow: weights move in steps of this many percentage points, 1..=100.
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100)))]
    pub step: i64,
    /// Overflow: largest increase of the burst weight per tick, 1..=100.
    #[serde(alias = "max_up")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100)))]
    pub max_up: i64,
    /// Overflow: largest decrease of the burst weight per tick, 1..=100.
    #[serde(alias = "max_down")]
    #[cfg_attr(feature = "schema", schemars(range(min = 1, max = 100)))]
    pub max_down: i64,
    /// Overflow: spare room, as a fraction of capacity in [0, 1), needed before coming back.
    #[serde(alias = "dead_band")]
    pub dead_band: f64,
    /// Hysteresis: how long a switch condition must hold before switching.
    pub sustain: HumanDuration,
    /// Minimum time between two changes of the split.
    pub cooldown: HumanDuration,
    /// Where traffic goes once data has been missing for `staleAfter`: `hold` (keep the
    /// last decision), `primary` or `burst`.
    #[serde(alias = "on_missing")]
    pub on_missing: OnMissing,
    /// How long data may be missing before `onMissing` applies.
    #[serde(alias = "stale_after")]
    pub stale_after: HumanDuration,
    /// Rate window, both directions unless `windowUp`/`windowDown` are given.
    pub window: HumanDuration,
    /// Short window deciding moves towards burst (default: `window`).
    #[serde(alias = "window_up", skip_serializing_if = "Option::is_none")]
    pub window_up: Option<HumanDuration>,
    /// Long window deciding moves back to the primary (default: `window`).
    #[serde(alias = "window_down", skip_serializing_if = "Option::is_none")]
    pub window_down: Option<HumanDuration>,
    /// Rps one primary endpoint serves: the capacity is this × the primary's ready
    /// endpoints, re-evaluated every tick (`capacity`, if also given, is the fallback while
    /// the ready count has no data). Replaces `capacity` for overflow and for
    /// `highFraction`/`lowFraction`.
    #[serde(
        alias = "capacity_per_endpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub capacity_per_endpoint: Option<f64>,
    /// Rps one burst endpoint serves (default: `capacityPerEndpoint`); with the burst side's
    /// ready endpoints it gives the burst capacity, and a load above both capacities is split
    /// in proportion to them.
    #[serde(
        alias = "burst_capacity_per_endpoint",
        skip_serializing_if = "Option::is_none"
    )]
    pub burst_capacity_per_endpoint: Option<f64>,
    /// Hysteresis: `high` as a fraction of the primary's capacity (e.g. 1.0); needs
    /// `lowFraction` and `capacity` or `capacityPerEndpoint`, and replaces `high`.
    #[serde(alias = "high_fraction", skip_serializing_if = "Option::is_none")]
    pub high_fraction: Option<f64>,
    /// Hysteresis: `low` as a fraction of the primary's capacity (e.g. 0.66); below
    /// `highFraction`, and replaces `low`.
    #[serde(alias = "low_fraction", skip_serializing_if = "Option::is_none")]
    pub low_fraction: Option<f64>,
    /// More reasons to burst than the rate: the primary's p99 latency and error ratio, each
    /// with its own high/low pair. Any one above its high moves traffic to burst; coming
    /// back needs every one below its low.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub triggers: Option<TriggersSpec>,
    /// The burst side's health guard: no traffic goes to a burst side with fewer than
    /// `minReady` ready endpoints or an error ratio above `maxErrorRatio`.
    #[serde(alias = "burst_health", skip_serializing_if = "Option::is_none")]
    pub burst_health: Option<BurstHealthSpec>,
    /// Warm-up: a probe share kept on burst and a stepped ramp into burst, skipped in panic
    /// (demand at `panic` x capacity). Off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warmup: Option<WarmupSpec>,
    /// Pre-warming: grow the burst side ahead of a forecast crossing of the trigger (`high`,
    /// or `capacity` in overflow mode) within `lead`; release it `hold` after the last need.
    /// Off when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prewarm: Option<PrewarmSpec>,
}

/// `warmup`: do not throw traffic at a cold burst side.
///
/// ```yaml
/// warmup:
///   probeWeight: 2            # % kept on a healthy burst side at all times (0: off)
///   ramp: [10, 25, 50, 100]   # entering burst goes through these burst weights
///   rampOver: 20s             # ... over this long (one step per rampOver / steps)
///   panic: 2.0                # demand >= 2 x capacity skips the ramp
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct WarmupSpec {
    /// Burst weight kept on a healthy burst side at all times, 0..=100 (0: no probe).
    #[serde(alias = "probe_weight")]
    #[cfg_attr(feature = "schema", schemars(range(min = 0, max = 100)))]
    pub probe_weight: i64,
    /// Burst weights, strictly ascending in 1..=100, that entering burst goes through
    /// (empty: no ramp).
    #[cfg_attr(feature = "schema", schemars(length(max = 100)))]
    pub ramp: Vec<i64>,
    /// How long the whole ramp takes; one step per `rampOver / len(ramp)`.
    #[serde(alias = "ramp_over")]
    pub ramp_over: HumanDuration,
    /// Demand at this multiple of the primary's capacity (or of `high` when no capacity is
    /// configured) skips the ramp; at least 1.
    pub panic: f64,
}

/// `prewarm`: grow the burst side before the traffic moves.
///
/// ```yaml
/// prewarm:
///   lead: 90s     # look this far ahead: the burst side's start-up time plus a margin
///   hold: 5m      # keep it prepared this long after the last need
///   forecast: {method: holt, alpha: 0.3, beta: 0.1}   # optional; or linearTrend + window
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct PrewarmSpec {
    /// How far ahead the forecast looks; above 0s.
    pub lead: HumanDuration,
    /// How long the burst side stays prepared after the last need (0s: release at once).
    pub hold: HumanDuration,
    /// The forecaster (default: Holt, alpha 0.3, beta 0.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub forecast: Option<ForecastMethod>,
}

impl Default for WarmupSpec {
    fn default() -> Self {
        WarmupSpec {
            probe_weight: 0,
            ramp: Vec::new(),
            ramp_over: HumanDuration::from_secs(20),
            panic: WarmupConfig::DEFAULT_PANIC,
        }
    }
}

impl WarmupSpec {
    /// The validated settings; errors name the key (`warmup.ramp`, ...).
    pub fn build(&self) -> Result<WarmupConfig, Error> {
        WarmupConfig::try_new(
            self.probe_weight,
            &self.ramp,
            self.ramp_over.get(),
            self.panic,
        )
    }
}

impl Default for PrewarmSpec {
    fn default() -> Self {
        PrewarmSpec {
            lead: HumanDuration::from_secs(90),
            hold: HumanDuration::from_secs(300),
            forecast: None,
        }
    }
}

impl PrewarmSpec {
    /// The validated settings and forecaster; errors name the key (`prewarm.lead`, ...).
    pub fn build(&self) -> Result<(PrewarmSettings, ForecastMethod), Error> {
        let settings = PrewarmSettings::try_new(self.lead.get(), self.hold.get())?;
        let method = self.forecast.unwrap_or_default();
        method.validate()?;
        Ok((settings, method))
    }
}

/// `triggers`: high/low pairs on signals other than the rate.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggersSpec {
    /// The primary's p99 latency in milliseconds: above `high` → burst.
    #[serde(alias = "latency_p99_ms", skip_serializing_if = "Option::is_none")]
    pub latency_p99_ms: Option<BandSpec>,
    /// The primary's error ratio (5xx and 429 over all responses, 0..1): above `high` →
    /// burst.
    #[serde(alias = "error_ratio", skip_serializing_if = "Option::is_none")]
    pub error_ratio: Option<BandSpec>,
}

/// A trigger's high/low pair: above `high` fires, below `low` lets traffic come back.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BandSpec {
    /// Above it, the trigger fires.
    pub high: f64,
    /// Below it, the trigger lets traffic come back. Must be below `high`.
    pub low: f64,
}

/// `burstHealth`: when the burst side may take traffic.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(default, rename_all = "camelCase", deny_unknown_fields)]
pub struct BurstHealthSpec {
    /// Ready burst endpoints needed before any traffic goes there.
    #[serde(alias = "min_ready")]
    // int64 in the schema: Kubernetes knows no `uint32` format.
    #[cfg_attr(
        feature = "schema",
        schemars(with = "i64", range(min = 0, max = 1000000))
    )]
    pub min_ready: u32,
    /// Highest error ratio (0..1) at which the burst side still counts as healthy.
    #[serde(alias = "max_error_ratio", skip_serializing_if = "Option::is_none")]
    pub max_error_ratio: Option<f64>,
    /// What traffic already on burst does when it turns unhealthy: `primary` (all back at
    /// once) or `hold` (keep the weight, never raise it).
    #[serde(alias = "on_unhealthy")]
    pub on_unhealthy: OnUnhealthy,
    /// How long an unhealthy burst side must read healthy before it counts as healthy again.
    #[serde(alias = "healthy_after")]
    pub healthy_after: HumanDuration,
}

impl Default for BurstHealthSpec {
    fn default() -> Self {
        BurstHealthSpec {
            min_ready: 1,
            max_error_ratio: None,
            on_unhealthy: OnUnhealthy::Primary,
            healthy_after: HumanDuration::from_secs(30),
        }
    }
}

impl Default for PolicySpec {
    fn default() -> Self {
        PolicySpec {
            mode: Mode::Hysteresis,
            high: 15.0,
            low: 10.0,
            burst_weight: 100,
            capacity: None,
            step: 5,
            max_up: 100,
            max_down: 10,
            dead_band: 0.1,
            sustain: HumanDuration::ZERO,
            cooldown: HumanDuration::ZERO,
            on_missing: OnMissing::Hold,
            stale_after: HumanDuration::from_secs(60),
            window: HumanDuration::from_secs(15),
            window_up: None,
            window_down: None,
            capacity_per_endpoint: None,
            burst_capacity_per_endpoint: None,
            high_fraction: None,
            low_fraction: None,
            triggers: None,
            burst_health: None,
            warmup: None,
            prewarm: None,
        }
    }
}

/// The control loop's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[cfg_attr(
    feature = "schema",
    schemars(extend("x-kubernetes-validations" = CelRule::json(LoopSpec::CEL_RULES)))
)]
#[serde(default, rename_all = "camelCase")]
pub struct LoopSpec {
    /// Decision interval: how often the rate is read and the split decided.
    pub tick: HumanDuration,
}

impl Default for LoopSpec {
    fn default() -> Self {
        LoopSpec {
            tick: HumanDuration::from_secs(1),
        }
    }
}

impl LoopSpec {
    /// The rules of the loop settings, as CEL (see [`PolicySpec::CEL_RULES`]).
    pub const CEL_RULES: &'static [CelRule] = &[CelRule {
        rule: "!has(self.tick) || duration(self.tick) > duration('0s')",
        message: "`tick` must be longer than 0s",
        field_path: ".tick",
    }];

    /// `base` with this loop's settings.
    pub fn controller_config(&self, base: ControllerConfig) -> ControllerConfig {
        ControllerConfig {
            tick: self.tick.get(),
            ..base
        }
    }
}

/// How the simulator's Prometheus measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct SimSpec {
    /// How often the simulated Prometheus scrapes.
    #[serde(alias = "scrape_interval")]
    pub scrape_interval: HumanDuration,
}

impl Default for SimSpec {
    fn default() -> Self {
        SimSpec {
            scrape_interval: HumanDuration::from_secs(1),
        }
    }
}

/// `policy.yaml`: a policy, its loop and the simulator's measurement, as one flat mapping.
///
/// Unknown keys are rejected, naming the key, so a typo never silently falls back to a
/// default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PolicyFile {
    /// The decision.
    #[serde(flatten)]
    pub policy: PolicySpec,
    /// The loop (`tick`).
    #[serde(flatten)]
    pub run: LoopSpec,
    /// The simulator (`scrapeInterval`).
    #[serde(flatten)]
    pub sim: SimSpec,
}

/// One entry of [`PolicySpec::CEL_RULES`]: a CEL rule and its message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CelRule {
    /// The CEL expression, over `self` = the policy object.
    pub rule: &'static str,
    /// The message the API server returns when it is false.
    pub message: &'static str,
    /// The field the message is about, e.g. `.low`.
    pub field_path: &'static str,
}

impl CelRule {
    /// `rules` as `x-kubernetes-validations` entries of a JSON schema. A schema that
    /// flattens several of these types (as the CRD's `spec.policy` does) lists all their
    /// rules itself: a flattened type's rules are not carried over.
    pub fn json<'a>(rules: impl IntoIterator<Item = &'a CelRule>) -> Vec<serde_json::Value> {
        rules
            .into_iter()
            .map(|r| {
                serde_json::json!({
                    "rule": r.rule,
                    "message": r.message,
                    "fieldPath": r.field_path,
                })
            })
            .collect()
    }
}

impl PolicySpec {
    /// The cross-field rules, as CEL, checked by the Kubernetes API server on a
    /// BurstPolicy's `spec.policy` (and by [`validate`](Self::validate) everywhere).
    /// Every field may be absent (defaults apply), so each rule guards with `has()`.
    pub const CEL_RULES: &'static [CelRule] = &[
        CelRule {
            rule: "(has(self.low) ? self.low : 10.0) < (has(self.high) ? self.high : 15.0)",
            message: "`low` must be below `high` (defaults: low 10, high 15)",
            field_path: ".low",
        },
        CelRule {
            rule: "!has(self.mode) || self.mode != 'overflow' || has(self.capacity) || has(self.capacityPerEndpoint)",
            message: "mode `overflow` needs `capacity` or `capacityPerEndpoint` (the rps the primary serves)",
            field_path: ".capacity",
        },
        CelRule {
            rule: "!has(self.capacity) || self.capacity > 0.0",
            message: "`capacity` must be greater than 0",
            field_path: ".capacity",
        },
        CelRule {
            rule: "!has(self.high) || self.high >= 0.0",
            message: "`high` must be a rate >= 0",
            field_path: ".high",
        },
        CelRule {
            rule: "!has(self.low) || self.low >= 0.0",
            message: "`low` must be a rate >= 0",
            field_path: ".low",
        },
        CelRule {
            rule: "!has(self.deadBand) || (self.deadBand >= 0.0 && self.deadBand < 1.0)",
            message: "`deadBand` must be a fraction in [0, 1)",
            field_path: ".deadBand",
        },
        CelRule {
            rule: "!has(self.window) || duration(self.window) > duration('0s')",
            message: "`window` must be longer than 0s",
            field_path: ".window",
        },
        CelRule {
            rule: "!has(self.windowUp) || duration(self.windowUp) > duration('0s')",
            message: "`windowUp` must be longer than 0s",
            field_path: ".windowUp",
        },
        CelRule {
            rule: "!has(self.windowDown) || duration(self.windowDown) > duration('0s')",
            message: "`windowDown` must be longer than 0s",
            field_path: ".windowDown",
        },
        CelRule {
            rule: "duration(has(self.windowUp) ? self.windowUp : (has(self.window) ? self.window : '15s')) <= duration(has(self.windowDown) ? self.windowDown : (has(self.window) ? self.window : '15s'))",
            message: "`windowUp` must not be longer than `windowDown`: the window deciding moves to burst is the shorter one",
            field_path: ".windowUp",
        },
        CelRule {
            rule: "!has(self.onMissing) || self.onMissing == 'hold' || !has(self.staleAfter) || duration(self.staleAfter) > duration('0s')",
            message: "`staleAfter` must be longer than 0s when `onMissing` is not `hold`",
            field_path: ".staleAfter",
        },
        CelRule {
            rule: "!has(self.capacityPerEndpoint) || self.capacityPerEndpoint > 0.0",
            message: "`capacityPerEndpoint` must be greater than 0",
            field_path: ".capacityPerEndpoint",
        },
        CelRule {
            rule: "!has(self.burstCapacityPerEndpoint) || self.burstCapacityPerEndpoint > 0.0",
            message: "`burstCapacityPerEndpoint` must be greater than 0",
            field_path: ".burstCapacityPerEndpoint",
        },
        CelRule {
            rule: "has(self.highFraction) == has(self.lowFraction)",
            message: "`highFraction` and `lowFraction` go together",
            field_path: ".highFraction",
        },
        CelRule {
            rule: "!has(self.highFraction) || !has(self.lowFraction) || (self.lowFraction >= 0.0 && self.lowFraction < self.highFraction)",
            message: "`lowFraction` must be >= 0 and below `highFraction`",
            field_path: ".lowFraction",
        },
        CelRule {
            rule: "!has(self.highFraction) || has(self.capacity) || has(self.capacityPerEndpoint)",
            message: "`highFraction` needs `capacity` or `capacityPerEndpoint` (what it is a fraction of)",
            field_path: ".highFraction",
        },
        CelRule {
            rule: "!has(self.triggers) || !has(self.triggers.latencyP99Ms) || (self.triggers.latencyP99Ms.low >= 0.0 && self.triggers.latencyP99Ms.low < self.triggers.latencyP99Ms.high)",
            message: "`triggers.latencyP99Ms.low` must be >= 0 and below its `high`",
            field_path: ".triggers.latencyP99Ms.low",
        },
        CelRule {
            rule: "!has(self.triggers) || !has(self.triggers.errorRatio) || (self.triggers.errorRatio.low >= 0.0 && self.triggers.errorRatio.low < self.triggers.errorRatio.high && self.triggers.errorRatio.high <= 1.0)",
            message: "`triggers.errorRatio` needs 0 <= low < high <= 1",
            field_path: ".triggers.errorRatio.low",
        },
        CelRule {
            rule: "!has(self.burstHealth) || !has(self.burstHealth.maxErrorRatio) || (self.burstHealth.maxErrorRatio >= 0.0 && self.burstHealth.maxErrorRatio <= 1.0)",
            message: "`burstHealth.maxErrorRatio` must be a ratio from 0 to 1",
            field_path: ".burstHealth.maxErrorRatio",
        },
        CelRule {
            rule: "!has(self.warmup) || !has(self.warmup.probeWeight) || (self.warmup.probeWeight >= 0 && self.warmup.probeWeight <= 100)",
            message: "`warmup.probeWeight` must be a weight from 0 to 100 (0 turns the probe off)",
            field_path: ".warmup.probeWeight",
        },
        CelRule {
            rule: "!has(self.warmup) || !has(self.warmup.ramp) || self.warmup.ramp.all(w, w >= 1 && w <= 100)",
            message: "`warmup.ramp` steps must be weights from 1 to 100",
            field_path: ".warmup.ramp",
        },
        CelRule {
            rule: "!has(self.warmup) || !has(self.warmup.ramp) || (self.warmup.ramp.isSorted() && self.warmup.ramp.all(w, self.warmup.ramp.filter(v, v == w).size() == 1))",
            message: "`warmup.ramp` steps must go up, e.g. [10, 25, 50, 100]",
            field_path: ".warmup.ramp",
        },
        CelRule {
            rule: "!has(self.warmup) || !has(self.warmup.ramp) || self.warmup.ramp.size() == 0 || !has(self.warmup.rampOver) || duration(self.warmup.rampOver) > duration('0s')",
            message: "`warmup.rampOver` must be longer than 0s when there is a ramp",
            field_path: ".warmup.rampOver",
        },
        CelRule {
            rule: "!has(self.warmup) || !has(self.warmup.panic) || self.warmup.panic >= 1.0",
            message: "`warmup.panic` must be a multiple of capacity >= 1, e.g. 2",
            field_path: ".warmup.panic",
        },
        CelRule {
            rule: "!has(self.prewarm) || !has(self.prewarm.lead) || duration(self.prewarm.lead) > duration('0s')",
            message: "`prewarm.lead` must be longer than 0s (the burst side's start-up time plus a margin, e.g. 90s)",
            field_path: ".prewarm.lead",
        },
    ];

    /// The settings this project recommends (see `docs/policies.md` for the measurements
    /// behind them): the seed's thresholds, a 2 s window to move to burst (react within
    /// two scrapes), a 30 s window to come back, and a 30 s cooldown.
    pub fn recommended() -> PolicySpec {
        PolicySpec {
            window_up: Some(HumanDuration::from_secs(2)),
            window_down: Some(HumanDuration::from_secs(30)),
            cooldown: HumanDuration::from_secs(30),
            ..PolicySpec::default()
        }
    }

    /// [`recommended`](Self::recommended) with a warm-up: a 2 % probe kept on a healthy
    /// burst side and a 10/25/50/100 % ramp over 20 s, skipped at 2x capacity. Measured on
    /// the `cold-burst` trace in docs/policies.md: it spreads the move, it does not add
    /// capacity (that is what [`recommended_prewarm`](Self::recommended_prewarm) does).
    pub fn recommended_warmup() -> PolicySpec {
        PolicySpec {
            warmup: Some(WarmupSpec {
                probe_weight: 2,
                ramp: vec![10, 25, 50, 100],
                ramp_over: HumanDuration::from_secs(20),
                panic: WarmupConfig::DEFAULT_PANIC,
            }),
            ..PolicySpec::recommended()
        }
    }

    /// [`recommended`](Self::recommended) with pre-warming: look 90 s ahead (a 60 s
    /// start-up plus a margin), hold 5 min, Holt's forecast.
    pub fn recommended_prewarm() -> PolicySpec {
        PolicySpec {
            prewarm: Some(PrewarmSpec::default()),
            ..PolicySpec::recommended()
        }
    }

    /// The recommended overflow settings for a primary serving `capacity` rps.
    pub fn recommended_overflow(capacity: f64) -> PolicySpec {
        PolicySpec {
            mode: Mode::Overflow,
            capacity: Some(capacity),
            window_up: Some(HumanDuration::from_secs(5)),
            window_down: Some(HumanDuration::from_secs(30)),
            cooldown: HumanDuration::from_secs(10),
            step: 10,
            dead_band: 0.2,
            ..PolicySpec::default()
        }
    }

    /// Checks every value; the error names the key (camelCase) and the valid range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key, message: String| Err(Error::InvalidSetting { key, message });
        Thresholds::try_new(self.low, self.high).map_err(|e| Error::InvalidSetting {
            key: "high/low",
            message: e.to_string(),
        })?;
        weight("burstWeight", self.burst_weight)?;
        if self.burst_weight == 0 {
            return bad(
                "burstWeight",
                "must be 1..=100 (0 would never burst)".into(),
            );
        }
        for (key, v) in [
            ("step", self.step),
            ("maxUp", self.max_up),
            ("maxDown", self.max_down),
        ] {
            weight(key, v)?;
            if v == 0 {
                return bad(key, "must be 1..=100".into());
            }
        }
        if !(0.0..1.0).contains(&self.dead_band) {
            return bad(
                "deadBand",
                format!("{} is not a fraction in [0, 1)", self.dead_band),
            );
        }
        match (self.mode, self.capacity, self.capacity_per_endpoint) {
            (Mode::Overflow, None, None) => {
                return bad(
                    "capacity",
                    "mode overflow needs `capacity` or `capacityPerEndpoint` (rps the primary serves)".into(),
                );
            }
            (_, Some(c), _) if !(c.is_finite() && c > 0.0) => {
                return bad("capacity", format!("{c} must be a finite number > 0"));
            }
            _ => {}
        }
        self.signal_rules()?;
        self.capacity_fractions()?;
        if let Some(w) = &self.warmup {
            w.build()?;
        }
        if let Some(p) = &self.prewarm {
            p.build()?;
        }
        for (key, d) in [
            ("window", Some(self.window)),
            ("windowUp", self.window_up),
            ("windowDown", self.window_down),
        ] {
            if d.is_some_and(HumanDuration::is_zero) {
                return bad(key, "must be longer than 0s".into());
            }
        }
        if self.window_up() > self.window_down() {
            return bad(
                "windowUp",
                format!(
                    "{} is longer than windowDown {}; the window deciding moves to burst must be the shorter one",
                    HumanDuration::from(self.window_up()),
                    HumanDuration::from(self.window_down())
                ),
            );
        }
        if self.stale_after.is_zero() && self.on_missing != OnMissing::Hold {
            return bad(
                "staleAfter",
                "must be longer than 0s when onMissing is not `hold`".into(),
            );
        }
        Ok(())
    }

    /// The latency/error triggers, capacity from endpoints and the burst health guard, as
    /// the policies read them; errors name the key.
    pub fn signal_rules(&self) -> Result<SignalRules, Error> {
        let bad = |key, message: String| Error::InvalidSetting { key, message };
        let per = |key: &'static str, v: Option<f64>| -> Result<Option<Rate>, Error> {
            match v {
                Some(v) if !(v.is_finite() && v > 0.0) => {
                    Err(bad(key, format!("{v} must be a finite number of rps > 0")))
                }
                Some(v) => Rate::try_new(key, v).map(Some),
                None => Ok(None),
            }
        };
        let band = |key: &'static str, b: Option<BandSpec>, max: Option<f64>| {
            let Some(b) = b else { return Ok(None) };
            if let Some(max) = max.filter(|m| b.high > *m) {
                return Err(bad(key, format!("high {} must be at most {max}", b.high)));
            }
            Thresholds::try_new(b.low, b.high)
                .map(Some)
                .map_err(|e| bad(key, format!("{e}; use 0 <= low < high")))
        };
        let triggers = self.triggers.unwrap_or_default();
        let burst_health = match self.burst_health {
            None => None,
            Some(h) => Some(BurstHealth {
                min_ready: h.min_ready,
                max_error_ratio: h
                    .max_error_ratio
                    .map(|r| Ratio::try_new("burstHealth.maxErrorRatio", r))
                    .transpose()?,
                on_unhealthy: h.on_unhealthy,
                healthy_after: h.healthy_after.get(),
            }),
        };
        Ok(SignalRules {
            latency_p99_ms: band("triggers.latencyP99Ms", triggers.latency_p99_ms, None)?,
            error_ratio: band("triggers.errorRatio", triggers.error_ratio, Some(1.0))?,
            capacity: CapacityRule {
                fixed: self
                    .capacity
                    .map(|c| Rate::try_new("capacity", c))
                    .transpose()?,
                per_endpoint: per("capacityPerEndpoint", self.capacity_per_endpoint)?,
                burst_per_endpoint: per(
                    "burstCapacityPerEndpoint",
                    self.burst_capacity_per_endpoint,
                )?,
            },
            burst_health,
        })
    }

    /// `highFraction`/`lowFraction` as a pair, if given; errors name the key.
    pub fn capacity_fractions(&self) -> Result<Option<Thresholds>, Error> {
        let bad = |key, message: String| Error::InvalidSetting { key, message };
        match (self.high_fraction, self.low_fraction) {
            (None, None) => Ok(None),
            (Some(_), None) => Err(bad(
                "lowFraction",
                "highFraction needs lowFraction too (e.g. highFraction 1.0, lowFraction 0.66)"
                    .into(),
            )),
            (None, Some(_)) => Err(bad(
                "highFraction",
                "lowFraction needs highFraction too (e.g. highFraction 1.0, lowFraction 0.66)"
                    .into(),
            )),
            (Some(high), Some(low)) => {
                if self.capacity.is_none() && self.capacity_per_endpoint.is_none() {
                    return Err(bad(
                        "highFraction",
                        "fractions of capacity need `capacity` or `capacityPerEndpoint`".into(),
                    ));
                }
                Thresholds::try_new(low, high).map(Some).map_err(|e| {
                    bad(
                        "highFraction/lowFraction",
                        format!("{e}; use 0 <= lowFraction < highFraction"),
                    )
                })
            }
        }
    }

    /// The short window (deciding moves to burst).
    pub fn window_up(&self) -> Duration {
        self.window_up.unwrap_or(self.window).get()
    }

    /// The long window (deciding moves back).
    pub fn window_down(&self) -> Duration {
        self.window_down.unwrap_or(self.window).get()
    }

    /// Whether two different windows are configured.
    pub fn has_two_windows(&self) -> bool {
        self.window_up() != self.window_down()
    }

    /// Builds the policy. Validates first.
    pub fn build(&self) -> Result<AnyPolicy, Error> {
        self.validate()?;
        let missing = MissingRule {
            on_missing: self.on_missing,
            stale_after: self.stale_after.get(),
        };
        let signals = self.signal_rules()?;
        let policy = match self.mode {
            Mode::Hysteresis => AnyPolicy::Hysteresis(Hysteresis::new(HysteresisConfig {
                thresholds: Thresholds::try_new(self.low, self.high)?,
                burst_weight: Weight::try_new(self.burst_weight)?,
                sustain: self.sustain.get(),
                cooldown: self.cooldown.get(),
                missing,
                capacity_fractions: self.capacity_fractions()?,
                signals,
            })),
            Mode::Overflow => AnyPolicy::Overflow(Overflow::new(OverflowConfig {
                capacity: Rate::try_new(
                    "capacity",
                    self.capacity
                        .or(self.capacity_per_endpoint)
                        .unwrap_or(self.high),
                )?,
                step: Weight::try_new(self.step)?,
                max_up: Weight::try_new(self.max_up)?,
                max_down: Weight::try_new(self.max_down)?,
                dead_band: self.dead_band,
                cooldown: self.cooldown.get(),
                missing,
                signals,
            })),
        };
        let Some(warmup) = &self.warmup else {
            return Ok(policy);
        };
        Ok(AnyPolicy::Warmed(Box::new(Warmed::new(
            policy,
            Warmup::new(warmup.build()?),
            signals,
            Some(self.trigger()),
        ))))
    }

    /// The rate the policy moves traffic at: `capacity` (or `capacityPerEndpoint`) in
    /// overflow mode, `high` in hysteresis. Pre-warming forecasts crossings of it; the
    /// warm-up's panic multiple applies to it when no capacity is known.
    pub fn trigger(&self) -> f64 {
        match self.mode {
            Mode::Overflow => self
                .capacity
                .or(self.capacity_per_endpoint)
                .unwrap_or(self.high),
            Mode::Hysteresis => self.capacity.unwrap_or(self.high),
        }
    }

    /// The pre-warm (forecaster, state machine, trigger) the `prewarm` key configures, or
    /// `None` without it. Forecasts older than `staleAfter` are not trusted.
    pub fn prewarm(&self) -> Result<Option<Prewarm>, Error> {
        let Some(spec) = &self.prewarm else {
            return Ok(None);
        };
        let (settings, method) = spec.build()?;
        let stale = self.stale_after.get().max(Duration::from_secs(1));
        Prewarm::try_new(
            method,
            settings,
            Rate::try_new("prewarm trigger", self.trigger())?,
            stale,
        )
        .map(Some)
    }
}

impl LoopSpec {
    /// Checks the tick.
    pub fn validate(&self) -> Result<(), Error> {
        if self.tick.is_zero() {
            return Err(Error::InvalidSetting {
                key: "tick",
                message: "must be longer than 0s".into(),
            });
        }
        Ok(())
    }
}

impl SimSpec {
    /// Checks the scrape interval.
    pub fn validate(&self) -> Result<(), Error> {
        if self.scrape_interval.is_zero() {
            return Err(Error::InvalidSetting {
                key: "scrapeInterval",
                message: "must be longer than 0s".into(),
            });
        }
        Ok(())
    }
}

impl From<PolicySpec> for PolicyFile {
    fn from(policy: PolicySpec) -> Self {
        PolicyFile::new(policy)
    }
}

impl PolicyFile {
    /// The keys a policy file may hold (camelCase; each may be written in snake_case too).
    pub const KEYS: &'static [&'static str] = &[
        "mode",
        "high",
        "low",
        "burstWeight",
        "capacity",
        "step",
        "maxUp",
        "maxDown",
        "deadBand",
        "sustain",
        "cooldown",
        "onMissing",
        "staleAfter",
        "window",
        "windowUp",
        "windowDown",
        "capacityPerEndpoint",
        "burstCapacityPerEndpoint",
        "highFraction",
        "lowFraction",
        "triggers",
        "burstHealth",
        "warmup",
        "prewarm",
        "tick",
        "scrapeInterval",
    ];

    /// A file holding `policy` with the default loop and simulator settings.
    pub fn new(policy: PolicySpec) -> PolicyFile {
        PolicyFile {
            policy,
            ..PolicyFile::default()
        }
    }

    /// Checks every part.
    pub fn validate(&self) -> Result<(), Error> {
        self.policy.validate()?;
        self.run.validate()?;
        self.sim.validate()
    }

    /// Reads a policy file from a JSON value (a mapping), rejecting unknown keys and naming
    /// the key of a value of the wrong type; then validates.
    pub fn from_value(value: serde_json::Value) -> Result<PolicyFile, Error> {
        let serde_json::Value::Object(map) = value else {
            return Err(Error::PolicyFile(
                "expected a mapping of policy keys (e.g. `high: 15`)".into(),
            ));
        };
        for key in map.keys() {
            let camel = camel_case(key);
            if !Self::KEYS.contains(&camel.as_str()) {
                return Err(Error::PolicyFile(format!(
                    "unknown key `{key}`; the keys are {}",
                    Self::KEYS.join(", ")
                )));
            }
        }
        if let Some((key, e)) = first_bad_key::<PolicyFile>(&map) {
            return Err(Error::PolicyFile(format!("`{key}`: {e}")));
        }
        let file: PolicyFile = serde_json::from_value(serde_json::Value::Object(map))
            .map_err(|e| Error::PolicyFile(e.to_string()))?;
        file.validate()?;
        Ok(file)
    }

    /// Parses and validates YAML (or JSON). Errors name the offending key.
    #[cfg(feature = "yaml")]
    pub fn from_yaml(text: &str) -> Result<PolicyFile, Error> {
        if text.trim().is_empty() {
            return Ok(PolicyFile::default());
        }
        let value: serde_json::Value =
            serde_saphyr::from_str(text).map_err(|e| Error::PolicyFile(e.to_string()))?;
        if value.is_null() {
            return Ok(PolicyFile::default());
        }
        PolicyFile::from_value(value)
    }

    /// The file as YAML (camelCase keys).
    #[cfg(feature = "yaml")]
    pub fn to_yaml(&self) -> Result<String, Error> {
        serde_saphyr::to_string(self).map_err(|e| Error::PolicyFile(e.to_string()))
    }
}

/// The first key of `map` whose value alone does not deserialize into `T`, and why.
///
/// serde cannot say which key of a flattened object (such as [`PolicyFile`] or a
/// BurstPolicy's `spec.policy`) holds a value of the wrong type; trying each key on its own
/// can. Every field of `T` must be optional (have a default) for this to be meaningful.
pub fn first_bad_key<T: serde::de::DeserializeOwned>(
    map: &serde_json::Map<String, serde_json::Value>,
) -> Option<(String, serde_json::Error)> {
    map.iter().find_map(|(key, value)| {
        let one = serde_json::Value::Object([(key.clone(), value.clone())].into_iter().collect());
        serde_json::from_value::<T>(one)
            .err()
            .map(|e| (key.clone(), e))
    })
}

/// `burst_weight` → `burstWeight`; camelCase stays as it is.
fn camel_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut upper = false;
    for c in key.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn weight(key: &'static str, v: i64) -> Result<Weight, Error> {
    Weight::try_new(v).map_err(|e| Error::InvalidSetting {
        key,
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> Result<PolicyFile, Error> {
        let value: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        PolicyFile::from_value(value)
    }

    #[test]
    fn defaults_are_the_seed() {
        let f = PolicyFile::default();
        assert_eq!((f.policy.high, f.policy.low), (15.0, 10.0));
        assert_eq!(f.policy.window.get(), Duration::from_secs(15));
        assert_eq!(f.run.tick.get(), Duration::from_secs(1));
        assert_eq!(f.sim.scrape_interval.get(), Duration::from_secs(1));
        assert!(!f.policy.has_two_windows());
        assert!(matches!(
            f.policy.build().unwrap(),
            AnyPolicy::Hysteresis(_)
        ));
        assert_eq!(file("{}").unwrap(), f);
    }

    #[test]
    fn parses_durations_and_modes_in_both_spellings() {
        let f = file(
            "mode: overflow\ncapacity: 20\nwindow_up: 5s\nwindowDown: 1m\ncooldown: 1m 30s\non_missing: primary\ntick: 2s\nscrape_interval: 5s\n",
        )
        .unwrap();
        let s = &f.policy;
        assert_eq!(s.mode, Mode::Overflow);
        assert_eq!(s.window_up(), Duration::from_secs(5));
        assert_eq!(s.window_down(), Duration::from_secs(60));
        assert_eq!(s.cooldown.get(), Duration::from_secs(90));
        assert_eq!(s.on_missing, OnMissing::Primary);
        assert_eq!(f.run.tick.get(), Duration::from_secs(2));
        assert_eq!(f.sim.scrape_interval.get(), Duration::from_secs(5));
        assert!(matches!(s.build().unwrap(), AnyPolicy::Overflow(_)));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("hihg: 3\n", "hihg"),
            ("high: 5\nlow: 10\n", "high/low"),
            ("step: 0\n", "step"),
            ("max_up: 101\n", "maxUp"),
            ("mode: overflow\n", "capacity"),
            ("mode: overflow\ncapacity: -1\n", "capacity"),
            ("tick: 0s\n", "tick"),
            ("scrapeInterval: 0s\n", "scrapeInterval"),
            ("dead_band: 1.5\n", "deadBand"),
            ("window: fast\n", "window"),
            ("high: lots\n", "high"),
            ("on_missing: later\n", "later"),
            ("on_missing: primary\nstale_after: 0s\n", "staleAfter"),
            ("windowUp: 1m\nwindowDown: 10s\n", "windowUp"),
            ("burst_weight: 50\nburstWeight: 60\n", "burstWeight"),
            ("capacity_per_endpoint: 0\n", "capacityPerEndpoint"),
            ("burstCapacityPerEndpoint: -2\n", "burstCapacityPerEndpoint"),
            ("mode: overflow\nhighFraction: 1\n", "capacity"),
            ("capacity: 10\nhighFraction: 1\n", "lowFraction"),
            ("capacity: 10\nlowFraction: 0.5\n", "highFraction"),
            ("high_fraction: 1\nlow_fraction: 0.5\n", "highFraction"),
            (
                "capacity: 10\nhighFraction: 0.5\nlowFraction: 0.9\n",
                "highFraction/lowFraction",
            ),
            (
                "triggers: {latency_p99_ms: {high: 100, low: 200}}\n",
                "triggers.latencyP99Ms",
            ),
            (
                "triggers: {errorRatio: {high: 2, low: 0.1}}\n",
                "triggers.errorRatio",
            ),
            ("triggers: {latencyP99: {high: 2, low: 1}}\n", "latencyP99"),
            ("triggers: {errorRatio: {high: 0.5}}\n", "low"),
            (
                "burst_health: {max_error_ratio: 1.5}\n",
                "burstHealth.maxErrorRatio",
            ),
            ("burstHealth: {onUnhealthy: later}\n", "burstHealth"),
            ("burstHealth: {minReady: -1}\n", "burstHealth"),
            ("burstHealth: {healthyAfter: soon}\n", "burstHealth"),
            ("warmup: {probe_weight: 101}\n", "warmup.probeWeight"),
            ("warmup: {ramp: [50, 25]}\n", "warmup.ramp"),
            ("warmup: {ramp: [0, 25]}\n", "warmup.ramp"),
            ("warmup: {ramp: [25], rampOver: 0s}\n", "warmup.rampOver"),
            ("warmup: {panic: 0.5}\n", "warmup.panic"),
            ("warmup: {rampUp: 1}\n", "warmup"),
            ("prewarm: {lead: 0s}\n", "prewarm.lead"),
            ("prewarm: {hold: later}\n", "prewarm"),
            (
                "prewarm: {forecast: {method: holt, alpha: 0, beta: 0.1}}\n",
                "prewarm.forecast.alpha",
            ),
            (
                "prewarm: {forecast: {method: linearTrend, window: 0s}}\n",
                "prewarm.forecast.window",
            ),
            ("prewarm: {forecast: {method: guess}}\n", "prewarm"),
        ];
        for (yaml, key) in cases {
            let err = file(yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml:?} → {err}");
        }
        let not_a_map = PolicyFile::from_value(serde_json::json!([1, 2]));
        assert!(not_a_map.unwrap_err().to_string().contains("mapping"));
    }

    #[test]
    fn keys_are_exactly_the_serialized_fields() {
        let full = PolicyFile {
            policy: PolicySpec {
                capacity: Some(3.0),
                window_up: Some(HumanDuration::from_secs(1)),
                window_down: Some(HumanDuration::from_secs(2)),
                capacity_per_endpoint: Some(1.0),
                burst_capacity_per_endpoint: Some(1.0),
                high_fraction: Some(1.0),
                low_fraction: Some(0.5),
                triggers: Some(TriggersSpec::default()),
                burst_health: Some(BurstHealthSpec::default()),
                warmup: Some(WarmupSpec::default()),
                prewarm: Some(PrewarmSpec::default()),
                ..PolicySpec::default()
            },
            ..PolicyFile::default()
        };
        let value = serde_json::to_value(&full).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(|k| k.as_str())
            .collect();
        let mut expected = PolicyFile::KEYS.to_vec();
        keys.sort_unstable();
        expected.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn signal_keys_parse_in_both_spellings() {
        let f = file(
            "mode: overflow\ncapacity_per_endpoint: 10\nburstCapacityPerEndpoint: 5\ntriggers:\n  latency_p99_ms: {high: 250, low: 150}\n  errorRatio: {high: 0.05, low: 0.01}\nburst_health:\n  min_ready: 2\n  maxErrorRatio: 0.2\n  on_unhealthy: hold\n  healthyAfter: 10s\n",
        )
        .unwrap();
        let rules = f.policy.signal_rules().unwrap();
        assert_eq!(rules.capacity.per_endpoint.map(Rate::get), Some(10.0));
        assert_eq!(rules.capacity.burst_per_endpoint.map(Rate::get), Some(5.0));
        assert_eq!(rules.capacity.fixed, None);
        let lat = rules.latency_p99_ms.unwrap();
        assert_eq!((lat.high().get(), lat.low().get()), (250.0, 150.0));
        assert_eq!(rules.error_ratio.unwrap().high().get(), 0.05);
        let h = rules.burst_health.unwrap();
        assert_eq!((h.min_ready, h.on_unhealthy), (2, OnUnhealthy::Hold));
        assert_eq!(h.healthy_after, Duration::from_secs(10));
        assert_eq!(h.max_error_ratio.map(Ratio::get), Some(0.2));
        // Overflow needs no fixed capacity once capacity comes from endpoints.
        assert!(matches!(f.policy.build().unwrap(), AnyPolicy::Overflow(_)));
        let value = serde_json::to_value(&f).unwrap();
        assert_eq!(value["triggers"]["latencyP99Ms"]["high"], 250.0);
        assert_eq!(value["burstHealth"]["onUnhealthy"], "hold");
        assert_eq!(PolicyFile::from_value(value).unwrap(), f);
        let defaults = file("burstHealth: {}\n").unwrap();
        assert_eq!(
            defaults.policy.burst_health,
            Some(BurstHealthSpec::default())
        );
    }

    #[test]
    fn old_files_keep_their_meaning() {
        // A policy file written before the signal keys existed: same fields, same policy.
        let f = file("mode: overflow\ncapacity: 20\nstep: 10\nwindowUp: 5s\nwindowDown: 30s\n")
            .unwrap();
        assert_eq!(f.policy.capacity, Some(20.0));
        let rules = f.policy.signal_rules().unwrap();
        assert_eq!(
            rules,
            SignalRules {
                capacity: CapacityRule {
                    fixed: Some(Rate::try_new("c", 20.0).unwrap()),
                    ..CapacityRule::default()
                },
                ..SignalRules::default()
            }
        );
        let value = serde_json::to_value(&f).unwrap();
        for key in [
            "triggers",
            "burstHealth",
            "capacityPerEndpoint",
            "highFraction",
        ] {
            assert!(value.get(key).is_none(), "{key} written for an old file");
        }
    }

    #[test]
    fn warmup_and_prewarm_keys_parse_in_both_spellings_and_build() {
        let f = file(
            "high: 15\nlow: 10\nwarmup:\n  probe_weight: 2\n  ramp: [10, 25, 50, 100]\n  ramp_over: 20s\n  panic: 3\nprewarm:\n  lead: 60s\n  hold: 2m\n  forecast: {method: linearTrend, window: 30s}\n",
        )
        .unwrap();
        let w = f.policy.warmup.clone().unwrap();
        let config = w.build().unwrap();
        assert_eq!(config.probe().get(), 2);
        assert_eq!(config.ramp().len(), 4);
        assert_eq!(config.step_interval(), Duration::from_secs(5));
        assert_eq!(config.panic(), 3.0);
        let (settings, method) = f.policy.prewarm.clone().unwrap().build().unwrap();
        assert_eq!(settings.lead(), Duration::from_secs(60));
        assert_eq!(settings.hold(), Duration::from_secs(120));
        assert_eq!(
            method,
            ForecastMethod::LinearTrend {
                window: HumanDuration::from_secs(30)
            }
        );
        assert!(f.policy.prewarm().unwrap().is_some());
        assert!(matches!(f.policy.build().unwrap(), AnyPolicy::Warmed(_)));
        let value = serde_json::to_value(&f).unwrap();
        assert_eq!(value["warmup"]["rampOver"], "20s");
        assert_eq!(value["prewarm"]["forecast"]["method"], "linearTrend");
        assert_eq!(PolicyFile::from_value(value).unwrap(), f);
        // Defaults: no probe, no ramp, 20s, panic 2; lead 90s, hold 5m, holt.
        let d = file("warmup: {}\nprewarm: {}\n").unwrap();
        assert_eq!(d.policy.warmup, Some(WarmupSpec::default()));
        assert_eq!(d.policy.warmup.unwrap().panic, 2.0);
        let (s, m) = d.policy.prewarm.unwrap().build().unwrap();
        assert_eq!(
            (s.lead(), s.hold(), m),
            (
                Duration::from_secs(90),
                Duration::from_secs(300),
                ForecastMethod::default()
            )
        );
        // Without the keys nothing changes.
        assert!(PolicySpec::default().prewarm().unwrap().is_none());
        assert!(matches!(
            PolicySpec::default().build().unwrap(),
            AnyPolicy::Hysteresis(_)
        ));
    }

    #[test]
    fn recommended_settings_are_valid() {
        assert!(PolicySpec::recommended().build().is_ok());
        assert!(PolicySpec::recommended_overflow(15.0).build().is_ok());
        assert!(PolicySpec::recommended().has_two_windows());
        assert!(matches!(
            PolicySpec::recommended_warmup().build().unwrap(),
            AnyPolicy::Warmed(_)
        ));
        assert!(
            PolicySpec::recommended_prewarm()
                .prewarm()
                .unwrap()
                .is_some()
        );
    }

    #[test]
    fn round_trips_through_a_value() {
        let f = PolicyFile {
            policy: PolicySpec {
                window_up: Some(HumanDuration::from_secs(3)),
                cooldown: HumanDuration::from_secs(90),
                ..PolicySpec::default()
            },
            run: LoopSpec {
                tick: HumanDuration::from_millis(500),
            },
            ..PolicyFile::default()
        };
        let value = serde_json::to_value(&f).unwrap();
        assert_eq!(value["cooldown"], "1m30s");
        assert_eq!(value["windowUp"], "3s");
        assert_eq!(PolicyFile::from_value(value).unwrap(), f);
    }

    #[test]
    fn loop_settings_fill_the_controller_config() {
        let run = LoopSpec {
            tick: HumanDuration::from_secs(3),
        };
        let c = run.controller_config(ControllerConfig {
            dry_run: true,
            ..ControllerConfig::default()
        });
        assert_eq!(c.tick, Duration::from_secs(3));
        assert!(c.dry_run);
    }

    #[test]
    fn schema_carries_the_cel_rules_and_the_duration_pattern() {
        let schema = serde_json::to_value(schemars::schema_for!(PolicySpec)).unwrap();
        let rules = schema["x-kubernetes-validations"].as_array().unwrap();
        assert_eq!(rules.len(), PolicySpec::CEL_RULES.len());
        assert!(rules.iter().any(|r| r["fieldPath"] == ".low"));
        assert!(
            rules
                .iter()
                .any(|r| r["fieldPath"] == ".triggers.latencyP99Ms.low")
        );
        // Every CEL rule names only keys the schema has.
        for r in PolicySpec::CEL_RULES {
            let top = r
                .field_path
                .trim_start_matches('.')
                .split('.')
                .next()
                .unwrap();
            assert!(schema["properties"].get(top).is_some(), "{}", r.field_path);
        }
        let props = &schema["properties"];
        assert_eq!(props["cooldown"]["pattern"], HumanDuration::PATTERN);
        assert_eq!(props["window"]["default"], "15s");
        assert_eq!(props["burstWeight"]["maximum"], 100);
        assert!(props.get("burst_weight").is_none());
        let looped = serde_json::to_value(schemars::schema_for!(LoopSpec)).unwrap();
        assert_eq!(looped["properties"]["tick"]["default"], "1s");
    }
}
