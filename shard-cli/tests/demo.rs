//! The README's first command, as a user runs it: `shard demo`, then the CLI against the node it
//! leaves running, then Ctrl-C.
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

use shard_testkit::nodes as common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

#[test]
fn demo_stores_loses_two_nodes_restores_and_stops_on_ctrl_c() {
    let keep = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::shard_bin())
        .arg("--home")
        .arg(keep.path())
        .arg("demo")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, rx) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(line) => {
                let done = line.contains("Ctrl-C stops the demo");
                seen.push(line);
                if done {
                    break;
                }
            }
            Err(e) => panic!("demo stalled ({e}); output so far:\n{}", seen.join("\n")),
        }
    }
    let text = seen.join("\n");
    assert!(text.contains("coded 3-of-5"), "{text}");
    assert!(text.contains("Stopped node4 and node5"), "{text}");
    assert!(
        text.contains("The bytes match: 3 of 5 nodes were enough."),
        "{text}"
    );
    let hashes: Vec<&str> = seen
        .iter()
        .filter_map(|l| {
            l.trim()
                .strip_prefix("original SHA-256: ")
                .or_else(|| l.trim().strip_prefix("restored SHA-256: "))
        })
        .collect();
    assert_eq!(hashes.len(), 2, "{text}");
    assert_eq!(hashes[0], hashes[1]);

    // While it runs, the CLI works against node1.
    let ls = common::run_json(&keep.path().join("node1"), &["ls"]);
    assert_eq!(ls["files"][0]["name"], "family-papers.txt");
    let peers = common::run_json(&keep.path().join("node1"), &["peers"]);
    let online = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["online"] == true)
        .count();
    assert_eq!(online, 2, "node2 and node3 still run: {peers}");

    // Ctrl-C ends it cleanly.
    assert!(
        Command::new("kill")
            .arg("-INT")
            .arg(child.id().to_string())
            .status()
            .unwrap()
            .success()
    );
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "demo did not stop on Ctrl-C"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "{status}");
    let rest: Vec<String> = rx.try_iter().collect();
    assert!(rest.iter().any(|l| l.contains("demo stopped")), "{rest:?}");
}

#[test]
fn unknown_command_is_a_usage_error() {
    let out = Command::new(common::shard_bin())
        .arg("frobnicate")
        .output()
        .expect("run shard");
    assert_eq!(out.status.code(), Some(2), "usage errors exit 2");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unrecognized subcommand"));
}
