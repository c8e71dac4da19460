//! Rank statistics over `crate::rank` and `crate::resample`: float64 numpy arrays in, Python floats out.

use std::borrow::Cow;

use numpy::ndarray::Ix1;
use numpy::{PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyUntypedArrayMethods};
use pyo3::prelude::*;

use super::{args, errors, pool};
use crate::rank::{self, NanPolicy, RankError, TauVariant};
use crate::resample::{self, CorrelateOptions, Method};

/// Inputs shorter than this are ranked with the GIL held: releasing it costs more than the work.
const DETACH_THRESHOLD: usize = 1 << 14;

/// A 1-D array of real numbers as float64: read as it is when float64, converted when float16/32, bool or an
/// integer of up to 32 bits (exact); anything else is refused, naming the argument and its dtype.
fn float64_array<'py>(value: &Bound<'py, PyAny>, name: &str) -> PyResult<PyReadonlyArray1<'py, f64>> {
    let array = args::ndarray(value, name)?;
    let exact = match args::kind(&array) {
        (b'f', 2 | 4 | 8) | (b'b', _) => true,
        (b'i' | b'u', size) => size <= 4,
        _ => false,
    };
    if array.ndim() != 1 || !exact {
        return Err(errors::bad_argument(format!(
            "{name} must be a 1-D array of float64 (or of float16/32, bool or integers of up to 32 bits, which \
             convert exactly), got {}",
            args::describe_array(&array)
        )));
    }
    args::readonly(&args::typed::<f64, Ix1>(&array, name)?, name)
}

/// The array's values, read in place when contiguous (copied once otherwise).
fn values<'a>(array: &'a PyReadonlyArray1<'_, f64>, name: &str) -> PyResult<Cow<'a, [f64]>> {
    args::row_major(array.as_array(), name)
}

/// Run `work` on two inputs, with the GIL released when they are large enough to pay for it.
fn on_pair<T: Send>(
    py: Python<'_>,
    [x, y]: [&Bound<'_, PyAny>; 2],
    names: [&'static str; 2],
    work: impl FnOnce(&[f64], &[f64]) -> Result<T, RankError> + Send,
) -> PyResult<T> {
    let (x, y) = (float64_array(x, names[0])?, float64_array(y, names[1])?);
    // Lengths, then the ranking's memory, before the inputs are copied (a broadcast view is long but small).
    if x.len() != y.len() {
        return Err(RankError::LengthMismatch { names, lens: [x.len(), y.len()] }.into());
    }
    rank::check_work(x.len().max(y.len()), &format!("{} and {}", names[0], names[1]))?;
    let (x, y) = (values(&x, names[0])?, values(&y, names[1])?);
    if x.len().max(y.len()) >= DETACH_THRESHOLD {
        Ok(py.detach(|| work(&x, &y))?)
    } else {
        Ok(work(&x, &y)?)
    }
}

/// A `nan_policy` argument (None: "omit", the default).
fn nan_policy(value: Option<&Bound<'_, PyAny>>) -> PyResult<NanPolicy> {
    match value {
        Some(value) => Ok(args::string(value, "nan_policy")?.parse::<NanPolicy>()?),
        None => Ok(NanPolicy::Omit),
    }
}

/// Spearman's rho (average ranks for ties), as scipy.stats.spearmanr's statistic.
#[pyfunction]
#[pyo3(signature = (x, y, *, nan_policy = None), text_signature = "(x, y, *, nan_policy='omit')")]
fn spearman(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    nan_policy: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    let policy = self::nan_policy(nan_policy)?;
    on_pair(py, [x, y], ["x", "y"], |x, y| rank::spearman(x, y, policy))
}

/// Kendall's tau-b or tau-c in O(n log n), as scipy.stats.kendalltau's statistic.
#[pyfunction]
#[pyo3(
    signature = (x, y, *, variant = None, nan_policy = None),
    text_signature = "(x, y, *, variant='b', nan_policy='omit')"
)]
fn kendall_tau(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    y: &Bound<'_, PyAny>,
    variant: Option<&Bound<'_, PyAny>>,
    nan_policy: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    let variant = match variant {
        Some(value) => args::string(value, "variant")?.parse::<TauVariant>()?,
        None => TauVariant::B,
    };
    let policy = self::nan_policy(nan_policy)?;
    on_pair(py, [x, y], ["x", "y"], |x, y| rank::kendall_tau(x, y, variant, policy))
}

/// Fraction of the true top-k found in the top-k by score.
#[pyfunction]
#[pyo3(signature = (scores, truth, k, *, nan_policy = None), text_signature = "(scores, truth, k, *, nan_policy='omit')")]
fn precision_at_k(
    py: Python<'_>,
    scores: &Bound<'_, PyAny>,
    truth: &Bound<'_, PyAny>,
    k: &Bound<'_, PyAny>,
    nan_policy: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    let k = args::size(k, "k", 1)?;
    let policy = self::nan_policy(nan_policy)?;
    on_pair(py, [scores, truth], ["scores", "truth"], |s, t| rank::precision_at_k(s, t, k, policy))
}

/// Best truth overall minus the best truth among the top-k by score.
#[pyfunction]
#[pyo3(signature = (scores, truth, k, *, nan_policy = None), text_signature = "(scores, truth, k, *, nan_policy='omit')")]
fn top_k_regret(
    py: Python<'_>,
    scores: &Bound<'_, PyAny>,
    truth: &Bound<'_, PyAny>,
    k: &Bound<'_, PyAny>,
    nan_policy: Option<&Bound<'_, PyAny>>,
) -> PyResult<f64> {
    let k = args::size(k, "k", 1)?;
    let policy = self::nan_policy(nan_policy)?;
    on_pair(py, [scores, truth], ["scores", "truth"], |s, t| rank::top_k_regret(s, t, k, policy))
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
    columns: &Bound<'py, PyAny>,
    truth: &Bound<'py, PyAny>,
    methods: &Bound<'py, PyAny>,
    bootstrap: &Bound<'py, PyAny>,
    seed: &Bound<'py, PyAny>,
    confidence: &Bound<'py, PyAny>,
    num_threads: Option<&Bound<'py, PyAny>>,
) -> PyResult<CorrelateArrays<'py>> {
    let columns: Vec<PyReadonlyArray1<'py, f64>> = args::items(columns, "columns")?
        .iter()
        .enumerate()
        .map(|(i, c)| float64_array(c, &format!("columns[{i}]")))
        .collect::<PyResult<_>>()?;
    let truth = float64_array(truth, "truth")?;
    let methods: Vec<Method> =
        args::strings(methods, "methods")?.iter().map(|m| m.parse::<Method>()).collect::<Result<_, _>>()?;
    let bootstrap = args::size(bootstrap, "bootstrap", 0)?;
    let options = CorrelateOptions {
        methods,
        bootstrap,
        seed: args::seed(seed, "seed")?,
        confidence: args::real(confidence, "confidence")?,
    };
    let threads = pool::threads(num_threads)?;
    if let Some((i, c)) = columns.iter().enumerate().find(|(_, c)| c.len() != truth.len()) {
        return Err(errors::bad_argument(format!(
            "columns[{i}] has {} values but truth has {}: the inputs must pair up",
            c.len(),
            truth.len()
        )));
    }
    rank::check_work(truth.len().saturating_mul(columns.len().max(1)), "columns and truth")?;
    let column_values: Vec<Cow<'_, [f64]>> =
        columns.iter().enumerate().map(|(i, c)| values(c, &format!("columns[{i}]"))).collect::<PyResult<_>>()?;
    let truth_values = values(&truth, "truth")?;
    let pool = pool::start(threads)?;
    let results = py.detach(|| {
        let slices: Vec<&[f64]> = column_values.iter().map(|c| c.as_ref()).collect();
        pool.install(|| resample::correlate(&slices, &truth_values, &options))
    })?;
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
fn bootstrap_rows<'py>(
    py: Python<'py>,
    n: &Bound<'py, PyAny>,
    bootstrap: &Bound<'py, PyAny>,
    seed: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyArray2<u32>>> {
    // n is bounded like every ranked input; bootstrap by what a numpy uint32 shape can hold (even with n = 0).
    let n = args::integer(n, "n", 0, rank::MAX_LEN as i128)? as usize;
    let max_bootstrap = isize::MAX as usize / std::mem::size_of::<u32>();
    let bootstrap = args::integer(bootstrap, "bootstrap", 0, max_bootstrap as i128)? as usize;
    let seed = args::seed(seed, "seed")?;
    let rows = py.detach(|| resample::bootstrap_rows(n, bootstrap, seed))?;
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
