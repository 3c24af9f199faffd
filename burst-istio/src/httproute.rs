//! Reading and writing the primary/burst weights of a Gateway API HTTPRoute.
//!
//! `spec.rules[].backendRefs[].weight` is a proportion, not a percentage: a backend gets
//! `weight / (sum of weights in the rule)` of the requests, an omitted weight means 1, and 0
//! means no traffic. Writing sets the two backends to the split's percentages (0 included);
//! reading converts any proportions to a [`Split`] (burst share rounded to the nearest
//! percent, halves up) and refuses a rule where both are 0, since it sends them nothing.

use burst_core::Split;
use serde_json::Value;

use crate::Error;
use crate::error::Resource;
use crate::weights::{self, Query, RouteSelector, Shape};

/// API group of HTTPRoute.
pub const GATEWAY_GROUP: &str = "gateway.networking.k8s.io";

pub(crate) static HTTPROUTE_SHAPE: Shape = Shape {
    kind: "HTTPRoute",
    group: GATEWAY_GROUP,
    routes_field: "rules",
    dests_field: "backendRefs",
    resource: Resource::HttpRoute,
    route_word: Resource::HttpRoute.route_word(),
    omitted_weight: 1,
    max_weight: 1_000_000,
};

/// Selects one `backendRef` by name, and optionally port and namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendSelector {
    /// `backendRefs[].name` (a Service name).
    pub name: String,
    /// `backendRefs[].port`, if it must match.
    pub port: Option<u16>,
    /// `backendRefs[].namespace` (an omitted one means the route's own), if it must match.
    pub namespace: Option<String>,
}

impl BackendSelector {
    /// Matches backendRefs with this name.
    pub fn new(name: impl Into<String>) -> Self {
        BackendSelector {
            name: name.into(),
            port: None,
            namespace: None,
        }
    }

    /// Also requires this port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// Also requires this namespace.
    pub fn namespace(mut self, ns: impl Into<String>) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    fn matches(&self, backend: &Value, route_namespace: Option<&str>) -> bool {
        backend.get("name").and_then(Value::as_str) == Some(self.name.as_str())
            && self
                .port
                .is_none_or(|p| backend.get("port").and_then(Value::as_u64) == Some(u64::from(p)))
            && self.namespace.as_deref().is_none_or(|ns| {
                backend
                    .get("namespace")
                    .and_then(Value::as_str)
                    .or(route_namespace)
                    == Some(ns)
            })
    }
}

/// Which rule and which two backends of an HTTPRoute hold the split.
///
/// ```
/// use burst_core::Split;
/// use burst_istio::{BackendSelector, HttpRouteTarget};
/// use serde_json::json;
///
/// let route = json!({
///     "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
///     "metadata": {"name": "worker", "namespace": "default"},
///     "spec": {"rules": [{"backendRefs": [
///         {"name": "worker-primary", "port": 80, "weight": 3},
///         {"name": "worker-burst", "port": 80, "weight": 1}]}]}
/// });
/// let target = HttpRouteTarget::new(
///     BackendSelector::new("worker-primary"),
///     BackendSelector::new("worker-burst"),
/// );
/// assert_eq!(target.read(&route)?, Split::try_new(75, 25)?);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRouteTarget {
    /// Which `spec.rules[]` rule (default: the only one with both backends).
    pub rule: RouteSelector,
    /// Backend that receives the primary share.
    pub primary: BackendSelector,
    /// Backend that receives the burst share.
    pub burst: BackendSelector,
}

impl HttpRouteTarget {
    /// The only rule holding both backends.
    pub fn new(primary: BackendSelector, burst: BackendSelector) -> Self {
        HttpRouteTarget {
            rule: RouteSelector::Only,
            primary,
            burst,
        }
    }

    /// Selects the rule.
    pub fn rule(mut self, rule: RouteSelector) -> Self {
        self.rule = rule;
        self
    }

    /// The split the selected rule holds now.
    pub fn read(&self, route: &Value) -> Result<Split, Error> {
        self.with_query(route, |q| weights::read(route, q))
    }

    /// `route` with only the two weights changed to `split`.
    pub fn write(&self, route: &Value, split: Split) -> Result<Value, Error> {
        self.with_query(route, |q| weights::write(route, q, split))
    }

    /// A JSON patch that sets the two weights, guarded by a `test` op on `/spec/rules`, or
    /// `None` when the weights already hold `split`.
    pub fn patch(&self, route: &Value, split: Split) -> Result<Option<json_patch::Patch>, Error> {
        self.with_query(route, |q| weights::patch(route, q, split))
    }

    fn with_query<R>(
        &self,
        route: &Value,
        f: impl FnOnce(&Query<'_>) -> Result<R, Error>,
    ) -> Result<R, Error> {
        if self.primary == self.burst {
            return Err(Error::InvalidOption {
                what: "backend",
                value: self.primary.name.clone(),
                problem: "the primary and burst backends must differ".to_owned(),
            });
        }
        weights::check_names("backend name", &self.primary.name, "-")?;
        weights::check_names("backend name", &self.burst.name, "-")?;
        let ns = route.pointer("/metadata/namespace").and_then(Value::as_str);
        let is_primary = |b: &Value| self.primary.matches(b, ns);
        let is_burst = |b: &Value| self.burst.matches(b, ns);
        f(&Query {
            shape: &HTTPROUTE_SHAPE,
            selector: &self.rule,
            primary_name: &self.primary.name,
            burst_name: &self.burst.name,
            is_primary: &is_primary,
            is_burst: &is_burst,
            describe: describe_backend,
        })
    }
}

fn describe_backend(b: &Value) -> String {
    let name = b.get("name").and_then(Value::as_str).unwrap_or("<no name>");
    let mut s = match b.get("namespace").and_then(Value::as_str) {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_owned(),
    };
    if let Some(p) = b.get("port").and_then(Value::as_u64) {
        s.push_str(&format!(":{p}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn route(backends: Value) -> Value {
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "worker", "namespace": "shop"},
            "spec": {"parentRefs": [{"name": "gw"}], "rules": [{"backendRefs": backends}]}
        })
    }

    fn target() -> HttpRouteTarget {
        HttpRouteTarget::new(BackendSelector::new("a"), BackendSelector::new("b"))
    }

    #[test]
    fn omitted_weight_is_one() {
        let r = route(json!([{"name": "a"}, {"name": "b"}]));
        assert_eq!(target().read(&r).unwrap(), Split::try_new(50, 50).unwrap());
    }

    #[test]
    fn zero_is_valid_but_both_zero_is_refused() {
        let r = route(json!([{"name": "a", "weight": 0}, {"name": "b", "weight": 9}]));
        assert_eq!(target().read(&r).unwrap(), Split::ALL_BURST);
        let r = route(json!([{"name": "a", "weight": 0}, {"name": "b", "weight": 0}]));
        assert_eq!(target().read(&r).unwrap_err().kind(), "zero_total_weight");
    }

    #[test]
    fn extra_backend_with_default_weight_carries_traffic() {
        let r = route(json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]));
        let e = target().write(&r, Split::ALL_PRIMARY).unwrap_err();
        assert_eq!(e.kind(), "extra_weighted_destinations");
        assert!(e.to_string().contains("c (weight 1)"), "{e}");
        let r = route(json!([{"name": "a"}, {"name": "b"}, {"name": "c", "weight": 0}]));
        let out = target().write(&r, Split::ALL_BURST).unwrap();
        assert_eq!(
            out["spec"]["rules"][0]["backendRefs"][0]["weight"],
            json!(0)
        );
        assert_eq!(
            out["spec"]["rules"][0]["backendRefs"][1]["weight"],
            json!(100)
        );
    }

    #[test]
    fn namespace_defaults_to_the_routes_own() {
        let r = route(
            json!([{"name": "a", "weight": 1}, {"name": "b", "namespace": "other", "weight": 1}]),
        );
        let t = HttpRouteTarget::new(
            BackendSelector::new("a").namespace("shop"),
            BackendSelector::new("b").namespace("shop"),
        );
        assert_eq!(t.read(&r).unwrap_err().kind(), "no_candidate_route");
        let t = HttpRouteTarget::new(
            BackendSelector::new("a").namespace("shop"),
            BackendSelector::new("b").namespace("other"),
        );
        assert_eq!(t.read(&r).unwrap(), Split::try_new(50, 50).unwrap());
    }

    #[test]
    fn port_disambiguates() {
        let r = route(
            json!([{"name": "a", "port": 80, "weight": 1}, {"name": "a", "port": 81, "weight": 0}, {"name": "b", "port": 80, "weight": 1}]),
        );
        assert_eq!(
            target().read(&r).unwrap_err().kind(),
            "duplicate_destination"
        );
        let t = HttpRouteTarget::new(
            BackendSelector::new("a").port(80),
            BackendSelector::new("b"),
        );
        assert_eq!(t.read(&r).unwrap(), Split::try_new(50, 50).unwrap());
    }

    #[test]
    fn selectors_matching_one_backend_are_refused() {
        // Same Service, burst on its own port: the primary selector (any port) also
        // matches the burst backendRef, and one weight cannot hold both shares.
        let t = HttpRouteTarget::new(
            BackendSelector::new("a"),
            BackendSelector::new("a").port(81),
        );
        let r = route(json!([{"name": "a", "port": 81, "weight": 100}]));
        for e in [
            t.read(&r).unwrap_err(),
            t.write(&r, Split::try_new(37, 63).unwrap()).unwrap_err(),
            t.patch(&r, Split::ALL_BURST).unwrap_err(),
        ] {
            assert_eq!(e.kind(), "shared_destination");
            assert!(e.to_string().contains("a:81"), "{e}");
        }
        // With its own port on the primary side, each selector matches its own backend.
        let t = HttpRouteTarget::new(
            BackendSelector::new("a").port(80),
            BackendSelector::new("a").port(81),
        );
        let r = route(json!([{"name": "a", "port": 80, "weight": 100}, {"name": "a", "port": 81}]));
        let out = t.write(&r, Split::try_new(37, 63).unwrap()).unwrap();
        assert_eq!(t.read(&out).unwrap(), Split::try_new(37, 63).unwrap());
    }

    #[test]
    fn weight_above_the_api_maximum_is_invalid() {
        let r = route(json!([{"name": "a", "weight": 1_000_001}, {"name": "b"}]));
        assert_eq!(target().read(&r).unwrap_err().kind(), "invalid_weight");
    }
}
