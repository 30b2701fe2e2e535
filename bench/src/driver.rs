//! A thread that enters its namespaces once and then runs the jobs it is sent, in order.
//!
//! Namespaces belong to a thread (`setns`/`unshare` change the calling thread only), and a child
//! starts in the namespaces of the thread that spawned it: a plugin spawned by a driver inside a
//! node namespace runs in that node namespace, with no `ip netns exec` (whose own cost grows with the
//! number of namespaces and mounts) between the clock and the plugin.

use std::sync::mpsc;
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

pub struct Driver {
    name: String,
    jobs: Option<mpsc::Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

impl Driver {
    /// Start the thread; it runs `enter` first (moving itself into its namespaces) and never goes back.
    pub fn start(name: &str, enter: impl FnOnce() -> Result<(), String> + Send + 'static) -> Result<Driver, String> {
        let (jobs, inbox) = mpsc::channel::<Job>();
        let (ready_tx, ready_rx) = mpsc::channel::<Result<(), String>>();
        let label = name.to_string();
        let thread = std::thread::Builder::new()
            .name(name.chars().take(15).collect())
            .spawn(move || {
                let entered = enter().map_err(|e| format!("{label}: {e}"));
                let ok = entered.is_ok();
                let _ = ready_tx.send(entered);
                if ok {
                    for job in inbox {
                        job();
                    }
                }
            })
            .map_err(|e| format!("starting the thread {name}: {e}"))?;
        let driver = Driver { name: name.to_string(), jobs: Some(jobs), thread: Some(thread) };
        ready_rx.recv().map_err(|_| format!("the thread {name} died"))??;
        Ok(driver)
    }

    /// Run `job` on the thread and wait for its value.
    pub fn call<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> Result<R, String> {
        let (tx, rx) = mpsc::channel();
        let sent = self.jobs.as_ref().is_some_and(|jobs| {
            jobs.send(Box::new(move || {
                let _ = tx.send(job());
            }))
            .is_ok()
        });
        if !sent {
            return Err(format!("the thread {} is gone", self.name));
        }
        rx.recv().map_err(|_| format!("the thread {} died during a job", self.name))
    }

    /// Start `job` on the thread without waiting; the receiver yields its value.
    pub fn post<R: Send + 'static>(&self, job: impl FnOnce() -> R + Send + 'static) -> mpsc::Receiver<R> {
        let (tx, rx) = mpsc::channel();
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Box::new(move || {
                let _ = tx.send(job());
            }));
        }
        rx
    }
}

impl Drop for Driver {
    /// The thread leaves its namespaces by ending: nothing it entered is held after the drop.
    fn drop(&mut self) {
        drop(self.jobs.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_run_on_the_entered_thread_in_order() {
        let d = Driver::start("tb-driver-test", || Ok(())).unwrap();
        let id = d.call(|| std::thread::current().id()).unwrap();
        assert_ne!(id, std::thread::current().id());
        let later = d.post(|| 2);
        assert_eq!(d.call(|| 1).unwrap(), 1);
        assert_eq!(later.recv().unwrap(), 2);
        assert!(Driver::start("tb-driver-fail", || Err("no".into())).is_err());
    }
}
