//! The tracker's configuration: IPVS's knobs with IPVS's defaults.

use core::time::Duration;

use crate::tcp::{State, ALL_STATES, DEFAULT_TIMEOUTS};

/// Idle timeouts per state (`ipvsadm --set` / the per-state timeout table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeouts(pub [Duration; ALL_STATES]);

impl Default for Timeouts {
    fn default() -> Self {
        Timeouts(DEFAULT_TIMEOUTS)
    }
}

impl Timeouts {
    /// The timeout of `state`.
    #[inline]
    pub fn get(&self, state: State) -> Duration {
        self.0[state as usize]
    }

    /// Sets the timeout of `state`.
    pub fn set(&mut self, state: State, d: Duration) {
        self.0[state as usize] = d;
    }

    /// Parses `STATE=SECS` as `replay --timeout` and ipvsadm spell it: a state name
    /// (`established`, `syn_recv`, `fin_wait`, `udp`, ..., case-insensitive; `tcp` means
    /// ESTABLISHED and `tcpfin` FIN_WAIT, as `ipvsadm --set tcp tcpfin udp`).
    pub fn parse_assignment(&mut self, s: &str) -> Result<(), TimeoutError> {
        let (name, secs) =
            s.split_once('=').ok_or_else(|| TimeoutError::MissingEquals { assignment: s.to_string() })?;
        let secs: u64 = secs
            .trim()
            .parse()
            .map_err(|_| TimeoutError::NotSeconds { assignment: s.to_string(), value: secs.trim().to_string() })?;
        if !(1..=MAX_TIMEOUT_SECS).contains(&secs) {
            return Err(TimeoutError::OutOfRange { assignment: s.to_string(), secs });
        }
        let name = name.trim().to_ascii_uppercase().replace('-', "_");
        let state = match name.as_str() {
            "TCP" => State::Established,
            "TCPFIN" => State::FinWait,
            other => State::ALL
                .into_iter()
                .find(|st| st.name() == other)
                .ok_or_else(|| TimeoutError::UnknownState { assignment: s.to_string(), name: name.clone() })?,
        };
        self.set(state, Duration::from_secs(secs));
        Ok(())
    }
}

/// The longest timeout [`Timeouts::parse_assignment`] takes, in seconds: IPVS keeps timeouts as
/// jiffies in an `int`, so at HZ = 1000 nothing past 2^31 ms (24.8 days) can be set.
pub const MAX_TIMEOUT_SECS: u64 = 2_147_483;

/// Why [`Timeouts::parse_assignment`] rejected a `STATE=SECS` assignment. Each variant keeps
/// the whole assignment as given, which its message quotes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TimeoutError {
    /// No `=` between the state and the seconds.
    #[error("timeout {assignment:?}: expected STATE=SECS")]
    MissingEquals {
        /// The assignment as given.
        assignment: String,
    },
    /// The part after `=` is not a whole number of seconds.
    #[error("timeout {assignment:?}: {value:?} is not a number of seconds")]
    NotSeconds {
        /// The assignment as given.
        assignment: String,
        /// The part after `=`, trimmed.
        value: String,
    },
    /// The part before `=` names no state.
    #[error("timeout {assignment:?}: unknown state {name:?}; known: {}, tcp, tcpfin", known_states())]
    UnknownState {
        /// The assignment as given.
        assignment: String,
        /// The state name as looked up (trimmed, upper-cased, `-` read as `_`).
        name: String,
    },
    /// Zero seconds, or more than [`MAX_TIMEOUT_SECS`].
    #[error("timeout {assignment:?}: {secs} s is out of range (1 to {MAX_TIMEOUT_SECS} s)")]
    OutOfRange {
        /// The assignment as given.
        assignment: String,
        /// The seconds given.
        secs: u64,
    },
}

/// The state names [`Timeouts::parse_assignment`] knows, lower-case, comma-separated.
fn known_states() -> String {
    let known: Vec<_> = State::ALL.iter().map(|st| st.name().to_ascii_lowercase()).collect();
    known.join(", ")
}

/// What the table does when it is full (documented policy, see [`crate::ConnTable`]).
pub const EVICTION_PROBES: usize = 8;

/// Tracker configuration. Every IPVS knob the behaviour depends on, with IPVS's default.
#[derive(Clone, Debug)]
pub struct Config {
    /// Maximum number of connections and templates held (IPv4 and IPv6 together).
    pub max_connections: usize,
    /// `sloppy_tcp` (default 0): a non-SYN TCP packet may create a connection.
    pub sloppy_tcp: bool,
    /// `secure_tcp` (default 0). IPVS applies the secure table at levels ≥ 2 under memory
    /// pressure; a user-space tracker has no such signal, so `true` means level 3: always.
    pub secure_tcp: bool,
    /// `conn_reuse_mode` (default 1): bit 0 reschedules a SYN that meets a TIME_WAIT or CLOSE
    /// connection; bit 1 also one in FIN_WAIT on a half connection.
    pub conn_reuse_mode: u8,
    /// `expire_nodest_conn` (default 0): a packet of a connection whose destination was removed
    /// expires it (and is scheduled again) instead of being dropped.
    pub expire_nodest_conn: bool,
    /// `expire_quiescent_template` (default 0): a persistence template whose destination is
    /// quiesced (weight 0) is no longer used.
    pub expire_quiescent_template: bool,
    /// Idle timeouts per state.
    pub timeouts: Timeouts,
    /// Number of lock shards per address family (a power of two; 0 picks one from
    /// `max_connections`).
    pub shards: usize,
    /// Seed of the (non-destination-deciding) table hash; `None` draws a random one per table,
    /// as IPVS draws `ip_vs_conn_rnd` per boot, so clients cannot aim at one bucket.
    pub hash_seed: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_connections: 1 << 20,
            sloppy_tcp: false,
            secure_tcp: false,
            conn_reuse_mode: 1,
            expire_nodest_conn: false,
            expire_quiescent_template: false,
            timeouts: Timeouts::default(),
            shards: 0,
            hash_seed: None,
        }
    }
}

/// Per-service parameters the tracker needs (`ipvsadm -A ... [-p T] [-M MASK] [-o]`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceParams {
    /// Persistence: every connection of a client (source masked by the netmask) goes to the
    /// same destination while its template lives.
    pub persistence: Option<Persistence>,
    /// One-packet scheduling (UDP `-o`): each datagram scheduled on its own, nothing kept.
    pub one_packet: bool,
    /// A catch-all service (like a fwmark service): templates are per client across every
    /// virtual address and port.
    pub catch_all: bool,
}

/// Persistence parameters (`-p TIMEOUT -M NETMASK`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Persistence {
    /// Template timeout (ipvsadm's default 300 s).
    pub timeout: Duration,
    /// IPv4 prefix length of the client mask (default 32).
    pub v4_prefix: u8,
    /// IPv6 prefix length of the client mask (default 128).
    pub v6_prefix: u8,
}

impl Default for Persistence {
    fn default() -> Self {
        Persistence { timeout: Duration::from_secs(300), v4_prefix: 32, v6_prefix: 128 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeout_assignments() {
        let mut t = Timeouts::default();
        t.parse_assignment("established=60").unwrap();
        t.parse_assignment("SYN_RECV=5").unwrap();
        t.parse_assignment("tcpfin=7").unwrap();
        t.parse_assignment("udp=30").unwrap();
        assert_eq!(t.get(State::Established), Duration::from_secs(60));
        assert_eq!(t.get(State::SynRecv), Duration::from_secs(5));
        assert_eq!(t.get(State::FinWait), Duration::from_secs(7));
        assert_eq!(t.get(State::Udp), Duration::from_secs(30));
        assert!(t.parse_assignment("bogus=1").unwrap_err().to_string().contains("unknown state"));
        assert!(t.parse_assignment("udp=x").unwrap_err().to_string().contains("not a number"));
        assert!(t.parse_assignment("udp").unwrap_err().to_string().contains("STATE=SECS"));
    }

    /// The messages are exactly the ones `parse_assignment` returned as strings before it had
    /// an error type (`replay --timeout` prints them).
    #[test]
    fn timeout_error_missing_equals_text() {
        let e = Timeouts::default().parse_assignment("udp").unwrap_err();
        assert_eq!(e, TimeoutError::MissingEquals { assignment: "udp".into() });
        assert_eq!(e.to_string(), r#"timeout "udp": expected STATE=SECS"#);
    }

    #[test]
    fn timeout_error_not_seconds_text() {
        let e = Timeouts::default().parse_assignment("udp= 1.5 ").unwrap_err();
        assert_eq!(e, TimeoutError::NotSeconds { assignment: "udp= 1.5 ".into(), value: "1.5".into() });
        assert_eq!(e.to_string(), r#"timeout "udp= 1.5 ": "1.5" is not a number of seconds"#);
    }

    #[test]
    fn timeout_error_unknown_state_text() {
        let e = Timeouts::default().parse_assignment(" bogus-state =1").unwrap_err();
        assert_eq!(e, TimeoutError::UnknownState { assignment: " bogus-state =1".into(), name: "BOGUS_STATE".into() });
        assert_eq!(
            e.to_string(),
            r#"timeout " bogus-state =1": unknown state "BOGUS_STATE"; known: none, established, syn_sent, syn_recv, fin_wait, time_wait, close, close_wait, last_ack, listen, synack, udp, tcp, tcpfin"#
        );
        let _: &dyn std::error::Error = &e;
    }

    #[test]
    fn timeouts_out_of_range_are_refused() {
        let mut t = Timeouts::default();
        for bad in ["udp=0", "established=2147484", "tcp=99999999999999"] {
            let e = t.parse_assignment(bad).unwrap_err();
            assert!(matches!(e, TimeoutError::OutOfRange { .. }), "{bad}: {e}");
            assert!(e.to_string().contains("out of range (1 to 2147483 s)"), "{e}");
        }
        t.parse_assignment("established=2147483").unwrap();
        assert_eq!(t.get(State::Established), Duration::from_secs(2_147_483));
    }
}
