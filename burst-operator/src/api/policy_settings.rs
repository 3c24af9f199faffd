//! `spec.policy`: the all-optional mirror of the policy file ([`PolicySettings`]) and its
//! one conversion to [`burst_core::policy::PolicySpec`], with errors naming the
//! `spec.policy` field. Kept apart so the typed core model can replace it in one place.

use burst_core::policy::{LoopSpec, Mode, OnMissing, PolicySpec};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration;
use crate::Error;

/// The decision policy; the keys of `burst simulate`'s policy file, in camelCase.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!has(self.high) || !has(self.low) || self.low < self.high",
    "message": "`low` must be below `high`",
    "fieldPath": ".low"
}]))]
pub struct PolicySettings {
    /// `hysteresis` (all-or-nothing between two thresholds, the default) or `overflow`
    /// (proportional to the load above `capacity`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<PolicyModeSpec>,
    /// High threshold in rps (default 15): above it, move to burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<f64>,
    /// Low threshold in rps (default 10): below it, come back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<f64>,
    /// Hysteresis: burst weight while bursting, 1..=100 (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub burst_weight: Option<i64>,
    /// Overflow: rps the primary serves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capacity: Option<f64>,
    /// Overflow: weight step in percentage points (default 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub step: Option<i64>,
    /// Overflow: largest increase of the burst weight per tick (default 100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_up: Option<i64>,
    /// Overflow: largest decrease of the burst weight per tick (default 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 100))]
    pub max_down: Option<i64>,
    /// Overflow: spare room, as a fraction of capacity, needed before coming back (default 0.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dead_band: Option<f64>,
    /// Hysteresis: how long the switch condition must hold (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sustain: Option<String>,
    /// Minimum time between changes (default `0s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cooldown: Option<String>,
    /// Where traffic goes once data has been missing for `staleAfter`: `hold` (default),
    /// `primary` or `burst`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_missing: Option<OnMissingSpec>,
    /// How long data may be missing before `onMissing` applies (default `60s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stale_after: Option<String>,
    /// Decision interval (default `1s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tick: Option<String>,
    /// Rate window for both directions (default `15s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// Short window deciding moves to burst (default: `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_up: Option<String>,
    /// Long window deciding moves back (default: `window`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_down: Option<String>,
}

/// Which policy runs.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PolicyModeSpec {
    /// All-or-nothing between two thresholds.
    Hysteresis,
    /// Proportional to the load above `capacity`.
    Overflow,
}

/// Safe target when data is stale.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnMissingSpec {
    /// Keep the last decision.
    Hold,
    /// Everything to the primary.
    Primary,
    /// Everything to burst.
    Burst,
}

/// `burst_weight` → `burstWeight`.
fn camel(key: &str) -> String {
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

impl PolicySettings {
    /// The loop settings (`tick`), checked.
    pub fn loop_spec(&self) -> Result<LoopSpec, Error> {
        let mut l = LoopSpec::default();
        if let Some(d) = duration("spec.policy.tick", &self.tick)? {
            l.tick = d.into();
        }
        l.validate()
            .map_err(|e| Error::invalid("spec.policy.tick", e.to_string()))?;
        Ok(l)
    }

    /// The policy file equivalent, validated; errors name the `spec.policy` field.
    pub fn to_policy_spec(&self) -> Result<PolicySpec, Error> {
        let f = |k: &str| format!("spec.policy.{k}");
        let mut p = PolicySpec::default();
        if let Some(m) = self.mode {
            p.mode = match m {
                PolicyModeSpec::Hysteresis => Mode::Hysteresis,
                PolicyModeSpec::Overflow => Mode::Overflow,
            };
        }
        p.high = self.high.unwrap_or(p.high);
        p.low = self.low.unwrap_or(p.low);
        p.burst_weight = self.burst_weight.unwrap_or(p.burst_weight);
        p.capacity = self.capacity.or(p.capacity);
        p.step = self.step.unwrap_or(p.step);
        p.max_up = self.max_up.unwrap_or(p.max_up);
        p.max_down = self.max_down.unwrap_or(p.max_down);
        p.dead_band = self.dead_band.unwrap_or(p.dead_band);
        if let Some(d) = duration(&f("sustain"), &self.sustain)? {
            p.sustain = d.into();
        }
        if let Some(d) = duration(&f("cooldown"), &self.cooldown)? {
            p.cooldown = d.into();
        }
        if let Some(m) = self.on_missing {
            p.on_missing = match m {
                OnMissingSpec::Hold => OnMissing::Hold,
                OnMissingSpec::Primary => OnMissing::Primary,
                OnMissingSpec::Burst => OnMissing::Burst,
            };
        }
        if let Some(d) = duration(&f("staleAfter"), &self.stale_after)? {
            p.stale_after = d.into();
        }
        self.loop_spec()?;
        if let Some(d) = duration(&f("window"), &self.window)? {
            p.window = d.into();
        }
        p.window_up = duration(&f("windowUp"), &self.window_up)?.map(Into::into);
        p.window_down = duration(&f("windowDown"), &self.window_down)?.map(Into::into);
        p.validate().map_err(|e| match e {
            burst_core::Error::InvalidSetting { key, message } => {
                let fields: Vec<String> = key.split('/').map(|k| f(&camel(k))).collect();
                Error::invalid(fields.join("/"), message)
            }
            other => Error::invalid("spec.policy", other.to_string()),
        })?;
        if p.window_up() > p.window_down() {
            return Err(Error::invalid(
                "spec.policy.windowUp",
                format!(
                    "{} is longer than windowDown {}; the window deciding moves to burst must be the shorter one",
                    humantime::format_duration(p.window_up()),
                    humantime::format_duration(p.window_down())
                ),
            ));
        }
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_errors_name_the_camel_case_field() {
        let cases = [
            (r#"{"low": 20}"#, "spec.policy.high/spec.policy.low"),
            (r#"{"step": 0}"#, "spec.policy.step"),
            (r#"{"tick": "soon"}"#, "spec.policy.tick"),
            (r#"{"mode": "overflow"}"#, "spec.policy.capacity"),
            (r#"{"burstWeight": 0}"#, "spec.policy.burstWeight"),
            (
                r#"{"windowUp": "1m", "windowDown": "10s"}"#,
                "spec.policy.windowUp",
            ),
        ];
        for (json, field) in cases {
            let s: PolicySettings = serde_json::from_str(json).unwrap();
            let e = s.to_policy_spec().unwrap_err().to_string();
            assert!(e.contains(field), "{json} → {e}");
        }
    }

    #[test]
    fn camel_case_keys() {
        assert_eq!(camel("burst_weight"), "burstWeight");
        assert_eq!(camel("high"), "high");
    }
}
