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
use shard_crypto::{VaultKey, VaultKeys};
use shard_net::Error;
use shard_net::identity::NodeIdentity;
use shard_net::noise::{self, Gatekeeper, Hello, PairingKey, PeerInfo};
use shard_net::rpc::{PeerClient, ShareService, serve_channel};
use shard_proto::{
    ErrorCode, Namespace, NodeId, PROTOCOL_VERSION, Request, Response, Share, ShareHeader,
    VaultAuth, VaultOp,
};
use shard_store::{HeadStore, MemoryStore, ShareStore};
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
    hello_in(name, PROTOCOL_VERSION)
}

/// A hello of a node speaking `protocol`.
fn hello_in(name: &str, protocol: u8) -> Hello {
    Hello {
        name: name.into(),
        listen: vec![],
        protocol,
    }
}

struct Server {
    addr: SocketAddr,
    identity: Arc<NodeIdentity>,
    store: Arc<MemoryStore>,
    heads: Arc<HeadStore>,
    _dir: tempfile::TempDir,
    _stop: watch::Sender<bool>,
}

/// A node serving `trusted` peers from a memory store (and keeping catalog heads), each
/// handshake limited to 2 s.
async fn server(trusted: &[NodeId]) -> Server {
    server_with(trusted, MemoryStore::new()).await
}

/// [`server`] with a store of the test's choosing (a quota, for instance).
async fn server_with(trusted: &[NodeId], store: MemoryStore) -> Server {
    server_speaking(trusted, store, PROTOCOL_VERSION).await
}

/// [`server_with`], speaking `protocol` (an older or newer build).
async fn server_speaking(trusted: &[NodeId], store: MemoryStore, protocol: u8) -> Server {
    let identity = Arc::new(NodeIdentity::generate().unwrap());
    let store = Arc::new(store);
    let dir = tempfile::tempdir().unwrap();
    let heads = Arc::new(HeadStore::open(&dir.path().join("heads.db")).unwrap());
    let service = ShareService::new(identity.node_id(), store.clone(), Some(heads.clone()));
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
                    noise::accept(stream, &id, &hello_in("server", protocol), gate.as_ref()),
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
        heads,
        _dir: dir,
        _stop: stop,
    }
}

/// A vault (its keys) and its id as requests name it.
fn vault_keys() -> (VaultKeys, [u8; 16]) {
    let keys = VaultKeys::derive(&VaultKey::generate().unwrap());
    let id = keys.vault_id().0;
    (keys, id)
}

/// A request signed by `keys` for node `for_node` with `challenge`.
fn signed(keys: &VaultKeys, op: VaultOp, for_node: &NodeId, challenge: [u8; 32]) -> Request {
    let auth = VaultAuth {
        key: keys.authority().public().0,
        challenge,
        signature: keys
            .authority()
            .sign(&op.signed_message(for_node, &challenge)),
    };
    Request::Authorized { op, auth }
}

fn is_unauthorized(result: &Result<Response, Error>) -> bool {
    matches!(
        result,
        Err(Error::Remote {
            code: ErrorCode::Unauthorized,
            ..
        })
    )
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
    let (keys, vault) = vault_keys();
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
    // Deleted: no longer offered or counted, but its owner can read it through the grace
    // period, and store it again; purged, it is gone.
    let authority = keys.authority();
    assert_eq!(
        c.delete(vault, vec![s.id()], false, authority, T)
            .await
            .unwrap(),
        1
    );
    assert_eq!(c.have(vault, vec![s.id()], T).await.unwrap(), vec![false]);
    assert!(c.list(vault, None, 10, T).await.unwrap().is_empty());
    let usage = c.usage(T).await.unwrap();
    assert_eq!(
        (usage.shares, usage.reclaimable),
        (0, s.encoded_len() as u64)
    );
    assert_eq!(
        c.get_share(vault, s.id(), T).await.unwrap(),
        Some(s.clone())
    );
    c.put_share(vault, &s, T).await.unwrap();
    assert_eq!(c.have(vault, vec![s.id()], T).await.unwrap(), vec![true]);
    assert_eq!(
        c.delete(vault, vec![s.id()], true, authority, T)
            .await
            .unwrap(),
        1
    );
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
async fn shares_of_several_mib_go_out_in_batches_and_come_back_byte_exact() {
    // A sender encrypts a frame a batch of records at a time (just under 1 MiB per write)
    // and a receiver makes room for a whole frame once it sees its length: sizes around a
    // batch's end, across many batches, and the largest a frame holds, on one connection,
    // several in flight at once.
    let me = NodeIdentity::generate().unwrap();
    let srv = server(&[me.node_id()]).await;
    let c = client(&srv, &me).await;
    let (_, vault) = vault_keys();
    let record = 65_535 - 16;
    let sizes = [
        16 * record - 40,
        16 * record,
        16 * record + 2,
        5 * (1 << 20) + 2,
        8 * (1 << 20),
        2,
    ];
    let shares: Vec<Share> = sizes
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let payload: Vec<u8> = (0..len).map(|j| (j * 7 + i * 13) as u8).collect();
            Share::new(
                ShareHeader::new(2, 3, 0, payload.len() as u32).unwrap(),
                Bytes::from(payload),
            )
            .unwrap()
        })
        .collect();
    let puts = shares.iter().map(|s| c.put_share(vault, s, T));
    for result in futures_util::future::join_all(puts).await {
        result.unwrap();
    }
    let gets = shares.iter().map(|s| c.get_share(vault, s.id(), T));
    for (got, s) in futures_util::future::join_all(gets)
        .await
        .into_iter()
        .zip(&shares)
    {
        assert_eq!(
            got.unwrap().as_ref(),
            Some(s),
            "{} bytes",
            s.payload().len()
        );
    }
}

#[tokio::test]
async fn ranges_of_a_share_are_served_to_its_owner_only_and_within_its_bounds() {
    let alice = NodeIdentity::generate().unwrap();
    let mallory = NodeIdentity::generate().unwrap();
    let srv = server(&[alice.node_id(), mallory.node_id()]).await;
    let a = client(&srv, &alice).await;
    let m = client(&srv, &mallory).await;
    let (_, vault) = vault_keys();
    let s = share(3);
    a.put_share(vault, &s, T).await.unwrap();
    let len = s.payload().len() as u32;
    for range in [0..len, 0..1, 100..164, len - 4..len] {
        let got = a.get_share_range(vault, s.id(), range.clone(), T).await;
        assert_eq!(
            got.unwrap().as_deref(),
            Some(&s.payload()[range.start as usize..range.end as usize])
        );
    }
    // Past the end, or overlapping it: a typed refusal that names the share's length.
    for range in [len..len + 1, len - 4..len + 4, 0..len + 1] {
        let err = a
            .get_share_range(vault, s.id(), range.clone(), T)
            .await
            .unwrap_err();
        match err {
            Error::Remote {
                code: ErrorCode::BadRequest,
                message,
            } => assert!(
                message.contains(&format!("{len} payload bytes")),
                "{message}"
            ),
            other => panic!("{range:?}: expected BadRequest, got {other}"),
        }
    }
    // Not held, or another node's: nothing.
    assert_eq!(
        a.get_share_range(vault, share(4).id(), 0..10, T)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        m.get_share_range(vault, s.id(), 0..10, T).await.unwrap(),
        None
    );
    // The connection still serves after the refusals.
    assert_eq!(a.get_share(vault, s.id(), T).await.unwrap(), Some(s));
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

/// A paired node of another build (another protocol: other share ids, other frames) is told so
/// on both sides, whichever side dials, before any request.
#[tokio::test]
async fn a_node_speaking_another_protocol_is_refused_naming_both() {
    // Dials `server` with `hello`; the refusal's reason.
    async fn refusal(me: &NodeIdentity, server: &Server, hello: &Hello) -> String {
        let to = Some(server.identity.node_id());
        match noise::connect(server.addr, me, hello, to, None).await {
            Err(Error::Refused(reason)) => reason,
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
    }
    let me = NodeIdentity::generate().unwrap();
    let srv = server(&[me.node_id()]).await;
    let reason = refusal(&me, &srv, &hello_in("older", PROTOCOL_VERSION - 1)).await;
    assert!(
        reason.contains("different protocols")
            && reason.contains(&format!("this one {PROTOCOL_VERSION}"))
            && reason.contains("same version of shard"),
        "{reason}"
    );
    // The other way: this build dials a node speaking the older protocol.
    let old = server_speaking(&[me.node_id()], MemoryStore::new(), PROTOCOL_VERSION - 1).await;
    let reason = refusal(&me, &old, &hello("new")).await;
    assert!(
        reason.contains("different protocols")
            && reason.contains(&PROTOCOL_VERSION.to_string())
            && reason.contains(&(PROTOCOL_VERSION - 1).to_string()),
        "{reason}"
    );
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
    let (keys, vault) = vault_keys();
    let s = share(5);
    a.put_share(vault, &s, T).await.unwrap();
    // Same vault id, same share id: Mallory still sees and deletes nothing of Alice's — not
    // even holding the vault's key, which only reaches Mallory's own namespace.
    assert!(m.list(vault, None, 100, T).await.unwrap().is_empty());
    assert_eq!(m.have(vault, vec![s.id()], T).await.unwrap(), vec![false]);
    assert_eq!(m.get_share(vault, s.id(), T).await.unwrap(), None);
    assert_eq!(
        m.delete(vault, vec![s.id()], true, keys.authority(), T)
            .await
            .unwrap(),
        0
    );
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
        .write_raw_plaintext(&[2, 0, 0, 0, PROTOCOL_VERSION + 7, 0])
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
        .write_raw_plaintext(&[100, 0, 0, 0, PROTOCOL_VERSION, 0])
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

/// Collects what the node logs, for tests that check a refusal names the sender.
#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let log = self.clone();
        tracing::subscriber::set_default(
            tracing_subscriber::fmt()
                .with_writer(move || log.clone())
                .with_ansi(false)
                .finish(),
        )
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// What a stolen laptop without the passphrase (the owner's node key, not the vault key) can
/// do to the owner's shares and head on a peer: nothing destructive. Every attempt is a typed
/// refusal and a log line naming the sender; nothing is deleted or replaced.
#[tokio::test]
async fn the_node_key_alone_cannot_delete_replace_a_head_or_take_a_vault_over() {
    let log = Log::default();
    let _guard = log.install();
    let owner = NodeIdentity::generate().unwrap();
    let srv = server(&[owner.node_id()]).await;
    let peer_id = srv.identity.node_id();
    let c = client(&srv, &owner).await;
    let (keys, vault) = vault_keys();
    let s = share(1);
    c.put_share(vault, &s, T).await.unwrap();
    let head = Bytes::from_static(b"sealed head 1");
    c.put_catalog_head(vault, 1, head.clone(), keys.authority(), T)
        .await
        .unwrap();

    // The thief has the node key (the same connection identity) but another vault key, or none.
    let (thief_keys, _) = vault_keys();
    let ops = [
        VaultOp::Delete {
            vault,
            ids: vec![s.id()],
            purge: true,
        },
        VaultOp::PutCatalogHead {
            vault,
            seq: u64::MAX,
            head: Bytes::from_static(b"empty catalog"),
        },
        VaultOp::Adopt {
            vault,
            from: vec![owner.node_id()],
        },
        VaultOp::Heads {
            vault,
            before: None,
        },
        VaultOp::Undelete {
            vault,
            ids: vec![s.id()],
        },
    ];
    for op in ops {
        // Signed by a key that is not the vault's.
        let nonce = c.challenge(T).await.unwrap();
        let forged = signed(&thief_keys, op.clone(), &peer_id, nonce);
        assert!(is_unauthorized(&c.call(forged, T).await), "{op:?}");
        // The vault's public key with a signature of nothing in particular.
        let nonce = c.challenge(T).await.unwrap();
        let mut bare = signed(&keys, op.clone(), &peer_id, nonce);
        if let Request::Authorized { auth, .. } = &mut bare {
            auth.signature = [7; 64];
        }
        assert!(is_unauthorized(&c.call(bare, T).await), "{op:?}");
    }
    let ns = Namespace {
        owner: owner.node_id(),
        vault,
    };
    assert_eq!(srv.store.get(&ns, &s.id()).unwrap(), Some(s));
    let kept = srv.heads.get(&vault).unwrap().unwrap();
    assert_eq!((kept.seq, kept.head.as_slice()), (1, &head[..]));
    assert_eq!(kept.owner, owner.node_id());
    let text = log.text();
    assert_eq!(text.matches("refused a").count(), 10, "{text}");
    assert!(
        text.contains("from client"),
        "the log names the sender: {text}"
    );
}

/// A request signed for one peer is worth nothing at another, and a challenge is good once:
/// a lying peer that received a signed hand-over cannot replay it elsewhere, nor can anyone
/// replay it where it was spent.
#[tokio::test]
async fn a_signed_request_is_good_once_and_only_at_the_peer_it_was_made_for() {
    let owner = NodeIdentity::generate().unwrap();
    let liar = server(&[owner.node_id()]).await;
    let honest = server(&[owner.node_id()]).await;
    let to_liar = client(&liar, &owner).await;
    let to_honest = client(&honest, &owner).await;
    let (keys, vault) = vault_keys();
    let s = share(3);
    to_honest.put_share(vault, &s, T).await.unwrap();

    // A hand-over signed for the liar, which keeps it instead of using it...
    let nonce = to_liar.challenge(T).await.unwrap();
    let for_liar = signed(
        &keys,
        VaultOp::Adopt {
            vault,
            from: vec![owner.node_id()],
        },
        &liar.identity.node_id(),
        nonce,
    );
    // ...and replays it at the honest peer.
    assert!(is_unauthorized(&to_honest.call(for_liar.clone(), T).await));
    // Even with a challenge of the honest peer's own, the signature names the liar.
    let nonce = to_honest.challenge(T).await.unwrap();
    let mut rebound = for_liar.clone();
    if let Request::Authorized { auth, .. } = &mut rebound {
        auth.challenge = nonce;
    }
    assert!(is_unauthorized(&to_honest.call(rebound, T).await));

    // A deletion signed right, sent twice: the second is refused (the challenge is spent).
    let nonce = to_honest.challenge(T).await.unwrap();
    let delete = signed(
        &keys,
        VaultOp::Delete {
            vault,
            ids: vec![s.id()],
            purge: true,
        },
        &honest.identity.node_id(),
        nonce,
    );
    to_honest.put_share(vault, &s, T).await.unwrap();
    assert!(matches!(
        to_honest.call(delete.clone(), T).await,
        Ok(Response::Deleted { count: 1 })
    ));
    to_honest.put_share(vault, &s, T).await.unwrap();
    assert!(is_unauthorized(&to_honest.call(delete, T).await));
    assert_eq!(
        to_honest.have(vault, vec![s.id()], T).await.unwrap(),
        vec![true]
    );
    // A challenge made up, never issued: refused.
    let made_up = signed(
        &keys,
        VaultOp::Heads {
            vault,
            before: None,
        },
        &honest.identity.node_id(),
        [9; 32],
    );
    assert!(is_unauthorized(&to_honest.call(made_up, T).await));
}

/// A paired node that learned a vault's id and stores the first head for it (squatting) is
/// refused — it cannot sign for the vault — and the owner's head is accepted; a head for a
/// vault the sender keeps no shares of is refused too, signed or not.
#[tokio::test]
async fn a_squatters_head_is_refused_and_the_owners_accepted() {
    let owner = NodeIdentity::generate().unwrap();
    let squatter = NodeIdentity::generate().unwrap();
    let srv = server(&[owner.node_id(), squatter.node_id()]).await;
    let o = client(&srv, &owner).await;
    let q = client(&srv, &squatter).await;
    let (keys, vault) = vault_keys();
    let (own_keys, _) = vault_keys();
    // The squatter stores a share under the vault id so it "holds shares" of it, then claims
    // the head with its own key.
    q.put_share(vault, &share(8), T).await.unwrap();
    let nonce = q.challenge(T).await.unwrap();
    let claim = signed(
        &own_keys,
        VaultOp::PutCatalogHead {
            vault,
            seq: 1_000_000,
            head: Bytes::from_static(b"squatted"),
        },
        &srv.identity.node_id(),
        nonce,
    );
    assert!(is_unauthorized(&q.call(claim, T).await));
    assert!(srv.heads.get(&vault).unwrap().is_none());
    // The owner: no shares here yet, so no head either; with shares, its head is kept.
    let err = o
        .put_catalog_head(vault, 1, Bytes::from_static(b"h1"), keys.authority(), T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::Refused,
                ..
            }
        ),
        "{err}"
    );
    o.put_share(vault, &share(9), T).await.unwrap();
    o.put_catalog_head(vault, 1, Bytes::from_static(b"h1"), keys.authority(), T)
        .await
        .unwrap();
    o.put_catalog_head(vault, 2, Bytes::from_static(b"h2"), keys.authority(), T)
        .await
        .unwrap();
    let err = o
        .put_catalog_head(vault, 2, Bytes::from_static(b"old"), keys.authority(), T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::Refused,
                ..
            }
        ),
        "{err}"
    );
    let kept = srv.heads.get(&vault).unwrap().unwrap();
    assert_eq!((kept.owner, kept.seq), (owner.node_id(), 2));
    // Even the vault's key, used from the squatter's node, cannot replace the owner's head:
    // only a hand-over (a recovery) moves it.
    let err = q
        .put_catalog_head(vault, 3, Bytes::from_static(b"x"), keys.authority(), T)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Remote {
                code: ErrorCode::Refused,
                ..
            }
        ),
        "{err}"
    );
}

/// A hand-over signed by the vault authority moves what the named former owner stored, and
/// the head, to the new node — not what a third node stored under the same vault id (junk a
/// node that learned the id could plant); run again, it changes nothing.
#[tokio::test]
async fn a_signed_hand_over_moves_the_vault_and_can_be_run_again() {
    let old = NodeIdentity::generate().unwrap();
    let new = NodeIdentity::generate().unwrap();
    let planter = NodeIdentity::generate().unwrap();
    let srv = server(&[old.node_id(), new.node_id(), planter.node_id()]).await;
    let o = client(&srv, &old).await;
    let n = client(&srv, &new).await;
    let p = client(&srv, &planter).await;
    let (keys, vault) = vault_keys();
    let shares: Vec<Share> = (20..25).map(share).collect();
    for s in &shares {
        o.put_share(vault, s, T).await.unwrap();
    }
    p.put_share(vault, &share(99), T).await.unwrap();
    o.put_catalog_head(vault, 4, Bytes::from_static(b"h"), keys.authority(), T)
        .await
        .unwrap();
    let former = vec![old.node_id()];
    assert_eq!(
        n.adopt(vault, former.clone(), keys.authority(), T)
            .await
            .unwrap(),
        5
    );
    assert_eq!(
        n.adopt(vault, former, keys.authority(), T).await.unwrap(),
        0
    );
    assert_eq!(p.list(vault, None, 10, T).await.unwrap().len(), 1);
    assert_eq!(srv.heads.get(&vault).unwrap().unwrap().owner, new.node_id());
    assert_eq!(n.list(vault, None, 10, T).await.unwrap().len(), 5);
    assert!(o.list(vault, None, 10, T).await.unwrap().is_empty());
    n.put_catalog_head(vault, 5, Bytes::from_static(b"h5"), keys.authority(), T)
        .await
        .unwrap();
}

/// Another connection of the same node id (a copy of the node key) asking for challenge after
/// challenge cannot crowd out the owner's: challenges belong to the connection that asked.
#[tokio::test]
async fn challenges_of_one_connection_are_its_own() {
    let owner = NodeIdentity::generate().unwrap();
    let srv = server(&[owner.node_id()]).await;
    let mine = client(&srv, &owner).await;
    let copy = client(&srv, &owner).await;
    let (keys, vault) = vault_keys();
    mine.put_share(vault, &share(1), T).await.unwrap();
    let nonce = mine.challenge(T).await.unwrap();
    for _ in 0..100 {
        copy.challenge(T).await.unwrap();
    }
    let request = signed(
        &keys,
        VaultOp::PutCatalogHead {
            vault,
            seq: 1,
            head: Bytes::from_static(b"h"),
        },
        &srv.identity.node_id(),
        nonce,
    );
    // Not on the other connection...
    assert!(is_unauthorized(&copy.call(request.clone(), T).await));
    // ...but still on its own (the failed attempt there spent nothing here).
    let nonce = mine.challenge(T).await.unwrap();
    let request = signed(
        &keys,
        VaultOp::PutCatalogHead {
            vault,
            seq: 1,
            head: Bytes::from_static(b"h"),
        },
        &srv.identity.node_id(),
        nonce,
    );
    assert!(matches!(
        mine.call(request, T).await,
        Ok(Response::HeadStored)
    ));
}

/// Heads a node leaves count: against what one node may keep here in heads, and the quota.
/// A paired node floods 1-MiB heads, each for a vault of its own making (validly signed): the
/// 65th is refused (64 MiB of heads per node, current or kept in a history).
#[cfg(feature = "adversary")]
#[tokio::test]
async fn catalog_heads_are_bounded_per_node() {
    let owner = NodeIdentity::generate().unwrap();
    let srv = server(&[owner.node_id()]).await;
    let c = client(&srv, &owner).await;
    let (taken, share_bytes, refused) =
        shard_testkit::attacks::flood_heads(&c, shard_proto::MAX_HEAD, 80).await;
    assert!(
        matches!(
            refused,
            Some(Error::Remote {
                code: ErrorCode::Full,
                ..
            })
        ),
        "{refused:?}"
    );
    let stored = (taken * shard_proto::MAX_HEAD) as u64;
    assert_eq!(stored, shard_net::rpc::HEAD_BYTES_PER_NODE, "{taken} heads");
    assert_eq!(c.usage(T).await.unwrap().used, stored + share_bytes);
}

/// Heads count against the node's quota: under a 1 MiB quota, 256-KiB heads are taken until
/// the quota is spent, then refused as `Full`, and usage reports them.
#[cfg(feature = "adversary")]
#[tokio::test]
async fn heads_beyond_the_quota_are_refused() {
    let owner = NodeIdentity::generate().unwrap();
    let srv = server_with(&[owner.node_id()], MemoryStore::with_quota(1 << 20)).await;
    let c = client(&srv, &owner).await;
    let (taken, share_bytes, refused) = shard_testkit::attacks::flood_heads(&c, 256 << 10, 8).await;
    assert!(
        matches!(
            refused,
            Some(Error::Remote {
                code: ErrorCode::Full,
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(
        taken, 3,
        "three 256-KiB heads and their shares fit in 1 MiB, not four heads"
    );
    let usage = c.usage(T).await.unwrap();
    assert_eq!(usage.used, (taken as u64) * (256 << 10) + share_bytes);
    assert!(usage.used <= 1 << 20);
}
