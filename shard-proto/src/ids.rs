//! 256-bit identifiers: share ids (BLAKE3 of a share), chunk ids (keyed BLAKE3 of a chunk) and
//! pack ids (random).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        pub struct $name(pub [u8; 32]);

        impl $name {
            /// The id as 64 lowercase hex digits.
            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                // Short form: enough to tell ids apart in logs.
                let [a, b, c, d, e, g, ..] = self.0;
                write!(f, concat!(stringify!($name), "({})"), hex::encode([a, b, c, d, e, g]))
            }
        }

        impl FromStr for $name {
            type Err = Error;

            /// Parses exactly 64 hex digits; anything else (separators, `..`, NUL, other
            /// scripts, wrong length) is [`Error::InvalidId`].
            fn from_str(s: &str) -> Result<Self, Error> {
                let mut bytes = [0u8; 32];
                if s.len() != 64 || hex::decode_to_slice(s, &mut bytes).is_err() {
                    return Err(Error::InvalidId(s.chars().take(80).collect()));
                }
                Ok(Self(bytes))
            }
        }
    };
}

id_type!(
    /// A share's id: BLAKE3 of the whole share (header and payload). Anyone can check a share
    /// against its id without a key.
    ShareId
);

id_type!(
    /// A chunk's id: keyed BLAKE3 of its plaintext under the vault's chunk-id key. Equal chunks
    /// of one vault have equal ids (dedup); nobody without the key can compute one.
    ChunkId
);

id_type!(
    /// A pack's id: 32 random bytes drawn when the pack is made. It says nothing about what the
    /// pack holds; only the owner's sealed catalog knows which blobs are in it.
    PackId
);

id_type!(
    /// A node's id: SHA-256 of its static X25519 public key (the Noise key). Shown to people
    /// as a base32 fingerprint in groups.
    NodeId
);

/// Length of an encoded [`Namespace`].
pub const NAMESPACE_LEN: usize = 48;

/// Where a peer files the shares it keeps for others: one namespace per owner node and vault.
/// A peer only ever lists, serves or deletes shares of the namespace a request may use.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Namespace {
    /// The node that stored the shares.
    pub owner: NodeId,
    /// The vault they belong to (its public id).
    pub vault: [u8; 16],
}

impl Namespace {
    /// The 48-byte encoding: owner id then vault id.
    pub fn to_bytes(&self) -> [u8; NAMESPACE_LEN] {
        let mut out = [0u8; NAMESPACE_LEN];
        let (owner, vault) = out.split_at_mut(32);
        owner.copy_from_slice(&self.owner.0);
        vault.copy_from_slice(&self.vault);
        out
    }

    /// Decodes [`Namespace::to_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        let (owner, vault) = bytes.split_first_chunk::<32>()?;
        Some(Self {
            owner: NodeId(*owner),
            vault: <[u8; 16]>::try_from(vault).ok()?,
        })
    }
}

impl fmt::Debug for Namespace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Namespace({:?}, {})",
            self.owner,
            hex::encode(self.vault)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_roundtrip() {
        let ns = Namespace {
            owner: NodeId([3; 32]),
            vault: [4; 16],
        };
        assert_eq!(Namespace::from_bytes(&ns.to_bytes()), Some(ns));
        assert_eq!(Namespace::from_bytes(&[0; 47]), None);
        assert_eq!(Namespace::from_bytes(&[0; 49]), None);
    }

    #[test]
    fn hex_roundtrip_and_strict_parsing() {
        let id = ShareId([0xab; 32]);
        assert_eq!(id.to_hex().parse::<ShareId>().unwrap(), id);
        assert_eq!(id.to_hex().to_uppercase().parse::<ShareId>().unwrap(), id);
        for bad in [
            "",
            "ab",
            "../../etc/passwd",
            &"a".repeat(63),
            &"a".repeat(65),
            &format!("{}/b", "a".repeat(62)),
            &format!("{}\0b", "a".repeat(62)),
            &format!("{}..", "a".repeat(62)),
            &"é".repeat(32),
            &"g".repeat(64),
        ] {
            assert!(
                matches!(bad.parse::<ShareId>(), Err(Error::InvalidId(_))),
                "{bad:?} was accepted"
            );
        }
    }
}
