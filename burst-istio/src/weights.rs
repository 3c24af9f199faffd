//! The engine shared by the VirtualService and HTTPRoute transforms.
//!
//! Both kinds have the same shape: `spec.<routes>[]` (http routes, rules), each with
//! `<destinations>[]` (route destinations, backendRefs) that may carry an integer `weight`.
//! The transforms find one route and, in it, exactly one destination for each side of the
//! split, then read or write only those two `weight` fields.

use std::fmt;

use burst_core::{Split, Weight};
use json_patch::jsonptr::PointerBuf;
use json_patch::{AddOperation, PatchOperation, TestOperation};
use serde_json::{Value, json};

use crate::Error;
use crate::error::Resource;

/// Which route (VirtualService `spec.http[]`) or rule (HTTPRoute `spec.rules[]`) to change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RouteSelector {
    /// The only route whose destinations include both sides of the split (the default).
    /// Zero or several such routes are an error.
    #[default]
    Only,
    /// The route with this `name`.
    Name(String),
    /// The route at this 0-based index.
    Index(usize),
}

impl fmt::Display for RouteSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RouteSelector::Only => write!(f, "holding both destinations"),
            RouteSelector::Name(n) => write!(f, "named \"{n}\""),
            RouteSelector::Index(i) => write!(f, "at index {i}"),
        }
    }
}

/// Field names and rules of one kind.
#[derive(Debug)]
pub(crate) struct Shape {
    pub kind: &'static str,
    pub group: &'static str,
    pub routes_field: &'static str,
    pub dests_field: &'static str,
    pub resource: Resource,
    pub route_word: &'static str,
    /// Effective weight of a destination without `weight` (in a list of several).
    pub omitted_weight: u64,
    /// Largest weight the API accepts.
    pub max_weight: u64,
}

/// What to look for in one object.
pub(crate) struct Query<'a> {
    pub shape: &'static Shape,
    pub selector: &'a RouteSelector,
    pub primary_name: &'a str,
    pub burst_name: &'a str,
    pub is_primary: &'a dyn Fn(&Value) -> bool,
    pub is_burst: &'a dyn Fn(&Value) -> bool,
    pub describe: fn(&Value) -> String,
}

/// Where the two weights are, and what else the route holds.
#[derive(Debug)]
pub(crate) struct Located {
    pub object: String,
    pub route_index: usize,
    pub route_label: String,
    pub primary_index: usize,
    pub burst_index: usize,
    pub primary_raw: Option<Value>,
    pub burst_raw: Option<Value>,
    /// Other destinations: label, index, raw weight.
    pub others: Vec<(String, usize, Option<Value>)>,
}

/// `Kind namespace/name` (or `Kind name` without a namespace).
pub(crate) fn object_label(kind: &str, obj: &Value) -> String {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>");
    match obj.pointer("/metadata/namespace").and_then(Value::as_str) {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

fn check_kind(obj: &Value, shape: &Shape) -> Result<(), Error> {
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let group_ok = api_version
        .strip_prefix(shape.group)
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|v| !v.is_empty());
    if kind != shape.kind || !group_ok {
        return Err(Error::WrongKind {
            expected: shape.kind,
            group: shape.group,
            found_kind: kind.to_owned(),
            found_api_version: api_version.to_owned(),
        });
    }
    Ok(())
}

fn route_label(shape: &Shape, index: usize, route: &Value) -> String {
    match route.get("name").and_then(Value::as_str) {
        Some(n) => format!("{} \"{n}\" (#{index})", shape.route_word),
        None => format!("{} #{index}", shape.route_word),
    }
}

fn short_route_label(index: usize, route: &Value) -> String {
    match route.get("name").and_then(Value::as_str) {
        Some(n) => format!("\"{n}\" (#{index})"),
        None => format!("#{index}"),
    }
}

fn list_or_none(items: Vec<String>) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

fn dests_of<'v>(shape: &Shape, route: &'v Value) -> &'v [Value] {
    route
        .get(shape.dests_field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// Finds the route and the two destinations.
pub(crate) fn locate(obj: &Value, q: &Query<'_>) -> Result<Located, Error> {
    let shape = q.shape;
    check_kind(obj, shape)?;
    let object = object_label(shape.kind, obj);
    let routes_ptr = format!("/spec/{}", shape.routes_field);
    let routes = match obj.pointer(&routes_ptr) {
        Some(Value::Array(r)) => r,
        Some(other) => {
            return Err(Error::Malformed {
                object,
                path: routes_ptr,
                problem: format!("must be a list, found {}", type_name(other)),
            });
        }
        None => {
            return Err(Error::Malformed {
                object,
                path: routes_ptr,
                problem: format!(
                    "is missing: the {} has no {}s to split",
                    shape.kind, shape.route_word
                ),
            });
        }
    };
    for (i, r) in routes.iter().enumerate() {
        if !r.is_object() {
            return Err(Error::Malformed {
                object,
                path: format!("{routes_ptr}/{i}"),
                problem: format!("must be an object, found {}", type_name(r)),
            });
        }
        if let Some(d) = r.get(shape.dests_field)
            && !d.is_array()
            && !d.is_null()
        {
            return Err(Error::Malformed {
                object,
                path: format!("{routes_ptr}/{i}/{}", shape.dests_field),
                problem: format!("must be a list, found {}", type_name(d)),
            });
        }
    }
    let available = || {
        list_or_none(
            routes
                .iter()
                .enumerate()
                .map(|(i, r)| short_route_label(i, r))
                .collect(),
        )
    };
    let has_both = |r: &Value| {
        let d = dests_of(shape, r);
        d.iter().any(|x| (q.is_primary)(x)) && d.iter().any(|x| (q.is_burst)(x))
    };
    let ambiguous = |several: &[usize]| Error::AmbiguousRoute {
        object: object.clone(),
        resource: shape.resource,
        primary: q.primary_name.to_owned(),
        burst: q.burst_name.to_owned(),
        candidates: several
            .iter()
            .map(|i| short_route_label(*i, &routes[*i]))
            .collect(),
    };
    let route_index = match q.selector {
        RouteSelector::Index(i) => {
            if *i >= routes.len() {
                return Err(Error::RouteNotFound {
                    object,
                    resource: shape.resource,
                    selector: q.selector.to_string(),
                    available: available(),
                });
            }
            *i
        }
        RouteSelector::Name(n) => {
            let found: Vec<usize> = routes
                .iter()
                .enumerate()
                .filter(|(_, r)| r.get("name").and_then(Value::as_str) == Some(n.as_str()))
                .map(|(i, _)| i)
                .collect();
            match found.as_slice() {
                [i] => *i,
                [] => {
                    return Err(Error::RouteNotFound {
                        object,
                        resource: shape.resource,
                        selector: q.selector.to_string(),
                        available: available(),
                    });
                }
                several => return Err(ambiguous(several)),
            }
        }
        RouteSelector::Only => {
            let found: Vec<usize> = routes
                .iter()
                .enumerate()
                .filter(|(_, r)| has_both(r))
                .map(|(i, _)| i)
                .collect();
            match found.as_slice() {
                [i] => *i,
                [] => {
                    return Err(Error::NoCandidateRoute {
                        object,
                        resource: shape.resource,
                        primary: q.primary_name.to_owned(),
                        burst: q.burst_name.to_owned(),
                        available: available(),
                    });
                }
                several => return Err(ambiguous(several)),
            }
        }
    };
    let route = &routes[route_index];
    let label = route_label(shape, route_index, route);
    let dests = dests_of(shape, route);
    let pick = |matches: &dyn Fn(&Value) -> bool, name: &str| -> Result<usize, Error> {
        let idx: Vec<usize> = dests
            .iter()
            .enumerate()
            .filter(|(_, d)| matches(d))
            .map(|(i, _)| i)
            .collect();
        match idx.as_slice() {
            [i] => Ok(*i),
            [] => Err(Error::DestinationMissing {
                object: object.clone(),
                resource: shape.resource,
                route: label.clone(),
                name: name.to_owned(),
                present: list_or_none(dests.iter().map(q.describe).collect()),
            }),
            _ => Err(Error::DuplicateDestination {
                object: object.clone(),
                resource: shape.resource,
                route: label.clone(),
                name: name.to_owned(),
                indices: idx,
            }),
        }
    };
    let primary_index = pick(q.is_primary, q.primary_name)?;
    let burst_index = pick(q.is_burst, q.burst_name)?;
    // Selectors that differ only in port or namespace can both match one backendRef; its
    // single weight cannot hold both shares.
    if primary_index == burst_index {
        return Err(Error::SharedDestination {
            object,
            resource: shape.resource,
            route: label,
            destination: (q.describe)(&dests[primary_index]),
        });
    }
    let weight_of = |d: &Value| d.get("weight").filter(|w| !w.is_null()).cloned();
    let others = dests
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != primary_index && *i != burst_index)
        .map(|(i, d)| ((q.describe)(d), i, weight_of(d)))
        .collect();
    Ok(Located {
        object,
        route_index,
        route_label: label,
        primary_index,
        burst_index,
        primary_raw: weight_of(&dests[primary_index]),
        burst_raw: weight_of(&dests[burst_index]),
        others,
    })
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// JSON pointer of a destination's weight.
pub(crate) fn weight_pointer(shape: &Shape, route: usize, dest: usize) -> String {
    format!(
        "/spec/{}/{route}/{}/{dest}/weight",
        shape.routes_field, shape.dests_field
    )
}

/// The effective weight of one destination.
fn effective(shape: &Shape, loc: &Located, dest: usize, raw: &Option<Value>) -> Result<u64, Error> {
    match raw {
        None => Ok(shape.omitted_weight),
        Some(v) => v
            .as_u64()
            .filter(|w| *w <= shape.max_weight)
            .ok_or_else(|| Error::InvalidWeight {
                object: loc.object.clone(),
                path: weight_pointer(shape, loc.route_index, dest),
                value: v.to_string(),
                max: shape.max_weight,
            }),
    }
}

/// Refuses a route whose other destinations carry traffic.
fn check_others(shape: &Shape, loc: &Located) -> Result<(), Error> {
    let mut carrying = Vec::new();
    let mut total = 0u64;
    for (label, i, raw) in &loc.others {
        let w = effective(shape, loc, *i, raw)?;
        if w > 0 {
            total += w;
            carrying.push(format!("{label} (weight {w})"));
        }
    }
    if carrying.is_empty() {
        Ok(())
    } else {
        Err(Error::ExtraWeightedDestinations {
            object: loc.object.clone(),
            route: loc.route_label.clone(),
            others: carrying,
            weight: total,
        })
    }
}

/// Reads the split: the burst share of the two weights, in percent, rounded to the nearest
/// integer with halves rounded up; primary is 100 minus that.
pub(crate) fn read(obj: &Value, q: &Query<'_>) -> Result<Split, Error> {
    let loc = locate(obj, q)?;
    check_others(q.shape, &loc)?;
    let p = effective(q.shape, &loc, loc.primary_index, &loc.primary_raw)?;
    let b = effective(q.shape, &loc, loc.burst_index, &loc.burst_raw)?;
    split_from_proportions(p, b).ok_or_else(|| Error::ZeroTotalWeight {
        object: loc.object.clone(),
        route: loc.route_label.clone(),
        primary: q.primary_name.to_owned(),
        burst: q.burst_name.to_owned(),
    })
}

/// `None` when both are 0. Weights are at most `u32::MAX`, so nothing overflows.
pub(crate) fn split_from_proportions(primary: u64, burst: u64) -> Option<Split> {
    let total = u128::from(primary) + u128::from(burst);
    if total == 0 {
        return None;
    }
    let share = (u128::from(burst) * 100 + total / 2) / total;
    let w = Weight::try_new(i64::try_from(share).ok()?).ok()?;
    Some(Split::from_burst(w))
}

/// Returns the object with the two weights set to the split's percentages.
pub(crate) fn write(obj: &Value, q: &Query<'_>, split: Split) -> Result<Value, Error> {
    let loc = locate(obj, q)?;
    check_others(q.shape, &loc)?;
    let mut out = obj.clone();
    for (dest, w) in [
        (loc.primary_index, split.primary()),
        (loc.burst_index, split.burst()),
    ] {
        let ptr = format!(
            "/spec/{}/{}/{}/{dest}",
            q.shape.routes_field, loc.route_index, q.shape.dests_field
        );
        let Some(Value::Object(d)) = out.pointer_mut(&ptr) else {
            return Err(Error::Malformed {
                object: loc.object,
                path: ptr,
                problem: "must be an object".to_owned(),
            });
        };
        d.insert("weight".to_owned(), json!(w.get()));
    }
    Ok(out)
}

/// A JSON patch that sets the two weights, guarded by a `test` of the whole route list, or
/// `None` when both weights already hold the split's values.
pub(crate) fn patch(
    obj: &Value,
    q: &Query<'_>,
    split: Split,
) -> Result<Option<json_patch::Patch>, Error> {
    let loc = locate(obj, q)?;
    check_others(q.shape, &loc)?;
    let p = u64::from(split.primary().get());
    let b = u64::from(split.burst().get());
    let same = |raw: &Option<Value>, want: u64| raw.as_ref().and_then(Value::as_u64) == Some(want);
    if same(&loc.primary_raw, p) && same(&loc.burst_raw, b) {
        return Ok(None);
    }
    let current = obj
        .pointer(&format!("/spec/{}", q.shape.routes_field))
        .cloned()
        .unwrap_or(Value::Null);
    let route = loc.route_index.to_string();
    let weight_at = |dest: usize| {
        let dest = dest.to_string();
        PointerBuf::from_tokens([
            "spec",
            q.shape.routes_field,
            route.as_str(),
            q.shape.dests_field,
            dest.as_str(),
            "weight",
        ])
    };
    Ok(Some(json_patch::Patch(vec![
        PatchOperation::Test(TestOperation {
            path: PointerBuf::from_tokens(["spec", q.shape.routes_field]),
            value: current,
        }),
        PatchOperation::Add(AddOperation {
            path: weight_at(loc.primary_index),
            value: json!(p),
        }),
        PatchOperation::Add(AddOperation {
            path: weight_at(loc.burst_index),
            value: json!(b),
        }),
    ])))
}

/// Checks the two names of a target.
pub(crate) fn check_names(what: &'static str, primary: &str, burst: &str) -> Result<(), Error> {
    for n in [primary, burst] {
        if n.trim().is_empty() {
            return Err(Error::InvalidOption {
                what,
                value: n.to_owned(),
                problem: "must not be empty".to_owned(),
            });
        }
    }
    if primary == burst {
        return Err(Error::InvalidOption {
            what,
            value: primary.to_owned(),
            problem: "the primary and burst destinations must differ".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proportions_round_half_up_on_burst() {
        assert_eq!(
            split_from_proportions(1, 1),
            Some(Split::try_new(50, 50).unwrap())
        );
        assert_eq!(
            split_from_proportions(2, 1),
            Some(Split::try_new(67, 33).unwrap())
        );
        assert_eq!(
            split_from_proportions(1, 2),
            Some(Split::try_new(33, 67).unwrap())
        );
        assert_eq!(
            split_from_proportions(199, 1),
            Some(Split::try_new(99, 1).unwrap())
        );
        // 99.5 % burst rounds up: ties favour the burst side.
        assert_eq!(split_from_proportions(1, 199), Some(Split::ALL_BURST));
        // 0.5 % rounds up to 1 %.
        assert_eq!(
            split_from_proportions(199, 1),
            split_from_proportions(398, 2)
        );
        assert_eq!(split_from_proportions(0, 7), Some(Split::ALL_BURST));
        assert_eq!(split_from_proportions(7, 0), Some(Split::ALL_PRIMARY));
        assert_eq!(split_from_proportions(0, 0), None);
        assert_eq!(
            split_from_proportions(u64::from(u32::MAX), u64::from(u32::MAX)),
            Some(Split::try_new(50, 50).unwrap())
        );
    }

    #[test]
    fn selector_displays_how_it_selects() {
        assert_eq!(RouteSelector::Name("a".into()).to_string(), "named \"a\"");
        assert_eq!(RouteSelector::Index(2).to_string(), "at index 2");
    }
}
