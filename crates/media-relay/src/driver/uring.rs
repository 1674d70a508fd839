//! The io_uring packet path (Linux 6.1+): one multishot `recvmsg` armed per
//! media socket, all drawing from one ring of provided buffers, and the
//! forwarded packets sent as `sendmsg` entries straight from the buffer they
//! were received into. A wake-up then costs one `io_uring_enter` for every
//! socket that had traffic (submitting the previous round's sends and
//! waiting for new completions), where the epoll path costs an `epoll_wait`
//! plus a `recvmmsg` and a `sendmmsg` per socket.
//!
//! Like `mmsg`, this module holds the `unsafe`: the kernel writes into the
//! buffer area and reads the send headers asynchronously, so both live in
//! memory mapped once per worker, addressed by buffer id, and a buffer goes
//! back to the kernel only once nothing refers to it any more (dropped
//! packet: at once; forwarded packet: when its send has completed).

use std::io;
use std::mem;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use io_uring::types::{BufRingEntry, CancelBuilder, Fd, Fixed, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, IoUring};

use super::mmsg::{read_sockaddr, write_sockaddr};
use crate::transform::TRANSFORM_HEADROOM;

/// Provided buffers per worker (a power of two, at most 32768).
pub(crate) const BUFS: u16 = 2048;
/// The buffer group id of the one ring.
const BGID: u16 = 0;
/// Header the kernel writes in front of each multishot `recvmsg` datagram
/// (`struct io_uring_recvmsg_out`).
const OUT_HDR: usize = 16;
/// Room for the source address: `sockaddr_in6` covers both families.
const NAME_LEN: usize = mem::size_of::<libc::sockaddr_in6>();
/// Offset of the datagram in its buffer.
pub(crate) const PAYLOAD: usize = OUT_HDR + NAME_LEN;
/// Bytes of each buffer: header, address, the largest datagram forwarded,
/// and the transform headroom after it, rounded to a cache line.
const BUF_SIZE: usize = (PAYLOAD + super::mmsg::MAX_DATAGRAM + TRANSFORM_HEADROOM + 63) & !63;
/// What the kernel may fill: everything but the headroom.
const RECV_LEN: u32 = (PAYLOAD + super::mmsg::MAX_DATAGRAM) as u32;

/// Sockets per worker held in the ring's table of registered files (by
/// slot): requests on them skip the per-request file lookup and reference.
/// Slots beyond it use plain descriptors.
const FIXED_FILES: usize = 16384;
/// Completions to wait for in one `io_uring_enter`, for up to the batch
/// window; after that window any one completion ends the wait. Fewer
/// wake-ups under load, at most that much added latency.
const BATCH_WANT: usize = 32;

/// Builds an opcode on a socket slot's registered file, or on its
/// descriptor when it has none.
macro_rules! on_socket {
    ($self:ident, $slot:expr, $fd:expr, |$t:ident| $build:expr) => {
        if $self.fixed && $slot < FIXED_FILES {
            let $t = Fixed($slot as u32);
            $build
        } else {
            let $t = Fd($fd);
            $build
        }
    };
}

/// Kinds of request, in the top byte of `user_data`.
const TAG_RECV: u64 = 1 << 56;
const TAG_SEND: u64 = 2 << 56;
const TAG_WAKE: u64 = 3 << 56;
const TAG_MASK: u64 = 0xff << 56;

/// `user_data` of a socket's multishot receive: its slot and the slot's
/// generation, so that completions of a closed socket are never taken for
/// those of the next socket in the same slot.
pub(crate) fn recv_token(slot: usize, gen: u32) -> u64 {
    TAG_RECV | (u64::from(gen & 0x00ff_ffff) << 32) | (slot as u64 & 0xffff_ffff)
}

/// A completion, decoded.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Event {
    /// A datagram (or, with `bid == None`, the end of a receive with
    /// `res < 0`). `more == false`: the multishot receive is over and must
    /// be armed again if the socket is still open.
    Recv {
        token: u64,
        res: i32,
        bid: Option<u16>,
        more: bool,
    },
    /// A send finished; `bid` is the buffer it sent from.
    Sent { bid: u16, res: i32 },
    /// The command waker fired; `more == false`: arm it again.
    Wake { more: bool },
    /// Anything else (cancellations).
    Other,
}

/// A received datagram in its buffer.
pub(crate) struct Datagram {
    pub(crate) src: Option<SocketAddr>,
    pub(crate) len: usize,
    pub(crate) truncated: bool,
}

struct SendSlot {
    name: libc::sockaddr_storage,
}

/// An anonymous private mapping, unmapped on drop.
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

impl Mapping {
    fn new(len: usize) -> io::Result<Self> {
        // SAFETY: a fresh anonymous mapping; the result is checked.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(Self {
            ptr: ptr.cast(),
            len,
        })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly what `new` mapped.
        unsafe { libc::munmap(self.ptr.cast(), self.len) };
    }
}

/// One worker's ring, buffers and send headers.
pub(crate) struct Uring {
    ring: IoUring,
    /// `BUFS` buffers of `BUF_SIZE`.
    bufs: Mapping,
    /// The provided-buffer ring shared with the kernel.
    buf_ring: Mapping,
    /// Our copy of the buffer ring's tail, published in [`Uring::publish`].
    tail: u16,
    /// Send headers, one per buffer id.
    sends: Box<[SendSlot]>,
    /// The template of every multishot receive (only the name and control
    /// lengths matter to the kernel).
    recv_hdr: Box<libc::msghdr>,
    /// Completions copied out of the queue, so that handling them may queue
    /// new requests.
    pub(crate) cqes: Vec<cqueue::Entry>,
    wake_fd: RawFd,
    /// The registered file table is in use.
    fixed: bool,
    /// The batch window in µs; 0 where the kernel lacks `min_wait_usec`
    /// (before 6.12) or none is wanted.
    min_wait: u32,
}

// SAFETY: the raw pointers refer to mappings and boxes this struct owns; it
// moves between threads only as a whole, before its first submission.
unsafe impl Send for Uring {}

impl Uring {
    /// Sets up the ring, registers the buffers and arms the wake-up poll on
    /// `wake_fd` (the worker's epoll instance, which holds the waker). Fails
    /// where io_uring is missing, forbidden (seccomp, `io_uring_disabled`)
    /// or too old; the caller then uses the epoll path.
    pub(crate) fn new(wake_fd: RawFd, batch_wait: Duration) -> io::Result<Self> {
        let ring = IoUring::builder()
            .setup_single_issuer()
            .setup_defer_taskrun()
            .setup_submit_all()
            .setup_cqsize(16384)
            .build(4096)?;
        let fixed = ring
            .submitter()
            .register_files_sparse(FIXED_FILES as u32)
            .is_ok();
        let min_wait = match ring.params().is_feature_min_timeout() {
            true => u32::try_from(batch_wait.as_micros()).unwrap_or(u32::MAX),
            false => 0,
        };
        let bufs = Mapping::new(BUF_SIZE * usize::from(BUFS))?;
        let buf_ring = Mapping::new(mem::size_of::<BufRingEntry>() * usize::from(BUFS))?;
        // SAFETY: the ring memory is page aligned, BUFS entries long, and
        // lives as long as `self`: fields drop in declaration order, the
        // ring before the mappings (and `Worker::shutdown_uring` leaks them
        // if a receive could still be armed).
        unsafe {
            ring.submitter()
                .register_buf_ring_with_flags(buf_ring.ptr as u64, BUFS, BGID, 0)?;
        }
        // SAFETY: all-zero is a valid value of these C structs.
        let (hdr, name) = unsafe {
            (
                mem::zeroed::<libc::msghdr>(),
                mem::zeroed::<libc::sockaddr_storage>(),
            )
        };
        let sends = (0..BUFS)
            .map(|_| SendSlot { name })
            .collect::<Vec<_>>()
            .into_boxed_slice();
        let mut recv_hdr = Box::new(hdr);
        recv_hdr.msg_namelen = NAME_LEN as libc::socklen_t;
        let mut u = Self {
            ring,
            bufs,
            buf_ring,
            tail: 0,
            sends,
            recv_hdr,
            cqes: Vec::with_capacity(1024),
            wake_fd,
            fixed,
            min_wait,
        };
        for bid in 0..BUFS {
            u.recycle(bid);
        }
        u.publish();
        u.arm_wake()?;
        Ok(u)
    }

    fn push(&mut self, e: &squeue::Entry) -> io::Result<()> {
        // SAFETY: every entry built here points only at memory owned by
        // `self` (buffers, send headers, the receive template) that stays
        // valid until its completion is seen.
        if unsafe { self.ring.submission().push(e) }.is_ok() {
            return Ok(());
        }
        // Queue full: hand it to the kernel and try once more.
        self.ring.submit()?;
        // SAFETY: as above.
        unsafe { self.ring.submission().push(e) }
            .map_err(|_| io::Error::other("submission queue full"))
    }

    pub(crate) fn arm_wake(&mut self) -> io::Result<()> {
        let e = opcode::PollAdd::new(Fd(self.wake_fd), libc::POLLIN as u32)
            .multi(true)
            .build()
            .user_data(TAG_WAKE);
        self.push(&e)
    }

    /// Puts socket `fd` into the registered file table at `slot` (where
    /// the table reaches).
    pub(crate) fn register(&mut self, slot: usize, fd: RawFd) -> io::Result<()> {
        if self.fixed && slot < FIXED_FILES {
            self.ring
                .submitter()
                .register_files_update(slot as u32, &[fd])?;
        }
        Ok(())
    }

    /// Drops the table's reference to the socket at `slot`; the kernel lets
    /// go of the socket once no request uses it any more.
    pub(crate) fn unregister(&mut self, slot: usize) {
        if self.fixed && slot < FIXED_FILES {
            let _ = self
                .ring
                .submitter()
                .register_files_update(slot as u32, &[-1]);
        }
    }

    /// Arms a multishot receive on the socket of `slot` (descriptor `fd`).
    pub(crate) fn arm_recv(&mut self, slot: usize, fd: RawFd, token: u64) -> io::Result<()> {
        let hdr: *const libc::msghdr = &*self.recv_hdr;
        let e = on_socket!(self, slot, fd, |t| opcode::RecvMsgMulti::new(t, hdr, BGID)
            .build()
            .user_data(token));
        self.push(&e)
    }

    /// Asks the kernel to end the receive `token`; its last completion (no
    /// `more`) follows.
    pub(crate) fn cancel(&mut self, token: u64) -> io::Result<()> {
        let e = opcode::AsyncCancel2::new(CancelBuilder::user_data(token))
            .build()
            .user_data(0);
        self.push(&e)
    }

    /// The datagram in buffer `bid`, whose receive completed with `res`
    /// bytes: its metadata and the buffer from the datagram's first byte to
    /// the end of the headroom.
    pub(crate) fn datagram(&mut self, bid: u16, res: i32) -> Option<(Datagram, &mut [u8])> {
        if bid >= BUFS {
            return None;
        }
        let filled = usize::try_from(res).ok()?.min(RECV_LEN as usize);
        if filled < PAYLOAD {
            return None;
        }
        // SAFETY: `bid` is in range; the kernel handed this buffer to us
        // with this completion and does not touch it until it is recycled;
        // no other reference to it exists.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(self.bufs.ptr.add(usize::from(bid) * BUF_SIZE), BUF_SIZE)
        };
        let word = |at: usize| {
            buf.get(at..at + 4)
                .and_then(|b| b.try_into().ok())
                .map_or(0, u32::from_ne_bytes)
        };
        let (namelen, payloadlen, flags) = (word(0), word(8), word(12));
        let src = if (namelen as usize) <= NAME_LEN {
            // SAFETY: all-zero is a valid sockaddr_storage.
            let mut st: libc::sockaddr_storage = unsafe { mem::zeroed() };
            let name = buf.get(OUT_HDR..OUT_HDR + NAME_LEN)?;
            // SAFETY: NAME_LEN bytes fit in sockaddr_storage.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    name.as_ptr(),
                    (&mut st as *mut libc::sockaddr_storage).cast::<u8>(),
                    NAME_LEN,
                )
            };
            read_sockaddr(&st, namelen as libc::socklen_t)
        } else {
            None
        };
        let len = (payloadlen as usize).min(filled - PAYLOAD);
        let truncated = flags & (libc::MSG_TRUNC as u32) != 0 || len < payloadlen as usize;
        let rest = buf.get_mut(PAYLOAD..)?;
        Some((
            Datagram {
                src,
                len,
                truncated,
            },
            rest,
        ))
    }

    /// Queues the send of buffer `bid`'s datagram (`len` bytes, possibly
    /// changed by a transform) from `fd` to `dst`. The buffer is recycled
    /// when the send completes ([`Event::Sent`]).
    pub(crate) fn send(
        &mut self,
        slot: usize,
        fd: RawFd,
        bid: u16,
        len: usize,
        dst: Option<SocketAddr>,
    ) -> io::Result<()> {
        let base = self.bufs.ptr;
        let Some(s) = self.sends.get_mut(usize::from(bid)) else {
            return Err(io::Error::other("bad buffer id"));
        };
        // SAFETY: `bid` is in range (checked by the `get_mut` above) and the
        // payload with its headroom lies within the buffer.
        let data = unsafe { base.add(usize::from(bid) * BUF_SIZE + PAYLOAD) };
        let len = len.min(BUF_SIZE - PAYLOAD) as u32;
        let ud = TAG_SEND | u64::from(bid);
        // A send with a destination address (no msghdr for the kernel to
        // copy in), or none on a connected companion. Never queued for later
        // in the kernel: a full socket buffer drops the packet, as the epoll
        // path does.
        let e = match dst {
            Some(dst) => {
                let name_len = write_sockaddr(&dst, &mut s.name);
                let name: *const libc::sockaddr = (&s.name as *const libc::sockaddr_storage).cast();
                on_socket!(self, slot, fd, |t| opcode::Send::new(t, data, len)
                    .dest_addr(name)
                    .dest_addr_len(name_len)
                    .flags(libc::MSG_DONTWAIT)
                    .build()
                    .user_data(ud))
            }
            None => on_socket!(self, slot, fd, |t| opcode::Send::new(t, data, len)
                .flags(libc::MSG_DONTWAIT)
                .build()
                .user_data(ud)),
        };
        self.push(&e)
    }

    /// Gives buffer `bid` back to the kernel (visible after [`publish`]).
    pub(crate) fn recycle(&mut self, bid: u16) {
        let mask = BUFS - 1;
        let idx = usize::from(self.tail & mask);
        // SAFETY: `idx < BUFS`, within the ring mapping; the kernel only
        // reads entries below the published tail, and this one is not yet.
        let entry = unsafe { &mut *self.buf_ring.ptr.cast::<BufRingEntry>().add(idx) };
        // SAFETY: `bid` < BUFS (callers pass ids the kernel gave out).
        entry.set_addr(unsafe { self.bufs.ptr.add(usize::from(bid % BUFS) * BUF_SIZE) } as u64);
        entry.set_len(RECV_LEN);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
    }

    /// Publishes the recycled buffers to the kernel.
    pub(crate) fn publish(&mut self) {
        // SAFETY: the tail field lives in the first ring entry, which is
        // mapped and aligned for a u16; the kernel reads it atomically.
        let tail = unsafe {
            AtomicU16::from_ptr(
                BufRingEntry::tail(self.buf_ring.ptr.cast::<BufRingEntry>()).cast_mut(),
            )
        };
        tail.store(self.tail, Ordering::Release);
    }

    /// Submits what is queued and waits up to `timeout` for a completion.
    pub(crate) fn submit_and_wait(&mut self, timeout: Duration) -> io::Result<()> {
        let ts = Timespec::from(timeout);
        let args = SubmitArgs::new().timespec(&ts);
        let (want, args) = if self.min_wait > 0 {
            (BATCH_WANT, args.min_wait_usec(self.min_wait))
        } else {
            (1, args)
        };
        match self.ring.submitter().submit_with_args(want, &args) {
            Ok(_) => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::ETIME) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Moves the pending completions into `self.cqes` (cleared first).
    pub(crate) fn reap(&mut self) {
        self.cqes.clear();
        let cap = self.cqes.capacity();
        let mut cq = self.ring.completion();
        for e in cq.by_ref().take(cap) {
            self.cqes.push(e);
        }
    }

    /// Decodes a completion.
    pub(crate) fn decode(e: &cqueue::Entry) -> Event {
        let ud = e.user_data();
        let more = cqueue::more(e.flags());
        match ud & TAG_MASK {
            TAG_RECV => Event::Recv {
                token: ud,
                res: e.result(),
                bid: cqueue::buffer_select(e.flags()),
                more,
            },
            TAG_SEND => Event::Sent {
                bid: (ud & 0xffff) as u16,
                res: e.result(),
            },
            TAG_WAKE => Event::Wake { more },
            _ => Event::Other,
        }
    }
}
