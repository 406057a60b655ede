//! Benchmarks live beside this crate.
