//! Runnable examples of embedding burst.
