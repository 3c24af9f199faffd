//! `burstd-scale`: the real `burstd` binary in operator mode with many BurstPolicies,
//! against a real kube-apiserver and etcd (`burst_testkit::kube::ControlPlane`, built by
//! `scripts/control-plane.sh build`) and `/metrics` endpoints served by this process, at a
//! 1 s tick.
//!
//! ```text
//! cargo build --release -p burst-bin --bin burstd
//! cargo build --release -p burst-benches --bin burstd-scale
//! target/release/burstd-scale [--policies 1000] [--secs 60] [--warmup 20] [--runs 3]
//!     [--burstd [LABEL=]PATH]...
//! ```
//!
//! `--burstd` defaults to the `burstd` next to this binary (the same cargo target
//! directory; built on its own, as above: one `cargo build` of both would unify their
//! features and change burstd). Given several times (e.g. `--burstd
//! before=/tmp/burstd-old --burstd after=target/release/burstd`), the binaries take turns
//! in every run round and the summary gives each one's medians and the ratio of the last
//! to the first.
//!
//! For each run this process starts a fresh control plane (the Istio and BurstPolicy CRDs
//! installed, one VirtualService and one BurstPolicy per policy) and one `/metrics/{i}` endpoint per policy
//! with an `istio_requests_total` counter whose rate is 5 rps, or 20 rps for a tenth of the
//! policies in each 20 s period (so about 100 policies move to burst and 100 come back every
//! 20 s: route patches, status writes and Events happen all the time). It writes a
//! kubeconfig pointing at the API server (admin token) and starts `burstd operator` with it (no leader election,
//! Events on, watching the `default` namespace, logs at `warn`).
//!
//! Measured on the burstd process alone, once all its loops run and the warm-up is over:
//! CPU time (`/proc/PID/stat`) per tick over the measuring window (ticks counted from
//! burstd's own `burstd_tick_duration_seconds_count`), peak RSS (`VmHWM`), and the tick
//! duration's mean and p50/p99 (interpolated in burstd's histogram buckets, which double
//! from 1 ms). API writes per second come from the server's own `apiserver_request_total`
//! (write verbs), and so do the GETs of VirtualServices (what burstd's routers read when
//! their shared watch cannot serve them). The CPU of kube-apiserver + etcd and of this process (the metric
//! endpoints) is printed for context: they share the machine's cores with burstd.

//!
//! Modules: `cluster` (one run: the control plane, the objects, the metric endpoints and
//! burstd) and `metrics` (what is read from /proc, burstd's /metrics and the API server).

mod cluster;
mod metrics;

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

use cluster::measure;
use metrics::loadavg;

const NS: &str = "default";
/// Length of one demand period.
const PERIOD: f64 = 20.0;
/// How to build the binary this bench runs.
const BUILD_BURSTD: &str = "cargo build --release -p burst-bin --bin burstd";

/// Runs the real burstd in operator mode with many BurstPolicies against a real
/// kube-apiserver and etcd, and measures its CPU per tick, memory, tick duration and API
/// writes.
#[derive(Debug, clap::Parser)]
#[command(name = "burstd-scale")]
struct Args {
    /// BurstPolicies (and VirtualServices, and /metrics endpoints), one control loop each.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    policies: u64,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
    secs: u64,
    /// Seconds of warm-up once every loop runs.
    #[arg(long, default_value_t = 20)]
    warmup: u64,
    /// Runs per burstd binary.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..))]
    runs: u64,
    /// A burstd binary to measure, `[LABEL=]PATH` (repeatable; the binaries take turns in
    /// every round). Default: the `burstd` next to this binary.
    #[arg(long = "burstd", value_name = "[LABEL=]PATH")]
    burstd: Vec<String>,
}

#[derive(Debug)]
struct Options {
    policies: usize,
    secs: u64,
    warmup: u64,
    runs: usize,
    /// (label, path) of each burstd to measure.
    burstd: Vec<(String, PathBuf)>,
}

/// The figures of one run.
#[derive(Debug, Clone, Default)]
struct Run {
    startup_secs: f64,
    ticks: f64,
    due: f64,
    cpu_per_tick_us: f64,
    cpu_pct: f64,
    hwm_mib: f64,
    rss_max_mib: f64,
    mean_ms: f64,
    p50_ms: f64,
    p99_ms: f64,
    writes_per_sec: f64,
    route_gets_per_sec: f64,
    write_errors: f64,
    servers_cpu_pct: f64,
    bench_cpu_pct: f64,
}

fn main() -> std::process::ExitCode {
    let args = <Args as clap::Parser>::parse();
    let options = match options(args) {
        Ok(o) => o,
        Err(e) => return burst_main::fail("error", burst_main::Exit::Usage, &e),
    };
    match burst_main::block_on(bench(options)) {
        Ok(Ok(())) => std::process::ExitCode::SUCCESS,
        Ok(Err(e)) => burst_main::fail("error", burst_main::Exit::Runtime, &e),
        Err(e) => burst_main::fail("error", burst_main::Exit::Usage, &e),
    }
}

fn options(args: Args) -> anyhow::Result<Options> {
    let mut o = Options {
        policies: usize::try_from(args.policies).context("--policies")?,
        secs: args.secs,
        warmup: args.warmup,
        runs: usize::try_from(args.runs).context("--runs")?,
        burstd: args.burstd.iter().map(|v| labelled(v)).collect(),
    };
    if o.burstd.is_empty() {
        let exe = std::env::current_exe().context("cannot find this binary's path")?;
        let next_to_me = exe.with_file_name("burstd");
        o.burstd.push(("burstd".to_owned(), next_to_me));
    }
    for (_, path) in &o.burstd {
        check_burstd(path)?;
    }
    Ok(o)
}

/// `LABEL=PATH`, or `PATH` labelled with its file name.
fn labelled(value: &str) -> (String, PathBuf) {
    match value.split_once('=') {
        Some((label, path)) if !label.is_empty() && !label.contains('/') => {
            (label.to_owned(), PathBuf::from(path))
        }
        _ => {
            let path = PathBuf::from(value);
            let label = path
                .file_name()
                .map_or_else(|| value.to_owned(), |n| n.to_string_lossy().into_owned());
            (label, path)
        }
    }
}

fn check_burstd(path: &Path) -> anyhow::Result<()> {
    if !path.is_file() {
        bail!(
            "no burstd binary at {}: build it with `{BUILD_BURSTD}` (with the same CARGO_TARGET_DIR as this bench), or pass --burstd PATH",
            path.display()
        );
    }
    Ok(())
}

async fn bench(o: Options) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "burstd at scale: {} policies, 1 s tick, {} s measured after {} s warm-up, {} run(s) per binary; {cores} cores; load average {}",
        o.policies,
        o.secs,
        o.warmup,
        o.runs,
        loadavg()
    );
    for (label, path) in &o.burstd {
        println!("- {label}: {}", path.display());
    }
    let mut results: Vec<Vec<Run>> = vec![Vec::new(); o.burstd.len()];
    for round in 0..o.runs {
        for (b, (label, path)) in o.burstd.iter().enumerate() {
            eprintln!(
                "run {}/{} of {label} ({}), load average {}",
                round + 1,
                o.runs,
                path.display(),
                loadavg()
            );
            let run = measure(&o, path)
                .await
                .with_context(|| format!("{label}, run {}", round + 1))?;
            eprintln!("  {run:?}");
            results[b].push(run);
        }
    }
    println!("load average at the end: {}", loadavg());
    println!();
    print_runs(&o, &results);
    println!();
    print_summary(&o, &results);
    Ok(())
}

/// The figures of a table row: name, unit, value of a run, digits.
type Figure = (&'static str, &'static str, fn(&Run) -> f64, usize);

const FIGURES: &[Figure] = &[
    ("ticks done / due", "%", |r| r.ticks / r.due * 100.0, 1),
    ("burstd CPU per tick", "µs", |r| r.cpu_per_tick_us, 1),
    ("burstd CPU", "% of one core", |r| r.cpu_pct, 1),
    ("burstd peak RSS (VmHWM)", "MiB", |r| r.hwm_mib, 1),
    (
        "burstd RSS during the window (max VmRSS)",
        "MiB",
        |r| r.rss_max_mib,
        1,
    ),
    ("tick duration mean", "ms", |r| r.mean_ms, 2),
    ("tick duration p50 (histogram)", "ms", |r| r.p50_ms, 2),
    ("tick duration p99 (histogram)", "ms", |r| r.p99_ms, 2),
    ("all loops running after", "s", |r| r.startup_secs, 1),
    (
        "API writes (route patches, status, Events)",
        "/s",
        |r| r.writes_per_sec,
        1,
    ),
    (
        "VirtualService GETs (server's count)",
        "/s",
        |r| r.route_gets_per_sec,
        1,
    ),
    ("router and status write errors", "", |r| r.write_errors, 0),
    (
        "kube-apiserver + etcd CPU",
        "% of one core",
        |r| r.servers_cpu_pct,
        1,
    ),
    (
        "metric endpoints CPU (bench process)",
        "% of one core",
        |r| r.bench_cpu_pct,
        1,
    ),
];

fn print_runs(o: &Options, results: &[Vec<Run>]) {
    println!("Every run (CPU per tick, peak RSS, tick p50 / p99):");
    println!();
    for (b, (label, _)) in o.burstd.iter().enumerate() {
        for (i, r) in results[b].iter().enumerate() {
            println!(
                "- {label} run {}: {:.1} µs, {:.1} MiB, {:.2} / {:.2} ms",
                i + 1,
                r.cpu_per_tick_us,
                r.hwm_mib,
                r.p50_ms,
                r.p99_ms
            );
        }
    }
}

fn print_summary(o: &Options, results: &[Vec<Run>]) {
    let labels: Vec<&str> = o.burstd.iter().map(|(l, _)| l.as_str()).collect();
    let compare = labels.len() > 1;
    let mut header = String::from("| figure (median) |");
    let mut rule = String::from("|---|");
    for l in &labels {
        header.push_str(&format!(" {l} |"));
        rule.push_str("---:|");
    }
    if compare {
        header.push_str(&format!(" {} / {} |", labels[labels.len() - 1], labels[0]));
        rule.push_str("---:|");
    }
    println!("{header}");
    println!("{rule}");
    for (name, unit, get, digits) in FIGURES {
        let mut line = format!("| {name} |");
        let medians: Vec<f64> = results
            .iter()
            .map(|runs| median(runs.iter().map(get).collect()))
            .collect();
        for m in &medians {
            if unit.is_empty() {
                line.push_str(&format!(" {m:.digits$} |"));
            } else {
                line.push_str(&format!(" {m:.digits$} {unit} |"));
            }
        }
        if compare {
            let first = medians[0];
            let last = medians[medians.len() - 1];
            if first > 0.0 {
                line.push_str(&format!(" {:.2} |", last / first));
            } else {
                line.push_str(" - |");
            }
        }
        println!("{line}");
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => values[n / 2],
        _ => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burstd_paths_take_an_optional_label() {
        assert_eq!(
            labelled("before=/tmp/x/burstd"),
            ("before".to_string(), PathBuf::from("/tmp/x/burstd"))
        );
        assert_eq!(
            labelled("/opt/burstd-old"),
            ("burstd-old".to_string(), PathBuf::from("/opt/burstd-old"))
        );
        // An `=` inside a path is not a label.
        assert_eq!(labelled("/a=b/burstd").1, PathBuf::from("/a=b/burstd"));
    }

    #[test]
    fn arguments_parse_with_defaults_and_refuse_zero_policies() {
        let args = <Args as clap::Parser>::try_parse_from(["burstd-scale", "--runs", "3"]).unwrap();
        assert_eq!(
            (args.policies, args.secs, args.warmup, args.runs),
            (1000, 60, 20, 3)
        );
        assert!(
            <Args as clap::Parser>::try_parse_from(["burstd-scale", "--policies", "0"]).is_err()
        );
        assert!(<Args as clap::Parser>::try_parse_from(["burstd-scale", "--nope", "1"]).is_err());
    }

    #[test]
    fn a_missing_burstd_says_how_to_build_it() {
        let e = check_burstd(Path::new("/nonexistent/burstd")).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("/nonexistent/burstd"), "{text}");
        assert!(text.contains(BUILD_BURSTD), "{text}");
        let args = <Args as clap::Parser>::try_parse_from([
            "burstd-scale",
            "--burstd",
            "/nonexistent/burstd",
        ])
        .unwrap();
        let e = options(args).unwrap_err();
        assert!(e.to_string().contains(BUILD_BURSTD), "{e}");
    }

    #[test]
    fn medians_of_odd_and_even_counts() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 3.0, 2.0]), 2.5);
        assert!(median(Vec::new()).is_nan());
    }
}
