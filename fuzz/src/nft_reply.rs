//! nf_tables replies: what the kernel (or anything that can write to our netlink socket) answers a
//! get, a dump and a transaction, parsed by the code the `nft` crate runs on `recv`.

/// The first five bytes choose the sequence number answered and the transaction's size; the rest
/// is the received buffer.
pub fn run(data: &[u8]) {
    let Some((head, buf)) = data.split_at_checked(5) else { return };
    let seq = u32::from_ne_bytes([head[0], head[1], head[2], head[3]]);
    nft::fuzzing::replies(buf, seq, head[4]);
}
