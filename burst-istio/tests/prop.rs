//! Property tests: for any valid split and any extra fields, writing changes nothing but
//! the two weights, and reading back gives the split written.

#![allow(clippy::unwrap_used)]

use burst_core::{Split, Weight};
use burst_istio::{BackendSelector, HttpRouteTarget, VsTarget};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        "[a-zA-Z0-9 ./:-]{0,12}".prop_map(Value::String),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{1,6}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// Fields whose names cannot collide with the ones the transform reads.
fn extras() -> impl Strategy<Value = Vec<(String, Value)>> {
    prop::collection::vec(("x-[a-z]{1,8}", value()), 0..3)
}

fn add(obj: &mut Value, fields: &[(String, Value)]) {
    if let Value::Object(m) = obj {
        for (k, v) in fields {
            m.insert(k.clone(), v.clone());
        }
    }
}

fn split() -> impl Strategy<Value = Split> {
    (0u8..=100).prop_map(|b| Split::from_burst(Weight::try_new(i64::from(b)).unwrap()))
}

/// Any weight Istio accepts on the two destinations, not both 0.
fn weights() -> impl Strategy<Value = (Option<u32>, Option<u32>)> {
    (prop::option::of(0u32..=1000), prop::option::of(0u32..=1000))
        .prop_filter("some traffic", |(p, b)| p.unwrap_or(0) + b.unwrap_or(0) > 0)
}

#[derive(Debug, Clone)]
struct VsCase {
    vs: Value,
    route: usize,
    primary: usize,
    burst: usize,
}

prop_compose! {
    fn vs_case()(
        before in 0usize..3,
        after in 0usize..3,
        primary_first in any::<bool>(),
        zero_extras in 0usize..3,
        (wp, wb) in weights(),
        top in extras(), meta in extras(), spec in extras(), route_x in extras(),
        dest_x in extras(), other_x in extras(),
    ) -> VsCase {
        let dest = |subset: &str, w: Option<u32>| {
            let mut d = json!({"destination": {"host": "worker-service", "subset": subset}});
            if let Some(w) = w { d["weight"] = json!(w); }
            add(&mut d, &dest_x);
            d
        };
        let mut dests = vec![];
        let (primary, burst);
        if primary_first {
            dests.push(dest("primary", wp)); dests.push(dest("burst", wb));
            (primary, burst) = (0, 1);
        } else {
            dests.push(dest("burst", wb)); dests.push(dest("primary", wp));
            (primary, burst) = (1, 0);
        }
        for i in 0..zero_extras {
            dests.push(json!({"destination": {"host": format!("extra-{i}")}, "weight": 0}));
        }
        let other = |i: usize| {
            let mut r = json!({"name": format!("other-{i}"), "route": [{"destination": {"host": "elsewhere", "subset": "primary"}}]});
            add(&mut r, &other_x);
            r
        };
        let mut routes: Vec<Value> = (0..before).map(other).collect();
        let mut r = json!({"route": dests, "retries": {"attempts": 2}, "timeout": "3s"});
        add(&mut r, &route_x);
        routes.push(r);
        routes.extend((0..after).map(|i| other(i + 10)));
        let mut vs = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "w", "namespace": "default"},
            "spec": {"hosts": ["worker-service"], "http": routes},
        });
        add(&mut vs, &top);
        add(&mut vs["metadata"], &meta);
        add(&mut vs["spec"], &spec);
        VsCase { vs, route: before, primary, burst }
    }
}

fn strip_weight(v: &mut Value, ptr: &str) {
    if let Some(Value::Object(m)) = v.pointer_mut(ptr) {
        m.remove("weight");
    }
}

proptest! {
    #[test]
    fn vs_write_changes_only_the_two_weights(case in vs_case(), s in split()) {
        let t = VsTarget::default();
        let out = t.write(&case.vs, s).unwrap();
        prop_assert_eq!(t.read(&out).unwrap(), s);
        let base = format!("/spec/http/{}/route", case.route);
        let (pp, bp) = (format!("{base}/{}", case.primary), format!("{base}/{}", case.burst));
        prop_assert_eq!(out.pointer(&format!("{pp}/weight")), Some(&json!(s.primary().get())));
        prop_assert_eq!(out.pointer(&format!("{bp}/weight")), Some(&json!(s.burst().get())));
        let (mut a, mut b) = (case.vs.clone(), out.clone());
        for p in [&pp, &bp] {
            strip_weight(&mut a, p);
            strip_weight(&mut b, p);
        }
        prop_assert_eq!(a, b);
        // The patch, applied, gives the same object.
        if let Some(p) = t.patch(&case.vs, s).unwrap() {
            let mut patched = case.vs.clone();
            json_patch::patch(&mut patched, &p).unwrap();
            prop_assert_eq!(patched, out);
        }
    }

    #[test]
    fn vs_read_of_proportions_is_the_rounded_share(case in vs_case()) {
        let t = VsTarget::default();
        let base = format!("/spec/http/{}/route", case.route);
        let w = |i: usize| case.vs.pointer(&format!("{base}/{i}/weight")).and_then(Value::as_u64).unwrap_or(0);
        let (p, b) = (w(case.primary), w(case.burst));
        let s = t.read(&case.vs).unwrap();
        let exact = b as f64 * 100.0 / (p + b) as f64;
        prop_assert!((f64::from(s.burst().get()) - exact).abs() <= 0.5, "{} vs {}", s, exact);
    }

    #[test]
    fn httproute_write_changes_only_the_two_weights(
        s in split(),
        (wp, wb) in weights(),
        rule_x in extras(),
        backend_x in extras(),
        top in extras(),
        leading_rules in 0usize..3,
    ) {
        let backend = |name: &str, w: Option<u32>| {
            let mut b = json!({"name": name, "port": 8081});
            if let Some(w) = w { b["weight"] = json!(w); }
            add(&mut b, &backend_x);
            b
        };
        let mut rules: Vec<Value> = (0..leading_rules)
            .map(|i| json!({"matches": [{"path": {"type": "PathPrefix", "value": format!("/r{i}")}}], "backendRefs": [{"name": "static", "port": 80}]}))
            .collect();
        let mut rule = json!({"backendRefs": [backend("p", wp), backend("b", wb)]});
        add(&mut rule, &rule_x);
        rules.push(rule);
        let mut route = json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "r", "namespace": "default"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": rules},
        });
        add(&mut route, &top);
        let t = HttpRouteTarget::new(BackendSelector::new("p"), BackendSelector::new("b"));
        let out = t.write(&route, s).unwrap();
        prop_assert_eq!(t.read(&out).unwrap(), s);
        let base = format!("/spec/rules/{leading_rules}/backendRefs");
        let (mut a, mut b) = (route.clone(), out.clone());
        for i in 0..2 {
            strip_weight(&mut a, &format!("{base}/{i}"));
            strip_weight(&mut b, &format!("{base}/{i}"));
        }
        prop_assert_eq!(a, b);
    }
}
