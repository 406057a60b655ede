//! The secure channel: Noise over a byte stream — TCP on the LAN, an iroh QUIC stream beyond
//! it (snow, with its ring resolver for speed).
//!
//! Sessions use `Noise_XX_25519_AESGCM_SHA256`: both sides prove their static key. Pairing uses
//! `Noise_XXpsk3_25519_AESGCM_SHA256` with a key derived from the invite's secret, so only
//! someone holding the code completes it. On the wire, records are a 2-byte big-endian length
//! and that many bytes (the Noise spec's framing):
//!
//! 1. initiator → `mode` (1 byte: 0 session, 1 pairing) ‖ Noise message 1. Its payload, in the
//!    clear, is empty for a session and the 8-byte invite id for pairing (the responder picks the
//!    pre-shared key by it). The mode is also in the prologue.
//! 2. responder → Noise message 2, with an empty payload: the responder says nothing about
//!    itself (beyond the static key Noise XX shows) until it knows who asks. Or, if it will not
//!    pair, an empty record then a record with the reason in UTF-8.
//! 3. initiator → Noise message 3, payload: its [`Hello`]. The initiator checks the responder's
//!    key against the node it meant to reach before sending it.
//! 4. responder → first transport message: `Admission` — accepted, with the responder's
//!    [`Hello`] (its name and addresses: a stranger never learns them), or refused with a
//!    reason the initiator can log (an unpaired key, for instance) before closing.
//!
//! A [`Hello`] is cleaned as it is read: a name without control characters, at most
//! [`MAX_NAME_CHARS`]; at most [`MAX_LISTEN_ADDRS`] addresses, each a real `IP:port`.
//!
//! After that each direction is a stream of protocol frames (see `shard_proto::wire`) cut into
//! Noise transport messages of at most 65 535 bytes. The state is split in two halves with their
//! own nonce counters (snow's stateless transport), so reading never waits for writing.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use serde::{Deserialize, Serialize};
use shard_proto::{
    Message, NodeId, Share, decode_frame, encode_frame, encode_share_frame_prefix, frame_len,
};
use snow::{HandshakeState, StatelessTransportState};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::identity::{NodeIdentity, fingerprint, node_id_of};
use crate::suite::builder;
use crate::{Error, Result};

const MODE_SESSION: u8 = 0;
const MODE_PAIRING: u8 = 1;
const MAX_RECORD: usize = 65_535;
const TAG: usize = 16;
/// Plaintext carried by one transport message.
const MAX_PLAIN: usize = MAX_RECORD - TAG;
/// Longest handshake payload accepted (names and addresses).
const MAX_HELLO: usize = 4096;

fn prologue(mode: u8) -> [u8; 15] {
    let mut p = *b"shard noise v2\0";
    p[14] = mode;
    p
}

/// Longest node name kept from a peer (characters).
pub const MAX_NAME_CHARS: usize = 64;
/// Most addresses kept from a peer's hello (the ones a node dials).
pub const MAX_LISTEN_ADDRS: usize = 16;

/// What a node says about itself during the handshake (encrypted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// Its name, as its owner chose it.
    pub name: String,
    /// Addresses it listens on for peers.
    pub listen: Vec<String>,
    /// Protocol version it speaks.
    pub protocol: u8,
}

/// The responder's verdict, the first message after the handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
enum Admission {
    /// Admitted; who the responder is.
    Accepted(Hello),
    /// Refused, and why.
    Refused(String),
}

impl Hello {
    /// What is kept of a peer's hello: its name through [`clean_name`] ("unnamed" if nothing
    /// is left); at most [`MAX_LISTEN_ADDRS`] routes ([`crate::route::Route`]): `IP:port`
    /// with a port and [`dialable`], and the first iroh endpoint.
    pub fn cleaned(self) -> Self {
        let name = clean_name(&self.name);
        let mut iroh_seen = false;
        let listen = self
            .listen
            .into_iter()
            .filter_map(|a| crate::route::Route::parse(&a))
            .filter(|r| match r {
                crate::route::Route::Tcp(a) => a.port() != 0 && dialable(a.ip()),
                // One iroh endpoint per node: a second would be a second key to pin.
                crate::route::Route::Iroh(_) => !std::mem::replace(&mut iroh_seen, true),
            })
            .map(|r| r.to_string())
            .take(MAX_LISTEN_ADDRS)
            .collect();
        Self {
            name: if name.is_empty() {
                "unnamed".into()
            } else {
                name
            },
            listen,
            protocol: self.protocol,
        }
    }
}

/// A node name as another node (or an announcement) gave it, made safe to show: no control
/// characters (no terminal escapes in `shard peers`), trimmed, at most [`MAX_NAME_CHARS`].
/// May be empty.
pub fn clean_name(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .collect::<String>()
        .trim()
        .chars()
        .take(MAX_NAME_CHARS)
        .collect()
}

/// The receiving side of the byte stream a channel runs over.
pub type StreamRead = Box<dyn AsyncRead + Send + Unpin>;
/// The sending side of the byte stream a channel runs over.
pub type StreamWrite = Box<dyn AsyncWrite + Send + Unpin>;

/// How a connection reaches its peer right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathKind {
    /// TCP to an address of the peer's (its LAN, or one forwarded to it).
    Lan,
    /// iroh, on a direct UDP path (after hole punching, or an address that was reachable).
    Direct,
    /// iroh, through a relay.
    Relay,
}

impl PathKind {
    /// The word `shard peers` and the API use: `lan`, `direct` or `relay`.
    pub fn as_str(self) -> &'static str {
        match self {
            PathKind::Lan => "lan",
            PathKind::Direct => "direct",
            PathKind::Relay => "relay",
        }
    }
}

/// Tells which path a connection uses now (it may move from a relay to a direct path while
/// it lasts).
pub trait PathProbe: Send + Sync + std::fmt::Debug {
    /// The path in use now.
    fn path(&self) -> PathKind;
}

/// Whether an address another node gave is one to dial: not unspecified, not multicast.
pub fn dialable(ip: std::net::IpAddr) -> bool {
    !ip.is_unspecified() && !ip.is_multicast()
}

/// The authenticated other end of a channel.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// Its id (SHA-256 of its static key).
    pub id: NodeId,
    /// Its static public key.
    pub public: [u8; 32],
    /// What it said about itself.
    pub hello: Hello,
    /// Its address as seen from here (for a relayed connection, the unspecified address).
    pub addr: SocketAddr,
    /// The key the stream under the channel authenticated, when it has one: the iroh
    /// endpoint key of a connection that came over iroh (pinned like the Noise key).
    pub transport_key: Option<[u8; 32]>,
    /// Which path the connection takes; `None` is TCP.
    pub probe: Option<Arc<dyn PathProbe>>,
}

impl PeerInfo {
    /// The path the connection takes now.
    pub fn path(&self) -> PathKind {
        self.probe.as_ref().map_or(PathKind::Lan, |p| p.path())
    }
}

/// How a pairing handshake is keyed.
#[derive(Clone)]
pub struct PairingKey {
    /// Public id of the invite, sent in the clear so the inviter can pick the key.
    pub invite_id: [u8; 8],
    /// The pre-shared key derived from the invite's secret.
    pub psk: zeroize::Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for PairingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "PairingKey({}, psk redacted)",
            hex::encode(self.invite_id)
        )
    }
}

/// The responder's policy: which pairing keys exist, and who is let in.
pub trait Gatekeeper: Send + Sync {
    /// The pre-shared key for an invite id, or why pairing is refused (unknown, expired, used).
    fn pairing_key(&self, invite_id: &[u8; 8]) -> std::result::Result<PairingKey, String>;

    /// Whether to admit `peer`. `paired` is the invite it just used, if this was a pairing:
    /// the gatekeeper then pins the peer and spends the invite.
    fn admit(&self, peer: &PeerInfo, paired: Option<&[u8; 8]>) -> std::result::Result<(), String>;
}

/// An established channel: its two halves and who is at the other end.
pub struct SecureChannel {
    /// Reads frames.
    pub reader: ChannelReader,
    /// Writes frames.
    pub writer: ChannelWriter,
    /// The authenticated peer.
    pub peer: PeerInfo,
}

async fn write_record(stream: &mut (impl AsyncWrite + Unpin), parts: &[&[u8]]) -> Result<()> {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let len = u16::try_from(len).map_err(|_| Error::Noise("record too long".into()))?;
    let mut buf = Vec::with_capacity(2 + usize::from(len));
    buf.extend_from_slice(&len.to_be_bytes());
    for p in parts {
        buf.extend_from_slice(p);
    }
    stream.write_all(&buf).await?;
    stream.flush().await?;
    Ok(())
}

async fn read_record(stream: &mut (impl AsyncRead + Unpin)) -> Result<Vec<u8>> {
    let len = stream.read_u16().await?;
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

async fn refuse(stream: &mut (impl AsyncWrite + Unpin), reason: &str) -> Result<()> {
    write_record(stream, &[]).await?;
    let reason = reason.as_bytes();
    write_record(
        stream,
        &[reason.get(..reason.len().min(512)).unwrap_or_default()],
    )
    .await
}

/// Why two nodes speaking protocols `ours` and `theirs` cannot talk, if they cannot.
fn protocol_mismatch(ours: u8, theirs: u8) -> Option<String> {
    (ours != theirs).then(|| {
        format!(
            "the nodes speak different protocols (this one {ours}, the other {theirs}): run the same version of shard on both"
        )
    })
}

fn hello_bytes(hello: &Hello) -> Result<Vec<u8>> {
    postcard::to_stdvec(hello).map_err(|_| Error::Noise("hello does not encode".into()))
}

fn read_hello(payload: &[u8]) -> Result<Hello> {
    if payload.len() > MAX_HELLO {
        return Err(Error::Noise("peer's hello is too long".into()));
    }
    postcard::from_bytes::<Hello>(payload)
        .map(Hello::cleaned)
        .map_err(|_| Error::Noise("peer's hello does not decode".into()))
}

fn remote_key(hs: &HandshakeState) -> Result<[u8; 32]> {
    hs.get_remote_static()
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(|| Error::Noise("peer sent no static key".into()))
}

/// Connects to `addr` over TCP as the initiator. With `expect`, the answering node must be
/// that one; with `pairing`, the handshake is keyed by an invite.
pub async fn connect(
    addr: SocketAddr,
    identity: &NodeIdentity,
    hello: &Hello,
    expect: Option<NodeId>,
    pairing: Option<&PairingKey>,
) -> Result<SecureChannel> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (read, write) = stream.into_split();
    let stream = Stream {
        read: Box::new(read),
        write: Box::new(write),
        addr,
        transport_key: None,
        probe: None,
    };
    connect_over(stream, identity, hello, expect, pairing).await
}

/// A byte stream to a peer, not yet secured, and what is known of it.
pub struct Stream {
    /// Its receiving side.
    pub read: StreamRead,
    /// Its sending side.
    pub write: StreamWrite,
    /// The peer's address as seen from here.
    pub addr: SocketAddr,
    /// The key the stream itself authenticated (an iroh endpoint key), if any.
    pub transport_key: Option<[u8; 32]>,
    /// Which path it takes; `None` is TCP.
    pub probe: Option<Arc<dyn PathProbe>>,
}

/// The initiator's side of the handshake over `stream` (see [`connect`]).
pub async fn connect_over(
    stream: Stream,
    identity: &NodeIdentity,
    hello: &Hello,
    expect: Option<NodeId>,
    pairing: Option<&PairingKey>,
) -> Result<SecureChannel> {
    let Stream {
        read: mut rd,
        write: mut wr,
        addr,
        transport_key,
        probe,
    } = stream;
    let mode = if pairing.is_some() {
        MODE_PAIRING
    } else {
        MODE_SESSION
    };
    let prologue = prologue(mode);
    let mut builder = builder(pairing.is_some())?
        .local_private_key(identity.private())?
        .prologue(&prologue)?;
    if let Some(p) = pairing {
        builder = builder.psk(3, &p.psk)?;
    }
    let mut hs = builder.build_initiator()?;
    let mut buf = vec![0u8; MAX_RECORD];

    let payload: &[u8] = pairing.map(|p| &p.invite_id[..]).unwrap_or(&[]);
    let n = hs.write_message(payload, &mut buf)?;
    write_record(&mut wr, &[&[mode], buf.get(..n).unwrap_or_default()]).await?;

    let msg2 = read_record(&mut rd).await?;
    if msg2.is_empty() {
        let reason = read_record(&mut rd).await?;
        return Err(Error::Refused(
            String::from_utf8_lossy(&reason).into_owned(),
        ));
    }
    let mut payload = vec![0u8; MAX_RECORD];
    hs.read_message(&msg2, &mut payload)?;
    let public = remote_key(&hs)?;
    let id = node_id_of(&public);
    if let Some(expected) = expect
        && expected != id
    {
        return Err(Error::UnexpectedPeer {
            expected: fingerprint(&expected),
            found: fingerprint(&id),
        });
    }
    let n = hs.write_message(&hello_bytes(hello)?, &mut buf)?;
    write_record(&mut wr, &[buf.get(..n).unwrap_or_default()]).await?;

    let peer = PeerInfo {
        id,
        public,
        hello: Hello {
            name: String::new(),
            listen: Vec::new(),
            protocol: 0,
        },
        addr,
        transport_key,
        probe,
    };
    let mut channel = split(rd, wr, hs.into_stateless_transport_mode()?, peer);
    match channel.reader.read_admission().await? {
        Admission::Accepted(theirs) => {
            if let Some(reason) = protocol_mismatch(hello.protocol, theirs.protocol) {
                return Err(Error::Refused(reason));
            }
            channel.peer.hello = theirs.cleaned();
            Ok(channel)
        }
        Admission::Refused(reason) => Err(Error::Refused(reason)),
    }
}

/// Answers an incoming TCP connection as the responder; `gate` decides pairing and admission.
pub async fn accept(
    stream: TcpStream,
    identity: &NodeIdentity,
    hello: &Hello,
    gate: &dyn Gatekeeper,
) -> Result<SecureChannel> {
    stream.set_nodelay(true)?;
    let addr = stream.peer_addr()?;
    let (read, write) = stream.into_split();
    let stream = Stream {
        read: Box::new(read),
        write: Box::new(write),
        addr,
        transport_key: None,
        probe: None,
    };
    accept_over(stream, identity, hello, gate).await
}

/// The responder's side of the handshake over `stream` (see [`accept`]).
pub async fn accept_over(
    stream: Stream,
    identity: &NodeIdentity,
    hello: &Hello,
    gate: &dyn Gatekeeper,
) -> Result<SecureChannel> {
    let Stream {
        read: mut rd,
        write: mut wr,
        addr,
        transport_key,
        probe,
    } = stream;
    let first = read_record(&mut rd).await?;
    let Some((&mode, msg1)) = first.split_first() else {
        return Err(Error::Noise("empty first message".into()));
    };
    if mode != MODE_SESSION && mode != MODE_PAIRING {
        return Err(Error::Noise(format!("unknown handshake mode {mode}")));
    }
    let prologue = prologue(mode);
    let mut hs = builder(mode == MODE_PAIRING)?
        .local_private_key(identity.private())?
        .prologue(&prologue)?
        .build_responder()?;
    let mut payload = vec![0u8; MAX_RECORD];
    let n = hs.read_message(msg1, &mut payload)?;
    let mut invite = None;
    if mode == MODE_PAIRING {
        let id: [u8; 8] = payload
            .get(..n)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::Noise("pairing without an invite id".into()))?;
        match gate.pairing_key(&id) {
            Ok(key) => hs.set_psk(3, key.psk.as_ref())?,
            Err(reason) => {
                refuse(&mut wr, &reason).await?;
                return Err(Error::Rejected(format!(
                    "pairing attempt from {addr}: {reason}"
                )));
            }
        }
        invite = Some(id);
    }
    let mut buf = vec![0u8; MAX_RECORD];
    let n = hs.write_message(&[], &mut buf)?;
    write_record(&mut wr, &[buf.get(..n).unwrap_or_default()]).await?;

    let msg3 = read_record(&mut rd).await?;
    let n = hs
        .read_message(&msg3, &mut payload)
        .map_err(|e| match invite {
            // With pairing, a failure here means the initiator did not know the invite's secret.
            Some(_) => Error::Noise(format!(
                "pairing attempt from {addr} with a wrong code ({e})"
            )),
            None => Error::from(e),
        })?;
    let their_hello = read_hello(payload.get(..n).unwrap_or_default())?;
    let public = remote_key(&hs)?;
    let peer = PeerInfo {
        id: node_id_of(&public),
        public,
        hello: their_hello,
        addr,
        transport_key,
        probe,
    };
    let mut channel = split(rd, wr, hs.into_stateless_transport_mode()?, peer);
    // Another protocol (another build's formats: share ids, frames) is refused: the two would
    // only misunderstand each other's requests. Named only to those who may know this node —
    // one holding the code (before the gate spends it and pins an incompatible node) or a
    // paired node (after the gate); a stranger hears "not paired" and no version.
    let mismatch = protocol_mismatch(hello.protocol, channel.peer.hello.protocol);
    let admitted = match (&invite, mismatch) {
        (Some(_), Some(reason)) => Err(reason),
        (_, mismatch) => gate
            .admit(&channel.peer, invite.as_ref())
            .and_then(|()| mismatch.map_or(Ok(()), Err)),
    };
    match admitted {
        Ok(()) => {
            channel
                .writer
                .write_admission(&Admission::Accepted(hello.clone()))
                .await?;
            Ok(channel)
        }
        Err(reason) => {
            channel
                .writer
                .write_admission(&Admission::Refused(reason.clone()))
                .await?;
            Err(Error::Rejected(format!(
                "{} ({addr}): {reason}",
                fingerprint(&channel.peer.id)
            )))
        }
    }
}

fn split(
    read: StreamRead,
    write: StreamWrite,
    state: StatelessTransportState,
    peer: PeerInfo,
) -> SecureChannel {
    let state = Arc::new(state);
    SecureChannel {
        reader: ChannelReader {
            io: read,
            inbuf: BytesMut::with_capacity(READ_AHEAD),
            state: state.clone(),
            nonce: 0,
            plain: BytesMut::with_capacity(2 * MAX_RECORD),
        },
        writer: ChannelWriter {
            io: write,
            state,
            nonce: 0,
            frame: Vec::new(),
            out: Vec::new(),
        },
        peer,
    }
}

/// The receiving half: decrypts Noise messages and yields protocol frames.
pub struct ChannelReader {
    io: StreamRead,
    /// Ciphertext read ahead, in large reads; records are decrypted straight out of it (no
    /// intermediate copy: measured on loopback, a `BufReader` plus a record buffer cost a
    /// third of the receiver's time, and two small reads per record cost more).
    inbuf: BytesMut,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    plain: BytesMut,
}

/// Bytes of a frame's length field, which `frame_len` has already bounded.
const FRAME_LEN_BYTES: usize = 4;

/// How many times what has arrived of a frame the receiver makes room for at most.
const RESERVE_AHEAD: usize = 16;

/// How much ciphertext one read asks for.
const READ_AHEAD: usize = 4 * MAX_RECORD;

/// How much ciphertext one write sends at most (16 full records, just under 1 MiB): a share
/// of several MiB goes out in a few writes from a buffer each connection keeps.
const WRITE_BATCH: usize = 16 * (2 + MAX_RECORD);

impl ChannelReader {
    /// The next message. Errors (a bad frame, a failed decryption, a closed socket) end the
    /// channel: the caller closes the connection and logs the reason.
    pub async fn read_frame(&mut self) -> Result<Message> {
        loop {
            if let Some(len) = frame_len(&self.plain)? {
                let frame = self.plain.split_to(len);
                return Ok(decode_frame(&frame)?);
            }
            // The frame's length is known from its first bytes (and bounded by `frame_len`):
            // when the next record does not fit, room is made for much more of the frame at
            // once — what a batch of records holds, or 16 times what has arrived, at most the
            // whole frame — in a buffer of exactly that size, not doubled a record at a time
            // (each doubling a copy). So four bytes announcing 9 MiB make room for one
            // batch, and a 9 MiB frame costs two buffers and a copy of one batch.
            if let Some(len) = self.plain.first_chunk::<4>() {
                let whole = FRAME_LEN_BYTES + u32::from_le_bytes(*len) as usize;
                let have = self.plain.len();
                if have < whole && self.plain.capacity() < have + MAX_RECORD {
                    let room = whole
                        .min((RESERVE_AHEAD * have).max(WRITE_BATCH))
                        .max(have + MAX_RECORD);
                    if !self.plain.try_reclaim(room - have) {
                        let mut grown = BytesMut::with_capacity(room);
                        grown.extend_from_slice(&self.plain);
                        self.plain = grown;
                    }
                }
            }
            self.read_record().await?;
        }
    }

    async fn read_record(&mut self) -> Result<()> {
        loop {
            if let Some(&[hi, lo]) = self.inbuf.first_chunk::<2>() {
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len <= TAG {
                    return Err(Error::Noise("transport message too short".into()));
                }
                if let Some(record) = self.inbuf.get(2..2 + len) {
                    let start = self.plain.len();
                    // Reserve before resizing so the buffer a decoded frame left behind is reused.
                    self.plain.reserve(len);
                    self.plain.resize(start + len - TAG, 0);
                    let out = self.plain.get_mut(start..).unwrap_or_default();
                    let n = self
                        .state
                        .read_message(self.nonce, record, out)
                        .map_err(|_| Error::Noise("a message failed authentication".into()))?;
                    self.nonce += 1;
                    self.plain.truncate(start + n);
                    bytes::Buf::advance(&mut self.inbuf, 2 + len);
                    return Ok(());
                }
            }
            self.inbuf.reserve(READ_AHEAD);
            if self.io.read_buf(&mut self.inbuf).await? == 0 {
                return Err(Error::Disconnected);
            }
        }
    }

    async fn read_admission(&mut self) -> Result<Admission> {
        self.read_record().await?;
        let bytes = self.plain.split();
        if bytes.len() > MAX_HELLO + 8 {
            return Err(Error::Noise("admission is too long".into()));
        }
        postcard::from_bytes(&bytes).map_err(|_| Error::Noise("admission does not decode".into()))
    }
}

/// The sending half: encodes frames and encrypts them into Noise messages.
pub struct ChannelWriter {
    io: StreamWrite,
    state: Arc<StatelessTransportState>,
    nonce: u64,
    frame: Vec<u8>,
    out: Vec<u8>,
}

impl ChannelWriter {
    /// Sends one message (one frame, in as many Noise messages as it needs, one write).
    pub async fn write_frame(&mut self, message: &Message) -> Result<()> {
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        encode_frame(message, &mut frame)?;
        let result = self.write_plain(&frame).await;
        self.frame = frame;
        result
    }

    /// Sends a message that ends with a share without copying the share into a frame: the
    /// message carries an empty placeholder (see `shard_proto::encode_share_frame_prefix`).
    pub async fn write_share_frame(&mut self, message: &Message, share: &Share) -> Result<()> {
        let mut prefix = std::mem::take(&mut self.frame);
        prefix.clear();
        encode_share_frame_prefix(message, share.encoded_len(), &mut prefix)?;
        let header = share.header().encode();
        let result = self
            .write_segments(&[&prefix, &header, share.payload()])
            .await;
        self.frame = prefix;
        result
    }

    async fn write_plain(&mut self, plain: &[u8]) -> Result<()> {
        self.write_segments(&[plain]).await
    }

    /// Encrypts the concatenation of `parts` into Noise messages and sends them, a batch of
    /// up to [`WRITE_BATCH`] bytes per write. Pieces that lie within one part are encrypted
    /// straight from it; only a piece spanning two parts is gathered first. The output buffer
    /// is the connection's for its life, at most one batch, so it is allocated and zeroed
    /// once: it was grown to each whole share frame, zero-filled and given back after it
    /// (measured: the memset alone was 3% of the owner's time in a put).
    async fn write_segments(&mut self, parts: &[&[u8]]) -> Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let records = total.div_ceil(MAX_PLAIN).max(1);
        let needed = (total + records * (2 + TAG)).min(WRITE_BATCH);
        if self.out.len() < needed {
            self.out.resize(needed, 0);
        }
        let mut used = 0;
        let mut gather = Vec::new();
        let (mut part, mut offset) = (0usize, 0usize);
        let mut remaining = total;
        loop {
            let take = remaining.min(MAX_PLAIN);
            if used + take + 2 + TAG > self.out.len() {
                self.io
                    .write_all(self.out.get(..used).unwrap_or_default())
                    .await?;
                used = 0;
            }
            // The next `take` bytes: a slice of one part, or gathered across parts.
            let current = parts.get(part).copied().unwrap_or_default();
            let piece: &[u8] = if offset + take <= current.len() {
                let piece = current.get(offset..offset + take).unwrap_or_default();
                offset += take;
                piece
            } else {
                gather.clear();
                while gather.len() < take {
                    let p = parts.get(part).copied().unwrap_or_default();
                    let rest = p.get(offset..).unwrap_or_default();
                    let want = (take - gather.len()).min(rest.len());
                    gather.extend_from_slice(rest.get(..want).unwrap_or_default());
                    offset += want;
                    if offset >= p.len() {
                        part += 1;
                        offset = 0;
                        if part >= parts.len() {
                            break;
                        }
                    }
                }
                &gather
            };
            let dest = self
                .out
                .get_mut(used + 2..used + 2 + take + TAG)
                .unwrap_or_default();
            let n = self.state.write_message(self.nonce, piece, dest)?;
            self.nonce += 1;
            let len = u16::try_from(n).map_err(|_| Error::Noise("record too long".into()))?;
            if let Some(slot) = self.out.get_mut(used..used + 2) {
                slot.copy_from_slice(&len.to_be_bytes());
            }
            used += 2 + n;
            remaining -= take;
            if remaining == 0 {
                break;
            }
            if offset >= parts.get(part).map_or(0, |p| p.len()) {
                part += 1;
                offset = 0;
            }
        }
        self.io
            .write_all(self.out.get(..used).unwrap_or_default())
            .await?;
        Ok(())
    }

    async fn write_admission(&mut self, admission: &Admission) -> Result<()> {
        let bytes = postcard::to_stdvec(admission)
            .map_err(|_| Error::Noise("admission does not encode".into()))?;
        self.write_plain(&bytes).await
    }

    /// Sends raw plaintext as transport messages, bypassing frame encoding: for tests and
    /// adversarial peers that must send what a correct node never would.
    #[doc(hidden)]
    pub async fn write_raw_plaintext(&mut self, plain: &[u8]) -> Result<()> {
        self.write_plain(plain).await
    }

    /// Closes the sending direction.
    pub async fn shutdown(&mut self) -> Result<()> {
        self.io.shutdown().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_hello_is_cleaned_of_escapes_and_excess() {
        let mut listen: Vec<String> = (1..=200u16).map(|p| format!("10.0.0.1:{p}")).collect();
        listen.insert(0, "0.0.0.0:7714".into());
        listen.insert(0, "224.0.0.251:7714".into());
        listen.insert(0, "10.0.0.9:0".into());
        listen.insert(0, "not an address".into());
        let hello = Hello {
            name: format!(
                "  \u{1b}[2J\u{1b}]0;pwned\u{7}evil\r\nnode{}",
                "x".repeat(500)
            ),
            listen,
            protocol: 2,
        }
        .cleaned();
        assert!(
            hello.name.starts_with("[2J]0;pwnedevilnode"),
            "{}",
            hello.name
        );
        assert!(!hello.name.chars().any(char::is_control));
        assert_eq!(hello.name.chars().count(), MAX_NAME_CHARS);
        assert_eq!(hello.listen.len(), MAX_LISTEN_ADDRS);
        assert_eq!(hello.listen.first().map(String::as_str), Some("10.0.0.1:1"));
        let blank = Hello {
            name: "\u{1b}\t ".into(),
            listen: vec![],
            protocol: 2,
        }
        .cleaned();
        assert_eq!(blank.name, "unnamed");
    }
}
