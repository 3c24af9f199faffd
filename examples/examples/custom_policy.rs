//! Your own [`Policy`] with rules of its own ([`Rule::Custom`]), simulated over a day.
//!
//! `OfficeHours` bursts only while the office is open, and warms the burst cluster up
//! before it opens:
//!
//! | time of day | decision | rule |
//! |---|---|---|
//! | 08:30–09:00 | 10 % to burst, whatever the load, so its caches are warm at 09:00 | `prewarm` |
//! | 09:00–18:00, short-window rate > 15 rps | all to burst | `office_hours_busy` |
//! | 09:00–18:00, long-window rate < 10 rps | all to the primary | `office_hours_quiet` |
//! | 09:00–18:00, in between | hold | `in_band` |
//! | 09:00–18:00, no data | hold | `missing_hold` |
//! | the rest of the day | all to the primary (burst is scaled to zero) | `after_hours` |
//!
//! Like every policy it is pure: the time comes in as an argument (`now`; the
//! [`Controller`](burst_core::Controller) passes Unix time, so the day here is a UTC day).
//! That makes it simulable: [`simulate_policy`] runs it over the built-in `diurnal` trace, a
//! day compressed into 24 minutes (3 rps at night, 25 rps at noon), with one simulated
//! second standing for one minute of the day. The program prints every change of the split
//! with the time of day and the rule behind it, then compares the day with the seed's
//! hysteresis policy on the same trace.
//!
//! `cargo run -p burst-examples --example custom_policy`

use std::time::Duration;

use burst_core::policy::{Decision, Policy, PolicyFile, Reason, Rule, Signal};
use burst_core::sim::{Trace, simulate, simulate_policy};
use burst_core::{Split, Timestamp, Weight};

const MINUTES_PER_DAY: f64 = 1440.0;

/// Bursts only during office hours, and pre-warms the burst destination before opening.
struct OfficeHours {
    /// How long a day lasts on the clock the policy is given (24 h in production).
    day: Duration,
    /// Minutes after midnight: pre-warm from, open from, closed from.
    prewarm: u32,
    open: u32,
    close: u32,
    /// Above this short-window rate the office-hours load goes to burst...
    high: f64,
    /// ...and below this long-window rate it comes back.
    low: f64,
    /// Burst weight while pre-warming.
    prewarm_weight: Weight,
}

impl OfficeHours {
    fn minute_of_day(&self, now: Timestamp) -> u32 {
        let day = self.day.as_secs_f64();
        let fraction = (now.as_secs_f64() % day) / day;
        // `fraction` is in [0, 1), so this is a minute in 0..1440.
        (fraction * MINUTES_PER_DAY).floor() as u32
    }
}

impl Policy for OfficeHours {
    fn decide(&mut self, signal: &Signal, current: Split, now: Timestamp) -> Decision {
        let minute = self.minute_of_day(now);
        let clock = format!("{:02}:{:02}", minute / 60, minute % 60);
        let (desired, rule, detail) = if (self.prewarm..self.open).contains(&minute) {
            (
                Split::from_burst(self.prewarm_weight),
                Rule::Custom("prewarm"),
                format!("{clock}: warming up burst before opening"),
            )
        } else if !(self.open..self.close).contains(&minute) {
            (
                Split::ALL_PRIMARY,
                Rule::Custom("after_hours"),
                format!("{clock}: office closed"),
            )
        } else {
            match signal.rates() {
                None => (current, Rule::MissingHold, format!("{clock}: {signal}")),
                Some(r) if r.up.get() > self.high => (
                    Split::ALL_BURST,
                    Rule::Custom("office_hours_busy"),
                    format!("{clock}: short-window rate > {}", self.high),
                ),
                Some(r) if r.down.get() < self.low => (
                    Split::ALL_PRIMARY,
                    Rule::Custom("office_hours_quiet"),
                    format!("{clock}: long-window rate < {}", self.low),
                ),
                Some(_) => (current, Rule::InBand, format!("{clock}: in band")),
            }
        };
        Decision {
            desired,
            reason: Reason {
                rule,
                rates: signal.rates(),
                current,
                detail,
            },
        }
    }
}

fn main() -> anyhow::Result<()> {
    let spec = PolicyFile::default(); // 1 s tick, 15 s window, thresholds 15/10
    let trace = Trace::builtin("diurnal", 1)?;
    let mut office = OfficeHours {
        day: Duration::from_secs(1440),
        prewarm: 8 * 60 + 30,
        open: 9 * 60,
        close: 18 * 60,
        high: spec.policy.high,
        low: spec.policy.low,
        prewarm_weight: Weight::try_new(10)?,
    };
    let mine = simulate_policy(&mut office, &spec, &trace, Some(spec.policy.high))?;
    let seed = simulate(&spec, &trace, Some(spec.policy.high))?;

    let mut weight = 0;
    for point in &mine.timeline {
        if point.burst_weight != weight {
            weight = point.burst_weight;
            let minute =
                office.minute_of_day(Timestamp::from_secs_f64(point.t).unwrap_or(Timestamp::ZERO));
            println!(
                "{:02}:{:02}  {:<18} split {}/{}  ({:.1} rps)",
                minute / 60,
                minute % 60,
                point.rule,
                100 - weight,
                weight,
                point.rps
            );
        }
    }
    for (name, run) in [("seed hysteresis", &seed), ("office hours", &mine)] {
        let s = &run.summary;
        println!(
            "{name:<16} changes {:>3}  overload {:>6.1}s  share to burst {:>5.1}%",
            s.changes,
            s.overload_s.unwrap_or(0.0),
            s.burst_share * 100.0
        );
    }
    Ok(())
}
