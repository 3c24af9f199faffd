//! The EndpointWatcher across an API server outage: a control plane of its own (the
//! other tests share one), stopped while slices change, then started again. The watch
//! resumes by itself and the store catches up with what changed while it was down.

#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Duration;

use burst_pods::EndpointWatcher;
use burst_testkit::kube::ControlPlane;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::{DeleteParams, PostParams};
use serde_json::json;

fn slice(name: &str, address: &str) -> EndpointSlice {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/service-name": "checkout"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [address], "targetRef": {"kind": "Pod", "name": name}}],
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
    }))
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watch_resumes_after_an_api_server_restart() {
    let cp = tokio::task::spawn_blocking(ControlPlane::start)
        .await
        .unwrap()
        .expect("the real control plane");
    let ns = cp.create_namespace("pods-restart").await.unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(cp.admin_client().await.unwrap(), &ns);
    slices
        .create(&PostParams::default(), &slice("a", "10.244.1.1"))
        .await
        .unwrap();

    let watcher =
        EndpointWatcher::start(cp.admin_client().await.unwrap(), &ns, "checkout").unwrap();
    watcher.wait_synced(Duration::from_secs(20)).await.unwrap();
    assert_eq!(watcher.ready_count(), 1);

    // Down: the store keeps what it had.
    let cp = tokio::task::spawn_blocking(move || {
        cp.stop_apiserver();
        cp
    })
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        watcher.ready_count(),
        1,
        "an outage does not empty the store"
    );
    assert!(watcher.is_running());

    // Up again; changes made after the restart reach the watcher without a new one.
    let cp = tokio::task::spawn_blocking(move || {
        cp.start_apiserver().unwrap();
        cp
    })
    .await
    .unwrap();
    let slices: Api<EndpointSlice> = Api::namespaced(cp.admin_client().await.unwrap(), &ns);
    slices
        .create(&PostParams::default(), &slice("b", "10.244.1.2"))
        .await
        .unwrap();
    slices.delete("a", &DeleteParams::default()).await.unwrap();
    let now = watcher
        .wait_for(Duration::from_secs(60), |e| {
            e.len() == 1 && e[0].pod.as_deref() == Some("b")
        })
        .await;
    assert!(
        now.is_some(),
        "the watcher did not resume: {:?}",
        watcher.ready_endpoints()
    );
}
