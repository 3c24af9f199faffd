//! Router fault family: a real `burst_core::Controller` drives a `VirtualServiceRouter`
//! (real `kube::Client`) against a real kube-apiserver and etcd (`burst_testkit::kube`),
//! through the project's fault proxy (`ApiProxy`), which is made to answer 409 storms, 500s
//! and 503s, slow answers past the timeout and dropped connections, while "someone else"
//! (a real writer on the real server) deletes and recreates the VirtualService, edits its
//! weights (drift), makes it ambiguous or invalid, or edits its routes between the router's
//! read and its write. Two more cases restart the API server and etcd under a controller
//! that keeps ticking (a private control plane each, run in the first round).
//!
//! Every case checks: retries are bounded (PATCHes per tick <= `max_attempts`), the
//! controller's backoff grows and is capped, every write the router made is a JSON patch of
//! exactly two weights (integers 0..=100 summing to 100) plus a `test` guard, the stored
//! object passes the Istio CRD schema and Istio's weight rules after every write (the real
//! server enforces the CRD schema as well: an edit that breaks it is refused), the router
//! never creates or deletes the object, errors carry the expected kind, and after recovery
//! the controller's belief equals the split stored on the server.
//!
//! The cases run in rounds for a bounded time (default 20 s,
//! `BURST_FAULTS_BUDGET_SECS` to change); the summary line is `router: N passed, N failed`.
//! Needs the control plane binaries (`scripts/control-plane.sh build`); without them the
//! test fails with that command.

#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use burst_core::policy::{AnyPolicy, PolicySpec};
use burst_core::testing::{MemorySource, Scripted};
use burst_core::{
    Controller, ControllerConfig, Observation, Outcome, Rate, Rates, Reading, Split, TickReport,
    Timestamp, TrafficRouter,
};
use burst_faults::tally::{CaseStats, Family};
use burst_istio::{RouterOptions, VirtualServiceRouter, VsTarget};
use burst_testkit::kube::{ApiProxy, ControlPlane, Fault, virtual_services};
use burst_testkit::schema;
use futures::StreamExt;
use http::Method;
use kube::api::{Api, DeleteParams, DynamicObject, PostParams};
use serde_json::{Value, json};

const NAME: &str = "worker-virtual-service";
const MAX_ATTEMPTS: u32 = 4;
const BACKOFF_MAX: Duration = Duration::from_millis(80);
/// The router's per-request timeout. Real requests on a loaded two-core machine take tens of
/// milliseconds; a second leaves room for that and still makes the slow cases quick.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// A delay the proxy adds to make a request outlast `REQUEST_TIMEOUT`.
const PAST_THE_TIMEOUT: Duration = Duration::from_millis(2_000);
const ISTIO_CRDS: &str = "schemas/istio/crd-all.gen.yaml";
/// Field manager of the "someone else" edits.
const OTHER_WRITER: &str = "someone-else";

type Ctl = Controller<Arc<MemorySource>, AnyPolicy, VirtualServiceRouter>;

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn vs_api(client: kube::Client, namespace: &str) -> Api<DynamicObject> {
    Api::namespaced_with(client, namespace, &virtual_services())
}

fn seed_vs(namespace: &str, primary: u8, burst: u8) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": NAME, "namespace": namespace, "labels": {"app": "worker"}},
        "spec": {"hosts": ["worker-service"], "http": [{
            "retries": {"attempts": 3},
            "route": [
                {"destination": {"host": "worker-service", "subset": "primary"}, "weight": primary},
                {"destination": {"host": "worker-service", "subset": "burst"}, "weight": burst},
            ]}]}
    })
}

/// Creates the seed VirtualService on the real server.
async fn create_seed(api: &Api<DynamicObject>, namespace: &str) -> Result<(), String> {
    let obj: DynamicObject =
        serde_json::from_value(seed_vs(namespace, 100, 0)).map_err(|e| e.to_string())?;
    api.create(
        &PostParams {
            field_manager: Some(OTHER_WRITER.into()),
            ..PostParams::default()
        },
        &obj,
    )
    .await
    .map_err(|e| format!("the server refused the seed VirtualService: {e}"))?;
    Ok(())
}

/// The stored object as JSON, `None` when it does not exist.
async fn stored(api: &Api<DynamicObject>) -> Result<Option<Value>, String> {
    let obj = api
        .get_opt(NAME)
        .await
        .map_err(|e| format!("cannot read the VirtualService: {e}"))?;
    obj.map(|o| serde_json::to_value(o).map_err(|e| e.to_string()))
        .transpose()
}

/// Another writer reads the object, edits it and writes it back (a full update with the
/// resourceVersion read), as a GitOps tool or a person with kubectl would.
async fn edit(api: &Api<DynamicObject>, change: impl Fn(&mut Value)) -> Result<(), kube::Error> {
    let obj = api.get(NAME).await?;
    let mut value = serde_json::to_value(&obj).map_err(kube::Error::SerdeError)?;
    change(&mut value);
    let edited: DynamicObject = serde_json::from_value(value).map_err(kube::Error::SerdeError)?;
    api.replace(
        NAME,
        &PostParams {
            field_manager: Some(OTHER_WRITER.into()),
            ..PostParams::default()
        },
        &edited,
    )
    .await?;
    Ok(())
}

fn load(rps: f64) -> Scripted {
    Scripted::Reading(Reading::Value(Observation::new(
        Rates::single(Rate::try_new("rps", rps).unwrap()),
        Timestamp::ZERO,
    )))
}

/// Load that makes the seed policy burst (above 15 rps) or come back (below 10 rps).
const HIGH: f64 = 30.0;
const LOW: f64 = 5.0;

fn router_options() -> RouterOptions {
    RouterOptions {
        max_attempts: MAX_ATTEMPTS,
        initial_backoff: Duration::from_millis(2),
        max_backoff: Duration::from_millis(10),
        request_timeout: REQUEST_TIMEOUT,
        ..RouterOptions::default()
    }
}

/// A namespace of its own on `cp` with the seed VirtualService, and the admin's API for it
/// (straight to the server).
async fn seeded_namespace(
    cp: &ControlPlane,
    prefix: &str,
) -> Result<(String, Api<DynamicObject>), String> {
    let namespace = cp.create_namespace(prefix).await?;
    let admin = vs_api(cp.admin_client().await?, &namespace);
    create_seed(&admin, &namespace).await?;
    Ok((namespace, admin))
}

/// A controller under high load whose router writes the seed VirtualService in `namespace`
/// with `client`; and the load source it reads.
fn controller(
    client: kube::Client,
    namespace: &str,
    config: ControllerConfig,
) -> Result<(Arc<MemorySource>, Ctl), String> {
    let router = VirtualServiceRouter::new(
        client,
        namespace,
        NAME,
        VsTarget::default(),
        router_options(),
    )
    .map_err(|e| e.to_string())?;
    let source = Arc::new(MemorySource::new());
    source.set(load(HIGH));
    let ctl = Controller::new(
        source.clone(),
        PolicySpec::default().build().unwrap(),
        router,
        config,
    );
    Ok((source, ctl))
}

fn controller_config(tick: Duration, backoff_max: Duration) -> ControllerConfig {
    ControllerConfig {
        tick,
        source_timeout: Duration::from_secs(1),
        router_timeout: Duration::from_secs(5),
        backoff_initial: Duration::from_millis(10),
        backoff_max,
        dry_run: false,
    }
}

struct Rig {
    proxy: ApiProxy,
    /// The VirtualService API as the admin, straight to the server (not through the proxy):
    /// "someone else", and the test's own reads.
    admin: Api<DynamicObject>,
    namespace: String,
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
    /// A namespace of its own on the shared control plane, the seed VirtualService in it,
    /// and a controller whose router talks to the server through a fresh fault proxy.
    async fn new() -> Result<Rig, String> {
        let cp = ControlPlane::shared()?;
        let (namespace, admin) = seeded_namespace(cp, "router-faults").await?;
        let proxy = ApiProxy::start(cp).await?;
        let (source, ctl) = controller(
            proxy.client(cp.admin_token()).await?,
            &namespace,
            controller_config(Duration::from_millis(50), BACKOFF_MAX),
        )?;
        Ok(Rig {
            proxy,
            admin,
            namespace,
            source,
            ctl,
            stats: CaseStats::default(),
            seen_writes: 0,
            seen_fired: 0,
            ticks: Vec::new(),
        })
    }

    async fn stored(&self) -> Result<Option<Value>, String> {
        stored(&self.admin).await
    }

    /// The split stored on the server, read with the same transform the router uses.
    async fn reality(&self) -> Result<Split, String> {
        let obj = self.stored().await?.ok_or("the VirtualService is gone")?;
        VsTarget::default().read(&obj).map_err(|e| e.to_string())
    }

    /// "Someone else" edits the object; the server must accept the edit.
    async fn edit(&self, change: impl Fn(&mut Value)) -> Result<(), String> {
        edit(&self.admin, change)
            .await
            .map_err(|e| format!("the other writer's edit failed: {e}"))
    }

    /// One tick, then the per-tick checks: bounded PATCHes, every new write valid.
    async fn tick(&mut self) -> Result<TickReport, String> {
        let report = self
            .ctl
            .tick()
            .await
            .map_err(|e| format!("tick failed: {e}"))?;
        let fired = self.proxy.fired();
        let new_fired = &fired[self.seen_fired..];
        let writes = self.proxy.writes();
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
        self.check_new_writes().await?;
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
    async fn check_new_writes(&mut self) -> Result<(), String> {
        let writes = self.proxy.writes();
        for w in &writes[self.seen_writes..] {
            ensure!(
                w.method == Method::PATCH,
                "the router sent {} {}: it may only patch weights",
                w.method,
                w.path
            );
            ensure!(
                w.path.ends_with(&format!(
                    "/namespaces/{}/virtualservices/{NAME}",
                    self.namespace
                )),
                "the router wrote to {}, not its VirtualService",
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
            ensure!(!w.dry_run, "a dry-run write outside dry-run mode");
            check_patch(&w.body)?;
            if w.status == 200 {
                self.stats.written += 1;
            }
            self.stats.checked += 1;
        }
        if writes.len() > self.seen_writes
            && let Some(obj) = self.stored().await?
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
        let reality = self.reality().await?;
        ensure!(
            reality == Split::ALL_BURST,
            "belief burst, server {reality}"
        );
        Ok(())
    }

    /// The end of every case: writes valid, object valid, belief equals reality.
    async fn finish(mut self) -> Result<CaseStats, String> {
        self.check_new_writes().await?;
        let obj = self
            .stored()
            .await?
            .ok_or("the VirtualService is gone at the end")?;
        schema::check(&obj).map_err(|e| format!("final object invalid: {e:?}"))?;
        let reality = self.reality().await?;
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
            self.proxy
                .writes()
                .iter()
                .all(|w| w.method == Method::PATCH),
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
        Outcome::Failed { error, .. } => Some(error.kind()),
        _ => None,
    }
}

fn read_kind(r: &TickReport) -> Option<&'static str> {
    r.read_error.as_ref().map(burst_core::RouterError::kind)
}

fn is_applied(r: &TickReport, to: Split) -> bool {
    matches!(r.outcome, Outcome::Applied { to: t, .. } if t == to)
}

// ---- cases ----

async fn conflict_storm_within_retries() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.proxy.inject(
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
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    let storm = MAX_ATTEMPTS as usize * 2 + 1;
    rig.proxy
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
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.proxy
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
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.proxy
        .inject(Fault::status(500).on(Method::GET).times(2));
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
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.proxy
        .inject(Fault::status(503).on(Method::GET).times(2));
    rig.proxy
        .inject(Fault::status(503).on(Method::PATCH).times(2));
    let r = rig.tick().await?;
    ensure!(
        r.read_error.is_none() && is_applied(&r, Split::ALL_BURST),
        "two 503s should be retried by the client, got {:?} {:?}",
        r.read_error,
        r.outcome
    );
    // A storm that outlasts the request timeout: the read gives up as `timeout`.
    rig.proxy
        .inject(Fault::status(503).on(Method::GET).times(1000));
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some("timeout"),
        "a 503 storm should end as `timeout`, got {:?}",
        r.read_error
    );
    rig.proxy.clear_faults();
    rig.finish().await
}

async fn slow_patch_past_the_timeout() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.proxy
        .inject(Fault::delay(PAST_THE_TIMEOUT).on(Method::PATCH));
    let r = rig.tick().await?;
    ensure!(
        failed_kind(&r) == Some("timeout"),
        "a PATCH slower than the request timeout should fail as `timeout`, got {:?}",
        r.outcome
    );
    ensure!(r.belief == Split::ALL_PRIMARY, "belief moved on a timeout");
    // The proxy may still carry out the write after the client gave up: the next read
    // must be believed, not called drift, and nothing written twice.
    tokio::time::sleep(PAST_THE_TIMEOUT + Duration::from_millis(500)).await;
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
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.proxy
        .inject(Fault::delay(PAST_THE_TIMEOUT).on(Method::GET));
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
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    rig.proxy
        .inject(Fault::drop_connection().on(Method::PATCH).times(2));
    rig.proxy.inject(Fault::drop_connection().on(Method::GET));
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
    let mut rig = Rig::new().await?;
    rig.reach_burst().await?;
    rig.admin
        .delete(NAME, &DeleteParams::default())
        .await
        .map_err(|e| format!("cannot delete the VirtualService: {e}"))?;
    ensure!(
        rig.stored().await?.is_none(),
        "the VirtualService is still there after delete (a finalizer?)"
    );
    rig.stats.inject("deleted", 1);
    let r = rig.tick().await?;
    ensure!(
        read_kind(&r) == Some("not_found") && r.outcome == Outcome::Unchanged,
        "deleted object: want read error `not_found` and no action, got {:?} {:?}",
        r.read_error,
        r.outcome
    );
    // The report carries the router's typed error, not only its label.
    ensure!(
        matches!(
            r.read_error
                .as_ref()
                .and_then(|e| e.downcast_ref::<burst_istio::Error>()),
            Some(burst_istio::Error::NotFound { .. })
        ),
        "the read error should downcast to burst_istio::Error::NotFound: {:?}",
        r.read_error
    );
    // Load drops while the object is gone: the apply fails, and nothing is created.
    rig.source.set(load(LOW));
    let r = rig.tick().await?;
    ensure!(
        failed_kind(&r) == Some("not_found"),
        "apply to a deleted object should fail as `not_found`, got {:?}",
        r.outcome
    );
    ensure!(
        rig.stored().await?.is_none(),
        "the router recreated the object"
    );
    // GitOps recreates it from Git (all primary); load is high again.
    create_seed(&rig.admin, &rig.namespace).await?;
    rig.stats.inject("recreated", 1);
    rig.source.set(load(HIGH));
    rig.tick_until(40, "burst after recreation", |r| {
        r.belief == Split::ALL_BURST && r.actual == Some(Split::ALL_PRIMARY)
    })
    .await?;
    rig.finish().await
}

async fn drift_by_another_writer() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await?;
    rig.reach_burst().await?;
    rig.edit(|o| {
        o["spec"]["http"][0]["route"][0]["weight"] = json!(70);
        o["spec"]["http"][0]["route"][1]["weight"] = json!(30);
    })
    .await?;
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

/// Breaks the object with `edit` (the server must accept the edit) and checks reads fail
/// with `kind`; then checks what an apply does (`on_apply`), repairs the object with
/// `repair` and checks recovery.
async fn broken_object(
    mut rig: Rig,
    edit: impl Fn(&mut Value),
    repair: impl Fn(&mut Value),
    kind: &'static str,
    on_apply: OnApply,
) -> Result<CaseStats, String> {
    let writes_before = rig.proxy.writes().len();
    rig.edit(edit).await?;
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
            rig.proxy.writes().len() == writes_before,
            "something was written to a broken object"
        );
        rig.edit(repair).await?;
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
    let mut rig = Rig::new().await?;
    rig.reach_burst().await?;
    broken_object(
        rig,
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

/// A weight that is not an integer cannot even be stored (the server enforces the CRD
/// schema: 422 naming the field); a weight the schema allows (an int32) but Istio does not
/// (negative) is stored, read as `invalid_weight`, and overwritten by the next apply.
async fn edited_to_an_invalid_weight() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await?;
    rig.reach_burst().await?;
    let refused = edit(&rig.admin, |o| {
        o["spec"]["http"][0]["route"][1]["weight"] = json!("lots");
    })
    .await;
    match refused {
        Err(kube::Error::Api(s)) if s.code == 422 => {
            ensure!(
                s.message.contains("spec.http[0].route[1].weight"),
                "the server's refusal does not name the field: {}",
                s.message
            );
        }
        other => {
            return Err(format!(
                "the server should refuse a string weight with 422, got {other:?}"
            ));
        }
    }
    rig.stats.inject("refused_by_the_server_schema", 1);
    ensure!(
        rig.reality().await? == Split::ALL_BURST,
        "a refused edit changed the object"
    );
    broken_object(
        rig,
        |o| o["spec"]["http"][0]["route"][1]["weight"] = json!(-5),
        |o| o["spec"]["http"][0]["route"][1]["weight"] = json!(100),
        "invalid_weight",
        OnApply::Overwrites,
    )
    .await
}

async fn edited_to_add_a_weighted_destination() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await?;
    rig.reach_burst().await?;
    broken_object(
        rig,
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

/// A real writer changes the routes on the server just before the router's PATCH arrives:
/// the server refuses the guarded patch (its `test` op fails) and the router re-reads.
async fn routes_edited_between_read_and_write() -> Result<CaseStats, String> {
    let mut rig = Rig::new().await?;
    rig.ctl.start().await.map_err(|e| e.to_string())?;
    let ns = rig.namespace.clone();
    let hook_result: Arc<Mutex<Option<Result<(), String>>>> = Arc::new(Mutex::new(None));
    let hook_saw = hook_result.clone();
    rig.proxy.inject(
        Fault::before(move |client| {
            let api = vs_api(client, &ns);
            let saw = hook_saw.clone();
            async move {
                let r = edit(&api, |o| o["spec"]["http"][0]["timeout"] = json!("7s"))
                    .await
                    .map_err(|e| e.to_string());
                *saw.lock().unwrap() = Some(r);
            }
        })
        .on(Method::PATCH),
    );
    let r = rig.tick().await?;
    let hook = hook_result.lock().unwrap().clone();
    ensure!(
        hook == Some(Ok(())),
        "the other writer's edit did not land: {hook:?}"
    );
    ensure!(
        is_applied(&r, Split::ALL_BURST),
        "a concurrent edit should be retried and applied, got {:?}",
        r.outcome
    );
    let statuses: Vec<u16> = rig.proxy.writes().iter().map(|w| w.status).collect();
    ensure!(
        statuses == [422, 200],
        "want the guarded patch refused once (422) then applied, got {statuses:?}"
    );
    let obj = rig.stored().await?.ok_or("the VirtualService is gone")?;
    ensure!(
        obj["spec"]["http"][0]["timeout"] == "7s",
        "the other writer's edit was lost"
    );
    rig.finish().await
}

// ---- restarts of the real control plane under a running controller ----

/// Which server a restart case stops.
#[derive(Debug, Clone, Copy)]
enum Restart {
    ApiServer,
    Etcd,
}

/// Every version of the VirtualService a watch saw (straight to the server, as the admin).
fn watch_versions(
    api: Api<DynamicObject>,
) -> (Arc<Mutex<Vec<Value>>>, tokio::task::JoinHandle<()>) {
    use kube::runtime::watcher::{self, Event};
    let seen: Arc<Mutex<Vec<Value>>> = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    let task = tokio::spawn(async move {
        let config = watcher::Config::default().fields(&format!("metadata.name={NAME}"));
        let mut stream = std::pin::pin!(watcher::watcher(api, config));
        while let Some(ev) = stream.next().await {
            if let Ok(Event::Apply(o) | Event::InitApply(o)) = ev
                && let Ok(v) = serde_json::to_value(o)
            {
                out.lock().unwrap().push(v);
            }
        }
    });
    (seen, task)
}

/// Polls `check` every 50 ms until it returns `Some`, at most `limit`.
async fn wait_for<T>(
    limit: Duration,
    what: &str,
    mut check: impl AsyncFnMut() -> Option<T>,
) -> Result<T, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if Instant::now() >= deadline {
            return Err(format!("{what}: not within {limit:?}"));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The spec without the two weights, to compare versions of the object.
fn without_weights(obj: &Value) -> Value {
    let mut spec = obj["spec"].clone();
    if let Some(route) = spec
        .pointer_mut("/http/0/route")
        .and_then(Value::as_array_mut)
    {
        for d in route {
            if let Some(d) = d.as_object_mut() {
                d.remove("weight");
            }
        }
    }
    spec
}

/// A controller runs (`Controller::run`, ticking every 100 ms) against a private control
/// plane. Once it has burst, the API server or etcd is stopped and load drops: the
/// controller must keep ticking and report errors while the server is down (no panic, no
/// exit); once the server is back it must converge to the wanted split. Every version of the
/// object a watch saw passes the CRD schema and Istio's rules and differs from the seed only
/// in the two weights (no half-applied write), and the router wrote nothing but its patch.
async fn restart_mid_run(which: Restart) -> Result<CaseStats, String> {
    let cp = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start)
            .await
            .map_err(|e| e.to_string())??,
    );
    let result = restart_mid_run_on(&cp, which).await;
    // Dropping kills both servers; do the blocking part off the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || drop(cp)).await;
    result
}

async fn restart_mid_run_on(cp: &Arc<ControlPlane>, which: Restart) -> Result<CaseStats, String> {
    let mut stats = CaseStats::default();
    cp.install_crd_files(&[ISTIO_CRDS]).await?;
    let (namespace, admin) = seeded_namespace(cp, "restart").await?;
    let seed_spec = without_weights(&seed_vs(&namespace, 100, 0));
    let (versions, watch_task) = watch_versions(admin.clone());

    // The controller talks to the server directly (no proxy): while the server is down it
    // meets what a real client meets (refused connections, etcd timeouts).
    let (source, ctl) = controller(
        cp.admin_client().await?,
        &namespace,
        controller_config(Duration::from_millis(100), Duration::from_millis(500)),
    )?;
    let reports: Arc<Mutex<Vec<TickReport>>> = Arc::new(Mutex::new(Vec::new()));
    let sink = reports.clone();
    let ctl = ctl.with_observer(move |r: &TickReport| sink.lock().unwrap().push(r.clone()));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(ctl.run(async move {
        let _ = stop_rx.await;
    }));

    let last = |reports: &Arc<Mutex<Vec<TickReport>>>| reports.lock().unwrap().last().cloned();
    wait_for(
        Duration::from_secs(30),
        "burst before the restart",
        async || {
            let r = last(&reports)?;
            (r.belief == Split::ALL_BURST).then_some(())
        },
    )
    .await?;
    ensure!(
        VsTarget::default()
            .read(&stored(&admin).await?.ok_or("VirtualService gone")?)
            .map_err(|e| e.to_string())?
            == Split::ALL_BURST,
        "the controller believes burst, the server does not hold it"
    );

    // Stop the server; load drops while it is down.
    let down_from = reports.lock().unwrap().len();
    let stopper = cp.clone();
    tokio::task::spawn_blocking(move || match which {
        Restart::ApiServer => stopper.stop_apiserver(),
        Restart::Etcd => stopper.stop_etcd(),
    })
    .await
    .map_err(|e| e.to_string())?;
    stats.inject(
        match which {
            Restart::ApiServer => "apiserver_stopped",
            Restart::Etcd => "etcd_stopped",
        },
        1,
    );
    source.set(load(LOW));
    let failed_while_down = wait_for(
        Duration::from_secs(40),
        "errors reported while the server is down",
        async || {
            let all = reports.lock().unwrap();
            let down = &all[down_from.min(all.len())..];
            let read_errors = down.iter().filter(|r| r.read_error.is_some()).count();
            let failed: Vec<&'static str> = down.iter().filter_map(failed_kind).collect();
            (read_errors >= 3 && !failed.is_empty()).then(|| {
                (
                    down.iter().filter_map(read_kind).collect::<Vec<_>>(),
                    failed,
                )
            })
        },
    )
    .await?;
    ensure!(
        !run.is_finished(),
        "the controller stopped while the server was down"
    );
    for k in failed_while_down.0.iter().chain(&failed_while_down.1) {
        ensure!(
            ["connection", "timeout", "server"].contains(k),
            "unexpected error kind `{k}` while the server is down: {failed_while_down:?}"
        );
    }
    // No tick claimed success while the server was down.
    {
        let all = reports.lock().unwrap();
        let down = &all[down_from.min(all.len())..];
        ensure!(
            down.iter()
                .all(|r| r.belief == Split::ALL_BURST && !is_applied(r, Split::ALL_PRIMARY)),
            "a tick claimed a change while the server was down"
        );
    }

    let starter = cp.clone();
    tokio::task::spawn_blocking(move || match which {
        Restart::ApiServer => starter.start_apiserver(),
        Restart::Etcd => starter.start_etcd(),
    })
    .await
    .map_err(|e| e.to_string())??;
    let up_from = reports.lock().unwrap().len();
    wait_for(
        Duration::from_secs(60),
        "the wanted split after the restart",
        async || {
            let r = last(&reports)?;
            if r.belief != Split::ALL_PRIMARY || r.read_error.is_some() {
                return None;
            }
            let obj = stored(&admin).await.ok()??;
            (VsTarget::default().read(&obj).ok()? == Split::ALL_PRIMARY).then_some(())
        },
    )
    .await?;
    ensure!(
        !run.is_finished(),
        "the controller stopped after the restart"
    );
    let after = reports.lock().unwrap().len() - up_from;
    let mut down_kinds = std::collections::BTreeMap::<String, u32>::new();
    for r in &reports.lock().unwrap()[down_from..up_from] {
        if let Some(k) = read_kind(r) {
            *down_kinds.entry(format!("read {k}")).or_default() += 1;
        }
        if let Some(k) = failed_kind(r) {
            *down_kinds.entry(format!("apply {k}")).or_default() += 1;
        }
    }

    let _ = stop_tx.send(());
    let stopped = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .map_err(|_| "the controller did not stop within 10 s".to_string())?
        .map_err(|e| format!("the controller task failed: {e}"))?;
    ensure!(
        stopped.belief == Some(Split::ALL_PRIMARY),
        "the controller stopped believing {:?}",
        stopped.belief
    );

    // Every version of the object: valid, and only the weights ever changed.
    let final_obj = stored(&admin)
        .await?
        .ok_or("VirtualService gone at the end")?;
    let mut all = versions.lock().unwrap().clone();
    all.push(final_obj);
    watch_task.abort();
    for v in &all {
        schema::check(v).map_err(|e| format!("a stored version is invalid: {e:?}"))?;
        ensure!(
            without_weights(v) == seed_spec,
            "a stored version changed more than the weights: {}",
            v["spec"]
        );
        VsTarget::default()
            .read(v)
            .map_err(|e| format!("a stored version holds no valid split: {e}"))?;
    }
    let splits: Vec<Split> = all
        .iter()
        .filter_map(|v| VsTarget::default().read(v).ok())
        .collect();
    ensure!(
        splits.contains(&Split::ALL_BURST) && splits.last() == Some(&Split::ALL_PRIMARY),
        "the watch did not see burst then primary: {splits:?}"
    );
    // The real stderr, not the captured one: the figures go into docs/reliability.md.
    let _ = writeln!(
        std::io::stderr(),
        "{which:?} restart: {} tick(s) while it was down, errors reported {down_kinds:?}; the wanted split {} tick(s) after the restart call returned; \
         {} stored version(s) watched, all valid, only weights changed",
        up_from - down_from,
        after,
        all.len()
    );
    Ok(stats)
}

async fn apiserver_restart_mid_run() -> Result<CaseStats, String> {
    restart_mid_run(Restart::ApiServer).await
}

async fn etcd_restart_mid_run() -> Result<CaseStats, String> {
    restart_mid_run(Restart::Etcd).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn router_faults() {
    let cp = ControlPlane::shared().expect("the real control plane");
    cp.install_crd_files(&[ISTIO_CRDS])
        .await
        .expect("the Istio CRDs install");
    let budget = burst_faults::budget(Duration::from_secs(20));
    let started = Instant::now();
    let mut family = Family::new("router");
    let mut round = 0;
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
        if round == 0 {
            // Each starts a control plane of its own: once per run.
            case!(apiserver_restart_mid_run);
            case!(etcd_restart_mid_run);
        }
        family.end_round();
        round += 1;
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

#[test]
fn without_weights_ignores_only_the_weights() {
    let a = seed_vs("ns", 100, 0);
    let b = seed_vs("ns", 30, 70);
    assert_eq!(without_weights(&a), without_weights(&b));
    let mut c = a.clone();
    c["spec"]["http"][0]["route"][1]["destination"]["subset"] = json!("other");
    assert_ne!(without_weights(&a), without_weights(&c));
}
