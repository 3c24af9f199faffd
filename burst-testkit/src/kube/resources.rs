//! The API resources the tests read and write as dynamic objects.

use kube::api::{ApiResource, GroupVersionKind};

/// Istio's `networking.istio.io/v1` VirtualService (`virtualservices`).
pub fn virtual_services() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService"),
        "virtualservices",
    )
}

/// burstd's `bursting.dev/v1alpha1` BurstPolicy (`burstpolicies`).
pub fn burst_policies() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("bursting.dev", "v1alpha1", "BurstPolicy"),
        "burstpolicies",
    )
}
