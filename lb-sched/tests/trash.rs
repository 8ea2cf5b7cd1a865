//! IPVS's trash: a destination removed while connections hold it comes back, the same one, when
//! it is added again (`ip_vs_trash_get_dest`), so those connections go on; one no connection
//! holds is gone, and adding it again creates a new one.

use std::sync::Arc;

use lb_sched::{DestConfig, SchedConfig, Service};

fn cfg(last: u8, weight: u32) -> DestConfig {
    DestConfig::new(format!("10.0.0.{last}").parse().unwrap(), 80).weight(weight)
}

#[test]
fn a_removed_destination_still_held_is_revived_by_add() {
    let svc = Service::new("rr", SchedConfig::default()).unwrap();
    svc.add(cfg(1, 1)).unwrap();
    let held = svc.add(cfg(2, 1)).unwrap();
    let id = held.id();
    // A connection holds the destination while it is removed.
    let removed = svc.remove(held.addr(), 80).unwrap();
    assert!(Arc::ptr_eq(&removed, &held));
    drop(removed);
    assert!(!held.is_available());
    assert_eq!(svc.destinations().len(), 1);
    // Added again with another weight: the same destination, available, reweighted, first in
    // the list (IPVS puts a revived destination at the head, as a new one).
    let back = svc.add(cfg(2, 3)).unwrap();
    assert!(Arc::ptr_eq(&back, &held), "not revived");
    assert!(held.is_available());
    assert_eq!((held.id(), held.weight()), (id, 3));
    let order: Vec<_> = svc.destinations().iter().map(|d| d.addr().to_string()).collect();
    assert_eq!(order, ["10.0.0.2", "10.0.0.1"]);
    // rr picks it again.
    let flow = lb_sched::Flow::v4(lb_sched::Protocol::Tcp, [1, 2, 3, 4].into(), 1, [5, 6, 7, 8].into(), 80);
    let picks: Vec<_> = (0..4).map(|_| svc.pick(&flow).unwrap().addr().to_string()).collect();
    assert!(picks.contains(&"10.0.0.2".to_string()), "{picks:?}");
}

#[test]
fn a_removed_destination_nobody_holds_is_not_revived() {
    let svc = Service::new("rr", SchedConfig::default()).unwrap();
    let d = svc.add(cfg(1, 1)).unwrap();
    let id = d.id();
    drop(d);
    drop(svc.remove("10.0.0.1".parse().unwrap(), 80).unwrap());
    let again = svc.add(cfg(1, 1)).unwrap();
    assert_ne!(again.id(), id, "a destination no connection held came back");
    assert!(again.is_available());
}
