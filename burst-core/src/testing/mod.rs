//! In-memory fakes for tests, simulations and examples (feature `test-util`).
//!
//! - [`MemorySource`] replays [`Scripted`] readings and errors;
//! - [`MemoryRouter`] holds a split, records applies, and fails the next calls on demand.
//!
//! ```toml
//! [dev-dependencies]
//! burst-core = { version = "0.1", features = ["test-util"] }
//! ```

mod router;
mod source;

pub use router::MemoryRouter;
pub use source::{MemorySource, Scripted};
