//! `?watch=true`: a stream of changes, as the real API server sends it.
//!
//! Every write the [`Store`](crate::Store) commits is appended to a [`ChangeLog`] (deletes
//! take a new resourceVersion, as in etcd). A watch request then gets, as newline-separated
//! JSON `WatchEvent`s:
//!
//! - with `resourceVersion` unset or `0`: an `ADDED` event per existing object, then changes;
//! - with `resourceVersion=N`: every change after `N` (`ERROR` with a `410 Expired` Status
//!   when `N` is older than the log keeps, so clients re-list, as with a compacted etcd);
//! - `BOOKMARK` events every second when `allowWatchBookmarks=true`;
//! - the end of the stream after `timeoutSeconds` (default 30 min).
//!
//! Equality label selectors and the `metadata.name` / `metadata.namespace` field selectors
//! are honoured (kube-rs uses the latter to watch one object). Fault rules apply to watch
//! requests like to any other.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::router::{Shared, lock, parse_path, status_response};
use crate::status::ApiError;
use crate::store::{ObjectKey, ResourceRef};

/// Changes kept for watches that resume from a resourceVersion.
pub const LOG_CAPACITY: usize = 10_000;

/// Interval of `BOOKMARK` events.
pub const BOOKMARK_EVERY: Duration = Duration::from_secs(1);

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeKind {
    /// Created.
    Added,
    /// Changed.
    Modified,
    /// Deleted.
    Deleted,
}

impl ChangeKind {
    fn as_str(self) -> &'static str {
        match self {
            ChangeKind::Added => "ADDED",
            ChangeKind::Modified => "MODIFIED",
            ChangeKind::Deleted => "DELETED",
        }
    }
}

/// One committed change.
#[derive(Debug, Clone)]
pub struct Change {
    /// The resourceVersion of the change.
    pub revision: u64,
    /// What happened.
    pub kind: ChangeKind,
    /// Which object.
    pub key: ObjectKey,
    /// The object after the change (before it, for deletes).
    pub object: Value,
}

/// The recent changes of a store, and a wake-up for watchers.
#[derive(Debug, Default)]
pub struct ChangeLog {
    entries: VecDeque<Change>,
    /// Revisions up to this one are no longer in `entries`.
    compacted: u64,
    notify: Arc<Notify>,
}

impl ChangeLog {
    /// Appends a change (the object's `metadata.resourceVersion` is its revision).
    pub fn record(&mut self, kind: ChangeKind, key: &ObjectKey, object: &Value) {
        let revision = object
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.entries.push_back(Change {
            revision,
            kind,
            key: key.clone(),
            object: object.clone(),
        });
        while self.entries.len() > LOG_CAPACITY {
            if let Some(c) = self.entries.pop_front() {
                self.compacted = c.revision;
            }
        }
        self.notify.notify_waiters();
    }

    /// Changes after `revision`, oldest first.
    pub fn since(&self, revision: u64) -> impl Iterator<Item = &Change> {
        self.entries.iter().filter(move |c| c.revision > revision)
    }

    /// Whether changes after `revision` are all still kept.
    pub fn covers(&self, revision: u64) -> bool {
        revision >= self.compacted
    }

    /// Forgets every change up to now, as an etcd compaction does (watches resuming from
    /// an older resourceVersion get `410 Expired`).
    pub fn compact(&mut self, up_to: u64) {
        self.entries.retain(|c| c.revision > up_to);
        self.compacted = self.compacted.max(up_to);
    }

    fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }
}

impl crate::Store {
    /// The change log (e.g. to [`ChangeLog::compact`] it in a test).
    pub fn changes_mut(&mut self) -> &mut ChangeLog {
        &mut self.changes
    }
}

/// Which objects a watch wants.
#[derive(Debug, Clone)]
struct Filter {
    r: ResourceRef,
    labels: Vec<(String, String)>,
    name: Option<String>,
    namespace: Option<String>,
}

impl Filter {
    fn matches(&self, key: &ObjectKey, obj: &Value) -> bool {
        key.group == self.r.group
            && key.plural == self.r.plural
            && (self.r.namespace.is_none() || key.namespace == self.r.namespace)
            && self
                .namespace
                .as_ref()
                .is_none_or(|n| key.namespace.as_ref() == Some(n))
            && self.r.name.as_ref().is_none_or(|n| *n == key.name)
            && self.name.as_ref().is_none_or(|n| *n == key.name)
            && self.labels.iter().all(|(k, v)| {
                obj.pointer("/metadata/labels")
                    .and_then(|l| l.get(k))
                    .and_then(Value::as_str)
                    == Some(v.as_str())
            })
    }

    fn at_version(&self, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(self.r.api_version());
        o
    }
}

fn pairs(s: &str, what: &str) -> Result<Vec<(String, String)>, ApiError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let p = p.trim();
            match p.split_once("==").or_else(|| p.split_once('=')) {
                Some((k, v)) if !k.contains('!') => Ok((k.trim().to_owned(), v.trim().to_owned())),
                _ => Err(ApiError::bad_request(format!(
                    "unable to parse {what} `{p}`: only equality requirements are supported by this fake's watch"
                ))),
            }
        })
        .collect()
}

fn line(value: &Value) -> Bytes {
    let mut s = value.to_string();
    s.push('\n');
    Bytes::from(s)
}

fn event(kind: &str, object: Value) -> Bytes {
    line(&json!({"type": kind, "object": object}))
}

struct WatchState {
    shared: Arc<Shared>,
    filter: Filter,
    last: u64,
    pending: VecDeque<Bytes>,
    deadline: Instant,
    bookmarks: bool,
    next_bookmark: Instant,
    done: bool,
}

/// Answers a watch request (called by the router for `?watch=true`).
pub(crate) fn serve_watch(
    shared: Arc<Shared>,
    path: &str,
    query: &HashMap<String, String>,
) -> Response {
    match start(shared, path, query) {
        Ok(state) => {
            let stream = futures::stream::unfold(state, next_chunk);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(stream),
            )
                .into_response()
        }
        Err(e) => status_response(&e),
    }
}

fn start(
    shared: Arc<Shared>,
    path: &str,
    query: &HashMap<String, String>,
) -> Result<WatchState, ApiError> {
    let r = parse_path(path)
        .ok_or_else(|| ApiError::new(404, "the server could not find the requested resource"))?;
    if r.subresource.is_some() {
        return Err(ApiError::new(405, "watch is not supported on subresources"));
    }
    let labels = pairs(
        query.get("labelSelector").map(String::as_str).unwrap_or(""),
        "label selector",
    )?;
    let mut name = None;
    let mut namespace = None;
    for (k, v) in pairs(
        query.get("fieldSelector").map(String::as_str).unwrap_or(""),
        "field selector",
    )? {
        match k.as_str() {
            "metadata.name" => name = Some(v),
            "metadata.namespace" => namespace = Some(v),
            other => {
                return Err(ApiError::bad_request(format!(
                    "field label not supported: {other}"
                )));
            }
        }
    }
    let filter = Filter {
        r,
        labels,
        name,
        namespace,
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .filter(|t| *t > 0)
        .unwrap_or(1800)
        .min(3600);
    let since = query
        .get("resourceVersion")
        .filter(|v| !v.is_empty() && *v != "0")
        .map(|v| {
            v.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("invalid resourceVersion `{v}`: not a number"))
            })
        })
        .transpose()?;
    let mut pending = VecDeque::new();
    let store = lock(&shared.store);
    let last = match since {
        None => {
            for key in store.keys() {
                if let Some(obj) = store.object(key)
                    && filter.matches(key, obj)
                {
                    pending.push_back(event("ADDED", filter.at_version(obj)));
                }
            }
            store.revision()
        }
        Some(rv) if !store.changes.covers(rv) => {
            pending.push_back(event(
                "ERROR",
                ApiError::new(410, format!("too old resource version: {rv}"))
                    .reason("Expired")
                    .to_status(),
            ));
            u64::MAX
        }
        Some(rv) => rv,
    };
    drop(store);
    let now = Instant::now();
    Ok(WatchState {
        shared,
        filter,
        last,
        done: last == u64::MAX,
        pending,
        deadline: now + Duration::from_secs(timeout),
        bookmarks: query
            .get("allowWatchBookmarks")
            .is_some_and(|v| v == "true" || v == "1"),
        next_bookmark: now + BOOKMARK_EVERY,
    })
}

async fn next_chunk(mut s: WatchState) -> Option<(Result<Bytes, Infallible>, WatchState)> {
    loop {
        if let Some(chunk) = s.pending.pop_front() {
            return Some((Ok(chunk), s));
        }
        if s.done || Instant::now() >= s.deadline {
            return None;
        }
        let notify = lock(&s.shared.store).changes.notifier();
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let store = lock(&s.shared.store);
            let mut newest = s.last;
            for c in store.changes.since(s.last) {
                newest = newest.max(c.revision);
                if s.filter.matches(&c.key, &c.object) {
                    s.pending
                        .push_back(event(c.kind.as_str(), s.filter.at_version(&c.object)));
                }
            }
            s.last = newest;
        }
        if !s.pending.is_empty() {
            continue;
        }
        tokio::select! {
            _ = &mut notified => {}
            _ = tokio::time::sleep_until(s.deadline) => return None,
            _ = tokio::time::sleep_until(s.next_bookmark) => {
                s.next_bookmark = Instant::now() + BOOKMARK_EVERY;
                if s.bookmarks {
                    let rv = lock(&s.shared.store).revision().max(s.last);
                    let kind = s.filter.r.plural.clone();
                    s.pending.push_back(event("BOOKMARK", json!({
                        "apiVersion": s.filter.r.api_version(),
                        "kind": kind,
                        "metadata": {"resourceVersion": rv.to_string()},
                    })));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str) -> ObjectKey {
        ObjectKey {
            group: "g".into(),
            plural: "things".into(),
            namespace: Some("n".into()),
            name: name.into(),
        }
    }

    #[test]
    fn log_keeps_order_and_compacts() {
        let mut log = ChangeLog::default();
        for i in 1..=3u64 {
            log.record(
                ChangeKind::Modified,
                &key("a"),
                &json!({"metadata": {"resourceVersion": i.to_string()}}),
            );
        }
        assert_eq!(log.since(1).map(|c| c.revision).collect::<Vec<_>>(), [2, 3]);
        log.compact(2);
        assert!(!log.covers(1));
        assert!(log.covers(2));
        assert_eq!(log.since(0).count(), 1);
    }

    #[test]
    fn selectors_parse_equality_only() {
        assert_eq!(
            pairs("a=b,c==d", "label selector").unwrap(),
            [("a".into(), "b".into()), ("c".into(), "d".into())]
        );
        assert!(pairs("a!=b", "label selector").is_err());
        assert!(pairs("a in (b)", "label selector").is_err());
    }
}
