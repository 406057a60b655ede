//! How frames reach a peer, behind traits: a [`Transport`] dials, listens and authenticates
//! (a [`Listener`] yields [`Incoming`] connections that authenticate against the node's
//! [`Gatekeeper`]), a [`Connection`] carries frames both ways. TCP + Noise ([`NoiseTcp`]) is
//! the real one; [`crate::memory`] is an in-process one for tests and embedders; nothing
//! above them (the request layer, the node) knows which it runs on.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use shard_proto::{Message, NodeId, Request, Response, Share};

use crate::Result;
use crate::identity::NodeIdentity;
use crate::noise::{
    self, ChannelReader, ChannelWriter, Gatekeeper, Hello, PairingKey, PeerInfo, SecureChannel,
};

/// A boxed, sendable future (what the object-safe traits return).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Receives frames from the peer.
pub trait FrameRead: Send {
    /// The next message; an error ends the connection.
    fn read_frame(&mut self) -> BoxFuture<'_, Result<Message>>;
}

/// Sends frames to the peer.
pub trait FrameWrite: Send {
    /// Sends one message.
    fn write_frame<'a>(&'a mut self, message: &'a Message) -> BoxFuture<'a, Result<()>>;
    /// Sends a message ending with a share (an empty placeholder in `message`) plus the
    /// share. The default builds the full message (a copy); transports may avoid the copy.
    fn write_share_frame<'a>(
        &'a mut self,
        message: &'a Message,
        share: &'a Share,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let full = with_share(message, share);
            self.write_frame(&full).await
        })
    }
    /// Closes the sending direction.
    fn shutdown(&mut self) -> BoxFuture<'_, Result<()>>;
}

/// `message` with its share placeholder filled in.
fn with_share(message: &Message, share: &Share) -> Message {
    let bytes = bytes::Bytes::from(share.to_bytes());
    match message.clone() {
        Message::Request {
            id,
            body: Request::PutShare { vault, .. },
        } => Message::Request {
            id,
            body: Request::PutShare {
                vault,
                share: bytes,
            },
        },
        Message::Response {
            id,
            body: Response::Share { .. },
        } => Message::Response {
            id,
            body: Response::Share { share: bytes },
        },
        other => other,
    }
}

/// An established, authenticated connection, in two halves that can be used concurrently.
pub struct Connection {
    /// Incoming frames.
    pub reader: Box<dyn FrameRead>,
    /// Outgoing frames.
    pub writer: Box<dyn FrameWrite>,
    /// Who is at the other end (authenticated).
    pub peer: PeerInfo,
}

/// Dials peers and listens for them.
pub trait Transport: Send + Sync {
    /// Listens at `addr` (port 0: one of the transport's choosing).
    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Box<dyn Listener>>>;

    /// Connects to `addr`, introducing this node with `hello`; with `expect`, the answering
    /// node must be that one; with `pairing`, the handshake is keyed by an invite.
    fn connect<'a>(
        &'a self,
        addr: SocketAddr,
        hello: &'a Hello,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>>;
}

/// Where peers' connections arrive.
pub trait Listener: Send {
    /// The address it listens at.
    fn local_addr(&self) -> SocketAddr;
    /// The next connection, not yet authenticated (the caller bounds how many it
    /// authenticates at once, and from where, before doing any work for it).
    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<Incoming>>;
}

/// The handshake of an incoming connection: answers as this node with `hello`; `gate`
/// decides pairing and admission.
pub type Handshake =
    Box<dyn FnOnce(Hello, Arc<dyn Gatekeeper>) -> BoxFuture<'static, Result<Connection>> + Send>;

/// A connection that arrived and has not authenticated yet.
pub struct Incoming {
    /// Where it comes from.
    pub from: SocketAddr,
    handshake: Handshake,
}

impl Incoming {
    /// A connection from `from` that `handshake` authenticates.
    pub fn new(from: SocketAddr, handshake: Handshake) -> Self {
        Self { from, handshake }
    }

    /// Runs the handshake: the authenticated connection, or why it was not admitted.
    pub fn authenticate(
        self,
        hello: Hello,
        gate: Arc<dyn Gatekeeper>,
    ) -> BoxFuture<'static, Result<Connection>> {
        (self.handshake)(hello, gate)
    }
}

impl FrameRead for ChannelReader {
    fn read_frame(&mut self) -> BoxFuture<'_, Result<Message>> {
        Box::pin(ChannelReader::read_frame(self))
    }
}

impl FrameWrite for ChannelWriter {
    fn write_frame<'a>(&'a mut self, message: &'a Message) -> BoxFuture<'a, Result<()>> {
        Box::pin(ChannelWriter::write_frame(self, message))
    }

    fn write_share_frame<'a>(
        &'a mut self,
        message: &'a Message,
        share: &'a Share,
    ) -> BoxFuture<'a, Result<()>> {
        Box::pin(ChannelWriter::write_share_frame(self, message, share))
    }

    fn shutdown(&mut self) -> BoxFuture<'_, Result<()>> {
        Box::pin(ChannelWriter::shutdown(self))
    }
}

impl From<SecureChannel> for Connection {
    fn from(channel: SecureChannel) -> Self {
        Connection {
            reader: Box::new(channel.reader),
            writer: Box::new(channel.writer),
            peer: channel.peer,
        }
    }
}

/// TCP with the Noise handshake of [`crate::noise`].
pub struct NoiseTcp {
    identity: Arc<NodeIdentity>,
}

impl NoiseTcp {
    /// Dials and answers as `identity`.
    pub fn new(identity: Arc<NodeIdentity>) -> Self {
        Self { identity }
    }
}

impl Transport for NoiseTcp {
    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let listener = tokio::net::TcpListener::bind(addr).await?;
            Ok(Box::new(TcpNoiseListener {
                addr: listener.local_addr()?,
                listener,
                identity: self.identity.clone(),
            }) as Box<dyn Listener>)
        })
    }

    fn connect<'a>(
        &'a self,
        addr: SocketAddr,
        hello: &'a Hello,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>> {
        Box::pin(async move {
            let channel = noise::connect(addr, &self.identity, hello, expect, pairing).await?;
            Ok(channel.into())
        })
    }
}

/// A TCP listener whose connections answer the Noise handshake.
struct TcpNoiseListener {
    addr: SocketAddr,
    listener: tokio::net::TcpListener,
    identity: Arc<NodeIdentity>,
}

impl Listener for TcpNoiseListener {
    fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<Incoming>> {
        Box::pin(async move {
            let (stream, from) = self.listener.accept().await?;
            let identity = self.identity.clone();
            Ok(Incoming::new(
                from,
                Box::new(move |hello, gate| {
                    Box::pin(async move {
                        let channel =
                            noise::accept(stream, &identity, &hello, gate.as_ref()).await?;
                        Ok(channel.into())
                    })
                }),
            ))
        })
    }
}
