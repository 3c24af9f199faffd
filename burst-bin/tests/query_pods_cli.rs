//! `burst query --pods` end to end: the built binary against a real kube-apiserver holding
//! a Service's EndpointSlices. What it prints and its exit codes when there is nothing to
//! scrape, when the slices lack the metrics port, when the kubeconfig is unusable and when
//! the identity may not list EndpointSlices. (The rates themselves are tested in
//! burst-pods' own tests: the API server refuses loopback addresses in slices, so the
//! binary cannot be pointed at local pods without a tunnel.)

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use burst_testkit::kube::ControlPlane;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

async fn burst(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = std::iter::once("query")
            .chain(args.iter().map(String::as_str))
            .collect();
        common::burst(&args)
    })
    .await
    .expect("the blocking task finishes")
}

/// A namespace with slices for Service `checkout`: one endpoint not ready, one ready
/// whose slice has only a port named `http`. Returns (namespace, admin kubeconfig file).
async fn cluster(dir: &tempfile::TempDir) -> (String, String) {
    let cp = ControlPlane::shared().expect("the real control plane");
    let ns = cp.create_namespace("query-pods").await.unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(cp.admin_client().await.unwrap(), &ns);
    for (name, ready) in [("a", false), ("b", true)] {
        let slice = json!({
            "metadata": {"name": format!("checkout-{name}"),
                         "labels": {"kubernetes.io/service-name": "checkout"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": [format!("10.244.9.{}", if ready { 2 } else { 1 })],
                           "conditions": {"ready": ready},
                           "targetRef": {"kind": "Pod", "name": name}}],
            "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
        });
        slices
            .create(
                &PostParams::default(),
                &serde_json::from_value(slice).unwrap(),
            )
            .await
            .unwrap();
    }
    let file = dir.path().join("kubeconfig");
    std::fs::write(&file, cp.kubeconfig(cp.admin_token(), &ns)).unwrap();
    (ns, file.to_string_lossy().into_owned())
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_ready_endpoints_and_no_metrics_port_are_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, kubeconfig) = cluster(&dir).await;

    // A Service without slices: no data, exit 1.
    let (code, out, err) = burst(args(&[
        "--pods",
        "cart",
        "--namespace",
        &ns,
        "--kubeconfig",
        &kubeconfig,
    ]))
    .await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "no data: no ready endpoints for service {ns}/cart"
        )),
        "{err}"
    );

    // checkout's one ready endpoint has no port named `metrics`.
    let (code, out, err) = burst(args(&[
        "--pods",
        "checkout",
        "--namespace",
        &ns,
        "--kubeconfig",
        &kubeconfig,
        "--metrics-port",
        "metrics",
        "--json",
    ]))
    .await;
    assert_eq!(code, 1, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["status"], "no_data");
    let reason = v["reason"].as_str().unwrap();
    assert!(
        reason.contains("none of the 1 ready endpoints") && reason.contains("metrics"),
        "{reason}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_kubeconfig_and_missing_rbac_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (ns, _) = cluster(&dir).await;

    let (code, _, err) = burst(args(&[
        "--pods",
        "checkout",
        "--kubeconfig",
        "/nonexistent/kubeconfig",
    ]))
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("error (kubeconfig): cannot use kubeconfig /nonexistent/kubeconfig"),
        "{err}"
    );

    // A ServiceAccount without any role may not list EndpointSlices: the first list never
    // arrives, and the error says which permission is needed.
    let cp = ControlPlane::shared().unwrap();
    let token = cp.service_account_token(&ns, "nobody").await.unwrap();
    let file = dir.path().join("nobody");
    std::fs::write(&file, cp.kubeconfig(&token, &ns)).unwrap();
    let (code, _, err) = burst(args(&[
        "--pods",
        "checkout",
        "--namespace",
        &ns,
        "--kubeconfig",
        file.to_str().unwrap(),
        "--timeout",
        "2s",
    ]))
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("error (not_synced)"), "{err}");
    assert!(
        err.contains("list and watch endpointslices.discovery.k8s.io"),
        "{err}"
    );
}
