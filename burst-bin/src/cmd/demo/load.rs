//! Headless `burst demo`: drives the load from the scenario, samples every second and
//! builds the report (the schema of [`crate::report`], with the demo's details).

use std::io::IsTerminal as _;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

use super::kube::{LatencyStats, VsReport};
use super::{Demo, Interrupt, Step, lock};
use crate::report::{Change, Column, Point, Report, Summary, report_text, summary_line};

/// What a demo point has beyond the shared keys.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DemoPoint {
    /// Requests sent per second during the interval.
    sent_per_sec: f64,
    /// Hashes received during the interval.
    hashes: u64,
    /// `bursty-` hashes received during the interval.
    bursty: u64,
}

/// The demo's own figures: the `"demo"` key of the report.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DemoFigures {
    /// Ctrl-C ended the scenario early.
    pub(super) interrupted: bool,
    requests_sent: u64,
    requests_ok: u64,
    requests_failed: u64,
    requests_skipped: u64,
    hashes: u64,
    bursty_hashes: u64,
    /// `bursty-` hashes received in seconds when all traffic had gone to the primary for at
    /// least a second: should be 0.
    bursty_while_primary: u64,
    source: String,
    router: String,
    pubsub: String,
    /// `--kubeconfig`: burstd's VirtualService PATCH sent → proxy applied, over the changes
    /// (an upper bound of the time from the server storing the change to the proxy).
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_patch_sent_to_proxy_ms: Option<LatencyStats>,
    /// `--kubeconfig`: the PATCH's answer → proxy applied (negative: the watch event came
    /// first).
    #[serde(skip_serializing_if = "Option::is_none")]
    vs_patch_answered_to_proxy_ms: Option<LatencyStats>,
    /// With the policy file's `prewarm`: every prepare and release of the burst side (at
    /// seconds since the scenario started, as the changes), and the cold start each
    /// prepare cut short.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    prewarm: Vec<super::sides::PrewarmNote>,
}

/// What the demo reports beyond the shared keys.
#[derive(Debug, Clone, Serialize)]
pub(super) struct DemoDetails {
    /// Load, hashes and what ran.
    pub(super) demo: DemoFigures,
    /// `--kubeconfig`: the VirtualService's history and final weights.
    #[serde(skip_serializing_if = "Option::is_none")]
    virtual_service: Option<VsReport>,
}

/// The report of `burst demo --headless`.
pub(super) type DemoReport = Report<DemoPoint, DemoDetails>;

/// Runs the scenario against the started demo and reports on it.
pub(super) async fn headless(d: &Demo, steps: &[Step], mut ctrl_c: Interrupt<'_>) -> DemoReport {
    let tty = std::io::stderr().is_terminal();
    let begin = Instant::now();
    let offset = begin.duration_since(d.local.started).as_secs_f64();
    let total: Duration = steps.iter().map(|s| s.duration).sum();
    let mut boundaries = Vec::new();
    let mut acc = Duration::ZERO;
    for s in steps {
        boundaries.push((acc, s.rps, s.events.as_slice()));
        acc += s.duration;
    }
    let mut next_step = 0usize;
    let mut next_sample = Duration::from_secs(1);
    let mut asked = 0.0;
    let mut last_load = d.local.frontend.load();
    let mut last_relay = d.local.frontend.relay();
    let mut last_t = Duration::ZERO;
    let mut timeline = Vec::new();
    let mut interrupted = false;
    loop {
        let step_due = boundaries.get(next_step).map(|(at, _, _)| *at);
        let sample_due = next_sample.min(total);
        let due = step_due.map_or(sample_due, |s| s.min(sample_due));
        tokio::select! {
            _ = &mut ctrl_c => { interrupted = true; break; }
            _ = tokio::time::sleep_until(begin + due) => {}
        }
        if step_due == Some(due) {
            let (_, rps, events) = boundaries[next_step];
            asked = rps;
            for e in events {
                d.local.sides.apply(*e, std::time::Instant::now());
            }
            let _ = d.local.frontend.set_frequency(&asked.to_string());
            next_step += 1;
            continue;
        }
        let now = begin.elapsed();
        let secs = (now - last_t).as_secs_f64().max(1e-3);
        let load = d.local.frontend.load();
        let relay = d.local.frontend.relay();
        let (observed, rule) = {
            let l = lock(&d.local.log);
            (l.observed, l.rule.clone())
        };
        let point = Point {
            t: sample_due.as_secs_f64(),
            rps: asked,
            observed,
            burst_weight: d.local.split().burst().get(),
            rule,
            extra: DemoPoint {
                sent_per_sec: (load.sent - last_load.sent) as f64 / secs,
                hashes: relay.received - last_relay.received,
                bursty: relay.bursty - last_relay.bursty,
            },
        };
        let line = format!(
            "t={:>5.0}s  asked {:>6} rps  sent {:>7.1}/s  observed {:>7}  split {:>7}  bursty {:>4}",
            point.t,
            point.rps,
            point.extra.sent_per_sec,
            point
                .observed
                .map_or_else(|| "no data".into(), |o| format!("{o:.1}")),
            d.local.split().to_string(),
            if point.extra.hashes == 0 {
                "-".to_string()
            } else {
                format!(
                    "{:.0}%",
                    point.extra.bursty as f64 / point.extra.hashes as f64 * 100.0
                )
            }
        );
        if tty {
            eprint!("\r{line}");
        } else if timeline.len() % 5 == 4 {
            eprintln!("{line}");
        }
        timeline.push(point);
        last_load = load;
        last_relay = relay;
        last_t = now;
        if sample_due >= total {
            break;
        }
        next_sample += Duration::from_secs(1);
    }
    if tty {
        eprintln!();
    }
    d.local.frontend.set_frequency("0").ok();
    // Hashes still in flight arrive within a moment; count them into the last point.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let relay = d.local.frontend.relay();
    if let Some(p) = timeline.last_mut() {
        p.extra.hashes += relay.received - last_relay.received;
        p.extra.bursty += relay.bursty - last_relay.bursty;
    }
    let mut changes: Vec<Change> = lock(&d.local.log)
        .changes
        .iter()
        .map(|c| Change {
            t: c.t - offset,
            ..c.clone()
        })
        .collect();
    let virtual_service = match &d.kube {
        Some(k) => Some(k.report(&mut changes, begin.into_std()).await),
        None => None,
    };
    let load = d.local.frontend.load();
    let duration_s = begin.elapsed().as_secs_f64();
    let burst_share = if relay.received == 0 {
        0.0
    } else {
        relay.bursty as f64 / relay.received as f64
    };
    let final_burst_weight = d.local.split().burst().get();
    let summary = Summary::new(&changes, duration_s, final_burst_weight, burst_share, None);
    let mut demo = figures(d, &timeline, &changes, interrupted, &load, relay, offset);
    if d.kube.is_some() {
        let sent: Vec<f64> = changes
            .iter()
            .filter_map(|c| c.patch_sent_to_proxy_ms)
            .collect();
        let answered: Vec<f64> = changes
            .iter()
            .filter_map(|c| c.patch_answered_to_proxy_ms)
            .collect();
        demo.vs_patch_sent_to_proxy_ms = LatencyStats::of(&sent);
        demo.vs_patch_answered_to_proxy_ms = LatencyStats::of(&answered);
    }
    Report {
        summary,
        timeline,
        changes,
        details: DemoDetails {
            demo,
            virtual_service,
        },
    }
}

/// Burst weight in effect at time `t` given the initial split and the changes.
fn weight_at(changes: &[Change], t: f64) -> u8 {
    changes
        .iter()
        .take_while(|c| c.t <= t)
        .last()
        .map_or(0, |c| c.burst_weight)
}

/// The demo's own figures; `bursty_while_primary` from the timeline and the changes.
fn figures(
    d: &Demo,
    timeline: &[Point<DemoPoint>],
    changes: &[Change],
    interrupted: bool,
    load: &burst_hashr::frontend::loadgen::LoadSnapshot,
    relay: burst_hashr::frontend::relay::RelayCounts,
    offset: f64,
) -> DemoFigures {
    // An interval (a, b] counts as "primary only" when no traffic could go to the burst
    // worker from a - 1 s on: weight 0 then and no change since.
    let mut prev_t = 0.0;
    let mut bursty_while_primary = 0;
    for p in timeline {
        let from = prev_t - 1.0;
        let quiet = weight_at(changes, from) == 0
            && !changes
                .iter()
                .any(|c| c.t > from && c.t <= p.t && c.burst_weight > 0)
            && weight_at(changes, p.t) == 0;
        if quiet && from >= -1.0 {
            bursty_while_primary += p.extra.bursty;
        }
        prev_t = p.t;
    }
    DemoFigures {
        interrupted,
        requests_sent: load.sent,
        requests_ok: load.ok,
        requests_failed: load.failed,
        requests_skipped: load.skipped,
        hashes: relay.received,
        bursty_hashes: relay.bursty,
        bursty_while_primary,
        source: d.source.clone(),
        router: d.router.clone(),
        pubsub: d.local.pubsub.clone(),
        vs_patch_sent_to_proxy_ms: None,
        vs_patch_answered_to_proxy_ms: None,
        // Noted at seconds since the demo started; reported, like the changes, since the
        // scenario started.
        prewarm: lock(&d.local.prewarm)
            .iter()
            .map(|n| super::sides::PrewarmNote {
                t: n.t - offset,
                ..n.clone()
            })
            .collect(),
    }
}

/// The report as text: the shared table, changes and summary, then the demo's figures.
pub(super) fn table(r: &DemoReport, every: f64) -> String {
    let columns = [
        Column {
            header: "sent/s",
            width: 8,
            cell: |p: &Point<DemoPoint>| format!("{:.1}", p.extra.sent_per_sec),
        },
        Column {
            header: "hashes",
            width: 7,
            cell: |p: &Point<DemoPoint>| p.extra.hashes.to_string(),
        },
        Column {
            header: "bursty",
            width: 7,
            cell: |p: &Point<DemoPoint>| p.extra.bursty.to_string(),
        },
    ];
    // At most one row per second: the demo samples once a second.
    let mut out = report_text(r, every.max(1.0), &columns);
    let d = &r.details.demo;
    if d.interrupted {
        summary_line(&mut out, "interrupted", "yes (Ctrl-C)");
    }
    summary_line(
        &mut out,
        "requests",
        &format!(
            "{} sent, {} ok, {} failed, {} skipped",
            d.requests_sent, d.requests_ok, d.requests_failed, d.requests_skipped
        ),
    );
    summary_line(
        &mut out,
        "hashes",
        &format!("{} ({} bursty)", d.hashes, d.bursty_hashes),
    );
    summary_line(
        &mut out,
        "bursty while primary",
        &d.bursty_while_primary.to_string(),
    );
    for n in &d.prewarm {
        let early = n
            .warmed_early_s
            .map(|s| format!(", cold start cut short by {s:.1}s"))
            .unwrap_or_default();
        let why = n
            .reason
            .as_deref()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default();
        summary_line(
            &mut out,
            "pre-warm",
            &format!("{:.1}s {}{why}{early}", n.t, n.action),
        );
    }
    for (what, stats) in [
        ("VS patch sent -> proxy", &d.vs_patch_sent_to_proxy_ms),
        ("VS answer -> proxy", &d.vs_patch_answered_to_proxy_ms),
    ] {
        if let Some(l) = stats {
            summary_line(
                &mut out,
                what,
                &format!(
                    "{:.1} / {:.1} / {:.1} ms (min / median / max of {})",
                    l.min, l.median, l.max, l.count
                ),
            );
        }
    }
    if let Some(vs) = &r.details.virtual_service {
        summary_line(
            &mut out,
            "VirtualService",
            &format!(
                "{}/{} {}",
                vs.namespace,
                vs.name,
                vs.final_weights.map_or_else(
                    || "(could not be read at the end)".to_owned(),
                    |w| format!("{}/{} at the end", w.primary, w.burst)
                )
            ),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn change(t: f64, w: u8) -> Change {
        Change::new(t, 0, w, String::new())
    }

    #[test]
    fn weight_at_follows_changes() {
        let c = vec![change(5.0, 100), change(9.5, 0)];
        assert_eq!(weight_at(&c, 1.0), 0);
        assert_eq!(weight_at(&c, 5.0), 100);
        assert_eq!(weight_at(&c, 9.0), 100);
        assert_eq!(weight_at(&c, 10.0), 0);
    }
}
