//! Local rayon pools: a library never builds or owns the global pool. The one place `num_threads` is checked.

use pyo3::prelude::*;

use super::{args, errors};

/// The most worker threads a pool may have: far more than any machine's cores, few enough to start in
/// milliseconds.
pub const MAX_THREADS: usize = 1024;

/// The thread count a `num_threads` argument asks for: an integer in 1..=MAX_THREADS, or None for one per
/// available core (at most MAX_THREADS).
pub fn threads(num_threads: Option<&Bound<'_, PyAny>>) -> PyResult<usize> {
    match num_threads {
        Some(value) => Ok(args::integer(value, "num_threads", 1, MAX_THREADS as i128)? as usize),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_THREADS)),
    }
}

/// A pool of `threads` workers; failing to start them is a resource failure (RuntimeError), not bad input.
pub fn start(threads: usize) -> PyResult<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| errors::resource_failure(format!("cannot start {threads} worker threads (num_threads): {e}")))
}
