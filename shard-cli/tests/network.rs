//! Nodes as their owners run them: init, serve, invite, join, peers, stop — real processes of
//! the `shard` binary talking over 127.0.0.1.
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

use std::time::Duration;

use common::{TestNode, stderr, stdout};

#[test]
fn two_nodes_pair_and_see_each_other_online() {
    let alpha = TestNode::start("alpha");
    let beta = TestNode::start("beta");
    let invite = alpha.json(&["invite"]);
    let code = invite["code"].as_str().unwrap();
    assert!(code.starts_with("SHARD2-"));
    assert!(invite["valid_for_secs"].as_u64().unwrap() > 590);

    let out = beta.run(&["join", code]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("paired with \"alpha\""),
        "{}",
        stdout(&out)
    );

    alpha.wait_online(&["beta"], Duration::from_secs(10));
    beta.wait_online(&["alpha"], Duration::from_secs(10));
    let peers = alpha.peers();
    assert_eq!(peers.len(), 1);
    let p = &peers[0];
    assert_eq!(p["id"].as_str().unwrap(), beta.id());
    assert!(p["addr"].as_str().unwrap().starts_with("127.0.0.1:"));
    // Round-trip time and usage come from the first ping.
    std::thread::sleep(Duration::from_millis(300));
    let p = &alpha.peers()[0];
    assert!(p["rtt_ms"].as_f64().is_some(), "{p}");
    assert_eq!(p["used"].as_u64(), Some(0), "{p}");
    // The human table names the peer and says it is online.
    let table = stdout(&alpha.run(&["peers"]));
    assert!(
        table.contains("beta") && table.contains("online"),
        "{table}"
    );
}

#[test]
fn wrong_and_reused_codes_fail_clearly_and_pin_nothing() {
    let alpha = TestNode::start("alpha");
    let beta = TestNode::start("beta");
    let gamma = TestNode::start("gamma");
    let code = alpha.json(&["invite"])["code"]
        .as_str()
        .unwrap()
        .to_string();

    // A mistyped code: caught by its checksum before any connection.
    let mut typo = code.clone();
    let last = typo.pop().unwrap();
    typo.push(if last == 'A' { 'B' } else { 'A' });
    let out = beta.run(&["join", &typo]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("mistyped"), "{}", stderr(&out));

    // The right code works once…
    assert!(beta.run(&["join", &code]).status.success());
    // …and never again, for anyone.
    let out = gamma.run(&["join", &code]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("already used"), "{}", stderr(&out));
    assert!(gamma.peers().is_empty(), "gamma pinned something");
    let names: Vec<String> = alpha
        .peers()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, vec!["beta"]);
    // The inviting side says so too.
    std::thread::sleep(Duration::from_millis(200));
    assert!(alpha.log().contains("already used"), "{}", alpha.log());
}

#[test]
fn an_expired_code_fails_clearly() {
    let alpha = TestNode::start("alpha");
    let beta = TestNode::start("beta");
    let code = alpha.json(&["invite", "--valid-for", "1"])["code"]
        .as_str()
        .unwrap()
        .to_string();
    std::thread::sleep(Duration::from_millis(2100));
    let out = beta.run(&["join", &code]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("expired"), "{}", stderr(&out));
    assert!(beta.peers().is_empty());
}

#[test]
fn a_restarted_peer_is_reconnected_without_help() {
    let alpha = TestNode::start("alpha");
    let mut beta = TestNode::start("beta");
    alpha.pair_with(&beta);
    alpha.wait_online(&["beta"], Duration::from_secs(10));
    beta.kill9();
    // Alpha notices the loss…
    let start = std::time::Instant::now();
    while alpha.peers()[0]["online"] == true {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "alpha never noticed beta died"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // …and once beta is back (same port, as after a reboot), reconnects by itself.
    let port = alpha.peers()[0]["addrs"][0]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_string();
    beta.serve(&["--listen", &format!("127.0.0.1:{port}")]);
    alpha.wait_online(&["beta"], Duration::from_secs(40));
    beta.wait_online(&["alpha"], Duration::from_secs(40));
}

#[test]
fn sigterm_stops_cleanly_and_the_cli_then_explains() {
    let mut alpha = TestNode::start("alpha");
    assert_eq!(alpha.stop(), Some(0));
    assert!(!alpha.home().join("api.addr").exists());
    let out = alpha.run(&["peers"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("shard serve"), "{}", stderr(&out));
}

#[test]
fn init_refuses_to_overwrite_a_node() {
    let alpha = TestNode::init("alpha");
    let out = alpha.run(&["init", "--name", "again"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("already a node's home"),
        "{}",
        stderr(&out)
    );
    let out = alpha.run(&["init", "--api", "0.0.0.0:7715"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_code_this_node_never_issued_is_refused_by_it() {
    let alpha = TestNode::start("alpha");
    let beta = TestNode::start("beta");
    // A well-formed code naming alpha and its address, with a secret alpha never made.
    let status = alpha.json(&["status"]);
    let node = shard_net::identity::parse_fingerprint(status["id"].as_str().unwrap()).unwrap();
    let addr = status["listen"].as_str().unwrap().parse().unwrap();
    let forged = shard_net::pairing::Invites::default()
        .create(node, vec![addr], None, Duration::from_secs(600))
        .unwrap();
    let out = beta.run(&["join", forged.encode().as_str()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("unknown invite code"),
        "{}",
        stderr(&out)
    );
    assert!(alpha.peers().is_empty() && beta.peers().is_empty());
}

/// A code whose node is reached only through a plain-HTTP relay the joiner does not use (its
/// LAN address means nothing here): the joiner never contacts a plain-HTTP relay it was not
/// given (nothing would authenticate it), tries its own relays and the address, and then says
/// which relay it would not use and what to do.
#[test]
fn a_code_behind_a_plain_http_relay_not_ours_is_refused_naming_it() {
    let mut beta = TestNode::init("beta");
    // Its own relay: nothing answers there.
    beta.serve(&["--relay", "http://127.0.0.1:9"]);
    let node = shard_net::identity::NodeIdentity::generate()
        .unwrap()
        .node_id();
    // An address in another home's LAN: nothing listens there from here.
    let elsewhere = {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        closed.local_addr().unwrap()
    };
    let code = shard_net::pairing::Invites::default()
        .create(
            node,
            vec![elsewhere],
            Some(shard_net::transport::IrohRoute {
                key: [9; 32],
                relay: Some("http://10.20.30.40:3340".into()),
            }),
            Duration::from_secs(600),
        )
        .unwrap();
    let start = std::time::Instant::now();
    let out = beta.run(&["join", code.encode().as_str()]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains("http://10.20.30.40:3340")
            && said.contains("a relay this node does not contact")
            && said.contains("use an HTTPS relay"),
        "{said}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(40),
        "it waited too long"
    );
    assert!(beta.peers().is_empty());
}

/// A relay URL that points at something that is not a relay (here a web server that answers
/// 404 to everything): the node starts at once, says which relay it cannot reach and why, and
/// its LAN peers work as before.
#[test]
fn a_relay_that_is_not_one_is_named_and_lan_peers_keep_working() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    listener.set_nonblocking(true).unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    // Bounded: it stops when told, or after two minutes.
    let server = std::thread::spawn(move || {
        let start = std::time::Instant::now();
        while !stopped.load(std::sync::atomic::Ordering::Relaxed)
            && start.elapsed() < Duration::from_secs(120)
        {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
                    let mut buf = [0u8; 2048];
                    let _ = conn.read(&mut buf);
                    let _ = conn.write_all(
                        b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                    );
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    });

    let mut alpha = TestNode::init("alpha");
    alpha.serve(&["--relay", &url]);
    let start = std::time::Instant::now();
    loop {
        let status = alpha.json(&["status"]);
        let unreachable = status["wan"]["unreachable"].to_string();
        if unreachable.contains(&url) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "status never named the relay as unreachable: {status}\n{}",
            alpha.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    alpha.wait_log("no relay reachable", Duration::from_secs(30));
    let warned = alpha
        .log()
        .lines()
        .any(|l| l.contains("WARN") && l.contains(url.trim_start_matches("http://")));
    assert!(warned, "no warning names the relay:\n{}", alpha.log());

    // A LAN peer pairs and is reached over the LAN.
    let beta = TestNode::start("beta");
    alpha.pair_with(&beta);
    alpha.wait_online(&["beta"], Duration::from_secs(15));
    let peers = alpha.peers();
    assert_eq!(peers[0]["path"], "lan", "{peers:?}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = server.join();
}
