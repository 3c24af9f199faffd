//! [`KubeScaler`]: the [`CapacityScaler`] over the Kubernetes API.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use burst_core::scaler::PrewarmReason;
use burst_core::{CapacityScaler, ScalerError};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::error::map_kube_error;
use crate::plan::{ANNOTATION, Kind, Observed, Release, prepare_patch, release_patch};
use crate::{ApiCallError, Error};

/// How a [`KubeScaler`] pre-warms, and how it talks to the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalerOptions {
    /// Replicas while pre-warmed (HPA `minReplicas`, or Deployment `replicas`), at least 1.
    /// Never lowers a larger value; capped at the HPA's `maxReplicas`.
    pub replicas: i32,
    /// The HPA's name (default: the Deployment's name). Absent from the server: the
    /// Deployment's replicas are changed instead.
    pub hpa: Option<String>,
    /// Field manager recorded in `metadata.managedFields` (default `burst`).
    pub field_manager: String,
    /// Attempts of read → patch before giving up on conflicts (default 5, at least 1).
    pub max_attempts: u32,
    /// Wait after the first conflict; doubled after each (default 100 ms).
    pub initial_backoff: Duration,
    /// Longest wait between attempts (default 2 s).
    pub max_backoff: Duration,
    /// Timeout of each request (default 10 s).
    pub request_timeout: Duration,
}

/// A value restored (or kept) by [`KubeScaler::recover`] or a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restored {
    /// The object, e.g. `HorizontalPodAutoscaler burst/worker`.
    pub object: String,
    /// The value found.
    pub found: i32,
    /// The value it holds now: the original, or the value found when someone else had
    /// changed it since the pre-warm.
    pub now: i32,
}

/// Pre-warms the burst Deployment: raises its HorizontalPodAutoscaler's `minReplicas` (or,
/// without an HPA, the Deployment's `replicas`) to [`ScalerOptions::replicas`], keeping the
/// original in the annotation [`ANNOTATION`], and restores it on release, or on
/// [`recover`](Self::recover) after a restart.
///
/// Every write is a merge patch that carries the `resourceVersion` read: if the object
/// changed in between, the server refuses it (409) and the scaler reads again, up to
/// [`ScalerOptions::max_attempts`] times.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use burst_core::CapacityScaler;
/// use burst_core::scaler::PrewarmReason;
/// use burst_scale::{KubeScaler, ScalerOptions};
///
/// let client = kube::Client::try_default().await?;
/// let scaler = KubeScaler::new(client, "burst", "worker", ScalerOptions { replicas: 5, ..Default::default() })?;
/// scaler.recover().await?; // a pre-warm left by a previous run goes back first
/// scaler.prepare(&PrewarmReason::OnBurst).await?;
/// scaler.release().await?;
/// # Ok(()) }
/// ```
pub struct KubeScaler {
    hpas: Api<HorizontalPodAutoscaler>,
    deployments: Api<Deployment>,
    namespace: String,
    deployment: String,
    hpa: String,
    options: ScalerOptions,
}

enum Attempt<T> {
    Done(T),
    Retry(String),
}

impl Default for ScalerOptions {
    fn default() -> Self {
        ScalerOptions {
            replicas: 1,
            hpa: None,
            field_manager: "burst".to_owned(),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        }
    }
}

impl KubeScaler {
    /// A scaler for Deployment `namespace/deployment` (and its HPA) in the burst cluster
    /// `client` talks to.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        deployment: &str,
        options: ScalerOptions,
    ) -> Result<Self, Error> {
        let invalid = |what, value: String, problem: &str| Error::InvalidOption {
            what,
            value,
            problem: problem.to_owned(),
        };
        if options.replicas < 1 {
            return Err(invalid(
                "pre-warm replicas",
                options.replicas.to_string(),
                "must be at least 1 (the size the burst side should have before traffic arrives)",
            ));
        }
        if options.max_attempts == 0 {
            return Err(invalid("max attempts", "0".into(), "must be at least 1"));
        }
        if options.field_manager.is_empty() || options.field_manager.len() > 128 {
            return Err(invalid(
                "field manager",
                options.field_manager.clone(),
                "must be 1 to 128 characters",
            ));
        }
        let hpa = options.hpa.clone().unwrap_or_else(|| deployment.to_owned());
        for (what, v) in [
            ("namespace", namespace),
            ("deployment", deployment),
            ("hpa", &hpa),
        ] {
            if v.is_empty() || v.contains('/') {
                return Err(invalid(
                    what,
                    v.to_owned(),
                    "must be a non-empty Kubernetes name",
                ));
            }
        }
        Ok(KubeScaler {
            hpas: Api::namespaced(client.clone(), namespace),
            deployments: Api::namespaced(client, namespace),
            namespace: namespace.to_owned(),
            deployment: deployment.to_owned(),
            hpa,
            options,
        })
    }

    /// The options in use.
    pub fn options(&self) -> &ScalerOptions {
        &self.options
    }

    fn object(&self, kind: Kind) -> String {
        let name = match kind {
            Kind::Hpa => &self.hpa,
            Kind::Deployment => &self.deployment,
        };
        format!("{} {}/{name}", kind.name(), self.namespace)
    }

    async fn call<R>(
        &self,
        object: &str,
        action: &'static str,
        fut: impl Future<Output = Result<R, kube::Error>>,
    ) -> Result<R, Error> {
        match tokio::time::timeout(self.options.request_timeout, fut).await {
            Err(_) => Err(ApiCallError::Timeout {
                object: object.to_owned(),
                action,
                after: self.options.request_timeout,
            }
            .into()),
            Ok(r) => r.map_err(|e| map_kube_error(object, action, e)),
        }
    }

    /// Reads `kind`; `None` when it does not exist.
    async fn observe(&self, kind: Kind) -> Result<Option<Observed>, Error> {
        let object = self.object(kind);
        let (meta, value, max) = match kind {
            Kind::Hpa => {
                let Some(h) = self
                    .call(&object, "get", self.hpas.get_opt(&self.hpa))
                    .await?
                else {
                    return Ok(None);
                };
                let spec = h.spec;
                let target = &spec.scale_target_ref;
                if target.kind != "Deployment" || target.name != self.deployment {
                    return Err(Error::WrongTarget {
                        object,
                        target_kind: target.kind.clone(),
                        target_name: target.name.clone(),
                        deployment: self.deployment.clone(),
                    });
                }
                (
                    h.metadata,
                    spec.min_replicas.unwrap_or(1),
                    Some(spec.max_replicas),
                )
            }
            Kind::Deployment => {
                let Some(d) = self
                    .call(&object, "get", self.deployments.get_opt(&self.deployment))
                    .await?
                else {
                    return Ok(None);
                };
                let replicas = d.spec.replicas.unwrap_or(1);
                (d.metadata, replicas, None)
            }
        };
        Ok(Some(Observed {
            resource_version: meta.resource_version.unwrap_or_default(),
            value,
            max,
            annotation: meta.annotations.and_then(|mut a| a.remove(ANNOTATION)),
        }))
    }

    /// The HPA if it exists, else the Deployment.
    async fn resolve(&self) -> Result<(Kind, Observed), Error> {
        if let Some(seen) = self.observe(Kind::Hpa).await? {
            return Ok((Kind::Hpa, seen));
        }
        match self.observe(Kind::Deployment).await? {
            Some(seen) => Ok((Kind::Deployment, seen)),
            None => Err(Error::NotFound {
                object: self.object(Kind::Deployment),
                hpa: self.hpa.clone(),
            }),
        }
    }

    /// Sends `patch`; a 409 (the object changed since it was read) is a retry.
    async fn send(&self, kind: Kind, patch: &Value) -> Result<Attempt<()>, Error> {
        let object = self.object(kind);
        let params = PatchParams {
            field_manager: Some(self.options.field_manager.clone()),
            ..PatchParams::default()
        };
        debug!(object = %object, patch = %patch, "patching");
        let sent = match kind {
            Kind::Hpa => self
                .call(
                    &object,
                    "patch",
                    self.hpas.patch(&self.hpa, &params, &Patch::Merge(patch)),
                )
                .await
                .map(drop),
            Kind::Deployment => self
                .call(
                    &object,
                    "patch",
                    self.deployments
                        .patch(&self.deployment, &params, &Patch::Merge(patch)),
                )
                .await
                .map(drop),
        };
        match sent {
            Ok(()) => Ok(Attempt::Done(())),
            Err(Error::Kube(ApiCallError::Api {
                code: 409, message, ..
            })) => Ok(Attempt::Retry(message)),
            Err(e) => Err(e),
        }
    }

    /// Runs `attempt` until it is done, retrying conflicts with backoff, at most
    /// `max_attempts` times.
    async fn with_retries<T, F, Fut>(&self, what: &str, mut attempt: F) -> Result<T, Error>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Attempt<T>, Error>>,
    {
        let mut backoff = self.options.initial_backoff;
        let mut last = String::new();
        for n in 1..=self.options.max_attempts {
            match attempt().await? {
                Attempt::Done(t) => return Ok(t),
                Attempt::Retry(why) => {
                    warn!(object = %what, attempt = n, reason = %why, "object changed between read and write; retrying");
                    last = why;
                    if n < self.options.max_attempts {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.options.max_backoff);
                    }
                }
            }
        }
        Err(ApiCallError::Conflict {
            object: what.to_owned(),
            attempts: self.options.max_attempts,
            last,
        }
        .into())
    }

    async fn prepare_once(&self) -> Result<Attempt<()>, Error> {
        let (kind, seen) = self.resolve().await?;
        let object = self.object(kind);
        match prepare_patch(kind, &object, &seen, self.options.replicas)? {
            None => {
                debug!(object = %object, value = seen.value, "already pre-warmed");
                Ok(Attempt::Done(()))
            }
            Some(patch) => {
                let r = self.send(kind, &patch).await?;
                if matches!(r, Attempt::Done(())) {
                    info!(object = %object, from = seen.value, field = kind.field().name(), "pre-warmed");
                }
                Ok(r)
            }
        }
    }

    /// Releases the pre-warm of `kind`, if any.
    async fn release_once(&self, kind: Kind) -> Result<Attempt<Option<Restored>>, Error> {
        let object = self.object(kind);
        let Some(seen) = self.observe(kind).await? else {
            return Ok(Attempt::Done(None));
        };
        let (what, patch) = release_patch(kind, &object, &seen)?;
        let Some(patch) = patch else {
            return Ok(Attempt::Done(None));
        };
        let now = match what {
            Release::NotPrepared => return Ok(Attempt::Done(None)),
            Release::Restore(r) => r.original,
            Release::KeepTheirs { record, found } => {
                warn!(object = %object, found, set = record.set, original = record.original,
                    "changed by someone else since the pre-warm; keeping their value, removing only the annotation");
                found
            }
        };
        Ok(match self.send(kind, &patch).await? {
            Attempt::Done(()) => {
                info!(object = %object, from = seen.value, to = now, "pre-warm released");
                Attempt::Done(Some(Restored {
                    object,
                    found: seen.value,
                    now,
                }))
            }
            Attempt::Retry(why) => Attempt::Retry(why),
        })
    }

    async fn release_all(&self) -> Result<Vec<Restored>, Error> {
        let mut done = Vec::new();
        for kind in [Kind::Hpa, Kind::Deployment] {
            let what = self.object(kind);
            let restored = match self.with_retries(&what, || self.release_once(kind)).await {
                Ok(r) => r,
                // The HPA path works on the HPA; its Deployment may be absent, and so may
                // the HPA on the Deployment path.
                Err(Error::WrongTarget { .. }) if kind == Kind::Hpa => None,
                Err(e) => return Err(e),
            };
            done.extend(restored);
        }
        Ok(done)
    }

    /// After a restart: restores any pre-warm a previous run left (the annotation on the
    /// HPA or the Deployment), and says what it restored. Nothing left: an empty list.
    pub async fn recover(&self) -> Result<Vec<Restored>, Error> {
        let restored = self.release_all().await?;
        for r in &restored {
            info!(object = %r.object, found = r.found, now = r.now, "recovered a pre-warm left by a previous run");
        }
        Ok(restored)
    }

    /// Whether a pre-warm is in place now (the annotation on the HPA or the Deployment).
    pub async fn is_prepared(&self) -> Result<bool, Error> {
        let (kind, seen) = self.resolve().await?;
        Ok(seen.record(&self.object(kind))?.is_some())
    }
}

impl fmt::Debug for KubeScaler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeScaler")
            .field("namespace", &self.namespace)
            .field("deployment", &self.deployment)
            .field("hpa", &self.hpa)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl CapacityScaler for KubeScaler {
    async fn prepare(&self, why: &PrewarmReason) -> Result<(), ScalerError> {
        debug!(deployment = %self.deployment, why = %why, "pre-warm requested");
        let what = format!("Deployment {}/{}", self.namespace, self.deployment);
        Ok(self.with_retries(&what, || self.prepare_once()).await?)
    }

    async fn release(&self) -> Result<(), ScalerError> {
        self.release_all().await?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "{} minReplicas (or Deployment {}/{} replicas without it) → {}",
            self.object(Kind::Hpa),
            self.namespace,
            self.deployment,
            self.options.replicas
        )
    }
}
