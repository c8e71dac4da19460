//! Hamming distances between bit-packed binary codes: the kernel of NASWOT (`nwot`), where each sample's code is
//! which ReLU units it activates. Packed 64 bits per word, one XOR + popcount per word, pairs in parallel.

use rayon::prelude::*;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodesError {
    /// The buffer is not `rows * row_bytes` long.
    BadShape { rows: usize, row_bytes: usize, len: usize },
}

impl fmt::Display for CodesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::BadShape { rows, row_bytes, len } => {
                write!(f, "{rows} codes of {row_bytes} bytes need {} bytes, got {len}", rows * row_bytes)
            }
        }
    }
}

impl std::error::Error for CodesError {}

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

/// The symmetric `rows x rows` matrix of Hamming distances between the rows of `codes` (row-major, `row_bytes`
/// bytes each, e.g. numpy's `packbits` along the last axis), computed on the current rayon pool.
pub fn hamming_matrix(codes: &[u8], rows: usize, row_bytes: usize) -> Result<Vec<u64>, CodesError> {
    if codes.len() != rows * row_bytes {
        return Err(CodesError::BadShape { rows, row_bytes, len: codes.len() });
    }
    let row = |i: usize| &codes[i * row_bytes..(i + 1) * row_bytes];
    // Row i's distances to rows j > i; the lower triangle is mirrored afterwards.
    let upper: Vec<Vec<u64>> =
        (0..rows).into_par_iter().map(|i| ((i + 1)..rows).map(|j| hamming(row(i), row(j))).collect()).collect();
    let mut matrix = vec![0u64; rows * rows];
    for (i, distances) in upper.iter().enumerate() {
        for (offset, &d) in distances.iter().enumerate() {
            let j = i + 1 + offset;
            matrix[i * rows + j] = d;
            matrix[j * rows + i] = d;
        }
    }
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
        for row_bytes in [0usize, 1, 7, 8, 9, 64, 133] {
            let rows = 6;
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
    }
}
