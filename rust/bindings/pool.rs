//! Local rayon pools: a library never builds or owns the global pool.

use pyo3::prelude::*;

use super::GradSignError;

/// A pool of `num_threads` workers (None: one per available core).
pub fn build(num_threads: Option<usize>) -> PyResult<rayon::ThreadPool> {
    if num_threads == Some(0) {
        return Err(GradSignError::new_err("num_threads must be >= 1 (or None for all cores)"));
    }
    let threads = num_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| GradSignError::new_err(format!("cannot start {threads} worker threads: {e}")))
}
