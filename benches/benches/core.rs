//! burst-core: policy decisions, one controller tick (in-memory source and router), and a
//! whole simulated trace.
//!
//! `cargo bench -p burst-benches --bench core`

#![allow(missing_docs)]

use std::hint::black_box;
use std::time::Duration;

use burst_core::policy::{Mode, Policy, PolicyFile, PolicySpec, Signal};
use burst_core::sim::{Trace, simulate};
use burst_core::testing::{MemoryRouter, MemorySource, Scripted};
use burst_core::{
    Controller, ControllerConfig, Observation, Rate, Rates, Reading, Split, Timestamp,
};
use criterion::{Criterion, criterion_group, criterion_main};

fn signal(v: f64) -> Signal {
    Signal::Rates(Rates::single(Rate::try_new("r", v).expect("valid")))
}

fn policies(c: &mut Criterion) {
    let mut g = c.benchmark_group("policy_decide");
    let overflow = PolicySpec {
        mode: Mode::Overflow,
        capacity: Some(15.0),
        ..PolicySpec::default()
    };
    for (name, spec) in [
        ("hysteresis", PolicySpec::default()),
        ("overflow", overflow),
    ] {
        let mut p = spec.build().expect("valid spec");
        let signals: Vec<Signal> = (0..64).map(|i| signal(f64::from(i % 40))).collect();
        let mut i = 0usize;
        let mut split = Split::ALL_PRIMARY;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = i.wrapping_add(1);
                let now = Timestamp::from_duration(Duration::from_secs(i as u64));
                let d = p.decide(black_box(&signals[i % signals.len()]), split, now);
                split = d.desired;
                black_box(d)
            })
        });
    }
    g.finish();
}

fn controller_tick(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let source = MemorySource::new();
    source.set(Scripted::Reading(Reading::Value(Observation::new(
        Rates::single(Rate::try_new("r", 12.0).expect("valid")),
        Timestamp::ZERO,
    ))));
    let mut ctl = Controller::new(
        source,
        PolicySpec::default().build().expect("valid spec"),
        MemoryRouter::new(Split::ALL_PRIMARY),
        ControllerConfig::default(),
    );
    c.bench_function("controller_tick_in_memory", |b| {
        b.iter(|| rt.block_on(async { black_box(ctl.tick().await.expect("tick")) }))
    });
}

fn simulation(c: &mut Criterion) {
    let trace = Trace::builtin("diurnal", 1).expect("builtin");
    let file = PolicyFile::default();
    c.bench_function("simulate_diurnal_1440_ticks", |b| {
        b.iter(|| black_box(simulate(&file, &trace, Some(15.0)).expect("runs")))
    });
}

criterion_group!(benches, policies, controller_tick, simulation);
criterion_main!(benches);
