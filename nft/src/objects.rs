//! nf_tables objects as messages: tables, base chains, named sets, set elements (with comments), rules made of
//! expressions, and the parsing of set elements read back from the kernel.
//!
//! Attribute numbers are those of `<linux/netfilter/nf_tables.h>`; the element comment uses libnftnl's user-data
//! TLV layout (`NFTNL_UDATA_SET_ELEM_COMMENT`), so `nft list ruleset` prints it as `comment "..."`.

use crate::netlink::{
    attr, attrs, be32_of, Batch, Msg, NFT_MSG_DELSETELEM, NFT_MSG_DELTABLE, NFT_MSG_GETSET, NFT_MSG_GETSETELEM,
    NFT_MSG_GETTABLE, NFT_MSG_NEWCHAIN, NFT_MSG_NEWRULE, NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM, NFT_MSG_NEWTABLE,
    NLM_F_APPEND, NLM_F_CREATE, NLM_F_EXCL,
};

/// nf_tables address families (NFPROTO_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Family {
    Inet = 1,
    Bridge = 7,
}

impl Family {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Family::Inet => "inet",
            Family::Bridge => "bridge",
        }
    }
}

/// A table: family and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Table {
    pub(crate) family: Family,
    pub(crate) name: String,
}

impl Table {
    pub(crate) fn describe(&self) -> String {
        format!("table {} {}", self.family.name(), self.name)
    }

    pub(crate) fn set(&self, name: &'static str) -> SetRef<'_> {
        SetRef { table: self, name }
    }
}

/// A named set in a table.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetRef<'a> {
    pub(crate) table: &'a Table,
    pub(crate) name: &'static str,
}

impl SetRef<'_> {
    pub(crate) fn describe(&self) -> String {
        format!("set {} {} {}", self.table.family.name(), self.table.name, self.name)
    }
}

// NFTA_TABLE_*
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
// NFTA_CHAIN_*
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
// NFTA_SET_*
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DATA_TYPE: u16 = 6;
const NFTA_SET_DATA_LEN: u16 = 7;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_USERDATA: u16 = 13;
/// The number of elements, in a GETSET reply (newer kernels only: 6.18 has it, 6.1 not).
const NFTA_SET_COUNT: u16 = 20;
pub(crate) const NFT_SET_INTERVAL: u32 = 0x4;
pub(crate) const NFT_SET_MAP: u32 = 0x8;
// NFTA_SET_ELEM_LIST_* and NFTA_SET_ELEM_*
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_USERDATA: u16 = 6;
pub(crate) const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
// NFTA_RULE_*
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
// lists, expressions, data
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;

/// `nft`'s datatype numbers (userspace only: the kernel stores them so `nft` knows how to print keys).
pub(crate) mod datatype {
    pub(crate) const IPADDR: u32 = 7;
    pub(crate) const IP6ADDR: u32 = 8;
    pub(crate) const ETHERADDR: u32 = 9;
    pub(crate) const DEVGROUP: u32 = 35;
    pub(crate) const IFNAME: u32 = 41;
    /// Bits per component in a concatenated type: `a . b` is `(a << 6) | b`.
    const TYPE_BITS: u32 = 6;

    pub(crate) fn concat(types: &[u32]) -> u32 {
        types.iter().fold(0, |acc, t| (acc << TYPE_BITS) | t)
    }
}

/// libnftnl set user data: `NFTNL_UDATA_SET_KEYBYTEORDER` (and `..._DATABYTEORDER` for a map's values), value
/// `BYTEORDER_BIG_ENDIAN` / `BYTEORDER_HOST_ENDIAN`.
const NFTNL_UDATA_SET_KEYBYTEORDER: u8 = 0;
const NFTNL_UDATA_SET_DATABYTEORDER: u8 = 1;
pub(crate) const BYTEORDER_HOST_ENDIAN: u32 = 1;
pub(crate) const BYTEORDER_BIG_ENDIAN: u32 = 2;
/// libnftnl element user data: the comment TLV, a NUL-terminated string.
const NFTNL_UDATA_SET_ELEM_COMMENT: u8 = 0;
/// Longest comment we write, without its NUL. `nft` accepts comments up to 128 bytes.
pub(crate) const MAX_COMMENT_LEN: usize = 127;

/// Encode `comment` as libnftnl element user data: type 0, length (with the NUL), bytes, NUL.
pub(crate) fn comment_udata(comment: &str) -> Vec<u8> {
    let bytes = &comment.as_bytes()[..comment.len().min(MAX_COMMENT_LEN)];
    let mut out = Vec::with_capacity(bytes.len() + 3);
    out.push(NFTNL_UDATA_SET_ELEM_COMMENT);
    out.push((bytes.len() + 1) as u8);
    out.extend_from_slice(bytes);
    out.push(0);
    out
}

/// The comment in element user data, if there is a well-formed one.
pub(crate) fn comment_of_udata(mut udata: &[u8]) -> Option<String> {
    while udata.len() >= 2 {
        let (ty, len) = (udata[0], usize::from(udata[1]));
        let value = udata.get(2..2 + len)?;
        if ty == NFTNL_UDATA_SET_ELEM_COMMENT {
            let text = value.strip_suffix(&[0]).unwrap_or(value);
            return std::str::from_utf8(text).ok().map(str::to_owned);
        }
        udata = &udata[2 + len..];
    }
    None
}

/// Set user data telling `nft` the byte order of keys (and of a map's values), as nft itself records it.
fn set_udata(spec: &SetSpec) -> Vec<u8> {
    let mut out = vec![NFTNL_UDATA_SET_KEYBYTEORDER, 4];
    out.extend_from_slice(&spec.key_byteorder.to_ne_bytes());
    if let Some(data) = spec.data {
        out.extend_from_slice(&[NFTNL_UDATA_SET_DATABYTEORDER, 4]);
        out.extend_from_slice(&data.byteorder.to_ne_bytes());
    }
    out
}

pub(crate) fn new_table(t: &Table) -> Msg {
    // NLM_F_EXCL: creation fails with EEXIST if another process made the table first (our race detector).
    let mut m = Msg::new(NFT_MSG_NEWTABLE, t.family as u8, NLM_F_CREATE | NLM_F_EXCL);
    m.str(NFTA_TABLE_NAME, &t.name).be32(NFTA_TABLE_FLAGS, 0);
    m
}

/// Get the table itself: answered with ENOENT when it does not exist.
pub(crate) fn get_table(t: &Table) -> Msg {
    let mut m = Msg::new(NFT_MSG_GETTABLE, t.family as u8, 0);
    m.str(NFTA_TABLE_NAME, &t.name);
    m
}

pub(crate) fn del_table(t: &Table) -> Msg {
    let mut m = Msg::new(NFT_MSG_DELTABLE, t.family as u8, 0);
    m.str(NFTA_TABLE_NAME, &t.name);
    m
}

/// The element count a GETSET reply body reports, if the kernel reports one.
pub(crate) fn set_count(body: &[u8]) -> Option<u32> {
    attr(body, NFTA_SET_COUNT).and_then(be32_of)
}

/// Get the set itself (not its elements): answered with ENOENT when it does not exist.
pub(crate) fn get_set(set: SetRef<'_>) -> Msg {
    let mut m = Msg::new(NFT_MSG_GETSET, set.table.family as u8, 0);
    m.str(NFTA_SET_TABLE, &set.table.name).str(NFTA_SET_NAME, set.name);
    m
}

/// A base chain of a table: `type <kind> hook <hook> priority <priority>; policy accept;`.
pub(crate) struct BaseChain<'a> {
    pub(crate) name: &'a str,
    pub(crate) kind: &'a str,
    pub(crate) hook: u32,
    pub(crate) priority: i32,
}

/// Append what a table holds (after its NEWTABLE): its base chain, its sets (ids 1, 2, ... in this
/// transaction) and the chain's rules, each named for error messages.
pub(crate) fn push_contents(
    batch: &mut Batch,
    t: &Table,
    chain: &BaseChain<'_>,
    sets: &[SetSpec],
    rules: &[Vec<Expr>],
) {
    let chain_name = format!("chain {} {} {}", t.family.name(), t.name, chain.name);
    batch.push(new_base_chain(t, chain.name, chain.kind, chain.hook, chain.priority), chain_name.clone());
    for (id, spec) in sets.iter().enumerate() {
        batch.push(new_set(t, spec, id as u32 + 1), t.set(spec.name).describe());
    }
    for rule in rules {
        batch.push(new_rule(t, chain.name, rule), format!("rule in {chain_name}"));
    }
}

fn new_base_chain(t: &Table, name: &str, kind: &str, hook: u32, priority: i32) -> Msg {
    const NF_ACCEPT: u32 = 1;
    let mut m = Msg::new(NFT_MSG_NEWCHAIN, t.family as u8, NLM_F_CREATE);
    m.str(NFTA_CHAIN_TABLE, &t.name).str(NFTA_CHAIN_NAME, name);
    m.nest(NFTA_CHAIN_HOOK, |m| {
        m.be32(NFTA_HOOK_HOOKNUM, hook).be32(NFTA_HOOK_PRIORITY, priority as u32);
    });
    m.be32(NFTA_CHAIN_POLICY, NF_ACCEPT).str(NFTA_CHAIN_TYPE, kind);
    m
}

/// A named set's shape.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SetSpec {
    pub(crate) name: &'static str,
    pub(crate) key_type: u32,
    pub(crate) key_len: u32,
    pub(crate) flags: u32,
    pub(crate) key_byteorder: u32,
    /// For a map: what its elements map to.
    pub(crate) data: Option<MapData>,
}

/// The values of a map: `nft` datatype, length in bytes, byte order (for `nft`'s printing).
#[derive(Debug, Clone, Copy)]
pub(crate) struct MapData {
    pub(crate) data_type: u32,
    pub(crate) len: u32,
    pub(crate) byteorder: u32,
}

pub(crate) fn new_set(t: &Table, spec: &SetSpec, id: u32) -> Msg {
    set_msg(t, spec, id, NLM_F_CREATE)
}

/// Like [`new_set`], but refused with EEXIST when the set exists: how a transaction that adds a set and rules
/// using it to an existing table detects that another process did it first (as [`new_table`] does for tables).
pub(crate) fn new_set_exclusive(t: &Table, spec: &SetSpec, id: u32) -> Msg {
    set_msg(t, spec, id, NLM_F_CREATE | NLM_F_EXCL)
}

fn set_msg(t: &Table, spec: &SetSpec, id: u32, flags: u16) -> Msg {
    let mut m = Msg::new(NFT_MSG_NEWSET, t.family as u8, flags);
    let set_flags = spec.flags | if spec.data.is_some() { NFT_SET_MAP } else { 0 };
    m.str(NFTA_SET_TABLE, &t.name)
        .str(NFTA_SET_NAME, spec.name)
        .be32(NFTA_SET_FLAGS, set_flags)
        .be32(NFTA_SET_KEY_TYPE, spec.key_type)
        .be32(NFTA_SET_KEY_LEN, spec.key_len);
    if let Some(data) = spec.data {
        m.be32(NFTA_SET_DATA_TYPE, data.data_type).be32(NFTA_SET_DATA_LEN, data.len);
    }
    m.be32(NFTA_SET_ID, id).bytes(NFTA_SET_USERDATA, &set_udata(spec));
    m
}

/// A set element as written to or read from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Elem {
    pub(crate) key: Vec<u8>,
    /// NFT_SET_ELEM_* flags (interval end).
    pub(crate) flags: u32,
    pub(crate) comment: Option<String>,
    /// In a map: the value the key maps to.
    pub(crate) data: Option<Vec<u8>>,
}

impl Elem {
    pub(crate) fn new(key: Vec<u8>, comment: Option<&str>) -> Elem {
        Elem { key, flags: 0, comment: comment.map(str::to_owned), data: None }
    }

    /// A map element: `key` maps to `data`.
    pub(crate) fn mapping(key: Vec<u8>, data: Vec<u8>, comment: &str) -> Elem {
        Elem { data: Some(data), ..Elem::new(key, Some(comment)) }
    }

    /// An interval's end element (interval sets).
    pub(crate) fn interval_end(key: Vec<u8>) -> Elem {
        Elem { flags: NFT_SET_ELEM_INTERVAL_END, ..Elem::new(key, None) }
    }
}

fn elems_msg(cmd: u16, set: SetRef<'_>, flags: u16, elems: &[Elem], with_udata: bool) -> Msg {
    let mut m = Msg::new(cmd, set.table.family as u8, flags);
    m.str(NFTA_SET_ELEM_LIST_TABLE, &set.table.name).str(NFTA_SET_ELEM_LIST_SET, set.name);
    m.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |m| {
        for e in elems {
            m.nest(NFTA_LIST_ELEM, |m| {
                m.nest(NFTA_SET_ELEM_KEY, |m| {
                    m.bytes(NFTA_DATA_VALUE, &e.key);
                });
                if e.flags != 0 {
                    m.be32(NFTA_SET_ELEM_FLAGS, e.flags);
                }
                if let (true, Some(data)) = (with_udata, &e.data) {
                    m.nest(NFTA_SET_ELEM_DATA, |m| {
                        m.bytes(NFTA_DATA_VALUE, data);
                    });
                }
                if let (true, Some(c)) = (with_udata, &e.comment) {
                    m.bytes(NFTA_SET_ELEM_USERDATA, &comment_udata(c));
                }
            });
        }
    });
    m
}

/// Add `elems` to `set`. With `exclusive`, an element whose key is already present fails the message with EEXIST
/// (the kernel ignores user data when it compares elements, so this is how a present key is noticed).
pub(crate) fn add_elems(set: SetRef<'_>, elems: &[Elem], exclusive: bool) -> Msg {
    let flags = NLM_F_CREATE | if exclusive { NLM_F_EXCL } else { 0 };
    elems_msg(NFT_MSG_NEWSETELEM, set, flags, elems, true)
}

/// Delete `elems` (by key and interval-end flag) from `set`.
pub(crate) fn del_elems(set: SetRef<'_>, elems: &[Elem]) -> Msg {
    elems_msg(NFT_MSG_DELSETELEM, set, 0, elems, false)
}

/// Dump every element of `set`.
pub(crate) fn dump_elems(set: SetRef<'_>) -> Msg {
    let mut m = Msg::new(NFT_MSG_GETSETELEM, set.table.family as u8, 0);
    m.str(NFTA_SET_ELEM_LIST_TABLE, &set.table.name).str(NFTA_SET_ELEM_LIST_SET, set.name);
    m
}

/// Get the elements of `set` with `keys` (a GET, not a dump). The kernel answers each key found with a message
/// of its own, in order, and stops at the first key it does not find, with ENOENT.
pub(crate) fn get_elems(set: SetRef<'_>, keys: &[Vec<u8>]) -> Msg {
    let elems: Vec<Elem> = keys.iter().map(|k| Elem::new(k.clone(), None)).collect();
    elems_msg(NFT_MSG_GETSETELEM, set, 0, &elems, false)
}

/// The elements in one NEWSETELEM reply body (attributes after `nfgenmsg`).
pub(crate) fn parse_elems(body: &[u8]) -> Vec<Elem> {
    let Some(list) = attr(body, NFTA_SET_ELEM_LIST_ELEMENTS) else {
        return Vec::new();
    };
    attrs(list)
        .filter(|(ty, _)| *ty == NFTA_LIST_ELEM)
        .filter_map(|(_, e)| {
            let key = attr(e, NFTA_SET_ELEM_KEY).and_then(|k| attr(k, NFTA_DATA_VALUE))?.to_vec();
            let flags = attr(e, NFTA_SET_ELEM_FLAGS).and_then(be32_of).unwrap_or(0);
            let comment = attr(e, NFTA_SET_ELEM_USERDATA).and_then(comment_of_udata);
            let data = attr(e, NFTA_SET_ELEM_DATA).and_then(|d| attr(d, NFTA_DATA_VALUE)).map(<[u8]>::to_vec);
            Some(Elem { key, flags, comment, data })
        })
        .collect()
}

/// Registers (NFT_REG_*): the verdict register, a 16-byte register, and the 4-byte register numbering used for
/// concatenations.
pub(crate) mod reg {
    pub(crate) const VERDICT: u32 = 0;
    pub(crate) const R1: u32 = 1;
    /// NFT_REG32_00: first 4-byte register (overlaps R1).
    pub(crate) const R32_00: u32 = 8;
    /// NFT_REG32_01: second 4-byte register.
    pub(crate) const R32_01: u32 = 9;
    /// NFT_REG32_04: fifth 4-byte register (overlaps R2).
    pub(crate) const R32_04: u32 = 12;
}

/// Verdict codes (NF_DROP, NFT_RETURN).
pub(crate) mod verdict {
    pub(crate) const DROP: i32 = 0;
    pub(crate) const RETURN: i32 = -5;
}

/// Payload bases.
pub(crate) mod base {
    pub(crate) const LL: u32 = 0;
    pub(crate) const NETWORK: u32 = 1;
}

/// Meta keys.
pub(crate) mod meta_key {
    pub(crate) const IIFNAME: u32 = 6;
    pub(crate) const NFPROTO: u32 = 15;
    pub(crate) const IIFGROUP: u32 = 21;
    pub(crate) const OIFGROUP: u32 = 22;
}

/// One rule expression.
#[derive(Debug, Clone)]
pub(crate) enum Expr {
    /// `meta load <key> => reg`.
    Meta { key: u32, dreg: u32 },
    /// `payload load <len>b @ <base> + <offset> => reg`.
    Payload { base: u32, offset: u32, len: u32, dreg: u32 },
    /// `cmp eq|neq reg <data>`.
    Cmp { sreg: u32, eq: bool, data: Vec<u8> },
    /// `bitwise reg = (reg & mask) ^ 0`.
    Mask { reg: u32, mask: Vec<u8> },
    /// `lookup reg @set`, or `!= @set` when `invert`.
    Lookup { sreg: u32, set: &'static str, invert: bool },
    /// `immediate reg 0 <verdict>`.
    Verdict(i32),
    /// `masq`.
    Masquerade,
}

impl Expr {
    fn name(&self) -> &'static str {
        match self {
            Expr::Meta { .. } => "meta",
            Expr::Payload { .. } => "payload",
            Expr::Cmp { .. } => "cmp",
            Expr::Mask { .. } => "bitwise",
            Expr::Lookup { .. } => "lookup",
            Expr::Verdict(_) => "immediate",
            Expr::Masquerade => "masq",
        }
    }

    /// The expression's NFTA_EXPR_DATA attributes (NFTA_META_*, NFTA_PAYLOAD_*, ...).
    fn encode_data(&self, m: &mut Msg) {
        match self {
            Expr::Meta { key, dreg } => {
                m.be32(1 /* NFTA_META_DREG */, *dreg).be32(2 /* NFTA_META_KEY */, *key);
            }
            Expr::Payload { base, offset, len, dreg } => {
                m.be32(1 /* NFTA_PAYLOAD_DREG */, *dreg)
                    .be32(2 /* NFTA_PAYLOAD_BASE */, *base)
                    .be32(3 /* NFTA_PAYLOAD_OFFSET */, *offset)
                    .be32(4 /* NFTA_PAYLOAD_LEN */, *len);
            }
            Expr::Cmp { sreg, eq, data } => {
                m.be32(1 /* NFTA_CMP_SREG */, *sreg).be32(2 /* NFTA_CMP_OP: EQ 0, NEQ 1 */, u32::from(!*eq));
                m.nest(3 /* NFTA_CMP_DATA */, |m| {
                    m.bytes(NFTA_DATA_VALUE, data);
                });
            }
            Expr::Mask { reg, mask } => {
                m.be32(1 /* NFTA_BITWISE_SREG */, *reg)
                    .be32(2 /* NFTA_BITWISE_DREG */, *reg)
                    .be32(3 /* NFTA_BITWISE_LEN */, mask.len() as u32);
                m.nest(4 /* NFTA_BITWISE_MASK */, |m| {
                    m.bytes(NFTA_DATA_VALUE, mask);
                });
                m.nest(5 /* NFTA_BITWISE_XOR */, |m| {
                    m.bytes(NFTA_DATA_VALUE, &vec![0; mask.len()]);
                });
            }
            Expr::Lookup { sreg, set, invert } => {
                m.str(1 /* NFTA_LOOKUP_SET */, set).be32(2 /* NFTA_LOOKUP_SREG */, *sreg);
                if *invert {
                    m.be32(5 /* NFTA_LOOKUP_FLAGS */, 1 /* NFT_LOOKUP_F_INV */);
                }
            }
            Expr::Verdict(code) => {
                m.be32(1 /* NFTA_IMMEDIATE_DREG */, reg::VERDICT);
                m.nest(2 /* NFTA_IMMEDIATE_DATA */, |m| {
                    m.nest(NFTA_DATA_VERDICT, |m| {
                        m.be32(NFTA_VERDICT_CODE, *code as u32);
                    });
                });
            }
            Expr::Masquerade => {}
        }
    }

    fn encode(&self, m: &mut Msg) {
        m.nest(NFTA_LIST_ELEM, |m| {
            m.str(NFTA_EXPR_NAME, self.name());
            if !matches!(self, Expr::Masquerade) {
                m.nest(NFTA_EXPR_DATA, |m| self.encode_data(m));
            }
        });
    }
}

/// Append a rule made of `exprs` to `chain`.
pub(crate) fn new_rule(t: &Table, chain: &str, exprs: &[Expr]) -> Msg {
    rule_msg(t, chain, exprs, NLM_F_CREATE | NLM_F_APPEND)
}

/// Insert a rule made of `exprs` at the head of `chain` (without NLM_F_APPEND the kernel puts it first).
pub(crate) fn insert_rule(t: &Table, chain: &str, exprs: &[Expr]) -> Msg {
    rule_msg(t, chain, exprs, NLM_F_CREATE)
}

/// A rule of one expression named `name`, which no kernel has: nf_tables asks modprobe for `nft-expr-<family>-<name>`
/// and `nft-expr-<name>` (with its commit lock released) and replays the batch, then refuses the rule with ENOENT.
#[cfg(test)]
pub(crate) fn rule_of_unknown_expression(t: &Table, chain: &str, name: &str) -> Msg {
    rule_with(t, chain, NLM_F_CREATE | NLM_F_APPEND, |m| {
        m.nest(NFTA_LIST_ELEM, |m| {
            m.str(NFTA_EXPR_NAME, name);
        });
    })
}

fn rule_msg(t: &Table, chain: &str, exprs: &[Expr], flags: u16) -> Msg {
    rule_with(t, chain, flags, |m| {
        for e in exprs {
            e.encode(m);
        }
    })
}

/// A NEWRULE for `chain` whose expression list `exprs` writes.
fn rule_with(t: &Table, chain: &str, flags: u16, exprs: impl FnOnce(&mut Msg)) -> Msg {
    let mut m = Msg::new(NFT_MSG_NEWRULE, t.family as u8, flags);
    m.str(NFTA_RULE_TABLE, &t.name).str(NFTA_RULE_CHAIN, chain);
    m.nest(NFTA_RULE_EXPRESSIONS, exprs);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_tlv_layout() {
        let u = comment_udata("abc/eth0");
        assert_eq!(u[0], 0, "NFTNL_UDATA_SET_ELEM_COMMENT");
        assert_eq!(u[1], 9, "length includes the NUL");
        assert_eq!(&u[2..10], b"abc/eth0");
        assert_eq!(u[10], 0);
        assert_eq!(comment_of_udata(&u).as_deref(), Some("abc/eth0"));
    }

    #[test]
    fn comment_after_other_tlv_and_malformed_udata() {
        let mut u = vec![1, 4, 0, 0, 0, 1]; // NFTNL_UDATA_SET_ELEM_FLAGS
        u.extend(comment_udata("x"));
        assert_eq!(comment_of_udata(&u).as_deref(), Some("x"));
        assert_eq!(comment_of_udata(&[0, 200, b'a']), None);
        assert_eq!(comment_of_udata(&[]), None);
    }

    #[test]
    fn concat_type_matches_nft() {
        // nft: ifname . ether_addr
        assert_eq!(datatype::concat(&[datatype::IFNAME, datatype::ETHERADDR]), (41 << 6) | 9);
    }

    #[test]
    fn element_messages_round_trip_through_the_parser() {
        let t = Table { family: Family::Inet, name: "tether-n".into() };
        let elems = vec![
            Elem::new(vec![198, 18, 1, 2], Some("c1/eth0")),
            Elem::interval_end(vec![198, 18, 2, 0]),
            Elem::mapping(vec![1; 20], vec![198, 18, 1, 2], "c2/eth0"),
        ];
        let m = add_elems(t.set("masq4"), &elems, true);
        let parsed = parse_elems(m.attrs_bytes());
        assert_eq!(parsed, elems);
        // deletions carry keys and flags only
        let m = del_elems(t.set("masq4"), &elems);
        let parsed = parse_elems(m.attrs_bytes());
        assert_eq!(parsed[0].comment, None);
        assert_eq!(parsed[1].flags, NFT_SET_ELEM_INTERVAL_END);
    }

    #[test]
    fn rule_expressions_are_listed_in_order() {
        let t = Table { family: Family::Inet, name: "tether-n".into() };
        let m = new_rule(
            &t,
            "postrouting",
            &[
                Expr::Payload { base: base::NETWORK, offset: 12, len: 4, dreg: reg::R1 },
                Expr::Lookup { sreg: reg::R1, set: "masq4", invert: false },
                Expr::Masquerade,
            ],
        );
        let exprs = attr(m.attrs_bytes(), NFTA_RULE_EXPRESSIONS).unwrap();
        let names: Vec<_> = attrs(exprs)
            .map(|(_, e)| crate::netlink::str_of(attr(e, NFTA_EXPR_NAME).unwrap()).unwrap().to_owned())
            .collect();
        assert_eq!(names, ["payload", "lookup", "masq"]);
    }
}
