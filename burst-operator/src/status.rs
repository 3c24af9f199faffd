//! From tick reports to a [`BurstPolicyStatus`] and Kubernetes Events, without IO.
//!
//! A [`StatusTracker`] consumes every [`TickReport`] of one policy and answers with the
//! status to show, whether it is worth writing now, and the Events to record:
//!
//! - every split change (`SplitChanged`, or `DryRunSplit` in dry run) is an Event;
//! - errors (source, route read, apply) are Warning Events when they start or change
//!   kind, and again every [`StatusTracker::REPEAT_ERRORS_AFTER`] while they last;
//! - the status is written at once when anything but the measured rate or the wording
//!   of the last decision changed, and at most every `min_interval` for those (so a 1 s
//!   tick does not mean one API write per second: a decision's detail counts down every
//!   tick, e.g. `held 3s of sustain 10s` or `cooldown 25s left`, and at 1,000 policies
//!   writing each of those at once was most of the API server's load). A change of the
//!   decision's rule is written at once.
//!
//! Size: About 440 lines of code; the rest (~200) are the unit tests of this state machine, kept beside it.

use std::time::Duration;

use burst_core::policy::Signal;
use burst_core::{Outcome, RouterError, Split, TickReport, Timestamp};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff;

use crate::api::{
    BurstPolicyStatus, DecisionStatus, ObservationState, ObservationStatus, SplitStatus, StatusMode,
};
use crate::pin::Pin;

/// `Ready`: the route is being controlled.
pub const READY: &str = "Ready";
/// `Degraded`: a source or router error.
pub const DEGRADED: &str = "Degraded";
/// `Pinned`: `spec.pin` holds the split (present once a pin was seen).
pub const PINNED: &str = "Pinned";

/// Severity of an Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Informational.
    Normal,
    /// Something is wrong.
    Warning,
}

/// An Event to record about the policy (or the route, in single-policy mode).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventNote {
    /// Normal or Warning.
    pub severity: Severity,
    /// PascalCase reason (`SplitChanged`).
    pub reason: &'static str,
    /// PascalCase action (`ApplySplit`).
    pub action: &'static str,
    /// Human-readable detail (at most 1 KiB).
    pub note: String,
}

/// What to do after a tick.
#[derive(Debug, Clone, PartialEq)]
pub struct Update {
    /// The status to show.
    pub status: BurstPolicyStatus,
    /// Whether to write it now.
    pub write: bool,
    /// Events to record.
    pub events: Vec<EventNote>,
}

impl Update {
    /// Folds an update made after `self` into it, for a writer that fell behind: every
    /// Event of both in order, the newer status, and a write if either asked for one.
    pub fn then(mut self, next: Update) -> Update {
        self.events.extend(next.events);
        self.status = next.status;
        self.write |= next.write;
        self
    }
}

/// Builds the status of one policy from its ticks. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct StatusTracker {
    generation: Option<i64>,
    dry_run: bool,
    min_interval: Duration,
    status: BurstPolicyStatus,
    written: Option<(BurstPolicyStatus, Timestamp)>,
    last_dry_run_target: Option<Split>,
    /// Whether the last decision was `burst_unhealthy` (one Event per unhealthy stretch).
    burst_unhealthy: bool,
    /// Error key (what, kind) → when its Event was last recorded.
    errors: Vec<((&'static str, String), Timestamp)>,
    pin: Option<Pin>,
}

fn time(at: Timestamp) -> Time {
    let nanos = i128::try_from(at.as_duration().as_nanos()).unwrap_or(i128::MAX);
    Time(jiff::Timestamp::from_nanosecond(nanos).unwrap_or(jiff::Timestamp::UNIX_EPOCH))
}

fn truncate(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max.saturating_sub(3);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str("...");
    }
    s
}

impl StatusTracker {
    /// Errors that last are recorded again after this long.
    pub const REPEAT_ERRORS_AFTER: Duration = Duration::from_secs(300);

    /// A tracker for a policy at `generation`; `previous` is the status found on the object
    /// (its transition times and conditions carry over).
    pub fn new(
        generation: Option<i64>,
        dry_run: bool,
        min_interval: Duration,
        previous: Option<BurstPolicyStatus>,
    ) -> StatusTracker {
        let mut status = previous.unwrap_or_default();
        status.observed_generation = generation;
        status.dry_run = Some(dry_run);
        if status.mode.is_none() {
            status.mode = Some(StatusMode::Pending);
        }
        StatusTracker {
            generation,
            dry_run,
            min_interval,
            status,
            written: None,
            last_dry_run_target: None,
            burst_unhealthy: false,
            errors: Vec::new(),
            pin: None,
        }
    }

    /// The tracker of a policy with `spec.pin`: reports the `Pinned` condition and records
    /// `PinStarted` and `PinExpired` Events.
    pub fn with_pin(mut self, pin: Option<Pin>) -> StatusTracker {
        self.pin = pin;
        self
    }

    fn condition_true(&self, kind: &str) -> bool {
        self.status
            .conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    }

    /// The `Pinned` condition and the pin's Events for a tick at `at` that decided `rule`.
    fn track_pin(&mut self, rule: &str, at: Timestamp, events: &mut Vec<EventNote>) {
        let was_pinned = self.condition_true(PINNED);
        let pinned = self
            .pin
            .clone()
            .filter(|p| rule == crate::pin::PINNED && p.holds_at(at));
        match pinned {
            Some(pin) => {
                let message = format!(
                    "pinned at {} (burst weight {}) until {}",
                    pin.split,
                    pin.split.burst(),
                    pin.until_text
                );
                let same = self
                    .status
                    .conditions
                    .iter()
                    .any(|c| c.type_ == PINNED && c.status == "True" && c.message == message);
                if !same {
                    events.push(EventNote {
                        severity: Severity::Normal,
                        reason: "PinStarted",
                        action: "Pin",
                        note: format!("{message}; the policy's decisions are overridden"),
                    });
                }
                self.set_condition(PINNED, true, "PinActive", message, at);
            }
            None if was_pinned => {
                let until = self
                    .pin
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |p| p.until_text.clone());
                let message = format!("the pin ended at {until}; the policy decides again");
                events.push(EventNote {
                    severity: Severity::Normal,
                    reason: "PinExpired",
                    action: "Pin",
                    note: message.clone(),
                });
                self.set_condition(PINNED, false, "PinExpired", message, at);
            }
            None => {}
        }
    }

    /// The status as it stands.
    pub fn status(&self) -> &BurstPolicyStatus {
        &self.status
    }

    /// Records that `status` was written at `at`.
    pub fn written(&mut self, status: BurstPolicyStatus, at: Timestamp) {
        self.written = Some((status, at));
    }

    fn set_condition(
        &mut self,
        kind: &str,
        ok: bool,
        reason: &str,
        message: String,
        at: Timestamp,
    ) {
        let status = if ok { "True" } else { "False" };
        let message = truncate(message, 1024);
        let conditions = &mut self.status.conditions;
        match conditions.iter_mut().find(|c| c.type_ == kind) {
            Some(c) => {
                if c.status != status {
                    c.last_transition_time = time(at);
                }
                c.status = status.to_owned();
                c.reason = reason.to_owned();
                c.message = message;
                c.observed_generation = self.generation;
            }
            None => conditions.push(Condition {
                type_: kind.to_owned(),
                status: status.to_owned(),
                reason: reason.to_owned(),
                message,
                last_transition_time: time(at),
                observed_generation: self.generation,
            }),
        }
        conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
    }

    /// Returns the Event for an error unless the same error was recorded recently.
    fn error_event(
        &mut self,
        what: &'static str,
        kind: &str,
        at: Timestamp,
        note: impl FnOnce() -> EventNote,
    ) -> Option<EventNote> {
        let key = (what, kind.to_owned());
        match self.errors.iter_mut().find(|(k, _)| *k == key) {
            Some((_, last)) if at.saturating_since(*last) < Self::REPEAT_ERRORS_AFTER => None,
            Some((_, last)) => {
                *last = at;
                Some(note())
            }
            None => {
                self.errors.retain(|((w, _), _)| *w != what);
                self.errors.push((key, at));
                Some(note())
            }
        }
    }

    fn clear_errors(&mut self, what: &'static str) {
        self.errors.retain(|((w, _), _)| *w != what);
    }

    /// Whether `status` is worth writing at `at`, given the status written last: at once
    /// when anything but the measured rate or a decision's wording changed, else when
    /// it changed at all and `min_interval` has passed since the last write. The writer
    /// asks again just before it writes, so that updates made while a slow write was
    /// in flight (each of them still comparing against the write before) do not each
    /// write the same status again.
    pub fn worth_writing(&self, status: &BurstPolicyStatus, at: Timestamp) -> bool {
        let Some((old, when)) = &self.written else {
            return true;
        };
        if old == status {
            return false;
        }
        let mut a = old.clone();
        let mut b = status.clone();
        for s in [&mut a, &mut b] {
            s.observed_rps = None;
            s.observed_rps_long = None;
            if let Some(d) = s.last_decision.as_mut() {
                d.detail.clear();
            }
            s.observation = s.observation.take().map(|mut o| {
                if o.state == ObservationState::Value {
                    o.message.clear();
                }
                o
            });
        }
        a != b || at.saturating_since(*when) >= self.min_interval
    }

    fn finish(&mut self, at: Timestamp, events: Vec<EventNote>) -> Update {
        Update {
            write: self.worth_writing(&self.status, at),
            status: self.status.clone(),
            events,
        }
    }

    /// The status of a paused policy.
    pub fn paused(&mut self, at: Timestamp) -> Update {
        self.status.mode = Some(StatusMode::Paused);
        self.set_condition(
            READY,
            false,
            "Paused",
            "spec.paused is true: the route is not changed".into(),
            at,
        );
        self.set_condition(DEGRADED, false, "Paused", String::new(), at);
        self.finish(at, Vec::new())
    }

    /// The status of a policy whose spec cannot be used.
    pub fn invalid(&mut self, kind: &str, message: &str, at: Timestamp) -> Update {
        self.set_condition(READY, false, "InvalidSpec", message.to_owned(), at);
        self.set_condition(DEGRADED, true, "InvalidSpec", message.to_owned(), at);
        let event = self.error_event("spec", kind, at, || EventNote {
            severity: Severity::Warning,
            reason: "InvalidSpec",
            action: "Configure",
            note: truncate(message.to_owned(), 1024),
        });
        self.finish(at, event.into_iter().collect())
    }

    /// The start-up read of the route failed.
    pub fn start_error(&mut self, error: &RouterError, at: Timestamp) -> Update {
        self.status.mode = Some(StatusMode::Unknown);
        let message = error.to_string();
        self.set_condition(READY, false, "RouteUnreadable", message.clone(), at);
        self.set_condition(DEGRADED, true, "RouteUnreadable", message.clone(), at);
        let event = self.error_event("route_read", error.kind(), at, || EventNote {
            severity: Severity::Warning,
            reason: "RouteUnreadable",
            action: "ReadRoute",
            note: truncate(message, 1024),
        });
        self.finish(at, event.into_iter().collect())
    }

    /// Folds in one tick.
    pub fn on_tick(&mut self, r: &TickReport) -> Update {
        let at = r.at;
        let mut events = Vec::new();
        // What the source gave.
        let (observation, source_problem) = match &r.signal {
            Signal::Rates(rates) | Signal::Observed(burst_core::Observation { rates, .. }) => {
                self.status.observed_rps = Some(rates.up.get());
                self.status.observed_rps_long = Some(rates.down.get());
                self.clear_errors("source");
                (
                    ObservationStatus {
                        state: ObservationState::Value,
                        message: rates.to_string(),
                        error_kind: None,
                    },
                    None,
                )
            }
            Signal::NoData(reason) => {
                self.status.observed_rps = None;
                self.status.observed_rps_long = None;
                (
                    ObservationStatus {
                        state: ObservationState::NoData,
                        message: truncate(reason.clone(), 1024),
                        error_kind: None,
                    },
                    Some(("NoData", format!("no data: {reason}"))),
                )
            }
            Signal::Error(error) => {
                let (kind, message) = (error.kind(), error.to_string());
                self.status.observed_rps = None;
                self.status.observed_rps_long = None;
                if let Some(e) = self.error_event("source", kind, at, || EventNote {
                    severity: Severity::Warning,
                    reason: "SourceError",
                    action: "Measure",
                    note: truncate(format!("{kind}: {message}"), 1024),
                }) {
                    events.push(e);
                }
                (
                    ObservationStatus {
                        state: ObservationState::Error,
                        message: truncate(message.clone(), 1024),
                        error_kind: Some((*kind).to_owned()),
                    },
                    Some(("SourceError", format!("{kind}: {message}"))),
                )
            }
        };
        self.status.observation = Some(observation);
        self.status.last_decision = Some(DecisionStatus {
            rule: r.decision.reason.rule.name().to_owned(),
            detail: truncate(r.decision.reason.detail.clone(), 1024),
        });
        self.status.desired_split = Some(r.decision.desired.into());
        self.track_pin(r.decision.reason.rule.name(), at, &mut events);
        let unhealthy = r.decision.reason.rule == burst_core::policy::Rule::BurstUnhealthy;
        if unhealthy && !self.burst_unhealthy {
            events.push(EventNote {
                severity: Severity::Warning,
                reason: "BurstUnhealthy",
                action: "Decide",
                note: truncate(r.decision.reason.detail.clone(), 800),
            });
        }
        self.burst_unhealthy = unhealthy;
        if let Some(p) = &r.prewarm {
            let status = self.status.prewarm.get_or_insert_with(Default::default);
            events.extend(crate::prewarm::track(status, p, at));
        }
        let in_effect = r.actual.unwrap_or(r.belief);
        let in_effect = match r.outcome {
            Outcome::Applied { to, .. } => to,
            _ => in_effect,
        };
        self.status.split = Some(SplitStatus::from(in_effect));
        self.status.burst_weight = Some(i64::from(in_effect.burst().get()));
        self.status.mode = Some(StatusMode::of(in_effect));

        // Route problems.
        let mut router_problem = None;
        if let Some(error) = &r.read_error {
            let (kind, message) = (error.kind(), error.to_string());
            router_problem = Some(("RouteUnreadable", format!("{kind}: {message}")));
            if let Some(e) = self.error_event("route_read", kind, at, || EventNote {
                severity: Severity::Warning,
                reason: "RouteUnreadable",
                action: "ReadRoute",
                note: truncate(format!("{kind}: {message}"), 1024),
            }) {
                events.push(e);
            }
        } else {
            self.clear_errors("route_read");
        }
        if let Some(found) = r.drift {
            events.push(EventNote {
                severity: Severity::Warning,
                reason: "RouteDrifted",
                action: "ReadRoute",
                note: format!(
                    "the route held {found} instead of the applied {}; restoring the policy's split",
                    r.belief
                ),
            });
        }
        let detail = truncate(r.decision.reason.detail.clone(), 800);
        match &r.outcome {
            Outcome::Applied { from, to } => {
                self.clear_errors("apply");
                self.status.last_transition_time = Some(time(at));
                self.status.last_transition_reason =
                    Some(format!("{}: {detail}", r.decision.reason.rule.name()));
                events.push(EventNote {
                    severity: Severity::Normal,
                    reason: "SplitChanged",
                    action: "ApplySplit",
                    note: format!(
                        "{from} -> {to} ({}: {detail})",
                        r.decision.reason.rule.name()
                    ),
                });
            }
            Outcome::DryRun { from, to } => {
                if self.last_dry_run_target != Some(*to) {
                    self.last_dry_run_target = Some(*to);
                    events.push(EventNote {
                        severity: Severity::Normal,
                        reason: "DryRunSplit",
                        action: "ApplySplit",
                        note: format!(
                            "dry run: would change {from} -> {to} ({}: {detail})",
                            r.decision.reason.rule.name()
                        ),
                    });
                }
            }
            Outcome::Failed {
                to,
                error,
                retry_in,
            } => {
                let (kind, message) = (error.kind(), error.to_string());
                router_problem = Some(("ApplyFailed", format!("{kind}: {message}")));
                let note = format!(
                    "could not apply {to} ({kind}): {message}; retrying in {}",
                    burst_core::HumanDuration::from(*retry_in)
                );
                if let Some(e) = self.error_event("apply", kind, at, || EventNote {
                    severity: Severity::Warning,
                    reason: "ApplyFailed",
                    action: "ApplySplit",
                    note: truncate(note, 1024),
                }) {
                    events.push(e);
                }
            }
            Outcome::BackingOff { to, retry_in } => {
                router_problem = router_problem.or(Some((
                    "ApplyFailed",
                    format!(
                        "applying {to} failed; next attempt in {}",
                        burst_core::HumanDuration::from(*retry_in)
                    ),
                )));
            }
            Outcome::Unchanged => {
                if r.decision.desired == in_effect {
                    self.clear_errors("apply");
                }
                self.last_dry_run_target = None;
            }
        }

        let (ready_reason, ready_message) = if self.dry_run {
            (
                "DryRun",
                "deciding and reporting; the route is not changed".to_owned(),
            )
        } else {
            (
                "Controlling",
                format!("controlling the route; split {in_effect}"),
            )
        };
        match (&router_problem, &source_problem) {
            (Some(("RouteUnreadable", m)), _) => {
                self.set_condition(READY, false, "RouteUnreadable", m.clone(), at);
            }
            _ => self.set_condition(READY, true, ready_reason, ready_message, at),
        }
        match router_problem.or(source_problem) {
            Some((reason, message)) => self.set_condition(DEGRADED, true, reason, message, at),
            None => self.set_condition(DEGRADED, false, "AsExpected", String::new(), at),
        }
        self.finish(at, events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::policy::{Decision, Reason, Rule};
    use burst_core::{Rate, Rates};

    fn ts(s: u64) -> Timestamp {
        Timestamp::from_duration(Duration::from_secs(1_800_000_000 + s))
    }

    fn tick(at: u64, signal: Signal, outcome: Outcome, actual: Split) -> TickReport {
        let belief = match outcome {
            Outcome::Applied { to, .. } => to,
            _ => actual,
        };
        TickReport {
            at: ts(at),
            signal,
            decision: Decision {
                desired: match outcome {
                    Outcome::Applied { to, .. }
                    | Outcome::DryRun { to, .. }
                    | Outcome::Failed { to, .. } => to,
                    _ => actual,
                },
                reason: Reason {
                    rule: Rule::AboveHigh,
                    rates: None,
                    current: actual,
                    detail: "rate 20.000 > high 15".into(),
                },
            },
            actual: Some(actual),
            read_error: None,
            drift: None,
            outcome,
            belief,
            elapsed: Duration::from_millis(2),
            prewarm: None,
        }
    }

    fn rps(v: f64) -> Signal {
        Signal::Rates(Rates::single(Rate::try_new("r", v).unwrap()))
    }

    fn condition<'a>(s: &'a BurstPolicyStatus, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    #[test]
    fn an_unhealthy_burst_side_is_one_warning_event_per_stretch() {
        let mut t = StatusTracker::new(Some(1), false, Duration::from_secs(10), None);
        let mut refused = tick(0, rps(20.0), Outcome::Unchanged, Split::ALL_PRIMARY);
        refused.decision.reason.rule = Rule::BurstUnhealthy;
        refused.decision.reason.detail = "burst_ready 0 < minReady 1".into();
        let u = t.on_tick(&refused);
        assert_eq!(
            u.status.last_decision.as_ref().unwrap().rule,
            "burst_unhealthy"
        );
        let events: Vec<_> = u
            .events
            .iter()
            .map(|e| (e.reason, e.note.clone()))
            .collect();
        assert_eq!(
            events,
            [("BurstUnhealthy", "burst_ready 0 < minReady 1".to_string())]
        );
        refused.at = ts(1);
        assert!(t.on_tick(&refused).events.is_empty());
        // Healthy again, then unhealthy again: a new Event.
        assert!(
            t.on_tick(&tick(2, rps(1.0), Outcome::Unchanged, Split::ALL_PRIMARY))
                .events
                .is_empty()
        );
        refused.at = ts(3);
        assert_eq!(t.on_tick(&refused).events.len(), 1);
    }

    #[test]
    fn a_pin_is_a_condition_with_events_when_it_starts_and_ends() {
        let pin = Pin {
            split: Split::ALL_BURST,
            until: ts(10),
            until_text: "2027-01-15T08:00:10Z".into(),
        };
        let mut t =
            StatusTracker::new(Some(1), false, Duration::from_secs(10), None).with_pin(Some(pin));
        let mut pinned = tick(0, rps(1.0), Outcome::Unchanged, Split::ALL_BURST);
        pinned.decision.reason.rule = Rule::Custom(crate::pin::PINNED);
        let u = t.on_tick(&pinned);
        assert_eq!(condition(&u.status, PINNED).status, "True");
        assert!(
            condition(&u.status, PINNED)
                .message
                .contains("until 2027-01-15T08:00:10Z")
        );
        let started: Vec<_> = u.events.iter().map(|e| e.reason).collect();
        assert_eq!(started, ["PinStarted"]);
        // The next pinned tick records nothing new.
        pinned.at = ts(5);
        assert!(t.on_tick(&pinned).events.is_empty());
        // After `until` the policy's rule comes back: the pin expired.
        let u = t.on_tick(&tick(11, rps(1.0), Outcome::Unchanged, Split::ALL_BURST));
        assert_eq!(condition(&u.status, PINNED).status, "False");
        assert_eq!(condition(&u.status, PINNED).reason, "PinExpired");
        let ended: Vec<_> = u.events.iter().map(|e| e.reason).collect();
        assert_eq!(ended, ["PinExpired"]);
        // A restarted tracker carrying this status records no second expiry.
        let mut again = StatusTracker::new(Some(1), false, Duration::from_secs(10), Some(u.status))
            .with_pin(None);
        let u = again.on_tick(&tick(12, rps(1.0), Outcome::Unchanged, Split::ALL_BURST));
        assert!(u.events.is_empty());
    }

    #[test]
    fn applied_split_is_shown_with_an_event_and_transition() {
        let mut t = StatusTracker::new(Some(3), false, Duration::from_secs(10), None);
        let u = t.on_tick(&tick(
            0,
            rps(20.0),
            Outcome::Applied {
                from: Split::ALL_PRIMARY,
                to: Split::ALL_BURST,
            },
            Split::ALL_PRIMARY,
        ));
        assert!(u.write);
        assert_eq!(u.status.mode, Some(StatusMode::Burst));
        assert_eq!(u.status.burst_weight, Some(100));
        assert_eq!(u.status.observed_rps, Some(20.0));
        assert_eq!(u.status.observed_generation, Some(3));
        assert_eq!(u.status.last_transition_time, Some(time(ts(0))));
        assert!(
            u.status
                .last_transition_reason
                .as_deref()
                .unwrap()
                .starts_with("above_high")
        );
        assert_eq!(u.events.len(), 1);
        assert_eq!(u.events[0].reason, "SplitChanged");
        assert!(
            u.events[0].note.contains("100/0 -> 0/100"),
            "{}",
            u.events[0].note
        );
        assert_eq!(condition(&u.status, READY).status, "True");
        assert_eq!(condition(&u.status, DEGRADED).status, "False");
    }

    #[test]
    fn rate_only_changes_are_written_at_most_every_interval() {
        let mut t = StatusTracker::new(Some(1), false, Duration::from_secs(10), None);
        let u = t.on_tick(&tick(0, rps(5.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert!(u.write);
        t.written(u.status, ts(0));
        let u = t.on_tick(&tick(1, rps(6.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert!(!u.write);
        let u = t.on_tick(&tick(11, rps(7.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert!(u.write);
        t.written(u.status, ts(11));
        // Same rate again after the interval: nothing changed, nothing written.
        let u = t.on_tick(&tick(30, rps(7.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert!(!u.write);
        // No data is a change of its own, written at once; the rate disappears.
        let u = t.on_tick(&tick(
            31,
            Signal::NoData("empty result".into()),
            Outcome::Unchanged,
            Split::ALL_PRIMARY,
        ));
        assert!(u.write);
        assert_eq!(u.status.observed_rps, None);
        assert_eq!(
            u.status.observation.as_ref().unwrap().state,
            ObservationState::NoData
        );
        assert_eq!(condition(&u.status, DEGRADED).reason, "NoData");
    }

    #[test]
    fn a_decision_detail_that_only_counts_down_is_written_at_most_every_interval() {
        let mut t = StatusTracker::new(Some(1), false, Duration::from_secs(10), None);
        let at = |s: u64, rule: Rule, detail: &str| {
            let mut r = tick(s, rps(20.0), Outcome::Unchanged, Split::ALL_PRIMARY);
            r.decision.reason.rule = rule;
            r.decision.reason.detail = detail.into();
            r
        };
        let u = t.on_tick(&at(
            0,
            Rule::Sustaining,
            "rate > high 15; held 0s of sustain 10s",
        ));
        assert!(u.write);
        t.written(u.status, ts(0));
        let u = t.on_tick(&at(
            1,
            Rule::Sustaining,
            "rate > high 15; held 1s of sustain 10s",
        ));
        assert!(!u.write, "a countdown alone is not worth a write");
        assert_eq!(
            u.status.last_decision.as_ref().unwrap().detail,
            "rate > high 15; held 1s of sustain 10s",
            "the status to write still carries the newest wording"
        );
        let u = t.on_tick(&at(
            10,
            Rule::Sustaining,
            "rate > high 15; held 10s of sustain 10s",
        ));
        assert!(u.write, "after the interval the newest wording is written");
        t.written(u.status, ts(10));
        let u = t.on_tick(&at(11, Rule::Cooldown, "rate > high 15; cooldown 29s left"));
        assert!(u.write, "a new rule is written at once");
        assert_eq!(u.status.last_decision.as_ref().unwrap().rule, "cooldown");
    }

    #[test]
    fn updates_queued_behind_a_slow_write_write_once_and_keep_every_event() {
        let mut t = StatusTracker::new(Some(1), false, Duration::from_secs(10), None);
        let first = t.on_tick(&tick(0, rps(5.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        t.written(first.status, ts(0));
        // The write due after the interval is slow: three more ticks queue behind it,
        // each still comparing against the write at 0 s.
        let due = t.on_tick(&tick(10, rps(6.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert!(due.write);
        let queued: Vec<Update> = [11, 12, 13]
            .map(|s| t.on_tick(&tick(s, rps(6.5), Outcome::Unchanged, Split::ALL_PRIMARY)))
            .into();
        assert!(queued.iter().all(|u| u.write), "each asks for a write");
        t.written(due.status, ts(13));
        // The writer folds what queued into one update and asks again before writing.
        let note = |reason| EventNote {
            severity: Severity::Normal,
            reason,
            action: "Test",
            note: String::new(),
        };
        let mut queued = queued.into_iter();
        let mut folded = queued.next().unwrap();
        folded.events.push(note("First"));
        let mut last = queued.next_back().unwrap();
        last.events.push(note("Last"));
        let folded = queued.fold(folded, Update::then).then(last.clone());
        assert_eq!(folded.status, last.status, "the newest status is kept");
        let reasons: Vec<_> = folded.events.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["First", "Last"], "every Event is kept, in order");
        assert!(folded.write);
        assert!(
            !t.worth_writing(&folded.status, ts(13)),
            "a new rate 0 s after the last write waits for the interval"
        );
        assert!(t.worth_writing(&folded.status, ts(23)));
    }

    #[test]
    fn errors_are_degraded_and_recorded_once() {
        let mut t = StatusTracker::new(Some(1), false, Duration::from_secs(10), None);
        let err = || Signal::Error(burst_core::SourceError::new("http", "connection refused"));
        let failed = || Outcome::Failed {
            to: Split::ALL_BURST,
            error: burst_core::RouterError::new("server", "500"),
            retry_in: Duration::from_secs(1),
        };
        let u = t.on_tick(&tick(0, err(), failed(), Split::ALL_PRIMARY));
        let reasons: Vec<_> = u.events.iter().map(|e| e.reason).collect();
        assert_eq!(reasons, ["SourceError", "ApplyFailed"]);
        assert_eq!(condition(&u.status, DEGRADED).status, "True");
        assert_eq!(condition(&u.status, DEGRADED).reason, "ApplyFailed");
        assert_eq!(u.status.observed_rps, None);
        let u = t.on_tick(&tick(1, err(), failed(), Split::ALL_PRIMARY));
        assert!(u.events.is_empty());
        let u = t.on_tick(&tick(400, err(), failed(), Split::ALL_PRIMARY));
        assert_eq!(u.events.len(), 2);
        // Recovery clears Degraded and re-arms the events.
        let u = t.on_tick(&tick(401, rps(1.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert_eq!(condition(&u.status, DEGRADED).status, "False");
        let u = t.on_tick(&tick(402, err(), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert_eq!(u.events.len(), 1);
    }

    #[test]
    fn dry_run_reports_the_wish_once() {
        let mut t = StatusTracker::new(Some(1), true, Duration::from_secs(10), None);
        let dry = || Outcome::DryRun {
            from: Split::ALL_PRIMARY,
            to: Split::ALL_BURST,
        };
        let u = t.on_tick(&tick(0, rps(20.0), dry(), Split::ALL_PRIMARY));
        assert_eq!(u.events.len(), 1);
        assert_eq!(u.events[0].reason, "DryRunSplit");
        assert_eq!(u.status.mode, Some(StatusMode::Primary));
        assert_eq!(u.status.desired_split.unwrap().burst, 100);
        assert_eq!(condition(&u.status, READY).reason, "DryRun");
        assert!(
            t.on_tick(&tick(1, rps(20.0), dry(), Split::ALL_PRIMARY))
                .events
                .is_empty()
        );
    }

    #[test]
    fn condition_transition_time_moves_only_on_flips() {
        let mut t = StatusTracker::new(Some(1), false, Duration::from_secs(10), None);
        t.on_tick(&tick(0, rps(1.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        let u = t.on_tick(&tick(5, rps(2.0), Outcome::Unchanged, Split::ALL_PRIMARY));
        assert_eq!(
            condition(&u.status, READY).last_transition_time,
            time(ts(0))
        );
        let e = RouterError::new("not_found", "VirtualService default/w not found");
        let u = t.start_error(&e, ts(9));
        assert_eq!(
            condition(&u.status, READY).last_transition_time,
            time(ts(9))
        );
        assert_eq!(u.status.mode, Some(StatusMode::Unknown));
        assert_eq!(u.events[0].reason, "RouteUnreadable");
    }

    #[test]
    fn paused_and_invalid() {
        let mut t = StatusTracker::new(Some(2), false, Duration::from_secs(10), None);
        let u = t.paused(ts(0));
        assert_eq!(u.status.mode, Some(StatusMode::Paused));
        assert_eq!(condition(&u.status, READY).reason, "Paused");
        let mut t = StatusTracker::new(Some(2), false, Duration::from_secs(10), None);
        let u = t.invalid("invalid_spec", "spec.policy.step: must be 1..=100", ts(0));
        assert_eq!(condition(&u.status, DEGRADED).reason, "InvalidSpec");
        assert_eq!(u.events[0].severity, Severity::Warning);
    }

    #[test]
    fn long_messages_are_cut_on_char_boundaries() {
        let s = truncate("é".repeat(1000), 1024);
        assert!(s.len() <= 1024 && s.ends_with("..."));
    }
}
