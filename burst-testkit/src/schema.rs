//! Offline validation of Kubernetes objects against the official CRD schemas.
//!
//! The schemas are vendored in `<workspace>/schemas/` (Istio 1.30 `crd-all.gen.yaml`,
//! Gateway API v1.6.1 HTTPRoute), so validation works on a clean clone without network.
//! `BURST_SCHEMA_DIR` points elsewhere if set. For each CRD, `openAPIV3Schema` of every
//! served version is extracted, `x-kubernetes-int-or-string` is rewritten to
//! `anyOf: [integer, string]`, and the result is compiled once per process.
//!
//! ```
//! use burst_testkit::schema;
//! use serde_json::json;
//!
//! let vs = json!({
//!     "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
//!     "metadata": {"name": "w"},
//!     "spec": {"hosts": ["w"], "http": [{"route": [
//!         {"destination": {"host": "w", "subset": "primary"}, "weight": 80},
//!         {"destination": {"host": "w", "subset": "burst"}, "weight": 20}]}]}
//! });
//! schema::validate("VirtualService.networking.istio.io/v1", &vs).unwrap();
//! schema::istio_semantics(&vs).unwrap();
//!
//! let mut bad = vs.clone();
//! bad["spec"]["http"][0]["route"][0]["weight"] = json!("80");
//! let errors = schema::validate_object(&bad).unwrap_err();
//! assert!(errors[0].contains("/spec/http/0/route/0/weight"), "{errors:?}");
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::OnceLock;

use serde_json::{Map, Value, json};

/// Environment variable that overrides the schema directory.
pub const SCHEMA_DIR_ENV: &str = "BURST_SCHEMA_DIR";

/// The schema files, relative to the schema directory.
pub const SCHEMA_FILES: [&str; 2] = [
    "istio/crd-all.gen.yaml",
    "gateway-api/gateway.networking.k8s.io_httproutes.yaml",
];

struct Catalog {
    validators: BTreeMap<String, jsonschema::Validator>,
}

static CATALOG: OnceLock<Result<Catalog, String>> = OnceLock::new();

/// The directory holding [`SCHEMA_FILES`]: `$BURST_SCHEMA_DIR`, else the vendored
/// `<workspace>/schemas`, else `<workspace>/../shared/schemas`.
pub fn schema_dir() -> Result<PathBuf, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut candidates = Vec::new();
    if let Some(dir) = std::env::var_os(SCHEMA_DIR_ENV) {
        candidates.push(PathBuf::from(dir));
    }
    candidates.push(manifest.join("../schemas"));
    candidates.push(manifest.join("../../shared/schemas"));
    for c in &candidates {
        if SCHEMA_FILES.iter().all(|f| c.join(f).is_file()) {
            return Ok(c.clone());
        }
    }
    Err(format!(
        "CRD schemas not found: looked for {} under {}. They are vendored in the repository \
         under `schemas/`; restore them with `git checkout -- schemas`, or set {SCHEMA_DIR_ENV} \
         to a directory that has them",
        SCHEMA_FILES.join(" and "),
        candidates
            .iter()
            .map(|c| c.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn catalog() -> Result<&'static Catalog, String> {
    CATALOG.get_or_init(load).as_ref().map_err(Clone::clone)
}

fn load() -> Result<Catalog, String> {
    let dir = schema_dir()?;
    let mut validators = BTreeMap::new();
    for file in SCHEMA_FILES {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let docs: Vec<Value> = serde_saphyr::from_multiple(&text)
            .map_err(|e| format!("cannot parse {}: {e}", path.display()))?;
        for crd in docs
            .iter()
            .filter(|d| d["kind"] == "CustomResourceDefinition")
        {
            for (key, schema) in extract(crd) {
                let v = jsonschema::validator_for(&schema).map_err(|e| {
                    format!("{}: schema of {key} does not compile: {e}", path.display())
                })?;
                validators.insert(key, v);
            }
        }
    }
    if validators.is_empty() {
        return Err(format!("no CRD schemas found in {}", dir.display()));
    }
    Ok(Catalog { validators })
}

/// `(Kind.group/version, schema)` for every served version of a CRD.
fn extract(crd: &Value) -> Vec<(String, Value)> {
    let group = crd
        .pointer("/spec/group")
        .and_then(Value::as_str)
        .unwrap_or("");
    let kind = crd
        .pointer("/spec/names/kind")
        .and_then(Value::as_str)
        .unwrap_or("");
    let versions = crd
        .pointer("/spec/versions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    versions
        .iter()
        .filter(|v| v["served"] != json!(false))
        .filter_map(|v| {
            let name = v["name"].as_str()?;
            let schema = v.pointer("/schema/openAPIV3Schema")?;
            Some((format!("{kind}.{group}/{name}"), rewrite(schema)))
        })
        .collect()
}

/// Rewrites Kubernetes extensions a JSON Schema validator does not know into plain JSON
/// Schema: `x-kubernetes-int-or-string: true` becomes `anyOf: [integer, string]`.
pub fn rewrite(schema: &Value) -> Value {
    match schema {
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(k.clone(), rewrite(v));
            }
            if out.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
                out.remove("type");
                out.insert(
                    "anyOf".to_owned(),
                    json!([{"type": "integer"}, {"type": "string"}]),
                );
            }
            Value::Object(out)
        }
        Value::Array(a) => Value::Array(a.iter().map(rewrite).collect()),
        other => other.clone(),
    }
}

/// Every `Kind.group/version` that can be validated.
pub fn known_kinds() -> Result<Vec<String>, String> {
    Ok(catalog()?.validators.keys().cloned().collect())
}

/// Validates `obj` against the schema of `kind_group_version`, e.g.
/// `VirtualService.networking.istio.io/v1` or `HTTPRoute.gateway.networking.k8s.io/v1`.
/// Each error names the JSON pointer of the offending value.
pub fn validate(kind_group_version: &str, obj: &Value) -> Result<(), Vec<String>> {
    let catalog = catalog().map_err(|e| vec![e])?;
    let Some(v) = catalog.validators.get(kind_group_version) else {
        return Err(vec![format!(
            "no schema for `{kind_group_version}`; known: {}",
            catalog
                .validators
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )]);
    };
    let errors: Vec<String> = v
        .iter_errors(obj)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// Validates `obj` against the schema its own `apiVersion` and `kind` name.
pub fn validate_object(obj: &Value) -> Result<(), Vec<String>> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let Some((group, version)) = api_version.split_once('/') else {
        return Err(vec![format!(
            "apiVersion `{api_version}` is not group/version; only CRDs of the vendored schemas can be validated"
        )]);
    };
    validate(&format!("{kind}.{group}/{version}"), obj)
}

/// Istio's semantic weight rules, checked by istiod's webhook rather than the schema: in
/// every `http`, `tcp` and `tls` route of a VirtualService each weight is an integer from 0
/// to 100, and the weights of a route with several destinations sum to 100.
/// Objects of other kinds pass.
pub fn istio_semantics(obj: &Value) -> Result<(), Vec<String>> {
    if obj["kind"] != "VirtualService" {
        return Ok(());
    }
    let mut errors = Vec::new();
    for section in ["http", "tcp", "tls"] {
        let routes = obj
            .pointer(&format!("/spec/{section}"))
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        for (i, r) in routes.iter().enumerate() {
            let dests = r["route"].as_array().map(Vec::as_slice).unwrap_or(&[]);
            let mut sum = 0u64;
            for (j, d) in dests.iter().enumerate() {
                match d.get("weight") {
                    None | Some(Value::Null) => {}
                    Some(w) => match w.as_u64().filter(|w| *w <= 100) {
                        Some(w) => sum += w,
                        None => errors.push(format!(
                            "/spec/{section}/{i}/route/{j}/weight: {w} is not an integer from 0 to 100"
                        )),
                    },
                }
            }
            if dests.len() > 1 && sum != 100 {
                errors.push(format!(
                    "/spec/{section}/{i}/route: weights sum to {sum}; the weights of a route with several destinations must sum to 100"
                ));
            }
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// [`validate_object`] and [`istio_semantics`] together.
pub fn check(obj: &Value) -> Result<(), Vec<String>> {
    let mut errors = validate_object(obj).err().unwrap_or_default();
    errors.extend(istio_semantics(obj).err().unwrap_or_default());
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_versions_are_known() {
        let kinds = known_kinds().unwrap();
        for k in [
            "VirtualService.networking.istio.io/v1",
            "VirtualService.networking.istio.io/v1beta1",
            "VirtualService.networking.istio.io/v1alpha3",
            "DestinationRule.networking.istio.io/v1",
            "HTTPRoute.gateway.networking.k8s.io/v1",
        ] {
            assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
        }
    }

    #[test]
    fn schema_errors_name_the_path() {
        let vs = json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "w"},
            "spec": {"http": [{"route": [{"weight": 100}]}]}});
        let errs = validate_object(&vs).unwrap_err();
        assert!(
            errs.iter().any(|e| e.contains("/spec/http/0/route/0")),
            "{errs:?}"
        );
        let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r"},
            "spec": {"rules": [{"backendRefs": [{"name": "a", "port": 80, "weight": -1}]}]}});
        let errs = validate_object(&route).unwrap_err();
        assert!(
            errs.iter()
                .any(|e| e.contains("/spec/rules/0/backendRefs/0/weight")),
            "{errs:?}"
        );
    }

    #[test]
    fn int_or_string_accepts_both() {
        let s = rewrite(&json!({"properties": {"p": {"x-kubernetes-int-or-string": true}}}));
        let v = jsonschema::validator_for(&s).unwrap();
        assert!(v.is_valid(&json!({"p": 8080})));
        assert!(v.is_valid(&json!({"p": "http"})));
        assert!(!v.is_valid(&json!({"p": 1.5})));
    }

    #[test]
    fn istio_weights_must_sum_to_100() {
        let vs = |a: i64, b: i64| {
            json!({"kind": "VirtualService", "spec": {"http": [{"route": [
                {"destination": {"host": "a"}, "weight": a},
                {"destination": {"host": "b"}, "weight": b}]}]}})
        };
        assert!(istio_semantics(&vs(30, 70)).is_ok());
        let e = istio_semantics(&vs(30, 60)).unwrap_err();
        assert!(e[0].contains("sum to 90"), "{e:?}");
        let e = istio_semantics(&vs(130, -30)).unwrap_err();
        assert_eq!(e.len(), 3, "{e:?}");
    }

    #[test]
    fn unknown_kind_is_an_error_listing_known_ones() {
        let e = validate("Nope.x/v1", &json!({})).unwrap_err();
        assert!(e[0].contains("VirtualService.networking.istio.io/v1"));
    }
}
