//! Wire compatibility with a real `redis-server`: what the worker publishes, and what the
//! subscriber receives from other publishers.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use burst_hashr::pubsub::{CHANNEL, Event, PubSub, RedisPubSub};
use burst_hashr::worker::{Worker, WorkerConfig};
use burst_testkit::redis::RedisServer;
use futures::StreamExt;

/// A plain redis-rs subscriber, independent of our pub/sub code.
async fn raw_subscriber(url: &str) -> redis::aio::PubSubStream {
    let client = redis::Client::open(url).unwrap();
    let mut ps = client.get_async_pubsub().await.unwrap();
    ps.subscribe(CHANNEL).await.unwrap();
    ps.into_on_message()
}

#[tokio::test]
async fn worker_publishes_prefixed_base64_sha256_on_calculation() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let mut messages = raw_subscriber(&redis.url()).await;
    // REDIS_URL as the original took it: host:port.
    let bus: Arc<dyn PubSub> = Arc::new(RedisPubSub::new(&redis.addr()).unwrap());
    let primary = common::serve(Worker::new(WorkerConfig::default(), bus.clone()).router()).await;
    let burst =
        common::serve(Worker::new(WorkerConfig::with_prefix("bursty-"), bus).router()).await;
    let http = common::client();

    for (server, prefix) in [(&primary, ""), (&burst, "bursty-")] {
        let r = http
            .post(server.url())
            .json(&serde_json::json!({ "str": "hello world" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await.unwrap(), "OK");
        let msg = tokio::time::timeout(Duration::from_secs(5), messages.next())
            .await
            .expect("message within 5 s")
            .unwrap();
        assert_eq!(msg.get_channel_name(), "calculation");
        let payload: String = msg.get_payload().unwrap();
        let hash = payload
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{payload} lacks prefix {prefix:?}"));
        assert_eq!(hash.len(), 44, "{payload}");
        let raw = base64::engine::general_purpose::STANDARD
            .decode(hash)
            .unwrap();
        assert_eq!(raw.len(), 32, "SHA-256 is 32 bytes");
        assert!(!hash.starts_with("bursty-"));
    }
    // Readiness is ok while Redis is up.
    let r = http
        .get(format!("{}_healthz", primary.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn subscriber_receives_what_any_client_publishes() {
    let redis = RedisServer::start().unwrap_or_else(|e| panic!("{e}"));
    let bus = RedisPubSub::new(&redis.url()).unwrap();
    let mut sub = bus.subscribe(CHANNEL).await.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap(),
        Some(Event::Subscribed)
    );
    let client = redis::Client::open(redis.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let receivers: i64 = redis::cmd("PUBLISH")
        .arg(CHANNEL)
        .arg("bursty-xyz")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(receivers, 1);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap(),
        Some(Event::Message("bursty-xyz".into()))
    );
    bus.ping().await.unwrap();
}
