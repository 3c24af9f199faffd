//! What several fault-suite test files share.
#![allow(dead_code)]

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

/// A router served on a free loopback port (with the project's HTTP server and its
/// limits) until dropped.
pub struct Served {
    /// Where it listens.
    pub addr: SocketAddr,
    stop: CancellationToken,
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Serves `router` through `burst_hashr::http::serve` on 127.0.0.1 until the result is
/// dropped.
pub async fn serve(router: axum::Router) -> Served {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("a bound address");
    let stop = CancellationToken::new();
    let signal = stop.clone().cancelled_owned();
    tokio::spawn(async move {
        let _ = burst_hashr::http::serve(listener, router, signal).await;
    });
    Served { addr, stop }
}
