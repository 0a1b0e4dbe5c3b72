//! The simulator's only source of randomness: a seeded ChaCha stream and the few distributions
//! the model needs, written out by hand so that a given seed yields the same numbers whatever
//! version of a distributions crate is around.

use std::f64::consts::TAU;

use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{Dist, MAX_DURATION_S};

/// Independent ChaCha streams for the independent consumers of one seed.
pub(crate) const STREAM_SCENARIO: u64 = 1;
pub(crate) const STREAM_SIMULATION: u64 = 2;

pub(crate) struct Random(ChaCha8Rng);

impl Random {
    pub(crate) fn new(seed: u64, stream: u64) -> Self {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_stream(stream);
        Random(rng)
    }

    /// Uniform in [0, 1), with the 53 bits an `f64` can hold.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in (0, 1]: safe to take the logarithm of.
    fn open_unit(&mut self) -> f64 {
        1.0 - self.unit()
    }

    /// Uniform in `0..n` (0 when `n` is 0). Multiply-shift: the bias is below 2⁻³² for any
    /// `n` this crate uses.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.0.next_u64()) * n as u128) >> 64) as usize
    }

    pub(crate) fn chance(&mut self, probability: f64) -> bool {
        self.unit() < probability
    }

    /// Uniform in [lo, hi).
    pub(crate) fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }

    /// An index drawn with the given (non-negative) weights; 0 when they are all zero.
    pub(crate) fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        if total <= 0.0 {
            return 0;
        }
        let mut pick = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 {
                if pick < *w {
                    return i;
                }
                pick -= w;
            }
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }

    /// Exponential by inversion of its distribution function.
    pub(crate) fn exponential(&mut self, mean: f64) -> f64 {
        -mean * self.open_unit().ln()
    }

    /// A standard normal by Box–Muller (one of the pair; the other is not kept, so that the
    /// stream position never depends on what was drawn before).
    pub(crate) fn standard_normal(&mut self) -> f64 {
        let radius = (-2.0 * self.open_unit().ln()).sqrt();
        radius * (TAU * self.unit()).cos()
    }

    /// A duration in seconds from `dist`, within 0..=MAX_DURATION_S whatever the parameters.
    pub(crate) fn sample(&mut self, dist: &Dist) -> f64 {
        let value = match *dist {
            Dist::Fixed(v) => v,
            Dist::Exponential { mean } if mean > 0.0 => self.exponential(mean),
            Dist::Exponential { .. } => 0.0,
            Dist::LogNormal { mean, sd } if mean > 0.0 && sd > 0.0 => {
                // Parameters of the underlying normal that give this mean and deviation.
                let sigma_sq = (1.0 + (sd / mean).powi(2)).ln();
                let mu = mean.ln() - sigma_sq / 2.0;
                (mu + sigma_sq.sqrt() * self.standard_normal()).exp()
            }
            Dist::LogNormal { mean, .. } => mean,
        };
        if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, MAX_DURATION_S)
        }
    }
}
