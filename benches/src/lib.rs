//! Benchmarks of burst.
