//! A user's scheduler through the whole pipeline: registered in a `Registry`, named by a rules
//! file or a `ServiceSpec`, it schedules every connection, and unknown names list what the
//! registry holds.

#![cfg(feature = "cli")]

mod support;

use std::path::Path;
use std::sync::Arc;

use lb_replay::config::{parse_backend, ServiceSpec, Vip};
use lb_replay::pipeline::{Pipeline, PipelineConfig};
use lb_sched::registry::Registry;
use lb_sched::{Change, Destination, Flow, ForwardMethod, SchedConfig, SchedError, Scheduler};
use support::*;

/// Always the last eligible destination of the list (the oldest one): nothing IPVS has.
#[derive(Debug)]
struct Oldest;

impl Scheduler for Oldest {
    fn name(&self) -> &'static str {
        "oldest"
    }
    fn pick(&self, dests: &[Arc<Destination>], _: &Flow) -> Option<usize> {
        dests.iter().rposition(|d| d.is_eligible())
    }
    fn rebuild(&self, _: &[Arc<Destination>], _: Change) -> Result<Box<dyn Scheduler>, SchedError> {
        Ok(Box::new(Oldest))
    }
}

fn registry() -> Registry {
    let mut r = Registry::default();
    r.register("oldest", |_: &SchedConfig, _: &[Arc<Destination>]| Ok(Box::new(Oldest) as Box<dyn Scheduler>)).unwrap();
    r
}

fn config(services: Vec<ServiceSpec>) -> PipelineConfig {
    PipelineConfig::new(services, Some(ForwardMethod::DirectRoute))
}

#[test]
fn a_registered_scheduler_schedules_through_the_pipeline() {
    let reg = registry();
    let text = "-A -t 198.51.100.10:80 -s oldest\n\
                -a -t 198.51.100.10:80 -r 10.0.0.1:80 -g\n\
                -a -t 198.51.100.10:80 -r 10.0.0.2:80 -g\n\
                -a -t 198.51.100.10:80 -r 10.0.0.3:80 -g\n";
    let mut services = lb_replay::rules::parse_with(text, Path::new("oldest.rules"), &reg).unwrap();
    for b in &mut services[0].backends {
        let last = match b.addr {
            std::net::IpAddr::V4(a) => a.octets()[3],
            _ => unreachable!(),
        };
        b.mac = Some(lb_rewrite::MacAddr([2, 0, 0, 0, 1, last]));
    }
    let pipe = Pipeline::with_registry(&config(services), &reg, &|_| None).unwrap();
    assert_eq!(&*pipe.services()[0].svc.scheduler_name(), "oldest");
    // Ten connections: all to 10.0.0.1, the first added (the oldest: last in IPVS order).
    let frames: Vec<(u64, Vec<u8>)> = (0..10)
        .map(|i| (1_000_000_000 + i * 1000, tcp(&format!("192.0.2.{}", i + 1), 40000, "198.51.100.10", 80, SYN, b"")))
        .collect();
    let done = process_all(&pipe, &capture(&frames));
    for d in &done {
        let out = d.output.as_ref().expect("forwarded");
        assert_eq!(&out[0..6], &[2, 0, 0, 0, 1, 1], "frame {}: to 10.0.0.1's MAC", d.index);
    }
    // The built-in registry does not know it, and says what it knows.
    let e = lb_replay::rules::parse(text, Path::new("oldest.rules")).unwrap_err().to_string();
    assert!(e.contains("unknown scheduler \"oldest\"") && e.contains("wlc") && !e.contains("oldest,"), "{e}");
    // Nor does a pipeline without it.
    let spec = ServiceSpec {
        sched: "oldest".into(),
        backends: vec![parse_backend("10.0.0.1,mac=02:00:00:00:01:01").unwrap()],
        ..ServiceSpec::new(Vip::Addr { proto: None, addr: "198.51.100.10:80".parse().unwrap() })
    };
    let e = Pipeline::new(&config(vec![spec.clone()]), &|_| None).unwrap_err().to_string();
    assert!(e.contains("unknown scheduler \"oldest\""), "{e}");
    assert!(Pipeline::with_registry(&config(vec![spec]), &reg, &|_| None).is_ok());
    // Its name in the registry's list of known ones.
    let e = reg.get("nope").err().unwrap().to_string();
    assert!(e.ends_with(", oldest"), "{e}");
}
