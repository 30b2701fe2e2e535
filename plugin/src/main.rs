//! `tether`: the CNI plugin binary (see the library for what it does).

/// dlmalloc instead of musl's mallocng: mallocng gives every emptied group back to the kernel at
/// once, so a ptp ADD made 41 mmap and 36 munmap calls, mostly of 4 to 16 KiB, each also costing
/// page faults on the next allocation (strace of a release build); dlmalloc keeps what it got
/// for the process's few milliseconds.
#[global_allocator]
static ALLOCATOR: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;

fn main() -> std::process::ExitCode {
    conf::skel::run(&tether::Tether, "tether", "CNI plugin, a veth pair per container (modes ptp, bridge)")
}
