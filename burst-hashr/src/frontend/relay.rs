//! Relays published hashes to browsers.
//!
//! One task reads the subscription and pushes each message into a bounded
//! `tokio::sync::broadcast` ring. Every browser reads the ring at its own pace; one that falls
//! more than the ring's capacity behind loses the oldest messages (counted as `dropped`),
//! so a slow browser never blocks the subscription or the other browsers.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use burst_core::lock;
use futures::{Stream, StreamExt};
use tokio::sync::broadcast;

use crate::pubsub::{Event, EventStream};

/// Prefix of hashes computed by the burst worker.
pub const BURST_PREFIX: &str = "bursty-";

/// The subscription as the relay last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionState {
    /// Not yet subscribed.
    Connecting,
    /// Subscribed and receiving.
    Subscribed,
    /// Lost; the backend is resubscribing.
    Lost(String),
    /// The subscription stream ended.
    Ended,
}

impl std::fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SubscriptionState::Connecting => f.write_str("connecting"),
            SubscriptionState::Subscribed => f.write_str("subscribed"),
            SubscriptionState::Lost(r) => write!(f, "reconnecting ({r})"),
            SubscriptionState::Ended => f.write_str("ended"),
        }
    }
}

/// Counters of the relay.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct RelayCounts {
    /// Messages received from the subscription.
    pub received: u64,
    /// Of those, messages starting with [`BURST_PREFIX`].
    pub bursty: u64,
    /// Messages browsers lost because they fell behind (summed over browsers).
    pub dropped: u64,
    /// Times the subscription became active (1 + resubscriptions).
    pub subscriptions: u64,
}

/// The relay between one subscription and many browsers.
#[derive(Debug)]
pub struct Relay {
    tx: broadcast::Sender<Arc<str>>,
    history: Mutex<VecDeque<Arc<str>>>,
    history_len: usize,
    received: AtomicU64,
    bursty: AtomicU64,
    dropped: AtomicU64,
    subscriptions: AtomicU64,
    state: Mutex<SubscriptionState>,
}

impl Relay {
    /// A relay keeping `buffer` messages per browser and the newest `history_len` for pages
    /// that open later.
    pub fn new(buffer: usize, history_len: usize) -> Arc<Self> {
        Arc::new(Relay {
            tx: broadcast::channel(buffer.max(1)).0,
            history: Mutex::new(VecDeque::with_capacity(history_len)),
            history_len,
            received: AtomicU64::new(0),
            bursty: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            subscriptions: AtomicU64::new(0),
            state: Mutex::new(SubscriptionState::Connecting),
        })
    }

    /// Reads `events` until they end.
    pub async fn run(self: Arc<Self>, mut events: EventStream) {
        while let Some(ev) = events.next().await {
            match ev {
                Event::Subscribed => {
                    self.subscriptions.fetch_add(1, Ordering::Relaxed);
                    self.set_state(SubscriptionState::Subscribed);
                }
                Event::Lost { reason } => self.set_state(SubscriptionState::Lost(reason)),
                Event::Message(m) => self.push(m),
            }
        }
        self.set_state(SubscriptionState::Ended);
    }

    fn push(&self, m: String) {
        self.received.fetch_add(1, Ordering::Relaxed);
        if m.starts_with(BURST_PREFIX) {
            self.bursty.fetch_add(1, Ordering::Relaxed);
        }
        let m: Arc<str> = m.into();
        {
            let mut h = lock(&self.history);
            if h.len() == self.history_len {
                h.pop_front();
            }
            if self.history_len > 0 {
                h.push_back(m.clone());
            }
        }
        // No browser connected is fine.
        let _ = self.tx.send(m);
    }

    fn set_state(&self, s: SubscriptionState) {
        *lock(&self.state) = s;
    }

    /// The subscription state.
    pub fn state(&self) -> SubscriptionState {
        lock(&self.state).clone()
    }

    /// The counters.
    pub fn counts(&self) -> RelayCounts {
        RelayCounts {
            received: self.received.load(Ordering::Relaxed),
            bursty: self.bursty.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            subscriptions: self.subscriptions.load(Ordering::Relaxed),
        }
    }

    /// The newest messages, newest first.
    pub fn history(&self) -> Vec<Arc<str>> {
        lock(&self.history).iter().rev().cloned().collect()
    }

    /// A browser's feed: batches of messages (oldest first) as they arrive, at most
    /// `max_batch` per item. Messages the browser fell behind on are dropped and counted.
    pub fn feed(
        self: &Arc<Self>,
        max_batch: usize,
    ) -> impl Stream<Item = Vec<Arc<str>>> + Send + use<> {
        let rx = self.tx.subscribe();
        let relay = self.clone();
        futures::stream::unfold((rx, relay), move |(mut rx, relay)| async move {
            let mut batch = Vec::new();
            // Wait for the first message, then take whatever else is already there.
            loop {
                match rx.recv().await {
                    Ok(m) => {
                        batch.push(m);
                        break;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => relay.count_drop(n),
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
            while batch.len() < max_batch.max(1) {
                match rx.try_recv() {
                    Ok(m) => batch.push(m),
                    Err(broadcast::error::TryRecvError::Lagged(n)) => relay.count_drop(n),
                    Err(_) => break,
                }
            }
            Some((batch, (rx, relay)))
        })
    }

    fn count_drop(&self, n: u64) {
        self.dropped.fetch_add(n, Ordering::Relaxed);
        tracing::debug!(lost = n, "a browser fell behind; oldest hashes dropped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn events(list: Vec<Event>) -> EventStream {
        futures::stream::iter(list).boxed()
    }

    #[tokio::test]
    async fn counts_bursty_and_keeps_newest_history_first() {
        let relay = Relay::new(16, 2);
        relay
            .clone()
            .run(events(vec![
                Event::Subscribed,
                Event::Message("a".into()),
                Event::Message("bursty-b".into()),
                Event::Lost {
                    reason: "closed".into(),
                },
                Event::Subscribed,
                Event::Message("c".into()),
            ]))
            .await;
        let c = relay.counts();
        assert_eq!((c.received, c.bursty, c.subscriptions), (3, 1, 2));
        let h: Vec<String> = relay.history().iter().map(|s| s.to_string()).collect();
        assert_eq!(h, vec!["c", "bursty-b"]);
        assert_eq!(relay.state(), SubscriptionState::Ended);
    }

    #[tokio::test]
    async fn slow_browser_loses_oldest_others_get_everything() {
        let relay = Relay::new(4, 0);
        let slow = relay.feed(100);
        let fast = relay.feed(100);
        tokio::pin!(slow);
        tokio::pin!(fast);
        let mut fast_got = Vec::new();
        for i in 0..10 {
            relay.push(format!("m{i}"));
            // The fast browser reads after every message.
            let b = tokio::time::timeout(Duration::from_secs(1), fast.next())
                .await
                .unwrap()
                .unwrap();
            fast_got.extend(b.iter().map(|s| s.to_string()));
        }
        assert_eq!(fast_got.len(), 10);
        // The slow one reads only now: the newest 4 remain, 6 were dropped.
        let b = slow.next().await.unwrap();
        let got: Vec<String> = b.iter().map(|s| s.to_string()).collect();
        assert_eq!(got, vec!["m6", "m7", "m8", "m9"]);
        assert_eq!(relay.counts().dropped, 6);
    }
}
