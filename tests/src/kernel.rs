//! What the kernel under test supports, for the tests whose right outcome depends on it: each is
//! probed in a namespace the test made. `TETHER_TEST_EXPECT_VLANS=1` (scripts/kernel-test sets
//! it from the booted kernel's config) says the kernel has bridge VLAN filtering and 802.1Q: a
//! probe that then fails is a failure, so no VLAN test can pass on its unsupported-kernel branch
//! where the success path must run.

use crate::netns::Netns;

/// True when the kernel under test is known to have bridge VLAN filtering and 802.1Q.
pub fn vlans_expected() -> bool {
    std::env::var("TETHER_TEST_EXPECT_VLANS").is_ok_and(|v| v == "1")
}

#[track_caller]
fn probed(feature: &str, how: &str, ok: bool) -> bool {
    assert!(ok || !vlans_expected(), "TETHER_TEST_EXPECT_VLANS=1, but this kernel has no {feature}: `{how}` fails");
    ok
}

/// Bridge VLAN filtering (`CONFIG_BRIDGE_VLAN_FILTERING`): can `ns` have a VLAN-filtering bridge?
#[track_caller]
pub fn bridge_vlan_filtering(ns: &Netns) -> bool {
    let ok = ns.ip(&["link", "add", "tprobebr", "type", "bridge", "vlan_filtering", "1"]).success();
    if ok {
        ns.ip_ok(&["link", "del", "tprobebr"]);
    }
    probed("bridge VLAN filtering", "ip link add type bridge vlan_filtering 1", ok)
}

/// 802.1Q VLAN devices (`CONFIG_VLAN_8021Q`): can `ns` have one, on a veth?
#[track_caller]
pub fn vlan_devices(ns: &Netns) -> bool {
    ns.ip_ok(&["link", "add", "tprobev", "type", "veth", "peer", "name", "tprobevp"]);
    let ok = ns.ip(&["link", "add", "link", "tprobev", "name", "tprobev.5", "type", "vlan", "id", "5"]).success();
    ns.ip_ok(&["link", "del", "tprobev"]); // its peer and VLAN device go with it
    probed("802.1Q VLAN devices", "ip link add type vlan", ok)
}
