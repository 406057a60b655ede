//! An in-process [`Transport`]: nodes in one program reach each other through channels, and a
//! test sets faults per node — its links [`Link::Down`] (refused, connections cut for good,
//! as a machine switched off cuts its TCP connections) or [`Link::Stalled`] (connected,
//! nothing arrives until it is up again). The engine runs on it exactly as on TCP, so
//! put, get, repair and recovery can be tested in-process, with no socket and in milliseconds.
//!
//! It does not encrypt (nothing leaves the process) but it authenticates as the Noise
//! transport does: a dialer is the identity its transport was made with, the answering node's
//! [`Gatekeeper`] admits it or refuses it with a reason, pairing needs the invite's key, and a
//! dialer that expects a node gets that node or an error. Addresses are made up on 127.0.0.1
//! and never bound.
//!
//! ```
//! use std::sync::Arc;
//! use shard_net::identity::NodeIdentity;
//! use shard_net::memory::MemoryNet;
//!
//! let net = MemoryNet::new();
//! let transport = net.transport(Arc::new(NodeIdentity::generate()?));
//! # let _ = transport;
//! # Ok::<(), shard_net::Error>(())
//! ```

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use subtle::ConstantTimeEq;
use tokio::sync::{mpsc, oneshot, watch};

use shard_proto::{Message, NodeId};

use crate::identity::{NodeIdentity, fingerprint};
use crate::noise::{Gatekeeper, Hello, PairingKey, PeerInfo};
use crate::transport::{
    BoxFuture, Connection, FrameRead, FrameWrite, Incoming, Listener, Route, Transport,
};
use crate::{Error, Result};

/// Frames buffered in each direction of a connection before the writer waits.
const PIPE: usize = 64;

/// The state of a node's links, as a test sets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// Frames flow.
    Up,
    /// Connections open (and stay open) but nothing arrives in either direction: a hung
    /// machine, a wedged network.
    Stalled,
    /// Connections are refused and the open ones closed: a machine switched off.
    Down,
}

/// One process's network of in-memory nodes.
pub struct MemoryNet {
    state: Mutex<NetState>,
}

struct NetState {
    next_port: u16,
    listeners: HashMap<SocketAddr, Listening>,
    links: HashMap<SocketAddr, watch::Sender<LinkState>>,
}

/// A node's link now, and how many times it was switched off: a connection made before the
/// latest switch-off stays closed when the link comes back, as a TCP one would.
#[derive(Clone, Copy)]
struct LinkState {
    link: Link,
    downs: u64,
}

struct Listening {
    id: NodeId,
    public: [u8; 32],
    queue: mpsc::Sender<Incoming>,
}

impl MemoryNet {
    /// An empty network.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(NetState {
                next_port: 20_000,
                listeners: HashMap::new(),
                links: HashMap::new(),
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A transport on this network that dials and answers as `identity`.
    pub fn transport(self: &Arc<Self>, identity: Arc<NodeIdentity>) -> Arc<dyn Transport> {
        Arc::new(MemoryTransport {
            net: self.clone(),
            identity,
            addr: Mutex::new(None),
        })
    }

    /// Sets the links of the node at `addr` (its listening address).
    pub fn set_link(&self, addr: SocketAddr, link: Link) {
        self.link(addr).send_modify(|state| {
            if link == Link::Down {
                state.downs += 1;
            }
            state.link = link;
        });
    }

    fn link(&self, addr: SocketAddr) -> watch::Sender<LinkState> {
        self.lock()
            .links
            .entry(addr)
            .or_insert_with(|| {
                watch::channel(LinkState {
                    link: Link::Up,
                    downs: 0,
                })
                .0
            })
            .clone()
    }

    /// Watches the link of `addr` from now on.
    fn watch(&self, addr: SocketAddr) -> End {
        let rx = self.link(addr).subscribe();
        let born = rx.borrow().downs;
        End { rx, born }
    }

    fn fresh_addr(&self) -> SocketAddr {
        let mut state = self.lock();
        loop {
            let port = state.next_port;
            state.next_port = state.next_port.checked_add(1).unwrap_or(20_000);
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            if !state.listeners.contains_key(&addr) {
                return addr;
            }
        }
    }
}

/// One end's link as a connection sees it.
#[derive(Clone)]
struct End {
    rx: watch::Receiver<LinkState>,
    /// The end's switch-offs when the connection was made.
    born: u64,
}

impl End {
    fn now(&self) -> Link {
        let state = *self.rx.borrow();
        if state.downs == self.born {
            state.link
        } else {
            Link::Down
        }
    }
}

/// Both ends' links of one connection: it is as bad as the worse of the two.
#[derive(Clone)]
struct Links([End; 2]);

impl Links {
    fn now(&self) -> Link {
        let [a, b] = &self.0;
        a.now().max(b.now())
    }

    /// Returns (with the error) once the link goes down.
    async fn down(mut self) -> Error {
        while self.now() != Link::Down {
            self.changed().await;
        }
        Error::Disconnected
    }

    /// Waits until either end's link changes.
    async fn changed(&mut self) {
        let [a, b] = &mut self.0;
        tokio::select! {
            r = a.rx.changed() => if r.is_err() { std::future::pending::<()>().await },
            r = b.rx.changed() => if r.is_err() { std::future::pending::<()>().await },
        }
    }

    /// Waits until frames may flow; an error once the link is down.
    async fn up(&mut self) -> Result<()> {
        loop {
            match self.now() {
                Link::Up => return Ok(()),
                Link::Down => return Err(Error::Disconnected),
                Link::Stalled => self.changed().await,
            }
        }
    }
}

struct MemoryTransport {
    net: Arc<MemoryNet>,
    identity: Arc<NodeIdentity>,
    addr: Mutex<Option<SocketAddr>>,
}

impl MemoryTransport {
    /// This node's address: where it listens, or one made up for a node that only dials.
    fn own_addr(&self) -> SocketAddr {
        let mut addr = self.addr.lock().unwrap_or_else(PoisonError::into_inner);
        *addr.get_or_insert_with(|| self.net.fresh_addr())
    }
}

/// What the dialer hands the listener: who it says it is (its transport's identity, which it
/// cannot choose) and, for pairing, the key it derived from the code.
struct Knock {
    peer: PeerInfo,
    pairing: Option<PairingKey>,
    answer: oneshot::Sender<std::result::Result<Hello, String>>,
}

impl Transport for MemoryTransport {
    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let addr = if addr.port() == 0 {
                self.net.fresh_addr()
            } else {
                addr
            };
            let (queue, incoming) = mpsc::channel(PIPE);
            {
                let mut state = self.net.lock();
                if state.listeners.contains_key(&addr) {
                    return Err(Error::Io(std::io::ErrorKind::AddrInUse.into()));
                }
                state.listeners.insert(
                    addr,
                    Listening {
                        id: self.identity.node_id(),
                        public: *self.identity.public(),
                        queue,
                    },
                );
            }
            *self.addr.lock().unwrap_or_else(PoisonError::into_inner) = Some(addr);
            Ok(Box::new(MemoryListener {
                net: self.net.clone(),
                addr,
                incoming,
            }) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(
        &'a self,
        to: &'a Route,
        hello: &'a Hello,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>> {
        Box::pin(async move {
            let Route::Tcp(addr) = *to else {
                return Err(Error::NoRoute(to.to_string()));
            };
            let from = self.own_addr();
            let mut links = Links([self.net.watch(from), self.net.watch(addr)]);
            let refused = || Error::Io(std::io::ErrorKind::ConnectionRefused.into());
            if links.now() == Link::Down {
                return Err(refused());
            }
            let (queue, id, public) = {
                let state = self.net.lock();
                let listening = state.listeners.get(&addr).ok_or_else(refused)?;
                (listening.queue.clone(), listening.id, listening.public)
            };
            if let Some(expected) = expect
                && expected != id
            {
                return Err(Error::UnexpectedPeer {
                    expected: fingerprint(&expected),
                    found: fingerprint(&id),
                });
            }
            // A stalled link: the handshake waits as a TCP one would (the caller's timeout ends it).
            links.up().await.map_err(|_| refused())?;
            let (to_them, their_inbox) = mpsc::channel(PIPE);
            let (to_me, my_inbox) = mpsc::channel(PIPE);
            let (answer, answered) = oneshot::channel();
            let knock = Knock {
                peer: PeerInfo {
                    id: self.identity.node_id(),
                    public: *self.identity.public(),
                    // As the Noise transport does: what a peer says of itself is cleaned.
                    hello: hello.clone().cleaned(),
                    addr: from,
                    transport_key: None,
                    probe: None,
                },
                pairing: pairing.cloned(),
                answer,
            };
            let their_end = Pipe {
                inbox: their_inbox,
                outbox: Some(to_me),
                links: links.clone(),
            };
            let incoming = Incoming::new(
                from,
                Box::new(move |hello, gate| Box::pin(answer_knock(knock, their_end, hello, gate))),
            );
            queue.send(incoming).await.map_err(|_| refused())?;
            let their_hello = tokio::select! {
                a = answered => a.map_err(|_| Error::Disconnected)?,
                e = links.clone().down() => return Err(e),
            }
            .map_err(Error::Refused)?;
            let mine = Pipe {
                inbox: my_inbox,
                outbox: Some(to_them),
                links,
            };
            Ok(mine.connection(PeerInfo {
                id,
                public,
                hello: their_hello.cleaned(),
                addr,
                transport_key: None,
                probe: None,
            }))
        })
    }
}

/// The answering side of a handshake: the gatekeeper decides, as in [`crate::noise::accept`].
async fn answer_knock(
    knock: Knock,
    pipe: Pipe,
    hello: Hello,
    gate: Arc<dyn Gatekeeper>,
) -> Result<Connection> {
    let Knock {
        peer,
        pairing,
        answer,
    } = knock;
    let mut invite = None;
    if let Some(key) = pairing {
        match gate.pairing_key(&key.invite_id) {
            Ok(ours) if bool::from(ours.psk.as_ref().ct_eq(key.psk.as_ref())) => {
                invite = Some(key.invite_id);
            }
            Ok(_) => {
                // As over Noise, where the handshake fails: the dialer learns nothing but a
                // closed connection.
                drop(answer);
                return Err(Error::Noise(format!(
                    "pairing attempt from {} with a wrong code",
                    peer.addr
                )));
            }
            Err(reason) => {
                let _ = answer.send(Err(reason.clone()));
                return Err(Error::Rejected(format!(
                    "pairing attempt from {}: {reason}",
                    peer.addr
                )));
            }
        }
    }
    match gate.admit(&peer, invite.as_ref()) {
        Ok(()) => {
            answer.send(Ok(hello)).map_err(|_| Error::Disconnected)?;
            Ok(pipe.connection(peer))
        }
        Err(reason) => {
            let _ = answer.send(Err(reason.clone()));
            Err(Error::Rejected(format!(
                "{} ({}): {reason}",
                fingerprint(&peer.id),
                peer.addr
            )))
        }
    }
}

struct MemoryListener {
    net: Arc<MemoryNet>,
    addr: SocketAddr,
    incoming: mpsc::Receiver<Incoming>,
}

impl Listener for MemoryListener {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<Incoming>> {
        Box::pin(async move {
            self.incoming
                .recv()
                .await
                .ok_or_else(|| std::io::ErrorKind::NotConnected.into())
        })
    }
}

impl Drop for MemoryListener {
    fn drop(&mut self) {
        self.net.lock().listeners.remove(&self.addr);
    }
}

/// One end of a connection.
struct Pipe {
    inbox: mpsc::Receiver<Message>,
    outbox: Option<mpsc::Sender<Message>>,
    links: Links,
}

impl Pipe {
    fn connection(self, peer: PeerInfo) -> Connection {
        Connection {
            reader: Box::new(PipeReader {
                inbox: self.inbox,
                links: self.links.clone(),
            }),
            writer: Box::new(PipeWriter {
                outbox: self.outbox,
                links: self.links,
            }),
            peer,
        }
    }
}

struct PipeReader {
    inbox: mpsc::Receiver<Message>,
    links: Links,
}

impl FrameRead for PipeReader {
    fn read_frame(&mut self) -> BoxFuture<'_, Result<Message>> {
        Box::pin(async move {
            let PipeReader { inbox, links } = self;
            loop {
                links.up().await?;
                // The link's changes are watched on the reader's own receivers, so each is
                // seen once (a fresh clone would see the last one again, and spin).
                tokio::select! {
                    m = inbox.recv() => {
                        let m = m.ok_or(Error::Disconnected)?;
                        // A frame that arrived as the link stalled waits with the rest.
                        links.up().await?;
                        return Ok(m);
                    }
                    () = links.changed() => {}
                }
            }
        })
    }
}

struct PipeWriter {
    outbox: Option<mpsc::Sender<Message>>,
    links: Links,
}

impl FrameWrite for PipeWriter {
    fn write_frame<'a>(&'a mut self, message: &'a Message) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            if self.links.now() == Link::Down {
                return Err(Error::Disconnected);
            }
            let outbox = self.outbox.as_ref().ok_or(Error::Disconnected)?;
            let down = self.links.clone().down();
            tokio::select! {
                sent = outbox.send(message.clone()) => sent.map_err(|_| Error::Disconnected),
                e = down => Err(e),
            }
        })
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(async move {
            self.outbox = None;
            Ok(())
        })
    }
}
