//! tether's nftables state, managed in-process over nfnetlink: no `nft` or `iptables` process, no C library.
//!
//! Three features; masquerade and spoof check keep one table per network and family with per-container state as
//! set elements, isolation keeps one shared table with one element per network:
//!
//! * IP masquerade ([`Session::masq_add`], [`Session::masq_del`], [`Session::masq_list`],
//!   [`Session::masq_excluded`], [`Session::masq_gc`]):
//!   `table inet tether-<network>`, a `postrouting` nat chain with eight fixed rules, the containers' addresses in
//!   the sets `masq4`/`masq6` and the network's non-masquerade destinations in `nomasq4`/`nomasq6`.
//! * Bridge MAC spoof check ([`Session::spoofchk_add`], [`Session::spoofchk_del`], [`Session::spoofchk_list`],
//!   [`Session::spoofchk_gc`]):
//!   `table bridge tether-<network>`, a `prerouting` filter chain with three fixed rules and the guarded ports and
//!   their allowed MACs in the sets `ports`/`allowed`.
//! * Isolation between networks ([`Session::isolate_add`], [`Session::isolate_check`], [`Session::isolate_del`],
//!   and [`isolation_group`], which needs no socket): one shared
//!   `table inet tether` whose `forward` chain drops traffic forwarded between interfaces of two different tether
//!   networks, recognised by their link group; each network is one element of the set `same`.
//!
//! Rule evaluation does not grow with the number of containers (set lookups are hash or tree lookups). Each
//! element carries the comment `<containerID>/<ifname>` (shown by `nft list ruleset`), and each per-network table
//! has owner maps that record every attachment's elements under a key derived from that comment (module
//! `owners`), so CHECK and DEL find an attachment's state by network, container ID and ifname alone, without its
//! addresses or interfaces, and by key lookups (`NFT_MSG_GETSETELEM` without `NLM_F_DUMP`), not by listing sets.
//!
//! # Behaviour
//!
//! * One [`Session`] per invocation: [`Session::open`] opens one `NETLINK_NETFILTER` socket in the network
//!   namespace of the **calling thread**, and every operation is a method on it. The socket belongs to that
//!   namespace for its whole life, whichever thread later uses it: open the session on a thread that is in the
//!   namespace you mean (for the plugin: the node's), never from an async task that may migrate while switched.
//!   `Session` is `Send`, so it may be opened, used or dropped on a helper thread.
//! * Closing the socket (dropping the session) waits for the RCU grace period of objects a deleting transaction
//!   on it left for the kernel to free (see *Cost*). The plugin's DEL relies on this to overlap that wait with the
//!   deletion of the link: it may run, and drop, its session on a helper thread.
//! * Every call is synchronous.
//! * Changes are nf_tables batch transactions: all of an operation's messages commit together or not at all.
//!   Every message asks for an ACK, and a refusal is reported as an [`NftError`] naming the operation, the object
//!   and the errno.
//! * Creation is race-free, and costs the first ADD nothing but its size: when the table is absent, the ADD's one
//!   transaction creates it (table, chain, sets, rules) with the attachment's elements in it, bound to the ruleset
//!   generation the table was seen absent at. A concurrent creator that commits first makes the kernel reject it
//!   whole with ERESTART (before trying any message: no abort, unless a message had made the kernel load a
//!   module) and we read again and fill the table it made; the table message is exclusive besides, so no
//!   interleaving can duplicate the rules. No call sends a transaction it already knows will fail: a refused one
//!   is aborted, and the kernel's abort waits for an RCU grace period (8-16 ms) holding the namespace's commit
//!   lock ([`Session::batches_refused`] counts them).
//! * DEL looks the attachment's elements up by key and deletes those whose comment is its owner's (a digest
//!   collision or a takeover cannot make it delete another's); a table made by a release before owner maps is
//!   still cleaned, by listing its sets as that release did. GC lists the sets and deletes what no valid
//!   attachment owns. A table left empty is dropped,
//!   with the network's isolation element, by a transaction bound to the ruleset generation it read
//!   (`NFNL_BATCH_GENID`): if anything changed in between, the kernel refuses it with ERESTART and we read again.
//!   This is what makes deleting a whole table safe against a concurrent ADD, which recreates a missing table.
//!
//! # Why hand-written nfnetlink
//!
//! The alternatives were the `nftnl` crate (bindings to libnftnl) and writing the messages ourselves. `nftnl`
//! exposes only anonymous constant sets, without element user data (comments), interval elements or inverted
//! lookups, so most of this crate would have been raw FFI to libnftnl anyway; and libnftnl (with libmnl) is
//! GPL-2.0-or-later, which cannot be linked into an Apache-2.0 binary we ship. The nf_tables wire format is small
//! and stable (a header, type-length-value attributes, nested lists), so this crate encodes the dozen message kinds
//! it needs in a few hundred lines of safe Rust (modules `netlink` and `objects`), over `netlink-sys` (MIT).
//! Nothing is needed at build or run time but the kernel's nf_tables (`nft_masq`, `nf_nat` for masquerade; the
//! bridge family for the spoof check), which the kernel loads on first use.
//!
//! Kernel requirement: Linux 5.2 or later (NAT in the `inet` family); Debian 12's 6.1 is fine. The key lookups
//! (a GETSETELEM of given keys, Linux 4.15 and later) need nothing newer.
//!
//! # Cost
//!
//! `cargo run --release -p tether-nft --example nft_bench` (root; it runs in its own new namespace) measures each
//! call with 0 to 1000 other attachments present, and first the first ADD of each feature on a namespace without its
//! table. Adds are one transaction (about 0.1 ms) whatever the number of elements, the network's first ADD on a node
//! included (it creates the table in that transaction: masquerade about 0.7 ms, the NAT chain's hook being the
//! dearest part; spoof check and isolation about 0.15 ms); CHECK and DEL are a few key lookups, whatever the number of elements. Only GC lists the sets. To know
//! whether its DEL left the table empty, DEL asks the set's element count (`NFTA_SET_COUNT`, one GETSET) on kernels
//! that report it (6.18 does); Debian 12's 6.1 does not, and there DEL reads the first non-empty set whole (about
//! 0.4 ms at 1000 elements).
//! A transaction that deletes anything makes the kernel free the objects after an RCU grace period, and the kernel
//! waits for that when the nfnetlink socket is closed; a DEL (`masq_del`, `spoofchk_del`) waits for it and takes
//! roughly one grace period (10-20 ms here; `nft delete element` pays the same). A network's last DEL removes its
//! elements and the table in one transaction where the kernel reports set counts, and so waits once.

#![warn(missing_docs)]

mod by_owner;
mod error;
mod grace;
mod interval;
mod isolate;
mod masq;
mod names;
mod netlink;
mod objects;
mod owners;
mod session;
mod spoofchk;
mod state;

pub use error::NftError;
pub use isolate::{isolation_group, ISOLATION_MASK, ISOLATION_TAG};
pub use masq::MasqEntry;
#[doc(hidden)]
pub use netlink::fuzzing;
pub use session::Session;

/// For tests only: not part of the API.
#[doc(hidden)]
pub mod testing {
    /// A session whose owner maps key entries by `digest` of the owner comment instead of the real one, so that
    /// a test can make two attachments' digests collide.
    pub fn session_with_owner_digest(digest: fn(&str) -> u64) -> Result<crate::Session, crate::NftError> {
        crate::Session::with_owner_digest(digest)
    }

    /// Whether the kernel reports a set's element count (`NFTA_SET_COUNT`), which spares DEL its one read of a
    /// set to know whether the table is left empty.
    pub fn kernel_reports_set_counts() -> Result<bool, crate::NftError> {
        crate::Session::open()?.kernel_reports_set_counts()
    }
}

/// The prefix of every per-network table this crate manages (`tether-<network>` in the `inet` and `bridge`
/// families); the isolation table shared by all networks is `inet tether`.
pub const TABLE_PREFIX: &str = names::TABLE_PREFIX;
