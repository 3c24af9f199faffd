//! burstd's Kubernetes client: every request multiplexed over one HTTP/2 connection.
//!
//! kube's default client speaks HTTP/1.1, which carries one request per connection. With
//! 1,000 control loops whose first ticks (status patches, Events, route writes) go out
//! together, that opened one TLS connection per request in flight, about 2,600 in all, and
//! the idle pool kept them: most of burstd's resident memory (BENCHMARKS.md, "burstd at
//! scale"). kube-apiserver speaks HTTP/2 on its TLS port, so this client offers only `h2`
//! in ALPN and sends every request, watches included, as a stream on one connection
//! (the server allows many streams per connection; more wait in the client's queue).
//!
//! The layers above the connection are kube's own: the base URI, the credentials
//! (including token refresh) and extra headers come from [`kube::client::ConfigExt`], so
//! authentication is exactly what [`kube::Client::try_from`] would do. A dead connection
//! is found by HTTP/2 pings (every [`PING_INTERVAL`], failing after [`PING_TIMEOUT`]),
//! after which the next request dials a new one.
//!
//! Watches do not share that connection: [`clients`] gives them kube's HTTP/1.1 client
//! (one connection per watch, a handful in all). On the shared HTTP/2 connection, at
//! 1,000 policies, watch events queued behind the writes they report: the route cache
//! saw burstd's own writes late, read with GETs, and tick p99 rose from 0.12 s to 1.7 s.
//!
//! Where HTTP/2 cannot be used (a plain-HTTP server address, or a proxy in the
//! kubeconfig), the client falls back to kube's default HTTP/1.1 client and logs why.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::{Body, ConfigExt};
use tower::{BoxError, ServiceBuilder};

/// How often an HTTP/2 ping checks the connection, idle or not.
pub const PING_INTERVAL: Duration = Duration::from_secs(20);
/// How long a ping may go unanswered before the connection counts as dead.
pub const PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Which protocol [`client`] chose, and why when it is not HTTP/2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protocol {
    /// Every request on one multiplexed HTTP/2 connection.
    Http2,
    /// kube's default HTTP/1.1 client, for the reason given.
    Http1(&'static str),
}

/// burstd's two Kubernetes clients: requests (reads and writes) and long-running watches.
#[derive(Clone)]
pub struct KubeClients {
    /// Reads, writes, Events and the Lease: HTTP/2 where possible ([`client`]).
    pub requests: kube::Client,
    /// Watches (BurstPolicies, routes, EndpointSlices): kube's HTTP/1.1 client.
    pub watches: kube::Client,
}

impl From<kube::Client> for KubeClients {
    /// One client for both (tests, embedders).
    fn from(client: kube::Client) -> KubeClients {
        KubeClients {
            requests: client.clone(),
            watches: client,
        }
    }
}

/// The request client ([`client`]) and a watch client for `config`.
pub fn clients(config: kube::Config) -> Result<(KubeClients, Protocol), kube::Error> {
    let watches = kube::Client::try_from(config.clone())?;
    let (requests, protocol) = client(config)?;
    Ok((KubeClients { requests, watches }, protocol))
}

/// A client for `config`: HTTP/2 where the server address allows it (see the module doc).
pub fn client(config: kube::Config) -> Result<(kube::Client, Protocol), kube::Error> {
    if let Some(reason) = http1_reason(&config) {
        tracing::info!(reason, "Kubernetes client uses HTTP/1.1");
        return Ok((kube::Client::try_from(config)?, Protocol::Http1(reason)));
    }
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
    tracing::debug!("Kubernetes client uses HTTP/2");
    Ok((
        kube::Client::new(service, config.default_namespace),
        Protocol::Http2,
    ))
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
    async fn https_servers_get_http2_and_the_rest_http1_with_a_reason() {
        let (_, p) = client(config("https://127.0.0.1:6443")).expect("a client");
        assert_eq!(p, Protocol::Http2);
        let (_, p) = client(config("http://127.0.0.1:8080")).expect("a client");
        assert!(
            matches!(p, Protocol::Http1(r) if r.contains("not https")),
            "{p:?}"
        );
        let mut proxied = config("https://127.0.0.1:6443");
        proxied.proxy_url = Some("http://127.0.0.1:3128".parse().expect("a URL"));
        // kube's own client then handles the proxy, or says which feature it would need.
        match client(proxied) {
            Ok((_, p)) => assert!(
                matches!(p, Protocol::Http1(r) if r.contains("proxy")),
                "{p:?}"
            ),
            Err(e) => assert!(e.to_string().contains("proxy"), "{e}"),
        }
    }
}
