//! The vault authority: an Ed25519 key derived from the vault key, which peers require for
//! everything destructive (deleting shares, replacing the catalog head, handing the vault over
//! to a new node).
//!
//! Derivation (format version 1):
//! ```text
//! seed        = HKDF-Expand(prk, info = "shard/v1/vault-authority", 32 bytes)   (see keys.rs)
//! signing key = Ed25519 key of `seed` (RFC 8032)
//! vault id    = SHA-256("shard/v1/vault-id/ed25519" ‖ public key)[0..16]
//! ```
//! The vault id is the hash of the authority's public key, so the id certifies the key: a peer
//! that is shown a public key and a signature checks both against the vault id it already
//! uses, with nothing to pin and nothing a first-comer could claim. The signing key exists only
//! where the vault is unlocked; the node key alone (a stolen laptop without the passphrase)
//! can sign nothing.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::keys::{VAULT_ID_LEN, VaultId};
use crate::{Error, Result};

/// Length of an authority public key.
pub const AUTHORITY_KEY_LEN: usize = 32;
/// Length of an authority signature.
pub const SIGNATURE_LEN: usize = 64;

const VAULT_ID_DOMAIN: &[u8] = b"shard/v1/vault-id/ed25519";

/// The signing half: kept in an unlocked vault's keys, zeroized on drop.
pub struct VaultAuthority(SigningKey);

impl VaultAuthority {
    /// The authority of a 32-byte seed (derived from the vault key; see the module docs).
    pub(crate) fn from_seed(seed: &[u8; 32]) -> Self {
        Self(SigningKey::from_bytes(seed))
    }

    /// The public key peers check signatures against.
    pub fn public(&self) -> AuthorityKey {
        AuthorityKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (RFC 8032 Ed25519: deterministic, no randomness needed).
    pub fn sign(&self, message: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.0.sign(message).to_bytes()
    }
}

impl std::fmt::Debug for VaultAuthority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "VaultAuthority({:?})", self.public())
    }
}

/// A vault authority's public key, as requests carry it.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorityKey(pub [u8; AUTHORITY_KEY_LEN]);

impl AuthorityKey {
    /// The vault id this key certifies.
    pub fn vault_id(&self) -> VaultId {
        let mut h = Sha256::new();
        h.update(VAULT_ID_DOMAIN);
        h.update(self.0);
        let digest = h.finalize();
        let mut id = [0u8; VAULT_ID_LEN];
        id.copy_from_slice(&digest[..VAULT_ID_LEN]);
        VaultId(id)
    }

    /// Checks that this key is `vault`'s and that `signature` is its signature of `message`
    /// (strict verification: no malleable or small-order encodings). [`Error::Unauthentic`]
    /// otherwise, with no hint of which part failed.
    pub fn verify(
        &self,
        vault: &VaultId,
        message: &[u8],
        signature: &[u8; SIGNATURE_LEN],
    ) -> Result<()> {
        if !crate::ct_eq(&self.vault_id().0, &vault.0) {
            return Err(Error::Unauthentic);
        }
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| Error::Unauthentic)?;
        key.verify_strict(message, &Signature::from_bytes(signature))
            .map_err(|_| Error::Unauthentic)
    }
}

impl std::fmt::Debug for AuthorityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let [a, b, c, d, e, g, ..] = self.0;
        write!(
            f,
            "AuthorityKey({:02x}{:02x}{:02x}{:02x}{:02x}{:02x})",
            a, b, c, d, e, g
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_verify_only_for_their_vault_message_and_key() {
        let a = VaultAuthority::from_seed(&[1; 32]);
        let b = VaultAuthority::from_seed(&[2; 32]);
        let (pa, pb) = (a.public(), b.public());
        let sig = a.sign(b"delete x");
        pa.verify(&pa.vault_id(), b"delete x", &sig).unwrap();
        // Another message, another vault, another key, a flipped bit: all refused alike.
        assert_eq!(
            pa.verify(&pa.vault_id(), b"delete y", &sig),
            Err(Error::Unauthentic)
        );
        assert_eq!(
            pa.verify(&pb.vault_id(), b"delete x", &sig),
            Err(Error::Unauthentic)
        );
        assert_eq!(
            pb.verify(&pa.vault_id(), b"delete x", &sig),
            Err(Error::Unauthentic)
        );
        assert_eq!(
            pb.verify(&pb.vault_id(), b"delete x", &sig),
            Err(Error::Unauthentic)
        );
        let mut bent = sig;
        bent[10] ^= 1;
        assert_eq!(
            pa.verify(&pa.vault_id(), b"delete x", &bent),
            Err(Error::Unauthentic)
        );
        // Not a curve point: refused, not a panic.
        assert_eq!(
            AuthorityKey([0xff; 32]).verify(&AuthorityKey([0xff; 32]).vault_id(), b"x", &sig),
            Err(Error::Unauthentic)
        );
    }
}
