//! Python class `SignAccumulator` over `crate::accumulator::SignAccumulator`.

use std::sync::{Mutex, MutexGuard};

use numpy::ndarray::{ArrayView2, Axis, Ix2, IxDyn};
use numpy::{PyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::{args, errors, pool};
use crate::accumulator::{AccumulatorError, SignAccumulator, SignValue};
use crate::alloc;

/// Blocks smaller than this are reduced with the GIL held: releasing it costs more than the work.
const DETACH_THRESHOLD: usize = 1 << 15;
/// Values per row-major copy of a block that is neither C- nor Fortran-ordered: one copy this size at a time.
const COPY_CHUNK: usize = 1 << 20;

#[pyclass(frozen, name = "SignAccumulator", module = "gradsign_rs._core")]
pub struct PySignAccumulator {
    // The lock makes concurrent updates from several Python threads safe while the GIL is released.
    inner: Mutex<SignAccumulator>,
    pool: rayon::ThreadPool,
}

/// Add a `(rows, cols)` view of any strides: in place when C- or Fortran-ordered, a view broadcast along the
/// samples or the weights (stride 0) in time of its distinct values, anything else through bounded row-major
/// copies.
fn update_view<T: SignValue>(
    acc: &mut SignAccumulator,
    offset: usize,
    view: ArrayView2<'_, T>,
    pool: &rayon::ThreadPool,
) -> Result<(), AccumulatorError> {
    let (rows, cols) = view.dim();
    if let Some(block) = view.to_slice() {
        return acc.update_rows(offset, block, rows, cols, Some(pool));
    }
    if let Some(block) = view.t().to_slice() {
        return acc.update_columns(offset, block, rows, cols, Some(pool));
    }
    // Every check before the first counter changes: a refused block leaves the accumulator as it was.
    acc.check_update(offset, rows, cols)?;
    let what = || format!("block of shape ({rows}, {cols}) (a row-major copy of its rows)");
    if view.strides()[0] == 0 && rows > 1 {
        let row = view.row(0);
        return match row.to_slice() {
            Some(row) => acc.update_repeated(offset, row, rows),
            None => {
                let mut copy = alloc::with_capacity(Some(cols), what)?;
                copy.extend(row.iter().copied());
                acc.update_repeated(offset, &copy, rows)
            }
        };
    }
    if view.strides()[1] == 0 && cols > 1 {
        let column = view.column(0);
        return match column.to_slice() {
            Some(column) => acc.update_uniform_rows(offset, column, cols),
            None => {
                let mut copy = alloc::with_capacity(Some(rows), what)?;
                copy.extend(column.iter().copied());
                acc.update_uniform_rows(offset, &copy, cols)
            }
        };
    }
    let chunk_rows = (COPY_CHUNK / cols.max(1)).max(1);
    let mut copy = alloc::with_capacity(Some(chunk_rows.min(rows) * cols), what)?;
    for chunk in view.axis_chunks_iter(Axis(0), chunk_rows) {
        copy.clear();
        copy.extend(chunk.iter().copied());
        acc.update_rows(offset, &copy, chunk.nrows(), cols, Some(pool))?;
    }
    Ok(())
}

#[pymethods]
impl PySignAccumulator {
    #[new]
    #[pyo3(signature = (n_weights, *, num_threads = None))]
    fn new(n_weights: &Bound<'_, PyAny>, num_threads: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let n_weights = args::size(n_weights, "n_weights", 0)?;
        let threads = pool::threads(num_threads)?;
        let inner = SignAccumulator::try_new(n_weights)?;
        Ok(Self { inner: Mutex::new(inner), pool: pool::start(threads)? })
    }

    /// Add sign(block) to the counters of weights `offset .. offset + len`.
    ///
    /// `block` is 1-D `(len,)` (one sample) or 2-D `(B, len)` (B samples) of any layout; float32 and float64
    /// are read as they are, float16, integers and bool converted to float32 (exact for a sign); NaN and 0
    /// count 0.
    #[pyo3(signature = (offset, block))]
    fn update(&self, py: Python<'_>, offset: &Bound<'_, PyAny>, block: &Bound<'_, PyAny>) -> PyResult<()> {
        let offset = args::size(offset, "offset", 0)?;
        let array = args::ndarray(block, "block")?;
        if !matches!(array.ndim(), 1 | 2) {
            return Err(errors::bad_argument(format!(
                "block must be 1-D (len,) or 2-D (samples, len), got {}",
                args::describe_array(&array)
            )));
        }
        match args::kind(&array) {
            (b'f', 8) => self.update_typed::<f64>(py, offset, &array),
            (b'f', 2 | 4) | (b'b' | b'i' | b'u', _) => self.update_typed::<f32>(py, offset, &array),
            _ => Err(errors::bad_argument(format!(
                "block must hold real numbers (float16/32/64, integers or bool), got {}",
                args::describe_array(&array)
            ))),
        }
    }

    /// The exact GradSign score Σ_k |count_k| (a Python int).
    fn score(&self) -> PyResult<u64> {
        Ok(self.lock()?.score())
    }

    /// Σ|count| per segment `[bounds[s], bounds[s+1])`, for the per-layer breakdown.
    fn segment_scores(&self, bounds: &Bound<'_, PyAny>) -> PyResult<Vec<u64>> {
        let bounds = args::sizes(bounds, "bounds")?;
        Ok(self.lock()?.segment_scores(&bounds)?)
    }

    /// A copy of the per-weight counters (int32, |count| <= samples).
    fn counts<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyArray1<i32>>> {
        let acc = self.lock()?;
        let n = acc.n_weights();
        let mut copy = alloc::with_capacity(Some(n), || format!("counts() of {n} weights (their copy)"))?;
        copy.extend_from_slice(acc.counts());
        Ok(PyArray1::from_vec(py, copy))
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
    fn lock(&self) -> PyResult<MutexGuard<'_, SignAccumulator>> {
        self.inner.lock().map_err(|_| errors::poisoned("the accumulator"))
    }

    fn update_typed<T: SignValue + numpy::Element>(
        &self,
        py: Python<'_>,
        offset: usize,
        array: &Bound<'_, numpy::PyUntypedArray>,
    ) -> PyResult<()> {
        let typed = args::typed::<T, IxDyn>(array, "block")?;
        let block = args::readonly(&typed, "block")?;
        let view = block.as_array();
        let view = if view.ndim() == 1 { view.insert_axis(Axis(0)) } else { view };
        let view = view.into_dimensionality::<Ix2>().map_err(|e| errors::bad_argument(format!("block: {e}")))?;
        let run = || -> PyResult<()> { Ok(update_view(&mut *self.lock()?, offset, view, &self.pool)?) };
        if view.len() >= DETACH_THRESHOLD {
            py.detach(run)
        } else {
            run()
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySignAccumulator>()
}
