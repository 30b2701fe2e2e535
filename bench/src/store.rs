//! A prefilled IPAM store in host-local's on-disk format, identical for both IPAMs.
//!
//! `<dataDir>/<net>/<ip>` holds `<containerID>\r\n<ifname>` (mode 0600) per reservation and
//! `last_reserved_ip.0` the last address handed out. The range is 198.18.0.0/16 with host-local's
//! defaults: gateway 198.18.0.1, candidates 198.18.0.2 ..= 198.18.255.254 (65,533 addresses).
//! The free addresses are scattered deterministically (same seed every run), and `last_reserved_ip.0`
//! points into the reserved run so an allocator has to probe as it would in a long-lived store.

use std::collections::HashSet;
use std::fs::OpenOptions;
use std::io::Write;
use std::net::Ipv4Addr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

/// First candidate (gateway + 1) and number of candidates in 198.18.0.0/16.
const FIRST: u32 = u32::from_be_bytes([198, 18, 0, 2]);
pub const CANDIDATES: usize = 65_533;

/// Which addresses are reserved and where the round-robin cursor stands.
#[derive(Debug, Clone)]
pub struct Plan {
    reserved: Vec<bool>,
    pub count: usize,
    pub last: Option<Ipv4Addr>,
}

fn addr(index: usize) -> Ipv4Addr {
    Ipv4Addr::from(FIRST + index as u32)
}

/// splitmix64: a fixed, dependency-free pseudo-random sequence.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Plan {
    /// `count` reservations (at most [`CANDIDATES`]) scattered over the range.
    pub fn new(count: usize) -> Plan {
        let count = count.min(CANDIDATES);
        let mut reserved = vec![count > 0; CANDIDATES];
        if count > 0 {
            let mut free: HashSet<usize> = HashSet::new();
            let mut seed = 0x7e7e_7e7e;
            while free.len() < CANDIDATES - count {
                free.insert((splitmix(&mut seed) % CANDIDATES as u64) as usize);
            }
            for &i in &free {
                reserved[i] = false;
            }
        }
        // The cursor: the first reserved address from 60% of the range on.
        let start = CANDIDATES * 3 / 5;
        let last = (0..CANDIDATES).map(|k| (start + k) % CANDIDATES).find(|&i| reserved[i]);
        Plan { reserved, count, last: last.map(addr) }
    }

    /// Was `ip` reserved by the prefill?
    pub fn is_reserved(&self, ip: Ipv4Addr) -> bool {
        let i = u32::from(ip).wrapping_sub(FIRST) as usize;
        i < CANDIDATES && self.reserved[i]
    }

    /// Write the store into `store` (= `<dataDir>/<net>`, created). Nothing is written for an empty plan.
    pub fn write(&self, store: &Path) -> std::io::Result<()> {
        if self.count == 0 {
            return Ok(());
        }
        std::fs::create_dir_all(store)?;
        let mut seed = 0x1d_u64;
        for (i, _) in self.reserved.iter().enumerate().filter(|(_, r)| **r) {
            let id: String = (0..4).map(|_| format!("{:016x}", splitmix(&mut seed))).collect();
            create(&store.join(addr(i).to_string()), format!("{id}\r\neth0").as_bytes())?;
        }
        match self.last {
            Some(ip) => create(&store.join("last_reserved_ip.0"), ip.to_string().as_bytes()),
            None => Ok(()),
        }
    }

    /// Put `last_reserved_ip.0` back to what the prefill wrote and remove the reservation files of
    /// `allocated` addresses that the prefill did not reserve and the IPAM's DEL left behind.
    ///
    /// The cursor is rewritten in place (as host-local itself writes it), so the reset creates, renames
    /// or unlinks no directory entry: the store directory is untouched, and an IPAM's own index of it
    /// (tether-ipam seals its index with the directory's mtime) stays valid, as it would in a store
    /// that only the IPAM writes. An empty plan has no cursor to restore: the IPAM's own cursor stays.
    pub fn reset(&self, store: &Path, allocated: &[Ipv4Addr]) -> std::io::Result<()> {
        for &ip in allocated.iter().filter(|ip| !self.is_reserved(**ip)) {
            remove_if_exists(&store.join(ip.to_string()))?;
        }
        match self.last {
            Some(ip) => rewrite(&store.join("last_reserved_ip.0"), ip.to_string().as_bytes()),
            None => Ok(()),
        }
    }
}

/// Replace a file's content in place (same inode, no directory change); create it if it is missing.
fn rewrite(path: &Path, content: &[u8]) -> std::io::Result<()> {
    match OpenOptions::new().write(true).truncate(true).open(path) {
        Ok(mut file) => file.write_all(content),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path, content),
        Err(e) => Err(e),
    }
}

fn create(path: &Path, content: &[u8]) -> std::io::Result<()> {
    OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?.write_all(content)
}

fn remove_if_exists(path: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_is_deterministic_and_counts_match() {
        let a = Plan::new(65_000);
        let b = Plan::new(65_000);
        assert_eq!(a.reserved, b.reserved);
        assert_eq!(a.reserved.iter().filter(|r| **r).count(), 65_000);
        let last = a.last.unwrap();
        assert!(a.is_reserved(last));
        assert!(!a.is_reserved(Ipv4Addr::new(198, 18, 0, 1)), "the gateway is never reserved");
        assert!(!a.is_reserved(Ipv4Addr::new(198, 18, 255, 255)));
        assert!(Plan::new(0).last.is_none());
    }

    #[test]
    fn write_and_reset_in_host_local_format() {
        let dir = std::env::temp_dir().join(format!("tb-store-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let plan = Plan::new(CANDIDATES - 3);
        plan.write(&dir).unwrap();
        let files = std::fs::read_dir(&dir).unwrap().count();
        assert_eq!(files, CANDIDATES - 3 + 1);
        let last = plan.last.unwrap();
        assert_eq!(std::fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(), last.to_string());
        let content = std::fs::read_to_string(dir.join(last.to_string())).unwrap();
        let (id, ifname) = content.split_once("\r\n").unwrap();
        assert_eq!((id.len(), ifname), (64, "eth0"));
        // An allocator took a free address and moved the cursor; reset undoes both, keeps the prefill.
        let free = (0..CANDIDATES).map(addr).find(|ip| !plan.is_reserved(*ip)).unwrap();
        std::fs::write(dir.join(free.to_string()), "x\r\neth0").unwrap();
        std::fs::write(dir.join("last_reserved_ip.0"), free.to_string()).unwrap();
        let mtime = || std::fs::metadata(&dir).unwrap().modified().unwrap();
        std::fs::remove_file(dir.join(free.to_string())).unwrap(); // the IPAM's DEL
        let before = mtime();
        std::thread::sleep(std::time::Duration::from_millis(20));
        plan.reset(&dir, &[free, last]).unwrap();
        assert_eq!(mtime(), before, "the reset must not touch the directory");
        std::fs::write(dir.join(free.to_string()), "x\r\neth0").unwrap(); // a DEL that forgot it
        plan.reset(&dir, &[free]).unwrap();
        assert!(!dir.join(free.to_string()).exists());
        assert!(dir.join(last.to_string()).exists());
        assert_eq!(std::fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(), last.to_string());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
