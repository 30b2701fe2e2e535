//! Allocator tests over [`MemStore`].

use super::*;
use crate::range::Range;
use crate::store::mem::MemStore;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// (subnet, rangeStart, rangeEnd, gateway)
type Spec<'a> = (&'a str, Option<&'a str>, Option<&'a str>, Option<&'a str>);

fn set(ranges: &[Spec]) -> RangeSet {
    RangeSet::new(
        ranges
            .iter()
            .map(|(subnet, s, e, g)| Range::new(subnet.parse().unwrap(), s.map(ip), e.map(ip), g.map(ip)).unwrap())
            .collect(),
    )
    .unwrap()
}

fn simple(subnet: &str) -> RangeSet {
    set(&[(subnet, None, None, None)])
}

const A: Owner = Owner { id: "ctr-a", ifname: "eth0" };

fn owner(id: &str) -> Owner<'_> {
    Owner { id, ifname: "eth0" }
}

fn one(store: &mut MemStore, sets: &[RangeSet], who: &Owner) -> Result<IpAddr> {
    allocate(store, sets, who, &[], &[]).map(|l| l[0].address.addr())
}

#[test]
fn first_address_skips_network_and_gateway() {
    let mut s = MemStore::default();
    let leases = allocate(&mut s, &[simple("198.18.0.0/24")], &A, &[], &[]).unwrap();
    assert_eq!(leases[0].address.to_string(), "198.18.0.2/24");
    assert_eq!(leases[0].gateway, ip("198.18.0.1"));
    assert!(leases[0].fresh);
    assert_eq!(s.last[&0], ip("198.18.0.2"));
}

#[test]
fn round_robin_tries_the_previous_address_last_and_wraps() {
    let sets = [simple("198.18.0.0/29")]; // .1 gateway, .2-.6 allocatable
    let mut s = MemStore::default();
    let got: Vec<String> =
        ["a", "b", "c"].iter().map(|id| one(&mut s, &sets, &owner(id)).unwrap().to_string()).collect();
    assert_eq!(got, ["198.18.0.2", "198.18.0.3", "198.18.0.4"]);
    // releasing .3 does not bring it back before the end of the range is reached
    s.reserved.remove(&ip("198.18.0.3"));
    assert_eq!(one(&mut s, &sets, &owner("d")).unwrap(), ip("198.18.0.5"));
    assert_eq!(one(&mut s, &sets, &owner("e")).unwrap(), ip("198.18.0.6"));
    // wrap around: .2 is taken, .3 is free
    assert_eq!(one(&mut s, &sets, &owner("f")).unwrap(), ip("198.18.0.3"));
    let e = one(&mut s, &sets, &owner("g")).unwrap_err();
    assert_eq!(e.code(), 104);
    assert!(
        e.to_string().contains("no IP addresses available in range set 0: 198.18.0.1-198.18.0.6"),
        "{}",
        e.to_string()
    );
}

#[test]
fn previous_address_is_reused_only_when_everything_else_is_taken() {
    let sets = [simple("198.18.0.0/29")];
    let mut s = MemStore::default();
    for id in ["b", "c", "d", "e"] {
        one(&mut s, &sets, &owner(id)).unwrap(); // .2 .. .5
    }
    s.put("198.18.0.6", "x", Some("eth0"));
    s.reserved.remove(&ip("198.18.0.5"));
    assert_eq!(one(&mut s, &sets, &owner("f")).unwrap(), ip("198.18.0.5"));
}

#[test]
fn last_reserved_at_the_end_of_a_range_continues_at_the_next() {
    let sets = [set(&[
        ("198.18.0.0/24", Some("198.18.0.10"), Some("198.18.0.12"), None),
        ("198.18.1.0/24", Some("198.18.1.20"), Some("198.18.1.21"), None),
    ])];
    let mut s = MemStore::default();
    s.last.insert(0, ip("198.18.0.12"));
    assert_eq!(one(&mut s, &sets, &owner("a")).unwrap(), ip("198.18.1.20"));
    assert_eq!(one(&mut s, &sets, &owner("b")).unwrap(), ip("198.18.1.21"));
    assert_eq!(one(&mut s, &sets, &owner("c")).unwrap(), ip("198.18.0.10"));
    let leases = allocate(&mut s, &sets, &owner("d"), &[], &[]).unwrap();
    assert_eq!(leases[0].address.to_string(), "198.18.0.11/24");
    // a last address the set does not contain restarts at the first rangeStart
    s.reserved.clear();
    s.last.insert(0, ip("198.19.0.1"));
    assert_eq!(one(&mut s, &sets, &owner("e")).unwrap(), ip("198.18.0.10"));
}

#[test]
fn gateway_inside_the_range_and_broadcast_are_never_handed_out() {
    let sets = [set(&[("198.18.0.0/30", Some("198.18.0.0"), Some("198.18.0.3"), Some("198.18.0.2"))])];
    let mut s = MemStore::default();
    assert_eq!(one(&mut s, &sets, &owner("a")).unwrap(), ip("198.18.0.1"));
    assert_eq!(one(&mut s, &sets, &owner("b")).unwrap_err().code(), 104);
    assert_eq!(s.reserved.len(), 1);
}

#[test]
fn ipv6_ranges_of_any_size() {
    let mut s = MemStore::default();
    let big = [simple("fd7e:7e7e::/64")];
    assert_eq!(one(&mut s, &big, &owner("a")).unwrap(), ip("fd7e:7e7e::2"));
    s.last.insert(0, ip("fd7e:7e7e::ffff:ffff:ffff:fffe"));
    assert_eq!(one(&mut s, &big, &owner("b")).unwrap(), ip("fd7e:7e7e::ffff:ffff:ffff:ffff"));
    assert_eq!(one(&mut s, &big, &owner("c")).unwrap(), ip("fd7e:7e7e::3"), "wraps to the start of a /64");

    let mut s = MemStore::default();
    let small = [simple("fd7e:7e7e:1::/120")];
    for i in 2..=0xff {
        assert_eq!(one(&mut s, &small, &owner(&format!("c{i}"))).unwrap(), ip(&format!("fd7e:7e7e:1::{i:x}")));
    }
    assert_eq!(one(&mut s, &small, &owner("full")).unwrap_err().code(), 104);
}

#[test]
fn dual_stack_takes_one_address_per_set() {
    let sets = [simple("198.18.0.0/24"), simple("fd7e:7e7e::/64")];
    let mut s = MemStore::default();
    let leases = allocate(&mut s, &sets, &A, &[], &[]).unwrap();
    let got: Vec<String> = leases.iter().map(|l| l.address.to_string()).collect();
    assert_eq!(got, ["198.18.0.2/24", "fd7e:7e7e::2/64"]);
    assert_eq!(s.last[&1], ip("fd7e:7e7e::2"));
}

#[test]
fn requested_addresses() {
    let sets = [simple("198.18.0.0/24"), simple("fd7e:7e7e::/64")];
    let mut s = MemStore::default();
    let req = [ip("fd7e:7e7e::50"), ip("198.18.0.50")];
    let leases = allocate(&mut s, &sets, &A, &req, &[]).unwrap();
    assert_eq!(leases[0].address.addr(), ip("198.18.0.50"));
    assert_eq!(leases[1].address.addr(), ip("fd7e:7e7e::50"));
    assert_eq!(s.last[&0], ip("198.18.0.50"), "a requested address moves the cursor, as in host-local");

    let taken = allocate(&mut s, &sets, &owner("b"), &[ip("198.18.0.50")], &[]).unwrap_err();
    assert_eq!(taken.code(), 104);
    assert!(taken.to_string().contains("198.18.0.50 is not available"), "{}", taken.to_string());
    let gw = allocate(&mut s, &sets, &owner("b"), &[ip("198.18.0.1")], &[]).unwrap_err();
    assert!(gw.to_string().contains("gateway"), "{}", gw.to_string());
    for outside in ["198.19.0.5", "198.18.0.0", "198.18.0.255"] {
        let e = allocate(&mut s, &sets, &owner("b"), &[ip(outside)], &[]).unwrap_err();
        assert_eq!(e.code(), 104);
        assert!(
            e.to_string().contains("failed to allocate all requested IPs") && e.to_string().contains(outside),
            "{}",
            e.to_string()
        );
    }
    assert_eq!(s.reserved.len(), 2, "failed ADDs left nothing behind");
}

#[test]
fn failure_in_a_later_set_releases_only_this_calls_reservations() {
    let sets = [simple("198.18.0.0/24"), simple("198.19.0.0/30")]; // second set: only .2
    let mut s = MemStore::default();
    s.put("198.19.0.2", "other", Some("eth0"));
    let e = allocate(&mut s, &sets, &A, &[], &[]).unwrap_err();
    assert_eq!(e.code(), 104);
    assert_eq!(s.reserved.len(), 1);
    // leftover requested address: both sets allocated, then everything released
    let e = allocate(&mut s, &[simple("198.18.0.0/24")], &A, &[ip("198.18.0.9"), ip("198.18.0.10")], &[]).unwrap_err();
    assert!(e.to_string().contains("198.18.0.10"), "{}", e.to_string());
    assert_eq!(s.reserved.len(), 1);
}

#[test]
fn repeated_add_returns_what_is_held() {
    let sets = [simple("198.18.0.0/24"), simple("fd7e:7e7e::/64")];
    let mut s = MemStore::default();
    let first = allocate(&mut s, &sets, &A, &[], &[]).unwrap();
    let held = s.held_by(&A).unwrap();
    let again = allocate(&mut s, &sets, &A, &[], &held).unwrap();
    assert_eq!(
        first.iter().map(|l| l.address).collect::<Vec<_>>(),
        again.iter().map(|l| l.address).collect::<Vec<_>>()
    );
    assert!(again.iter().all(|l| !l.fresh));
    assert_eq!(s.reserved.len(), 2);
    // same requested address: fine; a different one: refused, nothing changes
    let same = allocate(&mut s, &sets, &A, &[first[0].address.addr()], &held).unwrap();
    assert_eq!(same[0].address, first[0].address);
    let other = allocate(&mut s, &sets, &A, &[ip("198.18.0.77")], &held).unwrap_err();
    assert!(other.to_string().contains("already holds"), "{}", other.to_string());
    assert_eq!(s.reserved.len(), 2);
    // a set the attachment holds nothing in gets a fresh address
    let v4_only = vec![held.iter().copied().find(|i| i.is_ipv4()).unwrap()];
    s.reserved.retain(|ip, _| ip.is_ipv4());
    let mixed = allocate(&mut s, &sets, &A, &[], &v4_only).unwrap();
    assert!(!mixed[0].fresh && mixed[1].fresh);
}

#[test]
fn legacy_reservations_count_as_held() {
    let mut s = MemStore::default();
    s.put("198.18.0.9", "ctr-a", None);
    assert_eq!(s.held_by(&A).unwrap(), vec![ip("198.18.0.9")]);
    s.put("198.18.0.10", "ctr-a", Some("eth0"));
    assert_eq!(s.held_by(&A).unwrap(), vec![ip("198.18.0.10")], "legacy only when nothing else matches");
}

#[test]
fn status_sees_exhaustion() {
    let sets = [simple("198.18.0.0/30")]; // only .2
    let mut s = MemStore::default();
    assert!(has_free(&sets[0], |a, b| s.next_untaken(a, b)).unwrap());
    one(&mut s, &sets, &A).unwrap();
    assert!(!has_free(&sets[0], |a, b| s.next_untaken(a, b)).unwrap());
}
