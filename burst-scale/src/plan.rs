//! The pure half of the scaler: the record kept in the annotation, and the merge patches
//! that prepare and release, computed from what was read.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::Error;

/// The annotation where the value before pre-warming is kept, on the object changed.
pub const ANNOTATION: &str = "burst.dev/prewarm-original";

/// The object kind the scaler changes, and the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `autoscaling/v2` HorizontalPodAutoscaler, `spec.minReplicas`.
    Hpa,
    /// `apps/v1` Deployment, `spec.replicas`.
    Deployment,
}

/// What the annotation holds: the field changed, its value before, and the value set.
///
/// Release restores `original` only while the field still holds `set`: a value someone
/// else wrote since is theirs and is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PrewarmRecord {
    /// `minReplicas` or `replicas`.
    pub field: Field,
    /// The value before pre-warming.
    pub original: i32,
    /// The value pre-warming set.
    pub set: i32,
}

/// The field a [`PrewarmRecord`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Field {
    /// HPA `spec.minReplicas`.
    #[serde(rename = "minReplicas")]
    MinReplicas,
    /// Deployment `spec.replicas`.
    #[serde(rename = "replicas")]
    Replicas,
}

/// What was read of the object: its version, the field's value, the HPA's ceiling, and
/// the annotation if present.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// `metadata.resourceVersion`.
    pub resource_version: String,
    /// The field's value (the server's default, 1, when absent).
    pub value: i32,
    /// HPA `spec.maxReplicas` (`None` for a Deployment).
    pub max: Option<i32>,
    /// The annotation's raw value.
    pub annotation: Option<String>,
}

impl Kind {
    /// `HorizontalPodAutoscaler` or `Deployment`.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Hpa => "HorizontalPodAutoscaler",
            Kind::Deployment => "Deployment",
        }
    }

    /// The field this kind's pre-warm changes.
    pub const fn field(self) -> Field {
        match self {
            Kind::Hpa => Field::MinReplicas,
            Kind::Deployment => Field::Replicas,
        }
    }
}

impl Field {
    /// The field's name under `spec`.
    pub const fn name(self) -> &'static str {
        match self {
            Field::MinReplicas => "minReplicas",
            Field::Replicas => "replicas",
        }
    }
}

impl Observed {
    /// The record in the annotation, if any.
    pub fn record(&self, object: &str) -> Result<Option<PrewarmRecord>, Error> {
        let Some(raw) = &self.annotation else {
            return Ok(None);
        };
        let bad = |problem: String| Error::BadAnnotation {
            object: object.to_owned(),
            key: ANNOTATION,
            value: raw.clone(),
            problem,
        };
        let record: PrewarmRecord = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        if record.original < 0 || record.set < 0 {
            return Err(bad("replica counts must be >= 0".into()));
        }
        Ok(Some(record))
    }
}

/// The merge patch that prepares `kind` to `target` replicas, or `None` when it is prepared
/// already. The patch carries the resourceVersion read, so the server refuses it (409)
/// if the object changed since.
///
/// Never lowers the value: the pre-warm size is `max(value, target)`, capped at an HPA's
/// `maxReplicas`.
pub fn prepare_patch(
    kind: Kind,
    object: &str,
    seen: &Observed,
    target: i32,
) -> Result<Option<Value>, Error> {
    let field = kind.field();
    let want = capped(seen.value.max(target), seen.max);
    let record = match seen.record(object)? {
        // Prepared already: put the value back up only if someone lowered it since.
        Some(r) if r.field == field => {
            if seen.value >= r.set {
                return Ok(None);
            }
            PrewarmRecord {
                set: capped(r.set, seen.max),
                ..r
            }
        }
        Some(r) => {
            return Err(Error::BadAnnotation {
                object: object.to_owned(),
                key: ANNOTATION,
                value: seen.annotation.clone().unwrap_or_default(),
                problem: format!(
                    "it records field `{}`, but a {} pre-warm changes `{}`",
                    r.field.name(),
                    kind.name(),
                    field.name()
                ),
            });
        }
        None => PrewarmRecord {
            field,
            original: seen.value,
            set: want,
        },
    };
    if seen.annotation.is_some() && seen.value == record.set {
        return Ok(None);
    }
    Ok(Some(patch(seen, Some(&record), Some(record.set), field)))
}

/// What releasing found and did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    /// Nothing to release (no annotation).
    NotPrepared,
    /// The original value goes back.
    Restore(PrewarmRecord),
    /// Someone changed the value since pre-warming; it is kept, only the annotation goes.
    KeepTheirs {
        /// The record.
        record: PrewarmRecord,
        /// The value found.
        found: i32,
    },
}

/// The merge patch that releases a pre-warm (and what it means), or `None` when nothing
/// is prepared.
pub fn release_patch(
    kind: Kind,
    object: &str,
    seen: &Observed,
) -> Result<(Release, Option<Value>), Error> {
    let Some(record) = seen.record(object)? else {
        return Ok((Release::NotPrepared, None));
    };
    let field = kind.field();
    if record.field != field || seen.value != record.set {
        // A value we did not write (or a field we do not own here): keep it.
        let p = patch(seen, None, None, field);
        return Ok((
            Release::KeepTheirs {
                record,
                found: seen.value,
            },
            Some(p),
        ));
    }
    let p = patch(seen, None, Some(capped(record.original, seen.max)), field);
    Ok((Release::Restore(record), Some(p)))
}

fn capped(v: i32, max: Option<i32>) -> i32 {
    match max {
        Some(m) => v.min(m),
        None => v,
    }
}

/// `{"metadata": {"resourceVersion", "annotations": {KEY: record or null}}, "spec": {field}}`.
fn patch(
    seen: &Observed,
    record: Option<&PrewarmRecord>,
    value: Option<i32>,
    field: Field,
) -> Value {
    let annotation = match record {
        Some(r) => Value::String(serde_json::to_string(r).unwrap_or_default()),
        None => Value::Null,
    };
    let mut p = json!({
        "metadata": {
            "resourceVersion": seen.resource_version,
            "annotations": {ANNOTATION: annotation},
        }
    });
    if let Some(v) = value {
        p["spec"] = json!({ field.name(): v });
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seen(value: i32, max: Option<i32>, annotation: Option<&str>) -> Observed {
        Observed {
            resource_version: "7".into(),
            value,
            max,
            annotation: annotation.map(str::to_owned),
        }
    }

    #[test]
    fn prepare_records_the_original_and_raises_to_the_target() {
        let p = prepare_patch(Kind::Hpa, "h", &seen(2, Some(10), None), 5)
            .unwrap()
            .unwrap();
        assert_eq!(
            p,
            json!({
                "metadata": {
                    "resourceVersion": "7",
                    "annotations": {ANNOTATION: r#"{"field":"minReplicas","original":2,"set":5}"#},
                },
                "spec": {"minReplicas": 5},
            })
        );
    }

    #[test]
    fn prepare_is_capped_at_max_replicas_and_never_lowers() {
        let p = prepare_patch(Kind::Hpa, "h", &seen(2, Some(4), None), 5)
            .unwrap()
            .unwrap();
        assert_eq!(p["spec"]["minReplicas"], 4);
        let p = prepare_patch(Kind::Deployment, "d", &seen(8, None, None), 5)
            .unwrap()
            .unwrap();
        assert_eq!(p["spec"]["replicas"], 8);
    }

    #[test]
    fn prepared_already_is_no_patch_unless_lowered_since() {
        let rec = r#"{"field":"minReplicas","original":2,"set":5}"#;
        assert_eq!(
            prepare_patch(Kind::Hpa, "h", &seen(5, Some(10), Some(rec)), 5).unwrap(),
            None
        );
        let p = prepare_patch(Kind::Hpa, "h", &seen(3, Some(10), Some(rec)), 5)
            .unwrap()
            .unwrap();
        assert_eq!(p["spec"]["minReplicas"], 5);
        // The original is kept from the first prepare, not the lowered value.
        assert!(
            p["metadata"]["annotations"][ANNOTATION]
                .as_str()
                .unwrap()
                .contains(r#""original":2"#)
        );
    }

    #[test]
    fn release_restores_only_the_value_it_set() {
        let rec = r#"{"field":"replicas","original":1,"set":5}"#;
        let (r, p) = release_patch(Kind::Deployment, "d", &seen(5, None, Some(rec))).unwrap();
        assert!(matches!(
            r,
            Release::Restore(PrewarmRecord { original: 1, .. })
        ));
        let p = p.unwrap();
        assert_eq!(p["spec"]["replicas"], 1);
        assert_eq!(p["metadata"]["annotations"][ANNOTATION], Value::Null);
        let (r, p) = release_patch(Kind::Deployment, "d", &seen(9, None, Some(rec))).unwrap();
        assert_eq!(
            r,
            Release::KeepTheirs {
                record: PrewarmRecord {
                    field: Field::Replicas,
                    original: 1,
                    set: 5
                },
                found: 9
            }
        );
        assert_eq!(p.unwrap().get("spec"), None);
        assert_eq!(
            release_patch(Kind::Hpa, "h", &seen(3, Some(5), None)).unwrap(),
            (Release::NotPrepared, None)
        );
    }

    #[test]
    fn a_foreign_annotation_is_an_error_naming_the_fix() {
        let e = prepare_patch(
            Kind::Hpa,
            "HorizontalPodAutoscaler ns/w",
            &seen(1, Some(3), Some("yes")),
            2,
        )
        .unwrap_err();
        assert_eq!(e.kind(), "bad_annotation");
        assert!(e.to_string().contains("remove the annotation"), "{e}");
        let e = release_patch(
            Kind::Hpa,
            "h",
            &seen(
                1,
                Some(3),
                Some(r#"{"field":"replicas","original":-1,"set":2}"#),
            ),
        )
        .unwrap_err();
        assert!(e.to_string().contains(">= 0"), "{e}");
    }

    proptest! {
        /// Prepare then release gives back the original, whatever the values.
        #[test]
        fn prepare_then_release_round_trips(
            value in 0i32..1000,
            max in prop::option::of(1i32..1000),
            target in 1i32..1000,
            hpa in any::<bool>(),
        ) {
            let kind = if hpa { Kind::Hpa } else { Kind::Deployment };
            let max = if hpa { Some(max.unwrap_or(1000).max(value)) } else { None };
            let before = seen(value, max, None);
            let p = prepare_patch(kind, "o", &before, target).unwrap().unwrap();
            let set = p["spec"][kind.field().name()].as_i64().unwrap() as i32;
            prop_assert!(set >= value);
            prop_assert!(max.is_none_or(|m| set <= m));
            let ann = p["metadata"]["annotations"][ANNOTATION].as_str().unwrap();
            let after = seen(set, max, Some(ann));
            prop_assert_eq!(prepare_patch(kind, "o", &after, target).unwrap(), None);
            let (_, r) = release_patch(kind, "o", &after).unwrap();
            let r = r.unwrap();
            prop_assert_eq!(r["spec"][kind.field().name()].as_i64(), Some(i64::from(value)));
        }
    }
}
