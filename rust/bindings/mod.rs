//! The `gradsign_rs._core` extension module: one file per core module, each only converting and delegating.
//!
//! Every argument goes through `args` (bad input: `GradSignError` naming the argument), every error of the core
//! through the one mapping in `errors` (bad input: `GradSignError`; memory: `MemoryError`), every thread count
//! through `pool`. Nothing here panics on input: a failure is a Python exception, never an abort.

use pyo3::prelude::*;

mod accumulator;
mod args;
mod codes;
mod errors;
mod pool;
mod stats;

pyo3::create_exception!(
    gradsign_rs._core,
    GradSignError,
    pyo3::exceptions::PyValueError,
    "Bad input to gradsign-rs: the message names the file, node, op, shape or value at fault."
);

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("GradSignError", m.py().get_type::<GradSignError>())?;
    accumulator::register(m)?;
    stats::register(m)?;
    codes::register(m)?;
    Ok(())
}
