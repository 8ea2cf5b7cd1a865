//! Every cell of the six TCP transition tables, checked against docs/ipvs.md §2.3–2.4.
//!
//! The tables below are the reference's own text, pasted verbatim (bold markers and all) and
//! parsed here: they are not read back from the crate's constants.

use lb_conntrack::tcp::{self, Dir, State};
use lb_sched::TcpFlags;

const REFERENCE: &str = r#"
### 2.3 `tcp_states` (normal). Cells show the next state; columns are the current state.

Abbreviations: NO=NONE, ES=ESTABLISHED, SS=SYN_SENT, SR=SYN_RECV, FW=FIN_WAIT, TW=TIME_WAIT, CL=CLOSE, CW=CLOSE_WAIT, LA=LAST_ACK, LI=LISTEN, SA=SYNACK.

**INPUT**
|ev|NO|ES|SS|SR|FW|TW|CL|CW|LA|LI|SA|
|---|---|---|---|---|---|---|---|---|---|---|---|
|syn|SR|ES|ES|SR|SR|SR|SR|SR|SR|SR|SR|
|fin|CL|CW|SS|TW|TW|TW|CL|CW|LA|LI|TW|
|ack|ES|ES|SS|ES|FW|TW|CL|CW|CL|LI|ES|
|rst|CL|CL|CL|SR|CL|CL|CL|CL|LA|LI|SR|

**OUTPUT**
|ev|NO|ES|SS|SR|FW|TW|CL|CW|LA|LI|SA|
|---|---|---|---|---|---|---|---|---|---|---|---|
|syn|SS|ES|SS|SR|SS|SS|SS|SS|SS|LI|SR|
|fin|TW|FW|SS|TW|FW|TW|CL|TW|LA|LI|TW|
|ack|ES|ES|SS|ES|FW|TW|CL|CW|LA|ES|ES|
|rst|CL|CL|SS|CL|CL|TW|CL|CL|CL|CL|CL|

**INPUT-ONLY** (DR/TUN/LOCALNODE)
|ev|NO|ES|SS|SR|FW|TW|CL|CW|LA|LI|SA|
|---|---|---|---|---|---|---|---|---|---|---|---|
|syn|SR|ES|ES|SR|SR|SR|SR|SR|SR|SR|SR|
|fin|CL|**FW**|SS|TW|FW|TW|CL|CW|LA|LI|TW|
|ack|ES|ES|SS|ES|FW|TW|CL|CW|CL|LI|ES|
|rst|CL|CL|CL|SR|CL|CL|CL|CL|LA|LI|**CL**|

### 2.4 `tcp_states_dos` (secure_tcp)

**INPUT**
|ev|NO|ES|SS|SR|FW|TW|CL|CW|LA|LI|SA|
|---|---|---|---|---|---|---|---|---|---|---|---|
|syn|SR|ES|ES|SR|SR|SR|SR|SR|SR|SR|SA|
|fin|CL|CW|SS|TW|TW|TW|CL|CW|LA|LI|SA|
|ack|ES|ES|SS|**SR**|FW|TW|CL|CW|CL|LI|SA|
|rst|CL|CL|CL|SR|CL|CL|CL|CL|LA|LI|CL|

**OUTPUT**
|ev|NO|ES|SS|SR|FW|TW|CL|CW|LA|LI|SA|
|---|---|---|---|---|---|---|---|---|---|---|---|
|syn|SS|ES|SS|**SA**|SS|SS|SS|SS|SS|LI|SA|
|fin|TW|FW|SS|TW|FW|TW|CL|TW|LA|LI|TW|
|ack|ES|ES|SS|ES|FW|TW|CL|CW|LA|ES|ES|
|rst|CL|CL|SS|CL|CL|TW|CL|CL|CL|CL|CL|

**INPUT-ONLY**
|ev|NO|ES|SS|SR|FW|TW|CL|CW|LA|LI|SA|
|---|---|---|---|---|---|---|---|---|---|---|---|
|syn|**SA**|ES|ES|SR|SA|SA|SA|SA|SA|SA|SA|
|fin|CL|FW|SS|TW|FW|TW|CL|CW|LA|LI|TW|
|ack|ES|ES|SS|ES|FW|TW|CL|CW|CL|LI|ES|
|rst|CL|CL|CL|SR|CL|CL|CL|CL|LA|LI|CL|

"#;

fn state(abbrev: &str) -> State {
    match abbrev.trim().trim_matches('*') {
        "NO" => State::None,
        "ES" => State::Established,
        "SS" => State::SynSent,
        "SR" => State::SynRecv,
        "FW" => State::FinWait,
        "TW" => State::TimeWait,
        "CL" => State::Close,
        "CW" => State::CloseWait,
        "LA" => State::LastAck,
        "LI" => State::Listen,
        "SA" => State::SynAck,
        other => panic!("unknown abbreviation {other:?}"),
    }
}

/// (table, direction, event flags, current, expected next) for every cell of the reference.
fn cells() -> Vec<(bool, Dir, u8, State, State)> {
    let mut out = Vec::new();
    let (mut secure, mut dir) = (false, Dir::Input);
    let mut columns: Vec<State> = Vec::new();
    for line in REFERENCE.lines() {
        let l = line.trim();
        if l.starts_with("### 2.4") {
            secure = true;
        } else if l == "**INPUT**" {
            dir = Dir::Input;
        } else if l == "**OUTPUT**" {
            dir = Dir::Output;
        } else if l.starts_with("**INPUT-ONLY**") {
            dir = Dir::InputOnly;
        } else if l.starts_with("|ev|") {
            columns = l.trim_matches('|').split('|').skip(1).map(state).collect();
        } else if l.starts_with("|syn|") || l.starts_with("|fin|") || l.starts_with("|ack|") || l.starts_with("|rst|") {
            let mut cols = l.trim_matches('|').split('|');
            let ev = match cols.next().unwrap() {
                "syn" => TcpFlags::SYN,
                "fin" => TcpFlags::FIN,
                "ack" => TcpFlags::ACK,
                _ => TcpFlags::RST,
            };
            for (cur, next) in columns.iter().zip(cols) {
                out.push((secure, dir, ev, *cur, state(next)));
            }
        }
    }
    out
}

#[test]
fn every_cell_of_the_six_tables_matches_the_reference() {
    let cells = cells();
    // 2 tables x 3 directions x 4 events x 11 states.
    assert_eq!(cells.len(), 2 * 3 * 4 * 11);
    let mut wrong = Vec::new();
    for (secure, dir, ev, cur, want) in cells {
        let table = if secure { &tcp::SECURE } else { &tcp::NORMAL };
        let got = tcp::next_state(table, dir, ev, cur);
        if got != want {
            wrong.push(format!(
                "{} {dir:?} ev {ev:#x} from {cur}: got {got}, want {want}",
                if secure { "secure" } else { "normal" }
            ));
        }
    }
    assert!(wrong.is_empty(), "{} cells differ:\n{}", wrong.len(), wrong.join("\n"));
}

#[test]
fn combined_flags_follow_the_event_priority() {
    // SYN+ACK is a syn event, FIN+ACK a fin event, RST+ACK an rst event.
    assert_eq!(
        tcp::next_state(&tcp::NORMAL, Dir::Output, TcpFlags::SYN | TcpFlags::ACK, State::SynRecv),
        State::SynRecv
    );
    assert_eq!(
        tcp::next_state(&tcp::NORMAL, Dir::Input, TcpFlags::FIN | TcpFlags::ACK, State::Established),
        State::CloseWait
    );
    assert_eq!(
        tcp::next_state(&tcp::NORMAL, Dir::InputOnly, TcpFlags::RST | TcpFlags::ACK, State::Established),
        State::Close
    );
    // No SYN/FIN/ACK/RST at all: CLOSE, from any state and table.
    for s in State::ALL.iter().take(11) {
        assert_eq!(tcp::next_state(&tcp::SECURE, Dir::Input, TcpFlags::PSH, *s), State::Close);
    }
}
