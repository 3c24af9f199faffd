//! [`EndpointWatcher`]: the ready endpoints of one Service, from a watch of its
//! EndpointSlices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::Error;

/// The label that ties an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";

/// One ready endpoint of a Service: a pod's address and the ports its slice lists.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ReadyEndpoint {
    /// The address (an IP address for `IPv4`/`IPv6` slices).
    pub address: String,
    /// The pod behind it (`targetRef` of kind Pod), when the slice names one.
    pub pod: Option<String>,
    /// The slice's ports by name (`""` for an unnamed port).
    pub ports: BTreeMap<String, u16>,
}

impl ReadyEndpoint {
    /// A stable key for the endpoint: the pod's name, else the address.
    pub fn key(&self) -> &str {
        self.pod.as_deref().unwrap_or(&self.address)
    }
}

/// Watches the EndpointSlices of one Service (label `kubernetes.io/service-name`) and
/// keeps them in a reflector store, so the ready endpoints are read from memory at any
/// time; the API server pushes every change (watch, not poll). The watch restarts with
/// backoff after errors (logged with `tracing`). Dropping the watcher stops the watch.
///
/// One watcher serves every reader of the same Service: the pod source, and a signal that
/// counts ready endpoints. Share it behind an `Arc`.
#[derive(Debug)]
pub struct EndpointWatcher {
    namespace: String,
    service: String,
    store: Store<EndpointSlice>,
    synced: Arc<AtomicBool>,
    changes: watch::Receiver<u64>,
    task: JoinHandle<()>,
}

/// One [`EndpointWatcher`] per (namespace, Service), shared by every user: the pod
/// sources and ready-endpoint signals of all policies on the same Service read one watch.
///
/// [`get_or_start`](Self::get_or_start) hands out an `Arc` of the running watcher, or
/// starts one; the registry itself holds only a weak reference, so the watch stops when
/// the last user drops its handle. Keep one registry per API server (per kube client):
/// watchers are keyed by namespace and Service only. Cloning shares the registry.
#[derive(Debug, Clone, Default)]
pub struct EndpointWatchers {
    inner: Arc<WatchersInner>,
}

#[derive(Debug, Default)]
struct WatchersInner {
    watchers: Mutex<HashMap<(String, String), Weak<EndpointWatcher>>>,
    started: AtomicU64,
}

impl EndpointWatchers {
    /// An empty registry.
    pub fn new() -> Self {
        EndpointWatchers::default()
    }

    /// The running watcher of Service `namespace/service`, or a new one started with
    /// `client` when no user holds one (see [`EndpointWatcher::start`]).
    pub fn get_or_start(
        &self,
        client: &kube::Client,
        namespace: &str,
        service: &str,
    ) -> Result<Arc<EndpointWatcher>, Error> {
        let mut watchers = burst_core::lock(&self.inner.watchers);
        watchers.retain(|_, w| w.strong_count() > 0);
        let key = (namespace.to_owned(), service.to_owned());
        if let Some(running) = watchers.get(&key).and_then(Weak::upgrade) {
            return Ok(running);
        }
        let watcher = Arc::new(EndpointWatcher::start(client.clone(), namespace, service)?);
        watchers.insert(key, Arc::downgrade(&watcher));
        self.inner.started.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(namespace, service, "EndpointSlice watch started");
        Ok(watcher)
    }

    /// How many watches this registry has started in all (a shared watcher counts once).
    pub fn started(&self) -> u64 {
        self.inner.started.load(Ordering::Relaxed)
    }

    /// How many watchers some user still holds.
    pub fn active(&self) -> usize {
        burst_core::lock(&self.inner.watchers)
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }
}

impl EndpointWatcher {
    /// Starts watching the EndpointSlices of Service `namespace/service` with `client`.
    /// Needs a Tokio runtime; needs `list` and `watch` on `endpointslices.discovery.k8s.io`
    /// in `namespace`.
    pub fn start(
        client: kube::Client,
        namespace: &str,
        service: &str,
    ) -> Result<EndpointWatcher, Error> {
        if namespace.is_empty() {
            return Err(Error::config(
                "namespace",
                "empty namespace; give the namespace of the Service",
            ));
        }
        if service.is_empty() || service.contains(['/', ',', '=', ' ']) {
            return Err(Error::config(
                "service",
                format!("`{service}` is not a Service name; give e.g. `checkout`"),
            ));
        }
        let api: Api<EndpointSlice> = Api::namespaced(client, namespace);
        let config = watcher::Config::default().labels(&format!("{SERVICE_NAME_LABEL}={service}"));
        let (store, writer) = reflector::store();
        let synced = Arc::new(AtomicBool::new(false));
        let (tx, changes) = watch::channel(0u64);
        let stream = reflector::reflector(writer, watcher::watcher(api, config).default_backoff());
        let task = {
            let synced = synced.clone();
            let (namespace, service) = (namespace.to_owned(), service.to_owned());
            tokio::spawn(async move {
                let mut stream = std::pin::pin!(stream);
                while let Some(event) = stream.next().await {
                    match event {
                        Ok(event) => {
                            if matches!(event, watcher::Event::InitDone) {
                                synced.store(true, Ordering::Release);
                            }
                            tx.send_modify(|n| *n = n.wrapping_add(1));
                        }
                        Err(e) => tracing::warn!(
                            namespace = %namespace,
                            service = %service,
                            error = %burst_core::error_chain(&e),
                            "EndpointSlice watch failed; retrying with backoff"
                        ),
                    }
                }
            })
        };
        Ok(EndpointWatcher {
            namespace: namespace.to_owned(),
            service: service.to_owned(),
            store,
            synced,
            changes,
            task,
        })
    }

    /// The Service's namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The Service's name.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// Whether the first full list of slices has arrived (before that, "no endpoints" means
    /// "not known yet").
    pub fn is_synced(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// Waits up to `timeout` for the first full list of slices.
    pub async fn wait_synced(&self, timeout: Duration) -> Result<(), Error> {
        let not_synced = || Error::NotSynced {
            namespace: self.namespace.clone(),
            service: self.service.clone(),
            after: timeout,
        };
        match tokio::time::timeout(timeout, self.store.wait_until_ready()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(self.stopped()),
            Err(_) => return Err(not_synced()),
        }
        // The store is ready when it applied the list; the flag follows right after.
        let mut changes = self.changes.clone();
        let until = tokio::time::Instant::now() + timeout;
        while !self.is_synced() {
            match tokio::time::timeout_at(until, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(self.stopped()),
                Err(_) => return Err(not_synced()),
            }
        }
        Ok(())
    }

    /// Waits up to `timeout` until the ready endpoints satisfy `condition` (checked now and
    /// after every change the watch delivers); returns them, or `None` on timeout.
    pub async fn wait_for(
        &self,
        timeout: Duration,
        condition: impl Fn(&[ReadyEndpoint]) -> bool,
    ) -> Option<Vec<ReadyEndpoint>> {
        let mut changes = self.changes.clone();
        let until = tokio::time::Instant::now() + timeout;
        loop {
            changes.borrow_and_update();
            let now = self.ready_endpoints();
            if self.is_synced() && condition(&now) {
                return Some(now);
            }
            match tokio::time::timeout_at(until, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// The ready endpoints of the Service now, sorted by address.
    ///
    /// An endpoint counts as ready unless its `conditions.ready` is `false` (a missing
    /// condition means ready, as the API documents). Each carries the ports of its slice;
    /// an endpoint listed identically in two slices (as while slices are rebalanced)
    /// appears once.
    pub fn ready_endpoints(&self) -> Vec<ReadyEndpoint> {
        let mut ready = BTreeSet::new();
        for slice in self.store.state() {
            let ports: BTreeMap<String, u16> = slice
                .ports
                .iter()
                .flatten()
                .filter_map(|p| {
                    let port = u16::try_from(p.port?).ok()?;
                    Some((p.name.clone().unwrap_or_default(), port))
                })
                .collect();
            for endpoint in slice.endpoints.iter().flatten() {
                let is_ready = endpoint
                    .conditions
                    .as_ref()
                    .and_then(|c| c.ready)
                    .unwrap_or(true);
                if !is_ready {
                    continue;
                }
                let pod = endpoint
                    .target_ref
                    .as_ref()
                    .filter(|r| r.kind.as_deref() == Some("Pod"))
                    .and_then(|r| r.name.clone());
                for address in &endpoint.addresses {
                    ready.insert(ReadyEndpoint {
                        address: address.clone(),
                        pod: pod.clone(),
                        ports: ports.clone(),
                    });
                }
            }
        }
        ready.into_iter().collect()
    }

    /// How many ready endpoints the Service has now.
    pub fn ready_count(&self) -> usize {
        self.ready_endpoints().len()
    }

    /// Whether the watch task still runs.
    pub fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    fn stopped(&self) -> Error {
        Error::WatchStopped {
            namespace: self.namespace.clone(),
            service: self.service.clone(),
        }
    }
}

impl Drop for EndpointWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}
