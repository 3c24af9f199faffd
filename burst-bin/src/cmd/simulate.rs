//! `burst simulate`: a policy against a load trace on a virtual clock.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use burst_core::policy::PolicySpec;
use burst_core::sim::{SimRun, Trace, simulate};

/// Arguments of `burst simulate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Traces: a CSV file with columns t,rps[,up] (seconds, requests/s, 1/0 for metric outages), or
builtin:NAME with NAME one of step, ramp, sine, flash, noisy, outage, diurnal.

The policy file (YAML) holds mode, high, low, burst_weight, capacity, step, max_up, max_down,
dead_band, sustain, cooldown, on_missing, stale_after, tick, window, window_up, window_down and
scrape_interval; every key is optional and the defaults reproduce the seed daemon
(hysteresis 15/10 rps, rate over 15s, 1s tick). Example:

  burst simulate --trace builtin:step
  burst simulate --trace load.csv --policy policy.yaml --json")]
pub struct Args {
    /// Load trace: a CSV file (t,rps[,up]) or builtin:NAME.
    #[arg(long, value_name = "FILE|builtin:NAME")]
    trace: String,
    /// Policy and measurement model (YAML). Defaults reproduce the seed.
    #[arg(long, value_name = "FILE")]
    policy: Option<PathBuf>,
    /// Seed for the noise of built-in traces.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The primary's capacity in rps, to count seconds of overload (default: the policy's
    /// `capacity`, if any).
    #[arg(long)]
    capacity: Option<f64>,
    /// Print JSON ({"summary": ..., "timeline": [...]}) instead of a table.
    #[arg(long)]
    json: bool,
    /// Table only: print a row at least this often (rows where the weight changes are
    /// always printed).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    every: std::time::Duration,
}

/// Runs `burst simulate`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let spec = load_policy(args.policy.as_deref())?;
    let trace = load_trace(&args.trace, args.seed)?;
    let run = simulate(&spec, &trace, args.capacity)?;
    let text = if args.json {
        serde_json::to_string_pretty(&run)? + "\n"
    } else {
        table(&run, spec.has_two_windows(), args.every.as_secs_f64())
    };
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Reads and validates a policy file, or the defaults.
pub fn load_policy(path: Option<&std::path::Path>) -> anyhow::Result<PolicySpec> {
    match path {
        None => Ok(PolicySpec::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read policy file {}", p.display()))?;
            PolicySpec::from_yaml(&text).with_context(|| format!("in {}", p.display()))
        }
    }
}

/// Loads `builtin:NAME` or a CSV file.
pub fn load_trace(arg: &str, seed: u64) -> anyhow::Result<Trace> {
    if let Some(name) = arg.strip_prefix("builtin:") {
        return Ok(Trace::builtin(name, seed)?);
    }
    let text = std::fs::read_to_string(arg).with_context(|| {
        format!("cannot read trace file {arg} (or use builtin:NAME, e.g. builtin:step)")
    })?;
    Trace::from_csv(arg, &text).with_context(|| format!("in {arg}"))
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), |x| format!("{x:.2}"))
}

/// A readable table of the timeline and the summary.
pub fn table(run: &SimRun, two_windows: bool, every: f64) -> String {
    let mut out = String::new();
    let up_col = if two_windows { "  observed(short)" } else { "" };
    let _ = writeln!(
        out,
        "{:>8}  {:>8}  {:>10}{up_col}  {:>6}  rule",
        "t(s)", "rps", "observed", "burst%"
    );
    let mut next_row = 0.0;
    let mut prev = None;
    for p in &run.timeline {
        let changed = prev.is_some_and(|w| w != p.burst_weight);
        prev = Some(p.burst_weight);
        let due = p.t + 1e-9 >= next_row;
        if !(changed || due) {
            continue;
        }
        if due {
            let every = every.max(1e-3);
            next_row = ((p.t + 1e-9) / every).floor() * every + every;
        }
        let up = match p.observed_up {
            Some(u) => format!("  {:>15}", opt(u)),
            None => String::new(),
        };
        let mark = if changed { " <- change" } else { "" };
        let _ = writeln!(
            out,
            "{:>8.1}  {:>8.2}  {:>10}{up}  {:>6}  {}{mark}",
            p.t,
            p.rps,
            opt(p.observed),
            p.burst_weight,
            p.rule
        );
    }
    let s = &run.summary;
    let secs = |v: Option<f64>| v.map_or_else(|| "never".to_string(), |x| format!("{x:.1}s"));
    let _ = writeln!(out);
    let _ = writeln!(out, "weight changes      {}", s.changes);
    let _ = writeln!(out, "first to burst      {}", secs(s.first_burst_s));
    let _ = writeln!(out, "last change         {}", secs(s.last_change_s));
    let _ = writeln!(out, "final burst weight  {}%", s.final_burst_weight);
    let _ = writeln!(
        out,
        "primary overloaded  {}",
        s.overload_s
            .map_or_else(|| "n/a (no capacity given)".into(), |x| format!("{x:.1}s"))
    );
    let _ = writeln!(out, "share sent to burst {:.1}%", s.burst_share * 100.0);
    out
}
