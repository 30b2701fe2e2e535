//! Several requests for one namespace in ONE datagram: one `sendto`, one wait.
//!
//! The kernel handles the messages of a datagram one after the other, each to completion, and
//! answers each (`netlink_rcv_skb`), so a later message sees what an earlier one did (the
//! address before the route that uses it as source, the link up before its routes). A failing
//! message does not stop the ones after it. Each request added returns a [`Slot`], and the
//! caller reads its outcome by that slot ([`Outcomes::take`]), never by position: reordering the
//! requests changes what the kernel sees first, never which answer is read for which request.

use super::addr::{new_address, AddrFlags};
use super::bridge::{update_message, LinkUpdate};
use super::link::{get_by_index, get_by_name, mark_message, set_up_message};
use super::neigh::new_neighbour;
use super::route::{new_route, RouteSpec};
use super::{Netlink, NlError, REQUEST_TIMEOUT};
use futures::StreamExt;
use ipnet::IpNet;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE, NLM_F_REQUEST,
};
use netlink_packet_route::neighbour::NeighbourState;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_proto::sys::SocketAddr;
use netlink_proto::ConnectionHandle;
use std::net::IpAddr;

/// Requests collected for one [`Netlink`] connection, sent together by [`Batch::send`].
pub struct Batch {
    handle: ConnectionHandle<RouteNetlinkMessage>,
    messages: Vec<NetlinkMessage<RouteNetlinkMessage>>,
}

/// What the kernel answered to one request: the replies (a get's object; nothing for a change)
/// or the error.
pub type Outcome = Result<Vec<RouteNetlinkMessage>, NlError>;

/// The handle of one request in a [`Batch`]: where its outcome is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "the request's outcome is read by its slot"]
pub struct Slot(usize);

/// The outcomes of a batch's requests, read by their [`Slot`]s.
#[derive(Debug)]
pub struct Outcomes(Vec<Option<Outcome>>);

impl Outcomes {
    /// Take the outcome of the request at `slot` (each is taken once; a second take, or a slot of
    /// another batch, is an error rather than another request's answer).
    pub fn take(&mut self, slot: Slot) -> Outcome {
        self.0
            .get_mut(slot.0)
            .and_then(Option::take)
            .unwrap_or_else(|| Err(NlError::other("no answer to a batched request")))
    }

    /// Whether the request at `slot` failed, and how (without taking the outcome).
    pub fn error(&self, slot: Slot) -> Option<&NlError> {
        match self.0.get(slot.0) {
            Some(Some(Err(e))) => Some(e),
            _ => None,
        }
    }

    /// Put a new outcome for `slot` (a retry's).
    pub fn replace(&mut self, slot: Slot, outcome: Outcome) {
        if let Some(entry) = self.0.get_mut(slot.0) {
            *entry = Some(outcome);
        }
    }
}

impl Netlink {
    /// An empty batch for this connection's namespace.
    pub fn batch(&self) -> Batch {
        Batch { handle: self.handle.clone(), messages: Vec::new() }
    }
}

impl Batch {
    /// Add a request; where its outcome will be.
    fn push(&mut self, message: RouteNetlinkMessage, flags: u16) -> Slot {
        let mut message = NetlinkMessage::from(message);
        message.header.flags = flags | NLM_F_REQUEST;
        self.messages.push(message);
        Slot(self.messages.len() - 1)
    }

    /// As `Netlink::add_addr`.
    pub fn add_addr(&mut self, index: u32, addr: IpNet, flags: AddrFlags) -> Slot {
        self.push(new_address(index, addr, flags), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    }

    /// As `Netlink::add_route`.
    pub fn add_route(&mut self, oif: u32, spec: &RouteSpec) -> Slot {
        self.push(new_route(oif, spec), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    }

    /// A permanent neighbour entry `ip` → `mac` on link `index` (replacing one there).
    pub fn add_permanent_neighbour(&mut self, index: u32, ip: IpAddr, mac: &[u8]) -> Slot {
        self.push(new_neighbour(index, ip, mac, NeighbourState::Permanent), NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// As `Netlink::seed_neighbour`.
    pub fn seed_neighbour(&mut self, index: u32, ip: IpAddr, mac: &[u8]) -> Slot {
        self.push(new_neighbour(index, ip, mac, NeighbourState::Stale), NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE)
    }

    /// As `Netlink::set_up`.
    pub fn set_up(&mut self, index: u32) -> Slot {
        self.push(set_up_message(index), NLM_F_ACK)
    }

    /// As `Netlink::update_link`.
    pub fn update_link(&mut self, index: u32, update: &LinkUpdate) -> Slot {
        self.push(update_message(index, update), NLM_F_ACK)
    }

    /// A get of link `index`; read the outcome with `link::link_of` or `link::oper_up`. Also
    /// brings the link's state up to date (see `Netlink::sync_link_state`).
    pub fn get_link(&mut self, index: u32) -> Slot {
        self.push(get_by_index(index), 0)
    }

    /// A get of the link called `name`; read the outcome with `link::link_of`.
    pub fn get_link_by_name(&mut self, name: &str) -> Slot {
        self.push(get_by_name(name), 0)
    }

    /// Set the alias of the link called `name` and, with `no_ipv6_addresses`, turn its IPv6
    /// address generation off (see `link::mark_message`).
    pub fn mark(&mut self, name: &str, alias: &str, no_ipv6_addresses: bool) -> Slot {
        self.push(mark_message(name, alias, no_ipv6_addresses), NLM_F_ACK)
    }

    /// Send every request in one datagram and collect every request's outcome.
    ///
    /// # Errors
    /// When the connection is gone or the kernel does not answer within the request timeout.
    pub async fn send(self) -> Result<Outcomes, NlError> {
        let count = self.messages.len();
        if count == 0 {
            return Ok(Outcomes(Vec::new()));
        }
        let mut stream = self
            .handle
            .request_batch(self.messages, SocketAddr::new(0, 0))
            .map_err(|e| NlError::other(format!("netlink request failed: {e}")))?;
        let mut outcomes: Vec<Outcome> = (0..count).map(|_| Ok(Vec::new())).collect();
        let collect = async {
            // The requests got consecutive sequence numbers, and the first answer is the first
            // request's (the kernel answers in order): the offset from it is the slot.
            let mut first_seq = None;
            while let Some(msg) = stream.next().await {
                let seq = msg.header.sequence_number;
                let slot = seq.wrapping_sub(*first_seq.get_or_insert(seq)) as usize;
                let Some(outcome) = outcomes.get_mut(slot) else { continue };
                match msg.payload {
                    NetlinkPayload::InnerMessage(inner) => {
                        if let Ok(replies) = outcome {
                            replies.push(inner);
                        }
                    }
                    NetlinkPayload::Error(err) => {
                        if let Some(code) = err.code {
                            *outcome = Err(NlError::kernel(code.get()));
                        }
                    }
                    _ => {}
                }
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, collect)
            .await
            .map_err(|_| NlError::other(format!("no answer from the kernel within {REQUEST_TIMEOUT:?}")))?;
        Ok(Outcomes(outcomes.into_iter().map(Some).collect()))
    }
}
