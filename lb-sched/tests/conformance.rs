//! The conformance kit (`lb_sched::conformance`): every built-in scheduler passes it, and
//! deliberately broken schedulers fail it with the right property named.
#![cfg(feature = "conformance")]

use std::sync::Arc;
use std::time::Instant;

use lb_sched::conformance::{self, property, Config, Failure};
use lb_sched::registry::{Factory, Registry};
use lb_sched::{Change, Destination, Flow, SchedConfig, SchedError, SchedFlags, Scheduler};

/// The built-ins whose pick fails when the flow's bucket is ineligible (no fallback flag).
const NO_FALLBACK: &[&str] = &["sh", "dh", "mh", "maglev"];

fn builtin_config(name: &str) -> Config {
    Config { none_only_when_all_ineligible: !NO_FALLBACK.contains(&name), ..Config::default() }
}

#[test]
fn every_builtin_scheduler_conforms() {
    let t = Instant::now();
    if let Err(f) = conformance::check_registry_with(Registry::builtin(), builtin_config) {
        panic!("{f}");
    }
    eprintln!("{} built-in schedulers checked in {:?}", Registry::builtin().names().count(), t.elapsed());
}

/// With `sh-fallback` / `mh-fallback`, the table schedulers probe on to an eligible destination.
#[test]
fn table_schedulers_with_fallback_conform() {
    let sched = SchedConfig { flags: SchedFlags(SchedFlags::SCHED1), ..SchedConfig::default() };
    for name in ["mh", "maglev"] {
        let config = Config { sched: sched.clone(), ..Config::default() };
        let factory = Registry::builtin().get(name).unwrap();
        if let Err(f) = conformance::check_with(&config, name, &factory) {
            panic!("{f}");
        }
    }
}

#[test]
fn check_registry_runs_a_users_scheduler_beside_the_builtins() {
    let mut registry = Registry::empty();
    registry
        .register("first", |_: &SchedConfig, _: &[Arc<Destination>]| Ok(Box::new(First) as Box<dyn Scheduler>))
        .unwrap();
    registry
        .register("zero", |_: &SchedConfig, _: &[Arc<Destination>]| Ok(Box::new(Broken::Zero) as Box<dyn Scheduler>))
        .unwrap();
    let quick = |_: &str| Config { cases: 16, picks_per_thread: 2_000, ..Config::default() };
    let f = conformance::check_registry_with(&registry, quick).unwrap_err();
    assert_eq!((f.scheduler.as_str(), f.property), ("zero", property::PICK_IS_ELIGIBLE), "{f}");
}

/// Always the first eligible destination: correct, if unbalanced.
#[derive(Debug)]
struct First;

impl Scheduler for First {
    fn name(&self) -> &'static str {
        "first"
    }
    fn pick(&self, dests: &[Arc<Destination>], _: &Flow) -> Option<usize> {
        dests.iter().position(|d| d.is_eligible())
    }
    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(First))
    }
}

/// Schedulers each breaking one rule.
#[derive(Debug, Clone, Copy)]
enum Broken {
    /// Index 0 whenever the list is not empty, eligible or not.
    Zero,
    /// One past the end of the list.
    PastTheEnd,
    /// The first destination with weight > 0, ignoring OVERLOAD.
    IgnoresOverload,
    /// None unless the first destination is eligible.
    GivesUp,
    /// Panics on an empty list.
    PanicsWhenEmpty,
}

impl Scheduler for Broken {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn pick(&self, dests: &[Arc<Destination>], _: &Flow) -> Option<usize> {
        match *self {
            Broken::Zero => (!dests.is_empty()).then_some(0),
            Broken::PastTheEnd => Some(dests.len()),
            Broken::IgnoresOverload => dests.iter().position(|d| d.weight() > 0),
            Broken::GivesUp => dests.first().filter(|d| d.is_eligible()).map(|_| 0),
            Broken::PanicsWhenEmpty => {
                assert!(!dests.is_empty(), "empty list");
                dests.iter().position(|d| d.is_eligible())
            }
        }
    }
    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(*self))
    }
}

fn broken(b: Broken) -> Factory {
    Arc::new(move |_: &SchedConfig, _: &[Arc<Destination>]| Ok(Box::new(b) as Box<dyn Scheduler>))
}

fn fails(b: Broken) -> Failure {
    let quick = Config { cases: 32, picks_per_thread: 5_000, ..Config::default() };
    let f = conformance::check_with(&quick, "broken", &broken(b)).expect_err("a broken scheduler must fail the kit");
    eprintln!("{b:?}: {f}");
    assert_eq!(f.scheduler, "broken");
    assert!(f.to_string().contains(f.property));
    f
}

#[test]
fn a_users_correct_scheduler_passes() {
    let factory: Factory =
        Arc::new(|_: &SchedConfig, _: &[Arc<Destination>]| Ok(Box::new(First) as Box<dyn Scheduler>));
    conformance::check("first", &factory).unwrap();
}

#[test]
fn index_zero_whatever_its_eligibility_fails_eligibility() {
    let f = fails(Broken::Zero);
    assert_eq!(f.property, property::PICK_IS_ELIGIBLE);
    assert!(f.detail.contains("ineligible"), "{f}");
}

#[test]
fn an_index_past_the_end_fails_eligibility() {
    let f = fails(Broken::PastTheEnd);
    assert_eq!(f.property, property::PICK_IS_ELIGIBLE);
    // The minimal case: the empty list.
    assert!(f.detail.contains("picked index 0 of a list of 0 destinations"), "{f}");
}

#[test]
fn ignoring_overload_fails_eligibility() {
    let f = fails(Broken::IgnoresOverload);
    assert_eq!(f.property, property::PICK_IS_ELIGIBLE);
    assert!(f.detail.contains("OVERLOAD"), "{f}");
}

#[test]
fn giving_up_while_some_are_eligible_fails_none_only_when_all_ineligible() {
    assert_eq!(fails(Broken::GivesUp).property, property::NONE_ONLY_WHEN_ALL_INELIGIBLE);
    // Allowed for table schedulers without fallback.
    let lenient =
        Config { cases: 32, none_only_when_all_ineligible: false, picks_per_thread: 5_000, ..Config::default() };
    conformance::check_with(&lenient, "broken", &broken(Broken::GivesUp)).unwrap();
}

#[test]
fn a_panic_fails_no_panic() {
    let f = fails(Broken::PanicsWhenEmpty);
    assert_eq!(f.property, property::NO_PANIC);
    assert!(f.detail.contains("empty list"), "{f}");
}
