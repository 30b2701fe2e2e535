//! `tether-ipam`: host-local compatible IPAM as a CNI plugin binary.
fn main() -> std::process::ExitCode {
    conf::skel::run(&tether_ipam::HostLocal, "tether-ipam", "host-local compatible IPAM for CNI")
}
