//! Order statistics over samples (milliseconds or megabytes).

/// Summary of a sample set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    pub n: usize,
    pub median: f64,
    pub p95: f64,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
}

/// Median (mean of the two middle values for an even count), p95 by nearest rank, min, max, mean.
/// `None` for an empty set.
pub fn summarize(samples: &[f64]) -> Option<Summary> {
    if samples.is_empty() {
        return None;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = if n % 2 == 1 { s[n / 2] } else { (s[n / 2 - 1] + s[n / 2]) / 2.0 };
    Some(Summary {
        n,
        median,
        p95: nearest_rank(&s, 0.95),
        min: s[0],
        max: s[n - 1],
        mean: s.iter().sum::<f64>() / n as f64,
    })
}

/// The smallest sample such that at least `p` of all samples are <= it (`sorted` must be sorted, non-empty).
fn nearest_rank(sorted: &[f64], p: f64) -> f64 {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// `n` with a comma every three digits.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_odd_even_and_p95() {
        let s = summarize(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max, s.n), (2.0, 1.0, 3.0, 3));
        assert_eq!(summarize(&[4.0, 1.0, 3.0, 2.0]).unwrap().median, 2.5);
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = summarize(&hundred).unwrap();
        assert_eq!((s.p95, s.median, s.mean), (95.0, 50.5, 50.5));
        assert_eq!(summarize(&[7.0]).unwrap().p95, 7.0);
        assert!(summarize(&[]).is_none());
    }
}
