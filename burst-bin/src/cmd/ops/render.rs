//! Tables and text of `kubectl burst`, without IO.

use std::fmt::Write as _;

use burst_core::policy::Signal;
use burst_operator::api::{BurstPolicy, BurstPolicySpec, BurstPolicyStatus, SplitStatus};
use burst_operator::runner::Explanation;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::jiff;
use kube::ResourceExt as _;
use serde::Serialize;
use serde_json::{Value, json};

/// How many Events `status` shows (the newest).
pub const EVENTS_SHOWN: usize = 15;

/// One line of `list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Row {
    pub namespace: String,
    pub name: String,
    pub target: String,
    pub mode: String,
    /// `primary/burst`, `-` when not reported yet.
    pub split: String,
    pub observed_rps: Option<f64>,
    /// The rule of the last decision.
    pub rule: String,
    pub paused: bool,
    /// End of `spec.pin`, when one is set.
    pub pinned_until: Option<String>,
    pub age_seconds: Option<i64>,
}

fn split_text(s: Option<&SplitStatus>) -> String {
    s.map_or_else(|| "-".to_owned(), |s| format!("{}/{}", s.primary, s.burst))
}

fn mode_text(status: Option<&BurstPolicyStatus>) -> String {
    status
        .and_then(|s| s.mode)
        .map_or_else(|| "-".to_owned(), |m| format!("{m:?}"))
}

/// `3d4h`, `12m`, `40s`, as kubectl prints ages.
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    match s {
        0..120 => format!("{s}s"),
        120..7200 => format!("{}m", s / 60),
        7200..172_800 => format!("{}h", s / 3600),
        _ => format!("{}d{}h", s / 86_400, (s % 86_400) / 3600),
    }
}

impl Row {
    /// The row of `p` at `now`.
    pub fn of(p: &BurstPolicy, now: jiff::Timestamp) -> Row {
        let status = p.status.as_ref();
        Row {
            namespace: p.namespace().unwrap_or_default(),
            name: p.name_any(),
            target: format!("{}/{}", p.spec.target.kind.as_str(), p.spec.target.name),
            mode: mode_text(status),
            split: split_text(status.and_then(|s| s.split.as_ref())),
            observed_rps: status.and_then(|s| s.observed_rps),
            rule: status
                .and_then(|s| s.last_decision.as_ref())
                .map_or_else(|| "-".to_owned(), |d| d.rule.clone()),
            paused: p.spec.paused,
            pinned_until: p.spec.pin.as_ref().map(|pin| pin.until.0.to_string()),
            age_seconds: p
                .metadata
                .creation_timestamp
                .as_ref()
                .map(|t| now.as_second() - t.0.as_second()),
        }
    }

    fn control(&self, now: jiff::Timestamp) -> String {
        let pinned = self
            .pinned_until
            .as_ref()
            .filter(|u| u.parse::<jiff::Timestamp>().is_ok_and(|until| until > now));
        match (self.paused, pinned) {
            (true, _) => "paused".to_owned(),
            (false, Some(u)) => format!("pinned until {u}"),
            (false, None) => "policy".to_owned(),
        }
    }
}

fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<w$}   ", w = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The table of `list`.
pub fn list_table(rows: &[Row], all_namespaces: bool) -> String {
    if rows.is_empty() {
        return "No BurstPolicies found.\n".to_owned();
    }
    let now = jiff::Timestamp::now();
    let mut lines = vec![Vec::new()];
    if all_namespaces {
        lines[0].push("NAMESPACE".to_owned());
    }
    lines[0].extend(
        [
            "NAME", "TARGET", "MODE", "SPLIT", "RPS", "RULE", "CONTROL", "AGE",
        ]
        .map(str::to_owned),
    );
    for r in rows {
        let mut line = Vec::new();
        if all_namespaces {
            line.push(r.namespace.clone());
        }
        line.extend([
            r.name.clone(),
            r.target.clone(),
            r.mode.clone(),
            r.split.clone(),
            r.observed_rps
                .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}")),
            r.rule.clone(),
            r.control(now),
            r.age_seconds.map_or_else(|| "-".to_owned(), age),
        ]);
        lines.push(line);
    }
    table(&lines)
}

/// When an Event happened (its `eventTime`, else its series' or deprecated times).
pub fn event_time(e: &Event) -> Option<jiff::Timestamp> {
    e.event_time
        .as_ref()
        .map(|t| t.0)
        .or_else(|| e.deprecated_last_timestamp.as_ref().map(|t| t.0))
        .or_else(|| e.metadata.creation_timestamp.as_ref().map(|t| t.0))
}

/// An Event as `status -o json` shows it.
pub fn event_json(e: &Event) -> Value {
    json!({
        "time": event_time(e).map(|t| t.to_string()),
        "type": e.type_,
        "reason": e.reason,
        "note": e.note,
    })
}

/// The text of `status`.
pub fn status_text(
    p: &BurstPolicy,
    s: &BurstPolicyStatus,
    events: &[Event],
    now: jiff::Timestamp,
) -> String {
    let mut out = String::new();
    let ns = p.namespace().unwrap_or_default();
    let _ = writeln!(out, "Name:          {}", p.name_any());
    let _ = writeln!(out, "Namespace:     {ns}");
    let _ = writeln!(out, "Target:        {}", p.spec.target.describe(&ns));
    let control = if p.spec.paused {
        "paused (spec.paused): burstd leaves the route as it is".to_owned()
    } else {
        match &p.spec.pin {
            Some(pin) if pin.until.0 > now => format!(
                "pinned at burst weight {} until {} (in {})",
                pin.burst_weight,
                pin.until.0,
                age(pin.until.0.as_second() - now.as_second())
            ),
            Some(pin) => format!("policy (the pin ended at {})", pin.until.0),
            None => "policy".to_owned(),
        }
    };
    let _ = writeln!(out, "Control:       {control}");
    if p.spec.dry_run {
        let _ = writeln!(
            out,
            "Dry run:       yes (decides and reports, never writes)"
        );
    }
    let _ = writeln!(out, "Mode:          {}", mode_text(Some(s)));
    let _ = writeln!(
        out,
        "Split:         {} (primary/burst)",
        split_text(s.split.as_ref())
    );
    let _ = writeln!(
        out,
        "Desired:       {}",
        split_text(s.desired_split.as_ref())
    );
    let rps = match (s.observed_rps, s.observed_rps_long) {
        (Some(a), Some(b)) => format!("{a:.3} rps (long window {b:.3})"),
        (Some(a), None) => format!("{a:.3} rps"),
        _ => "-".to_owned(),
    };
    let _ = writeln!(out, "Observed:      {rps}");
    if let Some(o) = &s.observation {
        let _ = writeln!(out, "Observation:   {:?}: {}", o.state, o.message);
    }
    if let Some(d) = &s.last_decision {
        let _ = writeln!(out, "Last decision: {}: {}", d.rule, d.detail);
    }
    if let Some(t) = &s.last_transition_time {
        let _ = writeln!(
            out,
            "Last change:   {} ({})",
            t.0,
            s.last_transition_reason.as_deref().unwrap_or("-")
        );
    }
    out.push_str("\nConditions:\n");
    if s.conditions.is_empty() {
        out.push_str("  (none yet: burstd has not reported on this policy)\n");
    } else {
        let mut rows = vec![
            ["TYPE", "STATUS", "REASON", "MESSAGE"]
                .map(str::to_owned)
                .to_vec(),
        ];
        for c in &s.conditions {
            rows.push(vec![
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            ]);
        }
        for line in table(&rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out.push_str("\nEvents (newest last):\n");
    if events.is_empty() {
        out.push_str("  (none)\n");
    } else {
        let mut rows = vec![
            ["AGE", "TYPE", "REASON", "NOTE"]
                .map(str::to_owned)
                .to_vec(),
        ];
        let skip = events.len().saturating_sub(EVENTS_SHOWN);
        for e in events.iter().skip(skip) {
            rows.push(vec![
                event_time(e)
                    .map_or_else(|| "-".to_owned(), |t| age(now.as_second() - t.as_second())),
                e.type_.clone().unwrap_or_default(),
                e.reason.clone().unwrap_or_default(),
                e.note.clone().unwrap_or_default(),
            ]);
        }
        for line in table(&rows).lines() {
            let _ = writeln!(out, "  {line}");
        }
    }
    out
}

/// The text of `explain`.
pub fn explanation_text(ns: &str, name: &str, spec: &BurstPolicySpec, e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "BurstPolicy {ns}/{name} (nothing is written)");
    let _ = writeln!(out, "Source:   {}", e.source);
    let signal = match &e.signal {
        Signal::Rates(r) => format!("{r}"),
        Signal::NoData(reason) => format!("no data: {reason}"),
        Signal::Error(err) => format!("error ({}): {err}", err.kind()),
    };
    let _ = writeln!(out, "Measured: {signal}");
    let _ = writeln!(
        out,
        "Route:    {} holds {} (primary/burst)",
        e.router, e.current
    );
    let d = &e.decision;
    let _ = writeln!(out, "Decision: {} ({})", d.desired, d.reason.rule);
    let _ = writeln!(out, "Reason:   {}", d.reason.detail);
    let verdict = if spec.paused {
        "paused: burstd does not change the route".to_owned()
    } else if d.desired == e.current {
        "no change: the route already holds this split".to_owned()
    } else if spec.dry_run {
        format!(
            "dry run: burstd would report {} -> {} without writing",
            e.current, d.desired
        )
    } else {
        format!(
            "burstd would change the route {} -> {}",
            e.current, d.desired
        )
    };
    let _ = writeln!(out, "Outcome:  {verdict}");
    out
}
