//! `burst simulate`: a policy against a load trace on a virtual clock.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use burst_core::Timestamp;
use burst_core::policy::{PolicyFile, PolicySpec};
use burst_core::sim::{BurstSide, PrewarmEvent, SimOptions, SimRun, Trace, quality, simulate_with};
use burst_prom::{HttpClients, RangeClient, RangeQuery};

use super::query::HttpArgs;

use crate::plot::{Axis, Chart, Format, Series};
use crate::report::{Change, Column, Point, Report, Summary, report_text};

/// Arguments of `burst simulate`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Traces: a CSV file with columns t,rps[,up] (seconds, requests/s, 1/0 for metric outages) and
optionally p99_ms,error_ratio,primary_ready,burst_ready,burst_error_ratio and burst_capacity
(by header name; an empty cell is no data), or builtin:NAME with NAME one of step, ramp, sine, flash, noisy,
outage, diurnal, cold-burst, endpoints-lost, burst-down, square. Where a trace gives no p99 or error ratio for the
primary but a capacity is known, they come from a queueing model of the primary's load
(docs/policies.md).

The burst side: by default it has unlimited capacity. --burst-start (and --burst-capacity,
--burst-prewarm-capacity) model a cold one: it serves --burst-capacity rps until a scale-up
(its load above 80 % of its capacity, or a pre-warm's prepare) serves --burst-start later;
requests beyond the capacity of the side they were sent to are counted as finding no
capacity. builtin:cold-burst carries its own (5 rps, 60s, 40 rps). A trace's burst_capacity
column (rps) is the burst side's serving capacity where it gives one: it overrides the
modelled scale-ups; the model (the flags or the trace's) serves the stretches without one,
starting from the last capacity the column gave, and without a model those stretches have
unlimited capacity. --save-trace of a run with a burst-side model records the run's burst
capacity as that column. Example:

  burst simulate --trace builtin:cold-burst --capacity 20 --compare
  burst simulate --trace builtin:cold-burst --capacity 20 --save-trace cold.csv

The policy file (YAML) holds mode, high, low, burst_weight, capacity, step, max_up, max_down,
dead_band, target, smoothing, stabilization, sustain, cooldown, on_missing, stale_after, tick, window, window_up, window_down,
capacity_per_endpoint, burst_capacity_per_endpoint, high_fraction, low_fraction, triggers,
burst_health, warmup, prewarm and scrape_interval; every key is optional and the defaults reproduce the seed
daemon (hysteresis 15/10 rps, rate over 15s, 1s tick). Example:

  burst simulate --trace builtin:step
  burst simulate --trace load.csv --policy policy.yaml --json

Replay: with --prometheus-url, --query (one series: wrap it in sum(...)) is fetched from
Prometheus' query_range over --start..--end every --step, and its values become the trace's
rps; steps without a value become no-data (a metric outage), never 0. --save-trace writes
that trace as CSV, which --trace reads back to the same result. Example:

  burst simulate --prometheus-url http://localhost:9090 \\
      --query 'sum(rate(istio_requests_total{reporter=\"source\"}[1m]))' \\
      --start 2026-12-01T08:00:00Z --end 2026-12-01T20:00:00Z --step 5s --compare

The --json report (shared with `burst demo --headless --json`) is described in
docs/reports.md.")]
pub struct Args {
    /// Load trace: a CSV file (t,rps[,up]) or builtin:NAME. With --compare it may be
    /// repeated, and defaults to every built-in trace.
    #[arg(
        long,
        value_name = "FILE|builtin:NAME",
        required_unless_present_any = ["compare", "prometheus_url"]
    )]
    trace: Vec<String>,
    /// Replay history instead of a trace: the base URL of Prometheus (or a compatible API)
    /// to fetch --query from, over --start..--end.
    #[arg(
        long,
        value_name = "URL",
        conflicts_with = "trace",
        requires_all = ["query", "start", "end"]
    )]
    prometheus_url: Option<String>,
    /// PromQL giving the demand in requests/s as one series, e.g.
    /// `sum(rate(istio_requests_total{reporter="source"}[1m]))`.
    #[arg(long, value_name = "PROMQL", requires = "prometheus_url")]
    query: Option<String>,
    /// Start of the replayed range: RFC 3339 (2026-12-01T08:00:00Z) or Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "prometheus_url")]
    start: Option<Timestamp>,
    /// End of the replayed range: RFC 3339 or Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_time, requires = "prometheus_url")]
    end: Option<Timestamp>,
    /// Time between the fetched values (whole milliseconds).
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration, requires = "prometheus_url")]
    step: std::time::Duration,
    /// Write the trace (fetched with --prometheus-url, or the one --trace) to this file as
    /// CSV, for `--trace FILE` later. With a burst-side model, the run's burst capacity on
    /// each point becomes the burst_capacity column. With --compare: the fetched trace
    /// only, as fetched.
    #[arg(long, value_name = "FILE")]
    save_trace: Option<PathBuf>,
    /// Timeout, authentication and TLS of the requests to Prometheus.
    #[command(flatten)]
    http: HttpArgs,
    /// Compare the seed daemon's policy, the recommended hysteresis settings, the
    /// recommended overflow settings, the recommended overflow that does not flap
    /// (`overflow-stable`: stabilization window, quick up) (and --policy, if given) on the traces: reaction time,
    /// time back, weight changes, seconds of primary overload, share sent to burst.
    #[arg(long)]
    compare: bool,
    /// Write a plot of load, measured rate, thresholds and burst weight to this file, as SVG
    /// or PNG by its extension (.svg or .png, any case). With --compare: a directory, one
    /// file per trace, in --plot-format. PNG text is drawn with a system font (Debian:
    /// `apt-get install -y fonts-dejavu-core`).
    #[arg(long, value_name = "FILE.svg|FILE.png|DIR")]
    plot: Option<PathBuf>,
    /// Format of the files --compare writes into the --plot directory [default: svg]. A
    /// single --plot file takes its format from its extension.
    #[arg(long, value_enum, value_name = "FORMAT", requires = "plot")]
    plot_format: Option<Format>,
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
    /// Rps one primary endpoint serves, to count seconds over capacity with the trace's
    /// `primary_ready` and to model latency and errors (default: the policy's
    /// `capacityPerEndpoint`, if any).
    #[arg(long, value_name = "RPS")]
    capacity_per_endpoint: Option<f64>,
    /// Model a cold burst side whose scale-ups take this long to serve (e.g. 60s); see
    /// below. Default: the trace's model (builtin:cold-burst has one), else unlimited.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    burst_start: Option<std::time::Duration>,
    /// The modelled burst side's capacity in rps before any scale-up [default: the
    /// trace's, else 5].
    #[arg(long, value_name = "RPS")]
    burst_capacity: Option<f64>,
    /// The capacity in rps a pre-warm's prepare grows the modelled burst side to
    /// [default: the trace's, else 40].
    #[arg(long, value_name = "RPS")]
    burst_prewarm_capacity: Option<f64>,
    /// Print JSON ({"summary", "timeline", "changes"}, the schema of `burst demo --json`;
    /// see docs/reports.md) instead of a table.
    #[arg(long)]
    json: bool,
    /// Table only: print a row at least this often (rows where the weight changes are
    /// always printed).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    every: std::time::Duration,
}

/// Runs `burst simulate`.
pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    let replayed = match &args.prometheus_url {
        Some(url) => Some(replay_trace(&args, url).await?),
        None => None,
    };
    if args.compare {
        return compare(&args, replayed);
    }
    let plot = match &args.plot {
        Some(path) => Some((path, plot_file_format(path, args.plot_format)?)),
        None => None,
    };
    let spec = load_policy(args.policy.as_deref())?;
    let trace = match replayed {
        Some(trace) => trace,
        None => {
            let [trace_arg] = args.trace.as_slice() else {
                anyhow::bail!("give exactly one --trace (several traces need --compare)");
            };
            load_trace(trace_arg, args.seed)?
        }
    };
    let run = simulate_with(&spec, &trace, options(&args, args.capacity, &trace)?)?;
    if let Some(path) = &args.save_trace {
        save_trace(path, &trace, &run)?;
    }
    if let Some((path, format)) = plot {
        let chart = chart(trace.name(), &spec.policy, &[("burst weight", &run)]);
        write_plot(path, &chart, format)?;
    }
    let mut report = report(&run);
    if trace.has_signals() {
        report.summary.seconds_on_unhealthy_burst = Some(run.summary.seconds_on_unhealthy_burst);
    }
    if run.summary.seconds_burst_over_capacity.is_none() {
        // Without a burst-side model only the primary's excess would count.
        report.summary.requests_without_capacity = None;
    }
    let text = if args.json {
        serde_json::to_string_pretty(&report)? + "\n"
    } else {
        table(
            &report,
            spec.policy.has_two_windows(),
            args.every.as_secs_f64(),
        )
    };
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The simulator's measurement options from the flags; refuses a capacity that is not a
/// positive number.
fn options(args: &Args, capacity: Option<f64>, trace: &Trace) -> anyhow::Result<SimOptions> {
    for (flag, v) in [
        ("--capacity", capacity),
        ("--capacity-per-endpoint", args.capacity_per_endpoint),
        ("--burst-prewarm-capacity", args.burst_prewarm_capacity),
    ] {
        if let Some(v) = v.filter(|v| !(v.is_finite() && *v > 0.0)) {
            anyhow::bail!("{flag} {v} is not a capacity; give requests/s > 0");
        }
    }
    if let Some(v) = args
        .burst_capacity
        .filter(|v| !(v.is_finite() && *v >= 0.0))
    {
        anyhow::bail!("--burst-capacity {v} is not a capacity; give requests/s >= 0");
    }
    Ok(SimOptions {
        capacity,
        capacity_per_endpoint: args.capacity_per_endpoint,
        burst: burst_side(args, trace),
    })
}

/// The burst side to model: the trace's, with the flags given on top; without a model in
/// the trace, one only when a burst flag is given.
fn burst_side(args: &Args, trace: &Trace) -> Option<BurstSide> {
    let flags = args.burst_start.is_some()
        || args.burst_capacity.is_some()
        || args.burst_prewarm_capacity.is_some();
    let base = trace.burst_side().or_else(|| {
        flags.then_some(BurstSide {
            initial: DEFAULT_BURST_CAPACITY,
            start: DEFAULT_BURST_START,
            prewarm: DEFAULT_BURST_PREWARM_CAPACITY,
        })
    })?;
    Some(BurstSide {
        initial: args.burst_capacity.unwrap_or(base.initial),
        start: args.burst_start.unwrap_or(base.start),
        prewarm: args.burst_prewarm_capacity.unwrap_or(base.prewarm),
    })
}

/// The modelled burst side's capacity before a scale-up, without a trace's or a flag's.
const DEFAULT_BURST_CAPACITY: f64 = 5.0;
/// The modelled burst side's start-up delay, without a trace's or a flag's.
const DEFAULT_BURST_START: std::time::Duration = std::time::Duration::from_secs(60);
/// The capacity a prepare grows the modelled burst side to, without a trace's or a flag's.
const DEFAULT_BURST_PREWARM_CAPACITY: f64 = 40.0;

/// The capacity assumed by --compare when none is given: the seed's high threshold.
const DEFAULT_COMPARE_CAPACITY: f64 = 15.0;

/// Fetches --query over --start..--end from Prometheus as a trace (and saves it with
/// --save-trace).
async fn replay_trace(args: &Args, url: &str) -> anyhow::Result<Trace> {
    let (Some(query), Some(start), Some(end)) = (&args.query, args.start, args.end) else {
        anyhow::bail!("--prometheus-url needs --query, --start and --end");
    };
    if start >= end {
        anyhow::bail!(
            "--start {} is not before --end {}; give a start earlier than the end",
            rfc3339(start),
            rfc3339(end)
        );
    }
    if args.step.is_zero() {
        anyhow::bail!("--step 0s is not a step; give a positive duration, e.g. --step 1s");
    }
    let client = RangeClient::new(url, &args.http.config(), &HttpClients::new())
        .context("--prometheus-url")?;
    tracing::info!(query = %query, start = %rfc3339(start), end = %rfc3339(end), "fetching history");
    let history = client
        .fetch(&RangeQuery {
            query: query.clone(),
            start,
            end,
            step: args.step,
        })
        .await
        .with_context(|| format!("cannot replay `{query}` from {url}"))?;
    let values: Vec<Option<f64>> = history.samples.iter().map(|s| s.value).collect();
    let gaps = values.iter().filter(|v| v.is_none()).count();
    tracing::info!(
        steps = values.len(),
        gaps,
        requests = history.requests,
        "history fetched"
    );
    let name = format!("{query} from {}", rfc3339(start));
    let trace = Trace::from_steps(name, args.step.as_secs_f64(), &values)?;
    if args.compare
        && let Some(path) = &args.save_trace
    {
        // Several runs, several burst sides: the trace is saved as fetched.
        write_trace(path, &trace)?;
    }
    Ok(trace)
}

/// Writes `trace` for --save-trace, with `run`'s burst capacity as its burst_capacity
/// column when the run modelled a burst side.
fn save_trace(path: &std::path::Path, trace: &Trace, run: &SimRun) -> anyhow::Result<()> {
    if run.timeline.iter().any(|p| p.burst_capacity.is_some()) {
        write_trace(path, &run.record_burst_capacity(trace)?)
    } else {
        write_trace(path, trace)
    }
}

fn write_trace(path: &std::path::Path, trace: &Trace) -> anyhow::Result<()> {
    std::fs::write(path, trace.to_csv())
        .with_context(|| format!("cannot write the trace to {}", path.display()))
}

/// Parses RFC 3339 (`2026-12-01T08:00:00Z`, any offset) or Unix seconds (`1764576000`,
/// fractions allowed), as Prometheus takes them.
fn parse_time(s: &str) -> Result<Timestamp, String> {
    let s = s.trim();
    if let Ok(secs) = s.parse::<f64>() {
        return Timestamp::from_secs_f64(secs)
            .filter(|_| secs.is_finite())
            .ok_or_else(|| format!("`{s}` is not a time after 1970 in Unix seconds"));
    }
    let at = chrono::DateTime::parse_from_rfc3339(s).map_err(|e| {
        format!("`{s}` is neither RFC 3339 (e.g. 2026-12-01T08:00:00Z) nor Unix seconds ({e})")
    })?;
    let ms = u64::try_from(at.timestamp_millis())
        .map_err(|_| format!("`{s}` is before 1970; Prometheus holds no history there"))?;
    Ok(Timestamp::from_duration(std::time::Duration::from_millis(
        ms,
    )))
}

/// A timestamp in RFC 3339 (UTC), or Unix seconds if it cannot be shown so.
fn rfc3339(at: Timestamp) -> String {
    let d = at.as_duration();
    i64::try_from(d.as_secs())
        .ok()
        .and_then(|secs| chrono::DateTime::from_timestamp(secs, d.subsec_nanos()))
        .map_or_else(
            || format!("{}", at.as_secs_f64()),
            |t| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        )
}

fn compare(args: &Args, replayed: Option<Trace>) -> anyhow::Result<ExitCode> {
    if args.save_trace.is_some() && replayed.is_none() {
        anyhow::bail!(
            "--save-trace with --compare saves a trace fetched with --prometheus-url only; \
             to save a --trace, run it once without --compare"
        );
    }
    let capacity = args.capacity.unwrap_or(DEFAULT_COMPARE_CAPACITY);
    let mut candidates = vec![
        ("seed".to_string(), PolicyFile::default()),
        ("recommended".to_string(), PolicySpec::recommended().into()),
        (
            "overflow".to_string(),
            PolicySpec::recommended_overflow(capacity).into(),
        ),
        (
            "overflow-stable".to_string(),
            PolicySpec::recommended_stable_overflow(capacity).into(),
        ),
        (
            "warm-up".to_string(),
            PolicySpec::recommended_warmup().into(),
        ),
        (
            "pre-warm".to_string(),
            PolicySpec::recommended_prewarm().into(),
        ),
    ];
    if let Some(p) = &args.policy {
        candidates.push((p.display().to_string(), load_policy(Some(p))?));
    }
    // (label for titles and plot file names, trace)
    let traces: Vec<(String, Trace)> = if let Some(trace) = replayed {
        vec![(trace.name().to_owned(), trace)]
    } else if args.trace.is_empty() {
        Trace::BUILTIN_NAMES
            .iter()
            .map(|n| format!("builtin:{n}"))
            .map(|name| Ok((name.clone(), load_trace(&name, args.seed)?)))
            .collect::<anyhow::Result<_>>()?
    } else {
        args.trace
            .iter()
            .map(|name| Ok((name.clone(), load_trace(name, args.seed)?)))
            .collect::<anyhow::Result<_>>()?
    };
    if let Some(dir) = &args.plot {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create plot directory {}", dir.display()))?;
    }
    let seed = PolicySpec::default();
    let mut text = String::new();
    let mut json = Vec::new();
    for (name, trace) in &traces {
        let mut runs = Vec::new();
        for (policy, spec) in &candidates {
            let run = simulate_with(spec, trace, options(args, Some(capacity), trace)?)
                .with_context(|| format!("policy {policy} on {name}"))?;
            let q = quality(&run, trace, seed.high, seed.low);
            json.push(serde_json::json!({"trace": name, "policy": policy, "quality": q}));
            runs.push((policy.as_str(), q, run));
        }
        let _ = writeln!(text, "{name} (capacity {capacity} rps)");
        let _ = writeln!(
            text,
            "  {:<16} {:>10} {:>10} {:>8} {:>12} {:>10} {:>10} {:>11} {:>12} {:>13}  changes by rule",
            "policy",
            "reaction",
            "back",
            "changes",
            "overloaded",
            "over cap",
            "unhealthy",
            "burst over",
            "no capacity",
            "sent to burst",
        );
        for (policy, q, _) in &runs {
            let secs = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |x| format!("{x:.0}s"));
            let rules: Vec<String> = q
                .changes_by_rule
                .iter()
                .map(|(rule, n)| format!("{rule} {n}"))
                .collect();
            let refused = q
                .seconds_burst_over_capacity
                .and(q.requests_without_capacity)
                .map_or_else(|| "-".to_string(), |x| format!("{x:.0}"));
            let _ = writeln!(
                text,
                "  {:<16} {:>10} {:>10} {:>8} {:>12} {:>10} {:>10} {:>11} {:>12} {:>12.1}%  {}",
                policy,
                secs(q.reaction_s),
                secs(q.back_s),
                q.changes,
                secs(q.overload_s),
                secs(q.seconds_primary_over_capacity),
                secs(Some(q.seconds_on_unhealthy_burst)),
                secs(q.seconds_burst_over_capacity),
                refused,
                q.burst_share * 100.0,
                rules.join(", ")
            );
        }
        let _ = writeln!(text);
        if let Some(dir) = &args.plot {
            let format = args.plot_format.unwrap_or(Format::Svg);
            let stem = if args.prometheus_url.is_some() {
                "prometheus".to_owned()
            } else {
                name.replace(['/', ':'], "_")
            };
            let file = dir.join(format!("{stem}.{}", format.extension()));
            let labelled: Vec<(&str, &SimRun)> = runs.iter().map(|(p, _, r)| (*p, r)).collect();
            write_plot(&file, &chart(name, &seed, &labelled), format)?;
        }
    }
    if args.json {
        text = serde_json::to_string_pretty(&json)? + "\n";
    }
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The compare rows drawn last (on top): seed, recommended, overflow.
const FIRST_DRAWN_LAST: usize = 3;

/// One colour per compare row (more rows than colours would repeat one).
const COLORS: [&str; 8] = [
    "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#393b79", "#637939", "#843c39",
];

/// Load, the first run's measured rate, thresholds, and each run's burst weight.
fn chart(title: &str, spec: &PolicySpec, runs: &[(&str, &SimRun)]) -> Chart {
    let mut series = Vec::new();
    if let Some((_, first)) = runs.first() {
        series.push(Series {
            label: "load (rps)".into(),
            color: "#1f77b4",
            axis: Axis::Rps,
            step: true,
            points: first.timeline.iter().map(|p| (p.t, Some(p.rps))).collect(),
        });
        series.push(Series {
            label: "observed (rps)".into(),
            color: "#7f7f7f",
            axis: Axis::Rps,
            step: false,
            points: first.timeline.iter().map(|p| (p.t, p.observed)).collect(),
        });
        if first.timeline.iter().any(|p| p.capacity.is_some()) {
            series.push(Series {
                label: "primary capacity (rps)".into(),
                color: "#17becf",
                axis: Axis::Rps,
                step: true,
                points: first.timeline.iter().map(|p| (p.t, p.capacity)).collect(),
            });
        }
        if first.timeline.iter().any(|p| p.error_ratio.is_some()) {
            series.push(Series {
                label: "primary errors %".into(),
                color: "#e377c2",
                axis: Axis::Weight,
                step: false,
                points: first
                    .timeline
                    .iter()
                    .map(|p| (p.t, p.error_ratio.map(|e| e * 100.0)))
                    .collect(),
            });
        }
        if first.timeline.iter().any(|p| p.p99_ms.is_some()) {
            series.push(Series {
                label: "primary p99 (% of 1s)".into(),
                color: "#bcbd22",
                axis: Axis::Weight,
                step: false,
                points: first
                    .timeline
                    .iter()
                    .map(|p| (p.t, p.p99_ms.map(|ms| (ms / 10.0).min(100.0))))
                    .collect(),
            });
        }
        if first.timeline.iter().any(|p| p.burst_capacity.is_some()) {
            series.push(Series {
                label: "burst capacity (rps)".into(),
                color: "#aec7e8",
                axis: Axis::Rps,
                step: true,
                points: first
                    .timeline
                    .iter()
                    .map(|p| (p.t, p.burst_capacity))
                    .collect(),
            });
        }
        if first.timeline.iter().any(|p| p.forecast.is_some()) {
            series.push(Series {
                label: "forecast at lead (rps)".into(),
                color: "#ffbb78",
                axis: Axis::Rps,
                step: false,
                points: first.timeline.iter().map(|p| (p.t, p.forecast)).collect(),
            });
        }
        if first.timeline.iter().any(|p| p.burst_ready.is_some()) {
            series.push(Series {
                label: "burst ready endpoints".into(),
                color: "#8c564b",
                axis: Axis::Rps,
                step: true,
                points: first
                    .timeline
                    .iter()
                    .map(|p| (p.t, p.burst_ready.map(f64::from)))
                    .collect(),
            });
        }
    }
    // The warm-up and pre-warm rows (and --policy) first, so that seed, recommended and
    // overflow stay visible where those send the same weights; each keeps its colour.
    let order = (FIRST_DRAWN_LAST..runs.len()).chain(0..FIRST_DRAWN_LAST.min(runs.len()));
    for i in order {
        let Some((label, run)) = runs.get(i) else {
            continue;
        };
        series.push(Series {
            label: format!("{label} burst %"),
            color: COLORS[i % COLORS.len()],
            axis: Axis::Weight,
            step: true,
            points: run
                .timeline
                .iter()
                .map(|p| (p.t, Some(f64::from(p.burst_weight))))
                .collect(),
        });
    }
    Chart {
        title: title.to_string(),
        series,
        thresholds: vec![
            (format!("high {}", spec.high), spec.high),
            (format!("low {}", spec.low), spec.low),
        ],
    }
}

/// The format of a single plot file: its extension's, which --plot-format may repeat.
fn plot_file_format(path: &std::path::Path, asked: Option<Format>) -> anyhow::Result<Format> {
    let format = Format::from_path(path)?;
    if let Some(asked) = asked.filter(|f| *f != format) {
        anyhow::bail!(
            "--plot-format {} contradicts the plot file {}; a single plot file takes its \
             format from its extension, so drop --plot-format or rename the file",
            asked.extension(),
            path.display()
        );
    }
    Ok(format)
}

fn write_plot(path: &std::path::Path, chart: &Chart, format: Format) -> anyhow::Result<()> {
    let bytes = chart
        .render(format)
        .with_context(|| format!("cannot draw plot {}", path.display()))?;
    std::fs::write(path, bytes).with_context(|| format!("cannot write plot {}", path.display()))
}

/// Reads and validates a policy file, or the defaults.
pub fn load_policy(path: Option<&std::path::Path>) -> anyhow::Result<PolicyFile> {
    match path {
        None => Ok(PolicyFile::default()),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read policy file {}", p.display()))?;
            PolicyFile::from_yaml(&text).with_context(|| format!("in {}", p.display()))
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

/// What a simulated point has beyond the shared keys.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimExtra {
    /// Short-window measured rate; present only when two windows are configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    observed_up: Option<Option<f64>>,
    /// The primary's p99 the policy saw (trace or queueing model), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    p99_ms: Option<f64>,
    /// The primary's error ratio the policy saw (trace or queueing model), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    error_ratio: Option<f64>,
    /// The primary's ready endpoints (trace), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    primary_ready: Option<u32>,
    /// The burst side's ready endpoints (trace), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    burst_ready: Option<u32>,
    /// The primary's capacity in rps on this tick, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    capacity: Option<f64>,
    /// The modelled burst side's serving capacity in rps, with a burst-side model.
    #[serde(skip_serializing_if = "Option::is_none")]
    burst_capacity: Option<f64>,
    /// Pre-warm: the forecast demand at the end of the lead time, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    forecast: Option<f64>,
    /// Pre-warm: whether the burst side is prepared after this tick.
    #[serde(skip_serializing_if = "Option::is_none")]
    prepared: Option<bool>,
}

/// What a simulation reports beyond the shared keys: the pre-warm's actions.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SimDetails {
    /// Every pre-warm prepare and release (`t`, `action`, `detail`); absent without
    /// `prewarm`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prewarm: Vec<PrewarmEvent>,
}

/// The run in the shared report schema: the changes are the points where the weight moved.
pub fn report(run: &SimRun) -> Report<SimExtra, SimDetails> {
    let mut changes = Vec::new();
    let mut prev = 0u8;
    for p in &run.timeline {
        if p.burst_weight != prev {
            changes.push(Change::new(p.t, prev, p.burst_weight, p.rule.to_owned()));
            prev = p.burst_weight;
        }
    }
    let s = &run.summary;
    let duration_s = run.timeline.last().map_or(0.0, |p| p.t);
    let mut summary = Summary::new(
        &changes,
        duration_s,
        s.final_burst_weight,
        s.burst_share,
        s.overload_s,
    );
    summary.seconds_primary_over_capacity = s.seconds_primary_over_capacity;
    summary.seconds_burst_over_capacity = s.seconds_burst_over_capacity;
    summary.requests_without_capacity = s.requests_without_capacity;
    summary.prewarm_prepares = s.prewarm_prepares;
    Report {
        summary,
        timeline: run
            .timeline
            .iter()
            .map(|p| Point {
                t: p.t,
                rps: p.rps,
                observed: p.observed,
                burst_weight: p.burst_weight,
                rule: Some(p.rule.to_owned()),
                extra: SimExtra {
                    observed_up: p.observed_up,
                    p99_ms: p.p99_ms,
                    error_ratio: p.error_ratio,
                    primary_ready: p.primary_ready,
                    burst_ready: p.burst_ready,
                    capacity: p.capacity,
                    burst_capacity: p.burst_capacity,
                    forecast: p.forecast,
                    prepared: p.prepared,
                },
            })
            .collect(),
        changes,
        details: SimDetails {
            prewarm: run.prewarm.clone(),
        },
    }
}

/// A readable table of the timeline, the changes and the summary.
pub fn table(report: &Report<SimExtra, SimDetails>, two_windows: bool, every: f64) -> String {
    let short = Column {
        header: "observed(short)",
        width: 15,
        cell: |p: &Point<SimExtra>| match p.extra.observed_up {
            Some(Some(x)) => format!("{x:.2}"),
            _ => "no data".to_string(),
        },
    };
    let burst_capacity = Column {
        header: "burst cap",
        width: 9,
        cell: |p: &Point<SimExtra>| {
            p.extra
                .burst_capacity
                .map_or_else(|| "-".to_string(), |c| format!("{c:.1}"))
        },
    };
    let prepared = Column {
        header: "prewarm",
        width: 8,
        cell: |p: &Point<SimExtra>| match p.extra.prepared {
            Some(true) => "prepared".to_string(),
            _ => "-".to_string(),
        },
    };
    let mut extra = if two_windows { vec![short] } else { Vec::new() };
    if report
        .timeline
        .iter()
        .any(|p| p.extra.burst_capacity.is_some())
    {
        extra.push(burst_capacity);
    }
    if report.timeline.iter().any(|p| p.extra.prepared.is_some()) {
        extra.push(prepared);
    }
    let mut text = report_text(report, every, &extra);
    if !report.details.prewarm.is_empty() {
        text.push_str("\npre-warm:\n");
        for e in &report.details.prewarm {
            let _ = writeln!(text, "{:>7.1}s  {}  ({})", e.t, e.action, e.detail);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_with_any_offset_or_unix_seconds() {
        let secs = |s: &str| parse_time(s).map(|t| t.as_secs_f64());
        assert_eq!(secs("1764576000"), Ok(1_764_576_000.0));
        assert_eq!(secs("1764576000.25"), Ok(1_764_576_000.25));
        assert_eq!(secs("2025-12-01T08:00:00Z"), Ok(1_764_576_000.0));
        assert_eq!(secs("2025-12-01T09:00:00+01:00"), Ok(1_764_576_000.0));
        assert_eq!(secs("2025-12-01T08:00:00.5Z"), Ok(1_764_576_000.5));
        assert!(secs("-5").unwrap_err().contains("after 1970"));
        assert!(
            secs("1969-12-31T23:00:00Z")
                .unwrap_err()
                .contains("before 1970")
        );
        assert!(secs("yesterday").unwrap_err().contains("neither RFC 3339"));
        assert!(secs("NaN").is_err());
        assert_eq!(
            rfc3339(Timestamp::from_duration(std::time::Duration::from_secs(
                1_764_576_000
            ))),
            "2025-12-01T08:00:00Z"
        );
    }
}
