//! criterion benchmarks live beside this folder (`pipeline.rs`); `scripts/bench-table` turns
//! their results into the table in BENCHMARKS.md.
