//! Your own [`TrafficRouter`]: the weights of an in-process load balancer table instead of
//! an Istio VirtualService.
//!
//! The table holds a weight per backend pool and how many endpoints of each pool are
//! ready. `apply` refuses to give weight to a pool with no ready endpoint and then writes
//! nothing (the trait's rule: an error leaves nothing half-applied); when it succeeds both
//! weights change under one lock, so a request never sees a table that does not sum to 100.
//!
//! A controller with the seed policy (15/10 rps) runs over a scripted load of
//! 5, 5, 20, 20, 20, 20, 5, 5, 5 rps, one value per tick. The burst pool starts with no
//! endpoint, so the first move to burst fails and the table stays 100/0; the observer reacts
//! to that failure like an autoscaler would (it adds two burst endpoints), and the
//! controller's retry, after its backoff, succeeds. The program stops once the script is
//! played and prints every version of the table.
//!
//! `cargo run -p burst-examples --example custom_router`

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use burst_core::policy::PolicySpec;
use burst_core::testing::{MemorySource, Scripted};
use burst_core::{
    Controller, ControllerConfig, Observation, Outcome, Rate, Rates, Reading, RouterError, Split,
    TickReport, Timestamp, TrafficRouter,
};
use tokio::sync::Notify;

const PRIMARY: &str = "primary";
const BURST: &str = "burst";

/// An in-process load balancer: a weight and a count of ready endpoints per pool.
#[derive(Debug)]
struct LoadBalancer {
    table: Mutex<Table>,
}

#[derive(Debug, Clone)]
struct Table {
    weights: BTreeMap<&'static str, u8>,
    ready: BTreeMap<&'static str, u32>,
    /// Every weight pair the table has held, in order.
    history: Vec<(u8, u8)>,
}

impl LoadBalancer {
    fn new(primary_endpoints: u32, burst_endpoints: u32) -> Self {
        LoadBalancer {
            table: Mutex::new(Table {
                weights: BTreeMap::from([(PRIMARY, 100), (BURST, 0)]),
                ready: BTreeMap::from([(PRIMARY, primary_endpoints), (BURST, burst_endpoints)]),
                history: vec![(100, 0)],
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn add_endpoints(&self, pool: &'static str, n: u32) {
        *self.lock().ready.entry(pool).or_default() += n;
    }

    fn weights(&self) -> (u8, u8) {
        let t = self.lock();
        let w = |pool| t.weights.get(pool).copied().unwrap_or(0);
        (w(PRIMARY), w(BURST))
    }
}

/// The [`TrafficRouter`] over a [`LoadBalancer`].
struct LoadBalancerRouter {
    lb: Arc<LoadBalancer>,
}

#[async_trait]
impl TrafficRouter for LoadBalancerRouter {
    async fn current(&self) -> Result<Split, RouterError> {
        let (primary, burst) = self.lb.weights();
        Split::try_new(primary.into(), burst.into())
            .map_err(|e| RouterError::new("invalid_table", format!("the table holds {e}")))
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        let mut table = self.lb.lock();
        let wanted = [
            (PRIMARY, split.primary().get()),
            (BURST, split.burst().get()),
        ];
        // Check everything first, write after: a refusal leaves the table as it was.
        for (pool, weight) in wanted {
            let ready = table.ready.get(pool).copied().unwrap_or(0);
            if weight > 0 && ready == 0 {
                return Err(RouterError::new(
                    "unready",
                    format!(
                        "pool `{pool}` has no ready endpoint, so it cannot take {weight}% of the traffic; scale it up first"
                    ),
                ));
            }
        }
        for (pool, weight) in wanted {
            table.weights.insert(pool, weight);
        }
        table
            .history
            .push((split.primary().get(), split.burst().get()));
        Ok(())
    }

    fn describe(&self) -> String {
        "in-process load balancer table".into()
    }
}

fn scripted(rps: f64) -> anyhow::Result<Scripted> {
    Ok(Scripted::Reading(Reading::Value(Observation::new(
        Rates::single(Rate::try_new("rps", rps)?),
        Timestamp::ZERO,
    ))))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let script = [5.0, 5.0, 20.0, 20.0, 20.0, 20.0, 5.0, 5.0, 5.0];
    let source = MemorySource::new();
    for rps in script {
        source.push(scripted(rps)?);
    }
    let lb = Arc::new(LoadBalancer::new(3, 0));
    let router = LoadBalancerRouter { lb: lb.clone() };
    let config = ControllerConfig {
        tick: Duration::from_millis(20),
        backoff_initial: Duration::from_millis(1),
        ..ControllerConfig::default()
    };

    let played = Arc::new(Notify::new());
    let (observer_lb, on_played) = (lb.clone(), played.clone());
    let mut ticks = 0;
    let observer = move |r: &TickReport| {
        ticks += 1;
        let (primary, burst) = observer_lb.weights();
        let what = match &r.outcome {
            Outcome::Applied { from, to } => format!("applied {from} -> {to}"),
            Outcome::Failed { to, error, .. } => {
                let (kind, message) = (error.kind(), error);
                // React like an autoscaler: the burst pool is needed, give it endpoints.
                observer_lb.add_endpoints(BURST, 2);
                format!(
                    "failed {to} [{kind}]: {message}; table still {primary}/{burst}, scaling `{BURST}` up"
                )
            }
            other => format!("{other:?}"),
        };
        println!(
            "tick {ticks}: {} rps {:<10} table {primary}/{burst}  {what}",
            r.signal,
            r.decision.reason.rule.name()
        );
        if ticks == script.len() {
            on_played.notify_one();
        }
    };
    let policy = PolicySpec::default().build()?;
    let controller = Controller::new(source, policy, router, config).with_observer(observer);
    let stopped = tokio::time::timeout(Duration::from_secs(10), controller.run(played.notified()))
        .await
        .map_err(|_| anyhow::anyhow!("the script was not played within 10 s"))?;

    let history: Vec<String> = lb
        .lock()
        .history
        .iter()
        .map(|(p, b)| format!("{p}/{b}"))
        .collect();
    println!(
        "stopped after {} ticks; table history: {}",
        stopped.ticks,
        history.join(" -> ")
    );
    Ok(())
}
