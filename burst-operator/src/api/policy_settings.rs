//! `spec.policy`: the core's typed policy model, as it sits in a BurstPolicy.
//!
//! [`PolicySettings`] is not a copy of the policy: it *is* [`burst_core::policy::PolicySpec`]
//! (the decision) and [`burst_core::policy::LoopSpec`] (`tick`), flattened into one object.
//! The CRD's schema for `spec.policy` is generated from those types: camelCase keys, the
//! defaults (which the API server fills in), ranges, the duration pattern, and the CEL rules
//! of [`PolicySpec::CEL_RULES`], so the API server refuses a bad policy before burstd sees
//! it. [`PolicySettings::validate`] runs the same checks for objects that did not come
//! through an API server (burstd's single-policy mode), naming the `spec.policy` field.

use burst_core::policy::{CelRule, LoopSpec, PolicySpec, first_bad_key};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::Error;

/// The decision policy and its tick; every key optional, defaults are the seed (hysteresis
/// 15/10 rps over 15 s, 1 s tick).
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Default, JsonSchema)]
#[schemars(extend("x-kubernetes-validations" = CelRule::json(
    PolicySpec::CEL_RULES.iter().chain(LoopSpec::CEL_RULES)
)))]
pub struct PolicySettings {
    /// The decision: thresholds, weights, timers, no-data rule, windows.
    #[serde(flatten)]
    pub policy: PolicySpec,
    /// The loop: `tick`.
    #[serde(flatten)]
    pub run: LoopSpec,
}

impl PolicySettings {
    /// Checks every value; errors name the `spec.policy` field.
    pub fn validate(&self) -> Result<(), Error> {
        let field = |e: burst_core::Error| match e {
            burst_core::Error::InvalidSetting { key, message } => {
                let fields: Vec<String> =
                    key.split('/').map(|k| format!("spec.policy.{k}")).collect();
                Error::invalid(fields.join("/"), message)
            }
            other => Error::invalid("spec.policy", other.to_string()),
        };
        self.policy.validate().map_err(field)?;
        self.run.validate().map_err(field)
    }

    /// Reads `spec.policy` from a JSON value, naming the field of a value of the wrong type
    /// (serde alone cannot name it inside a flattened object).
    pub fn from_value(value: &serde_json::Value) -> Result<PolicySettings, Error> {
        if let Some((key, e)) = value.as_object().and_then(first_bad_key::<PolicySettings>) {
            return Err(Error::invalid(format!("spec.policy.{key}"), e.to_string()));
        }
        serde_json::from_value(value.clone())
            .map_err(|e| Error::invalid("spec.policy", e.to_string()))
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
            (r#"{"tick": "0s"}"#, "spec.policy.tick"),
            (r#"{"mode": "overflow"}"#, "spec.policy.capacity"),
            (r#"{"burstWeight": 0}"#, "spec.policy.burstWeight"),
            (
                r#"{"windowUp": "1m", "windowDown": "10s"}"#,
                "spec.policy.windowUp",
            ),
        ];
        for (json, field) in cases {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            let s = PolicySettings::from_value(&value).unwrap();
            let e = s.validate().unwrap_err().to_string();
            assert!(e.contains(field), "{json} → {e}");
        }
    }

    #[test]
    fn type_errors_name_the_field() {
        for (json, field) in [
            (r#"{"tick": "soon"}"#, "spec.policy.tick"),
            (r#"{"high": "lots"}"#, "spec.policy.high"),
            (r#"{"onMissing": "later"}"#, "spec.policy.onMissing"),
        ] {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            let e = PolicySettings::from_value(&value).unwrap_err().to_string();
            assert!(e.contains(field), "{json} → {e}");
        }
    }

    #[test]
    fn the_crd_form_is_the_core_model() {
        let value = serde_json::json!({
            "mode": "overflow", "capacity": 40.0, "windowUp": "2s", "windowDown": "30s",
            "cooldown": "1m30s", "tick": "500ms",
        });
        let s = PolicySettings::from_value(&value).unwrap();
        assert_eq!(s.policy.capacity, Some(40.0));
        assert_eq!(s.run.tick.get(), std::time::Duration::from_millis(500));
        let back = serde_json::to_value(&s).unwrap();
        assert_eq!(back["cooldown"], "1m30s");
        assert_eq!(PolicySettings::from_value(&back).unwrap(), s);
    }
}
