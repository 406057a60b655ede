//! What strangers and paired peers can exhaust on a node: descriptors with handshakes that never
//! come, memory with connection storms, memory with answers never read. Each attack comes from
//! the test-only adversary (`shard_testkit::attacks`) against a real `shard serve`, and
//! each test checks what a user would: the API answers, a paired peer gets through, the node's
//! memory stays within its stated bound. Figures are printed (RELIABILITY.md keeps them).
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_precision_loss
)]
// The attacks live in the test-only adversary module.
#![cfg(feature = "adversary")]

use shard_testkit::nodes as common;

use std::time::{Duration, Instant};

use common::TestNode;
use shard_testkit::attacks;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// 1 100 connections that never start a handshake (from an address of their own): the node
/// keeps at most a few of them, its control API answers, a paired peer still gets in, and its
/// descriptors stay far from the limit.
#[test]
fn a_flood_of_idle_connections_leaves_room_for_peers_and_the_api() {
    // The flood is this process's own sockets.
    rlimit::increase_nofile_limit(4096).unwrap();
    let mut owner = TestNode::init("owner");
    owner.create_account("alice");
    owner.serve(&["--login", "alice"]);
    let mut peer = TestNode::start("peer0");
    owner.pair_with(&peer);
    owner.wait_online(&["peer0"], Duration::from_secs(15));
    let before = owner.open_fds();

    let rt = runtime();
    let stranger = "127.0.0.2".parse().unwrap();
    let held = rt.block_on(attacks::idle_connections(
        owner.listen_addr(),
        stranger,
        1100,
    ));
    println!(
        "{} of 1100 idle connections were accepted by the kernel",
        held.len()
    );
    let during = owner.open_fds();
    assert!(
        during < before + 64,
        "the node took {during} descriptors (from {before}) for a flood of silent connections"
    );
    // The API answers at once; the peer, restarted, connects again while the flood is held.
    let start = Instant::now();
    assert!(owner.run(&["status"]).status.success());
    println!("status answered in {:?} during the flood", start.elapsed());
    peer.stop();
    peer.restart(None);
    owner.wait_online(&["peer0"], Duration::from_secs(20));
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("letter.txt");
    std::fs::write(&file, b"still served").unwrap();
    assert!(owner.run(&["put", file.to_str().unwrap()]).status.success());
    drop(held);
    println!("descriptors: {before} before, {during} during the flood");
}

/// 20 000 connections made and dropped at once: the node's memory does not grow with them
/// (each used to leave its finished task behind until shutdown).
#[test]
fn a_storm_of_refused_connections_leaves_memory_flat() {
    let mut node = TestNode::init("target");
    node.serve(&[]);
    let rt = runtime();
    let addr = node.listen_addr();
    // Warm-up: buffers, the runtime's worker caches, the log's first lines.
    assert!(rt.block_on(attacks::connect_and_close(addr, 2_000)) > 1_900);
    std::thread::sleep(Duration::from_millis(500));
    let before = node.rss();
    let start = Instant::now();
    let made = rt.block_on(attacks::connect_and_close(addr, 20_000));
    let took = start.elapsed();
    std::thread::sleep(Duration::from_secs(1));
    let after = node.rss();
    let grown = after.saturating_sub(before);
    println!(
        "{made} connections in {took:?}: RSS {} → {} KiB ({} KiB more)",
        before / 1024,
        after / 1024,
        grown / 1024
    );
    assert!(made > 19_000, "only {made} connections made");
    assert!(grown < 4 << 20, "RSS grew by {} KiB", grown / 1024);
    assert!(node.run(&["status"]).status.success());
}

/// A paired node asks for 4-MiB shares, up to a million times over one connection, and never
/// reads an answer: the node stops reading its requests once the connection's memory budget
/// is spent, and its memory stays within that bound while the connection is held.
#[test]
fn a_peer_that_never_reads_its_answers_is_held_to_a_bound() {
    let mut node = TestNode::init("keeper");
    node.serve(&[]);
    let code = node.json(&["invite"])["code"].as_str().unwrap().to_string();
    let invite = shard_net::pairing::Invite::decode(&code).unwrap();
    let identity = shard_net::identity::NodeIdentity::generate().unwrap();
    let shares: Vec<shard_proto::Share> = (0..8u32)
        .map(|i| {
            let payload = common::random_bytes(4 << 20, u64::from(i) + 1);
            shard_proto::Share::new(
                shard_proto::ShareHeader::new(1, 2, 0, 4 << 20).unwrap(),
                bytes::Bytes::from(payload),
            )
            .unwrap()
        })
        .collect();
    let rt = runtime();
    let before = node.rss();
    const ASKED: usize = 1_000_000;
    let (written, held) = rt
        .block_on(attacks::ask_without_reading(
            node.listen_addr(),
            &identity,
            &invite.key(),
            [7; 16],
            &shares,
            ASKED,
        ))
        .unwrap();
    std::thread::sleep(Duration::from_secs(1));
    let after = node.rss();
    let grown = after.saturating_sub(before);
    let budget = u64::from(shard_net::rpc::CONNECTION_BUDGET_KIB) * 1024;
    println!(
        "{written} of {ASKED} requests for 4-MiB shares written, none read: RSS {} → {} MiB ({} MiB more; bound: the 32 MiB of shares stored + the connection's {} MiB)",
        before >> 20,
        after >> 20,
        grown >> 20,
        budget >> 20
    );
    // Had the node read them all, it would owe 4 TB of answers.
    assert!(
        written < ASKED,
        "the node kept reading requests it could not answer"
    );
    // The shares stored (page cache is not counted; the store's buffers are freed), plus at
    // most the connection's budget, plus slack for the runtime.
    assert!(
        grown < budget + (48 << 20),
        "RSS grew by {} MiB for one connection",
        grown >> 20
    );
    assert!(node.run(&["status"]).status.success());
    drop(held);
}
