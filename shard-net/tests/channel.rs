//! The channel and the share protocol between real sockets on 127.0.0.1: who gets in, who sees
//! what, and what a misbehaving connection costs (nothing for anyone else).
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

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Half-open connections are closed after this long in these tests.
const IDLE: Duration = Duration::from_secs(2);

use bytes::Bytes;
use shard_net::Error;
use shard_net::identity::NodeIdentity;
use shard_net::noise::{self, Gatekeeper, Hello, PairingKey, PeerInfo};
use shard_net::rpc::{PeerClient, ShareService, serve_channel};
use shard_proto::{ErrorCode, NodeId, Share, ShareHeader};
use shard_store::{MemoryStore, ShareStore};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

const T: Duration = Duration::from_secs(10);

struct Trust(Mutex<HashSet<NodeId>>);

impl Gatekeeper for Trust {
    fn pairing_key(&self, _: &[u8; 8]) -> Result<PairingKey, String> {
        Err("no invites here".into())
    }
    fn admit(&self, peer: &PeerInfo, _: Option<&[u8; 8]>) -> Result<(), String> {
        if self.0.lock().unwrap().contains(&peer.id) {
            Ok(())
        } else {
            Err("your key is not paired with this node".into())
        }
    }
}

fn hello(name: &str) -> Hello {
    Hello {
        name: name.into(),
        listen: vec![],
        protocol: 1,
    }
}

struct Server {
    addr: SocketAddr,
    identity: Arc<NodeIdentity>,
    store: Arc<MemoryStore>,
    _stop: watch::Sender<bool>,
}

/// A node serving `trusted` peers from a memory store, each handshake limited to 2 s.
async fn server(trusted: &[NodeId]) -> Server {
    let identity = Arc::new(NodeIdentity::generate().unwrap());
    let store = Arc::new(MemoryStore::new());
    let service = ShareService::new(store.clone(), None);
    let gate = Arc::new(Trust(Mutex::new(trusted.iter().copied().collect())));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = watch::channel(false);
    let id = identity.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                break;
            };
            let (id, gate, service, stopped) =
                (id.clone(), gate.clone(), service.clone(), stopped.clone());
            tokio::spawn(async move {
                let accepted = tokio::time::timeout(
                    Duration::from_secs(2),
                    noise::accept(stream, &id, &hello("server"), gate.as_ref()),
                )
                .await;
                if let Ok(Ok(channel)) = accepted {
                    serve_channel(channel, service, stopped, IDLE).await;
                }
            });
        }
    });
    Server {
        addr,
        identity,
        store,
        _stop: stop,
    }
}

async fn client(server: &Server, me: &NodeIdentity) -> Arc<PeerClient> {
    let channel = noise::connect(
        server.addr,
        me,
        &hello("client"),
        Some(server.identity.node_id()),
        None,
    )
    .await
    .unwrap();
    PeerClient::start(channel)
}

fn share(i: u32) -> Share {
    let payload: Vec<u8> = (0..1000u32)
        .map(|j| (j ^ i) as u8)
        .chain(i.to_le_bytes())
        .collect();
    Share::new(
        ShareHeader::new(2, 3, 0, payload.len() as u32).unwrap(),
        Bytes::from(payload),
    )
    .unwrap()
}

#[tokio::test]
async fn a_paired_node_stores_fetches_lists_and_deletes() {
    let me = NodeIdentity::generate().unwrap();
    let srv = server(&[me.node_id()]).await;
    let c = client(&srv, &me).await;
    assert_eq!(c.peer().hello.name, "server");
    assert!(c.ping(T).await.unwrap() < T);
    let vault = [9; 16];
    let s = share(1);
    c.put_share(vault, &s, T).await.unwrap();
    assert_eq!(
        c.get_share(vault, s.id(), T).await.unwrap(),
        Some(s.clone())
    );
    assert_eq!(
        c.have(vault, vec![s.id(), share(2).id()], T).await.unwrap(),
        vec![true, false]
    );
    assert_eq!(c.list(vault, None, 10, T).await.unwrap(), vec![s.id()]);
    assert_eq!(c.usage(T).await.unwrap().shares, 1);
    assert_eq!(c.delete(vault, vec![s.id()], T).await.unwrap(), 1);
    assert_eq!(c.get_share(vault, s.id(), T).await.unwrap(), None);
    // A share that is not a share is refused with a typed error.
    let err = c
        .call(
            shard_proto::Request::PutShare {
                vault,
                share: Bytes::from_static(b"junk"),
            },
            T,
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::BadRequest,
                ..
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn an_unpaired_key_gets_nothing() {
    let friend = NodeIdentity::generate().unwrap();
    let srv = server(&[friend.node_id()]).await;
    let rogue = NodeIdentity::generate().unwrap();
    let err = noise::connect(srv.addr, &rogue, &hello("rogue"), None, None)
        .await
        .err()
        .unwrap();
    match err {
        Error::Refused(reason) => assert!(reason.contains("not paired"), "{reason}"),
        other => panic!("expected a refusal, got {other}"),
    }
    assert_eq!(srv.store.usage().unwrap().shares, 0);
}

#[tokio::test]
async fn the_node_that_answers_must_be_the_one_expected() {
    let me = NodeIdentity::generate().unwrap();
    let srv = server(&[me.node_id()]).await;
    let other = NodeIdentity::generate().unwrap().node_id();
    let err = noise::connect(srv.addr, &me, &hello("c"), Some(other), None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::UnexpectedPeer { .. }), "{err}");
}

#[tokio::test]
async fn a_peer_sees_and_deletes_only_its_own_namespace() {
    let alice = NodeIdentity::generate().unwrap();
    let mallory = NodeIdentity::generate().unwrap();
    let srv = server(&[alice.node_id(), mallory.node_id()]).await;
    let a = client(&srv, &alice).await;
    let m = client(&srv, &mallory).await;
    let vault = [1; 16];
    let s = share(5);
    a.put_share(vault, &s, T).await.unwrap();
    // Same vault id, same share id: Mallory still sees and deletes nothing of Alice's.
    assert!(m.list(vault, None, 100, T).await.unwrap().is_empty());
    assert_eq!(m.have(vault, vec![s.id()], T).await.unwrap(), vec![false]);
    assert_eq!(m.get_share(vault, s.id(), T).await.unwrap(), None);
    assert_eq!(m.delete(vault, vec![s.id()], T).await.unwrap(), 0);
    assert_eq!(a.get_share(vault, s.id(), T).await.unwrap(), Some(s));
}

#[tokio::test]
async fn two_hundred_puts_and_gets_in_flight_on_one_connection() {
    let me = NodeIdentity::generate().unwrap();
    let srv = server(&[me.node_id()]).await;
    let c = client(&srv, &me).await;
    let vault = [3; 16];
    let shares: Vec<Share> = (0..200).map(share).collect();
    let puts: Vec<_> = shares
        .iter()
        .map(|s| {
            let c = c.clone();
            let s = s.clone();
            tokio::spawn(async move { c.put_share(vault, &s, T).await })
        })
        .collect();
    for p in puts {
        p.await.unwrap().unwrap();
    }
    let gets: Vec<_> = shares
        .iter()
        .map(|s| {
            let c = c.clone();
            let id = s.id();
            tokio::spawn(async move { c.get_share(vault, id, T).await })
        })
        .collect();
    let mut got = Vec::new();
    for g in gets {
        got.push(g.await.unwrap().unwrap().unwrap());
    }
    assert_eq!(got, shares);
    assert_eq!(srv.store.usage().unwrap().shares, 200);
}

#[tokio::test]
async fn bad_connections_are_closed_and_cost_nobody_else_anything() {
    let me = NodeIdentity::generate().unwrap();
    let srv = server(&[me.node_id()]).await;
    let good = client(&srv, &me).await;

    // Garbage instead of a handshake.
    let mut raw = TcpStream::connect(srv.addr).await.unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // A client that connects and says nothing: dropped by the handshake timeout.
    let silent = TcpStream::connect(srv.addr).await.unwrap();
    // A paired client announcing a 4 GiB frame after the handshake.
    let channel = noise::connect(srv.addr, &me, &hello("liar"), None, None)
        .await
        .unwrap();
    let noise::SecureChannel {
        mut reader,
        mut writer,
        ..
    } = channel;
    writer
        .write_raw_plaintext(&[0xff, 0xff, 0xff, 0xff, 1])
        .await
        .unwrap();
    // The server closes that connection: our read ends.
    let closed = tokio::time::timeout(T, reader.read_frame()).await.unwrap();
    assert!(closed.is_err());
    // A paired client with the wrong protocol version in a frame.
    let channel = noise::connect(srv.addr, &me, &hello("old"), None, None)
        .await
        .unwrap();
    let noise::SecureChannel {
        mut reader,
        mut writer,
        ..
    } = channel;
    writer
        .write_raw_plaintext(&[2, 0, 0, 0, 9, 0])
        .await
        .unwrap();
    assert!(
        tokio::time::timeout(T, reader.read_frame())
            .await
            .unwrap()
            .is_err()
    );

    // Meanwhile the good client is served as before.
    let s = share(77);
    good.put_share([1; 16], &s, T).await.unwrap();
    assert_eq!(good.get_share([1; 16], s.id(), T).await.unwrap(), Some(s));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // The silent connection was closed by the server after its handshake timeout.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(T, async {
        silent.readable().await.unwrap();
        silent.try_read(&mut buf)
    })
    .await
    .unwrap();
    assert!(matches!(n, Ok(0)), "silent connection still open: {n:?}");
    drop(raw);
}

#[tokio::test]
async fn a_peer_that_dies_mid_request_gives_an_error_and_no_acknowledgement() {
    let me = NodeIdentity::generate().unwrap();
    let them = Arc::new(NodeIdentity::generate().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let trust = Arc::new(Trust(Mutex::new([me.node_id()].into_iter().collect())));
    let id = them.clone();
    // A node that reads the first request and then dies without answering.
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let channel = noise::accept(stream, &id, &hello("dying"), trust.as_ref())
            .await
            .unwrap();
        let noise::SecureChannel {
            mut reader, writer, ..
        } = channel;
        let _request = reader.read_frame().await.unwrap();
        drop(writer);
        drop(reader);
    });
    let channel = noise::connect(addr, &me, &hello("c"), Some(them.node_id()), None)
        .await
        .unwrap();
    let c = PeerClient::start(channel);
    let err = c.put_share([1; 16], &share(1), T).await.unwrap_err();
    assert!(matches!(err, Error::Disconnected), "{err}");
    assert!(c.is_closed());
    assert!(matches!(c.ping(T).await, Err(Error::Disconnected)));
}

#[tokio::test]
async fn pairing_with_the_wrong_secret_fails_on_both_sides() {
    use std::sync::atomic::{AtomicBool, Ordering};
    struct OneInvite(PairingKey, AtomicBool);
    impl Gatekeeper for OneInvite {
        fn pairing_key(&self, id: &[u8; 8]) -> Result<PairingKey, String> {
            if *id == self.0.invite_id {
                Ok(self.0.clone())
            } else {
                Err("unknown invite code".into())
            }
        }
        fn admit(&self, _: &PeerInfo, _: Option<&[u8; 8]>) -> Result<(), String> {
            self.1.store(true, Ordering::SeqCst);
            Ok(())
        }
    }
    let right = PairingKey {
        invite_id: [4; 8],
        psk: zeroize::Zeroizing::new([1; 32]),
    };
    let wrong = PairingKey {
        invite_id: [4; 8],
        psk: zeroize::Zeroizing::new([2; 32]),
    };
    let gate = Arc::new(OneInvite(right, AtomicBool::new(false)));
    let inviter = Arc::new(NodeIdentity::generate().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (g, id) = (gate.clone(), inviter.clone());
    let server = tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        noise::accept(stream, &id, &hello("inviter"), g.as_ref())
            .await
            .err()
            .unwrap()
            .to_string()
    });
    let joiner = NodeIdentity::generate().unwrap();
    let err = noise::connect(
        addr,
        &joiner,
        &hello("joiner"),
        Some(inviter.node_id()),
        Some(&wrong),
    )
    .await
    .err()
    .unwrap();
    assert!(
        matches!(err, Error::Disconnected | Error::Io(_) | Error::Noise(_)),
        "{err}"
    );
    let server_err = server.await.unwrap();
    assert!(server_err.contains("wrong code"), "{server_err}");
    assert!(
        !gate.1.load(Ordering::SeqCst),
        "nobody may be admitted (pinned) with a wrong secret"
    );
}

#[tokio::test]
async fn a_half_open_connection_is_closed_after_the_idle_timeout() {
    let me = NodeIdentity::generate().unwrap();
    let srv = server(&[me.node_id()]).await;
    let channel = noise::connect(srv.addr, &me, &hello("half"), None, None)
        .await
        .unwrap();
    let noise::SecureChannel {
        mut reader,
        mut writer,
        ..
    } = channel;
    // Half a frame, then silence (as if the peer vanished without closing).
    writer
        .write_raw_plaintext(&[100, 0, 0, 0, 1, 0])
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let closed = tokio::time::timeout(T, reader.read_frame()).await.unwrap();
    assert!(closed.is_err(), "the server must close the connection");
    assert!(
        start.elapsed() >= IDLE - Duration::from_millis(200),
        "closed too early: {:?}",
        start.elapsed()
    );
}
