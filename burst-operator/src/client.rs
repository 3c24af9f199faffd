//! burstd's Kubernetes clients: with `--api-http2`, every request multiplexed over one
//! HTTP/2 connection, and watches on their own.
//!
//! kube's default client speaks HTTP/1.1, which carries one request per connection. With
//! 1,000 control loops whose first ticks (status patches, Events, route writes) go out
//! together, that opened one TLS connection per request in flight, and the idle pool kept
//! them (BENCHMARKS.md, "burstd at scale"). kube-apiserver speaks HTTP/2 on its TLS port,
//! so the request client offers only `h2` in ALPN and sends every request as a stream on
//! one connection (the server allows 100 streams per connection; more wait in the
//! client's queue).
//!
//! The layers above the connection are kube's own: the base URI, the credentials
//! (including token refresh) and extra headers come from [`kube::client::ConfigExt`], so
//! authentication is exactly what [`kube::Client::try_from`] would do. A dead connection
//! is found by HTTP/2 pings (every [`PING_INTERVAL`], failing after [`PING_TIMEOUT`]),
//! after which the next request dials a new one.
//!
//! Watches do not share that connection: they get kube's HTTP/1.1 client (one connection
//! per watch, a handful in all). On the shared HTTP/2 connection, at 1,000 policies,
//! watch events queued behind the writes they report: the route cache saw burstd's own
//! writes late, read with GETs, and tick p99 rose from 0.12 s to 1.7 s.
//!
//! HTTP/2 is opt-in: on a CPU-starved machine earlier builds, without the bound below,
//! lost many more requests to timeouts over it than over HTTP/1.1. Without it, and where
//! it cannot be used (a plain-HTTP server address, or a proxy in the kubeconfig),
//! requests and watches each get kube's own HTTP/1.1 client, and [`clients`] logs why.
//!
//! Either way, at most [`ClientOptions::max_in_flight`] requests are in flight at once,
//! and as many status writes and Events besides (status writes were nine in ten of the
//! API requests at 1,000 policies, and slow ones must not hold up route writes); the
//! rest wait in the client, in order, and the wait counts towards each caller's own
//! timeout. Over HTTP/1.1 this bounds the connections (and their TLS and HTTP buffers,
//! about 60 KiB each) to that number, where 1,000 loops whose first ticks go out
//! together used to open one connection per request in flight and keep them in the idle
//! pool. Watches are not counted (they last for minutes), nor is the Lease of leader
//! election (a renewal must not queue behind the loops' writes): both use
//! [`KubeClients::watches`].

use std::num::NonZeroUsize;
use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use tower::limit::ConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder};

/// How often an HTTP/2 ping checks the connection, idle or not.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection counts as dead.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Default of [`ClientOptions::max_in_flight`]: the same bound as the metric scrapes'
/// ([`burst_prom::MAX_IN_FLIGHT_PER_HOST`]), far below kube-apiserver's own limits (400
/// reads and 200 writes in flight by default).
pub const DEFAULT_MAX_IN_FLIGHT: NonZeroUsize = NonZeroUsize::new(32).expect("32 is not zero");

/// How burstd talks to the API server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientOptions {
    /// Requests over one multiplexed HTTP/2 connection (watches keep their own); off:
    /// kube's HTTP/1.1 client.
    pub http2: bool,
    /// Most requests (not watches) in flight at once; the rest queue in the client.
    pub max_in_flight: NonZeroUsize,
}

impl Default for ClientOptions {
    fn default() -> ClientOptions {
        ClientOptions {
            http2: false,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
        }
    }
}

/// Which protocol [`clients`] chose for requests, and why when it is not HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// Every request on one multiplexed HTTP/2 connection; watches on their own.
    Http2,
    /// kube's default HTTP/1.1 client for requests and watches, for the reason given.
    Http1(&'static str),
}

/// burstd's three Kubernetes clients: the loops' own requests, their status writes and
/// Events (each bounded on its own), and long-running watches with the Lease (unbounded).
#[derive(Clone)]
pub struct KubeClients {
    /// The loops' reads and writes of routes, Secrets and scalers: at most
    /// [`ClientOptions::max_in_flight`] at once.
    pub requests: kube::Client,
    /// Status writes and Events: at most [`ClientOptions::max_in_flight`] at once, apart
    /// from `requests`, so that a backlog of status writes never delays a route write.
    pub status: kube::Client,
    /// Watches (BurstPolicies, routes, EndpointSlices) and the leader election Lease:
    /// kube's HTTP/1.1 client, not bounded, so that a Lease renewal never waits behind
    /// the loops' requests.
    pub watches: kube::Client,
}

impl From<kube::Client> for KubeClients {
    /// One client for both (HTTP/1.1, tests, embedders).
    fn from(client: kube::Client) -> KubeClients {
        KubeClients {
            requests: client.clone(),
            status: client.clone(),
            watches: client,
        }
    }
}

/// The clients for `config`: with `options.http2` and a server address that allows it,
/// requests over one HTTP/2 connection; otherwise on kube's HTTP/1.1 client. Watches
/// always get a kube HTTP/1.1 client of their own, and requests are bounded by
/// `options.max_in_flight` (see the module doc).
pub fn clients(
    config: kube::Config,
    options: ClientOptions,
) -> Result<(KubeClients, Protocol), kube::Error> {
    let reason = if options.http2 {
        http1_reason(&config)
    } else {
        Some("--api-http2 is off")
    };
    let max_in_flight = options.max_in_flight;
    let bounded = |config: kube::Config| -> Result<kube::Client, kube::Error> {
        let limit = ConcurrencyLimitLayer::new(max_in_flight.get());
        match reason {
            Some(_) => Ok(kube::client::ClientBuilder::try_from(config)?
                .with_layer(&limit)
                .build()),
            None => http2_client(config, limit),
        }
    };
    let clients = KubeClients {
        requests: bounded(config.clone())?,
        status: bounded(config.clone())?,
        watches: kube::Client::try_from(config)?,
    };
    let protocol = match reason {
        Some(reason) => {
            tracing::info!(reason, max_in_flight, "Kubernetes requests use HTTP/1.1");
            Protocol::Http1(reason)
        }
        None => {
            tracing::debug!(max_in_flight, "Kubernetes requests use HTTP/2");
            Protocol::Http2
        }
    };
    Ok((clients, protocol))
}

/// A client sending every request over one HTTP/2 connection to an https server.
fn http2_client(
    config: kube::Config,
    limit: ConcurrencyLimitLayer,
) -> Result<kube::Client, kube::Error> {
    install_crypto_provider();
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    // `enable_http2` below offers `h2` (only) in ALPN.
    let tls = config.rustls_client_config()?;
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_only();
    let builder = match &config.tls_server_name {
        Some(name) => {
            let name = rustls::pki_types::ServerName::try_from(name.clone()).map_err(|e| {
                kube::Error::RustlsTls(kube::client::RustlsTlsError::InvalidServerName(e))
            })?;
            builder.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    let https = builder.enable_http2().wrap_connector(http);
    let hyper = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .timer(TokioTimer::new())
        .pool_timer(TokioTimer::new())
        .http2_keep_alive_interval(PING_INTERVAL)
        .http2_keep_alive_timeout(PING_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build::<_, Body>(https);
    let service = ServiceBuilder::new()
        .layer(limit)
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(hyper);
    Ok(kube::Client::new(service, config.default_namespace))
}

/// Why `config` needs HTTP/1.1, if it does.
fn http1_reason(config: &kube::Config) -> Option<&'static str> {
    if config.cluster_url.scheme_str() != Some("https") {
        return Some("the server address is not https (HTTP/2 is negotiated over TLS)");
    }
    if config.proxy_url.is_some() {
        return Some("the kubeconfig names a proxy");
    }
    None
}

/// rustls needs a process-wide crypto provider; kube installs the same one when it
/// builds its own client.
fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one in between, which is as good.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::atomic::Ordering;

    fn config(url: &str) -> kube::Config {
        kube::Config::new(url.parse().expect("a URL"))
    }

    /// Sends `n` GETs at once on `client` and checks that every one was answered.
    async fn send_together(client: &kube::Client, n: usize) {
        let sends = (0..n).map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                let request = http::Request::get(format!("/api/v1/namespaces/ns{i}"))
                    .body(Vec::new())
                    .unwrap();
                client.request_text(request).await
            })
        });
        for send in futures::future::join_all(sends).await {
            assert_eq!(send.unwrap().unwrap(), "{}");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_are_bounded_in_flight_and_in_connections_and_watches_are_not() {
        let server = burst_testkit::serve::CountingServer::start(
            Duration::from_millis(50),
            "application/json",
            "{}",
        )
        .await
        .unwrap();
        let (url, connections, most) = (server.base, server.connections, server.most);
        let options = ClientOptions {
            http2: false,
            max_in_flight: NonZeroUsize::new(4).unwrap(),
        };
        let (clients, _) = clients(config(&url), options).expect("clients");
        send_together(&clients.requests, 40).await;
        let (most_seen, accepted) = (
            most.load(Ordering::SeqCst),
            connections.load(Ordering::SeqCst),
        );
        assert!(
            (2..=4).contains(&most_seen),
            "{most_seen} requests in flight at once"
        );
        // A connection whose answer is still being read when the next request starts may
        // add one at a time; without the bound there would be one per request (40).
        assert!(accepted <= 8, "{accepted} connections for 40 requests");

        // The Lease and the watches go on their own client, which does not wait.
        most.store(0, Ordering::SeqCst);
        send_together(&clients.watches, 12).await;
        let most_seen = most.load(Ordering::SeqCst);
        assert!(
            most_seen > 4,
            "only {most_seen} unbounded requests in flight at once"
        );
    }

    #[tokio::test]
    async fn https_servers_get_http2_when_asked_and_the_rest_http1_with_a_reason() {
        let h2 = ClientOptions {
            http2: true,
            ..ClientOptions::default()
        };
        let (_, p) = clients(config("https://127.0.0.1:6443"), h2).expect("clients");
        assert_eq!(p, Protocol::Http2);
        let (_, p) =
            clients(config("https://127.0.0.1:6443"), ClientOptions::default()).expect("clients");
        assert!(
            matches!(p, Protocol::Http1(r) if r.contains("--api-http2")),
            "{p:?}"
        );
        let (_, p) = clients(config("http://127.0.0.1:8080"), h2).expect("clients");
        assert!(
            matches!(p, Protocol::Http1(r) if r.contains("not https")),
            "{p:?}"
        );
        let mut proxied = config("https://127.0.0.1:6443");
        proxied.proxy_url = Some("http://127.0.0.1:3128".parse().expect("a URL"));
        // kube's own client then handles the proxy, or says which feature it would need.
        match clients(proxied, h2) {
            Ok((_, p)) => assert!(
                matches!(p, Protocol::Http1(r) if r.contains("proxy")),
                "{p:?}"
            ),
            Err(e) => assert!(e.to_string().contains("proxy"), "{e}"),
        }
    }
}
