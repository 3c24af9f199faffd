//! [`HaproxySource`]: a [`MetricSource`] for a backend's request rate, read with `show stat`
//! over the runtime API of one or more HAProxy instances.
//!
//! It behaves like `burst_prom::ScrapeSource` in counter mode, with HAProxy's own counter
//! as the series:
//!
//! - Each [`observe`](MetricSource::observe) asks every instance for
//!   `show stat <backend> 2 -1` and records the backend's `req_tot` (HTTP requests; for a
//!   `mode tcp` backend, where `req_tot` is empty, `stot`, the sessions).
//! - The rate over each window is the counters' increase over the samples recorded in it,
//!   divided by the longest span any instance covers. Until two samples fall within a
//!   window the reading is "no data", never 0.
//! - A counter that goes down is a reset (HAProxy reloaded or restarted and counts from 0):
//!   the increase across it is the new value, so a restart causes no negative spike.
//! - An instance that cannot be reached fails the round with its error (with several
//!   instances, an error naming how many failed and the first failure); what the other
//!   instances gave is still recorded, and samples older than the longest window age out.

use burst_core::rate::RateBuffer;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use burst_core::{MetricSource, Observation, Rate, Rates, Reading, SourceError, Timestamp};
use futures::future::join_all;

use crate::Error;
use crate::router::{is_stat_table, stat_cell};
use crate::runtime::{RuntimeClient, excerpt};

/// Where the source reads the time; the system clock unless a test passes its own.
pub type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// The system's wall clock as a [`Clock`].
pub fn system_clock() -> Clock {
    Arc::new(|| {
        Timestamp::from_duration(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO),
        )
    })
}

/// The request rate of one backend, summed over HAProxy instances.
pub struct HaproxySource {
    clients: Vec<RuntimeClient>,
    backend: String,
    windows: Vec<Duration>,
    clock: Clock,
    history: Mutex<RateBuffer<usize>>,
}

impl HaproxySource {
    /// A source for `backend` on `clients` with a short `window` and an optional longer
    /// `long_window`, reading the system clock.
    pub fn new(
        clients: Vec<RuntimeClient>,
        backend: impl Into<String>,
        window: Duration,
        long_window: Option<Duration>,
    ) -> Result<Self, Error> {
        Self::with_clock(clients, backend, window, long_window, system_clock())
    }

    /// Like [`HaproxySource::new`], reading the time from `clock`.
    pub fn with_clock(
        clients: Vec<RuntimeClient>,
        backend: impl Into<String>,
        window: Duration,
        long_window: Option<Duration>,
        clock: Clock,
    ) -> Result<Self, Error> {
        let backend = backend.into();
        if clients.is_empty() {
            return Err(Error::InvalidOption {
                what: "HAProxy instance list",
                value: String::new(),
                problem: "needs at least one runtime API address".into(),
            });
        }
        crate::router::check_name("backend name", &backend)?;
        if window.is_zero() {
            return Err(Error::InvalidOption {
                what: "window",
                value: "0s".into(),
                problem: "a rate window must be above zero; use e.g. 15s".into(),
            });
        }
        let mut windows = vec![window];
        if let Some(long) = long_window {
            if long <= window {
                return Err(Error::InvalidOption {
                    what: "long window",
                    value: format!("{}s", long.as_secs_f64()),
                    problem: format!(
                        "it must be longer than the window ({}s)",
                        window.as_secs_f64()
                    ),
                });
            }
            windows.push(long);
        }
        let keep = long_window.unwrap_or(window);
        Ok(HaproxySource {
            clients,
            backend,
            windows,
            clock,
            history: Mutex::new(RateBuffer::new(keep)),
        })
    }

    /// Reads every instance once, records the counters and computes the reading.
    pub async fn evaluate(&self) -> Result<Reading, Error> {
        let rounds = join_all(
            self.clients
                .iter()
                .enumerate()
                .map(|(i, c)| async move { (i, self.counter(c).await) }),
        )
        .await;
        let now = (self.clock)();
        let mut failures = Vec::new();
        let mut succeeded = Vec::new();
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        for (i, round) in rounds {
            let addr = self.clients[i].addr().to_string();
            match round {
                Ok((at, value)) => {
                    history.record(i, at, value);
                    succeeded.push(addr);
                }
                Err(e) => failures.push((addr, e)),
            }
        }
        history.trim(now);
        if !failures.is_empty() {
            if self.clients.len() == 1 {
                return Err(failures.swap_remove(0).1);
            }
            return Err(Error::InstanceFailure {
                backend: self.backend.clone(),
                action: "read",
                total: self.clients.len(),
                failures: failures
                    .into_iter()
                    .map(|(a, e)| (a, e.kind(), e.to_string()))
                    .collect(),
                succeeded,
            });
        }
        let mut per_window = Vec::with_capacity(self.windows.len());
        for w in &self.windows {
            match history.rate(now, *w) {
                Some(r) => per_window.push(r),
                None => {
                    return Ok(Reading::NoData {
                        reason: format!(
                            "need two reads of backend {} within the {}s window",
                            self.backend,
                            w.as_secs_f64()
                        ),
                    });
                }
            }
        }
        let to_rate = |v: f64| {
            Rate::try_new("request rate", v).map_err(|_| Error::InvalidCounter {
                addr: "all instances".into(),
                backend: self.backend.clone(),
                column: "req_tot",
                value: v.to_string(),
            })
        };
        let up = per_window[0];
        let down = per_window.last().copied().unwrap_or(up);
        Ok(Reading::Value(Observation::new(
            Rates {
                up: to_rate(up)?,
                down: to_rate(down)?,
            },
            now,
        )))
    }

    /// One instance's backend request counter and when it was read.
    async fn counter(&self, client: &RuntimeClient) -> Result<(Timestamp, f64), Error> {
        let command = format!("show stat {} 2 -1", self.backend);
        let answer = client.command(&command).await?;
        let at = (self.clock)();
        let addr = client.addr().to_string();
        if !is_stat_table(&answer) {
            let first = answer.trim().lines().next().unwrap_or("").trim();
            return Err(match first {
                "No such proxy." | "No such backend." => Error::NoSuchBackend {
                    addr,
                    backend: self.backend.clone(),
                },
                _ => Error::Malformed {
                    addr,
                    command,
                    problem: "expected the `show stat` CSV table".into(),
                    answer: excerpt(&answer),
                },
            });
        }
        let malformed = |problem: String| Error::Malformed {
            addr: addr.clone(),
            command: command.clone(),
            problem,
            answer: excerpt(&answer),
        };
        let cell =
            |column| stat_cell(&answer, &self.backend, "BACKEND", column).map_err(&malformed);
        let (column, text) = match cell("req_tot")? {
            Some(v) if !v.is_empty() => ("req_tot", v),
            _ => match cell("stot")? {
                Some(v) => ("stot", v),
                None => {
                    return Err(Error::NoSuchBackend {
                        addr,
                        backend: self.backend.clone(),
                    });
                }
            },
        };
        let value = text.parse::<u64>().map_err(|_| Error::InvalidCounter {
            addr: addr.clone(),
            backend: self.backend.clone(),
            column,
            value: text.to_owned(),
        })?;
        // Counts stay far below 2^53, where f64 is still exact.
        #[allow(clippy::cast_precision_loss)]
        Ok((at, value as f64))
    }
}

#[async_trait]
impl MetricSource for HaproxySource {
    async fn observe(&self) -> Result<Reading, SourceError> {
        self.evaluate().await.map_err(SourceError::from)
    }

    fn describe(&self) -> String {
        let addrs: Vec<String> = self.clients.iter().map(|c| c.addr().to_string()).collect();
        format!(
            "HAProxy backend {} request rate over {}s from {}",
            self.backend,
            self.windows[0].as_secs_f64(),
            addrs.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_are_checked() {
        let c = || vec![RuntimeClient::new("unix:/x".parse().unwrap())];
        let s = Duration::from_secs;
        assert!(HaproxySource::new(vec![], "app", s(15), None).is_err());
        assert!(HaproxySource::new(c(), "a b", s(15), None).is_err());
        assert!(HaproxySource::new(c(), "app", s(0), None).is_err());
        assert!(HaproxySource::new(c(), "app", s(15), Some(s(10))).is_err());
        let ok = HaproxySource::new(c(), "app", s(15), Some(s(60))).unwrap();
        assert!(ok.describe().contains("backend app"));
    }
}
