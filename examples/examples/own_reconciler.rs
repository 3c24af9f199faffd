//! Driving the controller from your own reconcile loop instead of [`Controller::run`].
//!
//! A program that already has a loop (a kube-runtime reconciler, a periodic job, a game
//! loop) keeps it: it calls [`Controller::start`] until the split in effect could be read,
//! then [`Controller::tick`] on its own schedule, and reads every [`TickReport`] it gets
//! back (the signal, the decision and its reason, what was done to the route) to log,
//! export or act on it.
//!
//! Here the loop runs every 10 ms for at most 20 rounds. The route cannot be read on the
//! first round (an injected failure), so `start` is retried on the next one. The load is
//! the seed scenario, one value per round: 5, 5, 20, 20, 20, 12, 12, 5, 5 rps against the
//! seed policy (15/10). The loop ends by itself once the script is played (the source then
//! answers "no data"), and prints every change of the split.
//!
//! `cargo run -p burst-examples --example own_reconciler`

use std::time::Duration;

use burst_core::policy::{PolicySpec, Signal};
use burst_core::testing::{MemoryRouter, MemorySource, Scripted};
use burst_core::{
    Controller, ControllerConfig, Observation, Outcome, Rate, Rates, Reading, RouterError, Split,
    Timestamp,
};

const MAX_ROUNDS: u32 = 20;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let source = MemorySource::new();
    for rps in [5.0, 5.0, 20.0, 20.0, 20.0, 12.0, 12.0, 5.0, 5.0] {
        source.push(Scripted::Reading(Reading::Value(Observation::new(
            Rates::single(Rate::try_new("rps", rps)?),
            Timestamp::ZERO,
        ))));
    }
    let router = MemoryRouter::new(Split::ALL_PRIMARY);
    router.fail_next_read(RouterError::new(
        "unavailable",
        "API server not reachable yet",
    ));
    let mut controller = Controller::new(
        source,
        PolicySpec::default().build()?,
        router,
        ControllerConfig::default(),
    );

    let mut changes = vec![Split::ALL_PRIMARY];
    let mut schedule = tokio::time::interval(Duration::from_millis(10));
    for round in 1..=MAX_ROUNDS {
        schedule.tick().await;
        if controller.belief().is_none() {
            match controller.start().await {
                Ok(split) => println!("round {round}: started, the split in effect is {split}"),
                Err(e) => {
                    println!(
                        "round {round}: cannot read the route [{}]: {e}; retrying next round",
                        e.kind()
                    );
                    continue;
                }
            }
        }
        let report = controller.tick().await?;
        if let Signal::NoData(why) = &report.signal {
            println!("round {round}: {why}: the script is played, leaving the loop");
            break;
        }
        match &report.outcome {
            Outcome::Applied { to, .. } => changes.push(*to),
            Outcome::Failed { error, .. } => {
                println!("round {round}: apply failed [{}]: {error}", error.kind())
            }
            _ => {}
        }
        println!(
            "round {round}: {} -> {} ({})",
            report.signal, report.belief, report.decision.reason
        );
    }
    let changes: Vec<String> = changes.iter().map(ToString::to_string).collect();
    println!("changes: {}", changes.join(" -> "));
    Ok(())
}
