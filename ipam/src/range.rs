//! Address ranges and range sets: canonical form, membership and round-robin order. Pure.
//!
//! A [`Range`] is host-local's `{subnet, rangeStart, rangeEnd, gateway}` after canonicalisation
//! (`range.go`): defaults are filled in (start = network + 1, end = the last address, minus the
//! broadcast for IPv4, gateway = network + 1) and, unlike the reference, the network address and
//! the IPv4 broadcast address are cut off even when `rangeStart`/`rangeEnd` name them, so they
//! can never be handed out. A [`RangeSet`] is one family and yields one address per ADD.
//!
//! Addresses are handled as `u128` (IPv4 in the low 32 bits) so that IPv6 ranges of any size
//! cost nothing: nothing here iterates a range.

use ipnet::IpNet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The address as a number (IPv4 in the low 32 bits).
pub fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a),
    }
}

/// The address `value` of the given family (for IPv4 only the low 32 bits count).
pub fn from_u128(value: u128, v4: bool) -> IpAddr {
    if v4 {
        IpAddr::V4(Ipv4Addr::from(value as u32))
    } else {
        IpAddr::V6(Ipv6Addr::from(value))
    }
}

/// The next address, if the family has one.
pub fn next(ip: IpAddr) -> Option<IpAddr> {
    let max = if ip.is_ipv4() { u128::from(u32::MAX) } else { u128::MAX };
    let v = to_u128(ip);
    (v < max).then(|| from_u128(v + 1, ip.is_ipv4()))
}

/// The first address of `from..=to` (one family) that is not in `taken`, which lists addresses of
/// `from..=to` in ascending order: at most `taken.len() + 1` steps whatever the range's size.
pub fn first_not_taken(taken: impl IntoIterator<Item = IpAddr>, from: IpAddr, to: IpAddr) -> Option<IpAddr> {
    let mut cur = to_u128(from);
    for ip in taken {
        if to_u128(ip) != cur {
            break;
        }
        cur = cur.checked_add(1)?;
    }
    (cur <= to_u128(to)).then(|| from_u128(cur, from.is_ipv4()))
}

fn same_family(a: IpAddr, b: IpAddr) -> bool {
    a.is_ipv4() == b.is_ipv4()
}

/// A configuration error in one range: which key is wrong and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeError {
    /// The JSON key at fault (`subnet`, `rangeStart`, `rangeEnd`, `gateway`).
    pub field: &'static str,
    /// What is wrong, naming the values.
    pub msg: String,
}

fn err<T>(field: &'static str, msg: String) -> Result<T, RangeError> {
    Err(RangeError { field, msg })
}

/// One canonical range: every address in `start..=end` except `gateway` may be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Range {
    /// The subnet; results carry its prefix length.
    pub subnet: IpNet,
    /// First allocatable address (inclusive), never the network address.
    pub start: IpAddr,
    /// Last allocatable address (inclusive), never the IPv4 broadcast address.
    pub end: IpAddr,
    /// The gateway reported in results; never handed out.
    pub gateway: IpAddr,
}

impl Range {
    /// Canonicalise and validate one range.
    ///
    /// # Errors
    /// Host bits set in `subnet`, a subnet smaller than /30 (/126), an IPv4-mapped IPv6 subnet,
    /// `gateway`, `rangeStart` or `rangeEnd` outside the subnet, start after end, or a range left
    /// without any address once the network and broadcast addresses are removed.
    pub fn new(
        subnet: IpNet,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Range, RangeError> {
        if subnet.addr() != subnet.network() {
            return err("subnet", format!("subnet {subnet} has host bits set (the network is {})", subnet.trunc()));
        }
        let v4 = subnet.addr().is_ipv4();
        let bits = if v4 { 32 } else { 128 };
        if subnet.prefix_len() > bits - 2 {
            return err("subnet", format!("subnet {subnet} is too small to allocate from (at most /{})", bits - 2));
        }
        if let IpNet::V6(n) = subnet {
            if n.network().to_ipv4_mapped().is_some() {
                return err("subnet", format!("subnet {subnet} is IPv4-mapped; configure the IPv4 subnet instead"));
            }
        }
        let inside = |ip: IpAddr| same_family(ip, subnet.addr()) && subnet.contains(&ip);
        let network = to_u128(subnet.network());
        let last = to_u128(subnet.broadcast());
        let gateway = match gateway {
            Some(gw) if !inside(gw) => return err("gateway", format!("gateway {gw} is not in subnet {subnet}")),
            Some(gw) => gw,
            None => from_u128(network + 1, v4),
        };
        for (field, ip) in [("rangeStart", start), ("rangeEnd", end)] {
            match ip {
                Some(ip) if !inside(ip) => return err(field, format!("{field} {ip} is not in subnet {subnet}")),
                _ => {}
            }
        }
        if let (Some(s), Some(e)) = (start, end) {
            if to_u128(s) > to_u128(e) {
                return err("rangeStart", format!("rangeStart {s} is after rangeEnd {e}"));
            }
        }
        let first = start.map_or(network + 1, to_u128).max(network + 1);
        let max_end = if v4 { last - 1 } else { last };
        let final_end = end.map_or(max_end, to_u128).min(max_end);
        if first > final_end {
            return err(
                "rangeStart",
                format!(
                    "range {}-{} in subnet {subnet} has no usable address (the network and broadcast addresses are \
                     never handed out)",
                    start.map_or(String::new(), |s| s.to_string()),
                    end.map_or(String::new(), |e| e.to_string())
                ),
            );
        }
        Ok(Range { subnet, start: from_u128(first, v4), end: from_u128(final_end, v4), gateway })
    }

    /// Whether `ip` lies in `start..=end` (the gateway included, as in host-local).
    pub fn contains(&self, ip: IpAddr) -> bool {
        same_family(ip, self.start) && (to_u128(self.start)..=to_u128(self.end)).contains(&to_u128(ip))
    }

    /// Whether the two ranges share an address.
    pub fn overlaps(&self, other: &Range) -> bool {
        same_family(self.start, other.start)
            && to_u128(self.start) <= to_u128(other.end)
            && to_u128(other.start) <= to_u128(self.end)
    }

    /// The address with the subnet's prefix length, as results carry it.
    pub fn with_prefix(&self, ip: IpAddr) -> IpNet {
        IpNet::new(ip, self.subnet.prefix_len()).unwrap_or(self.subnet)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// A stretch of consecutive candidates in round-robin order: `from..=to` within range `range`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Index of the range in its set.
    pub range: usize,
    /// First candidate.
    pub from: IpAddr,
    /// Last candidate (inclusive).
    pub to: IpAddr,
}

/// The ranges one address is taken from: non-empty, one family, no overlaps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSet {
    /// The ranges, in configuration order.
    pub ranges: Vec<Range>,
}

impl RangeSet {
    /// Check the set: at least one range, one family, no two ranges overlapping.
    ///
    /// # Errors
    /// The message names the offending ranges.
    pub fn new(ranges: Vec<Range>) -> Result<RangeSet, String> {
        let Some(first) = ranges.first() else {
            return Err("empty range set".to_string());
        };
        if let Some(r) = ranges.iter().find(|r| !same_family(r.start, first.start)) {
            return Err(format!("mixed address families: {} and {}", first.subnet, r.subnet));
        }
        for (i, a) in ranges.iter().enumerate() {
            if let Some(b) = ranges[i + 1..].iter().find(|b| a.overlaps(b)) {
                return Err(format!("ranges {a} ({}) and {b} ({}) overlap", a.subnet, b.subnet));
            }
        }
        Ok(RangeSet { ranges })
    }

    /// True for an IPv4 set.
    pub fn is_v4(&self) -> bool {
        self.ranges.first().is_some_and(|r| r.start.is_ipv4())
    }

    /// The range holding `ip`, if any.
    pub fn range_for(&self, ip: IpAddr) -> Option<&Range> {
        self.ranges.iter().find(|r| r.contains(ip))
    }

    /// Whether some range of the set holds `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.range_for(ip).is_some()
    }

    /// Whether any range of `self` overlaps any range of `other`.
    pub fn overlaps(&self, other: &RangeSet) -> bool {
        self.ranges.iter().any(|a| other.ranges.iter().any(|b| a.overlaps(b)))
    }

    /// host-local's round-robin order as segments. With `last` (the last reserved address) inside
    /// the set, candidates start right after it, run to the end of its range, continue with the
    /// following ranges (wrapping around) and finish with `last` itself; otherwise they are the
    /// ranges in order from the first `rangeStart`. The gateway is skipped by the caller.
    pub fn round_robin(&self, last: Option<IpAddr>) -> Vec<Segment> {
        let whole = |i: usize| Segment { range: i, from: self.ranges[i].start, to: self.ranges[i].end };
        let n = self.ranges.len();
        let Some((i, last)) = last.and_then(|l| self.ranges.iter().position(|r| r.contains(l)).map(|i| (i, l))) else {
            return (0..n).map(whole).collect();
        };
        let r = &self.ranges[i];
        let mut out = Vec::with_capacity(n + 1);
        if let Some(after) = next(last).filter(|_| last != r.end) {
            out.push(Segment { range: i, from: after, to: r.end });
        }
        out.extend((1..n).map(|k| whole((i + k) % n)));
        out.push(Segment { range: i, from: r.start, to: last });
        out
    }
}

impl fmt::Display for RangeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.ranges.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn first_not_taken_skips_a_taken_run() {
        let taken = |v: &[&str]| v.iter().map(|s| ip(s)).collect::<Vec<_>>();
        let run = taken(&["198.18.0.2", "198.18.0.3", "198.18.0.5"]);
        assert_eq!(first_not_taken(run.clone(), ip("198.18.0.2"), ip("198.18.0.9")), Some(ip("198.18.0.4")));
        assert_eq!(first_not_taken(run[..2].to_vec(), ip("198.18.0.2"), ip("198.18.0.3")), None);
        assert_eq!(first_not_taken([], ip("198.18.0.1"), ip("198.18.0.1")), Some(ip("198.18.0.1")));
        let top = taken(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"]);
        assert_eq!(first_not_taken(top.clone(), top[0], top[0]), None, "no overflow past the last address");
    }

    fn range(subnet: &str, start: Option<&str>, end: Option<&str>, gw: Option<&str>) -> Result<Range, RangeError> {
        Range::new(subnet.parse().unwrap(), start.map(ip), end.map(ip), gw.map(ip))
    }

    #[test]
    fn defaults_follow_host_local() {
        let r = range("198.18.0.0/24", None, None, None).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("198.18.0.1"), ip("198.18.0.254"), ip("198.18.0.1")));
        let r = range("fd7e:7e7e::/120", None, None, None).unwrap();
        assert_eq!((r.start, r.end, r.gateway), (ip("fd7e:7e7e::1"), ip("fd7e:7e7e::ff"), ip("fd7e:7e7e::1")));
        let r = range("fd7e:7e7e::/64", None, None, None).unwrap();
        assert_eq!(r.end, ip("fd7e:7e7e::ffff:ffff:ffff:ffff"));
    }

    #[test]
    fn network_and_broadcast_are_cut_off() {
        let r = range("198.18.0.0/24", Some("198.18.0.0"), Some("198.18.0.255"), None).unwrap();
        assert_eq!((r.start, r.end), (ip("198.18.0.1"), ip("198.18.0.254")));
        assert!(!r.contains(ip("198.18.0.0")) && !r.contains(ip("198.18.0.255")));
        let e = range("198.18.0.0/24", Some("198.18.0.255"), Some("198.18.0.255"), None).unwrap_err();
        assert_eq!(e.field, "rangeStart");
        assert!(e.msg.contains("no usable address"), "{}", e.msg);
    }

    #[test]
    fn validation_names_the_field() {
        let cases = [
            (range("198.18.0.1/24", None, None, None), "subnet", "host bits"),
            (range("198.18.0.0/31", None, None, None), "subnet", "too small"),
            (range("198.18.0.0/32", None, None, None), "subnet", "too small"),
            (range("fd7e:7e7e::/127", None, None, None), "subnet", "too small"),
            (range("fd7e:7e7e::/128", None, None, None), "subnet", "too small"),
            (range("::ffff:c612:0/120", None, None, None), "subnet", "IPv4-mapped"),
            (range("198.18.0.0/24", None, None, Some("198.18.1.1")), "gateway", "not in subnet"),
            (range("198.18.0.0/24", None, None, Some("fd7e:7e7e::1")), "gateway", "not in subnet"),
            (range("198.18.0.0/24", Some("198.18.1.5"), None, None), "rangeStart", "not in subnet"),
            (range("198.18.0.0/24", None, Some("198.19.0.5"), None), "rangeEnd", "not in subnet"),
            (range("198.18.0.0/24", Some("198.18.0.9"), Some("198.18.0.8"), None), "rangeStart", "after"),
        ];
        for (res, field, what) in cases {
            let e = res.unwrap_err();
            assert_eq!(e.field, field, "{}", e.msg);
            assert!(e.msg.contains(what), "{}", e.msg);
        }
        assert!(range("198.18.0.0/30", None, None, None).is_ok());
        assert!(range("fd7e:7e7e::/126", None, None, None).is_ok());
    }

    #[test]
    fn sets_reject_mixed_families_and_overlaps() {
        let a = range("198.18.0.0/24", None, None, None).unwrap();
        let b = range("198.18.0.0/24", Some("198.18.0.100"), None, None).unwrap();
        let c = range("fd7e:7e7e::/64", None, None, None).unwrap();
        assert!(RangeSet::new(vec![a.clone(), b]).unwrap_err().contains("overlap"));
        assert!(RangeSet::new(vec![a.clone(), c]).unwrap_err().contains("mixed address families"));
        assert!(RangeSet::new(vec![]).is_err());
        let low = range("198.18.0.0/24", None, Some("198.18.0.99"), None).unwrap();
        let high = range("198.18.0.0/24", Some("198.18.0.100"), None, None).unwrap();
        assert!(RangeSet::new(vec![low, high]).is_ok());
    }

    #[test]
    fn round_robin_starts_after_last_and_ends_with_it() {
        let a = range("198.18.0.0/29", None, None, None).unwrap(); // .1-.6
        let b = range("198.18.1.0/29", None, None, None).unwrap();
        let set = RangeSet::new(vec![a, b]).unwrap();
        let seg = |r, f: &str, t: &str| Segment { range: r, from: ip(f), to: ip(t) };
        assert_eq!(set.round_robin(None), vec![seg(0, "198.18.0.1", "198.18.0.6"), seg(1, "198.18.1.1", "198.18.1.6")]);
        assert_eq!(
            set.round_robin(Some(ip("198.18.0.3"))),
            vec![
                seg(0, "198.18.0.4", "198.18.0.6"),
                seg(1, "198.18.1.1", "198.18.1.6"),
                seg(0, "198.18.0.1", "198.18.0.3")
            ]
        );
        // last at the end of a range continues at the next range
        assert_eq!(
            set.round_robin(Some(ip("198.18.0.6"))),
            vec![seg(1, "198.18.1.1", "198.18.1.6"), seg(0, "198.18.0.1", "198.18.0.6")]
        );
        // a last address outside the set is ignored
        assert_eq!(set.round_robin(Some(ip("198.18.2.3"))).len(), 2);
        assert_eq!(set.to_string(), "198.18.0.1-198.18.0.6,198.18.1.1-198.18.1.6");
    }

    #[test]
    fn numbers_round_trip() {
        for s in ["198.18.0.1", "198.19.255.255", "fd7e:7e7e::1", "fd7e:7e7e:ffff:ffff:ffff:ffff:ffff:ffff"] {
            assert_eq!(from_u128(to_u128(ip(s)), ip(s).is_ipv4()), ip(s));
        }
        assert_eq!(next(ip("198.18.0.255")), Some(ip("198.18.1.0")));
        // the end of each family's number space has no successor (computed, not written out)
        assert_eq!(next(from_u128(u128::from(u32::MAX), true)), None);
        assert_eq!(next(from_u128(u128::MAX, false)), None);
    }
}
