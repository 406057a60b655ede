//! The peer protocol: frames and the messages they carry.
//!
//! Protocol version 1. Inside the secure channel (Noise, in `shard-net`) the two directions are
//! byte streams of frames:
//! ```text
//! offset  len  field
//!      0    4  length of what follows (version byte + body), little-endian, 1..=MAX_FRAME
//!      4    1  protocol version = 1
//!      5    …  body: postcard encoding of a [`Message`]
//! ```
//! A frame announcing more than [`MAX_FRAME`] bytes, or another version, is a protocol error:
//! the connection is closed with a logged reason. Requests carry an id chosen by the sender;
//! the response with the same id answers it, in any order, so many requests are in flight on
//! one connection. A whole share (at most 8 MiB) travels in one frame; the channel below cuts
//! frames into Noise messages of at most 64 KiB.
//!
//! Decoding is `check` then `parse` over a buffer (as in mini-redis): [`frame_len`] says
//! whether a complete frame is there without decoding it, [`decode_frame`] decodes one.
//! Neither touches a socket, neither panics, and no allocation exceeds the frame's length.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, ShareId};

/// Protocol version this build speaks.
pub const PROTOCOL_VERSION: u8 = 1;
/// Largest frame (version byte + body): a share of 8 MiB plus room for the message around it.
pub const MAX_FRAME: usize = 9 << 20;
/// Bytes before the body: length and version.
pub const FRAME_HEADER_LEN: usize = 5;
/// Most ids in one have/delete request.
pub const MAX_IDS_PER_REQUEST: usize = 65_536;

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
    /// Which of these shares do you hold?
    Have {
        /// The vault.
        vault: VaultRef,
        /// The shares asked about.
        ids: Vec<ShareId>,
    },
    /// Delete shares (only ever in the asker's own namespace).
    Delete {
        /// The vault.
        vault: VaultRef,
        /// The shares.
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
    /// The newest catalog head the peer holds for a vault (recovery).
    CatalogHead {
        /// The vault.
        vault: VaultRef,
    },
    /// Keep this catalog head for the vault (only its owner node may; only a newer one).
    PutCatalogHead {
        /// The vault.
        vault: VaultRef,
        /// Its sequence number.
        seq: u64,
        /// The sealed head (opaque to the peer).
        head: Bytes,
        /// SHA-256 of the secret that may hand the vault over to another node.
        verifier: [u8; 32],
    },
    /// Hand the vault (its shares and head) over to the asking node, which proves it may by
    /// revealing the secret behind the head's verifier.
    Adopt {
        /// The vault.
        vault: VaultRef,
        /// The secret.
        proof: [u8; 32],
        /// The verifier guarding the next hand-over.
        verifier: [u8; 32],
    },
    /// The asking node's shares of a vault that this peer found corrupt and quarantined
    /// (its scrub, or a read), so the owner can repair them.
    Quarantined {
        /// The vault.
        vault: VaultRef,
    },
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
    },
    /// The newest catalog head held for the vault, if any: its sequence number and bytes.
    CatalogHead {
        /// The sealed head.
        head: Option<(u64, Bytes)>,
    },
    /// The catalog head is kept.
    HeadStored,
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
                Request::Have { ids, .. } | Request::Delete { ids, .. }
                    if ids.len() > MAX_IDS_PER_REQUEST =>
                {
                    return Err(Error::MalformedMessage("too many ids in one request"));
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
                body: Request::Delete {
                    vault: [1; 16],
                    ids: vec![id],
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
                body: Request::CatalogHead { vault: [2; 16] },
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
                },
            },
            Message::Response {
                id: 8,
                body: Response::CatalogHead { head: None },
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
        // Pins protocol version 1's encoding of a ping.
        let bytes = frame(&Message::Request {
            id: 1,
            body: Request::Ping { nonce: 2 },
        });
        assert_eq!(bytes, [5, 0, 0, 0, 1, 0, 1, 0, 2]);
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
        wrong_version[4] = 2;
        assert_eq!(frame_len(&wrong_version), Err(Error::UnsupportedVersion(2)));
        assert!(matches!(
            decode_frame(&[2, 0, 0, 0, 1, 0xff]),
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
