//! Controller (in progress).
/// x
pub struct Controller;
/// x
pub struct ControllerConfig;
/// x
pub trait TickObserver {}
/// x
pub struct TickReport;
