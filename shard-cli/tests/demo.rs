//! The README's first command, as a user runs it.
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use std::process::Command;

#[test]
fn demo_restores_the_sample_after_losing_two_nodes() {
    let out = Command::new(env!("CARGO_BIN_EXE_shard"))
        .arg("demo")
        .output()
        .expect("run shard demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "exit {:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("Stopped 2 of the 5 nodes"), "{stdout}");
    assert!(
        stdout.contains("The bytes match: 3 of 5 nodes were enough."),
        "{stdout}"
    );
    // The two SHA-256 lines agree.
    let hashes: Vec<&str> = stdout
        .lines()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("original SHA-256: ")
                .or_else(|| l.trim().strip_prefix("restored SHA-256: "))
        })
        .collect();
    assert_eq!(hashes.len(), 2, "{stdout}");
    assert_eq!(hashes[0], hashes[1]);
}

#[test]
fn unknown_command_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_shard"))
        .arg("frobnicate")
        .output()
        .expect("run shard");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}
