//! A watch-fed cache of route objects, shared by every router of one cluster.
//!
//! Without it, a [`KubeRouter`](crate::KubeRouter) reads its object with a GET on every
//! tick to notice drift: 1,000 routers at a 1 s tick ask the API server for 1,000 GETs a
//! second, which is most of what kube-apiserver and etcd spend on burstd. With it, one
//! kube-runtime watcher per (kind, API version, namespace) keeps a slim copy of every
//! object (`apiVersion`, `kind`, `metadata.name`/`namespace`/`resourceVersion`, `spec`),
//! and routers read that copy.
//!
//! The copy is used only when it is known to be current, else the router falls back to a
//! GET, as without a cache:
//!
//! - while the first list is in progress (a router's first read waits for it, at most its
//!   request timeout, so that loops starting together do not send a GET each), after a
//!   watch error and during a re-list (a
//!   watch that failed may have missed events);
//! - when the object is not in the copy (a miss: the GET gives the real answer, 404
//!   included);
//! - after the router's own write, until the copy shows that write's `resourceVersion` (or
//!   the newer one a GET gave meanwhile): a copy older than our own write must not read as
//!   drift. resourceVersions are compared for equality only, as the API allows.
//!
//! A change by another writer reaches the copy through the watch (milliseconds after it is
//! stored), so drift is noticed at the next tick without a GET.
//!
//! Writes are unchanged: a JSON patch guarded by a `test` op on the routes as read, so a
//! copy that is stale in a way none of the above caught makes the patch fail (422); the
//! router then re-reads with a GET and retries.
//!
//! The watch needs `list` and `watch` on the resource besides `get` and `patch`. Without
//! them the watcher keeps failing (logged at WARN, retried with backoff) and every read is
//! a GET, as before.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, Weak};

use futures::StreamExt;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use serde_json::{Map, Value};

/// One object as the cache holds it: the fields routers read, and its resourceVersion.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct CachedObject {
    /// `apiVersion`, `kind`, `metadata` (name, namespace, resourceVersion) and `spec`.
    pub(crate) value: Value,
    /// `metadata.resourceVersion`.
    pub(crate) resource_version: Option<String>,
}

/// Which watch a router reads from: `(group, version, kind, plural, namespace)`.
type WatchKey = (&'static str, String, &'static str, &'static str, String);

/// The route caches of one cluster (one [`kube::Client`]): one watch per kind, API
/// version and namespace, started when the first router of that triple asks for it and
/// stopped when the last router holding it is dropped.
///
/// Clone it freely (clones share the watches). Give it to routers with
/// [`KubeRouter::with_cache`](crate::KubeRouter::with_cache) or
/// [`RouteConfig::build_cached`](crate::RouteConfig::build_cached).
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use burst_istio::{RouteCaches, RouterOptions, VirtualServiceRouter, VsTarget};
///
/// let client = kube::Client::try_default().await?;
/// let caches = RouteCaches::new(client.clone());
/// let router = VirtualServiceRouter::new(
///     client, "default", "worker-virtual-service", VsTarget::default(), RouterOptions::default(),
/// )?
/// .with_cache(&caches);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RouteCaches {
    client: kube::Client,
    watches: Arc<Mutex<HashMap<WatchKey, Weak<Watch>>>>,
}

impl fmt::Debug for RouteCaches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = burst_core::lock(&self.watches).len();
        f.debug_struct("RouteCaches")
            .field("watches", &n)
            .finish_non_exhaustive()
    }
}

/// What one watch knows.
#[derive(Default)]
struct Store {
    /// Objects by name, as of the last complete list plus the events since.
    objects: HashMap<String, Arc<CachedObject>>,
    /// The objects of a re-list in progress (replace `objects` when it is done).
    relisting: Option<HashMap<String, Arc<CachedObject>>>,
    /// A full list completed and no error happened since.
    current: bool,
    /// A failure was logged at WARN (the first one, and each one that ends a current copy).
    warned: bool,
}

/// One running watch; dropping the last handle stops it.
pub(crate) struct Watch {
    store: Mutex<Store>,
    /// `Some(true)` once the first list completed, `Some(false)` if the watch failed
    /// before that; `None` while the first list is in progress.
    first_sync: tokio::sync::watch::Sender<Option<bool>>,
    /// Set right after the watch is built (the task holds only a `Weak` to it).
    task: Mutex<Option<tokio::task::AbortHandle>>,
    what: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(task) = burst_core::lock(&self.task).take() {
            task.abort();
        }
    }
}

impl fmt::Debug for Watch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Watch")
            .field("what", &self.what)
            .finish_non_exhaustive()
    }
}

impl RouteCaches {
    /// Route caches over `client`'s cluster. Nothing starts until a router asks.
    pub fn new(client: kube::Client) -> Self {
        RouteCaches {
            client,
            watches: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// The watch of `(group, version, kind, plural)` in `namespace`, started if needed.
    /// Needs a tokio runtime.
    pub(crate) fn watch(
        &self,
        (group, kind, plural): (&'static str, &'static str, &'static str),
        version: &str,
        namespace: &str,
    ) -> Arc<Watch> {
        let key: WatchKey = (
            group,
            version.to_owned(),
            kind,
            plural,
            namespace.to_owned(),
        );
        let mut watches = burst_core::lock(&self.watches);
        if let Some(w) = watches.get(&key).and_then(Weak::upgrade) {
            return w;
        }
        watches.retain(|_, w| w.strong_count() > 0);
        let gvk = GroupVersionKind::gvk(group, version, kind);
        let resource = ApiResource::from_gvk_with_plural(&gvk, plural);
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), namespace, &resource);
        let what = format!("{kind}s ({group}/{version}) in {namespace}");
        // Built before its task starts: the task's first event (the list's `Init`) comes
        // without IO, and must find the watch alive.
        let watch = Arc::new(Watch {
            store: Mutex::new(Store::default()),
            first_sync: tokio::sync::watch::Sender::new(None),
            task: Mutex::new(None),
            what: what.clone(),
        });
        let task = tokio::spawn(run_watch(api, Arc::downgrade(&watch), what));
        *burst_core::lock(&watch.task) = Some(task.abort_handle());
        watches.insert(key, Arc::downgrade(&watch));
        watch
    }
}

impl Watch {
    /// The object `name` if the copy is current and holds it; `None`: read it with a GET.
    pub(crate) fn get(&self, name: &str) -> Option<Arc<CachedObject>> {
        let store = burst_core::lock(&self.store);
        if !store.current {
            return None;
        }
        store.objects.get(name).cloned()
    }

    /// Waits (at most `limit`) for the first list to complete, so that loops starting
    /// together do not each send a GET (and open a connection) while it runs. Returns at
    /// once when it completed or the watch failed before it did.
    pub(crate) async fn first_list(&self, limit: std::time::Duration) {
        let mut rx = self.first_sync.subscribe();
        let _ = tokio::time::timeout(limit, rx.wait_for(Option::is_some)).await;
    }

    /// Records one watcher event.
    fn observe(&self, event: Event<DynamicObject>) {
        let mut store = burst_core::lock(&self.store);
        match event {
            Event::Init => store.relisting = Some(HashMap::new()),
            Event::InitApply(obj) => {
                if let Some((name, cached)) = slim(&obj)
                    && let Some(m) = store.relisting.as_mut()
                {
                    m.insert(name, Arc::new(cached));
                }
            }
            Event::InitDone => {
                if let Some(m) = store.relisting.take() {
                    store.objects = m;
                }
                if !store.current {
                    tracing::debug!(watch = %self.what, objects = store.objects.len(), "route cache synced");
                }
                store.current = true;
                self.first_sync.send_if_modified(|s| {
                    let first = s.is_none();
                    if first {
                        *s = Some(true);
                    }
                    first
                });
            }
            Event::Apply(obj) => {
                if let Some((name, cached)) = slim(&obj) {
                    store.objects.insert(name, Arc::new(cached));
                }
            }
            Event::Delete(obj) => {
                if let Some(name) = obj.metadata.name.as_deref() {
                    store.objects.remove(name);
                }
            }
        }
    }

    /// A watch error: events may have been missed, so nothing is served until the
    /// watcher's next full list.
    fn failed(&self, error: &watcher::Error) {
        let mut store = burst_core::lock(&self.store);
        if store.current || !store.warned {
            // Without `list`/`watch` permissions this repeats (with backoff): say it once.
            tracing::warn!(watch = %self.what, error = %error, "watching routes failed; reading them with GETs until the watch recovers");
            store.warned = true;
        } else {
            tracing::debug!(watch = %self.what, error = %error, "watching routes failed; retrying");
        }
        store.current = false;
        self.first_sync.send_if_modified(|s| {
            let first = s.is_none();
            if first {
                *s = Some(false);
            }
            first
        });
    }
}

/// Feeds `watch` from a kube-runtime watcher until the watch is dropped.
async fn run_watch(api: Api<DynamicObject>, watch: Weak<Watch>, what: String) {
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    tracing::debug!(watch = %what, "route watch starting");
    while let Some(event) = events.next().await {
        let Some(watch) = watch.upgrade() else {
            return;
        };
        match event {
            Ok(ev) => watch.observe(ev),
            Err(e) => watch.failed(&e),
        }
    }
}

/// The fields of `obj` a router reads, and its name. `None` without a name.
fn slim(obj: &DynamicObject) -> Option<(String, CachedObject)> {
    let name = obj.metadata.name.clone()?;
    let mut metadata = Map::new();
    metadata.insert("name".to_owned(), Value::String(name.clone()));
    if let Some(ns) = &obj.metadata.namespace {
        metadata.insert("namespace".to_owned(), Value::String(ns.clone()));
    }
    if let Some(rv) = &obj.metadata.resource_version {
        metadata.insert("resourceVersion".to_owned(), Value::String(rv.clone()));
    }
    let mut value = Map::new();
    if let Some(types) = &obj.types {
        value.insert(
            "apiVersion".to_owned(),
            Value::String(types.api_version.clone()),
        );
        value.insert("kind".to_owned(), Value::String(types.kind.clone()));
    }
    value.insert("metadata".to_owned(), Value::Object(metadata));
    if let Some(spec) = obj.data.get("spec") {
        value.insert("spec".to_owned(), spec.clone());
    }
    Some((
        name,
        CachedObject {
            value: Value::Object(value),
            resource_version: obj.metadata.resource_version.clone(),
        },
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn object(name: &str, rv: &str, weight: u32) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": name, "namespace": "ns", "resourceVersion": rv,
                         "uid": "u", "annotations": {"a": "b"},
                         "managedFields": [{"manager": "kubectl"}]},
            "spec": {"http": [{"route": [{"destination": {"host": "h", "subset": "primary"}, "weight": weight}]}]},
            "status": {"x": 1}
        }))
        .unwrap()
    }

    fn watch() -> Watch {
        Watch {
            store: Mutex::new(Store::default()),
            first_sync: tokio::sync::watch::Sender::new(None),
            task: Mutex::new(None),
            what: "test".to_owned(),
        }
    }

    #[test]
    fn the_copy_keeps_only_what_routers_read() {
        let (name, c) = slim(&object("a", "7", 100)).unwrap();
        assert_eq!(name, "a");
        assert_eq!(c.resource_version.as_deref(), Some("7"));
        assert_eq!(
            c.value,
            json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
                   "metadata": {"name": "a", "namespace": "ns", "resourceVersion": "7"},
                   "spec": {"http": [{"route": [{"destination": {"host": "h", "subset": "primary"}, "weight": 100}]}]}})
        );
    }

    #[tokio::test]
    async fn serves_only_after_a_full_list_and_stops_on_errors() {
        let w = watch();
        w.observe(Event::Init);
        w.observe(Event::InitApply(object("a", "1", 100)));
        assert!(w.get("a").is_none(), "served before the list was done");
        w.observe(Event::InitDone);
        // The first list is done: nobody waits for it any more.
        w.first_list(std::time::Duration::from_secs(3600)).await;
        assert_eq!(w.get("a").unwrap().resource_version.as_deref(), Some("1"));
        assert!(w.get("b").is_none());

        w.observe(Event::Apply(object("a", "2", 50)));
        assert_eq!(w.get("a").unwrap().resource_version.as_deref(), Some("2"));

        w.failed(&watcher::Error::NoResourceVersion);
        assert!(w.get("a").is_none(), "served after a watch error");
        // The re-list replaces the copy: objects deleted meanwhile disappear.
        w.observe(Event::Init);
        w.observe(Event::InitApply(object("b", "5", 0)));
        assert!(w.get("a").is_none());
        w.observe(Event::InitDone);
        assert!(w.get("a").is_none());
        assert_eq!(w.get("b").unwrap().resource_version.as_deref(), Some("5"));
        w.observe(Event::Delete(object("b", "6", 0)));
        assert!(w.get("b").is_none());
    }
}
