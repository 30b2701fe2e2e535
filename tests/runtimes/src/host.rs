//! The machine's own network namespace, read only: the runtime tests must leave no veth and no
//! tether nftables table there (everything they make lives in namespaces they made).

use std::collections::BTreeSet;
use tether_tests::cmd;

/// The veths and the nftables tables with `tether` in their name in the machine's namespace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostNetwork {
    veths: BTreeSet<String>,
    tether_tables: BTreeSet<String>,
}

impl HostNetwork {
    /// Read them now.
    pub fn read() -> HostNetwork {
        let links = cmd::tool("ip", &["-o", "link", "show", "type", "veth"]).stdout;
        let veths = links.lines().filter_map(|l| l.split(':').nth(1)).map(|n| n.trim().to_string()).collect();
        let tables = cmd::tool("nft", &["list", "tables"]).stdout;
        let tether_tables = tables.lines().filter(|l| l.contains("tether")).map(str::to_string).collect();
        HostNetwork { veths, tether_tables }
    }

    /// Panic when the machine's namespace gained a veth or holds a tether table.
    #[track_caller]
    pub fn assert_untouched_since(&self) {
        let now = HostNetwork::read();
        let new_veths: Vec<_> = now.veths.difference(&self.veths).collect();
        assert!(new_veths.is_empty(), "the machine's own namespace gained veths: {new_veths:?}");
        assert!(now.tether_tables.is_empty(), "the machine's own namespace has tether tables: {:?}", now.tether_tables);
    }
}
