//! Router fault family: a real `burst_core::Controller` drives a `VirtualServiceRouter`
//! (real `kube::Client`) against the in-process fake API server, which is made to answer
//! 409 storms, 500s, slow answers past the timeout and dropped connections, while "someone
//! else" deletes and recreates the VirtualService, edits its weights (drift) or makes it
//! ambiguous or invalid.
//!
//! Every case checks: retries are bounded (PATCHes per tick <= `max_attempts`), the
//! controller's backoff grows and is capped, every write the router made is a JSON patch of
//! exactly two weights (integers 0..=100 summing to 100) plus a `test` guard, the stored
//! object passes the Istio CRD schema and Istio's weight rules after every write, the
//! router never creates or deletes the object, errors carry the expected kind, and after
//! recovery the controller's belief equals the split stored on the server.
//!
//! The cases run in rounds for a bounded time (default 20 s,
//! `BURST_FAULTS_BUDGET_SECS` to change); the summary line is `router: N passed, N failed`.

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use burst_core::policy::{AnyPolicy, PolicySpec};
use burst_core::{
    Controller, ControllerConfig, MemorySource, Observation, Outcome, Rate, Rates, Reading,
    Scripted, Split, TickReport, Timestamp, TrafficRouter,
};
use burst_fake_kube::{FakeKube, Fault, ObjectKey};
use burst_faults::tally::{CaseStats, Family};
use burst_istio::{RouterOptions, VirtualServiceRouter, VsTarget};
use burst_testkit::schema;
use http::Method;
use serde_json::{Value, json};

const NAME: &str = "worker-virtual-service";
const MAX_ATTEMPTS: u32 = 4;
const BACKOFF_MAX: Duration = Duration::from_millis(80);

type Ctl = Controller<Arc<MemorySource>, AnyPolicy, VirtualServiceRouter>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn key() -> ObjectKey {
    ObjectKey {
        group: "networking.istio.io".into(),
        plural: "virtualservices".into(),
        namespace: Some("default".into()),
        name: NAME.into(),
    }
}

fn seed_vs(primary: u8, burst: u8) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": NAME, "namespace": "default", "labels": {"app": "worker"}},
        "spec": {"hosts": ["worker-service"], "http": [{
            "retries": {"attempts": 3},
            "route": [
                {"destination": {"host": "worker-service", "subset": "primary"}, "weight": primary},
                {"destination": {"host": "worker-service", "subset": "burst"}, "weight": burst},
            ]}]}
    })
}

fn load(rps: f64) -> Scripted {
    Scripted::Reading(Reading::Value(Observation {
        rates: Rates::single(Rate::try_new("rps", rps).unwrap()),
        sampled_at: Timestamp::ZERO,
    }))
}

/// Load that makes the seed policy burst (above 15 rps) or come back (below 10 rps).
const HIGH: f64 = 30.0;
const LOW: f64 = 5.0;

struct Rig {
    fake: FakeKube,
    source: Arc<MemorySource>,
    ctl: Ctl,
    stats: CaseStats,
    /// Recorded writes already checked.
    seen_writes: usize,
    /// Fired faults already counted.
    seen_fired: usize,
    ticks: Vec<TickReport>,
}

impl Rig {
    async fn new() -> Rig {
        let fake = FakeKube::start().await.unwrap();
        fake.insert("virtualservices", seed_vs(100, 0)).unwrap();
        let router = VirtualServiceRouter::new(
            fake.client().unwrap(),
            "default",
            NAME,
            VsTarget::default(),
            RouterOptions {
                max_attempts: MAX_ATTEMPTS,
                initial_backoff: Duration::from_millis(2),
                max_backoff: Duration::from_millis(10),
                request_timeout: Duration::from_millis(300),
                ..RouterOptions::default()
            },
        )
        .unwrap();
        let source = Arc::new(MemorySource::new());
        source.set(load(HIGH));
        let ctl = Controller::new(
            source.clone(),
            PolicySpec::default().build().unwrap(),
            router,
            ControllerConfig {
                tick: Duration::from_millis(50),
                source_timeout: Duration::from_secs(1),
                router_timeout: Duration::from_secs(5),
                backoff_initial: Duration::from_millis(10),
                backoff_max: BACKOFF_MAX,
                dry_run: false,
            },
        );
        Rig {
            fake,
            source,
            ctl,
            stats: CaseStats::default(),
            seen_writes: 0,
            seen_fired: 0,
            ticks: Vec::new(),
        }
    }

    fn stored(&self) -> Option<Value> {
        self.fake.object(
            "networking.istio.io",
            "virtualservices",
            Some("default"),
            NAME,
        )
    }

    /// The split stored on the server, read with the same transform the router uses.
    fn reality(&self) -> Result<Split, String> {
        let obj = self.stored().ok_or("the VirtualService is gone")?;
        VsTarget::default().read(&obj).map_err(|e| e.to_string())
    }

    /// One tick, then the per-tick checks: bounded PATCHes, every new write valid.
    async fn tick(&mut self) -> Result<TickReport, String> {
        let report = self
            .ctl
            .tick()
            .await
            .map_err(|e| format!("tick failed: {e}"))?;
        let fired = self.fake.fired();
        let new_fired = &fired[self.seen_fired..];
        let writes = self.fake.writes();
        let new_writes = &writes[self.seen_writes..];
        let patches = new_fired
            .iter()
            .filter(|f| f.method == Method::PATCH)
            .count()
            + new_writes
                .iter()
                .filter(|w| w.method == Method::PATCH)
                .count();
        ensure!(
            patches <= MAX_ATTEMPTS as usize,
            "{patches} PATCH requests in one tick; the router allows {MAX_ATTEMPTS}"
        );
        for f in new_fired {
            self.stats.inject(&format!("{} {}", f.method, f.action), 1);
        }
        self.seen_fired = fired.len();
        self.check_new_writes()?;
        if let Outcome::Failed { retry_in, .. } = &report.outcome {
            ensure!(
                *retry_in <= BACKOFF_MAX,
                "retry_in {retry_in:?} above the cap {BACKOFF_MAX:?}"
            );
        }
        self.ticks.push(report.clone());
        Ok(report)
    }

    /// Checks every write recorded since the last check, and the stored object.
    fn check_new_writes(&mut self) -> Result<(), String> {
        let writes = self.fake.writes();
        for w in &writes[self.seen_writes..] {
            ensure!(
                w.method == Method::PATCH,
                "the router sent {} {}: it may only patch weights",
                w.method,
                w.path
            );
            ensure!(
                w.field_manager.as_deref() == Some("burst"),
                "write without field manager `burst`: {w:?}"
            );
            ensure!(
                w.content_type == "application/json-patch+json",
                "write is not a JSON patch: {}",
                w.content_type
            );
            check_patch(&w.body)?;
            if w.status == 200 {
                self.stats.written += 1;
            }
            self.stats.checked += 1;
        }
        if writes.len() > self.seen_writes
            && let Some(obj) = self.stored()
        {
            schema::check(&obj)
                .map_err(|e| format!("stored object invalid after a write: {e:?}"))?;
        }
        self.seen_writes = writes.len();
        Ok(())
    }

    /// Ticks (sleeping past the backoff) until `done` holds, at most `max` ticks.
    async fn tick_until(
        &mut self,
        max: usize,
        what: &str,
        done: impl Fn(&TickReport) -> bool,
    ) -> Result<TickReport, String> {
        for _ in 0..max {
            let r = self.tick().await?;
            if done(&r) {
                return Ok(r);
            }
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
        Err(format!(
            "{what}: not within {max} ticks; last outcomes: {:?}",
            self.ticks
                .iter()
                .rev()
                .take(4)
                .map(|t| (&t.outcome, &t.read_error))
                .collect::<Vec<_>>()
        ))
    }

    /// Ticks until the burst split is applied (the starting point of most cases).
    async fn reach_burst(&mut self) -> Result<(), String> {
        self.source.set(load(HIGH));
        self.tick_until(5, "reach burst", |r| r.belief == Split::ALL_BURST)
            .await?;
        ensure!(
            self.reality()? == Split::ALL_BURST,
            "belief burst, server {:?}",
            self.reality()
        );
        Ok(())
    }

    /// The end of every case: writes valid, object valid, belief equals reality.
    async fn finish(mut self) -> Result<CaseStats, String> {
        self.check_new_writes()?;
        let obj = self
            .stored()
            .ok_or("the VirtualService is gone at the end")?;
        schema::check(&obj).map_err(|e| format!("final object invalid: {e:?}"))?;
        let reality = self.reality()?;
        ensure!(
            self.ctl.belief() == Some(reality),
            "belief {:?} but the server holds {reality}",
            self.ctl.belief()
        );
        let read = self
            .ctl
            .router()
            .current()
            .await
            .map_err(|e| e.to_string())?;
        ensure!(
            read == reality,
            "router reads {read}, server holds {reality}"
        );
        ensure!(
            self.fake.writes().iter().all(|w| w.method == Method::PATCH),
            "a write other than PATCH"
        );
        Ok(self.stats)
    }
}

/// A write of the router: `test` guards plus exactly two weight ops summing to 100.
fn check_patch(body: &Value) -> Result<(), String> {
    let ops = body.as_array().ok_or("patch body is not an array")?;
    let mut weights = Vec::new();
    for op in ops {
        let kind = op["op"].as_str().unwrap_or("");
        let path = op["path"].as_str().unwrap_or("");
        match kind {
            "test" => {}
            "add" | "replace" => {
                let parts: Vec<&str> = path.split('/').collect();
                let weight_path = parts.len() == 7
                    && parts[0].is_empty()
                    && parts[1] == "spec"
                    && parts[2] == "http"
                    && parts[3].parse::<usize>().is_ok()
                    && parts[4] == "route"
                    && parts[5].parse::<usize>().is_ok()
                    && parts[6] == "weight";
                ensure!(weight_path, "patch op touches `{path}`, not a weight");
                let w = op["value"]
                    .as_u64()
                    .filter(|w| *w <= 100)
                    .ok_or_else(|| format!("weight {} is not an integer 0..=100", op["value"]))?;
                weights.push(w);
            }
            other => return Err(format!("patch op `{other}` on `{path}`")),
        }
    }
    ensure!(
        weights.len() == 2 && weights.iter().sum::<u64>() == 100,
        "weights {weights:?} are not two values summing to 100"
    );
    Ok(())
}

fn failed_kind(r: &TickReport) -> Option<&'static str> {
    match &r.outcome {
        Outcome::Failed { kind, .. } => Some(kind),
        _ => None,
    }
}

fn read_kind(r: &TickReport) -> Option<&'static str> {
    r.read_error.as_ref().map(|(k, _)| *k)
}

fn is_applied(r: &TickReport, to: Split) -> bool {
    matches!(r.outcome, Outcome::Applied { to: t, .. } if t == to)
}

// ---- cases ----

async fn conflict_storm_within_retries() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake.inject(
        Fault::status(409)
            .on(Method::PATCH)
            .times(MAX_ATTEMPTS as usize - 1),
    );
    let r = rig.tick().await?;
    ensure!(
        is_applied(&r, Split::ALL_BURST),
        "3 conflicts within 4 attempts should still apply, got {:?}",
        r.outcome
    );
    rig.finish().await
}

async fn conflict_storm_beyond_retries() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    let storm = MAX_ATTEMPTS as usize * 2 + 1;
    rig.fake
        .inject(Fault::status(409).on(Method::PATCH).times(storm));
    let r = rig.tick().await?;
    ensure!(
        failed_kind(&r) == Some("conflict"),
        "a 409 storm should fail as `conflict`, got {:?}",
        r.outcome
    );
    ensure!(
        r.belief == Split::ALL_PRIMARY,
        "belief moved on a failed apply"
    );
    rig.tick_until(40, "apply after the storm", |r| {
        is_applied(r, Split::ALL_BURST)
    })
    .await?;
    let retries: Vec<Duration> = rig
        .ticks
        .iter()
        .filter_map(|t| match t.outcome {
            Outcome::Failed { retry_in, .. } => Some(retry_in),
            _ => None,
        })
        .collect();
    ensure!(
        retries.len() == 2 && retries[1] > retries[0],
        "backoff should grow over the 2 failed applies ({storm} conflicts, {MAX_ATTEMPTS} attempts each): {retries:?}"
    );
    rig.finish().await
}

async fn server_errors_on_patch() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake
        .inject(Fault::status(500).on(Method::PATCH).times(3));
    let r = rig.tick().await?;
    ensure!(
        failed_kind(&r) == Some("server"),
        "500 should fail as `server`, got {:?}",
        r.outcome
    );
    rig.tick_until(40, "apply after 500s", |r| is_applied(r, Split::ALL_BURST))
        .await?;
    rig.finish().await
}

async fn server_errors_on_read() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake.inject(Fault::status(500).on(Method::GET).times(2));
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some("server"),
        "500 on read should be `server`, got {:?}",
        r.read_error
    );
    rig.tick_until(40, "apply after read errors", |r| {
        is_applied(r, Split::ALL_BURST)
    })
    .await?;
    rig.finish().await
}

/// kube's client retries 429/503/504 itself (exponential backoff from 5 ms); the router's
/// request timeout bounds those retries.
async fn unavailable_503_retried_within_the_timeout() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake.inject(Fault::status(503).on(Method::GET).times(2));
    rig.fake
        .inject(Fault::status(503).on(Method::PATCH).times(2));
    let r = rig.tick().await?;
    ensure!(
        r.read_error.is_none() && is_applied(&r, Split::ALL_BURST),
        "two 503s should be retried by the client, got {:?} {:?}",
        r.read_error,
        r.outcome
    );
    // A storm that outlasts the request timeout: the read gives up as `timeout`.
    rig.fake
        .inject(Fault::status(503).on(Method::GET).times(1000));
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some("timeout"),
        "a 503 storm should end as `timeout`, got {:?}",
        r.read_error
    );
    rig.fake.clear_faults();
    rig.finish().await
}

async fn slow_patch_past_the_timeout() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake
        .inject(Fault::delay(Duration::from_millis(700)).on(Method::PATCH));
    let r = rig.tick().await?;
    ensure!(
        failed_kind(&r) == Some("timeout"),
        "a PATCH slower than the request timeout should fail as `timeout`, got {:?}",
        r.outcome
    );
    ensure!(r.belief == Split::ALL_PRIMARY, "belief moved on a timeout");
    // The server may still carry out the write after the client gave up: the next read
    // must be believed, not called drift, and nothing written twice.
    tokio::time::sleep(Duration::from_millis(900)).await;
    let r = rig
        .tick_until(40, "settle after the timeout", |r| {
            r.belief == Split::ALL_BURST
        })
        .await?;
    ensure!(r.drift.is_none(), "a late write was taken for drift");
    let landed = if matches!(r.outcome, Outcome::Applied { .. }) {
        "late_write_lost"
    } else {
        "late_write_landed"
    };
    rig.stats.inject(landed, 1);
    rig.finish().await
}

async fn slow_read_past_the_timeout() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake
        .inject(Fault::delay(Duration::from_millis(700)).on(Method::GET));
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some("timeout"),
        "a slow read should be `timeout`, got {:?}",
        r.read_error
    );
    rig.tick_until(40, "apply after a slow read", |r| {
        r.belief == Split::ALL_BURST
    })
    .await?;
    rig.finish().await
}

async fn dropped_connections() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake
        .inject(Fault::drop_connection().on(Method::PATCH).times(2));
    rig.fake.inject(Fault::drop_connection().on(Method::GET));
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some("connection"),
        "a dropped read should be `connection`, got {:?}",
        r.read_error
    );
    ensure!(
        failed_kind(&r) == Some("connection"),
        "a dropped PATCH should fail as `connection`, got {:?}",
        r.outcome
    );
    rig.tick_until(40, "apply after dropped connections", |r| {
        is_applied(r, Split::ALL_BURST)
    })
    .await?;
    rig.finish().await
}

async fn deleted_and_recreated() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.reach_burst().await?;
    rig.fake.with_store(|s| s.remove(&key()));
    rig.stats.inject("deleted", 1);
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some("not_found") && r.outcome == Outcome::Unchanged,
        "deleted object: want read error `not_found` and no action, got {:?} {:?}",
        r.read_error,
        r.outcome
    );
    // Load drops while the object is gone: the apply fails, and nothing is created.
    rig.source.set(load(LOW));
    let r = rig.tick().await?;
    ensure!(
        failed_kind(&r) == Some("not_found"),
        "apply to a deleted object should fail as `not_found`, got {:?}",
        r.outcome
    );
    ensure!(rig.stored().is_none(), "the router recreated the object");
    // GitOps recreates it from Git (all primary); load is high again.
    rig.fake
        .insert("virtualservices", seed_vs(100, 0))
        .map_err(|e| e.to_string())?;
    rig.stats.inject("recreated", 1);
    rig.source.set(load(HIGH));
    rig.tick_until(40, "burst after recreation", |r| {
        r.belief == Split::ALL_BURST && r.actual == Some(Split::ALL_PRIMARY)
    })
    .await?;
    rig.finish().await
}

async fn drift_by_another_writer() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.reach_burst().await?;
    rig.fake.with_store(|s| {
        s.modify(&key(), |o| {
            o["spec"]["http"][0]["route"][0]["weight"] = json!(70);
            o["spec"]["http"][0]["route"][1]["weight"] = json!(30);
        })
    });
    rig.stats.inject("drift", 1);
    let r = rig.tick().await?;
    ensure!(
        r.drift == Some(Split::try_new(70, 30).unwrap()),
        "drift not reported: {:?}",
        r.drift
    );
    ensure!(
        is_applied(&r, Split::ALL_BURST),
        "drift not repaired: {:?}",
        r.outcome
    );
    rig.finish().await
}

/// What an apply does to a broken object.
#[derive(PartialEq)]
enum OnApply {
    /// Refuses, writing nothing (the router cannot tell which weights are ours).
    Refuses,
    /// Writes the two weights it owns, which makes the object valid again.
    Overwrites,
}

/// Breaks the object with `edit` and checks reads fail with `kind`; then checks what an
/// apply does (`on_apply`), repairs the object with `repair` and checks recovery.
async fn broken_object(
    edit: impl Fn(&mut Value) + Send + Sync + 'static,
    repair: impl Fn(&mut Value) + Send + Sync + 'static,
    kind: &'static str,
    on_apply: OnApply,
) -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.reach_burst().await?;
    let writes_before = rig.fake.writes().len();
    rig.fake.with_store(|s| s.modify(&key(), edit));
    rig.stats.inject(kind, 1);
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some(kind) && r.outcome == Outcome::Unchanged,
        "broken object: want read error `{kind}` and no action, got {:?} {:?}",
        r.read_error,
        r.outcome
    );
    rig.source.set(load(LOW));
    let r = rig.tick().await?;
    if on_apply == OnApply::Refuses {
        ensure!(
            failed_kind(&r) == Some(kind),
            "apply to a broken object should fail as `{kind}`, got {:?}",
            r.outcome
        );
        ensure!(
            rig.fake.writes().len() == writes_before,
            "something was written to a broken object"
        );
        rig.fake.with_store(|s| s.modify(&key(), repair));
    } else {
        ensure!(
            is_applied(&r, Split::ALL_PRIMARY),
            "apply should overwrite the broken weights, got {:?}",
            r.outcome
        );
        // The tick's write check validated the stored object; nothing left to repair.
    }
    rig.tick_until(40, "recover after repair", |r| {
        r.belief == Split::ALL_PRIMARY && r.read_error.is_none()
    })
    .await?;
    rig.finish().await
}

async fn edited_to_be_ambiguous() -> Result<CaseStats, String> {
    broken_object(
        |o| {
            let copy = o["spec"]["http"][0].clone();
            o["spec"]["http"].as_array_mut().unwrap().push(copy);
        },
        |o| {
            o["spec"]["http"].as_array_mut().unwrap().truncate(1);
        },
        "ambiguous_route",
        OnApply::Refuses,
    )
    .await
}

async fn edited_to_an_invalid_weight() -> Result<CaseStats, String> {
    broken_object(
        |o| o["spec"]["http"][0]["route"][1]["weight"] = json!("lots"),
        |o| o["spec"]["http"][0]["route"][1]["weight"] = json!(100),
        "invalid_weight",
        OnApply::Overwrites,
    )
    .await
}

async fn edited_to_add_a_weighted_destination() -> Result<CaseStats, String> {
    broken_object(
        |o| {
            o["spec"]["http"][0]["route"][1]["weight"] = json!(90);
            o["spec"]["http"][0]["route"]
                .as_array_mut()
                .unwrap()
                .push(json!({"destination": {"host": "canary", "subset": "v2"}, "weight": 10}));
        },
        |o| {
            o["spec"]["http"][0]["route"].as_array_mut().unwrap().pop();
            o["spec"]["http"][0]["route"][1]["weight"] = json!(100);
        },
        "extra_weighted_destinations",
        OnApply::Refuses,
    )
    .await
}

async fn routes_edited_between_read_and_write() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.fake.inject(
        Fault::mutate(|store| {
            store.modify(&key(), |o| o["spec"]["http"][0]["timeout"] = json!("7s"));
        })
        .on(Method::PATCH),
    );
    let r = rig.tick().await?;
    ensure!(
        is_applied(&r, Split::ALL_BURST),
        "a concurrent edit should be retried and applied, got {:?}",
        r.outcome
    );
    let statuses: Vec<u16> = rig.fake.writes().iter().map(|w| w.status).collect();
    ensure!(
        statuses == [422, 200],
        "want the guarded patch refused once (422) then applied, got {statuses:?}"
    );
    ensure!(
        rig.stored().unwrap()["spec"]["http"][0]["timeout"] == "7s",
        "the other writer's edit was lost"
    );
    rig.finish().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_faults() {
    let budget = burst_faults::budget(Duration::from_secs(20));
    let started = Instant::now();
    let mut family = Family::new("router");
    loop {
        macro_rules! case {
            ($f:ident) => {
                family.record(stringify!($f), $f().await);
            };
        }
        case!(conflict_storm_within_retries);
        case!(conflict_storm_beyond_retries);
        case!(server_errors_on_patch);
        case!(server_errors_on_read);
        case!(unavailable_503_retried_within_the_timeout);
        case!(slow_patch_past_the_timeout);
        case!(slow_read_past_the_timeout);
        case!(dropped_connections);
        case!(deleted_and_recreated);
        case!(drift_by_another_writer);
        case!(edited_to_be_ambiguous);
        case!(edited_to_an_invalid_weight);
        case!(edited_to_add_a_weighted_destination);
        case!(routes_edited_between_read_and_write);
        family.end_round();
        if started.elapsed() >= budget || family.failed() > 0 {
            break;
        }
    }
    family.report();
    assert_eq!(family.failed(), 0, "{:#?}", family.failures());
    assert!(family.totals().written > 0 && family.totals().checked > 0);
}

#[test]
fn the_write_check_rejects_what_it_must() {
    let ok = json!([{"op": "test", "path": "/spec/http", "value": []},
        {"op": "add", "path": "/spec/http/0/route/0/weight", "value": 30},
        {"op": "add", "path": "/spec/http/0/route/1/weight", "value": 70}]);
    assert!(check_patch(&ok).is_ok());
    for bad in [
        json!([{"op": "add", "path": "/spec/http/0/route/0/weight", "value": 30},
               {"op": "add", "path": "/spec/http/0/route/1/weight", "value": 60}]),
        json!([{"op": "add", "path": "/spec/http/0/route/0/weight", "value": 130},
               {"op": "add", "path": "/spec/http/0/route/1/weight", "value": -30}]),
        json!([{"op": "add", "path": "/spec/hosts/0", "value": "x"}]),
        json!([{"op": "remove", "path": "/spec/http/0"}]),
        json!({"spec": {}}),
    ] {
        assert!(check_patch(&bad).is_err(), "{bad}");
    }
}
