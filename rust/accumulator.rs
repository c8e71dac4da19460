//! Sign-agreement accumulator: the GradSign reduction Σ_k |Σ_i sign(g_ik)| streamed over gradient blocks.
//!
//! Memory is one `i32` counter per scored weight, whatever the number of samples. sign(0) = 0 and
//! NaN counts as 0 (the authors reduce with `nansum`).

use rayon::prelude::*;
use std::fmt;

/// Columns per parallel task: large enough to amortise scheduling, small enough to keep counters in L1/L2.
const PAR_CHUNK: usize = 1 << 14;
/// Below this many elements a block is reduced on the calling thread (a rayon hop costs more than it saves).
pub const PAR_THRESHOLD: usize = 1 << 18;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccumulatorError {
    /// `offset + len` runs past the number of weights.
    OutOfRange { offset: usize, len: usize, n_weights: usize },
    /// A 2-D block's buffer is not `rows * cols` long.
    BadShape { rows: usize, cols: usize, len: usize },
    /// A segment boundary list that is not non-decreasing within `[0, n_weights]`.
    BadSegments(String),
    /// A counter would pass `i32::MAX` samples.
    TooManySamples,
}

impl fmt::Display for AccumulatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { offset, len, n_weights } => {
                write!(f, "block of {len} weights at offset {offset} runs past the accumulator's {n_weights} weights")
            }
            Self::BadShape { rows, cols, len } => {
                write!(f, "2-D block of shape ({rows}, {cols}) needs {} values, got {len}", rows * cols)
            }
            Self::BadSegments(msg) => write!(f, "bad segment boundaries: {msg}"),
            Self::TooManySamples => write!(f, "more than 2^31 - 1 samples for one weight"),
        }
    }
}

impl std::error::Error for AccumulatorError {}

/// sign(x) as an integer with sign(0) = sign(NaN) = 0; comparisons with NaN are false, so no branch is needed.
#[inline(always)]
fn sign(x: f32) -> i32 {
    (x > 0.0) as i32 - (x < 0.0) as i32
}

#[inline(always)]
fn add_signs_scalar(counts: &mut [i32], values: &[f32]) {
    for (c, &v) in counts.iter_mut().zip(values) {
        *c += sign(v);
    }
}

/// The same loop compiled for AVX2 (8 lanes), picked at run time where the CPU has it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_signs_avx2(counts: &mut [i32], values: &[f32]) {
    add_signs_scalar(counts, values)
}

/// counts[j] += sign(values[j]) for every j (the slices have equal length).
#[inline]
fn add_signs(counts: &mut [i32], values: &[f32]) {
    debug_assert_eq!(counts.len(), values.len());
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { add_signs_avx2(counts, values) };
        }
    }
    add_signs_scalar(counts, values)
}

/// Integer sign counters for `n_weights` scored weights.
#[derive(Debug, Clone)]
pub struct SignAccumulator {
    counts: Vec<i32>,
    /// Rows applied by all updates so far: an upper bound on any counter's magnitude, to refuse overflow.
    rows_applied: u64,
}

impl SignAccumulator {
    pub fn new(n_weights: usize) -> Self {
        Self { counts: vec![0; n_weights], rows_applied: 0 }
    }

    pub fn n_weights(&self) -> usize {
        self.counts.len()
    }

    pub fn counts(&self) -> &[i32] {
        &self.counts
    }

    fn check_range(&self, offset: usize, len: usize) -> Result<(), AccumulatorError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.counts.len() => Ok(()),
            _ => Err(AccumulatorError::OutOfRange { offset, len, n_weights: self.counts.len() }),
        }
    }

    fn check_headroom(&self, rows: usize) -> Result<(), AccumulatorError> {
        // Conservative (rows of disjoint ranges add up too): it can only trip after ~2^31 rows.
        if self.rows_applied + rows as u64 > i32::MAX as u64 {
            return Err(AccumulatorError::TooManySamples);
        }
        Ok(())
    }

    /// Add the signs of one sample's gradient for weights `offset .. offset + block.len()`.
    pub fn update(
        &mut self,
        offset: usize,
        block: &[f32],
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(), AccumulatorError> {
        self.update_rows(offset, block, 1, block.len(), pool)
    }

    /// Add the signs of a row-major `(rows, cols)` block: `rows` samples' gradients for weights `offset .. offset + cols`.
    pub fn update_rows(
        &mut self,
        offset: usize,
        block: &[f32],
        rows: usize,
        cols: usize,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(), AccumulatorError> {
        if rows.checked_mul(cols) != Some(block.len()) {
            return Err(AccumulatorError::BadShape { rows, cols, len: block.len() });
        }
        self.check_range(offset, cols)?;
        self.check_headroom(rows)?;
        self.rows_applied += rows as u64;
        let counts = &mut self.counts[offset..offset + cols];
        match pool {
            Some(pool) if block.len() >= PAR_THRESHOLD && pool.current_num_threads() > 1 => pool.install(|| {
                // Each task owns a disjoint column range of counters and walks every row over it.
                counts.par_chunks_mut(PAR_CHUNK).enumerate().for_each(|(chunk, counts)| {
                    let start = chunk * PAR_CHUNK;
                    for row in 0..rows {
                        let base = row * cols + start;
                        add_signs(counts, &block[base..base + counts.len()]);
                    }
                })
            }),
            _ => {
                for row in block.chunks_exact(cols.max(1)).take(rows) {
                    add_signs(counts, row);
                }
            }
        }
        Ok(())
    }

    /// The exact GradSign score Σ_k |count_k|.
    pub fn score(&self) -> u64 {
        abs_sum(&self.counts)
    }

    /// Σ|count| over each segment `[bounds[s], bounds[s+1])`; `bounds` is non-decreasing within `[0, n_weights]`.
    pub fn segment_scores(&self, bounds: &[usize]) -> Result<Vec<u64>, AccumulatorError> {
        for w in bounds.windows(2) {
            if w[0] > w[1] {
                return Err(AccumulatorError::BadSegments(format!("{} > {} is decreasing", w[0], w[1])));
            }
        }
        if let Some(&last) = bounds.last() {
            if last > self.counts.len() {
                return Err(AccumulatorError::BadSegments(format!(
                    "bound {last} is past the accumulator's {} weights",
                    self.counts.len()
                )));
            }
        }
        Ok(bounds.windows(2).map(|w| abs_sum(&self.counts[w[0]..w[1]])).collect())
    }

    /// Zero the counters, keeping the allocation.
    pub fn reset(&mut self) {
        self.counts.iter_mut().for_each(|c| *c = 0);
        self.rows_applied = 0;
    }
}

fn abs_sum(counts: &[i32]) -> u64 {
    counts.iter().map(|c| c.unsigned_abs() as u64).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn reference(rows: &[Vec<f32>]) -> u64 {
        let cols = rows[0].len();
        (0..cols)
            .map(|j| {
                let s: i64 = rows
                    .iter()
                    .map(|r| {
                        let v = r[j];
                        if v.is_nan() || v == 0.0 {
                            0
                        } else if v > 0.0 {
                            1
                        } else {
                            -1
                        }
                    })
                    .sum();
                s.unsigned_abs()
            })
            .sum()
    }

    fn random_rows(rng: &mut impl Rng, n: usize, p: usize) -> Vec<Vec<f32>> {
        (0..n)
            .map(|_| {
                (0..p)
                    .map(|_| match rng.gen_range(0..10) {
                        0 => 0.0,
                        1 => f32::NAN,
                        2 => -0.0,
                        3 => f32::INFINITY,
                        4 => f32::NEG_INFINITY,
                        _ => rng.gen_range(-1.0..1.0),
                    })
                    .collect()
            })
            .collect()
    }

    #[test]
    fn matches_reference_1d_and_2d_serial_and_parallel() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for &(n, p) in &[(1, 1), (3, 17), (16, 1000), (5, PAR_THRESHOLD + 123)] {
            let rows = random_rows(&mut rng, n, p);
            let want = reference(&rows);
            let flat: Vec<f32> = rows.concat();
            for pool in [None, Some(&pool)] {
                let mut one = SignAccumulator::new(p);
                for r in &rows {
                    one.update(0, r, pool).unwrap();
                }
                let mut block = SignAccumulator::new(p);
                block.update_rows(0, &flat, n, p, pool).unwrap();
                assert_eq!(one.score(), want);
                assert_eq!(block.score(), want);
                assert_eq!(one.counts(), block.counts());
            }
        }
    }

    #[test]
    fn offsets_segments_and_reset() {
        let mut acc = SignAccumulator::new(5);
        acc.update(1, &[1.0, -2.0], None).unwrap();
        acc.update(3, &[3.0, 0.0], None).unwrap();
        acc.update(1, &[1.0, 2.0], None).unwrap();
        assert_eq!(acc.counts(), &[0, 2, 0, 1, 0]);
        assert_eq!(acc.score(), 3);
        assert_eq!(acc.segment_scores(&[0, 2, 5]).unwrap(), vec![2, 1]);
        acc.reset();
        assert_eq!(acc.score(), 0);
    }

    #[test]
    fn rejects_bad_ranges_and_shapes() {
        let mut acc = SignAccumulator::new(4);
        assert!(matches!(acc.update(3, &[1.0, 1.0], None), Err(AccumulatorError::OutOfRange { .. })));
        assert!(matches!(acc.update(usize::MAX, &[1.0], None), Err(AccumulatorError::OutOfRange { .. })));
        assert!(matches!(acc.update_rows(0, &[1.0; 5], 2, 2, None), Err(AccumulatorError::BadShape { .. })));
        assert!(acc.segment_scores(&[0, 3, 2]).is_err());
        assert!(acc.segment_scores(&[0, 5]).is_err());
        assert_eq!(acc.score(), 0, "a rejected update must not touch the counters");
    }

    #[test]
    fn empty_blocks_are_noops() {
        let mut acc = SignAccumulator::new(0);
        acc.update(0, &[], None).unwrap();
        acc.update_rows(0, &[], 0, 0, None).unwrap();
        assert_eq!(acc.score(), 0);
    }
}
