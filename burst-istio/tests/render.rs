//! Golden files of `render`: the seed pair and the multi-cluster variant, both valid
//! against the CRD schemas and Istio's weight rules.

#![allow(clippy::unwrap_used)]

use burst_core::Split;
use burst_istio::VsTarget;
use burst_istio::render::{RenderOptions, render, render_yaml};
use burst_testkit::schema;

#[test]
fn seed_pair_golden() {
    let opts = RenderOptions::default();
    let split = Split::try_new(50, 50).unwrap();
    for o in render(&opts, split).unwrap() {
        schema::check(&o).unwrap();
    }
    insta::assert_snapshot!("seed_pair_50_50", render_yaml(&opts, split).unwrap());
}

#[test]
fn topology_label_golden() {
    let opts = RenderOptions {
        namespace: "shop".into(),
        service: "checkout".into(),
        port: 8081,
        subset_label: "topology.istio.io/cluster".into(),
        primary_label_value: "cluster-onprem".into(),
        burst_label_value: "cluster-cloud".into(),
        gateways: vec!["mesh".into(), "istio-system/public".into()],
        load_balancer: "LEAST_REQUEST".into(),
        ..RenderOptions::default()
    };
    let objs = render(&opts, Split::ALL_BURST).unwrap();
    for o in &objs {
        schema::check(o).unwrap();
    }
    assert_eq!(
        VsTarget::default().read(&objs[1]).unwrap(),
        Split::ALL_BURST
    );
    insta::assert_snapshot!(
        "topology_label_0_100",
        render_yaml(&opts, Split::ALL_BURST).unwrap()
    );
}

#[test]
fn every_split_renders_valid_objects() {
    for b in 0..=100 {
        let split = Split::try_new(100 - b, b).unwrap();
        let objs = render(&RenderOptions::default(), split).unwrap();
        schema::check(&objs[1]).unwrap();
        assert_eq!(VsTarget::default().read(&objs[1]).unwrap(), split);
    }
}
