//! Examples that embed the shard libraries; see the `.rs` files beside this folder.
//!
//! - `split_reassemble`: split a file into shares in a folder, rebuild it from any `k`.
//! - `split_rss`: stream gigabytes through the store pipeline and print throughput and peak
//!   memory.
