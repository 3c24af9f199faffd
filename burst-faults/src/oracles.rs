//! What must hold for ANY input to burst's parsers and transforms, for the property tests
//! in `tests/fuzz_properties.rs`. The parser oracles (`policy_oracle.rs`, `prom_oracle.rs`)
//! are also compiled into the cargo-fuzz targets in `fuzz/`; the transform targets there
//! check against their own independent model (`fuzz/src/routes.rs`).
//!
//! Every oracle takes raw bytes, must not panic, and returns `Err` with a description when
//! a property is broken (the caller panics on it, so the fuzzer records the input).

use burst_core::Split;
use burst_istio::{BackendSelector, HttpRouteTarget, VsTarget};
use serde_json::Value;

pub use crate::policy_oracle::policy_yaml;
pub use crate::prom_oracle::{exposition, prom_response};

/// Splits every transform is asked to write.
const SPLITS: [(i64, i64); 4] = [(100, 0), (0, 100), (37, 63), (50, 50)];

/// A transform (VirtualService or HTTPRoute) seen through its four functions.
trait Transform {
    fn read(&self, v: &Value) -> Result<Split, burst_istio::Error>;
    fn write(&self, v: &Value, s: Split) -> Result<Value, burst_istio::Error>;
    fn patch(
        &self,
        v: &Value,
        s: Split,
    ) -> Result<Option<burst_istio::json_patch::Patch>, burst_istio::Error>;
}

impl Transform for VsTarget {
    fn read(&self, v: &Value) -> Result<Split, burst_istio::Error> {
        VsTarget::read(self, v)
    }
    fn write(&self, v: &Value, s: Split) -> Result<Value, burst_istio::Error> {
        VsTarget::write(self, v, s)
    }
    fn patch(
        &self,
        v: &Value,
        s: Split,
    ) -> Result<Option<burst_istio::json_patch::Patch>, burst_istio::Error> {
        VsTarget::patch(self, v, s)
    }
}

impl Transform for HttpRouteTarget {
    fn read(&self, v: &Value) -> Result<Split, burst_istio::Error> {
        HttpRouteTarget::read(self, v)
    }
    fn write(&self, v: &Value, s: Split) -> Result<Value, burst_istio::Error> {
        HttpRouteTarget::write(self, v, s)
    }
    fn patch(
        &self,
        v: &Value,
        s: Split,
    ) -> Result<Option<burst_istio::json_patch::Patch>, burst_istio::Error> {
        HttpRouteTarget::patch(self, v, s)
    }
}

/// The checks shared by both transforms, on a parsed object.
fn transform_checks(t: &dyn Transform, obj: &Value, validate: bool) -> Result<(), String> {
    let valid_before = validate && burst_testkit::schema::check(obj).is_ok();
    let read = t.read(obj);
    for (p, b) in SPLITS {
        let split = Split::try_new(p, b).map_err(|e| e.to_string())?;
        let written = t.write(obj, split);
        let patch = t.patch(obj, split);
        if written.is_ok() != patch.is_ok() {
            return Err(format!(
                "write and patch disagree on {split}: write {:?}, patch {:?}",
                written.as_ref().err(),
                patch.as_ref().err()
            ));
        }
        if let (Ok(_), Err(e)) = (&read, &written) {
            return Err(format!(
                "the split reads, but {split} cannot be written: {e}"
            ));
        }
        let (Ok(w), Ok(patch)) = (&written, &patch) else {
            continue;
        };
        let back = t
            .read(w)
            .map_err(|e| format!("reading back a written {split} fails: {e}"))?;
        if back != split {
            return Err(format!("wrote {split}, read back {back}"));
        }
        let mut patched = obj.clone();
        if let Some(patch) = patch {
            burst_istio::json_patch::patch(&mut patched, patch)
                .map_err(|e| format!("own patch does not apply: {e}"))?;
        }
        if &patched != w {
            return Err(format!(
                "write and patch give different objects for {split}:\n{w}\n{patched}"
            ));
        }
        if valid_before && let Err(e) = burst_testkit::schema::check(w) {
            return Err(format!(
                "a valid object became invalid writing {split}: {e:?}"
            ));
        }
    }
    Ok(())
}

/// The VirtualService transform on any JSON: never panics; write and patch accept the same
/// objects, and every object whose split reads; a written split reads back; the patch gives
/// exactly the written object; a valid object stays valid (CRD schema and Istio's weight
/// rules) when `validate` is set. (An object whose split does not read, e.g. both weights
/// 0 or a weight of the wrong type, may still be written: the write sets both weights.)
pub fn vs_transform(data: &[u8], validate: bool) -> Result<(), String> {
    let Ok(obj) = serde_json::from_slice::<Value>(data) else {
        return Ok(());
    };
    transform_checks(&VsTarget::default(), &obj, validate)
}

/// The HTTPRoute transform (backends `worker-primary` and `worker-burst`), same checks.
pub fn httproute_transform(data: &[u8], validate: bool) -> Result<(), String> {
    let Ok(obj) = serde_json::from_slice::<Value>(data) else {
        return Ok(());
    };
    let t = HttpRouteTarget::new(
        BackendSelector::new("worker-primary"),
        BackendSelector::new("worker-burst"),
    );
    transform_checks(&t, &obj, validate)
}
