//! `rules_file`: any text as an `ipvsadm-save -n` rules file through `lb_replay::rules::parse`,
//! and what it accepts through `Pipeline::new`.
//!
//! Asserts: no panic; the rules parse, or the error is a line error whose number is a line of
//! the text (1-based, at most the number of lines) and whose text is the file, the line and the
//! line error's (non-empty) message; accepted rules build a pipeline or give a configuration
//! error, never a panic.
#![no_main]

use std::path::Path;

use lb_replay::pipeline::{Pipeline, PipelineConfig};
use lb_replay::rules::{parse, RulesError};
use lb_rewrite::MacAddr;
use lb_sched::ForwardMethod;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let services = match parse(&text, Path::new("fuzz.rules")) {
        Ok(s) => s,
        Err(RulesError::Line { line, error, .. }) => {
            let lines = text.lines().count();
            assert!((1..=lines).contains(&line), "error at line {line} of a {lines}-line text: {error}");
            let message = error.to_string();
            assert!(!message.is_empty(), "{error:?}");
            let shown = parse(&text, Path::new("fuzz.rules")).unwrap_err().to_string();
            assert_eq!(shown, format!("fuzz.rules:{line}: {message}"));
            return;
        }
        // No -A line at all (empty, comments, blank lines): said as such.
        Err(e @ RulesError::Empty { .. }) => {
            assert!(!text.lines().any(|l| l.split('#').next().is_some_and(|l| !l.trim().is_empty())), "{e}");
            assert!(e.to_string().contains("no virtual service"), "{e}");
            return;
        }
        Err(e) => panic!("parsing text gave an unexpected error: {e}"),
    };
    let cfg = PipelineConfig {
        services,
        mode: Some(ForwardMethod::DirectRoute),
        conntrack: lb_conntrack::Config { max_connections: 1024, ..Default::default() },
        mtu: 1500,
        tun_src: vec!["192.0.2.254".parse().unwrap(), "2001:db8::fe".parse().unwrap()],
        director_ips: vec![],
        neigh: Default::default(),
        director_mac: None,
        future_backends: Vec::new(),
        live_next_hops: None,
    };
    let _ = Pipeline::new(&cfg, &|_| Some(MacAddr([2, 0, 0, 0, 0, 1])));
});
