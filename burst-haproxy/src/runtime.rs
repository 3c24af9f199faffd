//! A client for HAProxy's runtime API (the `stats socket`), one command per connection.
//!
//! HAProxy's CLI runs in non-interactive mode unless told otherwise: it reads one line
//! (commands separated by `;`), answers, and closes the connection. So every call opens a
//! connection, sends one line and reads to the end; there is no session state to lose when
//! HAProxy reloads. Every step (connect, send, read) shares one deadline, and the answer is
//! capped in size.

use std::fmt;
use std::io::ErrorKind;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{Instant, timeout_at};

use crate::Error;

/// Where HAProxy's runtime API listens: `unix:PATH` or `tcp:HOST:PORT`.
///
/// ```
/// use burst_haproxy::RuntimeAddr;
/// let a: RuntimeAddr = "unix:/run/haproxy/admin.sock".parse()?;
/// assert_eq!(a.to_string(), "unix:/run/haproxy/admin.sock");
/// let t: RuntimeAddr = "tcp:127.0.0.1:9999".parse()?;
/// assert_eq!(t, RuntimeAddr::Tcp { host: "127.0.0.1".into(), port: 9999 });
/// assert!("127.0.0.1:9999".parse::<RuntimeAddr>().is_err());
/// # Ok::<(), burst_haproxy::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RuntimeAddr {
    /// A unix socket (`stats socket /run/haproxy/admin.sock ...`).
    Unix(PathBuf),
    /// A TCP listener (`stats socket ipv4@127.0.0.1:9999 ...`).
    Tcp {
        /// Host name or IP address (IPv6 without brackets).
        host: String,
        /// Port.
        port: u16,
    },
}

impl FromStr for RuntimeAddr {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        let bad = |problem: &str| Error::InvalidAddress {
            value: s.to_owned(),
            problem: problem.to_owned(),
        };
        if let Some(path) = s.strip_prefix("unix:") {
            if path.is_empty() {
                return Err(bad("the socket path is empty"));
            }
            return Ok(RuntimeAddr::Unix(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("tcp:") {
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("no port after the host"))?;
            let host = host
                .strip_prefix('[')
                .and_then(|h| h.strip_suffix(']'))
                .unwrap_or(host);
            if host.is_empty() {
                return Err(bad("the host is empty"));
            }
            let port = port
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| bad("the port is not a number from 1 to 65535"))?;
            return Ok(RuntimeAddr::Tcp {
                host: host.to_owned(),
                port,
            });
        }
        Err(bad("it must start with `unix:` or `tcp:`"))
    }
}

impl fmt::Display for RuntimeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuntimeAddr::Unix(p) => write!(f, "unix:{}", p.display()),
            RuntimeAddr::Tcp { host, port } if host.contains(':') => {
                write!(f, "tcp:[{host}]:{port}")
            }
            RuntimeAddr::Tcp { host, port } => write!(f, "tcp:{host}:{port}"),
        }
    }
}

/// A runtime API client: sends one command line per connection.
#[derive(Debug, Clone)]
pub struct RuntimeClient {
    addr: RuntimeAddr,
    timeout: Duration,
    max_answer: usize,
}

impl RuntimeClient {
    /// The default deadline of one exchange (connect, send and read together).
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
    /// The default cap on an answer (`show stat` of a large configuration fits easily).
    pub const DEFAULT_MAX_ANSWER: usize = 4 * 1024 * 1024;

    /// A client for `addr` with the default timeout and answer cap.
    pub fn new(addr: RuntimeAddr) -> Self {
        RuntimeClient {
            addr,
            timeout: Self::DEFAULT_TIMEOUT,
            max_answer: Self::DEFAULT_MAX_ANSWER,
        }
    }

    /// Sets the deadline of one exchange; it must be above zero.
    pub fn with_timeout(mut self, timeout: Duration) -> Result<Self, Error> {
        if timeout.is_zero() {
            return Err(Error::InvalidOption {
                what: "runtime API timeout",
                value: "0s".into(),
                problem: "a timeout must be above zero; use e.g. 2s".into(),
            });
        }
        self.timeout = timeout;
        Ok(self)
    }

    /// Sets the cap on the size of an answer in bytes.
    pub fn with_max_answer(mut self, bytes: usize) -> Self {
        self.max_answer = bytes.max(1);
        self
    }

    /// The address.
    pub fn addr(&self) -> &RuntimeAddr {
        &self.addr
    }

    /// The deadline of one exchange.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Sends `command` (one line; several commands may be joined with `;`) and returns
    /// HAProxy's whole answer.
    ///
    /// An answer of `Permission denied` is [`Error::PermissionDenied`]; an unknown command
    /// is [`Error::Rejected`]. Other answers are for the caller to interpret.
    pub async fn command(&self, command: &str) -> Result<String, Error> {
        if command.contains(['\n', '\r']) || command.trim().is_empty() {
            return Err(Error::InvalidOption {
                what: "runtime API command",
                value: command.escape_debug().to_string(),
                problem: "a command is one non-empty line".into(),
            });
        }
        let deadline = Instant::now() + self.timeout;
        let bytes = match &self.addr {
            RuntimeAddr::Unix(path) => {
                let stream = timeout_at(deadline, tokio::net::UnixStream::connect(path))
                    .await
                    .map_err(|_| self.timed_out("connect"))?
                    .map_err(|e| self.connect_error(&e))?;
                self.exchange(stream, command, deadline).await?
            }
            RuntimeAddr::Tcp { host, port } => {
                let stream = timeout_at(
                    deadline,
                    tokio::net::TcpStream::connect((host.as_str(), *port)),
                )
                .await
                .map_err(|_| self.timed_out("connect"))?
                .map_err(|e| self.connect_error(&e))?;
                self.exchange(stream, command, deadline).await?
            }
        };
        let answer = String::from_utf8(bytes).map_err(|e| Error::Malformed {
            addr: self.addr.to_string(),
            command: command.to_owned(),
            problem: "the answer is not UTF-8 text".into(),
            answer: excerpt(&String::from_utf8_lossy(e.as_bytes())),
        })?;
        let first = answer.trim_start().lines().next().unwrap_or("").trim();
        if first == "Permission denied" {
            return Err(Error::PermissionDenied {
                addr: self.addr.to_string(),
                command: command.to_owned(),
            });
        }
        if first.starts_with("Unknown command") {
            return Err(Error::Rejected {
                addr: self.addr.to_string(),
                command: command.to_owned(),
                answer: first.to_owned(),
            });
        }
        tracing::debug!(addr = %self.addr, command, bytes = answer.len(), "runtime API answered");
        Ok(answer)
    }

    async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut stream: S,
        command: &str,
        deadline: Instant,
    ) -> Result<Vec<u8>, Error> {
        let line = format!("{command}\n");
        timeout_at(deadline, stream.write_all(line.as_bytes()))
            .await
            .map_err(|_| self.timed_out("send"))?
            .map_err(|e| self.io_error(&e))?;
        let mut answer = Vec::new();
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let n = timeout_at(deadline, stream.read(&mut chunk))
                .await
                .map_err(|_| self.timed_out("read"))?
                .map_err(|e| self.io_error(&e))?;
            if n == 0 {
                return Ok(answer);
            }
            if answer.len() + n > self.max_answer {
                return Err(Error::TooLarge {
                    addr: self.addr.to_string(),
                    command: command.to_owned(),
                    limit: self.max_answer,
                });
            }
            answer.extend_from_slice(&chunk[..n]);
        }
    }

    fn timed_out(&self, stage: &'static str) -> Error {
        Error::Timeout {
            addr: self.addr.to_string(),
            stage,
            after: self.timeout,
        }
    }

    fn connect_error(&self, e: &std::io::Error) -> Error {
        match (e.kind(), &self.addr) {
            (ErrorKind::NotFound, RuntimeAddr::Unix(path)) => {
                Error::SocketMissing { path: path.clone() }
            }
            (ErrorKind::ConnectionRefused, _) => Error::ConnectionRefused {
                addr: self.addr.to_string(),
            },
            (ErrorKind::PermissionDenied, _) => Error::SocketAccess {
                addr: self.addr.to_string(),
            },
            _ => self.io_error(e),
        }
    }

    fn io_error(&self, e: &std::io::Error) -> Error {
        Error::Io {
            addr: self.addr.to_string(),
            message: e.to_string(),
        }
    }
}

/// The first 200 characters of `text`, for messages.
pub(crate) fn excerpt(text: &str) -> String {
    let t = text.trim();
    match t.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &t[..i]),
        None => t.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_and_print() {
        for (text, addr) in [
            (
                "unix:/run/haproxy/admin.sock",
                RuntimeAddr::Unix("/run/haproxy/admin.sock".into()),
            ),
            (
                "tcp:localhost:9999",
                RuntimeAddr::Tcp {
                    host: "localhost".into(),
                    port: 9999,
                },
            ),
            (
                "tcp:[::1]:9999",
                RuntimeAddr::Tcp {
                    host: "::1".into(),
                    port: 9999,
                },
            ),
        ] {
            assert_eq!(text.parse::<RuntimeAddr>().unwrap(), addr);
            assert_eq!(addr.to_string(), text);
        }
        for (bad, problem) in [
            ("/run/haproxy.sock", "must start with"),
            ("unix:", "path is empty"),
            ("tcp:127.0.0.1", "no port"),
            ("tcp::9999", "host is empty"),
            ("tcp:h:0", "port is not"),
            ("tcp:h:70000", "port is not"),
        ] {
            let e = bad.parse::<RuntimeAddr>().unwrap_err();
            assert_eq!(e.kind(), "invalid_address");
            assert!(e.to_string().contains(problem), "{bad}: {e}");
            assert!(
                e.to_string().contains("unix:/run/haproxy/admin.sock"),
                "{e}"
            );
        }
    }

    #[tokio::test]
    async fn commands_are_one_line() {
        let c = RuntimeClient::new("unix:/nonexistent".parse().unwrap());
        assert_eq!(
            c.command("show stat\nshutdown").await.unwrap_err().kind(),
            "invalid_option"
        );
        assert!(c.clone().with_timeout(Duration::ZERO).is_err());
    }

    #[test]
    fn excerpt_is_bounded() {
        assert_eq!(excerpt(" ok \n"), "ok");
        assert_eq!(excerpt(&"x".repeat(500)).len(), 203);
    }
}
