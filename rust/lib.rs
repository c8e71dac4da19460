//! gradsign-rs core: pure-Rust hot paths (no Python in these modules) and, behind the `python`
//! feature, the thin PyO3 layer in `bindings/` that converts types, maps errors and releases the GIL.

pub mod accumulator;
pub mod alloc;
pub mod codes;
pub mod rank;
pub mod resample;

#[cfg(feature = "python")]
mod bindings;
