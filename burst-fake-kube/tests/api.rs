//! The fake API server, driven through the real `kube::Client`.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use burst_fake_kube::{FakeKube, Fault};
use http::Method;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::{Value, json};

const GROUP: &str = "networking.istio.io";

fn resource(version: &str) -> ApiResource {
    let gvk = GroupVersionKind::gvk(GROUP, version, "VirtualService");
    ApiResource::from_gvk_with_plural(&gvk, "virtualservices")
}

fn vs(name: &str) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "worker"}},
        "spec": {"hosts": ["worker-service"], "http": [{"route": [
            {"destination": {"host": "worker-service", "subset": "primary"}, "weight": 100},
            {"destination": {"host": "worker-service", "subset": "burst"}, "weight": 0}]}]}
    })
}

async fn setup() -> (FakeKube, Api<DynamicObject>) {
    let fake = FakeKube::start().await.expect("start fake");
    let api = Api::namespaced_with(fake.client().expect("client"), "default", &resource("v1"));
    (fake, api)
}

fn dynamic(v: Value) -> DynamicObject {
    serde_json::from_value(v).expect("dynamic object")
}

fn api_code(e: kube::Error) -> (u16, String) {
    match e {
        kube::Error::Api(s) => (s.code, s.reason.clone()),
        other => panic!("expected an API error, got {other:?}"),
    }
}

fn stored(fake: &FakeKube, name: &str) -> Option<Value> {
    fake.object(GROUP, "virtualservices", Some("default"), name)
}

#[tokio::test]
async fn create_get_list_delete_round_trip() {
    let (fake, api) = setup().await;
    let created = api
        .create(&PostParams::default(), &dynamic(vs("a")))
        .await
        .unwrap();
    assert_eq!(created.metadata.resource_version.as_deref(), Some("1"));
    assert_eq!(created.metadata.generation, Some(1));
    assert!(created.metadata.uid.is_some());
    assert!(created.metadata.creation_timestamp.is_some());
    let e = api
        .create(&PostParams::default(), &dynamic(vs("a")))
        .await
        .unwrap_err();
    assert_eq!(api_code(e), (409, "AlreadyExists".into()));
    api.create(&PostParams::default(), &dynamic(vs("b")))
        .await
        .unwrap();

    let got = api.get("a").await.unwrap();
    assert_eq!(got.data["spec"]["http"][0]["route"][0]["weight"], 100);
    let list = api
        .list(&ListParams::default().labels("app=worker"))
        .await
        .unwrap();
    assert_eq!(list.items.len(), 2);
    let list = api
        .list(&ListParams::default().labels("app=other"))
        .await
        .unwrap();
    assert!(list.items.is_empty());

    // Other versions of the group read the same object.
    let old: Api<DynamicObject> =
        Api::namespaced_with(fake.client().unwrap(), "default", &resource("v1alpha3"));
    let got_old = old.get("a").await.unwrap();
    assert_eq!(
        got_old.types.unwrap().api_version,
        "networking.istio.io/v1alpha3"
    );

    api.delete("a", &DeleteParams::default()).await.unwrap();
    let e = api.get("a").await.unwrap_err();
    assert_eq!(api_code(e), (404, "NotFound".into()));
    assert!(stored(&fake, "a").is_none());
}

#[tokio::test]
async fn replace_needs_the_current_resource_version() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    let mut obj = api.get("a").await.unwrap();
    let stale = obj.clone();
    obj.data["spec"]["hosts"] = json!(["other"]);
    let replaced = api
        .replace("a", &PostParams::default(), &obj)
        .await
        .unwrap();
    assert_eq!(replaced.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(replaced.metadata.generation, Some(2));

    let e = api
        .replace("a", &PostParams::default(), &stale)
        .await
        .unwrap_err();
    match e {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 409);
            assert_eq!(s.reason, "Conflict");
            assert!(
                s.message.contains("the object has been modified"),
                "{}",
                s.message
            );
            assert_eq!(s.details.as_ref().map(|d| d.name.as_str()), Some("a"));
        }
        other => panic!("{other:?}"),
    }
    let mut unconditional = obj.clone();
    unconditional.metadata.resource_version = None;
    let e = api
        .replace("a", &PostParams::default(), &unconditional)
        .await
        .unwrap_err();
    assert_eq!(api_code(e).0, 422);
    assert_eq!(
        stored(&fake, "a").unwrap()["spec"]["hosts"],
        json!(["other"])
    );
}

#[tokio::test]
async fn json_patch_test_failure_is_422_and_writes_nothing() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/http/0/route/0/weight", "value": 50},
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 0},
    ]))
    .unwrap();
    let e = api
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap_err();
    assert_eq!(api_code(e), (422, "Invalid".into()));
    let v = stored(&fake, "a").unwrap();
    assert_eq!(v["spec"]["http"][0]["route"][0]["weight"], 100);
    assert_eq!(v["metadata"]["resourceVersion"], "1");

    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": "/spec/http/0/route/0/weight", "value": 100},
        {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 40},
    ]))
    .unwrap();
    let out = api
        .patch("a", &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
        .unwrap();
    assert_eq!(out.data["spec"]["http"][0]["route"][0]["weight"], 40);
    assert_eq!(out.metadata.resource_version.as_deref(), Some("2"));
    assert_eq!(out.metadata.generation, Some(2));
}

#[tokio::test]
async fn merge_patch_and_server_side_apply() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    let out = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "x"}}})),
        )
        .await
        .unwrap();
    assert_eq!(out.metadata.generation, Some(1), "labels are not spec");
    assert_eq!(out.metadata.resource_version.as_deref(), Some("2"));
    // A merge patch carrying a stale resourceVersion is a precondition failure.
    let e = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"resourceVersion": "1"}, "spec": {"hosts": ["z"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(e).0, 409);

    // Apply without a field manager is refused, as by the real server.
    let applied = dynamic(vs("c"));
    let e = api
        .patch("c", &PatchParams::default(), &Patch::Apply(&applied))
        .await
        .unwrap_err();
    assert_eq!(api_code(e).0, 422);
    // Apply creates, then merges.
    let created = api
        .patch("c", &PatchParams::apply("tests"), &Patch::Apply(&applied))
        .await
        .unwrap();
    assert_eq!(created.metadata.generation, Some(1));
    let mut changed = vs("c");
    changed["spec"]["hosts"] = json!(["new"]);
    let merged = api
        .patch(
            "c",
            &PatchParams::apply("tests"),
            &Patch::Apply(dynamic(changed)),
        )
        .await
        .unwrap();
    assert_eq!(merged.data["spec"]["hosts"], json!(["new"]));
    assert_eq!(merged.metadata.generation, Some(2));

    let e = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Strategic(json!({"spec": {}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(e), (415, "UnsupportedMediaType".into()));
}

#[tokio::test]
async fn dry_run_computes_but_stores_nothing() {
    let (fake, api) = setup().await;
    let pp = PostParams {
        dry_run: true,
        ..PostParams::default()
    };
    let out = api.create(&pp, &dynamic(vs("a"))).await.unwrap();
    assert_eq!(out.metadata.name.as_deref(), Some("a"));
    assert!(stored(&fake, "a").is_none());

    fake.insert("virtualservices", vs("a")).unwrap();
    let out = api
        .patch(
            "a",
            &PatchParams::default().dry_run(),
            &Patch::Merge(json!({"spec": {"hosts": ["dry"]}})),
        )
        .await
        .unwrap();
    assert_eq!(out.data["spec"]["hosts"], json!(["dry"]));
    let v = stored(&fake, "a").unwrap();
    assert_eq!(v["spec"]["hosts"], json!(["worker-service"]));
    assert_eq!(
        v["metadata"]["resourceVersion"], "1",
        "the dry-run create took no revision"
    );

    api.delete("a", &DeleteParams::default().dry_run())
        .await
        .unwrap();
    assert!(stored(&fake, "a").is_some());
    let writes = fake.writes();
    assert_eq!(writes.len(), 3);
    assert!(writes.iter().all(|w| w.dry_run), "{writes:?}");
}

#[tokio::test]
async fn writes_are_recorded_with_method_path_and_body() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    api.get("a").await.unwrap();
    api.patch(
        "a",
        &PatchParams {
            field_manager: Some("burst".into()),
            ..PatchParams::default()
        },
        &Patch::Merge(json!({"spec": {"hosts": ["x"]}})),
    )
    .await
    .unwrap();
    let writes = fake.writes();
    assert_eq!(writes.len(), 1, "GETs are not writes");
    let w = &writes[0];
    assert_eq!(w.method, Method::PATCH);
    assert_eq!(
        w.path,
        "/apis/networking.istio.io/v1/namespaces/default/virtualservices/a"
    );
    assert_eq!(w.content_type, "application/merge-patch+json");
    assert_eq!(w.body, json!({"spec": {"hosts": ["x"]}}));
    assert_eq!(w.field_manager.as_deref(), Some("burst"));
    assert_eq!(w.status, 200);
    assert!(!w.dry_run);
}

#[tokio::test]
async fn injected_statuses_answer_before_the_store() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    fake.inject(Fault::status(500).on(Method::GET).times(2));
    assert_eq!(
        api_code(api.get("a").await.unwrap_err()),
        (500, "InternalError".into())
    );
    assert_eq!(api_code(api.get("a").await.unwrap_err()).0, 500);
    assert!(api.get("a").await.is_ok(), "the fault ran out");

    fake.inject(
        Fault::status(409)
            .on(Method::PATCH)
            .path("/virtualservices/a"),
    );
    let e = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hosts": ["x"]}})),
        )
        .await
        .unwrap_err();
    assert_eq!(api_code(e).0, 409);
    assert_eq!(
        stored(&fake, "a").unwrap()["spec"]["hosts"],
        json!(["worker-service"])
    );
    assert!(
        fake.writes().is_empty(),
        "faulted requests never reach the store"
    );
    fake.inject(Fault::status(404));
    assert_eq!(api_code(api.get("a").await.unwrap_err()).0, 404);
    assert_eq!(fake.fired().len(), 4);
}

#[tokio::test]
async fn dropped_connection_is_a_transport_error() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    fake.inject(Fault::drop_connection());
    let e = api.get("a").await.unwrap_err();
    assert!(
        matches!(e, kube::Error::HyperError(_) | kube::Error::Service(_)),
        "{e:?}"
    );
    assert!(
        api.get("a").await.is_ok(),
        "the next request gets a new connection"
    );
}

#[tokio::test]
async fn delay_stalls_the_answer() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    fake.inject(Fault::delay(Duration::from_secs(30)));
    let r = tokio::time::timeout(Duration::from_millis(200), api.get("a")).await;
    assert!(r.is_err(), "the answer must not come before the delay");
    fake.inject(Fault::delay(Duration::from_millis(1)));
    assert!(api.get("a").await.is_ok());
}

#[tokio::test]
async fn mutate_hook_plays_another_writer() {
    let (fake, api) = setup().await;
    fake.insert("virtualservices", vs("a")).unwrap();
    let before = api.get("a").await.unwrap();
    fake.inject(
        Fault::mutate(|store| {
            let key = burst_fake_kube::ObjectKey {
                group: GROUP.into(),
                plural: "virtualservices".into(),
                namespace: Some("default".into()),
                name: "a".into(),
            };
            store.modify(&key, |o| o["spec"]["hosts"] = json!(["changed"]));
        })
        .on(Method::PUT),
    );
    let e = api
        .replace("a", &PostParams::default(), &before)
        .await
        .unwrap_err();
    assert_eq!(api_code(e).0, 409);
    assert_eq!(
        stored(&fake, "a").unwrap()["spec"]["hosts"],
        json!(["changed"])
    );
}

#[tokio::test]
async fn unknown_paths_and_oversized_bodies_get_status_errors() {
    let (fake, _) = setup().await;
    let http = reqwest_like_get(&fake, "/healthz").await;
    assert_eq!(http.0, 404);
    assert_eq!(http.1["kind"], "Status");

    let api: Api<DynamicObject> =
        Api::namespaced_with(fake.client().unwrap(), "default", &resource("v1"));
    let mut big = vs("big");
    big["spec"]["blob"] = json!("x".repeat(4 * 1024 * 1024));
    let e = api
        .create(&PostParams::default(), &dynamic(big))
        .await
        .unwrap_err();
    assert_eq!(api_code(e).0, 413);
}

/// A raw GET through kube's client, for paths outside any resource.
async fn reqwest_like_get(fake: &FakeKube, path: &str) -> (u16, Value) {
    let client = fake.client().unwrap();
    let req = http::Request::get(path).body(Vec::new()).unwrap();
    match client.request::<Value>(req).await {
        Ok(v) => (200, v),
        Err(kube::Error::Api(s)) => (s.code, json!({"kind": "Status", "reason": s.reason})),
        Err(e) => panic!("{e:?}"),
    }
}

#[tokio::test]
async fn a_client_from_the_kubeconfig_reaches_the_fake_in_its_namespace() {
    let fake = FakeKube::start().await.unwrap();
    fake.insert("virtualservices", vs("a")).unwrap();
    let yaml = fake.kubeconfig("default", "t0ken");
    let kc = kube::config::Kubeconfig::from_yaml(&yaml).unwrap();
    let cluster = kc.clusters[0].cluster.as_ref().unwrap();
    assert_eq!(cluster.server.as_deref(), Some(fake.url().as_str()));
    assert_eq!(kc.current_context.as_deref(), Some("fake"));
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    assert_eq!(config.default_namespace, "default");
    let client = kube::Client::try_from(config).unwrap();
    let api: Api<DynamicObject> = Api::default_namespaced_with(client, &resource("v1"));
    assert_eq!(
        api.get("a").await.unwrap().metadata.name.as_deref(),
        Some("a")
    );
}
