//! One module per subcommand.

pub mod demo;
pub mod query;
pub mod render;
pub mod simulate;
pub mod vs;
