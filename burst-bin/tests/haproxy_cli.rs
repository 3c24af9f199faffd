//! `burst haproxy get-weights|set-weights` end to end: the built binary against a real
//! `haproxy`, its output and exit codes.

#![allow(clippy::unwrap_used)]

mod common;

use burst_testkit::haproxy::{HaproxyOptions, HaproxyServer};
use common::burst;

fn select<'a>(api: &'a str, backend: &'a str) -> Vec<&'a str> {
    vec![
        "--runtime-api",
        api,
        "--backend",
        backend,
        "--primary-server",
        "primary",
        "--burst-server",
        "burst",
    ]
}

fn run(sub: &str, select: &[&str], extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["haproxy", sub];
    args.extend_from_slice(select);
    args.extend_from_slice(extra);
    burst(&args)
}

#[test]
fn get_and_set_weights_on_a_real_haproxy() {
    let h = HaproxyServer::start(HaproxyOptions {
        tcp_runtime_api: true,
        ..HaproxyOptions::default()
    })
    .unwrap();
    let api = h.runtime_api();
    let sel = select(&api, "app");
    let (code, out, err) = run("get-weights", &sel, &[]);
    assert_eq!((code, out.as_str()), (0, "primary=100 burst=0\n"), "{err}");

    let (code, out, err) = run("set-weights", &sel, &["--burst-weight", "30"]);
    assert_eq!((code, out.as_str()), (0, "primary=70 burst=30\n"), "{err}");

    // Through the TCP runtime API, as JSON.
    let tcp = h.tcp_runtime_api().unwrap();
    let (code, out, err) = run("get-weights", &select(&tcp, "app"), &["-o", "json"]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v, serde_json::json!({"primary": 70, "burst": 30}));

    // Both instances' addresses (the same HAProxy twice is still two clients).
    let mut both = select(&api, "app");
    both.extend_from_slice(&["--runtime-api", &tcp]);
    let (code, out, err) = run("set-weights", &both, &["--burst-weight", "100"]);
    assert_eq!((code, out.as_str()), (0, "primary=0 burst=100\n"), "{err}");
}

#[test]
fn errors_exit_2_with_the_fix() {
    let h = HaproxyServer::start(HaproxyOptions::default()).unwrap();
    let api = h.runtime_api();

    let (code, out, err) = run("get-weights", &select(&api, "nosuch"), &[]);
    assert_eq!(code, 2);
    assert!(out.is_empty());
    assert!(err.contains("no backend `nosuch`"), "{err}");

    let user = format!("unix:{}", h.user_socket().display());
    let (code, _, err) = run(
        "set-weights",
        &select(&user, "app"),
        &["--burst-weight", "10"],
    );
    assert_eq!(code, 2);
    assert!(err.contains("level admin"), "{err}");

    let (code, _, err) = run("get-weights", &select("127.0.0.1:9999", "app"), &[]);
    assert_eq!(code, 2);
    assert!(err.contains("must start with `unix:` or `tcp:`"), "{err}");

    let (code, _, _) = run(
        "set-weights",
        &select(&api, "app"),
        &["--burst-weight", "101"],
    );
    assert_eq!(code, 2);
    // Nothing changed by the failed calls.
    let (code, out, _) = run("get-weights", &select(&api, "app"), &[]);
    assert_eq!((code, out.as_str()), (0, "primary=100 burst=0\n"));
}
