//! The one image the runtime tests use, built locally (no registry can be reached): a rootfs
//! holding Debian's static busybox, written as a layer tarball and as an OCI image archive.
//!
//! containerd imports the archive (`ctr -n k8s.io images import`) and runs it as the sandbox
//! ("pause") image and as the pods' containers (`httpd`); podman imports the layer.

use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use tether_tests::cmd;

/// The static busybox of Debian's `busybox-static`.
pub const BUSYBOX: &str = "/bin/busybox";

/// The image's name, as containerd's CRI and podman refer to it.
pub const IMAGE_NAME: &str = "localhost/tether-busybox:1";

/// What the web server in the image serves at `/`.
pub const INDEX_PAGE: &str = "tether test page\n";

/// The applets linked into `/bin`.
const APPLETS: [&str; 14] =
    ["sh", "sleep", "httpd", "cat", "hostname", "ping", "wget", "ip", "ls", "true", "echo", "nc", "grep", "mkdir"];

/// The built image: a layer tarball and the OCI archive around it.
#[derive(Debug, Clone)]
pub struct Image {
    /// The uncompressed layer (a rootfs tarball).
    pub layer: PathBuf,
    /// The OCI image archive (`oci-layout`, `index.json`, `blobs/`).
    pub archive: PathBuf,
}

/// The OCI architecture name of this machine.
fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

#[track_caller]
fn sha256(path: &Path) -> String {
    let out = cmd::tool("sha256sum", &[&path.display().to_string()]).assert_success().stdout.clone();
    out.split_whitespace().next().unwrap_or_default().to_string()
}

/// Store `bytes` as a blob; return its descriptor fields (digest, size).
#[track_caller]
fn put_blob(blobs: &Path, file: &Path) -> (String, u64) {
    let digest = sha256(file);
    let size = std::fs::metadata(file).map(|m| m.len()).unwrap_or_else(|e| panic!("stat {}: {e}", file.display()));
    std::fs::copy(file, blobs.join(&digest)).unwrap_or_else(|e| panic!("copy blob {}: {e}", file.display()));
    (format!("sha256:{digest}"), size)
}

#[track_caller]
fn write_json(path: &Path, doc: &Value) {
    std::fs::write(path, doc.to_string()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

#[track_caller]
fn tar(dir: &Path, out: &Path) {
    let (dir, out) = (dir.display().to_string(), out.display().to_string());
    let args = ["--sort=name", "--owner=0", "--group=0", "--numeric-owner", "--mtime=@0", "-C", &dir, "-cf", &out, "."];
    cmd::tool("tar", &args).assert_success();
}

impl Image {
    /// Build the image under `work` (a scratch directory of the test). `cmd` is the image's
    /// default command (for a sandbox image: what the pause process runs).
    #[track_caller]
    pub fn build(work: &Path) -> Image {
        if !Path::new(BUSYBOX).is_file() {
            panic!("{BUSYBOX} missing: apt-get install busybox-static");
        }
        let rootfs = work.join("rootfs");
        for dir in ["bin", "etc", "www", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(dir)).unwrap_or_else(|e| panic!("mkdir rootfs/{dir}: {e}"));
        }
        std::fs::copy(BUSYBOX, rootfs.join("bin/busybox")).unwrap_or_else(|e| panic!("copy {BUSYBOX}: {e}"));
        for applet in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))
                .unwrap_or_else(|e| panic!("symlink {applet}: {e}"));
        }
        std::fs::write(rootfs.join("www/index.html"), INDEX_PAGE).unwrap_or_else(|e| panic!("index.html: {e}"));
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/:/bin/sh\n").unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(rootfs.join("etc/group"), "root:x:0:\n").unwrap_or_else(|e| panic!("{e}"));
        let layer = work.join("layer.tar");
        tar(&rootfs, &layer);

        let oci = work.join("oci");
        let blobs = oci.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap_or_else(|e| panic!("mkdir {}: {e}", blobs.display()));
        let (layer_digest, layer_size) = put_blob(&blobs, &layer);
        let config = json!({
            "architecture": oci_arch(),
            "os": "linux",
            // A pause process: sleeps until killed (containerd stops a sandbox with SIGKILL).
            "config": { "Cmd": ["/bin/sleep", "2147483647"], "Env": ["PATH=/bin"], "WorkingDir": "/" },
            "rootfs": { "type": "layers", "diff_ids": [layer_digest] },
        });
        let config_file = work.join("config.json");
        write_json(&config_file, &config);
        let (config_digest, config_size) = put_blob(&blobs, &config_file);
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": config_digest, "size": config_size },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer_digest, "size": layer_size }],
        });
        let manifest_file = work.join("manifest.json");
        write_json(&manifest_file, &manifest);
        let (manifest_digest, manifest_size) = put_blob(&blobs, &manifest_file);
        let index = json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": manifest_digest,
                "size": manifest_size,
                "annotations": { "io.containerd.image.name": IMAGE_NAME, "org.opencontainers.image.ref.name": "1" },
                "platform": { "architecture": oci_arch(), "os": "linux" },
            }],
        });
        write_json(&oci.join("index.json"), &index);
        write_json(&oci.join("oci-layout"), &json!({ "imageLayoutVersion": "1.0.0" }));
        let archive = work.join("image.oci.tar");
        tar(&oci, &archive);
        Image { layer, archive }
    }
}
