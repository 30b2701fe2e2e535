//! The running kernel's version, for the few behaviours that differ by release and cannot be
//! told apart from an answer.

/// Whether the running kernel is at least `major.minor` (`/proc/sys/kernel/osrelease`; an
/// unreadable release counts as older).
pub fn at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    release_at_least(&release, major, minor)
}

fn release_at_least(release: &str, major: u32, minor: u32) -> bool {
    let mut parts = release.trim().split(['.', '-']).map(|p| p.parse::<u32>().unwrap_or(0));
    (parts.next().unwrap_or(0), parts.next().unwrap_or(0)) >= (major, minor)
}

#[cfg(test)]
mod tests {
    use super::release_at_least;

    #[test]
    fn releases_compare_by_major_then_minor() {
        assert!(release_at_least("6.1.0-27-amd64\n", 6, 1));
        assert!(release_at_least("6.12.1", 6, 1));
        assert!(!release_at_least("5.10.0-30-amd64", 6, 1));
        assert!(!release_at_least("6.0.19", 6, 1));
        assert!(!release_at_least("", 6, 1));
    }
}
