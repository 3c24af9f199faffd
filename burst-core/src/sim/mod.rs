//! Simulator (in progress).
/// A load trace.
pub struct Trace;
impl Trace {
    /// Names of built-in traces.
    pub const BUILTIN_NAMES: &[&str] = &["step"];
}
