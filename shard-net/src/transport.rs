//! How frames reach a peer, behind traits: a [`Transport`] dials a [`Route`], listens and
//! authenticates (a [`Listener`] yields [`Incoming`] connections that authenticate against the
//! node's [`Gatekeeper`]), a [`Connection`] carries frames both ways. TCP + Noise
//! ([`NoiseTcp`]) is the LAN's; iroh + Noise ([`crate::wan::IrohTransport`]) reaches peers in
//! other homes; [`Paths`] holds both; [`crate::memory`] is an in-process one for tests and
//! embedders. Nothing above them (the request layer, the node) knows which it runs on.

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
pub use crate::route::{IrohRoute, MAX_RELAY_URL, Route, valid_relay_url};

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

    /// Connects to `to`, introducing this node with `hello`; with `expect`, the answering
    /// node must be that one; with `pairing`, the handshake is keyed by an invite. A route
    /// the transport does not carry is [`crate::Error::NoRoute`].
    fn connect<'a>(
        &'a self,
        to: &'a Route,
        hello: &'a Hello,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>>;

    /// The routes this node can be reached at through this transport beyond its listening
    /// socket's (an iroh endpoint's key and relay), for its hello and invite codes.
    fn routes(&self) -> Vec<Route> {
        Vec::new()
    }
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
        to: &'a Route,
        hello: &'a Hello,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>> {
        Box::pin(async move {
            let Route::Tcp(addr) = to else {
                return Err(crate::Error::NoRoute(to.to_string()));
            };
            let channel = noise::connect(*addr, &self.identity, hello, expect, pairing).await?;
            Ok(channel.into())
        })
    }
}

/// Every path a node has: TCP (the LAN, forwarded addresses) and, when configured, iroh. It
/// listens on both and dials each route with the transport that carries it.
pub struct Paths {
    tcp: Arc<dyn Transport>,
    iroh: Option<Arc<dyn Transport>>,
}

impl Paths {
    /// TCP through `tcp`, iroh routes through `iroh` (none: iroh routes are not dialed).
    pub fn new(tcp: Arc<dyn Transport>, iroh: Option<Arc<dyn Transport>>) -> Self {
        Self { tcp, iroh }
    }
}

impl Transport for Paths {
    fn listen(&self, addr: SocketAddr) -> BoxFuture<'_, Result<Box<dyn Listener>>> {
        Box::pin(async move {
            let tcp = self.tcp.listen(addr).await?;
            let Some(iroh) = &self.iroh else {
                return Ok(tcp);
            };
            let iroh = iroh.listen(addr).await?;
            Ok(Box::new(Both {
                tcp,
                iroh,
                tcp_first: true,
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
        match (to, &self.iroh) {
            (Route::Tcp(_), _) => self.tcp.connect(to, hello, expect, pairing),
            (Route::Iroh(_), Some(iroh)) => iroh.connect(to, hello, expect, pairing),
            (Route::Iroh(_), None) => {
                Box::pin(async move { Err(crate::Error::NoRoute(to.to_string())) })
            }
        }
    }

    fn routes(&self) -> Vec<Route> {
        let mut routes = self.tcp.routes();
        if let Some(iroh) = &self.iroh {
            routes.extend(iroh.routes());
        }
        routes
    }
}

/// Two listeners as one: whichever has a connection first (in turn, so one cannot starve
/// the other).
struct Both {
    tcp: Box<dyn Listener>,
    iroh: Box<dyn Listener>,
    tcp_first: bool,
}

impl Listener for Both {
    fn local_addr(&self) -> SocketAddr {
        self.tcp.local_addr()
    }

    fn accept(&mut self) -> BoxFuture<'_, std::io::Result<Incoming>> {
        self.tcp_first = !self.tcp_first;
        let tcp_first = self.tcp_first;
        Box::pin(async move {
            let (a, b) = if tcp_first {
                (&mut self.tcp, &mut self.iroh)
            } else {
                (&mut self.iroh, &mut self.tcp)
            };
            tokio::select! {
                biased;
                incoming = a.accept() => incoming,
                incoming = b.accept() => incoming,
            }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_urls_are_printable_ascii_with_a_host() {
        for good in [
            "https://relay.example.org",
            "https://10.99.9.9:3340/",
            "http://[::1]:3340",
            "https://xn--bcher-kva.example",
        ] {
            assert!(valid_relay_url(good), "{good}");
        }
        for bad in [
            "https://relay.example\u{202e}gro",
            "https://bücher.example",
            "https://relay example",
            "https://user@relay.example",
            "https://relay.example/?q",
            "https://relay.example/#f",
            "ftp://relay.example",
            "https://",
            "https:///path",
            "http://relay.example\t",
        ] {
            assert!(!valid_relay_url(bad), "{bad:?}");
        }
        assert!(!valid_relay_url(&format!(
            "https://{}",
            "a".repeat(MAX_RELAY_URL)
        )));
        assert!(Route::parse("iroh:00@https://x").is_none());
    }
}
