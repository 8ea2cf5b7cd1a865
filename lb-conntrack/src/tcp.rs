//! IPVS's TCP state machine as const data (`ip_vs_proto_tcp.c`; docs/ipvs.md §2).

use core::fmt;
use core::time::Duration;

use lb_sched::TcpFlags;

/// A connection's state: one of IPVS's eleven TCP states, or UDP's single state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum State {
    /// `NONE`: just created, before its first transition.
    None = 0,
    /// `ESTABLISHED`.
    Established = 1,
    /// `SYN_SENT`.
    SynSent = 2,
    /// `SYN_RECV`.
    SynRecv = 3,
    /// `FIN_WAIT`.
    FinWait = 4,
    /// `TIME_WAIT`.
    TimeWait = 5,
    /// `CLOSE`.
    Close = 6,
    /// `CLOSE_WAIT`.
    CloseWait = 7,
    /// `LAST_ACK`.
    LastAck = 8,
    /// `LISTEN`.
    Listen = 9,
    /// `SYNACK`.
    SynAck = 10,
    /// UDP's one state (`UDP`).
    Udp = 11,
}

/// Number of TCP states.
pub const TCP_STATES: usize = 11;
/// Number of states including UDP's.
pub const ALL_STATES: usize = 12;

impl State {
    /// Every state, in index order.
    pub const ALL: [State; ALL_STATES] = [
        State::None,
        State::Established,
        State::SynSent,
        State::SynRecv,
        State::FinWait,
        State::TimeWait,
        State::Close,
        State::CloseWait,
        State::LastAck,
        State::Listen,
        State::SynAck,
        State::Udp,
    ];

    /// The state with this index (0..12).
    #[inline]
    pub const fn from_index(i: u8) -> Option<State> {
        if (i as usize) < ALL_STATES {
            Some(State::ALL[i as usize])
        } else {
            None
        }
    }

    /// IPVS's name (`ipvsadm -Lnc`).
    pub const fn name(self) -> &'static str {
        match self {
            State::None => "NONE",
            State::Established => "ESTABLISHED",
            State::SynSent => "SYN_SENT",
            State::SynRecv => "SYN_RECV",
            State::FinWait => "FIN_WAIT",
            State::TimeWait => "TIME_WAIT",
            State::Close => "CLOSE",
            State::CloseWait => "CLOSE_WAIT",
            State::LastAck => "LAST_ACK",
            State::Listen => "LISTEN",
            State::SynAck => "SYNACK",
            State::Udp => "UDP",
        }
    }

    /// Whether a connection in this state counts as active (current kernels: ESTABLISHED,
    /// SYN_SENT, SYN_RECV, SYNACK). UDP connections are always inactive.
    #[inline]
    pub const fn is_active(self) -> bool {
        ACTIVE[self as usize]
    }

    /// Embryonic states (a handshake not completed): what the table evicts first when full.
    #[inline]
    pub const fn is_embryonic(self) -> bool {
        matches!(self, State::SynRecv | State::SynAck)
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The "active" set, indexed by state (reference §2.1, current kernels).
pub const ACTIVE: [bool; ALL_STATES] = [false, true, true, true, false, false, false, false, false, false, true, false];

/// Default idle timeouts per state (reference §2.1), UDP last (300 s).
pub const DEFAULT_TIMEOUTS: [Duration; ALL_STATES] = [
    Duration::from_secs(2),   // NONE
    Duration::from_secs(900), // ESTABLISHED
    Duration::from_secs(120), // SYN_SENT
    Duration::from_secs(60),  // SYN_RECV
    Duration::from_secs(120), // FIN_WAIT
    Duration::from_secs(120), // TIME_WAIT
    Duration::from_secs(10),  // CLOSE
    Duration::from_secs(60),  // CLOSE_WAIT
    Duration::from_secs(30),  // LAST_ACK
    Duration::from_secs(120), // LISTEN
    Duration::from_secs(120), // SYNACK
    Duration::from_secs(300), // UDP
];

/// The event a TCP packet stands for, by priority rst > syn > fin > ack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Event {
    /// SYN.
    Syn = 0,
    /// FIN.
    Fin = 1,
    /// ACK.
    Ack = 2,
    /// RST.
    Rst = 3,
}

impl Event {
    /// The event of a packet with these TCP flags; `None` when it has none of RST, SYN, FIN,
    /// ACK (such a packet moves the connection to CLOSE).
    #[inline]
    pub const fn from_flags(f: u8) -> Option<Event> {
        if f & TcpFlags::RST != 0 {
            Some(Event::Rst)
        } else if f & TcpFlags::SYN != 0 {
            Some(Event::Syn)
        } else if f & TcpFlags::FIN != 0 {
            Some(Event::Fin)
        } else if f & TcpFlags::ACK != 0 {
            Some(Event::Ack)
        } else {
            None
        }
    }
}

/// Which half of the connection a packet belongs to, i.e. which rows of a table apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Dir {
    /// Client → server through the director, full connection (NAT).
    Input = 0,
    /// Server → client through the director.
    Output = 1,
    /// Client → server of a half connection (NOOUTPUT: DR, TUN, local).
    InputOnly = 2,
}

/// A state table: `[direction][event][current state] -> next state`.
pub type Table = [[[State; TCP_STATES]; 4]; 3];

use State::{
    CloseWait as CW, Established as ES, FinWait as FW, LastAck as LA, Listen as LI, SynAck as SA, SynRecv as SR,
    SynSent as SS, TimeWait as TW,
};
const CL: State = State::Close;

/// `tcp_states`: the normal table.
pub const NORMAL: Table = [
    // INPUT      NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, SR],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SR, SS, SS, SS, SS, SS, LI, SR],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SR],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// `tcp_states_dos`: the secure_tcp table.
pub const SECURE: Table = [
    // INPUT      NO  ES  SS  SR  FW  TW  CL  CW  LA  LI  SA
    [
        /*syn*/ [SR, ES, ES, SR, SR, SR, SR, SR, SR, SR, SA],
        /*fin*/ [CL, CW, SS, TW, TW, TW, CL, CW, LA, LI, SA],
        /*ack*/ [ES, ES, SS, SR, FW, TW, CL, CW, CL, LI, SA],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
    // OUTPUT
    [
        /*syn*/ [SS, ES, SS, SA, SS, SS, SS, SS, SS, LI, SA],
        /*fin*/ [TW, FW, SS, TW, FW, TW, CL, TW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, LA, ES, ES],
        /*rst*/ [CL, CL, SS, CL, CL, TW, CL, CL, CL, CL, CL],
    ],
    // INPUT-ONLY
    [
        /*syn*/ [SA, ES, ES, SR, SA, SA, SA, SA, SA, SA, SA],
        /*fin*/ [CL, FW, SS, TW, FW, TW, CL, CW, LA, LI, TW],
        /*ack*/ [ES, ES, SS, ES, FW, TW, CL, CW, CL, LI, ES],
        /*rst*/ [CL, CL, CL, SR, CL, CL, CL, CL, LA, LI, CL],
    ],
];

/// The next state of a TCP connection in `cur` for a packet with TCP flags `f` in direction
/// `dir`, by `table` (`set_tcp_state`). A packet with no RST/SYN/FIN/ACK gives CLOSE. `cur` =
/// [`State::Udp`] is returned unchanged.
#[inline]
pub const fn next_state(table: &Table, dir: Dir, f: u8, cur: State) -> State {
    if matches!(cur, State::Udp) {
        return cur;
    }
    match Event::from_flags(f) {
        Some(ev) => table[dir as usize][ev as usize][cur as usize],
        None => State::Close,
    }
}

/// An event index of [`FullTable`]: an [`Event`] or none of RST/SYN/FIN/ACK (an enum so that
/// indexing a table by it needs no bounds check).
#[derive(Clone, Copy)]
#[repr(u8)]
enum Ev {
    Syn = 0,
    Fin = 1,
    Ack = 2,
    Rst = 3,
    None = 4,
}

/// The [`Ev`] of every value of the flags' low five bits (FIN, SYN, RST, PSH, ACK: the only
/// bits [`Event::from_flags`] reads).
const EV_OF: [Ev; 32] = {
    let mut t = [Ev::None; 32];
    let mut i = 0;
    while i < 32 {
        t[i] = match Event::from_flags(i as u8) {
            Some(Event::Syn) => Ev::Syn,
            Some(Event::Fin) => Ev::Fin,
            Some(Event::Ack) => Ev::Ack,
            Some(Event::Rst) => Ev::Rst,
            None => Ev::None,
        };
        i += 1;
    }
    t
};

/// A [`Table`] completed for every event and state a packet meets, so that [`next_state`] is
/// three indexings: `[direction][Ev][current state]`. The fifth event row (no RST/SYN/FIN/ACK)
/// gives CLOSE; the UDP column keeps UDP.
pub(crate) type FullTable = [[[State; ALL_STATES]; 5]; 3];

const fn full(t: &Table) -> FullTable {
    let mut out = [[[State::Close; ALL_STATES]; 5]; 3];
    let mut d = 0;
    while d < 3 {
        let mut ev = 0;
        while ev < 5 {
            let mut s = 0;
            while s < ALL_STATES {
                out[d][ev][s] = if s == State::Udp as usize {
                    State::Udp
                } else if ev == 4 {
                    State::Close
                } else {
                    t[d][ev][s]
                };
                s += 1;
            }
            ev += 1;
        }
        d += 1;
    }
    out
}

/// [`NORMAL`] and [`SECURE`] as [`FullTable`]s.
pub(crate) static NORMAL_FULL: FullTable = full(&NORMAL);
pub(crate) static SECURE_FULL: FullTable = full(&SECURE);

/// [`next_state`] by a [`FullTable`]: the same state for every input.
#[inline(always)]
pub(crate) fn next_state_full(table: &FullTable, dir: Dir, f: u8, cur: State) -> State {
    table[dir as usize][EV_OF[(f & 0x1f) as usize] as usize][cur as usize]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_full_tables_agree_with_next_state_everywhere() {
        for (t, full) in [(&NORMAL, &NORMAL_FULL), (&SECURE, &SECURE_FULL)] {
            for dir in [Dir::Input, Dir::Output, Dir::InputOnly] {
                for f in 0..=u8::MAX {
                    for cur in State::ALL {
                        assert_eq!(
                            next_state_full(full, dir, f, cur),
                            next_state(t, dir, f, cur),
                            "{dir:?} {f:#x} {cur}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn event_priority_is_rst_syn_fin_ack() {
        const SYN: u8 = TcpFlags::SYN;
        const FIN: u8 = TcpFlags::FIN;
        const RST: u8 = TcpFlags::RST;
        const ACK: u8 = TcpFlags::ACK;
        const PSH: u8 = TcpFlags::PSH;
        assert_eq!(Event::from_flags(RST | SYN | FIN | ACK), Some(Event::Rst));
        assert_eq!(Event::from_flags(SYN | FIN | ACK), Some(Event::Syn));
        assert_eq!(Event::from_flags(FIN | ACK), Some(Event::Fin));
        assert_eq!(Event::from_flags(ACK | PSH), Some(Event::Ack));
        assert_eq!(Event::from_flags(PSH), None);
        assert_eq!(next_state(&NORMAL, Dir::Input, PSH, State::Established), State::Close);
    }

    #[test]
    fn active_set_and_names() {
        let active: Vec<_> = State::ALL.iter().filter(|s| s.is_active()).map(|s| s.name()).collect();
        assert_eq!(active, ["ESTABLISHED", "SYN_SENT", "SYN_RECV", "SYNACK"]);
        assert_eq!(DEFAULT_TIMEOUTS[State::Udp as usize], Duration::from_secs(300));
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(State::from_index(i as u8), Some(*s));
        }
        assert_eq!(State::from_index(12), None);
    }
}
