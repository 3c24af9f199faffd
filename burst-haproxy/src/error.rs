//! The one error enum of `burst-haproxy`.

use std::path::PathBuf;
use std::time::Duration;

use burst_core::{RouterError, SourceError, Split};

/// Everything that can go wrong talking to HAProxy's runtime API, mapping weights, or
/// configuring the router and the source.
///
/// Every message names the offending value and what to do. [`Error::kind`] gives a short,
/// stable label for logs and metrics.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A runtime API address not of the form `unix:PATH` or `tcp:HOST:PORT`.
    #[error(
        "runtime API address `{value}`: {problem}; write `unix:/run/haproxy/admin.sock` or `tcp:127.0.0.1:9999`"
    )]
    InvalidAddress {
        /// The address given.
        value: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A setting with an invalid value (backend or server name, timeout, instance list).
    #[error("invalid {what} `{value}`: {problem}")]
    InvalidOption {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong and what is expected.
        problem: String,
    },
    /// The unix socket file does not exist.
    #[error(
        "runtime API socket {path} does not exist; check that HAProxy runs and that haproxy.cfg has `stats socket {path} level admin` in its `global` section",
        path = .path.display()
    )]
    SocketMissing {
        /// The socket path.
        path: PathBuf,
    },
    /// Nothing listens at the address (HAProxy stopped, or a stale socket file).
    #[error(
        "runtime API {addr}: connection refused; is HAProxy running, and does haproxy.cfg have `stats socket` on this address?"
    )]
    ConnectionRefused {
        /// The address, as given.
        addr: String,
    },
    /// The operating system refused to open the socket file (file mode or owner).
    #[error(
        "runtime API {addr}: the operating system denied access to the socket file; run as the socket's user or group, or set `mode 660 group GROUP` on the `stats socket` line"
    )]
    SocketAccess {
        /// The address, as given.
        addr: String,
    },
    /// Any other failure to connect, send or receive.
    #[error("runtime API {addr}: {message}")]
    Io {
        /// The address, as given.
        addr: String,
        /// The operating system's error.
        message: String,
    },
    /// A step of one exchange did not finish within the timeout.
    #[error(
        "runtime API {addr}: {stage} did not finish within {}; check that the address is HAProxy's runtime API (`stats socket`) and raise the timeout if HAProxy is very busy",
        humantime_like(*.after)
    )]
    Timeout {
        /// The address, as given.
        addr: String,
        /// `connect`, `send` or `read`.
        stage: &'static str,
        /// The timeout.
        after: Duration,
    },
    /// The answer is larger than the configured cap.
    #[error(
        "runtime API {addr}: the answer to `{command}` is larger than {limit} bytes; raise the answer limit"
    )]
    TooLarge {
        /// The address, as given.
        addr: String,
        /// The command sent.
        command: String,
        /// The cap in bytes.
        limit: usize,
    },
    /// HAProxy answered `Permission denied`: the socket's `level` is too low.
    #[error(
        "runtime API {addr}: HAProxy answered `Permission denied` to `{command}`: the socket's level is too low; use a `stats socket ... level admin` (changing weights needs `admin`)"
    )]
    PermissionDenied {
        /// The address, as given.
        addr: String,
        /// The command sent.
        command: String,
    },
    /// HAProxy has no backend of that name.
    #[error(
        "HAProxy at {addr} has no backend `{backend}`; give the name of a `backend` section of its haproxy.cfg"
    )]
    NoSuchBackend {
        /// The address, as given.
        addr: String,
        /// The backend name.
        backend: String,
    },
    /// The backend has no server of that name.
    #[error(
        "HAProxy at {addr}: backend `{backend}` has no server `{server}`; give the name of a `server` line of that backend"
    )]
    NoSuchServer {
        /// The address, as given.
        addr: String,
        /// The backend name.
        backend: String,
        /// The server name.
        server: String,
    },
    /// HAProxy answered something that is not what the command returns.
    #[error("runtime API {addr}: unexpected answer to `{command}`: {problem}: `{answer}`")]
    Malformed {
        /// The address, as given.
        addr: String,
        /// The command sent.
        command: String,
        /// What was expected.
        problem: String,
        /// The start of the answer.
        answer: String,
    },
    /// HAProxy refused a command with a message of its own.
    #[error("runtime API {addr}: HAProxy rejected `{command}`: {answer}")]
    Rejected {
        /// The address, as given.
        addr: String,
        /// The command sent.
        command: String,
        /// HAProxy's message.
        answer: String,
    },
    /// An HAProxy weight above 256.
    #[error("HAProxy weight {0} is out of range: server weights are 0 to 256")]
    WeightOutOfRange(u32),
    /// Both servers have weight 0: the backend sends no traffic to either ("drained").
    #[error(
        "backend `{backend}` is drained: servers `{primary}` and `{burst}` both have weight 0, so no split is in effect; set a split (e.g. `burst haproxy set-weights --burst-weight 0`)"
    )]
    Drained {
        /// The backend name.
        backend: String,
        /// The primary server.
        primary: String,
        /// The burst server.
        burst: String,
    },
    /// A server that should carry traffic is in maintenance or draining.
    #[error(
        "HAProxy at {addr}: server `{backend}/{server}` has weight {weight} but is in state {state}, so it takes no new traffic; bring it back with `set server {backend}/{server} state ready`"
    )]
    ServerState {
        /// The address, as given.
        addr: String,
        /// The backend name.
        backend: String,
        /// The server name.
        server: String,
        /// HAProxy's status column (`MAINT`, `DRAIN`, ...).
        state: String,
        /// The server's weight.
        weight: u16,
    },
    /// The weights read back after a write differ from the ones written: someone else
    /// changed them at the same moment.
    #[error(
        "HAProxy at {addr}: wrote weights {wrote_primary}/{wrote_burst} to `{backend}` but read back {read_primary}/{read_burst}; another client changed them, apply again"
    )]
    ReadBack {
        /// The address, as given.
        addr: String,
        /// The backend name.
        backend: String,
        /// Primary weight written.
        wrote_primary: u16,
        /// Burst weight written.
        wrote_burst: u16,
        /// Primary weight read back.
        read_primary: u16,
        /// Burst weight read back.
        read_burst: u16,
    },
    /// The instances behind one router hold different splits.
    #[error(
        "HAProxy instances disagree on backend `{backend}`: {splits}; applying a split converges them",
        splits = splits.iter().map(|(i, s)| format!("{i}={s}")).collect::<Vec<_>>().join(", ")
    )]
    Drift {
        /// The backend name.
        backend: String,
        /// Each instance's split.
        splits: Vec<(String, Split)>,
    },
    /// Some instances behind one router failed.
    #[error(
        "backend `{backend}`: {action} failed on {failed} of {total} HAProxy instances: {details}{ok}",
        failed = failures.len(),
        details = failures.iter().map(|(i, k, m)| format!("{i} ({k}): {m}")).collect::<Vec<_>>().join("; "),
        ok = if succeeded.is_empty() { String::new() } else { format!("; succeeded on {}", succeeded.join(", ")) }
    )]
    InstanceFailure {
        /// The backend name.
        backend: String,
        /// `read` or `apply`.
        action: &'static str,
        /// Number of instances.
        total: usize,
        /// `(instance, kind, message)` of each failure.
        failures: Vec<(String, &'static str, String)>,
        /// Instances where the action succeeded.
        succeeded: Vec<String>,
    },
    /// A request counter that is not a finite number >= 0.
    #[error(
        "HAProxy at {addr}: counter `{column}` of backend `{backend}` is `{value}`, not a count"
    )]
    InvalidCounter {
        /// The address, as given.
        addr: String,
        /// The backend name.
        backend: String,
        /// The column read (`req_tot` or `stot`).
        column: &'static str,
        /// The text found.
        value: String,
    },
}

/// `1.5s`, `2s`, `300ms`: short enough for messages, without a dependency.
fn humantime_like(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.3}s", d.as_secs_f64())
    }
}

impl Error {
    /// A short, stable label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidAddress { .. } => "invalid_address",
            Error::InvalidOption { .. } => "invalid_option",
            Error::SocketMissing { .. } => "socket_missing",
            Error::ConnectionRefused { .. } => "connection_refused",
            Error::SocketAccess { .. } => "socket_access",
            Error::Io { .. } => "io",
            Error::Timeout { .. } => "timeout",
            Error::TooLarge { .. } => "too_large",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::NoSuchBackend { .. } => "no_such_backend",
            Error::NoSuchServer { .. } => "no_such_server",
            Error::Malformed { .. } => "malformed",
            Error::Rejected { .. } => "rejected",
            Error::WeightOutOfRange(_) => "invalid_weight",
            Error::Drained { .. } => "drained",
            Error::ServerState { .. } => "server_state",
            Error::ReadBack { .. } | Error::Drift { .. } => "drift",
            Error::InstanceFailure { .. } => "instance_failure",
            Error::InvalidCounter { .. } => "invalid_counter",
        }
    }

    /// The `burst-haproxy` error inside a [`RouterError`], if it holds one.
    pub fn of(e: &RouterError) -> Option<&Error> {
        e.downcast_ref::<Error>()
    }

    /// The `burst-haproxy` error inside a [`SourceError`], if it holds one.
    pub fn of_source(e: &SourceError) -> Option<&Error> {
        e.downcast_ref::<Error>()
    }

    /// Whether HAProxy could not be reached at all (down, restarting, wrong address).
    pub fn is_unreachable(&self) -> bool {
        matches!(
            self,
            Error::SocketMissing { .. }
                | Error::ConnectionRefused { .. }
                | Error::Io { .. }
                | Error::Timeout { .. }
        )
    }
}

impl From<Error> for RouterError {
    fn from(e: Error) -> Self {
        RouterError::new(e.kind(), e)
    }
}

impl From<Error> for SourceError {
    fn from(e: Error) -> Self {
        SourceError::new(e.kind(), e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_downcast() {
        let e = Error::NoSuchBackend {
            addr: "unix:/x".into(),
            backend: "web".into(),
        };
        assert_eq!(e.kind(), "no_such_backend");
        let r = RouterError::from(e.clone());
        assert_eq!(r.kind(), "no_such_backend");
        assert_eq!(Error::of(&r), Some(&e));
        assert!(e.to_string().contains("`backend` section"));
        let t = Error::Timeout {
            addr: "tcp:127.0.0.1:1".into(),
            stage: "read",
            after: Duration::from_millis(300),
        };
        assert!(
            t.to_string().contains("read did not finish within 300ms"),
            "{t}"
        );
        assert!(t.is_unreachable());
    }
}
