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
//! HTTP/2 is opt-in: on a CPU-starved machine it gave request timeouts that HTTP/1.1 did
//! not. Without it, and where it cannot be used (a plain-HTTP server address, or a proxy
//! in the kubeconfig), one kube HTTP/1.1 client serves requests and watches, and
//! [`clients`] logs why.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use tower::{BoxError, ServiceBuilder};

/// How often an HTTP/2 ping checks the connection, idle or not.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection counts as dead.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Which protocol [`clients`] chose for requests, and why when it is not HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// Every request on one multiplexed HTTP/2 connection; watches on their own.
    Http2,
    /// kube's default HTTP/1.1 client for requests and watches, for the reason given.
    Http1(&'static str),
}

/// burstd's two Kubernetes clients: requests (reads and writes) and long-running watches.
#[derive(Clone)]
pub struct KubeClients {
    /// Reads, writes, Events and the Lease.
    pub requests: kube::Client,
    /// Watches (BurstPolicies, routes, EndpointSlices): kube's HTTP/1.1 client.
    pub watches: kube::Client,
}

impl From<kube::Client> for KubeClients {
    /// One client for both (HTTP/1.1, tests, embedders).
    fn from(client: kube::Client) -> KubeClients {
        KubeClients {
            requests: client.clone(),
            watches: client,
        }
    }
}

/// The clients for `config`: with `http2` and a server address that allows it, requests
/// over one HTTP/2 connection and watches on kube's HTTP/1.1 client; otherwise one
/// HTTP/1.1 client for both (see the module doc).
pub fn clients(config: kube::Config, http2: bool) -> Result<(KubeClients, Protocol), kube::Error> {
    let reason = if http2 {
        http1_reason(&config)
    } else {
        Some("--api-http2 is off")
    };
    if let Some(reason) = reason {
        tracing::info!(reason, "Kubernetes client uses HTTP/1.1");
        let client = kube::Client::try_from(config)?;
        return Ok((client.into(), Protocol::Http1(reason)));
    }
    let watches = kube::Client::try_from(config.clone())?;
    let requests = http2_client(config)?;
    tracing::debug!("Kubernetes requests use HTTP/2");
    Ok((KubeClients { requests, watches }, Protocol::Http2))
}

/// A client sending every request over one HTTP/2 connection to an https server.
fn http2_client(config: kube::Config) -> Result<kube::Client, kube::Error> {
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

    fn config(url: &str) -> kube::Config {
        kube::Config::new(url.parse().expect("a URL"))
    }

    #[tokio::test]
    async fn https_servers_get_http2_when_asked_and_the_rest_http1_with_a_reason() {
        let (_, p) = clients(config("https://127.0.0.1:6443"), true).expect("clients");
        assert_eq!(p, Protocol::Http2);
        let (_, p) = clients(config("https://127.0.0.1:6443"), false).expect("clients");
        assert!(
            matches!(p, Protocol::Http1(r) if r.contains("--api-http2")),
            "{p:?}"
        );
        let (_, p) = clients(config("http://127.0.0.1:8080"), true).expect("clients");
        assert!(
            matches!(p, Protocol::Http1(r) if r.contains("not https")),
            "{p:?}"
        );
        let mut proxied = config("https://127.0.0.1:6443");
        proxied.proxy_url = Some("http://127.0.0.1:3128".parse().expect("a URL"));
        // kube's own client then handles the proxy, or says which feature it would need.
        match clients(proxied, true) {
            Ok((_, p)) => assert!(
                matches!(p, Protocol::Http1(r) if r.contains("proxy")),
                "{p:?}"
            ),
            Err(e) => assert!(e.to_string().contains("proxy"), "{e}"),
        }
    }
}
