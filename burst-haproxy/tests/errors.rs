//! Every error a user can meet, with the message they see: from a real `haproxy` where it
//! can produce the case, from tiny fake sockets where it cannot (an answer HAProxy never
//! gives, a socket that never answers).

use std::time::Duration;

use burst_core::{MetricSource, TrafficRouter};
use burst_haproxy::{Error, HaproxyRouter, HaproxySource, HaproxyTarget, RuntimeClient};
use burst_testkit::haproxy::{HaproxyOptions, HaproxyServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn client(addr: &str) -> RuntimeClient {
    RuntimeClient::new(addr.parse().expect("address"))
}

fn target(backend: &str, primary: &str, burst: &str) -> HaproxyTarget {
    HaproxyTarget::new(backend, primary, burst).expect("valid names")
}

fn default_target() -> HaproxyTarget {
    target(
        HaproxyServer::BACKEND,
        HaproxyServer::PRIMARY,
        HaproxyServer::BURST,
    )
}

async fn read_error(router: &HaproxyRouter) -> Error {
    let e = router.current().await.expect_err("read should fail");
    Error::of(&e)
        .cloned()
        .unwrap_or_else(|| panic!("foreign error {e}"))
}

#[tokio::test]
async fn missing_socket_names_the_stats_socket_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("admin.sock");
    let r = HaproxyRouter::new(
        client(&format!("unix:{}", path.display())),
        default_target(),
    );
    let e = read_error(&r).await;
    assert_eq!(e.kind(), "socket_missing");
    let text = e.to_string();
    assert!(text.contains("does not exist"), "{text}");
    assert!(text.contains("stats socket"), "{text}");
}

#[tokio::test]
async fn refused_tcp_says_whether_haproxy_runs() {
    let port = burst_testkit::free_port().unwrap();
    let r = HaproxyRouter::new(client(&format!("tcp:127.0.0.1:{port}")), default_target());
    let e = read_error(&r).await;
    assert_eq!(e.kind(), "connection_refused");
    assert!(e.to_string().contains("is HAProxy running"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_haproxy_errors() {
    let h = HaproxyServer::start(HaproxyOptions::default()).expect("haproxy");

    // `level user` may read but not change weights.
    let user = HaproxyRouter::new(
        client(&format!("unix:{}", h.user_socket().display())),
        default_target(),
    );
    assert!(user.current().await.is_ok());
    let e = user.apply(burst_core::Split::ALL_BURST).await.unwrap_err();
    assert_eq!(e.kind(), "permission_denied");
    let text = e.to_string();
    assert!(
        text.contains("Permission denied") && text.contains("level admin"),
        "{text}"
    );

    let api = h.runtime_api();
    let e = read_error(&HaproxyRouter::new(
        client(&api),
        target("nosuch", "primary", "burst"),
    ))
    .await;
    assert_eq!(e.kind(), "no_such_backend");
    assert!(e.to_string().contains("no backend `nosuch`"), "{e}");

    let e = read_error(&HaproxyRouter::new(
        client(&api),
        target("app", "primary", "cloud"),
    ))
    .await;
    assert_eq!(e.kind(), "no_such_server");
    assert!(e.to_string().contains("has no server `cloud`"), "{e}");
    // Nothing was written to the primary when the burst server does not exist.
    let bad = HaproxyRouter::new(client(&api), target("app", "primary", "cloud"));
    assert!(bad.apply(burst_core::Split::ALL_BURST).await.is_err());
    let good = HaproxyRouter::new(client(&api), default_target());
    assert_eq!(
        good.current().await.unwrap(),
        burst_core::Split::ALL_PRIMARY
    );

    // A server in maintenance with a weight above 0 is not silently counted.
    let raw = client(&api);
    raw.command("set weight app/burst 50; set server app/burst state maint")
        .await
        .unwrap();
    let e = read_error(&good).await;
    assert_eq!(e.kind(), "server_state");
    assert!(
        e.to_string().contains("set server app/burst state ready"),
        "{e}"
    );
    raw.command("set server app/burst state ready")
        .await
        .unwrap();

    // Both weights 0: drained.
    raw.command("set weight app/primary 0; set weight app/burst 0")
        .await
        .unwrap();
    let e = read_error(&good).await;
    assert_eq!(e.kind(), "drained");

    let source =
        HaproxySource::new(vec![client(&api)], "nosuch", Duration::from_secs(15), None).unwrap();
    let e = source.observe().await.unwrap_err();
    assert_eq!(e.kind(), "no_such_backend", "{e}");
}

/// A FAKE runtime API: a unix socket that answers every command with `answer` (or never
/// answers when `None`). Real HAProxy never sends a malformed answer nor hangs on demand.
async fn fake_socket(dir: &std::path::Path, answer: Option<&'static str>) -> String {
    let path = dir.join("fake.sock");
    let listener = tokio::net::UnixListener::bind(&path).expect("bind the fake socket");
    tokio::spawn(async move {
        // Bounded: a test makes a handful of connections.
        for _ in 0..16 {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                match answer {
                    Some(a) => {
                        let _ = s.write_all(a.as_bytes()).await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    format!("unix:{}", path.display())
}

#[tokio::test]
async fn malformed_answers_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let addr = fake_socket(dir.path(), Some("hello from something else\n")).await;
    let e = read_error(&HaproxyRouter::new(client(&addr), default_target())).await;
    assert_eq!(e.kind(), "malformed");
    let text = e.to_string();
    assert!(
        text.contains("expected the `show stat` CSV table"),
        "{text}"
    );
    assert!(text.contains("hello from something else"), "{text}");

    let dir2 = tempfile::tempdir().unwrap();
    let addr = fake_socket(
        dir2.path(),
        Some("# pxname,svname,status\napp,primary,UP\napp,burst,UP\n\n"),
    )
    .await;
    let e = read_error(&HaproxyRouter::new(client(&addr), default_target())).await;
    assert_eq!(e.kind(), "malformed");
    assert!(
        e.to_string().contains("no weight for server `primary`"),
        "{e}"
    );
}

#[tokio::test]
async fn a_socket_that_never_answers_times_out() {
    let dir = tempfile::tempdir().unwrap();
    let addr = fake_socket(dir.path(), None).await;
    let c = client(&addr)
        .with_timeout(Duration::from_millis(300))
        .unwrap();
    let e = read_error(&HaproxyRouter::new(c, default_target())).await;
    assert_eq!(e.kind(), "timeout");
    assert!(
        e.to_string().contains("read did not finish within 300ms"),
        "{e}"
    );
}
