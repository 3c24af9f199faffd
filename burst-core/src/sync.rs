//! Locking a `std::sync::Mutex` without panicking.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`, also after a panic elsewhere poisoned it.
///
/// burst's critical sections only assign or update plain values, so the data behind a
/// poisoned mutex is still consistent; taking it keeps one failed task from turning every
/// later lock into a panic (no `unwrap` outside tests).
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
