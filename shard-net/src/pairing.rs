//! Pairing: one-time invite codes and the inviter's record of them.
//!
//! An invite code, format version 2, is the text `SHARD2-` followed by base32 (RFC 4648, no
//! padding) of `payload ‖ SHA-256(payload)[0..4]`, where the payload is the postcard encoding of
//! (inviter's node id, 16-byte secret, expiry in seconds since the epoch, inviter's LAN
//! addresses, its iroh endpoint key if it has one, its relay URL if that is not one of the
//! public relays). With two IPv4 addresses and an iroh key that is 108 bytes: 180 characters;
//! a relay URL adds 1.6 characters per character of the URL. Version 1 codes (`SHARD1-`, no
//! iroh) are still read. Dashes and spaces inside a code are ignored, so it may be grouped.
//! The secret never travels: the joiner proves it knows it by completing a Noise `XXpsk3`
//! handshake keyed by `SHA-256("shard invite psk" ‖ secret)`, and names the invite by
//! `SHA-256("shard invite id" ‖ secret)[0..8]`. The joiner checks the node that answers has the
//! id in the code. Codes are valid 10 minutes and for one pairing.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use data_encoding::BASE32_NOPAD;
use serde::{Deserialize, Serialize};
use shard_proto::NodeId;
use zeroize::Zeroizing;

use crate::noise::PairingKey;
use crate::transport::{IrohRoute, valid_relay_url};
use crate::{Error, Result};

const PREFIX_V1: &str = "SHARD1-";
const PREFIX: &str = "SHARD2-";
/// How long an invite is valid by default.
pub const DEFAULT_INVITE_TTL: Duration = Duration::from_secs(600);
/// Most addresses in a code.
const MAX_ADDRS: usize = 16;

/// A decoded invite code.
#[derive(Clone, PartialEq, Eq)]
pub struct Invite {
    /// The inviting node.
    pub node: NodeId,
    /// The secret (never sent over the network).
    secret: Zeroizing<[u8; 16]>,
    /// Expiry, seconds since the epoch.
    pub expires: u64,
    /// Where the inviter listens on its LAN.
    pub addrs: Vec<SocketAddr>,
    /// Its iroh endpoint, for a joiner beyond that LAN.
    pub iroh: Option<IrohRoute>,
}

impl std::fmt::Debug for Invite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invite")
            .field("node", &self.node)
            .field("expires", &self.expires)
            .field("addrs", &self.addrs)
            .field("iroh", &self.iroh)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
struct PayloadV1 {
    node: [u8; 32],
    secret: [u8; 16],
    expires: u64,
    addrs: Vec<SocketAddr>,
}

#[derive(Serialize, Deserialize)]
struct Payload {
    node: [u8; 32],
    secret: [u8; 16],
    expires: u64,
    addrs: Vec<SocketAddr>,
    iroh: Option<[u8; 32]>,
    relay: Option<String>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn derive(label: &[u8], secret: &[u8; 16]) -> [u8; 32] {
    let mut input = Zeroizing::new(Vec::with_capacity(label.len() + 16));
    input.extend_from_slice(label);
    input.extend_from_slice(secret);
    shard_crypto::sha256(&input)
}

fn invite_id(secret: &[u8; 16]) -> [u8; 8] {
    let d = derive(b"shard invite id", secret);
    let mut id = [0u8; 8];
    id.copy_from_slice(&d[..8]);
    id
}

impl Invite {
    /// The code as text.
    pub fn encode(&self) -> Zeroizing<String> {
        let payload = Payload {
            node: self.node.0,
            secret: *self.secret,
            expires: self.expires,
            addrs: self.addrs.clone(),
            iroh: self.iroh.as_ref().map(|r| r.key),
            relay: self.iroh.as_ref().and_then(|r| r.relay.clone()),
        };
        let mut bytes = Zeroizing::new(postcard::to_stdvec(&payload).unwrap_or_default());
        let check = shard_crypto::sha256(&bytes);
        bytes.extend_from_slice(&check[..4]);
        Zeroizing::new(format!("{PREFIX}{}", BASE32_NOPAD.encode(&bytes)))
    }

    /// Reads a code (case, whitespace and dashes ignored).
    pub fn decode(text: &str) -> Result<Self> {
        let text = text.trim().to_ascii_uppercase();
        let (version, body) = if let Some(body) = text.strip_prefix(PREFIX) {
            (2, body)
        } else if let Some(body) = text.strip_prefix(PREFIX_V1) {
            (1, body)
        } else {
            return Err(Error::InvalidInvite("it does not start with SHARD2-"));
        };
        let body: String = body
            .chars()
            .filter(|c| *c != '-' && !c.is_whitespace())
            .collect();
        if body.len() > 1024 {
            return Err(Error::InvalidInvite("it is far too long"));
        }
        let bytes = Zeroizing::new(BASE32_NOPAD.decode(body.as_bytes()).map_err(
            |e| match e.kind {
                data_encoding::DecodeKind::Symbol => {
                    Error::InvalidInvite("it contains characters that are not in the code alphabet")
                }
                _ => Error::InvalidInvite("it was mistyped or cut short (wrong length)"),
            },
        )?);
        if bytes.len() < 5 {
            return Err(Error::InvalidInvite("it is too short"));
        }
        let (payload, check) = bytes.split_at(bytes.len() - 4);
        if shard_crypto::sha256(payload)[..4] != *check {
            return Err(Error::InvalidInvite(
                "it was mistyped or cut short (checksum mismatch)",
            ));
        }
        let undecodable = || Error::InvalidInvite("its content does not decode");
        let payload: Payload = if version == 1 {
            let v1: PayloadV1 = postcard::from_bytes(payload).map_err(|_| undecodable())?;
            Payload {
                node: v1.node,
                secret: v1.secret,
                expires: v1.expires,
                addrs: v1.addrs,
                iroh: None,
                relay: None,
            }
        } else {
            postcard::from_bytes(payload).map_err(|_| undecodable())?
        };
        if payload.addrs.len() > MAX_ADDRS || (payload.addrs.is_empty() && payload.iroh.is_none()) {
            return Err(Error::InvalidInvite("it lists no usable address"));
        }
        if let Some(relay) = &payload.relay
            && (payload.iroh.is_none() || !valid_relay_url(relay))
        {
            return Err(Error::InvalidInvite("its relay URL is not one"));
        }
        Ok(Self {
            node: NodeId(payload.node),
            secret: Zeroizing::new(payload.secret),
            expires: payload.expires,
            addrs: payload.addrs,
            iroh: payload.iroh.map(|key| IrohRoute {
                key,
                relay: payload.relay,
            }),
        })
    }

    /// True once past its expiry.
    pub fn is_expired(&self) -> bool {
        now() >= self.expires
    }

    /// The Noise pre-shared key and invite id of this code.
    pub fn key(&self) -> PairingKey {
        PairingKey {
            invite_id: invite_id(&self.secret),
            psk: Zeroizing::new(derive(b"shard invite psk", &self.secret)),
        }
    }
}

struct Pending {
    key: PairingKey,
    expires: u64,
    used: bool,
}

/// The invites a node has handed out. In memory: a restart voids them, which is the safe way.
#[derive(Default)]
pub struct Invites {
    pending: Mutex<HashMap<[u8; 8], Pending>>,
}

impl Invites {
    /// Makes a new invite for this node at `addrs` (and `iroh`), valid for `ttl`.
    pub fn create(
        &self,
        node: NodeId,
        addrs: Vec<SocketAddr>,
        iroh: Option<IrohRoute>,
        ttl: Duration,
    ) -> Result<Invite> {
        let mut secret = Zeroizing::new([0u8; 16]);
        shard_crypto::fill_random(secret.as_mut())?;
        let invite = Invite {
            node,
            secret,
            expires: now() + ttl.as_secs(),
            addrs: addrs.into_iter().take(MAX_ADDRS).collect(),
            iroh,
        };
        let key = invite.key();
        let mut pending = self.lock();
        // Forget long-dead invites so the map stays small.
        let t = now();
        pending.retain(|_, p| p.expires + 3600 > t);
        pending.insert(
            key.invite_id,
            Pending {
                key,
                expires: invite.expires,
                used: false,
            },
        );
        Ok(invite)
    }

    /// The pairing key for an invite id, or why it cannot be used.
    pub fn key_for(&self, id: &[u8; 8]) -> std::result::Result<PairingKey, String> {
        let pending = self.lock();
        match pending.get(id) {
            None => Err(
                "unknown invite code: it was mistyped, or made by another node or before a restart"
                    .into(),
            ),
            Some(p) if p.used => {
                Err("this invite code was already used; make a new one with `shard invite`".into())
            }
            Some(p) if now() >= p.expires => {
                Err("this invite code expired; make a new one with `shard invite`".into())
            }
            Some(p) => Ok(p.key.clone()),
        }
    }

    /// Whether some invite can still be used.
    pub fn any_pending(&self) -> bool {
        let t = now();
        self.lock().values().any(|p| !p.used && t < p.expires)
    }

    /// Marks an invite used; false if it was unknown, used or expired meanwhile.
    pub fn spend(&self, id: &[u8; 8]) -> bool {
        let mut pending = self.lock();
        match pending.get_mut(id) {
            Some(p) if !p.used && now() < p.expires => {
                p.used = true;
                true
            }
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 8], Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invites() -> (Invites, Invite) {
        let invites = Invites::default();
        let invite = invites
            .create(
                NodeId([5; 32]),
                vec!["127.0.0.1:7714".parse().unwrap()],
                None,
                DEFAULT_INVITE_TTL,
            )
            .unwrap();
        (invites, invite)
    }

    #[test]
    fn code_roundtrip() {
        let (_, invite) = invites();
        let code = invite.encode();
        assert!(code.starts_with("SHARD2-"));
        let back = Invite::decode(&code.to_lowercase()).unwrap();
        assert_eq!(back, invite);
        assert!(!back.is_expired());
    }

    #[test]
    fn a_remote_code_carries_the_iroh_key_and_relay_and_may_be_grouped() {
        let invites = Invites::default();
        let iroh = IrohRoute {
            key: [9; 32],
            relay: Some("https://relay.example.org".into()),
        };
        let invite = invites
            .create(
                NodeId([5; 32]),
                vec![
                    "192.168.1.20:7714".parse().unwrap(),
                    "10.0.0.5:7714".parse().unwrap(),
                ],
                Some(iroh.clone()),
                DEFAULT_INVITE_TTL,
            )
            .unwrap();
        let code = invite.encode().to_string();
        // The length the README states: 180 characters plus 1.6 per character of the URL.
        let url = "https://relay.example.org".len();
        assert!(
            code.len() <= 180 + (url * 8).div_ceil(5) + 2,
            "{}",
            code.len()
        );
        let back = Invite::decode(&code).unwrap();
        assert_eq!(back.iroh, Some(iroh));
        // Typed in groups of five with dashes and spaces.
        let body = code.strip_prefix("SHARD2-").unwrap();
        let grouped: Vec<String> = body
            .as_bytes()
            .chunks(5)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        let typed = format!("SHARD2- {}", grouped.join("-"));
        assert_eq!(Invite::decode(&typed).unwrap(), invite);
        // A code with only the iroh key (a node with no LAN address) is valid.
        let remote_only = invites
            .create(
                NodeId([5; 32]),
                vec![],
                Some(IrohRoute {
                    key: [1; 32],
                    relay: None,
                }),
                DEFAULT_INVITE_TTL,
            )
            .unwrap();
        assert!(Invite::decode(&remote_only.encode()).is_ok());
    }

    #[test]
    fn a_version_1_code_still_reads() {
        let payload = PayloadV1 {
            node: [5; 32],
            secret: [7; 16],
            expires: now() + 60,
            addrs: vec!["127.0.0.1:7714".parse().unwrap()],
        };
        let mut bytes = postcard::to_stdvec(&payload).unwrap();
        let check = shard_crypto::sha256(&bytes);
        bytes.extend_from_slice(&check[..4]);
        let code = format!("SHARD1-{}", BASE32_NOPAD.encode(&bytes));
        let invite = Invite::decode(&code).unwrap();
        assert_eq!(invite.node, NodeId([5; 32]));
        assert_eq!(invite.iroh, None);
    }

    #[test]
    fn bad_codes_are_explained() {
        let (_, invite) = invites();
        let code = invite.encode().to_string();
        let mut typo = code.clone();
        let last = typo.pop().unwrap();
        typo.push(if last == 'A' { 'B' } else { 'A' });
        for (bad, why) in [
            ("hello", "SHARD2-"),
            ("SHARD1-!!!!", "alphabet"),
            ("SHARD1-AB", "cut short"),
            ("SHARD1-AAAAAAA", "too short"),
            (typo.as_str(), "mistyped"),
            (&code[..code.len() - 8], "mistyped"),
        ] {
            let err = Invite::decode(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }

    #[test]
    fn an_invite_is_single_use() {
        let (invites, invite) = invites();
        let id = invite.key().invite_id;
        assert!(invites.key_for(&id).is_ok());
        assert!(invites.spend(&id));
        assert!(invites.key_for(&id).unwrap_err().contains("already used"));
        assert!(!invites.spend(&id));
        assert!(invites.key_for(&[0; 8]).unwrap_err().contains("unknown"));
    }

    #[test]
    fn an_invite_expires() {
        let invites = Invites::default();
        let invite = invites
            .create(
                NodeId([1; 32]),
                vec!["127.0.0.1:1".parse().unwrap()],
                None,
                Duration::ZERO,
            )
            .unwrap();
        assert!(invite.is_expired());
        assert!(
            invites
                .key_for(&invite.key().invite_id)
                .unwrap_err()
                .contains("expired")
        );
    }
}
