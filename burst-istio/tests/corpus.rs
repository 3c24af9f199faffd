//! Golden-file tests of the transforms on a corpus of real-world-shaped objects
//! (`tests/corpus/*.yaml`): what is read, what is written, and the patch, for every case,
//! including each error. Every object written validates against the official CRD schema and
//! Istio's weight rules.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use burst_core::Split;
use burst_istio::render::to_yaml_stream;
use burst_istio::{BackendSelector, HttpRouteTarget, RouteSelector, VsTarget};
use burst_testkit::schema;
use serde_json::Value;

enum Target {
    Vs(VsTarget),
    Http(HttpRouteTarget),
}

impl Target {
    fn read(&self, v: &Value) -> Result<Split, burst_istio::Error> {
        match self {
            Target::Vs(t) => t.read(v),
            Target::Http(t) => t.read(v),
        }
    }
    fn write(&self, v: &Value, s: Split) -> Result<Value, burst_istio::Error> {
        match self {
            Target::Vs(t) => t.write(v, s),
            Target::Http(t) => t.write(v, s),
        }
    }
    fn patch(&self, v: &Value, s: Split) -> Result<Option<json_patch::Patch>, burst_istio::Error> {
        match self {
            Target::Vs(t) => t.patch(v, s),
            Target::Http(t) => t.patch(v, s),
        }
    }
}

fn http_target() -> HttpRouteTarget {
    HttpRouteTarget::new(
        BackendSelector::new("worker-primary"),
        BackendSelector::new("worker-burst"),
    )
}

fn cases() -> Vec<(&'static str, Target, Split)> {
    let s = |p, b| Split::try_new(p, b).unwrap();
    let vs = VsTarget::default;
    vec![
        ("seed", Target::Vs(vs()), Split::ALL_BURST),
        ("named-routes", Target::Vs(vs()), s(50, 50)),
        ("match-retries-timeout-mirror", Target::Vs(vs()), s(40, 60)),
        ("v1-proportions", Target::Vs(vs()), s(100, 0)),
        ("omitted-weight", Target::Vs(vs()), s(20, 80)),
        (
            "custom-subsets",
            Target::Vs(
                vs().route(RouteSelector::Index(0))
                    .subsets("onprem", "cloud")
                    .host("worker-service.default.svc.cluster.local"),
            ),
            s(70, 30),
        ),
        ("err-no-candidate", Target::Vs(vs()), s(50, 50)),
        ("err-ambiguous", Target::Vs(vs()), s(50, 50)),
        (
            "err-subset-missing",
            Target::Vs(vs().route(RouteSelector::Name("main".into()))),
            s(50, 50),
        ),
        ("err-duplicate-subset", Target::Vs(vs()), s(50, 50)),
        ("err-extra-weight", Target::Vs(vs()), s(50, 50)),
        (
            "err-route-not-found",
            Target::Vs(vs().route(RouteSelector::Name("checkout".into()))),
            s(50, 50),
        ),
        ("err-wrong-kind", Target::Vs(vs()), s(50, 50)),
        ("err-zero-weights", Target::Vs(vs()), s(90, 10)),
        ("err-invalid-weight", Target::Vs(vs()), s(90, 10)),
        ("err-no-http", Target::Vs(vs()), s(50, 50)),
        ("httproute-basic", Target::Http(http_target()), s(25, 75)),
        (
            "httproute-rules",
            Target::Http(http_target().rule(RouteSelector::Name("api".into()))),
            s(0, 100),
        ),
        (
            "err-httproute-both-zero",
            Target::Http(http_target()),
            s(60, 40),
        ),
        (
            "err-httproute-extra-backend",
            Target::Http(http_target()),
            s(60, 40),
        ),
    ]
}

fn load(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(format!("{name}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn describe_err(e: &burst_istio::Error) -> String {
    format!("error ({}): {e}", e.kind())
}

/// Removes the `weight` fields a patch sets, so the rest of two objects can be compared.
fn without_patched_weights(v: &Value, patch: &json_patch::Patch) -> Value {
    let mut v = v.clone();
    let ops = serde_json::to_value(patch).unwrap();
    for op in ops.as_array().unwrap() {
        if op["op"] == "add" {
            let ptr = op["path"].as_str().unwrap();
            let (parent, field) = ptr.rsplit_once('/').unwrap();
            if let Some(Value::Object(m)) = v.pointer_mut(parent) {
                m.remove(field);
            }
        }
    }
    v
}

#[test]
fn corpus_has_a_case_for_every_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    files.sort();
    let mut names: Vec<String> = cases().iter().map(|c| c.0.to_owned()).collect();
    names.sort();
    assert_eq!(files, names);
}

#[test]
fn corpus_golden_files() {
    for (name, target, split) in cases() {
        let input = load(name);
        let mut out = String::new();
        out.push_str(&format!(
            "# read\n{}\n",
            match target.read(&input) {
                Ok(s) => format!("{s} (primary {}, burst {})", s.primary(), s.burst()),
                Err(e) => describe_err(&e),
            }
        ));
        out.push_str(&format!("# patch for {split}\n"));
        match target.patch(&input, split) {
            Ok(Some(p)) => {
                let ops = serde_json::to_value(&p).unwrap();
                // The `test` op carries the whole route list; show its path only.
                for op in ops.as_array().unwrap() {
                    if op["op"] == "test" {
                        out.push_str(&format!(
                            "test {} (the routes as read)\n",
                            op["path"].as_str().unwrap()
                        ));
                    } else {
                        out.push_str(&format!(
                            "{} {} = {}\n",
                            op["op"].as_str().unwrap(),
                            op["path"].as_str().unwrap(),
                            op["value"]
                        ));
                    }
                }
                // Applying the patch gives exactly what `write` gives.
                let mut patched = input.clone();
                json_patch::patch(&mut patched, &p).unwrap();
                assert_eq!(
                    Some(&patched),
                    target.write(&input, split).ok().as_ref(),
                    "{name}"
                );
                assert_eq!(
                    without_patched_weights(&patched, &p),
                    without_patched_weights(&input, &p),
                    "{name}: only the weights may change"
                );
            }
            Ok(None) => out.push_str("no change\n"),
            Err(e) => out.push_str(&format!("{}\n", describe_err(&e))),
        }
        out.push_str(&format!("# write {split}\n"));
        match target.write(&input, split) {
            Ok(written) => {
                assert_eq!(target.read(&written).unwrap(), split, "{name}: read back");
                if let Err(errors) = schema::check(&written) {
                    panic!("{name}: written object is invalid: {errors:#?}");
                }
                out.push_str(&to_yaml_stream(&[written]).unwrap());
            }
            Err(e) => out.push_str(&format!("{}\n", describe_err(&e))),
        }
        insta::assert_snapshot!(name, out);
    }
}

#[test]
fn corpus_inputs_that_should_be_valid_are_valid() {
    // The error cases are about our rules, not the schema: every input but the ones with a
    // deliberately wrong type validates, so the errors above come from the transforms.
    for (name, _, _) in cases() {
        if name == "err-invalid-weight" {
            assert!(schema::validate_object(&load(name)).is_err());
            continue;
        }
        if let Err(e) = schema::validate_object(&load(name)) {
            panic!("{name}: {e:#?}");
        }
    }
}
