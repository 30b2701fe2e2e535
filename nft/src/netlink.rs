//! The wire layer: nfnetlink messages for the nf_tables subsystem over a blocking `NETLINK_NETFILTER` socket.
//!
//! * [`Msg`] builds one message (netlink header, `nfgenmsg`, attributes, nested attributes).
//! * [`Batch`] wraps messages in `NFNL_MSG_BATCH_BEGIN`/`END`: the kernel applies them as one transaction, all
//!   or nothing. Every message carries `NLM_F_ACK`, and [`Conn::commit`] collects every ACK, so each failure is
//!   reported with its errno against the message (and object) that caused it. The kernel answers a batch inside
//!   the `sendmsg` that carries it, so once the socket is empty it has said all it will: a batch it refused whole
//!   after a replay gets one error and no ACKs (see [`CommitReplies::unanswered`]).
//! * [`Conn::dump`] and [`Conn::get`] read objects back.
//!
//! The socket is bound to the network namespace of the thread that opened it ([`Conn::open`]).

use std::os::fd::{AsFd, AsRawFd};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recv, setsockopt, sockopt, MsgFlags};

// <linux/netlink.h>
const NLMSG_HDRLEN: usize = 16;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
pub(crate) const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
pub(crate) const NLM_F_APPEND: u16 = 0x800;
/// In an NLMSG_ERROR message: the original message was cut to its header (NETLINK_CAP_ACK).
const NLM_F_CAPPED: u16 = 0x100;
/// In an NLMSG_ERROR message: extended-ack TLVs follow.
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

// <linux/netfilter/nfnetlink.h>
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFNL_BATCH_GENID: u16 = 1;
const NFGENMSG_LEN: usize = 4;

// <linux/netfilter/nf_tables.h>: NFT_MSG_*
pub(crate) const NFT_MSG_NEWTABLE: u16 = 0;
pub(crate) const NFT_MSG_GETTABLE: u16 = 1;
pub(crate) const NFT_MSG_DELTABLE: u16 = 2;
pub(crate) const NFT_MSG_NEWCHAIN: u16 = 3;
pub(crate) const NFT_MSG_NEWRULE: u16 = 6;
pub(crate) const NFT_MSG_NEWSET: u16 = 9;
pub(crate) const NFT_MSG_GETSET: u16 = 10;
pub(crate) const NFT_MSG_NEWSETELEM: u16 = 12;
pub(crate) const NFT_MSG_GETSETELEM: u16 = 13;
pub(crate) const NFT_MSG_DELSETELEM: u16 = 14;
const NFT_MSG_GETGEN: u16 = 16;
const NFTA_GEN_ID: u16 = 1;

/// How long to wait for the kernel before giving up on a reply. Loading a netfilter module on first use is the
/// slowest thing the kernel does for us; runtimes give a whole plugin call a few seconds more than this.
const REPLY_TIMEOUT_MS: u16 = 10_000;
/// Receive buffer: the kernel fills dump datagrams up to the reader's buffer size (at most 32 KiB by default).
const RECV_BUF: usize = 64 * 1024;
/// Above this batch size the socket's send buffer is raised (the kernel refuses a datagram larger than it).
const DEFAULT_SNDBUF: usize = 200 * 1024;

/// The nf_tables message type: subsystem in the high byte, command in the low byte.
fn nft_type(cmd: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | cmd
}

/// One netlink message under construction. Attributes are appended in order; [`Msg::nest`] wraps the attributes
/// its closure appends in a nested attribute.
#[derive(Debug, Clone)]
pub(crate) struct Msg {
    buf: Vec<u8>,
    /// Set when a nested attribute grew past the 64 KiB an attribute length can express.
    overflow: bool,
}

impl Msg {
    /// An nf_tables message `cmd` for address family `family` (NFPROTO_*), with netlink `flags`
    /// (NLM_F_REQUEST and NLM_F_ACK are added by the sender).
    pub(crate) fn new(cmd: u16, family: u8, flags: u16) -> Msg {
        Msg::raw(nft_type(cmd), flags, family, 0)
    }

    fn raw(msg_type: u16, flags: u16, family: u8, res_id: u16) -> Msg {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, set by finish()
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_seq, set by finish()
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
        buf.push(family); // nfgen_family
        buf.push(0); // version: NFNETLINK_V0
        buf.extend_from_slice(&res_id.to_be_bytes());
        Msg { buf, overflow: false }
    }

    fn add_flags(&mut self, flags: u16) {
        let cur = u16::from_ne_bytes([self.buf[6], self.buf[7]]);
        self.buf[6..8].copy_from_slice(&(cur | flags).to_ne_bytes());
    }

    fn pad(&mut self) {
        while self.buf.len() % 4 != 0 {
            self.buf.push(0);
        }
    }

    /// An attribute with raw bytes.
    pub(crate) fn bytes(&mut self, ty: u16, data: &[u8]) -> &mut Msg {
        let len = 4 + data.len();
        match u16::try_from(len) {
            Ok(len) => self.buf.extend_from_slice(&len.to_ne_bytes()),
            Err(_) => {
                self.overflow = true;
                self.buf.extend_from_slice(&0u16.to_ne_bytes());
            }
        }
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.pad();
        self
    }

    /// A NUL-terminated string attribute.
    pub(crate) fn str(&mut self, ty: u16, s: &str) -> &mut Msg {
        let mut data = Vec::with_capacity(s.len() + 1);
        data.extend_from_slice(s.as_bytes());
        data.push(0);
        self.bytes(ty, &data)
    }

    /// A 32-bit attribute in network byte order (nf_tables uses NLA_BE32 throughout).
    pub(crate) fn be32(&mut self, ty: u16, v: u32) -> &mut Msg {
        self.bytes(ty, &v.to_be_bytes())
    }

    /// A nested attribute holding whatever `f` appends.
    pub(crate) fn nest(&mut self, ty: u16, f: impl FnOnce(&mut Msg)) -> &mut Msg {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        f(self);
        let len = self.buf.len() - start;
        let len = u16::try_from(len).unwrap_or_else(|_| {
            self.overflow = true;
            0
        });
        self.buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
        self.buf[start + 2..start + 4].copy_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        self
    }

    /// The finished message with its length and sequence number, or None if an attribute overflowed.
    fn finish(mut self, seq: u32) -> Option<Vec<u8>> {
        if self.overflow {
            return None;
        }
        let len = u32::try_from(self.buf.len()).ok()?;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf[8..12].copy_from_slice(&seq.to_ne_bytes());
        Some(self.buf)
    }

    /// The attribute bytes after the headers (for tests).
    #[cfg(test)]
    pub(crate) fn attrs_bytes(&self) -> &[u8] {
        &self.buf[NLMSG_HDRLEN + NFGENMSG_LEN..]
    }
}

/// Netlink attributes of a buffer: `(type without flags, payload)`. Stops at the first malformed attribute.
pub(crate) fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        if buf.len() < 4 {
            return None;
        }
        let len = usize::from(u16::from_ne_bytes([buf[0], buf[1]]));
        let ty = u16::from_ne_bytes([buf[2], buf[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > buf.len() {
            return None;
        }
        let payload = &buf[4..len];
        let next = (len + 3) & !3;
        buf = buf.get(next..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

/// The first attribute of type `ty`.
pub(crate) fn attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(buf).find(|(t, _)| *t == ty).map(|(_, p)| p)
}

pub(crate) fn be32_of(p: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(p.get(..4)?.try_into().ok()?))
}

/// A NUL-terminated string attribute's text.
pub(crate) fn str_of(p: &[u8]) -> Option<&str> {
    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
    std::str::from_utf8(&p[..end]).ok()
}

/// One received netlink message.
struct Reply<'a> {
    msg_type: u16,
    flags: u16,
    seq: u32,
    /// Everything after the netlink header.
    body: &'a [u8],
}

fn replies(mut buf: &[u8]) -> impl Iterator<Item = Reply<'_>> {
    std::iter::from_fn(move || {
        if buf.len() < NLMSG_HDRLEN {
            return None;
        }
        let len = u32::from_ne_bytes(buf[0..4].try_into().ok()?) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let r = Reply {
            msg_type: u16::from_ne_bytes([buf[4], buf[5]]),
            flags: u16::from_ne_bytes([buf[6], buf[7]]),
            seq: u32::from_ne_bytes(buf[8..12].try_into().ok()?),
            body: &buf[NLMSG_HDRLEN..len],
        };
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some(r)
    })
}

/// An NLMSG_ERROR body: (errno as a positive number, 0 for an ACK; sequence number of the message it answers;
/// the kernel's extended-ack text).
fn parse_error(r: &Reply<'_>) -> Option<(i32, u32, Option<String>)> {
    let err = i32::from_ne_bytes(r.body.get(0..4)?.try_into().ok()?);
    let orig = r.body.get(4..4 + NLMSG_HDRLEN)?;
    let orig_len = u32::from_ne_bytes(orig[0..4].try_into().ok()?) as usize;
    let orig_seq = u32::from_ne_bytes(orig[8..12].try_into().ok()?);
    let mut detail = None;
    if r.flags & NLM_F_ACK_TLVS != 0 {
        let skip = if r.flags & NLM_F_CAPPED != 0 { NLMSG_HDRLEN } else { (orig_len + 3) & !3 };
        if let Some(tlvs) = r.body.get(4 + skip..) {
            detail = attr(tlvs, NLMSGERR_ATTR_MSG).and_then(str_of).map(str::to_owned);
        }
    }
    Some((err.saturating_neg(), orig_seq, detail))
}

/// Fold one received buffer into the answer to request `seq`: its data replies go to `out`; `Some` once the
/// request is finished (NLMSG_DONE of a dump, the ACK or error of a get), with the kernel's verdict. Replies to
/// other requests are skipped.
fn absorb_request_replies(buf: &[u8], seq: u32, out: &mut Dump) -> Result<Option<Result<(), KernelError>>, WireError> {
    for r in replies(buf) {
        if r.seq != seq {
            continue;
        }
        if r.flags & NLM_F_DUMP_INTR != 0 {
            out.interrupted = true;
        }
        match r.msg_type {
            // A dump that failed partway (e.g. its set deleted between two chunks) still ends
            // with NLMSG_DONE, whose body is the negative errno.
            NLMSG_DONE => {
                return Ok(Some(match r.body.get(0..4).map(|b| i32::from_ne_bytes([b[0], b[1], b[2], b[3]])) {
                    Some(err) if err < 0 => Err(KernelError { errno: err.saturating_neg(), detail: None }),
                    _ => Ok(()),
                }));
            }
            NLMSG_ERROR => {
                let (errno, _, detail) =
                    parse_error(&r).ok_or_else(|| WireError::Protocol("malformed netlink error message".into()))?;
                return Ok(Some(if errno == 0 { Ok(()) } else { Err(KernelError { errno, detail }) }));
            }
            _ => {
                let body =
                    r.body.get(NFGENMSG_LEN..).ok_or_else(|| WireError::Protocol("short nf_tables message".into()))?;
                out.bodies.push(body.to_vec());
            }
        }
    }
    Ok(None)
}

/// The kernel's verdicts on a transaction's messages, gathered from the buffers it answers with.
struct CommitReplies {
    begin_seq: u32,
    first_seq: u32,
    end_seq: u32,
    acked: Vec<bool>,
    pending: usize,
    failures: Vec<Failure>,
}

impl CommitReplies {
    /// A transaction of `n` messages numbered from `begin_seq + 1`, framed by `begin_seq` and `end_seq`.
    fn new(begin_seq: u32, n: usize, end_seq: u32) -> CommitReplies {
        CommitReplies {
            begin_seq,
            first_seq: begin_seq.wrapping_add(1),
            end_seq,
            acked: vec![false; n],
            pending: n,
            failures: Vec::new(),
        }
    }

    /// Fold one received buffer in; `Some` once every message is answered or the batch was refused whole.
    fn absorb(&mut self, buf: &[u8]) -> Result<Option<Commit>, WireError> {
        for r in replies(buf) {
            if r.msg_type != NLMSG_ERROR {
                continue;
            }
            let (errno, seq, detail) =
                parse_error(&r).ok_or_else(|| WireError::Protocol("malformed netlink error message".into()))?;
            let frame = seq == self.begin_seq || seq == self.end_seq;
            let index = seq.wrapping_sub(self.first_seq) as usize;
            if !frame && index >= self.acked.len() {
                continue; // a stale reply to an earlier request
            }
            // ERESTART is nfnetlink's refusal of the whole batch (its generation moved), never a message's own
            // error: it names the begin, or, on a replay, the message that needed a module (see `unanswered`).
            if errno != 0 && (frame || errno == libc::ERESTART) {
                return Ok(Some(Commit::Rejected { errno, detail }));
            }
            if frame || self.acked[index] {
                continue;
            }
            self.acked[index] = true;
            self.pending -= 1;
            if errno != 0 {
                self.failures.push(Failure { index, errno, detail });
            }
        }
        if self.pending > 0 {
            return Ok(None);
        }
        let mut failures = std::mem::take(&mut self.failures);
        if failures.is_empty() {
            Ok(Some(Commit::Done))
        } else {
            failures.sort_by_key(|f| f.index);
            Ok(Some(Commit::Failed(failures)))
        }
    }

    /// The verdict when the kernel stopped answering with messages still unacknowledged. nfnetlink refuses a
    /// batch whole, with one error, when it cannot replay it after loading a module a message needed (the
    /// generation moved while the commit lock was released for the load: ERESTART, which `absorb` already
    /// took for a refusal; or no memory for the replay's copy). That error carries the header of the message
    /// that needed the module, not the batch's begin: the replay reuses `nlh`, the loop's cursor, for it
    /// (`nfnetlink_rcv_batch`; seen on 6.1 with parallel first ADDs after boot, each waiting for ACKs that
    /// never came).
    fn unanswered(self) -> Result<Commit, WireError> {
        match self.failures.first() {
            Some(f) => Ok(Commit::Rejected { errno: f.errno, detail: f.detail.clone() }),
            None => Err(WireError::Protocol(format!(
                "the kernel acknowledged {} of the {} messages of a transaction and then nothing",
                self.acked.len() - self.pending,
                self.acked.len()
            ))),
        }
    }
}

/// Entry points for the fuzz targets: the reply parsing of every request kind, on bytes from anywhere.
#[doc(hidden)]
pub mod fuzzing {
    use super::{absorb_request_replies, CommitReplies, Dump};

    /// Feed `buf` to the parsers as the answer to a dump or get numbered `seq` and as the answer to a
    /// transaction of `n` messages after `seq`, then parse every data reply as set elements.
    pub fn replies(buf: &[u8], seq: u32, n: u8) {
        let mut dump = Dump { bodies: Vec::new(), interrupted: false };
        let _ = absorb_request_replies(buf, seq, &mut dump);
        for body in &dump.bodies {
            let _ = crate::objects::parse_elems(body);
        }
        let mut verdict = CommitReplies::new(seq, usize::from(n), seq.wrapping_add(u32::from(n)).wrapping_add(1));
        let _ = verdict.absorb(buf);
        let _ = verdict.absorb(buf); // a second buffer of the same replies: all stale or duplicates now
        let _ = verdict.unanswered(); // and then the socket went quiet
    }
}

/// Messages to apply as one nf_tables transaction. Each message carries a description of the object it touches,
/// used to name that object when the kernel rejects the message.
#[derive(Debug, Default)]
pub(crate) struct Batch {
    msgs: Vec<(Msg, String)>,
    genid: Option<u32>,
}

impl Batch {
    pub(crate) fn new() -> Batch {
        Batch::default()
    }

    /// Make the kernel reject the whole batch with ERESTART if the ruleset generation is no longer `genid`
    /// (compare-and-swap: nothing changed since we read the state this batch is computed from).
    pub(crate) fn if_generation(mut self, genid: u32) -> Batch {
        self.genid = Some(genid);
        self
    }

    /// Append `msg`; returns its index, which [`Failure::index`] refers to.
    pub(crate) fn push(&mut self, msg: Msg, object: String) -> usize {
        self.msgs.push((msg, object));
        self.msgs.len() - 1
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.msgs.is_empty()
    }

    pub(crate) fn len(&self) -> usize {
        self.msgs.len()
    }

    pub(crate) fn object(&self, index: usize) -> &str {
        self.msgs.get(index).map(|(_, o)| o.as_str()).unwrap_or("batch")
    }
}

/// The kernel refused message `index` of a batch with `errno`.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    pub(crate) index: usize,
    pub(crate) errno: i32,
    pub(crate) detail: Option<String>,
}

/// What happened to a batch.
#[derive(Debug)]
pub(crate) enum Commit {
    /// Every message was accepted and the transaction committed.
    Done,
    /// Some messages failed (each listed); nothing was applied.
    Failed(Vec<Failure>),
    /// The batch as a whole was refused (ERESTART when the generation moved, EPERM, ENOMEM...); nothing applied.
    Rejected { errno: i32, detail: Option<String> },
}

/// Failure to talk to the kernel at all (socket errors, timeouts, undecodable replies). Turned into an
/// [`crate::NftError`] by the caller, who knows the operation.
#[derive(Debug)]
pub(crate) enum WireError {
    Io(std::io::Error),
    Protocol(String),
}

/// A GET or dump that the kernel answered with an error.
#[derive(Debug)]
pub(crate) struct KernelError {
    pub(crate) errno: i32,
    pub(crate) detail: Option<String>,
}

/// Reply to a dump: the bodies (after the `nfgenmsg` header) of the objects, and whether the kernel flagged the
/// dump as interrupted by a concurrent change.
pub(crate) struct Dump {
    pub(crate) bodies: Vec<Vec<u8>>,
    pub(crate) interrupted: bool,
}

/// A blocking nfnetlink socket in the network namespace of the thread that opened it.
pub(crate) struct Conn {
    sock: Socket,
    seq: u32,
    buf: Vec<u8>,
    /// Dump requests sent so far ([`Conn::dumps_sent`]).
    dumps: u64,
    /// Transactions sent so far, and those of them the kernel aborted ([`Conn::batches_sent`]).
    batches: u64,
    aborted: u64,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("fd", &self.sock.as_raw_fd()).field("seq", &self.seq).finish()
    }
}

impl Conn {
    /// Open and bind a `NETLINK_NETFILTER` socket in the calling thread's network namespace.
    pub(crate) fn open() -> std::io::Result<Conn> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        // Smaller ACKs (no echo of the original message) and the kernel's error text when it has one. Both are
        // optional: old kernels without them still work.
        let _ = sock.set_cap_ack(true);
        let _ = sock.set_ext_ack(true);
        Ok(Conn { sock, seq: 0, buf: vec![0; RECV_BUF], dumps: 0, batches: 0, aborted: 0 })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&mut self, data: &[u8]) -> Result<(), WireError> {
        if data.len() > DEFAULT_SNDBUF {
            // Like nft, force a send buffer big enough for the whole batch (CAP_NET_ADMIN allows the override).
            let want = data.len() + 4096;
            if setsockopt(&self.sock, sockopt::SndBufForce, &want).is_err() {
                setsockopt(&self.sock, sockopt::SndBuf, &want).map_err(|e| WireError::Io(e.into()))?;
            }
        }
        let n = self.sock.send(data, 0).map_err(WireError::Io)?;
        if n != data.len() {
            return Err(WireError::Protocol(format!("short netlink send: {n} of {} bytes", data.len())));
        }
        Ok(())
    }

    /// Receive one datagram into `self.buf`; returns its length.
    fn recv(&mut self) -> Result<usize, WireError> {
        loop {
            if !self.readable_within(PollTimeout::from(REPLY_TIMEOUT_MS))? {
                return Err(WireError::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no reply from the kernel within {} ms", REPLY_TIMEOUT_MS),
                )));
            }
            match recv(self.sock.as_raw_fd(), &mut self.buf, MsgFlags::MSG_TRUNC) {
                Ok(n) if n > self.buf.len() => {
                    return Err(WireError::Protocol(format!("netlink reply of {n} bytes truncated")))
                }
                Ok(n) => return Ok(n),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(WireError::Io(e.into())),
            }
        }
    }

    /// Send `batch` as one transaction and collect the kernel's verdict on every message.
    pub(crate) fn commit(&mut self, batch: &Batch) -> Result<Commit, WireError> {
        let begin_seq = self.next_seq();
        let mut out = Vec::with_capacity(512);
        let mut begin = Msg::raw(NFNL_MSG_BATCH_BEGIN, NLM_F_REQUEST, libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES);
        if let Some(genid) = batch.genid {
            begin.be32(NFNL_BATCH_GENID, genid);
        }
        out.extend(begin.finish(begin_seq).ok_or_else(|| WireError::Protocol("batch header overflow".into()))?);
        let first_seq = begin_seq.wrapping_add(1);
        for (i, (msg, object)) in batch.msgs.iter().enumerate() {
            let mut msg = msg.clone();
            msg.add_flags(NLM_F_REQUEST | NLM_F_ACK);
            let seq = self.next_seq();
            debug_assert_eq!(seq, first_seq.wrapping_add(i as u32));
            let bytes = msg
                .finish(seq)
                .ok_or_else(|| WireError::Protocol(format!("message for {object} exceeds netlink limits")))?;
            out.extend(bytes);
        }
        let end_seq = self.next_seq();
        let end = Msg::raw(NFNL_MSG_BATCH_END, NLM_F_REQUEST, libc::AF_UNSPEC as u8, NFNL_SUBSYS_NFTABLES);
        out.extend(end.finish(end_seq).ok_or_else(|| WireError::Protocol("batch trailer overflow".into()))?);
        self.send(&out)?;
        self.batches += 1;

        let mut verdict = CommitReplies::new(begin_seq, batch.msgs.len(), end_seq);
        loop {
            let len = self.recv()?;
            if let Some(commit) = verdict.absorb(&self.buf[..len])? {
                if matches!(commit, Commit::Failed(_)) {
                    self.aborted += 1;
                }
                return Ok(commit);
            }
            if !self.readable_within(PollTimeout::ZERO)? {
                return verdict.unanswered();
            }
        }
    }

    /// Whether a datagram (or a socket error, such as ENOBUFS for replies the kernel dropped) is there to be read
    /// within `timeout`.
    fn readable_within(&self, timeout: PollTimeout) -> Result<bool, WireError> {
        let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
        loop {
            match poll(&mut fds, timeout) {
                Ok(n) => return Ok(n > 0),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => return Err(WireError::Io(e.into())),
            }
        }
    }

    /// Run a request and collect the bodies of its data replies, until NLMSG_DONE (dump) or the ACK (get), with
    /// the kernel's error if it ended with one (a GET of several elements answers those found before failing).
    fn request(&mut self, mut msg: Msg, dump: bool) -> Result<(Dump, Option<KernelError>), WireError> {
        msg.add_flags(NLM_F_REQUEST | if dump { NLM_F_DUMP } else { NLM_F_ACK });
        let seq = self.next_seq();
        let bytes = msg.finish(seq).ok_or_else(|| WireError::Protocol("request exceeds netlink limits".into()))?;
        self.send(&bytes)?;
        let mut dump_out = Dump { bodies: Vec::new(), interrupted: false };
        loop {
            let len = self.recv()?;
            match absorb_request_replies(&self.buf[..len], seq, &mut dump_out)? {
                None => {}
                Some(Ok(())) => return Ok((dump_out, None)),
                Some(Err(e)) => return Ok((dump_out, Some(e))),
            }
        }
    }

    /// A dump request (NLM_F_DUMP): every matching object.
    pub(crate) fn dump(&mut self, msg: Msg) -> Result<Result<Dump, KernelError>, WireError> {
        self.dumps += 1;
        Ok(match self.request(msg, true)? {
            (dump, None) => Ok(dump),
            (_, Some(e)) => Err(e),
        })
    }

    /// A GET: the objects it answered with, and the error it ended with, if any.
    pub(crate) fn get(&mut self, msg: Msg) -> Result<(Dump, Option<KernelError>), WireError> {
        self.request(msg, false)
    }

    /// How many dump requests this socket has sent.
    pub(crate) fn dumps_sent(&self) -> u64 {
        self.dumps
    }

    /// How many transactions this socket has sent, and how many of them the kernel aborted because it refused a
    /// message ([`Commit::Failed`]; a batch rejected whole, as for a moved generation, is not counted).
    pub(crate) fn batches_sent(&self) -> (u64, u64) {
        (self.batches, self.aborted)
    }

    /// The ruleset generation: it changes with every committed transaction in this network namespace.
    pub(crate) fn generation(&mut self) -> Result<Result<u32, KernelError>, WireError> {
        let msg = Msg::new(NFT_MSG_GETGEN, libc::AF_UNSPEC as u8, 0);
        let reply = match self.get(msg)? {
            (reply, None) => reply,
            (_, Some(e)) => return Ok(Err(e)),
        };
        let id = reply.bodies.iter().find_map(|b| attr(b, NFTA_GEN_ID).and_then(be32_of));
        id.map(Ok).ok_or_else(|| WireError::Protocol("generation reply without NFTA_GEN_ID".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_nfgenmsg() {
        let mut m = Msg::new(NFT_MSG_NEWTABLE, 1, NLM_F_CREATE);
        m.str(1, "t");
        let b = m.finish(7).unwrap();
        assert_eq!(u32::from_ne_bytes(b[0..4].try_into().unwrap()) as usize, b.len());
        assert_eq!(u16::from_ne_bytes([b[4], b[5]]), (10 << 8) | NFT_MSG_NEWTABLE);
        assert_eq!(u16::from_ne_bytes([b[6], b[7]]), NLM_F_CREATE);
        assert_eq!(u32::from_ne_bytes(b[8..12].try_into().unwrap()), 7);
        assert_eq!(&b[16..20], &[1, 0, 0, 0]); // family inet, NFNETLINK_V0, res_id 0
                                               // attribute: len 6 ("t\0" + 4), type 1, padded to 8
        assert_eq!(&b[20..28], &[6, 0, 1, 0, b't', 0, 0, 0]);
        assert_eq!(b.len(), 28);
    }

    /// A netlink message: header (len, type, flags, seq, pid) and `body`.
    fn message(msg_type: u16, flags: u16, seq: u32, body: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&msg_type.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(body);
        m
    }

    #[test]
    fn an_errno_of_i32_min_is_no_overflow() {
        // Seen while writing the nft_reply fuzz target: negating the errno of an NLMSG_ERROR or NLMSG_DONE
        // overflowed (a panic in debug builds) for i32::MIN.
        let mut err = i32::MIN.to_ne_bytes().to_vec();
        err.extend(message(0, 0, 7, &[]));
        let mut dump = Dump { bodies: Vec::new(), interrupted: false };
        let done = absorb_request_replies(&message(NLMSG_DONE, 0, 7, &i32::MIN.to_ne_bytes()), 7, &mut dump);
        assert!(matches!(done, Ok(Some(Err(KernelError { errno: i32::MAX, .. })))));
        let error = absorb_request_replies(&message(NLMSG_ERROR, 0, 7, &err), 7, &mut dump);
        assert!(matches!(error, Ok(Some(Err(KernelError { errno: i32::MAX, .. })))));
        let mut verdict = CommitReplies::new(6, 1, 8);
        assert!(matches!(verdict.absorb(&message(NLMSG_ERROR, 0, 7, &err)), Ok(Some(Commit::Failed(_)))));
    }

    #[test]
    fn replies_to_other_requests_and_duplicates_are_skipped() {
        let ack = |seq: u32| {
            let mut b = 0i32.to_ne_bytes().to_vec();
            b.extend(message(0, 0, seq, &[]));
            message(NLMSG_ERROR, 0, seq, &b)
        };
        let mut verdict = CommitReplies::new(10, 2, 13);
        assert!(matches!(verdict.absorb(&[ack(11), ack(11), ack(99)].concat()), Ok(None)), "one of two answered");
        assert!(matches!(verdict.absorb(&ack(12)), Ok(Some(Commit::Done))));
    }

    #[test]
    fn a_refusal_naming_a_middle_message_ends_the_transaction() {
        // A replayed batch refused with ERESTART, the error carrying the header of message 3 of 4 (seq 13):
        // no other message is ever acknowledged (6.1, parallel first ADDs after boot).
        let error = |seq: u32, errno: i32| {
            let mut b = (-errno).to_ne_bytes().to_vec();
            b.extend(message(0, 0, seq, &[]));
            message(NLMSG_ERROR, 0, seq, &b)
        };
        let mut verdict = CommitReplies::new(10, 4, 15);
        assert!(matches!(
            verdict.absorb(&error(13, libc::ERESTART)),
            Ok(Some(Commit::Rejected { errno: libc::ERESTART, .. }))
        ));
        // The same for a batch of one message: the refusal names it, so it looks answered, but nothing was applied.
        let mut verdict = CommitReplies::new(10, 1, 12);
        assert!(matches!(
            verdict.absorb(&error(11, libc::ERESTART)),
            Ok(Some(Commit::Rejected { errno: libc::ERESTART, .. }))
        ));
        // Refused for another reason: that reason, once the socket is found empty.
        let mut verdict = CommitReplies::new(10, 4, 15);
        assert!(matches!(verdict.absorb(&error(12, libc::ENOMEM)), Ok(None)));
        assert!(matches!(verdict.unanswered(), Ok(Commit::Rejected { errno: libc::ENOMEM, .. })));
        // Some ACKs and then silence, without any error: a protocol failure naming the count, not a hang.
        let mut verdict = CommitReplies::new(10, 4, 15);
        assert!(matches!(verdict.absorb(&error(11, 0)), Ok(None)));
        let err = verdict.unanswered().unwrap_err();
        assert!(matches!(&err, WireError::Protocol(m) if m.contains("1 of the 4")), "{err:?}");
    }

    #[test]
    fn nested_attributes_round_trip() {
        let mut m = Msg::new(NFT_MSG_NEWSETELEM, 1, 0);
        m.nest(3, |m| {
            m.be32(1, 0xdead_beef);
            m.bytes(2, &[1, 2, 3]);
        });
        let body = m.attrs_bytes().to_vec();
        let (ty, inner) = attrs(&body).next().unwrap();
        assert_eq!(ty, 3);
        assert_eq!(u16::from_ne_bytes([body[2], body[3]]), 3 | NLA_F_NESTED);
        let v: Vec<_> = attrs(inner).collect();
        assert_eq!(v.len(), 2);
        assert_eq!(be32_of(v[0].1), Some(0xdead_beef));
        assert_eq!(v[1], (2, &[1u8, 2, 3][..]));
    }

    #[test]
    fn oversized_nest_is_refused_not_truncated() {
        let mut m = Msg::new(NFT_MSG_NEWSETELEM, 1, 0);
        m.nest(3, |m| {
            for _ in 0..20_000 {
                m.be32(1, 0);
            }
        });
        assert!(m.finish(1).is_none());
    }

    #[test]
    fn error_reply_parsing() {
        // NLMSG_ERROR, flags CAPPED|ACK_TLVS, errno -EEXIST, original header with seq 42, then a MSG TLV.
        let mut body = Vec::new();
        body.extend_from_slice(&(-libc::EEXIST).to_ne_bytes());
        let mut orig = [0u8; 16];
        orig[0..4].copy_from_slice(&64u32.to_ne_bytes());
        orig[8..12].copy_from_slice(&42u32.to_ne_bytes());
        body.extend_from_slice(&orig);
        body.extend_from_slice(&[9, 0, 1, 0, b'b', b'a', b'd', b'!', 0, 0, 0, 0]);
        let r = Reply { msg_type: NLMSG_ERROR, flags: NLM_F_CAPPED | NLM_F_ACK_TLVS, seq: 42, body: &body };
        let (errno, seq, detail) = parse_error(&r).unwrap();
        assert_eq!((errno, seq, detail.as_deref()), (libc::EEXIST, 42, Some("bad!")));
    }
}
