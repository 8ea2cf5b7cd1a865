//! The `bpf()` system call: the attribute layouts (prefixes of the kernel's `union bpf_attr`),
//! the call itself, and map operations with errors that name the map.

use std::collections::HashSet;
use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::asm::Insn;
use super::KEY_LEN;
use crate::xdp::XdpError;

// bpf() commands.
pub(super) const MAP_CREATE: u32 = 0;
pub(super) const MAP_LOOKUP_ELEM: u32 = 1;
pub(super) const MAP_UPDATE_ELEM: u32 = 2;
pub(super) const MAP_DELETE_ELEM: u32 = 3;
pub(super) const MAP_GET_NEXT_KEY: u32 = 4;
pub(super) const PROG_LOAD: u32 = 5;
pub(super) const PROG_TEST_RUN: u32 = 10;
pub(super) const LINK_CREATE: u32 = 28;
// Map and program types, attach type, flags.
pub(super) const MAP_HASH: u32 = 1;
pub(super) const MAP_ARRAY: u32 = 2;
pub(super) const MAP_PERCPU_ARRAY: u32 = 6;
pub(super) const MAP_XSKMAP: u32 = 17;
pub(super) const PROG_TYPE_XDP: u32 = 6;
pub(super) const ATTACH_XDP: u32 = 37;
pub(super) const XDP_FLAGS_SKB_MODE: u32 = 2;
pub(super) const XDP_FLAGS_DRV_MODE: u32 = 4;
/// The largest frame BPF_PROG_TEST_RUN takes for XDP: a page minus the headroom and the
/// `skb_shared_info` tail room (320 bytes on 64-bit kernels).
pub(super) const TEST_RUN_MAX: usize = 4096 - 256 - 320;
pub(super) const VERIFIER_LOG: usize = 1 << 20;

#[repr(C)]
#[derive(Default)]
pub(super) struct MapCreateAttr {
    pub(super) map_type: u32,
    pub(super) key_size: u32,
    pub(super) value_size: u32,
    pub(super) max_entries: u32,
    pub(super) map_flags: u32,
    pub(super) inner_map_fd: u32,
    pub(super) numa_node: u32,
    pub(super) map_name: [u8; 16],
}

#[repr(C)]
#[derive(Default)]
pub(super) struct MapElemAttr {
    pub(super) map_fd: u32,
    pub(super) _pad: u32,
    pub(super) key: u64,
    pub(super) value: u64,
    pub(super) flags: u64,
}

#[repr(C)]
#[derive(Default)]
pub(super) struct ProgLoadAttr {
    pub(super) prog_type: u32,
    pub(super) insn_cnt: u32,
    pub(super) insns: u64,
    pub(super) license: u64,
    pub(super) log_level: u32,
    pub(super) log_size: u32,
    pub(super) log_buf: u64,
    pub(super) kern_version: u32,
    pub(super) prog_flags: u32,
    pub(super) prog_name: [u8; 16],
    pub(super) prog_ifindex: u32,
    pub(super) expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
pub(super) struct LinkCreateAttr {
    pub(super) prog_fd: u32,
    pub(super) target_ifindex: u32,
    pub(super) attach_type: u32,
    pub(super) flags: u32,
}

#[repr(C)]
#[derive(Default)]
pub(super) struct TestRunAttr {
    pub(super) prog_fd: u32,
    pub(super) retval: u32,
    pub(super) data_size_in: u32,
    pub(super) data_size_out: u32,
    pub(super) data_in: u64,
    pub(super) data_out: u64,
    pub(super) repeat: u32,
    pub(super) duration: u32,
    pub(super) ctx_size_in: u32,
    pub(super) ctx_size_out: u32,
    pub(super) ctx_in: u64,
    pub(super) ctx_out: u64,
    pub(super) flags: u32,
    pub(super) cpu: u32,
}

/// `struct xdp_md`, the context given to a test run.
#[repr(C)]
#[derive(Default)]
pub(super) struct XdpMd {
    pub(super) data: u32,
    pub(super) data_end: u32,
    pub(super) data_meta: u32,
    pub(super) ingress_ifindex: u32,
    pub(super) rx_queue_index: u32,
    pub(super) egress_ifindex: u32,
}

/// Calls `bpf(cmd, attr, sizeof attr)`: the result, or the errno.
pub(super) fn sys_bpf<T>(cmd: u32, attr: &mut T) -> Result<i64, i32> {
    // SAFETY: `attr` is a live, exclusively borrowed `#[repr(C)]` struct laid out as the prefix
    // of the kernel's `union bpf_attr` for `cmd`, and its size is passed with it. Every pointer
    // inside it was set by the caller from a buffer that lives across this call (keys, values,
    // instructions, the licence, the log, test frames), with the lengths the kernel reads or
    // writes through them given in the same struct.
    let r = unsafe {
        libc::syscall(libc::SYS_bpf, cmd as libc::c_long, attr as *mut T, std::mem::size_of::<T>() as libc::c_long)
    };
    if r < 0 {
        Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO))
    } else {
        Ok(r as i64)
    }
}

pub(super) fn bpf_error(what: impl Into<String>, errno: i32, log: String) -> XdpError {
    let what = what.into();
    if errno == libc::EPERM {
        XdpError::NotPermitted(format!("{what}: the XDP program needs CAP_BPF and CAP_NET_ADMIN"))
    } else {
        XdpError::Bpf { what, errno, log }
    }
}

/// A syscall result that is a new file descriptor.
pub(super) fn owned_fd(what: &str, r: Result<i64, i32>) -> Result<OwnedFd, XdpError> {
    let fd = r.map_err(|e| bpf_error(what, e, String::new()))?;
    let fd = i32::try_from(fd).map_err(|_| bpf_error(what, libc::EBADF, String::new()))?;
    // SAFETY: the kernel just returned `fd` as a new file descriptor of this process, owned by
    // nobody else: the `OwnedFd` becomes its only owner and closes it once.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

pub(super) fn name16(name: &str) -> [u8; 16] {
    let mut n = [0u8; 16];
    let b = name.as_bytes();
    let len = b.len().min(15);
    n[..len].copy_from_slice(&b[..len]);
    n
}

pub(super) fn map_create(
    name: &str,
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
) -> Result<OwnedFd, XdpError> {
    let mut attr = MapCreateAttr {
        map_type,
        key_size,
        value_size,
        max_entries: max_entries.max(1),
        map_name: name16(name),
        ..Default::default()
    };
    owned_fd(&format!("creating map {name} ({} entries)", attr.max_entries), sys_bpf(MAP_CREATE, &mut attr))
}

/// One map of the program: its fd and name (for errors).
#[derive(Debug)]
pub(super) struct Map {
    pub(super) fd: OwnedFd,
    pub(super) name: &'static str,
    pub(super) max_entries: u32,
}

impl Map {
    pub(super) fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }

    pub(super) fn update(&self, key: &[u8], value: &[u8]) -> Result<(), XdpError> {
        let mut attr = MapElemAttr {
            map_fd: self.raw() as u32,
            key: key.as_ptr() as u64,
            value: value.as_ptr() as u64,
            ..Default::default()
        };
        sys_bpf(MAP_UPDATE_ELEM, &mut attr)
            .map(drop)
            .map_err(|e| bpf_error(format!("updating map {}", self.name), e, String::new()))
    }

    pub(super) fn delete(&self, key: &[u8]) -> Result<(), XdpError> {
        let mut attr = MapElemAttr { map_fd: self.raw() as u32, key: key.as_ptr() as u64, ..Default::default() };
        match sys_bpf(MAP_DELETE_ELEM, &mut attr) {
            Ok(_) | Err(libc::ENOENT) => Ok(()),
            Err(e) => Err(bpf_error(format!("deleting from map {}", self.name), e, String::new())),
        }
    }

    /// Reads `value` (its length the map's value size); false when the key is absent.
    pub(super) fn lookup(&self, key: &[u8], value: &mut [u8]) -> Result<bool, XdpError> {
        let mut attr = MapElemAttr {
            map_fd: self.raw() as u32,
            key: key.as_ptr() as u64,
            value: value.as_mut_ptr() as u64,
            ..Default::default()
        };
        match sys_bpf(MAP_LOOKUP_ELEM, &mut attr) {
            Ok(_) => Ok(true),
            Err(libc::ENOENT) => Ok(false),
            Err(e) => Err(bpf_error(format!("reading map {}", self.name), e, String::new())),
        }
    }

    /// Every key of a hash map with [`KEY_LEN`]-byte keys.
    pub(super) fn keys(&self) -> Result<Vec<[u8; KEY_LEN]>, XdpError> {
        let mut keys = Vec::new();
        let mut next = [0u8; KEY_LEN];
        let mut prev: Option<[u8; KEY_LEN]> = None;
        // A map never holds more than max_entries keys; the bound also ends the walk should the
        // map change under it.
        for _ in 0..=self.max_entries {
            let mut attr = MapElemAttr {
                map_fd: self.raw() as u32,
                key: prev.as_ref().map_or(0, |k| k.as_ptr() as u64),
                value: next.as_mut_ptr() as u64,
                ..Default::default()
            };
            match sys_bpf(MAP_GET_NEXT_KEY, &mut attr) {
                Ok(_) => {
                    keys.push(next);
                    prev = Some(next);
                }
                Err(libc::ENOENT) => break,
                Err(e) => return Err(bpf_error(format!("listing map {}", self.name), e, String::new())),
            }
        }
        Ok(keys)
    }

    /// Makes the map hold exactly `want` (value 1 each): stale keys deleted first (freeing room),
    /// then every wanted key written.
    pub(super) fn replace(&self, want: &HashSet<[u8; KEY_LEN]>) -> Result<(), XdpError> {
        if want.len() > self.max_entries as usize {
            return Err(XdpError::Size(format!(
                "{} entries for map {}, which holds {}",
                want.len(),
                self.name,
                self.max_entries
            )));
        }
        for k in self.keys()? {
            if !want.contains(&k) {
                self.delete(&k)?;
            }
        }
        for k in want {
            self.update(k, &1u32.to_ne_bytes())?;
        }
        Ok(())
    }
}

pub(super) fn ifindex(iface: &str) -> Result<u32, XdpError> {
    let name = CString::new(iface).map_err(|_| XdpError::NoSuchInterface(iface.into()))?;
    // SAFETY: `name` is a NUL-terminated string that lives across the call; if_nametoindex only
    // reads it.
    let idx = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if idx == 0 {
        Err(XdpError::NoSuchInterface(iface.into()))
    } else {
        Ok(idx)
    }
}

/// The number of possible CPUs (the slots of a per-CPU value): one past the highest CPU in
/// `/sys/devices/system/cpu/possible` (`0-3`, `0,2-5`).
pub(super) fn possible_cpus() -> Result<usize, XdpError> {
    let s = std::fs::read_to_string("/sys/devices/system/cpu/possible")
        .map_err(|e| XdpError::Interface(format!("/sys/devices/system/cpu/possible: {e}")))?;
    let highest = s
        .trim()
        .split([',', '-'])
        .filter_map(|n| n.trim().parse::<usize>().ok())
        .max()
        .ok_or_else(|| XdpError::Interface(format!("/sys/devices/system/cpu/possible: {:?}", s.trim())))?;
    Ok(highest.saturating_add(1).min(1 << 16))
}

/// Loads an XDP program (licence GPL: `bpf_redirect_map` needs it). When the kernel refuses it,
/// it is loaded again with the verifier's log, which the error carries.
pub(super) fn prog_load(insns: &[Insn]) -> Result<OwnedFd, XdpError> {
    let bytes: Vec<u8> = insns.iter().flat_map(|i| i.to_bytes()).collect();
    let license = b"GPL\0";
    let load = |log: &mut [u8]| {
        let mut attr = ProgLoadAttr {
            prog_type: PROG_TYPE_XDP,
            insn_cnt: insns.len() as u32,
            insns: bytes.as_ptr() as u64,
            license: license.as_ptr() as u64,
            log_level: u32::from(!log.is_empty()),
            log_size: log.len() as u32,
            log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
            prog_name: name16("lbkit_director"),
            expected_attach_type: ATTACH_XDP,
            ..Default::default()
        };
        sys_bpf(PROG_LOAD, &mut attr)
    };
    let first = match load(&mut []) {
        Ok(fd) => return owned_fd("loading the XDP program", Ok(fd)),
        Err(libc::EPERM) => return Err(bpf_error("loading the XDP program", libc::EPERM, String::new())),
        Err(e) => e,
    };
    let mut log = vec![0u8; VERIFIER_LOG];
    match load(&mut log) {
        // Refused once, accepted the second time: keep it.
        Ok(fd) => owned_fd("loading the XDP program", Ok(fd)),
        Err(errno) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).into_owned();
            let what = format!("loading the XDP program (refused, errno {first} without the log)");
            Err(bpf_error(what, errno, text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xdp::bpf::asm::{Insn, R0};

    fn root() -> bool {
        let root = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(|l| l.split_whitespace().nth(1) == Some("0")))
            .unwrap_or(false);
        if !root {
            assert!(std::env::var("CI").map_or(true, |v| v != "true"), "root is missing, and CI=true forbids skipping");
            eprintln!("SKIPPED: root (loading a BPF program) is missing on this machine");
        }
        root
    }

    #[test]
    fn a_refused_program_reports_the_verifier_log() {
        if !root() {
            return;
        }
        // `exit` with R0 never written: the verifier refuses to return an uninitialised value.
        let e = prog_load(&[Insn::exit()]).unwrap_err();
        match &e {
            XdpError::Bpf { errno, log, .. } => {
                assert_eq!(*errno, libc::EACCES, "{e}");
                assert!(log.contains("R0 !read_ok"), "{log}");
            }
            other => panic!("{other}"),
        }
        assert!(e.to_string().contains("verifier log"), "{e}");
        // The same with R0 set is accepted.
        prog_load(&[Insn::mov_imm(R0, 2), Insn::exit()]).unwrap();
    }

    #[test]
    fn map_errors_name_the_map() {
        if !root() {
            return;
        }
        let fd = map_create("lbkit_test", 1, KEY_LEN as u32, 4, 2).unwrap();
        let m = Map { fd, name: "lbkit_test", max_entries: 2 };
        let keys: HashSet<[u8; KEY_LEN]> = (1..=3u8).map(|i| [i; KEY_LEN]).collect();
        let e = m.replace(&keys).unwrap_err().to_string();
        assert!(e.contains("lbkit_test") && e.contains("3 entries"), "{e}");
        let two: HashSet<[u8; KEY_LEN]> = keys.iter().copied().take(2).collect();
        m.replace(&two).unwrap();
        let mut got = m.keys().unwrap();
        got.sort();
        let mut want: Vec<_> = two.into_iter().collect();
        want.sort();
        assert_eq!(got, want);
        // Map creation with a bad type names the map.
        let e = map_create("lbkit_bad", 9999, 4, 4, 1).unwrap_err().to_string();
        assert!(e.contains("lbkit_bad"), "{e}");
    }
}
