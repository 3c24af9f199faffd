//! Fault injection: make the next requests fail, stall, or lose their connection.
//!
//! A [`Fault`] matches requests by method and path substring and fires a bounded number of
//! times. Rules are checked in the order they were added; the first match fires.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::Method;

use crate::store::Store;

/// A hook that changes the store when a fault fires, before the request is served.
pub type StoreHook = Arc<dyn Fn(&mut Store) + Send + Sync>;

/// What a fault does to a matching request.
#[derive(Clone)]
pub enum FaultAction {
    /// Answer with this HTTP status and a `Status` body, without touching the store.
    Status(u16),
    /// Wait this long, then serve the request normally.
    Delay(Duration),
    /// Close the connection without answering.
    Drop,
    /// Run a hook on the store (e.g. another writer changes the object), then serve the
    /// request normally.
    Mutate(StoreHook),
}

impl fmt::Debug for FaultAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FaultAction::Status(c) => write!(f, "Status({c})"),
            FaultAction::Delay(d) => write!(f, "Delay({d:?})"),
            FaultAction::Drop => write!(f, "Drop"),
            FaultAction::Mutate(_) => write!(f, "Mutate(..)"),
        }
    }
}

/// One fault rule.
///
/// ```
/// use burst_fake_kube::Fault;
/// use http::Method;
/// use std::time::Duration;
///
/// let _conflict = Fault::status(409).on(Method::PATCH).times(2);
/// let _slow = Fault::delay(Duration::from_secs(5)).path("virtualservices/worker");
/// let _dropped = Fault::drop_connection();
/// ```
#[derive(Debug, Clone)]
pub struct Fault {
    method: Option<Method>,
    path_contains: Option<String>,
    remaining: usize,
    action: FaultAction,
}

impl Fault {
    fn with(action: FaultAction) -> Self {
        Fault {
            method: None,
            path_contains: None,
            remaining: 1,
            action,
        }
    }

    /// Answers with `code` (e.g. 404, 409, 500) and a matching `Status` body.
    pub fn status(code: u16) -> Self {
        Fault::with(FaultAction::Status(code))
    }

    /// Delays the request by `by`, then serves it.
    pub fn delay(by: Duration) -> Self {
        Fault::with(FaultAction::Delay(by))
    }

    /// Closes the connection without an answer.
    pub fn drop_connection() -> Self {
        Fault::with(FaultAction::Drop)
    }

    /// Runs `hook` on the store, then serves the request.
    pub fn mutate(hook: impl Fn(&mut Store) + Send + Sync + 'static) -> Self {
        Fault::with(FaultAction::Mutate(Arc::new(hook)))
    }

    /// Only requests with this method.
    pub fn on(mut self, method: Method) -> Self {
        self.method = Some(method);
        self
    }

    /// Only requests whose path contains `part`.
    pub fn path(mut self, part: impl Into<String>) -> Self {
        self.path_contains = Some(part.into());
        self
    }

    /// Fires for the next `n` matching requests (default 1).
    pub fn times(mut self, n: usize) -> Self {
        self.remaining = n;
        self
    }

    fn matches(&self, method: &Method, path: &str) -> bool {
        self.remaining > 0
            && self.method.as_ref().is_none_or(|m| m == method)
            && self
                .path_contains
                .as_deref()
                .is_none_or(|p| path.contains(p))
    }
}

/// A fault that fired, for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FiredFault {
    /// Request method.
    pub method: Method,
    /// Request path.
    pub path: String,
    /// What was done, e.g. `Status(409)`.
    pub action: String,
}

/// The pending fault rules.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Vec<Fault>,
    fired: Vec<FiredFault>,
}

impl Faults {
    /// Adds a rule.
    pub fn push(&mut self, fault: Fault) {
        self.rules.push(fault);
    }

    /// Removes every pending rule.
    pub fn clear(&mut self) {
        self.rules.clear();
    }

    /// Rules that still have firings left.
    pub fn pending(&self) -> usize {
        self.rules.iter().filter(|r| r.remaining > 0).count()
    }

    /// Every fault that fired so far.
    pub fn fired(&self) -> &[FiredFault] {
        &self.fired
    }

    /// The action for this request, if a rule matches (consuming one firing).
    pub fn take(&mut self, method: &Method, path: &str) -> Option<FaultAction> {
        let rule = self.rules.iter_mut().find(|r| r.matches(method, path))?;
        rule.remaining -= 1;
        let action = rule.action.clone();
        self.fired.push(FiredFault {
            method: method.clone(),
            path: path.to_owned(),
            action: format!("{action:?}"),
        });
        self.rules.retain(|r| r.remaining > 0);
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_fire_in_order_and_run_out() {
        let mut f = Faults::default();
        f.push(Fault::status(409).on(Method::PATCH).times(2));
        f.push(Fault::status(500).path("/other"));
        assert!(f.take(&Method::GET, "/apis/x").is_none());
        assert!(matches!(
            f.take(&Method::PATCH, "/a"),
            Some(FaultAction::Status(409))
        ));
        assert!(matches!(
            f.take(&Method::PATCH, "/a"),
            Some(FaultAction::Status(409))
        ));
        assert!(f.take(&Method::PATCH, "/a").is_none());
        assert!(matches!(
            f.take(&Method::GET, "/x/other"),
            Some(FaultAction::Status(500))
        ));
        assert_eq!(f.pending(), 0);
        assert_eq!(f.fired().len(), 3);
    }
}
