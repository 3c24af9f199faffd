//! The real control plane itself: it starts, installs the project's CRDs, hands out
//! identities that RBAC really checks, restarts, and the fault proxy in front of it answers
//! what it was told to and records what reached the server.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use burst_testkit::kube::{ApiProxy, ControlPlane, Fault, Options, User};
use http::Method;
use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use serde_json::json;

fn cm(name: &str) -> ConfigMap {
    serde_json::from_value(json!({"metadata": {"name": name}, "data": {"k": "v"}})).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_and_installs_the_vendored_and_own_crds() {
    let cp = ControlPlane::shared().unwrap();
    eprintln!("control plane ready in {:?}", cp.started_in());
    let names = cp
        .install_crd_files(&[
            "schemas/istio/crd-all.gen.yaml",
            "schemas/gateway-api/gateway.networking.k8s.io_httproutes.yaml",
            "deploy/crd/burstpolicies.bursting.dev.yaml",
        ])
        .await
        .unwrap();
    for want in [
        "virtualservices.networking.istio.io",
        "httproutes.gateway.networking.k8s.io",
        "burstpolicies.bursting.dev",
    ] {
        assert!(names.iter().any(|n| n == want), "{want} not in {names:?}");
    }
    // Installing again is an idempotent apply.
    cp.install_crd_files(&["deploy/crd/burstpolicies.bursting.dev.yaml"])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crd_that_is_not_structural_is_refused() {
    let cp = ControlPlane::shared().unwrap();
    let bad = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.dev}
spec:
  group: example.dev
  names: {plural: widgets, singular: widget, kind: Widget}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec: {}
"#;
    let err = cp.install_crds(bad).await.unwrap_err();
    assert!(err.contains("widgets.example.dev"), "{err}");
    assert!(err.to_lowercase().contains("type"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_account_tokens_are_checked_by_rbac() {
    let cp = ControlPlane::shared().unwrap();
    let ns = cp.create_namespace("rbac").await.unwrap();
    let token = cp.service_account_token(&ns, "nobody").await.unwrap();
    let client = cp.client(&token).await.unwrap();
    let api: Api<ConfigMap> = Api::namespaced(client, &ns);
    let err = api
        .create(&PostParams::default(), &cm("x"))
        .await
        .unwrap_err();
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 403);
            assert!(
                s.message
                    .contains(&format!("system:serviceaccount:{ns}:nobody")),
                "{}",
                s.message
            );
            assert!(s.message.contains("configmaps"), "{}", s.message);
        }
        other => panic!("expected 403, got {other}"),
    }
}

#[test]
fn static_users_get_tokens_and_their_groups() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cp = ControlPlane::start_with(Options {
        users: vec![
            User::new("ops", &["system:masters"]),
            User::new("viewer", &[]),
        ],
    })
    .unwrap();
    let (etcd, apiserver) = cp.pids();
    assert!(etcd.is_some() && apiserver.is_some());
    rt.block_on(async {
        let ops = cp.client(cp.user_token("ops").unwrap()).await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(ops, "default");
        api.create(&PostParams::default(), &cm("by-ops"))
            .await
            .unwrap();
        let viewer = cp.client(cp.user_token("viewer").unwrap()).await.unwrap();
        let api: Api<ConfigMap> = Api::namespaced(viewer, "default");
        let err = api.get("by-ops").await.unwrap_err();
        assert!(
            matches!(err, kube::Error::Api(ref s) if s.code == 403),
            "{err}"
        );
    });
    let dir = cp.dir().to_path_buf();
    drop(cp);
    assert!(!dir.exists(), "state directory left behind");
}

#[test]
fn apiserver_and_etcd_restart_with_their_data() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let cp = ControlPlane::start().unwrap();
    rt.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(cp.admin_client().await.unwrap(), "default");
        api.create(&PostParams::default(), &cm("kept"))
            .await
            .unwrap();
    });
    cp.restart_etcd().unwrap();
    cp.restart_apiserver().unwrap();
    rt.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(cp.admin_client().await.unwrap(), "default");
        // etcd's restart may still be settling in the API server's client: bounded retry.
        let mut last = None;
        for _ in 0..50 {
            match api.get("kept").await {
                Ok(c) => {
                    assert_eq!(c.data.unwrap()["k"], "v");
                    return;
                }
                Err(e) => last = Some(e),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("object lost across restarts: {last:?}");
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_proxy_injects_faults_and_records_writes() {
    let cp = ControlPlane::shared().unwrap();
    let ns = cp.create_namespace("proxy").await.unwrap();
    let proxy = ApiProxy::start(cp).await.unwrap();
    // 500, not 503: kube's client retries 429, 503 and 504 by itself.
    proxy.inject(Fault::status(500).on(Method::POST).path("configmaps"));
    let api: Api<ConfigMap> = Api::namespaced(proxy.client(cp.admin_token()).await.unwrap(), &ns);
    let err = api
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 500 && s.message.contains("fault proxy")),
        "{err}"
    );
    assert!(
        proxy.writes().is_empty(),
        "a faulted write must not reach the server"
    );

    // Another writer acts on the real server just before the request goes through.
    let ns2 = ns.clone();
    proxy.inject(
        Fault::before(move |client| {
            let ns = ns2.clone();
            async move {
                let api: Api<ConfigMap> = Api::namespaced(client, &ns);
                api.create(&PostParams::default(), &cm("a")).await.unwrap();
            }
        })
        .on(Method::POST),
    );
    let err = api
        .create(&PostParams::default(), &cm("a"))
        .await
        .unwrap_err();
    assert!(
        matches!(err, kube::Error::Api(ref s) if s.code == 409),
        "{err}"
    );
    let writes = proxy.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(writes[0].status, 409);
    assert_eq!(writes[0].body["metadata"]["name"], "a");
    assert_eq!(proxy.fired().len(), 2);

    // Watches stream through the proxy.
    use futures::StreamExt;
    use kube::runtime::watcher;
    let stream = watcher(api.clone(), watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap();
    assert!(first.is_some());
}

#[test]
fn a_test_process_that_dies_leaves_no_server_and_no_state_behind() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_burst-testkit-abandon"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "the child should have aborted");
    let line = String::from_utf8(out.stdout).unwrap();
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(
        fields.len(),
        3,
        "{line:?} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let alive = |pid: &str| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    };
    for _ in 0..100 {
        if !alive(fields[0]) && !alive(fields[1]) && !std::path::Path::new(fields[2]).exists() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "10 s after its test process died: etcd alive {}, kube-apiserver alive {}, {} exists {}",
        alive(fields[0]),
        alive(fields[1]),
        fields[2],
        std::path::Path::new(fields[2]).exists()
    );
}
