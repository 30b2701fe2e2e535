//! `resolvConf`: a resolv.conf file read into the result's `dns`, as host-local's `dns.go` does:
//! `nameserver` adds one server, `domain` sets the domain, `search` and `options` add every word;
//! lines starting with `#` or `;` and lines with fewer than two words are ignored.

use crate::error::{IoResultExt, Result};
use conf::Dns;
use std::path::Path;

/// Parse resolv.conf text.
pub fn parse(text: &str) -> Dns {
    let mut dns = Dns::default();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let (Some(key), Some(first)) = (words.first(), words.get(1)) else {
            continue;
        };
        let rest = words[1..].iter().map(|w| w.to_string());
        match *key {
            "nameserver" => dns.nameservers.push(first.to_string()),
            "domain" => dns.domain = Some(first.to_string()),
            "search" => dns.search.extend(rest),
            "options" => dns.options.extend(rest),
            _ => {}
        }
    }
    dns
}

/// Read and parse the file at `path`.
///
/// # Errors
/// Code 5 naming the key and the file when it cannot be read.
pub fn read(path: &Path) -> Result<Dns> {
    let text = std::fs::read_to_string(path).at("read", path).map_err(|e| e.context("ipam.resolvConf"))?;
    Ok(parse(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_like_host_local() {
        let dns = parse(
            "# generated\n; also a comment\nnameserver 198.18.0.53\n  nameserver fd7e:7e7e::53  \nnameserver\n\
             domain example.test\nsearch a.test b.test\nsearch c.test\noptions ndots:5 edns0\nsortlist 198.18.0.0\n",
        );
        assert_eq!(dns.nameservers, ["198.18.0.53", "fd7e:7e7e::53"]);
        assert_eq!(dns.domain.as_deref(), Some("example.test"));
        assert_eq!(dns.search, ["a.test", "b.test", "c.test"]);
        assert_eq!(dns.options, ["ndots:5", "edns0"]);
    }

    #[test]
    fn empty_and_missing() {
        assert!(parse("").is_empty());
        let e = read(Path::new("/nonexistent/tether-ipam/resolv.conf")).unwrap_err();
        assert_eq!(e.code(), 5);
        assert!(e.to_string().contains("/nonexistent/tether-ipam/resolv.conf"));
    }
}
