//! [`HaproxyRouter`]: a [`TrafficRouter`] that sets two servers' weights in one HAProxy
//! backend over the runtime API (`crate::MultiInstanceRouter` fans it out to several
//! instances).
//!
//! - `current()` reads both servers in one `show stat <backend> 4 -1` (one snapshot): their
//!   user weights (`uweight`) and status. A server that has a weight above 0 but is in
//!   maintenance (`MAINT`, also what `disable server` does) or draining (`DRAIN`) takes no
//!   new requests, so the split read would be a lie: that is an [`Error::ServerState`].
//!   Both weights 0 is [`Error::Drained`].
//! - `apply()` first reads (so an unknown backend or server fails before anything is
//!   written), then sends both `set weight` commands on one line, the weight that grows
//!   first (so the backend never passes through 0/0), then reads back: weights that differ
//!   from the ones written mean another client wrote at the same moment
//!   ([`Error::ReadBack`], kind `drift`).
//! - Weights changed later by someone else (an operator, a reload that restored the
//!   configured weights) simply read as a different split; the controller compares it with
//!   the split it applied and writes again (drift repair).

use std::collections::HashMap;

use async_trait::async_trait;
use burst_core::{RouterError, Split, TrafficRouter};

use crate::Error;
use crate::runtime::{RuntimeClient, excerpt};
use crate::weights::{ServerWeights, to_weights};

/// Which backend and which two of its servers a router moves traffic between.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HaproxyTarget {
    backend: String,
    primary: String,
    burst: String,
}

/// What [`HaproxyRouter::read`] found: both weights and both servers' status column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServersState {
    /// The user weights (what `set weight` sets).
    pub weights: ServerWeights,
    /// The primary server's status (`UP`, `no check`, `DOWN`, `MAINT`, `DRAIN`, ...).
    pub primary_status: String,
    /// The burst server's status.
    pub burst_status: String,
}

/// A traffic router over one HAProxy instance's runtime API.
///
/// ```no_run
/// # async fn f() -> Result<(), Box<dyn std::error::Error>> {
/// use burst_core::{Split, TrafficRouter};
/// use burst_haproxy::{HaproxyRouter, HaproxyTarget, RuntimeClient};
///
/// let client = RuntimeClient::new("unix:/run/haproxy/admin.sock".parse()?);
/// let router = HaproxyRouter::new(client, HaproxyTarget::new("app", "onprem", "cloud")?);
/// router.apply(Split::try_new(70, 30)?).await?; // weights 70 and 30
/// assert_eq!(router.current().await?, Split::try_new(70, 30)?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct HaproxyRouter {
    client: RuntimeClient,
    target: HaproxyTarget,
}

impl HaproxyTarget {
    /// A target; each name must be a valid HAProxy name (letters, digits, `-`, `_`, `.`
    /// and `:`), and the two servers must differ.
    pub fn new(
        backend: impl Into<String>,
        primary_server: impl Into<String>,
        burst_server: impl Into<String>,
    ) -> Result<Self, Error> {
        let t = HaproxyTarget {
            backend: backend.into(),
            primary: primary_server.into(),
            burst: burst_server.into(),
        };
        check_name("backend name", &t.backend)?;
        check_name("primary server name", &t.primary)?;
        check_name("burst server name", &t.burst)?;
        if t.primary == t.burst {
            return Err(Error::InvalidOption {
                what: "burst server name",
                value: t.burst.clone(),
                problem: "the burst server must differ from the primary server".into(),
            });
        }
        Ok(t)
    }

    /// The backend.
    pub fn backend(&self) -> &str {
        &self.backend
    }

    /// The primary server.
    pub fn primary_server(&self) -> &str {
        &self.primary
    }

    /// The burst server.
    pub fn burst_server(&self) -> &str {
        &self.burst
    }
}

/// Checks that `name` is an HAProxy name (letters, digits, `-`, `_`, `.`, `:`), so it can
/// never carry a second command (`;`) or a line break into the runtime API.
pub(crate) fn check_name(what: &'static str, name: &str) -> Result<(), Error> {
    if is_haproxy_name(name) {
        return Ok(());
    }
    Err(Error::InvalidOption {
        what,
        value: name.to_owned(),
        problem: "HAProxy names are non-empty and use letters, digits, `-`, `_`, `.` and `:`"
            .into(),
    })
}

fn is_haproxy_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}

impl HaproxyRouter {
    /// A router for `target` through `client`.
    pub fn new(client: RuntimeClient, target: HaproxyTarget) -> Self {
        HaproxyRouter { client, target }
    }

    /// The target.
    pub fn target(&self) -> &HaproxyTarget {
        &self.target
    }

    /// The runtime API client.
    pub fn client(&self) -> &RuntimeClient {
        &self.client
    }

    /// Reads both servers' weights and status in one `show stat`.
    pub async fn read(&self) -> Result<ServersState, Error> {
        let command = format!("show stat {} 4 -1", self.target.backend);
        let answer = self.client.command(&command).await?;
        if !is_stat_table(&answer) {
            return Err(match self.reject(&command, &answer) {
                e @ (Error::NoSuchBackend { .. } | Error::NoSuchServer { .. }) => e,
                _ => self.malformed(&command, "expected the `show stat` CSV table", &answer),
            });
        }
        let table = StatTable::parse(&answer)
            .map_err(|problem| self.malformed(&command, problem, &answer))?;
        if table.rows.is_empty() {
            return Err(self.reject(&command, &answer));
        }
        let server = |name: &str| -> Result<(u32, String), Error> {
            let row = table
                .row(&self.target.backend, name)
                .ok_or_else(|| Error::NoSuchServer {
                    addr: self.client.addr().to_string(),
                    backend: self.target.backend.clone(),
                    server: name.to_owned(),
                })?;
            let weight = table
                .cell(row, "uweight")
                .filter(|w| !w.is_empty())
                .or_else(|| table.cell(row, "weight"))
                .and_then(|w| w.parse::<u32>().ok())
                .ok_or_else(|| {
                    self.malformed(&command, format!("no weight for server `{name}`"), &answer)
                })?;
            let status = table.cell(row, "status").unwrap_or("").to_owned();
            Ok((weight, status))
        };
        let (p, primary_status) = server(&self.target.primary)?;
        let (b, burst_status) = server(&self.target.burst)?;
        Ok(ServersState {
            weights: ServerWeights::try_new(p, b)?,
            primary_status,
            burst_status,
        })
    }

    /// Writes `weights` (after checking that the backend and both servers exist) and reads
    /// them back; see the module docs.
    pub async fn write(&self, weights: ServerWeights) -> Result<ServersState, Error> {
        let before = self.read().await?;
        let (b, p, s) = (
            &self.target.backend,
            &self.target.primary,
            &self.target.burst,
        );
        let set_primary = format!("set weight {b}/{p} {}", weights.primary());
        let set_burst = format!("set weight {b}/{s} {}", weights.burst());
        let command = if weights.burst() > before.weights.burst() {
            format!("{set_burst}; {set_primary}")
        } else {
            format!("{set_primary}; {set_burst}")
        };
        let answer = self.client.command(&command).await?;
        if let Some(line) = answer.lines().map(str::trim).find(|l| !l.is_empty()) {
            return Err(self.reject(&command, line));
        }
        let after = self.read().await?;
        if after.weights != weights {
            return Err(Error::ReadBack {
                addr: self.client.addr().to_string(),
                backend: b.clone(),
                wrote_primary: weights.primary(),
                wrote_burst: weights.burst(),
                read_primary: after.weights.primary(),
                read_burst: after.weights.burst(),
            });
        }
        Ok(after)
    }

    /// The split `state` stands for, or why it stands for none.
    pub fn split_of(&self, state: &ServersState) -> Result<Split, Error> {
        for (server, status, weight) in [
            (
                &self.target.primary,
                &state.primary_status,
                state.weights.primary(),
            ),
            (
                &self.target.burst,
                &state.burst_status,
                state.weights.burst(),
            ),
        ] {
            if weight > 0 && (status.starts_with("MAINT") || status.starts_with("DRAIN")) {
                return Err(Error::ServerState {
                    addr: self.client.addr().to_string(),
                    backend: self.target.backend.clone(),
                    server: server.clone(),
                    state: status.clone(),
                    weight,
                });
            }
        }
        state.weights.split().ok_or_else(|| Error::Drained {
            backend: self.target.backend.clone(),
            primary: self.target.primary.clone(),
            burst: self.target.burst.clone(),
        })
    }

    fn malformed(&self, command: &str, problem: impl Into<String>, answer: &str) -> Error {
        Error::Malformed {
            addr: self.client.addr().to_string(),
            command: command.to_owned(),
            problem: problem.into(),
            answer: excerpt(answer),
        }
    }

    /// Maps HAProxy's error answers to errors naming the backend or server.
    fn reject(&self, command: &str, answer: &str) -> Error {
        let first = answer.trim().lines().next().unwrap_or("").trim();
        let addr = self.client.addr().to_string();
        match first {
            "No such proxy." | "No such backend." | "Can't find backend." => Error::NoSuchBackend {
                addr,
                backend: self.target.backend.clone(),
            },
            // Both servers were found by the read before any write, so this is a server
            // removed in between (`del server`); the message names both.
            "No such server." => Error::NoSuchServer {
                addr,
                backend: self.target.backend.clone(),
                server: format!("{}` or `{}", self.target.primary, self.target.burst),
            },
            "" => self.malformed(command, "an empty answer", answer),
            other if other.starts_with('#') => {
                self.malformed(command, "a header without rows", answer)
            }
            other => Error::Rejected {
                addr,
                command: command.to_owned(),
                answer: excerpt(other),
            },
        }
    }
}

#[async_trait]
impl TrafficRouter for HaproxyRouter {
    async fn current(&self) -> Result<Split, RouterError> {
        let state = self.read().await?;
        Ok(self.split_of(&state)?)
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        let state = self.write(to_weights(split)).await?;
        self.split_of(&state)?;
        Ok(())
    }

    fn describe(&self) -> String {
        format!(
            "HAProxy {} backend {} ({} / {})",
            self.client.addr(),
            self.target.backend,
            self.target.primary,
            self.target.burst
        )
    }
}

/// `show stat` CSV: a header line starting with `# ` and one row per proxy or server.
struct StatTable<'a> {
    columns: HashMap<&'a str, usize>,
    rows: Vec<Vec<&'a str>>,
}

impl<'a> StatTable<'a> {
    /// Parses `show stat` output; an answer with no header is `Err` only when it is not
    /// an error message (the caller maps those).
    fn parse(answer: &'a str) -> Result<StatTable<'a>, String> {
        let mut lines = answer.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else {
            return Ok(StatTable {
                columns: HashMap::new(),
                rows: Vec::new(),
            });
        };
        let Some(header) = header.strip_prefix("# ") else {
            // Not a table: an error message, mapped by the caller.
            return Ok(StatTable {
                columns: HashMap::new(),
                rows: Vec::new(),
            });
        };
        let columns: HashMap<&str, usize> =
            header.split(',').enumerate().map(|(i, c)| (c, i)).collect();
        for needed in ["pxname", "svname", "status"] {
            if !columns.contains_key(needed) {
                return Err(format!("the header has no `{needed}` column"));
            }
        }
        let rows = lines.map(|l| l.split(',').collect()).collect();
        Ok(StatTable { columns, rows })
    }

    fn row(&self, pxname: &str, svname: &str) -> Option<&Vec<&'a str>> {
        self.rows.iter().find(|r| {
            self.cell(r, "pxname") == Some(pxname) && self.cell(r, "svname") == Some(svname)
        })
    }

    fn cell(&self, row: &[&'a str], column: &str) -> Option<&'a str> {
        self.columns.get(column).and_then(|i| row.get(*i)).copied()
    }
}

/// Reads one counter column of one `show stat` row; used by the source.
pub(crate) fn stat_cell<'a>(
    answer: &'a str,
    pxname: &str,
    svname: &str,
    column: &str,
) -> Result<Option<&'a str>, String> {
    let table = StatTable::parse(answer)?;
    Ok(table
        .row(pxname, svname)
        .and_then(|r| table.cell(r, column)))
}

/// Whether `answer` is a `show stat` table (starts with its header).
pub(crate) fn is_stat_table(answer: &str) -> bool {
    answer.trim_start().starts_with("# pxname")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_names_are_checked() {
        assert!(HaproxyTarget::new("app", "onprem", "cloud").is_ok());
        for (b, p, s, what) in [
            ("", "a", "b", "backend name"),
            ("app", "a b", "b", "primary server name"),
            ("app", "a", "b;shutdown", "burst server name"),
            ("app", "a", "a", "burst server name"),
        ] {
            match HaproxyTarget::new(b, p, s) {
                Err(Error::InvalidOption { what: w, .. }) => assert_eq!(w, what),
                other => panic!("{b}/{p}/{s}: {other:?}"),
            }
        }
    }

    #[test]
    fn stat_table_finds_cells_by_column_name() {
        let answer = "# pxname,svname,status,weight,uweight,req_tot,\nbe,a,UP,70,70,,\nbe,b,MAINT,30,30,,\nbe,BACKEND,UP,100,100,12,\n\n";
        assert_eq!(
            stat_cell(answer, "be", "BACKEND", "req_tot"),
            Ok(Some("12"))
        );
        assert_eq!(stat_cell(answer, "be", "b", "status"), Ok(Some("MAINT")));
        assert_eq!(stat_cell(answer, "be", "c", "status"), Ok(None));
        assert!(is_stat_table(answer));
        assert!(!is_stat_table("No such proxy.\n"));
        assert!(stat_cell("# a,b\n", "be", "x", "y").is_err());
    }
}
