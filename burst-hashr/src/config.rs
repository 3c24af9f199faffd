//! Configuration from environment variables, as the original containers take it.
//!
//! | variable | worker | frontend | default |
//! |---|---|---|---|
//! | `PORT` | yes | yes | 8081 (worker), 8080 (frontend) |
//! | `REDIS_URL` | yes | yes | unset: in-process pub/sub |
//! | `PREFIX` | yes | | empty |
//! | `BODY_LIMIT_BYTES` | yes | | 65536 |
//! | `PROCESSOR_URL` | | yes | `http://127.0.0.1:8081/` |
//! | `MAX_FREQUENCY` | | yes | 5000 |
//! | `CONCURRENCY` | | yes | 256 |
//!
//! `REDIS_URL` accepts `host:port` (as the original did), a bare `host` (port 6379) and
//! `redis://` URLs.

use url::Url;

use crate::Error;

/// Default request body limit of the worker (64 KiB).
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;
/// Default highest frequency the frontend accepts, in requests per second.
pub const DEFAULT_MAX_FREQUENCY: f64 = 5000.0;
/// Default cap on requests the load generator keeps in flight.
pub const DEFAULT_CONCURRENCY: usize = 256;

/// Worker settings.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerEnv {
    /// TCP port to listen on.
    pub port: u16,
    /// Normalised `redis://` URL, or `None` for the in-process bus.
    pub redis_url: Option<String>,
    /// Prepended to every published hash (`bursty-` in the burst cluster).
    pub prefix: String,
    /// Largest accepted request body in bytes.
    pub body_limit: usize,
}

/// Frontend settings.
#[derive(Debug, Clone, PartialEq)]
pub struct FrontendEnv {
    /// TCP port to listen on.
    pub port: u16,
    /// Where the load generator posts `{"str": ...}`.
    pub processor_url: Url,
    /// Normalised `redis://` URL, or `None` for the in-process bus.
    pub redis_url: Option<String>,
    /// Highest accepted frequency (requests per second).
    pub max_frequency: f64,
    /// Cap on requests in flight.
    pub concurrency: usize,
}

impl WorkerEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        Ok(WorkerEnv {
            port: port(lookup("PORT"), 8081)?,
            redis_url: optional_redis_url(lookup("REDIS_URL"))?,
            prefix: lookup("PREFIX").unwrap_or_default(),
            body_limit: positive(
                "BODY_LIMIT_BYTES",
                lookup("BODY_LIMIT_BYTES"),
                DEFAULT_BODY_LIMIT,
            )?,
        })
    }
}

impl FrontendEnv {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Reads settings through `lookup` (for tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let processor = lookup("PROCESSOR_URL").unwrap_or_else(|| "http://127.0.0.1:8081/".into());
        let max_frequency = match lookup("MAX_FREQUENCY") {
            None => DEFAULT_MAX_FREQUENCY,
            Some(v) => match v.trim().parse::<f64>() {
                Ok(f) if f.is_finite() && f > 0.0 => f,
                _ => {
                    return Err(Error::config(
                        "MAX_FREQUENCY",
                        v,
                        "expected a positive number of requests per second, e.g. 5000",
                    ));
                }
            },
        };
        Ok(FrontendEnv {
            port: port(lookup("PORT"), 8080)?,
            processor_url: http_url("PROCESSOR_URL", &processor)?,
            redis_url: optional_redis_url(lookup("REDIS_URL"))?,
            max_frequency,
            concurrency: positive("CONCURRENCY", lookup("CONCURRENCY"), DEFAULT_CONCURRENCY)?,
        })
    }
}

/// Normalises a Redis address: `host:port`, `host` or a `redis://` URL become a `redis://` URL.
///
/// ```
/// use burst_hashr::config::redis_url;
/// assert_eq!(redis_url("redis-cache-service:6379")?, "redis://redis-cache-service:6379/");
/// assert_eq!(redis_url("localhost")?, "redis://localhost:6379/");
/// assert_eq!(redis_url("redis://127.0.0.1:7000/0")?, "redis://127.0.0.1:7000/0");
/// # Ok::<(), burst_hashr::Error>(())
/// ```
pub fn redis_url(value: &str) -> Result<String, Error> {
    let v = value.trim();
    let bad = |msg: &str| Error::config("REDIS_URL", value, msg);
    if v.is_empty() {
        return Err(bad(
            "expected host:port or redis://host:port, e.g. 127.0.0.1:6379",
        ));
    }
    if let Some((scheme, _)) = v.split_once("://") {
        return match scheme {
            "redis" => {
                let url = Url::parse(v).map_err(|e| bad(&format!("not a valid URL ({e})")))?;
                if url.host_str().is_none_or(str::is_empty) {
                    return Err(bad("the URL has no host; expected redis://host:port"));
                }
                Ok(url.to_string())
            }
            "rediss" => Err(bad(
                "TLS (rediss://) is not supported by this build; use redis:// on a trusted network or a TLS sidecar",
            )),
            other => Err(bad(&format!(
                "unknown scheme `{other}`; expected redis://host:port or host:port"
            ))),
        };
    }
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => {
            let port: u16 = p
                .parse()
                .map_err(|_| bad(&format!("port `{p}` is not a number from 1 to 65535")))?;
            (h, port)
        }
        None => (v, 6379),
    };
    if host.is_empty() || host.contains(['/', ' ', '@']) {
        return Err(bad("expected host:port, e.g. redis-cache-service:6379"));
    }
    let url = Url::parse(&format!("redis://{host}:{port}/"))
        .map_err(|e| bad(&format!("not a valid address ({e})")))?;
    Ok(url.to_string())
}

fn optional_redis_url(value: Option<String>) -> Result<Option<String>, Error> {
    match value {
        Some(v) if !v.trim().is_empty() => redis_url(&v).map(Some),
        _ => Ok(None),
    }
}

fn port(value: Option<String>, default: u16) -> Result<u16, Error> {
    match value {
        None => Ok(default),
        Some(v) => v.trim().parse::<u16>().map_err(|_| {
            Error::config(
                "PORT",
                v,
                "expected a TCP port number from 0 to 65535, e.g. 8080",
            )
        }),
    }
}

fn positive(key: &'static str, value: Option<String>, default: usize) -> Result<usize, Error> {
    match value {
        None => Ok(default),
        Some(v) => match v.trim().parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(Error::config(key, v, "expected a positive whole number")),
        },
    }
}

/// Parses an `http://` or `https://` URL.
pub fn http_url(key: &'static str, value: &str) -> Result<Url, Error> {
    let url = Url::parse(value.trim()).map_err(|e| {
        Error::config(
            key,
            value,
            format!("not a valid URL ({e}); expected e.g. http://worker-service:8081/"),
        )
    })?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(Error::config(
            key,
            value,
            format!("scheme `{other}` is not HTTP; expected http:// or https://"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn redis_addresses_are_normalised() {
        assert_eq!(
            redis_url("10.0.0.5:6380").unwrap(),
            "redis://10.0.0.5:6380/"
        );
        assert_eq!(redis_url(" redis ").unwrap(), "redis://redis:6379/");
        assert_eq!(redis_url("redis://h:1/2").unwrap(), "redis://h:1/2");
    }

    #[test]
    fn bad_redis_addresses_are_refused_with_a_reason() {
        for (v, needle) in [
            ("", "expected host:port"),
            ("h:abc", "port `abc`"),
            ("h:70000", "port `70000`"),
            ("rediss://h:1", "TLS"),
            ("http://h:1", "unknown scheme `http`"),
            (":6379", "expected host:port"),
        ] {
            let e = redis_url(v).unwrap_err().to_string();
            assert!(e.contains(needle), "{v}: {e}");
        }
    }

    #[test]
    fn worker_env_defaults_and_values() {
        let w = WorkerEnv::from_lookup(env(&[])).unwrap();
        assert_eq!(
            w,
            WorkerEnv {
                port: 8081,
                redis_url: None,
                prefix: String::new(),
                body_limit: DEFAULT_BODY_LIMIT
            }
        );
        let w = WorkerEnv::from_lookup(env(&[
            ("PORT", "9000"),
            ("REDIS_URL", "r:1"),
            ("PREFIX", "bursty-"),
            ("BODY_LIMIT_BYTES", "10"),
        ]))
        .unwrap();
        assert_eq!(w.port, 9000);
        assert_eq!(w.redis_url.as_deref(), Some("redis://r:1/"));
        assert_eq!(w.prefix, "bursty-");
        assert_eq!(w.body_limit, 10);
        let e = WorkerEnv::from_lookup(env(&[("PORT", "x")])).unwrap_err();
        assert_eq!(e.kind(), "config");
        assert!(WorkerEnv::from_lookup(env(&[("BODY_LIMIT_BYTES", "0")])).is_err());
    }

    #[test]
    fn frontend_env_validates_urls_and_limits() {
        let f = FrontendEnv::from_lookup(env(&[("PROCESSOR_URL", "http://w:8081/")])).unwrap();
        assert_eq!(f.processor_url.as_str(), "http://w:8081/");
        assert_eq!(f.port, 8080);
        assert_eq!(f.max_frequency, DEFAULT_MAX_FREQUENCY);
        let e = FrontendEnv::from_lookup(env(&[("PROCESSOR_URL", "ftp://w/")])).unwrap_err();
        assert!(e.to_string().contains("not HTTP"));
        assert!(FrontendEnv::from_lookup(env(&[("MAX_FREQUENCY", "NaN")])).is_err());
        assert!(FrontendEnv::from_lookup(env(&[("CONCURRENCY", "-1")])).is_err());
    }
}
