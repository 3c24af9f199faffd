//! The demo app under bad input: every malformed request class sent to the worker, the
//! frontend and the mesh proxy (byte for byte, over a raw TCP connection) gets a 4xx
//! answer, never a 5xx, a hang or a crash; nothing malformed is published or changes the
//! load generator's rate; every server still answers its health check afterwards.
//!
//! Summary line: `bad_input: N passed, N failed`.

#![allow(clippy::unwrap_used)]

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use burst_faults::raw::{self, Answer};
use burst_faults::tally::{CaseStats, Family};
use burst_hashr::frontend::{Frontend, FrontendConfig};
use burst_hashr::mesh::{Mesh, MeshConfig};
use burst_hashr::pubsub::MemoryPubSub;
use burst_hashr::worker::{Worker, WorkerConfig};
use common::serve;

const JSON: (&str, &str) = ("Content-Type", "application/json");

/// One malformed request and the status it must get (`None`: any 4xx).
struct Row {
    name: String,
    bytes: Vec<u8>,
    close_write: bool,
    want: Option<u16>,
}

fn row(name: &str, bytes: Vec<u8>, want: Option<u16>) -> Row {
    Row {
        name: name.to_owned(),
        bytes,
        close_write: false,
        want,
    }
}

fn post(path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    raw::request("POST", path, headers, body)
}

fn chunked(path: &str, total: usize) -> Vec<u8> {
    let mut out = raw::request("POST", path, &[JSON, ("Transfer-Encoding", "chunked")], b"");
    let chunk = vec![b'a'; 16 * 1024];
    let mut sent = 0;
    while sent < total {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(&chunk);
        out.extend_from_slice(b"\r\n");
        sent += chunk.len();
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Malformed requests any of our servers must refuse with a 4xx, for a POST endpoint.
fn common_rows(path: &str, body_limit: usize) -> Vec<Row> {
    let big_header = "x".repeat(20 * 1024);
    let huge_header = "x".repeat(1024 * 1024);
    let many_headers: Vec<(String, String)> =
        (0..200).map(|i| (format!("X-H{i}"), "v".into())).collect();
    let many: Vec<(&str, &str)> = many_headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let mut rows = vec![
        row(
            "huge body, declared",
            {
                let mut r =
                    raw::request("POST", path, &[JSON, ("Content-Length", "100000000")], b"");
                r.extend_from_slice(&[b'{'; 1024]);
                r
            },
            Some(413),
        ),
        row(
            "huge body, chunked",
            chunked(path, body_limit * 3),
            Some(413),
        ),
        row(
            "wrong content type",
            post(path, &[("Content-Type", "text/plain")], b"{}"),
            Some(415),
        ),
        row("no content type", post(path, &[], b"{}"), Some(415)),
        row(
            "form content type",
            post(
                path,
                &[("Content-Type", "application/x-www-form-urlencoded")],
                b"a=b",
            ),
            Some(415),
        ),
        row(
            "content type with invalid UTF-8",
            {
                let mut r = b"POST ".to_vec();
                r.extend_from_slice(path.as_bytes());
                r.extend_from_slice(
                    b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\xff\xfe\r\nContent-Length: 2\r\n\r\n{}",
                );
                r
            },
            Some(415),
        ),
        row("bad JSON", post(path, &[JSON], b"{\"str\":"), Some(400)),
        row(
            "invalid UTF-8 in the body",
            post(
                path,
                &[JSON],
                b"{\"str\": \"\xff\xfe\", \"frequency\": \"\xff\"}",
            ),
            Some(400),
        ),
        row(
            "deeply nested JSON",
            post(path, &[JSON], &vec![b'['; body_limit.min(20_000) - 16]),
            Some(400),
        ),
        row(
            "JSON with trailing garbage",
            post(path, &[JSON], b"{\"str\": \"a\", \"frequency\": \"1\"} x"),
            Some(400),
        ),
        row(
            "byte order mark",
            post(path, &[JSON], b"\xef\xbb\xbf{\"str\": \"a\"}"),
            Some(400),
        ),
        row(
            "headers over 16 KiB",
            post(path, &[JSON, ("X-Big", &big_header)], b"{}"),
            Some(431),
        ),
        row(
            "headers over 1 MiB",
            post(path, &[JSON, ("X-Huge", &huge_header)], b"{}"),
            Some(431),
        ),
        row("200 headers", post(path, &many, b"{}"), Some(431)),
        row("PUT", raw::request("PUT", path, &[JSON], b"{}"), Some(405)),
        row(
            "DELETE",
            raw::request("DELETE", path, &[JSON], b""),
            Some(405),
        ),
        row(
            "unknown method",
            raw::request("BREW", path, &[JSON], b"{}"),
            Some(405),
        ),
        row(
            "garbage request line",
            b"\x00\x01GARBAGE\r\n\r\n".to_vec(),
            Some(400),
        ),
        row(
            "invalid UTF-8 in the path",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".to_vec(),
            None,
        ),
        row(
            "invalid chunk size",
            {
                let mut r =
                    raw::request("POST", path, &[JSON, ("Transfer-Encoding", "chunked")], b"");
                r.extend_from_slice(b"zz\r\nabc\r\n0\r\n\r\n");
                r
            },
            Some(400),
        ),
        row(
            "unknown path",
            raw::request("GET", "/no/such/path", &[], b""),
            Some(404),
        ),
    ];
    rows.push(Row {
        name: "body shorter than declared".into(),
        bytes: post(path, &[JSON, ("Content-Length", "100")], b"{\"str\":"),
        close_write: true,
        want: Some(400),
    });
    rows
}

fn worker_rows() -> Vec<Row> {
    let mut rows = common_rows("/", burst_hashr::config::DEFAULT_BODY_LIMIT);
    for (name, body) in [
        ("str is a number", &b"{\"str\": 5}"[..]),
        ("str is an object", b"{\"str\": {\"a\": 1}}"),
        ("str is null", b"{\"str\": null}"),
        ("str missing", b"{}"),
        ("body is an array", b"[\"str\"]"),
        ("body is null", b"null"),
        ("body is a string", b"\"str\""),
        ("empty body", b""),
        (
            "duplicate str, last a number",
            b"{\"str\": \"a\", \"str\": 1}",
        ),
    ] {
        rows.push(row(name, post("/", &[JSON], body), Some(400)));
    }
    rows
}

fn frontend_rows() -> Vec<Row> {
    let path = "/api/frequency";
    let mut rows = common_rows(path, 1024);
    for (name, body, want) in [
        ("frequency missing", &b"{}"[..], 400),
        ("frequency 1e400", b"{\"frequency\": 1e400}", 400),
        ("frequency an array", b"{\"frequency\": [1]}", 422),
        ("frequency true", b"{\"frequency\": true}", 422),
        ("frequency an object", b"{\"frequency\": {}}", 422),
        ("frequency null", b"{\"frequency\": null}", 422),
        ("frequency empty", b"{\"frequency\": \"\"}", 422),
        ("frequency negative", b"{\"frequency\": \"-1\"}", 422),
        ("frequency NaN", b"{\"frequency\": \"NaN\"}", 422),
        ("frequency inf", b"{\"frequency\": \"inf\"}", 422),
        ("frequency 1e309", b"{\"frequency\": \"1e309\"}", 422),
        ("frequency above the maximum", b"{\"frequency\": 5001}", 422),
        ("frequency hex", b"{\"frequency\": \"0x10\"}", 422),
        (
            "frequency with trailing text",
            b"{\"frequency\": \"5 rps\"}",
            422,
        ),
        ("body of 900 digits", &[b'9'; 900][..], 400),
    ] {
        rows.push(row(name, post(path, &[JSON], body), Some(want)));
    }
    rows.push(row(
        "GET on the frequency endpoint",
        raw::request("GET", path, &[], b""),
        Some(405),
    ));
    rows.push(row(
        "POST on the status endpoint",
        post("/api/status", &[JSON], b"{}"),
        Some(405),
    ));
    rows.push(row(
        "POST on the event stream",
        post("/events", &[JSON], b"{}"),
        Some(405),
    ));
    rows
}

fn proxy_rows(body_limit: usize) -> Vec<Row> {
    // The proxy forwards to a worker, which refuses what is malformed.
    let mut rows = common_rows("/", body_limit);
    rows.retain(|r| {
        // Methods and paths are forwarded as they are; the worker's 405/404 come back.
        !matches!(r.name.as_str(), "garbage request line")
    });
    rows
}

fn admin_rows() -> Vec<Row> {
    let big = "x".repeat(20 * 1024);
    vec![
        row(
            "POST /split",
            post("/split", &[JSON], b"{\"burst\": 100}"),
            Some(405),
        ),
        row(
            "headers over 16 KiB",
            raw::request("GET", "/split", &[("X-Big", &big)], b""),
            Some(431),
        ),
        row(
            "unknown path",
            raw::request("GET", "/admin", &[], b""),
            Some(404),
        ),
    ]
}

async fn run_rows(
    family: &mut Family,
    server: &str,
    addr: SocketAddr,
    rows: Vec<Row>,
) -> Vec<(String, Answer)> {
    let mut answers = Vec::new();
    for r in rows {
        let answer = raw::send(addr, &r.bytes, r.close_write, Duration::from_secs(10)).await;
        let case = format!("{server}: {}", r.name);
        let result = match (answer.code(), r.want) {
            (Some(code), Some(want)) if code == want => Ok(()),
            (Some(code), None) if (400..500).contains(&code) => Ok(()),
            (Some(code), want) => Err(format!(
                "answered {code}, want {}: {answer:?}",
                want.map_or("a 4xx".to_string(), |w| w.to_string())
            )),
            (None, _) => Err(format!("no answer: {answer:?}")),
        };
        let result = result.map(|()| {
            let mut s = CaseStats::default();
            s.inject(&format!("{server} {}", r.name), 1);
            s
        });
        family.record(&case, result);
        answers.push((case, answer));
    }
    answers
}

async fn healthy(addr: SocketAddr, path: &str) -> bool {
    raw::send(
        addr,
        &raw::request("GET", path, &[], b""),
        false,
        Duration::from_secs(5),
    )
    .await
    .code()
        == Some(200)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_a_4xx_never_a_5xx() {
    let bus = Arc::new(MemoryPubSub::new());
    let worker = Worker::new(WorkerConfig::default(), bus.clone());
    let worker_srv = serve(worker.router()).await;
    let worker_url = url::Url::parse(&format!("http://{}/", worker_srv.addr)).unwrap();

    let frontend = Frontend::start(FrontendConfig::new(worker_url.clone()), bus.clone())
        .await
        .unwrap();
    let frontend_srv = serve(frontend.router()).await;

    let mesh_config = MeshConfig::new(worker_url.clone(), worker_url);
    let body_limit = mesh_config.body_limit;
    let mesh = Mesh::new(mesh_config).unwrap();
    let proxy_srv = serve(mesh.proxy_router()).await;
    let admin_srv = serve(mesh.admin_router()).await;

    let mut family = Family::new("bad_input");
    let mut all = Vec::new();
    all.extend(run_rows(&mut family, "worker", worker_srv.addr, worker_rows()).await);
    all.extend(run_rows(&mut family, "frontend", frontend_srv.addr, frontend_rows()).await);
    all.extend(run_rows(&mut family, "proxy", proxy_srv.addr, proxy_rows(body_limit)).await);
    all.extend(run_rows(&mut family, "mesh admin", admin_srv.addr, admin_rows()).await);
    family.end_round();
    family.report();

    let server_errors: Vec<&(String, Answer)> = all
        .iter()
        .filter(|(_, a)| a.code().is_some_and(|c| c >= 500))
        .collect();
    assert!(server_errors.is_empty(), "5xx answers: {server_errors:#?}");
    assert_eq!(family.failed(), 0, "{:#?}", family.failures());
    assert!(family.passed() >= 80, "only {} rows ran", family.passed());

    // Nothing malformed was published or changed the load.
    assert_eq!(worker.published(), 0);
    assert_eq!(frontend.frequency(), 0.0);
    // Every server is still up.
    assert!(healthy(worker_srv.addr, "/_healthz").await);
    assert!(healthy(frontend_srv.addr, "/_healthz").await);
    assert!(healthy(admin_srv.addr, "/_healthz").await);
    // And a well-formed request still works end to end through the proxy.
    let ok = raw::send(
        proxy_srv.addr,
        &post("/", &[JSON], b"{\"str\": \"hello\"}"),
        false,
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(ok.code(), Some(200), "{ok:?}");
    assert_eq!(worker.published(), 1);
}
