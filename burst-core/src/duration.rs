//! [`HumanDuration`]: a duration written the way people and Kubernetes write them.
//!
//! Policies are configured in YAML files, `BURST_*` variables, flags and BurstPolicy
//! objects. Every duration there is a string such as `15s`, `1m30s` or `500ms`: this type
//! parses it once, at the edge, so the rest of the code holds a [`std::time::Duration`].
//!
//! - **Parsing** accepts Go's form (`1m30s`, `1.5s`, `250ms`, `2h`; what `kubectl` and the
//!   CEL `duration()` function take) and the spaced form (`1m 30s`, `2 days`).
//! - **Printing** always gives the compact Go form, with no spaces, so a value written back
//!   into a BurstPolicy passes the CRD's pattern and its CEL rules.
//! - With the `schema` feature, its JSON schema is a string with [`HumanDuration::PATTERN`],
//!   which the Kubernetes API server enforces before burstd sees a policy.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A [`Duration`] that reads and prints as `15s`, `1m30s`, `500ms`. See the
/// [module docs](self).
///
/// ```
/// use burst_core::HumanDuration;
/// use std::time::Duration;
///
/// let d: HumanDuration = "1m 30s".parse()?;
/// assert_eq!(d.get(), Duration::from_secs(90));
/// assert_eq!(d.to_string(), "1m30s");
/// assert_eq!("1.5s".parse::<HumanDuration>()?.get(), Duration::from_millis(1500));
/// assert!("fast".parse::<HumanDuration>().is_err());
/// # Ok::<(), burst_core::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct HumanDuration(Duration);

impl HumanDuration {
    /// The pattern of the compact Go form, as the CRD's schema states it.
    pub const PATTERN: &'static str = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$";

    /// Zero.
    pub const ZERO: HumanDuration = HumanDuration(Duration::ZERO);

    /// Whole seconds.
    pub const fn from_secs(secs: u64) -> HumanDuration {
        HumanDuration(Duration::from_secs(secs))
    }

    /// Milliseconds.
    pub const fn from_millis(millis: u64) -> HumanDuration {
        HumanDuration(Duration::from_millis(millis))
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Whether it is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

impl From<Duration> for HumanDuration {
    fn from(d: Duration) -> Self {
        HumanDuration(d)
    }
}

impl From<HumanDuration> for Duration {
    fn from(d: HumanDuration) -> Self {
        d.0
    }
}

impl FromStr for HumanDuration {
    type Err = crate::Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim();
        parse_go(text)
            .or_else(|| humantime::parse_duration(text).ok())
            .map(HumanDuration)
            .ok_or_else(|| crate::Error::Duration(s.to_owned()))
    }
}

/// Go's `time.ParseDuration` form without a sign: one or more `<number><unit>`.
fn parse_go(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s;
    let mut total = Duration::ZERO;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|i| *i > 0)?;
        let (number, tail) = rest.split_at(digits);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, next) = tail.split_at(unit_len);
        let nanos_per_unit: f64 = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        if number.starts_with('.') || number.ends_with('.') || number.matches('.').count() > 1 {
            return None;
        }
        let value: f64 = number.parse().ok()?;
        let nanos = value * nanos_per_unit;
        if !nanos.is_finite() || nanos > u64::MAX as f64 {
            return None;
        }
        total = total.checked_add(Duration::from_nanos(nanos.round() as u64))?;
        rest = next;
    }
    Some(total)
}

impl fmt::Display for HumanDuration {
    /// The compact Go form: `1h2m3s`, `1m30s`, `1.5s`, `250ms`, `0s`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.is_zero() {
            return f.write_str("0s");
        }
        let total_secs = d.as_secs();
        let nanos = d.subsec_nanos();
        if total_secs == 0 {
            return if nanos.is_multiple_of(1_000_000) {
                write!(f, "{}ms", nanos / 1_000_000)
            } else if nanos.is_multiple_of(1_000) {
                write!(f, "{}us", nanos / 1_000)
            } else {
                write!(f, "{nanos}ns")
            };
        }
        let (h, m, s) = (total_secs / 3600, (total_secs / 60) % 60, total_secs % 60);
        if h > 0 {
            write!(f, "{h}h")?;
        }
        if m > 0 {
            write!(f, "{m}m")?;
        }
        if s > 0 || nanos > 0 {
            if nanos == 0 {
                write!(f, "{s}s")?;
            } else {
                let frac = format!("{nanos:09}");
                write!(f, "{s}.{}s", frac.trim_end_matches('0'))?;
            }
        }
        Ok(())
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a duration such as `15s`, `1m30s` or `500ms`")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(feature = "schema")]
impl schemars::JsonSchema for HumanDuration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "HumanDuration".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": HumanDuration::PATTERN,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(s: &str) -> Option<Duration> {
        s.parse::<HumanDuration>().ok().map(HumanDuration::get)
    }

    #[test]
    fn reads_go_and_spaced_forms() {
        assert_eq!(parse("15s"), Some(Duration::from_secs(15)));
        assert_eq!(parse("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1m 30s"), Some(Duration::from_secs(90)));
        assert_eq!(parse("1h2m3s"), Some(Duration::from_secs(3723)));
        assert_eq!(parse("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse("0"), Some(Duration::ZERO));
        assert_eq!(parse("0s"), Some(Duration::ZERO));
        assert_eq!(parse("2days"), Some(Duration::from_secs(2 * 86_400)));
        for bad in ["", "fast", "15", "-1s", "1.s", ".5s", "1..5s", "s", "1x"] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn error_names_the_value_and_the_forms() {
        let e = "fast".parse::<HumanDuration>().unwrap_err().to_string();
        assert!(e.contains("`fast`") && e.contains("1m30s"), "{e}");
    }

    #[test]
    fn prints_the_compact_go_form() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_secs(15), "15s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(3600), "1h"),
            (Duration::from_secs(3723), "1h2m3s"),
            (Duration::from_millis(1500), "1.5s"),
            (Duration::from_millis(250), "250ms"),
            (Duration::from_micros(3), "3us"),
            (Duration::from_nanos(7), "7ns"),
        ];
        for (d, s) in cases {
            assert_eq!(HumanDuration::from(d).to_string(), s);
        }
    }

    #[test]
    fn serde_is_a_string() {
        let d: HumanDuration = serde_json::from_str("\"2m\"").unwrap();
        assert_eq!(d, HumanDuration::from_secs(120));
        assert_eq!(serde_json::to_string(&d).unwrap(), "\"2m\"");
        let e = serde_json::from_str::<HumanDuration>("5").unwrap_err();
        assert!(e.to_string().contains("a duration such as"), "{e}");
    }

    proptest! {
        /// Whatever is printed parses back to the same value and matches the CRD pattern.
        #[test]
        fn printed_form_round_trips(nanos in 0u64..400_000_000_000_000) {
            let d = HumanDuration::from(Duration::from_nanos(nanos));
            let text = d.to_string();
            prop_assert_eq!(text.parse::<HumanDuration>().unwrap(), d);
            prop_assert!(matches_pattern(&text), "{}", text);
        }
    }

    /// The PATTERN, checked by hand (no regex crate here): `(<number><unit>)+`.
    fn matches_pattern(s: &str) -> bool {
        parse_go(s).is_some() && !s.contains(' ') && s != "0"
    }
}
