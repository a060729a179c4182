//! Mutexes whose data stays sound across a panic. What candado keeps behind a mutex (maps,
//! lists, buffers) is changed in single steps, so a thread that panicked while holding the lock
//! cannot have left it half-changed: the next holder takes the data as it is instead of
//! panicking too, and one failed request never takes the server down with it.

use std::sync::{Mutex, MutexGuard, PoisonError};

pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
