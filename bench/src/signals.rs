//! Ctrl-C / SIGTERM: stop between two invocations, kill what is running, and clean up.
//!
//! SIGINT, SIGTERM and SIGHUP are blocked in the main thread before any other thread exists, so
//! every thread inherits the mask; one thread waits for them with `sigwait` and raises [`stopped`].
//! Spawned plugins get an empty mask back (std resets it in the child).

use nix::sys::signal::{SigSet, Signal};
use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

/// True once the user asked to stop (the run then cleans up and exits 130).
pub fn stopped() -> bool {
    STOP.load(Ordering::SeqCst)
}

/// Block the stop signals in this (the main) thread and start the thread that waits for them.
/// Call first thing in `main`, before any other thread is spawned.
pub fn install() -> Result<(), String> {
    let mut set = SigSet::empty();
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        set.add(sig);
    }
    set.thread_block().map_err(|e| format!("blocking SIGINT/SIGTERM/SIGHUP: {e}"))?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if !STOP.swap(true, Ordering::SeqCst) {
                    eprintln!("tether-bench: {sig} received: stopping, killing running plugins, cleaning up");
                }
            }
        })
        .map_err(|e| format!("starting the signal thread: {e}"))?;
    Ok(())
}
