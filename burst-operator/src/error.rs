//! The one error enum of `burst-operator`.

use std::path::PathBuf;

/// What can go wrong configuring or running burstd.
///
/// Every message names the offending value and what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A BurstPolicy spec or single-policy setting with an invalid value.
    #[error("invalid setting `{field}`: {message}")]
    InvalidSpec {
        /// The field, as written in the BurstPolicy spec (`spec.policy.high`).
        field: String,
        /// What is wrong and what is expected.
        message: String,
    },
    /// A configuration file that could not be read.
    #[error("cannot read the config file {path}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A configuration file that is not valid YAML for a BurstPolicy (spec).
    #[error("config file {path}: {message}")]
    ParseConfig {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A Secret or key referenced by a policy is missing or unusable.
    #[error("secret {namespace}/{name}: {message}")]
    Secret {
        /// Namespace of the Secret.
        namespace: String,
        /// Name of the Secret.
        name: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// A kubeconfig for an extra cluster that cannot be used.
    #[error("kubeconfig of cluster `{cluster}`: {message}")]
    Kubeconfig {
        /// The cluster's name in `spec.target.clusters`, or `prewarm` for the pre-warm
        /// scaler's cluster.
        cluster: String,
        /// What is wrong and what to do.
        message: String,
    },
    /// The metric source could not be built.
    #[error("metric source: {0}")]
    Source(#[from] burst_prom::Error),
    /// The pod source (`spec.source.pods`) could not be built.
    #[error("pod source: {0}")]
    PodSource(#[from] burst_pods::Error),
    /// The router could not be built.
    #[error("router: {0}")]
    Router(#[from] burst_istio::Error),
    /// The HAProxy router or source could not be built.
    #[error("HAProxy: {0}")]
    Haproxy(#[from] burst_haproxy::Error),
    /// The pre-warm scaler (`spec.prewarm`) could not be built or recover.
    #[error("pre-warm scaler: {0}")]
    Scaler(#[from] burst_scale::Error),
    /// The policy could not be built.
    #[error("policy: {0}")]
    Policy(#[from] burst_core::Error),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {action}: {source}")]
    Kube {
        /// What was being done (`watch burstpolicies`, `renew lease`).
        action: &'static str,
        /// The client error.
        #[source]
        source: kube::Error,
    },
    /// The HTTP endpoints could not be served.
    #[error("cannot serve HTTP on {addr}")]
    Listen {
        /// The listen address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Leader election is on, but the Lease's namespace was not given and cannot be read
    /// from the pod's service account.
    #[error(
        "leader election needs the Lease's namespace: set --lease-namespace or BURST_LEASE_NAMESPACE (in a pod it is read from {path}), or turn leader election off with --leader-elect=false"
    )]
    LeaseNamespace {
        /// The service-account file that could not be read.
        path: &'static str,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// No client for the Kubernetes API could be configured.
    #[error(
        "cannot reach the Kubernetes API: no in-cluster service account and no usable kubeconfig (set KUBECONFIG, or run burstd inside the cluster)"
    )]
    NoCluster {
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// Standard output could not be written (`burstd crd`).
    #[error("cannot write to standard output")]
    Stdout {
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// `kubectl burst explain` could not read the route in effect.
    #[error("cannot explain the policy: {message}")]
    Explain {
        /// What failed, with the route's name.
        message: String,
    },
    /// A value could not be encoded (CRD YAML, status).
    #[error("cannot encode {what}: {message}")]
    Encode {
        /// What was being encoded.
        what: &'static str,
        /// Why.
        message: String,
    },
}

impl Error {
    /// A short, stable label for metrics and conditions.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidSpec { .. } => "invalid_spec",
            Error::ReadConfig { .. } => "read_config",
            Error::ParseConfig { .. } => "parse_config",
            Error::Secret { .. } => "secret",
            Error::Kubeconfig { .. } => "kubeconfig",
            Error::Source(_) => "source",
            Error::PodSource(_) => "pod_source",
            Error::Router(_) => "router",
            Error::Haproxy(_) => "haproxy",
            Error::Scaler(_) => "scaler",
            Error::Policy(_) => "policy",
            Error::Kube { .. } => "kube",
            Error::Listen { .. } => "listen",
            Error::LeaseNamespace { .. } => "lease_namespace",
            Error::NoCluster { .. } => "no_cluster",
            Error::Stdout { .. } => "stdout",
            Error::Encode { .. } => "encode",
            Error::Explain { .. } => "explain",
        }
    }

    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Error {
        Error::InvalidSpec {
            field: field.into(),
            message: message.into(),
        }
    }

    pub(crate) fn kube(action: &'static str, source: kube::Error) -> Error {
        Error::Kube { action, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_field_and_kinds_are_stable() {
        let e = Error::invalid("spec.policy.high", "must be above low");
        assert_eq!(
            e.to_string(),
            "invalid setting `spec.policy.high`: must be above low"
        );
        assert_eq!(e.kind(), "invalid_spec");
    }
}
