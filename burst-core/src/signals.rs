//! Signals a source may measure besides the demand rate: latency, errors, ready endpoints.
//!
//! Every signal is optional. `None` means "no data for this signal" and is never read as 0:
//! a policy treats a missing signal with the no-data rule, per signal.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::Error;

/// A share between 0 and 1 (an error ratio): finite, `0 <= r <= 1`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Ratio(f64);

/// A latency in milliseconds: finite and `>= 0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(try_from = "f64", into = "f64")]
pub struct Millis(f64);

/// The named signals of one observation besides the demand rate.
///
/// Sources fill what they measure; the rest stays `None` (no data).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Signals {
    /// The primary's p99 latency.
    pub primary_p99: Option<Millis>,
    /// The primary's error ratio (5xx and 429 over all responses).
    pub primary_error_ratio: Option<Ratio>,
    /// Ready endpoints of the primary.
    pub primary_ready: Option<u32>,
    /// Ready endpoints of the burst side.
    pub burst_ready: Option<u32>,
    /// The burst side's error ratio (5xx and 429 over all responses).
    pub burst_error_ratio: Option<Ratio>,
}

impl Ratio {
    /// 0.
    pub const ZERO: Ratio = Ratio(0.0);

    /// A ratio; NaN, infinities and values outside `[0, 1]` are rejected. `what` names the
    /// quantity in errors.
    pub fn try_new(what: &'static str, value: f64) -> Result<Ratio, Error> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Ratio(value + 0.0))
        } else {
            Err(Error::InvalidSetting {
                key: what,
                message: format!("{value} is not a ratio; use a number from 0 to 1"),
            })
        }
    }

    /// The value.
    pub const fn get(self) -> f64 {
        self.0
    }
}

impl Millis {
    /// A latency; NaN, infinities and negatives are rejected. `what` names the quantity in
    /// errors.
    pub fn try_new(what: &'static str, value: f64) -> Result<Millis, Error> {
        if value.is_finite() && value >= 0.0 {
            Ok(Millis(value + 0.0))
        } else {
            Err(Error::InvalidSetting {
                key: what,
                message: format!("{value} is not a latency; use milliseconds >= 0"),
            })
        }
    }

    /// The value in milliseconds.
    pub const fn get(self) -> f64 {
        self.0
    }
}

impl TryFrom<f64> for Ratio {
    type Error = Error;
    fn try_from(value: f64) -> Result<Self, Error> {
        Ratio::try_new("ratio", value)
    }
}

impl From<Ratio> for f64 {
    fn from(r: Ratio) -> f64 {
        r.0
    }
}

impl TryFrom<f64> for Millis {
    type Error = Error;
    fn try_from(value: f64) -> Result<Self, Error> {
        Millis::try_new("latency", value)
    }
}

impl From<Millis> for f64 {
    fn from(m: Millis) -> f64 {
        m.0
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3}", self.0)
    }
}

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}ms", self.0)
    }
}

impl Signals {
    /// No signal measured.
    pub const NONE: Signals = Signals {
        primary_p99: None,
        primary_error_ratio: None,
        primary_ready: None,
        burst_ready: None,
        burst_error_ratio: None,
    };

    /// Fills every signal `self` lacks from `other` (a source composed of several parts).
    #[must_use]
    pub fn or(self, other: Signals) -> Signals {
        Signals {
            primary_p99: self.primary_p99.or(other.primary_p99),
            primary_error_ratio: self.primary_error_ratio.or(other.primary_error_ratio),
            primary_ready: self.primary_ready.or(other.primary_ready),
            burst_ready: self.burst_ready.or(other.burst_ready),
            burst_error_ratio: self.burst_error_ratio.or(other.burst_error_ratio),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_refuses_outside_zero_one() {
        assert!(Ratio::try_new("errorRatio", 1.5).is_err());
        assert!(Ratio::try_new("errorRatio", -0.1).is_err());
        assert!(Ratio::try_new("errorRatio", f64::NAN).is_err());
        assert_eq!(
            Ratio::try_new("errorRatio", 0.25).map(Ratio::get).ok(),
            Some(0.25)
        );
    }

    #[test]
    fn millis_refuses_negative_and_nan() {
        assert!(Millis::try_new("p99", -1.0).is_err());
        assert!(Millis::try_new("p99", f64::INFINITY).is_err());
        assert_eq!(
            Millis::try_new("p99", 12.5).map(Millis::get).ok(),
            Some(12.5)
        );
    }

    #[test]
    fn or_keeps_own_values_and_fills_gaps() {
        let a = Signals {
            primary_ready: Some(2),
            ..Signals::NONE
        };
        let b = Signals {
            primary_ready: Some(9),
            burst_ready: Some(3),
            ..Signals::NONE
        };
        let c = a.or(b);
        assert_eq!(c.primary_ready, Some(2));
        assert_eq!(c.burst_ready, Some(3));
        assert_eq!(c.primary_p99, None);
    }
}
