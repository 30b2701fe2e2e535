//! The kubelet's side of the CRI: [`messages`] (the `runtime.v1` messages, by hand) and
//! [`client`] (a gRPC client over a unix socket).

pub mod client;
pub mod messages;

pub use client::{Cri, CriError};
