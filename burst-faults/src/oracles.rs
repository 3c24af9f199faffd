//! What must hold for ANY input to burst's parsers and transforms: shared by the
//! cargo-fuzz targets in `fuzz/` and the property tests in `tests/fuzz_properties.rs`.
//!
//! Every oracle takes raw bytes, must not panic, and returns `Err` with a description when
//! a property is broken (the caller panics on it, so the fuzzer records the input).

use std::time::Duration;

use burst_core::{Split, Timestamp};
use burst_istio::{BackendSelector, HttpRouteTarget, VsTarget};
use burst_prom::api::{QueryData, parse_response};
use burst_prom::{Selected, SeriesRule, exposition, select};
use serde_json::Value;

pub use crate::policy_oracle::policy_yaml;

/// Splits every transform is asked to write.
const SPLITS: [(i64, i64); 4] = [(100, 0), (0, 100), (37, 63), (50, 50)];

/// Prometheus' query API answer: parsing never panics, and a selected value is a finite
/// number >= 0 (NaN, infinities and negatives are errors, empty is "no data").
pub fn prom_response(data: &[u8]) -> Result<(), String> {
    let Ok(response) = parse_response(data) else {
        return Ok(());
    };
    let now = Timestamp::from_duration(Duration::from_secs(1_700_000_000));
    for rule in [SeriesRule::Error, SeriesRule::Sum, SeriesRule::Max] {
        let data: QueryData = response.data.clone();
        if let Ok(Selected::Value { value, .. }) =
            select(data, rule, now, Duration::from_secs(3600 * 24 * 365 * 100))
            && !(value.is_finite() && value >= 0.0)
        {
            return Err(format!("select gave {value} under {rule:?}"));
        }
    }
    Ok(())
}

/// The text exposition format: parsing never panics; a body that parses ends with a line
/// feed (or is blank), and every sample has a metric name.
pub fn exposition(data: &[u8]) -> Result<(), String> {
    let Ok(text) = std::str::from_utf8(data) else {
        return Ok(());
    };
    let Ok(samples) = exposition::parse(text) else {
        return Ok(());
    };
    if !text.trim().is_empty() && !text.ends_with('\n') {
        return Err("a body without a final line feed was accepted".into());
    }
    if let Some(s) = samples.iter().find(|s| s.name.is_empty()) {
        return Err(format!("a sample without a name: {s:?}"));
    }
    Ok(())
}

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
