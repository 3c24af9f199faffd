//! Value types whose constructors enforce their invariants.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::Error;
use crate::signals::Signals;

/// A route weight: a percentage from 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "i64", into = "u8")]
pub struct Weight(u8);

/// How traffic is divided between the primary and the burst destination.
///
/// The two weights always sum to 100, as Istio requires of a route's destinations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "SplitRepr", into = "SplitRepr")]
pub struct Split {
    burst: Weight,
}

#[derive(Serialize, Deserialize)]
struct SplitRepr {
    primary: i64,
    burst: i64,
}

/// A rate (requests per second, or any non-negative metric value): finite and `>= 0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Rate(f64);

/// A pair of thresholds with `low < high`, both valid rates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    low: Rate,
    high: Rate,
}

/// A point in time, as a duration since the Unix epoch.
///
/// Pure code never reads a clock: callers pass a `Timestamp` in. The simulator starts its
/// virtual clock at [`Timestamp::ZERO`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(Duration);

/// The measured rate per configured window.
///
/// `up` is the short window that decides entering burst (or increasing the burst share);
/// `down` is the long window that decides leaving it. With one window, both are equal.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Rates {
    /// Rate over the short ("panic") window.
    pub up: Rate,
    /// Rate over the long ("stable") window.
    pub down: Rate,
}

/// A successful measurement: rates, the other signals, and the time of the sample they come
/// from.
///
/// Built with [`Observation::new`] and [`Observation::with_signals`]; more signals may be added
/// in later versions without breaking sources written outside burst.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Observation {
    /// The measured rates.
    pub rates: Rates,
    /// When the sample was taken (by the source's clock).
    pub sampled_at: Timestamp,
    /// Latency, errors and ready endpoints, where the source measures them.
    pub signals: Signals,
}

impl Observation {
    /// An observation of the demand rate alone (no other signal).
    pub const fn new(rates: Rates, sampled_at: Timestamp) -> Observation {
        Observation {
            rates,
            sampled_at,
            signals: Signals::NONE,
        }
    }

    /// The same observation with these signals.
    #[must_use]
    pub const fn with_signals(mut self, signals: Signals) -> Observation {
        self.signals = signals;
        self
    }
}

impl Weight {
    /// 0 %.
    pub const ZERO: Weight = Weight(0);
    /// 100 %.
    pub const FULL: Weight = Weight(100);

    /// A weight from any integer; values outside `0..=100` are rejected.
    pub fn try_new(value: i64) -> Result<Self, Error> {
        u8::try_from(value)
            .ok()
            .filter(|v| *v <= 100)
            .map(Weight)
            .ok_or(Error::WeightOutOfRange(value))
    }

    /// The percentage.
    pub const fn get(self) -> u8 {
        self.0
    }

    /// `100 - self`.
    pub const fn complement(self) -> Weight {
        Weight(100 - self.0)
    }

    /// `self + by`, capped at 100.
    pub fn saturating_add(self, by: u8) -> Weight {
        Weight(self.0.saturating_add(by).min(100))
    }

    /// `self - by`, floored at 0.
    pub fn saturating_sub(self, by: u8) -> Weight {
        Weight(self.0.saturating_sub(by))
    }
}

impl TryFrom<i64> for Weight {
    type Error = Error;
    fn try_from(value: i64) -> Result<Self, Error> {
        Weight::try_new(value)
    }
}

impl From<Weight> for u8 {
    fn from(w: Weight) -> u8 {
        w.0
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Split {
    /// Everything to the primary (the seed's "natural" state, 100/0).
    pub const ALL_PRIMARY: Split = Split {
        burst: Weight::ZERO,
    };
    /// Everything to the burst destination (the seed's "burst" state, 0/100).
    pub const ALL_BURST: Split = Split {
        burst: Weight::FULL,
    };

    /// The split that sends `burst` to the burst destination and the rest to the primary.
    pub const fn from_burst(burst: Weight) -> Split {
        Split { burst }
    }

    /// A split from both weights; they must sum to 100.
    pub fn try_new(primary: i64, burst: i64) -> Result<Split, Error> {
        let p = Weight::try_new(primary)?;
        let b = Weight::try_new(burst)?;
        if u16::from(p.0) + u16::from(b.0) != 100 {
            return Err(Error::SplitSum {
                primary: p.0,
                burst: b.0,
                sum: u16::from(p.0) + u16::from(b.0),
            });
        }
        Ok(Split { burst: b })
    }

    /// Weight of the primary destination.
    pub const fn primary(self) -> Weight {
        self.burst.complement()
    }

    /// Weight of the burst destination.
    pub const fn burst(self) -> Weight {
        self.burst
    }

    /// Whether any traffic goes to the burst destination.
    pub const fn is_bursting(self) -> bool {
        self.burst.0 > 0
    }
}

impl TryFrom<SplitRepr> for Split {
    type Error = Error;
    fn try_from(r: SplitRepr) -> Result<Self, Error> {
        Split::try_new(r.primary, r.burst)
    }
}

impl From<Split> for SplitRepr {
    fn from(s: Split) -> Self {
        SplitRepr {
            primary: i64::from(s.primary().0),
            burst: i64::from(s.burst.0),
        }
    }
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.primary(), self.burst)
    }
}

impl Rate {
    /// Zero.
    pub const ZERO: Rate = Rate(0.0);

    /// A rate; NaN, infinities and negatives are rejected. `what` names the quantity in errors.
    pub fn try_new(what: &'static str, value: f64) -> Result<Rate, Error> {
        if value.is_finite() && value >= 0.0 {
            // Normalise -0.0 so equal rates compare and print equal.
            Ok(Rate(value + 0.0))
        } else {
            Err(Error::InvalidRate { what, value })
        }
    }

    /// The value.
    pub const fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Rate {
    type Error = Error;
    fn try_from(value: f64) -> Result<Self, Error> {
        Rate::try_new("rate", value)
    }
}

impl From<Rate> for f64 {
    fn from(r: Rate) -> f64 {
        r.0
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.0)
    }
}

impl Thresholds {
    /// Thresholds from raw values: both valid rates and `low < high`.
    pub fn try_new(low: f64, high: f64) -> Result<Thresholds, Error> {
        let low_r = Rate::try_new("low threshold", low)?;
        let high_r = Rate::try_new("high threshold", high)?;
        if low_r.0 < high_r.0 {
            Ok(Thresholds {
                low: low_r,
                high: high_r,
            })
        } else {
            Err(Error::ThresholdOrder { low, high })
        }
    }

    /// The lower threshold: below it, traffic goes back to the primary.
    pub const fn low(self) -> Rate {
        self.low
    }

    /// The upper threshold: above it, traffic moves to the burst destination.
    pub const fn high(self) -> Rate {
        self.high
    }
}

impl fmt::Display for Thresholds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.high.0, self.low.0)
    }
}

impl Timestamp {
    /// The Unix epoch; the simulator's `t = 0`.
    pub const ZERO: Timestamp = Timestamp(Duration::ZERO);

    /// A timestamp `since` after the epoch.
    pub const fn from_duration(since: Duration) -> Timestamp {
        Timestamp(since)
    }

    /// A timestamp from (fractional) seconds since the epoch; invalid values give `None`.
    pub fn from_secs_f64(secs: f64) -> Option<Timestamp> {
        Duration::try_from_secs_f64(secs).ok().map(Timestamp)
    }

    /// Seconds since the epoch.
    pub fn as_secs_f64(self) -> f64 {
        self.0.as_secs_f64()
    }

    /// Time since the epoch.
    pub const fn as_duration(self) -> Duration {
        self.0
    }

    /// `self - earlier`, or zero when `earlier` is later.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        self.0.saturating_sub(earlier.0)
    }

    /// `self + d` (saturating).
    pub fn saturating_add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d))
    }
}

impl Rates {
    /// The same rate for both windows (one window configured).
    pub const fn single(rate: Rate) -> Rates {
        Rates {
            up: rate,
            down: rate,
        }
    }
}

impl fmt::Display for Rates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.up == self.down {
            write!(f, "{}", self.down)
        } else {
            write!(
                f,
                "{} (short window) / {} (long window)",
                self.up, self.down
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn weight_bounds() {
        assert_eq!(Weight::try_new(0).unwrap().get(), 0);
        assert_eq!(Weight::try_new(100).unwrap().get(), 100);
        assert_eq!(Weight::try_new(101), Err(Error::WeightOutOfRange(101)));
        assert_eq!(Weight::try_new(-1), Err(Error::WeightOutOfRange(-1)));
    }

    #[test]
    fn split_must_sum_to_100() {
        let s = Split::try_new(80, 20).unwrap();
        assert_eq!((s.primary().get(), s.burst().get()), (80, 20));
        assert!(matches!(
            Split::try_new(80, 30),
            Err(Error::SplitSum { sum: 110, .. })
        ));
        assert_eq!(Split::ALL_PRIMARY.to_string(), "100/0");
        assert!(!Split::ALL_PRIMARY.is_bursting());
        assert!(Split::ALL_BURST.is_bursting());
    }

    #[test]
    fn split_deserialises_only_when_valid() {
        let ok: Split = serde_json::from_str(r#"{"primary":50,"burst":50}"#).unwrap();
        assert_eq!(ok.burst().get(), 50);
        let err = serde_json::from_str::<Split>(r#"{"primary":50,"burst":60}"#).unwrap_err();
        assert!(err.to_string().contains("must sum to 100"), "{err}");
    }

    #[test]
    fn rates_reject_nan_inf_negative() {
        for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -0.5] {
            assert!(Rate::try_new("x", bad).is_err(), "{bad} accepted");
        }
        assert_eq!(
            Rate::try_new("x", -0.0).unwrap().get().to_bits(),
            0.0f64.to_bits()
        );
    }

    #[test]
    fn thresholds_need_low_below_high() {
        let t = Thresholds::try_new(10.0, 15.0).unwrap();
        assert_eq!((t.low().get(), t.high().get()), (10.0, 15.0));
        assert!(matches!(
            Thresholds::try_new(15.0, 15.0),
            Err(Error::ThresholdOrder { .. })
        ));
        assert!(matches!(
            Thresholds::try_new(f64::NAN, 15.0),
            Err(Error::InvalidRate { .. })
        ));
    }

    proptest! {
        #[test]
        fn any_burst_weight_gives_a_split_summing_to_100(b in 0i64..=100) {
            let s = Split::from_burst(Weight::try_new(b).unwrap());
            prop_assert_eq!(u16::from(s.primary().get()) + u16::from(s.burst().get()), 100);
            prop_assert_eq!(Split::try_new(i64::from(s.primary().get()), b).unwrap(), s);
        }

        #[test]
        fn weight_try_new_accepts_exactly_0_to_100(v in any::<i64>()) {
            prop_assert_eq!(Weight::try_new(v).is_ok(), (0..=100).contains(&v));
        }

        #[test]
        fn saturating_ops_stay_in_range(w in 0i64..=100, by in any::<u8>()) {
            let w = Weight::try_new(w).unwrap();
            prop_assert!(w.saturating_add(by).get() <= 100);
            prop_assert!(w.saturating_sub(by).get() <= 100);
        }
    }
}
