//! HTTP side: Kubernetes REST paths to store operations, and recorded writes.
//!
//! Paths follow the real API:
//! `/api/v1[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]` for the core group and
//! `/apis/{group}/{version}[/namespaces/{ns}]/{plural}[/{name}[/{subresource}]]` for the rest.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::fault::Faults;
use crate::status::ApiError;
use crate::store::{PatchKind, ResourceRef, Store};

/// Largest request body accepted, as the real API server (3 MiB).
pub const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// A write request as received, for assertions.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedWrite {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: Method,
    /// Request path.
    pub path: String,
    /// Raw query string (`dryRun=All&fieldManager=burst`).
    pub query: String,
    /// `Content-Type` header.
    pub content_type: String,
    /// Body, parsed as JSON when it is JSON, else a string.
    pub body: Value,
    /// Whether `dryRun=All` was set.
    pub dry_run: bool,
    /// `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// HTTP status of the answer.
    pub status: u16,
}

/// State shared by the HTTP handlers and the [`crate::FakeKube`] handle.
#[derive(Debug, Default)]
pub struct Shared {
    pub(crate) store: Mutex<Store>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) writes: Mutex<Vec<RecordedWrite>>,
}

/// Locks a mutex, recovering from poisoning (a panicking test must not hide the state).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// Parses a Kubernetes REST path.
pub fn parse_path(path: &str) -> Option<ResourceRef> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match segs.as_slice() {
        ["api", version, rest @ ..] => (String::new(), (*version).to_owned(), rest),
        ["apis", group, version, rest @ ..] => ((*group).to_owned(), (*version).to_owned(), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        _ => (None, rest),
    };
    let (plural, name, subresource) = match rest {
        [plural] => (*plural, None, None),
        [plural, name] => (*plural, Some(*name), None),
        [plural, name, sub] => (*plural, Some(*name), Some(*sub)),
        _ => return None,
    };
    if plural.is_empty() || name.is_some_and(str::is_empty) {
        return None;
    }
    Some(ResourceRef {
        group,
        version,
        plural: plural.to_owned(),
        namespace,
        name: name.map(str::to_owned),
        subresource: subresource.map(str::to_owned),
    })
}

/// The axum application serving the store.
pub fn app(shared: Arc<Shared>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(shared)
}

/// A `Status` response.
pub fn status_response(e: &ApiError) -> Response {
    let code = StatusCode::from_u16(e.code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    json_response(code, &e.to_status())
}

fn json_response(code: StatusCode, body: &Value) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn handle(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return crate::watch::serve_watch(shared, uri.path(), &query);
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // DELETE may carry `dryRun` in its DeleteOptions body instead of the query.
    let body_dry_run = method == Method::DELETE
        && serde_json::from_slice::<Value>(&body).is_ok_and(|b| {
            b.get("dryRun")
                .and_then(Value::as_array)
                .is_some_and(|a| a.iter().any(|v| v == "All"))
        });
    let dry_run = match query.get("dryRun").map(String::as_str) {
        None | Some("") => Ok(body_dry_run),
        Some("All") => Ok(true),
        Some(other) => Err(ApiError::bad_request(format!(
            "dryRun: Unsupported value: \"{other}\": supported values: \"All\""
        ))),
    };
    let field_manager = query.get("fieldManager").cloned();
    let result = dry_run.and_then(|dry_run| {
        serve(
            &shared,
            &method,
            uri.path(),
            &query,
            &content_type,
            &body,
            field_manager.as_deref(),
            dry_run,
        )
    });
    let (code, response) = match result {
        Ok((code, value)) => (code.as_u16(), json_response(code, &value)),
        Err(e) => (e.code, status_response(&e)),
    };
    if matches!(
        method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        let parsed = serde_json::from_slice(&body)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&body).into_owned()));
        lock(&shared.writes).push(RecordedWrite {
            method,
            path: uri.path().to_owned(),
            query: uri.query().unwrap_or("").to_owned(),
            content_type,
            body: parsed,
            dry_run: query.get("dryRun").is_some_and(|v| v == "All") || body_dry_run,
            field_manager,
            status: code,
        });
    }
    response
}

#[allow(clippy::too_many_arguments)]
fn serve(
    shared: &Shared,
    method: &Method,
    path: &str,
    query: &HashMap<String, String>,
    content_type: &str,
    body: &[u8],
    field_manager: Option<&str>,
    dry_run: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let r = parse_path(path)
        .ok_or_else(|| ApiError::new(404, "the server could not find the requested resource"))?;
    if query.get("watch").is_some_and(|w| w == "true" || w == "1") {
        return Err(ApiError::new(
            405,
            "watch is not supported by this fake API server",
        ));
    }
    if let Some(sub) = &r.subresource {
        if sub == "status" {
            return crate::subresource::serve_status(
                shared,
                method,
                &r,
                content_type,
                body,
                dry_run,
            );
        }
        return Err(ApiError::new(
            404,
            format!(
                "the server could not find the requested resource (subresource `{sub}` is not served by this fake)"
            ),
        ));
    }
    let mut store = lock(&shared.store);
    let parse_json = |b: &[u8]| -> Result<Value, ApiError> {
        serde_json::from_slice(b)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body as JSON: {e}")))
    };
    let ok = |v| Ok((StatusCode::OK, v));
    match (method, r.name.is_some()) {
        (&Method::GET, true) => ok(store.get(&r)?),
        (&Method::GET, false) => {
            ok(store.list(&r, query.get("labelSelector").map(String::as_str))?)
        }
        (&Method::POST, false) => {
            let w = store.create(&r, parse_json(body)?, dry_run)?;
            Ok((StatusCode::CREATED, w.object))
        }
        (&Method::PUT, true) => ok(store.replace(&r, parse_json(body)?, dry_run)?.object),
        (&Method::PATCH, true) => {
            let kind = PatchKind::from_content_type(content_type).ok_or_else(|| {
                ApiError::new(
                    415,
                    format!("the body of the request was in an unknown format ({content_type:?}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"),
                )
            })?;
            let w = store.patch(&r, kind, body, field_manager, dry_run)?;
            let code = if w.created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            Ok((code, w.object))
        }
        (&Method::DELETE, true) => ok(store.delete(&r, dry_run)?),
        _ => Err(ApiError::new(
            405,
            format!(
                "the server does not allow this method on the requested resource ({method} {path})"
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_like_the_api_server() {
        let r = parse_path("/apis/networking.istio.io/v1/namespaces/default/virtualservices/w")
            .unwrap();
        assert_eq!(r.group, "networking.istio.io");
        assert_eq!(r.namespace.as_deref(), Some("default"));
        assert_eq!(r.name.as_deref(), Some("w"));
        let r = parse_path("/api/v1/namespaces/default").unwrap();
        assert_eq!(
            (r.plural.as_str(), r.name.as_deref()),
            ("namespaces", Some("default"))
        );
        assert_eq!(r.namespace, None);
        let r = parse_path("/api/v1/namespaces/default/pods").unwrap();
        assert_eq!(r.plural, "pods");
        let r = parse_path("/apis/g/v1/namespaces/n/things/x/status").unwrap();
        assert_eq!(r.subresource.as_deref(), Some("status"));
        assert!(parse_path("/healthz").is_none());
        assert!(parse_path("/apis/g/v1/namespaces/n/things/x/status/extra").is_none());
    }
}
