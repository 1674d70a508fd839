//! The two facts the forwarder needs from the host's network
//! configuration: which interfaces to attach to, and how the kernel routes
//! a destination (out of which device, or to this host).

use std::io;
use std::net::Ipv4Addr;

/// An interface the program can run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interface {
    pub(crate) name: String,
    pub(crate) index: u32,
}

/// `ARPHRD_ETHER` and `ARPHRD_LOOPBACK`: the device types whose frames
/// start with the 14-byte Ethernet header the program expects.
const ETHERNET_TYPES: [u16; 2] = [1, 772];

/// The link type (`ARPHRD_*`) of an interface of this process's network
/// namespace, `None` when it does not exist.
fn link_type(name: &str) -> Option<u16> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return None;
    }
    // SAFETY: a socket to ask the kernel with, closed by OwnedFd.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is the new descriptor, owned from here on.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    // SAFETY: an all-zero ifreq is valid; the name is copied in with its
    // terminating zero left in place (checked length above).
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads the name and fills the hardware address
    // of `req`, which outlives the call.
    let r = unsafe {
        libc::ioctl(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            libc::SIOCGIFHWADDR,
            &mut req,
        )
    };
    if r < 0 {
        return None;
    }
    // SAFETY: SIOCGIFHWADDR filled the `ifru_hwaddr` member.
    Some(unsafe { req.ifr_ifru.ifru_hwaddr.sa_family })
}

/// The interfaces of this process's network namespace. Asked of the
/// kernel (`if_nameindex`, over netlink), not read from /sys, which shows
/// the namespace that mounted it: in a container or an `unshare --net`
/// without its own sysfs that is the host's.
fn all_interfaces() -> Result<Vec<Interface>, String> {
    // SAFETY: if_nameindex returns an array terminated by a zero entry, or
    // NULL; it is freed below and not used after.
    let list = unsafe { libc::if_nameindex() };
    if list.is_null() {
        return Err(format!(
            "listing the interfaces: {}",
            io::Error::last_os_error()
        ));
    }
    let mut out = Vec::new();
    let mut at = list;
    // SAFETY: walking the array up to its terminating entry; each name is a
    // C string owned by the array.
    unsafe {
        while (*at).if_index != 0 && !(*at).if_name.is_null() {
            let name = std::ffi::CStr::from_ptr((*at).if_name)
                .to_string_lossy()
                .into_owned();
            out.push(Interface {
                name,
                index: (*at).if_index,
            });
            at = at.add(1);
        }
        libc::if_freenameindex(list);
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every interface with an Ethernet-style header, or the named ones (an
/// error names a missing or unsuitable one).
pub(crate) fn interfaces(names: Option<&[String]>) -> Result<Vec<Interface>, String> {
    let present = all_interfaces()?;
    let Some(names) = names else {
        return Ok(present
            .into_iter()
            .filter(|i| link_type(&i.name).is_some_and(|t| ETHERNET_TYPES.contains(&t)))
            .collect());
    };
    let mut out = Vec::new();
    for name in names {
        let Some(found) = present.iter().find(|i| &i.name == name) else {
            return Err(format!("interface {name:?} does not exist"));
        };
        match link_type(name) {
            Some(t) if ETHERNET_TYPES.contains(&t) => out.push(found.clone()),
            Some(t) => {
                return Err(format!(
                    "interface {name:?} has link type {t}; only Ethernet and loopback devices are supported"
                ))
            }
            None => return Err(format!("interface {name:?} does not exist")),
        }
    }
    Ok(out)
}

/// How the kernel would send to an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Route {
    /// The output device.
    pub(crate) ifindex: u32,
    /// The destination is an address of this host.
    pub(crate) local: bool,
}

const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const NLMSG_ERROR: u16 = 2;
const NLM_F_REQUEST: u16 = 1;
const RTA_DST: u16 = 1;
const RTA_SRC: u16 = 2;
const RTA_OIF: u16 = 4;
const RTN_UNICAST: u8 = 1;
const RTN_LOCAL: u8 = 2;
const NLMSG_HDR: usize = 16;
const RTMSG: usize = 12;

/// Asks the kernel how it routes `dst` from `src` (`ip route get DST from
/// SRC`), over a one-shot rtnetlink socket.
pub(crate) fn route(src: Ipv4Addr, dst: Ipv4Addr) -> io::Result<Route> {
    // SAFETY: plain socket(2); the result is checked and owned below.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            libc::NETLINK_ROUTE,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is the new descriptor, owned from here on.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) };
    let fd = std::os::fd::AsRawFd::as_raw_fd(&sock);

    let mut req = Vec::with_capacity(NLMSG_HDR + RTMSG + 16);
    let len = (NLMSG_HDR + RTMSG + 16) as u32;
    req.extend_from_slice(&len.to_ne_bytes());
    req.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req.extend_from_slice(&NLM_F_REQUEST.to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    req.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel's
                                                // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope,
                                                // type, flags (u32).
    req.extend_from_slice(&[libc::AF_INET as u8, 32, 32, 0, 0, 0, 0, 0]);
    req.extend_from_slice(&0u32.to_ne_bytes());
    for (kind, addr) in [(RTA_DST, dst), (RTA_SRC, src)] {
        req.extend_from_slice(&8u16.to_ne_bytes());
        req.extend_from_slice(&kind.to_ne_bytes());
        req.extend_from_slice(&addr.octets());
    }
    // SAFETY: sending our own buffer on our socket; the kernel address is
    // all zeroes (pid 0).
    let sent = unsafe {
        let mut to: libc::sockaddr_nl = std::mem::zeroed();
        to.nl_family = libc::AF_NETLINK as u16;
        libc::sendto(
            fd,
            req.as_ptr().cast(),
            req.len(),
            0,
            (&to as *const libc::sockaddr_nl).cast(),
            std::mem::size_of::<libc::sockaddr_nl>() as u32,
        )
    };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = vec![0u8; 8192];
    // SAFETY: receiving into our own buffer of the given length.
    let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    parse_route_reply(buf.get(..n as usize).unwrap_or_default())
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("rtnetlink: {what}"))
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn parse_route_reply(b: &[u8]) -> io::Result<Route> {
    let kind = u16_at(b, 4).ok_or_else(|| bad("short reply"))?;
    if kind == NLMSG_ERROR {
        let errno = u32_at(b, NLMSG_HDR).ok_or_else(|| bad("short error"))? as i32;
        return Err(io::Error::from_raw_os_error(-errno));
    }
    if kind != RTM_NEWROUTE {
        return Err(bad("unexpected message type"));
    }
    let len = u32_at(b, 0).ok_or_else(|| bad("short reply"))? as usize;
    let msg = b
        .get(..len.min(b.len()))
        .ok_or_else(|| bad("short reply"))?;
    let rtm_type = *msg.get(NLMSG_HDR + 7).ok_or_else(|| bad("short rtmsg"))?;
    let mut at = NLMSG_HDR + RTMSG;
    let mut oif = None;
    while let (Some(alen), Some(akind)) = (u16_at(msg, at), u16_at(msg, at + 2)) {
        let alen = usize::from(alen);
        if alen < 4 {
            break;
        }
        if akind == RTA_OIF {
            oif = u32_at(msg, at + 4);
        }
        at += (alen + 3) & !3;
    }
    let ifindex = oif.ok_or_else(|| bad("route without an output device"))?;
    match rtm_type {
        RTN_LOCAL => Ok(Route {
            ifindex,
            local: true,
        }),
        RTN_UNICAST => Ok(Route {
            ifindex,
            local: false,
        }),
        other => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!("route type {other} (not unicast or local)"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_is_a_local_route_through_lo() {
        let r = route(Ipv4Addr::LOCALHOST, Ipv4Addr::LOCALHOST).unwrap();
        assert!(r.local);
        // SAFETY: a NUL-terminated name.
        let lo = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
        assert_eq!(r.ifindex, lo);
    }

    #[test]
    fn interfaces_are_those_of_the_callers_namespace() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: a new network namespace needs root");
            return;
        }
        // A fresh namespace on a thread of its own has only `lo`, whatever
        // /sys (still the host's here) says.
        let names = std::thread::spawn(|| {
            // SAFETY: unshare affects this thread only, which ends after.
            assert_eq!(unsafe { libc::unshare(libc::CLONE_NEWNET) }, 0);
            interfaces(None).map(|v| v.into_iter().map(|i| i.name).collect::<Vec<_>>())
        })
        .join()
        .unwrap()
        .unwrap();
        assert_eq!(names, ["lo"]);
    }

    #[test]
    fn lo_is_listed_and_unknown_names_are_errors() {
        let all = interfaces(None).unwrap();
        assert!(all.iter().any(|i| i.name == "lo"));
        let err = interfaces(Some(&["no-such-if0".to_string()])).unwrap_err();
        assert!(err.contains("no-such-if0"), "{err}");
    }

    #[test]
    fn a_reply_is_parsed_and_junk_is_an_error() {
        assert!(parse_route_reply(&[]).is_err());
        assert!(parse_route_reply(&[0xff; 40]).is_err());
        let mut m = Vec::new();
        m.extend_from_slice(&36u32.to_ne_bytes());
        m.extend_from_slice(&RTM_NEWROUTE.to_ne_bytes());
        m.extend_from_slice(&[0; 10]);
        m.extend_from_slice(&[2, 32, 0, 0, 254, 0, 0, RTN_UNICAST, 0, 0, 0, 0]);
        m.extend_from_slice(&8u16.to_ne_bytes());
        m.extend_from_slice(&RTA_OIF.to_ne_bytes());
        m.extend_from_slice(&5u32.to_ne_bytes());
        assert_eq!(
            parse_route_reply(&m).unwrap(),
            Route {
                ifindex: 5,
                local: false
            }
        );
    }
}
