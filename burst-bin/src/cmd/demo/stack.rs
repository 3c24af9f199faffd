//! The local servers of `burst demo` (two workers, the mesh proxy, the frontend and the
//! page) and the controller that moves the proxy's split: in-process, or burstd's operator
//! through a Kubernetes API server ([`super::kube`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use burst_core::controller::{Outcome, Stopped};
use burst_core::policy::{PolicyFile, PolicySpec};
use burst_core::{Controller, ControllerConfig, MetricSource, Split, TickReport, TrafficRouter};
use burst_hashr::frontend::{Frontend, FrontendConfig};
use burst_hashr::mesh::{Mesh, MeshConfig};
use burst_hashr::pubsub::{MemoryPubSub, PubSub, RedisPubSub};
use burst_hashr::worker::{Worker, WorkerConfig};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::haproxy::LocalHaproxy;
use super::kube::{self, Cluster, PodSlice, Running};
use super::pods::LocalPods;
use super::{Args, DataPlane, DataPlaneKind, Demo, Partial, SourceKind, TickLog, lock};
use crate::report::Change;

/// Serves `router` on `addr` until `stop`; returns the URL it listens on and the task.
pub(super) async fn serve_on(
    addr: &str,
    router: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> anyhow::Result<(Url, JoinHandle<Result<(), burst_hashr::Error>>)> {
    let listener = burst_hashr::http::bind(addr).await?;
    let local = listener.local_addr().context("reading the bound address")?;
    let url = Url::parse(&format!("http://{local}/")).context("building the URL")?;
    let task = tokio::spawn(burst_hashr::http::serve(listener, router, stop));
    Ok((url, task))
}

/// A Redis client for `redis_url`, else a fresh in-process bus.
pub(super) fn bus(redis_url: Option<&str>) -> anyhow::Result<Arc<dyn PubSub>> {
    Ok(match redis_url {
        Some(url) => Arc::new(RedisPubSub::new(url)?),
        None => Arc::new(MemoryPubSub::new()),
    })
}

/// Starts the local servers, then the controller (in-process, or burstd with
/// `cluster`); on an error nothing stays running.
pub(super) async fn start(
    args: &Args,
    file: &PolicyFile,
    cluster: Option<Cluster>,
) -> anyhow::Result<Demo> {
    if let Some(c) = &cluster {
        c.prepare().await?;
    }
    let stop = CancellationToken::new();
    let started = Instant::now();
    // One in-process bus shared by all, or one Redis client per component (as separate
    // processes would have).
    let shared: Arc<dyn PubSub> = Arc::new(MemoryPubSub::new());
    let bus_for = |_: &str| -> anyhow::Result<Arc<dyn PubSub>> {
        match &args.redis_url {
            Some(u) => bus(Some(u)),
            None => Ok(shared.clone()),
        }
    };
    let probe = bus_for("probe")?;
    probe.ping().await.with_context(|| {
        "start redis-server, or leave out --redis-url to use the in-process bus".to_string()
    })?;
    let pubsub = probe.describe();

    let mut servers = Vec::new();
    let primary = Worker::new(WorkerConfig::default(), bus_for("primary")?);
    let (primary_url, t) = serve_on(
        "127.0.0.1:0",
        primary.router(),
        stop.clone().cancelled_owned(),
    )
    .await?;
    servers.push(t);
    let burst = Worker::new(WorkerConfig::with_prefix("bursty-"), bus_for("burst")?);
    let (burst_url, t) = serve_on(
        "127.0.0.1:0",
        burst.router(),
        stop.clone().cancelled_owned(),
    )
    .await?;
    servers.push(t);

    let sides = Arc::new(super::sides::Sides::new(
        primary.faults().clone(),
        burst.faults().clone(),
    ));
    let (plane, proxy, metrics) = match args.data_plane {
        DataPlaneKind::Builtin => {
            let mesh = Mesh::new(MeshConfig::new(primary_url.clone(), burst_url.clone()))?;
            let (proxy, t) = serve_on(
                "127.0.0.1:0",
                mesh.proxy_router(),
                stop.clone().cancelled_owned(),
            )
            .await?;
            servers.push(t);
            let admin_addr = format!("127.0.0.1:{}", args.metrics_port);
            let (admin, t) = serve_on(
                &admin_addr,
                mesh.admin_router(),
                stop.clone().cancelled_owned(),
            )
            .await
            .with_context(|| format!("the mesh metrics cannot listen on {admin_addr}"))?;
            servers.push(t);
            let metrics = admin.join("metrics").context("metrics URL")?;
            (DataPlane::Mesh(mesh), proxy, metrics)
        }
        DataPlaneKind::Haproxy => {
            let h = LocalHaproxy::start(&primary_url, &burst_url, args.metrics_port).await?;
            let (proxy, metrics) = (h.frontend.clone(), h.metrics.clone());
            (DataPlane::Haproxy(Box::new(h)), proxy, metrics)
        }
    };

    let pods = match (&plane, args.source) {
        (DataPlane::Mesh(mesh), SourceKind::Pods) => {
            Some(LocalPods::start(mesh, &stop, &mut servers).await?)
        }
        (_, SourceKind::Pods) => {
            anyhow::bail!("--source pods measures the built-in proxy; leave out --data-plane")
        }
        _ => None,
    };

    let mut fconfig = FrontendConfig::new(proxy.clone());
    fconfig.max_frequency = args.max_frequency;
    let frontend = Frontend::start(fconfig, bus_for("frontend")?).await?;
    // Load must not start before the relay listens, or the first hashes would be missed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while frontend.relay().subscriptions == 0 {
        if Instant::now() > deadline {
            anyhow::bail!(
                "the frontend could not subscribe to `calculation` on {pubsub} within 10 s"
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let page_addr = format!("127.0.0.1:{}", args.port);
    let (page, t) = serve_on(&page_addr, frontend.router(), frontend.shutdown_signal())
        .await
        .with_context(|| {
            format!("the page cannot listen on {page_addr}; pass --port 0 for any free port")
        })?;
    servers.push(t);

    let log = Arc::new(Mutex::new(TickLog::default()));
    let prewarm: super::PrewarmNotes = Arc::default();
    let burst_weight: Box<dyn Fn() -> u8 + Send> = match &plane {
        DataPlane::Mesh(mesh) => {
            let mesh = mesh.clone();
            Box::new(move || mesh.split().burst().get())
        }
        DataPlane::Haproxy(_) => {
            let log = log.clone();
            Box::new(move || {
                lock(&log)
                    .belief
                    .unwrap_or(Split::ALL_PRIMARY)
                    .burst()
                    .get()
            })
        }
    };
    servers.push(super::page::spawn(
        frontend.clone(),
        burst_weight,
        log.clone(),
        prewarm.clone(),
        super::page::PagePolicy::of(&file.policy),
        stop.clone(),
    ));
    let partial = Partial {
        frontend,
        plane,
        pods,
        page,
        proxy,
        metrics,
        workers: (primary_url, burst_url),
        pubsub,
        stop,
        servers,
        log,
        started,
        sides,
        prewarm,
    };
    match cluster {
        None => start_controller(args, file, partial),
        Some(cluster) => match start_kube(args, file, cluster, &partial).await {
            Ok((running, source)) => {
                Ok(partial.finish(source, running.describe(), None, Some(running)))
            }
            Err(e) => {
                // Nothing stays running: the local servers stop before the error is shown.
                partial.abandon().await;
                Err(e)
            }
        },
    }
}

impl Partial {
    /// The split in effect: the mesh proxy's, or what the controller last saw in HAProxy.
    pub(super) fn split(&self) -> Split {
        match &self.plane {
            DataPlane::Mesh(m) => m.split(),
            DataPlane::Haproxy(_) => lock(&self.log).belief.unwrap_or(Split::ALL_PRIMARY),
        }
    }

    fn finish(
        self,
        source: String,
        router: String,
        controller: Option<JoinHandle<Stopped>>,
        kube: Option<Running>,
    ) -> Demo {
        Demo {
            local: self,
            source,
            controller,
            kube,
            router,
        }
    }

    async fn abandon(self) {
        shutdown(self.finish(String::new(), String::new(), None, None)).await;
    }
}

/// `--kubeconfig`: the seed BurstPolicy measuring this proxy, burstd, the watches.
pub(super) async fn start_kube(
    args: &Args,
    file: &PolicyFile,
    cluster: Cluster,
    p: &Partial,
) -> anyhow::Result<(Running, String)> {
    let source = match &p.pods {
        Some(_) => super::pods::source_spec(),
        None => kube::source_spec(args.prometheus_url.as_deref(), &p.metrics),
    };
    let settings = kube::policy_settings(file);
    let described = match &p.pods {
        // burstd builds the pod source with its client; the same source on a fixed list
        // describes it.
        Some(pods) => {
            settings.policy.validate()?;
            burst_core::MetricSource::describe(&pods.source(&args.namespace, &file.policy)?)
        }
        None => kube::describe_source(&burst_operator::api::BurstPolicySpec {
            source: source.clone(),
            policy: settings.clone(),
            target: burst_operator::api::TargetSpec {
                name: "worker-virtual-service".into(),
                ..burst_operator::api::TargetSpec::default()
            },
            dry_run: false,
            paused: false,
            pin: None,
            prewarm: None,
        })?,
    };
    let DataPlane::Mesh(mesh) = &p.plane else {
        anyhow::bail!("--kubeconfig drives the built-in proxy only; leave out --data-plane");
    };
    let pod_slice = match &p.pods {
        Some(pods) => Some(PodSlice {
            slice: pods.slice(&args.namespace)?,
            rewrite: pods.rewrite(),
        }),
        None => None,
    };
    let running = cluster
        .start(
            mesh,
            pod_slice,
            source,
            settings,
            p.log.clone(),
            kube::PrewarmSink {
                sides: p.sides.clone(),
                notes: p.prewarm.clone(),
            },
            p.started.into_std(),
            &p.stop,
        )
        .await?;
    Ok((running, described))
}

/// Without `--kubeconfig`: the in-process controller moves the proxy's split directly.
pub(super) fn start_controller(args: &Args, file: &PolicyFile, p: Partial) -> anyhow::Result<Demo> {
    let spec = &file.policy;
    let started = p.started;
    let (source, router): (Box<dyn MetricSource>, Box<dyn TrafficRouter>) = match &p.plane {
        DataPlane::Mesh(mesh) => (
            match &p.pods {
                Some(pods) => Box::new(pods.source(super::pods::STATIC_NAMESPACE, spec)?),
                None => metric_source(args, spec, &p.metrics)?,
            },
            Box::new(mesh.router()),
        ),
        DataPlane::Haproxy(h) => {
            let long = spec.has_two_windows().then(|| spec.window_down());
            (
                Box::new(h.source(spec.window_up(), long)?),
                Box::new(h.router()?),
            )
        }
    };
    let source: Box<dyn MetricSource> =
        Box::new(super::sides::WithSides::new(source, p.sides.clone()));
    let source_desc = source.describe();
    let policy = spec.build()?;
    let observer_log = p.log.clone();
    let observer = move |r: &TickReport| {
        let mut l = lock(&observer_log);
        l.belief = Some(r.belief);
        l.observed = r.signal.rates().map(|x| x.up.get());
        l.rule = Some(r.decision.reason.rule.name().to_owned());
        l.reason = Some(r.decision.reason.detail.clone());
        if let Some(p) = &r.prewarm {
            l.outlook = Some(p.outlook.to_string());
        }
        if let Outcome::Applied { from, to } = &r.outcome {
            l.changes.push(Change {
                t: started.elapsed().as_secs_f64(),
                from: from.to_string(),
                to: to.to_string(),
                burst_weight: to.burst().get(),
                reason: r.decision.reason.to_string(),
                resource_version: None,
                patch_sent_to_proxy_ms: None,
                patch_answered_to_proxy_ms: None,
                patch_round_trip_ms: None,
                applied_at: None,
            });
        }
    };
    let config = file.run.controller_config(ControllerConfig::default());
    let described = router.describe();
    let mut controller = Controller::new(source, policy, router, config).with_observer(observer);
    if let Some(prewarm) = spec.prewarm()? {
        let scaler =
            super::sides::DemoScaler::new(p.sides.clone(), p.prewarm.clone(), started.into_std());
        let probe = spec
            .warmup
            .as_ref()
            .and_then(|w| burst_core::Weight::try_new(w.probe_weight).ok())
            .unwrap_or(burst_core::Weight::ZERO);
        controller = controller
            .with_prewarm(prewarm, Box::new(scaler))
            .with_prewarm_probe(probe);
    }
    let controller = tokio::spawn(controller.run(p.stop.clone().cancelled_owned()));
    Ok(p.finish(source_desc, described, Some(controller), None))
}

/// The in-process controller's metric source: the proxy's /metrics, or Prometheus.
pub(super) fn metric_source(
    args: &Args,
    spec: &PolicySpec,
    metrics: &Url,
) -> anyhow::Result<Box<dyn MetricSource>> {
    let config = match &args.prometheus_url {
        Some(url) => burst_prom::SourceConfig::Prometheus(burst_prom::PrometheusConfig {
            url: url.clone(),
            ..burst_prom::PrometheusConfig::default()
        }),
        None => {
            let matchers = [
                ("reporter", "source"),
                ("source_workload", "frontend-deployment"),
                (
                    "destination_service",
                    "worker-service.default.svc.cluster.local",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
            burst_prom::SourceConfig::Scrape(burst_prom::ScrapeConfig {
                targets: vec![metrics.to_string()],
                metric: "istio_requests_total".into(),
                matchers,
                // The mesh exports Istio's latency histogram and response codes: the
                // policy's latency and error-ratio triggers work in the demo too.
                signals: burst_prom::ScrapeSignals::istio(),
                ..burst_prom::ScrapeConfig::default()
            })
        }
    };
    Ok(config
        .with_windows(spec.window_up(), spec.window_down())
        .build(&burst_prom::HttpClients::new())?)
}

/// Stops everything, waiting a bounded time for each part.
pub(super) async fn shutdown(d: Demo) {
    let kube = d.kube.is_some();
    d.local.frontend.shutdown();
    d.local.stop.cancel();
    let wait = async {
        for s in d.local.servers {
            if let Ok(Err(e)) = s.await {
                tracing::warn!(error = %e, "server stopped with an error");
            }
        }
        if let Some(c) = d.controller {
            let _ = c.await;
        }
        if let Some(k) = d.kube {
            k.shutdown().await;
        }
    };
    // burstd gets its own grace (5 s) to finish a tick and write the last status.
    let limit = Duration::from_secs(if kube { 10 } else { 5 });
    if tokio::time::timeout(limit, wait).await.is_err() {
        tracing::warn!(limit = ?limit, "shutdown took longer than the limit; exiting anyway");
    }
}
