//! `policy.yaml`: the policy and the measurement model, validated.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    AnyPolicy, Hysteresis, HysteresisConfig, MissingRule, OnMissing, Overflow, OverflowConfig,
};
use crate::{Error, Rate, Thresholds, Weight};

/// Which policy to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// [`Hysteresis`]: all-or-nothing between two thresholds (the seed).
    #[default]
    Hysteresis,
    /// [`Overflow`]: proportional to the load above `capacity`.
    Overflow,
}

/// A policy and its measurement model, as written in `policy.yaml`.
///
/// Every field has a default; the defaults reproduce the seed (hysteresis 15/10 rps, rate
/// over 15 s, 1 s tick, 0/100 split). Unknown keys are rejected.
///
/// ```yaml
/// mode: hysteresis        # or overflow
/// high: 15                # rps; above it (short window) → burst
/// low: 10                 # rps; below it (long window) → back to primary
/// burst_weight: 100       # hysteresis: burst % while bursting
/// capacity: 15            # overflow: rps the primary serves
/// step: 5                 # overflow: weights move in 5 % steps
/// max_up: 100             # overflow: largest increase per tick
/// max_down: 10            # overflow: largest decrease per tick
/// dead_band: 0.1          # overflow: spare room needed before coming back
/// sustain: 0s             # hysteresis: condition must hold this long
/// cooldown: 0s            # minimum time between changes
/// on_missing: hold        # hold | primary | burst
/// stale_after: 60s        # data missing this long → on_missing target
/// tick: 1s                # decision interval
/// window: 15s             # rate window
/// window_up: 5s           # optional: short window for moving to burst
/// window_down: 30s        # optional: long window for coming back
/// scrape_interval: 1s     # simulator: Prometheus scrape interval
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PolicySpec {
    /// Which policy.
    pub mode: Mode,
    /// High threshold (rps).
    pub high: f64,
    /// Low threshold (rps).
    pub low: f64,
    /// Hysteresis: burst weight while bursting.
    pub burst_weight: i64,
    /// Overflow: the primary's capacity (rps).
    pub capacity: Option<f64>,
    /// Overflow: weight step (percentage points).
    pub step: i64,
    /// Overflow: largest increase of the burst weight per tick.
    pub max_up: i64,
    /// Overflow: largest decrease of the burst weight per tick.
    pub max_down: i64,
    /// Overflow: fraction of capacity of spare room needed before coming back.
    pub dead_band: f64,
    /// Hysteresis: how long the switch condition must hold.
    #[serde(with = "humantime_serde")]
    pub sustain: Duration,
    /// Minimum time between changes.
    #[serde(with = "humantime_serde")]
    pub cooldown: Duration,
    /// Safe target when data is stale.
    pub on_missing: OnMissing,
    /// How long data may be missing before `on_missing` applies.
    #[serde(with = "humantime_serde")]
    pub stale_after: Duration,
    /// Decision interval.
    #[serde(with = "humantime_serde")]
    pub tick: Duration,
    /// Rate window (both directions unless overridden).
    #[serde(with = "humantime_serde")]
    pub window: Duration,
    /// Short window deciding moves towards burst.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub window_up: Option<Duration>,
    /// Long window deciding moves back to the primary.
    #[serde(with = "humantime_serde", skip_serializing_if = "Option::is_none")]
    pub window_down: Option<Duration>,
    /// Simulator: how often the simulated Prometheus scrapes.
    #[serde(with = "humantime_serde")]
    pub scrape_interval: Duration,
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
            sustain: Duration::ZERO,
            cooldown: Duration::ZERO,
            on_missing: OnMissing::Hold,
            stale_after: Duration::from_secs(60),
            tick: Duration::from_secs(1),
            window: Duration::from_secs(15),
            window_up: None,
            window_down: None,
            scrape_interval: Duration::from_secs(1),
        }
    }
}

impl PolicySpec {
    /// The settings this project recommends (see `docs/policies.md` for the measurements
    /// behind them): the seed's thresholds, a 2 s window to move to burst (react within
    /// two scrapes), a 30 s window to come back, and a 30 s cooldown.
    pub fn recommended() -> PolicySpec {
        PolicySpec {
            window_up: Some(Duration::from_secs(2)),
            window_down: Some(Duration::from_secs(30)),
            cooldown: Duration::from_secs(30),
            ..PolicySpec::default()
        }
    }

    /// The recommended overflow settings for a primary serving `capacity` rps.
    pub fn recommended_overflow(capacity: f64) -> PolicySpec {
        PolicySpec {
            mode: Mode::Overflow,
            capacity: Some(capacity),
            window_up: Some(Duration::from_secs(5)),
            window_down: Some(Duration::from_secs(30)),
            cooldown: Duration::from_secs(10),
            step: 10,
            dead_band: 0.2,
            ..PolicySpec::default()
        }
    }

    /// Parses and validates YAML (or JSON). Errors name the offending key.
    pub fn from_yaml(text: &str) -> Result<PolicySpec, Error> {
        let spec: PolicySpec = if text.trim().is_empty() {
            PolicySpec::default()
        } else {
            serde_saphyr::from_str(text).map_err(|e| Error::PolicyFile(e.to_string()))?
        };
        spec.validate()?;
        Ok(spec)
    }

    /// Checks every value; the error names the key and the valid range.
    pub fn validate(&self) -> Result<(), Error> {
        let bad = |key, message: String| Err(Error::InvalidSetting { key, message });
        let thresholds =
            Thresholds::try_new(self.low, self.high).map_err(|e| Error::InvalidSetting {
                key: "high/low",
                message: e.to_string(),
            })?;
        let _ = thresholds;
        weight("burst_weight", self.burst_weight)?;
        if self.burst_weight == 0 {
            return bad(
                "burst_weight",
                "must be 1..=100 (0 would never burst)".into(),
            );
        }
        for (key, v) in [
            ("step", self.step),
            ("max_up", self.max_up),
            ("max_down", self.max_down),
        ] {
            weight(key, v)?;
            if v == 0 {
                return bad(key, "must be 1..=100".into());
            }
        }
        if !(0.0..1.0).contains(&self.dead_band) {
            return bad(
                "dead_band",
                format!("{} is not a fraction in [0, 1)", self.dead_band),
            );
        }
        match (self.mode, self.capacity) {
            (Mode::Overflow, None) => {
                return bad(
                    "capacity",
                    "mode overflow needs `capacity` (rps the primary serves)".into(),
                );
            }
            (_, Some(c)) if !(c.is_finite() && c > 0.0) => {
                return bad("capacity", format!("{c} must be a finite number > 0"));
            }
            _ => {}
        }
        for (key, d) in [
            ("tick", Some(self.tick)),
            ("window", Some(self.window)),
            ("window_up", self.window_up),
            ("window_down", self.window_down),
            ("scrape_interval", Some(self.scrape_interval)),
        ] {
            if d == Some(Duration::ZERO) {
                return bad(key, "must be longer than 0s".into());
            }
        }
        if self.stale_after.is_zero() && self.on_missing != OnMissing::Hold {
            return bad(
                "stale_after",
                "must be longer than 0s when on_missing is not `hold`".into(),
            );
        }
        Ok(())
    }

    /// The short window (deciding moves to burst).
    pub fn window_up(&self) -> Duration {
        self.window_up.unwrap_or(self.window)
    }

    /// The long window (deciding moves back).
    pub fn window_down(&self) -> Duration {
        self.window_down.unwrap_or(self.window)
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
            stale_after: self.stale_after,
        };
        Ok(match self.mode {
            Mode::Hysteresis => AnyPolicy::Hysteresis(Hysteresis::new(HysteresisConfig {
                thresholds: Thresholds::try_new(self.low, self.high)?,
                burst_weight: Weight::try_new(self.burst_weight)?,
                sustain: self.sustain,
                cooldown: self.cooldown,
                missing,
            })),
            Mode::Overflow => AnyPolicy::Overflow(Overflow::new(OverflowConfig {
                capacity: Rate::try_new("capacity", self.capacity.unwrap_or(self.high))?,
                step: Weight::try_new(self.step)?,
                max_up: Weight::try_new(self.max_up)?,
                max_down: Weight::try_new(self.max_down)?,
                dead_band: self.dead_band,
                cooldown: self.cooldown,
                missing,
            })),
        })
    }
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

    #[test]
    fn defaults_are_the_seed() {
        let s = PolicySpec::from_yaml("").unwrap();
        assert_eq!((s.high, s.low), (15.0, 10.0));
        assert_eq!(s.window, Duration::from_secs(15));
        assert_eq!(s.tick, Duration::from_secs(1));
        assert!(!s.has_two_windows());
        assert!(matches!(s.build().unwrap(), AnyPolicy::Hysteresis(_)));
    }

    #[test]
    fn parses_durations_and_modes() {
        let s = PolicySpec::from_yaml(
            "mode: overflow\ncapacity: 20\nwindow_up: 5s\nwindow_down: 1m\ncooldown: 1m 30s\non_missing: primary\n",
        )
        .unwrap();
        assert_eq!(s.mode, Mode::Overflow);
        assert_eq!(s.window_up(), Duration::from_secs(5));
        assert_eq!(s.window_down(), Duration::from_secs(60));
        assert_eq!(s.cooldown, Duration::from_secs(90));
        assert_eq!(s.on_missing, OnMissing::Primary);
        assert!(matches!(s.build().unwrap(), AnyPolicy::Overflow(_)));
    }

    #[test]
    fn errors_name_the_key() {
        let cases = [
            ("hihg: 3\n", "hihg"),
            ("high: 5\nlow: 10\n", "high/low"),
            ("step: 0\n", "step"),
            ("max_up: 101\n", "max_up"),
            ("mode: overflow\n", "capacity"),
            ("mode: overflow\ncapacity: -1\n", "capacity"),
            ("tick: 0s\n", "tick"),
            ("dead_band: 1.5\n", "dead_band"),
            ("window: fast\n", "window"),
            ("on_missing: later\n", "later"),
            ("on_missing: primary\nstale_after: 0s\n", "stale_after"),
        ];
        for (yaml, key) in cases {
            let err = PolicySpec::from_yaml(yaml).unwrap_err().to_string();
            assert!(err.contains(key), "{yaml:?} → {err}");
        }
    }

    #[test]
    fn recommended_settings_are_valid() {
        assert!(PolicySpec::recommended().build().is_ok());
        assert!(PolicySpec::recommended_overflow(15.0).build().is_ok());
        assert!(PolicySpec::recommended().has_two_windows());
    }

    #[test]
    fn round_trips_through_yaml() {
        let s = PolicySpec {
            window_up: Some(Duration::from_secs(3)),
            ..PolicySpec::default()
        };
        let text = serde_saphyr::to_string(&s).unwrap();
        assert_eq!(PolicySpec::from_yaml(&text).unwrap(), s);
    }
}
