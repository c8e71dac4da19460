//! Python arguments to Rust values: every failure is a `GradSignError` that names the argument (and, for
//! arrays, the dtype or shape), never a raw `TypeError`/`OverflowError`. Arrays of another dtype are converted
//! only where the conversion is exact, and copies are sized through `crate::alloc` (a `MemoryError`, not an abort).

use std::borrow::Cow;

use numpy::ndarray::{ArrayView, Dimension};
use numpy::npyffi::NPY_ARRAY_ALIGNED;
use numpy::{Element, PyArray, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray, PyUntypedArrayMethods};
use pyo3::exceptions::PyOverflowError;
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyByteArray, PyBytes, PySlice, PyString, PyTuple};

use super::errors;
use crate::alloc;

/// A value's repr for a message, cut to a readable length.
fn short_repr(value: &Bound<'_, PyAny>) -> String {
    let repr = value.repr().map_or_else(|_| "?".to_string(), |r| r.to_string());
    if repr.chars().count() > 60 {
        format!("{}...", repr.chars().take(57).collect::<String>())
    } else {
        repr
    }
}

/// `type repr` of a value for a message.
fn describe(value: &Bound<'_, PyAny>) -> String {
    let type_name = value.get_type().name().map_or_else(|_| "object".to_string(), |n| n.to_string());
    format!("{type_name} {}", short_repr(value))
}

fn bad(message: String) -> PyErr {
    errors::bad_argument(message)
}

/// An integer argument in `min..=max` (Python int or numpy integer; bool, float and str are refused).
pub fn integer(value: &Bound<'_, PyAny>, name: &str, min: i128, max: i128) -> PyResult<i128> {
    // Bounds that are the Rust type's own limits are not the argument's rule: only the minimum is stated.
    let unbounded = max == usize::MAX as i128 || max == u64::MAX as i128;
    let range = if unbounded { format!(">= {min}") } else { format!("in {min}..={max}") };
    let too_large = || bad(format!("{name} = {} is too large: at most {max} is supported", short_repr(value)));
    if value.is_instance_of::<PyBool>() {
        return Err(bad(format!("{name} must be an integer {range}, got {}", describe(value))));
    }
    match value.extract::<i128>() {
        Ok(n) if (min..=max).contains(&n) => Ok(n),
        Ok(n) if n > max && unbounded => Err(too_large()),
        Ok(n) => Err(bad(format!("{name} must be an integer {range}, got {n}"))),
        Err(e) if e.is_instance_of::<PyOverflowError>(value.py()) => Err(too_large()),
        Err(_) => Err(bad(format!("{name} must be an integer {range}, got {}", describe(value)))),
    }
}

/// A count, size, offset or index: an integer >= `min` that fits in a usize.
pub fn size(value: &Bound<'_, PyAny>, name: &str, min: usize) -> PyResult<usize> {
    integer(value, name, min as i128, usize::MAX as i128).map(|n| n as usize)
}

/// A seed: an integer in 0..2**64.
pub fn seed(value: &Bound<'_, PyAny>, name: &str) -> PyResult<u64> {
    integer(value, name, 0, u64::MAX as i128).map(|n| n as u64)
}

/// A real number (Python float or int, numpy floating or integer; bool and str are refused).
pub fn real(value: &Bound<'_, PyAny>, name: &str) -> PyResult<f64> {
    if value.is_instance_of::<PyBool>() || value.is_instance_of::<PyString>() {
        return Err(bad(format!("{name} must be a real number, got {}", describe(value))));
    }
    value.extract::<f64>().map_err(|_| bad(format!("{name} must be a real number, got {}", describe(value))))
}

/// A string argument.
pub fn string(value: &Bound<'_, PyAny>, name: &str) -> PyResult<String> {
    match value.cast::<PyString>() {
        Ok(s) => Ok(s.to_string()),
        Err(_) => Err(bad(format!("{name} must be a string, got {}", describe(value)))),
    }
}

/// The items of a list, tuple or other sized collection (not a string or bytes), each named `name[i]` by callers.
pub fn items<'py>(value: &Bound<'py, PyAny>, name: &str) -> PyResult<Vec<Bound<'py, PyAny>>> {
    let refuse = || bad(format!("{name} must be a list, got {}", describe(value)));
    if value.is_instance_of::<PyString>() || value.is_instance_of::<PyBytes>() || value.is_instance_of::<PyByteArray>()
    {
        return Err(refuse());
    }
    let len = value.len().map_err(|_| refuse())?;
    let mut out = alloc::with_capacity(Some(len), || format!("{name} of {len} items (their list)"))?;
    for item in value.try_iter().map_err(|_| refuse())? {
        if out.len() == len {
            return Err(bad(format!("{name} changed length while it was read")));
        }
        out.push(item?);
    }
    Ok(out)
}

/// A list of strings.
pub fn strings(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<String>> {
    items(value, name)?.iter().enumerate().map(|(i, item)| string(item, &format!("{name}[{i}]"))).collect()
}

/// A list of sizes (integers >= 0).
pub fn sizes(value: &Bound<'_, PyAny>, name: &str) -> PyResult<Vec<usize>> {
    items(value, name)?.iter().enumerate().map(|(i, item)| size(item, &format!("{name}[{i}]"), 0)).collect()
}

/// A numpy array argument (of any dtype, shape and layout).
pub fn ndarray<'py>(value: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyUntypedArray>> {
    match value.cast::<PyUntypedArray>() {
        Ok(array) => Ok(array.clone()),
        Err(_) => Err(bad(format!("{name} must be a numpy array, got {}", describe(value)))),
    }
}

/// The dtype's kind (numpy's one-letter code: b, i, u, f, c, O, U, ...) and item size in bytes.
pub fn kind(array: &Bound<'_, PyUntypedArray>) -> (u8, usize) {
    let dtype = array.dtype();
    (dtype.kind(), dtype.itemsize())
}

/// "shape (2, 3) and dtype float16" for messages.
pub fn describe_array(array: &Bound<'_, PyUntypedArray>) -> String {
    let shape: Vec<String> = array.shape().iter().map(|d| d.to_string()).collect();
    let comma = if shape.len() == 1 { "," } else { "" };
    format!("shape ({}{comma}) and dtype {}", shape.join(", "), array.dtype())
}

/// `array` as an array of `T`: itself when its dtype is `T` (native byte order) and its data aligned, otherwise
/// a converted copy (numpy's `astype`, which callers allow only where it keeps what they read exactly), sized
/// through `crate::alloc` first. A broadcast view is converted once per distinct value and broadcast again.
pub fn typed<'py, T: Element, D: Dimension>(
    array: &Bound<'py, PyUntypedArray>,
    name: &str,
) -> PyResult<Bound<'py, PyArray<T, D>>> {
    // SAFETY: `array` is a live numpy array; reading its flags field does not outlive it.
    let aligned = unsafe { (*array.as_array_ptr()).flags } & NPY_ARRAY_ALIGNED != 0;
    if aligned {
        if let Ok(typed) = array.cast::<PyArray<T, D>>() {
            return Ok(typed.clone());
        }
    }
    let py = array.py();
    let target = numpy::dtype::<T>(py);
    // Axes broadcast with stride 0 are converted at one position: the copy holds only the distinct values.
    let broadcast = array.shape().iter().zip(array.strides()).any(|(&d, &s)| s == 0 && d > 1);
    let compact = if broadcast {
        let index: Vec<Bound<'py, PySlice>> = array
            .shape()
            .iter()
            .zip(array.strides())
            .map(|(&d, &s)| if s == 0 && d > 1 { PySlice::new(py, 0, 1, 1) } else { PySlice::full(py) })
            .collect();
        array.get_item(PyTuple::new(py, index)?)?.cast_into::<PyUntypedArray>()?
    } else {
        array.clone()
    };
    alloc::check::<T>(Some(compact.len()), || format!("{name} of {} (its {target} copy)", describe_array(array)))?;
    let mut converted = compact.call_method1("astype", (target,))?;
    if broadcast {
        let shape = PyTuple::new(py, array.shape())?;
        converted = PyModule::import(py, "numpy")?.call_method1("broadcast_to", (converted, shape))?;
    }
    converted
        .cast_into::<PyArray<T, D>>()
        .map_err(|_| bad(format!("{name} of {} cannot be read", describe_array(array))))
}

/// A read-only view of `array`.
pub fn readonly<'py, T: Element, D: Dimension>(
    array: &Bound<'py, PyArray<T, D>>,
    name: &str,
) -> PyResult<numpy::PyReadonlyArray<'py, T, D>> {
    array.try_readonly().map_err(|e| bad(format!("{name} cannot be read: {e}")))
}

/// The values of a view in logical (row-major) order: borrowed when the view is C-contiguous, else copied once.
pub fn row_major<'a, T: Clone, D: Dimension>(view: ArrayView<'a, T, D>, name: &str) -> PyResult<Cow<'a, [T]>> {
    if let Some(slice) = view.to_slice() {
        return Ok(Cow::Borrowed(slice));
    }
    let len = view.len();
    let mut copy = alloc::with_capacity(Some(len), || format!("{name} of {len} values (its contiguous copy)"))?;
    copy.extend(view.iter().cloned());
    Ok(Cow::Owned(copy))
}
