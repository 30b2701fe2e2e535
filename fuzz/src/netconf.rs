//! Network configuration as each verb decodes it: the dispatcher (environment, stdin, versions,
//! the one answer on stdout) with a plugin that decodes tether's and tether-ipam's configuration
//! exactly as the real verbs do before they touch the kernel or a store, and answers with the
//! decoded `prevResult`.

use conf::skel::{dispatch, Plugin};
use conf::Request;
use conf::{CniError, CniResult, ErrorCode, NetResult};

/// The verbs, each with the environment a runtime gives it.
const VERBS: [&str; 6] = ["ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION"];

/// Decodes, never acts.
struct DecodeOnly;

fn decode(request: &Request) -> CniResult<()> {
    tether::fuzzing::decode_config(request)?;
    tether_ipam::fuzzing::decode_config(request)
}

impl Plugin for DecodeOnly {
    fn add(&self, request: &Request) -> CniResult<NetResult> {
        decode(request)?;
        let result = request
            .config
            .prev_result
            .clone()
            .ok_or_else(|| CniError::new(ErrorCode::InvalidConfig, "no prevResult to answer with"))?;
        // As tether's ADD does before it acts.
        result.encodable_in(request.version()).map(|()| result)
    }
    fn del(&self, request: &Request) -> CniResult<()> {
        decode(request)
    }
    fn check(&self, request: &Request) -> CniResult<()> {
        decode(request)
    }
    fn status(&self, request: &Request) -> CniResult<()> {
        decode(request)
    }
    fn gc(&self, request: &Request) -> CniResult<()> {
        decode(request)
    }
}

/// `data` is stdin; the first byte picks `CNI_ARGS` among a few a runtime sends.
pub fn run(data: &[u8]) {
    crate::quiet_logs();
    let (pick, stdin) = data.split_first().map_or((0, data), |(p, rest)| (*p, rest));
    let args = match pick % 4 {
        0 => "",
        1 => "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_UID=",
        2 => "IgnoreUnknown=1;IP=198.18.0.9,fd7e:7e7e::9;MAC=02:7e:00:00:00:09",
        _ => "IP=not-an-ip",
    };
    for verb in VERBS {
        let per_attachment = !matches!(verb, "STATUS" | "GC");
        let env = |key: &str| -> Option<String> {
            match key {
                "CNI_COMMAND" => Some(verb.to_string()),
                "CNI_CONTAINERID" if per_attachment => Some("c1".to_string()),
                "CNI_NETNS" if per_attachment => Some("/run/netns/fuzz-none".to_string()),
                "CNI_IFNAME" if per_attachment => Some("eth0".to_string()),
                "CNI_ARGS" => Some(args.to_string()),
                "CNI_PATH" => Some("/nonexistent".to_string()),
                _ => None,
            }
        };
        let answer = dispatch(&DecodeOnly, env, &mut &stdin[..]);
        crate::assert_one_document(answer.stdout.as_deref());
    }
}
