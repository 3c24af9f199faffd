//! burstd's operator and the watches while the demo runs: the proxy follows the
//! VirtualService, the BurstPolicy status tells when burstd decided, the burst worker
//! follows its Deployment's pre-warm; at the end, the VirtualService's history and the
//! PATCH → proxy latency of each change.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::bail;
use burst_core::{Split, TrafficRouter};
use burst_hashr::mesh::Mesh;
use burst_istio::VsTarget;
use burst_operator::api::BurstPolicy;
use futures::StreamExt as _;
use kube::api::{Api, DynamicObject, ListParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use serde::Serialize;

use crate::report::Change;

use super::super::PrewarmNotes;
use super::super::scenario::Side;
use super::super::sides::{PrewarmNote, Sides};
use super::TickLog;
use super::seed::vs_resource;
use super::{REQUEST_LIMIT, Running, VsState, lock};

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LatencyStats {
    /// How many values.
    pub count: usize,
    /// Smallest.
    pub min: f64,
    /// Median (mean of the middle two for an even count).
    pub median: f64,
    /// Largest.
    pub max: f64,
}

impl LatencyStats {
    /// `None` for no values.
    pub fn of(values: &[f64]) -> Option<LatencyStats> {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(LatencyStats {
            count: n,
            min: v[0],
            median,
            max: v[n - 1],
        })
    }
}

/// One version of the VirtualService's weights, as the proxy's watch saw it.
#[derive(Debug, Clone, Serialize)]
pub struct VsVersion {
    /// Seconds since the scenario started (negative: before it, e.g. the seed).
    pub t: f64,
    /// The server's resourceVersion.
    pub resource_version: String,
    /// Primary weight.
    pub primary: u8,
    /// Burst weight.
    pub burst: u8,
}

/// The VirtualService part of the JSON report.
#[derive(Debug, Clone, Serialize)]
pub struct VsReport {
    /// The API server.
    pub server: String,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Every weight pair the watch delivered, in order.
    pub history: Vec<VsVersion>,
    /// The weights read from the server at the end (`None`: the read failed).
    pub final_weights: Option<Weights>,
    /// VirtualService PATCHes burstd sent.
    pub patches: usize,
}

/// Two weights.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct Weights {
    /// Primary.
    pub primary: u8,
    /// Burst.
    pub burst: u8,
}

impl From<Split> for Weights {
    fn from(s: Split) -> Self {
        Weights {
            primary: s.primary().get(),
            burst: s.burst().get(),
        }
    }
}

/// The proxy's side of istiod: every weight pair the VirtualService holds goes to the mesh.
pub(super) async fn follow_virtual_service(
    api: Api<DynamicObject>,
    name: String,
    target: VsTarget,
    mesh: Mesh,
    state: Arc<Mutex<VsState>>,
    log: Arc<Mutex<TickLog>>,
    started: Instant,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let router = mesh.router();
    while let Some(event) = stream.next().await {
        let object = match event {
            Ok(Event::Apply(o) | Event::InitApply(o)) => o,
            Ok(Event::InitDone) => {
                lock(&state).synced = true;
                continue;
            }
            Ok(Event::Init) => continue,
            Ok(Event::Delete(_)) => {
                tracing::warn!(vs = %name, "the VirtualService was deleted; the proxy keeps its last split");
                continue;
            }
            Err(e) => {
                tracing::warn!(vs = %name, error = %e, "watching the VirtualService failed; retrying");
                continue;
            }
        };
        let rv = object.metadata.resource_version.clone().unwrap_or_default();
        let split = match serde_json::to_value(&object)
            .map_err(|e| e.to_string())
            .and_then(|v| target.read(&v).map_err(|e| e.to_string()))
        {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(vs = %name, resource_version = %rv, error = %e, "the VirtualService has no weights the proxy can follow; keeping the split");
                continue;
            }
        };
        let from = mesh.split();
        if from != split
            && let Err(e) = router.apply(split).await
        {
            tracing::warn!(vs = %name, error = %e, "the proxy could not apply the split");
            continue;
        }
        let applied = Instant::now();
        {
            let mut s = lock(&state);
            if s.history.last().is_none_or(|(_, _, last)| *last != split) {
                s.history.push((applied, rv.clone(), split));
            }
        }
        if from != split {
            lock(&log).changes.push(Change {
                t: applied.saturating_duration_since(started).as_secs_f64(),
                from: from.to_string(),
                to: split.to_string(),
                burst_weight: split.burst().get(),
                reason: format!("VirtualService {name} resourceVersion {rv}"),
                resource_version: Some(rv),
                patch_sent_to_proxy_ms: None,
                patch_answered_to_proxy_ms: None,
                patch_round_trip_ms: None,
                applied_at: Some(applied),
            });
        }
    }
}

/// burstd's view, from the BurstPolicy's status: the measured rate and the last rule.
pub(super) async fn follow_policy_status(
    api: Api<BurstPolicy>,
    name: String,
    state: Arc<Mutex<VsState>>,
    log: Arc<Mutex<TickLog>>,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = stream.next().await {
        let policy = match event {
            Ok(Event::Apply(p) | Event::InitApply(p)) => p,
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(policy = %name, error = %e, "watching the BurstPolicy failed; retrying");
                continue;
            }
        };
        let Some(status) = policy.status else {
            continue;
        };
        if let Some(d) = &status.last_decision {
            lock(&state).decided = true;
            let mut l = lock(&log);
            l.rule = Some(d.rule.clone());
            l.reason = Some(d.detail.clone());
            l.observed = status.observed_rps;
            if let Some(p) = &status.prewarm {
                l.outlook = p.outlook.clone();
            }
        }
    }
}

/// The burst worker's side of the burst cluster: while burstd's pre-warm holds the burst
/// Deployment scaled up (its `burst.dev/prewarm-original` annotation is there), the burst
/// worker's cold start is over, as the Deployment's new pods would be warm. Each prepare
/// and release is noted, at seconds since `started`.
pub(super) async fn follow_burst_deployment(
    api: Api<k8s_openapi::api::apps::v1::Deployment>,
    name: String,
    sides: Arc<Sides>,
    notes: PrewarmNotes,
    started: Instant,
) {
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut stream = watcher::watcher(api, config).default_backoff().boxed();
    let mut prepared = false;
    // What the first list finds is where the run starts (burstd restores a pre-warm a
    // previous run left), not a pre-warm of this one.
    let mut listed = false;
    while let Some(event) = stream.next().await {
        let d = match event {
            Ok(Event::Apply(d) | Event::InitApply(d)) => d,
            Ok(Event::InitDone) => {
                listed = true;
                continue;
            }
            Ok(_) => continue,
            Err(e) => {
                tracing::warn!(deployment = %name, error = %e, "watching the burst Deployment failed; retrying");
                continue;
            }
        };
        let now = prewarmed(&d);
        if now == prepared {
            continue;
        }
        prepared = now;
        if !listed {
            continue;
        }
        let replicas = d.spec.replicas.unwrap_or(1);
        let note = if now {
            let warmed = sides.warm(Side::Burst, std::time::Instant::now());
            let reason = format!("burstd scaled Deployment {name} to {replicas} replicas");
            PrewarmNote::now(started, "prepare", Some(reason), warmed)
        } else {
            PrewarmNote::now(started, "release", None, None)
        };
        tracing::info!(deployment = %name, action = note.action, replicas, "burst Deployment pre-warm followed");
        lock(&notes).push(note);
    }
}

/// Whether burstd's pre-warm holds `d` scaled up (its record annotation is there).
fn prewarmed(d: &k8s_openapi::api::apps::v1::Deployment) -> bool {
    d.metadata
        .annotations
        .as_ref()
        .is_some_and(|a| a.contains_key(burst_scale::ANNOTATION))
}

impl Running {
    /// A one-line description of the router for the banner and the summary.
    pub fn describe(&self) -> String {
        format!(
            "burstd operator (in-process, as {}) patches VirtualService {}/{} on {}; the mesh proxy follows it by watch",
            self.user, self.namespace, self.vs_name, self.server
        )
    }

    pub(super) async fn wait_ready(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let (synced, decided) = {
                let s = lock(&self.state);
                (s.synced, s.decided)
            };
            if synced && decided {
                return Ok(());
            }
            if self.operator.is_finished() {
                bail!(
                    "burstd's operator stopped during start-up (run with RUST_LOG=info for its log)"
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "within 30 s {}; run with RUST_LOG=info to see burstd's log",
                    if synced {
                        format!(
                            "burstd did not report a decision on BurstPolicy {}/{}",
                            self.namespace, self.policy_name
                        )
                    } else {
                        format!(
                            "the mesh proxy could not list VirtualService {}/{}",
                            self.namespace, self.vs_name
                        )
                    }
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Fills each change's latencies and reason (from burstd's `SplitChanged` Events), and
    /// reads the VirtualService once more. `clock` is the scenario's start.
    pub async fn report(&self, changes: &mut [Change], clock: Instant) -> VsReport {
        for c in changes.iter_mut() {
            let (Some(rv), Some(applied)) = (&c.resource_version, c.applied_at) else {
                continue;
            };
            if let Some(p) = self.patches.find(rv) {
                c.patch_sent_to_proxy_ms = Some(signed_ms(applied, p.sent));
                c.patch_answered_to_proxy_ms = Some(signed_ms(applied, p.returned));
                c.patch_round_trip_ms = Some(signed_ms(p.returned, p.sent));
            }
        }
        self.explain(changes).await;
        let history = lock(&self.state)
            .history
            .iter()
            .map(|(at, rv, split)| VsVersion {
                t: signed_ms(*at, clock) / 1000.0,
                resource_version: rv.clone(),
                primary: split.primary().get(),
                burst: split.burst().get(),
            })
            .collect();
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &self.namespace, &vs_resource());
        let final_weights = match tokio::time::timeout(REQUEST_LIMIT, api.get(&self.vs_name)).await
        {
            Ok(Ok(o)) => serde_json::to_value(&o)
                .ok()
                .and_then(|v| self.vs_target.read(&v).ok())
                .map(Weights::from),
            _ => None,
        };
        VsReport {
            server: self.server.clone(),
            namespace: self.namespace.clone(),
            name: self.vs_name.clone(),
            history,
            final_weights,
            patches: self.patches.len(),
        }
    }

    /// Replaces each change's reason with the note of burstd's `SplitChanged` Event for it,
    /// and each prepare's with the reason of burstd's `Prewarm` Event.
    pub(super) async fn explain(&self, changes: &mut [Change]) {
        let api: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.client.clone(), &self.namespace);
        let Ok(Ok(list)) =
            tokio::time::timeout(REQUEST_LIMIT, api.list(&ListParams::default().limit(500))).await
        else {
            return;
        };
        let since = k8s_openapi::jiff::Timestamp::try_from(self.since).ok();
        let of = |reason: &str| {
            let mut notes: Vec<(k8s_openapi::jiff::Timestamp, String)> = list
                .items
                .iter()
                .filter(|e| e.reason.as_deref() == Some(reason))
                .filter(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref())
                        == Some(self.policy_name.as_str())
                })
                .filter_map(|e| Some((e.event_time.clone()?.0, e.note.clone()?)))
                .filter(|(t, _)| since.is_none_or(|s| *t >= s))
                .collect();
            notes.sort_by_key(|a| a.0);
            notes
        };
        if let Some(prewarm) = &self.prewarm_notes {
            let reasons = of("Prewarm")
                .into_iter()
                .filter_map(|(_, note)| prewarm_reason(&note));
            let mut ours = lock(prewarm);
            for (n, why) in ours
                .iter_mut()
                .filter(|n| n.action == "prepare")
                .zip(reasons)
            {
                n.reason = Some(why);
            }
        }
        let notes = of("SplitChanged");
        let mut used = vec![false; notes.len()];
        for c in changes.iter_mut() {
            let head = format!("{} -> {} (", c.from, c.to);
            if let Some(i) = (0..notes.len()).find(|i| !used[*i] && notes[*i].1.starts_with(&head))
            {
                used[i] = true;
                let note = &notes[i].1;
                c.reason = note[head.len()..].trim_end_matches(')').to_owned();
            }
        }
    }

    /// Stops the watches and waits (bounded) for the operator, which stops on the demo's
    /// cancellation token.
    pub async fn shutdown(self) {
        for w in &self.watches {
            w.abort();
        }
        match tokio::time::timeout(Duration::from_secs(8), self.operator).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "burstd's operator stopped with an error"),
            Err(_) => tracing::warn!("burstd's operator did not stop within 8 s"),
            _ => {}
        }
    }
}

/// The reason in the note of burstd's `Prewarm` Event (`prewarm (WHY); forecast: ...`).
fn prewarm_reason(note: &str) -> Option<String> {
    let rest = note.strip_prefix("prewarm (")?;
    let (why, _) = rest.rsplit_once("); forecast: ")?;
    Some(why.to_owned())
}

/// `a - b` in milliseconds, negative when `a` is earlier.
pub(super) fn signed_ms(a: Instant, b: Instant) -> f64 {
    match a.checked_duration_since(b) {
        Some(d) => d.as_secs_f64() * 1000.0,
        None => -(b.duration_since(a).as_secs_f64() * 1000.0),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn latency_stats_and_signed_differences() {
        assert_eq!(LatencyStats::of(&[]), None);
        let s = LatencyStats::of(&[3.0, 1.0, 2.0, f64::NAN]).unwrap();
        assert_eq!((s.count, s.min, s.median, s.max), (3, 1.0, 2.0, 3.0));
        assert_eq!(LatencyStats::of(&[1.0, 4.0]).unwrap().median, 2.5);
        let a = Instant::now();
        let b = a + Duration::from_millis(5);
        assert!((signed_ms(b, a) - 5.0).abs() < 1e-9);
        assert!((signed_ms(a, b) + 5.0).abs() < 1e-9);
    }

    #[test]
    fn the_prewarm_events_note_gives_the_reason() {
        assert_eq!(
            prewarm_reason(
                "prewarm (forecast: crossing in 20s: 6.000 now, 30.000 at lead); forecast: crossing in 19s: 7.000 now, 31.000 at lead"
            )
            .as_deref(),
            Some("forecast: crossing in 20s: 6.000 now, 30.000 at lead")
        );
        assert_eq!(
            prewarm_reason("prewarm (traffic is on burst); forecast: no forecast (x)").as_deref(),
            Some("traffic is on burst")
        );
        assert_eq!(
            prewarm_reason("release (not needed for 5s); forecast: x"),
            None
        );
    }
}
