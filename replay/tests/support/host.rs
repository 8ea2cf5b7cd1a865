//! What the machine running a test has: root, commands, and the rule for a missing one (skip,
//! loudly; fail under `CI=true`). Needs nothing of lb-replay, so a test built without the `cli`
//! feature includes this file alone.

/// Whether a test's requirement is met; when it is not, says that the test is skipped and why,
/// except under `CI=true`, where a skip is a failure.
pub fn available(what: &str, ok: bool) -> bool {
    if ok {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is missing, and under CI=true this test may not be skipped");
    }
    eprintln!("SKIPPED: {what} is missing on this machine");
    false
}

/// Whether this process runs as root (uid 0, from `/proc/self/status`).
#[allow(dead_code)] // not every test binary asks
pub fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

/// Whether `cmd arg` runs and succeeds (a tool being installed).
#[allow(dead_code)] // not every test binary asks
pub fn have(cmd: &str, arg: &str) -> bool {
    std::process::Command::new(cmd)
        .arg(arg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts `dumpcap` on interface `iface` of network namespace `ns`, writing what `filter`
/// matches to `file`; returns once it has begun writing (its file header), so nothing sent after
/// the call is missed.
#[allow(dead_code)] // not every test binary captures
pub fn start_dumpcap(ns: &str, iface: &str, file: &std::path::Path, filter: &str) -> std::process::Child {
    use std::time::{Duration, Instant};
    let _ = std::fs::remove_file(file);
    let child = std::process::Command::new("ip")
        .args(["netns", "exec", ns, "dumpcap", "-q", "-i", iface, "-f", filter, "-w"])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("dumpcap");
    let start = Instant::now();
    while std::fs::metadata(file).map_or(true, |m| m.len() == 0) && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    child
}
