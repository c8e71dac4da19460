//! Python class `SignAccumulator` over `crate::accumulator::SignAccumulator`.

use std::borrow::Cow;
use std::sync::Mutex;

use numpy::{PyArray1, PyReadonlyArrayDyn, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::{pool, GradSignError};
use crate::accumulator::SignAccumulator;

/// Blocks smaller than this are reduced with the GIL held: releasing it costs more than the work.
const DETACH_THRESHOLD: usize = 1 << 15;

#[pyclass(frozen, name = "SignAccumulator", module = "gradsign_rs._core")]
pub struct PySignAccumulator {
    // The lock makes concurrent updates from several Python threads safe while the GIL is released.
    inner: Mutex<SignAccumulator>,
    pool: rayon::ThreadPool,
}

fn to_py_err(e: crate::accumulator::AccumulatorError) -> PyErr {
    GradSignError::new_err(e.to_string())
}

#[pymethods]
impl PySignAccumulator {
    #[new]
    #[pyo3(signature = (n_weights, *, num_threads = None))]
    fn new(n_weights: usize, num_threads: Option<usize>) -> PyResult<Self> {
        Ok(Self { inner: Mutex::new(SignAccumulator::new(n_weights)), pool: pool::build(num_threads)? })
    }

    /// Add sign(block) to the counters of weights `offset .. offset + len`.
    ///
    /// `block` is float32, 1-D `(len,)` (one sample) or 2-D `(B, len)` (B samples); NaN and 0 count 0.
    #[pyo3(signature = (offset, block))]
    fn update(&self, py: Python<'_>, offset: usize, block: PyReadonlyArrayDyn<'_, f32>) -> PyResult<()> {
        let (rows, cols) = match block.shape() {
            [len] => (1, *len),
            [rows, cols] => (*rows, *cols),
            shape => {
                return Err(GradSignError::new_err(format!(
                    "gradient block must be 1-D (len,) or 2-D (samples, len), got shape {shape:?}"
                )))
            }
        };
        // Non-contiguous views are copied once; contiguous ones are read in place.
        let data: Cow<'_, [f32]> = match block.as_slice() {
            Ok(s) => Cow::Borrowed(s),
            Err(_) => Cow::Owned(block.as_array().iter().copied().collect()),
        };
        let run = |data: &[f32]| {
            let mut acc = self.inner.lock().map_err(|_| GradSignError::new_err("accumulator lock poisoned"))?;
            acc.update_rows(offset, data, rows, cols, Some(&self.pool)).map_err(to_py_err)
        };
        if data.len() >= DETACH_THRESHOLD {
            py.detach(|| run(&data))
        } else {
            run(&data)
        }
    }

    /// The exact GradSign score Σ_k |count_k| (a Python int).
    fn score(&self) -> PyResult<u64> {
        Ok(self.lock()?.score())
    }

    /// Σ|count| per segment `[bounds[s], bounds[s+1])`, for the per-layer breakdown.
    fn segment_scores(&self, bounds: Vec<usize>) -> PyResult<Vec<u64>> {
        self.lock()?.segment_scores(&bounds).map_err(to_py_err)
    }

    /// A copy of the per-weight counters (int32, |count| <= samples).
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i32>>> {
        Ok(PyArray1::from_slice(py, self.lock()?.counts()))
    }

    fn reset(&self) -> PyResult<()> {
        self.lock()?.reset();
        Ok(())
    }

    #[getter]
    fn n_weights(&self) -> PyResult<usize> {
        Ok(self.lock()?.n_weights())
    }

    #[getter]
    fn num_threads(&self) -> usize {
        self.pool.current_num_threads()
    }

    fn __repr__(&self) -> PyResult<String> {
        Ok(format!("SignAccumulator(n_weights={}, num_threads={})", self.n_weights()?, self.num_threads()))
    }
}

impl PySignAccumulator {
    fn lock(&self) -> PyResult<std::sync::MutexGuard<'_, SignAccumulator>> {
        self.inner.lock().map_err(|_| GradSignError::new_err("accumulator lock poisoned"))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySignAccumulator>()
}
