//! Media sockets: the port's own socket (unconnected, `SO_REUSEPORT`) and,
//! once a leg has latched, a second socket on the same port `connect(2)`ed
//! to the latched peer.
//!
//! Why two: a connected UDP socket is the kernel's cheapest path. Its
//! receives are matched by the full 4-tuple (early demux, no route lookup)
//! and its sends use the route cached in the socket, with no address to copy
//! in per packet. But a connected socket alone would lose what the relay must
//! see: packets from other sources, which are dropped and counted (source
//! lock). With both sockets in one reuseport group, the kernel gives the
//! latched peer's packets to the connected socket (its lookup score is
//! higher: it matches source address and port too) and everything else to
//! the unconnected one, where the core drops it as before. The group only
//! admits sockets of the same user that all set `SO_REUSEPORT`.
//!
//! `unsafe` here is confined to `socket`/`setsockopt`/`bind`/`connect` on a
//! descriptor this module creates and immediately owns.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd};

use mio::net::UdpSocket;

use super::mmsg::write_sockaddr;

fn check(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A new non-blocking UDP socket with `SO_REUSEPORT` (not yet bound).
fn reuseport_socket(family: SocketAddr) -> io::Result<OwnedFd> {
    let domain = match family {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain system call; the result is checked before use.
    let fd = check(unsafe {
        libc::socket(
            domain,
            libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    })?;
    // SAFETY: `fd` is a fresh descriptor nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let one: libc::c_int = 1;
    // SAFETY: `one` outlives the call and its size is passed with it.
    check(unsafe {
        libc::setsockopt(
            std::os::fd::AsRawFd::as_raw_fd(&fd),
            libc::SOL_SOCKET,
            libc::SO_REUSEPORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })?;
    Ok(fd)
}

fn sys_addr(fd: &OwnedFd, addr: SocketAddr, connect: bool) -> io::Result<()> {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = write_sockaddr(&addr, &mut st);
    let ptr: *const libc::sockaddr = (&st as *const libc::sockaddr_storage).cast();
    let fd = std::os::fd::AsRawFd::as_raw_fd(fd);
    // SAFETY: `st` holds a complete sockaddr of `len` bytes for the call.
    check(unsafe {
        if connect {
            libc::connect(fd, ptr, len)
        } else {
            libc::bind(fd, ptr, len)
        }
    })?;
    Ok(())
}

/// Binds the port's own socket at `addr`. It joins a reuseport group so that
/// a connected companion can share the port later; a port that any other
/// socket holds is refused first with a plain bind, so that the pool still
/// sees ports taken by other processes (a reuseport group would otherwise
/// silently admit another process of the same user).
pub(crate) fn bind_port(addr: SocketAddr, reuseport: bool) -> io::Result<UdpSocket> {
    let probe = std::net::UdpSocket::bind(addr)?;
    if !reuseport {
        probe.set_nonblocking(true)?;
        return Ok(UdpSocket::from_std(probe));
    }
    let addr = probe.local_addr()?;
    drop(probe);
    let shared = reuseport_socket(addr).and_then(|fd| sys_addr(&fd, addr, false).map(|()| fd));
    match shared {
        Ok(fd) => Ok(UdpSocket::from_std(std::net::UdpSocket::from(fd))),
        // Someone took the port in between: busy, as for the probe.
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Err(e),
        // SO_REUSEPORT refused (a sandbox): a plain socket still relays;
        // its companions will fail to bind and the leg stays unconnected.
        Err(_) => {
            let s = std::net::UdpSocket::bind(addr)?;
            s.set_nonblocking(true)?;
            Ok(UdpSocket::from_std(s))
        }
    }
}

/// A second socket on `local` (which a [`bind_port`] socket of this process
/// holds), connected to `peer`.
pub(crate) fn connected(local: SocketAddr, peer: SocketAddr) -> io::Result<UdpSocket> {
    let fd = reuseport_socket(local)?;
    sys_addr(&fd, local, false)?;
    sys_addr(&fd, peer, true)?;
    Ok(UdpSocket::from_std(std::net::UdpSocket::from(fd)))
}

/// Points a connected socket at a new peer (a new latch).
pub(crate) fn reconnect(socket: &UdpSocket, peer: SocketAddr) -> io::Result<()> {
    socket.connect(peer)
}

/// Raises the soft limit of open files to the hard limit and returns the
/// new soft limit. Every media port is a descriptor, and a latched leg's a
/// second one (its connected companion): a stream can hold up to eight
/// (two legs, RTP and RTCP, each with a companion), so the common soft
/// limit of 1024 would end the relay's capacity after about a hundred
/// calls, long before the port ranges do.
pub(crate) fn raise_nofile_limit() -> io::Result<u64> {
    // SAFETY: all-zero is a valid rlimit; getrlimit fills it.
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: `lim` is a valid, writable rlimit for the call.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) })?;
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: `raised` is a valid rlimit for the call.
        check(unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) })?;
        return Ok(raised.rlim_cur as u64);
    }
    Ok(lim.rlim_cur as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn recv(s: &UdpSocket) -> Option<(Vec<u8>, SocketAddr)> {
        // Non-blocking sockets: poll briefly.
        let deadline = std::time::Instant::now() + Duration::from_millis(500);
        let mut buf = [0u8; 64];
        while std::time::Instant::now() < deadline {
            match s.recv_from(&mut buf) {
                Ok((n, from)) => return Some((buf[..n].to_vec(), from)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(5))
                }
                Err(_) => return None,
            }
        }
        None
    }

    /// The lookup semantics the driver relies on, checked on this kernel:
    /// the latched peer's datagrams reach the connected socket, every other
    /// source's the unconnected one, also after a reconnect.
    #[test]
    fn reuseport_group_splits_peer_from_other_sources() {
        let base = bind_port("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let local = base.local_addr().unwrap();
        let peer = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let third = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let conn = connected(local, peer.local_addr().unwrap()).unwrap();
        assert_eq!(conn.local_addr().unwrap(), local);

        for round in 0..3u8 {
            peer.send_to(&[1, round], local).unwrap();
            third.send_to(&[2, round], local).unwrap();
            assert_eq!(
                recv(&conn),
                Some((vec![1, round], peer.local_addr().unwrap()))
            );
            assert_eq!(
                recv(&base),
                Some((vec![2, round], third.local_addr().unwrap()))
            );
        }
        // Sending without an address goes to the peer, from the port.
        conn.send(&[3]).unwrap();
        let mut buf = [0u8; 8];
        peer.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
        assert_eq!(peer.recv_from(&mut buf).unwrap(), (1, local));

        // Re-latch: the third source becomes the peer, the old one a stranger.
        reconnect(&conn, third.local_addr().unwrap()).unwrap();
        peer.send_to(&[4], local).unwrap();
        third.send_to(&[5], local).unwrap();
        assert_eq!(recv(&conn), Some((vec![5], third.local_addr().unwrap())));
        assert_eq!(recv(&base), Some((vec![4], peer.local_addr().unwrap())));
    }

    #[test]
    fn a_port_held_elsewhere_is_refused_even_with_reuseport() {
        // Another holder with SO_REUSEPORT (same user): the probe refuses it.
        let other = bind_port("127.0.0.1:0".parse().unwrap(), true).unwrap();
        let addr = other.local_addr().unwrap();
        assert!(bind_port(addr, true).is_err());
        assert!(bind_port(addr, false).is_err());
        drop(other);
        let again = bind_port(addr, true).unwrap();
        assert_eq!(again.local_addr().unwrap(), addr);
    }

    #[test]
    fn open_files_limit_is_raised_to_the_hard_limit() {
        let soft = raise_nofile_limit().unwrap();
        // SAFETY: as in the function.
        let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
        // SAFETY: as in the function.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(lim.rlim_cur, lim.rlim_max);
        assert_eq!(soft, lim.rlim_cur as u64);
    }
}
