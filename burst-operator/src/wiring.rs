//! From a [`BurstPolicySpec`] to a running source, policy and router.

use std::time::Duration;

use async_trait::async_trait;
use burst_core::policy::{AnyPolicy, PolicySpec};
use burst_core::{MetricSource, RouterError, Split, TrafficRouter};
use burst_istio::{HttpRouteRouter, MultiClusterRouter, RouterOptions, VirtualServiceRouter};
use burst_prom::{HttpClients, PrometheusSource, ScrapeSource};
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Error;
use crate::crd::{BurstPolicySpec, ResolvedAuth, RouteConfig, SecretKeyRef, SourceConfig};
use crate::leader::LeaderHandle;

/// The parts of one control loop.
pub struct Parts {
    /// The validated policy settings.
    pub spec: PolicySpec,
    /// The metric source.
    pub source: Box<dyn MetricSource>,
    /// The decision policy.
    pub policy: AnyPolicy,
    /// The router (leader-gated).
    pub router: LeaderGated<Box<dyn TrafficRouter>>,
}

impl std::fmt::Debug for Parts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parts")
            .field("spec", &self.spec)
            .field("source", &self.source.describe())
            .field("router", &self.router.describe())
            .finish_non_exhaustive()
    }
}

/// Settings shared by every loop.
#[derive(Debug, Clone)]
pub struct WiringOptions {
    /// Field manager recorded on route writes.
    pub field_manager: String,
    /// Timeout of each Kubernetes request made by a router.
    pub request_timeout: Duration,
    /// The HTTP clients of metric sources: loops whose sources have the same connection
    /// settings share one client (TLS roots, connection pool) instead of one per policy.
    pub http_clients: HttpClients,
}

impl Default for WiringOptions {
    fn default() -> Self {
        WiringOptions {
            field_manager: "burstd".to_owned(),
            request_timeout: Duration::from_secs(10),
            http_clients: HttpClients::new(),
        }
    }
}

/// A router that refuses to write unless this instance leads.
///
/// The operator also stops every loop the moment the lease is lost; this gate closes the
/// window between losing the lease and the loop noticing.
pub struct LeaderGated<R> {
    inner: R,
    leader: LeaderHandle,
}

impl<R> LeaderGated<R> {
    /// Gates `inner` on `leader`.
    pub fn new(inner: R, leader: LeaderHandle) -> Self {
        LeaderGated { inner, leader }
    }
}

#[async_trait]
impl<R: TrafficRouter> TrafficRouter for LeaderGated<R> {
    async fn current(&self) -> Result<Split, RouterError> {
        self.inner.current().await
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        if !self.leader.is_leader() {
            return Err(RouterError::new(
                "not_leader",
                "this instance does not hold the leader lease; not writing",
            ));
        }
        self.inner.apply(split).await
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Keeps the clusters of a multi-primary target on one split.
///
/// [`MultiClusterRouter::current`] fails with `drift` when the clusters disagree, and the
/// controller never writes on a failed read, so on its own a disagreement would last.
/// This wrapper turns it into something the controller repairs:
///
/// - after an apply, a disagreement reads as the split that differs from the one applied,
///   so the controller sees drift (Event `RouteDrifted`) and writes its split to every
///   cluster again;
/// - before any apply (start-up), the local cluster is authoritative: the leader writes
///   its split to the others, and that split is the one in effect.
pub struct Converging {
    inner: MultiClusterRouter,
    leader: LeaderHandle,
    applied: std::sync::Mutex<Option<Split>>,
}

impl Converging {
    /// Wraps `inner`; only a leader converges at start-up.
    pub fn new(inner: MultiClusterRouter, leader: LeaderHandle) -> Self {
        Converging {
            inner,
            leader,
            applied: std::sync::Mutex::new(None),
        }
    }

    fn applied(&self) -> Option<Split> {
        match self.applied.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    fn set_applied(&self, split: Split) {
        match self.applied.lock() {
            Ok(mut g) => *g = Some(split),
            Err(p) => *p.into_inner() = Some(split),
        }
    }
}

#[async_trait]
impl TrafficRouter for Converging {
    async fn current(&self) -> Result<Split, RouterError> {
        let err = match self.inner.current().await {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == "drift" => e,
            Err(e) => return Err(e),
        };
        let reports = self.inner.read_all().await;
        let splits: Vec<Split> = reports
            .iter()
            .filter_map(|r| r.result.as_ref().ok().copied())
            .collect();
        if splits.len() != reports.len() {
            return Err(err);
        }
        match self.applied() {
            Some(applied) => Ok(splits
                .into_iter()
                .find(|s| *s != applied)
                .unwrap_or(applied)),
            None => {
                let Some(local) = splits.first().copied() else {
                    return Err(err);
                };
                if !self.leader.is_leader() {
                    return Err(err);
                }
                tracing::warn!(router = %self.inner.describe(), split = %local, error = %err, "clusters disagree at start-up; writing the local cluster's split to all");
                self.inner.apply(local).await?;
                self.set_applied(local);
                Ok(local)
            }
        }
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        let r = self.inner.apply(split).await;
        // Even a partial failure leaves some clusters at `split`: that is what was applied.
        self.set_applied(split);
        r
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Reads `key` of Secret `namespace/name`.
pub async fn secret_value(
    client: &kube::Client,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<String, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let err = |message: String| Error::Secret {
        namespace: namespace.to_owned(),
        name: r.name.clone(),
        message,
    };
    let secret = match api.get(&r.name).await {
        Ok(s) => s,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(err("not found; create it in the policy's namespace".into()));
        }
        Err(kube::Error::Api(s)) if s.code == 403 => {
            // The server's message names the identity, the verb, the resource and the
            // namespace that were refused.
            return Err(err(format!(
                "reading it is forbidden ({}); install the chart with rbac.readSecrets=true",
                s.message
            )));
        }
        Err(e) => return Err(err(format!("cannot be read: {e}"))),
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            let keys: Vec<String> = secret
                .data
                .as_ref()
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default();
            err(format!(
                "has no key `{}` (keys: {})",
                r.key,
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            ))
        })?;
    String::from_utf8(bytes).map_err(|_| err(format!("key `{}` is not UTF-8 text", r.key)))
}

async fn resolve_auth(
    client: &kube::Client,
    namespace: &str,
    spec: &BurstPolicySpec,
) -> Result<ResolvedAuth, Error> {
    let mut auth = ResolvedAuth::default();
    let Some(a) = spec.source.auth() else {
        return Ok(auth);
    };
    if let Some(r) = &a.bearer_token_secret_ref {
        auth.bearer_token = Some(secret_value(client, namespace, r).await?);
    }
    if let Some(b) = &a.basic_auth_secret_ref {
        let key = |k: &Option<String>, d: &str| SecretKeyRef {
            name: b.name.clone(),
            key: k.clone().unwrap_or_else(|| d.to_owned()),
        };
        let user = secret_value(client, namespace, &key(&b.username_key, "username")).await?;
        let pass = secret_value(client, namespace, &key(&b.password_key, "password")).await?;
        auth.basic = Some((user, pass));
    }
    Ok(auth)
}

/// Checks a kubeconfig and builds a client from it.
///
/// Exec and auth-provider plugins are refused: they would make burstd run a command named
/// by whoever can write the Secret.
pub async fn client_from_kubeconfig(cluster: &str, yaml: &str) -> Result<kube::Client, Error> {
    let err = |message: String| Error::Kubeconfig {
        cluster: cluster.to_owned(),
        message,
    };
    let kc = Kubeconfig::from_yaml(yaml).map_err(|e| err(format!("not a kubeconfig: {e}")))?;
    for user in &kc.auth_infos {
        if let Some(a) = &user.auth_info
            && (a.exec.is_some() || a.auth_provider.is_some())
        {
            return Err(err(format!(
                "user `{}` uses an exec or auth-provider plugin, which burstd refuses to run; use a service-account token or a client certificate",
                user.name
            )));
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

fn kube_router(
    client: kube::Client,
    namespace: &str,
    spec: &BurstPolicySpec,
    opts: &WiringOptions,
) -> Result<Box<dyn TrafficRouter>, Error> {
    let options = RouterOptions {
        api_version: spec
            .target
            .api_version
            .clone()
            .unwrap_or_else(|| "v1".to_owned()),
        // The controller never applies in dry run; if anything did, the server would not store it.
        dry_run: spec.dry_run,
        field_manager: opts.field_manager.clone(),
        request_timeout: opts.request_timeout,
        ..RouterOptions::default()
    };
    Ok(match spec.target.to_route()? {
        RouteConfig::VirtualService(t) => Box::new(VirtualServiceRouter::new(
            client,
            namespace,
            &spec.target.name,
            t,
            options,
        )?),
        RouteConfig::HttpRoute(t) => Box::new(HttpRouteRouter::new(
            client,
            namespace,
            &spec.target.name,
            t,
            options,
        )?),
    })
}

/// Builds the parts of a loop for `spec`, a policy in `namespace`.
pub async fn build(
    client: &kube::Client,
    namespace: &str,
    spec: &BurstPolicySpec,
    leader: LeaderHandle,
    opts: &WiringOptions,
) -> Result<Parts, Error> {
    let policy_spec = spec.validate()?;
    let auth = resolve_auth(client, namespace, spec).await?;
    let source: Box<dyn MetricSource> = match spec.source.to_config(&policy_spec, &auth)? {
        SourceConfig::Prometheus(c) => {
            Box::new(PrometheusSource::with_clients(c, &opts.http_clients)?)
        }
        SourceConfig::Scrape(c) => Box::new(ScrapeSource::with_clients(c, &opts.http_clients)?),
    };
    let local = kube_router(client.clone(), namespace, spec, opts)?;
    let router: Box<dyn TrafficRouter> = if spec.target.clusters.is_empty() {
        local
    } else {
        let mut members = vec![("local".to_owned(), local)];
        for c in &spec.target.clusters {
            let yaml = secret_value(client, namespace, &c.kubeconfig_secret_ref).await?;
            let remote = client_from_kubeconfig(&c.name, &yaml).await?;
            members.push((c.name.clone(), kube_router(remote, namespace, spec, opts)?));
        }
        Box::new(Converging::new(
            MultiClusterRouter::new(members)?,
            leader.clone(),
        ))
    };
    Ok(Parts {
        policy: policy_spec.build()?,
        spec: policy_spec,
        source,
        router: LeaderGated::new(router, leader),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::testing::MemoryRouter;

    #[tokio::test]
    async fn exec_plugins_are_refused() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://example.invalid"}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: ["-c", "id"]}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"#;
        let Err(e) = client_from_kubeconfig("west", yaml).await else {
            panic!("accepted an exec plugin")
        };
        assert!(e.to_string().contains("refuses"), "{e}");
        let Err(e) = client_from_kubeconfig("west", "{{nope").await else {
            panic!("accepted garbage")
        };
        assert_eq!(e.kind(), "kubeconfig");
    }

    #[tokio::test]
    async fn token_kubeconfig_builds_a_client() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
"#;
        assert!(client_from_kubeconfig("west", yaml).await.is_ok());
    }

    fn multi(
        a: Split,
        b: Split,
    ) -> (
        std::sync::Arc<MemoryRouter>,
        std::sync::Arc<MemoryRouter>,
        Converging,
    ) {
        let ra = std::sync::Arc::new(MemoryRouter::new(a));
        let rb = std::sync::Arc::new(MemoryRouter::new(b));
        let m = MultiClusterRouter::new(vec![
            (
                "local".into(),
                Box::new(ra.clone()) as Box<dyn TrafficRouter>,
            ),
            ("west".into(), Box::new(rb.clone())),
        ])
        .unwrap();
        (ra, rb, Converging::new(m, LeaderHandle::always()))
    }

    #[tokio::test]
    async fn clusters_converge_on_the_local_split_at_start_up() {
        let (ra, rb, c) = multi(Split::ALL_BURST, Split::ALL_PRIMARY);
        assert_eq!(c.current().await.unwrap(), Split::ALL_BURST);
        assert_eq!(
            (ra.split(), rb.split()),
            (Split::ALL_BURST, Split::ALL_BURST)
        );
    }

    #[tokio::test]
    async fn after_an_apply_a_disagreement_reads_as_the_odd_split() {
        let (_, rb, c) = multi(Split::ALL_PRIMARY, Split::ALL_PRIMARY);
        c.apply(Split::ALL_BURST).await.unwrap();
        rb.set_externally(Split::ALL_PRIMARY);
        assert_eq!(c.current().await.unwrap(), Split::ALL_PRIMARY);
        c.apply(Split::ALL_BURST).await.unwrap();
        assert_eq!(c.current().await.unwrap(), Split::ALL_BURST);
    }

    #[tokio::test]
    async fn followers_do_not_converge() {
        let ra = MemoryRouter::new(Split::ALL_BURST);
        let rb = std::sync::Arc::new(MemoryRouter::new(Split::ALL_PRIMARY));
        let m = MultiClusterRouter::new(vec![
            ("local".into(), Box::new(ra) as Box<dyn TrafficRouter>),
            ("west".into(), Box::new(rb.clone())),
        ])
        .unwrap();
        let (_tx, rx) =
            tokio::sync::watch::channel(crate::leader::LeaderState::Follower { holder: None });
        let c = Converging::new(m, LeaderHandle::from_receiver(rx));
        assert_eq!(c.current().await.unwrap_err().kind(), "drift");
        assert_eq!(rb.split(), Split::ALL_PRIMARY);
    }

    #[tokio::test]
    async fn gate_blocks_writes_of_followers() {
        let (tx, rx) = tokio::sync::watch::channel(crate::leader::LeaderState::Leader);
        let handle = crate::leader::LeaderHandle::from_receiver(rx);
        let r = LeaderGated::new(MemoryRouter::new(Split::ALL_PRIMARY), handle);
        r.apply(Split::ALL_BURST).await.unwrap();
        tx.send(crate::leader::LeaderState::Follower { holder: None })
            .unwrap();
        let e = r.apply(Split::ALL_PRIMARY).await.unwrap_err();
        assert_eq!(e.kind(), "not_leader");
        assert_eq!(r.current().await.unwrap(), Split::ALL_BURST);
    }
}
