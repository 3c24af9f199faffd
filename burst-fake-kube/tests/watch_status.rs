//! Watch streams and the status subresource, through the real kube client and watcher.

#![allow(clippy::unwrap_used)]

use std::time::Duration;

use burst_fake_kube::FakeKube;
use futures::{StreamExt, TryStreamExt};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, WatchEvent, WatchParams,
};
use kube::runtime::watcher::{self, Event};
use serde_json::json;

fn thing(name: &str, spec: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "example.dev/v1", "kind": "Thing",
           "metadata": {"name": name, "namespace": "default"}, "spec": spec})
}

fn api(fake: &FakeKube) -> Api<DynamicObject> {
    let gvk = GroupVersionKind::gvk("example.dev", "v1", "Thing");
    let ar = ApiResource::from_gvk_with_plural(&gvk, "things");
    Api::namespaced_with(fake.client().unwrap(), "default", &ar)
}

fn crd() -> serde_json::Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
           "spec": {"group": "example.dev", "names": {"plural": "things", "kind": "Thing"},
                    "versions": [{"name": "v1", "subresources": {"status": {}}}]}})
}

#[tokio::test]
async fn watcher_sees_adds_changes_and_deletes() {
    let fake = FakeKube::start().await.unwrap();
    fake.insert("things", thing("a", json!({"n": 1}))).unwrap();
    let api = api(&fake);
    let mut events = watcher::watcher(api.clone(), watcher::Config::default()).boxed();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(5), events.try_next())
            .await
            .expect("watch event in time")
            .unwrap()
            .unwrap()
    };
    assert!(matches!(next().await, Event::Init));
    assert!(matches!(next().await, Event::InitApply(o) if o.metadata.name.as_deref() == Some("a")));
    assert!(matches!(next().await, Event::InitDone));

    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"n": 2}})),
    )
    .await
    .unwrap();
    match next().await {
        Event::Apply(o) => assert_eq!(o.data["spec"]["n"], 2),
        other => panic!("{other:?}"),
    }
    api.create(
        &Default::default(),
        &serde_json::from_value(thing("b", json!({}))).unwrap(),
    )
    .await
    .unwrap();
    assert!(matches!(next().await, Event::Apply(o) if o.metadata.name.as_deref() == Some("b")));
    api.delete("a", &Default::default()).await.unwrap();
    assert!(matches!(next().await, Event::Delete(o) if o.metadata.name.as_deref() == Some("a")));
}

#[tokio::test]
async fn watch_resumes_from_a_version_and_expires_after_compaction() {
    let fake = FakeKube::start().await.unwrap();
    let stored = fake.insert("things", thing("a", json!({"n": 1}))).unwrap();
    let rv = stored["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let api = api(&fake);
    api.patch(
        "a",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"n": 2}})),
    )
    .await
    .unwrap();
    let wp = WatchParams::default().timeout(2);
    let mut s = api.watch(&wp, &rv).await.unwrap().boxed();
    match s.next().await.unwrap().unwrap() {
        WatchEvent::Modified(o) => assert_eq!(o.data["spec"]["n"], 2),
        other => panic!("{other:?}"),
    }
    fake.with_store(|s| {
        let now = s.revision();
        s.changes_mut().compact(now);
    });
    let mut s = api.watch(&wp, &rv).await.unwrap().boxed();
    match s.next().await.unwrap().unwrap() {
        WatchEvent::Error(e) => assert_eq!(e.code, 410),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn status_subresource_owns_status_only() {
    let fake = FakeKube::start().await.unwrap();
    assert!(fake.install_crd(&crd()).unwrap());
    let mut obj = thing("a", json!({"n": 1}));
    obj["status"] = json!({"phase": "ignored on create"});
    let api = api(&fake);
    let created = api
        .create(&Default::default(), &serde_json::from_value(obj).unwrap())
        .await
        .unwrap();
    assert!(created.data.get("status").is_none());

    let patched = api
        .patch_status(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Ready"}, "spec": {"n": 99}})),
        )
        .await
        .unwrap();
    assert_eq!(patched.data["status"]["phase"], "Ready");
    assert_eq!(patched.data["spec"]["n"], 1, "status writes keep the spec");
    assert_eq!(patched.metadata.generation, Some(1));
    assert_ne!(
        patched.metadata.resource_version,
        created.metadata.resource_version
    );

    let main = api
        .patch(
            "a",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"phase": "Hacked"}, "spec": {"n": 2}})),
        )
        .await
        .unwrap();
    assert_eq!(
        main.data["status"]["phase"], "Ready",
        "main writes keep the status"
    );
    assert_eq!(main.metadata.generation, Some(2));
    assert_eq!(api.get_status("a").await.unwrap().data["spec"]["n"], 2);

    let writes = fake.writes();
    assert!(writes.iter().any(|w| w.path.ends_with("/things/a/status")));

    // Resources without a status subresource still answer 404 on /status.
    let gvk = GroupVersionKind::gvk("example.dev", "v1", "Other");
    let other: Api<DynamicObject> = Api::namespaced_with(
        fake.client().unwrap(),
        "default",
        &ApiResource::from_gvk_with_plural(&gvk, "others"),
    );
    let e = other
        .patch_status("x", &PatchParams::default(), &Patch::Merge(json!({})))
        .await
        .unwrap_err();
    assert!(matches!(e, kube::Error::Api(s) if s.code == 404));
}
