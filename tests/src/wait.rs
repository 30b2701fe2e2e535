//! Patience for work the kernel finishes asynchronously (a deleted namespace's veth, a link's
//! carrier). Not a timing assertion: the condition is what is tested.

use std::time::{Duration, Instant};

/// Poll `cond` every 50 ms for up to 10 s; true as soon as it holds.
pub fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if cond() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
