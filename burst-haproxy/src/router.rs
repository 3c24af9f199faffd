//! [`HaproxyRouter`]: a [`TrafficRouter`] that sets two servers' weights in one HAProxy
//! backend over the runtime API, and [`MultiInstanceRouter`] for several HAProxy instances.
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
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;
use burst_core::{RouterError, Split, TrafficRouter};
use futures::future::join_all;
use tracing::{info, warn};

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

/// One instance's outcome in a [`MultiInstanceRouter`].
#[derive(Debug)]
pub struct InstanceReport<T> {
    /// The instance's name.
    pub instance: String,
    /// What happened there.
    pub result: Result<T, RouterError>,
}

/// One split on several HAProxy instances (e.g. an active/active pair behind a VIP).
///
/// - `apply` writes to every instance concurrently and succeeds only if every instance
///   did; otherwise the error (kind `instance_failure`) names each failed instance, why,
///   and those that succeeded (which keep the new split; the next apply converges the
///   rest).
/// - `current` reads every instance; any failure is an `instance_failure`. When the
///   instances disagree after an apply, it returns the split that differs from the one
///   applied, so the controller sees drift and writes again. Before any apply (start-up),
///   the first instance is authoritative: its split is written to the others.
pub struct MultiInstanceRouter {
    backend: String,
    members: Vec<(String, Box<dyn TrafficRouter>)>,
    applied: Mutex<Option<Split>>,
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
        for (what, name) in [
            ("backend name", &t.backend),
            ("primary server name", &t.primary),
            ("burst server name", &t.burst),
        ] {
            if !is_haproxy_name(name) {
                return Err(Error::InvalidOption {
                    what,
                    value: name.clone(),
                    problem:
                        "HAProxy names are non-empty and use letters, digits, `-`, `_`, `.` and `:`"
                            .into(),
                });
            }
        }
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
            return Err(match self.reject(&command, &answer, None) {
                e @ (Error::NoSuchBackend { .. } | Error::NoSuchServer { .. }) => e,
                _ => self.malformed(&command, "expected the `show stat` CSV table", &answer),
            });
        }
        let table = StatTable::parse(&answer)
            .map_err(|problem| self.malformed(&command, problem, &answer))?;
        if table.rows.is_empty() {
            return Err(self.reject(&command, &answer, None));
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
                .get(row, "uweight")
                .filter(|w| !w.is_empty())
                .or_else(|| table.get(row, "weight"))
                .and_then(|w| w.parse::<u32>().ok())
                .ok_or_else(|| {
                    self.malformed(&command, format!("no weight for server `{name}`"), &answer)
                })?;
            let status = table.get(row, "status").unwrap_or("").to_owned();
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
            return Err(self.reject(&command, line, None));
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
    fn reject(&self, command: &str, answer: &str, server: Option<&str>) -> Error {
        let first = answer.trim().lines().next().unwrap_or("").trim();
        let addr = self.client.addr().to_string();
        match first {
            "No such proxy." | "No such backend." | "Can't find backend." => Error::NoSuchBackend {
                addr,
                backend: self.target.backend.clone(),
            },
            "No such server." => Error::NoSuchServer {
                addr,
                backend: self.target.backend.clone(),
                server: server.unwrap_or(&self.target.primary).to_owned(),
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

    fn get(&self, row: &[&'a str], column: &str) -> Option<&'a str> {
        self.cell(row, column)
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

impl MultiInstanceRouter {
    /// A router over `(instance name, router)` pairs for backend `backend` (used in
    /// messages); names must be unique and non-empty, the list non-empty.
    pub fn new(
        backend: impl Into<String>,
        members: Vec<(String, Box<dyn TrafficRouter>)>,
    ) -> Result<Self, Error> {
        if members.is_empty() {
            return Err(Error::InvalidOption {
                what: "HAProxy instance list",
                value: String::new(),
                problem: "needs at least one runtime API address".into(),
            });
        }
        for (i, (name, _)) in members.iter().enumerate() {
            if name.is_empty() || members[..i].iter().any(|(n, _)| n == name) {
                return Err(Error::InvalidOption {
                    what: "HAProxy instance name",
                    value: name.clone(),
                    problem: "instance names must be non-empty and unique".into(),
                });
            }
        }
        Ok(MultiInstanceRouter {
            backend: backend.into(),
            members,
            applied: Mutex::new(None),
        })
    }

    /// One router per runtime API address, all for `target`, named by their address.
    pub fn over(clients: Vec<RuntimeClient>, target: &HaproxyTarget) -> Result<Self, Error> {
        let members = clients
            .into_iter()
            .map(|c| {
                (
                    c.addr().to_string(),
                    Box::new(HaproxyRouter::new(c, target.clone())) as Box<dyn TrafficRouter>,
                )
            })
            .collect();
        MultiInstanceRouter::new(target.backend.clone(), members)
    }

    /// The instance names, in order.
    pub fn instances(&self) -> Vec<&str> {
        self.members.iter().map(|(n, _)| n.as_str()).collect()
    }

    /// Reads every instance concurrently.
    pub async fn read_all(&self) -> Vec<InstanceReport<Split>> {
        join_all(self.members.iter().map(|(name, r)| async move {
            InstanceReport {
                instance: name.clone(),
                result: r.current().await,
            }
        }))
        .await
    }

    /// Applies `split` to every instance concurrently.
    pub async fn apply_all(&self, split: Split) -> Vec<InstanceReport<()>> {
        join_all(self.members.iter().map(|(name, r)| async move {
            let result = r.apply(split).await;
            match &result {
                Ok(()) => info!(instance = %name, %split, "split applied"),
                Err(e) => warn!(instance = %name, %split, kind = e.kind(), error = %e, "split not applied"),
            }
            InstanceReport {
                instance: name.clone(),
                result,
            }
        }))
        .await
    }

    fn applied(&self) -> Option<Split> {
        *self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn failure<T>(&self, action: &'static str, reports: &[InstanceReport<T>]) -> Option<Error> {
        let failures: Vec<(String, &'static str, String)> = reports
            .iter()
            .filter_map(|r| {
                r.result
                    .as_ref()
                    .err()
                    .map(|e| (r.instance.clone(), e.kind(), e.to_string()))
            })
            .collect();
        (!failures.is_empty()).then(|| Error::InstanceFailure {
            backend: self.backend.clone(),
            action,
            total: reports.len(),
            failures,
            succeeded: reports
                .iter()
                .filter(|r| r.result.is_ok())
                .map(|r| r.instance.clone())
                .collect(),
        })
    }
}

#[async_trait]
impl TrafficRouter for MultiInstanceRouter {
    async fn current(&self) -> Result<Split, RouterError> {
        let reports = self.read_all().await;
        if let Some(e) = self.failure("read", &reports) {
            return Err(e.into());
        }
        let splits: Vec<(String, Split)> = reports
            .into_iter()
            .filter_map(|r| r.result.ok().map(|s| (r.instance, s)))
            .collect();
        let Some(&(_, first)) = splits.first() else {
            return Err(Error::Drift {
                backend: self.backend.clone(),
                splits,
            }
            .into());
        };
        if splits.iter().all(|(_, s)| *s == first) {
            return Ok(first);
        }
        warn!(backend = %self.backend, error = %Error::Drift { backend: self.backend.clone(), splits: splits.clone() }, "instances disagree");
        match self.applied() {
            Some(applied) => Ok(splits
                .iter()
                .map(|(_, s)| *s)
                .find(|s| *s != applied)
                .unwrap_or(first)),
            None => {
                // Start-up: the first instance is authoritative.
                self.apply(first).await?;
                Ok(first)
            }
        }
    }

    async fn apply(&self, split: Split) -> Result<(), RouterError> {
        let reports = self.apply_all(split).await;
        *self.applied.lock().unwrap_or_else(PoisonError::into_inner) = Some(split);
        match self.failure("apply", &reports) {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    fn describe(&self) -> String {
        format!(
            "HAProxy backend {} on {} instance(s): {}",
            self.backend,
            self.members.len(),
            self.instances().join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burst_core::testing::MemoryRouter;

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

    fn multi(
        members: Vec<(&str, Split)>,
    ) -> (MultiInstanceRouter, Vec<std::sync::Arc<MemoryRouter>>) {
        let routers: Vec<_> = members
            .iter()
            .map(|(_, s)| std::sync::Arc::new(MemoryRouter::new(*s)))
            .collect();
        let m = MultiInstanceRouter::new(
            "app",
            members
                .iter()
                .zip(&routers)
                .map(|((n, _), r)| (n.to_string(), Box::new(r.clone()) as Box<dyn TrafficRouter>))
                .collect(),
        )
        .unwrap();
        (m, routers)
    }

    #[tokio::test]
    async fn instances_converge_on_the_first_at_start_and_on_the_applied_split_later() {
        let s = |b| Split::try_new(100 - b, b).unwrap();
        let (m, routers) = multi(vec![("a", s(30)), ("b", s(0))]);
        // Start-up: the first instance is authoritative and is written to the others.
        assert_eq!(m.current().await.unwrap(), s(30));
        assert_eq!(routers[1].current().await.unwrap(), s(30));
        m.apply(s(50)).await.unwrap();
        // Someone changes one instance: the odd split is what current() reports.
        routers[1].apply(s(10)).await.unwrap();
        assert_eq!(m.current().await.unwrap(), s(10));
        assert!(MultiInstanceRouter::new("app", vec![]).is_err());
        assert!(m.describe().contains("2 instance(s): a, b"));
    }
}
