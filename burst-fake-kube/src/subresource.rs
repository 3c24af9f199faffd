//! The `status` subresource of custom resources, with the real API server's split of
//! ownership:
//!
//! - for a resource whose CRD enables `subresources.status` (see
//!   [`FakeKube::install_crd`]), writes to the main resource ignore `.status` (it is kept
//!   as stored; on create it is dropped), and writes to `/status` change only `.status`;
//! - `GET /status` returns the whole object; `PUT /status` needs the current
//!   resourceVersion; `PATCH /status` takes merge, JSON and apply patches; a write that
//!   changes the status bumps `metadata.resourceVersion` but not `metadata.generation`.
//!
//! Other subresources answer 404, as before.

use axum::http::{Method, StatusCode};
use serde_json::{Map, Value};

use crate::router::{Shared, lock};
use crate::status::ApiError;
use crate::store::{PatchKind, ResourceRef};
use crate::{Error, FakeKube};

impl FakeKube {
    /// Serves `.../{plural}/{name}/status` for the custom resource described by `crd`
    /// (an `apiextensions.k8s.io/v1` CustomResourceDefinition as JSON), if its first
    /// version enables `subresources.status`. Returns whether it does.
    pub fn install_crd(&self, crd: &Value) -> Result<bool, Error> {
        let group = crd.pointer("/spec/group").and_then(Value::as_str);
        let plural = crd.pointer("/spec/names/plural").and_then(Value::as_str);
        let (Some(group), Some(plural)) = (group, plural) else {
            return Err(Error::Api(ApiError::bad_request(
                "not a CustomResourceDefinition: spec.group and spec.names.plural are required",
            )));
        };
        let status = crd
            .pointer("/spec/versions")
            .and_then(Value::as_array)
            .is_some_and(|vs| {
                vs.iter()
                    .any(|v| v.pointer("/subresources/status").is_some())
            });
        if status {
            self.enable_status_subresource(group, plural);
        }
        Ok(status)
    }

    /// Serves the `status` subresource of `group`/`plural`.
    pub fn enable_status_subresource(&self, group: &str, plural: &str) {
        lock(&self.shared.store)
            .status_subresources
            .insert((group.to_owned(), plural.to_owned()));
    }
}

fn with_status(mut obj: Value, status: Option<&Value>) -> Value {
    match status {
        Some(s) => obj["status"] = s.clone(),
        None => {
            if let Some(m) = obj.as_object_mut() {
                m.remove("status");
            }
        }
    }
    obj
}

/// Serves a request on `.../status`.
pub(crate) fn serve_status(
    shared: &Shared,
    method: &Method,
    r: &ResourceRef,
    content_type: &str,
    body: &[u8],
    dry_run: bool,
) -> Result<(StatusCode, Value), ApiError> {
    let mut store = lock(&shared.store);
    let name = r.name.clone().unwrap_or_default();
    if !store
        .status_subresources
        .contains(&(r.group.clone(), r.plural.clone()))
    {
        return Err(ApiError::new(
            404,
            format!(
                "the server could not find the requested resource (status subresource of {} is not enabled; call FakeKube::install_crd)",
                r.plural
            ),
        ));
    }
    let main = ResourceRef {
        subresource: None,
        ..r.clone()
    };
    let current = store.get(&main)?;
    let current_rv = current
        .pointer("/metadata/resourceVersion")
        .cloned()
        .unwrap_or(Value::Null);
    let parse = |b: &[u8]| -> Result<Value, ApiError> {
        serde_json::from_slice(b)
            .map_err(|e| ApiError::bad_request(format!("error decoding request body: {e}")))
    };
    let (candidate, rv) = match *method {
        Method::GET => return Ok((StatusCode::OK, current)),
        Method::PUT => {
            let b = parse(body)?;
            let rv = b
                .pointer("/metadata/resourceVersion")
                .cloned()
                .ok_or_else(|| {
                    ApiError::invalid(
                        &r.group,
                        &r.plural,
                        &name,
                        "metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                    )
                })?;
            (with_status(current.clone(), b.get("status")), rv)
        }
        Method::PATCH => {
            let mut patched = current.clone();
            match PatchKind::from_content_type(content_type) {
                Some(PatchKind::Merge | PatchKind::Apply) => {
                    json_patch::merge(&mut patched, &parse(body)?);
                }
                Some(PatchKind::Json) => {
                    let p: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                        ApiError::bad_request(format!("error decoding JSON patch: {e}"))
                    })?;
                    json_patch::patch(&mut patched, &p).map_err(|e| {
                        ApiError::invalid(&r.group, &r.plural, &name, e.to_string())
                    })?;
                }
                _ => {
                    return Err(ApiError::new(
                        415,
                        format!(
                            "the body of the request was in an unknown format ({content_type:?})"
                        ),
                    ));
                }
            }
            let rv = patched
                .pointer("/metadata/resourceVersion")
                .cloned()
                .unwrap_or(current_rv.clone());
            (with_status(current.clone(), patched.get("status")), rv)
        }
        _ => {
            return Err(ApiError::new(
                405,
                format!(
                    "the server does not allow this method on the requested resource ({method} status)"
                ),
            ));
        }
    };
    let mut candidate = candidate;
    if !candidate.get("metadata").is_some_and(Value::is_object) {
        candidate["metadata"] = Value::Object(Map::new());
    }
    candidate["metadata"]["resourceVersion"] = rv;
    let written = store.replace(r, candidate, dry_run)?;
    Ok((StatusCode::OK, written.object))
}
