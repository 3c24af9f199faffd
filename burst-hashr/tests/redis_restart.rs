//! Redis restarted mid-run: the worker answers 503 while it is down and recovers; the
//! frontend resubscribes and relays again.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use burst_hashr::frontend::{Frontend, FrontendConfig};
use burst_hashr::pubsub::{PubSub, RedisPubSub};
use burst_hashr::worker::{Worker, WorkerConfig};
use burst_testkit::redis::RedisServer;

#[tokio::test]
async fn worker_503_while_redis_is_down_then_recovers_and_frontend_resubscribes() {
    let mut redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let worker_bus: Arc<dyn PubSub> = Arc::new(RedisPubSub::new(&redis.url()).unwrap());
    let worker =
        common::serve(Worker::new(WorkerConfig::with_prefix("bursty-"), worker_bus).router()).await;
    let frontend_bus: Arc<dyn PubSub> = Arc::new(RedisPubSub::new(&redis.url()).unwrap());
    let frontend = Frontend::start(
        FrontendConfig::new(url::Url::parse(&worker.url()).unwrap()),
        frontend_bus,
    )
    .await
    .unwrap();
    let page = common::serve(frontend.router()).await;
    let http = common::client();
    let post = || {
        http.post(worker.url())
            .json(&serde_json::json!({ "str": "abc" }))
            .send()
    };

    assert!(
        common::eventually(Duration::from_secs(5), || async {
            frontend.relay().subscriptions == 1
        })
        .await,
        "frontend never subscribed"
    );
    assert_eq!(post().await.unwrap().status(), 200);
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            frontend.relay().bursty == 1
        })
        .await,
        "hash not relayed before the outage"
    );

    redis.stop();
    let r = post().await.unwrap();
    assert_eq!(
        r.status(),
        503,
        "publish while Redis is down must be refused"
    );
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["error"].as_str().unwrap().contains("not published"),
        "{body}"
    );
    let health = http
        .get(format!("{}_healthz", worker.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    assert!(
        common::eventually(Duration::from_secs(5), || async {
            let r = http
                .get(format!("{}_healthz", page.url()))
                .send()
                .await
                .unwrap();
            r.status() == 503
        })
        .await,
        "frontend readiness must fail while unsubscribed"
    );

    redis.restart().unwrap();
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            post().await.map(|r| r.status() == 200).unwrap_or(false)
        })
        .await,
        "worker did not recover after Redis came back"
    );
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            frontend.relay().subscriptions >= 2
        })
        .await,
        "frontend did not resubscribe"
    );
    // A hash published after the resubscription reaches the frontend.
    let before = frontend.relay().bursty;
    assert!(
        common::eventually(Duration::from_secs(10), || async {
            let _ = post().await;
            frontend.relay().bursty > before
        })
        .await,
        "frontend does not relay after the restart"
    );
    let r = http
        .get(format!("{}_healthz", page.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    frontend.shutdown();
}
