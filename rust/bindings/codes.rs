//! `hamming_matrix` over `crate::codes`: a packed uint8 (rows, bytes) numpy array in, a uint64 (rows, rows) out.

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::{pool, GradSignError};

/// Hamming distances between the rows of bit-packed codes, on a local pool with the GIL released.
#[pyfunction]
#[pyo3(signature = (codes, *, num_threads = None))]
fn hamming_matrix<'py>(
    py: Python<'py>,
    codes: PyReadonlyArray2<'py, u8>,
    num_threads: Option<usize>,
) -> PyResult<Bound<'py, PyArray2<u64>>> {
    let [rows, row_bytes] = [codes.shape()[0], codes.shape()[1]];
    let bytes: Vec<u8> = match codes.as_slice() {
        Ok(s) => s.to_vec(),
        Err(_) => codes.as_array().iter().copied().collect(),
    };
    let pool = pool::build(num_threads)?;
    let matrix = py
        .detach(|| pool.install(|| crate::codes::hamming_matrix(&bytes, rows, row_bytes)))
        .map_err(|e| GradSignError::new_err(e.to_string()))?;
    PyArray1::from_vec(py, matrix).reshape([rows, rows])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(hamming_matrix, m)?)
}
