//! The fuzz oracles (`burst_faults::oracles`) as property tests, so they run in every
//! `cargo test` on the stable toolchain: arbitrary bytes, and structured inputs (seed
//! objects from the repository's corpora with random values planted at random places,
//! policy files from random keys and values, exposition lines and query answers from
//! their grammar with hostile numbers).
//!
//! `BURST_FUZZ_CASES` sets the number of cases per property (default 1000); the
//! cargo-fuzz targets in `fuzz/` run the same oracles with coverage guidance.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use burst_faults::oracles;
use proptest::prelude::*;
use proptest::test_runner::Config;
use serde_json::{Value, json};

fn cases() -> u32 {
    std::env::var("BURST_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

fn config() -> Config {
    Config {
        cases: cases(),
        failure_persistence: None,
        ..Config::default()
    }
}

/// The route objects of `burst-istio/tests/corpus` and the repository's seed, as JSON.
fn seeds() -> Vec<Value> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../burst-istio/tests/corpus");
    let mut out = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "yaml") {
            let text = std::fs::read_to_string(&path).unwrap();
            let docs: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
            out.extend(docs.into_iter().filter(|d| d.is_object()));
        }
    }
    assert!(out.len() >= 15, "corpus not found in {}", dir.display());
    out
}

fn hostile_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        (-5i64..205).prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers are finite", |f| f.is_finite())
            .prop_map(Value::from),
        Just(json!(50.5)),
        Just(json!(-0.0)),
    ]
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        hostile_number(),
        prop_oneof![
            Just("primary"),
            Just("burst"),
            Just("worker-primary"),
            Just("worker-burst"),
            Just("100"),
            Just(""),
            Just("NaN"),
        ]
        .prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    json_leaf().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("weight".to_string()),
                    Just("destination".to_string()),
                    Just("subset".to_string()),
                    Just("route".to_string()),
                    Just("name".to_string()),
                    "[a-z]{1,6}",
                ],
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Every JSON pointer inside `v`.
fn pointers(v: &Value, at: String, out: &mut Vec<String>) {
    out.push(at.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                pointers(
                    c,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                pointers(c, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// A seed with one to three random values planted at random places (replaced, or deleted
/// when the planted value is `null` in an object).
fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    (
        0..seeds.len(),
        prop::collection::vec(
            (any::<prop::sample::Index>(), json_value(), any::<bool>()),
            1..4,
        ),
    )
        .prop_map(move |(i, edits)| {
            let mut v = seeds[i].clone();
            for (at, value, delete) in edits {
                let mut ps = Vec::new();
                pointers(&v, String::new(), &mut ps);
                let p = at.get(&ps).clone();
                if p.is_empty() {
                    continue;
                }
                let (parent, last) = p.rsplit_once('/').unwrap();
                let parent = v.pointer_mut(parent).unwrap();
                match parent {
                    Value::Object(m) if delete => {
                        m.remove(&last.replace("~1", "/").replace("~0", "~"));
                    }
                    Value::Array(a) if delete => {
                        a.remove(last.parse::<usize>().unwrap());
                    }
                    _ => {
                        if let Some(slot) = v.pointer_mut(&p) {
                            *slot = value;
                        }
                    }
                }
            }
            serde_json::to_vec(&v).unwrap()
        })
}

fn bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..600)
}

fn go_float() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("NaN".to_string()),
        Just("+Inf".to_string()),
        Just("-Inf".to_string()),
        Just("1e309".to_string()),
        Just("-0".to_string()),
        Just("0x1p3".to_string()),
        Just("".to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        (0u32..100000).prop_map(|n| n.to_string()),
        "[0-9eE+.-]{1,8}",
    ]
}

fn prom_answer() -> impl Strategy<Value = Vec<u8>> {
    let sample = (
        prop::collection::btree_map("[a-z_]{1,5}", "\\PC{0,6}", 0..3),
        prop_oneof![
            any::<f64>().prop_map(Value::from),
            (0u64..2_000_000_000).prop_map(Value::from),
            "\\PC{0,5}".prop_map(Value::from)
        ],
        go_float(),
    )
        .prop_map(|(metric, t, v)| json!({"metric": metric, "value": [t, v]}));
    (
        prop_oneof![
            Just("success".to_string()),
            Just("error".to_string()),
            "[a-z]{0,5}"
        ],
        prop_oneof![
            Just("vector".to_string()),
            Just("scalar".to_string()),
            Just("matrix".to_string()),
            Just("string".to_string()),
            "[a-z]{0,5}"
        ],
        prop::collection::vec(sample, 0..4),
        any::<bool>(),
    )
        .prop_map(|(status, rt, samples, scalar)| {
            let result = if scalar {
                samples.first().map_or(Value::Null, |s| s["value"].clone())
            } else {
                Value::Array(samples)
            };
            serde_json::to_vec(&json!({
                "status": status,
                "data": {"resultType": rt, "result": result},
                "warnings": ["w"],
            }))
            .unwrap()
        })
}

fn exposition_text() -> impl Strategy<Value = Vec<u8>> {
    let label = ("[a-z_]{1,4}", "\\PC{0,6}")
        .prop_map(|(k, v)| format!("{k}=\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")));
    let line = prop_oneof![
        (
            "[a-z_:]{1,8}",
            prop::collection::vec(label, 0..3),
            go_float(),
            prop::option::of(any::<i64>())
        )
            .prop_map(|(n, ls, v, ts)| {
                let labels = if ls.is_empty() {
                    String::new()
                } else {
                    format!("{{{}}}", ls.join(","))
                };
                match ts {
                    Some(t) => format!("{n}{labels} {v} {t}"),
                    None => format!("{n}{labels} {v}"),
                }
            }),
        "# (TYPE|HELP) [a-z_]{1,6} (counter|gauge|histogram|summary|untyped|[a-z]{0,4})",
        "\\PC{0,20}",
    ];
    (prop::collection::vec(line, 0..6), any::<bool>(), 0usize..4).prop_map(
        |(lines, final_lf, cut)| {
            let mut text = lines.join("\n");
            if final_lf {
                text.push('\n');
            }
            let keep = text.len().saturating_sub(cut);
            let mut bytes = text.into_bytes();
            bytes.truncate(keep);
            bytes
        },
    )
}

fn policy_file() -> impl Strategy<Value = Vec<u8>> {
    let key = prop_oneof![
        Just("mode".to_string()),
        Just("high".to_string()),
        Just("low".to_string()),
        Just("burst_weight".to_string()),
        Just("capacity".to_string()),
        Just("step".to_string()),
        Just("max_up".to_string()),
        Just("max_down".to_string()),
        Just("dead_band".to_string()),
        Just("sustain".to_string()),
        Just("cooldown".to_string()),
        Just("on_missing".to_string()),
        Just("stale_after".to_string()),
        Just("tick".to_string()),
        Just("window".to_string()),
        Just("window_up".to_string()),
        Just("window_down".to_string()),
        Just("scrape_interval".to_string()),
        "[a-z_]{1,8}",
    ];
    let value = prop_oneof![
        Just("hysteresis".to_string()),
        Just("overflow".to_string()),
        Just("primary".to_string()),
        Just("hold".to_string()),
        Just(".nan".to_string()),
        Just(".inf".to_string()),
        Just("-.inf".to_string()),
        Just("1e400".to_string()),
        Just("0s".to_string()),
        Just("18446744073709551616s".to_string()),
        Just("~".to_string()),
        Just("[1, 2]".to_string()),
        Just("{a: 1}".to_string()),
        Just("&a 5".to_string()),
        Just("*a".to_string()),
        (-300i64..300).prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| f.to_string()),
        "[0-9]{1,4}(ns|ms|s|m|h|d| [0-9]{1,2}s)",
        "\\PC{0,10}",
    ];
    prop::collection::vec((key, value), 0..8).prop_map(|kv| {
        kv.into_iter()
            .map(|(k, v)| format!("{k}: {v}\n"))
            .collect::<String>()
            .into_bytes()
    })
}

fn check(r: Result<(), String>) -> Result<(), TestCaseError> {
    r.map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn prom_response_arbitrary_bytes(data in bytes()) {
        check(oracles::prom_response(&data))?;
    }

    #[test]
    fn prom_response_structured(data in prom_answer()) {
        check(oracles::prom_response(&data))?;
    }

    #[test]
    fn exposition_arbitrary_bytes(data in bytes()) {
        check(oracles::exposition(&data))?;
    }

    #[test]
    fn exposition_structured(data in exposition_text()) {
        check(oracles::exposition(&data))?;
    }

    #[test]
    fn policy_yaml_arbitrary_bytes(data in bytes()) {
        check(oracles::policy_yaml(&data))?;
    }

    #[test]
    fn policy_yaml_structured(data in policy_file()) {
        check(oracles::policy_yaml(&data))?;
    }

    #[test]
    fn transforms_arbitrary_bytes(data in bytes()) {
        check(oracles::vs_transform(&data, false))?;
        check(oracles::httproute_transform(&data, false))?;
    }

    #[test]
    fn transforms_on_mutated_seeds(data in mutated_seed()) {
        check(oracles::vs_transform(&data, true))?;
        check(oracles::httproute_transform(&data, true))?;
    }
}

/// The seeds themselves pass every oracle (a broken seed would hide mutations).
#[test]
fn seeds_pass_every_oracle() {
    // Every seed passes as it is.
    for s in seeds() {
        let bytes = serde_json::to_vec(&s).unwrap();
        oracles::vs_transform(&bytes, true).unwrap();
        oracles::httproute_transform(&bytes, true).unwrap();
    }
    oracles::exposition(b"m 1\n").unwrap();
    oracles::prom_response(br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#)
        .unwrap();
    oracles::policy_yaml(b"high: 20\nlow: 5\n").unwrap();
}
