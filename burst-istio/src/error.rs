//! The one error enum of `burst-istio`.

use std::time::Duration;

use burst_core::{RouterError, Split};

/// Everything that can go wrong reading, changing, rendering or writing route weights.
///
/// Each message names the object, the offending value and what to do about it.
/// [`Error::kind`] gives a short, stable label for logs and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The object is not of the kind the operation works on.
    #[error(
        "expected a {expected} (apiVersion {group}/<version>), found kind `{found_kind}` with apiVersion `{found_api_version}`; pass a {expected} manifest"
    )]
    WrongKind {
        /// The kind expected (`VirtualService`, `HTTPRoute`).
        expected: &'static str,
        /// The API group expected.
        group: &'static str,
        /// The `kind` found (empty if missing).
        found_kind: String,
        /// The `apiVersion` found (empty if missing).
        found_api_version: String,
    },
    /// A field the operation needs is missing or has the wrong type.
    #[error("{object}: `{path}` {problem}")]
    Malformed {
        /// The object, e.g. `VirtualService default/worker`.
        object: String,
        /// JSON pointer of the field.
        path: String,
        /// What is wrong with it and what it should be.
        problem: String,
    },
    /// The selected route or rule (by name or index) does not exist.
    #[error("{object}: there is no {route_word} {selector}; present: {available}", route_word = resource.route_word())]
    RouteNotFound {
        /// The object.
        object: String,
        /// VirtualService or HTTPRoute.
        resource: Resource,
        /// How it was selected (`named "x"`, `at index 3`).
        selector: String,
        /// The routes that exist.
        available: String,
    },
    /// No route or rule has destinations for both sides of the split (default selection).
    #[error(
        "{object}: no {route_word} has both {dest_word} `{primary}` and {dest_word} `{burst}` (present: {available}); add both to one {route_word}, or pass the right names",
        route_word = resource.route_word(),
        dest_word = resource.dest_word()
    )]
    NoCandidateRoute {
        /// The object.
        object: String,
        /// VirtualService or HTTPRoute.
        resource: Resource,
        /// The primary destination's name.
        primary: String,
        /// The burst destination's name.
        burst: String,
        /// The routes that exist.
        available: String,
    },
    /// Several routes or rules could be meant.
    #[error(
        "{object}: {count} {route_word}s have both `{primary}` and `{burst}`: {list}; select one by name or index",
        count = candidates.len(),
        list = candidates.join(", "),
        route_word = resource.route_word()
    )]
    AmbiguousRoute {
        /// The object.
        object: String,
        /// VirtualService or HTTPRoute.
        resource: Resource,
        /// The primary destination's name.
        primary: String,
        /// The burst destination's name.
        burst: String,
        /// The candidates, each with its name and index.
        candidates: Vec<String>,
    },
    /// The selected route lacks one of the two destinations.
    #[error(
        "{object}: {route} has no {dest_word} `{name}` (present: {present}); add a destination for it (weight 0 is fine) or pass the right name",
        dest_word = resource.dest_word()
    )]
    DestinationMissing {
        /// The object.
        object: String,
        /// The selected route.
        route: String,
        /// VirtualService or HTTPRoute.
        resource: Resource,
        /// The missing name.
        name: String,
        /// The destinations the route has.
        present: String,
    },
    /// One of the two destinations appears more than once in the selected route.
    #[error(
        "{object}: {route} lists {dest_word} `{name}` {count} times (destinations {indices:?}); keep one, or narrow the selection (host for Istio, port or namespace for Gateway API)",
        count = indices.len(),
        dest_word = resource.dest_word()
    )]
    DuplicateDestination {
        /// The object.
        object: String,
        /// The selected route.
        route: String,
        /// VirtualService or HTTPRoute.
        resource: Resource,
        /// The duplicated name.
        name: String,
        /// Indices of the duplicates in the route's destination list.
        indices: Vec<usize>,
    },
    /// One destination of the selected route matches both sides of the split (possible
    /// with HTTPRoute selectors that share a name and differ only in port or namespace).
    #[error(
        "{object}: {route} has one {dest_word}, {destination}, that both the primary and the burst selector match; its one weight cannot hold both shares. Give each side a port or namespace that the other side's {dest_word} does not have",
        dest_word = resource.dest_word()
    )]
    SharedDestination {
        /// The object.
        object: String,
        /// The selected route.
        route: String,
        /// VirtualService or HTTPRoute.
        resource: Resource,
        /// The destination both sides match.
        destination: String,
    },
    /// Other destinations of the selected route carry traffic, so the two weights would not
    /// mean "share of all traffic".
    #[error(
        "{object}: {route} also sends traffic to {others} (total weight {weight}); a primary/burst split would not describe all of its traffic. Set their weight to 0 explicitly, move them to another route, or remove them",
        others = others.join(", ")
    )]
    ExtraWeightedDestinations {
        /// The object.
        object: String,
        /// The selected route.
        route: String,
        /// The other destinations that carry weight.
        others: Vec<String>,
        /// Their total (effective) weight.
        weight: u64,
    },
    /// A weight in the object is not a valid integer in range.
    #[error(
        "{object}: `{path}` = {value} is not a valid weight: it must be an integer from 0 to {max}"
    )]
    InvalidWeight {
        /// The object.
        object: String,
        /// JSON pointer of the weight.
        path: String,
        /// The value found, as JSON.
        value: String,
        /// The largest weight the API accepts.
        max: u64,
    },
    /// Both destinations have weight 0, so there is no split to read.
    #[error(
        "{object}: {route} gives both `{primary}` and `{burst}` weight 0, so it sends them no traffic; set at least one weight above 0 (e.g. with set-weights)"
    )]
    ZeroTotalWeight {
        /// The object.
        object: String,
        /// The selected route.
        route: String,
        /// The primary destination's name.
        primary: String,
        /// The burst destination's name.
        burst: String,
    },
    /// An option given to a transform, renderer or router is invalid.
    #[error("invalid {what} `{value}`: {problem}")]
    InvalidOption {
        /// Which option.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// A manifest could not be parsed or serialised.
    #[error("{what}: {message}")]
    Parse {
        /// What was being parsed.
        what: String,
        /// The parser's message.
        message: String,
    },
    /// The object does not exist on the API server.
    #[error("{object} not found{cluster}; create it first or check the namespace and name", cluster = in_cluster(cluster))]
    NotFound {
        /// The object.
        object: String,
        /// The cluster, when known.
        cluster: Option<String>,
    },
    /// A call to the Kubernetes API server failed (refused, timed out, unreachable, or
    /// still conflicting after the retries); the message names the object.
    #[error(transparent)]
    Kube(#[from] ApiCallError),
    /// The clusters of a multi-cluster router hold different splits.
    #[error(
        "clusters disagree on {object}: {splits}; applying a split converges them",
        splits = splits.iter().map(|(c, s)| format!("{c}={s}")).collect::<Vec<_>>().join(", ")
    )]
    Drift {
        /// The object.
        object: String,
        /// Each cluster's split.
        splits: Vec<(String, Split)>,
    },
    /// Some clusters of a multi-cluster router failed.
    #[error(
        "{object}: {action} failed in {failed} of {total} clusters: {details}{ok}",
        failed = failures.len(),
        details = failures.iter().map(|(c, k, m)| format!("{c} ({k}): {m}")).collect::<Vec<_>>().join("; "),
        ok = if succeeded.is_empty() { String::new() } else { format!("; succeeded in {}", succeeded.join(", ")) }
    )]
    ClusterFailure {
        /// The object.
        object: String,
        /// `read` or `apply`.
        action: &'static str,
        /// Number of clusters.
        total: usize,
        /// `(cluster, kind, message)` of each failure.
        failures: Vec<(String, &'static str, String)>,
        /// Clusters where the action succeeded.
        succeeded: Vec<String>,
    },
}

/// A failed call to the Kubernetes API server about one object: what burst's Kubernetes
/// adapters (this crate's routers, `burst-scale`'s scaler) have in common, so that the
/// messages and the [`kind`](ApiCallError::kind) labels are the same whichever one fails.
///
/// Each crate's own error enum carries it as a variant; [`ApiCallError::from_kube`] sorts
/// a [`kube::Error`] into it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiCallError {
    /// The API server refused a request.
    #[error("{object}: the API server answered {code} {reason}: {message}")]
    Api {
        /// The object.
        object: String,
        /// HTTP status code.
        code: u16,
        /// The Status reason (`Invalid`, `Forbidden`, `InternalError`, ...).
        reason: String,
        /// The Status message.
        message: String,
    },
    /// The object kept changing between read and write; retries are exhausted.
    #[error(
        "{object}: still conflicting after {attempts} attempts (the object changed between read and write each time; last answer: {last}); try again, or find the other writer"
    )]
    Conflict {
        /// The object.
        object: String,
        /// Attempts made.
        attempts: u32,
        /// The last conflict message.
        last: String,
    },
    /// The API server did not answer in time.
    #[error("{object}: the API server did not answer {action} within {after:?}")]
    Timeout {
        /// The object.
        object: String,
        /// `get` or `patch`.
        action: &'static str,
        /// The request timeout.
        after: Duration,
    },
    /// The API server could not be reached, or the connection broke.
    #[error("{object}: cannot {action} it: connection to the API server failed: {detail}")]
    Connection {
        /// The object.
        object: String,
        /// `get` or `patch`.
        action: &'static str,
        /// The client's description of the failure.
        detail: String,
    },
    /// Any other client-side failure (building the request, decoding the answer).
    #[error("{object}: cannot {action} it: {detail}")]
    Client {
        /// The object.
        object: String,
        /// `get` or `patch`.
        action: &'static str,
        /// The client's description of the failure.
        detail: String,
    },
}

/// The two kinds of object whose weights this crate changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Resource {
    /// Istio `VirtualService` (`spec.http[].route[]`).
    VirtualService,
    /// Gateway API `HTTPRoute` (`spec.rules[].backendRefs[]`).
    HttpRoute,
}

impl Resource {
    /// `http route` or `rule`.
    pub const fn route_word(self) -> &'static str {
        match self {
            Resource::VirtualService => "http route",
            Resource::HttpRoute => "rule",
        }
    }

    /// `subset` or `backendRef`.
    pub const fn dest_word(self) -> &'static str {
        match self {
            Resource::VirtualService => "subset",
            Resource::HttpRoute => "backendRef",
        }
    }
}

fn in_cluster(cluster: &Option<String>) -> String {
    match cluster {
        Some(c) => format!(" in cluster `{c}`"),
        None => String::new(),
    }
}

impl Error {
    /// A short, stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::WrongKind { .. } => "wrong_kind",
            Error::Malformed { .. } => "malformed",
            Error::RouteNotFound { .. } => "route_not_found",
            Error::NoCandidateRoute { .. } => "no_candidate_route",
            Error::AmbiguousRoute { .. } => "ambiguous_route",
            Error::DestinationMissing { .. } => "destination_missing",
            Error::DuplicateDestination { .. } => "duplicate_destination",
            Error::SharedDestination { .. } => "shared_destination",
            Error::ExtraWeightedDestinations { .. } => "extra_weighted_destinations",
            Error::InvalidWeight { .. } => "invalid_weight",
            Error::ZeroTotalWeight { .. } => "zero_total_weight",
            Error::InvalidOption { .. } => "invalid_option",
            Error::Parse { .. } => "parse",
            Error::NotFound { .. } => "not_found",
            Error::Kube(e) => e.kind(),
            Error::Drift { .. } => "drift",
            Error::ClusterFailure { .. } => "cluster_failure",
        }
    }

    /// Whether the clusters of a multi-cluster router hold different splits.
    pub fn is_drift(&self) -> bool {
        matches!(self, Error::Drift { .. })
    }

    /// The `burst-istio` error inside a [`RouterError`], if it holds one.
    pub fn of(e: &RouterError) -> Option<&Error> {
        e.inner().downcast_ref::<Error>()
    }
}

impl ApiCallError {
    /// A short, stable label for logs and metrics: the API server's answer by its status
    /// code (`unauthorized`, `forbidden`, `not_found`, `conflict`, `invalid`, `server`,
    /// `api`), else `conflict`, `timeout`, `connection` or `client`.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiCallError::Api { code, .. } => status_kind(*code),
            ApiCallError::Conflict { .. } => "conflict",
            ApiCallError::Timeout { .. } => "timeout",
            ApiCallError::Connection { .. } => "connection",
            ApiCallError::Client { .. } => "client",
        }
    }

    /// Sorts a client error from `action` (`get`, `patch`) on `object`: the API server's
    /// answer, a connection failure, or anything else on the client's side.
    pub fn from_kube(object: &str, action: &'static str, e: kube::Error) -> ApiCallError {
        match e {
            kube::Error::Api(status) => ApiCallError::Api {
                object: object.to_owned(),
                code: status.code,
                reason: status.reason.clone(),
                message: status.message.clone(),
            },
            kube::Error::HyperError(e) => ApiCallError::Connection {
                object: object.to_owned(),
                action,
                detail: burst_core::error_chain(&e),
            },
            kube::Error::Service(e) => ApiCallError::Connection {
                object: object.to_owned(),
                action,
                detail: burst_core::error_chain(e.as_ref()),
            },
            other => ApiCallError::Client {
                object: object.to_owned(),
                action,
                detail: burst_core::error_chain(&other),
            },
        }
    }
}

/// The label of an API server answer with HTTP status `code`.
fn status_kind(code: u16) -> &'static str {
    match code {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        409 => "conflict",
        422 => "invalid",
        500..=599 => "server",
        _ => "api",
    }
}

/// A short, stable label for a failed Kubernetes client call (metrics, logs): the same
/// labels [`Error::kind`] gives the routers' errors (`forbidden`, `not_found`, `conflict`,
/// `invalid`, `server`, `api`, `connection`, `client`).
///
/// burstd's status writer and Event recorder label their failures with it too, so one
/// table maps `kube::Error` to a label.
pub fn kube_error_kind(e: &kube::Error) -> &'static str {
    match e {
        kube::Error::Api(s) => status_kind(s.code),
        kube::Error::HyperError(_) | kube::Error::Service(_) => "connection",
        _ => "client",
    }
}

impl From<Error> for RouterError {
    fn from(e: Error) -> Self {
        RouterError::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kube_errors_get_one_label_each() {
        let api = |code: u16| {
            kube::Error::Api(
                kube::core::Status::failure("m", "R")
                    .with_code(code)
                    .boxed(),
            )
        };
        let cases = [
            (401, "unauthorized"),
            (403, "forbidden"),
            (404, "not_found"),
            (409, "conflict"),
            (422, "invalid"),
            (503, "server"),
            (400, "api"),
        ];
        for (code, label) in cases {
            assert_eq!(kube_error_kind(&api(code)), label, "{code}");
        }
        let e = kube::Error::LinesCodecMaxLineLengthExceeded;
        assert_eq!(kube_error_kind(&e), "client");
    }

    #[test]
    fn api_calls_sort_kube_errors_and_keep_the_labels() {
        let obj = "HorizontalPodAutoscaler ns/w";
        let refused = ApiCallError::from_kube(
            obj,
            "patch",
            kube::Error::Api(
                kube::core::Status::failure("the object has been modified", "Conflict")
                    .with_code(409)
                    .boxed(),
            ),
        );
        assert_eq!(refused.kind(), "conflict");
        assert_eq!(
            refused.to_string(),
            "HorizontalPodAutoscaler ns/w: the API server answered 409 Conflict: the object has been modified"
        );
        let other =
            ApiCallError::from_kube(obj, "get", kube::Error::LinesCodecMaxLineLengthExceeded);
        assert_eq!(other.kind(), "client");
        assert!(
            other
                .to_string()
                .starts_with("HorizontalPodAutoscaler ns/w: cannot get it: "),
            "{other}"
        );
        let late = ApiCallError::Timeout {
            object: obj.into(),
            action: "get",
            after: Duration::from_secs(2),
        };
        assert_eq!(late.kind(), "timeout");
        assert_eq!(
            late.to_string(),
            "HorizontalPodAutoscaler ns/w: the API server did not answer get within 2s"
        );
        // The same labels as for the client error itself.
        for code in [401, 403, 404, 409, 422, 500, 418] {
            let k = kube::Error::Api(
                kube::core::Status::failure("m", "R")
                    .with_code(code)
                    .boxed(),
            );
            let label = kube_error_kind(&k);
            assert_eq!(
                ApiCallError::from_kube(obj, "get", k).kind(),
                label,
                "{code}"
            );
        }
    }

    #[test]
    fn kinds_are_stable_labels() {
        let e = Error::from(ApiCallError::Api {
            object: "VirtualService default/w".into(),
            code: 503,
            reason: "ServiceUnavailable".into(),
            message: "down".into(),
        });
        assert_eq!(e.kind(), "server");
        assert_eq!(
            e.to_string(),
            "VirtualService default/w: the API server answered 503 ServiceUnavailable: down"
        );
        let r: RouterError = e.into();
        assert_eq!(r.kind(), "server");
        assert!(r.to_string().contains("VirtualService default/w"));
    }

    #[test]
    fn drift_names_clusters_and_splits() {
        let e = Error::Drift {
            object: "VirtualService default/w".into(),
            splits: vec![
                ("east".into(), Split::ALL_PRIMARY),
                ("west".into(), Split::ALL_BURST),
            ],
        };
        assert_eq!(e.kind(), "drift");
        assert!(e.is_drift());
        assert!(e.to_string().contains("east=100/0, west=0/100"), "{e}");
        let r: RouterError = e.into();
        assert!(Error::of(&r).is_some_and(Error::is_drift));
        assert!(
            Error::of(&RouterError::new(
                "drift",
                "a string, not a burst-istio error"
            ))
            .is_none()
        );
    }
}
