//! [`ApiProxy`]: a fault-injecting, write-recording proxy in front of a real kube-apiserver.
//!
//! The real server decides every answer; the proxy only adds what a real server cannot be
//! made to do on demand (the one fake part of the Kubernetes tests, and it says so in every
//! answer it makes up): answer a status of its own (500, 503, ...), delay a request, drop the
//! connection, or run another writer against the real server just before a request goes
//! through (a real concurrent writer, so the conflict that follows is the server's own).
//! It also records every write that reached the server, with the server's status, so tests
//! can check what a client wrote and that nothing was written.
//!
//! Clients speak plain HTTP to the proxy on loopback; the proxy speaks HTTPS to the server,
//! passing the client's `Authorization` header through unchanged, so RBAC sees the client's
//! own identity. Responses are streamed, so watches work through it.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::Body;
use futures::StreamExt;
use http::Method;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::control_plane::{ControlPlane, client_from_kubeconfig, kubeconfig};
use crate::free_port;
use crate::serve::{DropConnection, serve};

/// Largest request body the proxy forwards (the real server's limit is 3 MiB).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// A hook run against the real server (with an admin client) before a request is forwarded.
pub type Hook = Arc<dyn Fn(kube::Client) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// What a fault does to a matching request.
#[derive(Clone)]
pub enum FaultAction {
    /// Answer this HTTP status with a `Status` body, without asking the server.
    Status(u16),
    /// Wait this long, then forward.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
    /// Run the hook (another writer changing the object on the real server), then forward.
    Before(Hook),
}

impl std::fmt::Debug for FaultAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FaultAction::Status(c) => write!(f, "Status({c})"),
            FaultAction::Delay(d) => write!(f, "Delay({d:?})"),
            FaultAction::Drop => write!(f, "Drop"),
            FaultAction::Before(_) => write!(f, "Before(..)"),
        }
    }
}

/// One fault rule: matches requests by method and path substring, fires a bounded number of
/// times. Rules are checked in the order they were added; the first match fires.
///
/// ```
/// use burst_testkit::kube::Fault;
/// use http::Method;
/// use std::time::Duration;
///
/// let _unavailable = Fault::status(503).on(Method::PATCH).times(2);
/// let _slow = Fault::delay(Duration::from_secs(5)).path("virtualservices/worker");
/// let _dropped = Fault::drop_connection();
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    method: Option<Method>,
    path_contains: Option<String>,
    remaining: usize,
    action: FaultAction,
}

impl Fault {
    fn with(action: FaultAction) -> Self {
        Fault {
            method: None,
            path_contains: None,
            remaining: 1,
            action,
        }
    }

    /// Answers with `code` and a `Status` body saying the proxy made it up.
    pub fn status(code: u16) -> Self {
        Fault::with(FaultAction::Status(code))
    }

    /// Delays the request by `by`, then forwards it.
    pub fn delay(by: Duration) -> Self {
        Fault::with(FaultAction::Delay(by))
    }

    /// Closes the connection without an answer.
    pub fn drop_connection() -> Self {
        Fault::with(FaultAction::Drop)
    }

    /// Runs `hook` with an admin client against the real server, then forwards the request:
    /// another writer acting just before this request arrives.
    pub fn before<F, Fut>(hook: F) -> Self
    where
        F: Fn(kube::Client) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Fault::with(FaultAction::Before(Arc::new(move |c| Box::pin(hook(c)))))
    }

    /// Only requests with this method.
    pub fn on(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Only requests whose path contains `part`.
    pub fn path(mut self, part: impl Into<String>) -> Self {
        self.path_contains = Some(part.into());
        self
    }

    /// Fires for the next `n` matching requests (default 1).
    pub fn times(mut self, n: usize) -> Self {
        self.remaining = n;
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.remaining > 0
            && self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// A fault that fired, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredFault {
    /// Request method.
    pub method: Method,
    /// Request path.
    pub path: String,
    /// What was done, e.g. `Status(500)`.
    pub action: String,
}

/// A write request that reached the real server, with the server's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedWrite {
    /// `POST`, `PUT`, `PATCH` or `DELETE`.
    pub method: Method,
    /// Request path.
    pub path: String,
    /// Raw query string (`dryRun=All&fieldManager=burst`).
    pub query: String,
    /// `Content-Type` header.
    pub content_type: String,
    /// Body, parsed as JSON when it is JSON, else a string.
    pub body: Value,
    /// Whether `dryRun=All` was set.
    pub dry_run: bool,
    /// `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// The server's HTTP status.
    pub status: u16,
}

#[derive(Default)]
struct Rules {
    rules: Vec<Fault>,
    fired: Vec<FiredFault>,
}

impl Rules {
    fn take(&mut self, method: &Method, path: &str) -> Option<FaultAction> {
        let rule = self.rules.iter_mut().find(|r| r.matches(method, path))?;
        rule.remaining -= 1;
        let action = rule.action.clone();
        self.fired.push(FiredFault {
            method: method.clone(),
            path: path.to_owned(),
            action: format!("{action:?}"),
        });
        self.rules.retain(|r| r.remaining > 0);
        Some(action)
    }
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    admin: kube::Client,
    rules: Mutex<Rules>,
    writes: Mutex<Vec<RecordedWrite>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A proxy on `http://127.0.0.1:<free port>` in front of a [`ControlPlane`]. Stops when
/// dropped. Create it inside the runtime that uses it.
pub struct ApiProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for ApiProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiProxy")
            .field("addr", &self.addr)
            .field("upstream", &self.shared.upstream)
            .finish()
    }
}

impl ApiProxy {
    /// Starts a proxy in front of `cp`, passing everything through.
    pub async fn start(cp: &ControlPlane) -> Result<ApiProxy, String> {
        let port = free_port().map_err(|e| format!("no free port: {e}"))?;
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(|e| format!("cannot bind the API proxy: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("no local address: {e}"))?;
        let mut b = reqwest::Client::builder().no_proxy();
        for c in reqwest::Certificate::from_pem_bundle(cp.ca_pem().as_bytes())
            .map_err(|e| format!("bad CA: {e}"))?
        {
            b = b.add_root_certificate(c);
        }
        let http = b
            .build()
            .map_err(|e| format!("cannot build the proxy's client: {e}"))?;
        let shared = Arc::new(Shared {
            upstream: cp.url(),
            http,
            admin: cp.admin_client().await?,
            rules: Mutex::new(Rules::default()),
            writes: Mutex::new(Vec::new()),
        });
        let task = serve(listener, shared.clone(), handle);
        Ok(ApiProxy { addr, shared, task })
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kubeconfig pointing at the proxy (plain HTTP on loopback) with this bearer token,
    /// which the proxy passes on to the server.
    pub fn kubeconfig(&self, token: &str, namespace: &str) -> String {
        kubeconfig(&self.url(), None, token, namespace)
    }

    /// A client through the proxy with this bearer token.
    pub async fn client(&self, token: &str) -> Result<kube::Client, String> {
        client_from_kubeconfig(&self.kubeconfig(token, "default")).await
    }

    /// Adds a fault rule.
    pub fn inject(&self, fault: Fault) {
        lock(&self.shared.rules).rules.push(fault);
    }

    /// Removes all pending fault rules.
    pub fn clear_faults(&self) {
        lock(&self.shared.rules).rules.clear();
    }

    /// Rules that still have firings left.
    pub fn pending_faults(&self) -> usize {
        lock(&self.shared.rules).rules.len()
    }

    /// Faults that fired so far.
    pub fn fired(&self) -> Vec<FiredFault> {
        lock(&self.shared.rules).fired.clone()
    }

    /// Every write that reached the server (not those answered by a fault), in order.
    pub fn writes(&self) -> Vec<RecordedWrite> {
        lock(&self.shared.writes).clone()
    }

    /// Forgets the recorded writes.
    pub fn clear_writes(&self) {
        lock(&self.shared.writes).clear();
    }
}

impl Drop for ApiProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn made_up_status(code: u16) -> hyper::Response<Body> {
    let body = json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": format!("injected by the test's fault proxy: HTTP {code}"),
        "reason": if code == 503 { "ServiceUnavailable" } else if code >= 500 { "InternalError" } else { "BadRequest" },
        "code": code,
    });
    let mut r = hyper::Response::new(Body::from(body.to_string()));
    *r.status_mut() =
        http::StatusCode::from_u16(code).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    r
}

async fn handle(
    shared: Arc<Shared>,
    req: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, DropConnection> {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let action = lock(&shared.rules).take(&method, &path);
    match action {
        Some(FaultAction::Drop) => return Err(DropConnection),
        Some(FaultAction::Status(code)) => return Ok(made_up_status(code)),
        Some(FaultAction::Delay(d)) => tokio::time::sleep(d).await,
        Some(FaultAction::Before(hook)) => hook(shared.admin.clone()).await,
        None => {}
    }
    Ok(forward(&shared, req).await)
}

async fn forward(shared: &Shared, req: hyper::Request<Incoming>) -> hyper::Response<Body> {
    let (parts, body) = req.into_parts();
    let bytes = match http_body_util::Limited::new(body, MAX_BODY).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) => return proxy_error(413, &format!("request body unreadable or too large: {e}")),
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let url = format!(
        "{}{}",
        shared.upstream,
        parts.uri.path_and_query().map_or("/", |p| p.as_str())
    );
    let mut out = shared.http.request(parts.method.clone(), &url);
    for (name, value) in &parts.headers {
        if name != http::header::HOST && name != http::header::CONTENT_LENGTH {
            out = out.header(name, value);
        }
    }
    let upstream = match out.body(bytes.clone()).send().await {
        Ok(r) => r,
        Err(e) => return proxy_error(502, &format!("the API server did not answer: {e}")),
    };
    let status = upstream.status();
    if parts.method != Method::GET && parts.method != Method::HEAD {
        let content_type = parts
            .headers
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        let param = |k: &str| {
            url::form_urlencoded::parse(query.as_bytes())
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.into_owned())
        };
        lock(&shared.writes).push(RecordedWrite {
            method: parts.method.clone(),
            path: parts.uri.path().to_owned(),
            dry_run: param("dryRun").as_deref() == Some("All"),
            field_manager: param("fieldManager"),
            query,
            content_type,
            body,
            status: status.as_u16(),
        });
    }
    let mut r = hyper::Response::builder().status(status.as_u16());
    for (name, value) in upstream.headers() {
        if name != http::header::CONTENT_LENGTH && name != http::header::TRANSFER_ENCODING {
            r = r.header(name, value);
        }
    }
    let stream = upstream
        .bytes_stream()
        .map(|c| c.map_err(std::io::Error::other));
    r.body(Body::from_stream(stream))
        .unwrap_or_else(|e| proxy_error(500, &e.to_string()))
}

fn proxy_error(code: u16, message: &str) -> hyper::Response<Body> {
    let mut r = made_up_status(code);
    *r.body_mut() = Body::from(
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("test fault proxy: {message}"), "code": code})
        .to_string(),
    );
    r
}
