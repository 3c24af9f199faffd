//! The object store: what etcd and the API server's registry do, minus persistence.
//!
//! Objects are kept per `(group, plural, namespace, name)`. All versions of a group share
//! storage, as with a CRD whose conversion strategy is `None`: a read at any version returns
//! the stored object with `apiVersion` rewritten to that version.
//!
//! Every write that changes an object takes the next value of one global counter as its
//! `metadata.resourceVersion`; a write that changes nothing keeps it. `metadata.generation`
//! starts at 1 and increments when anything outside `metadata` and `status` changes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use crate::status::{ApiError, group_resource};
use crate::watch::{ChangeKind, ChangeLog};

/// Which resource a request addresses: `/apis/{group}/{version}/namespaces/{ns}/{plural}/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ResourceRef {
    /// API group (`""` for the core group).
    pub group: String,
    /// API version.
    pub version: String,
    /// Resource plural (`virtualservices`).
    pub plural: String,
    /// Namespace, for namespaced requests.
    pub namespace: Option<String>,
    /// Object name, for requests on one object.
    pub name: Option<String>,
    /// Subresource (`status`, `scale`), if any.
    pub subresource: Option<String>,
}

impl ResourceRef {
    /// `group/version`, or `version` for the core group.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    fn name_or_empty(&self) -> &str {
        self.name.as_deref().unwrap_or("")
    }
}

/// Storage key of one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    /// API group.
    pub group: String,
    /// Resource plural.
    pub plural: String,
    /// Namespace (`None` for cluster-scoped objects).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

/// How a PATCH body is to be applied (from its `Content-Type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatchKind {
    /// `application/merge-patch+json` (RFC 7386).
    Merge,
    /// `application/json-patch+json` (RFC 6902).
    Json,
    /// `application/apply-patch+yaml`: server-side apply, with merge-patch semantics here.
    Apply,
    /// `application/strategic-merge-patch+json`: refused for custom resources.
    Strategic,
}

impl PatchKind {
    /// The patch kind for a `Content-Type`.
    pub fn from_content_type(ct: &str) -> Option<PatchKind> {
        match ct.split(';').next().unwrap_or("").trim() {
            "application/merge-patch+json" => Some(PatchKind::Merge),
            "application/json-patch+json" => Some(PatchKind::Json),
            "application/apply-patch+yaml" | "application/apply-patch+cbor" => {
                Some(PatchKind::Apply)
            }
            "application/strategic-merge-patch+json" => Some(PatchKind::Strategic),
            _ => None,
        }
    }
}

/// The outcome of a write: the object as stored (or as it would be, in a dry run) and
/// whether it was created.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// The resulting object.
    pub object: Value,
    /// `true` when the write created the object (201).
    pub created: bool,
}

/// All objects, and the resourceVersion counter.
#[derive(Debug, Default)]
pub struct Store {
    objects: BTreeMap<ObjectKey, Value>,
    revision: u64,
    uids: u64,
    /// Committed changes, for watches.
    pub(crate) changes: ChangeLog,
    /// `(group, plural)` of resources with a status subresource.
    pub(crate) status_subresources: BTreeSet<(String, String)>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Store::default()
    }

    /// The last resourceVersion handed out.
    pub fn revision(&self) -> u64 {
        self.revision
    }

    /// The stored object, as stored (its own `apiVersion`).
    pub fn object(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    /// Every stored key.
    pub fn keys(&self) -> impl Iterator<Item = &ObjectKey> {
        self.objects.keys()
    }

    /// Changes a stored object outside the API (another writer), bumping its
    /// resourceVersion and, if the spec changed, its generation. Returns `false` if absent.
    pub fn modify(&mut self, key: &ObjectKey, f: impl FnOnce(&mut Value)) -> bool {
        let Some(old) = self.objects.get(key).cloned() else {
            return false;
        };
        let mut new = old.clone();
        f(&mut new);
        let new = self.finish_update(&old, new);
        self.changes.record(ChangeKind::Modified, key, &new);
        self.objects.insert(key.clone(), new);
        true
    }

    /// Removes an object outside the API. Returns it, if it was there.
    pub fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        let gone = self.objects.remove(key)?;
        self.record_delete(key, &gone);
        Some(gone)
    }

    /// Records a delete in the change log; like etcd, a delete takes a new revision.
    fn record_delete(&mut self, key: &ObjectKey, gone: &Value) {
        let mut last = gone.clone();
        last["metadata"]["resourceVersion"] = json!(self.next_revision());
        self.changes.record(ChangeKind::Deleted, key, &last);
    }

    fn has_status_subresource(&self, r: &ResourceRef) -> bool {
        self.status_subresources
            .contains(&(r.group.clone(), r.plural.clone()))
    }

    fn key(r: &ResourceRef, name: &str) -> ObjectKey {
        ObjectKey {
            group: r.group.clone(),
            plural: r.plural.clone(),
            namespace: r.namespace.clone(),
            name: name.to_owned(),
        }
    }

    fn at_version(r: &ResourceRef, obj: &Value) -> Value {
        let mut o = obj.clone();
        o["apiVersion"] = json!(r.api_version());
        o
    }

    fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// GET one object.
    pub fn get(&self, r: &ResourceRef) -> Result<Value, ApiError> {
        let name = r.name_or_empty();
        self.objects
            .get(&Self::key(r, name))
            .map(|o| Self::at_version(r, o))
            .ok_or_else(|| ApiError::not_found(&r.group, &r.plural, name))
    }

    /// LIST objects of a resource, in one namespace or all, filtered by a label selector.
    pub fn list(&self, r: &ResourceRef, label_selector: Option<&str>) -> Result<Value, ApiError> {
        let selector = label_selector.map(parse_selector).transpose()?;
        let items: Vec<Value> = self
            .objects
            .iter()
            .filter(|(k, _)| {
                k.group == r.group
                    && k.plural == r.plural
                    && (r.namespace.is_none() || k.namespace == r.namespace)
            })
            .filter(|(_, o)| {
                selector
                    .as_ref()
                    .is_none_or(|s| s.iter().all(|req| req.matches(o)))
            })
            .map(|(_, o)| Self::at_version(r, o))
            .collect();
        let kind = items
            .first()
            .and_then(|o| o.get("kind"))
            .and_then(Value::as_str)
            .map(|k| format!("{k}List"))
            .unwrap_or_else(|| "List".to_owned());
        Ok(json!({
            "apiVersion": r.api_version(),
            "kind": kind,
            "metadata": {"resourceVersion": self.revision.to_string()},
            "items": items,
        }))
    }

    /// POST: creates an object.
    pub fn create(
        &mut self,
        r: &ResourceRef,
        body: Value,
        dry_run: bool,
    ) -> Result<Written, ApiError> {
        let mut obj = check_body(r, body)?;
        let name = match obj.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if !n.is_empty() => n.to_owned(),
            _ => match obj
                .pointer("/metadata/generateName")
                .and_then(Value::as_str)
            {
                Some(prefix) if !prefix.is_empty() => {
                    let n = format!("{prefix}{:05x}", self.uids + 1);
                    obj["metadata"]["name"] = json!(n);
                    n
                }
                _ => {
                    return Err(ApiError::invalid(
                        &r.group,
                        &r.plural,
                        "",
                        "metadata.name: Required value: name or generateName is required",
                    ));
                }
            },
        };
        if let Some(want) = &r.name
            && want != &name
        {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({name}) does not match the name on the URL ({want})"
            )));
        }
        let key = Self::key(r, &name);
        if self.objects.contains_key(&key) {
            return Err(ApiError::already_exists(&r.group, &r.plural, &name));
        }
        if let Some(ns) = &r.namespace {
            obj["metadata"]["namespace"] = json!(ns);
        }
        self.uids += 1;
        let meta = &mut obj["metadata"];
        meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012x}", self.uids));
        meta["creationTimestamp"] = json!(now_rfc3339());
        meta["generation"] = json!(1);
        if let Some(m) = meta.as_object_mut() {
            m.remove("resourceVersion");
        }
        if self.has_status_subresource(r)
            && let Some(m) = obj.as_object_mut()
        {
            m.remove("status");
        }
        if dry_run {
            obj["metadata"]["resourceVersion"] = json!((self.revision + 1).to_string());
        } else {
            obj["metadata"]["resourceVersion"] = json!(self.next_revision());
            self.changes.record(ChangeKind::Added, &key, &obj);
            self.objects.insert(key, obj.clone());
        }
        Ok(Written {
            object: Self::at_version(r, &obj),
            created: true,
        })
    }

    /// PUT: replaces an object. `metadata.resourceVersion` is required (as for custom
    /// resources) and must be the current one, else 409 Conflict.
    pub fn replace(
        &mut self,
        r: &ResourceRef,
        body: Value,
        dry_run: bool,
    ) -> Result<Written, ApiError> {
        let name = r.name_or_empty().to_owned();
        let obj = check_body(r, body)?;
        match obj.pointer("/metadata/name").and_then(Value::as_str) {
            Some(n) if n == name => {}
            other => {
                return Err(ApiError::bad_request(format!(
                    "the name of the object ({}) does not match the name on the URL ({name})",
                    other.unwrap_or("")
                )));
            }
        }
        let key = Self::key(r, &name);
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&r.group, &r.plural, &name))?;
        match obj
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
        {
            None | Some("") => {
                return Err(ApiError::invalid(
                    &r.group,
                    &r.plural,
                    &name,
                    format!(
                        "{} \"{name}\" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update",
                        group_resource(&r.group, &r.plural)
                    ),
                ));
            }
            Some(rv)
                if Some(rv)
                    != old
                        .pointer("/metadata/resourceVersion")
                        .and_then(Value::as_str) =>
            {
                return Err(ApiError::conflict(&r.group, &r.plural, &name));
            }
            Some(_) => {}
        }
        self.commit(r, key, &old, obj, dry_run)
    }

    /// PATCH: applies a merge patch, JSON patch, or server-side apply (merge semantics,
    /// creating the object if absent; `fieldManager` required).
    pub fn patch(
        &mut self,
        r: &ResourceRef,
        kind: PatchKind,
        body: &[u8],
        field_manager: Option<&str>,
        dry_run: bool,
    ) -> Result<Written, ApiError> {
        let name = r.name_or_empty().to_owned();
        let key = Self::key(r, &name);
        match kind {
            PatchKind::Strategic => {
                return Err(ApiError::new(
                    415,
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                ));
            }
            PatchKind::Apply => {
                if field_manager.is_none_or(str::is_empty) {
                    return Err(ApiError::invalid(
                        "meta.k8s.io",
                        "patchoptions",
                        "",
                        "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch",
                    ));
                }
                let applied = parse_apply_body(body)?;
                let applied = check_body(r, applied)?;
                if applied.pointer("/metadata/name").and_then(Value::as_str) != Some(name.as_str())
                {
                    return Err(ApiError::bad_request(format!(
                        "metadata.name in the applied object must be `{name}`, the name on the URL"
                    )));
                }
                let Some(old) = self.objects.get(&key).cloned() else {
                    return self.create(r, applied, dry_run);
                };
                let mut new = old.clone();
                json_patch::merge(&mut new, &applied);
                return self.commit(r, key, &old, new, dry_run);
            }
            PatchKind::Merge | PatchKind::Json => {}
        }
        let old = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&r.group, &r.plural, &name))?;
        let mut new = Self::at_version(r, &old);
        match kind {
            PatchKind::Merge => {
                let p: Value = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding merge patch: {e}"))
                })?;
                json_patch::merge(&mut new, &p);
            }
            _ => {
                let p: json_patch::Patch = serde_json::from_slice(body).map_err(|e| {
                    ApiError::bad_request(format!("error decoding JSON patch: {e}"))
                })?;
                json_patch::patch(&mut new, &p).map_err(|e| {
                    ApiError::invalid(
                        &r.group,
                        &r.plural,
                        &name,
                        format!(
                            "the server rejected our request due to an error in our request: {e}"
                        ),
                    )
                })?;
            }
        }
        if let Some(rv) = new
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            && Some(rv)
                != old
                    .pointer("/metadata/resourceVersion")
                    .and_then(Value::as_str)
        {
            return Err(ApiError::conflict(&r.group, &r.plural, &name));
        }
        self.commit(r, key, &old, new, dry_run)
    }

    /// DELETE: removes an object and returns it.
    pub fn delete(&mut self, r: &ResourceRef, dry_run: bool) -> Result<Value, ApiError> {
        let name = r.name_or_empty();
        let key = Self::key(r, name);
        let obj = self
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| ApiError::not_found(&r.group, &r.plural, name))?;
        if !dry_run {
            self.objects.remove(&key);
            self.record_delete(&key, &obj);
        }
        Ok(Self::at_version(r, &obj))
    }

    /// Stores `new` in place of `old` after checking what may not change.
    fn commit(
        &mut self,
        r: &ResourceRef,
        key: ObjectKey,
        old: &Value,
        mut new: Value,
        dry_run: bool,
    ) -> Result<Written, ApiError> {
        let name = key.name.clone();
        for field in ["name", "namespace"] {
            let ptr = format!("/metadata/{field}");
            let (o, n) = (old.pointer(&ptr), new.pointer(&ptr));
            if n.is_some() && o != n {
                return Err(ApiError::invalid(
                    &r.group,
                    &r.plural,
                    &name,
                    format!("metadata.{field}: Invalid value: field is immutable"),
                ));
            }
        }
        if !new.get("metadata").is_some_and(Value::is_object) {
            new["metadata"] = Value::Object(Map::new());
        }
        for field in [
            "name",
            "namespace",
            "uid",
            "creationTimestamp",
            "generation",
        ] {
            match old.get("metadata").and_then(|m| m.get(field)) {
                Some(v) => new["metadata"][field] = v.clone(),
                None => {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove(field);
                    }
                }
            }
        }
        // With a status subresource, the main resource cannot change the status.
        if r.subresource.is_none() && self.has_status_subresource(r) {
            match old.get("status") {
                Some(s) => new["status"] = s.clone(),
                None => {
                    if let Some(m) = new.as_object_mut() {
                        m.remove("status");
                    }
                }
            }
        }
        // Stored at the version written; kept as-is when nothing else changed.
        new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        let mut old_at_version = Self::at_version(r, old);
        old_at_version["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
        if new == old_at_version || new == *old {
            return Ok(Written {
                object: Self::at_version(r, old),
                created: false,
            });
        }
        let new = if dry_run {
            let mut n = self.bump_generation(old, new);
            n["metadata"]["resourceVersion"] = json!((self.revision + 1).to_string());
            n
        } else {
            let n = self.finish_update(old, new);
            self.changes.record(ChangeKind::Modified, &key, &n);
            self.objects.insert(key, n.clone());
            n
        };
        Ok(Written {
            object: Self::at_version(r, &new),
            created: false,
        })
    }

    fn bump_generation(&self, old: &Value, mut new: Value) -> Value {
        let strip = |v: &Value| {
            let mut v = v.clone();
            if let Some(m) = v.as_object_mut() {
                m.remove("metadata");
                m.remove("status");
                m.remove("apiVersion");
            }
            v
        };
        if strip(old) != strip(&new) {
            let g = old
                .pointer("/metadata/generation")
                .and_then(Value::as_u64)
                .unwrap_or(0);
            new["metadata"]["generation"] = json!(g + 1);
        }
        new
    }

    fn finish_update(&mut self, old: &Value, new: Value) -> Value {
        let mut n = self.bump_generation(old, new);
        n["metadata"]["resourceVersion"] = json!(self.next_revision());
        n
    }

    /// Inserts or overwrites an object directly (test setup), as at `apiVersion` of the
    /// object. Returns the stored object.
    pub fn seed(&mut self, plural: &str, obj: Value) -> Result<Value, ApiError> {
        let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        let (group, version) = match api_version.split_once('/') {
            Some((g, v)) => (g.to_owned(), v.to_owned()),
            None => (String::new(), api_version.to_owned()),
        };
        let r = ResourceRef {
            group,
            version,
            plural: plural.to_owned(),
            namespace: obj
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .map(str::to_owned),
            name: None,
            subresource: None,
        };
        if let Some(name) = obj.pointer("/metadata/name").and_then(Value::as_str) {
            self.objects.remove(&Self::key(&r, name));
        }
        self.create(&r, obj, false).map(|w| w.object)
    }
}

fn check_body(r: &ResourceRef, body: Value) -> Result<Value, ApiError> {
    if !body.is_object() {
        return Err(ApiError::bad_request(
            "the request body must be a JSON object",
        ));
    }
    let api_version = body.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    if api_version != r.api_version() {
        return Err(ApiError::bad_request(format!(
            "the API version in the data ({api_version}) does not match the expected API version ({})",
            r.api_version()
        )));
    }
    if body
        .get("kind")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(ApiError::bad_request(
            "Object 'Kind' is missing in the request body",
        ));
    }
    if let (Some(ns), Some(want)) = (
        body.pointer("/metadata/namespace").and_then(Value::as_str),
        r.namespace.as_deref(),
    ) && ns != want
    {
        return Err(ApiError::bad_request(
            "the namespace of the provided object does not match the namespace sent on the request",
        ));
    }
    let mut body = body;
    if !body.get("metadata").is_some_and(Value::is_object) {
        body["metadata"] = Value::Object(Map::new());
    }
    Ok(body)
}

fn parse_apply_body(body: &[u8]) -> Result<Value, ApiError> {
    if let Ok(v) = serde_json::from_slice::<Value>(body) {
        return Ok(v);
    }
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::bad_request("apply patch body is not UTF-8"))?;
    serde_saphyr::from_str::<Value>(text)
        .map_err(|e| ApiError::bad_request(format!("error decoding YAML apply patch: {e}")))
}

/// One requirement of a label selector.
#[derive(Debug)]
enum Requirement {
    Eq(String, String),
    NotEq(String, String),
    Exists(String),
    NotExists(String),
}

impl Requirement {
    fn matches(&self, obj: &Value) -> bool {
        let label = |k: &str| {
            obj.pointer("/metadata/labels")
                .and_then(|l| l.get(k))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match self {
            Requirement::Eq(k, v) => label(k).as_deref() == Some(v.as_str()),
            Requirement::NotEq(k, v) => label(k).as_deref() != Some(v.as_str()),
            Requirement::Exists(k) => label(k).is_some(),
            Requirement::NotExists(k) => label(k).is_none(),
        }
    }
}

fn parse_selector(s: &str) -> Result<Vec<Requirement>, ApiError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let p = p.trim();
            if let Some((k, v)) = p.split_once("!=") {
                Ok(Requirement::NotEq(k.trim().into(), v.trim().into()))
            } else if let Some((k, v)) = p.split_once("==").or_else(|| p.split_once('=')) {
                Ok(Requirement::Eq(k.trim().into(), v.trim().into()))
            } else if let Some(k) = p.strip_prefix('!') {
                Ok(Requirement::NotExists(k.trim().into()))
            } else if p.contains(' ') || p.contains('(') {
                Err(ApiError::bad_request(format!(
                    "unable to parse requirement `{p}`: set-based selectors (in, notin) are not supported by this fake"
                )))
            } else {
                Ok(Requirement::Exists(p.into()))
            }
        })
        .collect()
}

/// The current time as `2026-11-29T17:13:00Z`.
fn now_rfc3339() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vs_ref(name: Option<&str>) -> ResourceRef {
        ResourceRef {
            group: "networking.istio.io".into(),
            version: "v1".into(),
            plural: "virtualservices".into(),
            namespace: Some("default".into()),
            name: name.map(Into::into),
            subresource: None,
        }
    }

    fn vs() -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "w"}, "spec": {"hosts": ["a"]}})
    }

    #[test]
    fn create_sets_system_metadata_and_conflicts_on_stale_replace() {
        let mut s = Store::new();
        let created = s.create(&vs_ref(None), vs(), false).unwrap().object;
        assert_eq!(created["metadata"]["resourceVersion"], "1");
        assert_eq!(created["metadata"]["generation"], 1);
        assert_eq!(created["metadata"]["namespace"], "default");
        let mut changed = created.clone();
        changed["spec"]["hosts"] = json!(["b"]);
        let w = s
            .replace(&vs_ref(Some("w")), changed.clone(), false)
            .unwrap()
            .object;
        assert_eq!(w["metadata"]["resourceVersion"], "2");
        assert_eq!(w["metadata"]["generation"], 2);
        let e = s.replace(&vs_ref(Some("w")), changed, false).unwrap_err();
        assert_eq!(e.code, 409);
    }

    #[test]
    fn metadata_only_change_keeps_generation() {
        let mut s = Store::new();
        s.create(&vs_ref(None), vs(), false).unwrap();
        let w = s
            .patch(
                &vs_ref(Some("w")),
                PatchKind::Merge,
                br#"{"metadata":{"labels":{"a":"b"}}}"#,
                None,
                false,
            )
            .unwrap()
            .object;
        assert_eq!(w["metadata"]["generation"], 1);
        assert_eq!(w["metadata"]["resourceVersion"], "2");
        // A patch that changes nothing keeps the resourceVersion.
        let w = s
            .patch(
                &vs_ref(Some("w")),
                PatchKind::Merge,
                br#"{"metadata":{"labels":{"a":"b"}}}"#,
                None,
                false,
            )
            .unwrap()
            .object;
        assert_eq!(w["metadata"]["resourceVersion"], "2");
    }

    #[test]
    fn selector_filters_lists() {
        let mut s = Store::new();
        let mut a = vs();
        a["metadata"]["labels"] = json!({"tier": "web"});
        s.create(&vs_ref(None), a, false).unwrap();
        let mut b = vs();
        b["metadata"]["name"] = json!("x");
        s.create(&vs_ref(None), b, false).unwrap();
        let l = s.list(&vs_ref(None), Some("tier=web")).unwrap();
        assert_eq!(l["items"].as_array().unwrap().len(), 1);
        let l = s.list(&vs_ref(None), Some("!tier")).unwrap();
        assert_eq!(l["items"][0]["metadata"]["name"], "x");
        assert_eq!(l["kind"], "VirtualServiceList");
    }

    #[test]
    fn timestamp_is_rfc3339() {
        let t = now_rfc3339();
        assert_eq!(t.len(), 20, "{t}");
        assert!(t.ends_with('Z') && t.as_bytes()[10] == b'T');
    }
}
