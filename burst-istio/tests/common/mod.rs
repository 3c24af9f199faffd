//! Shared by the router tests: a namespace on a real kube-apiserver with the route CRDs
//! installed, a fault proxy in front of it, objects written and read as the server's own
//! JSON, and the comparison that ignores only what the server manages itself.

#![allow(dead_code)]

use std::time::Duration;

use burst_istio::{RouterOptions, VirtualServiceRouter, VsTarget};
use burst_testkit::kube::{ApiProxy, ControlPlane};
use serde_json::{Value, json};

/// The CRDs the routers work on, installed on every control plane a test uses.
pub const ROUTE_CRDS: [&str; 2] = [
    "schemas/istio/crd-all.gen.yaml",
    "schemas/gateway-api/gateway.networking.k8s.io_httproutes.yaml",
];

pub const NAME: &str = "worker-virtual-service";
pub const V1: &str = "networking.istio.io/v1";
pub const HTTPROUTE_V1: &str = "gateway.networking.k8s.io/v1";

/// Metadata the server rewrites on every write; everything else must survive a round trip.
pub const SERVER_MANAGED: [&str; 3] = ["resourceVersion", "generation", "managedFields"];

/// Installs [`ROUTE_CRDS`] once per control plane of this test binary (the install is an
/// idempotent apply, but the Istio file holds many CRDs).
pub async fn install_route_crds(cp: &ControlPlane) {
    static INSTALLED: tokio::sync::Mutex<Vec<String>> = tokio::sync::Mutex::const_new(Vec::new());
    let mut installed = INSTALLED.lock().await;
    if !installed.contains(&cp.url()) {
        cp.install_crd_files(&ROUTE_CRDS).await.unwrap();
        installed.push(cp.url());
    }
}

/// Routers that give up fast, so a test of retries does not wait.
pub fn fast() -> RouterOptions {
    RouterOptions {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        request_timeout: Duration::from_secs(5),
        ..RouterOptions::default()
    }
}

/// One test's view of one cluster: a namespace of its own on a real API server, an admin
/// client straight to the server (for setup and for reading back), and a fault proxy that
/// the routers under test go through.
pub struct Cluster<'a> {
    pub cp: &'a ControlPlane,
    pub ns: String,
    pub admin: kube::Client,
    pub proxy: ApiProxy,
}

impl<'a> Cluster<'a> {
    /// A new namespace `<prefix>-<n>` on `cp`, with the route CRDs installed.
    pub async fn new(cp: &'a ControlPlane, prefix: &str) -> Cluster<'a> {
        install_route_crds(cp).await;
        let ns = cp.create_namespace(prefix).await.unwrap();
        Cluster::in_namespace(cp, ns).await
    }

    /// The namespace `ns` on `cp` (created here), with the route CRDs installed: the same
    /// namespace name in a second cluster.
    pub async fn named(cp: &'a ControlPlane, ns: &str) -> Cluster<'a> {
        install_route_crds(cp).await;
        let admin = cp.admin_client().await.unwrap();
        let namespace = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
        request(
            &admin,
            http::Method::POST,
            "/api/v1/namespaces",
            Some(&namespace),
        )
        .await
        .unwrap();
        Cluster::in_namespace(cp, ns.to_owned()).await
    }

    async fn in_namespace(cp: &'a ControlPlane, ns: String) -> Cluster<'a> {
        Cluster {
            cp,
            admin: cp.admin_client().await.unwrap(),
            proxy: ApiProxy::start(cp).await.unwrap(),
            ns,
        }
    }

    /// `VirtualService <ns>/<name>`, as the router's messages name it.
    pub fn vs_object(&self, name: &str) -> String {
        format!("VirtualService {}/{name}", self.ns)
    }

    /// A client through the fault proxy, as the admin.
    pub async fn proxied_client(&self) -> kube::Client {
        self.proxy.client(self.cp.admin_token()).await.unwrap()
    }

    /// A VirtualService router for `name` in this namespace, through the proxy.
    pub async fn vs_router(&self, name: &str, options: RouterOptions) -> VirtualServiceRouter {
        VirtualServiceRouter::new(
            self.proxied_client().await,
            &self.ns,
            name,
            VsTarget::default(),
            options,
        )
        .unwrap()
    }

    /// Creates `obj` (its `apiVersion`, `kind` and `metadata.name`; the namespace is this
    /// one) on the server and returns the server's answer.
    pub async fn create(&self, obj: &Value) -> Result<Value, kube::Error> {
        let mut obj = obj.clone();
        obj["metadata"]["namespace"] = json!(self.ns);
        let path = collection_path(&obj, &self.ns);
        request(&self.admin, http::Method::POST, &path, Some(&obj)).await
    }

    /// The object as the server stores it, read in `api_version`.
    pub async fn get(&self, api_version: &str, plural: &str, name: &str) -> Value {
        request(
            &self.admin,
            http::Method::GET,
            &object_path(api_version, plural, &self.ns, name),
            None,
        )
        .await
        .unwrap()
    }

    /// VirtualService `name` as the server stores it (v1).
    pub async fn stored_vs(&self, name: &str) -> Value {
        self.get(V1, "virtualservices", name).await
    }
}

/// `/apis/<group>/<version>/namespaces/<ns>/<plural>/<name>`.
pub fn object_path(api_version: &str, plural: &str, ns: &str, name: &str) -> String {
    format!("/apis/{api_version}/namespaces/{ns}/{plural}/{name}")
}

fn collection_path(obj: &Value, ns: &str) -> String {
    let plural = match obj["kind"].as_str() {
        Some("VirtualService") => "virtualservices",
        Some("HTTPRoute") => "httproutes",
        other => panic!("no plural known for kind {other:?}"),
    };
    format!(
        "/apis/{}/namespaces/{ns}/{plural}",
        obj["apiVersion"].as_str().unwrap()
    )
}

/// One request with the server's JSON answer; a refusal is the server's `Status`.
pub async fn request(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    body: Option<&Value>,
) -> Result<Value, kube::Error> {
    request_as(client, method, path, "application/json", body).await
}

/// A JSON patch (RFC 6902) by another writer, straight to the server.
pub async fn json_patch(
    client: &kube::Client,
    path: &str,
    ops: Value,
) -> Result<Value, kube::Error> {
    request_as(
        client,
        http::Method::PATCH,
        path,
        "application/json-patch+json",
        Some(&ops),
    )
    .await
}

/// A server-side apply of `obj` by field manager `manager` (with `force`, it takes fields
/// other managers own), straight to the server.
pub async fn server_side_apply(
    client: &kube::Client,
    path: &str,
    manager: &str,
    force: bool,
    obj: &Value,
) -> Result<Value, kube::Error> {
    let path = format!("{path}?fieldManager={manager}&force={force}");
    request_as(
        client,
        http::Method::PATCH,
        &path,
        "application/apply-patch+yaml",
        Some(obj),
    )
    .await
}

async fn request_as(
    client: &kube::Client,
    method: http::Method,
    path: &str,
    content_type: &str,
    body: Option<&Value>,
) -> Result<Value, kube::Error> {
    let bytes = body
        .map(|b| serde_json::to_vec(b).unwrap())
        .unwrap_or_default();
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(bytes)
        .unwrap();
    let text = client.request_text(req).await?;
    Ok(serde_json::from_str(&text).unwrap())
}

/// `obj` without the metadata the server rewrites on every write ([`SERVER_MANAGED`]).
pub fn without_server_managed(obj: &Value) -> Value {
    let mut obj = obj.clone();
    if let Some(meta) = obj["metadata"].as_object_mut() {
        for field in SERVER_MANAGED {
            meta.remove(field);
        }
    }
    obj
}

/// Asserts that `after` is `before` with exactly the weights at these JSON pointers set to
/// these values, and otherwise the same byte for byte once serialised (uid,
/// creationTimestamp, labels, annotations, every other spec field), ignoring only
/// [`SERVER_MANAGED`].
pub fn assert_only_weights_changed(before: &Value, after: &Value, weights: &[(&str, u64)]) {
    let mut expected = before.clone();
    for (pointer, weight) in weights {
        let (parent, field) = pointer.rsplit_once('/').unwrap();
        let parent = expected
            .pointer_mut(parent)
            .and_then(Value::as_object_mut)
            .unwrap_or_else(|| panic!("{parent} is not an object in {before}"));
        parent.insert(field.to_owned(), json!(weight));
    }
    let expected = serde_json::to_string_pretty(&without_server_managed(&expected)).unwrap();
    let after = serde_json::to_string_pretty(&without_server_managed(after)).unwrap();
    assert_eq!(
        after, expected,
        "only the two weights may change in a real round trip"
    );
}

/// The `managedFields` entry of `manager`, if any.
pub fn managed_by<'v>(obj: &'v Value, manager: &str) -> Option<&'v Value> {
    obj["metadata"]["managedFields"]
        .as_array()?
        .iter()
        .find(|e| e["manager"] == manager)
}

/// A VirtualService in the namespace the test sets, with a route that splits between the
/// subsets `primary` and `burst` and keeps a retry policy and a label.
pub fn seed_vs(api_version: &str, name: &str, primary: u64, burst: u64) -> Value {
    json!({
        "apiVersion": api_version, "kind": "VirtualService",
        "metadata": {"name": name, "labels": {"app": "worker"}},
        "spec": {"hosts": ["worker-service"], "gateways": ["mesh"], "http": [{
            "retries": {"attempts": 3},
            "route": [
                {"destination": {"host": "worker-service.default.svc.cluster.local", "port": {"number": 80}, "subset": "primary"}, "weight": primary},
                {"destination": {"host": "worker-service.default.svc.cluster.local", "port": {"number": 80}, "subset": "burst"}, "weight": burst},
            ]}]}
    })
}

/// The JSON pointer of weight `dest` in http route `route`.
pub fn vs_weight(route: usize, dest: usize) -> String {
    format!("/spec/http/{route}/route/{dest}/weight")
}

/// Asserts that the API server refused `result` with HTTP `code` and a message naming every
/// one of `needles`; `stored` says what a success would mean.
pub fn assert_refused<T>(
    result: Result<T, kube::Error>,
    code: u16,
    needles: &[&str],
    stored: &str,
) {
    let Err(kube::Error::Api(s)) = result else {
        panic!("{stored}")
    };
    assert_eq!(s.code, code);
    assert!(
        needles.iter().all(|n| s.message.contains(n)),
        "{}",
        s.message
    );
}
