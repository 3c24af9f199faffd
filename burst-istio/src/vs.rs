//! Reading and writing the primary/burst weights of an Istio VirtualService.
//!
//! Works on any served version (`networking.istio.io/v1`, `v1beta1`, `v1alpha3`): the
//! fields involved (`spec.http[].route[].destination.subset`, `.weight`) are the same.
//!
//! Istio's rules, from the VirtualService reference: `weight` is the relative proportion of
//! traffic a destination receives; a route with a single destination sends it all traffic;
//! in a route with several destinations an omitted weight counts as 0. Writing always sets
//! both weights explicitly to integers from 0 to 100 that sum to 100, which every Istio
//! release accepts. Reading accepts any proportions and converts them to a [`Split`] (burst
//! share rounded to the nearest percent, halves up).

use burst_core::Split;
use serde_json::Value;

use crate::Error;
use crate::error::Resource;
use crate::weights::{self, Query, RouteSelector, Shape};

/// API group of VirtualService and DestinationRule.
pub const ISTIO_GROUP: &str = "networking.istio.io";

pub(crate) static VS_SHAPE: Shape = Shape {
    kind: "VirtualService",
    group: ISTIO_GROUP,
    routes_field: "http",
    dests_field: "route",
    resource: Resource::VirtualService,
    route_word: Resource::VirtualService.route_word(),
    omitted_weight: 0,
    max_weight: i32::MAX as u64,
};

/// Which route and which two subsets of a VirtualService hold the split.
///
/// ```
/// use burst_core::Split;
/// use burst_istio::{RouteSelector, VsTarget};
///
/// let target = VsTarget::default().route(RouteSelector::Name("workers".into()));
/// assert_eq!(target.primary_subset, "primary");
/// assert_eq!(target.burst_subset, "burst");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VsTarget {
    /// Which `spec.http[]` route (default: the only one with both subsets).
    pub route: RouteSelector,
    /// Subset that receives the primary share (default `primary`).
    pub primary_subset: String,
    /// Subset that receives the burst share (default `burst`).
    pub burst_subset: String,
    /// Only destinations with this `destination.host` count (default: any host).
    pub host: Option<String>,
}

impl Default for VsTarget {
    fn default() -> Self {
        VsTarget {
            route: RouteSelector::Only,
            primary_subset: "primary".to_owned(),
            burst_subset: "burst".to_owned(),
            host: None,
        }
    }
}

impl VsTarget {
    /// Selects the route.
    pub fn route(mut self, route: RouteSelector) -> Self {
        self.route = route;
        self
    }

    /// Sets the two subset names.
    pub fn subsets(mut self, primary: impl Into<String>, burst: impl Into<String>) -> Self {
        self.primary_subset = primary.into();
        self.burst_subset = burst.into();
        self
    }

    /// Counts only destinations with this host.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = Some(host.into());
        self
    }

    /// The split the selected route holds now.
    pub fn read(&self, vs: &Value) -> Result<Split, Error> {
        self.with_query(|q| weights::read(vs, q))
    }

    /// `vs` with only the two weights changed to `split`.
    pub fn write(&self, vs: &Value, split: Split) -> Result<Value, Error> {
        self.with_query(|q| weights::write(vs, q, split))
    }

    /// A JSON patch that sets the two weights, guarded by a `test` op on `/spec/http`, or
    /// `None` when the weights already hold `split`.
    pub fn patch(&self, vs: &Value, split: Split) -> Result<Option<json_patch::Patch>, Error> {
        self.with_query(|q| weights::patch(vs, q, split))
    }

    fn with_query<R>(&self, f: impl FnOnce(&Query<'_>) -> Result<R, Error>) -> Result<R, Error> {
        weights::check_names("subset name", &self.primary_subset, &self.burst_subset)?;
        fn is<'a>(subset: &'a str, host: Option<&'a str>) -> impl Fn(&Value) -> bool + 'a {
            move |d: &Value| {
                d.pointer("/destination/subset").and_then(Value::as_str) == Some(subset)
                    && host.is_none_or(|h| {
                        d.pointer("/destination/host").and_then(Value::as_str) == Some(h)
                    })
            }
        }
        let is_primary = is(&self.primary_subset, self.host.as_deref());
        let is_burst = is(&self.burst_subset, self.host.as_deref());
        f(&Query {
            shape: &VS_SHAPE,
            selector: &self.route,
            primary_name: &self.primary_subset,
            burst_name: &self.burst_subset,
            is_primary: &is_primary,
            is_burst: &is_burst,
            describe: describe_destination,
        })
    }
}

fn describe_destination(d: &Value) -> String {
    let host = d
        .pointer("/destination/host")
        .and_then(Value::as_str)
        .unwrap_or("<no host>");
    match d.pointer("/destination/subset").and_then(Value::as_str) {
        Some(s) => format!("{s} ({host})"),
        None => format!("{host} (no subset)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn seed(p: Option<i64>, b: Option<i64>) -> Value {
        let dest = |subset: &str, w: Option<i64>| {
            let mut d = json!({"destination": {"host": "worker-service.default.svc.cluster.local", "port": {"number": 80}, "subset": subset}});
            if let Some(w) = w {
                d["weight"] = json!(w);
            }
            d
        };
        json!({
            "apiVersion": "networking.istio.io/v1alpha3",
            "kind": "VirtualService",
            "metadata": {"name": "worker-virtual-service", "namespace": "default"},
            "spec": {"hosts": ["worker-service"], "gateways": ["mesh"],
                     "http": [{"route": [dest("primary", p), dest("burst", b)]}]}
        })
    }

    #[test]
    fn reads_and_writes_the_seed() {
        let t = VsTarget::default();
        let vs = seed(Some(100), Some(0));
        assert_eq!(t.read(&vs).unwrap(), Split::ALL_PRIMARY);
        let out = t.write(&vs, Split::try_new(30, 70).unwrap()).unwrap();
        assert_eq!(out["spec"]["http"][0]["route"][0]["weight"], json!(30));
        assert_eq!(out["spec"]["http"][0]["route"][1]["weight"], json!(70));
        assert_eq!(t.read(&out).unwrap(), Split::try_new(30, 70).unwrap());
    }

    #[test]
    fn omitted_weight_counts_as_zero_beside_others() {
        let t = VsTarget::default();
        assert_eq!(t.read(&seed(None, Some(5))).unwrap(), Split::ALL_BURST);
        let e = t.read(&seed(None, None)).unwrap_err();
        assert_eq!(e.kind(), "zero_total_weight");
    }

    #[test]
    fn bad_weights_name_their_path() {
        let t = VsTarget::default();
        let e = t.read(&seed(Some(-1), Some(0))).unwrap_err();
        assert_eq!(e.kind(), "invalid_weight");
        assert!(e.to_string().contains("/spec/http/0/route/0/weight"), "{e}");
        // Writing replaces an invalid weight.
        let out = t.write(&seed(Some(-1), Some(0)), Split::ALL_BURST).unwrap();
        assert_eq!(t.read(&out).unwrap(), Split::ALL_BURST);
    }

    #[test]
    fn patch_is_none_when_unchanged_and_tests_the_routes() {
        let t = VsTarget::default();
        let vs = seed(Some(100), Some(0));
        assert!(t.patch(&vs, Split::ALL_PRIMARY).unwrap().is_none());
        let p = t.patch(&vs, Split::ALL_BURST).unwrap().unwrap();
        let v = serde_json::to_value(&p).unwrap();
        assert_eq!(v[0]["op"], "test");
        assert_eq!(v[0]["path"], "/spec/http");
        assert_eq!(v[1]["path"], "/spec/http/0/route/0/weight");
        assert_eq!(v[2]["value"], json!(100));
    }

    #[test]
    fn same_subset_names_are_refused() {
        let t = VsTarget::default().subsets("a", "a");
        assert_eq!(
            t.read(&seed(Some(1), Some(1))).unwrap_err().kind(),
            "invalid_option"
        );
    }

    #[test]
    fn host_filter_resolves_duplicates() {
        let mut vs = seed(Some(100), Some(0));
        vs["spec"]["http"][0]["route"]
            .as_array_mut()
            .unwrap()
            .push(json!({"destination": {"host": "other", "subset": "burst"}, "weight": 0}));
        let e = VsTarget::default().read(&vs).unwrap_err();
        assert_eq!(e.kind(), "duplicate_destination");
        let t = VsTarget::default().host("worker-service.default.svc.cluster.local");
        assert_eq!(t.read(&vs).unwrap(), Split::ALL_PRIMARY);
    }

    #[test]
    fn wrong_kind_is_refused() {
        let mut vs = seed(Some(100), Some(0));
        vs["kind"] = json!("DestinationRule");
        assert_eq!(
            VsTarget::default().read(&vs).unwrap_err().kind(),
            "wrong_kind"
        );
        vs["kind"] = json!("VirtualService");
        vs["apiVersion"] = json!("gateway.networking.k8s.io/v1");
        assert_eq!(
            VsTarget::default().read(&vs).unwrap_err().kind(),
            "wrong_kind"
        );
    }
}
