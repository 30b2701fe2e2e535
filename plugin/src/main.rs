//! `tether`: the CNI plugin binary (see the library for what it does).

fn main() -> std::process::ExitCode {
    conf::skel::run(&tether::Tether, "tether", "CNI plugin, a veth pair per container (modes ptp, bridge)")
}
