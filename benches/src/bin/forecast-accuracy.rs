//! `forecast-accuracy`: lead time gained against false pre-warms, for each pre-warm
//! forecaster on the built-in traces (deterministic; no timing).
//!
//! ```text
//! cargo run -p burst-benches --bin forecast-accuracy -- [--lead 60s] [--hold 60s] [--trigger 15] [--seeds 5]
//! ```
//!
//! For each trace and method it replays the trace through
//! `burst_core::testing::forecast_accuracy` (the demand measured as a 15 s rate every
//! second; "on burst" when it is at or above the trigger) and prints Markdown tables:
//! totals per method, then per trace. A *cold* crossing is one more than `hold` after the
//! last burst (without a forecast the burst side is cold there); the lead gained is how long
//! the burst side had been prepared at a cold crossing, capped at `lead`. A false pre-warm
//! is a pre-warm during which the demand never reached the trigger. The seeded traces (`noisy`, `diurnal`) run once per
//! seed and are summed.
//!
//! The traces are the built-in load shapes (`step`, `ramp`, `sine`, `flash`, `noisy`,
//! `outage`, `diurnal`, `cold-burst`); the built-ins whose load tells a forecaster nothing
//! new are left out, each for the reason in [`LEFT_OUT`].

use std::time::Duration;

use burst_core::HumanDuration;
use burst_core::forecast::ForecastMethod;
use burst_core::sim::Trace;
use burst_core::testing::{Accuracy, AccuracySettings, forecast_accuracy};

/// Lead time gained against false pre-warms, per forecaster, on the built-in traces.
#[derive(Debug, clap::Parser)]
#[command(name = "forecast-accuracy")]
struct Args {
    /// Pre-warm lead time.
    #[arg(long, default_value = "60s")]
    lead: HumanDuration,
    /// Pre-warm hold time.
    #[arg(long, default_value = "60s")]
    hold: HumanDuration,
    /// Trigger (rps): the policy's high threshold.
    #[arg(long, default_value_t = 15.0)]
    trigger: f64,
    /// Seeds for the noisy traces (1..=N).
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    seeds: u64,
}

/// The built-in traces left out, and why; every other one is measured, in the order of
/// [`Trace::BUILTIN_NAMES`].
const LEFT_OUT: &[(&str, &str)] = &[
    (
        "endpoints-lost",
        "25 rps from the start: its one crossing is the first measured rate, which nothing forecasts",
    ),
    (
        "burst-down",
        "the load of `step` (it differs in signals only)",
    ),
    (
        "square",
        "its 15 s rate alternates between 14.3 and 15.7 rps: a trigger of 15 is crossed every \
         other second (one cold crossing, at the start), a trigger of 20 never, and every method makes \
         the same one false pre-warm",
    ),
];

/// The methods measured: none, three trend windows, four Holt settings.
fn candidates() -> Vec<(String, Option<ForecastMethod>)> {
    let mut out = vec![("none (prepare on burst)".to_owned(), None)];
    for w in [10, 30, 60] {
        let m = ForecastMethod::LinearTrend {
            window: HumanDuration::from_secs(w),
        };
        out.push((m.to_string(), Some(m)));
    }
    for (alpha, beta) in [(0.8, 0.5), (0.5, 0.2), (0.3, 0.1), (0.2, 0.05)] {
        let m = ForecastMethod::Holt { alpha, beta };
        out.push((m.to_string(), Some(m)));
    }
    out
}

fn add(total: &mut Accuracy, a: &Accuracy, lead_sum: &mut f64) {
    total.crossings += a.crossings;
    total.cold_crossings += a.cold_crossings;
    total.warned += a.warned;
    total.prewarms += a.prewarms;
    total.false_prewarms += a.false_prewarms;
    total.idle_prepared_s += a.idle_prepared_s;
    *lead_sum += a.mean_lead_s * a.cold_crossings as f64;
}

fn empty() -> Accuracy {
    Accuracy {
        crossings: 0,
        cold_crossings: 0,
        warned: 0,
        mean_lead_s: 0.0,
        prewarms: 0,
        false_prewarms: 0,
        idle_prepared_s: 0.0,
    }
}

fn main() -> anyhow::Result<()> {
    let args = <Args as clap::Parser>::parse();
    let settings = AccuracySettings {
        trigger: args.trigger,
        lead: args.lead.get(),
        hold: args.hold.get(),
        window: Duration::from_secs(15),
        tick: Duration::from_secs(1),
    };
    let methods = candidates();
    // per trace, per method
    let mut rows: Vec<(String, Vec<Accuracy>)> = Vec::new();
    let left_out: Vec<&str> = LEFT_OUT.iter().map(|(name, _)| *name).collect();
    let measured = Trace::BUILTIN_NAMES
        .iter()
        .filter(|name| !left_out.contains(name));
    for name in measured {
        let seeded = matches!(*name, "noisy" | "diurnal");
        let seeds = if seeded { args.seeds } else { 1 };
        let mut per_method = Vec::new();
        for (_, m) in &methods {
            let mut total = empty();
            let mut lead_sum = 0.0;
            for seed in 1..=seeds {
                let trace = Trace::builtin(name, seed)?;
                let a = forecast_accuracy(&trace, *m, settings)?;
                add(&mut total, &a, &mut lead_sum);
            }
            if total.cold_crossings > 0 {
                total.mean_lead_s = lead_sum / total.cold_crossings as f64;
            }
            per_method.push(total);
        }
        let label = if seeded {
            format!("{name} (seeds 1-{seeds})")
        } else {
            (*name).to_owned()
        };
        rows.push((label, per_method));
    }

    println!(
        "lead {}, hold {}, trigger {} rps, demand = 15 s rate every 1 s; left out: {}\n",
        args.lead,
        args.hold,
        args.trigger,
        left_out.join(", ")
    );
    println!(
        "| method | crossings | cold crossings | prepared ahead | mean lead gained (s) | pre-warms | false pre-warms | idle prepared (s) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for (i, (label, _)) in methods.iter().enumerate() {
        let mut total = empty();
        let mut lead_sum = 0.0;
        for (_, per) in &rows {
            add(&mut total, &per[i], &mut lead_sum);
        }
        let mean = if total.cold_crossings > 0 {
            lead_sum / total.cold_crossings as f64
        } else {
            0.0
        };
        println!(
            "| {label} | {} | {} | {} | {mean:.1} | {} | {} | {:.0} |",
            total.crossings,
            total.cold_crossings,
            total.warned,
            total.prewarms,
            total.false_prewarms,
            total.idle_prepared_s
        );
    }
    println!(
        "\nPer trace: prepared ahead / cold crossings, mean lead gained (s), false pre-warms\n"
    );
    let header: Vec<&str> = methods.iter().map(|(l, _)| l.as_str()).collect();
    println!("| trace | {} |", header.join(" | "));
    println!("|---|{}", "---:|".repeat(header.len()));
    for (label, per) in &rows {
        let cells: Vec<String> = per
            .iter()
            .map(|a| {
                format!(
                    "{}/{}, {:.0}, {}",
                    a.warned, a.cold_crossings, a.mean_lead_s, a.false_prewarms
                )
            })
            .collect();
        println!("| {label} | {} |", cells.join(" | "));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_trace_left_out_is_a_builtin() {
        for (name, why) in LEFT_OUT {
            assert!(Trace::BUILTIN_NAMES.contains(name), "{name}");
            assert!(!why.is_empty(), "{name}");
        }
    }
}
