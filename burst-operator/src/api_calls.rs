//! Every Kubernetes API call burstd makes, in one list.
//!
//! The Helm chart's RBAC rules are tested against this list (`deploy_rbac` test), so
//! adding a call here without the matching rule, or a rule without a call, fails the build.
//! The operator tests also check every write that reached the real API server (recorded by
//! the tests' fault proxy) against it.

/// Where a permission is needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// In every namespace that holds BurstPolicies or targets (a ClusterRole).
    Cluster,
    /// Only in burstd's own namespace (a Role): the leader Lease.
    OwnNamespace,
    /// Only in the namespaces of `rbac.prewarmNamespaces` (a Role in each): pre-warming
    /// burst Deployments.
    PrewarmNamespaces,
}

/// One resource and the verbs used on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiCall {
    /// API group (`""` for the core group).
    pub group: &'static str,
    /// Resource plural, with `/subresource` if any.
    pub resource: &'static str,
    /// Verbs used.
    pub verbs: &'static [&'static str],
    /// Where.
    pub scope: Scope,
    /// `None` when always needed; else the chart value that enables it.
    pub optional: Option<&'static str>,
    /// What the call is for.
    pub why: &'static str,
}

/// The list. Keep it in step with the code; the RBAC test compares it with the chart.
pub const API_CALLS: &[ApiCall] = &[
    ApiCall {
        group: "bursting.dev",
        resource: "burstpolicies",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        optional: None,
        why: "operator mode: watch BurstPolicies (kube-runtime watcher: list, then watch)",
    },
    ApiCall {
        group: "bursting.dev",
        resource: "burstpolicies/status",
        verbs: &["patch"],
        scope: Scope::Cluster,
        optional: None,
        why: "operator mode: merge-patch each policy's status",
    },
    ApiCall {
        group: "networking.istio.io",
        resource: "virtualservices",
        verbs: &["get", "list", "watch", "patch"],
        scope: Scope::Cluster,
        optional: None,
        why: "read the split in effect (one shared watch per namespace, a GET when the copy may be stale); JSON-patch the two weights",
    },
    ApiCall {
        group: "gateway.networking.k8s.io",
        resource: "httproutes",
        verbs: &["get", "list", "watch", "patch"],
        scope: Scope::Cluster,
        optional: None,
        why: "read the split in effect (one shared watch per namespace, a GET when the copy may be stale); JSON-patch the two weights",
    },
    ApiCall {
        group: "discovery.k8s.io",
        resource: "endpointslices",
        verbs: &["list", "watch"],
        scope: Scope::Cluster,
        optional: None,
        why: "`source.pods`: watch the EndpointSlices of the Service whose pods are scraped",
    },
    ApiCall {
        group: "events.k8s.io",
        resource: "events",
        verbs: &["create"],
        scope: Scope::Cluster,
        optional: None,
        why: "an Event on every split change and on errors",
    },
    ApiCall {
        group: "coordination.k8s.io",
        resource: "leases",
        verbs: &["get", "create", "update"],
        scope: Scope::OwnNamespace,
        optional: None,
        why: "leader election: read, create and renew (PUT with resourceVersion) the Lease",
    },
    ApiCall {
        group: "",
        resource: "secrets",
        verbs: &["get"],
        scope: Scope::Cluster,
        optional: Some("rbac.readSecrets"),
        why: "Prometheus credentials and extra clusters' kubeconfigs referenced by a policy",
    },
    ApiCall {
        group: "autoscaling",
        resource: "horizontalpodautoscalers",
        verbs: &["get", "patch"],
        scope: Scope::PrewarmNamespaces,
        optional: Some("rbac.prewarmNamespaces"),
        why: "`spec.prewarm`: read the burst Deployment's HPA; merge-patch `minReplicas` and the original-value annotation (with resourceVersion)",
    },
    ApiCall {
        group: "apps",
        resource: "deployments",
        verbs: &["get", "patch"],
        scope: Scope::PrewarmNamespaces,
        optional: Some("rbac.prewarmNamespaces"),
        why: "`spec.prewarm` without an HPA: read and merge-patch the burst Deployment's `replicas` and the annotation",
    },
];

/// `(group, resource, verb, scope)` for every call, with the optional ones whose chart
/// value is in `enabled`.
pub fn permissions(enabled: &[&str]) -> Vec<(String, String, String, Scope)> {
    let mut out: Vec<_> = API_CALLS
        .iter()
        .filter(|c| c.optional.is_none_or(|o| enabled.contains(&o)))
        .flat_map(|c| {
            c.verbs.iter().map(|v| {
                (
                    c.group.to_owned(),
                    c.resource.to_owned(),
                    (*v).to_owned(),
                    c.scope,
                )
            })
        })
        .collect();
    out.sort_by(|a, b| (&a.0, &a.1, &a.2).cmp(&(&b.0, &b.1, &b.2)));
    out
}

/// Whether `(group, resource, verb)` is in the list (any scope, any option).
pub fn is_listed(group: &str, resource: &str, verb: &str) -> bool {
    API_CALLS
        .iter()
        .any(|c| c.group == group && c.resource == resource && c.verbs.contains(&verb))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_only_when_enabled() {
        assert!(!permissions(&[]).iter().any(|p| p.1 == "secrets"));
        assert!(
            permissions(&["rbac.readSecrets"])
                .iter()
                .any(|p| p.1 == "secrets" && p.2 == "get")
        );
        assert!(is_listed("coordination.k8s.io", "leases", "update"));
        assert!(!is_listed(
            "networking.istio.io",
            "virtualservices",
            "update"
        ));
    }
}
