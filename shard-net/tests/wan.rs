//! The Noise channel over iroh, through a relay of the test's own on 127.0.0.1 (never a public
//! one): a paired node gets through and is authenticated by both keys, a stranger who knows
//! the endpoint key and the relay gets a refused handshake, a dial that expects another node
//! fails, and frames cross both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use shard_net::Error;
use shard_net::identity::NodeIdentity;
use shard_net::noise::{Gatekeeper, Hello, PairingKey, PathKind, PeerInfo};
use shard_net::relay::{Relay, RelayOptions};
use shard_net::transport::{Connection, IrohRoute, Route, Transport};
use shard_net::wan::{IrohTransport, Relays, WanConfig};
use shard_proto::{Message, NodeId, PROTOCOL_VERSION, Request, Response};

struct Gate {
    trusted: NodeId,
}

impl Gatekeeper for Gate {
    fn pairing_key(&self, _: &[u8; 8]) -> Result<PairingKey, String> {
        Err("unknown invite code".into())
    }
    fn admit(&self, peer: &PeerInfo, _: Option<&[u8; 8]>) -> Result<(), String> {
        if peer.id == self.trusted {
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

async fn relay() -> Relay {
    Relay::start(RelayOptions {
        listen: ([127, 0, 0, 1], 0).into(),
        tls: None,
        quic_port: 0,
    })
    .await
    .unwrap()
}

async fn endpoint(relay: &Relay) -> (Arc<NodeIdentity>, IrohTransport) {
    let identity = Arc::new(NodeIdentity::generate().unwrap());
    let config = WanConfig {
        relays: Relays::Own(vec![relay.url().to_string()]),
        extra_roots: Vec::new(),
        bind: ([127, 0, 0, 1], 0).into(),
        relay_only: false,
    };
    let transport = IrohTransport::bind(identity.clone(), &config)
        .await
        .unwrap();
    assert!(
        transport.online(Duration::from_secs(10)).await,
        "the endpoint did not reach the test's relay"
    );
    (identity, transport)
}

/// A node answering every iroh connection with `gate`; yields what each handshake came to.
fn serve(
    transport: Arc<IrohTransport>,
    trusted: NodeId,
) -> tokio::sync::mpsc::UnboundedReceiver<shard_net::Result<Connection>> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut listener = transport.listen(([127, 0, 0, 1], 0).into()).await.unwrap();
        while let Ok(incoming) = listener.accept().await {
            let gate: Arc<dyn Gatekeeper> = Arc::new(Gate { trusted });
            let done = incoming.authenticate(hello("server"), gate).await;
            if tx.send(done).is_err() {
                break;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paired_node_gets_through_a_relay_and_a_stranger_does_not() {
    let relay = relay().await;
    let (server_id, server) = endpoint(&relay).await;
    let server = Arc::new(server);
    let (client_id, client) = endpoint(&relay).await;
    let (_, stranger) = endpoint(&relay).await;
    let mut accepted = serve(server.clone(), client_id.node_id());
    // Dialed by key and relay only: no address of the server's is given.
    let route = Route::Iroh(IrohRoute {
        key: server.key(),
        relay: Some(relay.url().to_string()),
    });

    let mut mine = tokio::time::timeout(
        Duration::from_secs(20),
        client.connect(&route, &hello("client"), Some(server_id.node_id()), None),
    )
    .await
    .expect("no answer over iroh")
    .unwrap();
    assert_eq!(mine.peer.id, server_id.node_id());
    assert_eq!(mine.peer.hello.name, "server");
    assert_eq!(mine.peer.transport_key, Some(server.key()));
    assert_ne!(mine.peer.path(), PathKind::Lan);
    let mut theirs = accepted.recv().await.unwrap().unwrap();
    assert_eq!(theirs.peer.id, client_id.node_id());
    // The server learns the client's iroh key from the connection itself (what it pins).
    assert_eq!(theirs.peer.transport_key, Some(client.key()));

    // Frames cross both ways, a large one (many Noise messages) too.
    let ping = Message::Request {
        id: 7,
        body: Request::Ping { nonce: 42 },
    };
    mine.writer.write_frame(&ping).await.unwrap();
    let got = theirs.reader.read_frame().await.unwrap();
    assert!(matches!(got, Message::Request { id: 7, .. }), "{got:?}");
    let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let big = Message::Response {
        id: 8,
        body: Response::Share {
            share: bytes::Bytes::from(payload.clone()),
        },
    };
    // Written while read, as a node does (a frame larger than the stream's window waits for
    // its reader).
    let (written, read) = tokio::join!(theirs.writer.write_frame(&big), mine.reader.read_frame());
    written.unwrap();
    match read.unwrap() {
        Message::Response {
            id: 8,
            body: Response::Share { share },
        } => assert!(
            share[..] == payload[..],
            "the large frame changed on the way"
        ),
        other => panic!("{other:?}"),
    }

    // A stranger who knows the key and the relay: refused, with the reason, and no hello.
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        stranger.connect(&route, &hello("stranger"), None, None),
    )
    .await
    .expect("no answer to the stranger")
    .err()
    .expect("a stranger got a connection");
    assert!(
        matches!(&refused, Error::Refused(why) if why.contains("not paired")),
        "{refused}"
    );
    assert!(accepted.recv().await.unwrap().is_err());

    // Dialing the server's key while expecting another node fails before any hello is sent.
    let wrong = client
        .connect(&route, &hello("client"), Some(NodeId([9; 32])), None)
        .await
        .err()
        .expect("connected to the wrong node");
    assert!(matches!(wrong, Error::UnexpectedPeer { .. }), "{wrong}");

    relay.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_route_is_not_dialed_over_iroh_and_a_bad_relay_url_is_named() {
    let relay = relay().await;
    let (_, transport) = endpoint(&relay).await;
    let err = transport
        .connect(
            &Route::Tcp(([127, 0, 0, 1], 9).into()),
            &hello("x"),
            None,
            None,
        )
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::NoRoute(_)), "{err}");
    for bad in [
        "ftp://relay.example",
        "relay.example.org",
        "https://",
        "https://a b",
    ] {
        let err = shard_net::wan::parse_relays(&[bad.to_string()])
            .err()
            .unwrap_or_else(|| panic!("{bad} was taken"));
        assert!(err.to_string().contains(bad), "{err}");
    }
}

/// A stranger who reaches the node's UDP port directly (no relay to name its key first) is
/// refused once its QUIC handshake proves its key, before any stream: the key filter holds on
/// every path, not only on relayed connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_on_a_direct_path_is_refused_by_key() {
    let relay = relay().await;
    let (_, server) = endpoint(&relay).await;
    let server = Arc::new(server);
    let (client_id, client) = endpoint(&relay).await;
    let allowed = client.key();
    server.set_filter(Arc::new(move |key: &[u8; 32]| *key == allowed));
    let mut accepted = serve(server.clone(), client_id.node_id());
    let direct = server
        .status()
        .direct_addrs
        .into_iter()
        .find(std::net::SocketAddr::is_ipv4)
        .expect("the server has a direct address on loopback");

    // A bare iroh endpoint with no relay: it can only come the direct way.
    let stranger = iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .bind_addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .unwrap()
        .bind()
        .await
        .unwrap();
    let target = iroh::EndpointAddr::new(iroh::PublicKey::from_bytes(&server.key()).unwrap())
        .with_ip_addr(direct);
    let attempt = tokio::time::timeout(Duration::from_secs(20), async {
        let connection = stranger.connect(target, shard_net::wan::ALPN).await?;
        let (mut send, mut recv) = connection.open_bi().await?;
        send.write_all(b"hello?").await?;
        let mut buf = [0u8; 16];
        let n = recv.read(&mut buf).await?;
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(n)
    })
    .await
    .expect("the stranger's attempt hung");
    assert!(
        !matches!(attempt, Ok(Some(n)) if n > 0),
        "the stranger read bytes: {attempt:?}"
    );
    let refused = tokio::time::timeout(Duration::from_secs(20), accepted.recv())
        .await
        .expect("the server never saw the stranger")
        .unwrap()
        .err()
        .expect("the stranger was let in");
    assert!(
        refused.to_string().contains("not a paired peer"),
        "{refused}"
    );
    stranger.close().await;

    // A node the filter does not know, dialing by key through the relay as a node does: it
    // is told, in words, that it is not let in (a used or expired invite code lands here).
    let (_, outsider) = endpoint(&relay).await;
    let route = Route::Iroh(IrohRoute {
        key: server.key(),
        relay: Some(relay.url().to_string()),
    });
    let said = tokio::time::timeout(
        Duration::from_secs(20),
        outsider.connect(&route, &hello("outsider"), None, None),
    )
    .await
    .expect("the outsider's dial hung")
    .err()
    .expect("the outsider got a connection");
    assert!(
        matches!(&said, Error::Refused(why) if why == shard_net::wan::NOT_LET_IN),
        "{said}"
    );
    relay.shutdown().await.unwrap();
}
