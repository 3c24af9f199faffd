//! What burstd reports about a policy: the `status` subresource's types.

use burst_core::{Rates, Split};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// What burstd reports about a policy.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BurstPolicyStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default)]
    pub observed_generation: Option<i64>,
    /// Where traffic goes: `Primary`, `Burst`, `Split`, or `Paused`, `Pending`, `Unknown`.
    #[serde(default)]
    pub mode: Option<StatusMode>,
    /// Weight of the burst destination in effect.
    #[serde(default)]
    pub burst_weight: Option<i64>,
    /// The split in effect.
    #[serde(default)]
    pub split: Option<SplitStatus>,
    /// The split the policy wants (differs from `split` in dry run or while an apply fails).
    #[serde(default)]
    pub desired_split: Option<SplitStatus>,
    /// Last measured rate, short window (absent when there is no data).
    #[serde(default)]
    pub observed_rps: Option<f64>,
    /// Last measured rate, long window (absent when there is no data).
    #[serde(default)]
    pub observed_rps_long: Option<f64>,
    /// What the source gave last: a value, no data, or an error.
    #[serde(default)]
    pub observation: Option<ObservationStatus>,
    /// The policy's last decision.
    #[serde(default)]
    pub last_decision: Option<DecisionStatus>,
    /// When the split last changed.
    #[serde(default)]
    pub last_transition_time: Option<Time>,
    /// Why the split last changed.
    #[serde(default)]
    pub last_transition_reason: Option<String>,
    /// Whether the policy runs in dry run.
    #[serde(default)]
    pub dry_run: Option<bool>,
    /// `Ready` (the route is controlled) and `Degraded` (a source or router error).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// Pre-warming, when `spec.prewarm` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prewarm: Option<super::prewarm::PrewarmStatus>,
}

/// Where traffic goes.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum StatusMode {
    /// Not started yet.
    Pending,
    /// All traffic to the primary.
    Primary,
    /// All traffic to burst.
    Burst,
    /// Traffic divided between both.
    Split,
    /// The policy is paused.
    Paused,
    /// The split in effect cannot be read.
    Unknown,
}

/// Two weights.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SplitStatus {
    /// Primary weight.
    pub primary: i64,
    /// Burst weight.
    pub burst: i64,
}

/// What the source gave.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ObservationStatus {
    /// `Value`, `NoData` or `Error`.
    pub state: ObservationState,
    /// The reading, the no-data reason or the error.
    pub message: String,
    /// Error kind (`timeout`, `http`, ...), for errors.
    #[serde(default)]
    pub error_kind: Option<String>,
}

/// Kinds of observations.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
pub enum ObservationState {
    /// A rate was measured.
    Value,
    /// The source answered without data.
    NoData,
    /// The source failed.
    Error,
}

/// A decision and its reason.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecisionStatus {
    /// The rule that fired (`above_high`, `in_band`, ...).
    pub rule: String,
    /// The values it looked at.
    pub detail: String,
}

impl From<Split> for SplitStatus {
    fn from(s: Split) -> Self {
        SplitStatus {
            primary: i64::from(s.primary().get()),
            burst: i64::from(s.burst().get()),
        }
    }
}

impl StatusMode {
    /// The mode for a split in effect.
    pub fn of(split: Split) -> StatusMode {
        match split.burst().get() {
            0 => StatusMode::Primary,
            100 => StatusMode::Burst,
            _ => StatusMode::Split,
        }
    }
}

/// Rates as status fields: `(short, long)`.
pub fn observed(rates: &Rates) -> (f64, f64) {
    (rates.up.get(), rates.down.get())
}
