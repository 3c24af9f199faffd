//! The reports of `burst simulate` and `burst demo`: one JSON schema and one text rendering.
//!
//! Both commands print a [`Report`]: a [`Summary`] with the same keys in both, a timeline
//! of [`Point`]s (one per tick or second) and the list of split [`Change`]s. What only one
//! command knows goes into the point's extra fields and into the report's details (`demo`,
//! `virtual_service`). The schema is documented for users in `docs/reports.md`; keep the
//! two in step.

use std::fmt::Write as _;

use serde::Serialize;

/// A command's whole report: `{"summary", "timeline", "changes", ...details}`.
#[derive(Debug, Clone, Serialize)]
pub struct Report<X, D> {
    /// The figures both commands report.
    pub summary: Summary,
    /// One point per tick (`simulate`) or per second (`demo`).
    pub timeline: Vec<Point<X>>,
    /// Every split change, in order.
    pub changes: Vec<Change>,
    /// What only this command reports, as further top-level keys.
    #[serde(flatten)]
    pub details: D,
}

/// The figures both `simulate` and `demo` report, under the same keys.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Seconds the run covered.
    pub duration_s: f64,
    /// Number of split changes.
    pub changes: usize,
    /// Time of the first change sending traffic to burst, if any.
    pub first_burst_s: Option<f64>,
    /// Time of the last change back to all-primary, when the run ended on the primary.
    pub back_to_primary_s: Option<f64>,
    /// Time of the last change, if any.
    pub last_change_s: Option<f64>,
    /// Burst weight at the end (0..=100).
    pub final_burst_weight: u8,
    /// Share of the traffic served by burst (0..1): `simulate` from the trace and the
    /// weights, `demo` from the `bursty-` hashes received.
    pub burst_share: f64,
    /// Seconds with the primary's share above its capacity (`simulate` with a capacity;
    /// `null` otherwise).
    pub overload_s: Option<f64>,
    /// `simulate` with a capacity (fixed, or per endpoint with the trace's
    /// `primary_ready`): seconds with the primary's share above the capacity in effect.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_primary_over_capacity: Option<f64>,
    /// `simulate` on a trace with burst-side signals: seconds with traffic on a burst side
    /// that is unhealthy by the trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_on_unhealthy_burst: Option<f64>,
    /// `simulate` with a burst-side model (`--burst-start`, or a trace that has one):
    /// seconds with the burst side's share above its capacity.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_burst_over_capacity: Option<f64>,
    /// `simulate` with a burst-side model or a primary capacity: requests beyond the
    /// capacity of the side they were sent to (they found no capacity anywhere).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_without_capacity: Option<f64>,
    /// `simulate` with `prewarm`: how many times the burst side was prepared.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prewarm_prepares: Option<u32>,
}

/// One point of the timeline.
#[derive(Debug, Clone, Serialize)]
pub struct Point<X> {
    /// Seconds since the start (`demo`: the end of the one-second interval).
    pub t: f64,
    /// The load asked for: the trace's rate (`simulate`), the scenario's (`demo`).
    pub rps: f64,
    /// The controller's measured rate (`null`: no data yet).
    pub observed: Option<f64>,
    /// Burst weight in effect.
    pub burst_weight: u8,
    /// The rule of the controller's last decision (`null` before the first).
    pub rule: Option<String>,
    /// What only this command records per point.
    #[serde(flatten)]
    pub extra: X,
}

/// A split change.
#[derive(Debug, Clone, Serialize)]
pub struct Change {
    /// Seconds since the start.
    pub t: f64,
    /// The split before, `PRIMARY/BURST`.
    pub from: String,
    /// The split after, `PRIMARY/BURST`.
    pub to: String,
    /// The burst weight after.
    pub burst_weight: u8,
    /// Why: the decision's reason (`simulate`: its rule).
    pub reason: String,
    /// `demo --kubeconfig`: the VirtualService's resourceVersion that carried the change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_version: Option<String>,
    /// `demo --kubeconfig`: from burstd sending the PATCH to the proxy applying the watch
    /// event. The server stored the change between the PATCH's sending and its answer, so
    /// this is an upper bound of store → proxy, and `patch_answered_to_proxy_ms` (if
    /// positive) a lower one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_sent_to_proxy_ms: Option<f64>,
    /// `demo --kubeconfig`: from the API server's answer to burstd's PATCH to the proxy
    /// applying the watch event (negative: the event overtook the answer).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_answered_to_proxy_ms: Option<f64>,
    /// `demo --kubeconfig`: burstd's PATCH, sent to answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_round_trip_ms: Option<f64>,
    /// When the proxy applied it.
    #[serde(skip)]
    pub applied_at: Option<std::time::Instant>,
}

/// A column of the timeline table beyond the shared ones.
pub struct Column<X> {
    /// The header.
    pub header: &'static str,
    /// Right-aligned to this width.
    pub width: usize,
    /// The cell of a point.
    pub cell: fn(&Point<X>) -> String,
}

impl Summary {
    /// The shared figures from the changes and the run's own measures.
    pub fn new(
        changes: &[Change],
        duration_s: f64,
        final_burst_weight: u8,
        burst_share: f64,
        overload_s: Option<f64>,
    ) -> Summary {
        Summary {
            duration_s,
            changes: changes.len(),
            first_burst_s: changes.iter().find(|c| c.burst_weight > 0).map(|c| c.t),
            back_to_primary_s: changes
                .iter()
                .rev()
                .find(|c| c.burst_weight == 0)
                .filter(|_| changes.last().is_some_and(|c| c.burst_weight == 0))
                .map(|c| c.t),
            last_change_s: changes.last().map(|c| c.t),
            final_burst_weight,
            burst_share,
            overload_s,
            seconds_primary_over_capacity: None,
            seconds_on_unhealthy_burst: None,
            seconds_burst_over_capacity: None,
            requests_without_capacity: None,
            prewarm_prepares: None,
        }
    }
}

impl Change {
    /// A change from burst weight `from` to `to` at `t`, for `reason`.
    pub fn new(t: f64, from: u8, to: u8, reason: String) -> Change {
        Change {
            t,
            from: split_text(from),
            to: split_text(to),
            burst_weight: to,
            reason,
            resource_version: None,
            patch_sent_to_proxy_ms: None,
            patch_answered_to_proxy_ms: None,
            patch_round_trip_ms: None,
            applied_at: None,
        }
    }
}

/// `PRIMARY/BURST` for a burst weight, as `Split` prints it.
fn split_text(burst: u8) -> String {
    format!("{}/{burst}", 100u8.saturating_sub(burst))
}

fn rate(v: Option<f64>) -> String {
    v.map_or_else(|| "no data".to_string(), |x| format!("{x:.2}"))
}

fn secs(v: Option<f64>) -> String {
    v.map_or_else(|| "never".to_string(), |x| format!("{x:.1}s"))
}

/// Writes one summary line: the label padded so that values line up.
pub fn summary_line(out: &mut String, label: &str, value: &str) {
    let _ = writeln!(out, "{label:<19} {value}");
}

/// The timeline table: `t(s)`, `rps`, `observed`, `burst%`, the `extra` columns, `rule`.
/// A row at least every `every` seconds, and on every point where the weight changed
/// (marked `<- change`).
pub fn timeline_table<X>(points: &[Point<X>], every: f64, extra: &[Column<X>]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "{:>8}  {:>8}  {:>10}  {:>6}",
        "t(s)", "rps", "observed", "burst%"
    );
    for c in extra {
        let _ = write!(out, "  {:>w$}", c.header, w = c.width);
    }
    let _ = writeln!(out, "  rule");
    let mut next_row = 0.0;
    let mut prev: Option<u8> = None;
    for p in points {
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
        let _ = write!(
            out,
            "{:>8.1}  {:>8.2}  {:>10}  {:>6}",
            p.t,
            p.rps,
            rate(p.observed),
            p.burst_weight
        );
        for c in extra {
            let _ = write!(out, "  {:>w$}", (c.cell)(p), w = c.width);
        }
        let _ = writeln!(
            out,
            "  {}{}",
            p.rule.as_deref().unwrap_or("-"),
            if changed { " <- change" } else { "" }
        );
    }
    out
}

/// The report as text: the timeline table (see [`timeline_table`]), the changes and the
/// shared summary. A command appends the lines of its details.
pub fn report_text<X, D>(r: &Report<X, D>, every: f64, extra: &[Column<X>]) -> String {
    let mut out = timeline_table(&r.timeline, every, extra);
    out.push('\n');
    if !r.changes.is_empty() {
        out.push_str(&changes_text(&r.changes));
        out.push('\n');
    }
    out.push_str(&summary_text(&r.summary));
    out
}

/// The changes, one line each.
pub fn changes_text(changes: &[Change]) -> String {
    let mut out = String::new();
    for c in changes {
        let _ = writeln!(
            out,
            "{:>7.1}s  split {} -> {}  ({})",
            c.t, c.from, c.to, c.reason
        );
    }
    out
}

/// The shared summary, one figure per line.
pub fn summary_text(s: &Summary) -> String {
    let mut out = String::new();
    summary_line(&mut out, "duration", &format!("{:.1}s", s.duration_s));
    summary_line(&mut out, "weight changes", &s.changes.to_string());
    summary_line(&mut out, "first to burst", &secs(s.first_burst_s));
    summary_line(&mut out, "back to primary", &secs(s.back_to_primary_s));
    summary_line(&mut out, "last change", &secs(s.last_change_s));
    summary_line(
        &mut out,
        "final burst weight",
        &format!("{}%", s.final_burst_weight),
    );
    summary_line(
        &mut out,
        "primary overloaded",
        &s.overload_s
            .map_or_else(|| "n/a (no capacity given)".into(), |x| format!("{x:.1}s")),
    );
    if let Some(x) = s.seconds_primary_over_capacity {
        summary_line(&mut out, "over capacity", &format!("{x:.1}s"));
    }
    if let Some(x) = s.seconds_on_unhealthy_burst {
        summary_line(&mut out, "on unhealthy burst", &format!("{x:.1}s"));
    }
    if let Some(x) = s.seconds_burst_over_capacity {
        summary_line(&mut out, "burst over capacity", &format!("{x:.1}s"));
    }
    if let Some(x) = s.requests_without_capacity {
        summary_line(&mut out, "no capacity (req)", &format!("{x:.0}"));
    }
    if let Some(x) = s.prewarm_prepares {
        summary_line(&mut out, "pre-warm prepares", &x.to_string());
    }
    summary_line(
        &mut out,
        "share sent to burst",
        &format!("{:.1}%", s.burst_share * 100.0),
    );
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// Extra fields of a point that has none.
    #[derive(Debug, Clone, Copy, Default, Serialize)]
    struct NoDetails {}

    fn point(t: f64, w: u8) -> Point<NoDetails> {
        Point {
            t,
            rps: 1.0,
            observed: None,
            burst_weight: w,
            rule: Some("hold".into()),
            extra: NoDetails {},
        }
    }

    #[test]
    fn summary_derives_times_from_the_changes() {
        let changes = [
            Change::new(5.0, 0, 100, "above_high".into()),
            Change::new(9.5, 100, 0, "below_low".into()),
        ];
        let s = Summary::new(&changes, 12.0, 0, 0.25, None);
        assert_eq!(s.changes, 2);
        assert_eq!(s.first_burst_s, Some(5.0));
        assert_eq!(s.back_to_primary_s, Some(9.5));
        assert_eq!(s.last_change_s, Some(9.5));
        assert_eq!(changes[0].from, "100/0");
        assert_eq!(changes[0].to, "0/100");
        let still_bursting = Summary::new(&changes[..1], 12.0, 100, 0.5, None);
        assert_eq!(still_bursting.back_to_primary_s, None);
    }

    #[test]
    fn table_marks_changes_and_keeps_the_row_interval() {
        let points: Vec<_> = (1..=6)
            .map(|i| point(f64::from(i), if i >= 4 { 100 } else { 0 }))
            .collect();
        let extra = [Column {
            header: "x",
            width: 3,
            cell: |p: &Point<NoDetails>| format!("{}", p.t as u32 * 2),
        }];
        let text = timeline_table(&points, 2.0, &extra);
        let rows: Vec<&str> = text.lines().collect();
        assert!(
            rows[0].contains("burst%") && rows[0].ends_with("x  rule"),
            "{text}"
        );
        // Rows at 1, 2, 4 (due and changed), 6.
        assert_eq!(rows.len(), 5, "{text}");
        assert!(rows[3].contains("hold <- change"), "{text}");
        assert!(rows[3].contains("  8  "), "{text}");
    }

    #[test]
    fn point_extras_and_details_are_top_level_keys() {
        #[derive(Serialize)]
        struct Extra {
            hashes: u64,
        }
        #[derive(Serialize)]
        struct Details {
            demo: u8,
        }
        let r = Report {
            summary: Summary::new(&[], 1.0, 0, 0.0, None),
            timeline: vec![Point {
                t: 1.0,
                rps: 2.0,
                observed: Some(2.0),
                burst_weight: 0,
                rule: None,
                extra: Extra { hashes: 3 },
            }],
            changes: vec![],
            details: Details { demo: 7 },
        };
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["demo"], 7);
        assert_eq!(v["timeline"][0]["hashes"], 3);
        assert!(v["summary"]["first_burst_s"].is_null());
    }
}
