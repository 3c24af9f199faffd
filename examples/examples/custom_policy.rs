//! Writes your own policy and runs it through the simulator next to the seed's.
//!
//! The policy here sends a fixed 30 % to burst whenever the short-window rate exceeds a
//! limit, and holds otherwise; anything implementing `Policy` works the same way.
//!
//! `cargo run -p burst-examples --example custom_policy`

use burst_core::policy::{Decision, Policy, PolicyFile, Reason, Rule, Signal};
use burst_core::sim::{Trace, simulate, simulate_policy};
use burst_core::{Split, Timestamp, Weight};

struct ThirtyPercent {
    limit: f64,
}

impl Policy for ThirtyPercent {
    fn decide(&mut self, signal: &Signal, current: Split, _now: Timestamp) -> Decision {
        let (desired, rule) = match signal.rates() {
            Some(r) if r.up.get() > self.limit => (
                Split::from_burst(Weight::try_new(30).unwrap_or(Weight::ZERO)),
                Rule::AboveHigh,
            ),
            Some(_) => (Split::ALL_PRIMARY, Rule::BelowLow),
            None => (current, Rule::MissingHold),
        };
        Decision {
            desired,
            reason: Reason {
                rule,
                rates: signal.rates(),
                current,
                detail: format!("limit {}", self.limit),
            },
        }
    }
}

fn main() -> anyhow::Result<()> {
    let spec = PolicyFile::default();
    let trace = Trace::builtin("flash", 1)?;
    let seed = simulate(&spec, &trace, Some(15.0))?;
    let mine = simulate_policy(
        &mut ThirtyPercent { limit: 15.0 },
        &spec,
        &trace,
        Some(15.0),
    )?;
    for (name, run) in [("seed hysteresis", &seed), ("thirty percent", &mine)] {
        let s = &run.summary;
        println!(
            "{name:<16} changes {:>3}  overload {:>6.1}s  share to burst {:>5.1}%",
            s.changes,
            s.overload_s.unwrap_or(0.0),
            s.burst_share * 100.0
        );
    }
    Ok(())
}
