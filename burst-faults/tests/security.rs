//! Security checks: no shelling out from product code, secrets never in `Debug`, error
//! messages, HTTP answers or logs, TLS verification on by default, and size limits on every
//! HTTP endpoint we serve (worker, frontend, mesh proxy and admin, burstd).
//!
//! RBAC (burstd's rights are exactly what it uses) is checked by burst-operator's own tests
//! against the chart's Role.

#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use burst_core::MetricSource;
use burst_faults::raw;
use burst_hashr::pubsub::PubSub;
use burst_prom::{
    BasicAuth, HttpConfig, PrometheusConfig, PrometheusSource, ScrapeConfig, ScrapeSource,
};
use burst_testkit::prometheus::{PrometheusOptions, PrometheusServer};
use common::serve;
use tokio_util::sync::CancellationToken;

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ---------------------------------------------------------------- no shell-out

/// Product crates: everything that ships in a binary or library users depend on.
const PRODUCT_SOURCES: [&str; 8] = [
    "burst-core/src",
    "burst-prom/src",
    "burst-istio/src",
    "burst-haproxy/src",
    "burst-pods/src",
    "burst-hashr/src",
    "burst-operator/src",
    "burst-bin/src",
];

/// The one place product code starts a process, and why: `burst demo --data-plane haproxy`
/// runs a real `haproxy` as its data plane (fixed arguments, no shell, no user input in the
/// command line). Each entry allows exactly this many matching lines in that file, so a
/// second process start there still fails the check.
const ALLOWED: [(&str, usize); 1] = [("burst-bin/src/cmd/demo/haproxy.rs", 1)];

const FORBIDDEN: [&str; 5] = [
    "process::Command",
    "Command::new",
    "tokio::process",
    "std::process::Stdio",
    "libc::exec",
];

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// Lines of `text` outside test code that use a forbidden API. Test code is a
/// `#[cfg(test)]` item to the end of the file (house style puts tests last) or a file
/// named `tests.rs`.
fn shell_outs(path: &Path, text: &str) -> Vec<String> {
    if path.file_name().is_some_and(|n| n == "tests.rs") {
        return Vec::new();
    }
    let product = text.split("#[cfg(test)]").next().unwrap_or("");
    product
        .lines()
        .enumerate()
        .filter(|(_, l)| {
            let code = l.split("//").next().unwrap_or("");
            FORBIDDEN.iter().any(|f| code.contains(f))
        })
        .map(|(i, l)| format!("{}:{}: {}", path.display(), i + 1, l.trim()))
        .collect()
}

#[test]
fn product_code_never_shells_out() {
    let mut files = Vec::new();
    for dir in PRODUCT_SOURCES {
        rust_files(&workspace().join(dir), &mut files);
    }
    assert!(files.len() > 50, "only {} source files found", files.len());
    let root = workspace();
    let mut allowed_seen = Vec::new();
    let found: Vec<String> = files
        .iter()
        .flat_map(|f| {
            let hits = shell_outs(f, &std::fs::read_to_string(f).unwrap());
            let rel = f.strip_prefix(&root).unwrap_or(f);
            match ALLOWED.iter().find(|(p, _)| rel == Path::new(p)) {
                Some((p, n)) if hits.len() == *n => {
                    allowed_seen.push(*p);
                    Vec::new()
                }
                _ => hits,
            }
        })
        .collect();
    for (p, _) in ALLOWED {
        assert!(
            allowed_seen.contains(&p),
            "{p} is allowed to start a process but no longer does (or does more): update ALLOWED"
        );
    }
    assert!(
        found.is_empty(),
        "product code starts processes:\n{found:#?}"
    );

    // The check finds what it looks for.
    let bad =
        "use std::process::Command;\nfn f() { Command::new(\"sh\"); }\n#[cfg(test)]\nmod t {}";
    assert_eq!(shell_outs(Path::new("x.rs"), bad).len(), 2);
    let test_only =
        "fn f() {}\n#[cfg(test)]\nmod t { fn g() { std::process::Command::new(\"x\"); } }";
    assert!(shell_outs(Path::new("x.rs"), test_only).is_empty());
}

// ---------------------------------------------------------------- secrets

/// A `tracing` subscriber for this thread writing everything (TRACE) into a buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn capture() -> (Captured, tracing::subscriber::DefaultGuard) {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    (logs, tracing::subscriber::set_default(subscriber))
}

/// An HTTP server that records the `Authorization` headers it receives and answers 500.
async fn recording_server() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let sink = sink.clone();
        async move {
            if let Some(v) = headers.get("authorization") {
                sink.lock()
                    .unwrap()
                    .push(String::from_utf8_lossy(v.as_bytes()).into_owned());
            }
            (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "boom")
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen)
}

fn assert_hidden(what: &str, text: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!text.contains(s), "{what} shows the secret `{s}`:\n{text}");
    }
}

#[tokio::test]
async fn metric_source_credentials_never_in_debug_errors_or_logs() {
    let (logs, _guard) = capture();
    let (addr, seen) = recording_server().await;
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-SECRET-file\n").unwrap();

    // A bearer token file (as a projected service-account token).
    let with_token = HttpConfig {
        bearer_token_file: Some(token_file),
        ..HttpConfig::default()
    };
    // Basic auth, and a bearer token given as a header (what burstd does with a token read
    // from a Secret).
    let mut with_basic = HttpConfig {
        basic_auth: Some(BasicAuth {
            username: "user".into(),
            password: "pw-SECRET-basic".into(),
        }),
        ..HttpConfig::default()
    };
    with_basic
        .headers
        .insert("Authorization".into(), "Bearer hdr-SECRET-header".into());
    let secrets = ["tok-SECRET-file", "pw-SECRET-basic", "hdr-SECRET-header"];

    for http in [with_token, with_basic] {
        let prom_config = PrometheusConfig {
            url: format!("http://{addr}"),
            http: http.clone(),
            ..PrometheusConfig::default()
        };
        let scrape_config = ScrapeConfig {
            targets: vec![format!("http://{addr}/metrics")],
            metric: "m".into(),
            http: http.clone(),
            ..ScrapeConfig::default()
        };
        assert_hidden("HttpConfig Debug", &format!("{http:?}"), &secrets);
        assert_hidden(
            "PrometheusConfig Debug",
            &format!("{prom_config:?}"),
            &secrets,
        );
        assert_hidden(
            "ScrapeConfig Debug",
            &format!("{scrape_config:?}"),
            &secrets,
        );
        let prom = PrometheusSource::new(prom_config).unwrap();
        let scrape = ScrapeSource::new(scrape_config).unwrap();
        let e = prom.observe().await.unwrap_err();
        assert_hidden("a PrometheusSource error", &format!("{e} {e:?}"), &secrets);
        let e = scrape.observe().await.unwrap_err();
        assert_hidden("a ScrapeSource error", &format!("{e} {e:?}"), &secrets);
        assert_hidden("PrometheusSource Debug", &format!("{prom:?}"), &secrets);
        assert_hidden("ScrapeSource Debug", &format!("{scrape:?}"), &secrets);
        assert_hidden("describe()", &prom.describe(), &secrets);
    }
    // The credentials were really sent, so the checks above looked at live values.
    let sent = seen.lock().unwrap().join(" ");
    assert!(sent.contains("Bearer tok-SECRET-file"), "{sent}");
    assert!(
        sent.contains("Bearer hdr-SECRET-header") || sent.contains("Basic "),
        "{sent}"
    );
    let logged = logs.text();
    assert!(
        !logged.is_empty(),
        "nothing was logged, so nothing was checked"
    );
    assert_hidden("the logs", &logged, &secrets);
}

/// A `redis-server` that requires a password, on a free port.
struct PasswordRedis {
    port: u16,
    _guard: burst_testkit::ChildGuard,
}

fn password_redis(password: &str) -> PasswordRedis {
    let binary = burst_testkit::require_binary("redis-server", "redis-server").unwrap();
    let port = burst_testkit::free_port().unwrap();
    let child = std::process::Command::new(binary)
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--save",
            "",
            "--appendonly",
            "no",
            "--requirepass",
            password,
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let guard = burst_testkit::ChildGuard::new(child);
    for _ in 0..100 {
        if std::net::TcpStream::connect(burst_testkit::loopback(port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    PasswordRedis {
        port,
        _guard: guard,
    }
}

#[tokio::test]
async fn redis_password_never_in_logs_answers_or_debug() {
    let (logs, _guard) = capture();
    let secret = "redis-SECRET-pw";
    let redis = password_redis(secret);
    let url = format!("redis://:{secret}@127.0.0.1:{}/", redis.port);
    let bus = Arc::new(burst_hashr::pubsub::RedisPubSub::new(&url).unwrap());
    // It connects and publishes with the password...
    bus.publish("calculation", "x").await.unwrap();
    assert_hidden("RedisPubSub Debug", &format!("{bus:?}"), &[secret]);
    assert_hidden("RedisPubSub describe()", &bus.describe(), &[secret]);

    // ...and when Redis is unreachable the worker's 503 does not carry it either.
    let down = format!(
        "redis://:{secret}@127.0.0.1:{}/",
        burst_testkit::free_port().unwrap()
    );
    let down_bus: Arc<dyn PubSub> = Arc::new(burst_hashr::pubsub::RedisPubSub::new(&down).unwrap());
    let worker = burst_hashr::worker::Worker::new(Default::default(), down_bus);
    let addr = serve(worker.router()).await;
    let answer = raw::send(
        addr.addr,
        &raw::request(
            "POST",
            "/",
            &[("Content-Type", "application/json")],
            b"{\"str\": \"a\"}",
        ),
        false,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(answer.code(), Some(503), "{answer:?}");
    assert_hidden("the worker's 503", &format!("{answer:?}"), &[secret]);
    let logged = logs.text();
    assert!(
        !logged.is_empty(),
        "nothing was logged, so nothing was checked"
    );
    assert_hidden("the logs", &logged, &[secret]);
}

// ---------------------------------------------------------------- TLS

fn tls_file(name: &str) -> PathBuf {
    workspace().join("burst-prom/tests/data/tls").join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_by_default() {
    let mut options = PrometheusOptions::scraping(&[]);
    options.tls = Some((tls_file("server.pem"), tls_file("server.key")));
    let prom = PrometheusServer::start(options).unwrap();
    let prom_source = |http: HttpConfig| {
        PrometheusSource::new(PrometheusConfig {
            url: prom.url(),
            query: "vector(1)".into(),
            http,
            ..PrometheusConfig::default()
        })
        .unwrap()
    };
    let scrape_source = |http: HttpConfig| {
        ScrapeSource::new(ScrapeConfig {
            targets: vec![format!("{}/metrics", prom.url())],
            metric: "prometheus_build_info".into(),
            mode: burst_prom::ScrapeMode::Gauge,
            http,
            ..ScrapeConfig::default()
        })
        .unwrap()
    };
    // Defaults: a certificate from an unknown CA is refused, naming the reason.
    let e = prom_source(HttpConfig::default())
        .evaluate()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "connect", "{e}");
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");
    let e = scrape_source(HttpConfig::default())
        .evaluate()
        .await
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // With the CA it works; with the explicit lab switch too.
    let with_ca = HttpConfig {
        ca_file: Some(tls_file("ca.pem")),
        ..HttpConfig::default()
    };
    prom_source(with_ca.clone()).evaluate().await.unwrap();
    scrape_source(with_ca).evaluate().await.unwrap();
    let insecure = HttpConfig {
        insecure_skip_verify: true,
        ..HttpConfig::default()
    };
    prom_source(insecure).evaluate().await.unwrap();
    assert!(!HttpConfig::default().insecure_skip_verify);
}

// ---------------------------------------------------------------- size limits

/// Headers of 20 KiB: 431, or (burstd) the connection closed without an answer.
async fn header_limit(server: &str, addr: SocketAddr, method: &str, path: &str, close_ok: bool) {
    let big = "x".repeat(20 * 1024);
    let a = raw::send(
        addr,
        &raw::request(method, path, &[("X-Big", &big)], b""),
        false,
        Duration::from_secs(10),
    )
    .await;
    let ok = a.code() == Some(431) || (close_ok && a == raw::Answer::Closed);
    assert!(ok, "{server} {method} {path} with 20 KiB of headers: {a:?}");
}

/// A 2 MiB body: 413 (the body is refused, not buffered).
async fn body_limit(server: &str, addr: SocketAddr, path: &str) {
    let mut req = raw::request(
        "POST",
        path,
        &[
            ("Content-Type", "application/json"),
            ("Content-Length", "2097152"),
        ],
        b"",
    );
    req.extend_from_slice(&vec![b'{'; 64 * 1024]);
    let a = raw::send(addr, &req, false, Duration::from_secs(10)).await;
    assert_eq!(
        a.code(),
        Some(413),
        "{server} POST {path} with a 2 MiB body: {a:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_limits_headers_and_bodies() {
    use burst_hashr::pubsub::MemoryPubSub;
    let bus = Arc::new(MemoryPubSub::new());
    let worker = burst_hashr::worker::Worker::new(Default::default(), bus.clone());
    let w = serve(worker.router()).await;
    let worker_url = url::Url::parse(&format!("http://{}/", w.addr)).unwrap();
    let frontend = burst_hashr::frontend::Frontend::start(
        burst_hashr::frontend::FrontendConfig::new(worker_url.clone()),
        bus.clone(),
    )
    .await
    .unwrap();
    let f = serve(frontend.router()).await;
    let mesh = burst_hashr::mesh::Mesh::new(burst_hashr::mesh::MeshConfig::new(
        worker_url.clone(),
        worker_url,
    ))
    .unwrap();
    let p = serve(mesh.proxy_router()).await;
    let a = serve(mesh.admin_router()).await;
    let burstd = burst_operator::server::Server::bind(
        burst_testkit::loopback(0),
        Arc::new(burst_operator::metrics::Metrics::new()),
        Arc::new(burst_operator::server::Readiness::new()),
    )
    .await
    .unwrap();
    let b = burstd.local_addr().unwrap();
    let stop = CancellationToken::new();
    let signal = stop.clone().cancelled_owned();
    tokio::spawn(burstd.serve(signal));

    let gets: [(&str, SocketAddr, &[&str], bool); 5] = [
        ("worker", w.addr, &["/", "/_healthz", "/metrics"], false),
        (
            "frontend",
            f.addr,
            &[
                "/",
                "/assets/bootstrap.min.css",
                "/assets/app.js",
                "/events",
                "/api/status",
                "/_healthz",
                "/metrics",
            ],
            false,
        ),
        ("mesh proxy", p.addr, &["/", "/any/path"], false),
        (
            "mesh admin",
            a.addr,
            &["/metrics", "/_healthz", "/split"],
            false,
        ),
        ("burstd", b, &["/metrics", "/healthz", "/readyz"], true),
    ];
    let mut checked = 0;
    for (server, addr, paths, close_ok) in gets {
        for path in paths {
            header_limit(server, addr, "GET", path, close_ok).await;
            checked += 1;
        }
    }
    for (server, addr, path) in [
        ("worker", w.addr, "/"),
        ("frontend", f.addr, "/api/frequency"),
        ("mesh proxy", p.addr, "/"),
    ] {
        header_limit(server, addr, "POST", path, false).await;
        body_limit(server, addr, path).await;
        checked += 2;
    }
    // burstd serves GET only: a body-carrying POST is refused before the body is read.
    let big_post = {
        let mut r = raw::request("POST", "/metrics", &[("Content-Length", "2097152")], b"");
        r.extend_from_slice(&vec![b'x'; 64 * 1024]);
        r
    };
    let answer = raw::send(b, &big_post, false, Duration::from_secs(10)).await;
    assert!(
        matches!(answer.code(), Some(405 | 413)) || answer == raw::Answer::Closed,
        "burstd POST with a 2 MiB body: {answer:?}"
    );
    stop.cancel();
    assert_eq!(checked, 24);
}
