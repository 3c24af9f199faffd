//! Short-term demand forecasts: will the demand cross a trigger within a lead time?
//!
//! A [`Forecaster`] is fed the demand the controller measures (one sample per tick) and
//! extrapolates it. Pre-warming ([`crate::scaler`]) asks it, every tick, for an [`Outlook`]:
//! whether the demand will reach the trigger (the policy's high threshold, say) within
//! `lead`, and after how long. Two methods, both extrapolating a straight line from "now":
//!
//! - [`ForecastMethod::LinearTrend`]: a least-squares line through the samples of the last
//!   `window`. It forgets everything older, so it reacts as fast as its window is short and
//!   is as noisy as its window is short.
//! - [`ForecastMethod::Holt`]: Holt's double exponential smoothing (a level and a trend,
//!   smoothed with `alpha` and `beta`), for samples at any spacing. It never forgets
//!   completely, so it is steadier on noise and slower to give up a trend.
//!
//! The default ([`ForecastMethod::default`]) was chosen by measuring both on the built-in
//! traces (lead time gained against false pre-warms); the figures and the command are in
//! BENCHMARKS.md ("Pre-warm forecast").
//!
//! Like the policies, a forecaster is pure: time is passed in, it reads no clock. Demand
//! arrives as a [`Rate`], so NaN, infinities and negatives are rejected before they get here;
//! any finite input gives a finite forecast or none at all, never a panic.
//!
//! ```
//! use burst_core::forecast::{ForecastMethod, Forecaster, Outlook};
//! use burst_core::{Rate, Timestamp};
//! use std::time::Duration;
//!
//! let mut f = Forecaster::try_new(ForecastMethod::default(), Duration::from_secs(30))?;
//! for s in 0..10u64 {
//!     // 5 rps, growing by 1 rps every second.
//!     let at = Timestamp::from_duration(Duration::from_secs(s));
//!     f.observe(at, Rate::try_new("rps", 5.0 + s as f64)?);
//! }
//! let now = Timestamp::from_duration(Duration::from_secs(9));
//! let trigger = Rate::try_new("trigger", 20.0)?;
//! match f.outlook(trigger, Duration::from_secs(30), now) {
//!     Outlook::Crossing { after, .. } => assert!(after <= Duration::from_secs(7)),
//!     other => panic!("expected a crossing, got {other}"),
//! }
//! # Ok::<(), burst_core::Error>(())
//! ```

use std::collections::VecDeque;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::{Error, HumanDuration, Rate, Timestamp};

/// How a [`Forecaster`] extrapolates the demand.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub enum ForecastMethod {
    /// A least-squares line through the samples of the last `window`.
    #[serde(rename_all = "camelCase")]
    LinearTrend {
        /// How far back samples count (e.g. `30s`); older ones are dropped.
        window: HumanDuration,
    },
    /// Holt's double exponential smoothing: level and trend (per second).
    #[serde(rename_all = "camelCase")]
    Holt {
        /// Level smoothing, in `(0, 1]`: 1 follows the last sample exactly.
        alpha: f64,
        /// Trend smoothing, in `(0, 1]`: 1 takes the last step's slope as the trend.
        beta: f64,
    },
}

/// What the demand is expected to do within the lead time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Outlook {
    /// Too few (or too old) samples to extrapolate. Never read as "below".
    Unknown {
        /// Why (`fewer than two samples`, `last sample 42s old`, ...).
        reason: &'static str,
    },
    /// The demand stays below the trigger for the whole lead time.
    Below {
        /// Estimated demand now.
        now: f64,
        /// Predicted demand at the end of the lead time.
        at_lead: f64,
    },
    /// The demand reaches the trigger `after` from now (zero: it is at or above it now).
    Crossing {
        /// Estimated demand now.
        now: f64,
        /// Time until it reaches the trigger, at most the lead time.
        after: Duration,
        /// Predicted demand at the end of the lead time.
        at_lead: f64,
    },
}

/// A demand forecaster: feed it samples with [`observe`](Self::observe), ask it with
/// [`outlook`](Self::outlook) or [`predict`](Self::predict). See the [module docs](self).
#[derive(Debug, Clone)]
pub struct Forecaster {
    method: ForecastMethod,
    stale_after: Duration,
    state: State,
}

#[derive(Debug, Clone)]
enum State {
    Trend {
        window: f64,
        /// `(seconds, demand)`, oldest first, times strictly increasing.
        samples: VecDeque<(f64, f64)>,
    },
    Holt {
        alpha: f64,
        beta: f64,
        fit: Option<HoltFit>,
    },
}

#[derive(Debug, Clone, Copy)]
struct HoltFit {
    level: f64,
    /// Demand change per second; `None` until a second sample arrives.
    trend: Option<f64>,
    at: f64,
}

/// At most this many samples are kept for the linear trend (a 256 s window at one sample a
/// second), which bounds the work of a fit.
const MAX_TREND_SAMPLES: usize = 256;

impl Default for ForecastMethod {
    /// Holt with `alpha = 0.3`, `beta = 0.1`. Measured on the built-in traces (BENCHMARKS.md,
    /// "Pre-warm forecast"): within half a second of the most lead time gained at both
    /// triggers measured, with about half the false pre-warms of the faster settings
    /// (`alpha = 0.5`, or a 10 s trend) when the demand peaks just under the trigger.
    fn default() -> Self {
        ForecastMethod::Holt {
            alpha: 0.3,
            beta: 0.1,
        }
    }
}

impl ForecastMethod {
    /// A short label for logs, reasons and metrics (`linear_trend`, `holt`).
    pub fn name(&self) -> &'static str {
        match self {
            ForecastMethod::LinearTrend { .. } => "linear_trend",
            ForecastMethod::Holt { .. } => "holt",
        }
    }

    /// Checks the parameters: a non-zero window; `alpha` and `beta` in `(0, 1]`.
    pub fn validate(&self) -> Result<(), Error> {
        match *self {
            ForecastMethod::LinearTrend { window } => {
                if window.is_zero() {
                    return Err(Error::InvalidSetting {
                        key: "prewarm.forecast.window",
                        message: "must be longer than 0s (e.g. 30s)".into(),
                    });
                }
            }
            ForecastMethod::Holt { alpha, beta } => {
                for (key, v) in [
                    ("prewarm.forecast.alpha", alpha),
                    ("prewarm.forecast.beta", beta),
                ] {
                    if !(v.is_finite() && v > 0.0 && v <= 1.0) {
                        return Err(Error::InvalidSetting {
                            key,
                            message: format!(
                                "{v} is out of range: a smoothing factor is above 0 and at most 1 (e.g. 0.5)"
                            ),
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

impl fmt::Display for ForecastMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ForecastMethod::LinearTrend { window } => write!(f, "linear trend over {window}"),
            ForecastMethod::Holt { alpha, beta } => write!(f, "holt alpha={alpha} beta={beta}"),
        }
    }
}

/// The schema is one flat object (`method` plus every method's fields) with CEL rules
/// saying which fields go with which method: a Kubernetes structural schema cannot hold the
/// `oneOf` of differently shaped objects a derived schema of a tagged enum would be.
#[cfg(feature = "schema")]
impl schemars::JsonSchema for ForecastMethod {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ForecastMethod".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "How the demand is extrapolated: `holt` (with `alpha` and `beta`) or `linearTrend` (with `window`).",
            "type": "object",
            "required": ["method"],
            "properties": {
                "method": {
                    "description": "`holt` (Holt's double exponential smoothing) or `linearTrend` (least squares over `window`).",
                    "type": "string",
                    "enum": ["holt", "linearTrend"],
                },
                "alpha": {
                    "description": "holt: level smoothing, above 0 and at most 1.",
                    "type": "number",
                },
                "beta": {
                    "description": "holt: trend smoothing, above 0 and at most 1.",
                    "type": "number",
                },
                "window": {
                    "description": "linearTrend: how far back samples count (e.g. `30s`).",
                    "type": "string",
                    "pattern": HumanDuration::PATTERN,
                },
            },
            "x-kubernetes-validations": [
                {
                    "rule": "self.method != 'holt' || (has(self.alpha) && has(self.beta) && !has(self.window))",
                    "message": "`method: holt` takes `alpha` and `beta` (e.g. 0.3 and 0.1) and no `window`",
                },
                {
                    "rule": "self.method != 'linearTrend' || (has(self.window) && !has(self.alpha) && !has(self.beta))",
                    "message": "`method: linearTrend` takes a `window` (e.g. 30s) and no `alpha` or `beta`",
                },
                {
                    "rule": "(!has(self.alpha) || (self.alpha > 0.0 && self.alpha <= 1.0)) && (!has(self.beta) || (self.beta > 0.0 && self.beta <= 1.0))",
                    "message": "`alpha` and `beta` are smoothing factors: above 0 and at most 1",
                },
                {
                    "rule": "!has(self.window) || duration(self.window) > duration('0s')",
                    "message": "`window` must be longer than 0s (e.g. 30s)",
                },
            ],
        })
    }
}

impl Outlook {
    /// Whether the demand is expected to reach the trigger within the lead time.
    pub fn is_crossing(&self) -> bool {
        matches!(self, Outlook::Crossing { .. })
    }
}

impl fmt::Display for Outlook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outlook::Unknown { reason } => write!(f, "no forecast ({reason})"),
            Outlook::Below { now, at_lead } => {
                write!(f, "stays below: {now:.3} now, {at_lead:.3} at lead")
            }
            Outlook::Crossing {
                now,
                after,
                at_lead,
            } => write!(
                f,
                "crossing in {}: {now:.3} now, {at_lead:.3} at lead",
                humantime::format_duration(Duration::from_secs(after.as_secs()))
            ),
        }
    }
}

impl Forecaster {
    /// A forecaster using `method`; with no sample newer than `stale_after`, it has no
    /// forecast ([`Outlook::Unknown`]). `stale_after` must be above zero.
    pub fn try_new(method: ForecastMethod, stale_after: Duration) -> Result<Self, Error> {
        method.validate()?;
        if stale_after.is_zero() {
            return Err(Error::InvalidSetting {
                key: "prewarm.forecast.staleAfter",
                message: "must be longer than 0s (e.g. 30s)".into(),
            });
        }
        let state = match method {
            ForecastMethod::LinearTrend { window } => State::Trend {
                window: window.get().as_secs_f64(),
                samples: VecDeque::new(),
            },
            ForecastMethod::Holt { alpha, beta } => State::Holt {
                alpha,
                beta,
                fit: None,
            },
        };
        Ok(Forecaster {
            method,
            stale_after,
            state,
        })
    }

    /// The method in use.
    pub fn method(&self) -> ForecastMethod {
        self.method
    }

    /// Adds a demand sample taken `at`. A sample at the time of the previous one replaces
    /// it; a sample older than the previous one is ignored (clocks do not run backwards
    /// here, and a late sample says nothing about now).
    pub fn observe(&mut self, at: Timestamp, demand: Rate) {
        let t = at.as_secs_f64();
        let y = demand.get();
        match &mut self.state {
            State::Trend { window, samples } => {
                match samples.back_mut() {
                    Some(last) if t < last.0 => return,
                    Some(last) if t == last.0 => last.1 = y,
                    _ => samples.push_back((t, y)),
                }
                while samples
                    .front()
                    .is_some_and(|s| t - s.0 > *window || samples.len() > MAX_TREND_SAMPLES)
                {
                    samples.pop_front();
                }
            }
            State::Holt { alpha, beta, fit } => {
                *fit = Some(match *fit {
                    None => HoltFit {
                        level: y,
                        trend: None,
                        at: t,
                    },
                    Some(prev) if t < prev.at => prev,
                    Some(prev) if t == prev.at => HoltFit {
                        level: *alpha * y + (1.0 - *alpha) * prev.level,
                        ..prev
                    },
                    Some(prev) => {
                        let dt = t - prev.at;
                        match prev.trend {
                            // The second sample: the line through both.
                            None => HoltFit {
                                level: y,
                                trend: Some((y - prev.level) / dt),
                                at: t,
                            },
                            Some(b) => {
                                let level = *alpha * y + (1.0 - *alpha) * (prev.level + b * dt);
                                let trend = *beta * (level - prev.level) / dt + (1.0 - *beta) * b;
                                if level.is_finite() && trend.is_finite() {
                                    HoltFit {
                                        level,
                                        trend: Some(trend),
                                        at: t,
                                    }
                                } else {
                                    // Overflowed (demand near f64::MAX): start again here
                                    // rather than carry NaN forever.
                                    HoltFit {
                                        level: y,
                                        trend: None,
                                        at: t,
                                    }
                                }
                            }
                        }
                    }
                });
            }
        }
    }

    /// Forgets every sample (e.g. after a long metric outage).
    pub fn reset(&mut self) {
        match &mut self.state {
            State::Trend { samples, .. } => samples.clear(),
            State::Holt { fit, .. } => *fit = None,
        }
    }

    /// The fitted line at `now`: `(demand now, change per second)`, or why there is none.
    fn line(&self, now: Timestamp) -> Result<(f64, f64), &'static str> {
        let now_s = now.as_secs_f64();
        let (value, slope, last) = match &self.state {
            State::Trend { samples, .. } => {
                let Some(&(last, _)) = samples.back() else {
                    return Err("fewer than two samples");
                };
                if samples.len() < 2 {
                    return Err("fewer than two samples");
                }
                // The slope as a sum over pairs: with demand that never falls, every term is
                // >= 0 exactly, so the extrapolation never falls either (no rounding sign flip).
                let (mut num, mut den) = (0.0, 0.0);
                let n = samples.len() as f64;
                let (mut mt, mut my) = (0.0, 0.0);
                for (i, &(ti, yi)) in samples.iter().enumerate() {
                    mt += ti / n;
                    my += yi / n;
                    for &(tj, yj) in samples.iter().skip(i + 1) {
                        let dt = tj - ti;
                        num += dt * (yj - yi);
                        den += dt * dt;
                    }
                }
                if den <= 0.0 {
                    return Err("fewer than two samples");
                }
                let slope = num / den;
                (my + slope * (now_s - mt), slope, last)
            }
            State::Holt { fit, .. } => match fit {
                Some(HoltFit {
                    level,
                    trend: Some(b),
                    at,
                }) => (level + b * (now_s - at), *b, *at),
                _ => return Err("fewer than two samples"),
            },
        };
        if now_s - last > self.stale_after.as_secs_f64() {
            return Err("last sample older than the staleness limit");
        }
        if !(value.is_finite() && slope.is_finite()) {
            return Err("the extrapolation overflowed");
        }
        Ok((value, slope))
    }

    /// The predicted demand `ahead` of `now` (never below 0), or `None` without a forecast.
    pub fn predict(&self, now: Timestamp, ahead: Duration) -> Option<f64> {
        let (value, slope) = self.line(now).ok()?;
        let v = value + slope * ahead.as_secs_f64();
        v.is_finite().then_some(v.max(0.0))
    }

    /// Whether, and after how long, the demand reaches `trigger` within `lead` of `now`.
    pub fn outlook(&self, trigger: Rate, lead: Duration, now: Timestamp) -> Outlook {
        let (value, slope) = match self.line(now) {
            Ok(line) => line,
            Err(reason) => return Outlook::Unknown { reason },
        };
        let lead_s = lead.as_secs_f64();
        let at_lead = value + slope * lead_s;
        if !at_lead.is_finite() {
            return Outlook::Unknown {
                reason: "the extrapolation overflowed",
            };
        }
        let (now_v, at_lead) = (value.max(0.0), at_lead.max(0.0));
        let trigger = trigger.get();
        if now_v >= trigger {
            return Outlook::Crossing {
                now: now_v,
                after: Duration::ZERO,
                at_lead,
            };
        }
        if at_lead >= trigger && slope > 0.0 {
            let after = ((trigger - value) / slope).clamp(0.0, lead_s);
            return Outlook::Crossing {
                now: now_v,
                after: Duration::try_from_secs_f64(after).unwrap_or(lead),
                at_lead,
            };
        }
        Outlook::Below {
            now: now_v,
            at_lead,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: f64) -> Timestamp {
        Timestamp::from_secs_f64(s).unwrap()
    }

    fn rate(v: f64) -> Rate {
        Rate::try_new("rps", v).unwrap()
    }

    fn trend(window: u64) -> Forecaster {
        Forecaster::try_new(
            ForecastMethod::LinearTrend {
                window: HumanDuration::from_secs(window),
            },
            Duration::from_secs(60),
        )
        .unwrap()
    }

    fn holt(alpha: f64, beta: f64) -> Forecaster {
        Forecaster::try_new(
            ForecastMethod::Holt { alpha, beta },
            Duration::from_secs(60),
        )
        .unwrap()
    }

    fn feed(f: &mut Forecaster, points: &[(f64, f64)]) {
        for &(t, y) in points {
            f.observe(ts(t), rate(y));
        }
    }

    #[test]
    fn invalid_settings_are_rejected_with_the_key() {
        let e = Forecaster::try_new(
            ForecastMethod::Holt {
                alpha: 0.0,
                beta: 0.5,
            },
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("prewarm.forecast.alpha"), "{e}");
        let e = Forecaster::try_new(
            ForecastMethod::Holt {
                alpha: 0.5,
                beta: f64::NAN,
            },
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("prewarm.forecast.beta"), "{e}");
        let e = Forecaster::try_new(
            ForecastMethod::LinearTrend {
                window: HumanDuration::ZERO,
            },
            Duration::from_secs(1),
        )
        .unwrap_err();
        assert!(e.to_string().contains("window"), "{e}");
        assert!(Forecaster::try_new(ForecastMethod::default(), Duration::ZERO).is_err());
    }

    #[test]
    fn one_sample_is_no_forecast() {
        for mut f in [trend(30), holt(0.5, 0.5)] {
            assert!(matches!(
                f.outlook(rate(10.0), Duration::from_secs(30), ts(0.0)),
                Outlook::Unknown { .. }
            ));
            f.observe(ts(0.0), rate(5.0));
            assert_eq!(f.predict(ts(0.0), Duration::ZERO), None);
            f.observe(ts(1.0), rate(6.0));
            assert!(f.predict(ts(1.0), Duration::ZERO).is_some());
            f.reset();
            assert_eq!(f.predict(ts(1.0), Duration::ZERO), None);
        }
    }

    #[test]
    fn a_linear_ramp_is_extrapolated_exactly_by_both() {
        let ramp: Vec<(f64, f64)> = (0..20)
            .map(|s| (f64::from(s), 2.0 + f64::from(s)))
            .collect();
        for mut f in [trend(30), holt(0.5, 0.3)] {
            feed(&mut f, &ramp);
            let p = f.predict(ts(19.0), Duration::from_secs(10)).unwrap();
            assert!((p - 31.0).abs() < 1e-9, "{:?}: {p}", f.method());
            match f.outlook(rate(25.0), Duration::from_secs(30), ts(19.0)) {
                Outlook::Crossing { after, .. } => {
                    assert!((after.as_secs_f64() - 4.0).abs() < 1e-6, "{after:?}")
                }
                other => panic!("{other}"),
            }
            // Beyond the lead time it is not a crossing.
            assert!(matches!(
                f.outlook(rate(60.0), Duration::from_secs(30), ts(19.0)),
                Outlook::Below { .. }
            ));
        }
    }

    #[test]
    fn demand_already_above_the_trigger_crosses_now() {
        let mut f = trend(30);
        feed(&mut f, &[(0.0, 30.0), (1.0, 29.0), (2.0, 28.0)]);
        match f.outlook(rate(20.0), Duration::from_secs(10), ts(2.0)) {
            Outlook::Crossing { after, .. } => assert_eq!(after, Duration::ZERO),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn the_trend_forgets_samples_older_than_its_window() {
        let mut f = trend(10);
        // A fall long ago, flat since: the old fall no longer counts.
        feed(&mut f, &[(0.0, 50.0), (1.0, 40.0)]);
        feed(
            &mut f,
            &(20..=30).map(|s| (f64::from(s), 10.0)).collect::<Vec<_>>(),
        );
        let p = f.predict(ts(30.0), Duration::from_secs(10)).unwrap();
        assert!((p - 10.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn stale_samples_give_no_forecast() {
        let mut f = holt(0.5, 0.5);
        feed(&mut f, &[(0.0, 5.0), (1.0, 6.0)]);
        assert!(f.predict(ts(61.0), Duration::ZERO).is_some());
        assert_eq!(f.predict(ts(62.0), Duration::ZERO), None);
        assert!(matches!(
            f.outlook(rate(1.0), Duration::from_secs(5), ts(100.0)),
            Outlook::Unknown {
                reason: "last sample older than the staleness limit"
            }
        ));
    }

    #[test]
    fn late_and_repeated_samples_do_not_break_the_fit() {
        let mut f = trend(30);
        feed(&mut f, &[(0.0, 1.0), (2.0, 3.0), (1.0, 100.0), (2.0, 3.0)]);
        let p = f.predict(ts(2.0), Duration::from_secs(1)).unwrap();
        assert!((p - 4.0).abs() < 1e-9, "{p}");
        let mut h = holt(1.0, 1.0);
        feed(&mut h, &[(0.0, 1.0), (2.0, 3.0), (1.0, 100.0)]);
        let p = h.predict(ts(2.0), Duration::from_secs(1)).unwrap();
        assert!((p - 4.0).abs() < 1e-9, "{p}");
    }

    #[test]
    fn method_parses_from_policy_yaml() {
        let m: ForecastMethod =
            serde_json::from_str(r#"{"method": "linearTrend", "window": "20s"}"#).unwrap();
        assert_eq!(
            m,
            ForecastMethod::LinearTrend {
                window: HumanDuration::from_secs(20)
            }
        );
        let m: ForecastMethod =
            serde_json::from_str(r#"{"method": "holt", "alpha": 0.4, "beta": 0.1}"#).unwrap();
        assert_eq!(m.name(), "holt");
        assert!(serde_json::from_str::<ForecastMethod>(r#"{"method": "arima"}"#).is_err());
    }

    fn series() -> impl Strategy<Value = Vec<(f64, f64)>> {
        prop::collection::vec(
            (
                0.0..1e6f64,
                prop_oneof![0.0..1e3f64, 0.0..f64::MAX, Just(f64::MAX), Just(0.0)],
            ),
            0..60,
        )
    }

    fn method() -> impl Strategy<Value = ForecastMethod> {
        prop_oneof![
            (1u64..600).prop_map(|w| ForecastMethod::LinearTrend {
                window: HumanDuration::from_secs(w)
            }),
            (0.001..=1.0f64, 0.001..=1.0f64)
                .prop_map(|(alpha, beta)| ForecastMethod::Holt { alpha, beta }),
        ]
    }

    proptest! {
        /// Any finite input, in any order, at any magnitude: no panic, and every number
        /// the forecaster gives is finite and >= 0.
        #[test]
        fn finite_input_never_panics(
            m in method(),
            points in series(),
            now in 0.0..2e6f64,
            lead in 0u64..100_000,
            trigger in 0.0..f64::MAX,
        ) {
            let mut f = Forecaster::try_new(m, Duration::from_secs(3600)).unwrap();
            for (t, y) in points {
                f.observe(ts(t), rate(y));
                let now = ts(now);
                if let Some(p) = f.predict(now, Duration::from_secs(lead)) {
                    prop_assert!(p.is_finite() && p >= 0.0);
                }
                match f.outlook(rate(trigger), Duration::from_secs(lead), now) {
                    Outlook::Unknown { .. } => {}
                    Outlook::Below { now, at_lead } => {
                        prop_assert!(now.is_finite() && at_lead.is_finite());
                        prop_assert!(now < trigger);
                    }
                    Outlook::Crossing { now, after, at_lead } => {
                        prop_assert!(now.is_finite() && at_lead.is_finite());
                        prop_assert!(after <= Duration::from_secs(lead));
                    }
                }
            }
        }

        /// Demand that never falls never gives a linear-trend forecast that falls.
        #[test]
        fn trend_of_non_decreasing_demand_never_falls(
            steps in prop::collection::vec((0.01..10.0f64, 0.0..50.0f64), 2..80),
            window in 1u64..300,
            h1 in 0u64..600,
            h2 in 0u64..600,
        ) {
            let mut f = trend(window);
            let (mut t, mut y) = (0.0, 0.0);
            for (dt, dy) in steps {
                t += dt;
                y += dy;
                f.observe(ts(t), rate(y));
            }
            let now = ts(t);
            let (lo, hi) = (h1.min(h2), h1.max(h2));
            if let (Some(a), Some(b)) = (
                f.predict(now, Duration::from_secs(lo)),
                f.predict(now, Duration::from_secs(hi)),
            ) {
                prop_assert!(a <= b, "forecast fell from {a} (+{lo}s) to {b} (+{hi}s)");
            }
        }

        /// A constant demand is forecast as itself by both methods.
        #[test]
        fn constant_demand_is_forecast_flat(
            m in method(),
            level in 0.0..1e4f64,
            n in 2usize..50,
            ahead in 0u64..3600,
        ) {
            let mut f = Forecaster::try_new(m, Duration::from_secs(3600)).unwrap();
            for s in 0..n {
                f.observe(ts(s as f64), rate(level));
            }
            let p = f.predict(ts((n - 1) as f64), Duration::from_secs(ahead)).unwrap();
            prop_assert!((p - level).abs() <= 1e-9 * level.max(1.0), "{p} vs {level}");
            prop_assert_eq!(
                f.outlook(rate(level + 1.0), Duration::from_secs(ahead), ts((n - 1) as f64))
                    .is_crossing(),
                false
            );
        }
    }
}
