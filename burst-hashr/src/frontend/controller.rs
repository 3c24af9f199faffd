//! What the controller steering the frontend's traffic reports, for the page.
//!
//! The frontend does not know the controller: whoever runs one next to it (`burst demo`)
//! hands it a [`ControllerView`] with [`Frontend::set_controller`](super::Frontend::set_controller),
//! and the page shows it under the status line: the split and the rule of the last decision,
//! the warm-up ramp's step while it moves traffic to the burst side, and the pre-warm. The
//! deployable `hashr-frontend` sets none; the page then shows nothing of it.

use serde::Serialize;

/// The controller's state, as the page shows it (`"controller"` in the status).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ControllerView {
    /// The burst side's share of the traffic in effect, in percent.
    pub burst_weight: u8,
    /// The rule of the last decision (`above_high`, `warming`, ...), once there was one.
    pub rule: Option<String>,
    /// Why, in the controller's words.
    pub reason: Option<String>,
    /// The warm-up ramp, while it moves traffic to the burst side step by step.
    pub warmup: Option<WarmupView>,
    /// The pre-warm of the burst side, when the policy pre-warms.
    pub prewarm: Option<PrewarmView>,
}

/// A warm-up ramp in progress (decision rule `warming`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct WarmupView {
    /// The ramp step in effect, counted from 1 (0: not on the first step yet).
    pub step: usize,
    /// Steps of the ramp.
    pub steps: usize,
    /// The burst weight the ramp heads for, when known.
    pub toward: Option<u8>,
}

/// The pre-warm of the burst side.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct PrewarmView {
    /// The burst side is prepared now.
    pub prepared: bool,
    /// Seconds since the controller started at the last prepare or release.
    pub since_s: Option<f64>,
    /// Why it was last prepared (`forecast: crossing in 20s: ...`, `traffic is on burst`).
    pub reason: Option<String>,
    /// The latest forecast of the demand against the trigger.
    pub forecast: Option<String>,
}
