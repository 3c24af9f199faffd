//! Runnable examples of embedding burst; see `examples/README.md` and run them with
//! `cargo run -p burst-examples --example NAME`. `tests/examples.rs` runs every one.
