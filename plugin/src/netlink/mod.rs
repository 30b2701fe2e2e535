//! A thin layer over a `netlink-proto` route connection: one connection per namespace, every
//! request bounded by a timeout; failures are [`NlError`]s, which callers name with
//! `error::Doing::doing` (the operation and the object).
//!
//! A [`Netlink`] acts in the namespace its socket was created in (see `netns.rs`): create it on
//! the main thread, switched into the target namespace for the synchronous `connect` call only.
//! Requests are built from `netlink-packet-route` messages directly; targeted gets by name or
//! index are preferred over dumps, which the kernel may interrupt (NLM_F_DUMP_INTR). Several
//! requests for one namespace can travel as one datagram ([`Batch`]).
//!
//! Round trips are what an ADD costs (the kernel work behind most requests is microseconds), so
//! two rules: requests to different namespaces that do not depend on each other are awaited
//! together (`tokio::join!`, so they overlap), and dependent requests for one namespace go
//! together in a [`Batch`], whose answers are read by slot. A request is an ordinary future: it
//! goes out when first polled, so the order requests reach the kernel is the order they are
//! awaited, never the order they were written. (`netlink-proto` sends one queued request per
//! wake-up of its connection, so separate requests on one socket cost a round trip each.)

pub mod addr;
mod batch;
pub mod bridge;
pub mod link;
pub mod neigh;
mod nsid;
#[cfg(test)]
mod root_tests;
pub mod route;

use futures::StreamExt;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_proto::sys::protocols::NETLINK_ROUTE;
use netlink_proto::sys::{AsyncSocket, SocketAddr};
use netlink_proto::ConnectionHandle;
use nix::errno::Errno;
use std::time::Duration;

/// How long one request may take before it is an error: a hang is worse than a clear failure.
/// Not less: a link request waits for the RTNL lock, which a busy node's other link changes hold
/// for seconds (measured, scripts/kernel-test on 6.1 under TCG: with 64 DELs at once, deleting
/// a veth took over 5 s). Runtimes give a whole invocation minutes (kubelet: 2 min by default).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// A netlink error: the kernel's errno when there is one.
#[derive(Debug)]
pub struct NlError {
    /// errno reported by the kernel (positive), if the failure came from the kernel.
    pub errno: Option<Errno>,
    text: String,
}

impl NlError {
    pub(crate) fn other(text: impl Into<String>) -> NlError {
        NlError { errno: None, text: text.into() }
    }

    /// The kernel's answer `-errno`.
    pub(crate) fn kernel(code: i32) -> NlError {
        let errno = Errno::from_raw(-code);
        NlError { errno: Some(errno), text: errno.desc().to_string() }
    }

    /// The object does not exist (ENODEV, ENOENT, ESRCH, EADDRNOTAVAIL).
    pub fn is_not_found(&self) -> bool {
        matches!(self.errno, Some(Errno::ENODEV | Errno::ENOENT | Errno::ESRCH | Errno::EADDRNOTAVAIL))
    }

    /// The object exists already.
    pub fn is_exists(&self) -> bool {
        self.errno == Some(Errno::EEXIST)
    }
}

impl std::fmt::Display for NlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

pub use batch::{Outcomes, Slot};

/// The netlink address family of `ip`.
fn family(ip: &std::net::IpAddr) -> netlink_packet_route::AddressFamily {
    if ip.is_ipv4() {
        netlink_packet_route::AddressFamily::Inet
    } else {
        netlink_packet_route::AddressFamily::Inet6
    }
}

/// A route-netlink connection bound to one namespace.
#[derive(Clone)]
pub struct Netlink {
    handle: ConnectionHandle<RouteNetlinkMessage>,
}

impl Netlink {
    /// Open a socket in the calling thread's current namespace and start serving it. Must be
    /// called inside the tokio runtime; performs no await.
    ///
    /// # Errors
    /// When the socket cannot be opened or configured.
    pub fn connect() -> Result<Netlink, NlError> {
        let (mut connection, handle, _) = netlink_proto::new_connection(NETLINK_ROUTE)
            .map_err(|e| NlError::other(format!("open netlink socket: {e}")))?;
        // Every request of a batch answers, a change with an ACK: a batch tells its requests'
        // outcomes apart only if the ACKs reach it too (netlink-proto drops them by default).
        connection.set_forward_ack(true);
        // Strict checking (Linux 4.20+) makes the kernel filter a dump by the header's fields, so
        // the addresses of one link are read without the node sending every address it has.
        connection
            .socket_mut()
            .socket_mut()
            .set_netlink_get_strict_chk(true)
            .map_err(|e| NlError::other(format!("enable strict checking on the netlink socket: {e}")))?;
        tokio::spawn(connection);
        Ok(Netlink { handle })
    }

    /// Send one request and collect its replies (an ACK-only request returns no messages).
    async fn request(&self, message: RouteNetlinkMessage, flags: u16) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        let mut req = NetlinkMessage::from(message);
        req.header.flags = flags | NLM_F_REQUEST;
        let mut stream = self
            .handle
            .request(req, SocketAddr::new(0, 0))
            .map_err(|e| NlError::other(format!("netlink request failed: {e}")))?;
        let collect = async move {
            let mut replies = Vec::new();
            while let Some(msg) = stream.next().await {
                match msg.payload {
                    NetlinkPayload::InnerMessage(inner) => replies.push(inner),
                    NetlinkPayload::Error(err) => {
                        if let Some(code) = err.code {
                            return Err(NlError::kernel(code.get()));
                        }
                    }
                    _ => {}
                }
            }
            Ok(replies)
        };
        tokio::time::timeout(REQUEST_TIMEOUT, collect)
            .await
            .map_err(|_| NlError::other(format!("no answer from the kernel within {REQUEST_TIMEOUT:?}")))?
    }

    /// A request that changes state and expects only an acknowledgement.
    pub(crate) async fn ack(&self, message: RouteNetlinkMessage, flags: u16) -> Result<(), NlError> {
        self.request(message, flags | NLM_F_ACK).await.map(|_| ())
    }

    /// A get of one object.
    pub(crate) async fn get(&self, message: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.request(message, 0).await
    }

    /// A dump.
    pub(crate) async fn dump(&self, message: RouteNetlinkMessage) -> Result<Vec<RouteNetlinkMessage>, NlError> {
        self.request(message, NLM_F_DUMP).await
    }
}
