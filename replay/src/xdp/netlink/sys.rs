//! The system calls behind [`NextHops`](super::NextHops): a netlink route socket (socket, bind,
//! send, recv, two socket options) and binding a UDP socket to an interface, each wrapped in a
//! safe function. The descriptors are `OwnedFd`s: closed once, on drop.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::time::Duration;

/// An `AF_NETLINK` / `NETLINK_ROUTE` socket.
#[derive(Debug)]
pub(crate) struct NlSocket {
    fd: OwnedFd,
}

/// Notification groups: neighbours, IPv4 and IPv6 routes.
pub(crate) const GROUPS: u32 = (libc::RTMGRP_NEIGH | libc::RTMGRP_IPV4_ROUTE | libc::RTMGRP_IPV6_ROUTE) as u32;

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// A `sockaddr_nl` of `groups` (port 0: the kernel's, or chosen by it when binding).
fn sockaddr_nl(groups: u32) -> libc::sockaddr_nl {
    // SAFETY: `sockaddr_nl` is plain integers (one private padding field, hence no literal);
    // all-zero bytes are a valid value of it.
    let mut a: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
    a.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    a.nl_groups = groups;
    a
}

/// Sets an integer-like socket option.
fn set_option<T>(fd: BorrowedFd<'_>, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: the pointer and length describe `value`, which lives through the call; the
    // kernel only reads it.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast::<libc::c_void>(),
            size_of::<T>() as libc::socklen_t,
        )
    })
    .map(drop)
}

impl NlSocket {
    /// Opens a socket bound to `groups` (0: none, for requests and their answers).
    pub(crate) fn open(groups: u32) -> io::Result<NlSocket> {
        // SAFETY: socket(2) takes no pointers.
        let raw =
            check(unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC, libc::NETLINK_ROUTE) })?;
        // SAFETY: `raw` was just returned by socket(2): an open descriptor that nothing else
        // owns or will close.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let addr = sockaddr_nl(groups);
        // SAFETY: the pointer and length describe `addr`, alive through the call.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast::<libc::sockaddr>(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        })?;
        Ok(NlSocket { fd })
    }

    /// `SO_RCVTIMEO`: how long a blocking `recv` waits before `WouldBlock`.
    pub(crate) fn set_recv_timeout(&self, d: Duration) -> io::Result<()> {
        let tv = libc::timeval { tv_sec: d.as_secs() as libc::time_t, tv_usec: d.subsec_micros() as libc::suseconds_t };
        set_option(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
    }

    /// The receive buffer: `SO_RCVBUFFORCE` (past `rmem_max`, needs CAP_NET_ADMIN), else
    /// `SO_RCVBUF`.
    pub(crate) fn set_recv_buffer(&self, bytes: usize) -> io::Result<()> {
        let v = libc::c_int::try_from(bytes).unwrap_or(libc::c_int::MAX);
        set_option(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &v)
            .or_else(|_| set_option(self.fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, &v))
    }

    /// Sends one message to the kernel.
    pub(crate) fn send(&self, msg: &[u8]) -> io::Result<()> {
        let to = sockaddr_nl(0);
        loop {
            // SAFETY: `msg` and `to` are valid for reads of the lengths given, through the call.
            let rc = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    msg.as_ptr().cast::<libc::c_void>(),
                    msg.len(),
                    0,
                    (&to as *const libc::sockaddr_nl).cast::<libc::sockaddr>(),
                    size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if rc >= 0 {
                return Ok(());
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        }
    }

    /// Receives one datagram into `buf`: its length, and whether it was longer than `buf` (the
    /// rest is lost). Waits up to the receive timeout (`WouldBlock` after it), or not at all
    /// with `nowait`. `ENOBUFS` (`raw_os_error`) says the kernel dropped notifications.
    pub(crate) fn recv(&self, buf: &mut [u8], nowait: bool) -> io::Result<(usize, bool)> {
        let flags = libc::MSG_TRUNC | if nowait { libc::MSG_DONTWAIT } else { 0 };
        // SAFETY: `buf` is valid for writes of `buf.len()` bytes through the call, and the
        // kernel writes at most that many (MSG_TRUNC only changes the returned length).
        let rc = unsafe { libc::recv(self.fd.as_raw_fd(), buf.as_mut_ptr().cast::<libc::c_void>(), buf.len(), flags) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = rc as usize;
        Ok((n.min(buf.len()), n > buf.len()))
    }
}

/// `SO_BINDTODEVICE`: the socket sends out of `iface` only (needs CAP_NET_RAW).
pub(crate) fn bind_to_device(fd: BorrowedFd<'_>, iface: &str) -> io::Result<()> {
    let name = iface.as_bytes();
    // SAFETY: the pointer and length describe `name`, alive through the call; the kernel reads
    // at most that many bytes (the name need not be NUL-terminated when the length is given).
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            name.as_ptr().cast::<libc::c_void>(),
            name.len() as libc::socklen_t,
        )
    })
    .map(drop)
}
