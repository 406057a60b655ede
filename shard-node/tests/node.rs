//! A running node in-process: a clean shutdown in the middle of a stream of puts finishes or
//! refuses each put, and never acknowledges one that is not on disk.
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

use std::time::Duration;

use bytes::Bytes;
use shard_net::rpc::PeerClient;
use shard_node::home::{Home, NodeConfig};
use shard_node::node::{Node, RunOptions};
use shard_proto::{Namespace, Share, ShareHeader};
use shard_store::ShareStore;

fn home(dir: &std::path::Path, name: &str) -> Home {
    let home = Home::new(dir.join(name));
    let mut config = NodeConfig::new(name);
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.api = "127.0.0.1:0".parse().unwrap();
    // mDNS off: tests on the host must not multicast on its real interfaces.
    config.discovery.mdns = shard_net::discovery::MdnsMode::Off;
    // No relays: tests never contact the public ones.
    config.net.relays = Some(Vec::new());
    home.init(&config).unwrap();
    home
}

fn share(i: u32) -> Share {
    let payload: Vec<u8> = (0..65_536u32)
        .map(|j| (j ^ i) as u8)
        .chain(i.to_le_bytes())
        .collect();
    Share::new(
        ShareHeader::new(1, 2, 0, payload.len() as u32).unwrap(),
        Bytes::from(payload),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_mid_stream_never_acknowledges_a_share_it_did_not_keep() {
    let dir = tempfile::tempdir().unwrap();
    let server_home = home(dir.path(), "server");
    let client_home = home(dir.path(), "client");
    let server = Node::start(server_home.clone(), RunOptions::default())
        .await
        .unwrap();
    let client = Node::start(client_home.clone(), RunOptions::default())
        .await
        .unwrap();
    // Pair them through an invite, as `shard join` does.
    let code = server.invite(None).unwrap().encode();
    client.join(&code).await.unwrap();
    let start = std::time::Instant::now();
    while client.online_clients().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10), "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let peer: std::sync::Arc<PeerClient> = client.online_clients()[0].clone();

    // 150 puts in flight; the server is told to stop part-way through.
    let shares: Vec<Share> = (0..150).map(share).collect();
    let mut tasks = Vec::new();
    for s in &shares {
        let (peer, s) = (peer.clone(), s.clone());
        tasks.push(tokio::spawn(async move {
            let ok = peer
                .put_share([7; 16], &s, Duration::from_secs(20))
                .await
                .is_ok();
            (s.id(), ok)
        }));
    }
    tokio::time::sleep(Duration::from_millis(30)).await;
    server.shutdown();
    server.stopped(Duration::from_secs(10)).await;
    let mut acknowledged = Vec::new();
    for t in tasks {
        let (id, ok) = t.await.unwrap();
        if ok {
            acknowledged.push(id);
        }
    }
    client.shutdown();
    client.stopped(Duration::from_secs(5)).await;
    drop(server);

    // Every acknowledged share is in the server's store, intact.
    let config = server_home.config().unwrap();
    let store = server_home.open_store(&config).unwrap();
    let ns = Namespace {
        owner: client.node_id(),
        vault: [7; 16],
    };
    for id in &acknowledged {
        let got = store.get(&ns, id).unwrap();
        assert_eq!(got.map(|s| s.id()), Some(*id), "acknowledged but not kept");
    }
    assert!(store.scrub(&ns).unwrap().corrupt.is_empty());
    println!(
        "{} of 150 puts acknowledged before the shutdown",
        acknowledged.len()
    );
    assert!(!server_home.api_addr_path().exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_announcement_claiming_a_paired_id_from_another_node_gets_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home, c_home) = (
        home(dir.path(), "a"),
        home(dir.path(), "b"),
        home(dir.path(), "c"),
    );
    let a = Node::start(a_home, RunOptions::default()).await.unwrap();
    let b = Node::start(b_home, RunOptions::default()).await.unwrap();
    let c = Node::start(c_home, RunOptions::default()).await.unwrap();
    a.join(&b.invite(None).unwrap().encode()).await.unwrap();
    let b_id = b.node_id();
    let start = std::time::Instant::now();
    while a.online_clients().is_empty() {
        assert!(start.elapsed() < Duration::from_secs(10));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    b.shutdown();
    b.stopped(Duration::from_secs(5)).await;
    while !a.online_clients().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "a never noticed b stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // "b is at c's address": the id is only a hint; the handshake there shows c's key.
    let c_addr: std::net::SocketAddr = c.status().unwrap().listen.parse().unwrap();
    a.inject_sighting(b_id, "b", vec![c_addr]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(a.online_clients().is_empty(), "connected to an impostor");
    let b_status = a.peers().into_iter().find(|p| p.name == "b").unwrap();
    assert!(!b_status.online);
    let err = b_status.last_error.unwrap_or_default();
    assert!(
        err.contains("expected node"),
        "the handshake must reject the impostor: {err}"
    );
    // c learned nothing and stored nothing.
    assert_eq!(c.status().unwrap().usage.shares, 0);
    assert!(c.peers().is_empty());
}

/// Starts the node of `home` again once its stopped predecessor has let go of the home (when
/// its last task has ended), trying until `deadline`.
async fn restart(home: &Home, deadline: std::time::Instant) -> std::sync::Arc<Node> {
    loop {
        match Node::start(home.clone(), RunOptions::default()).await {
            Ok(node) => return node,
            Err(shard_node::Error::HomeInUse { .. }) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            Err(e) => panic!("{e}"),
        }
    }
}

async fn connected(node: &Node, count: usize) {
    let start = std::time::Instant::now();
    while node.online_clients().len() < count {
        assert!(start.elapsed() < Duration::from_secs(10), "never connected");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn refused(result: shard_net::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(shard_net::Error::Remote {
            code: shard_proto::ErrorCode::Refused | shard_proto::ErrorCode::Unauthorized,
            message,
        }) => message,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Catalog heads over the real protocol: the keeper holds the newest from the vault's owner;
/// an older head, a head from another node and a hand-over without the vault's signature are
/// refused with a typed code and change nothing; with it, the shares and the head move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn catalog_heads_are_kept_newest_first_and_only_the_owner_or_the_vault_key_may_change_them() {
    let dir = tempfile::tempdir().unwrap();
    let start = |name: &'static str| {
        let h = home(dir.path(), name);
        async move { Node::start(h, RunOptions::default()).await.unwrap() }
    };
    let (keeper, owner, thief) = (
        start("keeper").await,
        start("owner").await,
        start("thief").await,
    );
    owner
        .join(&keeper.invite(None).unwrap().encode())
        .await
        .unwrap();
    thief
        .join(&keeper.invite(None).unwrap().encode())
        .await
        .unwrap();
    connected(&owner, 1).await;
    connected(&thief, 1).await;
    let (to_keeper, thief_to_keeper) = (
        owner.online_clients()[0].clone(),
        thief.online_clients()[0].clone(),
    );
    let t = Duration::from_secs(10);
    let keys = shard_crypto::VaultKeys::derive(&shard_crypto::VaultKey::generate().unwrap());
    let other = shard_crypto::VaultKeys::derive(&shard_crypto::VaultKey::generate().unwrap());
    let vault = keys.vault_id().0;
    let (ours, theirs) = (keys.authority(), other.authority());

    to_keeper.put_share(vault, &share(1), t).await.unwrap();
    to_keeper
        .put_catalog_head(vault, 2, Bytes::from_static(b"head two"), ours, t)
        .await
        .unwrap();
    let message = refused(
        to_keeper
            .put_catalog_head(vault, 1, Bytes::from_static(b"head one"), ours, t)
            .await,
    );
    assert!(message.contains("not newer than the one kept"), "{message}");
    let message = refused(
        thief_to_keeper
            .put_catalog_head(vault, 3, Bytes::from_static(b"forged"), theirs, t)
            .await,
    );
    assert!(message.contains("vault's authority"), "{message}");
    let former = vec![owner.node_id()];
    refused(
        thief_to_keeper
            .adopt(vault, former.clone(), theirs, t)
            .await,
    );
    // Heads are read with the vault's signature too: the thief's key reads nothing.
    refused(thief_to_keeper.catalog_heads(vault, theirs, t).await);
    let kept = thief_to_keeper.catalog_heads(vault, ours, t).await.unwrap();
    assert_eq!(kept, vec![(2, Bytes::from_static(b"head two"))]);
    // The thief sees none of the owner's shares.
    assert!(
        thief_to_keeper
            .get_share(vault, share(1).id(), t)
            .await
            .unwrap()
            .is_none()
    );

    // With the vault key (a recovery on a new machine), the vault moves: shares and head.
    assert_eq!(
        thief_to_keeper.adopt(vault, former, ours, t).await.unwrap(),
        1
    );
    assert!(
        thief_to_keeper
            .get_share(vault, share(1).id(), t)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        to_keeper
            .get_share(vault, share(1).id(), t)
            .await
            .unwrap()
            .is_none()
    );
    refused(
        to_keeper
            .put_catalog_head(vault, 3, Bytes::from_static(b"old owner"), ours, t)
            .await,
    );
    thief_to_keeper
        .put_catalog_head(vault, 3, Bytes::from_static(b"new owner"), ours, t)
        .await
        .unwrap();
}

/// "b is now at this address", said by anyone on the LAN, while a works with b: the working
/// connection stays until an address proves, by a handshake with b's pinned key, that b is
/// there. Neither an impostor's address nor a dead one takes it down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_sighting_does_not_drop_a_working_connection() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (home(dir.path(), "a"), home(dir.path(), "b"));
    // The impostor and the dead address are on other loopback addresses than b's: a sighting
    // at b's own address is no move at all, so only these make the node weigh a move.
    let c_home = Home::new(dir.path().join("c"));
    let mut c_config = NodeConfig::new("c");
    c_config.listen = "127.0.0.2:0".parse().unwrap();
    c_config.api = "127.0.0.2:0".parse().unwrap();
    c_config.discovery.mdns = shard_net::discovery::MdnsMode::Off;
    c_config.net.relays = Some(Vec::new());
    c_home.init(&c_config).unwrap();
    let a = Node::start(a_home, RunOptions::default()).await.unwrap();
    let b = Node::start(b_home, RunOptions::default()).await.unwrap();
    let c = Node::start(c_home, RunOptions::default()).await.unwrap();
    a.join(&b.invite(None).unwrap().encode()).await.unwrap();
    connected(&a, 1).await;
    let working = a.online_clients()[0].clone();
    let b_addr = working.peer().addr;

    // An impostor's address (c answers with its own key) and one where nobody listens.
    let c_addr: std::net::SocketAddr = c.status().unwrap().listen.parse().unwrap();
    assert_ne!(c_addr.ip(), b_addr.ip());
    let dead = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    a.inject_sighting(b.node_id(), "b", vec![c_addr, dead_addr]);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let now = a.online_clients();
    assert_eq!(now.len(), 1, "a lost b");
    assert!(
        std::sync::Arc::ptr_eq(&now[0], &working) && !working.is_closed(),
        "the working connection was dropped for a sighting nobody proved"
    );
    assert_eq!(
        a.peers()[0].addr.as_deref(),
        Some(b_addr.to_string().as_str())
    );
    working
        .put_share([7; 16], &share(1), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(b.status().unwrap().usage.shares, 1);
    // c was dialed, refused the key it did not know and learned nothing.
    assert_eq!(c.status().unwrap().usage.shares, 0);
    assert!(c.peers().is_empty());
}

/// A forger on the LAN announces a paired peer at a new address every 200 ms while the node
/// dials it on a slow path (a handshake that takes 1.5 s). Each sighting adds its address to
/// the dial; none cancels the attempt under way, so the peer is reached while the flood goes
/// on. (Before, every new address started the dial over, and the slow path never finished.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_sightings_do_not_keep_a_slow_dial_from_finishing() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (home(dir.path(), "a"), home(dir.path(), "b"));
    let a = Node::start(a_home.clone(), RunOptions::default())
        .await
        .unwrap();
    let b = Node::start(b_home.clone(), RunOptions::default())
        .await
        .unwrap();
    a.join(&b.invite(None).unwrap().encode()).await.unwrap();
    connected(&a, 1).await;
    // b restarts on another port: a's pinned address is dead, only sightings lead to b.
    b.shutdown();
    b.stopped(Duration::from_secs(5)).await;
    let start = std::time::Instant::now();
    while !a.online_clients().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "a never noticed b stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(b);
    let b = restart(&b_home, start + Duration::from_secs(20)).await;
    let b_addr: std::net::SocketAddr = b.status().unwrap().listen.parse().unwrap();

    // The slow path to b: a relay on 127.0.0.4 that waits 1.5 s before it forwards.
    let slow = tokio::net::TcpListener::bind("127.0.0.4:0").await.unwrap();
    let slow_addr = slow.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = slow.accept().await {
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(b_addr).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    // The flood: b "seen" at the slow path and at a new dead address, every 200 ms, for 8 s.
    let mut dead = Vec::new();
    for _ in 0..40 {
        let l = std::net::TcpListener::bind("127.0.0.3:0").unwrap();
        dead.push(l.local_addr().unwrap());
    }
    let started = std::time::Instant::now();
    let mut reached = None;
    for addr in &dead {
        a.inject_sighting(b.node_id(), "b", vec![slow_addr, *addr]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        if reached.is_none() && !a.online_clients().is_empty() {
            reached = Some(started.elapsed());
        }
    }
    println!("reached b after {reached:?}, the flood going on");
    assert!(reached.is_some(), "the flood kept a from ever reaching b");
    let clients = a.online_clients();
    clients[0]
        .put_share([7; 16], &share(1), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(b.status().unwrap().usage.shares, 1);
}

/// Strangers on eight addresses keep every handshake place a stranger can have filled with
/// connections that never speak (reopening each one the node closes); a paired peer coming
/// back from where it was last seen still gets in at once, into the places kept for peers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_on_many_addresses_leave_room_for_a_paired_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (home(dir.path(), "a"), home(dir.path(), "b"));
    let a = Node::start(a_home.clone(), RunOptions::default())
        .await
        .unwrap();
    let b = Node::start(b_home, RunOptions::default()).await.unwrap();
    b.join(&a.invite(None).unwrap().encode()).await.unwrap();
    connected(&b, 1).await;
    a.shutdown();
    a.stopped(Duration::from_secs(5)).await;
    drop(a);
    let b_addr: std::net::SocketAddr = b.status().unwrap().listen.parse().unwrap();

    // The flood: 8 connections from each of 127.0.0.10-17 (64, every place there is), each
    // reopened when the node closes it, for 20 s at most.
    let flood = tokio::spawn(async move {
        let until = std::time::Instant::now() + Duration::from_secs(20);
        let mut held = tokio::task::JoinSet::new();
        for host in 10..18u8 {
            for _ in 0..8 {
                held.spawn(async move {
                    while std::time::Instant::now() < until {
                        let socket = tokio::net::TcpSocket::new_v4().unwrap();
                        socket
                            .bind(std::net::SocketAddr::from(([127, 0, 0, host], 0)))
                            .unwrap();
                        let Ok(mut stream) = socket.connect(b_addr).await else {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        };
                        // Says nothing; waits for the node to give up on it.
                        let mut buf = [0u8; 1];
                        let _ = tokio::time::timeout(
                            until.saturating_duration_since(std::time::Instant::now()),
                            tokio::io::AsyncReadExt::read(&mut stream, &mut buf),
                        )
                        .await;
                    }
                });
            }
        }
        while held.join_next().await.is_some() {}
    });
    tokio::time::sleep(Duration::from_secs(1)).await;

    // a comes back from 127.0.0.1, where b last saw it.
    let started = std::time::Instant::now();
    let a = restart(&a_home, started + Duration::from_secs(10)).await;
    let reconnect = std::time::Instant::now();
    connected(&a, 1).await;
    let took = reconnect.elapsed();
    println!("a paired peer got in after {took:?} during the flood");
    assert!(
        !flood.is_finished(),
        "the flood ended before the peer came back"
    );
    a.online_clients()[0]
        .put_share([7; 16], &share(3), Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(b.status().unwrap().usage.shares, 1);
    flood.abort();
}

/// Everything a stranger can decrypt from a node it dials: the second handshake message's
/// payload and the admission. Neither names the node nor gives one of its addresses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_learns_no_name_and_no_address() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(home(dir.path(), "grandmas-attic"), RunOptions::default())
        .await
        .unwrap();
    let listen: std::net::SocketAddr = node.status().unwrap().listen.parse().unwrap();

    let key = snow::Builder::new("Noise_XX_25519_AESGCM_SHA256".parse().unwrap())
        .generate_keypair()
        .unwrap();
    let mut hs = snow::Builder::new("Noise_XX_25519_AESGCM_SHA256".parse().unwrap())
        .local_private_key(&key.private)
        .unwrap()
        .prologue(b"shard noise v2\0")
        .unwrap()
        .build_initiator()
        .unwrap();
    async fn record(stream: &mut tokio::net::TcpStream) -> Vec<u8> {
        let len = stream.read_u16().await.unwrap();
        let mut buf = vec![0; usize::from(len)];
        stream.read_exact(&mut buf).await.unwrap();
        buf
    }
    async fn send(stream: &mut tokio::net::TcpStream, parts: &[&[u8]]) {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        stream.write_u16(len as u16).await.unwrap();
        for p in parts {
            stream.write_all(p).await.unwrap();
        }
    }
    let mut stream = tokio::net::TcpStream::connect(listen).await.unwrap();
    let mut buf = vec![0u8; 65_535];
    let n = hs.write_message(&[], &mut buf).unwrap();
    send(&mut stream, &[&[0], &buf[..n]]).await;
    let msg2 = record(&mut stream).await;
    let mut plain = vec![0u8; 65_535];
    let n = hs.read_message(&msg2, &mut plain).unwrap();
    let mut learned = plain[..n].to_vec();
    assert!(learned.is_empty(), "the node spoke before it knew who asks");
    // The stranger's own hello (postcard: name, addresses, version) — of another protocol
    // than the node's, which it does not learn either.
    let hello = [8, b's', b't', b'r', b'a', b'n', b'g', b'e', b'r', 0, 1];
    let n = hs.write_message(&hello, &mut buf).unwrap();
    send(&mut stream, &[&buf[..n]]).await;
    let mut transport = hs.into_transport_mode().unwrap();
    let admission = record(&mut stream).await;
    let n = transport.read_message(&admission, &mut plain).unwrap();
    learned.extend_from_slice(&plain[..n]);
    let text = String::from_utf8_lossy(&learned).to_string();
    assert!(text.contains("not paired"), "not a refusal: {text:?}");
    assert!(!text.contains("grandmas"), "the name leaked: {text:?}");
    assert!(!text.contains("127.0.0.1"), "an address leaked: {text:?}");
    assert!(!text.contains("protocol"), "the version leaked: {text:?}");
    // And the node closes.
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "still open: {closed:?}"
    );
}

/// Copies of a node's key (a stolen home) hold connections to its peer: they cannot lock the
/// real node out. Each new connection of an id closes its oldest, so the real node gets back
/// in and stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copies_of_a_nodes_key_cannot_hold_every_place_at_its_peer() {
    let dir = tempfile::tempdir().unwrap();
    let (a_home, b_home) = (home(dir.path(), "a"), home(dir.path(), "b"));
    let b = Node::start(b_home, RunOptions::default()).await.unwrap();
    let a = Node::start(
        a_home.clone(),
        RunOptions {
            max_backoff: Duration::from_millis(300),
            ..RunOptions::default()
        },
    )
    .await
    .unwrap();
    a.join(&b.invite(None).unwrap().encode()).await.unwrap();
    connected(&a, 1).await;
    let b_addr: std::net::SocketAddr = b.status().unwrap().listen.parse().unwrap();

    // The thief's copies, as many as a peer may have open.
    let stolen = a_home.identity().unwrap();
    let hello = shard_net::noise::Hello {
        name: "a".into(),
        listen: Vec::new(),
        protocol: shard_proto::PROTOCOL_VERSION,
    };
    let mut copies = Vec::new();
    for _ in 0..shard_node::node::CONNECTIONS_PER_PEER {
        let channel = shard_net::noise::connect(b_addr, &stolen, &hello, Some(b.node_id()), None)
            .await
            .unwrap();
        copies.push(PeerClient::start(channel));
    }
    // The real node is back within its backoff, and its puts land.
    let start = std::time::Instant::now();
    loop {
        let put = match a.online_clients().first() {
            Some(client) => client
                .put_share([9; 16], &share(7), Duration::from_secs(5))
                .await
                .is_ok(),
            None => false,
        };
        if put {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "the real node stayed locked out"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(b.status().unwrap().usage.shares, 1);
}

/// A node told to stop before any of its tasks has run (a failed start of the HTTP servers
/// in front of it does that) stops: the stop request is kept even when nobody listens yet.
#[tokio::test]
async fn a_stop_asked_at_once_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(home(dir.path(), "brief"), RunOptions::default())
        .await
        .unwrap();
    node.shutdown();
    tokio::time::timeout(
        Duration::from_secs(20),
        node.stopped(Duration::from_secs(1)),
    )
    .await
    .expect("the node never stopped");
}

/// A home that is no node, a second `init`, a config that does not parse and one that names an
/// unknown store layout are typed errors a caller can tell apart, with a kind and a hint.
#[test]
fn a_home_that_cannot_be_used_says_why_in_types() {
    use shard_node::{Error, ErrorKind};
    let dir = tempfile::tempdir().unwrap();
    let nowhere = Home::new(dir.path().join("nowhere"));
    let err = nowhere.config().unwrap_err();
    assert!(
        matches!(&err, Error::NoNode { home } if home == nowhere.root()),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::NotFound);
    assert!(err.to_string().contains("shard init"), "{err}");

    let attic = home(dir.path(), "attic");
    let err = attic.init(&NodeConfig::new("attic")).unwrap_err();
    assert!(matches!(err, Error::AlreadyANode { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Conflict);

    let text = std::fs::read_to_string(attic.config_path()).unwrap();
    std::fs::write(
        attic.config_path(),
        text.replace("layout = \"scatter\"", "layout = \"heap\""),
    )
    .unwrap();
    let Err(err) = attic.open_store(&attic.config().unwrap()) else {
        panic!("an unknown layout opened a store");
    };
    assert!(
        matches!(&err, Error::UnknownStoreLayout { layout, .. } if layout == "heap"),
        "{err}"
    );
    assert_eq!(err.kind(), ErrorKind::BadInput);

    std::fs::write(attic.config_path(), "name = [unclosed").unwrap();
    let err = attic.config().unwrap_err();
    assert!(
        matches!(&err, Error::BadConfig { path, .. } if *path == attic.config_path()),
        "{err}"
    );
    assert!(err.to_string().contains("config.toml"), "{err}");
}

/// What a paired peer's hello over TCP (authenticated by its Noise key, so its own word) or an
/// iroh connection (which proves the key) tells the node, fed to it directly.
fn hello_from(
    node: &Node,
    from: shard_proto::NodeId,
    name: &str,
    route: &str,
    proved: Option<[u8; 32]>,
) -> Result<(), String> {
    use shard_net::noise::{Gatekeeper, Hello, PeerInfo};
    let peer = PeerInfo {
        id: from,
        public: [0; 32],
        hello: Hello {
            name: name.into(),
            listen: vec![route.into()],
            protocol: shard_proto::PROTOCOL_VERSION,
        },
        addr: ([127, 0, 0, 1], 1).into(),
        transport_key: proved,
        probe: None,
    };
    node.admit(&peer, None)
}

/// The iroh keys pinned for the peer named `name`.
fn iroh_keys_of(node: &Node, name: &str) -> Vec<String> {
    let peer = node.peers().into_iter().find(|p| p.name == name).unwrap();
    peer.addrs
        .into_iter()
        .filter(|a| a.starts_with("iroh:"))
        .collect()
}

/// One iroh key belongs to one peer: a paired peer that names another peer's key as its own
/// (to draw that peer's traffic through a relay of its choosing) does not get it pinned, and
/// a key one peer named but another proves over iroh goes to the one that proved it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_cannot_take_another_peers_iroh_key() {
    let dir = tempfile::tempdir().unwrap();
    let a = Node::start(home(dir.path(), "a"), RunOptions::default())
        .await
        .unwrap();
    let mut others = Vec::new();
    for name in ["m", "v", "w"] {
        let node = Node::start(home(dir.path(), name), RunOptions::default())
            .await
            .unwrap();
        a.join(&node.invite(None).unwrap().encode()).await.unwrap();
        others.push(node);
    }
    let [m, v, w] = [&others[0], &others[1], &others[2]].map(|n| n.node_id());
    let (kv, kw) = ("11".repeat(32), "22".repeat(32));

    // v names its key (over TCP): pinned. m then names v's key at its own relay: not taken.
    let v_route = format!("iroh:{kv}@https://v-relay.example/");
    hello_from(&a, v, "v", &v_route, None).unwrap();
    assert_eq!(iroh_keys_of(&a, "v"), std::slice::from_ref(&v_route));
    let evil = |key: &str| format!("iroh:{key}@https://evil.example/");
    hello_from(&a, m, "m", &evil(&kv), None).unwrap();
    assert!(iroh_keys_of(&a, "m").is_empty(), "{:?}", a.peers());
    assert_eq!(iroh_keys_of(&a, "v"), std::slice::from_ref(&v_route));

    // m names w's key before w ever did: pinned for m, for now. w then proves it over iroh:
    // it is w's, and m's claim is gone.
    hello_from(&a, m, "m", &evil(&kw), None).unwrap();
    assert_eq!(iroh_keys_of(&a, "m"), [evil(&kw)]);
    let proved: [u8; 32] = hex::decode(&kw).unwrap().try_into().unwrap();
    hello_from(&a, w, "w", &format!("iroh:{kw}"), Some(proved)).unwrap();
    assert_eq!(iroh_keys_of(&a, "w"), [format!("iroh:{kw}")]);
    assert!(iroh_keys_of(&a, "m").is_empty(), "{:?}", a.peers());

    // What the node keeps in its catalog (what a restart reads) agrees.
    let stored = a.catalog().peers().unwrap();
    let stored_keys = |id: shard_proto::NodeId| -> Vec<String> {
        let record = stored.iter().find(|r| r.id == id).unwrap();
        record
            .addrs
            .iter()
            .filter(|r| r.starts_with("iroh:"))
            .cloned()
            .collect()
    };
    assert!(stored_keys(m).is_empty());
    assert_eq!(stored_keys(w), [format!("iroh:{kw}")]);
    assert_eq!(stored_keys(v), [v_route]);
    a.shutdown();
    for n in &others {
        n.shutdown();
    }
}
