//! Hamming distances between bit-packed binary codes: the kernel of NASWOT (`nwot`), where each sample's code is
//! which ReLU units it activates. Packed 64 bits per word, one XOR + popcount per word, pairs in parallel.

use rayon::prelude::*;
use std::fmt;

use crate::alloc::{self, AllocError};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodesError {
    /// The buffer is not `rows * row_bytes` long.
    BadShape { rows: usize, row_bytes: usize, len: usize },
    /// The distance matrix (or a copy of the codes) cannot be allocated.
    Alloc(AllocError),
}

impl fmt::Display for CodesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadShape { rows, row_bytes, len } => match rows.checked_mul(*row_bytes) {
                Some(want) => write!(f, "{rows} codes of {row_bytes} bytes need {want} bytes, got {len}"),
                None => write!(f, "{rows} codes of {row_bytes} bytes are larger than memory, got {len} bytes"),
            },
            Self::Alloc(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CodesError {}

impl From<AllocError> for CodesError {
    fn from(e: AllocError) -> Self {
        Self::Alloc(e)
    }
}

/// Bits that differ between two equally long byte strings.
fn hamming(a: &[u8], b: &[u8]) -> u64 {
    let (a_words, a_tail) = a.split_at(a.len() / 8 * 8);
    let (b_words, b_tail) = b.split_at(a_words.len());
    let words: u64 = a_words
        .chunks_exact(8)
        .zip(b_words.chunks_exact(8))
        .map(|(x, y)| {
            let x = u64::from_le_bytes(x.try_into().expect("8 bytes"));
            let y = u64::from_le_bytes(y.try_into().expect("8 bytes"));
            u64::from((x ^ y).count_ones())
        })
        .sum();
    words + a_tail.iter().zip(b_tail).map(|(x, y)| u64::from((x ^ y).count_ones())).sum::<u64>()
}

/// A zeroed `rows x rows` distance matrix, or an error when the machine cannot hold it.
pub fn new_matrix(rows: usize) -> Result<Vec<u64>, CodesError> {
    let len = rows.checked_mul(rows);
    let mut matrix =
        alloc::with_capacity(len, || format!("codes with {rows} rows (their ({rows}, {rows}) distance matrix)"))?;
    matrix.resize(rows * rows, 0);
    Ok(matrix)
}

/// Fill `matrix` (`rows x rows`, row-major, `rows = codes.len()`) with the Hamming distances between the
/// equally long `codes` (e.g. the rows of numpy's `packbits` along the last axis), on the current rayon pool.
pub fn hamming_matrix_into(codes: &[&[u8]], matrix: &mut [u64]) -> Result<(), CodesError> {
    let rows = codes.len();
    let row_bytes = codes.first().map_or(0, |c| c.len());
    if let Some(bad) = codes.iter().find(|c| c.len() != row_bytes) {
        return Err(CodesError::BadShape { rows, row_bytes, len: bad.len() });
    }
    assert_eq!(Some(matrix.len()), rows.checked_mul(rows), "the matrix is rows x rows");
    if rows == 0 {
        return Ok(());
    }
    let row = |i: usize| codes[i];
    // Row i's distances to rows j > i, in parallel; the lower triangle is mirrored afterwards.
    matrix.par_chunks_mut(rows).enumerate().for_each(|(i, distances)| {
        distances[i] = 0;
        for (j, d) in distances.iter_mut().enumerate().skip(i + 1) {
            *d = hamming(row(i), row(j));
        }
    });
    // Mirror tile by tile, so that the column reads stay in cache.
    const TILE: usize = 64;
    for ib in (0..rows).step_by(TILE) {
        for jb in (0..=ib).step_by(TILE) {
            for i in ib..(ib + TILE).min(rows) {
                for j in jb..(jb + TILE).min(i) {
                    matrix[i * rows + j] = matrix[j * rows + i];
                }
            }
        }
    }
    Ok(())
}

/// The symmetric `rows x rows` matrix of Hamming distances between the rows of `codes` (row-major, `row_bytes`
/// bytes each), computed on the current rayon pool.
pub fn hamming_matrix(codes: &[u8], rows: usize, row_bytes: usize) -> Result<Vec<u64>, CodesError> {
    if rows.checked_mul(row_bytes) != Some(codes.len()) {
        return Err(CodesError::BadShape { rows, row_bytes, len: codes.len() });
    }
    let mut matrix = new_matrix(rows)?;
    let rows: Vec<&[u8]> = (0..rows).map(|i| &codes[i * row_bytes..(i + 1) * row_bytes]).collect();
    hamming_matrix_into(&rows, &mut matrix)?;
    Ok(matrix)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn bits(bytes: &[u8]) -> Vec<bool> {
        bytes.iter().flat_map(|b| (0..8).map(move |k| b >> k & 1 == 1)).collect()
    }

    #[test]
    fn matches_bit_by_bit_counting_for_any_length() {
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        for (rows, row_bytes) in [(6, 0usize), (6, 1), (6, 7), (6, 8), (6, 9), (6, 64), (6, 133), (150, 3)] {
            let codes: Vec<u8> = (0..rows * row_bytes).map(|_| rng.gen()).collect();
            let got = hamming_matrix(&codes, rows, row_bytes).unwrap();
            for i in 0..rows {
                for j in 0..rows {
                    let (a, b) = (
                        bits(&codes[i * row_bytes..(i + 1) * row_bytes]),
                        bits(&codes[j * row_bytes..(j + 1) * row_bytes]),
                    );
                    let want = a.iter().zip(&b).filter(|(x, y)| x != y).count() as u64;
                    assert_eq!(got[i * rows + j], want, "rows {i},{j} of {row_bytes} bytes");
                }
            }
        }
    }

    #[test]
    fn empty_and_single_rows_and_bad_shapes() {
        assert_eq!(hamming_matrix(&[], 0, 5).unwrap(), Vec::<u64>::new());
        assert_eq!(hamming_matrix(&[0xff, 0x0f], 1, 2).unwrap(), vec![0]);
        assert_eq!(hamming_matrix(&[1, 2, 3], 2, 2), Err(CodesError::BadShape { rows: 2, row_bytes: 2, len: 3 }));
        assert!(matches!(hamming_matrix(&[], usize::MAX, 0), Err(CodesError::Alloc(_))));
        assert!(matches!(new_matrix(1 << 31), Err(CodesError::Alloc(_))));
    }
}
