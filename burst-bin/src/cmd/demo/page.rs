//! What the page shows of the controller: the tick log (the in-process controller's
//! observer, or with `--kubeconfig` the BurstPolicy's status) and the pre-warm notes become
//! the frontend's [`ControllerView`], refreshed twice a second.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use burst_core::lock;
use burst_core::policy::{PolicySpec, Rule};
use burst_hashr::frontend::Frontend;
use burst_hashr::frontend::controller::{ControllerView, PrewarmView, WarmupView};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::sides::PrewarmNote;
use super::{PrewarmNotes, TickLog};

/// How often the page's view is rebuilt (the page itself refreshes every second).
const REFRESH: Duration = Duration::from_millis(500);

/// What the view needs from the policy file.
#[derive(Debug, Clone, Default, PartialEq)]
pub(super) struct PagePolicy {
    /// The warm-up ramp's burst weights (empty: no ramp).
    ramp: Vec<i64>,
    /// The policy pre-warms.
    prewarm: bool,
}

impl PagePolicy {
    pub(super) fn of(spec: &PolicySpec) -> PagePolicy {
        PagePolicy {
            ramp: spec
                .warmup
                .as_ref()
                .map(|w| w.ramp.clone())
                .unwrap_or_default(),
            prewarm: spec.prewarm.is_some(),
        }
    }
}

/// The view of the controller with `burst_weight` in effect.
pub(super) fn view(
    log: &TickLog,
    burst_weight: u8,
    policy: &PagePolicy,
    notes: &[PrewarmNote],
) -> ControllerView {
    let warming = log.rule.as_deref() == Some(Rule::Warming.name());
    ControllerView {
        burst_weight,
        rule: log.rule.clone(),
        reason: log.reason.clone(),
        warmup: (warming && !policy.ramp.is_empty()).then(|| WarmupView {
            step: policy
                .ramp
                .iter()
                .filter(|w| **w <= i64::from(burst_weight))
                .count(),
            steps: policy.ramp.len(),
            toward: log.reason.as_deref().and_then(toward),
        }),
        prewarm: policy
            .prewarm
            .then(|| prewarm_view(notes, log.outlook.clone())),
    }
}

/// `N` of a warm-up reason `warming toward N% (...)`.
fn toward(detail: &str) -> Option<u8> {
    let rest = detail.strip_prefix("warming toward ")?;
    rest.split_once('%')?.0.parse().ok()
}

fn prewarm_view(notes: &[PrewarmNote], forecast: Option<String>) -> PrewarmView {
    let Some(last) = notes.last() else {
        return PrewarmView {
            forecast,
            ..PrewarmView::default()
        };
    };
    let prepared = last.action == "prepare";
    // Since the first prepare of the current preparation: later prepares (a retry, a
    // second reason) do not restart it.
    let since = if prepared {
        notes
            .iter()
            .rev()
            .take_while(|n| n.action == "prepare")
            .last()
            .unwrap_or(last)
    } else {
        last
    };
    PrewarmView {
        prepared,
        since_s: Some(since.t),
        reason: if prepared { since.reason.clone() } else { None },
        forecast,
    }
}

/// Feeds the page the controller's view until `stop`; `burst_weight` reads the split in
/// effect (called with no lock held: with HAProxy it locks the log).
pub(super) fn spawn(
    frontend: Frontend,
    burst_weight: impl Fn() -> u8 + Send + 'static,
    log: Arc<Mutex<TickLog>>,
    notes: PrewarmNotes,
    policy: PagePolicy,
    stop: CancellationToken,
) -> JoinHandle<Result<(), burst_hashr::Error>> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return Ok(()),
                _ = every.tick() => {}
            }
            // Read before the log is locked: with HAProxy the weight comes from the log.
            let weight = burst_weight();
            let noted = lock(&notes).clone();
            let v = view(&lock(&log), weight, &policy, &noted);
            frontend.set_controller(Some(v));
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn note(t: f64, action: &'static str, reason: Option<&str>) -> PrewarmNote {
        PrewarmNote {
            t,
            action,
            reason: reason.map(str::to_owned),
            warmed_early_s: None,
        }
    }

    fn policy(yaml: &str) -> PagePolicy {
        PagePolicy::of(
            &burst_core::policy::PolicyFile::from_yaml(yaml)
                .unwrap()
                .policy,
        )
    }

    #[test]
    fn a_warming_decision_shows_the_ramp_step_and_its_target() {
        let p = policy("high: 15\nlow: 10\nwarmup: {ramp: [10, 25, 50, 100], rampOver: 8s}\n");
        let log = TickLog {
            rule: Some("warming".into()),
            reason: Some("warming toward 100% (step 2/4); policy: above_high (rate)".into()),
            ..TickLog::default()
        };
        let v = view(&log, 25, &p, &[]);
        assert_eq!(
            v.warmup,
            Some(WarmupView {
                step: 2,
                steps: 4,
                toward: Some(100)
            })
        );
        assert_eq!(v.prewarm, None, "no prewarm key, no pre-warm line");
        // Paused before the first step (burst side unhealthy): step 0.
        assert_eq!(view(&log, 0, &p, &[]).warmup.unwrap().step, 0);
        // Once the ramp is done the rule is the policy's own: no warm-up line.
        let done = TickLog {
            rule: Some("above_high".into()),
            ..TickLog::default()
        };
        assert_eq!(view(&done, 100, &p, &[]).warmup, None);
        assert_eq!(toward("warming toward 50% (next step in 2s)"), Some(50));
        assert_eq!(toward("above the high threshold"), None);
    }

    #[test]
    fn the_prewarm_line_follows_the_notes() {
        let p = policy("high: 15\nlow: 10\nprewarm: {lead: 30s, hold: 5s}\n");
        let log = TickLog {
            outlook: Some("stays below: 5.000 now, 5.000 at lead".into()),
            ..TickLog::default()
        };
        let idle = view(&log, 0, &p, &[]).prewarm.unwrap();
        assert!(!idle.prepared && idle.since_s.is_none());
        assert_eq!(idle.forecast, log.outlook);
        let notes = [
            note(3.0, "prepare", Some("forecast: crossing in 20s")),
            note(9.0, "release", None),
            note(15.0, "prepare", Some("forecast: crossing in 10s")),
            note(16.0, "prepare", Some("traffic is on burst")),
        ];
        let on = view(&log, 0, &p, &notes).prewarm.unwrap();
        assert!(on.prepared);
        assert_eq!(on.since_s, Some(15.0));
        assert_eq!(on.reason.as_deref(), Some("forecast: crossing in 10s"));
        let off = view(&log, 0, &p, &notes[..2]).prewarm.unwrap();
        assert!(!off.prepared);
        assert_eq!((off.since_s, off.reason), (Some(9.0), None));
    }
}
