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
    out.push_str(&prewarm_text(p, s, now));
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

/// What an outlook of `status.prewarm` means.
fn outlook_text(outlook: &str) -> String {
    let meaning = match outlook {
        "crossing" => "demand crosses the trigger within lead, or is above it",
        "below" => "demand stays below the trigger within lead",
        "unknown" => "no forecast: too few or too old samples",
        _ => return outlook.to_owned(),
    };
    format!("{outlook} ({meaning})")
}

/// `2026-01-01T00:05:00Z (5m ago)`.
fn time_ago(t: jiff::Timestamp, now: jiff::Timestamp) -> String {
    format!("{t} ({} ago)", age(now.as_second() - t.as_second()))
}

/// The `Pre-warm:` section of `status`: what is scaled and when (the spec), prepared or
/// not and since when, the outlook, the last action and the last error (`status.prewarm`).
/// Empty for a policy that does not pre-warm.
fn prewarm_text(p: &BurstPolicy, s: &BurstPolicyStatus, now: jiff::Timestamp) -> String {
    let timing = p.spec.policy.policy.prewarm.as_ref();
    let scaler = p
        .spec
        .prewarm
        .as_ref()
        .and_then(|w| w.scaler.kubernetes.as_ref());
    if timing.is_none() && scaler.is_none() && s.prewarm.is_none() {
        return String::new();
    }
    let mut out = String::from("\nPre-warm:\n");
    let ns = p.namespace().unwrap_or_default();
    let scaler_text = match scaler {
        Some(k) => {
            let cluster = k.kubeconfig_secret_ref.as_ref().map_or_else(
                || "burstd's cluster".to_owned(),
                |r| format!("the cluster of Secret {}, key {}", r.name, r.key),
            );
            let hpa = k.hpa.as_deref().unwrap_or(&k.deployment);
            format!(
                "Deployment {}/{} to {} replicas (HPA {hpa}'s minReplicas if it exists), in {cluster}",
                k.namespace.as_deref().unwrap_or(&ns),
                k.deployment,
                k.replicas
            )
        }
        None => "- (spec.prewarm is missing: nothing to scale)".to_owned(),
    };
    let _ = writeln!(out, "  Scaler:       {scaler_text}");
    let timing_text = match timing {
        Some(t) => format!("lead {}, hold {}", t.lead, t.hold),
        None => "- (spec.policy.prewarm is missing)".to_owned(),
    };
    let _ = writeln!(out, "  Timing:       {timing_text}");
    let Some(w) = &s.prewarm else {
        out.push_str("  (no report yet: burstd has not pre-warmed or released this policy)\n");
        return out;
    };
    let when = w.last_action_time.as_ref().map(|t| time_ago(t.0, now));
    let is_release = w
        .last_action
        .as_deref()
        .is_some_and(|a| a.starts_with("release"));
    let prepared = match (w.prepared, &when) {
        (true, Some(t)) if !is_release => format!("yes, since {t}"),
        (true, _) => "yes".to_owned(),
        (false, Some(t)) if is_release => format!("no, released at {t}"),
        (false, _) => "no".to_owned(),
    };
    let _ = writeln!(out, "  Prepared:     {prepared}");
    let _ = writeln!(
        out,
        "  Outlook:      {}",
        w.outlook
            .as_deref()
            .map_or_else(|| "-".to_owned(), outlook_text)
    );
    let last = match (&w.last_action, &when) {
        (Some(a), Some(t)) => format!("{a}, at {t}"),
        (Some(a), None) => a.clone(),
        (None, _) => "-".to_owned(),
    };
    let _ = writeln!(out, "  Last action:  {last}");
    let _ = writeln!(
        out,
        "  Last error:   {}",
        w.last_error.as_deref().unwrap_or("-")
    );
    out
}

/// The text of `explain`.
pub fn explanation_text(ns: &str, name: &str, spec: &BurstPolicySpec, e: &Explanation) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "BurstPolicy {ns}/{name} (nothing is written)");
    let _ = writeln!(out, "Source:   {}", e.source);
    let signal = match &e.signal {
        Signal::Rates(r) | Signal::Observed(burst_core::Observation { rates: r, .. }) => {
            format!("{r}")
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn policy(status: Value, spec_extra: Value) -> BurstPolicy {
        let mut spec = json!({
            "source": {"scrape": {"targets": ["http://127.0.0.1:9/metrics"], "metric": "m"}},
            "target": {"name": "worker"},
        });
        if let (Some(s), Some(extra)) = (spec.as_object_mut(), spec_extra.as_object()) {
            s.extend(extra.clone());
        }
        serde_json::from_value(json!({
            "apiVersion": "bursting.dev/v1alpha1", "kind": "BurstPolicy",
            "metadata": {"name": "w", "namespace": "shop", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": spec,
            "status": status,
        }))
        .unwrap()
    }

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn ages_read_like_kubectl() {
        assert_eq!(age(-5), "0s");
        assert_eq!(age(90), "90s");
        assert_eq!(age(600), "10m");
        assert_eq!(age(3 * 3600), "3h");
        assert_eq!(age(3 * 86_400 + 4 * 3600), "3d4h");
    }

    #[test]
    fn list_rows_show_split_rule_and_control() {
        let p = policy(
            json!({"mode": "Burst", "split": {"primary": 0, "burst": 100}, "observedRps": 20.5,
                   "lastDecision": {"rule": "above_high", "detail": "x"}}),
            json!({"pin": {"burstWeight": 40, "until": "2026-01-01T01:00:00Z"}}),
        );
        let row = Row::of(&p, at("2026-01-01T00:10:00Z"));
        assert_eq!(row.split, "0/100");
        assert_eq!(row.rule, "above_high");
        assert_eq!(row.age_seconds, Some(600));
        assert_eq!(
            row.control(at("2026-01-01T00:10:00Z")),
            "pinned until 2026-01-01T01:00:00Z"
        );
        assert_eq!(
            row.control(at("2026-01-01T02:00:00Z")),
            "policy",
            "an expired pin"
        );
        let table = list_table(&[row], true);
        let mut lines = table.lines();
        assert!(
            lines
                .next()
                .unwrap()
                .starts_with("NAMESPACE   NAME   TARGET")
        );
        let line = lines.next().unwrap();
        assert!(
            line.starts_with("shop        w      VirtualService/worker"),
            "{line}"
        );
        assert!(line.contains("20.50"), "{line}");
    }

    #[test]
    fn a_policy_without_status_lists_dashes_and_empty_lists_say_so() {
        let row = Row::of(
            &policy(Value::Null, json!({"paused": true})),
            at("2026-01-01T00:00:00Z"),
        );
        assert_eq!(
            (row.mode.as_str(), row.split.as_str(), row.rule.as_str()),
            ("-", "-", "-")
        );
        assert_eq!(row.control(at("2026-01-01T00:00:00Z")), "paused");
        assert_eq!(list_table(&[], false), "No BurstPolicies found.\n");
    }

    #[test]
    fn status_text_shows_the_pin_conditions_and_events() {
        let p = policy(
            json!({"mode": "Split", "split": {"primary": 60, "burst": 40},
                   "lastDecision": {"rule": "pinned", "detail": "pinned at 60/40"},
                   "conditions": [{"type": "Pinned", "status": "True", "reason": "PinActive",
                                   "message": "pinned at 60/40", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}),
            json!({"pin": {"burstWeight": 40, "until": "2026-01-01T00:30:00Z"}}),
        );
        let event: Event = serde_json::from_value(json!({
            "metadata": {"name": "e"}, "eventTime": "2026-01-01T00:00:00.000000Z",
            "type": "Normal", "reason": "PinStarted", "note": "pinned"
        }))
        .unwrap();
        let text = status_text(
            &p,
            p.status.as_ref().unwrap(),
            &[event],
            at("2026-01-01T00:10:00Z"),
        );
        assert!(
            text.contains(
                "Control:       pinned at burst weight 40 until 2026-01-01T00:30:00Z (in 20m)"
            ),
            "{text}"
        );
        assert!(
            text.contains("Last decision: pinned: pinned at 60/40"),
            "{text}"
        );
        assert!(text.contains("Pinned   True     PinActive"), "{text}");
        assert!(
            text.contains("10m   Normal   PinStarted   pinned"),
            "{text}"
        );
    }

    #[test]
    fn status_text_shows_pre_warming() {
        let p = policy(
            json!({"mode": "Primary", "split": {"primary": 100, "burst": 0},
                   "prewarm": {"prepared": true, "outlook": "crossing",
                               "lastAction": "prewarm (forecast: crossing in 40s)",
                               "lastActionTime": "2026-01-01T00:05:00Z",
                               "lastError": "conflict: 409 after 5 attempts"}}),
            json!({"policy": {"high": 15, "low": 10, "prewarm": {"lead": "90s", "hold": "5m"}},
                   "prewarm": {"scaler": {"kubernetes": {"namespace": "burst", "deployment": "worker", "replicas": 5}}}}),
        );
        let text = status_text(
            &p,
            p.status.as_ref().unwrap(),
            &[],
            at("2026-01-01T00:10:00Z"),
        );
        for line in [
            "\nPre-warm:\n",
            "  Scaler:       Deployment burst/worker to 5 replicas (HPA worker's minReplicas if it exists), in burstd's cluster\n",
            "  Timing:       lead 1m30s, hold 5m\n",
            "  Prepared:     yes, since 2026-01-01T00:05:00Z (5m ago)\n",
            "  Outlook:      crossing (demand crosses the trigger within lead, or is above it)\n",
            "  Last action:  prewarm (forecast: crossing in 40s), at 2026-01-01T00:05:00Z (5m ago)\n",
            "  Last error:   conflict: 409 after 5 attempts\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }
        // The section comes before the conditions.
        assert!(text.find("Pre-warm:") < text.find("Conditions:"), "{text}");

        // Released: since when; no error.
        let p = policy(
            json!({"prewarm": {"prepared": false, "outlook": "below",
                               "lastAction": "release (not needed for 5m)",
                               "lastActionTime": "2026-01-01T00:08:00Z"}}),
            json!({"policy": {"prewarm": {"lead": "90s", "hold": "5m"}},
                   "prewarm": {"scaler": {"kubernetes": {"deployment": "worker", "hpa": "worker-hpa", "replicas": 3,
                               "kubeconfigSecretRef": {"name": "burst-cluster", "key": "kubeconfig"}}}}}),
        );
        let text = status_text(
            &p,
            p.status.as_ref().unwrap(),
            &[],
            at("2026-01-01T00:10:00Z"),
        );
        for line in [
            "Deployment shop/worker to 3 replicas (HPA worker-hpa's minReplicas if it exists), in the cluster of Secret burst-cluster, key kubeconfig",
            "  Prepared:     no, released at 2026-01-01T00:08:00Z (2m ago)\n",
            "  Outlook:      below (demand stays below the trigger within lead)\n",
            "  Last error:   -\n",
        ] {
            assert!(text.contains(line), "{line:?} missing in\n{text}");
        }

        // Configured, not reported yet; and a policy without pre-warming has no section.
        let p = policy(
            Value::Null,
            json!({"policy": {"prewarm": {"lead": "90s", "hold": "5m"}}}),
        );
        let text = status_text(
            &p,
            &BurstPolicyStatus::default(),
            &[],
            at("2026-01-01T00:10:00Z"),
        );
        assert!(
            text.contains("  Scaler:       - (spec.prewarm is missing: nothing to scale)"),
            "{text}"
        );
        assert!(text.contains("(no report yet"), "{text}");
        let p = policy(Value::Null, json!({}));
        let text = status_text(
            &p,
            &BurstPolicyStatus::default(),
            &[],
            at("2026-01-01T00:10:00Z"),
        );
        assert!(!text.contains("Pre-warm"), "{text}");
    }
}
