//! [`TrafficRouter`]s that change weights through the Kubernetes API.
//!
//! # How a split is written: JSON patch guarded by `test`
//!
//! [`KubeRouter::apply`] reads the object, computes the two weight changes with the pure
//! transform, and sends one JSON patch (RFC 6902):
//!
//! ```json
//! [{"op": "test", "path": "/spec/http", "value": [ ...the routes as read... ]},
//!  {"op": "add",  "path": "/spec/http/0/route/0/weight", "value": 80},
//!  {"op": "add",  "path": "/spec/http/0/route/1/weight", "value": 20}]
//! ```
//!
//! The API server applies it atomically: if anyone changed the routes between our read and
//! our write, the `test` fails (422) and nothing is written; the router then re-reads and
//! retries, up to [`RouterOptions::max_attempts`] times with exponential backoff. A 409
//! Conflict is retried the same way.
//!
//! This was chosen over a full replace with `metadata.resourceVersion` because:
//! - the write names only the two weight fields, so nothing else can be clobbered even by a
//!   client that mis-decodes an unknown field, and the request is small and auditable (it is
//!   exactly what dry-run logs);
//! - the precondition covers only what the transform depended on (the routes), so edits to
//!   labels, annotations or status by GitOps tools or other controllers do not cause
//!   spurious conflicts, while any change to the routes (reordering, a new route, a changed
//!   destination) still does;
//! - the write is recorded in `metadata.managedFields` under the field manager (`burst` by
//!   default), so a GitOps tool can see who changed the route.
//!
//! Ownership is coarser than the write: Istio's `spec.http` and Gateway API's `spec.rules`
//! are atomic lists (no `x-kubernetes-list-type` in the CRDs), and the API server gives the
//! whole list to whoever writes inside it. After the first write `burst` owns all of
//! `spec.http` (or `spec.rules`), and the manager that created the object no longer owns it.
//! A server-side apply of the same list by another manager then conflicts (409) on
//! `.spec.http`; forced, it puts back the whole list as it is in Git, weights included,
//! and if Git has no weights it removes them.
//!
//! # Living with GitOps tools
//!
//! A GitOps tool that also applies the VirtualService would set the weights back to what Git
//! says. Tell it to leave the two weights alone, by JSON pointer. For Argo CD:
//!
//! ```yaml
//! spec:
//!   ignoreDifferences:
//!     - group: networking.istio.io
//!       kind: VirtualService
//!       name: worker-virtual-service
//!       jsonPointers:
//!         - /spec/http/0/route/0/weight
//!         - /spec/http/0/route/1/weight
//!   syncPolicy:
//!     syncOptions: [RespectIgnoreDifferences=true]
//! ```
//!
//! Not `managedFieldsManagers: [burst]`: since `burst` owns the whole atomic `spec.http`,
//! that would ignore every route, and with `RespectIgnoreDifferences` no route change in Git
//! would ever be synced.
//!
//! See `docs/gitops-weights.md` in the repository for Flux and plain `kubectl apply`.
//!
//! # Dry run
//!
//! With [`RouterOptions::dry_run`] the router logs the patch (`tracing` at INFO) and sends it
//! with `dryRun=All`: the API server validates it (schema, webhooks, `test` ops) and stores
//! nothing.

use std::fmt;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use async_trait::async_trait;
use burst_core::{RouterError, Split, TrafficRouter};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::cache::{CachedObject, RouteCaches, Watch};
use crate::httproute::{GATEWAY_GROUP, HttpRouteTarget};
use crate::vs::{ISTIO_GROUP, VsTarget};
use crate::{ApiCallError, Error};

/// The kind-specific half of a [`KubeRouter`]: which API resource, and how to read and patch
/// the weights. Implemented by [`VsTarget`] and [`HttpRouteTarget`].
pub trait RouteTarget: Send + Sync + fmt::Debug + 'static {
    /// `(group, kind, plural)` of the resource.
    fn resource(&self) -> (&'static str, &'static str, &'static str);

    /// The split the object holds.
    fn read_split(&self, obj: &Value) -> Result<Split, Error>;

    /// The patch that writes `split`, or `None` if the object already holds it.
    fn weight_patch(&self, obj: &Value, split: Split) -> Result<Option<json_patch::Patch>, Error>;

    /// A short description of what is selected, for logs.
    fn describe(&self) -> String;
}

impl RouteTarget for VsTarget {
    fn resource(&self) -> (&'static str, &'static str, &'static str) {
        (ISTIO_GROUP, "VirtualService", "virtualservices")
    }
    fn read_split(&self, obj: &Value) -> Result<Split, Error> {
        self.read(obj)
    }
    fn weight_patch(&self, obj: &Value, split: Split) -> Result<Option<json_patch::Patch>, Error> {
        self.patch(obj, split)
    }
    fn describe(&self) -> String {
        format!("subsets {}/{}", self.primary_subset, self.burst_subset)
    }
}

impl RouteTarget for HttpRouteTarget {
    fn resource(&self) -> (&'static str, &'static str, &'static str) {
        (GATEWAY_GROUP, "HTTPRoute", "httproutes")
    }
    fn read_split(&self, obj: &Value) -> Result<Split, Error> {
        self.read(obj)
    }
    fn weight_patch(&self, obj: &Value, split: Split) -> Result<Option<json_patch::Patch>, Error> {
        self.patch(obj, split)
    }
    fn describe(&self) -> String {
        format!("backends {}/{}", self.primary.name, self.burst.name)
    }
}

/// How a [`KubeRouter`] talks to the API server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterOptions {
    /// API version to use (`v1`; `v1beta1` or `v1alpha3` for old Istio releases).
    pub api_version: String,
    /// Log and server-side dry-run the patch instead of writing it.
    pub dry_run: bool,
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

impl Default for RouterOptions {
    fn default() -> Self {
        RouterOptions {
            api_version: "v1".to_owned(),
            dry_run: false,
            field_manager: "burst".to_owned(),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A router over one namespaced object of the Kubernetes API.
///
/// Use it through the aliases [`VirtualServiceRouter`] and [`HttpRouteRouter`].
pub struct KubeRouter<T> {
    api: Api<DynamicObject>,
    name: String,
    namespace: String,
    object: String,
    target: T,
    options: RouterOptions,
    /// The shared watch-fed copy of the objects (see [`crate::RouteCaches`]).
    cache: Option<Arc<Watch>>,
    /// The resourceVersion of this router's last write until the cached copy shows it (or
    /// the newest version a GET gave since): till then reads are GETs, so a copy older
    /// than our own write never reads as drift.
    pending: Mutex<Option<String>>,
    /// The cached copy last read and the split read from it: a tick that finds the same
    /// copy (the object did not change) gets the split without walking the object again.
    /// Weak, so an old copy is not kept alive by this.
    last_read: Mutex<Option<(Weak<CachedObject>, Split)>>,
}

/// Changes the subset weights of an Istio VirtualService.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use burst_core::{Split, TrafficRouter};
/// use burst_istio::{RouterOptions, VirtualServiceRouter, VsTarget};
///
/// let client = kube::Client::try_default().await?;
/// let router = VirtualServiceRouter::new(
///     client, "default", "worker-virtual-service", VsTarget::default(), RouterOptions::default(),
/// )?;
/// router.apply(Split::try_new(80, 20)?).await?;
/// assert_eq!(router.current().await?, Split::try_new(80, 20)?);
/// # Ok(()) }
/// ```
pub type VirtualServiceRouter = KubeRouter<VsTarget>;

/// Changes the backend weights of a Gateway API HTTPRoute.
pub type HttpRouteRouter = KubeRouter<HttpRouteTarget>;

/// An object as read: the cache's copy or a GET's answer.
enum Read {
    Cached(Arc<CachedObject>),
    Fetched(Value, Option<String>),
}

impl Read {
    fn value(&self) -> &Value {
        match self {
            Read::Cached(c) => &c.value,
            Read::Fetched(v, _) => v,
        }
    }

    fn resource_version(&self) -> Option<&String> {
        match self {
            Read::Cached(c) => c.resource_version.as_ref(),
            Read::Fetched(_, rv) => rv.as_ref(),
        }
    }
}

enum Attempt {
    Done,
    Retry(String),
}

impl<T: RouteTarget> KubeRouter<T> {
    /// A router for `namespace/name`.
    pub fn new(
        client: kube::Client,
        namespace: &str,
        name: &str,
        target: T,
        options: RouterOptions,
    ) -> Result<Self, Error> {
        if options.max_attempts == 0 {
            return Err(Error::InvalidOption {
                what: "max attempts",
                value: "0".to_owned(),
                problem: "must be at least 1".to_owned(),
            });
        }
        if options.field_manager.is_empty() || options.field_manager.len() > 128 {
            return Err(Error::InvalidOption {
                what: "field manager",
                value: options.field_manager.clone(),
                problem: "must be 1 to 128 characters".to_owned(),
            });
        }
        for (what, v) in [("namespace", namespace), ("name", name)] {
            if v.is_empty() || v.contains('/') {
                return Err(Error::InvalidOption {
                    what,
                    value: v.to_owned(),
                    problem: "must be a non-empty Kubernetes name".to_owned(),
                });
            }
        }
        let (group, kind, plural) = target.resource();
        let gvk = GroupVersionKind::gvk(group, &options.api_version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        Ok(KubeRouter {
            api: Api::namespaced_with(client, namespace, &resource),
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            object: format!("{kind} {namespace}/{name}"),
            target,
            options,
            cache: None,
            pending: Mutex::new(None),
            last_read: Mutex::new(None),
        })
    }

    /// Reads the object from `caches` (one watch per kind, API version and namespace,
    /// shared by every router given the same caches) instead of a GET per read, falling
    /// back to a GET whenever the copy may not be current. `caches` must be over the same
    /// cluster as the router's client. Needs a tokio runtime.
    pub fn with_cache(mut self, caches: &RouteCaches) -> Self {
        self.cache = Some(caches.watch(
            self.target.resource(),
            &self.options.api_version,
            &self.namespace,
        ));
        self
    }

    /// The object as the cache holds it, unless the router wrote a version the copy has
    /// not caught up with yet.
    fn cached(&self) -> Option<Arc<CachedObject>> {
        let copy = self.cache.as_ref()?.get(&self.name)?;
        let mut pending = burst_core::lock(&self.pending);
        match pending.as_ref() {
            None => Some(copy),
            Some(rv) if Some(rv) == copy.resource_version.as_ref() => {
                *pending = None;
                Some(copy)
            }
            Some(_) => None,
        }
    }

    /// Records `rv` as the version the copy must reach before it is read again (after a
    /// write; after a GET made while waiting, the newest version known).
    fn wait_for(&self, rv: Option<&String>, after_write: bool) {
        if self.cache.is_none() {
            return;
        }
        let mut pending = burst_core::lock(&self.pending);
        if after_write || pending.is_some() {
            pending.clone_from(&rv.cloned());
        }
    }

    /// Reads the object: from the cache when it is current, else with a GET.
    async fn read(&self) -> Result<Read, Error> {
        if let Some(watch) = &self.cache {
            watch.first_list(self.options.request_timeout).await;
        }
        match self.cached() {
            Some(hit) => Ok(Read::Cached(hit)),
            None => {
                let (value, rv) = self.fetch().await?;
                Ok(Read::Fetched(value, rv))
            }
        }
    }

    /// Reads the object as JSON, with its resourceVersion.
    pub async fn fetch(&self) -> Result<(Value, Option<String>), Error> {
        let obj = self.call("get", self.api.get(&self.name)).await?;
        let rv = obj.metadata.resource_version.clone();
        self.wait_for(rv.as_ref(), false);
        let value = serde_json::to_value(&obj).map_err(|e| ApiCallError::Client {
            object: self.object.clone(),
            action: "get",
            detail: e.to_string(),
        })?;
        Ok((value, rv))
    }

    /// Reads the object and computes the patch that would write `split` (`None`: no change).
    pub async fn plan(&self, split: Split) -> Result<Option<json_patch::Patch>, Error> {
        let (obj, _) = self.fetch().await?;
        self.target.weight_patch(&obj, split)
    }

    async fn call<R>(
        &self,
        action: &'static str,
        fut: impl Future<Output = Result<R, kube::Error>>,
    ) -> Result<R, Error> {
        match tokio::time::timeout(self.options.request_timeout, fut).await {
            Err(_) => Err(ApiCallError::Timeout {
                object: self.object.clone(),
                action,
                after: self.options.request_timeout,
            }
            .into()),
            Ok(r) => r.map_err(|e| map_kube_error(&self.object, action, e)),
        }
    }

    async fn attempt(&self, split: Split, first: bool) -> Result<Attempt, Error> {
        // A retry follows a conflict: read the object itself, not a copy.
        let read = if first {
            self.read().await?
        } else {
            let (value, rv) = self.fetch().await?;
            Read::Fetched(value, rv)
        };
        let Some(patch) = self.target.weight_patch(read.value(), split)? else {
            debug!(object = %self.object, %split, "weights already hold the split");
            return Ok(Attempt::Done);
        };
        let patch_json = serde_json::to_string(&patch).unwrap_or_default();
        let params = PatchParams {
            dry_run: self.options.dry_run,
            field_manager: Some(self.options.field_manager.clone()),
            ..PatchParams::default()
        };
        if self.options.dry_run {
            info!(object = %self.object, %split, patch = %patch_json, "dry run: patch computed, sent with dryRun=All, nothing stored");
        } else {
            debug!(object = %self.object, %split, patch = %patch_json, "patching weights");
        }
        let sent = self
            .call(
                "patch",
                self.api
                    .patch(&self.name, &params, &Patch::Json::<()>(patch)),
            )
            .await;
        match sent {
            Ok(written) => {
                if !self.options.dry_run {
                    self.wait_for(written.metadata.resource_version.as_ref(), true);
                    info!(object = %self.object, %split, "weights written");
                }
                Ok(Attempt::Done)
            }
            Err(Error::Kube(ApiCallError::Api {
                code: 409, message, ..
            })) => Ok(Attempt::Retry(message)),
            Err(e @ Error::Kube(ApiCallError::Api { code: 422, .. })) => {
                // A failed `test` op and an invalid patch both answer 422; only the first
                // means the object moved under us.
                let (_, now) = self.fetch().await?;
                if now.as_ref() != read.resource_version() {
                    Ok(Attempt::Retry(e.to_string()))
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    async fn apply_split(&self, split: Split) -> Result<(), Error> {
        let mut backoff = self.options.initial_backoff;
        let mut last = String::new();
        for attempt in 1..=self.options.max_attempts {
            match self.attempt(split, attempt == 1).await? {
                Attempt::Done => return Ok(()),
                Attempt::Retry(why) => {
                    warn!(object = %self.object, attempt, reason = %why, "object changed between read and write; retrying");
                    last = why;
                    if attempt < self.options.max_attempts {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(self.options.max_backoff);
                    }
                }
            }
        }
        Err(ApiCallError::Conflict {
            object: self.object.clone(),
            attempts: self.options.max_attempts,
            last,
        }
        .into())
    }
}

impl<T> fmt::Debug for KubeRouter<T>
where
    T: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeRouter")
            .field("object", &self.object)
            .field("target", &self.target)
            .field("options", &self.options)
            .field("cached", &self.cache.is_some())
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<T: RouteTarget> TrafficRouter for KubeRouter<T> {
    async fn current(&self) -> Result<Split, RouterError> {
        let read = self.read().await?;
        let Read::Cached(copy) = &read else {
            return Ok(self.target.read_split(read.value())?);
        };
        let mut last = burst_core::lock(&self.last_read);
        if let Some((seen, split)) = last.as_ref()
            && std::ptr::eq(seen.as_ptr(), Arc::as_ptr(copy))
        {
            return Ok(*split);
        }
        let split = self.target.read_split(&copy.value)?;
        *last = Some((Arc::downgrade(copy), split));
        Ok(split)
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        Ok(self.apply_split(split).await?)
    }

    fn describe(&self) -> String {
        let dry = if self.options.dry_run {
            " (dry run)"
        } else {
            ""
        };
        format!("{} ({}){dry}", self.object, self.target.describe())
    }
}

/// Turns a client error into ours, naming the object: a 404 is [`Error::NotFound`].
pub(crate) fn map_kube_error(object: &str, action: &'static str, e: kube::Error) -> Error {
    match e {
        kube::Error::Api(status) if status.code == 404 => Error::NotFound {
            object: object.to_owned(),
            cluster: None,
        },
        other => ApiCallError::from_kube(object, action, other).into(),
    }
}
