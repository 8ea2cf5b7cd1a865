//! A virtual service: its destination list and scheduler, hot-reconfigurable while other
//! threads pick.

use core::fmt;
use core::ops::Deref;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};

use arc_swap::cache::Cache;
use arc_swap::{ArcSwap, Guard};
use parking_lot::Mutex;

use crate::{registry, Change, DestConfig, DestId, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// One published state of a service: the destination list in IPVS order (newest first) and the
/// scheduler built for exactly that list. Immutable once published, apart from the atomics the
/// destinations and the scheduler hold.
pub struct Snapshot {
    dests: Box<[Arc<Destination>]>,
    sched: Box<dyn Scheduler>,
}

impl fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Snapshot").field("sched", &self.sched.name()).field("dests", &self.dests).finish()
    }
}

impl Snapshot {
    /// The destinations, newest first.
    #[inline]
    pub fn destinations(&self) -> &[Arc<Destination>] {
        &self.dests
    }

    /// The scheduler.
    #[inline]
    pub fn scheduler(&self) -> &dyn Scheduler {
        &*self.sched
    }

    /// Picks a destination for `flow` (no allocation, no lock).
    #[inline]
    pub fn pick(&self, flow: &Flow) -> Option<&Arc<Destination>> {
        let i = self.sched.pick(&self.dests, flow)?;
        self.dests.get(i)
    }

    /// The destination with this address and port.
    pub fn find(&self, addr: IpAddr, port: u16) -> Option<&Arc<Destination>> {
        self.dests.iter().find(|d| d.addr() == addr && d.port() == port)
    }
}

/// A guard that keeps one [`Snapshot`] alive while it is read.
pub struct SnapshotGuard(Guard<Arc<Snapshot>>);

impl Deref for SnapshotGuard {
    type Target = Snapshot;
    #[inline]
    fn deref(&self) -> &Snapshot {
        &self.0
    }
}

struct Writer {
    next_id: u32,
    /// Removed destinations that connections still hold (IPVS's trash): `add` of the same
    /// address and port revives one, so its connections go on (`ip_vs_trash_get_dest`). A
    /// destination no connection holds any more is gone from here too.
    trash: Vec<Weak<Destination>>,
    config: SchedConfig,
    /// The scheduler's name: as registered, or as the constructor's scheduler calls itself.
    name: Arc<str>,
}

/// A virtual service's destinations and scheduler.
///
/// Readers call [`Service::pick`] (or [`Service::snapshot`] and [`Snapshot::pick`]) from any
/// number of threads without locking: the current [`Snapshot`] is read through `arc-swap`.
/// Writers ([`Service::add`], [`Service::edit`], [`Service::remove`], [`Service::set_scheduler`])
/// serialise among themselves on a mutex, build the next snapshot (which may allocate, e.g. a
/// Maglev table) and publish it atomically. A pick that begins after a writer returned sees the
/// writer's change: it never returns a destination that was removed or quiesced before it began.
pub struct Service {
    current: ArcSwap<Snapshot>,
    writer: Mutex<Writer>,
    no_dest: AtomicU64,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service").field("current", &*self.current.load()).finish()
    }
}

impl Service {
    /// An empty service scheduled by the built-in scheduler `sched` (e.g. `"wlc"`).
    pub fn new(sched: &str, config: SchedConfig) -> Result<Self, SchedError> {
        Self::from_registry(registry::Registry::builtin(), sched, config)
    }

    /// An empty service scheduled by `registry`'s `sched`: a built-in or a scheduler of the
    /// user's (see [`registry::Registry::register`]).
    pub fn from_registry(registry: &registry::Registry, sched: &str, config: SchedConfig) -> Result<Self, SchedError> {
        let factory = registry.get(sched)?;
        Self::from_factory(sched, &factory, config)
    }

    /// An empty service scheduled by the scheduler `factory` builds, known as `name`
    /// ([`Service::scheduler_name`]): no registry needed.
    pub fn from_factory(name: &str, factory: &registry::Factory, config: SchedConfig) -> Result<Self, SchedError> {
        let s = factory(&config, &[])?;
        Ok(Service {
            current: ArcSwap::from_pointee(Snapshot { dests: Box::new([]), sched: s }),
            writer: Mutex::new(Writer { next_id: 0, trash: Vec::new(), config, name: Arc::from(name) }),
            no_dest: AtomicU64::new(0),
        })
    }

    /// The current snapshot.
    #[inline]
    pub fn snapshot(&self) -> SnapshotGuard {
        SnapshotGuard(self.current.load())
    }

    /// Picks a destination for a new connection of `flow`. Lock-free and allocation-free (the
    /// returned `Arc` is a reference-count increment). `None` when no destination is available;
    /// each `None` is counted ([`Service::no_destination_count`]).
    #[inline]
    pub fn pick(&self, flow: &Flow) -> Option<Arc<Destination>> {
        let snap = self.current.load();
        match snap.pick(flow) {
            Some(d) => Some(Arc::clone(d)),
            None => {
                self.no_dest.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// Picks and hands the destination to `f` without touching its reference count.
    #[inline]
    pub fn pick_with<R>(&self, flow: &Flow, f: impl FnOnce(&Arc<Destination>) -> R) -> Option<R> {
        let snap = self.current.load();
        match snap.pick(flow) {
            Some(d) => Some(f(d)),
            None => {
                self.no_dest.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// A per-thread reader: it caches the current snapshot and revalidates it with one atomic
    /// load per pick, instead of `arc-swap`'s full load protocol. This is the pick path a data
    /// plane worker should use; it gives the same guarantee as [`Service::pick`] (a change that
    /// happened before the pick began is seen).
    pub fn reader(&self) -> ServiceReader<'_> {
        ServiceReader { cache: Cache::new(&self.current), no_dest: &self.no_dest }
    }

    /// How many picks found no destination.
    pub fn no_destination_count(&self) -> u64 {
        self.no_dest.load(Relaxed)
    }

    /// The destinations, newest first.
    pub fn destinations(&self) -> Vec<Arc<Destination>> {
        self.current.load().dests.to_vec()
    }

    /// The scheduler's name: the one it was registered or built under.
    pub fn scheduler_name(&self) -> Arc<str> {
        Arc::clone(&self.writer.lock().name)
    }

    /// Adds a destination at the head of the list (IPVS order: newest first), as
    /// `ipvsadm -a` does. A destination removed from this service that connections still hold
    /// (IPVS's trash) is revived instead of created: the same [`Destination`], available again,
    /// so its connections go on (`ip_vs_trash_get_dest`).
    pub fn add(&self, cfg: DestConfig) -> Result<Arc<Destination>, SchedError> {
        let mut w = self.writer.lock();
        let cur = self.current.load_full();
        if cur.find(cfg.addr, cfg.port).is_some() {
            return Err(SchedError::DestExists(endpoint(cfg.addr, cfg.port)));
        }
        // A removed destination still held by connections comes back as it was (its id, its
        // counts), available again, as IPVS takes it from its trash.
        w.trash.retain(|d| d.strong_count() > 0);
        let revived = w
            .trash
            .iter()
            .position(|d| d.upgrade().is_some_and(|d| d.addr() == cfg.addr && d.port() == cfg.port))
            .and_then(|i| w.trash.swap_remove(i).upgrade());
        let (dest, new_id) = match revived {
            Some(d) => (d, false),
            None => (Arc::new(Destination::new(DestId(w.next_id), &cfg)), true),
        };
        let saved = dest.save();
        dest.apply(&cfg, true);
        let mut dests = Vec::with_capacity(cur.dests.len() + 1);
        dests.push(Arc::clone(&dest));
        dests.extend(cur.dests.iter().cloned());
        let sched = match cur.sched.rebuild(&dests, Change::Added { index: 0 }) {
            Ok(s) => s,
            Err(e) => {
                if !new_id {
                    dest.restore(saved);
                    dest.mark_removed();
                    w.trash.push(Arc::downgrade(&dest));
                }
                return Err(e);
            }
        };
        if new_id {
            w.next_id += 1;
        }
        self.current.store(Arc::new(Snapshot { dests: dests.into_boxed_slice(), sched }));
        Ok(dest)
    }

    /// Edits a destination's weight and thresholds, as `ipvsadm -e` does.
    pub fn edit(&self, cfg: DestConfig) -> Result<Arc<Destination>, SchedError> {
        let _w = self.writer.lock();
        let cur = self.current.load_full();
        let index = cur
            .dests
            .iter()
            .position(|d| d.addr() == cfg.addr && d.port() == cfg.port)
            .ok_or_else(|| SchedError::NoSuchDest(endpoint(cfg.addr, cfg.port)))?;
        let dest = Arc::clone(&cur.dests[index]);
        // Keep the old values to roll back if the scheduler refuses the new ones.
        let saved = dest.save();
        dest.apply(&cfg, false);
        match cur.sched.rebuild(&cur.dests, Change::Edited { index }) {
            Ok(sched) => {
                self.current.store(Arc::new(Snapshot { dests: cur.dests.clone(), sched }));
                Ok(dest)
            }
            Err(e) => {
                dest.restore(saved);
                Err(e)
            }
        }
    }

    /// Removes a destination, as `ipvsadm -d` does: it leaves the list and loses AVAILABLE;
    /// connections bound to it keep their `Arc` and decide what to do by
    /// [`Destination::is_available`].
    pub fn remove(&self, addr: IpAddr, port: u16) -> Result<Arc<Destination>, SchedError> {
        let mut w = self.writer.lock();
        let cur = self.current.load_full();
        let index = cur
            .dests
            .iter()
            .position(|d| d.addr() == addr && d.port() == port)
            .ok_or_else(|| SchedError::NoSuchDest(endpoint(addr, port)))?;
        let mut dests = cur.dests.to_vec();
        let dest = dests.remove(index);
        let sched = cur.sched.rebuild(&dests, Change::Removed { index })?;
        dest.mark_removed();
        w.trash.retain(|d| d.strong_count() > 0);
        w.trash.push(Arc::downgrade(&dest));
        self.current.store(Arc::new(Snapshot { dests: dests.into_boxed_slice(), sched }));
        Ok(dest)
    }

    /// Replaces the scheduler by the built-in `sched` (ipvsadm `-E -s`), keeping the
    /// destinations.
    pub fn set_scheduler(&self, sched: &str, config: SchedConfig) -> Result<(), SchedError> {
        self.set_scheduler_from(registry::Registry::builtin(), sched, config)
    }

    /// Replaces the scheduler by `registry`'s `sched`, keeping the destinations.
    pub fn set_scheduler_from(
        &self,
        registry: &registry::Registry,
        sched: &str,
        config: SchedConfig,
    ) -> Result<(), SchedError> {
        let factory = registry.get(sched)?;
        self.set_factory(sched, &factory, config)
    }

    /// Replaces the scheduler by the one `factory` builds, known as `name`, keeping the
    /// destinations.
    pub fn set_factory(&self, name: &str, factory: &registry::Factory, config: SchedConfig) -> Result<(), SchedError> {
        let mut w = self.writer.lock();
        let cur = self.current.load_full();
        let s = factory(&config, &cur.dests)?;
        w.config = config;
        w.name = Arc::from(name);
        self.current.store(Arc::new(Snapshot { dests: cur.dests.clone(), sched: s }));
        Ok(())
    }

    /// The scheduler configuration in force.
    pub fn config(&self) -> SchedConfig {
        self.writer.lock().config.clone()
    }
}

/// A per-thread view of a [`Service`] for picking (see [`Service::reader`]). Not `Sync`: each
/// worker thread makes its own.
pub struct ServiceReader<'a> {
    cache: Cache<&'a ArcSwap<Snapshot>, Arc<Snapshot>>,
    no_dest: &'a AtomicU64,
}

impl fmt::Debug for ServiceReader<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceReader").finish_non_exhaustive()
    }
}

impl ServiceReader<'_> {
    /// The current snapshot (revalidated).
    #[inline]
    pub fn snapshot(&mut self) -> &Arc<Snapshot> {
        self.cache.load()
    }

    /// Picks a destination for `flow`: lock-free, allocation-free, no reference-count traffic.
    /// Each `None` is counted on the service.
    #[inline]
    pub fn pick(&mut self, flow: &Flow) -> Option<&Arc<Destination>> {
        let r = self.cache.load().pick(flow);
        if r.is_none() {
            self.no_dest.fetch_add(1, Relaxed);
        }
        r
    }
}

fn endpoint(addr: IpAddr, port: u16) -> String {
    match addr {
        IpAddr::V4(a) => format!("{a}:{port}"),
        IpAddr::V6(a) => format!("[{a}]:{port}"),
    }
}
