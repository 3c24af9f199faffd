//! Embeds the controller in your own program: an in-memory metric source whose load you
//! script, the seed policy, and an in-memory router standing in for a VirtualService.
//!
//! `cargo run -p burst-examples --example embed_controller`

use std::sync::Arc;
use std::time::Duration;

use burst_core::policy::PolicySpec;
use burst_core::testing::{MemoryRouter, MemorySource, Scripted};
use burst_core::{
    Controller, ControllerConfig, Observation, Outcome, Rate, Rates, Reading, Split, Timestamp,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let source = Arc::new(MemorySource::new());
    // Load: 5 rps, then 20 rps, then 5 rps again (the seed scenario, one value per tick).
    for rps in [5.0, 5.0, 20.0, 20.0, 20.0, 12.0, 12.0, 5.0, 5.0] {
        source.push(Scripted::Reading(Reading::Value(Observation {
            rates: Rates::single(Rate::try_new("rps", rps)?),
            sampled_at: Timestamp::ZERO,
        })));
    }
    let router = Arc::new(MemoryRouter::new(Split::ALL_PRIMARY));
    let config = ControllerConfig {
        tick: Duration::from_millis(50),
        ..ControllerConfig::default()
    };
    let controller = Controller::new(
        source.clone(),
        PolicySpec::default().build()?,
        router.clone(),
        config,
    )
    .with_observer(|r: &burst_core::TickReport| {
        let what = match &r.outcome {
            Outcome::Applied { from, to } => format!("applied {from} -> {to}"),
            other => format!("{other:?}"),
        };
        println!("{:<28} {}", what, r.decision.reason);
    });
    // Nine ticks, then stop.
    let stopped = controller
        .run(tokio::time::sleep(Duration::from_millis(50 * 9 - 10)))
        .await;
    println!(
        "stopped after {} ticks; splits applied: {:?}",
        stopped.ticks,
        router
            .applied()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    );
    Ok(())
}
