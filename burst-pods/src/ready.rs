//! [`WithReadyEndpoints`]: adds the ready-endpoint counts of the primary and burst
//! Services, from shared EndpointSlice watchers, to any source's observations.

use std::sync::Arc;

use async_trait::async_trait;
use burst_core::{MetricSource, Reading, Signals, SourceError};

use crate::endpoints::EndpointWatcher;

/// A [`MetricSource`] that wraps another and fills `primary_ready` and `burst_ready`
/// from [`EndpointWatcher`]s (typically shared through [`crate::EndpointWatchers`]).
///
/// The counts are read from memory on every `observe`; a watcher whose first list has
/// not arrived gives no data for its signal (`None`), never 0. The watchers' counts win
/// over counts the wrapped source measured (a Prometheus `primaryReady` query lags a
/// scrape interval behind the watch). A wrapped source's "no data" stays "no data": the
/// demand rate decides whether there is an observation at all.
///
/// ```no_run
/// use std::sync::Arc;
/// use burst_pods::{EndpointWatchers, WithReadyEndpoints};
/// use burst_prom::{HttpClients, PrometheusConfig, SourceConfig};
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let client = kube::Client::try_default().await?;
/// let watchers = EndpointWatchers::new(); // one per process, cloned freely
/// let source = SourceConfig::Prometheus(PrometheusConfig::default()).build(&HttpClients::new())?;
/// let source = WithReadyEndpoints::new(source)
///     .primary(watchers.get_or_start(&client, "shop", "checkout")?)
///     .burst(watchers.get_or_start(&client, "shop", "checkout-burst")?);
/// # drop(source); Ok(()) }
/// ```
pub struct WithReadyEndpoints<S> {
    inner: S,
    primary: Option<Arc<EndpointWatcher>>,
    burst: Option<Arc<EndpointWatcher>>,
}

impl<S: MetricSource> WithReadyEndpoints<S> {
    /// Wraps `inner`; without watchers it adds nothing.
    pub fn new(inner: S) -> Self {
        WithReadyEndpoints {
            inner,
            primary: None,
            burst: None,
        }
    }

    /// Counts the primary's ready endpoints from `watcher`.
    #[must_use]
    pub fn primary(mut self, watcher: Arc<EndpointWatcher>) -> Self {
        self.primary = Some(watcher);
        self
    }

    /// Counts the burst side's ready endpoints from `watcher`.
    #[must_use]
    pub fn burst(mut self, watcher: Arc<EndpointWatcher>) -> Self {
        self.burst = Some(watcher);
        self
    }

    /// The wrapped source.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The ready-endpoint signals now (the other signals `None`).
    pub fn ready_signals(&self) -> Signals {
        Signals {
            primary_ready: self.primary.as_deref().and_then(ready_count),
            burst_ready: self.burst.as_deref().and_then(ready_count),
            ..Signals::NONE
        }
    }
}

/// The ready count of a synced watcher; `None` before its first list (not known yet).
fn ready_count(w: &EndpointWatcher) -> Option<u32> {
    w.is_synced()
        .then(|| u32::try_from(w.ready_count()).unwrap_or(u32::MAX))
}

fn name(w: &EndpointWatcher) -> String {
    format!("{}/{}", w.namespace(), w.service())
}

impl<S> std::fmt::Debug for WithReadyEndpoints<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WithReadyEndpoints")
            .field("primary", &self.primary.as_deref().map(name))
            .field("burst", &self.burst.as_deref().map(name))
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<S: MetricSource> MetricSource for WithReadyEndpoints<S> {
    async fn observe(&self) -> Result<Reading, SourceError> {
        Ok(match self.inner.observe().await? {
            Reading::Value(mut o) => {
                o.signals = self.ready_signals().or(o.signals);
                Reading::Value(o)
            }
            no_data => no_data,
        })
    }

    fn describe(&self) -> String {
        let mut d = self.inner.describe();
        for (side, w) in [("primary", &self.primary), ("burst", &self.burst)] {
            if let Some(w) = w {
                d.push_str(&format!("; {side} ready endpoints of {}", name(w)));
            }
        }
        d
    }
}
