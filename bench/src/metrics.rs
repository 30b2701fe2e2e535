//! What the scenarios measured, keyed by metric name ("ptp/ADD", "ipamfull/ADD/rss", ...) and side.

use crate::cni::Side;
use std::collections::BTreeMap;

/// One side's value for one metric.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// Milliseconds (latencies, wall times) or megabytes (RSS), one per run.
    Samples(Vec<f64>),
    /// A single number (binary size in MB).
    One(f64),
    /// A correctness check made along the way (e.g. no address handed out twice).
    Check { ok: bool, text: String },
    /// Not measured: the plugin answered an error, or could not run.
    Error(String),
}

#[derive(Debug, Default)]
pub struct Metrics {
    vals: BTreeMap<(String, Side), Val>,
    /// CPU (user + system, children included) per run, in ms, for the timed metrics.
    cpu: BTreeMap<(String, Side), Vec<f64>>,
}

impl Metrics {
    pub fn set(&mut self, key: &str, side: Side, val: Val) {
        self.vals.insert((key.to_string(), side), val);
    }

    pub fn set_cpu(&mut self, key: &str, side: Side, cpu_ms: Vec<f64>) {
        self.cpu.insert((key.to_string(), side), cpu_ms);
    }

    pub fn get(&self, key: &str, side: Side) -> Option<&Val> {
        self.vals.get(&(key.to_string(), side))
    }

    pub fn cpu(&self, key: &str, side: Side) -> Option<&Vec<f64>> {
        self.cpu.get(&(key.to_string(), side))
    }

    /// Every (metric, side) recorded, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &(String, Side)> {
        self.vals.keys()
    }
}

/// Samples collected for one side during a scenario, or why it stopped.
#[derive(Debug, Default, Clone)]
pub struct Series {
    pub ms: Vec<f64>,
    pub cpu_ms: Vec<f64>,
    pub error: Option<String>,
}

impl Series {
    pub fn push(&mut self, elapsed: std::time::Duration, cpu: std::time::Duration) {
        self.ms.push(elapsed.as_secs_f64() * 1e3);
        self.cpu_ms.push(cpu.as_secs_f64() * 1e3);
    }

    /// Record into `m` under `key`: the samples, or the error, or "not run" if there are none.
    pub fn store(self, m: &mut Metrics, key: &str, side: Side) {
        let val = match (self.error, self.ms.is_empty()) {
            (Some(e), _) => Val::Error(e),
            (None, true) => Val::Error("not run".into()),
            (None, false) => Val::Samples(self.ms),
        };
        m.set(key, side, val);
        if !self.cpu_ms.is_empty() {
            m.set_cpu(key, side, self.cpu_ms);
        }
    }
}
