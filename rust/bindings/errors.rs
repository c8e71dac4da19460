//! The one mapping from the core's errors to Python exceptions: bad input is `GradSignError` (naming the
//! argument), a buffer the machine cannot hold is `MemoryError` (naming the argument and the bytes), threads
//! that cannot be started or a broken internal invariant `RuntimeError`. No other file builds an exception.

use pyo3::exceptions::{PyMemoryError, PyRuntimeError};
use pyo3::PyErr;

use super::GradSignError;
use crate::accumulator::AccumulatorError;
use crate::alloc::AllocError;
use crate::codes::CodesError;
use crate::rank::RankError;

impl From<AllocError> for PyErr {
    fn from(e: AllocError) -> Self {
        PyMemoryError::new_err(e.to_string())
    }
}

impl From<AccumulatorError> for PyErr {
    fn from(e: AccumulatorError) -> Self {
        match e {
            AccumulatorError::Alloc(e) => e.into(),
            e => bad_argument(e.to_string()),
        }
    }
}

impl From<RankError> for PyErr {
    fn from(e: RankError) -> Self {
        match e {
            RankError::Alloc(e) => e.into(),
            e => bad_argument(e.to_string()),
        }
    }
}

impl From<CodesError> for PyErr {
    fn from(e: CodesError) -> Self {
        match e {
            CodesError::Alloc(e) => e.into(),
            e => bad_argument(e.to_string()),
        }
    }
}

/// Bad input: the one constructor of `GradSignError` in the bindings (the message names the argument).
pub fn bad_argument(message: impl Into<String>) -> PyErr {
    GradSignError::new_err(message.into())
}

/// A resource the process could not get other than memory (e.g. threads): not the caller's input.
pub fn resource_failure(message: impl Into<String>) -> PyErr {
    PyRuntimeError::new_err(message.into())
}

/// A lock poisoned by a panic in another thread: an internal failure, not the caller's input.
pub fn poisoned(what: &str) -> PyErr {
    PyRuntimeError::new_err(format!("{what} is unusable: an earlier update panicked while holding its lock"))
}
