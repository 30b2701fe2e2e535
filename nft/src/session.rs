//! [`Session`]: the one nfnetlink socket an invocation uses for all its nftables work.

use crate::netlink::Conn;
use crate::state::Ctx;
use crate::NftError;

/// A `NETLINK_NETFILTER` socket in the network namespace of the thread that opened it, on which every operation
/// of this crate runs ([`Session::masq_add`], [`Session::spoofchk_del`], [`Session::isolate_add`], ...).
///
/// Open one per invocation, on a thread that is in the namespace you mean (for the plugin: the node's); the
/// socket stays in that namespace whichever thread uses it later, so a `Session` may move to another thread
/// (it is `Send`). Operations are synchronous; `&mut self` serialises them.
///
/// Dropping the session closes the socket, and closing waits for the RCU grace period of anything a transaction
/// on it deleted that the kernel has not freed yet (see the crate documentation, *Cost*): drop it where that wait
/// may overlap other work.
#[derive(Debug)]
pub struct Session {
    pub(crate) conn: Conn,
    /// The digest of owner comments in owner-map keys: [`crate::owners::digest`], or a test's.
    owner_digest: fn(&str) -> u64,
}

impl Session {
    /// Open a session in the calling thread's network namespace.
    pub fn open() -> Result<Session, NftError> {
        let conn = Conn::open().map_err(|e| NftError::io("Session::open", "nfnetlink socket", e))?;
        Ok(Session { conn, owner_digest: crate::owners::digest })
    }

    /// How many dump requests (reads of a whole set) this session has sent. CHECK and DEL send none; the tests
    /// use it to prove it.
    pub fn dumps_sent(&self) -> u64 {
        self.conn.dumps_sent()
    }

    /// How many transactions (nf_tables batches) this session has sent.
    pub fn batches_sent(&self) -> u64 {
        self.conn.batches_sent().0
    }

    /// How many of this session's transactions the kernel refused a message of, and so aborted. An abort is not
    /// free: the kernel waits for an RCU grace period in it (8-16 ms measured on 6.18) while holding the
    /// namespace's nf_tables commit lock. No call sends a transaction it already knows will fail; the tests use
    /// this to prove it. A batch rejected whole before the kernel looks at its messages (ERESTART: the ruleset
    /// generation it was bound to moved) is not counted: that costs no abort.
    pub fn batches_refused(&self) -> u64 {
        self.conn.batches_sent().1
    }

    pub(crate) fn ctx(&mut self, op: &'static str) -> Ctx<'_> {
        Ctx::new(op, &mut self.conn, self.owner_digest)
    }

    /// Whether the kernel reports set element counts: asks it, in a table made and dropped for the question.
    pub(crate) fn kernel_reports_set_counts(&mut self) -> Result<bool, NftError> {
        self.ctx("kernel_reports_set_counts").reports_set_counts()
    }

    /// A session whose owner-map digest is `digest`: lets tests make owners collide.
    pub(crate) fn with_owner_digest(digest: fn(&str) -> u64) -> Result<Session, NftError> {
        Ok(Session { owner_digest: digest, ..Session::open()? })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_can_move_to_another_thread() {
        fn send<T: Send>() {}
        send::<Session>();
    }
}
