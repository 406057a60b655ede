//! The peer protocol: frames and the messages they carry.
//!
//! Protocol version 3 (version 2 carried data format 1's SHA-256 share ids; version 1 had
//! unsigned deletes, heads and hand-overs). Inside the secure
//! channel (Noise, in `shard-net`) the two directions are
//! byte streams of frames:
//! ```text
//! offset  len  field
//!      0    4  length of what follows (version byte + body), little-endian, 1..=MAX_FRAME
//!      4    1  protocol version = 3 (2 spoke data format 1: SHA-256 share ids)
//!      5    …  body: postcard encoding of a [`Message`]
//! ```
//! A frame announcing more than [`MAX_FRAME`] bytes, or another version, is a protocol error:
//! the connection is closed with a logged reason. Requests carry an id chosen by the sender;
//! the response with the same id answers it, in any order, so many requests are in flight on
//! one connection. A whole share (at most 8 MiB) travels in one frame; the channel below cuts
//! frames into Noise messages of at most 64 KiB.
//!
//! What only a vault's owner may do (delete its shares, replace its catalog head, hand it over
//! to a new node) travels as [`Request::Authorized`]: a [`VaultOp`] with a [`VaultAuth`], the
//! vault authority's signature over [`VaultOp::signed_message`] — the serving peer's own id, a
//! fresh challenge the peer issued ([`Request::Challenge`]) and the operation. A signature for
//! one peer is worthless at another, and each challenge is good once.
//!
//! Decoding is `check` then `parse` over a buffer (as in mini-redis): [`frame_len`] says
//! whether a complete frame is there without decoding it, [`decode_frame`] decodes one.
//! Neither touches a socket, neither panics, and no allocation exceeds the frame's length.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Error, NodeId, Result, ShareId};

/// Protocol version this build speaks (3: share ids are BLAKE3, data format 2; 4: ranged share
/// reads).
pub const PROTOCOL_VERSION: u8 = 4;
/// Largest frame (version byte + body): a share of 8 MiB plus room for the message around it.
pub const MAX_FRAME: usize = 9 << 20;
/// Bytes before the body: length and version.
pub const FRAME_HEADER_LEN: usize = 5;
/// Most ids in one have/delete request.
pub const MAX_IDS_PER_REQUEST: usize = 65_536;
/// Largest catalog head a peer is asked to keep (a head names the snapshot's shares; 1 MiB is
/// the snapshot of millions of files).
pub const MAX_HEAD: usize = 1 << 20;
/// Most former holders one hand-over names.
pub const MAX_ADOPT_FROM: usize = 64;
/// Most heads a [`Response::CatalogHeads`] carries (so the answer fits in a frame).
pub const MAX_HEADS_LISTED: usize = 8;
/// Length of a challenge a peer issues for an authorized request.
pub const CHALLENGE_LEN: usize = 32;
/// What a vault authority signs before the operation's bytes (domain separation).
const SIGNED_DOMAIN: &[u8] = b"shard vault op v1";

/// A vault's public id, as requests name it. The owner half of a namespace is never in a
/// request: the serving peer takes it from the authenticated channel.
pub type VaultRef = [u8; 16];

/// One frame's content.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// A request; answered by the response with the same id.
    Request {
        /// Chosen by the sender, unique among its requests in flight.
        id: u64,
        /// What is asked.
        body: Request,
    },
    /// The answer to request `id`.
    Response {
        /// The request's id.
        id: u64,
        /// The answer.
        body: Response,
    },
}

/// What one peer may ask another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Request {
    /// Liveness and round-trip time.
    Ping {
        /// Echoed back.
        nonce: u64,
    },
    /// Store a share durably (answered only once it is on disk).
    PutShare {
        /// The vault it belongs to.
        vault: VaultRef,
        /// The encoded share (header + payload).
        share: Bytes,
    },
    /// Fetch a share.
    GetShare {
        /// The vault.
        vault: VaultRef,
        /// The share.
        id: ShareId,
    },
    /// Bytes `start..end` of a share's payload (ranged restore out of a pack). The bytes are
    /// not checked against the share id by the peer (that needs the whole share); the owner
    /// authenticates them as the sealed blobs they are.
    GetShareRange {
        /// The vault.
        vault: VaultRef,
        /// The share.
        id: ShareId,
        /// First payload byte.
        start: u32,
        /// One past the last payload byte; `start < end <= payload length`.
        end: u32,
    },
    /// Which of these shares do you hold?
    Have {
        /// The vault.
        vault: VaultRef,
        /// The shares asked about.
        ids: Vec<ShareId>,
    },
    /// List the asker's shares of a vault, in id order, after a cursor.
    List {
        /// The vault.
        vault: VaultRef,
        /// Start after this id.
        after: Option<ShareId>,
        /// At most this many.
        limit: u32,
    },
    /// How much the peer stores and may still store.
    Usage,
    /// A fresh challenge to sign into the next [`Request::Authorized`] (good once, for a
    /// short while, on this peer only).
    Challenge,
    /// Something only the vault's owner may do, signed by the vault authority.
    Authorized {
        /// What to do.
        op: VaultOp,
        /// The vault authority's key, the challenge and the signature.
        auth: VaultAuth,
    },
    /// The asking node's shares of a vault that this peer found corrupt and quarantined
    /// (its scrub, or a read), so the owner can repair them.
    Quarantined {
        /// The vault.
        vault: VaultRef,
    },
}

/// What only a vault's owner may ask (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum VaultOp {
    /// Delete shares in the asker's own namespace. They wait out the peer's grace period (and
    /// can be stored again meanwhile) unless `purge`.
    Delete {
        /// The vault.
        vault: VaultRef,
        /// The shares.
        ids: Vec<ShareId>,
        /// Remove them at once instead of keeping them for the grace period.
        purge: bool,
    },
    /// Keep this catalog head for the vault (only a newer one than kept).
    PutCatalogHead {
        /// The vault.
        vault: VaultRef,
        /// Its sequence number.
        seq: u64,
        /// The sealed head (opaque to the peer).
        head: Bytes,
    },
    /// Hand the vault over to the asking node (a recovery on a new machine): the shares the
    /// nodes in `from` stored for it, and its head.
    Adopt {
        /// The vault.
        vault: VaultRef,
        /// The nodes that held the vault before (the heads name them); at most
        /// [`MAX_ADOPT_FROM`].
        from: Vec<NodeId>,
    },
    /// The catalog heads kept for the vault, newest first: the current one and those replaced
    /// within the grace period, at most [`MAX_HEADS_LISTED`] with a sequence number below
    /// `before` (paging back through the history). Read with the vault's signature only, so
    /// no other node learns how large or how busy a vault is.
    Heads {
        /// The vault.
        vault: VaultRef,
        /// Only heads older than this sequence number.
        before: Option<u64>,
    },
    /// Bring back shares of the asker's namespace that were deleted and are still within the
    /// grace period (a recovery of an earlier catalog).
    Undelete {
        /// The vault.
        vault: VaultRef,
        /// The shares.
        ids: Vec<ShareId>,
    },
}

impl VaultOp {
    /// The vault the operation is about.
    pub fn vault(&self) -> &VaultRef {
        match self {
            VaultOp::Delete { vault, .. }
            | VaultOp::PutCatalogHead { vault, .. }
            | VaultOp::Adopt { vault, .. }
            | VaultOp::Heads { vault, .. }
            | VaultOp::Undelete { vault, .. } => vault,
        }
    }

    /// What the vault authority signs for the operation at peer `peer` with `challenge`:
    /// `"shard vault op v1" ‖ peer id (32) ‖ challenge (32) ‖ postcard(op)`.
    pub fn signed_message(&self, peer: &NodeId, challenge: &[u8; CHALLENGE_LEN]) -> Vec<u8> {
        let mut out = Vec::with_capacity(SIGNED_DOMAIN.len() + 64 + 64);
        out.extend_from_slice(SIGNED_DOMAIN);
        out.extend_from_slice(&peer.0);
        out.extend_from_slice(challenge);
        match postcard::to_extend(self, out) {
            Ok(v) => v,
            Err(_) => unreachable!("postcard serialization into a Vec is infallible"),
        }
    }

    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            VaultOp::Delete { .. } => "delete",
            VaultOp::PutCatalogHead { .. } => "catalog head",
            VaultOp::Adopt { .. } => "hand-over",
            VaultOp::Heads { .. } => "reading of catalog heads",
            VaultOp::Undelete { .. } => "undelete",
        }
    }
}

/// The vault authority's proof for one [`VaultOp`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaultAuth {
    /// The authority's public key; its hash is the vault id.
    pub key: [u8; 32],
    /// The challenge the serving peer issued.
    pub challenge: [u8; CHALLENGE_LEN],
    /// Ed25519 signature of [`VaultOp::signed_message`].
    #[serde(with = "serde_bytes")]
    pub signature: [u8; 64],
}

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorCode {
    /// The request is malformed or out of range.
    BadRequest,
    /// The share (or head) is not held.
    NotFound,
    /// The share is held but damaged; it was quarantined.
    Corrupt,
    /// The peer's store is full.
    Full,
    /// The peer is shutting down or overloaded; try again or elsewhere.
    Unavailable,
    /// The peer failed internally.
    Internal,
    /// The peer does not support this request.
    Unsupported,
    /// A catalog head older than the one kept, or from a node that may not replace it.
    Refused,
    /// An authorized request whose signature, key or challenge does not hold.
    Unauthorized,
}

/// Answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Response {
    /// Answer to [`Request::Ping`].
    Pong {
        /// The request's nonce.
        nonce: u64,
    },
    /// The share is on disk.
    Stored,
    /// The requested share.
    Share {
        /// The encoded share.
        share: Bytes,
    },
    /// Answer to [`Request::GetShareRange`]: exactly the bytes asked for.
    ShareRange {
        /// The payload bytes `start..end`.
        bytes: Bytes,
    },
    /// Answer to [`Request::Have`], one flag per id asked.
    Have {
        /// Whether each share is held.
        have: Vec<bool>,
    },
    /// How many shares were deleted.
    Deleted {
        /// Count.
        count: u64,
    },
    /// A page of share ids.
    List {
        /// The ids.
        ids: Vec<ShareId>,
    },
    /// The peer's storage.
    Usage {
        /// Bytes stored.
        used: u64,
        /// Shares stored.
        shares: u64,
        /// Bytes it accepts in all, if limited.
        quota: Option<u64>,
        /// Of `used`, bytes of deleted shares waiting out the grace period (reclaimed first
        /// when the store fills up).
        reclaimable: u64,
    },
    /// The catalog head is kept.
    HeadStored,
    /// Answer to [`VaultOp::Heads`]: (sequence number, sealed head), newest first.
    CatalogHeads {
        /// The heads.
        heads: Vec<(u64, Bytes)>,
    },
    /// How many shares [`VaultOp::Undelete`] brought back.
    Undeleted {
        /// Count.
        count: u64,
    },
    /// A challenge for [`Request::Authorized`].
    Challenge {
        /// Sign it in; good once.
        nonce: [u8; CHALLENGE_LEN],
    },
    /// The vault was handed over; this many shares moved to the asking node.
    Adopted {
        /// Shares moved.
        moved: u64,
    },
    /// Shares in quarantine (at most [`MAX_IDS_PER_REQUEST`]).
    Quarantined {
        /// Their ids.
        ids: Vec<ShareId>,
    },
    /// The request failed.
    Error {
        /// Why, for programs.
        code: ErrorCode,
        /// Why, for people.
        message: String,
    },
}

/// Length of the complete frame at the start of `buf`, or `None` if more bytes are needed.
/// Errors for a frame that can never be valid (too long, empty, other version).
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>> {
    let Some(len) = buf.first_chunk::<4>() else {
        return Ok(None);
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_FRAME {
        return Err(Error::FrameTooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    if len == 0 {
        return Err(Error::MalformedMessage("empty frame"));
    }
    if let Some(&version) = buf.get(4)
        && version != PROTOCOL_VERSION
    {
        return Err(Error::UnsupportedVersion(version));
    }
    Ok((buf.len() >= 4 + len).then_some(4 + len))
}

/// Decodes the one frame `buf` holds (as delimited by [`frame_len`]).
pub fn decode_frame(buf: &[u8]) -> Result<Message> {
    match frame_len(buf)? {
        Some(len) if len == buf.len() => {}
        Some(_) => return Err(Error::MalformedMessage("bytes after the frame")),
        None => {
            return Err(Error::Truncated {
                need: FRAME_HEADER_LEN,
                have: buf.len(),
            });
        }
    }
    let body = buf.get(FRAME_HEADER_LEN..).unwrap_or_default();
    let (message, rest): (Message, &[u8]) = postcard::take_from_bytes(body)
        .map_err(|_| Error::MalformedMessage("body does not decode"))?;
    if !rest.is_empty() {
        return Err(Error::MalformedMessage("bytes after the message"));
    }
    message.validate()?;
    Ok(message)
}

/// Appends the frame of `message` to `out`.
pub fn encode_frame(message: &Message, out: &mut Vec<u8>) -> Result<()> {
    let start = out.len();
    out.extend_from_slice(&[0, 0, 0, 0, PROTOCOL_VERSION]);
    let mut out_vec = std::mem::take(out);
    out_vec = postcard::to_extend(message, out_vec)
        .map_err(|_| Error::MalformedMessage("message does not encode"))?;
    *out = out_vec;
    let len = out.len() - start - 4;
    if len > MAX_FRAME {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            len,
            max: MAX_FRAME,
        });
    }
    let len_bytes = u32::try_from(len).map_err(|_| Error::FrameTooLarge {
        len,
        max: MAX_FRAME,
    })?;
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&len_bytes.to_le_bytes());
    }
    Ok(())
}

/// Encodes a frame whose message ends with a share ([`Request::PutShare`] or
/// [`Response::Share`]) without copying the share: `message` carries an empty placeholder
/// where the share goes, and what is appended to `out` is the frame up to the share. Sending
/// `out ‖ share` gives exactly the bytes [`encode_frame`] gives for the message with the share
/// in place (postcard writes a byte string as its length, then its bytes, and the share is the
/// last field).
pub fn encode_share_frame_prefix(
    message: &Message,
    share_len: usize,
    out: &mut Vec<u8>,
) -> Result<()> {
    let placeholder_ok = matches!(
        message,
        Message::Request { body: Request::PutShare { share, .. }, .. } | Message::Response { body: Response::Share { share }, .. }
            if share.is_empty()
    );
    if !placeholder_ok {
        return Err(Error::MalformedMessage(
            "not a share message with an empty placeholder",
        ));
    }
    let start = out.len();
    encode_frame(message, out)?;
    // The placeholder's length, 0, is the last byte: replace it by the real length (LEB128).
    if out.pop() != Some(0) {
        out.truncate(start);
        return Err(Error::MalformedMessage(
            "unexpected encoding of the share placeholder",
        ));
    }
    let mut len = share_len;
    loop {
        let byte = u8::try_from(len & 0x7f).unwrap_or(0);
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    let frame_len = out.len() - start - 4 + share_len;
    if frame_len > MAX_FRAME {
        out.truncate(start);
        return Err(Error::FrameTooLarge {
            len: frame_len,
            max: MAX_FRAME,
        });
    }
    let len_bytes = u32::try_from(frame_len).map_err(|_| Error::FrameTooLarge {
        len: frame_len,
        max: MAX_FRAME,
    })?;
    if let Some(slot) = out.get_mut(start..start + 4) {
        slot.copy_from_slice(&len_bytes.to_le_bytes());
    }
    Ok(())
}

impl Message {
    /// Checks limits the types cannot express.
    pub fn validate(&self) -> Result<()> {
        if let Message::Request { body, .. } = self {
            match body {
                Request::Have { ids, .. }
                | Request::Authorized {
                    op: VaultOp::Delete { ids, .. } | VaultOp::Undelete { ids, .. },
                    ..
                } if ids.len() > MAX_IDS_PER_REQUEST => {
                    return Err(Error::MalformedMessage("too many ids in one request"));
                }
                Request::GetShareRange { start, end, .. }
                    if start >= end || *end > crate::MAX_SHARE_PAYLOAD =>
                {
                    return Err(Error::MalformedMessage(
                        "share range empty or beyond the largest share",
                    ));
                }
                Request::Authorized {
                    op: VaultOp::Adopt { from, .. },
                    ..
                } if from.len() > MAX_ADOPT_FROM => {
                    return Err(Error::MalformedMessage("too many ids in one request"));
                }
                Request::Authorized {
                    op: VaultOp::PutCatalogHead { head, .. },
                    ..
                } if head.len() > MAX_HEAD => {
                    return Err(Error::MalformedMessage("catalog head larger than 1 MiB"));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn frame(message: &Message) -> Vec<u8> {
        let mut out = Vec::new();
        encode_frame(message, &mut out).unwrap();
        out
    }

    #[test]
    fn roundtrip_every_kind() {
        let id = ShareId([7; 32]);
        let messages = [
            Message::Request {
                id: 1,
                body: Request::Ping { nonce: 9 },
            },
            Message::Request {
                id: 2,
                body: Request::PutShare {
                    vault: [1; 16],
                    share: Bytes::from_static(b"SHRDxyz"),
                },
            },
            Message::Request {
                id: 3,
                body: Request::GetShare { vault: [1; 16], id },
            },
            Message::Request {
                id: 4,
                body: Request::Have {
                    vault: [1; 16],
                    ids: vec![id; 3],
                },
            },
            Message::Request {
                id: 5,
                body: Request::Authorized {
                    op: VaultOp::Delete {
                        vault: [1; 16],
                        ids: vec![id],
                        purge: false,
                    },
                    auth: VaultAuth {
                        key: [3; 32],
                        challenge: [4; 32],
                        signature: [5; 64],
                    },
                },
            },
            Message::Request {
                id: 9,
                body: Request::Challenge,
            },
            Message::Request {
                id: 10,
                body: Request::Authorized {
                    op: VaultOp::Adopt {
                        vault: [2; 16],
                        from: vec![NodeId([5; 32])],
                    },
                    auth: VaultAuth {
                        key: [3; 32],
                        challenge: [4; 32],
                        signature: [5; 64],
                    },
                },
            },
            Message::Request {
                id: 11,
                body: Request::Authorized {
                    op: VaultOp::Heads {
                        vault: [2; 16],
                        before: Some(9),
                    },
                    auth: VaultAuth {
                        key: [3; 32],
                        challenge: [4; 32],
                        signature: [5; 64],
                    },
                },
            },
            Message::Request {
                id: 6,
                body: Request::List {
                    vault: [1; 16],
                    after: Some(id),
                    limit: 10,
                },
            },
            Message::Request {
                id: 7,
                body: Request::Usage,
            },
            Message::Request {
                id: 8,
                body: Request::GetShareRange {
                    vault: [1; 16],
                    id,
                    start: 64,
                    end: 4160,
                },
            },
            Message::Response {
                id: 8,
                body: Response::ShareRange {
                    bytes: Bytes::from_static(b"range"),
                },
            },
            Message::Response {
                id: 1,
                body: Response::Pong { nonce: 9 },
            },
            Message::Response {
                id: 2,
                body: Response::Stored,
            },
            Message::Response {
                id: 3,
                body: Response::Share {
                    share: Bytes::from_static(b"x"),
                },
            },
            Message::Response {
                id: 4,
                body: Response::Have {
                    have: vec![true, false],
                },
            },
            Message::Response {
                id: 5,
                body: Response::Deleted { count: 1 },
            },
            Message::Response {
                id: 6,
                body: Response::List { ids: vec![id] },
            },
            Message::Response {
                id: 7,
                body: Response::Usage {
                    used: 5,
                    shares: 1,
                    quota: Some(10),
                    reclaimable: 2,
                },
            },
            Message::Response {
                id: 10,
                body: Response::Challenge { nonce: [6; 32] },
            },
            Message::Response {
                id: 11,
                body: Response::CatalogHeads {
                    heads: vec![(3, Bytes::from_static(b"h"))],
                },
            },
            Message::Response {
                id: 12,
                body: Response::Undeleted { count: 2 },
            },
            Message::Response {
                id: 9,
                body: Response::Error {
                    code: ErrorCode::Full,
                    message: "full".into(),
                },
            },
        ];
        for m in messages {
            let bytes = frame(&m);
            assert_eq!(frame_len(&bytes).unwrap(), Some(bytes.len()));
            assert_eq!(decode_frame(&bytes).unwrap(), m);
            // Every strict prefix is incomplete, never an error or a wrong message.
            for cut in 0..bytes.len() {
                assert_eq!(
                    frame_len(&bytes[..cut]).unwrap(),
                    None,
                    "{m:?} cut at {cut}"
                );
            }
        }
    }

    #[test]
    fn known_answer_ping_frame() {
        // Pins protocol version 4's encoding of a ping.
        let bytes = frame(&Message::Request {
            id: 1,
            body: Request::Ping { nonce: 2 },
        });
        assert_eq!(bytes, [5, 0, 0, 0, 4, 0, 1, 0, 2]);
    }

    #[test]
    fn known_answer_signed_message() {
        // Pins what a vault authority signs: a change here must bump the protocol version.
        let op = VaultOp::Delete {
            vault: [1; 16],
            ids: vec![ShareId([2; 32])],
            purge: true,
        };
        let msg = op.signed_message(&NodeId([3; 32]), &[4; 32]);
        let mut expected = b"shard vault op v1".to_vec();
        expected.extend_from_slice(&[3; 32]);
        expected.extend_from_slice(&[4; 32]);
        expected.push(0); // variant Delete
        expected.extend_from_slice(&[1; 16]);
        expected.push(1); // one id
        expected.extend_from_slice(&[2; 32]);
        expected.push(1); // purge
        assert_eq!(msg, expected);
        // Another peer or challenge: another message.
        assert_ne!(msg, op.signed_message(&NodeId([9; 32]), &[4; 32]));
        assert_ne!(msg, op.signed_message(&NodeId([3; 32]), &[9; 32]));
    }

    #[test]
    fn oversized_heads_are_refused() {
        let bytes = frame(&Message::Request {
            id: 1,
            body: Request::Authorized {
                op: VaultOp::PutCatalogHead {
                    vault: [0; 16],
                    seq: 1,
                    head: Bytes::from(vec![0u8; MAX_HEAD + 1]),
                },
                auth: VaultAuth {
                    key: [0; 32],
                    challenge: [0; 32],
                    signature: [0; 64],
                },
            },
        });
        assert!(matches!(
            decode_frame(&bytes),
            Err(Error::MalformedMessage(_))
        ));
    }

    #[test]
    fn bad_frames_are_typed_errors() {
        // 4 GiB announced: refused from the first four bytes, nothing allocated.
        assert!(matches!(
            frame_len(&[0xff, 0xff, 0xff, 0xff]),
            Err(Error::FrameTooLarge { .. })
        ));
        assert!(matches!(
            frame_len(&[0, 0, 0, 0]),
            Err(Error::MalformedMessage(_))
        ));
        let mut wrong_version = frame(&Message::Request {
            id: 1,
            body: Request::Usage,
        });
        wrong_version[4] = 1;
        assert_eq!(frame_len(&wrong_version), Err(Error::UnsupportedVersion(1)));
        assert!(matches!(
            decode_frame(&[2, 0, 0, 0, PROTOCOL_VERSION, 0xff]),
            Err(Error::MalformedMessage(_))
        ));
        let mut trailing = frame(&Message::Request {
            id: 1,
            body: Request::Usage,
        });
        trailing[0] += 1;
        trailing.push(0);
        assert!(matches!(
            decode_frame(&trailing),
            Err(Error::MalformedMessage(_))
        ));
    }

    #[test]
    fn share_ranges_that_are_empty_reversed_or_beyond_any_share_do_not_decode() {
        let range = |start, end| Message::Request {
            id: 1,
            body: Request::GetShareRange {
                vault: [1; 16],
                id: ShareId([2; 32]),
                start,
                end,
            },
        };
        let max = crate::MAX_SHARE_PAYLOAD;
        for (start, end) in [(5, 5), (9, 4), (0, max + 1), (max, max + 64)] {
            assert!(
                matches!(
                    decode_frame(&frame(&range(start, end))),
                    Err(Error::MalformedMessage(_))
                ),
                "{start}..{end}"
            );
        }
        let ok = frame(&range(0, max));
        assert_eq!(decode_frame(&ok).unwrap(), range(0, max));
    }

    #[test]
    fn share_frame_prefix_refuses_other_messages() {
        let mut out = Vec::new();
        let ping = Message::Request {
            id: 1,
            body: Request::Ping { nonce: 0 },
        };
        assert!(encode_share_frame_prefix(&ping, 10, &mut out).is_err());
        let full = Message::Response {
            id: 1,
            body: Response::Share {
                share: Bytes::from_static(b"x"),
            },
        };
        assert!(encode_share_frame_prefix(&full, 10, &mut out).is_err());
        let empty = Message::Response {
            id: 1,
            body: Response::Share {
                share: Bytes::new(),
            },
        };
        assert!(matches!(
            encode_share_frame_prefix(&empty, MAX_FRAME, &mut out),
            Err(Error::FrameTooLarge { .. })
        ));
        assert!(out.is_empty(), "nothing left behind on error");
    }

    #[test]
    fn too_many_ids_are_refused() {
        let ids = vec![ShareId([0; 32]); MAX_IDS_PER_REQUEST + 1];
        let bytes = frame(&Message::Request {
            id: 1,
            body: Request::Have {
                vault: [0; 16],
                ids,
            },
        });
        assert!(matches!(
            decode_frame(&bytes),
            Err(Error::MalformedMessage(_))
        ));
    }

    proptest! {
        #[test]
        fn share_frames_without_copies_equal_plain_encoding(
            len in 0usize..70_000, id in any::<u64>(), vault in any::<[u8; 16]>(), put in any::<bool>()
        ) {
            let share: Vec<u8> = (0..len).map(|i| u8::try_from((i * 7 + 3) % 251).unwrap()).collect();
            let (full, empty) = if put {
                (
                    Message::Request { id, body: Request::PutShare { vault, share: Bytes::from(share.clone()) } },
                    Message::Request { id, body: Request::PutShare { vault, share: Bytes::new() } },
                )
            } else {
                (
                    Message::Response { id, body: Response::Share { share: Bytes::from(share.clone()) } },
                    Message::Response { id, body: Response::Share { share: Bytes::new() } },
                )
            };
            let mut prefix = Vec::new();
            encode_share_frame_prefix(&empty, share.len(), &mut prefix).unwrap();
            prefix.extend_from_slice(&share);
            prop_assert_eq!(prefix, frame(&full));
        }

        #[test]
        fn decoding_garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = frame_len(&bytes);
            let _ = decode_frame(&bytes);
        }

        #[test]
        fn garbage_bodies_behind_valid_headers_never_panic(body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut bytes = u32::try_from(body.len() + 1).unwrap().to_le_bytes().to_vec();
            bytes.push(PROTOCOL_VERSION);
            bytes.extend_from_slice(&body);
            let _ = decode_frame(&bytes);
        }
    }
}
