//! Control-quality figures of a simulation, for comparing policies on the same trace.

use serde::Serialize;

use super::{SimRun, Trace};

/// How well a policy handled a trace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Quality {
    /// Seconds from the load first exceeding `high` to the first traffic on burst
    /// (`None`: the load never exceeded `high`, or the policy never moved).
    pub reaction_s: Option<f64>,
    /// Seconds from the load's final drop below `low` to all traffic back on the primary
    /// (`None`: the load does not end below `low`, or traffic never came back).
    pub back_s: Option<f64>,
    /// Number of weight changes.
    pub changes: u32,
    /// Seconds with the primary's share above capacity.
    pub overload_s: Option<f64>,
    /// Share of all requests sent to burst (cost proxy).
    pub burst_share: f64,
    /// Seconds with the primary's share above the capacity in effect (from endpoints when
    /// known).
    pub seconds_primary_over_capacity: Option<f64>,
    /// Seconds with traffic on a burst side that is unhealthy by the trace.
    pub seconds_on_unhealthy_burst: f64,
    /// Number of changes by the rule (signal) that made them.
    pub changes_by_rule: std::collections::BTreeMap<&'static str, u32>,
    /// Seconds with the burst side's share above its capacity (with a burst-side model).
    pub seconds_burst_over_capacity: Option<f64>,
    /// Requests beyond the capacity of the side they were sent to.
    pub requests_without_capacity: Option<f64>,
}

/// Computes [`Quality`] for `run` over `trace`, with the load thresholds `high` and `low`.
pub fn quality(run: &SimRun, trace: &Trace, high: f64, low: f64) -> Quality {
    let t_up = trace.points().iter().find(|p| p.rps > high).map(|p| p.t);
    let reaction_s = t_up.and_then(|up| {
        run.timeline
            .iter()
            .find(|p| p.burst_weight > 0)
            .map(|p| (p.t - up).max(0.0))
    });
    // The final drop: the start of the last stretch of points below `low` that lasts to the end.
    let pts = trace.points();
    let t_down = match pts.last() {
        Some(last) if last.rps < low => pts
            .iter()
            .rposition(|p| p.rps >= low)
            .and_then(|i| pts.get(i + 1))
            .map(|p| p.t),
        _ => None,
    };
    let back_s = t_down.and_then(|down| {
        let bursting_at_drop = run
            .timeline
            .iter()
            .rev()
            .find(|p| p.t <= down)
            .is_some_and(|p| p.burst_weight > 0);
        if !bursting_at_drop {
            return None;
        }
        run.timeline
            .iter()
            .find(|p| p.t >= down && p.burst_weight == 0)
            .map(|p| p.t - down)
    });
    Quality {
        reaction_s,
        back_s,
        changes: run.summary.changes,
        overload_s: run.summary.overload_s,
        burst_share: run.summary.burst_share,
        seconds_primary_over_capacity: run.summary.seconds_primary_over_capacity,
        seconds_on_unhealthy_burst: run.summary.seconds_on_unhealthy_burst,
        changes_by_rule: run.summary.changes_by_rule.clone(),
        seconds_burst_over_capacity: run.summary.seconds_burst_over_capacity,
        requests_without_capacity: run.summary.requests_without_capacity,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyFile;
    use crate::sim::simulate;

    #[test]
    fn seed_on_step() {
        let trace = Trace::builtin("step", 0).unwrap();
        let run = simulate(&PolicyFile::default(), &trace, Some(15.0)).unwrap();
        let q = quality(&run, &trace, 15.0, 10.0);
        assert_eq!(q.reaction_s, Some(10.0));
        assert_eq!(q.back_s, Some(10.0));
        assert_eq!(q.changes, 2);
        // Primary overloaded from the step until the switch.
        assert_eq!(q.overload_s, Some(10.0));
    }

    #[test]
    fn no_crossing_means_no_reaction() {
        let trace = Trace::from_csv("flat", "0,5\n100,5\n").unwrap();
        let run = simulate(&PolicyFile::default(), &trace, None).unwrap();
        let q = quality(&run, &trace, 15.0, 10.0);
        assert_eq!((q.reaction_s, q.back_s, q.changes), (None, None, 0));
    }
}
