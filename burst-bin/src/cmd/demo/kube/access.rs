//! `burst demo --kubeconfig`, before anything is written: read the kubeconfig, check the
//! credentials (a SelfSubjectReview) and every permission the demo and burstd need (one
//! SelfSubjectAccessReview each).

use std::path::Path;
use std::time::Duration;

use anyhow::bail;
use k8s_openapi::api::authentication::v1::SelfSubjectReview;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::Api;
use kube::api::PostParams;
use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::seed::{POLICY_CRD, VS_CRD};
use super::timing::{PatchLog, PatchTimingLayer};
use super::{Cluster, Target, bounded, describe};

/// A permission to check.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Permission {
    verb: &'static str,
    group: &'static str,
    resource: &'static str,
    subresource: Option<&'static str>,
    namespaced: bool,
}

impl Permission {
    pub(super) fn describe(&self, namespace: &str) -> String {
        let res = match self.subresource {
            Some(s) => format!("{}/{s}", self.resource),
            None => self.resource.to_owned(),
        };
        let res = if self.group.is_empty() {
            res
        } else {
            format!("{res}.{}", self.group)
        };
        if self.namespaced {
            format!("{} {res} in namespace {namespace}", self.verb)
        } else {
            format!("{} {res} (cluster-wide)", self.verb)
        }
    }
}

/// What the demo and the in-process burstd need (burstd's part comes from its list of API
/// calls: VirtualService target, no leader election, no Secrets).
pub(super) fn needed_permissions(
    namespace_exists: bool,
    missing_crds: &[&str],
    endpoint_slices: bool,
    prewarm: bool,
) -> Vec<Permission> {
    let p = |verb, group, resource, subresource, namespaced| Permission {
        verb,
        group,
        resource,
        subresource,
        namespaced,
    };
    let mut out = Vec::new();
    for c in burst_operator::api_calls::API_CALLS {
        if c.optional.is_some()
            || c.scope != burst_operator::api_calls::Scope::Cluster
            || c.resource == "httproutes"
        {
            continue;
        }
        let (resource, sub) = match c.resource.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (c.resource, None),
        };
        for v in c.verbs {
            out.push(p(v, c.group, resource, sub, true));
        }
    }
    // The demo's own calls: the seed objects, the proxy's watch, the status watch, the
    // Events behind each change's reason.
    for v in ["get", "list", "watch", "create", "patch"] {
        out.push(p(v, "networking.istio.io", "virtualservices", None, true));
        out.push(p(v, "bursting.dev", "burstpolicies", None, true));
    }
    out.push(p("list", "events.k8s.io", "events", None, true));
    if endpoint_slices {
        // `--source pods`: the demo applies the slice, burstd watches it.
        for v in ["get", "list", "watch", "create", "patch"] {
            out.push(p(v, "discovery.k8s.io", "endpointslices", None, true));
        }
    }
    if prewarm {
        // The demo applies and watches the burst Deployment; burstd's pre-warm reads its
        // HorizontalPodAutoscaler (none: the Deployment's replicas) and patches it.
        for v in ["get", "list", "watch", "create", "patch"] {
            out.push(p(v, "apps", "deployments", None, true));
        }
        out.push(p(
            "get",
            "autoscaling",
            "horizontalpodautoscalers",
            None,
            true,
        ));
    }
    if !namespace_exists {
        out.push(p("create", "", "namespaces", None, false));
    }
    if !missing_crds.is_empty() {
        for v in ["create", "patch"] {
            out.push(p(
                v,
                "apiextensions.k8s.io",
                "customresourcedefinitions",
                None,
                false,
            ));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// Reads the kubeconfig, checks that the server answers and accepts the credentials, and
/// that they allow everything the demo will do. Writes nothing.
pub async fn connect(target: Target) -> anyhow::Result<Cluster> {
    let path = &target.kubeconfig;
    let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
        anyhow::anyhow!(
            "cannot use kubeconfig {}: {e}; pass a kubeconfig file for the cluster (kubectl's ~/.kube/config works)",
            path.display()
        )
    })?;
    let mut config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .map_err(|e| anyhow::anyhow!("kubeconfig {}: {e}", path.display()))?;
    config.connect_timeout = Some(Duration::from_secs(5));
    config.read_timeout = None;
    let server = config.cluster_url.to_string();
    let client = kube::Client::try_from(config.clone()).map_err(|e| {
        anyhow::anyhow!("kubeconfig {}: cannot build a client: {e}", path.display())
    })?;
    let patches = PatchLog::default();
    let operator_client = ClientBuilder::try_from(config)
        .map_err(|e| anyhow::anyhow!("kubeconfig {}: cannot build a client: {e}", path.display()))?
        .with_layer(&PatchTimingLayer {
            log: patches.clone(),
        })
        .build();

    let user = whoami(&client, &server, path).await?;
    let namespace = &target.namespace;
    let ns_api: Api<Namespace> = Api::all(client.clone());
    let namespace_exists = match bounded("reading the namespace", ns_api.get_opt(namespace)).await?
    {
        Ok(Some(ns)) => {
            let terminating = ns.metadata.deletion_timestamp.is_some()
                || ns.status.and_then(|s| s.phase).as_deref() == Some("Terminating");
            if terminating {
                bail!(
                    "namespace {namespace} on {server} is being deleted, so nothing can be created in it; pick another one with --namespace"
                );
            }
            true
        }
        Ok(None) => false,
        // Reading may be forbidden where creating is not: the review below decides.
        Err(kube::Error::Api(s)) if s.code == 403 => false,
        Err(e) => bail!(
            "cannot read namespace {namespace} on {server}: {}",
            describe(&e)
        ),
    };
    let crd_api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing_crds = Vec::new();
    for name in [VS_CRD, POLICY_CRD] {
        match bounded("reading the CRDs", crd_api.get_opt(name)).await? {
            Ok(Some(_)) => {}
            Ok(None) | Err(kube::Error::Api(_)) => missing_crds.push(name),
            Err(e) => bail!("cannot read CRD {name} on {server}: {}", describe(&e)),
        }
    }
    let denied = denied_permissions(
        &client,
        namespace,
        &needed_permissions(
            namespace_exists,
            &missing_crds,
            target.endpoint_slices,
            target.prewarm,
        ),
    )
    .await?;
    if !denied.is_empty() {
        let list: Vec<String> = denied
            .iter()
            .map(|p| format!("  - {}", p.describe(namespace)))
            .collect();
        bail!(
            "the kubeconfig's user {user} on {server} may not do what the demo needs:\n{}\n\
             Use a kubeconfig whose user holds these rights (e.g. cluster-admin on a test cluster); nothing was created.",
            list.join("\n")
        );
    }
    Ok(Cluster {
        target,
        server,
        user,
        client,
        operator_client,
        patches,
        namespace_exists,
        missing_crds,
    })
}

/// The user name the server sees (SelfSubjectReview); a refused credential is an error.
pub(super) async fn whoami(
    client: &kube::Client,
    server: &str,
    path: &Path,
) -> anyhow::Result<String> {
    let api: Api<SelfSubjectReview> = Api::all(client.clone());
    let review = SelfSubjectReview::default();
    match bounded(
        &format!("the API server {server} (kubeconfig {})", path.display()),
        api.create(&PostParams::default(), &review),
    )
    .await?
    {
        Ok(r) => Ok(r
            .status
            .and_then(|s| s.user_info)
            .and_then(|u| u.username)
            .map_or_else(|| "(unnamed)".to_owned(), |u| format!("`{u}`"))),
        Err(kube::Error::Api(s)) if s.code == 401 => bail!(
            "the API server {server} refused the credentials in kubeconfig {} (401 Unauthorized); \
             the token or certificate is wrong or expired",
            path.display()
        ),
        // Old servers, or the review itself forbidden: the user stays unnamed.
        Err(kube::Error::Api(s)) if s.code == 403 || s.code == 404 => Ok("(unnamed)".to_owned()),
        Err(e) => bail!(
            "cannot reach the API server {server} from kubeconfig {}: {}; is it running, and is the kubeconfig's server address right?",
            path.display(),
            describe(&e)
        ),
    }
}

/// The permissions of `needed` the server denies (one SelfSubjectAccessReview each).
pub(super) async fn denied_permissions(
    client: &kube::Client,
    namespace: &str,
    wanted: &[Permission],
) -> anyhow::Result<Vec<Permission>> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    let mut denied = Vec::new();
    for p in wanted {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(p.verb.to_owned()),
                    group: Some(p.group.to_owned()),
                    resource: Some(p.resource.to_owned()),
                    subresource: p.subresource.map(str::to_owned),
                    namespace: p.namespaced.then(|| namespace.to_owned()),
                    ..ResourceAttributes::default()
                }),
                ..SelfSubjectAccessReviewSpec::default()
            },
            ..SelfSubjectAccessReview::default()
        };
        let answer = bounded(
            "checking permissions",
            api.create(&PostParams::default(), &review),
        )
        .await?
        .map_err(|e| {
            anyhow::anyhow!(
                "cannot check permissions (SelfSubjectAccessReview): {}",
                describe(&e)
            )
        })?;
        if !answer.status.is_some_and(|s| s.allowed) {
            denied.push(p.clone());
        }
    }
    Ok(denied)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn permissions_cover_burstd_and_grow_with_what_is_missing() {
        let base = needed_permissions(true, &[], false, false);
        let has = |ps: &[Permission], verb: &str, resource: &str| {
            ps.iter().any(|p| p.verb == verb && p.resource == resource)
        };
        assert!(has(&base, "patch", "virtualservices"));
        assert!(
            base.iter()
                .any(|p| p.subresource == Some("status") && p.verb == "patch")
        );
        assert!(has(&base, "create", "events"));
        assert!(!has(&base, "get", "leases") && !has(&base, "get", "httproutes"));
        assert!(!has(&base, "create", "namespaces"));
        assert!(!has(&base, "create", "endpointslices"));
        assert!(!has(&base, "patch", "deployments"));
        let all = needed_permissions(false, &[VS_CRD], true, true);
        assert!(has(&all, "patch", "deployments") && has(&all, "watch", "deployments"));
        assert!(has(&all, "get", "horizontalpodautoscalers"));
        assert!(has(&all, "create", "namespaces"));
        assert!(has(&all, "watch", "endpointslices") && has(&all, "create", "endpointslices"));
        assert!(has(&all, "create", "customresourcedefinitions"));
        assert_eq!(
            Permission {
                verb: "patch",
                group: "bursting.dev",
                resource: "burstpolicies",
                subresource: Some("status"),
                namespaced: true
            }
            .describe("x"),
            "patch burstpolicies/status.bursting.dev in namespace x"
        );
    }
}
