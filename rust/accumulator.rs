//! Sign-agreement accumulator: the GradSign reduction Σ_k |Σ_i sign(g_ik)| streamed over gradient blocks.
//!
//! Memory is one `i32` counter per scored weight, whatever the number of samples. sign(0) = 0 and
//! NaN counts as 0 (the authors reduce with `nansum`). Blocks are float32 or float64, row-major (one row per
//! sample), column-major, or one row repeated (a broadcast view).

use rayon::prelude::*;
use std::fmt;

use crate::alloc::{self, AllocError};

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
    /// The counters (or a block's copy) cannot be allocated.
    Alloc(AllocError),
}

impl fmt::Display for AccumulatorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::OutOfRange { offset, len, n_weights } => {
                write!(f, "block of {len} weights at offset {offset} runs past the accumulator's {n_weights} weights")
            }
            Self::BadShape { rows, cols, len } => match rows.checked_mul(*cols) {
                Some(want) => write!(f, "2-D block of shape ({rows}, {cols}) needs {want} values, got {len}"),
                None => write!(f, "2-D block of shape ({rows}, {cols}) is larger than memory, got {len} values"),
            },
            Self::BadSegments(msg) => write!(f, "bad segment boundaries: {msg}"),
            Self::TooManySamples => write!(f, "block: more than 2^31 - 1 samples for one weight"),
            Self::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for AccumulatorError {}

impl From<AllocError> for AccumulatorError {
    fn from(e: AllocError) -> Self {
        Self::Alloc(e)
    }
}

/// A gradient value type: float32 or float64.
pub trait SignValue: Copy + Send + Sync {
    /// sign(x) as an integer with sign(0) = sign(NaN) = 0; comparisons with NaN are false, so no branch is needed.
    fn sign(self) -> i32;
}

impl SignValue for f32 {
    #[inline(always)]
    fn sign(self) -> i32 {
        (self > 0.0) as i32 - (self < 0.0) as i32
    }
}

impl SignValue for f64 {
    #[inline(always)]
    fn sign(self) -> i32 {
        (self > 0.0) as i32 - (self < 0.0) as i32
    }
}

#[inline(always)]
fn add_signs_scalar<T: SignValue>(counts: &mut [i32], values: &[T]) {
    for (c, &v) in counts.iter_mut().zip(values) {
        *c += v.sign();
    }
}

#[inline(always)]
fn sum_signs_scalar<T: SignValue>(values: &[T]) -> i32 {
    values.iter().map(|v| v.sign()).sum()
}

/// The same loops compiled for AVX2 (8 lanes), picked at run time where the CPU has it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn add_signs_avx2<T: SignValue>(counts: &mut [i32], values: &[T]) {
    add_signs_scalar(counts, values)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn sum_signs_avx2<T: SignValue>(values: &[T]) -> i32 {
    sum_signs_scalar(values)
}

/// counts[j] += sign(values[j]) for every j (the slices have equal length).
#[inline]
fn add_signs<T: SignValue>(counts: &mut [i32], values: &[T]) {
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

/// Σ_j sign(values[j]); the caller bounds `values.len()` by i32::MAX.
#[inline]
fn sum_signs<T: SignValue>(values: &[T]) -> i32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU supports AVX2, checked just above.
            return unsafe { sum_signs_avx2(values) };
        }
    }
    sum_signs_scalar(values)
}

/// Integer sign counters for `n_weights` scored weights.
#[derive(Debug, Clone)]
pub struct SignAccumulator {
    counts: Vec<i32>,
    /// Rows applied by all updates so far: an upper bound on any counter's magnitude, to refuse overflow.
    rows_applied: u64,
}

impl SignAccumulator {
    /// Zeroed counters for `n_weights` weights; panics where they cannot be allocated (see `try_new`).
    pub fn new(n_weights: usize) -> Self {
        Self { counts: vec![0; n_weights], rows_applied: 0 }
    }

    /// Zeroed counters for `n_weights` weights, or an error when the machine cannot hold them.
    pub fn try_new(n_weights: usize) -> Result<Self, AccumulatorError> {
        let counts = alloc::filled(Some(n_weights), 0, || format!("n_weights={n_weights} (the sign counters)"))?;
        Ok(Self { counts, rows_applied: 0 })
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
        if self.rows_applied.saturating_add(rows as u64) > i32::MAX as u64 {
            return Err(AccumulatorError::TooManySamples);
        }
        Ok(())
    }

    /// Whether `rows` samples of weights `offset .. offset + cols` can be added: the checks every update makes
    /// before touching a counter, for callers that apply one block in several calls.
    pub fn check_update(&self, offset: usize, rows: usize, cols: usize) -> Result<(), AccumulatorError> {
        self.check_range(offset, cols)?;
        self.check_headroom(rows)
    }

    /// The counters a `(rows, cols)` block of `len` values adds to, once its shape and range are checked and its rows
    /// counted: the common start of `update_rows` and `update_columns`.
    fn begin_block(
        &mut self,
        offset: usize,
        len: usize,
        rows: usize,
        cols: usize,
    ) -> Result<&mut [i32], AccumulatorError> {
        if rows.checked_mul(cols) != Some(len) {
            return Err(AccumulatorError::BadShape { rows, cols, len });
        }
        self.check_update(offset, rows, cols)?;
        self.rows_applied += rows as u64;
        Ok(&mut self.counts[offset..offset + cols])
    }

    /// Add the signs of one sample's gradient for weights `offset .. offset + block.len()`.
    pub fn update<T: SignValue>(
        &mut self,
        offset: usize,
        block: &[T],
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(), AccumulatorError> {
        self.update_rows(offset, block, 1, block.len(), pool)
    }

    /// Add the signs of a row-major `(rows, cols)` block: `rows` samples' gradients for weights `offset .. offset + cols`.
    pub fn update_rows<T: SignValue>(
        &mut self,
        offset: usize,
        block: &[T],
        rows: usize,
        cols: usize,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(), AccumulatorError> {
        let counts = self.begin_block(offset, block.len(), rows, cols)?;
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

    /// Add the signs of a column-major `(rows, cols)` block (numpy's Fortran order): column j, the `rows`
    /// samples of weight `offset + j`, is `block[j * rows .. (j + 1) * rows]`.
    pub fn update_columns<T: SignValue>(
        &mut self,
        offset: usize,
        block: &[T],
        rows: usize,
        cols: usize,
        pool: Option<&rayon::ThreadPool>,
    ) -> Result<(), AccumulatorError> {
        let counts = self.begin_block(offset, block.len(), rows, cols)?;
        // |Σ signs of a column| <= rows <= i32::MAX (check_headroom), and so is the counter it is added to.
        let add_columns = |start: usize, counts: &mut [i32]| {
            for (j, c) in counts.iter_mut().enumerate() {
                let column = (start + j) * rows;
                *c += sum_signs(&block[column..column + rows]);
            }
        };
        match pool {
            Some(pool) if block.len() >= PAR_THRESHOLD && pool.current_num_threads() > 1 => pool.install(|| {
                let chunk = (PAR_THRESHOLD / rows.max(1)).max(1);
                counts.par_chunks_mut(chunk).enumerate().for_each(|(c, counts)| add_columns(c * chunk, counts))
            }),
            _ => add_columns(0, counts),
        }
        Ok(())
    }

    /// Add the signs of one row `times` times: a `(times, row.len())` block whose rows are all `row` (a numpy
    /// view broadcast along the samples), in O(row.len()).
    pub fn update_repeated<T: SignValue>(
        &mut self,
        offset: usize,
        row: &[T],
        times: usize,
    ) -> Result<(), AccumulatorError> {
        self.check_update(offset, times, row.len())?;
        self.rows_applied += times as u64;
        // times <= i32::MAX - |count| (check_headroom): the product and the sum fit in i32.
        let times = times as i32;
        for (c, &v) in self.counts[offset..offset + row.len()].iter_mut().zip(row) {
            *c += times * v.sign();
        }
        Ok(())
    }

    /// Add the signs of a `(values.len(), cols)` block whose row i is `values[i]` repeated `cols` times (a numpy
    /// view broadcast along the weights), in O(rows + cols).
    pub fn update_uniform_rows<T: SignValue>(
        &mut self,
        offset: usize,
        values: &[T],
        cols: usize,
    ) -> Result<(), AccumulatorError> {
        self.check_update(offset, values.len(), cols)?;
        self.rows_applied += values.len() as u64;
        // |Σ signs| <= rows <= i32::MAX - |count| (check_headroom).
        let total = sum_signs(values);
        self.counts[offset..offset + cols].iter_mut().for_each(|c| *c += total);
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
    fn column_major_repeated_and_float64_blocks_match_row_major() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let pool = rayon::ThreadPoolBuilder::new().num_threads(3).build().unwrap();
        for &(n, p) in &[(1, 1), (4, 9), (3, PAR_THRESHOLD / 2 + 5), (700, 1000)] {
            let rows = random_rows(&mut rng, n, p);
            let want = reference(&rows);
            let column_major: Vec<f32> = (0..p).flat_map(|j| rows.iter().map(move |r| r[j])).collect();
            let wide: Vec<f64> = rows.concat().iter().map(|&v| v as f64).collect();
            for pool in [None, Some(&pool)] {
                let mut by_columns = SignAccumulator::try_new(p).unwrap();
                by_columns.update_columns(0, &column_major, n, p, pool).unwrap();
                let mut by_rows = SignAccumulator::new(p);
                by_rows.update_rows(0, &wide, n, p, pool).unwrap();
                assert_eq!(by_columns.score(), want);
                assert_eq!(by_rows.counts(), by_columns.counts());
            }
            let column: Vec<f32> = rows.iter().map(|r| r[0]).collect();
            let mut uniform = SignAccumulator::new(p);
            uniform.update_uniform_rows(0, &column, p).unwrap();
            let mut written_out = SignAccumulator::new(p);
            for &v in &column {
                written_out.update(0, &vec![v; p], None).unwrap();
            }
            assert_eq!(uniform.counts(), written_out.counts());
            let mut repeated = SignAccumulator::new(p);
            repeated.update_repeated(0, &rows[0], n).unwrap();
            let mut one_by_one = SignAccumulator::new(p);
            for _ in 0..n {
                one_by_one.update(0, &rows[0], None).unwrap();
            }
            assert_eq!(repeated.counts(), one_by_one.counts());
        }
        // float64 values below float32's range keep their sign.
        let mut tiny = SignAccumulator::new(2);
        tiny.update(0, &[1e-300f64, -1e-320], None).unwrap();
        assert_eq!(tiny.counts(), &[1, -1]);
    }

    #[test]
    fn absurd_sizes_and_sample_counts_are_errors() {
        assert!(matches!(SignAccumulator::try_new(1 << 60), Err(AccumulatorError::Alloc(_))));
        let mut acc = SignAccumulator::new(3);
        assert!(matches!(acc.update_repeated(0, &[1.0f32; 3], 1 << 31), Err(AccumulatorError::TooManySamples)));
        acc.update_repeated(0, &[1.0f32, -1.0, 0.0], i32::MAX as usize).unwrap();
        assert_eq!(acc.counts(), &[i32::MAX, -i32::MAX, 0]);
        assert!(matches!(acc.update(0, &[1.0f32], None), Err(AccumulatorError::TooManySamples)));
        assert!(matches!(
            acc.update_columns(0, &[1.0f32; 4], usize::MAX, 2, None),
            Err(AccumulatorError::BadShape { .. })
        ));
    }

    #[test]
    fn empty_blocks_are_noops() {
        let mut acc = SignAccumulator::new(0);
        acc.update::<f32>(0, &[], None).unwrap();
        acc.update_rows::<f64>(0, &[], 0, 0, None).unwrap();
        acc.update_columns::<f32>(0, &[], 5, 0, None).unwrap();
        acc.update_repeated::<f32>(0, &[], 5).unwrap();
        acc.update_uniform_rows::<f32>(0, &[1.0, 2.0], 0).unwrap();
        assert_eq!(acc.score(), 0);
    }
}
