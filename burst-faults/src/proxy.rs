//! [`FaultProxy`]: an HTTP proxy on loopback whose behaviour is switched while it runs.

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use burst_core::lock;
use burst_testkit::serve::DropConnection;
use hyper::body::Incoming;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Largest request or upstream body the proxy handles.
const MAX_BODY: usize = 16 * 1024 * 1024;

/// What the proxy does with each request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Forward to the upstream and relay its answer.
    Pass,
    /// Wait, then forward.
    Delay(Duration),
    /// Answer this status and body (`text/plain`) without asking the upstream.
    Status(u16, String),
    /// Answer 200 with this body (`application/json` if it starts with `{`, else
    /// `text/plain`) without asking the upstream.
    Body(String),
    /// Forward, then relay only the first half of the upstream's body (with a matching
    /// `Content-Length`, so the client sees a complete but cut document).
    Truncate,
    /// Forward, then relay the upstream's body without its last `n` bytes (with a matching
    /// `Content-Length`): a document cut just before its end.
    CutTail(usize),
    /// Close the connection without answering.
    Drop,
    /// Stop listening: connections are refused until another behaviour is set.
    Refuse,
}

impl Behaviour {
    /// A short label for counting.
    pub fn label(&self) -> String {
        match self {
            Behaviour::Pass => "pass".into(),
            Behaviour::Delay(_) => "delay".into(),
            Behaviour::Status(code, _) => format!("status_{code}"),
            Behaviour::Body(_) => "canned_body".into(),
            Behaviour::Truncate => "truncate".into(),
            Behaviour::CutTail(n) => format!("cut_tail_{n}"),
            Behaviour::Drop => "drop".into(),
            Behaviour::Refuse => "refuse".into(),
        }
    }
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    behaviour: Mutex<Behaviour>,
    served: Mutex<BTreeMap<String, u64>>,
}

/// A proxy on `127.0.0.1:<free port>` in front of one upstream base URL. Stops when dropped.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (e.g. `http://127.0.0.1:9090`), passing
    /// everything through.
    pub async fn start(upstream: &str) -> Result<FaultProxy, String> {
        // A port outside the ephemeral range, so a client connection cannot take it while
        // the proxy refuses and has closed its listener.
        let port = burst_testkit::free_port().map_err(|e| format!("no free port: {e}"))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|e| format!("cannot bind the proxy: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?;
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("cannot build the proxy's client: {e}"))?;
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client,
            behaviour: Mutex::new(Behaviour::Pass),
            served: Mutex::new(BTreeMap::new()),
        });
        let proxy = FaultProxy {
            addr,
            shared,
            task: Mutex::new(None),
        };
        proxy.serve(listener);
        Ok(proxy)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `127.0.0.1:<port>`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// Switches the behaviour. [`Behaviour::Refuse`] closes the listener and every open
    /// connection; any other behaviour after it listens again on the same port.
    pub async fn set(&self, behaviour: Behaviour) -> Result<(), String> {
        let refuse = behaviour == Behaviour::Refuse;
        *lock(&self.shared.behaviour) = behaviour;
        let running = lock(&self.task).is_some();
        if refuse {
            if let Some(t) = lock(&self.task).take() {
                t.abort();
            }
        } else if !running {
            let deadline = Instant::now() + Duration::from_secs(5);
            let listener = loop {
                match TcpListener::bind(self.addr).await {
                    Ok(l) => break l,
                    Err(e) if Instant::now() >= deadline => {
                        return Err(format!("cannot bind {} again: {e}", self.addr));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            };
            self.serve(listener);
        }
        Ok(())
    }

    /// How many requests were handled, by behaviour label (see [`Behaviour::label`]).
    pub fn served(&self) -> BTreeMap<String, u64> {
        lock(&self.shared.served).clone()
    }

    fn serve(&self, listener: TcpListener) {
        let task = burst_testkit::serve::serve(listener, self.shared.clone(), handle);
        *lock(&self.task) = Some(task);
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(t) = lock(&self.task).take() {
            t.abort();
        }
    }
}

fn response(status: u16, content_type: &str, body: Vec<u8>) -> hyper::Response<Body> {
    let mut r = hyper::Response::new(Body::from(body));
    *r.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, DropConnection> {
    let behaviour = lock(&shared.behaviour).clone();
    *lock(&shared.served).entry(behaviour.label()).or_default() += 1;
    match &behaviour {
        Behaviour::Drop | Behaviour::Refuse => return Err(DropConnection),
        Behaviour::Status(code, body) => {
            return Ok(response(*code, "text/plain", body.clone().into_bytes()));
        }
        Behaviour::Body(body) => {
            let ct = if body.trim_start().starts_with('{') {
                "application/json"
            } else {
                "text/plain; version=0.0.4"
            };
            return Ok(response(200, ct, body.clone().into_bytes()));
        }
        Behaviour::Delay(d) => tokio::time::sleep(*d).await,
        Behaviour::Pass | Behaviour::Truncate | Behaviour::CutTail(_) => {}
    }
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(Body::new(body), MAX_BODY)
        .await
        .map_err(|_| DropConnection)?;
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let mut upstream = shared
        .client
        .request(parts.method.clone(), format!("{}{path}", shared.upstream))
        .body(body);
    for name in [
        hyper::header::CONTENT_TYPE,
        hyper::header::ACCEPT,
        hyper::header::AUTHORIZATION,
    ] {
        if let Some(v) = parts.headers.get(&name) {
            upstream = upstream.header(name, v);
        }
    }
    // An unreachable upstream looks like an unreachable server to the client.
    let answer = upstream.send().await.map_err(|_| DropConnection)?;
    let status = answer.status().as_u16();
    let ct = answer
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned();
    let mut bytes = answer.bytes().await.map_err(|_| DropConnection)?.to_vec();
    match behaviour {
        Behaviour::Truncate => bytes.truncate(bytes.len() / 2),
        Behaviour::CutTail(n) => bytes.truncate(bytes.len().saturating_sub(n)),
        _ => {}
    }
    Ok(response(status, &ct, bytes))
}
