//! The criterion helpers (feature `harness-criterion`) run a user's scheduler end to end, with
//! a very short measurement.

use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use lb_sched::registry::Registry;
use lb_sched::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Always the first eligible destination in list order.
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

#[test]
fn bench_pick_and_rebuild_a_user_scheduler() {
    let mut r = Registry::default();
    r.register("first", |_: &SchedConfig, _: &[Arc<Destination>]| Ok(Box::new(First) as Box<dyn Scheduler>)).unwrap();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(10))
        .measurement_time(Duration::from_millis(50))
        .without_plots();
    let factory = r.get("first").unwrap();
    lb_sched::harness::bench_pick(&mut c, "first", &factory);
    lb_sched::harness::bench_rebuild(&mut c, "first", &factory);
}
