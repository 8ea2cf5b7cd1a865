//! The quality harness (feature `harness`) on a user scheduler registered in a `Registry`, and
//! on known properties of the built-ins. The expected values are worked out by hand from the
//! harness's documented method, not read back from it.

use std::sync::Arc;

use lb_sched::harness::{self, BuildTime, Options};
use lb_sched::registry::Registry;
use lb_sched::{Change, Destination, Flow, SchedConfig, SchedError, Scheduler};

/// Always the first eligible destination in list order. A service lists its destinations
/// newest first and the harness adds destination i before i + 1, so this picks the
/// highest-numbered destination still present, for every flow.
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

fn registry() -> Registry {
    let mut r = Registry::default();
    r.register("first", |_: &SchedConfig, _: &[Arc<Destination>]| Ok(Box::new(First) as Box<dyn Scheduler>)).unwrap();
    r
}

fn close(got: f64, want: f64) -> bool {
    (got - want).abs() < 1e-9
}

#[test]
fn a_user_scheduler_measured_by_hand() {
    let r = registry();
    let opts = Options { flows: 1000, ..Options::default() };
    let q = harness::measure("first", &r.get("first").unwrap(), &opts).unwrap();
    assert_eq!(q.scheduler, "first");
    assert_eq!(q.table_size, None);
    assert_eq!(q.flows, 1000);
    assert_eq!(q.points.iter().map(|p| p.backends).collect::<Vec<_>>(), [10, 100, 1000]);
    for p in &q.points {
        let n = p.backends;
        // Every flow on one destination: max = all flows, mean = flows / N.
        assert!(close(p.max_over_mean, n as f64), "N={n}: {}", p.max_over_mean);
        // Removing N/2 (not the highest) moves nothing; it had no flow.
        assert!(close(p.disruption_remove_one_pct, 0.0) && close(p.minimal_disruption_pct, 0.0), "N={n}");
        // No table: no build time with the default BuildTime::Tables.
        assert_eq!(p.build_us, None);
    }
    let [p10, p100, p1000] = &q.points[..] else { unreachable!() };
    // N = 10: 1 % is one destination, index 0 + min(50, 9) = 9, the one with every flow: all
    // flows move (to 8), and all were its own.
    assert!(close(p10.disruption_remove_1pct_pct, 100.0) && close(p10.minimal_disruption_1pct_pct, 100.0));
    // N = 100: index 50; N = 1000: 50, 150, …, 950. None is the last one: nothing moves.
    for p in [p100, p1000] {
        assert!(close(p.disruption_remove_1pct_pct, 0.0) && close(p.minimal_disruption_1pct_pct, 0.0));
    }
    // Weights 1..=10, everything on destination 9 (weight 10, due 10/55): error
    // (1 - 10/55) / (10/55) = 450 %, more than destination 0's 100 % (due 1/55, got 0).
    assert!(close(p10.weight_error_pct.unwrap(), 450.0), "{:?}", p10.weight_error_pct);
    assert_eq!(p100.weight_error_pct, None);
    assert_eq!(p1000.weight_error_pct, None);
}

#[test]
fn registry_names_options_and_output() {
    let r = registry();
    let opts = Options { flows: 200, ns: vec![10], build_time: BuildTime::Always, ..Options::default() };
    let q = harness::measure_registry(&r, Some(&["first", "rr"]), &opts).unwrap();
    assert_eq!(q.iter().map(|q| q.scheduler.as_str()).collect::<Vec<_>>(), ["first", "rr"]);
    assert!(q.iter().all(|q| q.points.len() == 1 && q.points[0].build_us.is_some()), "BuildTime::Always");
    // rr, 200 flows over 10: exactly 20 each.
    assert!(close(q[1].points[0].max_over_mean, 1.0));
    let e = harness::measure_registry(&r, Some(&["first", "nope"]), &opts).unwrap_err();
    assert!(matches!(e, SchedError::UnknownScheduler { .. }), "{e}");
    assert!(e.to_string().contains("first"), "the known names include the user's: {e}");

    let t = harness::table(&q);
    assert!(t.starts_with("200 flows (half IPv4, half IPv6 sources)"), "{t}");
    assert!(t.contains("| scheduler | N | table | max/mean | weight error % | moved, remove 1 (%) | minimum (%) | moved, remove 1 % (%) | minimum (%) | build (µs) |"));
    assert!(t.contains("| first | 10 | - | 10.000 | 450.00 | 0.00 | 0.00 | 100.00 | 100.00 |"), "{t}");
    let j: serde_json::Value = serde_json::from_str(&harness::to_json(&q)).unwrap();
    let rows = j.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let mut keys: Vec<&str> = rows[0].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "backends",
            "build_us",
            "disruption_remove_1pct_pct",
            "disruption_remove_one_pct",
            "max_over_mean",
            "minimal_disruption_1pct_pct",
            "minimal_disruption_pct",
            "scheduler",
            "table_size",
            "weight_error_pct"
        ]
    );
    assert_eq!(rows[0]["scheduler"], "first");
    assert_eq!(rows[0]["table_size"], serde_json::Value::Null);
    assert!(close(rows[0]["weight_error_pct"].as_f64().unwrap(), 450.0));

    let path = std::env::temp_dir().join(format!("lb-sched-harness-{}.svg", std::process::id()));
    harness::svg(&q, &path).unwrap();
    let svg = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert!(svg.contains("<svg") && svg.contains("first"), "a chart with the user's line");
}

#[test]
fn builtins_known_properties() {
    let opts = Options { flows: 20_000, ns: vec![10], ..Options::default() };
    let q = harness::measure_registry(Registry::builtin(), Some(&["maglev", "sh", "wrr"]), &opts).unwrap();
    let (maglev, sh, wrr) = (&q[0].points[0], &q[1].points[0], &q[2].points[0]);
    // Maglev gives 10 destinations 6553 or 6554 of 65537 slots each: shares of 1/10 up to the
    // sampling noise of 20 000 flows (σ ≈ 2 % of the mean of 2 000).
    assert_eq!(q[0].table_size, Some(65537));
    assert!(maglev.max_over_mean >= 1.0 && maglev.max_over_mean < 1.1, "{}", maglev.max_over_mean);
    assert!(maglev.build_us.is_some(), "a table: timed");
    // Maglev is minimally disruptive up to a few % of slots.
    assert!(maglev.disruption_remove_one_pct < maglev.minimal_disruption_pct * 1.5, "{maglev:?}");
    // sh: 256 buckets round robin over 10, 25 or 26 each (≈ 10 % of the flows). Removing one
    // moves at least its own flows (and, IPVS's table being round robin, many more).
    assert_eq!(q[1].table_size, Some(256));
    assert!((8.0..12.0).contains(&sh.minimal_disruption_pct), "{sh:?}");
    assert!(sh.disruption_remove_one_pct >= sh.minimal_disruption_pct, "{sh:?}");
    assert!(sh.disruption_remove_1pct_pct >= sh.minimal_disruption_1pct_pct, "{sh:?}");
    // wrr deals picks in exact proportion, 55 per round: at most a round's rounding off.
    assert!(wrr.weight_error_pct.unwrap() < 1.0, "{wrr:?}");
    assert_eq!(wrr.build_us, None, "no table: not timed");
}
