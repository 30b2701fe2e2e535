//! Address intervals, the currency of nftables interval sets: a prefix is `[start, end)`, written to the kernel
//! as a start element and an end element flagged `NFT_SET_ELEM_INTERVAL_END`, and read back the same way.

use std::net::{Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::objects::{Elem, NFT_SET_ELEM_INTERVAL_END};

/// An interval `[start, end)` of addresses as integers; `end` None reaches the top of the address space.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Interval {
    pub(crate) start: u128,
    pub(crate) end: Option<u128>,
}

impl Interval {
    pub(crate) fn of(net: &IpNet) -> Interval {
        let (start, last, max) = match net {
            IpNet::V4(n) => {
                (u128::from(u32::from(n.network())), u128::from(u32::from(n.broadcast())), u128::from(u32::MAX))
            }
            IpNet::V6(n) => (u128::from(n.network()), u128::from(n.broadcast()), u128::MAX),
        };
        Interval { start, end: if last == max { None } else { Some(last + 1) } }
    }

    pub(crate) fn contains(&self, o: &Interval) -> bool {
        self.start <= o.start && end_le(o.end, self.end)
    }

    pub(crate) fn overlaps(&self, o: &Interval) -> bool {
        end_gt(self.end, o.start) && end_gt(o.end, self.start)
    }

    /// The set elements for this interval with keys of `key_len` bytes (4 or 16): the start, and the end flagged
    /// NFT_SET_ELEM_INTERVAL_END (none when the interval reaches the top of the address space).
    pub(crate) fn elems(&self, key_len: usize) -> Vec<Elem> {
        let key = |x: u128| x.to_be_bytes()[16 - key_len..].to_vec();
        let mut out = vec![Elem::new(key(self.start), None)];
        if let Some(end) = self.end {
            out.push(Elem::interval_end(key(end)));
        }
        out
    }

    /// The fewest prefixes that cover exactly this interval, lowest first (`v4` picks the address family).
    pub(crate) fn prefixes(&self, v4: bool) -> Vec<IpNet> {
        let bits: u32 = if v4 { 32 } else { 128 };
        // The exclusive top of the space; None stands for 2^128, which u128 cannot hold.
        let top = if v4 { Some(1u128 << 32) } else { None };
        let end = self.end.or(top);
        let mut out = Vec::new();
        let mut start = self.start;
        loop {
            if end.is_some_and(|e| start >= e) {
                break;
            }
            // The largest aligned block at `start` that stays below `end`.
            let mut k = if start == 0 { bits } else { start.trailing_zeros().min(bits) };
            while k > 0 && end.is_some_and(|e| 1u128.checked_shl(k).is_none_or(|size| e - start < size)) {
                k -= 1;
            }
            let prefix_len = (bits - k) as u8;
            out.push(if v4 {
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(start as u32), prefix_len).unwrap_or_default())
            } else {
                IpNet::V6(Ipv6Net::new(Ipv6Addr::from(start), prefix_len).unwrap_or_default())
            });
            match 1u128.checked_shl(k).and_then(|size| start.checked_add(size)) {
                Some(next) => start = next,
                None => break, // reached the top of the IPv6 space
            }
        }
        out
    }
}

/// The union of `nets` as disjoint, non-adjacent intervals in ascending order (overlapping and touching prefixes
/// merged), so each is one start and one end element that no other element shares a key with.
pub(crate) fn merged(nets: &[IpNet]) -> Vec<Interval> {
    let mut all: Vec<Interval> = nets.iter().map(Interval::of).collect();
    all.sort_by_key(|i| i.start);
    let mut out: Vec<Interval> = Vec::new();
    for i in all {
        match out.last_mut() {
            Some(last) if last.end.is_none_or(|e| i.start <= e) => {
                if !end_le(i.end, last.end) {
                    last.end = i.end;
                }
            }
            _ => out.push(i),
        }
    }
    out
}

/// `a <= b` for exclusive ends where None is "past the top".
fn end_le(a: Option<u128>, b: Option<u128>) -> bool {
    match (a, b) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(a), Some(b)) => a <= b,
    }
}

/// `end > x` for an exclusive end where None is "past the top".
fn end_gt(end: Option<u128>, x: u128) -> bool {
    end.is_none_or(|e| e > x)
}

fn int_of(key: &[u8]) -> u128 {
    key.iter().fold(0u128, |acc, b| (acc << 8) | u128::from(*b))
}

/// The intervals in an interval set's elements: each start paired with the next end above it.
pub(crate) fn intervals(elems: &[Elem]) -> Vec<Interval> {
    let mut points: Vec<(u128, bool)> =
        elems.iter().map(|e| (int_of(&e.key), e.flags & NFT_SET_ELEM_INTERVAL_END != 0)).collect();
    // Ends sort before starts at the same point: [a, b) and [b, c) are adjacent, not overlapping.
    points.sort_by_key(|&(x, is_end)| (x, !is_end));
    let mut out: Vec<Interval> = Vec::new();
    let mut open: Option<u128> = None;
    for (x, is_end) in points {
        match (is_end, open) {
            (false, None) => open = Some(x),
            (false, Some(start)) => {
                // A start while one is open: the open interval reached the top (no end element).
                out.push(Interval { start, end: None });
                open = Some(x);
            }
            (true, Some(start)) => {
                out.push(Interval { start, end: Some(x) });
                open = None;
            }
            (true, None) => {} // a stray end: nothing to pair
        }
    }
    if let Some(start) = open {
        out.push(Interval { start, end: None });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    fn nets(v: &[&str]) -> Vec<IpNet> {
        v.iter().map(|s| net(s)).collect()
    }

    #[test]
    fn interval_elements() {
        let e = Interval::of(&net("198.18.1.0/24")).elems(4);
        assert_eq!(e[0], Elem::new(vec![198, 18, 1, 0], None));
        assert_eq!(e[1], Elem::interval_end(vec![198, 18, 2, 0]));
        // reaching the top of the space: no end element
        assert_eq!(Interval::of(&net("255.255.255.0/24")).elems(4).len(), 1);
        assert_eq!(Interval::of(&net("0.0.0.0/0")).elems(4).len(), 1);
        let e6 = Interval::of(&net("fd7e:7e7e::/64")).elems(16);
        assert_eq!(e6[1].key, "fd7e:7e7e:0:1::".parse::<Ipv6Addr>().unwrap().octets().to_vec());
    }

    #[test]
    fn intervals_are_recovered_from_elements() {
        let mut elems = Interval::of(&net("198.18.1.0/24")).elems(4);
        elems.extend(Interval::of(&net("198.18.2.0/24")).elems(4)); // adjacent
        elems.extend(Interval::of(&net("255.0.0.0/8")).elems(4)); // open-ended
        elems.reverse(); // the kernel dumps in its own order
        let iv = intervals(&elems);
        assert_eq!(
            iv,
            vec![
                Interval::of(&net("198.18.1.0/24")),
                Interval::of(&net("198.18.2.0/24")),
                Interval::of(&net("255.0.0.0/8"))
            ]
        );
    }

    #[test]
    fn merging_joins_overlapping_and_touching_prefixes() {
        let m = merged(&nets(&["198.18.2.0/24", "198.18.1.0/24", "198.18.1.128/25", "198.18.8.0/22"]));
        assert_eq!(
            m,
            vec![
                Interval {
                    start: Interval::of(&net("198.18.1.0/24")).start,
                    end: Interval::of(&net("198.18.2.0/24")).end
                },
                Interval::of(&net("198.18.8.0/22")),
            ]
        );
        // an interval reaching the top swallows what follows it
        let m = merged(&nets(&["255.0.0.0/8", "255.255.0.0/16", "0.0.0.0/1"]));
        assert_eq!(m, vec![Interval::of(&net("0.0.0.0/1")), Interval::of(&net("255.0.0.0/8"))]);
        assert!(merged(&[]).is_empty());
    }

    #[test]
    fn prefixes_are_the_minimal_cover_ipnet_aggregate_gives() {
        for list in [
            vec!["198.18.0.0/16"],
            vec!["198.18.1.0/24", "198.18.2.0/24"],
            vec!["198.18.0.0/24", "198.18.1.0/24", "198.18.3.0/24", "198.18.3.7/32"],
            vec!["0.0.0.0/0"],
            vec!["255.255.255.255/32", "255.255.255.254/32"],
            vec!["fd7e:7e7e::/48", "fd7e:7e7e:1::/48", "fd7e:7e7e:2::/47"],
            vec!["::/0"],
            vec!["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127", "8000::/1"],
        ] {
            let list = nets(&list);
            let v4 = list[0].addr().is_ipv4();
            let got: Vec<IpNet> = merged(&list).iter().flat_map(|i| i.prefixes(v4)).collect();
            let mut want = IpNet::aggregate(&list);
            want.sort();
            assert_eq!(got, want, "{list:?}");
        }
    }
}
