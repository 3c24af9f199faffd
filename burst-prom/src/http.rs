//! The HTTP client both sources share: timeouts, authentication, TLS, extra headers and a
//! cap on response size; and [`HttpClients`], the cache that lets sources with the same
//! connection settings share one `reqwest::Client`.
//!
//! Size: About 515 lines of code (one client: timeouts, auth, TLS, headers, size cap, the shared-client cache) and ~200 lines of its unit tests.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::Deserialize;

use crate::Error;

/// Requests one shared client keeps in flight to one host (scheme, host and port) at a
/// time; more wait for a slot, within their timeout. It also caps the idle connections
/// kept per host. Without it, 1,000 sources ticking together opened 1,000 connections to
/// the same metrics endpoint and kept them pooled (BENCHMARKS.md, "burstd at scale"). At
/// 32, a host answering in 10 ms still serves 3,200 requests a second.
pub const MAX_IN_FLIGHT_PER_HOST: usize = 32;

/// The token file's metadata is checked on every request (one `stat`); the token is also
/// re-read after this long when the metadata looks unchanged, in case a rotation kept the
/// size, modification time and inode.
const TOKEN_REREAD_AFTER: Duration = Duration::from_secs(60);

/// HTTP settings shared by [`crate::PrometheusSource`] and [`crate::ScrapeSource`].
///
/// TLS certificates are verified by default, against the system's roots plus `ca_file`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Longest time one request may take, connection and body included (default 5 s).
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// A file holding a bearer token, sent as `Authorization: Bearer ...`. It is re-read
    /// whenever the file changes, so rotated (projected service-account) tokens are picked up.
    pub bearer_token_file: Option<PathBuf>,
    /// HTTP basic authentication.
    pub basic_auth: Option<BasicAuth>,
    /// A PEM bundle of extra CA certificates to trust (in addition to the system's).
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate. For lab setups only: it disables TLS verification.
    pub insecure_skip_verify: bool,
    /// Headers added to every request (e.g. `X-Scope-OrgID` for Cortex/Mimir/Thanos tenants).
    pub headers: BTreeMap<String, String>,
    /// Largest response body accepted, in bytes (default 16 MiB).
    pub max_response_bytes: usize,
}

/// Credentials for HTTP basic authentication.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BasicAuth {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl std::fmt::Debug for HttpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: BTreeMap<&str, &str> = self
            .headers
            .iter()
            .map(|(k, v)| {
                let shown = if is_sensitive_header(k) {
                    "<redacted>"
                } else {
                    v.as_str()
                };
                (k.as_str(), shown)
            })
            .collect();
        f.debug_struct("HttpConfig")
            .field("timeout", &self.timeout)
            .field("bearer_token_file", &self.bearer_token_file)
            .field("basic_auth", &self.basic_auth)
            .field("ca_file", &self.ca_file)
            .field("insecure_skip_verify", &self.insecure_skip_verify)
            .field("headers", &headers)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}

/// Headers that carry credentials: never shown in `Debug` output or logs.
fn is_sensitive_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "authorization" | "proxy-authorization" | "cookie"
    ) || n.contains("token")
        || n.contains("key")
        || n.contains("secret")
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            timeout: Duration::from_secs(5),
            bearer_token_file: None,
            basic_auth: None,
            ca_file: None,
            insecure_skip_verify: false,
            headers: BTreeMap::new(),
            max_response_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Shares `reqwest::Client`s between sources whose connection settings are equal.
///
/// A `reqwest::Client` carries its TLS configuration (the system's root certificates, parsed)
/// and a connection pool: building one per source costs memory and connections with every
/// source. Sources built with the same `HttpClients` (see
/// [`PrometheusSource::with_clients`](crate::PrometheusSource::with_clients) and
/// [`ScrapeSource::with_clients`](crate::ScrapeSource::with_clients)) reuse one client for
/// each distinct set of connection settings: the timeout, the CA bundle's contents and
/// `insecure_skip_verify`. Everything that identifies the caller (bearer token file,
/// basic auth, extra headers such as `Authorization` or `X-Scope-OrgID`) and the response
/// size cap stay with each source and are added to each of its requests.
///
/// The cache keeps no client alive by itself: a client is dropped with the last source
/// using it. Cloning an `HttpClients` gives a handle to the same cache.
///
/// ```
/// use burst_prom::{HttpClients, ScrapeConfig, ScrapeSource};
///
/// let clients = HttpClients::new();
/// let config = |target: &str| ScrapeConfig {
///     targets: vec![target.to_owned()],
///     metric: "istio_requests_total".into(),
///     ..ScrapeConfig::default()
/// };
/// let a = ScrapeSource::with_clients(config("http://10.0.0.7:15090/stats/prometheus"), &clients)?;
/// let b = ScrapeSource::with_clients(config("http://10.0.0.8:15090/stats/prometheus"), &clients)?;
/// assert_eq!(clients.len(), 1); // same settings: one client, one connection pool
/// # drop((a, b));
/// # Ok::<(), burst_prom::Error>(())
/// ```
#[derive(Clone, Default)]
pub struct HttpClients {
    cache: Arc<Mutex<HashMap<ClientKey, Weak<Shared>>>>,
}

/// One `reqwest::Client` and the in-flight bound per host of everyone using it.
#[derive(Debug)]
struct Shared {
    client: reqwest::Client,
    hosts: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

impl Shared {
    /// The in-flight bound for `url`'s host (scheme, host and port).
    fn slots(&self, url: &reqwest::Url) -> Arc<tokio::sync::Semaphore> {
        let host = format!(
            "{}://{}:{}",
            url.scheme(),
            url.host_str().unwrap_or_default(),
            url.port_or_known_default().unwrap_or_default()
        );
        let mut hosts = self.hosts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(slots) = hosts.get(&host) {
            return slots.clone();
        }
        // Hosts come and go (pods); forget the ones nobody is waiting on or using (a
        // request holds its host's `Arc` while it waits and while it holds a slot).
        hosts.retain(|_, s| Arc::strong_count(s) > 1);
        let slots = Arc::new(tokio::sync::Semaphore::new(MAX_IN_FLIGHT_PER_HOST));
        hosts.insert(host, slots.clone());
        slots
    }
}

/// What a `reqwest::Client` is built from: two sources may share a client exactly when
/// these are equal. Credentials and headers are deliberately not part of it.
#[derive(Clone, PartialEq, Eq, Hash)]
struct ClientKey {
    timeout: Duration,
    /// The CA bundle's bytes rather than its path: a changed file gets a new client.
    ca_pem: Option<Vec<u8>>,
    insecure_skip_verify: bool,
}

impl std::fmt::Debug for HttpClients {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClients")
            .field("clients", &self.len())
            .finish()
    }
}

impl HttpClients {
    /// An empty cache.
    pub fn new() -> HttpClients {
        HttpClients::default()
    }

    /// How many distinct clients are in use by sources built with this cache.
    pub fn len(&self) -> usize {
        self.lock()
            .values()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    /// Whether no source built with this cache is alive.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ClientKey, Weak<Shared>>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The client for `config`'s connection settings: the one in use, or a new one.
    fn client_for(&self, config: &HttpConfig) -> Result<Arc<Shared>, Error> {
        let ca = match &config.ca_file {
            Some(path) => Some((path.as_path(), read_ca_file(path)?)),
            None => None,
        };
        let key = ClientKey {
            timeout: config.timeout,
            ca_pem: ca.as_ref().map(|(_, pem)| pem.clone()),
            insecure_skip_verify: config.insecure_skip_verify,
        };
        // Held while building, so sources set up at the same time build one client, not several.
        let mut cache = self.lock();
        if let Some(client) = cache.get(&key).and_then(Weak::upgrade) {
            return Ok(client);
        }
        let mut builder = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(MAX_IN_FLIGHT_PER_HOST)
            .user_agent(concat!("burst/", env!("CARGO_PKG_VERSION")));
        if let Some((path, pem)) = &ca {
            builder = builder.tls_certs_merge(parse_ca_bundle(path, pem)?);
        }
        if config.insecure_skip_verify {
            builder = builder.tls_danger_accept_invalid_certs(true);
        }
        let client = Arc::new(Shared {
            client: builder.build().map_err(|e| Error::Config {
                key: "http",
                message: format!(
                    "cannot build the HTTP client: {}",
                    burst_core::error_chain(&e)
                ),
            })?,
            hosts: Mutex::default(),
        });
        cache.retain(|_, w| w.strong_count() > 0);
        cache.insert(key, Arc::downgrade(&client));
        tracing::debug!(clients = cache.len(), "built an HTTP client");
        Ok(client)
    }
}

/// A configured, connection-pooling client: a shared `reqwest::Client` plus what this
/// source sends with each request.
#[derive(Debug)]
pub(crate) struct HttpClient {
    client: Arc<Shared>,
    timeout: Duration,
    /// Extra headers, added to each request unless it sets the header itself.
    headers: HeaderMap,
    token: Option<TokenFile>,
    basic: Option<BasicAuth>,
    max_response_bytes: usize,
}

/// A response that arrived completely.
#[derive(Debug)]
pub(crate) struct Body {
    pub status: reqwest::StatusCode,
    pub bytes: Vec<u8>,
}

impl HttpClient {
    /// A client for `config`, sharing the connection part with other users of `clients`.
    pub(crate) fn new(config: &HttpConfig, clients: &HttpClients) -> Result<HttpClient, Error> {
        if config.timeout.is_zero() {
            return Err(Error::config(
                "timeout",
                "0s would fail every request; give a duration such as 5s",
            ));
        }
        if config.max_response_bytes == 0 {
            return Err(Error::config(
                "max_response_bytes",
                "0 would reject every response; give a size in bytes such as 16777216",
            ));
        }
        if config.bearer_token_file.is_some() && config.basic_auth.is_some() {
            return Err(Error::config(
                "bearer_token_file",
                "set either a bearer token file or basic auth, not both",
            ));
        }
        let mut headers = header_map(&config.headers)?;
        if config.bearer_token_file.is_some() || config.basic_auth.is_some() {
            // The configured credentials win over an `Authorization` header.
            headers.remove(reqwest::header::AUTHORIZATION);
        }
        if config.insecure_skip_verify {
            tracing::warn!("TLS certificate verification is disabled (insecure_skip_verify)");
        }
        let client = clients.client_for(config)?;
        let token = match &config.bearer_token_file {
            Some(path) => {
                let token = TokenFile::new(path.clone());
                // Fail at start-up, not at the first tick, when the file is missing.
                token.current()?;
                Some(token)
            }
            None => None,
        };
        Ok(HttpClient {
            client,
            timeout: config.timeout,
            headers,
            token,
            basic: config.basic_auth.clone(),
            max_response_bytes: config.max_response_bytes,
        })
    }

    pub(crate) fn get(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.client.get(url)
    }

    pub(crate) fn post(&self, url: &str) -> reqwest::RequestBuilder {
        self.client.client.post(url)
    }

    /// Sends `request` with authentication and this source's headers, and reads the whole
    /// body (up to the size limit). At most [`MAX_IN_FLIGHT_PER_HOST`] requests of the shared
    /// client are in flight to one host; the wait for a slot counts towards the timeout.
    pub(crate) async fn send(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Body, Error> {
        tokio::time::timeout(self.timeout, self.send_in_slot(request, url))
            .await
            .unwrap_or_else(|_| {
                Err(Error::Timeout {
                    url: url.to_owned(),
                    after: self.timeout,
                })
            })
    }

    async fn send_in_slot(
        &self,
        request: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<Body, Error> {
        let request = match (&self.token, &self.basic) {
            (Some(token), _) => request.bearer_auth(token.current()?),
            (None, Some(basic)) => request.basic_auth(&basic.username, Some(&basic.password)),
            (None, None) => request,
        };
        let (client, request) = request.build_split();
        let mut request = request.map_err(|e| self.transport(url, e))?;
        let slots = self.client.slots(request.url());
        // The semaphore is never closed, so acquiring only waits.
        let _slot = slots.acquire().await.map_err(|_| Error::Connect {
            url: url.to_owned(),
            message: "the connection slots were closed".into(),
        })?;
        let set = request.headers_mut();
        for (name, value) in &self.headers {
            if !set.contains_key(name) {
                set.insert(name.clone(), value.clone());
            }
        }
        let mut response = client
            .execute(request)
            .await
            .map_err(|e| self.transport(url, e))?;
        let status = response.status();
        let limit = self.max_response_bytes;
        if response
            .content_length()
            .is_some_and(|len| len > limit as u64)
        {
            return Err(Error::TooLarge {
                url: url.to_owned(),
                limit,
            });
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(|e| self.transport(url, e))? {
            if bytes.len() + chunk.len() > limit {
                return Err(Error::TooLarge {
                    url: url.to_owned(),
                    limit,
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(Body { status, bytes })
    }

    fn transport(&self, url: &str, e: reqwest::Error) -> Error {
        if e.is_timeout() {
            Error::Timeout {
                url: url.to_owned(),
                after: self.timeout,
            }
        } else {
            // The URL is in our message already; reqwest's would repeat it with the query.
            Error::Connect {
                url: url.to_owned(),
                message: burst_core::error_chain(&e.without_url()),
            }
        }
    }
}

fn header_map(headers: &BTreeMap<String, String>) -> Result<HeaderMap, Error> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let n = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::config(
                "headers",
                format!("`{name}` is not a valid HTTP header name (letters, digits and `-`)"),
            )
        })?;
        let mut v = HeaderValue::from_str(value).map_err(|_| {
            Error::config(
                "headers",
                format!("the value of `{name}` is not a valid HTTP header value (visible ASCII, no newlines)"),
            )
        })?;
        v.set_sensitive(is_sensitive_header(name));
        map.insert(n, v);
    }
    Ok(map)
}

fn read_ca_file(path: &Path) -> Result<Vec<u8>, Error> {
    std::fs::read(path).map_err(|e| Error::CaBundle {
        path: path.to_owned(),
        message: format!("cannot read: {e}"),
    })
}

fn parse_ca_bundle(path: &Path, pem: &[u8]) -> Result<Vec<reqwest::Certificate>, Error> {
    let err = |message: String| Error::CaBundle {
        path: path.to_owned(),
        message,
    };
    let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
        err(format!(
            "not a PEM certificate bundle: {}",
            burst_core::error_chain(&e)
        ))
    })?;
    if certs.is_empty() {
        return Err(err("no `BEGIN CERTIFICATE` block found".into()));
    }
    Ok(certs)
}

/// A bearer token kept in a file, re-read when the file changes.
#[derive(Debug)]
struct TokenFile {
    path: PathBuf,
    cached: Mutex<Option<CachedToken>>,
}

#[derive(Clone)]
struct CachedToken {
    stamp: FileStamp,
    token: String,
    read_at: Instant,
}

impl std::fmt::Debug for CachedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedToken")
            .field("stamp", &self.stamp)
            .field("token", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct FileStamp {
    modified: Option<SystemTime>,
    len: u64,
    inode: u64,
}

impl FileStamp {
    fn of(meta: &std::fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(meta);
        #[cfg(not(unix))]
        let inode = 0;
        FileStamp {
            modified: meta.modified().ok(),
            len: meta.len(),
            inode,
        }
    }
}

impl TokenFile {
    fn new(path: PathBuf) -> TokenFile {
        TokenFile {
            path,
            cached: Mutex::new(None),
        }
    }

    fn current(&self) -> Result<String, Error> {
        let err = |message: String| Error::TokenFile {
            path: self.path.clone(),
            message,
        };
        // `metadata` follows symlinks, so the `..data` swap of projected volumes shows up
        // as a new inode.
        let meta = std::fs::metadata(&self.path).map_err(|e| err(format!("cannot read: {e}")))?;
        let stamp = FileStamp::of(&meta);
        let mut cached = self.cached.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = cached.as_ref()
            && c.stamp == stamp
            && c.read_at.elapsed() < TOKEN_REREAD_AFTER
        {
            return Ok(c.token.clone());
        }
        let text =
            std::fs::read_to_string(&self.path).map_err(|e| err(format!("cannot read: {e}")))?;
        let token = text.trim().to_owned();
        if token.is_empty() {
            return Err(err("the file is empty".into()));
        }
        if HeaderValue::from_str(&format!("Bearer {token}")).is_err() {
            return Err(err(
                "the token holds characters not allowed in an HTTP header".into(),
            ));
        }
        if cached.is_some() {
            tracing::debug!(path = %self.path.display(), "bearer token file changed; re-read");
        }
        *cached = Some(CachedToken {
            stamp,
            token: token.clone(),
            read_at: Instant::now(),
        });
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback HTTP/1.1 server that answers every request with `ok` after `delay`:
    /// its `/metrics` URL, its connections and the most requests it held at once.
    async fn counting_server(
        delay: Duration,
    ) -> (
        String,
        Arc<std::sync::atomic::AtomicUsize>,
        Arc<std::sync::atomic::AtomicUsize>,
    ) {
        let s = burst_testkit::serve::CountingServer::start(delay, "text/plain", "ok")
            .await
            .unwrap();
        (format!("{}/metrics", s.base), s.connections, s.most)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_to_one_host_are_bounded_in_flight_and_in_connections() {
        use std::sync::atomic::Ordering;
        let (url, connections, most) = counting_server(Duration::from_millis(20)).await;
        let clients = HttpClients::new();
        let client = Arc::new(HttpClient::new(&HttpConfig::default(), &clients).unwrap());
        let sends = (0..200).map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.send(client.get(&url), &url).await })
        });
        for send in futures::future::join_all(sends).await {
            let body = send.unwrap().unwrap();
            assert_eq!(body.bytes, b"ok");
        }
        let (most, connections) = (
            most.load(Ordering::SeqCst),
            connections.load(Ordering::SeqCst),
        );
        assert!(
            (2..=MAX_IN_FLIGHT_PER_HOST).contains(&most),
            "{most} requests in flight at once"
        );
        assert!(
            connections <= MAX_IN_FLIGHT_PER_HOST,
            "{connections} connections for one host"
        );
    }

    #[tokio::test]
    async fn waiting_for_a_slot_counts_towards_the_timeout() {
        let (url, _, _) = counting_server(Duration::from_secs(30)).await;
        let config = HttpConfig {
            timeout: Duration::from_millis(300),
            ..HttpConfig::default()
        };
        let client = Arc::new(HttpClient::new(&config, &HttpClients::new()).unwrap());
        // One more than the slots: the last one waits, and times out like the others.
        let sends = (0..=MAX_IN_FLIGHT_PER_HOST).map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move { client.send(client.get(&url), &url).await })
        });
        for send in futures::future::join_all(sends).await {
            let e = send.unwrap().unwrap_err();
            assert_eq!(e.kind(), "timeout", "{e}");
        }
    }

    #[test]
    fn token_file_is_reread_when_it_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let t = TokenFile::new(path.clone());
        assert_eq!(t.current().unwrap(), "first");
        // Rotation by atomic rename, as kubelet does: a new inode.
        let tmp = dir.path().join("token.tmp");
        std::fs::write(&tmp, "second-token").unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        assert_eq!(t.current().unwrap(), "second-token");
    }

    #[test]
    fn empty_or_missing_token_file_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        let e = TokenFile::new(path.clone()).current().unwrap_err();
        assert_eq!(e.kind(), "token_file");
        assert!(e.to_string().contains(&path.display().to_string()), "{e}");
        std::fs::write(&path, "  \n").unwrap();
        let e = TokenFile::new(path).current().unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
    }

    #[test]
    fn bad_settings_are_rejected_with_the_key() {
        let mut c = HttpConfig::default();
        c.headers.insert("bad header".into(), "x".into());
        let e = HttpClient::new(&c, &HttpClients::new()).unwrap_err();
        assert!(e.to_string().contains("`bad header`"), "{e}");

        let c = HttpConfig {
            timeout: Duration::ZERO,
            ..HttpConfig::default()
        };
        assert!(matches!(
            HttpClient::new(&c, &HttpClients::new()),
            Err(Error::Config { key: "timeout", .. })
        ));

        let dir = tempfile::tempdir().unwrap();
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate").unwrap();
        let c = HttpConfig {
            ca_file: Some(ca),
            ..HttpConfig::default()
        };
        let e = HttpClient::new(&c, &HttpClients::new()).unwrap_err();
        assert_eq!(e.kind(), "tls_config");
        assert!(e.to_string().contains("ca.pem"), "{e}");
    }

    fn ca_file(dir: &tempfile::TempDir, name: &str) -> PathBuf {
        let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/ca.pem");
        let path = dir.path().join(name);
        std::fs::copy(pem, &path).unwrap();
        path
    }

    #[test]
    fn equal_connection_settings_share_one_client() {
        let clients = HttpClients::new();
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "t").unwrap();
        let a = HttpClient::new(&HttpConfig::default(), &clients).unwrap();
        // Credentials, headers and the size cap are per source: not a reason for a new client.
        let b = HttpClient::new(
            &HttpConfig {
                bearer_token_file: Some(token),
                headers: [("X-Scope-OrgID".to_string(), "tenant-b".to_string())].into(),
                max_response_bytes: 1024,
                ..HttpConfig::default()
            },
            &clients,
        )
        .unwrap();
        let c = HttpClient::new(
            &HttpConfig {
                basic_auth: Some(BasicAuth {
                    username: "u".into(),
                    password: "p".into(),
                }),
                ..HttpConfig::default()
            },
            &clients,
        )
        .unwrap();
        assert!(Arc::ptr_eq(&a.client, &b.client));
        assert!(Arc::ptr_eq(&a.client, &c.client));
        assert_eq!(clients.len(), 1);
        // A clone of the cache is the same cache.
        let d = HttpClient::new(&HttpConfig::default(), &clients.clone()).unwrap();
        assert!(Arc::ptr_eq(&a.client, &d.client));
    }

    #[test]
    fn different_tls_or_timeout_settings_get_their_own_client() {
        let clients = HttpClients::new();
        let dir = tempfile::tempdir().unwrap();
        let plain = HttpClient::new(&HttpConfig::default(), &clients).unwrap();
        let with_ca = HttpConfig {
            ca_file: Some(ca_file(&dir, "ca.pem")),
            ..HttpConfig::default()
        };
        let ca = HttpClient::new(&with_ca, &clients).unwrap();
        let insecure = HttpClient::new(
            &HttpConfig {
                insecure_skip_verify: true,
                ..HttpConfig::default()
            },
            &clients,
        )
        .unwrap();
        let slow = HttpClient::new(
            &HttpConfig {
                timeout: Duration::from_secs(30),
                ..HttpConfig::default()
            },
            &clients,
        )
        .unwrap();
        for (i, x) in [&plain, &ca, &insecure, &slow].iter().enumerate() {
            for y in [&plain, &ca, &insecure, &slow].iter().skip(i + 1) {
                assert!(!Arc::ptr_eq(&x.client, &y.client));
            }
        }
        assert_eq!(clients.len(), 4);
        // The same bundle under another path is the same trust: shared.
        let same_bundle = HttpConfig {
            ca_file: Some(ca_file(&dir, "copy.pem")),
            ..HttpConfig::default()
        };
        let ca2 = HttpClient::new(&same_bundle, &clients).unwrap();
        assert!(Arc::ptr_eq(&ca.client, &ca2.client));
        // A changed bundle is a new trust: not shared, and a bad one is still an error.
        let mut pem = std::fs::read(with_ca.ca_file.as_ref().unwrap()).unwrap();
        pem.extend_from_slice(b"\n");
        std::fs::write(with_ca.ca_file.as_ref().unwrap(), &pem).unwrap();
        let ca3 = HttpClient::new(&with_ca, &clients).unwrap();
        assert!(!Arc::ptr_eq(&ca.client, &ca3.client));
        std::fs::write(with_ca.ca_file.as_ref().unwrap(), "garbage").unwrap();
        let e = HttpClient::new(&with_ca, &clients).unwrap_err();
        assert_eq!(e.kind(), "tls_config");
    }

    #[test]
    fn clients_are_dropped_with_their_last_source() {
        let clients = HttpClients::new();
        assert!(clients.is_empty());
        let a = HttpClient::new(&HttpConfig::default(), &clients).unwrap();
        let b = HttpClient::new(&HttpConfig::default(), &clients).unwrap();
        drop(a);
        assert_eq!(clients.len(), 1);
        drop(b);
        assert!(clients.is_empty());
        // The next source builds a fresh one, and the dead entry is pruned.
        let _c = HttpClient::new(&HttpConfig::default(), &clients).unwrap();
        assert_eq!(clients.len(), 1);
        assert_eq!(clients.lock().len(), 1);
    }

    #[test]
    fn debug_output_hides_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let token = dir.path().join("token");
        std::fs::write(&token, "file-token-value").unwrap();
        let clients = HttpClients::new();
        let c = HttpClient::new(
            &HttpConfig {
                bearer_token_file: Some(token),
                headers: [("X-Api-Key".to_string(), "header-secret-value".to_string())].into(),
                ..HttpConfig::default()
            },
            &clients,
        )
        .unwrap();
        let shown = format!("{c:?} {clients:?}");
        assert!(!shown.contains("file-token-value"), "{shown}");
        assert!(!shown.contains("header-secret-value"), "{shown}");
        assert!(format!("{clients:?}").contains("clients: 1"), "{clients:?}");
    }

    #[test]
    fn basic_auth_debug_hides_the_password() {
        let b = BasicAuth {
            username: "u".into(),
            password: "hunter2".into(),
        };
        assert!(!format!("{b:?}").contains("hunter2"));
    }

    #[test]
    fn config_deserialises_with_humantime() {
        let c: HttpConfig =
            serde_json::from_str(r#"{"timeout":"250ms","headers":{"X-Scope-OrgID":"t1"}}"#)
                .unwrap();
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.headers["X-Scope-OrgID"], "t1");
        assert!(!c.insecure_skip_verify);
    }
}
