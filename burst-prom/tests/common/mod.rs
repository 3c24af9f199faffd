//! A canned HTTP server for tests: answers every request with whatever the current
//! responder says and records what it received.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: Method,
    pub path: String,
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: String,
    pub peer: SocketAddr,
}

impl Recorded {
    /// The decoded `query` parameter, from the URL (GET) or the form body (POST).
    pub fn promql(&self) -> Option<String> {
        let encoded = if self.method == Method::POST {
            self.body.clone()
        } else {
            self.query.clone().unwrap_or_default()
        };
        url::form_urlencoded::parse(encoded.as_bytes())
            .find(|(k, _)| k == "query")
            .map(|(_, v)| v.into_owned())
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ascii header").to_owned())
    }
}

/// What to answer.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: String,
    pub delay: Duration,
}

impl Reply {
    pub fn ok(body: impl Into<String>) -> Reply {
        Reply::status(200, body)
    }

    pub fn status(status: u16, body: impl Into<String>) -> Reply {
        Reply {
            status,
            body: body.into(),
            delay: Duration::ZERO,
        }
    }
}

type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

struct Shared {
    responder: Responder,
    requests: Vec<Recorded>,
}

/// A running canned server on 127.0.0.1; stops when dropped.
pub struct Canned {
    pub addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
    task: tokio::task::JoinHandle<()>,
}

impl Canned {
    pub async fn start(responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Canned {
        let shared = Arc::new(Mutex::new(Shared {
            responder: Arc::new(responder),
            requests: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(shared.clone());
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .expect("serve");
        });
        Canned { addr, shared, task }
    }

    /// A server that always answers 200 with `body`.
    pub async fn fixed(body: impl Into<String>) -> Canned {
        let body = body.into();
        Canned::start(move |_| Reply::ok(body.clone())).await
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn set(&self, responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) {
        self.shared.lock().expect("lock").responder = Arc::new(responder);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.lock().expect("lock").requests.clone()
    }
}

impl Drop for Canned {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(
    State(shared): State<Arc<Mutex<Shared>>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        method,
        path: uri.path().to_owned(),
        query: uri.query().map(str::to_owned),
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        peer,
    };
    let reply = {
        let mut s = shared.lock().expect("lock");
        s.requests.push(recorded.clone());
        (s.responder)(&recorded)
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let status = StatusCode::from_u16(reply.status).expect("status");
    (status, reply.body).into_response()
}

/// A file from `tests/data`.
pub fn data(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
