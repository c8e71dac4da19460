//! Rank statistics of paired samples: Spearman's rho, Kendall's tau-b / tau-c, precision@k and top-k regret.
//! Pure Rust, no Python.
//!
//! Statistics equal scipy.stats.spearmanr / kendalltau: rank sums and pair counts are exact integers, only the
//! final ratio is rounded. Values become narrow integer sort keys (the float bits that vary, or dense ranks
//! found by hashing when there are few distinct values) sorted by LSD radix passes. Kendall's tau follows
//! Knight (1966): y's ranks put in (x, y) order, whose inversions are the discordant pairs, counted in
//! O(n log n) by merge sort, or by a Fenwick tree when y has few distinct values. From 2^16 pairs on, both
//! variables are ranked on two threads, and when one has at most 2^16 distinct values the rows are grouped by
//! the other with a counting sort and a Fenwick tree over the first counts the discordant pairs, the two
//! halves of the groups on two threads.

use std::borrow::Cow;
use std::cmp::Reverse;
use std::fmt;
use std::str::FromStr;

use crate::alloc::{self, AllocError};

/// What to do with a pair where either value is NaN (scipy's `nan_policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NanPolicy {
    /// Drop the pair.
    Omit,
    /// The result is NaN.
    Propagate,
    /// Refuse the input.
    Raise,
}

impl FromStr for NanPolicy {
    type Err = RankError;

    fn from_str(s: &str) -> Result<Self, RankError> {
        match s {
            "omit" => Ok(Self::Omit),
            "propagate" => Ok(Self::Propagate),
            "raise" => Ok(Self::Raise),
            _ => Err(RankError::UnknownNanPolicy(s.to_string())),
        }
    }
}

/// Kendall's tau-b (ties corrected, scipy's default) or tau-c (Stuart's, for rectangular tables).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TauVariant {
    B,
    C,
}

impl FromStr for TauVariant {
    type Err = RankError;

    fn from_str(s: &str) -> Result<Self, RankError> {
        match s {
            "b" => Ok(Self::B),
            "c" => Ok(Self::C),
            _ => Err(RankError::UnknownVariant(s.to_string())),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum RankError {
    /// The two inputs of a pair have different lengths.
    LengthMismatch {
        names: [&'static str; 2],
        lens: [usize; 2],
    },
    /// A NaN under `NanPolicy::Raise`: the input and position of the first one.
    NanFound {
        name: &'static str,
        position: usize,
    },
    UnknownNanPolicy(String),
    UnknownVariant(String),
    /// k outside 1..=n (n: pairs left after the NaN policy).
    BadK {
        k: usize,
        n: usize,
    },
    /// More than `MAX_LEN` observations.
    TooLong(usize),
    /// A correlation method other than spearman / kendall / kendall_c.
    UnknownMethod(String),
    /// A bootstrap confidence level outside (0, 1).
    BadConfidence(f64),
    /// Working memory the machine cannot hold.
    Alloc(AllocError),
}

impl fmt::Display for RankError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LengthMismatch { names: [a, b], lens: [la, lb] } => {
                write!(f, "{a} has {la} values but {b} has {lb}: the inputs must pair up")
            }
            Self::NanFound { name, position } => {
                write!(f, "{name} is NaN at position {position} (nan_policy='raise')")
            }
            Self::UnknownNanPolicy(s) => write!(f, "unknown nan_policy '{s}': use 'omit', 'propagate' or 'raise'"),
            Self::UnknownVariant(s) => write!(f, "unknown Kendall tau variant '{s}': use 'b' or 'c'"),
            Self::BadK { k, n } => write!(f, "k = {k} is outside 1..={n} (the number of pairs)"),
            Self::TooLong(n) => write!(f, "{n} observations: at most {MAX_LEN} are supported"),
            Self::UnknownMethod(s) => write!(f, "unknown method '{s}': use 'spearman', 'kendall' or 'kendall_c'"),
            Self::BadConfidence(c) => write!(f, "confidence {c} is outside (0, 1)"),
            Self::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for RankError {}

impl From<AllocError> for RankError {
    fn from(e: AllocError) -> Self {
        Self::Alloc(e)
    }
}

/// Bytes of working memory ranking takes per observation (keys, radix buffers, ranks, pair counts), refused up
/// front when `n` observations would need more than the machine has.
const WORK_BYTES_PER_OBSERVATION: usize = 64;

/// Refuse `n` observations whose working memory the machine cannot hold (`names`: the inputs, for the message).
pub fn check_work(n: usize, names: &str) -> Result<(), AllocError> {
    alloc::check::<[u8; WORK_BYTES_PER_OBSERVATION]>(Some(n), || format!("{names} of {n} values (their ranking)"))?;
    Ok(())
}

/// An order-preserving u64 image of a non-NaN f64: 2^63 +- |v|'s bits. -0.0 and 0.0 get the same key, and
/// the low zero bits of integer-valued floats stay zero for either sign (so the radix sort can skip them).
#[inline(always)]
pub fn sort_key(v: f64) -> u64 {
    const SIGN: u64 = 1 << 63;
    let bits = v.to_bits();
    let magnitude = bits & !SIGN;
    if bits & SIGN != 0 {
        SIGN - magnitude
    } else {
        SIGN + magnitude
    }
}

/// Below this many items a comparison sort beats clearing and scanning the histograms.
const RADIX_MIN: usize = 256;

/// Stable LSD radix sort of `items` on the low `width` bits of `key(item)`, skipping digits every item shares.
/// A key takes the fewest passes of at most `max_digit_bits`, split evenly (dense ranks: one or two passes).
fn radix_sort<T: Copy + Default>(mut items: Vec<T>, key: impl Fn(T) -> u64, width: u32, max_digit_bits: u32) -> Vec<T> {
    let passes = width.div_ceil(max_digit_bits);
    if passes == 0 {
        return items;
    }
    let digit_bits = width.div_ceil(passes);
    let digit_mask = (1usize << digit_bits) - 1;
    let n = items.len();
    let mut histograms = vec![vec![0u32; 1 << digit_bits]; passes as usize];
    for &item in &items {
        let k = key(item);
        for (p, h) in histograms.iter_mut().enumerate() {
            h[((k >> (p as u32 * digit_bits)) as usize) & digit_mask] += 1;
        }
    }
    let mut scratch = vec![T::default(); n];
    for (p, h) in histograms.iter_mut().enumerate() {
        let shift = p as u32 * digit_bits;
        if h[((key(items[0]) >> shift) as usize) & digit_mask] as usize == n {
            continue; // every item has this digit: the pass would not move anything
        }
        // The histogram becomes each bucket's next write position.
        let mut total = 0u32;
        for slot in h.iter_mut() {
            (*slot, total) = (total, total + *slot);
        }
        for &item in &items {
            let bucket = ((key(item) >> shift) as usize) & digit_mask;
            // SAFETY: h[bucket] < (items before this bucket) + (items in it) <= n = scratch.len(), by this digit's
            // histogram; the bounds check was a third of the pass.
            unsafe { *scratch.get_unchecked_mut(h[bucket] as usize) = item };
            h[bucket] += 1;
        }
        std::mem::swap(&mut items, &mut scratch);
    }
    items
}

/// A (key, payload) item of the radix sort: one u64 when both fit in 32 bits (half the memory traffic),
/// else two.
trait PairItem: Copy + Default + Ord {
    /// Widest radix digit: the scatter writes to 2^bits cache lines at once, which must stay in L1/L2
    /// (measured: 11 bits for 8-byte items, 8 for 16-byte items at n ~ 400k).
    const MAX_DIGIT_BITS: u32;
    fn pair(key: u64, payload: u64) -> Self;
    fn key(self) -> u64;
    fn payload(self) -> u64;
}

impl PairItem for u64 {
    const MAX_DIGIT_BITS: u32 = 11;
    #[inline(always)]
    fn pair(key: u64, payload: u64) -> Self {
        key << 32 | payload
    }
    #[inline(always)]
    fn key(self) -> u64 {
        self >> 32
    }
    #[inline(always)]
    fn payload(self) -> u64 {
        self & u32::MAX as u64
    }
}

impl PairItem for (u64, u64) {
    const MAX_DIGIT_BITS: u32 = 8;
    #[inline(always)]
    fn pair(key: u64, payload: u64) -> Self {
        (key, payload)
    }
    #[inline(always)]
    fn key(self) -> u64 {
        self.0
    }
    #[inline(always)]
    fn payload(self) -> u64 {
        self.1
    }
}

/// Sort items by key, stably; keys use their low `key_width` bits.
fn sort_items<T: PairItem>(mut items: Vec<T>, key_width: u32) -> Vec<T> {
    if items.len() < RADIX_MIN {
        // Sorting on (key, payload) equals the stable sort where payloads ascend in input order (positions),
        // and is the wanted order where the payload is the secondary key (Kendall's y rank).
        items.sort_unstable();
        return items;
    }
    radix_sort(items, T::key, key_width, T::MAX_DIGIT_BITS)
}

/// Sort keys of one variable cut to the bits that vary across it: order-preserving, `width()` bits wide.
#[derive(Debug, Clone, Copy)]
struct KeyCompressor {
    low: u32,
    mask: u64,
}

impl KeyCompressor {
    fn of(values: &[f64]) -> Self {
        let first = values.first().map_or(0, |&v| sort_key(v));
        let varying = values.iter().fold(0, |acc, &v| acc | (sort_key(v) ^ first));
        if varying == 0 {
            return Self { low: 0, mask: 0 };
        }
        let low = varying.trailing_zeros();
        Self { low, mask: u64::MAX >> (varying.leading_zeros() + low) }
    }

    fn width(&self) -> u32 {
        64 - self.mask.leading_zeros()
    }

    #[inline(always)]
    fn key(&self, v: f64) -> u64 {
        (sort_key(v) >> self.low) & self.mask
    }
}

/// Dense ranks by hashing are tried up to this many distinct values (the table stays in L2).
const HASH_MAX_DISTINCT: usize = 1 << 14;

/// Order-preserving dense ranks (and their number) of NaN-free `values` found with a hash table, or None once
/// more than `limit` distinct values turn up. O(n + k log k) for k distinct values.
fn dense_ranks_by_hash(values: &[f64], limit: usize) -> Option<(Vec<u32>, usize)> {
    let mut table = KeyTable::with_bits(10);
    let mut distinct: Vec<u64> = Vec::new();
    let mut ids = Vec::with_capacity(values.len());
    for &v in values {
        let key = sort_key(v);
        let slot = table.slot_of(key);
        let (k, id) = table.slots[slot];
        if k == key {
            ids.push(id);
            continue;
        }
        if distinct.len() == limit {
            return None;
        }
        table.slots[slot] = (key, distinct.len() as u32);
        ids.push(distinct.len() as u32);
        distinct.push(key);
        if table.is_crowded(distinct.len()) {
            table = KeyTable::of_keys(&distinct, table.bits + 1);
        }
    }
    // Keys are distinct: sorting (key, id) pairs by key needs no lookup per comparison.
    let mut by_key: Vec<(u64, u32)> = distinct.iter().zip(0u32..).map(|(&key, id)| (key, id)).collect();
    by_key.sort_unstable_by_key(|&(key, _)| key);
    let mut rank_of_id = vec![0u32; distinct.len()];
    for (rank, &(_, id)) in by_key.iter().enumerate() {
        rank_of_id[id as usize] = rank as u32;
    }
    ids.iter_mut().for_each(|id| *id = rank_of_id[*id as usize]);
    Some((ids, distinct.len()))
}

/// An open-addressing table of (sort key, id), sized to the distinct keys seen so far: a table sized for the
/// limit up front would leave L2 and cost a large zeroed allocation per call.
struct KeyTable {
    /// Key 0 marks an empty slot: sort_key never returns it for a non-NaN value.
    slots: Vec<(u64, u32)>,
    bits: u32,
}

impl KeyTable {
    fn with_bits(bits: u32) -> Self {
        Self { slots: vec![(0, 0); 1 << bits], bits }
    }

    /// A table of `2^bits` slots holding `keys`, each with its position as id.
    fn of_keys(keys: &[u64], bits: u32) -> Self {
        let mut table = Self::with_bits(bits);
        for (id, &key) in keys.iter().enumerate() {
            let slot = table.slot_of(key);
            table.slots[slot] = (key, id as u32);
        }
        table
    }

    /// Linear probing stays short up to this load (5/8): e.g. 10k distinct values fit 2^14 slots (256 KiB).
    fn is_crowded(&self, keys: usize) -> bool {
        8 * keys > 5 * self.slots.len()
    }

    /// The slot holding `key`, or the empty slot where it goes.
    #[inline(always)]
    fn slot_of(&self, key: u64) -> usize {
        let mask = self.slots.len() - 1;
        // Fibonacci hashing: the high bits of key * 2^64 / phi.
        let mut slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - self.bits)) as usize;
        loop {
            let k = self.slots[slot].0;
            if k == key || k == 0 {
                return slot;
            }
            slot = (slot + 1) & mask;
        }
    }
}

/// One variable's values as order-preserving integer sort keys, as few bits wide as cheaply possible.
enum SortKeys<'a> {
    /// The float bits that vary (integer-valued floats need few).
    Bits(&'a [f64], KeyCompressor),
    /// Dense ranks, for values with many low bits in use but few distinct values (e.g. accuracies in %).
    Dense(Vec<u32>, usize),
}

impl<'a> SortKeys<'a> {
    fn new(values: &'a [f64]) -> Self {
        Self::hashing_up_to(values, values.len() / 8)
    }

    /// Keys, by hashing when there are at most `max_distinct` distinct values (and at most HASH_MAX_DISTINCT).
    fn hashing_up_to(values: &'a [f64], max_distinct: usize) -> Self {
        let bits = KeyCompressor::of(values);
        // Narrow keys sort in one or two passes anyway, and short inputs by comparison.
        if bits.width() > 16 && values.len() >= RADIX_MIN {
            let limit = HASH_MAX_DISTINCT.min(max_distinct);
            if let Some((ranks, distinct)) = dense_ranks_by_hash(values, limit) {
                return Self::Dense(ranks, distinct);
            }
        }
        Self::Bits(values, bits)
    }

    #[inline(always)]
    fn key(&self, i: usize) -> u64 {
        match self {
            Self::Bits(values, bits) => bits.key(values[i]),
            Self::Dense(ranks, _) => ranks[i] as u64,
        }
    }

    fn width(&self) -> u32 {
        match self {
            Self::Bits(_, bits) => bits.width(),
            Self::Dense(_, distinct) => u32::BITS - (distinct.saturating_sub(1) as u32).leading_zeros(),
        }
    }
}

/// One variable of a sample as dense integer ranks (equal values share one), with the size of each tie group.
#[derive(Debug, Clone)]
pub struct RankedVariable {
    /// Per observation, its rank in `0..n_ranks()`.
    pub ranks: Vec<u32>,
    /// Per rank, how many observations have it.
    counts: Vec<u32>,
    /// Per rank, how many observations have a smaller one.
    starts: Vec<u32>,
}

impl RankedVariable {
    /// Rank NaN-free values: equal values (0.0 and -0.0 included) share a rank, ranks are dense.
    pub fn from_values(values: &[f64]) -> Result<Self, RankError> {
        check_len(values.len())?;
        Ok(match SortKeys::new(values) {
            SortKeys::Dense(ranks, distinct) => Self::from_dense(ranks, distinct),
            keys if keys.width() <= 32 => Self::from_sorted(&Self::sorted_positions::<u64>(&keys, values.len())),
            keys => Self::from_sorted(&Self::sorted_positions::<(u64, u64)>(&keys, values.len())),
        })
    }

    fn sorted_positions<T: PairItem>(keys: &SortKeys<'_>, n: usize) -> Vec<T> {
        sort_items((0..n).map(|pos| T::pair(keys.key(pos), pos as u64)).collect(), keys.width())
    }

    /// Dense ranks of NaN-free values and their number: by hashing up to a third of n distinct values (a failed
    /// attempt then costs at most a third of a hashing pass), else by radix sort.
    fn dense_ranks(values: &[f64]) -> (Vec<u32>, usize) {
        match SortKeys::hashing_up_to(values, values.len() / 3) {
            SortKeys::Dense(ranks, distinct) => (ranks, distinct),
            keys => {
                let ranked = if keys.width() <= 32 {
                    Self::from_sorted(&Self::sorted_positions::<u64>(&keys, values.len()))
                } else {
                    Self::from_sorted(&Self::sorted_positions::<(u64, u64)>(&keys, values.len()))
                };
                let distinct = ranked.n_ranks();
                (ranked.ranks, distinct)
            }
        }
    }

    /// From (key, position) items in key order.
    fn from_sorted<T: PairItem>(sorted: &[T]) -> Self {
        let mut ranks = vec![0u32; sorted.len()];
        let mut starts: Vec<u32> = Vec::new();
        for (i, &item) in sorted.iter().enumerate() {
            if i == 0 || item.key() != sorted[i - 1].key() {
                starts.push(i as u32);
            }
            ranks[item.payload() as usize] = starts.len() as u32 - 1;
        }
        let ends = starts.iter().skip(1).copied().chain([sorted.len() as u32]);
        let counts = starts.iter().zip(ends).map(|(&start, end)| end - start).collect();
        Self { ranks, counts, starts }
    }

    /// From dense ranks (every rank in `0..distinct` present).
    fn from_dense(ranks: Vec<u32>, distinct: usize) -> Self {
        let mut counts = vec![0u32; distinct];
        ranks.iter().for_each(|&r| counts[r as usize] += 1);
        let starts = counts
            .iter()
            .scan(0u32, |total, &c| {
                *total += c;
                Some(*total - c)
            })
            .collect();
        Self { ranks, counts, starts }
    }

    pub fn len(&self) -> usize {
        self.ranks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranks.is_empty()
    }

    /// The number of distinct values.
    pub fn n_ranks(&self) -> usize {
        self.counts.len()
    }

    /// Twice the centred average (1-based) rank of each value, an exact integer:
    /// 2 * (start + (count + 1) / 2) - (n + 1).
    fn centred_ranks_x2(&self) -> Vec<i64> {
        let n = self.len() as i64;
        self.starts.iter().zip(&self.counts).map(|(&s, &c)| 2 * s as i64 + c as i64 - n).collect()
    }

    /// Σ over observations of the squared doubled centred rank: 4 (n - 1) var(average ranks).
    fn sum_squares_x2(&self, centred: &[i64]) -> i128 {
        self.counts.iter().zip(centred).map(|(&c, &r)| c as i128 * (r as i128 * r as i128)).sum()
    }
}

/// At most 2^31 - 1 observations: ranks and weights fit in u32, and weight * rank sums (<= n^2) in i64.
pub const MAX_LEN: usize = i32::MAX as usize;

pub(crate) fn check_len(n: usize) -> Result<(), RankError> {
    if n > MAX_LEN {
        return Err(RankError::TooLong(n));
    }
    Ok(())
}

/// Spearman's rho of two ranked variables of the same observations (average ranks for ties).
pub fn spearman_ranked(x: &RankedVariable, y: &RankedVariable) -> f64 {
    debug_assert_eq!(x.len(), y.len());
    let (cx, cy) = (x.centred_ranks_x2(), y.centred_ranks_x2());
    // |cx * cy| <= n^2, so an i64 product is exact; the sum needs i128 only beyond ~2 million observations.
    let sxy: i128 = x.ranks.iter().zip(&y.ranks).map(|(&a, &b)| (cx[a as usize] * cy[b as usize]) as i128).sum();
    spearman_from_sums(x.len() as u64, sxy, x.sum_squares_x2(&cx), y.sum_squares_x2(&cy))
}

/// rho from the exact sums of (doubled, centred) average-rank products over `n` observations;
/// NaN for n < 2 or a constant variable, as scipy.
pub(crate) fn spearman_from_sums(n: u64, sxy: i128, sxx: i128, syy: i128) -> f64 {
    if n < 2 || sxx == 0 || syy == 0 {
        return f64::NAN;
    }
    // One rounding in the product: sqrt(fl(a * a)) == a, so a perfect monotone relation gives exactly +-1.
    (sxy as f64 / (sxx as f64 * syy as f64).sqrt()).clamp(-1.0, 1.0)
}

/// What Kendall's tau counts over the n(n-1)/2 pairs of observations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PairCounts {
    pub n: u64,
    /// Pairs tied in x (joint ties included), in y, and in both.
    pub x_ties: u64,
    pub y_ties: u64,
    pub joint_ties: u64,
    pub discordant: u64,
    /// Distinct values of x and of y (tau-c's number of classes).
    pub x_distinct: u64,
    pub y_distinct: u64,
}

impl PairCounts {
    /// tau as scipy.stats.kendalltau computes it; NaN when x or y is constant (which includes n < 2).
    pub fn tau(&self, variant: TauVariant) -> f64 {
        let total = self.n * self.n.saturating_sub(1) / 2;
        if self.x_ties == total || self.y_ties == total {
            return f64::NAN;
        }
        let concordant_minus_discordant = total as i128 - self.x_ties as i128 - self.y_ties as i128
            + self.joint_ties as i128
            - 2 * self.discordant as i128;
        let tau = match variant {
            // Same operation order as scipy, so results agree to the last bits.
            TauVariant::B => {
                concordant_minus_discordant as f64
                    / ((total - self.x_ties) as f64).sqrt()
                    / ((total - self.y_ties) as f64).sqrt()
            }
            TauVariant::C => {
                let classes = self.x_distinct.min(self.y_distinct) as f64;
                let n = self.n as f64;
                2.0 * concordant_minus_discordant as f64 / ((n * n) * (classes - 1.0) / classes)
            }
        };
        tau.clamp(-1.0, 1.0)
    }
}

impl PairCounts {
    /// The counts with x and y swapped.
    fn transposed(self) -> Self {
        Self {
            x_ties: self.y_ties,
            y_ties: self.x_ties,
            x_distinct: self.y_distinct,
            y_distinct: self.x_distinct,
            ..self
        }
    }
}

/// Below this many observations a second thread costs more than it saves.
const PARALLEL_MIN: usize = 1 << 16;

/// `(a(), b())`, on two threads when `n` is large enough to pay for it: in the caller's rayon pool when called
/// from one (its thread count holds), else on a scoped thread (a library never starts the global pool).
fn on_two_threads<A: Send, B: Send>(n: usize, a: impl FnOnce() -> A + Send, b: impl FnOnce() -> B + Send) -> (A, B) {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    let cores = *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |c| c.get()));
    if n < PARALLEL_MIN || cores < 2 {
        return (a(), b());
    }
    if rayon::current_thread_index().is_some() {
        return rayon::join(a, b);
    }
    std::thread::scope(|scope| {
        let second = scope.spawn(b);
        let first = a();
        (first, second.join().expect("a rank-statistics thread panicked"))
    })
}

/// Per rank, how many observations have it.
fn rank_counts(ranks: &[u32], distinct: usize) -> Vec<u32> {
    let mut counts = vec![0u32; distinct];
    ranks.iter().for_each(|&r| counts[r as usize] += 1);
    counts
}

/// Pairs inside groups of these sizes: Σ c (c - 1) / 2.
fn pairs_within(counts: &[u32]) -> u64 {
    counts.iter().map(|&c| c as u64 * (c as u64).saturating_sub(1) / 2).sum()
}

/// Where each rank's group starts in rank order, with n appended.
fn group_starts(counts: &[u32]) -> Vec<u32> {
    let mut starts = Vec::with_capacity(counts.len() + 1);
    let mut total = 0u32;
    starts.push(0);
    for &c in counts {
        total += c;
        starts.push(total);
    }
    starts
}

/// Kendall's pair counts from dense ranks, y with at most FENWICK_MAX_RANKS. The x groups are split in two
/// halves of about n / 2 rows, counted on two threads when n is large; each half puts its y ranks in x order
/// by a counting sort and counts with a Fenwick tree, and the pairs across halves come from their y histograms.
fn kendall_dense(x: &[u32], x_counts: &[u32], y: &[u32], y_counts: &[u32]) -> PairCounts {
    let n = x.len();
    let starts = group_starts(x_counts);
    let split = if n >= PARALLEL_MIN { starts.partition_point(|&s| (s as usize) < n / 2) } else { x_counts.len() };
    let count_half = |groups: std::ops::Range<usize>| HalfCounts::of(x, y, &starts, groups, y_counts.len());
    let (low, high) = on_two_threads(n, || count_half(0..split), || count_half(split..x_counts.len()));
    PairCounts {
        n: n as u64,
        x_ties: pairs_within(x_counts),
        y_ties: pairs_within(y_counts),
        joint_ties: low.joint_ties + high.joint_ties,
        discordant: low.discordant + high.discordant + discordant_across(&low.y_histogram, &high.y_histogram),
        x_distinct: x_counts.len() as u64,
        y_distinct: y_counts.len() as u64,
    }
}

/// Pairs (a row of the lower x half, a row of the higher) whose y ranks fall: Σ_y high[y] · #(low above y).
fn discordant_across(low: &[u32], high: &[u32]) -> u64 {
    let mut above = 0u64;
    let mut pairs = 0u64;
    for (&l, &h) in low.iter().zip(high).rev() {
        pairs += h as u64 * above;
        above += l as u64;
    }
    pairs
}

/// Kendall's counts among the rows of a range of x groups.
struct HalfCounts {
    discordant: u64,
    joint_ties: u64,
    /// Per y rank, how many of the rows have it.
    y_histogram: Vec<u32>,
}

impl HalfCounts {
    /// Counts of the rows whose x rank is in `groups`; `starts` are the x groups' starts (n appended).
    fn of(x: &[u32], y: &[u32], starts: &[u32], groups: std::ops::Range<usize>, y_distinct: usize) -> Self {
        let base = starts[groups.start];
        let y_by_x = y_ranks_in_x_order(x, y, &starts[groups.start..=groups.end], groups.start as u32);
        let local_starts: Vec<u32> = starts[groups.start..=groups.end].iter().map(|&s| s - base).collect();
        let mut counts = Self { discordant: 0, joint_ties: 0, y_histogram: vec![0; y_distinct] };
        counts.count_groups(&y_by_x, &local_starts);
        counts
    }

    /// Each group adds the earlier groups' y ranks above its own (discordant pairs), read from a Fenwick tree
    /// over y, and its own equal y ranks (joint ties).
    fn count_groups(&mut self, y_by_x: &[u32], starts: &[u32]) {
        let mut tree = Fenwick::new(self.y_histogram.len());
        // Per y rank, how many of the current group have it so far; back to zero after each group.
        let in_group = &mut self.y_histogram;
        for bounds in starts.windows(2) {
            let (start, end) = (bounds[0], bounds[1]);
            let group = &y_by_x[start as usize..end as usize];
            for &y in group {
                self.discordant += (start - tree.prefix(y)) as u64;
                self.joint_ties += in_group[y as usize] as u64;
                in_group[y as usize] += 1;
            }
            for &y in group {
                tree.add(y, 1);
                in_group[y as usize] = 0;
            }
        }
        // The histogram of the rows seen, for the pairs across halves.
        for (r, h) in in_group.iter_mut().enumerate() {
            *h = tree.prefix(r as u32) - if r == 0 { 0 } else { tree.prefix(r as u32 - 1) };
        }
    }
}

/// The y ranks of the rows whose x rank is among the groups starting at `starts[..len - 1]` (ranks from
/// `first`), put in x order by a counting sort (order inside a group does not matter). Other rows are written
/// to a spare last slot and not counted, without a branch: which rows belong is unpredictable.
fn y_ranks_in_x_order(x: &[u32], y: &[u32], starts: &[u32], first: u32) -> Vec<u32> {
    let base = starts[0];
    let len = (starts[starts.len() - 1] - base) as usize;
    let groups = starts.len() as u32 - 1;
    let mut next: Vec<u32> = starts[..groups as usize].iter().map(|&s| s - base).collect();
    next.push(len as u32); // the spare slot, for rows of other groups
    let mut out = vec![0u32; len + 1];
    for (&xr, &yr) in x.iter().zip(y) {
        let local = xr.wrapping_sub(first);
        let mine = local < groups;
        let group = if mine { local } else { groups } as usize;
        let slot = next[group];
        out[slot as usize] = yr;
        next[group] = slot + mine as u32;
    }
    out.truncate(len);
    out
}

/// Counts runs of equal items in a stream: the number of runs and the pairs inside them.
#[derive(Default)]
struct RunCounter {
    run: u64,
    runs: u64,
    pairs: u64,
}

impl RunCounter {
    /// The next item, `same` when it equals the previous one.
    #[inline(always)]
    fn push(&mut self, same: bool) {
        if same {
            self.pairs += self.run;
            self.run += 1;
        } else {
            self.runs += 1;
            self.run = 1;
        }
    }
}

/// Kendall's pair counts of NaN-free paired values (Knight 1966): y's ranks put in (x, y) order, where the
/// discordant pairs are the inversions. Items carry the partner's key, so the work is radix passes and
/// sequential walks, with no random access.
fn kendall_pair_counts(x: &[f64], y: &[f64]) -> Result<PairCounts, RankError> {
    check_len(x.len())?;
    // On one thread the grouped count measured no faster than Knight's sorts (n = 15625, NAS-like ties).
    if x.len() >= PARALLEL_MIN {
        return Ok(kendall_ranked(x, y));
    }
    let (x_keys, y_keys) = (SortKeys::new(x), SortKeys::new(y));
    match (x_keys.width() <= 32, y_keys.width() <= 32) {
        (true, true) => Ok(kendall_sorted::<u64, u64>(&x_keys, &y_keys, x.len())),
        (true, false) => Ok(kendall_sorted::<(u64, u64), u64>(&x_keys, &y_keys, x.len())),
        (false, _) => Ok(kendall_sorted::<(u64, u64), (u64, u64)>(&x_keys, &y_keys, x.len())),
    }
}

/// Kendall's pair counts from dense ranks of both variables, found on two threads: by `kendall_dense`, or
/// when both have more than FENWICK_MAX_RANKS distinct values by Knight's sorts of the ranks.
fn kendall_ranked(x: &[f64], y: &[f64]) -> PairCounts {
    let ranked = |values| {
        let (ranks, distinct) = RankedVariable::dense_ranks(values);
        let counts = rank_counts(&ranks, distinct);
        (ranks, counts)
    };
    let ((x_ranks, x_counts), (y_ranks, y_counts)) = on_two_threads(x.len(), || ranked(x), || ranked(y));
    // tau is symmetric in x and y: the Fenwick tree goes over the variable with fewer distinct values.
    if y_counts.len().min(x_counts.len()) <= FENWICK_MAX_RANKS {
        let counts = if y_counts.len() <= x_counts.len() {
            kendall_dense(&x_ranks, &x_counts, &y_ranks, &y_counts)
        } else {
            kendall_dense(&y_ranks, &y_counts, &x_ranks, &x_counts).transposed()
        };
        return counts;
    }
    let (x_distinct, y_distinct) = (x_counts.len(), y_counts.len());
    // Wide items: (x rank, y rank) keys may take 62 bits.
    kendall_sorted::<(u64, u64), (u64, u64)>(
        &SortKeys::Dense(x_ranks, x_distinct),
        &SortKeys::Dense(y_ranks, y_distinct),
        x.len(),
    )
}

/// The input of the x sort, items (sort key, y rank), with y's tie counts. The sort key is x's key; when both
/// variables are dense, y's rank is appended in its `y_bits` low bits, so that one sort orders by (x, y).
struct ForXSort<ByX> {
    items: Vec<ByX>,
    key_width: u32,
    y_bits: u32,
    y_runs: RunCounter,
}

/// Build the x sort's input, sorting by y first (items (y key, x key)) only when y's ranks are not known
/// from hashing: then x groups come out in y order; otherwise the walk orders each x group.
fn for_x_sort<ByY: PairItem, ByX: PairItem>(x_keys: &SortKeys<'_>, y_keys: &SortKeys<'_>, n: usize) -> ForXSort<ByX> {
    if let SortKeys::Dense(ranks, distinct) = y_keys {
        let mut counts = vec![0u64; *distinct];
        ranks.iter().for_each(|&r| counts[r as usize] += 1);
        let y_runs =
            RunCounter { run: 0, runs: *distinct as u64, pairs: counts.iter().map(|&c| c * (c - 1) / 2).sum() };
        let y_bits = if matches!(x_keys, SortKeys::Dense(..)) { y_keys.width() } else { 0 };
        let key = |i: usize| x_keys.key(i) << y_bits | if y_bits > 0 { ranks[i] as u64 } else { 0 };
        let items = (0..n).map(|i| ByX::pair(key(i), ranks[i] as u64)).collect();
        return ForXSort { items, key_width: x_keys.width() + y_bits, y_bits, y_runs };
    }
    let by_y = sort_items::<ByY>((0..n).map(|i| ByY::pair(y_keys.key(i), x_keys.key(i))).collect(), y_keys.width());
    let mut y_runs = RunCounter::default();
    let mut previous = None;
    let items = by_y
        .iter()
        .map(|&item| {
            y_runs.push(previous == Some(item.key()));
            previous = Some(item.key());
            ByX::pair(item.payload(), y_runs.runs - 1)
        })
        .collect();
    ForXSort { items, key_width: x_keys.width(), y_bits: 0, y_runs }
}

/// `kendall_pair_counts` for one choice of item layouts (packed or wide) for the y sort and the x sort.
fn kendall_sorted<ByY: PairItem, ByX: PairItem>(x_keys: &SortKeys<'_>, y_keys: &SortKeys<'_>, n: usize) -> PairCounts {
    let ForXSort { items, key_width, y_bits, y_runs } = for_x_sort::<ByY, ByX>(x_keys, y_keys, n);
    let by_x = sort_items::<ByX>(items, key_width);
    let (mut x_runs, mut joint_runs) = (RunCounter::default(), RunCounter::default());
    let mut sequence: Vec<u32> = Vec::with_capacity(n);
    let mut group_start = 0;
    for (i, &item) in by_x.iter().enumerate() {
        let same_x = i > 0 && by_x[i - 1].key() >> y_bits == item.key() >> y_bits;
        x_runs.push(same_x);
        if !same_x {
            joint_runs.count_sorted_group(&mut sequence[group_start..]);
            group_start = i;
        }
        sequence.push(item.payload() as u32);
    }
    joint_runs.count_sorted_group(&mut sequence[group_start..]);
    drop(by_x);
    PairCounts {
        n: n as u64,
        x_ties: x_runs.pairs,
        y_ties: y_runs.pairs,
        joint_ties: joint_runs.pairs,
        discordant: count_inversions(&mut sequence, y_runs.runs as usize),
        x_distinct: x_runs.runs,
        y_distinct: y_runs.runs,
    }
}

impl RunCounter {
    /// Sort one x group's y ranks (already sorted unless y was ranked by hashing and x was not) and count its
    /// runs of equal y.
    fn count_sorted_group(&mut self, group: &mut [u32]) {
        // Groups are mostly a few rows: insertion sort, linear when already sorted, beats a sort call.
        if group.len() <= MIN_RUN {
            insertion_sort_counting(group);
        } else if group.windows(2).any(|w| w[0] > w[1]) {
            group.sort_unstable();
        }
        for (i, &v) in group.iter().enumerate() {
            self.push(i > 0 && group[i - 1] == v);
        }
    }
}

/// Up to this many distinct ranks the inversions are counted with a Fenwick tree (at most 256 KiB, in L2):
/// O(n log k) with k small beats the merge sort's O(n log n) passes over memory.
const FENWICK_MAX_RANKS: usize = 1 << 16;

/// Pairs i < j with seq[i] > seq[j] (strictly), for values `< n_ranks`. `seq` may be left reordered.
fn count_inversions(seq: &mut [u32], n_ranks: usize) -> u64 {
    if n_ranks <= FENWICK_MAX_RANKS {
        count_inversions_fenwick(seq, n_ranks)
    } else {
        count_inversions_merging(seq)
    }
}

/// Inversions by a Fenwick tree over ranks: each value adds the earlier values above it.
fn count_inversions_fenwick(seq: &[u32], n_ranks: usize) -> u64 {
    let mut tree = Fenwick::new(n_ranks);
    let mut inversions = 0u64;
    for (seen, &value) in seq.iter().enumerate() {
        inversions += (seen as u32 - tree.prefix(value)) as u64;
        tree.add(value, 1);
    }
    inversions
}

/// Weights per rank with prefix sums, both O(log k) for k ranks (a Fenwick, or binary indexed, tree).
///
/// Weights are u32 (half the cache footprint of u64): callers add at most n <= `MAX_LEN` in total.
/// (A complete binary tree walked leaf to root, branch-free, measured 2x slower: every update writes the
/// same top nodes, so consecutive updates stall on each other.)
pub(crate) struct Fenwick {
    /// 1-based: tree[i] holds the weight of the ranks (i - (i & -i), i], shifted by one.
    tree: Vec<u32>,
}

impl Fenwick {
    pub fn new(n_ranks: usize) -> Self {
        Self { tree: vec![0; n_ranks + 1] }
    }

    pub fn clear(&mut self) {
        self.tree.fill(0);
    }

    #[inline]
    pub fn add(&mut self, rank: u32, weight: u32) {
        let mut i = rank as usize + 1;
        while i < self.tree.len() {
            self.tree[i] += weight;
            i += i & i.wrapping_neg();
        }
    }

    /// Total weight of ranks <= `rank`.
    #[inline]
    pub fn prefix(&self, rank: u32) -> u32 {
        let mut i = rank as usize + 1;
        let mut total = 0;
        while i > 0 {
            total += self.tree[i];
            i &= i - 1;
        }
        total
    }
}

/// Runs shorter than this are extended by insertion sort before merging.
const MIN_RUN: usize = 16;

/// Inversions by merge sort (Knight 1966) over the ascending runs already present (the x groups of Knight's
/// sequence), each merge counting the pairs it puts in order. `seq` ends sorted.
fn count_inversions_merging(seq: &mut [u32]) -> u64 {
    let n = seq.len();
    let mut inversions = 0u64;
    let mut bounds = vec![0usize];
    while let Some(&start) = bounds.last().filter(|&&s| s < n) {
        let mut end = start + 1;
        while end < n && seq[end - 1] <= seq[end] {
            end += 1;
        }
        if end - start < MIN_RUN {
            end = (start + MIN_RUN).min(n);
            inversions += insertion_sort_counting(&mut seq[start..end]);
        }
        bounds.push(end);
    }
    let mut buffer = vec![0u32; n];
    let mut in_seq = true; // which buffer holds the current runs
    while bounds.len() > 2 {
        let (src, dst): (&[u32], &mut [u32]) = if in_seq { (&*seq, &mut buffer) } else { (&buffer, &mut *seq) };
        let mut merged = Vec::with_capacity(bounds.len() / 2 + 2);
        merged.push(0);
        for pair in bounds.windows(3).step_by(2) {
            let (lo, mid, hi) = (pair[0], pair[1], pair[2]);
            inversions += merge_counting(&src[lo..mid], &src[mid..hi], &mut dst[lo..hi]);
            merged.push(hi);
        }
        if bounds.len() % 2 == 0 {
            // An odd run out: carried to the other buffer unchanged.
            let lo = bounds[bounds.len() - 2];
            dst[lo..].copy_from_slice(&src[lo..]);
            merged.push(n);
        }
        bounds = merged;
        in_seq = !in_seq;
    }
    if !in_seq {
        seq.copy_from_slice(&buffer);
    }
    inversions
}

fn insertion_sort_counting(block: &mut [u32]) -> u64 {
    let mut shifts = 0u64;
    for i in 1..block.len() {
        let v = block[i];
        let mut j = i;
        while j > 0 && block[j - 1] > v {
            block[j] = block[j - 1];
            j -= 1;
        }
        shifts += (i - j) as u64;
        block[j] = v;
    }
    shifts
}

/// Merge two ascending runs into `out` (ties: left first), returning the pairs (a in left, b in right) with a > b.
#[inline]
fn merge_counting(left: &[u32], right: &[u32], out: &mut [u32]) -> u64 {
    let (nl, nr) = (left.len(), right.len());
    assert_eq!(out.len(), nl + nr);
    if nl == 0 || nr == 0 || left[nl - 1] <= right[0] {
        out[..nl].copy_from_slice(left);
        out[nl..].copy_from_slice(right);
        return 0;
    }
    let (mut i, mut j) = (0usize, 0usize);
    let mut inversions = 0u64;
    // Branch-free: which side advances is unpredictable, and a mispredicted branch costs more than the work.
    while i < nl && j < nr {
        // SAFETY: i < nl, j < nr, and i + j < nl + nr == out.len(), checked by the loop and the assert.
        unsafe {
            let (a, b) = (*left.get_unchecked(i), *right.get_unchecked(j));
            let take_right = (b < a) as usize;
            *out.get_unchecked_mut(i + j) = a.min(b);
            inversions += ((nl - i) & take_right.wrapping_neg()) as u64;
            j += take_right;
            i += 1 - take_right;
        }
    }
    out[i + j..nl + j].copy_from_slice(&left[i..]);
    out[nl + j..].copy_from_slice(&right[j..]);
    inversions
}

/// Paired values, borrowed when nothing had to be dropped.
type Pairs<'a> = (Cow<'a, [f64]>, Cow<'a, [f64]>);

/// The pairs a statistic sees after the NaN policy: `None` when the result is NaN (`Propagate` with a NaN).
fn paired<'a>(
    x: &'a [f64],
    y: &'a [f64],
    names: [&'static str; 2],
    policy: NanPolicy,
) -> Result<Option<Pairs<'a>>, RankError> {
    if x.len() != y.len() {
        return Err(RankError::LengthMismatch { names, lens: [x.len(), y.len()] });
    }
    check_work(x.len(), &format!("{} and {}", names[0], names[1]))?;
    let first_nan = x.iter().zip(y).position(|(a, b)| a.is_nan() || b.is_nan());
    let Some(position) = first_nan else { return Ok(Some((Cow::Borrowed(x), Cow::Borrowed(y)))) };
    match policy {
        NanPolicy::Propagate => Ok(None),
        NanPolicy::Raise => {
            Err(RankError::NanFound { name: if x[position].is_nan() { names[0] } else { names[1] }, position })
        }
        NanPolicy::Omit => {
            let (kept_x, kept_y) = x.iter().zip(y).filter(|(a, b)| !a.is_nan() && !b.is_nan()).unzip();
            Ok(Some((Cow::Owned(kept_x), Cow::Owned(kept_y))))
        }
    }
}

/// Spearman's rho of paired samples (average ranks for ties), as scipy.stats.spearmanr's statistic.
pub fn spearman(x: &[f64], y: &[f64], policy: NanPolicy) -> Result<f64, RankError> {
    let Some((x, y)) = paired(x, y, ["x", "y"], policy)? else { return Ok(f64::NAN) };
    Ok(spearman_ranked(&RankedVariable::from_values(&x)?, &RankedVariable::from_values(&y)?))
}

/// Kendall's tau-b or tau-c of paired samples in O(n log n), as scipy.stats.kendalltau's statistic.
pub fn kendall_tau(x: &[f64], y: &[f64], variant: TauVariant, policy: NanPolicy) -> Result<f64, RankError> {
    let Some((x, y)) = paired(x, y, ["x", "y"], policy)? else { return Ok(f64::NAN) };
    Ok(kendall_pair_counts(&x, &y)?.tau(variant))
}

/// Positions of the `k` largest values (NaN-free), ties going to the earlier position, as a stable
/// descending sort would pick them.
pub fn top_k_positions(values: &[f64], k: usize) -> Vec<usize> {
    let mut positions: Vec<usize> = (0..values.len()).collect();
    let key = |&p: &usize| (Reverse(sort_key(values[p])), p);
    if k < positions.len() {
        positions.select_nth_unstable_by_key(k.saturating_sub(1), key);
        positions.truncate(k);
    }
    positions
}

fn check_k(k: usize, n: usize) -> Result<(), RankError> {
    if k == 0 || k > n {
        return Err(RankError::BadK { k, n });
    }
    Ok(())
}

/// The fraction of the `k` best by `truth` that are among the `k` best by `scores` (higher is better in both).
pub fn precision_at_k(scores: &[f64], truth: &[f64], k: usize, policy: NanPolicy) -> Result<f64, RankError> {
    let Some((scores, truth)) = paired(scores, truth, ["scores", "truth"], policy)? else { return Ok(f64::NAN) };
    check_k(k, scores.len())?;
    let mut in_true_top = vec![false; truth.len()];
    for p in top_k_positions(&truth, k) {
        in_true_top[p] = true;
    }
    let hits = top_k_positions(&scores, k).into_iter().filter(|&p| in_true_top[p]).count();
    Ok(hits as f64 / k as f64)
}

/// Best `truth` overall minus the best `truth` among the `k` best by `scores` (>= 0, in `truth`'s units).
pub fn top_k_regret(scores: &[f64], truth: &[f64], k: usize, policy: NanPolicy) -> Result<f64, RankError> {
    let Some((scores, truth)) = paired(scores, truth, ["scores", "truth"], policy)? else { return Ok(f64::NAN) };
    check_k(k, scores.len())?;
    let best = truth.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let best_picked = top_k_positions(&scores, k).into_iter().map(|p| truth[p]).fold(f64::NEG_INFINITY, f64::max);
    Ok(best - best_picked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Kendall's tau-b straight from the definition, over all O(n^2) pairs.
    fn tau_b_brute(x: &[f64], y: &[f64]) -> f64 {
        let (mut con, mut dis, mut tx, mut ty) = (0i64, 0i64, 0i64, 0i64);
        for i in 0..x.len() {
            for j in i + 1..x.len() {
                let (dx, dy) = (x[i] - x[j], y[i] - y[j]);
                match (dx == 0.0, dy == 0.0) {
                    (true, true) => {}
                    (true, false) => tx += 1,
                    (false, true) => ty += 1,
                    _ if (dx > 0.0) == (dy > 0.0) => con += 1,
                    _ => dis += 1,
                }
            }
        }
        (con - dis) as f64 / (((con + dis + tx) as f64) * ((con + dis + ty) as f64)).sqrt()
    }

    /// Average 1-based ranks by an O(n^2) count.
    fn average_ranks_brute(v: &[f64]) -> Vec<f64> {
        v.iter()
            .map(|&a| {
                let less = v.iter().filter(|&&b| b < a).count() as f64;
                let equal = v.iter().filter(|&&b| b == a).count() as f64;
                less + (equal + 1.0) / 2.0
            })
            .collect()
    }

    fn pearson(a: &[f64], b: &[f64]) -> f64 {
        let n = a.len() as f64;
        let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
        let sab: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let saa: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let sbb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
        sab / (saa * sbb).sqrt()
    }

    /// `levels` distinct integers (narrow float bits); `-levels` distinct fractions of both signs (wide bits,
    /// few values: the hash path); continuous floats when `levels == 0` (wide bits, many values).
    fn random_tied(rng: &mut impl Rng, n: usize, levels: i32) -> Vec<f64> {
        match levels {
            0 => (0..n).map(|_| rng.gen_range(-1e3..1e3)).collect(),
            l if l < 0 => (0..n).map(|_| rng.gen_range(0..-l) as f64 / 7.3 - 1.0).collect(),
            l => (0..n).map(|_| rng.gen_range(0..l) as f64).collect(),
        }
    }

    #[test]
    fn hand_checked_tau_b_with_ties() {
        // x ties (1,2) and (3,4); y ties (2,3). Pairs: C=3, D=0, x-only ties 2, y-only tie 1:
        // tau_b = 3 / sqrt((3 + 2) * (3 + 1)) = 3 / sqrt(20).
        let x = [1.0, 1.0, 2.0, 2.0];
        let y = [1.0, 2.0, 2.0, 3.0];
        let tau = kendall_tau(&x, &y, TauVariant::B, NanPolicy::Omit).unwrap();
        assert!((tau - 3.0 / 20f64.sqrt()).abs() < 1e-15, "{tau}");
        // scipy.stats.kendalltau([1, 2, 3, 4], [1, 3, 2, 2], variant='c') == 0.1875
        let tau_c = kendall_tau(&[1.0, 2.0, 3.0, 4.0], &[1.0, 3.0, 2.0, 2.0], TauVariant::C, NanPolicy::Omit).unwrap();
        assert!((tau_c - 0.1875).abs() < 1e-15, "{tau_c}");
    }

    #[test]
    fn hand_checked_spearman_with_ties() {
        // Average ranks x = (1.5, 1.5, 3, 4), y = (1, 2.5, 2.5, 4): rho = 3.75 / sqrt(4.5 * 4.5).
        let rho = spearman(&[5.0, 5.0, 7.0, 9.0], &[0.0, 1.0, 1.0, 3.0], NanPolicy::Omit).unwrap();
        assert!((rho - 3.75 / 4.5).abs() < 1e-15, "{rho}");
        assert_eq!(spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0], NanPolicy::Omit).unwrap(), -1.0);
    }

    #[test]
    fn tau_b_matches_brute_force_on_random_data() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        for trial in 0..200 {
            // Both sides of RADIX_MIN, packed and wide keys, heavy and no ties.
            let n = rng.gen_range(2..[300, 1500][trial % 2]);
            let levels = [2, 5, 30, 1_000_000, 0, -3, -40][trial % 7];
            let x = random_tied(&mut rng, n, levels);
            let noise = random_tied(&mut rng, n, levels);
            let y: Vec<f64> = x.iter().zip(&noise).map(|(&a, &b)| a + b).collect();
            let fast = kendall_tau(&x, &y, TauVariant::B, NanPolicy::Omit).unwrap();
            let slow = tau_b_brute(&x, &y);
            assert!((fast - slow).abs() < 1e-12 || (fast.is_nan() && slow.is_nan()), "n={n}: {fast} vs {slow}");
        }
    }

    #[test]
    fn counts_from_ranks_on_two_threads_equal_knights_sorts_of_the_values() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(14);
        let n = PARALLEL_MIN + 4321;
        // Few distinct y (the tree over y), few distinct x (transposed), wide keys, a two-valued x, and both
        // variables with too many distinct values for the tree (Knight's sorts of the ranks).
        for (x_levels, y_levels) in [(3000, -40), (-25, 1_000_000), (0, 7), (2, 0), (0, 0)] {
            let x = random_tied(&mut rng, n, x_levels);
            let noise = random_tied(&mut rng, n, y_levels);
            // Correlated, so that neither discordant nor concordant pairs dominate.
            let y: Vec<f64> = x.iter().zip(&noise).map(|(&a, &b)| b + (a > 0.5) as i32 as f64 * 3.0).collect();
            let fast = kendall_ranked(&x, &y);
            let merged = kendall_sorted::<(u64, u64), (u64, u64)>(&SortKeys::new(&x), &SortKeys::new(&y), n);
            assert_eq!(fast, merged, "levels {x_levels} {y_levels}");
        }
    }

    #[test]
    fn spearman_is_pearson_of_average_ranks() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(8);
        for trial in 0..100 {
            let n = rng.gen_range(3..[300, 1000][trial % 2]);
            let levels = [3, 40, 1_000_000, 0, -20][trial % 5];
            let x = random_tied(&mut rng, n, levels);
            let y = random_tied(&mut rng, n, levels);
            let want = pearson(&average_ranks_brute(&x), &average_ranks_brute(&y));
            let got = spearman(&x, &y, NanPolicy::Omit).unwrap();
            assert!((got - want).abs() < 1e-12 || (got.is_nan() && want.is_nan()), "{got} vs {want}");
        }
    }

    #[test]
    fn inversions_match_brute_force() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        for n in [0, 1, 2, 15, 16, 17, 33, 100, 1000, 3000] {
            let mut v: Vec<u32> = (0..n).map(|_| rng.gen_range(0..50)).collect();
            // Some ascending stretches, as the x groups of Knight's sequence give.
            for run in v.chunks_mut(37).step_by(2) {
                run.sort();
            }
            let want = (0..n).flat_map(|i| (i + 1..n).map(move |j| (i, j))).filter(|&(i, j)| v[i] > v[j]).count();
            assert_eq!(count_inversions_fenwick(&v, 50), want as u64);
            let mut sorted = v.clone();
            sorted.sort();
            assert_eq!(count_inversions_merging(&mut v), want as u64);
            assert_eq!(v, sorted);
        }
    }

    #[test]
    fn both_inversion_counters_agree_on_wide_rank_ranges() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(13);
        let n_ranks = 3 * FENWICK_MAX_RANKS;
        let mut v: Vec<u32> = (0..200_000).map(|_| rng.gen_range(0..n_ranks as u32)).collect();
        let fenwick = count_inversions_fenwick(&v, n_ranks);
        assert_eq!(count_inversions(&mut v, n_ranks), fenwick);
    }

    #[test]
    fn radix_ranks_order_floats_and_merge_signed_zeros() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(10);
        let mut v: Vec<f64> = (0..300).map(|_| rng.gen_range(-1e3..1e3)).collect();
        v.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY, 1e-300, -1e-300, 5.0, 5.0]);
        let ranked = RankedVariable::from_values(&v).unwrap();
        for i in 0..v.len() {
            for j in 0..v.len() {
                assert_eq!(v[i].partial_cmp(&v[j]), ranked.ranks[i].partial_cmp(&ranked.ranks[j]), "{} {}", v[i], v[j]);
            }
        }
    }

    #[test]
    fn hashed_dense_ranks_match_sorting_and_give_up_past_the_limit() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(12);
        let mut v = random_tied(&mut rng, 2000, -50);
        v.extend([0.0, -0.0, f64::INFINITY, f64::NEG_INFINITY]);
        let (ranks, distinct) = dense_ranks_by_hash(&v, 100).unwrap();
        let mut sorted = v.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup_by(|a, b| a == b);
        assert_eq!(distinct, sorted.len());
        for (&value, &rank) in v.iter().zip(&ranks) {
            assert_eq!(sorted[rank as usize], value);
        }
        assert!(dense_ranks_by_hash(&v, distinct - 1).is_none());
        assert!(matches!(SortKeys::new(&v), SortKeys::Dense(..)));
        assert!(matches!(SortKeys::new(&random_tied(&mut rng, 2000, 0)), SortKeys::Bits(..)));
    }

    #[test]
    fn degenerate_inputs_are_nan() {
        let k = |x: &[f64], y: &[f64]| kendall_tau(x, y, TauVariant::B, NanPolicy::Omit).unwrap();
        let s = |x: &[f64], y: &[f64]| spearman(x, y, NanPolicy::Omit).unwrap();
        assert!(k(&[], &[]).is_nan() && s(&[], &[]).is_nan());
        assert!(k(&[1.0], &[2.0]).is_nan() && s(&[1.0], &[2.0]).is_nan());
        assert!(k(&[1.0, 2.0, 3.0], &[4.0; 3]).is_nan() && s(&[4.0; 3], &[1.0, 2.0, 3.0]).is_nan());
        assert_eq!(k(&[1.0, 2.0], &[2.0, 1.0]), -1.0);
    }

    #[test]
    fn nan_policies() {
        let x = [1.0, 2.0, f64::NAN, 4.0];
        let y = [2.0, 1.0, 3.0, 4.0];
        assert!(spearman(&x, &y, NanPolicy::Propagate).unwrap().is_nan());
        assert_eq!(
            spearman(&x, &y, NanPolicy::Omit).unwrap(),
            spearman(&[1.0, 2.0, 4.0], &[2.0, 1.0, 4.0], NanPolicy::Omit).unwrap()
        );
        assert_eq!(spearman(&y, &x, NanPolicy::Raise), Err(RankError::NanFound { name: "y", position: 2 }));
        assert_eq!(
            kendall_tau(&x, &y[..3], TauVariant::B, NanPolicy::Omit),
            Err(RankError::LengthMismatch { names: ["x", "y"], lens: [4, 3] })
        );
        assert_eq!("skip".parse::<NanPolicy>(), Err(RankError::UnknownNanPolicy("skip".into())));
    }

    #[test]
    fn precision_and_regret_by_hand() {
        let scores = [0.9, 0.8, 0.1, 0.5, 0.7];
        let truth = [50.0, 10.0, 90.0, 60.0, 20.0];
        // top-2 by score {0, 1}; true top-2 {2, 3}: no overlap; best picked 50 of 90.
        assert_eq!(precision_at_k(&scores, &truth, 2, NanPolicy::Omit).unwrap(), 0.0);
        assert_eq!(top_k_regret(&scores, &truth, 2, NanPolicy::Omit).unwrap(), 40.0);
        // top-4 by score {0, 1, 3, 4}; true top-4 {2, 3, 0, 4}: 3 shared.
        assert_eq!(precision_at_k(&scores, &truth, 4, NanPolicy::Omit).unwrap(), 0.75);
        assert_eq!(top_k_regret(&scores, &truth, 5, NanPolicy::Omit).unwrap(), 0.0);
        assert_eq!(precision_at_k(&scores, &truth, 6, NanPolicy::Omit), Err(RankError::BadK { k: 6, n: 5 }));
        // Ties go to the earlier position: top-1 of [1, 1] is position 0.
        assert_eq!(top_k_positions(&[1.0, 1.0, 0.0], 1), vec![0]);
    }
}
