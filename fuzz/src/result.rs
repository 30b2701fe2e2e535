//! Results in every version: decoding (as a `prevResult` or a delegate's answer would be) and
//! conversion to every other version.

use conf::{NetResult, Version};

/// Every version tether speaks.
const VERSIONS: [&str; 7] = ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"];

/// Decode `data` as a result in each version, then encode it in each version and decode that again.
pub fn run(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    for from in VERSIONS {
        let Ok(v) = Version::parse(from) else { continue };
        let Ok(result) = NetResult::from_json(&value, v) else { continue };
        for to in VERSIONS {
            let Ok(t) = Version::parse(to) else { continue };
            if let Ok(doc) = result.to_json(t) {
                let _ = NetResult::from_json(&doc, t);
            }
        }
    }
}
