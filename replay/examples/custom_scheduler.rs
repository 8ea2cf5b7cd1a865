//! A scheduler of your own, first-class: written here, outside lbkit, registered beside IPVS's,
//! run through the conformance kit, measured by the quality harness beside `maglev` and `wlc`,
//! and driven through the replay pipeline on the bundled sample.
//!
//!     cargo run --release -p lb-replay --example custom_scheduler

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;

use lb_replay::capture::CaptureReader;
use lb_replay::config::{parse_backend, ServiceSpec, Vip};
use lb_replay::pipeline::{Pipeline, PipelineConfig};
use lb_replay::run::{run, NullOutput, RunConfig};
use lb_sched::registry::{Factory, Registry};
use lb_sched::{conformance, harness, Change, Destination, Flow, ForwardMethod, SchedConfig, SchedError, Scheduler};

/// Health as a checker reports it: an address marked down is never picked. Lock-free reads.
#[derive(Debug, Default)]
struct Health(Vec<(IpAddr, AtomicBool)>);

impl Health {
    fn up(&self, a: IpAddr) -> bool {
        self.0.iter().find(|(x, _)| *x == a).is_none_or(|(_, up)| up.load(Relaxed))
    }
}

/// The first healthy, eligible destination in list order (a fail-over scheduler).
#[derive(Debug)]
struct FirstHealthy(Arc<Health>);

impl Scheduler for FirstHealthy {
    fn name(&self) -> &'static str {
        "first-healthy"
    }
    fn pick(&self, dests: &[Arc<Destination>], _flow: &Flow) -> Option<usize> {
        dests.iter().position(|d| d.is_eligible() && self.0.up(d.addr()))
    }
    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(FirstHealthy(Arc::clone(&self.0))))
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A health table with one address in it, up for now.
    let health = Arc::new(Health(vec![("10.0.0.3".parse()?, AtomicBool::new(true))]));
    let h = Arc::clone(&health);
    // The five lines that make it first-class:
    let factory: Factory = Arc::new(move |_: &SchedConfig, _: &[Arc<Destination>]| {
        Ok(Box::new(FirstHealthy(Arc::clone(&h))) as Box<dyn Scheduler>)
    });
    let mut registry = Registry::default();
    registry.register_factory("first-healthy", Arc::clone(&factory))?;

    // 1. The conformance kit: every property a scheduler must keep. (With a destination marked
    //    down, `None` while another is eligible is this scheduler's right: the kit would say so,
    //    and `conformance::check_with` can turn that property off.)
    conformance::check("first-healthy", &factory)?;
    println!("conformance: first-healthy passes every property");
    // 10.0.0.3 goes down; the scheduler fails over past it.
    health.0[0].1.store(false, Relaxed);

    // 2. The quality harness, beside maglev and wlc.
    let quality = harness::measure_registry(
        &registry,
        Some(&["first-healthy", "maglev", "wlc"]),
        &harness::Options::with_flows(20_000),
    )?;
    print!("{}", harness::table(&quality));

    // 3. The replay pipeline on the bundled sample (its 30 HTTP connections to 198.51.100.10:80
    //    and a few more packets that open one).
    let mut svc = ServiceSpec::new(Vip::Addr { proto: None, addr: "198.51.100.10:80".parse()? });
    svc.sched = "first-healthy".into();
    for b in ["10.0.0.1,mac=02:00:00:00:01:01", "10.0.0.2,mac=02:00:00:00:01:02", "10.0.0.3,mac=02:00:00:00:01:03"] {
        svc.backends.push(parse_backend(b)?);
    }
    let cfg = PipelineConfig::new(vec![svc], Some(ForwardMethod::DirectRoute));
    let pipe = Pipeline::with_registry(&cfg, &registry, &|_| None)?;
    let mut cap = CaptureReader::from_bytes(Path::new("sample.pcap"), &include_bytes!("../data/sample.pcap")[..])?;
    let res = run(&mut cap, &pipe, &RunConfig::new(1), &NullOutput);
    let rt = &pipe.services()[0];
    let dests = rt.svc.destinations();
    for d in &dests {
        let n = res.counters.dests[0].get(d.id().0 as usize).map_or(0, |c| c.connections);
        println!("{}: {n} connections", d.addr());
    }
    // IPVS order is newest first: 10.0.0.3 (down), then 10.0.0.2, which takes everything.
    let to = |a: &str| {
        let d = dests.iter().find(|d| d.addr().to_string() == a).expect("a backend");
        res.counters.dests[0].get(d.id().0 as usize).map_or(0, |c| c.connections)
    };
    assert_eq!((to("10.0.0.3"), to("10.0.0.1")), (0, 0), "the down one and the last one get nothing");
    let all: u64 = res.counters.dests[0].iter().map(|c| c.connections).sum();
    assert!(all >= 30 && to("10.0.0.2") == all, "the first healthy one gets every connection");
    health.0[0].1.store(true, Relaxed);
    assert_eq!(
        rt.svc
            .pick(&Flow::v4(lb_sched::Protocol::Tcp, "192.0.2.1".parse()?, 1, "198.51.100.10".parse()?, 80))
            .map(|d| d.addr().to_string()),
        Some("10.0.0.3".into()),
        "back up: it is first again"
    );
    println!("pipeline: {} packets read, {} forwarded", res.counters.read, res.counters.forwarded);
    Ok(())
}
