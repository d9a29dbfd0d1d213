//! Leak probability: how likely a group of outstanding allocations (a stack, a
//! function, a module) is a leak, from *when* its allocations were made within the
//! tracking window. The method is described in docs/leak-probability.md.
//!
//! In short: a leak keeps adding allocations that are never freed, so the times of
//! the outstanding ones spread evenly over the whole window. A start-up cache has
//! them all at the beginning; work in flight at dump time has them all at the end.
//! The score is 100 × (1 − D), where D is the Kolmogorov–Smirnov distance between the
//! allocation times and a uniform spread over the window, measured on
//! [`TIME_BINS`] equal bins; fewer than [`MIN_ALLOCATIONS`] allocations are too few to
//! tell and score at most [`FEW_ALLOCATIONS_CAP`].

/// Bins of the time histograms (each 5% of the window).
pub const TIME_BINS: usize = 20;
/// Below this many allocations the evidence is too thin for a high score.
pub const MIN_ALLOCATIONS: u64 = 10;
/// The highest score of a group with fewer than [`MIN_ALLOCATIONS`] allocations.
pub const FEW_ALLOCATIONS_CAP: u8 = 50;

/// Allocation counts and bytes by time of allocation, in [`TIME_BINS`] bins over the
/// tracking window.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeHistogram {
    pub allocations: [u64; TIME_BINS],
    pub bytes: [u64; TIME_BINS],
}

/// The bin of an allocation made `time` ticks after tracking began, in a window of
/// `window` ticks. Times past the snapshot (clock skew) fall in the last bin.
pub fn bin_of(time: u64, window: u64) -> usize {
    if window == 0 {
        return TIME_BINS - 1;
    }
    let bin = (u128::from(time) * TIME_BINS as u128 / u128::from(window)) as usize;
    bin.min(TIME_BINS - 1)
}

/// [`bin_of`] for one window, without a division per call: the first time of each
/// bin is computed once; a time's bin is estimated with a multiplication by the
/// window's reciprocal (exact or one too low) and corrected with one comparison.
#[derive(Clone, Copy, Debug)]
pub struct Bins {
    /// `starts[k]` is the first time of bin `k + 1`: ceil((k + 1) × window / TIME_BINS).
    starts: [u64; TIME_BINS - 1],
    /// floor(2^64 × TIME_BINS / window), when it fits (window > TIME_BINS).
    reciprocal: Option<u64>,
}

impl Bins {
    pub fn new(window: u64) -> Self {
        let mut starts = [0u64; TIME_BINS - 1];
        if window > 0 {
            for (k, s) in starts.iter_mut().enumerate() {
                // t is in bin ≥ k+1 iff t × TIME_BINS ≥ (k+1) × window; at most window.
                let n = (k as u128 + 1) * u128::from(window);
                *s = n.div_ceil(TIME_BINS as u128) as u64;
            }
        }
        let reciprocal = (window > TIME_BINS as u64)
            .then(|| ((TIME_BINS as u128) << 64) / u128::from(window))
            .and_then(|r| u64::try_from(r).ok());
        Bins { starts, reciprocal }
    }

    /// The same bin as `bin_of(time, window)`.
    #[inline]
    pub fn of(&self, time: u64) -> usize {
        match self.reciprocal {
            Some(r) => {
                // With r = floor(2^64 × B / W): 20t/W − 1 < t × r / 2^64 ≤ 20t/W, so the
                // guess is floor(B × t / W) or one less; the bin start decides.
                let guess = ((u128::from(time) * u128::from(r)) >> 64) as usize;
                match self.starts.get(guess) {
                    Some(&next) => guess + usize::from(time >= next),
                    None => TIME_BINS - 1,
                }
            }
            // Windows of at most TIME_BINS ticks (and 0): count the bin starts.
            None => self.starts.iter().map(|&s| usize::from(time >= s)).sum(),
        }
    }
}

impl TimeHistogram {
    pub fn add(&mut self, bin: usize, bytes: u64) {
        self.allocations[bin] += 1;
        self.bytes[bin] += bytes;
    }

    pub fn merge(&mut self, other: &TimeHistogram) {
        for i in 0..TIME_BINS {
            self.allocations[i] += other.allocations[i];
            self.bytes[i] += other.bytes[i];
        }
    }

    pub fn count(&self) -> u64 {
        self.allocations.iter().sum()
    }

    /// The leak probability, 0 to 100; `None` when there is nothing to judge (no
    /// allocations, or a tracking window of zero length).
    pub fn leak_probability(&self, window: u64) -> Option<u8> {
        let n = self.count();
        if n == 0 || window == 0 {
            return None;
        }
        let mut cumulative = 0u64;
        let mut distance = 0f64;
        for (k, &c) in self.allocations.iter().enumerate() {
            cumulative += c;
            let observed = cumulative as f64 / n as f64;
            let uniform = (k + 1) as f64 / TIME_BINS as f64;
            distance = distance.max((observed - uniform).abs());
        }
        let score = (100.0 * (1.0 - distance)).round().clamp(0.0, 100.0) as u8;
        Some(if n < MIN_ALLOCATIONS {
            score.min(FEW_ALLOCATIONS_CAP)
        } else {
            score
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: u64 = 3600 * 10_000_000;

    fn histogram(times: impl IntoIterator<Item = u64>) -> TimeHistogram {
        let mut h = TimeHistogram::default();
        for t in times {
            h.add(bin_of(t, W), 1);
        }
        h
    }

    #[test]
    fn a_steady_leak_scores_high() {
        let h = histogram((0..200).map(|i| i * (W / 200)));
        assert!(h.leak_probability(W).unwrap() >= 95);
    }

    #[test]
    fn a_start_up_cache_and_work_in_flight_score_low() {
        let cache = histogram((0..200).map(|i| i * (W / 20 / 200)));
        assert!(cache.leak_probability(W).unwrap() <= 5);
        let in_flight = histogram((0..200).map(|i| W - W / 20 + i * (W / 20 / 200)));
        assert!(in_flight.leak_probability(W).unwrap() <= 5);
    }

    #[test]
    fn few_allocations_never_score_above_50() {
        let h = histogram((0..9).map(|i| i * (W / 9)));
        assert_eq!(h.leak_probability(W), Some(50));
    }

    #[test]
    fn nothing_to_judge() {
        assert_eq!(TimeHistogram::default().leak_probability(W), None);
        assert_eq!(histogram([5]).leak_probability(0), None);
    }

    #[test]
    fn bins_match_bin_of() {
        let windows = [
            0,
            1,
            7,
            19,
            20,
            21,
            22,
            39,
            1000,
            7919,
            W,
            W + 13,
            1 << 63,
            u64::MAX / 3,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &w in &windows {
            let bins = Bins::new(w);
            let mut times = vec![0, 1, 2, u64::MAX, u64::MAX - 1];
            for k in 0..=TIME_BINS as u128 + 1 {
                let edge = (k * u128::from(w) / TIME_BINS as u128) as u64;
                for d in [0u64, 1, 2] {
                    times.push(edge.saturating_sub(d));
                    times.push(edge.saturating_add(d));
                }
            }
            let mut x = w ^ 0x9e37_79b9_7f4a_7c15;
            for _ in 0..2000 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                times.push(x);
                times.push(if w > 0 { x % w } else { x });
                times.push(if w > 0 { x % (w.saturating_mul(2)) } else { x });
            }
            for t in times {
                assert_eq!(bins.of(t), bin_of(t, w), "time {t}, window {w}");
            }
        }
    }

    #[test]
    fn bins_are_clamped() {
        assert_eq!(bin_of(0, W), 0);
        assert_eq!(bin_of(W - 1, W), TIME_BINS - 1);
        assert_eq!(bin_of(W * 5, W), TIME_BINS - 1);
        assert_eq!(bin_of(u64::MAX, W), TIME_BINS - 1);
        assert_eq!(bin_of(7, 0), TIME_BINS - 1);
    }
}
