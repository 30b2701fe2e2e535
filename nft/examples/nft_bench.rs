//! Latency of the public calls, each on a session of its own as a plugin invocation has, with 0..1000 other
//! attachments present.
//!
//! Run as root: `cargo run --release -p tether-nft --example nft_bench`. The process first moves itself into a new,
//! empty network namespace (unshare on its only thread), so the machine's own ruleset is never touched, and the
//! namespace disappears when the process exits. Results go to stderr.
//!
//! It first measures the first call of each feature on a namespace without its table (a node's first container of
//! a network), `FIRST_ROUNDS` times, each after the last DEL dropped the table again; `--first-only` stops there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use nft::{MasqEntry, Session};

fn entry(i: u32) -> MasqEntry {
    // 198.18.0.0/15 holds 131072 addresses: plenty for the benchmark.
    let a = 0xc612_0000u32 + 2 + i;
    MasqEntry { addr: std::net::Ipv4Addr::from(a).into(), subnet: "198.18.0.0/15".parse().unwrap() }
}

fn mac(i: u32) -> [u8; 6] {
    let b = i.to_be_bytes();
    [0x02, 0x7e, b[0], b[1], b[2], b[3]]
}

fn session() -> Session {
    Session::open().unwrap()
}

/// Median and 90th percentile of `samples`.
fn stats(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    (samples[samples.len() / 2], samples[samples.len() * 9 / 10])
}

/// The first ADD of each feature, on a namespace without its table: `rounds` times, each followed by the last DEL
/// (untimed) that drops the table again. Also reports how many transactions each first ADD sent and how many the
/// kernel refused (a refused transaction costs a grace period).
fn first_adds(rounds: u32) {
    let (mut masq, mut spoof, mut iso) = (vec![], vec![], vec![]);
    let mut counts = [(0u64, 0u64); 3];
    let mut note = |i: usize, s: &Session| {
        counts[i].0 += s.batches_sent();
        counts[i].1 += s.batches_refused();
    };
    for r in 0..rounds {
        let id = format!("first{r}");
        let mut s = session();
        let t = Instant::now();
        s.masq_add("bench", &id, "eth0", &[entry(r)], &[]).unwrap();
        masq.push(t.elapsed());
        note(0, &s);
        let mut s = session();
        let t = Instant::now();
        s.spoofchk_add("bench", &id, "eth0", "vfirst", mac(r)).unwrap();
        spoof.push(t.elapsed());
        note(1, &s);
        let mut s = session();
        let t = Instant::now();
        s.isolate_add("bench").unwrap();
        iso.push(t.elapsed());
        note(2, &s);
        let mut s = session();
        s.masq_del("bench", &id, "eth0").unwrap(); // takes the isolation element (and its table) too
        s.spoofchk_del("bench", &id, "eth0").unwrap();
    }
    let n = u64::from(rounds);
    for (name, samples, (sent, refused)) in
        [("masq_add", masq, counts[0]), ("spoofchk_add", spoof, counts[1]), ("isolate_add", iso, counts[2])]
    {
        let (p50, p90) = stats(samples);
        eprintln!(
            "first {name:<12} (no table): p50 {p50:>9.1?}  p90 {p90:>9.1?}  transactions {:.1}, refused {:.1} per call",
            sent as f64 / n as f64,
            refused as f64 / n as f64
        );
    }
}

fn main() {
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET): run as root");
    const FIRST_ROUNDS: u32 = 20;
    first_adds(FIRST_ROUNDS);
    if std::env::args().any(|a| a == "--first-only") {
        return;
    }
    const ROUNDS: u32 = 300;
    let mut present = 0u32;
    eprintln!(
        "{:>9} {:>22} {:>22} {:>22} {:>22} {:>22}",
        "present",
        "masq_add p50/p90",
        "masq_del p50/p90",
        "masq_list p50/p90",
        "spoof_add p50/p90",
        "spoof_del p50/p90"
    );
    let t = Instant::now();
    session().masq_add("bench", "first", "eth0", &[entry(100_000)], &[]).unwrap();
    session().spoofchk_add("bench", "first", "eth0", "vfirst", mac(100_000)).unwrap();
    eprintln!("first masq_add + spoofchk_add (creates both tables): {:?}", t.elapsed());
    for target in [0u32, 10, 100, 1000] {
        while present < target {
            session().masq_add("bench", &format!("c{present}"), "eth0", &[entry(present)], &[]).unwrap();
            session()
                .spoofchk_add("bench", &format!("c{present}"), "eth0", &format!("v{present}"), mac(present))
                .unwrap();
            present += 1;
        }
        let (mut add, mut del, mut list, mut sadd, mut sdel) = (vec![], vec![], vec![], vec![], vec![]);
        for r in 0..ROUNDS {
            let id = format!("probe{r}");
            let e = entry(50_000 + r);
            let t = Instant::now();
            session().masq_add("bench", &id, "eth0", &[e], &[]).unwrap();
            add.push(t.elapsed());
            let t = Instant::now();
            assert_eq!(session().masq_list("bench", &id, "eth0").unwrap(), vec![e.addr]);
            list.push(t.elapsed());
            let t = Instant::now();
            session().masq_del("bench", &id, "eth0").unwrap();
            del.push(t.elapsed());
            let t = Instant::now();
            session().spoofchk_add("bench", &id, "eth0", "vprobe", mac(50_000 + r)).unwrap();
            sadd.push(t.elapsed());
            let t = Instant::now();
            session().spoofchk_del("bench", &id, "eth0").unwrap();
            sdel.push(t.elapsed());
        }
        let cell = |s: Vec<Duration>| {
            let (p50, p90) = stats(s);
            format!("{:>9.1?} / {:>9.1?}", p50, p90)
        };
        eprintln!(
            "{present:>9} {:>22} {:>22} {:>22} {:>22} {:>22}",
            cell(add),
            cell(del),
            cell(list),
            cell(sadd),
            cell(sdel)
        );
    }
}
