//! Single-policy mode on HAProxy, without Kubernetes: `burstd run --haproxy-runtime-api ...`.
//!
//! The target is two servers of one HAProxy backend ([`burst_haproxy::HaproxyRouter`], or
//! [`burst_haproxy::MultiInstanceRouter`] for several instances) and the source is that
//! backend's request rate from the same runtime API ([`burst_haproxy::HaproxySource`]).
//! The policy comes from the config file's `policy` section (a BurstPolicy document or a
//! bare spec, as in single-policy mode) and the policy flags. No Kubernetes client is made:
//! no Lease (run one burstd per backend), no status, no Events; `/metrics`, `/healthz` and
//! `/readyz` are served as in the other modes.
//!
//! ```text
//! burstd run --haproxy-runtime-api unix:/run/haproxy/admin.sock --haproxy-backend app \
//!            --haproxy-primary-server onprem --haproxy-burst-server cloud --high 15 --low 10
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use burst_core::{Controller, ControllerConfig, TickObserver, TickReport, TrafficRouter};
use burst_haproxy::{
    HaproxyRouter, HaproxySource, HaproxyTarget, MultiInstanceRouter, RuntimeAddr, RuntimeClient,
};
use serde_json::Value;

use crate::Error;
use crate::api::PolicySettings;
use crate::metrics::Metrics;
use crate::server::{Readiness, Server};
use crate::single::{Overrides, apply_policy, parse_config};

/// Where HAProxy is and which servers to move traffic between (the `--haproxy-*` flags).
#[derive(Debug, Clone, PartialEq)]
pub struct HaproxySettings {
    /// Runtime API addresses, one per HAProxy instance.
    pub runtime_apis: Vec<RuntimeAddr>,
    /// The backend holding both servers.
    pub backend: String,
    /// The server receiving the primary share.
    pub primary_server: String,
    /// The server receiving the burst share.
    pub burst_server: String,
    /// Deadline of each runtime API exchange.
    pub timeout: Duration,
}

/// One policy on HAProxy, ready to run.
#[derive(Debug, Clone)]
pub struct HaproxyPolicy {
    /// A name for logs and metrics (the file's `metadata.name`, else the backend).
    pub name: String,
    /// The policy and loop settings.
    pub settings: PolicySettings,
    /// Decide and log, never change weights.
    pub dry_run: bool,
    /// HAProxy.
    pub haproxy: HaproxySettings,
}

/// Loads the policy from `file` (if any) and the flags. A `source` or `target` in the file
/// is an error: in this mode both come from the `--haproxy-*` flags.
pub fn load(
    file: Option<&Path>,
    o: &Overrides,
    haproxy: HaproxySettings,
) -> Result<HaproxyPolicy, Error> {
    let mut name = None;
    let mut settings = PolicySettings::default();
    let mut dry_run = false;
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadConfig {
            path: PathBuf::from(path),
            source,
        })?;
        let (doc, value) = parse_config(path, &text)?;
        let spec = match &doc {
            Some(p) => {
                name.clone_from(&p.metadata.name);
                value.get("spec").cloned().unwrap_or(Value::Null)
            }
            None => value,
        };
        for key in ["source", "target"] {
            if spec.get(key).is_some() {
                return Err(Error::ParseConfig {
                    path: path.to_owned(),
                    message: format!(
                        "`{key}` is set, but with --haproxy-runtime-api the source and the target are the HAProxy backend; remove `{key}` from the file"
                    ),
                });
            }
        }
        if let Some(p) = spec.get("policy") {
            settings = PolicySettings::from_value(p)?;
        }
        dry_run = spec.get("dryRun").and_then(Value::as_bool).unwrap_or(false);
    }
    apply_policy(&mut settings, o);
    if let Some(d) = o.dry_run {
        dry_run = d;
    }
    settings.validate()?;
    if settings.policy.prewarm.is_some() {
        return Err(Error::invalid(
            "spec.policy.prewarm",
            "pre-warming scales a Kubernetes Deployment, which burstd does not reach with --haproxy-runtime-api; remove `prewarm` from the file's policy and the --prewarm-* flags",
        ));
    }
    // Checks the names now, so a typo fails at start-up.
    HaproxyTarget::new(
        &haproxy.backend,
        &haproxy.primary_server,
        &haproxy.burst_server,
    )?;
    if haproxy.runtime_apis.is_empty() {
        return Err(Error::invalid(
            "--haproxy-runtime-api",
            "give at least one runtime API address (unix:PATH or tcp:HOST:PORT)",
        ));
    }
    Ok(HaproxyPolicy {
        name: name.unwrap_or_else(|| haproxy.backend.clone()),
        settings,
        dry_run,
        haproxy,
    })
}

/// Records every tick in the metrics (the HAProxy mode has no status object).
struct MetricsObserver {
    key: String,
    metrics: Arc<Metrics>,
}

impl TickObserver for MetricsObserver {
    fn on_tick(&mut self, report: &TickReport) {
        self.metrics.record_tick(&self.key, report);
        tracing::debug!(policy = %self.key, signal = ?report.signal, desired = %report.decision.desired, reason = %report.decision.reason.detail, outcome = ?report.outcome, "tick");
    }

    fn on_start_error(&mut self, error: &burst_core::RouterError) {
        self.metrics.router_error(&self.key, error.kind());
    }
}

/// Runs `policy` until `shutdown` completes, serving `/metrics`, `/healthz` and `/readyz`
/// on `listen`.
pub async fn run(
    listen: SocketAddr,
    base: ControllerConfig,
    policy: HaproxyPolicy,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let h = &policy.haproxy;
    let target = HaproxyTarget::new(&h.backend, &h.primary_server, &h.burst_server)?;
    let clients = h
        .runtime_apis
        .iter()
        .map(|a| RuntimeClient::new(a.clone()).with_timeout(h.timeout))
        .collect::<Result<Vec<_>, _>>()?;
    let router: Box<dyn TrafficRouter> = match clients.as_slice() {
        [one] => Box::new(HaproxyRouter::new(one.clone(), target)),
        _ => Box::new(MultiInstanceRouter::over(clients.clone(), &target)?),
    };
    let spec = &policy.settings.policy;
    let (window, long_window) = burst_prom::windows(spec.window_up(), spec.window_down());
    let source = HaproxySource::new(clients, &h.backend, window, long_window)?;
    let config = ControllerConfig {
        dry_run: policy.dry_run,
        ..policy.settings.run.controller_config(base)
    };

    let metrics = Arc::new(Metrics::new());
    let readiness = Arc::new(Readiness::new());
    readiness.set_leader_known();
    readiness.set_synced();
    let server = Server::bind(listen, metrics.clone(), readiness).await?;
    tracing::info!(addr = %server.local_addr()?, "serving /metrics, /healthz, /readyz");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(server.serve(async {
        let _ = stop_rx.await;
    }));

    let key = policy.name.clone();
    tracing::info!(policy = %key, source = %burst_core::MetricSource::describe(&source), router = %router.describe(), tick = ?config.tick, dry_run = config.dry_run, "control loop starting");
    metrics.set_leader(true);
    metrics.set_policies(1);
    let controller =
        Controller::new(source, spec.build()?, router, config).with_observer(MetricsObserver {
            key: key.clone(),
            metrics: metrics.clone(),
        });
    let stopped = controller.run(shutdown).await;
    tracing::info!(policy = %key, ticks = stopped.ticks, belief = ?stopped.belief, "control loop stopped");
    metrics.set_policies(0);
    let _ = stop_tx.send(());
    let _ = server.await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::io::Write;

    fn settings() -> HaproxySettings {
        HaproxySettings {
            runtime_apis: vec!["unix:/run/haproxy/admin.sock".parse().unwrap()],
            backend: "app".into(),
            primary_server: "onprem".into(),
            burst_server: "cloud".into(),
            timeout: Duration::from_secs(2),
        }
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn policy_comes_from_the_file_and_flags_override_it() {
        let f = file("policy:\n  high: 200\n  low: 50\n  burstWeight: 30\ndryRun: true\n");
        let o = Overrides {
            low: Some(80.0),
            ..Overrides::default()
        };
        let p = load(Some(f.path()), &o, settings()).unwrap();
        assert_eq!(p.name, "app");
        assert_eq!(p.settings.policy.high, 200.0);
        assert_eq!(p.settings.policy.low, 80.0);
        assert_eq!(p.settings.policy.burst_weight, 30);
        assert!(p.dry_run);
        // No file: the defaults and the flags.
        let p = load(None, &Overrides::default(), settings()).unwrap();
        assert_eq!(
            (p.settings.policy.high, p.settings.policy.low),
            (15.0, 10.0)
        );
    }

    #[test]
    fn a_file_with_a_target_or_bad_values_is_refused() {
        let f = file("target:\n  name: worker\n");
        let e = load(Some(f.path()), &Overrides::default(), settings()).unwrap_err();
        assert!(e.to_string().contains("remove `target`"), "{e}");
        let o = Overrides {
            high: Some(1.0),
            low: Some(2.0),
            ..Overrides::default()
        };
        let e = load(None, &o, settings()).unwrap_err();
        assert!(e.to_string().contains("spec.policy"), "{e}");
        let bad = HaproxySettings {
            burst_server: "onprem".into(),
            ..settings()
        };
        assert_eq!(
            load(None, &Overrides::default(), bad).unwrap_err().kind(),
            "haproxy"
        );
        let o = Overrides {
            prewarm_lead: Some("60s".parse().unwrap()),
            ..Overrides::default()
        };
        let e = load(None, &o, settings()).unwrap_err().to_string();
        assert!(
            e.contains("spec.policy.prewarm") && e.contains("--haproxy-runtime-api"),
            "{e}"
        );
    }
}
