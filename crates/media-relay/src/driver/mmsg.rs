//! Batched UDP I/O with `recvmmsg(2)` / `sendmmsg(2)` over buffers that are
//! allocated once per worker. This is the only module with `unsafe`: the
//! kernel structures hold raw pointers into those buffers, and each call
//! rebuilds them, so no pointer outlives the borrow it was taken from.

use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

use crate::transform::TRANSFORM_HEADROOM;

/// Datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// Size of each packet buffer.
pub(crate) const BUF_SIZE: usize = 2048;
/// Largest datagram accepted: the rest of the buffer is transform headroom.
/// Largest datagram the relay forwards; longer ones are dropped as
/// [`crate::DropReason::BadLength`].
pub const MAX_DATAGRAM: usize = BUF_SIZE - TRANSFORM_HEADROOM;

/// Writes `addr` into `storage` and returns the length to pass to the kernel.
pub(crate) fn write_sockaddr(
    addr: &SocketAddr,
    storage: &mut libc::sockaddr_storage,
) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and suitably aligned for
            // every sockaddr type; we write a complete sockaddr_in at its start.
            unsafe { std::ptr::write(storage as *mut _ as *mut libc::sockaddr_in, sin) };
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write(storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads the address the kernel wrote into `storage`.
pub(crate) fn read_sockaddr(
    storage: &libc::sockaddr_storage,
    len: libc::socklen_t,
) -> Option<SocketAddr> {
    let len = len as usize;
    match i32::from(storage.ss_family) {
        libc::AF_INET if len >= mem::size_of::<libc::sockaddr_in>() => {
            // SAFETY: the family says the kernel wrote a sockaddr_in, which
            // fits in (and is aligned within) sockaddr_storage.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Some(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 if len >= mem::size_of::<libc::sockaddr_in6>() => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// One received datagram's metadata.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecvMeta {
    pub(crate) len: usize,
    pub(crate) src: Option<SocketAddr>,
    /// Larger than [`MAX_DATAGRAM`]; only a prefix was kept.
    pub(crate) truncated: bool,
}

/// A datagram to send: buffer index, length, destination (`None`: the
/// socket is connected to it).
#[derive(Debug, Clone, Copy)]
pub(crate) struct SendItem {
    pub(crate) buf: usize,
    pub(crate) len: usize,
    pub(crate) dst: Option<SocketAddr>,
}

/// Buffers and kernel structures for one worker.
pub(crate) struct Batch {
    pub(crate) bufs: Vec<[u8; BUF_SIZE]>,
    pub(crate) meta: [RecvMeta; BATCH],
    hdrs: Vec<libc::mmsghdr>,
    iovs: Vec<libc::iovec>,
    names: Vec<libc::sockaddr_storage>,
}

// SAFETY: the raw pointers inside `hdrs`/`iovs` only ever point into this
// struct's own buffers and are rebuilt before each use; the struct moves
// between threads only as a whole.
unsafe impl Send for Batch {}

impl Batch {
    pub(crate) fn new() -> Self {
        // SAFETY: these are plain C structs for which all-zero is valid.
        let (hdr, iov, name) = unsafe {
            (
                mem::zeroed::<libc::mmsghdr>(),
                mem::zeroed::<libc::iovec>(),
                mem::zeroed::<libc::sockaddr_storage>(),
            )
        };
        Self {
            bufs: vec![[0u8; BUF_SIZE]; BATCH],
            meta: [RecvMeta {
                len: 0,
                src: None,
                truncated: false,
            }; BATCH],
            hdrs: vec![hdr; BATCH],
            iovs: vec![iov; BATCH],
            names: vec![name; BATCH],
        }
    }

    /// Receives up to [`BATCH`] datagrams without blocking. `Ok(0)` means
    /// nothing was waiting.
    pub(crate) fn recv(&mut self, fd: RawFd) -> io::Result<usize> {
        for i in 0..BATCH {
            let (Some(buf), Some(iov), Some(name), Some(hdr)) = (
                self.bufs.get_mut(i),
                self.iovs.get_mut(i),
                self.names.get_mut(i),
                self.hdrs.get_mut(i),
            ) else {
                break;
            };
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = MAX_DATAGRAM;
            hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
            hdr.msg_hdr.msg_namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        // SAFETY: `hdrs` holds BATCH initialised headers whose pointers
        // refer to live buffers of the advertised sizes in `self`.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.hdrs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(0),
                _ => Err(e),
            };
        }
        let n = (n as usize).min(BATCH);
        for i in 0..n {
            let (Some(hdr), Some(name), Some(meta)) =
                (self.hdrs.get(i), self.names.get(i), self.meta.get_mut(i))
            else {
                break;
            };
            *meta = RecvMeta {
                len: (hdr.msg_len as usize).min(MAX_DATAGRAM),
                src: read_sockaddr(name, hdr.msg_hdr.msg_namelen),
                truncated: hdr.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
            };
        }
        Ok(n)
    }

    /// Sends `items` (at most [`BATCH`]) from `fd`. Returns how many were
    /// sent; the rest failed (the kernel stops at the first failure).
    pub(crate) fn send(&mut self, fd: RawFd, items: &[SendItem]) -> usize {
        let count = items.len().min(BATCH);
        for (i, item) in items.iter().take(count).enumerate() {
            let (Some(buf), Some(iov), Some(name), Some(hdr)) = (
                self.bufs.get_mut(item.buf),
                self.iovs.get_mut(i),
                self.names.get_mut(i),
                self.hdrs.get_mut(i),
            ) else {
                return 0;
            };
            iov.iov_base = buf.as_mut_ptr().cast();
            iov.iov_len = item.len.min(BUF_SIZE);
            match &item.dst {
                Some(dst) => {
                    hdr.msg_hdr.msg_namelen = write_sockaddr(dst, name);
                    hdr.msg_hdr.msg_name = (name as *mut libc::sockaddr_storage).cast();
                }
                None => {
                    hdr.msg_hdr.msg_namelen = 0;
                    hdr.msg_hdr.msg_name = std::ptr::null_mut();
                }
            }
            hdr.msg_hdr.msg_iov = iov;
            hdr.msg_hdr.msg_iovlen = 1;
            hdr.msg_hdr.msg_control = std::ptr::null_mut();
            hdr.msg_hdr.msg_controllen = 0;
            hdr.msg_hdr.msg_flags = 0;
            hdr.msg_len = 0;
        }
        let mut sent = 0usize;
        while sent < count {
            let Some(rest) = self.hdrs.get_mut(sent..count) else {
                break;
            };
            // SAFETY: `rest` holds initialised headers pointing into live
            // buffers of `self`, and its length is passed with it.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    rest.as_mut_ptr(),
                    rest.len() as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                // The first datagram of `rest` failed (unreachable, no buffer
                // space...): skip it so one bad destination does not block
                // the others.
                return sent + self.send_after_failure(fd, sent + 1, count);
            }
            sent += n as usize;
        }
        sent
    }

    fn send_after_failure(&mut self, fd: RawFd, from: usize, count: usize) -> usize {
        if from >= count {
            return 0;
        }
        let Some(rest) = self.hdrs.get_mut(from..count) else {
            return 0;
        };
        // SAFETY: as in `send`.
        let n = unsafe {
            libc::sendmmsg(
                fd,
                rest.as_mut_ptr(),
                rest.len() as libc::c_uint,
                libc::MSG_DONTWAIT,
            )
        };
        if n < 0 {
            0
        } else {
            n as usize
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsRawFd;

    #[test]
    fn sockaddr_round_trip() {
        for a in ["192.0.2.7:4000", "[2001:db8::1]:5004"] {
            let addr: SocketAddr = a.parse().unwrap();
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut st: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let len = write_sockaddr(&addr, &mut st);
            assert_eq!(read_sockaddr(&st, len), Some(addr));
        }
    }

    #[test]
    fn batched_loopback_round_trip() {
        let a = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let b = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let dst = b.local_addr().unwrap();
        let mut batch = Batch::new();
        for i in 0..5u8 {
            batch.bufs[usize::from(i)][..3].copy_from_slice(&[i, i, i]);
        }
        let items: Vec<SendItem> = (0..5)
            .map(|i| SendItem {
                buf: i,
                len: 3,
                dst: Some(dst),
            })
            .collect();
        assert_eq!(batch.send(a.as_raw_fd(), &items), 5);
        // Also one oversized datagram to see truncation reported.
        a.send_to(&vec![7u8; MAX_DATAGRAM + 10], dst).unwrap();
        let mut got = 0;
        let mut rx = Batch::new();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        let mut truncated = 0;
        let mut firsts = Vec::new();
        while got < 6 && std::time::Instant::now() < deadline {
            let n = rx.recv(b.as_raw_fd()).unwrap();
            for (m, buf) in rx.meta[..n].iter().zip(&rx.bufs) {
                assert_eq!(m.src, Some(a.local_addr().unwrap()));
                truncated += usize::from(m.truncated);
                firsts.push((buf[0], m.len));
            }
            got += n;
        }
        assert_eq!(got, 6);
        assert_eq!(truncated, 1);
        assert_eq!(
            firsts,
            vec![(0, 3), (1, 3), (2, 3), (3, 3), (4, 3), (7, MAX_DATAGRAM)]
        );
    }
}
