//! In-memory fakes for tests, simulations and examples (feature `test-util`).
//!
//! - [`MemorySource`] replays [`Scripted`] readings and errors;
//! - [`MemoryRouter`] holds a split, records applies, and fails the next calls on demand;
//! - [`MemoryScaler`] holds whether the burst side is prepared, records every call, and fails
//!   the next calls on demand;
//! - [`forecast_accuracy`] measures a forecaster's lead time and false pre-warms on a trace.
//!
//! ```toml
//! [dev-dependencies]
//! burst-core = { version = "0.1", features = ["test-util"] }
//! ```

mod forecast;
mod router;
mod scaler;
mod source;

pub use forecast::{Accuracy, AccuracySettings, forecast_accuracy};
pub use router::MemoryRouter;
pub use scaler::{MemoryScaler, ScalerCall};
pub use source::{MemorySource, Scripted};
