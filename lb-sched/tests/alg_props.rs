//! Property tests for the schedulers beyond IPVS (ring, hrw, swrr, p2c, random): whatever the
//! weights, OVERLOAD flags, counters and flows, every one of them is work-conserving: a pick
//! is an eligible destination, and there is one whenever some destination is eligible.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use lb_sched::{DestConfig, Flow, Protocol, SchedConfig, Service, SplitMix64};
use proptest::prelude::*;

const NAMES: [&str; 5] = ["ring", "hrw", "swrr", "p2c", "random"];

fn flow() -> impl Strategy<Value = Flow> {
    (any::<[u8; 4]>(), any::<u16>())
        .prop_map(|(s, sp)| Flow::v4(Protocol::Tcp, Ipv4Addr::from(s), sp, Ipv4Addr::new(198, 51, 100, 1), 80))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(150))]

    #[test]
    fn picks_are_eligible_and_found_whenever_one_is(
        specs in prop::collection::vec((prop_oneof![Just(0u32), 1u32..20, 1u32..100_000], any::<bool>(), 0u32..20), 0..16),
        flows in prop::collection::vec(flow(), 1..10),
        seed in any::<u64>(),
    ) {
        let any_eligible = specs.iter().any(|s| s.0 > 0 && !s.1);
        for name in NAMES {
            let cfg = SchedConfig { random: Arc::new(SplitMix64::new(seed)), ..SchedConfig::default() };
            let s = Service::new(name, cfg).unwrap();
            for (i, &(w, over, active)) in specs.iter().enumerate() {
                let d = s.add(DestConfig::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32)), 80).weight(w)).unwrap();
                for _ in 0..active {
                    d.bind_conn(true);
                }
                d.set_overloaded(over);
            }
            for f in &flows {
                let got = s.pick(f);
                prop_assert_eq!(got.is_some(), any_eligible, "{}", name);
                if let Some(d) = got {
                    prop_assert!(d.weight() > 0 && !d.is_overloaded(), "{} picked {:?}", name, d);
                }
            }
        }
    }
}
