//! Rank correlations of many score columns against one target, with percentile bootstrap intervals, in parallel.
//!
//! Resample b draws n rows with replacement from a generator seeded by (seed, b): the same rows for every
//! column, so intervals of different columns are comparable, and the result does not depend on how resamples
//! are spread over threads. Pairs with a NaN are left out (omit).
//!
//! A resample only changes how often each row counts (its weight), so each column is put in Knight order
//! once (rows by score rank, then truth rank) and every (resample, column) is one walk over that order:
//! weighted tie groups give the average ranks and tied pairs, a weighted Fenwick tree the discordant pairs.
//! The sums are exact integers, equal to those of the resample written out. The work runs on the current
//! rayon pool: callers install a local one.

use std::str::FromStr;

use rayon::prelude::*;

use crate::alloc::{self, AllocError};
use crate::rank::{
    check_len, check_work, spearman_from_sums, Fenwick, PairCounts, RankError, RankedVariable, TauVariant,
};

/// A rank correlation `correlate` can compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Spearman,
    /// Kendall's tau-b.
    Kendall,
    /// Kendall's tau-c.
    KendallC,
}

impl FromStr for Method {
    type Err = RankError;

    fn from_str(s: &str) -> Result<Self, RankError> {
        match s {
            "spearman" => Ok(Self::Spearman),
            "kendall" => Ok(Self::Kendall),
            "kendall_c" => Ok(Self::KendallC),
            _ => Err(RankError::UnknownMethod(s.to_string())),
        }
    }
}

#[derive(Debug, Clone)]
pub struct CorrelateOptions {
    pub methods: Vec<Method>,
    /// Bootstrap resamples; 0 gives NaN intervals.
    pub bootstrap: usize,
    pub seed: u64,
    /// Coverage of the two-sided percentile interval, in (0, 1).
    pub confidence: f64,
}

/// One score column against the target: per method, the estimate and its bootstrap interval.
#[derive(Debug, Clone, PartialEq)]
pub struct ColumnCorrelation {
    /// Pairs with neither value NaN.
    pub n: usize,
    pub estimate: Vec<f64>,
    pub low: Vec<f64>,
    pub high: Vec<f64>,
}

/// SplitMix64 (Steele, Lea & Flood 2014): turns a seed into well-mixed generator states.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256** (Blackman & Vigna 2018): one independent stream per resample.
pub struct Xoshiro256 {
    s: [u64; 4],
}

impl Xoshiro256 {
    /// The generator of stream `stream` (a resample number) under `seed`.
    pub fn for_stream(seed: u64, stream: u64) -> Self {
        let mut mix = SplitMix64(SplitMix64(seed).next_u64() ^ stream);
        Self { s: [mix.next_u64(), mix.next_u64(), mix.next_u64(), mix.next_u64()] }
    }

    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in 0..n by a 64x64 -> 128-bit multiply (bias <= n / 2^64, far below anything measurable).
    pub fn below(&mut self, n: u32) -> u32 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u32
    }
}

/// The `n` rows of bootstrap resample `b` under `seed`, drawn with replacement.
pub fn resample_rows(n: usize, seed: u64, b: u64) -> Vec<u32> {
    let mut rng = Xoshiro256::for_stream(seed, b);
    (0..n).map(|_| rng.below(n as u32)).collect()
}

/// The rows of every resample `0..bootstrap` under `seed`, row-major `(bootstrap, n)`, or an error when the
/// machine cannot hold them.
pub fn bootstrap_rows(n: usize, bootstrap: usize, seed: u64) -> Result<Vec<u32>, RankError> {
    check_len(n)?;
    let mut rows = alloc::with_capacity(bootstrap.checked_mul(n), || {
        format!("bootstrap={bootstrap} x n={n} (the ({bootstrap}, {n}) table of resampled rows)")
    })?;
    if n > 0 {
        for b in 0..bootstrap as u64 {
            let mut rng = Xoshiro256::for_stream(seed, b);
            rows.extend((0..n).map(|_| rng.below(n as u32)));
        }
    }
    Ok(rows)
}

/// How often each of the `weights.len()` rows is drawn in bootstrap resample `b` under `seed` (the rows of
/// `resample_rows`).
fn resample_weights_into(weights: &mut [u32], seed: u64, b: u64) {
    let n = weights.len();
    let mut rng = Xoshiro256::for_stream(seed, b);
    weights.fill(0);
    for _ in 0..n {
        weights[rng.below(n as u32) as usize] += 1;
    }
}

#[cfg(test)]
fn resample_weights(n: usize, seed: u64, b: u64) -> Vec<u32> {
    let mut weights = vec![0u32; n];
    resample_weights_into(&mut weights, seed, b);
    weights
}

/// Rank of a NaN row.
const MISSING: u32 = u32::MAX;

/// A table column's dense ranks over its non-NaN rows (`MISSING` for NaN).
struct RankedColumn {
    ranks: Vec<u32>,
    n_ranks: usize,
}

impl RankedColumn {
    fn new(values: &[f64]) -> Result<Self, RankError> {
        let known: Vec<f64> = values.iter().copied().filter(|v| !v.is_nan()).collect();
        let ranked = RankedVariable::from_values(&known)?;
        let n_ranks = ranked.n_ranks();
        let mut known_ranks = ranked.ranks.into_iter();
        let ranks =
            values.iter().map(|v| if v.is_nan() { MISSING } else { known_ranks.next().unwrap_or(MISSING) }).collect();
        Ok(Self { ranks, n_ranks })
    }
}

/// The rows where a score column and the truth are both known, in Knight order: by score rank, then truth rank.
struct KnightOrder {
    rows: Vec<u32>,
    score_ranks: Vec<u32>,
    truth_ranks: Vec<u32>,
    /// Every row where the truth is known is here, so a resample's truth side can be shared.
    complete: bool,
}

impl KnightOrder {
    fn new(column: &[f64], truth: &RankedColumn) -> Result<Self, RankError> {
        let score = RankedColumn::new(column)?;
        let mut order: Vec<(u32, u32, u32)> = (0..column.len() as u32)
            .filter(|&r| score.ranks[r as usize] != MISSING && truth.ranks[r as usize] != MISSING)
            .map(|r| (score.ranks[r as usize], truth.ranks[r as usize], r))
            .collect();
        order.sort_unstable();
        let complete = order.len() == truth.ranks.iter().filter(|&&r| r != MISSING).count();
        Ok(Self {
            rows: order.iter().map(|o| o.2).collect(),
            score_ranks: order.iter().map(|o| o.0).collect(),
            truth_ranks: order.iter().map(|o| o.1).collect(),
            complete,
        })
    }
}

/// What both statistics need from the truth under one weighting of the rows.
struct TruthSide {
    /// Σ weights: the number of pairs.
    total: u64,
    tied_pairs: u64,
    distinct: u64,
    /// Per truth rank, twice its centred average rank (an exact integer).
    centred_x2: Vec<i64>,
    sum_squares_x2: i128,
}

impl TruthSide {
    /// From (truth rank, weight) of each row.
    fn new(rows: impl Iterator<Item = (u32, u64)>, n_ranks: usize) -> Self {
        let mut weight = vec![0u64; n_ranks];
        rows.for_each(|(rank, w)| weight[rank as usize] += w);
        let total: u64 = weight.iter().sum();
        let mut start = 0u64;
        let centred_x2: Vec<i64> = weight
            .iter()
            .map(|&w| {
                let centred = 2 * start as i64 + w as i64 - total as i64;
                start += w;
                centred
            })
            .collect();
        Self {
            total,
            tied_pairs: weight.iter().map(|&w| w * w.saturating_sub(1) / 2).sum(),
            distinct: weight.iter().filter(|&&w| w > 0).count() as u64,
            sum_squares_x2: weight.iter().zip(&centred_x2).map(|(&w, &c)| w as i128 * c as i128 * c as i128).sum(),
            centred_x2,
        }
    }

    fn of_column(order: &KnightOrder, weights: &[u32], n_ranks: usize) -> Self {
        Self::new(order.rows.iter().zip(&order.truth_ranks).map(|(&r, &t)| (t, weights[r as usize] as u64)), n_ranks)
    }
}

/// Sums over one score tie group (rows with equal score) as the Knight-order walk closes it.
#[derive(Default)]
struct WalkSums {
    /// Weight of the rows before the open group (its average rank's start).
    before: u64,
    group_weight: u64,
    /// Σ weight * truth's centred rank over the open group: |.| <= n^2 < 2^62 (`check_len`), so i64.
    group_truth: i64,
    joint_weight: u64,
    sxy: i128,
    sxx: i128,
    score_ties: u64,
    joint_ties: u64,
    score_distinct: u64,
}

impl WalkSums {
    fn close_joint(&mut self) {
        self.joint_ties += self.joint_weight * self.joint_weight.saturating_sub(1) / 2;
        self.joint_weight = 0;
    }

    fn close_group(&mut self, total: u64) {
        self.close_joint();
        let w = self.group_weight;
        if w == 0 {
            return;
        }
        // |centred| <= n < 2^31: the products below are single widening multiplies.
        let centred = 2 * self.before as i64 + w as i64 - total as i64;
        self.sxy += centred as i128 * self.group_truth as i128;
        self.sxx += w as i128 * (centred * centred) as i128;
        self.score_ties += w * (w - 1) / 2;
        self.score_distinct += 1;
        self.before += w;
        (self.group_weight, self.group_truth) = (0, 0);
    }
}

/// Every method for one column under one weighting of the rows: one walk in Knight order. `drawn` is scratch.
fn column_statistics(
    order: &KnightOrder,
    weights: &[u32],
    truth: &TruthSide,
    methods: &[Method],
    tree: &mut Fenwick,
    drawn: &mut Vec<u64>,
) -> Vec<f64> {
    let counts_pairs = methods.iter().any(|&m| m != Method::Spearman);
    // (Knight position, weight) of the rows drawn at least once, gathered without a branch: whether a row was
    // drawn is a coin flip (p = 1 - 1/e), which a branch would mispredict a third of the time.
    drawn.resize(order.rows.len(), 0);
    let mut kept = 0;
    for (j, &row) in order.rows.iter().enumerate() {
        let w = weights[row as usize];
        drawn[kept] = (j as u64) << 32 | w as u64;
        kept += (w != 0) as usize;
    }
    let mut sums = WalkSums::default();
    let (mut discordant, mut seen) = (0u64, 0u32);
    let mut open: Option<(u32, u32)> = None;
    tree.clear();
    for &item in &drawn[..kept] {
        let (j, w) = ((item >> 32) as usize, item as u32);
        let (score, rank) = (order.score_ranks[j], order.truth_ranks[j]);
        match open {
            Some((s, t)) if s == score && t != rank => sums.close_joint(),
            Some((s, _)) if s != score => sums.close_group(truth.total),
            _ => {}
        }
        open = Some((score, rank));
        sums.group_weight += w as u64;
        sums.joint_weight += w as u64;
        sums.group_truth += w as i64 * truth.centred_x2[rank as usize];
        if counts_pairs {
            // Earlier rows have a smaller score, or an equal score and a truth rank no larger: those above
            // `rank` are the discordant ones.
            discordant += w as u64 * (seen - tree.prefix(rank)) as u64;
            tree.add(rank, w);
            seen += w;
        }
    }
    sums.close_group(truth.total);
    let pairs = PairCounts {
        n: truth.total,
        x_ties: sums.score_ties,
        y_ties: truth.tied_pairs,
        joint_ties: sums.joint_ties,
        discordant,
        x_distinct: sums.score_distinct,
        y_distinct: truth.distinct,
    };
    methods
        .iter()
        .map(|m| match m {
            Method::Spearman => spearman_from_sums(truth.total, sums.sxy, sums.sxx, truth.sum_squares_x2),
            Method::Kendall => pairs.tau(TauVariant::B),
            Method::KendallC => pairs.tau(TauVariant::C),
        })
        .collect()
}

/// Per-thread scratch of the resample walk.
struct Scratch {
    tree: Fenwick,
    drawn: Vec<u64>,
    /// How often each row is drawn in the current resample.
    weights: Vec<u32>,
}

impl Scratch {
    #[cfg(test)]
    fn new(n_truth_ranks: usize) -> Self {
        Self { tree: Fenwick::new(n_truth_ranks), drawn: Vec::new(), weights: Vec::new() }
    }

    /// Scratch for `n` rows, refused when one thread's share cannot be allocated.
    fn for_rows(n: usize, n_truth_ranks: usize) -> Result<Self, AllocError> {
        let what = || format!("truth of {n} values (one thread's bootstrap scratch)");
        alloc::check::<u32>(n_truth_ranks.checked_add(1), what)?;
        Ok(Self {
            drawn: alloc::with_capacity(Some(n), what)?,
            weights: alloc::filled(Some(n), 0, what)?,
            tree: Fenwick::new(n_truth_ranks),
        })
    }
}

/// Every method for every column under one weighting, flattened `[column * methods + method]`.
fn weighted_statistics(
    columns: &[KnightOrder],
    truth: &RankedColumn,
    weights: &[u32],
    methods: &[Method],
    scratch: &mut Scratch,
) -> Vec<f64> {
    // The truth side over every row where the truth is known, shared by the columns without NaN.
    let known = truth.ranks.iter().zip(weights).filter(|(&t, _)| t != MISSING);
    let shared = TruthSide::new(known.map(|(&t, &w)| (t, w as u64)), truth.n_ranks);
    let mut out = Vec::with_capacity(columns.len() * methods.len());
    for order in columns {
        let own;
        let truth_side = if order.complete {
            &shared
        } else {
            own = TruthSide::of_column(order, weights, truth.n_ranks);
            &own
        };
        out.extend(column_statistics(order, weights, truth_side, methods, &mut scratch.tree, &mut scratch.drawn));
    }
    out
}

/// The q-quantile of ascending `sorted` by linear interpolation between order statistics (numpy's default).
fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let Some(&last) = sorted.last() else { return f64::NAN };
    let h = (sorted.len() - 1) as f64 * q;
    let lo = h.floor() as usize;
    let Some(&next) = sorted.get(lo + 1) else { return last };
    sorted[lo] + (h - lo as f64) * (next - sorted[lo])
}

/// The central `confidence` percentile interval of the finite values (NaN: none finite, e.g. every
/// resample constant). NaN resample statistics are left out, not counted as extremes.
pub fn percentile_interval(values: &[f64], confidence: f64) -> (f64, f64) {
    percentile_interval_in_place(&mut values.to_vec(), confidence)
}

/// `percentile_interval`, reordering `values` (NaN dropped) instead of copying them.
fn percentile_interval_in_place(values: &mut Vec<f64>, confidence: f64) -> (f64, f64) {
    values.retain(|v| !v.is_nan());
    values.sort_unstable_by(f64::total_cmp);
    let tail = (1.0 - confidence) / 2.0;
    (quantile_sorted(values, tail), quantile_sorted(values, 1.0 - tail))
}

/// Each of `columns` against `truth`: point estimates and percentile bootstrap intervals, on the current pool.
pub fn correlate(
    columns: &[&[f64]],
    truth: &[f64],
    options: &CorrelateOptions,
) -> Result<Vec<ColumnCorrelation>, RankError> {
    let n = truth.len();
    check_len(n)?;
    if let Some(bad) = columns.iter().find(|c| c.len() != n) {
        return Err(RankError::LengthMismatch { names: ["a score column", "truth"], lens: [bad.len(), n] });
    }
    if !(options.confidence > 0.0 && options.confidence < 1.0) {
        return Err(RankError::BadConfidence(options.confidence));
    }
    let methods = &options.methods;
    let (width, bootstrap) = (methods.len(), options.bootstrap);
    // Everything sized by the arguments is refused up front: the ranked columns, then the resample statistics.
    check_work(n.saturating_mul(columns.len().max(1)), "the score columns and truth")?;
    let per_resample = columns.len().checked_mul(width);
    let mut resamples = alloc::filled(per_resample.and_then(|p| p.checked_mul(bootstrap)), f64::NAN, || {
        format!(
            "bootstrap={bootstrap} (the statistics of {bootstrap} resamples x {} columns x {width} methods)",
            columns.len()
        )
    })?;
    // No statistics (no columns or no methods): no interval to compute, however many resamples were asked for.
    let interval_len = if per_resample == Some(0) { 0 } else { bootstrap };
    let mut interval_values = alloc::with_capacity(Some(interval_len), || {
        format!("bootstrap={bootstrap} (one interval's {bootstrap} statistics)")
    })?;
    let truth = RankedColumn::new(truth)?;
    let orders: Vec<KnightOrder> = columns.par_iter().map(|c| KnightOrder::new(c, &truth)).collect::<Result<_, _>>()?;
    let mut scratch = Scratch::for_rows(n, truth.n_ranks)?;
    let mut ones = std::mem::take(&mut scratch.weights);
    ones.fill(1);
    let estimates = weighted_statistics(&orders, &truth, &ones, methods, &mut scratch);
    let per_resample = columns.len() * width;
    if per_resample > 0 {
        resamples.par_chunks_mut(per_resample).enumerate().try_for_each_init(
            || Scratch::for_rows(n, truth.n_ranks),
            |scratch, (b, out)| -> Result<(), AllocError> {
                let scratch = scratch.as_mut().map_err(|e| e.clone())?;
                let mut weights = std::mem::take(&mut scratch.weights);
                resample_weights_into(&mut weights, options.seed, b as u64);
                out.copy_from_slice(&weighted_statistics(&orders, &truth, &weights, methods, scratch));
                scratch.weights = weights;
                Ok(())
            },
        )?;
    }
    Ok(orders
        .iter()
        .enumerate()
        .map(|(c, order)| {
            let (low, high) = (0..width)
                .map(|m| {
                    interval_values.clear();
                    interval_values.extend((0..bootstrap).map(|b| resamples[b * per_resample + c * width + m]));
                    percentile_interval_in_place(&mut interval_values, options.confidence)
                })
                .unzip();
            ColumnCorrelation {
                n: order.rows.len(),
                estimate: estimates[c * width..(c + 1) * width].to_vec(),
                low,
                high,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rank::{kendall_tau, spearman, NanPolicy};
    use rand::{Rng, SeedableRng};

    fn options(bootstrap: usize) -> CorrelateOptions {
        CorrelateOptions {
            methods: vec![Method::Spearman, Method::Kendall, Method::KendallC],
            bootstrap,
            seed: 3,
            confidence: 0.9,
        }
    }

    fn table(n: usize) -> (Vec<Vec<f64>>, Vec<f64>) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        let truth: Vec<f64> = (0..n).map(|_| rng.gen_range(0..40) as f64).collect();
        let columns = (0..4)
            .map(|c| {
                truth
                    .iter()
                    .map(|&t| {
                        if c == 3 && rng.gen_bool(0.1) {
                            f64::NAN
                        } else {
                            (t + rng.gen_range(0.0..30.0 * c as f64 + 20.0)).round()
                        }
                    })
                    .collect()
            })
            .collect();
        (columns, truth)
    }

    fn run(columns: &[Vec<f64>], truth: &[f64], opts: &CorrelateOptions, threads: usize) -> Vec<ColumnCorrelation> {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let refs: Vec<&[f64]> = columns.iter().map(|c| c.as_slice()).collect();
        pool.install(|| correlate(&refs, truth, opts)).unwrap()
    }

    #[test]
    fn estimates_equal_the_single_calls_and_intervals_hold_them() {
        let (columns, truth) = table(300);
        for (col, result) in columns.iter().zip(run(&columns, &truth, &options(200), 2)) {
            let rho = spearman(col, &truth, NanPolicy::Omit).unwrap();
            let tau = kendall_tau(col, &truth, TauVariant::B, NanPolicy::Omit).unwrap();
            let tau_c = kendall_tau(col, &truth, TauVariant::C, NanPolicy::Omit).unwrap();
            assert_eq!(result.estimate, vec![rho, tau, tau_c]);
            assert_eq!(result.n, col.iter().filter(|v| !v.is_nan()).count());
            // tau-c shrinks under resampling (repeated rows are joint ties), so only rho and tau-b are checked.
            for m in 0..2 {
                assert!(result.low[m] <= result.estimate[m] && result.estimate[m] <= result.high[m], "{result:?}");
            }
        }
    }

    #[test]
    fn any_thread_count_gives_the_same_intervals() {
        let (columns, truth) = table(200);
        let opts = options(64);
        assert_eq!(run(&columns, &truth, &opts, 1), run(&columns, &truth, &opts, 3));
        let other_seed = CorrelateOptions { seed: 4, ..opts.clone() };
        assert_ne!(run(&columns, &truth, &opts, 2), run(&columns, &truth, &other_seed, 2));
    }

    #[test]
    fn no_resamples_give_nan_intervals() {
        let (columns, truth) = table(50);
        for result in run(&columns, &truth, &options(0), 1) {
            assert!(result.low.iter().chain(&result.high).all(|v| v.is_nan()));
            assert!(result.estimate.iter().all(|v| v.is_finite()));
        }
    }

    #[test]
    fn resample_rows_are_uniform_and_seeded() {
        let rows = resample_rows(10, 1, 0);
        assert_eq!(rows, resample_rows(10, 1, 0));
        assert_ne!(rows, resample_rows(10, 1, 1));
        let mut counts = [0u32; 10];
        for b in 0..2000 {
            for r in resample_rows(10, 5, b) {
                counts[r as usize] += 1;
            }
        }
        // 20000 draws over 10 rows: each count is 2000 +- ~42 (1 sd).
        assert!(counts.iter().all(|&c| (1800..2200).contains(&c)), "{counts:?}");
    }

    #[test]
    fn weights_count_the_drawn_rows() {
        let mut counts = vec![0u32; 50];
        resample_rows(50, 9, 4).iter().for_each(|&r| counts[r as usize] += 1);
        assert_eq!(resample_weights(50, 9, 4), counts);
    }

    #[test]
    fn a_resample_equals_the_statistics_of_its_rows_written_out() {
        let (columns, truth) = table(120);
        let opts = options(0);
        let weights = resample_weights(truth.len(), 21, 0);
        let rows = resample_rows(truth.len(), 21, 0);
        let ranked_truth = RankedColumn::new(&truth).unwrap();
        let orders: Vec<KnightOrder> = columns.iter().map(|c| KnightOrder::new(c, &ranked_truth).unwrap()).collect();
        let got = weighted_statistics(
            &orders,
            &ranked_truth,
            &weights,
            &opts.methods,
            &mut Scratch::new(ranked_truth.n_ranks),
        );
        for (c, column) in columns.iter().enumerate() {
            let x: Vec<f64> = rows.iter().map(|&r| column[r as usize]).collect();
            let y: Vec<f64> = rows.iter().map(|&r| truth[r as usize]).collect();
            let want = [
                spearman(&x, &y, NanPolicy::Omit).unwrap(),
                kendall_tau(&x, &y, TauVariant::B, NanPolicy::Omit).unwrap(),
                kendall_tau(&x, &y, TauVariant::C, NanPolicy::Omit).unwrap(),
            ];
            assert_eq!(&got[c * 3..c * 3 + 3], &want, "column {c}");
        }
    }

    #[test]
    fn quantiles_interpolate_like_numpy() {
        // numpy.percentile([1, 2, 3, 4], [5, 95]) == [1.15, 3.85]
        let (low, high) = percentile_interval(&[4.0, f64::NAN, 2.0, 1.0, 3.0], 0.9);
        assert!((low - 1.15).abs() < 1e-12 && (high - 3.85).abs() < 1e-12, "{low} {high}");
        assert!(percentile_interval(&[f64::NAN], 0.9).0.is_nan());
    }

    #[test]
    fn bootstrap_rows_are_the_resample_rows_and_absurd_sizes_are_errors() {
        let rows = bootstrap_rows(7, 3, 5).unwrap();
        let want: Vec<u32> = (0..3).flat_map(|b| resample_rows(7, 5, b)).collect();
        assert_eq!(rows, want);
        assert!(bootstrap_rows(0, usize::MAX, 5).unwrap().is_empty());
        assert!(matches!(bootstrap_rows(1 << 20, 1 << 30, 0), Err(RankError::Alloc(_))));
        let (columns, truth) = table(20);
        let refs: Vec<&[f64]> = columns.iter().map(|c| c.as_slice()).collect();
        assert!(matches!(correlate(&refs, &truth, &options(1 << 40)), Err(RankError::Alloc(_))));
        assert!(matches!(correlate(&refs, &truth, &options(usize::MAX)), Err(RankError::Alloc(_))));
        let no_methods = CorrelateOptions { methods: vec![], ..options(usize::MAX) };
        assert!(correlate(&refs, &truth, &no_methods).unwrap().iter().all(|c| c.low.is_empty()));
    }

    #[test]
    fn bad_options_are_refused() {
        let (columns, truth) = table(20);
        let refs: Vec<&[f64]> = columns.iter().map(|c| c.as_slice()).collect();
        let bad = CorrelateOptions { confidence: 1.0, ..options(1) };
        assert_eq!(correlate(&refs, &truth, &bad), Err(RankError::BadConfidence(1.0)));
        assert!(matches!(correlate(&refs, &truth[..19], &options(1)), Err(RankError::LengthMismatch { .. })));
        assert_eq!("pearson".parse::<Method>(), Err(RankError::UnknownMethod("pearson".into())));
    }
}
