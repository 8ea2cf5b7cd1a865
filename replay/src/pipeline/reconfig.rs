//! Adding and removing virtual services (`ipvsadm -A` / `-D`) on a built pipeline, while no
//! worker runs (`&mut`): what a reload of the rules does when the set of services changed. A
//! service's index never changes (a removed one stays, unreachable), so the workers' per-service
//! counters stay valid across a change.

use lb_rewrite::MacAddr;
use lb_sched::registry::Registry;

use super::{ConfigError, Pipeline};
use crate::config::{ServiceSpec, Vip};

impl Pipeline {
    /// Adds the virtual service `spec` with its real servers (ipvsadm -A and its -a lines); its
    /// index. Its scheduler comes from `registry`. A real server without a MAC (`mac=`) is
    /// followed by the live next hops if the pipeline has them, else refused
    /// ([`ConfigError::NoNextHop`]); a service of the same address is refused
    /// ([`ConfigError::DuplicateService`]). On an error nothing is added.
    pub fn add_service(&mut self, spec: &ServiceSpec, registry: &Registry) -> Result<usize, ConfigError> {
        for b in &spec.backends {
            if b.mac.is_none() && self.live.is_none() && !self.macs.contains_key(&b.addr) {
                return Err(ConfigError::NoNextHop(b.addr));
            }
        }
        let before = self.services.len();
        let added: Vec<(std::net::IpAddr, MacAddr)> =
            spec.backends.iter().filter_map(|b| b.mac.map(|m| (b.addr, m))).collect();
        match self.push_service(spec, registry) {
            Ok(i) => {
                for (a, m) in added {
                    self.macs.insert(a, m);
                }
                for b in &spec.backends {
                    if let Some(port) = b.gue_port {
                        self.gue.insert(b.addr, port);
                    }
                }
                self.mac_list = self.macs.iter().map(|(a, m)| (*a, *m)).collect();
                Ok(i)
            }
            Err(e) => {
                // Undo a half-built service: unreachable and without destinations.
                if self.services.len() > before {
                    self.unlink(before);
                    self.services.truncate(before);
                }
                Err(e)
            }
        }
    }

    /// Removes the virtual service of address `vip` (ipvsadm -D): no packet finds it any more;
    /// its real servers are removed (reported as such; their connections' packets are dropped,
    /// as IPVS does once their destinations are gone); its index stays. `false` when no live
    /// service has that address.
    pub fn remove_service(&mut self, vip: &Vip) -> bool {
        let Some(i) = self.services.iter().position(|rt| !rt.removed && rt.vip == *vip) else { return false };
        self.unlink(i);
        let rt = &mut self.services[i];
        rt.removed = true;
        for d in rt.svc.destinations() {
            if let Ok(r) = rt.svc.remove(d.addr(), d.port()) {
                self.removed.lock().push((i, r));
            }
        }
        true
    }

    /// Makes service `i` unreachable by address.
    fn unlink(&mut self, i: usize) {
        self.by_vip.retain(|_, v| *v != i);
        self.vips.retain(|(_, v)| *v != i);
        for a in &mut self.any {
            if *a == Some(i) {
                *a = None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse_backend;
    use crate::pipeline::PipelineConfig;
    use lb_sched::ForwardMethod;

    fn spec(vip: &str, backend: &str) -> ServiceSpec {
        let mut s = ServiceSpec::new(Vip::Addr { proto: None, addr: vip.parse().unwrap() });
        s.backends = vec![parse_backend(backend).unwrap()];
        s
    }

    #[test]
    fn services_come_and_go_with_their_indices_kept() {
        let cfg = PipelineConfig::new(
            vec![spec("198.51.100.1:80", "10.0.0.1,mac=02:00:00:00:00:01")],
            Some(ForwardMethod::DirectRoute),
        );
        let mut p = Pipeline::new(&cfg, &|_| None).unwrap();
        let reg = Registry::builtin();
        let tcp = lb_sched::Protocol::Tcp;
        let a1: std::net::IpAddr = "198.51.100.1".parse().unwrap();
        let a2: std::net::IpAddr = "198.51.100.2".parse().unwrap();
        // A backend without a MAC, and no live next hops: refused, nothing added.
        assert_eq!(
            p.add_service(&spec("198.51.100.2:80", "10.0.0.2"), reg),
            Err(ConfigError::NoNextHop("10.0.0.2".parse().unwrap()))
        );
        assert_eq!(p.services().len(), 1);
        // The same address twice: refused.
        assert!(matches!(
            p.add_service(&spec("198.51.100.1:80", "10.0.0.2,mac=02:00:00:00:00:02"), reg),
            Err(ConfigError::DuplicateService(_))
        ));
        let i = p.add_service(&spec("198.51.100.2:80", "10.0.0.2,mac=02:00:00:00:00:02"), reg).unwrap();
        assert_eq!(i, 1);
        assert_eq!(p.lookup_vip(tcp, a2, 80), Some(1));
        assert_eq!(p.mac_of("10.0.0.2".parse().unwrap()), Some(MacAddr([2, 0, 0, 0, 0, 2])));
        // Removing the first: unreachable, its server reported removed, the second keeps index 1.
        assert!(p.remove_service(&Vip::Addr { proto: None, addr: "198.51.100.1:80".parse().unwrap() }));
        assert_eq!(p.lookup_vip(tcp, a1, 80), None);
        assert_eq!(p.lookup_vip(tcp, a2, 80), Some(1));
        assert!(p.services()[0].is_removed() && !p.services()[1].is_removed());
        assert_eq!(p.removed().len(), 1);
        assert_eq!(p.removed()[0].1.addr().to_string(), "10.0.0.1");
        assert!(!p.remove_service(&Vip::Addr { proto: None, addr: "198.51.100.1:80".parse().unwrap() }));
        // Added again: a new index; the old one stays removed.
        assert_eq!(p.add_service(&spec("198.51.100.1:80", "10.0.0.3,mac=02:00:00:00:00:03"), reg), Ok(2));
        assert_eq!(p.lookup_vip(tcp, a1, 80), Some(2));
        // One catch-all service a family: a second one is refused, here as at construction.
        let any = |b: &str| {
            let mut s = ServiceSpec::new(Vip::Any { v6: false });
            s.backends = vec![parse_backend(b).unwrap()];
            s
        };
        assert_eq!(p.add_service(&any("10.0.0.4,mac=02:00:00:00:00:04"), reg), Ok(3));
        assert_eq!(
            p.add_service(&any("10.0.0.5,mac=02:00:00:00:00:05"), reg),
            Err(ConfigError::DuplicateService(Vip::Any { v6: false }))
        );
        assert_eq!(p.services().len(), 4);
        let twice = PipelineConfig::new(
            vec![any("10.0.0.4,mac=02:00:00:00:00:04"), any("10.0.0.5,mac=02:00:00:00:00:05")],
            Some(ForwardMethod::DirectRoute),
        );
        assert_eq!(Pipeline::new(&twice, &|_| None).err(), Some(ConfigError::DuplicateService(Vip::Any { v6: false })));
    }
}
