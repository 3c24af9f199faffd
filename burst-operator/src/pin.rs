//! `spec.pin`: a fixed split held until a time, in front of the policy.
//!
//! [`Pinned`] wraps the policy of a loop. While `now < until` it answers with the pinned
//! split and the rule `pinned` (so the controller applies it, and repairs drift back to
//! it); the wrapped policy still sees every tick, so its timers and windows are current
//! when it takes over. From `until` on it answers with the policy's own decision: the pin
//! ends on the first tick after `until`, without any write to the spec. Pure: time is
//! passed in.

use burst_core::policy::{Decision, Policy, Reason, Rule, Signal};
use burst_core::{Split, Timestamp};

use crate::Error;
use crate::api::PinSpec;

/// The rule name of a pinned decision (status `lastDecision.rule`, metrics).
pub const PINNED: &str = "pinned";

/// A pin in effect: the split and its end.
#[derive(Debug, Clone, PartialEq)]
pub struct Pin {
    /// The split held.
    pub split: Split,
    /// When it ends.
    pub until: Timestamp,
    /// `until` as written in the spec (RFC 3339), for messages.
    pub until_text: String,
}

/// A policy with an optional pin in front. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Pinned<P> {
    inner: P,
    pin: Option<Pin>,
}

impl Pin {
    /// The pin of a spec (`None` without `spec.pin`).
    pub fn from_spec(spec: Option<&PinSpec>) -> Result<Option<Pin>, Error> {
        spec.map(|p| {
            Ok(Pin {
                split: p.split()?,
                until: p.until_timestamp(),
                until_text: p.until.0.to_string(),
            })
        })
        .transpose()
    }

    /// Whether the pin holds at `now`.
    pub fn holds_at(&self, now: Timestamp) -> bool {
        now < self.until
    }
}

impl<P: Policy> Pinned<P> {
    /// `inner` behind `pin`.
    pub fn new(inner: P, pin: Option<Pin>) -> Pinned<P> {
        Pinned { inner, pin }
    }
}

impl<P: Policy> Policy for Pinned<P> {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        let own = self.inner.decide(signal, current, now);
        match &self.pin {
            Some(pin) if pin.holds_at(now) => Decision {
                desired: pin.split,
                reason: Reason {
                    rule: Rule::Custom(PINNED),
                    rates: own.reason.rates,
                    current,
                    detail: format!(
                        "pinned at {} until {}; the policy would choose {} ({}: {})",
                        pin.split, pin.until_text, own.desired, own.reason.rule, own.reason.detail
                    ),
                },
            },
            _ => own,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use burst_core::policy::PolicySpec;
    use burst_core::{Rate, Rates, Weight};

    use super::*;

    fn ts(s: u64) -> Timestamp {
        Timestamp::from_duration(Duration::from_secs(1_800_000_000 + s))
    }

    fn rates(v: f64) -> Signal {
        let r = Rate::try_new("rate", v).unwrap();
        Signal::Rates(Rates { up: r, down: r })
    }

    #[test]
    fn holds_the_pinned_split_until_the_end_then_the_policy_decides() {
        let policy = PolicySpec::default().build().unwrap();
        let split = Split::from_burst(Weight::try_new(40).unwrap());
        let pin = Pin {
            split,
            until: ts(10),
            until_text: "2027-01-15T08:00:10Z".into(),
        };
        let mut p = Pinned::new(policy, Some(pin));
        // Low traffic: the policy wants the primary, the pin holds 60/40.
        let d = p.decide(&rates(1.0), Split::ALL_PRIMARY, ts(9));
        assert_eq!(d.desired, split);
        assert_eq!(d.reason.rule.name(), PINNED);
        assert!(
            d.reason.detail.contains("until 2027-01-15T08:00:10Z"),
            "{}",
            d.reason.detail
        );
        // At `until` the pin is over.
        let d = p.decide(&rates(1.0), split, ts(10));
        assert_eq!(d.desired, Split::ALL_PRIMARY);
        assert_ne!(d.reason.rule.name(), PINNED);
    }

    #[test]
    fn without_a_pin_the_policy_decides() {
        let mut p = Pinned::new(PolicySpec::default().build().unwrap(), None);
        let d = p.decide(&rates(100.0), Split::ALL_PRIMARY, ts(0));
        assert_eq!(d.desired, Split::ALL_BURST);
    }

    #[test]
    fn a_weight_above_100_names_the_field() {
        let spec = PinSpec {
            burst_weight: 101,
            until: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
            ),
        };
        let e = Pin::from_spec(Some(&spec)).unwrap_err();
        assert!(e.to_string().contains("spec.pin.burstWeight"), "{e}");
    }
}
