//! What must hold when burst-istio's route transforms ([`VsTarget`], [`HttpRouteTarget`])
//! meet any JSON: a differential oracle against a small, independent model of the rules.
//!
//! The model ([`Model`]) restates, from the module docs of `burst-istio`, which objects a
//! transform must accept and where the two weights are: the kind and API group, a list of
//! routes that are all objects, the route picked by the selector, exactly one destination
//! for each side (never the same one for both), and every other destination of that route
//! at weight 0. For every target and split it is given, [`check`] asserts:
//!
//! - nothing panics, and the input object is left as it was (whatever the outcome);
//! - `write` succeeds exactly when the model finds the two weights, `patch` succeeds
//!   exactly when `write` does (with the same error when both fail), and `read` succeeds
//!   exactly when the model also finds two valid weights that are not both 0, with the split
//!   the model computes from them (burst share rounded to the nearest percent, halves up);
//! - on success, the written object equals the input with exactly the two weights set to the
//!   requested split (every other route, destination and field unchanged), the managed
//!   route's weights are integers that sum to 100, reading it back gives the split, writing
//!   the same split again changes nothing and needs no patch;
//! - the patch applied to the input gives the written object (no patch exactly when nothing
//!   changes), and it does not apply to an object whose route list changed meanwhile.
//!
//! Inputs come two ways ([`vs_input`], [`httproute_input`]): bytes that parse as JSON are
//! checked against a fixed set of targets (the seeds under `fuzz/seeds/` and libFuzzer's
//! mutations of them); other bytes drive [`arbitrary`] to build a hostile object and target
//! (route and destination lists of any length, duplicated and missing names, weights that
//! are floats, negative, huge, strings or null, non-object routes, wrong kinds, selectors
//! that overlap).
//!
//! Size: Long on purpose: an independent model of the route rules (~840 lines) must not share code with the implementation it checks.

use arbitrary::Unstructured;
use burst_core::{Split, Weight};
use burst_istio::json_patch::{self, Patch, PatchOperation};
use burst_istio::{BackendSelector, Error, HttpRouteTarget, RouteSelector, VsTarget};
use serde_json::{Map, Value, json};

/// The splits every JSON input is written with.
pub const SPLITS: [(i64, i64); 5] = [(100, 0), (0, 100), (37, 63), (50, 50), (1, 99)];

/// A transform seen through its three functions.
pub trait Transform {
    /// The split the object holds.
    fn read(&self, v: &Value) -> Result<Split, Error>;
    /// The object with the split written.
    fn write(&self, v: &Value, s: Split) -> Result<Value, Error>;
    /// The guarded patch that writes the split.
    fn patch(&self, v: &Value, s: Split) -> Result<Option<Patch>, Error>;
}

impl Transform for VsTarget {
    fn read(&self, v: &Value) -> Result<Split, Error> {
        VsTarget::read(self, v)
    }
    fn write(&self, v: &Value, s: Split) -> Result<Value, Error> {
        VsTarget::write(self, v, s)
    }
    fn patch(&self, v: &Value, s: Split) -> Result<Option<Patch>, Error> {
        VsTarget::patch(self, v, s)
    }
}

impl Transform for HttpRouteTarget {
    fn read(&self, v: &Value) -> Result<Split, Error> {
        HttpRouteTarget::read(self, v)
    }
    fn write(&self, v: &Value, s: Split) -> Result<Value, Error> {
        HttpRouteTarget::write(self, v, s)
    }
    fn patch(&self, v: &Value, s: Split) -> Result<Option<Patch>, Error> {
        HttpRouteTarget::patch(self, v, s)
    }
}

/// How one destination is matched against one side of the split.
#[derive(Debug, Clone)]
pub enum Matcher {
    /// VirtualService: `destination.subset`, and `destination.host` when given.
    Subset {
        /// The subset name.
        subset: String,
        /// The host filter.
        host: Option<String>,
    },
    /// HTTPRoute: `name`, and `port` / `namespace` (defaulting to the route's) when given.
    Backend {
        /// The backend name.
        name: String,
        /// The port filter.
        port: Option<u16>,
        /// The namespace filter.
        namespace: Option<String>,
    },
}

impl Matcher {
    fn matches(&self, dest: &Value, object_namespace: Option<&str>) -> bool {
        let Value::Object(d) = dest else {
            return false;
        };
        match self {
            Matcher::Subset { subset, host } => {
                let destination = d.get("destination");
                let field = |k: &str| destination.and_then(|x| x.get(k)).and_then(Value::as_str);
                field("subset") == Some(subset.as_str())
                    && host
                        .as_ref()
                        .is_none_or(|h| field("host") == Some(h.as_str()))
            }
            Matcher::Backend {
                name,
                port,
                namespace,
            } => {
                d.get("name").and_then(Value::as_str) == Some(name.as_str())
                    && port.is_none_or(|p| d.get("port").and_then(Value::as_u64) == Some(p.into()))
                    && namespace.as_ref().is_none_or(|ns| {
                        let own = d.get("namespace").and_then(Value::as_str);
                        own.or(object_namespace) == Some(ns.as_str())
                    })
            }
        }
    }
}

/// The rules of one kind, and one target's selection, restated independently.
#[derive(Debug, Clone)]
pub struct Model {
    /// `VirtualService` or `HTTPRoute`.
    pub kind: &'static str,
    /// The API group.
    pub group: &'static str,
    /// `http` or `rules`.
    pub routes_field: &'static str,
    /// `route` or `backendRefs`.
    pub dests_field: &'static str,
    /// The weight of a destination without one.
    pub omitted_weight: u64,
    /// The largest weight the API accepts.
    pub max_weight: u64,
    /// Whether the target's options are valid (names non-blank, the two sides different).
    pub options_ok: bool,
    /// Which route.
    pub selector: RouteSelector,
    /// The primary side.
    pub primary: Matcher,
    /// The burst side.
    pub burst: Matcher,
}

/// Where the model found the two weights.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Index of the route.
    pub route: usize,
    /// Index of the primary destination in it.
    pub primary: usize,
    /// Index of the burst destination in it.
    pub burst: usize,
}

impl Model {
    /// The model of a VirtualService target.
    pub fn vs(t: &VsTarget) -> Model {
        let blank = |s: &str| s.trim().is_empty();
        Model {
            kind: "VirtualService",
            group: "networking.istio.io",
            routes_field: "http",
            dests_field: "route",
            omitted_weight: 0,
            max_weight: i32::MAX as u64,
            options_ok: !blank(&t.primary_subset)
                && !blank(&t.burst_subset)
                && t.primary_subset != t.burst_subset,
            selector: t.route.clone(),
            primary: Matcher::Subset {
                subset: t.primary_subset.clone(),
                host: t.host.clone(),
            },
            burst: Matcher::Subset {
                subset: t.burst_subset.clone(),
                host: t.host.clone(),
            },
        }
    }

    /// The model of an HTTPRoute target.
    pub fn httproute(t: &HttpRouteTarget) -> Model {
        let side = |b: &BackendSelector| Matcher::Backend {
            name: b.name.clone(),
            port: b.port,
            namespace: b.namespace.clone(),
        };
        Model {
            kind: "HTTPRoute",
            group: "gateway.networking.k8s.io",
            routes_field: "rules",
            dests_field: "backendRefs",
            omitted_weight: 1,
            max_weight: 1_000_000,
            options_ok: t.primary != t.burst
                && !t.primary.name.trim().is_empty()
                && !t.burst.name.trim().is_empty(),
            selector: t.rule.clone(),
            primary: side(&t.primary),
            burst: side(&t.burst),
        }
    }

    /// The effective weight of a destination, `None` when its `weight` is not valid.
    pub fn effective(&self, dest: &Value) -> Option<u64> {
        match dest.get("weight") {
            None | Some(Value::Null) => Some(self.omitted_weight),
            Some(w) => w.as_u64().filter(|w| *w <= self.max_weight),
        }
    }

    fn dests<'v>(&self, route: &'v Value) -> &'v [Value] {
        route
            .get(self.dests_field)
            .and_then(Value::as_array)
            .map_or(&[], Vec::as_slice)
    }

    /// Where the two weights are, or why a transform must refuse the object.
    pub fn locate(&self, obj: &Value) -> Result<Found, &'static str> {
        if !self.options_ok {
            return Err("invalid options");
        }
        let kind_ok = obj.get("kind").and_then(Value::as_str) == Some(self.kind);
        let group_ok = obj
            .get("apiVersion")
            .and_then(Value::as_str)
            .and_then(|a| a.split_once('/'))
            .is_some_and(|(g, v)| g == self.group && !v.is_empty());
        if !kind_ok || !group_ok {
            return Err("wrong kind or group");
        }
        let Some(Value::Array(routes)) = obj.get("spec").and_then(|s| s.get(self.routes_field))
        else {
            return Err("no route list");
        };
        for r in routes {
            let Value::Object(r) = r else {
                return Err("a route is not an object");
            };
            if !matches!(
                r.get(self.dests_field),
                None | Some(Value::Null | Value::Array(_))
            ) {
                return Err("a destination list is not a list");
            }
        }
        let ns = obj
            .get("metadata")
            .and_then(|m| m.get("namespace"))
            .and_then(Value::as_str);
        let has = |r: &Value, m: &Matcher| self.dests(r).iter().any(|d| m.matches(d, ns));
        let only = |found: Vec<usize>| match found.as_slice() {
            [i] => Ok(*i),
            _ => Err("no single route selected"),
        };
        let route = match &self.selector {
            RouteSelector::Index(i) if *i < routes.len() => *i,
            RouteSelector::Index(_) => return Err("route index out of range"),
            RouteSelector::Name(n) => only(
                (0..routes.len())
                    .filter(|i| routes[*i].get("name").and_then(Value::as_str) == Some(n))
                    .collect(),
            )?,
            RouteSelector::Only => only(
                (0..routes.len())
                    .filter(|i| has(&routes[*i], &self.primary) && has(&routes[*i], &self.burst))
                    .collect(),
            )?,
        };
        let dests = self.dests(&routes[route]);
        let single = |m: &Matcher| {
            let found: Vec<usize> = (0..dests.len())
                .filter(|i| m.matches(&dests[*i], ns))
                .collect();
            match found.as_slice() {
                [i] => Ok(*i),
                [] => Err("a side has no destination"),
                _ => Err("a side has several destinations"),
            }
        };
        let primary = single(&self.primary)?;
        let burst = single(&self.burst)?;
        if primary == burst {
            return Err("one destination matches both sides");
        }
        let others_idle = (0..dests.len())
            .filter(|i| *i != primary && *i != burst)
            .all(|i| self.effective(&dests[i]) == Some(0));
        if !others_idle {
            return Err("another destination carries weight or has an invalid one");
        }
        Ok(Found {
            route,
            primary,
            burst,
        })
    }

    fn pointer(&self, route: usize, dest: usize) -> String {
        format!(
            "/spec/{}/{route}/{}/{dest}",
            self.routes_field, self.dests_field
        )
    }

    /// The split the object holds, as the model reads it.
    pub fn read(&self, obj: &Value, f: &Found) -> Option<Split> {
        let p = self.effective(obj.pointer(&self.pointer(f.route, f.primary))?)?;
        let b = self.effective(obj.pointer(&self.pointer(f.route, f.burst))?)?;
        let total = u128::from(p) + u128::from(b);
        if total == 0 {
            return None;
        }
        // Burst share in percent, nearest integer, halves up.
        let share = (u128::from(b) * 200 + total) / (2 * total);
        Some(Split::from_burst(
            Weight::try_new(i64::try_from(share).ok()?).ok()?,
        ))
    }
}

fn outcome<T>(r: &Result<T, Error>) -> String {
    match r {
        Ok(_) => "Ok".to_owned(),
        Err(e) => format!("Err({}: {e})", e.kind()),
    }
}

/// Checks one transform, its model, one object and one split (see the module docs).
pub fn check(t: &dyn Transform, m: &Model, obj: &Value, split: Split) -> Result<(), String> {
    let before = obj.clone();
    let read = t.read(obj);
    let written = t.write(obj, split);
    let patch = t.patch(obj, split);
    if *obj != before {
        return Err("the input object changed".to_owned());
    }
    for e in [
        read.as_ref().err(),
        written.as_ref().err(),
        patch.as_ref().err(),
    ]
    .into_iter()
    .flatten()
    {
        if e.to_string().is_empty() || e.kind().is_empty() {
            return Err(format!("an error without a message or kind: {e:?}"));
        }
    }
    let expected = m.locate(obj);
    if written.is_ok() != expected.is_ok() {
        return Err(format!(
            "write of {split} gave {}, the model expected {expected:?}",
            outcome(&written)
        ));
    }
    match (&written, &patch) {
        (Ok(_), Ok(_)) => {}
        (Err(a), Err(b)) if a == b => {}
        _ => {
            return Err(format!(
                "write and patch of {split} disagree: {} vs {}",
                outcome(&written),
                outcome(&patch)
            ));
        }
    }
    let expected_read = expected.as_ref().ok().and_then(|f| m.read(obj, f));
    if read.as_ref().ok() != expected_read.as_ref() {
        return Err(format!(
            "read gave {}, the model reads {expected_read:?} ({expected:?})",
            match &read {
                Ok(s) => format!("Ok({s})"),
                Err(e) => outcome::<()>(&Err(e.clone())),
            }
        ));
    }
    let (Ok(w), Ok(patch), Ok(found)) = (written, patch, expected) else {
        return Ok(());
    };

    // Exactly the two weights changed, to the split's values.
    let mut want = obj.clone();
    for (dest, weight) in [
        (found.primary, split.primary()),
        (found.burst, split.burst()),
    ] {
        match want.pointer_mut(&m.pointer(found.route, dest)) {
            Some(Value::Object(d)) => {
                d.insert("weight".to_owned(), json!(weight.get()));
            }
            _ => {
                return Err(format!(
                    "the model's destination {found:?} is not an object"
                ));
            }
        }
    }
    if w != want {
        return Err(format!(
            "writing {split} changed more or other than the two weights {found:?}:\nwrote {w}\nwant  {want}"
        ));
    }
    let route = w
        .pointer(&format!("/spec/{}/{}", m.routes_field, found.route))
        .ok_or("the managed route vanished")?;
    let mut sum = 0u64;
    for d in m.dests(route) {
        let weight = m
            .effective(d)
            .ok_or_else(|| format!("an invalid weight in the written route: {d}"))?;
        if weight > 100 {
            return Err(format!("a written weight above 100: {d}"));
        }
        sum += weight;
    }
    if sum != 100 {
        return Err(format!("the written route's weights sum to {sum}: {route}"));
    }
    match t.read(&w) {
        Ok(back) if back == split => {}
        other => return Err(format!("wrote {split}, read back {other:?}")),
    }
    match t.write(&w, split) {
        Ok(again) if again == w => {}
        other => {
            return Err(format!(
                "writing {split} twice is not idempotent: {other:?}"
            ));
        }
    }
    match t.patch(&w, split) {
        Ok(None) => {}
        other => return Err(format!("a patch to write {split} over itself: {other:?}")),
    }

    // The patch gives the written object, and is guarded by the route list.
    let Some(patch) = patch else {
        return if w == *obj {
            Ok(())
        } else {
            Err(format!("no patch, but writing {split} changed the object"))
        };
    };
    if w == *obj {
        return Err(format!("a patch, but writing {split} changed nothing"));
    }
    let mut patched = obj.clone();
    json_patch::patch(&mut patched, &patch).map_err(|e| format!("own patch fails: {e}"))?;
    if patched != w {
        return Err(format!("patch and write differ:\n{patched}\n{w}"));
    }
    if !matches!(patch.0.first(), Some(PatchOperation::Test(_))) {
        return Err("the patch does not start with a test".to_owned());
    }
    let mut moved = obj.clone();
    if let Some(Value::Array(routes)) = moved
        .get_mut("spec")
        .and_then(|s| s.get_mut(m.routes_field))
    {
        routes.push(json!({"name": "added-meanwhile"}));
    }
    if json_patch::patch(&mut moved, &patch).is_ok() {
        return Err("the patch applies to a route list that changed meanwhile".to_owned());
    }
    Ok(())
}

/// The VirtualService targets every JSON input is checked with (names from the seeds).
pub fn vs_targets() -> Vec<VsTarget> {
    vec![
        VsTarget::default(),
        VsTarget::default().route(RouteSelector::Index(0)),
        VsTarget::default().route(RouteSelector::Name("split".into())),
        VsTarget::default().host("worker-service"),
        VsTarget::default().subsets("onprem", "cloud"),
        VsTarget::default()
            .subsets("onprem", "cloud")
            .host("worker-service.default.svc.cluster.local"),
    ]
}

/// The HTTPRoute targets every JSON input is checked with (names from the seeds),
/// including two whose selectors share a backend name.
pub fn httproute_targets() -> Vec<HttpRouteTarget> {
    let b = BackendSelector::new;
    vec![
        HttpRouteTarget::new(b("worker-primary"), b("worker-burst")),
        HttpRouteTarget::new(b("worker-primary").port(8081), b("worker-burst").port(8081)),
        HttpRouteTarget::new(b("worker-primary"), b("worker-burst").namespace("shop")),
        HttpRouteTarget::new(b("worker-primary"), b("worker-burst"))
            .rule(RouteSelector::Name("api".into())),
        HttpRouteTarget::new(b("worker-primary"), b("worker-burst")).rule(RouteSelector::Index(1)),
        HttpRouteTarget::new(b("worker"), b("worker").port(8081)),
        HttpRouteTarget::new(b("worker-primary"), b("worker-primary").port(8081)),
    ]
}

fn splits() -> impl Iterator<Item = Split> {
    SPLITS
        .into_iter()
        .filter_map(|(p, b)| Split::try_new(p, b).ok())
}

/// Fuzz input for the VirtualService transform (see the module docs).
pub fn vs_input(data: &[u8]) -> Result<(), String> {
    fuzz_input(data, vs_targets, Model::vs, gen_vs)
}

/// Fuzz input for the HTTPRoute transform (see the module docs).
pub fn httproute_input(data: &[u8]) -> Result<(), String> {
    fuzz_input(data, httproute_targets, Model::httproute, gen_httproute)
}

/// Bytes that parse as JSON are checked against every fixed target and split; any other
/// bytes build a hostile object, target and split with `generate`.
fn fuzz_input<T: Transform>(
    data: &[u8],
    targets: fn() -> Vec<T>,
    model: fn(&T) -> Model,
    generate: fn(&mut Unstructured<'_>) -> Gen<(T, Value, Split)>,
) -> Result<(), String> {
    if let Ok(obj) = serde_json::from_slice::<Value>(data) {
        for t in targets() {
            let m = model(&t);
            for s in splits() {
                check(&t, &m, &obj, s)?;
            }
        }
        return Ok(());
    }
    let mut u = Unstructured::new(data);
    let Ok((t, obj, s)) = generate(&mut u) else {
        return Ok(());
    };
    check(&t, &model(&t), &obj, s)
}

// ---- structured generation -------------------------------------------------------------

type Gen<T> = arbitrary::Result<T>;

fn pick<'a>(u: &mut Unstructured<'_>, pool: &[&'a str]) -> Gen<&'a str> {
    Ok(*u.choose(pool)?)
}

/// A string from the pool, or (rarely) any short string.
fn name(u: &mut Unstructured<'_>, pool: &[&str]) -> Gen<String> {
    if u.ratio(1, 8)? {
        let s: &str = u.arbitrary()?;
        Ok(s.chars().take(12).collect())
    } else {
        Ok(pick(u, pool)?.to_owned())
    }
}

fn weight(u: &mut Unstructured<'_>) -> Gen<Option<Value>> {
    Ok(Some(match u.int_in_range(0u8..=27)? {
        0 | 1 => return Ok(None),
        2 => Value::Null,
        3..=6 => json!(0),
        7 => json!(1),
        8 => json!(100),
        9 => json!(u.int_in_range(0u64..=100)?),
        10 => json!(101),
        11 => json!(1_000_000),
        12 => json!(1_000_001),
        13 => json!(i32::MAX),
        14 => json!(i64::from(i32::MAX) + 1),
        15 => json!(u32::MAX),
        16 => json!(u64::MAX),
        17 => json!(-1),
        18 => json!(u.arbitrary::<i64>()?),
        19 => json!(u.arbitrary::<u64>()?),
        20 => json!(50.0),
        21 => json!(50.5),
        22 => json!(-0.0),
        23 => json!("50"),
        24 => json!(true),
        25 => json!([]),
        26 => json!({}),
        _ => json!(u.int_in_range(0u64..=3)?),
    }))
}

/// A value of any type that is not an object (to stand where an object belongs).
fn not_an_object(u: &mut Unstructured<'_>) -> Gen<Value> {
    Ok(match u.int_in_range(0u8..=4)? {
        0 => Value::Null,
        1 => json!(u.arbitrary::<bool>()?),
        2 => json!(u.arbitrary::<i32>()?),
        3 => json!(name(u, &["primary", "burst", ""])?),
        _ => json!([]),
    })
}

fn extras(u: &mut Unstructured<'_>, m: &mut Map<String, Value>) -> Gen<()> {
    if u.ratio(1, 4)? {
        let k = name(u, &["timeout", "x-note", "retries", "filters", "weight"])?;
        let v = match u.int_in_range(0u8..=2)? {
            0 => json!({"attempts": 3}),
            1 => json!(["kept"]),
            _ => json!(name(u, &["10s", "kept"])?),
        };
        m.insert(k, v);
    }
    Ok(())
}

fn list<T>(
    u: &mut Unstructured<'_>,
    max: u8,
    mut item: impl FnMut(&mut Unstructured<'_>) -> Gen<T>,
) -> Gen<Vec<T>> {
    let n = u.int_in_range(0..=max)?;
    (0..n).map(|_| item(u)).collect()
}

/// `spec.<routes>`: usually a list of routes, sometimes missing or of another type.
fn routes(
    u: &mut Unstructured<'_>,
    routes_field: &str,
    dests_field: &str,
    route_names: &[&str],
    mut dest: impl FnMut(&mut Unstructured<'_>) -> Gen<Value>,
) -> Gen<Value> {
    let mut spec = Map::new();
    match u.int_in_range(0u8..=15)? {
        0 => {}
        1 => {
            spec.insert(routes_field.to_owned(), not_an_object(u)?);
        }
        _ => {
            let rs = list(u, 4, |u| {
                if u.ratio(1, 16)? {
                    return not_an_object(u);
                }
                let mut r = Map::new();
                if u.arbitrary()? {
                    r.insert("name".to_owned(), json!(name(u, route_names)?));
                }
                match u.int_in_range(0u8..=15)? {
                    0 => {}
                    1 => {
                        r.insert(dests_field.to_owned(), Value::Null);
                    }
                    2 => {
                        r.insert(dests_field.to_owned(), json!({"not": "a list"}));
                    }
                    _ => {
                        let ds = list(u, 5, |u| {
                            if u.ratio(1, 16)? {
                                not_an_object(u)
                            } else {
                                dest(u)
                            }
                        })?;
                        r.insert(dests_field.to_owned(), Value::Array(ds));
                    }
                }
                extras(u, &mut r)?;
                Ok(Value::Object(r))
            })?;
            spec.insert(routes_field.to_owned(), Value::Array(rs));
        }
    }
    extras(u, &mut spec)?;
    Ok(Value::Object(spec))
}

fn object(
    u: &mut Unstructured<'_>,
    api_versions: &[&str],
    kinds: &[&str],
    namespaces: &[&str],
    spec: Value,
) -> Gen<Value> {
    let mut metadata = Map::new();
    metadata.insert("name".to_owned(), json!("worker"));
    if u.ratio(3, 4)? {
        metadata.insert("namespace".to_owned(), json!(name(u, namespaces)?));
    }
    let mut obj = Map::new();
    if u.ratio(15, 16)? {
        obj.insert("apiVersion".to_owned(), json!(name(u, api_versions)?));
    }
    if u.ratio(15, 16)? {
        obj.insert("kind".to_owned(), json!(name(u, kinds)?));
    }
    obj.insert("metadata".to_owned(), Value::Object(metadata));
    if u.ratio(31, 32)? {
        obj.insert("spec".to_owned(), spec);
    } else {
        obj.insert("spec".to_owned(), not_an_object(u)?);
    }
    Ok(Value::Object(obj))
}

fn selector(u: &mut Unstructured<'_>, names: &[&str]) -> Gen<RouteSelector> {
    Ok(match u.int_in_range(0u8..=5)? {
        0 => RouteSelector::Name(name(u, names)?),
        1 => RouteSelector::Index(u.int_in_range(0..=4)?),
        _ => RouteSelector::Only,
    })
}

fn split(u: &mut Unstructured<'_>) -> Gen<Split> {
    let burst = Weight::try_new(u.int_in_range(0i64..=100)?)
        .map_err(|_| arbitrary::Error::IncorrectFormat)?;
    Ok(Split::from_burst(burst))
}

const VS_SUBSETS: [&str; 6] = ["primary", "burst", "v1", "v2", "", " "];
const VS_HOSTS: [&str; 3] = [
    "worker-service",
    "worker-service.default.svc.cluster.local",
    "mirror",
];
const ROUTE_NAMES: [&str; 3] = ["split", "api", ""];

/// A hostile VirtualService, a target and a split.
pub fn gen_vs(u: &mut Unstructured<'_>) -> Gen<(VsTarget, Value, Split)> {
    let mut t = VsTarget::default().route(selector(u, &ROUTE_NAMES)?);
    if u.ratio(1, 4)? {
        t = t.subsets(name(u, &VS_SUBSETS)?, name(u, &VS_SUBSETS)?);
    }
    if u.ratio(1, 4)? {
        t = t.host(name(u, &VS_HOSTS)?);
    }
    let spec = routes(u, "http", "route", &ROUTE_NAMES, |u| {
        let mut destination = Map::new();
        if u.ratio(7, 8)? {
            destination.insert("host".to_owned(), json!(name(u, &VS_HOSTS)?));
        }
        match u.int_in_range(0u8..=9)? {
            0 => {}
            1 => {
                destination.insert("subset".to_owned(), json!(u.arbitrary::<i8>()?));
            }
            _ => {
                destination.insert("subset".to_owned(), json!(name(u, &VS_SUBSETS)?));
            }
        }
        if u.ratio(1, 4)? {
            destination.insert("port".to_owned(), json!({"number": 80}));
        }
        let mut d = Map::new();
        if u.ratio(1, 32)? {
            d.insert("destination".to_owned(), not_an_object(u)?);
        } else {
            d.insert("destination".to_owned(), Value::Object(destination));
        }
        if let Some(w) = weight(u)? {
            d.insert("weight".to_owned(), w);
        }
        extras(u, &mut d)?;
        Ok(Value::Object(d))
    })?;
    let obj = object(
        u,
        &[
            "networking.istio.io/v1",
            "networking.istio.io/v1beta1",
            "networking.istio.io/v1alpha3",
            "networking.istio.io/",
            "networking.istio.io",
            "gateway.networking.k8s.io/v1",
        ],
        &["VirtualService", "HTTPRoute", "virtualservice"],
        &["default", "shop"],
        spec,
    )?;
    Ok((t, obj, split(u)?))
}

const BACKENDS: [&str; 5] = ["worker-primary", "worker-burst", "worker", "", " "];
const NAMESPACES: [&str; 3] = ["default", "shop", ""];
const PORTS: [u16; 3] = [80, 8081, 0];

fn backend_selector(u: &mut Unstructured<'_>) -> Gen<BackendSelector> {
    let mut b = BackendSelector::new(name(u, &BACKENDS)?);
    if u.ratio(1, 3)? {
        b = b.port(*u.choose(&PORTS)?);
    }
    if u.ratio(1, 3)? {
        b = b.namespace(name(u, &NAMESPACES)?);
    }
    Ok(b)
}

/// A hostile HTTPRoute, a target and a split.
pub fn gen_httproute(u: &mut Unstructured<'_>) -> Gen<(HttpRouteTarget, Value, Split)> {
    let t = HttpRouteTarget::new(backend_selector(u)?, backend_selector(u)?)
        .rule(selector(u, &ROUTE_NAMES)?);
    let spec = routes(u, "rules", "backendRefs", &ROUTE_NAMES, |u| {
        let mut d = Map::new();
        if u.ratio(15, 16)? {
            d.insert("name".to_owned(), json!(name(u, &BACKENDS)?));
        }
        match u.int_in_range(0u8..=7)? {
            0..=2 => {}
            3 => {
                d.insert("port".to_owned(), json!(-80));
            }
            4 => {
                d.insert("port".to_owned(), json!("80"));
            }
            _ => {
                d.insert("port".to_owned(), json!(*u.choose(&PORTS)?));
            }
        }
        if u.ratio(1, 3)? {
            d.insert("namespace".to_owned(), json!(name(u, &NAMESPACES)?));
        }
        if let Some(w) = weight(u)? {
            d.insert("weight".to_owned(), w);
        }
        extras(u, &mut d)?;
        Ok(Value::Object(d))
    })?;
    let obj = object(
        u,
        &[
            "gateway.networking.k8s.io/v1",
            "gateway.networking.k8s.io/v1beta1",
            "gateway.networking.k8s.io/",
            "gateway.networking.k8s.io",
            "networking.istio.io/v1",
        ],
        &["HTTPRoute", "VirtualService", "httproute"],
        &NAMESPACES,
        spec,
    )?;
    Ok((t, obj, split(u)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seeds(dir: &str) -> Vec<Vec<u8>> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
            .expect("seed directory")
            .map(|e| std::fs::read(e.expect("entry").path()).expect("seed"))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn every_seed_passes_and_parses() {
        for (dir, input) in [
            (
                "seeds/vs_transform",
                vs_input as fn(&[u8]) -> Result<(), String>,
            ),
            ("seeds/httproute_transform", httproute_input),
        ] {
            let seeds = seeds(dir);
            assert!(seeds.len() >= 5, "{dir}: {} seeds", seeds.len());
            for s in seeds {
                serde_json::from_slice::<Value>(&s).expect("seeds are JSON");
                input(&s).unwrap_or_else(|e| panic!("{dir}: {e}"));
            }
        }
    }

    fn seed_vs() -> Value {
        json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
               "metadata": {"name": "w", "namespace": "default"},
               "spec": {"http": [
                   {"name": "other", "route": [{"destination": {"host": "h", "subset": "primary"}}]},
                   {"route": [{"destination": {"host": "h", "subset": "primary"}, "weight": 100},
                              {"destination": {"host": "h", "subset": "burst"}, "weight": 0}]}]}})
    }

    /// A transform that does something wrong, to show the oracle notices.
    struct Broken(fn(&Value, Split) -> Result<Value, Error>);

    impl Transform for Broken {
        fn read(&self, v: &Value) -> Result<Split, Error> {
            VsTarget::default().read(v)
        }
        fn write(&self, v: &Value, s: Split) -> Result<Value, Error> {
            (self.0)(v, s)
        }
        fn patch(&self, v: &Value, s: Split) -> Result<Option<Patch>, Error> {
            VsTarget::default().patch(v, s)
        }
    }

    #[test]
    fn the_real_transform_passes() {
        let t = VsTarget::default();
        for s in splits() {
            check(&t, &Model::vs(&t), &seed_vs(), s).unwrap();
        }
    }

    #[test]
    fn a_write_that_touches_another_route_is_caught() {
        let broken = Broken(|v, s| {
            let mut w = VsTarget::default().write(v, s)?;
            w["spec"]["http"][0]["route"][0]["weight"] = json!(0);
            Ok(w)
        });
        let e = check(
            &broken,
            &Model::vs(&VsTarget::default()),
            &seed_vs(),
            Split::ALL_BURST,
        )
        .unwrap_err();
        assert!(e.contains("changed more or other"), "{e}");
    }

    #[test]
    fn a_write_of_the_wrong_split_is_caught() {
        let broken = Broken(|v, _| VsTarget::default().write(v, Split::ALL_PRIMARY));
        let e = check(
            &broken,
            &Model::vs(&VsTarget::default()),
            &seed_vs(),
            Split::ALL_BURST,
        )
        .unwrap_err();
        assert!(e.contains("changed more or other"), "{e}");
    }

    #[test]
    fn a_write_that_refuses_a_valid_object_is_caught() {
        let broken = Broken(|v, s| {
            let mut v = v.clone();
            v["kind"] = json!("Other");
            VsTarget::default().write(&v, s)
        });
        let e = check(
            &broken,
            &Model::vs(&VsTarget::default()),
            &seed_vs(),
            Split::ALL_BURST,
        )
        .unwrap_err();
        assert!(e.contains("the model expected"), "{e}");
    }

    #[test]
    fn the_model_refuses_what_the_rules_refuse() {
        let m = Model::vs(&VsTarget::default());
        assert_eq!(
            m.locate(&seed_vs()),
            Ok(Found {
                route: 1,
                primary: 0,
                burst: 1
            })
        );
        let mut extra = seed_vs();
        extra["spec"]["http"][1]["route"]
            .as_array_mut()
            .expect("list")
            .push(json!({"destination": {"host": "x"}, "weight": 5}));
        assert!(m.locate(&extra).is_err());
        let mut wrong = seed_vs();
        wrong["apiVersion"] = json!("networking.istio.io/");
        assert!(m.locate(&wrong).is_err());
    }

    #[test]
    fn the_model_rounds_halves_towards_burst() {
        let m = Model::vs(&VsTarget::default());
        let mut v = seed_vs();
        v["spec"]["http"][1]["route"][0]["weight"] = json!(1);
        v["spec"]["http"][1]["route"][1]["weight"] = json!(199);
        let f = m.locate(&v).expect("found");
        assert_eq!(m.read(&v, &f), Some(Split::ALL_BURST));
        v["spec"]["http"][1]["route"][0]["weight"] = json!(2);
        v["spec"]["http"][1]["route"][1]["weight"] = json!(1);
        assert_eq!(m.read(&v, &f), Split::try_new(67, 33).ok());
    }

    #[test]
    fn structured_inputs_are_built_from_any_bytes() {
        let mut built = 0;
        for seed in 0u32..200 {
            let bytes: Vec<u8> = (0..256u32)
                .map(|i| (seed.wrapping_mul(2_654_435_761).wrapping_add(i * 40_503) >> 7) as u8)
                .collect();
            let mut u = Unstructured::new(&bytes);
            if let Ok((t, obj, s)) = gen_vs(&mut u) {
                built += 1;
                check(&t, &Model::vs(&t), &obj, s).unwrap_or_else(|e| panic!("{obj}: {e}"));
            }
            let mut u = Unstructured::new(&bytes);
            if let Ok((t, obj, s)) = gen_httproute(&mut u) {
                check(&t, &Model::httproute(&t), &obj, s).unwrap_or_else(|e| panic!("{obj}: {e}"));
            }
        }
        assert!(built > 150, "{built}");
    }
}
