//! `hamming_matrix` over `crate::codes`: a packed uint8 (rows, bytes) numpy array in, a uint64 (rows, rows) out.

use std::borrow::Cow;

use numpy::ndarray::Ix2;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::{args, errors, pool};
use crate::{alloc, codes};

/// Hamming distances between the rows of bit-packed codes, on a local pool with the GIL released.
#[pyfunction]
#[pyo3(signature = (codes, *, num_threads = None))]
fn hamming_matrix<'py>(
    py: Python<'py>,
    codes: &Bound<'py, PyAny>,
    num_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<Bound<'py, PyArray2<u64>>> {
    let array = args::ndarray(codes, "codes")?;
    if array.ndim() != 2 || args::kind(&array) != (b'u', 1) {
        return Err(errors::bad_argument(format!(
            "codes must be a 2-D uint8 array of bit-packed rows (e.g. np.packbits(bits, axis=1)), got {}",
            args::describe_array(&array)
        )));
    }
    let threads = pool::threads(num_threads)?;
    let typed = args::typed::<u8, Ix2>(&array, "codes")?;
    let codes = args::readonly(&typed, "codes")?;
    let view = codes.as_array();
    let (rows, row_bytes) = view.dim();
    // The result first: a matrix the machine cannot hold is refused before anything is copied or started.
    let mut matrix = codes::new_matrix(rows)?;
    // Rows are read in place when each is contiguous (any row stride, broadcast rows included), else from one
    // row-major copy.
    let in_place = view.outer_iter().all(|row| row.to_slice().is_some());
    let copy = if in_place { Cow::Borrowed(&[][..]) } else { args::row_major(view, "codes")? };
    let mut row_slices = alloc::with_capacity(Some(rows), || format!("codes with {rows} rows (their row list)"))?;
    if in_place {
        row_slices.extend(view.outer_iter().filter_map(|row| row.to_slice()));
    } else {
        row_slices.extend(copy.chunks_exact(row_bytes.max(1)).take(rows));
        row_slices.resize(rows, &[]);
    }
    let pool = pool::start(threads)?;
    py.detach(|| pool.install(|| codes::hamming_matrix_into(&row_slices, &mut matrix)))?;
    PyArray1::from_vec(py, matrix).reshape([rows, rows])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hamming_matrix, m)?)
}
