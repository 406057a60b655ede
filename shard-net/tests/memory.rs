//! The in-memory transport authenticates as the Noise one does: a dialer is the identity its
//! transport was made with, the answering gatekeeper decides, pairing needs the invite's key,
//! and a dialer that expects a node gets it or an error. Its faults end or hold connections
//! as a switched-off or hung machine would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use shard_net::Error;
use shard_net::identity::NodeIdentity;
use shard_net::memory::{Link, MemoryNet};
use shard_net::noise::{Gatekeeper, Hello, PairingKey, PeerInfo};
use shard_net::transport::{Connection, Route, Transport};
use shard_proto::{Message, NodeId, PROTOCOL_VERSION, Request};

/// Admits one node by id, and pairs with one invite id whose key is all 7s.
struct Gate {
    trusted: NodeId,
}

const INVITE: [u8; 8] = [1; 8];

fn key(byte: u8) -> PairingKey {
    PairingKey {
        invite_id: INVITE,
        psk: zeroize::Zeroizing::new([byte; 32]),
    }
}

impl Gatekeeper for Gate {
    fn pairing_key(&self, id: &[u8; 8]) -> Result<PairingKey, String> {
        if *id == INVITE {
            Ok(key(7))
        } else {
            Err("unknown invite code".into())
        }
    }
    fn admit(&self, peer: &PeerInfo, paired: Option<&[u8; 8]>) -> Result<(), String> {
        if paired.is_some() || peer.id == self.trusted {
            Ok(())
        } else {
            Err("your key is not paired with this node".into())
        }
    }
}

fn hello(name: &str) -> Hello {
    Hello {
        name: name.into(),
        listen: Vec::new(),
        protocol: PROTOCOL_VERSION,
    }
}

struct Server {
    addr: SocketAddr,
    id: NodeId,
    /// What the server side's handshakes came to, in order.
    accepted: tokio::sync::mpsc::UnboundedReceiver<shard_net::Result<Connection>>,
}

/// A node on `net` that admits `trusted` and answers every connection.
async fn server(net: &Arc<MemoryNet>, trusted: NodeId) -> Server {
    let identity = Arc::new(NodeIdentity::generate().unwrap());
    let id = identity.node_id();
    let transport = net.transport(identity);
    let mut listener = transport.listen(([127, 0, 0, 1], 0).into()).await.unwrap();
    let addr = listener.local_addr();
    let (tx, accepted) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let _transport = transport;
        while let Ok(incoming) = listener.accept().await {
            let gate: Arc<dyn Gatekeeper> = Arc::new(Gate { trusted });
            let done = incoming.authenticate(hello("server"), gate).await;
            if tx.send(done).is_err() {
                break;
            }
        }
    });
    Server { addr, id, accepted }
}

fn client(net: &Arc<MemoryNet>) -> (Arc<dyn Transport>, NodeId) {
    let identity = Arc::new(NodeIdentity::generate().unwrap());
    let id = identity.node_id();
    (net.transport(identity), id)
}

/// A paired node connected to a server, and both ends of the connection.
struct Pair {
    net: Arc<MemoryNet>,
    dialer: Arc<dyn Transport>,
    srv: Server,
    mine: Connection,
    theirs: Connection,
}

async fn pair() -> Pair {
    let net = MemoryNet::new();
    let (dialer, me) = client(&net);
    let mut srv = server(&net, me).await;
    let mine = dialer
        .connect(&Route::Tcp(srv.addr), &hello("me"), None, None)
        .await
        .unwrap();
    let theirs = srv.accepted.recv().await.unwrap().unwrap();
    Pair {
        net,
        dialer,
        srv,
        mine,
        theirs,
    }
}

fn ping() -> Message {
    Message::Request {
        id: 1,
        body: Request::Ping { nonce: 42 },
    }
}

#[tokio::test]
async fn a_paired_node_gets_in_and_frames_flow_both_ways() {
    let net = MemoryNet::new();
    let (dialer, me) = client(&net);
    let mut srv = server(&net, me).await;
    let mut mine = dialer
        .connect(&Route::Tcp(srv.addr), &hello("me"), Some(srv.id), None)
        .await
        .unwrap();
    assert_eq!(mine.peer.id, srv.id);
    assert_eq!(mine.peer.hello.name, "server");
    let mut theirs = srv.accepted.recv().await.unwrap().unwrap();
    assert_eq!(
        theirs.peer.id, me,
        "the server sees the dialer's own identity"
    );
    mine.writer.write_frame(&ping()).await.unwrap();
    assert!(matches!(
        theirs.reader.read_frame().await.unwrap(),
        Message::Request {
            body: Request::Ping { nonce: 42 },
            ..
        }
    ));
}

#[tokio::test]
async fn a_stranger_is_refused_with_the_reason() {
    let net = MemoryNet::new();
    let mut srv = server(&net, NodeId([9; 32])).await;
    let (stranger, _) = client(&net);
    let err = stranger
        .connect(&Route::Tcp(srv.addr), &hello("stranger"), None, None)
        .await
        .err()
        .unwrap();
    assert!(
        matches!(&err, Error::Refused(r) if r.contains("not paired")),
        "{err}"
    );
    assert!(matches!(
        srv.accepted.recv().await.unwrap(),
        Err(Error::Rejected(_))
    ));
}

#[tokio::test]
async fn pairing_needs_the_invites_key() {
    let net = MemoryNet::new();
    let mut srv = server(&net, NodeId([9; 32])).await;
    let (joiner, _) = client(&net);
    let err = joiner
        .connect(
            &Route::Tcp(srv.addr),
            &hello("j"),
            Some(srv.id),
            Some(&key(8)),
        )
        .await
        .err()
        .unwrap();
    // As over Noise: the dialer learns nothing but a closed connection (and tries the
    // invite's other addresses); the inviter logs the wrong code.
    assert!(matches!(err, Error::Disconnected), "{err}");
    assert!(matches!(
        srv.accepted.recv().await.unwrap(),
        Err(Error::Noise(_))
    ));
    joiner
        .connect(
            &Route::Tcp(srv.addr),
            &hello("j"),
            Some(srv.id),
            Some(&key(7)),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn the_wrong_node_at_an_address_is_an_error() {
    let net = MemoryNet::new();
    let (dialer, me) = client(&net);
    let srv = server(&net, me).await;
    let err = dialer
        .connect(
            &Route::Tcp(srv.addr),
            &hello("me"),
            Some(NodeId([3; 32])),
            None,
        )
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::UnexpectedPeer { .. }), "{err}");
    let nobody: SocketAddr = ([127, 0, 0, 1], 1).into();
    let err = dialer
        .connect(&Route::Tcp(nobody), &hello("me"), None, None)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::Io(_)), "{err}");
}

#[tokio::test]
async fn a_node_switched_off_ends_its_connections_and_refuses_new_ones() {
    let Pair {
        net,
        dialer,
        srv,
        mut mine,
        theirs: _theirs,
    } = pair().await;
    let reading = tokio::spawn(async move { mine.reader.read_frame().await });
    net.set_link(srv.addr, Link::Down);
    let read = tokio::time::timeout(Duration::from_secs(5), reading)
        .await
        .expect("a read on a cut link ends")
        .unwrap();
    assert!(matches!(read, Err(Error::Disconnected)));
    assert!(
        dialer
            .connect(&Route::Tcp(srv.addr), &hello("me"), None, None)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn a_connection_cut_by_a_switch_off_stays_cut_when_the_node_is_back() {
    let Pair {
        net,
        dialer,
        srv,
        mut mine,
        theirs: _theirs,
    } = pair().await;
    // Off and on again before anyone looked.
    net.set_link(srv.addr, Link::Down);
    net.set_link(srv.addr, Link::Up);
    assert!(matches!(
        mine.reader.read_frame().await,
        Err(Error::Disconnected)
    ));
    assert!(mine.writer.write_frame(&ping()).await.is_err());
    // New connections work again.
    dialer
        .connect(&Route::Tcp(srv.addr), &hello("me"), None, None)
        .await
        .unwrap();
}

/// An idle reader costs nothing, whatever the links did: no poll loop.
#[tokio::test]
async fn an_idle_reader_sleeps_through_link_changes() {
    let Pair {
        net,
        srv,
        mut mine,
        theirs: _theirs,
        ..
    } = pair().await;
    let polls = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counted = polls.clone();
    let reading = tokio::spawn(async move {
        let mut read = mine.reader.read_frame();
        std::future::poll_fn(move |cx| {
            counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            read.as_mut().poll(cx)
        })
        .await
    });
    tokio::time::sleep(Duration::from_millis(20)).await;
    net.set_link(srv.addr, Link::Stalled);
    net.set_link(srv.addr, Link::Up);
    net.set_link(srv.addr, Link::Up);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let n = polls.load(std::sync::atomic::Ordering::Relaxed);
    assert!(n < 20, "the idle reader was polled {n} times");
    reading.abort();
}

#[tokio::test]
async fn a_stalled_node_holds_frames_until_it_comes_back() {
    let Pair {
        net,
        srv,
        mut mine,
        mut theirs,
        ..
    } = pair().await;
    net.set_link(srv.addr, Link::Stalled);
    mine.writer.write_frame(&ping()).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(100), theirs.reader.read_frame())
            .await
            .is_err(),
        "nothing arrives while stalled"
    );
    net.set_link(srv.addr, Link::Up);
    let frame = tokio::time::timeout(Duration::from_secs(5), theirs.reader.read_frame())
        .await
        .expect("the frame arrives once the link is back")
        .unwrap();
    assert!(matches!(
        frame,
        Message::Request {
            body: Request::Ping { nonce: 42 },
            ..
        }
    ));
}
