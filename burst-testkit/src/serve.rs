//! A loopback HTTP/1 server whose handler may drop a connection without answering, for the
//! fault proxies in front of real servers.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// The error a handler returns to close the connection without an answer.
#[derive(Debug)]
pub struct DropConnection;

impl std::fmt::Display for DropConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for DropConnection {}

/// Serves every connection `listener` accepts with `handle(state, request)` until the
/// returned task is aborted.
pub fn serve<S, F, Fut>(listener: TcpListener, state: Arc<S>, handle: F) -> JoinHandle<()>
where
    S: Send + Sync + 'static,
    F: Fn(Arc<S>, hyper::Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<hyper::Response<Body>, DropConnection>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let Ok((stream, _)) = accepted else {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let state = state.clone();
                    let handle = handle.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |req| {
                            handle(state.clone(), req)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    });
                }
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    })
}

/// A loopback HTTP/1.1 server that holds every request for a fixed delay and answers it
/// with a fixed body, counting the connections it accepted and the most requests it held
/// at once: what a client's bound on requests in flight and on connections is tested
/// against (a real server cannot say how many of one client's requests it held at an
/// instant).
#[derive(Debug, Clone)]
pub struct CountingServer {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// Connections accepted so far.
    pub connections: Arc<std::sync::atomic::AtomicUsize>,
    /// The most requests held at once so far (the test may reset it).
    pub most: Arc<std::sync::atomic::AtomicUsize>,
}

impl CountingServer {
    /// Starts the server; every answer is `200` with `content_type` and `body`.
    pub async fn start(
        delay: Duration,
        content_type: &'static str,
        body: &'static str,
    ) -> std::io::Result<CountingServer> {
        use std::sync::atomic::{AtomicUsize, Ordering};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let base = format!("http://{}", listener.local_addr()?);
        let connections = Arc::new(AtomicUsize::new(0));
        let (active, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        let answer: Arc<[u8]> = answer.into_bytes().into();
        let (c, m) = (connections.clone(), most.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                c.fetch_add(1, Ordering::SeqCst);
                let (active, most, answer) = (active.clone(), m.clone(), answer.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 1024];
                    loop {
                        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                            match socket.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                        }
                        buf.clear();
                        let now = active.fetch_add(1, Ordering::SeqCst) + 1;
                        most.fetch_max(now, Ordering::SeqCst);
                        tokio::time::sleep(delay).await;
                        active.fetch_sub(1, Ordering::SeqCst);
                        if socket.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Ok(CountingServer {
            base,
            connections,
            most,
        })
    }
}
