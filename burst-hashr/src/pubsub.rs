//! Publish/subscribe: the [`PubSub`] capability, backed by Redis or by an in-process bus.
//!
//! The worker publishes each hash on channel [`CHANNEL`]; the frontend subscribes and relays.
//! [`RedisPubSub`] talks to a real Redis and reconnects (and resubscribes) after Redis
//! restarts; [`MemoryPubSub`] is a `tokio::sync::broadcast` bus used when no `REDIS_URL` is
//! given, so the demo runs with nothing installed.
//!
//! ```
//! # tokio_test_block_on(async {
//! use burst_hashr::pubsub::{MemoryPubSub, PubSub, Event};
//! use futures::StreamExt;
//!
//! let bus = MemoryPubSub::new();
//! let mut sub = bus.subscribe("calculation").await?;
//! assert_eq!(sub.next().await, Some(Event::Subscribed));
//! bus.publish("calculation", "hello").await?;
//! assert_eq!(sub.next().await, Some(Event::Message("hello".into())));
//! # Ok::<(), burst_hashr::Error>(())
//! # }).unwrap();
//! # fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
//! #     tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f)
//! # }
//! ```

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::stream::BoxStream;
use redis::aio::MultiplexedConnection;
use tokio::sync::{broadcast, mpsc};
use tokio::time::Instant;

use crate::Error;

/// The channel String Hashr publishes on.
pub const CHANNEL: &str = "calculation";

/// What a subscription delivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The subscription is (again) active: sent first, and after every reconnect.
    Subscribed,
    /// The subscription was lost; the implementation is reconnecting.
    Lost {
        /// Why it was lost.
        reason: String,
    },
    /// A published message.
    Message(String),
}

/// A stream of subscription events; it ends only when the backend is gone for good.
pub type EventStream = BoxStream<'static, Event>;

/// Publish and subscribe on named channels.
#[async_trait]
pub trait PubSub: Send + Sync {
    /// Publishes `message` on `channel`. `Ok` means the backend accepted it.
    async fn publish(&self, channel: &str, message: &str) -> Result<(), Error>;

    /// Subscribes to `channel`. The stream starts with [`Event::Subscribed`] once active.
    async fn subscribe(&self, channel: &str) -> Result<EventStream, Error>;

    /// Checks that the backend is reachable now.
    async fn ping(&self) -> Result<(), Error>;

    /// A short description for logs, e.g. `redis at redis://127.0.0.1:6379/`.
    fn describe(&self) -> String;
}

/// In-process pub/sub on `tokio::sync::broadcast` channels.
///
/// A subscriber that falls more than `capacity` messages behind loses the oldest ones
/// (counted in [`MemoryPubSub::lagged`]); publishers never wait.
#[derive(Debug)]
pub struct MemoryPubSub {
    capacity: usize,
    channels: Mutex<HashMap<String, broadcast::Sender<String>>>,
    lagged: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl Default for MemoryPubSub {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryPubSub {
    /// A bus whose subscribers may fall 4096 messages behind.
    pub fn new() -> Self {
        Self::with_capacity(4096)
    }

    /// A bus whose subscribers may fall `capacity` messages behind (at least 1).
    pub fn with_capacity(capacity: usize) -> Self {
        MemoryPubSub {
            capacity: capacity.max(1),
            channels: Mutex::new(HashMap::new()),
            lagged: Default::default(),
        }
    }

    /// Messages subscribers lost because they fell behind.
    pub fn lagged(&self) -> u64 {
        self.lagged.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn sender(&self, channel: &str) -> broadcast::Sender<String> {
        let mut map = match self.channels.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        map.entry(channel.to_owned())
            .or_insert_with(|| broadcast::channel(self.capacity).0)
            .clone()
    }
}

#[async_trait]
impl PubSub for MemoryPubSub {
    async fn publish(&self, channel: &str, message: &str) -> Result<(), Error> {
        // No subscriber is not an error, as PUBLISH to a channel nobody listens on.
        let _ = self.sender(channel).send(message.to_owned());
        Ok(())
    }

    async fn subscribe(&self, channel: &str) -> Result<EventStream, Error> {
        let rx = self.sender(channel).subscribe();
        let lagged = self.lagged.clone();
        let messages = futures::stream::unfold((rx, lagged), |(mut rx, lagged)| async move {
            loop {
                match rx.recv().await {
                    Ok(m) => return Some((Event::Message(m), (rx, lagged))),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        lagged.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                        tracing::warn!(lost = n, "in-process subscriber fell behind");
                    }
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
        Ok(futures::stream::once(async { Event::Subscribed })
            .chain(messages)
            .boxed())
    }

    async fn ping(&self) -> Result<(), Error> {
        Ok(())
    }

    fn describe(&self) -> String {
        "in-process pub/sub".into()
    }
}

/// Timeouts and backoff of [`RedisPubSub`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RedisTimeouts {
    /// Longest wait for a TCP connection.
    pub connect: Duration,
    /// Longest wait for a command's answer.
    pub response: Duration,
    /// After a failed connect, commands fail at once for this long instead of reconnecting.
    pub retry_after: Duration,
    /// Longest pause between resubscribe attempts.
    pub max_backoff: Duration,
}

impl Default for RedisTimeouts {
    fn default() -> Self {
        RedisTimeouts {
            connect: Duration::from_secs(1),
            response: Duration::from_secs(2),
            retry_after: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// Pub/sub on a real Redis server.
///
/// Commands share one multiplexed connection. When a command fails the connection is
/// dropped and the next command reconnects, so a Redis restart costs the requests made while
/// it is down (they get an error, which the worker turns into a 503) and nothing else.
/// Subscriptions run in a background task that resubscribes with capped exponential backoff.
pub struct RedisPubSub {
    client: redis::Client,
    url: String,
    timeouts: RedisTimeouts,
    conn: tokio::sync::Mutex<ConnSlot>,
}

#[derive(Default)]
struct ConnSlot {
    conn: Option<(u64, MultiplexedConnection)>,
    generation: u64,
    failed_until: Option<(Instant, String)>,
}

impl std::fmt::Debug for RedisPubSub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisPubSub")
            .field("url", &self.url)
            .finish()
    }
}

impl RedisPubSub {
    /// A client for `url` (`host:port` or `redis://...`, see [`crate::config::redis_url`]).
    /// Connects lazily.
    pub fn new(url: &str) -> Result<Self, Error> {
        Self::with_timeouts(url, RedisTimeouts::default())
    }

    /// As [`RedisPubSub::new`] with explicit timeouts.
    pub fn with_timeouts(url: &str, timeouts: RedisTimeouts) -> Result<Self, Error> {
        let url = crate::config::redis_url(url)?;
        let client = redis::Client::open(url.as_str())
            .map_err(|e| Error::config("REDIS_URL", redact_password(&url), e.to_string()))?;
        // Only the client holds the password; what is shown (logs, describe, 503 bodies)
        // does not.
        let url = redact_password(&url);
        Ok(RedisPubSub {
            client,
            url,
            timeouts,
            conn: tokio::sync::Mutex::new(ConnSlot::default()),
        })
    }

    fn unavailable(&self, message: impl Into<String>) -> Error {
        Error::PubSubUnavailable {
            backend: self.describe(),
            message: message.into(),
        }
    }

    async fn connection(&self) -> Result<(u64, MultiplexedConnection), Error> {
        let mut slot = self.conn.lock().await;
        if let Some(c) = &slot.conn {
            return Ok(c.clone());
        }
        if let Some((until, why)) = &slot.failed_until
            && Instant::now() < *until
        {
            return Err(self.unavailable(format!("{why} (reconnecting)")));
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.timeouts.connect))
            .set_response_timeout(Some(self.timeouts.response));
        let attempt = tokio::time::timeout(
            self.timeouts.connect + self.timeouts.response,
            self.client
                .get_multiplexed_async_connection_with_config(&config),
        )
        .await;
        let result = match attempt {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(e)) => Err(format!("cannot connect: {e}")),
            Err(_) => Err(format!(
                "cannot connect within {:?}",
                self.timeouts.connect + self.timeouts.response
            )),
        };
        match result {
            Ok(conn) => {
                slot.generation += 1;
                slot.failed_until = None;
                let entry = (slot.generation, conn);
                slot.conn = Some(entry.clone());
                tracing::info!(redis = %self.url, "connected");
                Ok(entry)
            }
            Err(why) => {
                slot.failed_until = Some((Instant::now() + self.timeouts.retry_after, why.clone()));
                Err(self.unavailable(why))
            }
        }
    }

    async fn forget(&self, generation: u64) {
        let mut slot = self.conn.lock().await;
        if slot.conn.as_ref().is_some_and(|(g, _)| *g == generation) {
            slot.conn = None;
        }
    }

    async fn command<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, Error> {
        let (generation, mut conn) = self.connection().await?;
        match cmd.query_async::<T>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) => {
                if e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_timeout()
                    || e.is_unrecoverable_error()
                {
                    self.forget(generation).await;
                }
                Err(self.unavailable(e.to_string()))
            }
        }
    }
}

#[async_trait]
impl PubSub for RedisPubSub {
    async fn publish(&self, channel: &str, message: &str) -> Result<(), Error> {
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg(channel).arg(message);
        self.command::<i64>(&cmd).await.map(|_receivers| ())
    }

    async fn subscribe(&self, channel: &str) -> Result<EventStream, Error> {
        let (tx, rx) = mpsc::channel::<Event>(1024);
        let client = self.client.clone();
        let channel = channel.to_owned();
        let timeouts = self.timeouts;
        let url = self.url.clone();
        tokio::spawn(async move {
            subscription_loop(client, url, channel, timeouts, tx).await;
        });
        Ok(
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (e, rx)) })
                .boxed(),
        )
    }

    async fn ping(&self) -> Result<(), Error> {
        let reply: String = self.command(&redis::cmd("PING")).await?;
        if reply == "PONG" {
            Ok(())
        } else {
            Err(self.unavailable(format!("PING answered {reply:?}")))
        }
    }

    fn describe(&self) -> String {
        format!("redis at {}", self.url)
    }
}

/// `url` with its password, if any, replaced by `***`, for logs and messages.
fn redact_password(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Subscribes, forwards messages, and resubscribes after losing the connection, until the
/// receiving side is dropped.
async fn subscription_loop(
    client: redis::Client,
    url: String,
    channel: String,
    timeouts: RedisTimeouts,
    tx: mpsc::Sender<Event>,
) {
    let mut backoff = Duration::from_millis(50);
    loop {
        let connected = tokio::time::timeout(timeouts.connect + timeouts.response, async {
            let mut ps = client.get_async_pubsub().await?;
            ps.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(ps)
        })
        .await;
        let reason = match connected {
            Ok(Ok(ps)) => {
                backoff = Duration::from_millis(50);
                tracing::info!(redis = %url, channel = %channel, "subscribed");
                if tx.send(Event::Subscribed).await.is_err() {
                    return;
                }
                let mut messages = ps.into_on_message();
                loop {
                    tokio::select! {
                        msg = messages.next() => match msg {
                            Some(m) => {
                                let payload = match m.get_payload::<String>() {
                                    Ok(p) => p,
                                    Err(_) => String::from_utf8_lossy(m.get_payload_bytes()).into_owned(),
                                };
                                if tx.send(Event::Message(payload)).await.is_err() {
                                    return;
                                }
                            }
                            None => break "connection closed".to_owned(),
                        },
                        _ = tx.closed() => return,
                    }
                }
            }
            Ok(Err(e)) => format!("cannot subscribe: {e}"),
            Err(_) => "cannot subscribe: timed out".to_owned(),
        };
        tracing::warn!(redis = %url, channel = %channel, reason = %reason, "subscription lost; resubscribing");
        if tx.send(Event::Lost { reason }).await.is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = tx.closed() => return,
        }
        backoff = (backoff * 2).min(timeouts.max_backoff);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn memory_bus_delivers_to_every_subscriber() {
        let bus = MemoryPubSub::new();
        let mut a = bus.subscribe(CHANNEL).await.unwrap();
        let mut b = bus.subscribe(CHANNEL).await.unwrap();
        let mut other = bus.subscribe("other").await.unwrap();
        bus.publish(CHANNEL, "x").await.unwrap();
        assert_eq!(a.next().await, Some(Event::Subscribed));
        assert_eq!(a.next().await, Some(Event::Message("x".into())));
        assert_eq!(b.next().await, Some(Event::Subscribed));
        assert_eq!(b.next().await, Some(Event::Message("x".into())));
        assert_eq!(other.next().await, Some(Event::Subscribed));
        let none = tokio::time::timeout(Duration::from_millis(20), other.next()).await;
        assert!(none.is_err(), "other channel got a message");
    }

    #[tokio::test]
    async fn slow_memory_subscriber_loses_oldest_and_counts() {
        let bus = MemoryPubSub::with_capacity(2);
        let mut s = bus.subscribe(CHANNEL).await.unwrap();
        for i in 0..5 {
            bus.publish(CHANNEL, &i.to_string()).await.unwrap();
        }
        assert_eq!(s.next().await, Some(Event::Subscribed));
        assert_eq!(s.next().await, Some(Event::Message("3".into())));
        assert_eq!(s.next().await, Some(Event::Message("4".into())));
        assert_eq!(bus.lagged(), 3);
    }

    #[tokio::test]
    async fn unreachable_redis_is_unavailable_not_a_hang() {
        let port = burst_testkit::free_port().unwrap();
        let bus = RedisPubSub::new(&format!("127.0.0.1:{port}")).unwrap();
        let e = bus.publish(CHANNEL, "x").await.unwrap_err();
        assert_eq!(e.kind(), "pubsub_unavailable");
        assert!(e.to_string().contains("cannot connect"), "{e}");
        // Within retry_after the next call fails at once with the same reason.
        let e2 = bus.ping().await.unwrap_err();
        assert!(e2.to_string().contains("reconnecting"), "{e2}");
    }
}
