//! Operator events (`--at SECS:ACTION`): parsed from the command line, applied by the driver at
//! their capture time.

use std::time::Duration;

use crate::pipeline::Action;

/// An operator action at a capture time.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// Time after the capture's first packet (0 = before it).
    pub at: Duration,
    /// What to do.
    pub action: Action,
    /// How the user wrote it.
    pub text: String,
}

/// An `--at SECS:ACTION` that does not parse: the text as given, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("--at {text:?}: {problem}")]
pub struct EventError {
    /// The event as given.
    pub text: String,
    /// What is wrong.
    pub problem: EventProblem,
}

/// What is wrong with an `--at` event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventProblem {
    /// No `:` between time and action.
    #[error("expected SECS:ACTION")]
    NoColon,
    /// The time is not a number.
    #[error("{0:?} is not a number of seconds")]
    NotSeconds(String),
    /// The time is negative or not finite.
    #[error("the time must be 0 or more seconds")]
    NegativeTime,
    /// The time is too large to be a time of the replay.
    #[error("{0:?} seconds is beyond any capture (at most {MAX_EVENT_SECS} s)")]
    TimeTooLarge(String),
    /// No `=` in the action.
    #[error("expected ACTION=ARGUMENT")]
    NoArgument,
    /// Not an address.
    #[error("{0:?} is not an address")]
    NotAddress(String),
    /// `weight=` without `ADDR:W`.
    #[error("weight=ADDR:W")]
    WeightSyntax,
    /// Not a weight.
    #[error("{0:?} is not a weight")]
    NotWeight(String),
    /// `add=` with a bad backend spec.
    #[error(transparent)]
    Backend(#[from] crate::config::SpecError),
    /// Not one of the actions.
    #[error("unknown action {0:?} (drain, weight, remove, add)")]
    UnknownAction(String),
}

/// The latest `--at` time accepted: a year. A time after the capture's end (with its loops) is
/// valid and applied at the end; one beyond this bound cannot be a capture time.
pub const MAX_EVENT_SECS: u64 = 365 * 24 * 3600;

/// Parses `SECS:ACTION` (`drain=ADDR`, `weight=ADDR:W`, `remove=ADDR`, `add=BACKEND-SPEC`).
pub fn parse_event(s: &str) -> Result<Event, EventError> {
    let err = |problem: EventProblem| EventError { text: s.to_string(), problem };
    let (secs, action) = s.split_once(':').ok_or_else(|| err(EventProblem::NoColon))?;
    let at: f64 = secs.parse().map_err(|_| err(EventProblem::NotSeconds(secs.to_string())))?;
    if !(at >= 0.0 && at.is_finite()) {
        return Err(err(EventProblem::NegativeTime));
    }
    if at > MAX_EVENT_SECS as f64 {
        return Err(err(EventProblem::TimeTooLarge(secs.to_string())));
    }
    let (verb, arg) = action.split_once('=').ok_or_else(|| err(EventProblem::NoArgument))?;
    let addr = |a: &str| a.parse().map_err(|_| err(EventProblem::NotAddress(a.to_string())));
    let action = match verb {
        "drain" => Action::Drain(addr(arg)?),
        "remove" => Action::Remove(addr(arg)?),
        "weight" => {
            let (a, w) = arg.rsplit_once(':').ok_or_else(|| err(EventProblem::WeightSyntax))?;
            let a = a.trim_start_matches('[').trim_end_matches(']');
            Action::Weight(addr(a)?, w.parse().map_err(|_| err(EventProblem::NotWeight(w.to_string())))?)
        }
        "add" => Action::Add(crate::config::parse_backend(arg).map_err(|e| err(e.into()))?),
        other => return Err(err(EventProblem::UnknownAction(other.to_string()))),
    };
    Ok(Event { at: Duration::from_secs_f64(at), action, text: s.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_parse() {
        let e = parse_event("1.5:drain=10.0.0.1").unwrap();
        assert_eq!((e.at, e.action), (Duration::from_millis(1500), Action::Drain("10.0.0.1".parse().unwrap())));
        let e = parse_event("0:weight=[2001:db8::1]:5").unwrap();
        assert_eq!(e.action, Action::Weight("2001:db8::1".parse().unwrap(), 5));
        let e = parse_event("3:add=10.0.0.9,weight=2,mac=02:00:00:00:00:09").unwrap();
        assert!(matches!(e.action, Action::Add(b) if b.weight == 2));
        for (bad, want) in [
            ("drain=1.2.3.4", "SECS:ACTION"),
            ("x:drain=1.2.3.4", "not a number"),
            ("-1:drain=1.2.3.4", "0 or more"),
            ("1:explode=1.2.3.4", "unknown action"),
            ("1:drain=nope", "not an address"),
            ("1:weight=10.0.0.1", "weight=ADDR:W"),
            ("1e20:drain=1.2.3.4", "beyond any capture"),
            ("inf:drain=1.2.3.4", "0 or more"),
        ] {
            let e = parse_event(bad).unwrap_err().to_string();
            assert!(e.starts_with(&format!("--at {bad:?}: ")) && e.contains(want), "{bad}: {e}");
        }
    }
}
