//! tether-ipam's store as anyone with access to its directory may leave it: host-local, an operator,
//! a crash. A legitimate store is made first (so the index is sealed and trusted), then the input
//! rewrites, adds or replaces files of it (reservations, `last_reserved_ip.*`, the lock, and the
//! index files under `.tether/`, in place so that the seal still matches), and then every verb runs
//! through the real dispatcher and plugin. Besides a panic, it is a finding when anything outside
//! the data directory changes (a symlinked reservation points outside).

use conf::skel::dispatch;
use serde_json::json;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

const NETWORK: &str = "fz";
const OUTSIDE: &[u8] = b"outside the data directory\n";

/// A fresh scratch directory for one input, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("tether-fuzz-store-{}-{n}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn conf(data_dir: &Path, version: &str) -> serde_json::Value {
    json!({"cniVersion": version, "name": NETWORK, "type": "tether",
           "ipam": {"type": "tether-ipam", "dataDir": data_dir,
                    "ranges": [[{"subnet": "198.18.0.0/28"}], [{"subnet": "fd7e:7e7e::/124"}]]}})
}

/// One verb through the dispatcher, as a runtime runs tether-ipam; the answer must be one document.
fn invoke(verb: &str, id: &str, doc: &serde_json::Value) {
    let stdin = doc.to_string();
    let env = |key: &str| -> Option<String> {
        match key {
            "CNI_COMMAND" => Some(verb.to_string()),
            "CNI_CONTAINERID" if !id.is_empty() => Some(id.to_string()),
            "CNI_NETNS" if !id.is_empty() => Some("/run/netns/fuzz-none".to_string()),
            "CNI_IFNAME" if !id.is_empty() => Some("eth0".to_string()),
            "CNI_PATH" => Some("/nonexistent".to_string()),
            _ => None,
        }
    };
    let answer = dispatch(&tether_ipam::HostLocal, env, &mut stdin.as_bytes());
    crate::assert_one_document(answer.stdout.as_deref());
}

/// The store file the selector byte `kind` (its low bits, and `arg`) names.
fn target(store: &Path, kind: u8, arg: u8) -> PathBuf {
    let meta = store.join(".tether");
    match (kind & 0x7f) % 10 {
        0 | 1 => store.join(format!("198.18.0.{}", arg % 20)),
        2 => store.join(format!("fd7e:7e7e::{:x}", arg % 20)),
        3 => store.join(format!("last_reserved_ip.{}", arg % 3)),
        4 => meta.join("stamp"),
        5 => meta.join("u4-c612"),
        6 => meta.join(format!("o-{arg:02x}")),
        7 => meta.join(format!("spare-{}", arg % 5)),
        8 => meta,
        _ => store.join("lock"),
    }
}

/// Apply the input: records of (kind, arg, length, bytes). With the top bit of `kind` set, the
/// path becomes a symlink to a file outside the data directory (the first byte of the content
/// odd) or to a directory outside it; otherwise the file is rewritten in place (an existing file
/// keeps its inode, so the directory, and with it the index's seal, is unchanged) or created.
fn mutate(store: &Path, outside: (&Path, &Path), mut data: &[u8]) {
    while let [kind, arg, len, rest @ ..] = data {
        let n = usize::from(*len).min(rest.len());
        let (content, tail) = rest.split_at(n);
        data = tail;
        let path = target(store, *kind, *arg);
        // Never through a `.tether` symlink an earlier record made: the harness itself must not
        // write (or plant a symlink) outside the data directory.
        let through_link = path
            .ancestors()
            .take_while(|a| a.starts_with(store) && *a != store)
            .skip(1)
            .any(|a| fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()));
        if through_link {
            continue;
        }
        if kind & 0x80 != 0 {
            let to = if content.first().is_some_and(|b| b & 1 == 1) { outside.0 } else { outside.1 };
            let _ = fs::remove_dir_all(&path);
            let _ = fs::remove_file(&path);
            let _ = std::os::unix::fs::symlink(to, &path);
            continue;
        }
        let opened = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits())
            .open(&path);
        if let Ok(mut f) = opened {
            let _ = f.write_all(content);
        }
    }
}

/// See the module documentation.
pub fn run(data: &[u8]) {
    crate::quiet_logs();
    let scratch = Scratch::new();
    let data_dir = scratch.0.join("data");
    let outside = scratch.0.join("outside");
    fs::write(&outside, OUTSIDE).expect("outside file");
    let outside_dir = scratch.0.join("outside-dir");
    fs::create_dir(&outside_dir).expect("outside dir");
    let doc = conf(&data_dir, "1.1.0");
    for id in ["c0", "c1"] {
        invoke("ADD", id, &doc);
    }
    mutate(&data_dir.join(NETWORK), (&outside, &outside_dir), data);

    invoke("ADD", "c2", &doc);
    let mut with_prev = doc.clone();
    with_prev["prevResult"] =
        json!({"cniVersion": "1.1.0", "ips": [{"address": "198.18.0.2/28"}, {"address": "fd7e:7e7e::2/124"}]});
    invoke("CHECK", "c0", &with_prev);
    invoke("DEL", "c1", &doc);
    let mut gc = doc.clone();
    gc["cni.dev/valid-attachments"] =
        json!([{"containerID": "c0", "ifname": "eth0"}, {"containerID": "c2", "ifname": "eth0"}]);
    invoke("GC", "", &gc);
    invoke("STATUS", "", &doc);
    invoke("ADD", "c3", &conf(&data_dir, "0.3.1"));
    invoke("DEL", "c3", &doc);

    assert_eq!(fs::read(&outside).ok().as_deref(), Some(OUTSIDE), "a write went outside the data directory");
    let mut names: Vec<String> = fs::read_dir(&scratch.0)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    names.sort();
    assert_eq!(names, ["data", "outside", "outside-dir"], "something was created outside the data directory");
    let inside = fs::read_dir(&outside_dir).map(|rd| rd.count()).unwrap_or(0);
    assert_eq!(inside, 0, "something was written into a directory outside the data directory");
}
