//! Several requests for one namespace in ONE datagram: one `sendto`, one wait.
//!
//! The kernel handles the messages of a datagram one after the other, each to completion, and
//! answers each (`netlink_rcv_skb`), so a later message sees what an earlier one did (the
//! address before the route that uses it as source, the link up before its routes). A failing
//! message does not stop the ones after it: the caller reads the outcome of each, in order, and
//! reports the first failure (ADD then rolls back the whole attachment, so a later message that
//! went through does not matter).

use super::addr::{new_address, AddrFlags};
use super::link::{get_by_index, get_by_name, set_alias_message, set_up_message};
use super::route::{new_route, RouteSpec};
use super::{Netlink, NlError, REQUEST_TIMEOUT};
use futures::StreamExt;
use ipnet::IpNet;
use netlink_packet_core::{NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_proto::sys::SocketAddr;
use netlink_proto::ConnectionHandle;
use std::future::Future;

/// Requests collected for one [`Netlink`] connection, sent together by [`Batch::send`].
pub struct Batch {
    handle: ConnectionHandle<RouteNetlinkMessage>,
    messages: Vec<NetlinkMessage<RouteNetlinkMessage>>,
}

/// What the kernel answered to one request: the replies (a get's object; nothing for a change)
/// or the error.
pub type Outcome = Result<Vec<RouteNetlinkMessage>, NlError>;

/// The outcomes of a batch's requests, in the order they were added.
pub type Outcomes = Vec<Outcome>;

/// The next outcome from a batch's outcomes, taken in order (the kernel answers every request,
/// so one is always there; a missing one is reported as an error all the same).
pub fn next_outcome(outcomes: &mut impl Iterator<Item = Outcome>) -> Outcome {
    outcomes.next().unwrap_or_else(|| Err(NlError::other("no answer to a batched request")))
}

impl Netlink {
    /// An empty batch for this connection's namespace.
    pub fn batch(&self) -> Batch {
        Batch { handle: self.handle.clone(), messages: Vec::new() }
    }
}

impl Batch {
    /// Add a request; its position in the outcomes.
    fn push(&mut self, message: RouteNetlinkMessage, flags: u16) -> usize {
        let mut message = NetlinkMessage::from(message);
        message.header.flags = flags | NLM_F_REQUEST;
        self.messages.push(message);
        self.messages.len() - 1
    }

    /// As `Netlink::add_addr`.
    pub fn add_addr(&mut self, index: u32, addr: IpNet, flags: AddrFlags) -> usize {
        self.push(new_address(index, addr, flags), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    }

    /// As `Netlink::add_route`.
    pub fn add_route(&mut self, oif: u32, spec: &RouteSpec) -> usize {
        self.push(new_route(oif, spec), NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL)
    }

    /// As `Netlink::set_up`.
    pub fn set_up(&mut self, index: u32) -> usize {
        self.push(set_up_message(index), NLM_F_ACK)
    }

    /// A get of link `index`; read the outcome with `link::link_of` or `link::oper_up`. Also
    /// brings the link's state up to date (see `Netlink::sync_link_state`).
    pub fn get_link(&mut self, index: u32) -> usize {
        self.push(get_by_index(index), 0)
    }

    /// A get of the link called `name`; read the outcome with `link::link_of`.
    pub fn get_link_by_name(&mut self, name: &str) -> usize {
        self.push(get_by_name(name), 0)
    }

    /// As `Netlink::set_alias`.
    pub fn set_alias(&mut self, name: &str, alias: &str) -> usize {
        self.push(set_alias_message(name, alias), NLM_F_ACK)
    }

    /// Send every request now, in one datagram; the future yields one outcome per request.
    ///
    /// # Errors
    /// When the connection is gone or the kernel does not answer within the request timeout.
    pub fn send(self) -> impl Future<Output = Result<Outcomes, NlError>> + 'static {
        let count = self.messages.len();
        let queued = (count > 0).then(|| self.handle.request_batch(self.messages, SocketAddr::new(0, 0)));
        async move {
            let mut outcomes: Outcomes = (0..count).map(|_| Ok(Vec::new())).collect();
            let Some(queued) = queued else { return Ok(outcomes) };
            let mut stream = queued.map_err(|e| NlError::other(format!("netlink request failed: {e}")))?;
            let collect = async {
                // The requests got consecutive sequence numbers, and the first answer is the
                // first request's (the kernel answers in order): the offset from it is the slot.
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
            Ok(outcomes)
        }
    }
}
