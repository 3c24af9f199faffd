//! [`forecast_accuracy`]: how much lead time a forecaster gains, and how many false
//! pre-warms it costs, on a load trace.

use std::time::Duration;

use crate::forecast::{ForecastMethod, Forecaster, Outlook};
use crate::scaler::{PrewarmAction, PrewarmSettings, PrewarmState};
use crate::sim::Trace;
use crate::{Error, Rate, Timestamp};

/// The measurement model and pre-warm settings of a [`forecast_accuracy`] run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AccuracySettings {
    /// The demand (rps) at which traffic goes to burst: the policy's high threshold.
    pub trigger: f64,
    /// Pre-warm lead time.
    pub lead: Duration,
    /// Pre-warm hold time.
    pub hold: Duration,
    /// The rate window the demand is measured over (as `rate(x[window])`).
    pub window: Duration,
    /// Time between measurements (the controller's tick).
    pub tick: Duration,
}

/// What a forecaster achieved on one trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Accuracy {
    /// Upward crossings of the trigger by the measured demand (moves to burst).
    pub crossings: usize,
    /// Crossings more than `hold` after the last burst: where, without a forecast, the
    /// burst side is cold (the ones a forecast can help with).
    pub cold_crossings: usize,
    /// Cold crossings the burst side was already prepared for.
    pub warned: usize,
    /// Mean time the burst side had been prepared at a cold crossing, capped at `lead`
    /// (0 for a missed one).
    pub mean_lead_s: f64,
    /// Prepares (pre-warm episodes).
    pub prewarms: usize,
    /// Episodes in which the demand never reached the trigger.
    pub false_prewarms: usize,
    /// Seconds the burst side was prepared while traffic was not on burst (the cost).
    pub idle_prepared_s: f64,
}

impl Default for AccuracySettings {
    /// Trigger 15 rps (the seed's high threshold), lead 60 s, hold 60 s, a 15 s window
    /// measured every second (the seed's).
    fn default() -> Self {
        AccuracySettings {
            trigger: 15.0,
            lead: Duration::from_secs(60),
            hold: Duration::from_secs(60),
            window: Duration::from_secs(15),
            tick: Duration::from_secs(1),
        }
    }
}

/// Replays `trace` through `method` (`None`: no forecast, prepare only once traffic is on
/// burst) and a [`PrewarmState`] whose every call succeeds, and measures the lead gained
/// and the false pre-warms. The demand is the trace's average over the last `window`,
/// taken every `tick`; while the metric is down there is no sample, and "on burst" keeps
/// its last value.
pub fn forecast_accuracy(
    trace: &Trace,
    method: Option<ForecastMethod>,
    settings: AccuracySettings,
) -> Result<Accuracy, Error> {
    let trigger = Rate::try_new("trigger", settings.trigger)?;
    if settings.tick.is_zero() || settings.window.is_zero() {
        return Err(Error::InvalidSetting {
            key: "tick",
            message: "tick and window must be longer than 0s".into(),
        });
    }
    let mut forecaster = match method {
        Some(m) => Some(Forecaster::try_new(
            m,
            settings.window.max(settings.tick * 5),
        )?),
        None => None,
    };
    let mut state = PrewarmState::new(PrewarmSettings::try_new(settings.lead, settings.hold)?);
    let (tick, window) = (settings.tick.as_secs_f64(), settings.window.as_secs_f64());
    let mut acc = Accuracy {
        crossings: 0,
        cold_crossings: 0,
        warned: 0,
        mean_lead_s: 0.0,
        prewarms: 0,
        false_prewarms: 0,
        idle_prepared_s: 0.0,
    };
    let mut lead_total = 0.0;
    let mut on_burst = false;
    let mut last_burst: Option<f64> = None;
    let (lead_s, hold_s) = (settings.lead.as_secs_f64(), settings.hold.as_secs_f64());
    // (start of the episode, whether the demand reached the trigger in it)
    let mut episode: Option<(f64, bool)> = None;
    let steps = (trace.duration() / tick).floor() as u64;
    for i in 0..=steps {
        let t = i as f64 * tick;
        let now = Timestamp::from_secs_f64(t).unwrap_or(Timestamp::ZERO);
        if t >= window && trace.at(t).up {
            let demand = (trace.total_until(t) - trace.total_until(t - window)) / window;
            let demand = Rate::try_new("demand", demand.max(0.0))?;
            if let Some(f) = forecaster.as_mut() {
                f.observe(now, demand);
            }
            let was = on_burst;
            on_burst = demand.get() >= trigger.get();
            if on_burst && !was {
                acc.crossings += 1;
                let cold = last_burst.is_none_or(|b| t - b > hold_s);
                if cold {
                    acc.cold_crossings += 1;
                    if state.is_prepared() {
                        acc.warned += 1;
                        lead_total += episode.map_or(0.0, |(start, _)| (t - start).min(lead_s));
                    }
                }
            }
        }
        if on_burst {
            last_burst = Some(t);
            if let Some((_, reached)) = episode.as_mut() {
                *reached = true;
            }
        }
        if state.is_prepared() && !on_burst {
            acc.idle_prepared_s += tick;
        }
        let outlook = match &forecaster {
            Some(f) => f.outlook(trigger, settings.lead, now),
            None => Outlook::Unknown {
                reason: "no forecaster",
            },
        };
        if let Some(action) = state.step(&outlook, on_burst, now) {
            match action {
                PrewarmAction::Prepare(_) => {
                    acc.prewarms += 1;
                    episode = Some((t, on_burst));
                }
                PrewarmAction::Release { .. } => {
                    if let Some((_, false)) = episode.take() {
                        acc.false_prewarms += 1;
                    }
                }
            }
            state.confirm(&action);
        }
    }
    if let Some((_, false)) = episode {
        acc.false_prewarms += 1;
    }
    if acc.cold_crossings > 0 {
        acc.mean_lead_s = lead_total / acc.cold_crossings as f64;
    }
    Ok(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HumanDuration;

    #[test]
    fn a_ramp_is_seen_coming_and_no_forecast_sees_nothing() {
        let ramp = Trace::builtin("ramp", 1).unwrap();
        let base = forecast_accuracy(&ramp, None, AccuracySettings::default()).unwrap();
        assert_eq!((base.crossings, base.cold_crossings), (1, 1));
        assert_eq!(base.warned, 0);
        assert_eq!(base.mean_lead_s, 0.0);
        assert_eq!(base.false_prewarms, 0);
        let trend = ForecastMethod::LinearTrend {
            window: HumanDuration::from_secs(30),
        };
        let with = forecast_accuracy(&ramp, Some(trend), AccuracySettings::default()).unwrap();
        assert_eq!(with.crossings, 1);
        assert_eq!(with.warned, 1);
        // 0.1 rps/s towards 15 rps: seen the whole lead (60 s) ahead.
        assert!(with.mean_lead_s > 50.0, "{with:?}");
        assert_eq!(with.false_prewarms, 0);
    }

    #[test]
    fn a_flat_trace_below_the_trigger_never_prewarms() {
        let flat = Trace::new(
            "flat",
            vec![
                crate::sim::TracePoint {
                    t: 0.0,
                    rps: 5.0,
                    up: true,
                },
                crate::sim::TracePoint {
                    t: 300.0,
                    rps: 5.0,
                    up: true,
                },
            ],
        )
        .unwrap();
        let a = forecast_accuracy(
            &flat,
            Some(ForecastMethod::default()),
            AccuracySettings::default(),
        )
        .unwrap();
        assert_eq!((a.crossings, a.prewarms, a.false_prewarms), (0, 0, 0));
        // A sine peaking at 19 rps against a 20 rps trigger: every pre-warm is false.
        let sine = Trace::builtin("sine", 1).unwrap();
        let high = AccuracySettings {
            trigger: 20.0,
            ..AccuracySettings::default()
        };
        let a = forecast_accuracy(&sine, Some(ForecastMethod::default()), high).unwrap();
        assert_eq!(a.crossings, 0);
        assert!(a.prewarms > 0 && a.false_prewarms == a.prewarms, "{a:?}");
        assert!(a.idle_prepared_s > 0.0);
        assert!(
            forecast_accuracy(
                &flat,
                None,
                AccuracySettings {
                    tick: Duration::ZERO,
                    ..AccuracySettings::default()
                }
            )
            .is_err()
        );
    }
}
