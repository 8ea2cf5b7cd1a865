//! How a table holds its shards: behind locks, shared by every thread ([`Locked`], the
//! [`ConnTable`](crate::ConnTable) a program shares), or owned by one thread with no lock at
//! all ([`Owned`], a [`Partition`](crate::Partition) one worker owns). The table's code is the
//! same for both; only the cell around each shard differs.

use core::cell::{RefCell, RefMut};
use core::ops::DerefMut;

use parking_lot::{Mutex, MutexGuard};

mod sealed {
    pub trait Sealed {}
}

/// How a table's shards are held: [`Locked`] or [`Owned`] (sealed: no other kind).
pub trait ShardLock: sealed::Sealed + 'static {
    /// The cell around a shard.
    #[doc(hidden)]
    type Cell<T>;
    /// Access to a shard while it is held.
    #[doc(hidden)]
    type Guard<'a, T: 'a>: DerefMut<Target = T>;
    #[doc(hidden)]
    fn cell<T>(t: T) -> Self::Cell<T>;
    /// Holds the shard (waits for its lock).
    #[doc(hidden)]
    fn hold<T>(c: &Self::Cell<T>) -> Self::Guard<'_, T>;
    /// Holds the shard if nobody else does.
    #[doc(hidden)]
    fn try_hold<T>(c: &Self::Cell<T>) -> Option<Self::Guard<'_, T>>;
}

/// Shards behind a mutex each: the table is `Sync`, any thread may process any packet.
#[derive(Debug, Clone, Copy)]
pub enum Locked {}

/// Shards owned by one thread: the table is `Send` but not `Sync`, so exactly one thread uses
/// it at a time and no packet takes a lock (a borrow flag, checked in one instruction, stands
/// where the lock was).
///
/// The table never holds one shard while it waits for another (the locked table would deadlock
/// if it did: both kinds run the same code), so a shard is never held twice.
#[derive(Debug, Clone, Copy)]
pub enum Owned {}

impl sealed::Sealed for Locked {}
impl sealed::Sealed for Owned {}

impl ShardLock for Locked {
    type Cell<T> = Mutex<T>;
    type Guard<'a, T: 'a> = MutexGuard<'a, T>;
    #[inline]
    fn cell<T>(t: T) -> Mutex<T> {
        Mutex::new(t)
    }
    #[inline]
    fn hold<T>(c: &Mutex<T>) -> MutexGuard<'_, T> {
        c.lock()
    }
    #[inline]
    fn try_hold<T>(c: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
        c.try_lock()
    }
}

impl ShardLock for Owned {
    type Cell<T> = RefCell<T>;
    type Guard<'a, T: 'a> = RefMut<'a, T>;
    #[inline]
    fn cell<T>(t: T) -> RefCell<T> {
        RefCell::new(t)
    }
    #[inline]
    fn hold<T>(c: &RefCell<T>) -> RefMut<'_, T> {
        c.borrow_mut()
    }
    #[inline]
    fn try_hold<T>(c: &RefCell<T>) -> Option<RefMut<'_, T>> {
        c.try_borrow_mut().ok()
    }
}
