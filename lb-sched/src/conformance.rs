//! A conformance kit any [`Scheduler`] can be run through (cargo feature `conformance`).
//!
//! [`check`] runs every property below against the schedulers a [`Factory`] builds and returns
//! the first one that fails as a [`Failure`] (the property's name and proptest's minimal failing
//! case) instead of panicking; [`check_registry`] does it for every scheduler of a
//! [`Registry`]. The runs are deterministic: proptest's ChaCha generator with its fixed seed,
//! no failure files written.
//!
//! | property ([`property`]) | what it checks |
//! |---|---|
//! | [`NO_PANIC`](property::NO_PANIC) | building and picking never panic: empty lists, lists of up to [`Config::large_dests`], any weight up to [`Config::max_weight`], any OVERLOAD marks, IPv4 and IPv6 flows with any ports |
//! | [`PICK_IS_ELIGIBLE`](property::PICK_IS_ELIGIBLE) | a pick is an index into the list given, of an eligible destination (weight > 0, no OVERLOAD) |
//! | [`NONE_ONLY_WHEN_ALL_INELIGIBLE`](property::NONE_ONLY_WHEN_ALL_INELIGIBLE) | `None` only when no destination is eligible (skipped when [`Config::none_only_when_all_ineligible`] is off) |
//! | [`EDITS_HONOURED`](property::EDITS_HONOURED) | through a [`Service`]: a destination quiesced (weight 0) or OVERLOADed by its upper threshold is never picked; cleared, it is eligible and picked again when it is the only eligible one |
//! | [`CONCURRENT_UPDATES`](property::CONCURRENT_UPDATES) | threads picking through [`Service::pick`] while another adds, edits, quiesces and removes destinations never get one that was removed or quiesced before their pick began |
//!
//! A scheduler's constructor may refuse a list with [`SchedError::TooManyDestinations`] (a
//! table too small for it): such cases are skipped. Any other error from the constructor or
//! from [`Scheduler::rebuild`] fails the property being checked.
//!
//! Table schedulers without a fallback (IPVS's `sh`, `dh` and `mh` without `sh-fallback` /
//! `mh-fallback`, lbkit's `maglev` likewise) legitimately return `None` when the flow's bucket
//! holds an ineligible destination: check them with
//! [`Config::none_only_when_all_ineligible`] off.
//!
//! ```
//! use std::sync::Arc;
//! use lb_sched::conformance::{self, Config};
//! use lb_sched::registry::Factory;
//! use lb_sched::{Change, Destination, Flow, SchedError, Scheduler};
//!
//! /// Always the first eligible destination in list order.
//! #[derive(Debug)]
//! struct First;
//! impl Scheduler for First {
//!     fn name(&self) -> &'static str { "first" }
//!     fn pick(&self, dests: &[Arc<Destination>], _: &Flow) -> Option<usize> {
//!         dests.iter().position(|d| d.is_eligible())
//!     }
//!     fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
//!         Ok(Box::new(First))
//!     }
//! }
//!
//! let factory: Factory = Arc::new(|_: &_, _: &[Arc<Destination>]| Ok(Box::new(First) as Box<dyn Scheduler>));
//! let quick = Config { cases: 8, picks_per_thread: 2_000, ..Config::default() };
//! conformance::check_with(&quick, "first", &factory)?;
//! # Ok::<(), conformance::Failure>(())
//! ```

use core::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, TestCaseError, TestError, TestRng, TestRunner};

use crate::registry::{Factory, Registry};
use crate::{DestConfig, DestId, Destination, Flow, Protocol, SchedConfig, SchedError, Scheduler, Service};

/// The names of the properties, as [`Failure::property`] reports them.
pub mod property {
    /// Building and picking never panic, for any list (empty to [`super::Config::large_dests`]
    /// destinations, any weights and OVERLOAD marks) and any flow.
    pub const NO_PANIC: &str = "no_panic";
    /// A pick is an index into the list given, of an eligible destination (weight > 0, not
    /// OVERLOAD).
    pub const PICK_IS_ELIGIBLE: &str = "pick_is_eligible";
    /// A pick is `None` only when no destination is eligible (only checked when
    /// [`super::Config::none_only_when_all_ineligible`] is on).
    pub const NONE_ONLY_WHEN_ALL_INELIGIBLE: &str = "none_only_when_all_ineligible";
    /// After [`crate::Service::edit`]: weight 0 and OVERLOAD are honoured, and clearing them
    /// makes the destination pickable again.
    pub const EDITS_HONOURED: &str = "edits_honoured";
    /// Picks on other threads never return a destination removed or quiesced before they began.
    pub const CONCURRENT_UPDATES: &str = "concurrent_updates";
    /// Every property, in the order [`super::check`] runs them.
    pub const ALL: &[&str] =
        &[NO_PANIC, PICK_IS_ELIGIBLE, NONE_ONLY_WHEN_ALL_INELIGIBLE, EDITS_HONOURED, CONCURRENT_UPDATES];
}

/// How hard and with what the kit checks a scheduler.
#[derive(Clone, Debug)]
pub struct Config {
    /// Proptest cases per property (default 64).
    pub cases: u32,
    /// The longest destination list of the ordinary cases (default 16).
    pub max_dests: usize,
    /// The length of the large lists [`property::NO_PANIC`] also tries (default 1,000).
    pub large_dests: usize,
    /// The largest weight given to a destination (default 65,535, ipvsadm's limit).
    pub max_weight: u32,
    /// Whether `None` is a failure while some destination is eligible (default on). Turn it off
    /// for table schedulers without fallback (`sh`, `dh`, `mh`, `maglev` without the fallback
    /// flag), whose pick fails when the flow's bucket holds an ineligible destination.
    pub none_only_when_all_ineligible: bool,
    /// Picking threads of [`property::CONCURRENT_UPDATES`] (default 2).
    pub threads: usize,
    /// Picks each of those threads makes at least (default 20,000).
    pub picks_per_thread: u32,
    /// Update rounds (add, reweight, quiesce, remove) the updater makes at least (default 100).
    pub update_rounds: u32,
    /// Wall-clock bound of [`property::CONCURRENT_UPDATES`] (default 10 s): the threads stop
    /// then, whatever the counts above.
    pub time_limit: Duration,
    /// The configuration handed to the factory (default: [`SchedConfig::default`]).
    pub sched: SchedConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            cases: 64,
            max_dests: 16,
            large_dests: 1000,
            max_weight: 65_535,
            none_only_when_all_ineligible: true,
            threads: 2,
            picks_per_thread: 20_000,
            update_rounds: 100,
            time_limit: Duration::from_secs(10),
            sched: SchedConfig::default(),
        }
    }
}

/// A property a scheduler failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The scheduler's name, as given to [`check`].
    pub scheduler: String,
    /// The property's name: one of [`property::ALL`].
    pub property: &'static str,
    /// Why it failed, with the minimal failing case proptest found.
    pub detail: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scheduler {:?} fails {}: {}", self.scheduler, self.property, self.detail)
    }
}

impl std::error::Error for Failure {}

/// Runs every property with [`Config::default`] against the scheduler `factory` builds, known as
/// `name`.
pub fn check(name: &str, factory: &Factory) -> Result<(), Failure> {
    check_with(&Config::default(), name, factory)
}

/// Runs every property with `config` against the scheduler `factory` builds, known as `name`;
/// the first failure is returned.
pub fn check_with(config: &Config, name: &str, factory: &Factory) -> Result<(), Failure> {
    let fail = |property: &'static str, detail: String| Failure { scheduler: name.to_string(), property, detail };
    run(config, list_and_flows(config, true), |(specs, flows)| no_panic(config, factory, &specs, &flows))
        .map_err(|d| fail(property::NO_PANIC, d))?;
    run(config, list_and_flows(config, false), |(specs, flows)| eligible(config, factory, &specs, &flows))
        .map_err(|d| fail(property::PICK_IS_ELIGIBLE, d))?;
    if config.none_only_when_all_ineligible {
        run(config, list_and_flows(config, false), |(specs, flows)| {
            some_when_eligible(config, factory, &specs, &flows)
        })
        .map_err(|d| fail(property::NONE_ONLY_WHEN_ALL_INELIGIBLE, d))?;
    }
    let weight = prop_oneof![4 => 1u32..=16.min(config.max_weight.max(1)), 1 => 1..=config.max_weight.max(1)];
    let edits = (prop::collection::vec(weight, 1..=config.max_dests.max(1)), any::<usize>(), flows());
    run(config, edits, |(weights, victim, flows)| edits_honoured(config, name, factory, &weights, victim, &flows))
        .map_err(|d| fail(property::EDITS_HONOURED, d))?;
    concurrent_updates(config, name, factory).map_err(|d| fail(property::CONCURRENT_UPDATES, d))
}

/// Runs [`check_with`] on every scheduler of `registry`, in registration order, with
/// [`Config::default`]. Table schedulers without fallback fail it
/// ([`property::NONE_ONLY_WHEN_ALL_INELIGIBLE`]): give them their own configuration with
/// [`check_registry_with`].
pub fn check_registry(registry: &Registry) -> Result<(), Failure> {
    check_registry_with(registry, |_| Config::default())
}

/// Runs [`check_with`] on every scheduler of `registry`, with the configuration `config` gives
/// for its name (e.g. [`Config::none_only_when_all_ineligible`] off for table schedulers).
pub fn check_registry_with(registry: &Registry, config: impl Fn(&str) -> Config) -> Result<(), Failure> {
    for name in registry.names() {
        let factory = registry.get(name).map_err(|e| Failure {
            scheduler: name.to_string(),
            property: property::NO_PANIC,
            detail: e.to_string(),
        })?;
        check_with(&config(name), name, &factory)?;
    }
    Ok(())
}

// ---- generators ----

/// One generated destination: its weight and whether it is OVERLOADed.
#[derive(Clone, Copy)]
struct Spec {
    weight: u32,
    overloaded: bool,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "w{}{}", self.weight, if self.overloaded { "+OVERLOAD" } else { "" })
    }
}

fn spec(max_weight: u32) -> impl Strategy<Value = Spec> {
    let weight = prop_oneof![2 => Just(0u32), 4 => 1u32..=16.min(max_weight.max(1)), 1 => 1..=max_weight.max(1)];
    (weight, prop::bool::weighted(0.25)).prop_map(|(weight, overloaded)| Spec { weight, overloaded })
}

fn flow() -> impl Strategy<Value = Flow> {
    let proto = prop_oneof![Just(Protocol::Tcp), Just(Protocol::Udp), Just(Protocol::Icmp), Just(Protocol::Icmpv6)];
    let v4 = (any::<u32>(), any::<u16>(), any::<u32>(), any::<u16>())
        .prop_map(|(s, sp, d, dp)| (IpAddr::V4(Ipv4Addr::from(s)), sp, IpAddr::V4(Ipv4Addr::from(d)), dp));
    let v6 = (any::<u128>(), any::<u16>(), any::<u128>(), any::<u16>())
        .prop_map(|(s, sp, d, dp)| (IpAddr::V6(Ipv6Addr::from(s)), sp, IpAddr::V6(Ipv6Addr::from(d)), dp));
    (proto, prop_oneof![v4, v6]).prop_map(|(p, t)| match t {
        (IpAddr::V4(s), sp, IpAddr::V4(d), dp) => Flow::v4(p, s, sp, d, dp),
        (IpAddr::V6(s), sp, IpAddr::V6(d), dp) => Flow::v6(p, s, sp, d, dp),
        _ => unreachable!("both addresses of one family"),
    })
}

fn flows() -> impl Strategy<Value = Vec<Flow>> {
    prop::collection::vec(flow(), 1..16)
}

/// A list of destinations (sometimes of [`Config::large_dests`] when `large`) and some flows.
fn list_and_flows(config: &Config, large: bool) -> impl Strategy<Value = (Vec<Spec>, Vec<Flow>)> {
    let small = prop::collection::vec(spec(config.max_weight), 0..=config.max_dests);
    // Large lists keep small weights: they test the list's length, not a ring of millions.
    let big = prop::collection::vec(spec(16), config.large_dests);
    let list = if large { prop_oneof![6 => small, 1 => big].boxed() } else { small.boxed() };
    (list, flows())
}

// ---- the runner ----

fn run<S: Strategy>(
    config: &Config,
    strategy: S,
    test: impl Fn(S::Value) -> Result<(), TestCaseError>,
) -> Result<(), String> {
    // Deterministic: ChaCha with proptest's fixed seed; no regression files written.
    let pc = proptest::test_runner::Config {
        cases: config.cases,
        rng_algorithm: RngAlgorithm::ChaCha,
        failure_persistence: None,
        max_shrink_iters: 512,
        ..Default::default()
    };
    let mut runner = TestRunner::new_with_rng(pc, TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    runner.run(&strategy, test).map_err(|e| match e {
        TestError::Fail(reason, value) => format!("{reason}; minimal failing case: {value:?}"),
        TestError::Abort(reason) => format!("aborted: {reason}"),
    })
}

fn addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32))
}

/// The destinations of `specs`, in list order, OVERLOAD set the way a connection tracker sets
/// it: an upper threshold of 1 and one connection bound.
fn dests(specs: &[Spec]) -> Vec<Arc<Destination>> {
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut cfg = DestConfig::new(addr(i), 80).weight(s.weight);
            if s.overloaded {
                cfg = cfg.thresholds(1, 0);
            }
            let d = Destination::new(DestId(i as u32), &cfg);
            if s.overloaded {
                d.bind_conn(false);
            }
            Arc::new(d)
        })
        .collect()
}

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap_or_default()
}

/// Runs `f`, a panic becoming a test case failure.
fn guarded<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f))
        .map_err(|p| TestCaseError::fail(format!("{what} panicked: {}", panic_message(&*p))))
}

/// Builds the scheduler: `None` when it refuses the list as too long.
fn build(
    config: &Config,
    factory: &Factory,
    dests: &[Arc<Destination>],
) -> Result<Option<Box<dyn Scheduler>>, TestCaseError> {
    match guarded("the constructor", || factory(&config.sched, dests))? {
        Ok(s) => Ok(Some(s)),
        Err(SchedError::TooManyDestinations { .. }) => Ok(None),
        Err(e) => Err(TestCaseError::fail(format!("the constructor refused {} destinations: {e}", dests.len()))),
    }
}

// ---- the properties ----

fn no_panic(config: &Config, factory: &Factory, specs: &[Spec], flows: &[Flow]) -> Result<(), TestCaseError> {
    let dests = dests(specs);
    let Some(sched) = build(config, factory, &dests)? else { return Ok(()) };
    for f in flows {
        guarded("pick", || sched.pick(&dests, f))?;
    }
    Ok(())
}

fn eligible(config: &Config, factory: &Factory, specs: &[Spec], flows: &[Flow]) -> Result<(), TestCaseError> {
    let dests = dests(specs);
    let Some(sched) = build(config, factory, &dests)? else { return Ok(()) };
    for f in flows {
        // Twice per flow: stateful schedulers (rr, wrr) move on between picks.
        for _ in 0..2 {
            if let Some(i) = sched.pick(&dests, f) {
                let d = dests.get(i).ok_or_else(|| {
                    TestCaseError::fail(format!("picked index {i} of a list of {} destinations", dests.len()))
                })?;
                if !d.is_eligible() {
                    return Err(TestCaseError::fail(format!("picked index {i}, ineligible: {d:?}")));
                }
            }
        }
    }
    Ok(())
}

fn some_when_eligible(config: &Config, factory: &Factory, specs: &[Spec], flows: &[Flow]) -> Result<(), TestCaseError> {
    let dests = dests(specs);
    let Some(sched) = build(config, factory, &dests)? else { return Ok(()) };
    let eligible = dests.iter().filter(|d| d.is_eligible()).count();
    for f in flows {
        if eligible > 0 && sched.pick(&dests, f).is_none() {
            return Err(TestCaseError::fail(format!("None for {f:?} while {eligible} destinations are eligible")));
        }
    }
    Ok(())
}

/// Picks `flow` from the service's current snapshot: the index, checked to be in the list.
fn pick_checked(svc: &Service, flow: &Flow) -> Result<Option<Arc<Destination>>, TestCaseError> {
    let snap = svc.snapshot();
    match snap.scheduler().pick(snap.destinations(), flow) {
        None => Ok(None),
        Some(i) => snap.destinations().get(i).cloned().map(Some).ok_or_else(|| {
            TestCaseError::fail(format!("picked index {i} of a list of {} destinations", snap.destinations().len()))
        }),
    }
}

fn edits_honoured(
    config: &Config,
    name: &str,
    factory: &Factory,
    weights: &[u32],
    victim: usize,
    flows: &[Flow],
) -> Result<(), TestCaseError> {
    let err = |e: SchedError| TestCaseError::fail(format!("service refused an update: {e}"));
    let svc = Service::from_factory(name, factory, config.sched.clone()).map_err(err)?;
    for (i, &w) in weights.iter().enumerate() {
        match svc.add(DestConfig::new(addr(i), 80).weight(w)) {
            Ok(_) => {}
            Err(SchedError::TooManyDestinations { .. }) => return Ok(()),
            Err(e) => return Err(err(e)),
        }
    }
    let list = svc.destinations();
    let v = Arc::clone(&list[victim % list.len()]);
    let base = v.config();
    let never_victim = |when: &str| -> Result<(), TestCaseError> {
        for f in flows {
            for _ in 0..2 {
                if let Some(d) = pick_checked(&svc, f)? {
                    if Arc::ptr_eq(&d, &v) {
                        return Err(TestCaseError::fail(format!("{when}, it was picked: {d:?}")));
                    }
                    if !d.is_eligible() {
                        return Err(TestCaseError::fail(format!("{when}, an ineligible one was picked: {d:?}")));
                    }
                }
            }
        }
        Ok(())
    };
    // Quiesced: never picked.
    svc.edit(base.weight(0)).map_err(err)?;
    never_victim("quiesced (weight 0)")?;
    // OVERLOADed by its upper threshold: never picked.
    svc.edit(base.thresholds(1, 0)).map_err(err)?;
    v.bind_conn(false);
    if !v.is_overloaded() {
        return Err(TestCaseError::fail("binding a connection up to the upper threshold did not set OVERLOAD"));
    }
    never_victim("OVERLOADed")?;
    // Cleared, and the only eligible one: picked again (or None where the table says so).
    svc.edit(base).map_err(err)?;
    for d in svc.destinations().iter().filter(|d| !Arc::ptr_eq(d, &v)) {
        svc.edit(d.config().weight(0)).map_err(err)?;
    }
    if !v.is_eligible() {
        return Err(TestCaseError::fail(format!("clearing weight and threshold left it ineligible: {v:?}")));
    }
    for f in flows {
        match pick_checked(&svc, f)? {
            Some(d) if Arc::ptr_eq(&d, &v) => {}
            Some(d) => return Err(TestCaseError::fail(format!("only {v:?} is eligible, {d:?} was picked"))),
            None if config.none_only_when_all_ineligible => {
                return Err(TestCaseError::fail(format!("{v:?} cleared and the only eligible one, pick was None")))
            }
            None => {}
        }
    }
    Ok(())
}

/// How many destination ids the concurrent check may create (one per update round, plus 8).
const MAX_ROUNDS: u32 = 50_000;

fn concurrent_updates(config: &Config, name: &str, factory: &Factory) -> Result<(), String> {
    let svc = Arc::new(Service::from_factory(name, factory, config.sched.clone()).map_err(|e| e.to_string())?);
    let mut live: Vec<usize> = Vec::new();
    for i in 0..8 {
        svc.add(DestConfig::new(addr(i), 80).weight(1 + i as u32 % 3)).map_err(|e| e.to_string())?;
        live.push(i);
    }
    // forbidden[id]: the update sequence number after which destination `id` must never be
    // picked (0: never). The updater never revives a destination.
    let forbidden: Arc<Vec<AtomicU64>> = Arc::new((0..MAX_ROUNDS as usize + 8).map(|_| AtomicU64::new(0)).collect());
    let seq = Arc::new(AtomicU64::new(0));
    let updating = Arc::new(AtomicBool::new(true));
    let pickers_done = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + config.time_limit;
    let threads: Vec<_> = (0..config.threads)
        .map(|t| {
            let (svc, forbidden, seq, updating, done) =
                (svc.clone(), forbidden.clone(), seq.clone(), updating.clone(), pickers_done.clone());
            let quota = config.picks_per_thread;
            std::thread::spawn(move || -> Result<u64, String> {
                let mut k = 0u32;
                let mut counted = false;
                while (updating.load(SeqCst) || k < quota) && Instant::now() < deadline {
                    let src = Ipv4Addr::from(0xc000_0000 ^ (t as u32) << 20 ^ k.wrapping_mul(0x9E37_79B9));
                    let f = Flow::v4(Protocol::Tcp, src, k as u16, Ipv4Addr::new(198, 51, 100, 1), 80);
                    let s0 = seq.load(SeqCst);
                    // Every other pick through a snapshot, to see an index past the end of the
                    // list (Service::pick turns one into None).
                    let picked = if k.is_multiple_of(2) {
                        svc.pick(&f)
                    } else {
                        let snap = svc.snapshot();
                        match snap.scheduler().pick(snap.destinations(), &f) {
                            None => None,
                            Some(i) => Some(Arc::clone(snap.destinations().get(i).ok_or_else(|| {
                                format!("thread {t} got index {i} of a list of {}", snap.destinations().len())
                            })?)),
                        }
                    };
                    k = k.wrapping_add(1);
                    if let Some(d) = picked {
                        let at = forbidden.get(d.id().0 as usize).map_or(0, |a| a.load(SeqCst));
                        if at != 0 && at <= s0 {
                            return Err(format!(
                                "thread {t} picked {d:?}, removed or quiesced at update {at}, before its pick began \
                                 (update {s0})"
                            ));
                        }
                    }
                    if !counted && k >= quota {
                        counted = true;
                        done.fetch_add(1, SeqCst);
                    }
                }
                Ok(u64::from(k))
            })
        })
        .collect();

    let mut update = || -> Result<(), String> {
        let forbid = |d: &Destination| {
            let s = seq.load(SeqCst) + 1;
            if let Some(a) = forbidden.get(d.id().0 as usize) {
                a.store(s, SeqCst);
            }
            seq.store(s, SeqCst);
        };
        let mut next = 8usize;
        let mut round = 0u32;
        while (round < config.update_rounds || pickers_done.load(SeqCst) < config.threads)
            && round < MAX_ROUNDS
            && Instant::now() < deadline
        {
            round += 1;
            svc.add(DestConfig::new(addr(next), 80).weight(1 + next as u32 % 5)).map_err(|e| e.to_string())?;
            live.push(next);
            next += 1;
            let r = live[(round as usize * 7) % live.len()];
            svc.edit(DestConfig::new(addr(r), 80).weight(1 + round % 9)).map_err(|e| e.to_string())?;
            if live.len() > 6 {
                let q = live.remove((round as usize * 13) % live.len());
                let d = svc.edit(DestConfig::new(addr(q), 80).weight(0)).map_err(|e| e.to_string())?;
                forbid(&d);
                let gone = live.remove((round as usize * 5) % live.len());
                let d = svc.remove(addr(gone), 80).map_err(|e| e.to_string())?;
                forbid(&d);
                svc.remove(addr(q), 80).map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    };
    let updated = catch_unwind(AssertUnwindSafe(&mut update))
        .unwrap_or_else(|p| Err(format!("an update panicked: {}", panic_message(&*p))));
    updating.store(false, SeqCst);
    let mut first_error = updated.err().map(|e| format!("updater: {e}"));
    for t in threads {
        let r = t.join().unwrap_or_else(|p| Err(format!("a picking thread panicked: {}", panic_message(&*p))));
        if let (Err(e), None) = (r, &first_error) {
            first_error = Some(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}
