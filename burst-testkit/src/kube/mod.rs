//! A real Kubernetes control plane for tests, and a fault proxy in front of it.
//!
//! [`ControlPlane`] runs etcd and kube-apiserver (built from their Go modules by
//! `scripts/control-plane.sh build`) as child processes, as controller-runtime's envtest
//! does: RBAC, static bearer tokens, ServiceAccount tokens from the TokenRequest API, CRDs
//! installed and Established, a namespace per test. [`ControlPlane::shared`] gives each test
//! binary one control plane.
//!
//! [`ApiProxy`] sits in front of it for the few things a real server cannot be made to do
//! on demand (injected 500s, delays, dropped connections) and records every write that
//! reached the server.

mod control_plane;
mod proxy;
mod resources;

pub use control_plane::{
    BUILD_COMMAND, ControlPlane, Options, User, bin_dir, binary, client_from_kubeconfig,
    kubeconfig, tail, versions, workspace_root,
};
pub use proxy::{ApiProxy, Fault, FaultAction, FiredFault, Hook, RecordedWrite};
pub use resources::{burst_policies, virtual_services};

/// The field managers the server recorded in an object's `metadata.managedFields`.
pub fn field_managers(object: &serde_json::Value) -> Vec<String> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|entries| {
            entries
                .iter()
                .filter_map(|m| m["manager"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
