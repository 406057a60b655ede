//! How frames reach a peer, behind traits: [`Transport`] dials and authenticates, a
//! [`Connection`] carries frames both ways. TCP + Noise ([`NoiseTcp`]) today; a QUIC transport
//! or an in-memory one for tests would implement the same traits, and nothing above them (the
//! request layer, the node) would change.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use shard_proto::{Message, NodeId, Request, Response, Share};

use crate::Result;
use crate::identity::NodeIdentity;
use crate::noise::{
    self, ChannelReader, ChannelWriter, Hello, PairingKey, PeerInfo, SecureChannel,
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

/// Dials peers.
pub trait Transport: Send + Sync {
    /// Connects to `addr`; with `expect`, the answering node must be that one; with `pairing`,
    /// the handshake is keyed by an invite.
    fn connect<'a>(
        &'a self,
        addr: SocketAddr,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>>;
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
    hello: Hello,
}

impl NoiseTcp {
    /// Dials as `identity`, introducing itself with `hello`.
    pub fn new(identity: Arc<NodeIdentity>, hello: Hello) -> Self {
        Self { identity, hello }
    }
}

impl Transport for NoiseTcp {
    fn connect<'a>(
        &'a self,
        addr: SocketAddr,
        expect: Option<NodeId>,
        pairing: Option<&'a PairingKey>,
    ) -> BoxFuture<'a, Result<Connection>> {
        Box::pin(async move {
            let channel =
                noise::connect(addr, &self.identity, &self.hello, expect, pairing).await?;
            Ok(channel.into())
        })
    }
}
