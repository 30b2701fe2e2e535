//! What the wrappers over the `nft` crate (`masq`, `spoofchk`, `isolate`) share: its errors as CNI
//! errors, and GC's list of valid attachments in its terms.

use conf::{CniError, ErrorCode};

/// An nftables failure as a CNI error (code 102); the message names the operation and object.
pub fn error(e: nft::NftError) -> CniError {
    CniError::new(ErrorCode::Nftables, e.to_string())
}

/// `cni.dev/valid-attachments` as (container ID, ifname) pairs.
pub fn attachments(valid: &[conf::Attachment]) -> Vec<(String, String)> {
    valid.iter().map(|a| (a.container_id.clone(), a.ifname.clone())).collect()
}
