//! Rank statistics over `crate::rank` and `crate::resample`: float64 numpy arrays in, Python floats out.

use std::borrow::Cow;

use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;

use super::{pool, GradSignError};
use crate::rank::{self, NanPolicy, RankError, TauVariant};
use crate::resample::{self, CorrelateOptions, Method};

/// Inputs shorter than this are ranked with the GIL held: releasing it costs more than the work.
const DETACH_THRESHOLD: usize = 1 << 14;

fn to_py_err(e: RankError) -> PyErr {
    GradSignError::new_err(e.to_string())
}

/// The array's values, read in place when contiguous (copied once otherwise).
fn values<'a>(array: &'a PyReadonlyArray1<'_, f64>) -> Cow<'a, [f64]> {
    match array.as_slice() {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => Cow::Owned(array.as_array().iter().copied().collect()),
    }
}

/// Run `work` on two inputs, with the GIL released when they are large enough to pay for it.
fn on_pair<T: Send>(
    py: Python<'_>,
    x: &PyReadonlyArray1<'_, f64>,
    y: &PyReadonlyArray1<'_, f64>,
    work: impl FnOnce(&[f64], &[f64]) -> Result<T, RankError> + Send,
) -> PyResult<T> {
    let (x, y) = (values(x), values(y));
    if x.len().max(y.len()) >= DETACH_THRESHOLD {
        py.detach(|| work(&x, &y)).map_err(to_py_err)
    } else {
        work(&x, &y).map_err(to_py_err)
    }
}

/// Spearman's rho (average ranks for ties), as scipy.stats.spearmanr's statistic.
#[pyfunction]
#[pyo3(signature = (x, y, *, nan_policy = "omit"))]
fn spearman(
    py: Python<'_>,
    x: PyReadonlyArray1<'_, f64>,
    y: PyReadonlyArray1<'_, f64>,
    nan_policy: &str,
) -> PyResult<f64> {
    let policy: NanPolicy = nan_policy.parse().map_err(to_py_err)?;
    on_pair(py, &x, &y, |x, y| rank::spearman(x, y, policy))
}

/// Kendall's tau-b or tau-c in O(n log n), as scipy.stats.kendalltau's statistic.
#[pyfunction]
#[pyo3(signature = (x, y, *, variant = "b", nan_policy = "omit"))]
fn kendall_tau(
    py: Python<'_>,
    x: PyReadonlyArray1<'_, f64>,
    y: PyReadonlyArray1<'_, f64>,
    variant: &str,
    nan_policy: &str,
) -> PyResult<f64> {
    let variant: TauVariant = variant.parse().map_err(to_py_err)?;
    let policy: NanPolicy = nan_policy.parse().map_err(to_py_err)?;
    on_pair(py, &x, &y, |x, y| rank::kendall_tau(x, y, variant, policy))
}

/// Fraction of the true top-k found in the top-k by score.
#[pyfunction]
#[pyo3(signature = (scores, truth, k, *, nan_policy = "omit"))]
fn precision_at_k(
    py: Python<'_>,
    scores: PyReadonlyArray1<'_, f64>,
    truth: PyReadonlyArray1<'_, f64>,
    k: usize,
    nan_policy: &str,
) -> PyResult<f64> {
    let policy: NanPolicy = nan_policy.parse().map_err(to_py_err)?;
    on_pair(py, &scores, &truth, |s, t| rank::precision_at_k(s, t, k, policy))
}

/// Best truth overall minus the best truth among the top-k by score.
#[pyfunction]
#[pyo3(signature = (scores, truth, k, *, nan_policy = "omit"))]
fn top_k_regret(
    py: Python<'_>,
    scores: PyReadonlyArray1<'_, f64>,
    truth: PyReadonlyArray1<'_, f64>,
    k: usize,
    nan_policy: &str,
) -> PyResult<f64> {
    let policy: NanPolicy = nan_policy.parse().map_err(to_py_err)?;
    on_pair(py, &scores, &truth, |s, t| rank::top_k_regret(s, t, k, policy))
}

/// Per-column correlation arrays: pairs used (C,), estimates, interval lows and highs (C, methods).
type CorrelateArrays<'py> =
    (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>, Bound<'py, PyArray2<f64>>);

/// Every score column against `truth` with percentile bootstrap intervals, on a local pool, GIL released.
#[pyfunction]
#[pyo3(signature = (columns, truth, *, methods, bootstrap, seed, confidence, num_threads = None))]
#[allow(clippy::too_many_arguments)]
fn correlate<'py>(
    py: Python<'py>,
    columns: Vec<PyReadonlyArray1<'py, f64>>,
    truth: PyReadonlyArray1<'py, f64>,
    methods: Vec<String>,
    bootstrap: usize,
    seed: u64,
    confidence: f64,
    num_threads: Option<usize>,
) -> PyResult<CorrelateArrays<'py>> {
    let methods: Vec<Method> = methods.iter().map(|m| m.parse()).collect::<Result<_, _>>().map_err(to_py_err)?;
    let options = CorrelateOptions { methods, bootstrap, seed, confidence };
    let pool = pool::build(num_threads)?;
    let column_values: Vec<Cow<'_, [f64]>> = columns.iter().map(values).collect();
    let truth_values = values(&truth);
    let results = py
        .detach(|| {
            let slices: Vec<&[f64]> = column_values.iter().map(|c| c.as_ref()).collect();
            pool.install(|| resample::correlate(&slices, &truth_values, &options))
        })
        .map_err(to_py_err)?;
    let shape = [results.len(), options.methods.len()];
    let matrix = |field: fn(&resample::ColumnCorrelation) -> &Vec<f64>| {
        PyArray1::from_vec(py, results.iter().flat_map(|r| field(r).iter().copied()).collect()).reshape(shape)
    };
    Ok((
        PyArray1::from_vec(py, results.iter().map(|r| r.n as u64).collect()),
        matrix(|r| &r.estimate)?,
        matrix(|r| &r.low)?,
        matrix(|r| &r.high)?,
    ))
}

/// The rows of each bootstrap resample `correlate` draws for `n` rows under `seed`: shape (bootstrap, n).
#[pyfunction]
#[pyo3(signature = (n, bootstrap, seed))]
fn bootstrap_rows(py: Python<'_>, n: usize, bootstrap: usize, seed: u64) -> PyResult<Bound<'_, PyArray2<u32>>> {
    crate::rank::check_len(n).map_err(to_py_err)?;
    let rows: Vec<u32> = (0..bootstrap as u64).flat_map(|b| resample::resample_rows(n, seed, b)).collect();
    PyArray1::from_vec(py, rows).reshape([bootstrap, n])
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(spearman, m)?)?;
    m.add_function(wrap_pyfunction!(kendall_tau, m)?)?;
    m.add_function(wrap_pyfunction!(precision_at_k, m)?)?;
    m.add_function(wrap_pyfunction!(top_k_regret, m)?)?;
    m.add_function(wrap_pyfunction!(correlate, m)?)?;
    m.add_function(wrap_pyfunction!(bootstrap_rows, m)?)?;
    Ok(())
}
