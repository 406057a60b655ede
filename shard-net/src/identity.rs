//! Node identity: the X25519 static key pair that is the node's Noise key, and its id.
//!
//! The id is SHA-256 of the public key, shown to people as base32 in groups of four
//! (`ABCD-EFGH-…`, 13 groups), like Syncthing device ids; the first two groups make the short
//! form used in lists. The key file holds the private then the public key (64 bytes), is
//! created with mode 0600 and refused if others can read it.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use data_encoding::BASE32_NOPAD;
use shard_proto::NodeId;
use zeroize::Zeroizing;

use crate::suite::builder;
use crate::{Error, Result};

/// A node's static key pair.
pub struct NodeIdentity {
    private: Zeroizing<[u8; 32]>,
    public: [u8; 32],
}

impl NodeIdentity {
    /// A fresh key pair.
    pub fn generate() -> Result<Self> {
        let pair = builder(false)?.generate_keypair()?;
        let private: [u8; 32] = pair
            .private
            .as_slice()
            .try_into()
            .map_err(|_| Error::Noise("unexpected private key length".into()))?;
        let public: [u8; 32] = pair
            .public
            .as_slice()
            .try_into()
            .map_err(|_| Error::Noise("unexpected public key length".into()))?;
        let mut dropped = pair.private;
        zeroize::Zeroize::zeroize(&mut dropped);
        Ok(Self {
            private: Zeroizing::new(private),
            public,
        })
    }

    /// Writes the key file (mode 0600, synced). Refuses to overwrite an existing one.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        let mut bytes = Zeroizing::new([0u8; 64]);
        bytes[..32].copy_from_slice(self.private.as_ref());
        bytes[32..].copy_from_slice(&self.public);
        file.write_all(bytes.as_ref())?;
        file.sync_all()?;
        Ok(())
    }

    /// Reads a key file written by [`NodeIdentity::save`].
    pub fn load(path: &Path) -> Result<Self> {
        let mode = fs::metadata(path)?.permissions().mode();
        if mode & 0o077 != 0 {
            return Err(Error::Config(format!(
                "{} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            )));
        }
        let bytes = Zeroizing::new(fs::read(path)?);
        if bytes.len() != 64 {
            return Err(Error::Config(format!(
                "{} is not a node key file",
                path.display()
            )));
        }
        let mut private = Zeroizing::new([0u8; 32]);
        private.copy_from_slice(&bytes[..32]);
        let mut public = [0u8; 32];
        public.copy_from_slice(&bytes[32..]);
        Ok(Self { private, public })
    }

    /// The private key, for the Noise handshake only.
    pub(crate) fn private(&self) -> &[u8; 32] {
        &self.private
    }

    /// The public key.
    pub fn public(&self) -> &[u8; 32] {
        &self.public
    }

    /// The node's id.
    pub fn node_id(&self) -> NodeId {
        node_id_of(&self.public)
    }
}

impl std::fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "NodeIdentity({}, private key redacted)",
            fingerprint(&self.node_id())
        )
    }
}

/// The id of the node with this public key.
pub fn node_id_of(public: &[u8]) -> NodeId {
    NodeId(shard_crypto::sha256(public))
}

/// `ABCD-EFGH-…`: the id as people see it (52 characters in 13 groups).
pub fn fingerprint(id: &NodeId) -> String {
    let text = BASE32_NOPAD.encode(&id.0);
    let groups: Vec<&str> = text
        .as_bytes()
        .chunks(4)
        .filter_map(|g| std::str::from_utf8(g).ok())
        .collect();
    groups.join("-")
}

/// The first two groups of the fingerprint, for lists.
pub fn short_fingerprint(id: &NodeId) -> String {
    fingerprint(id).chars().take(9).collect()
}

/// Reads a fingerprint back (case, dashes and spaces ignored).
pub fn parse_fingerprint(text: &str) -> Option<NodeId> {
    let clean: String = text
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    let bytes = BASE32_NOPAD.decode(clean.as_bytes()).ok()?;
    Some(NodeId(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_roundtrip_and_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.key");
        let id = NodeIdentity::generate().unwrap();
        id.save(&path).unwrap();
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let back = NodeIdentity::load(&path).unwrap();
        assert_eq!(back.node_id(), id.node_id());
        assert!(id.save(&path).is_err(), "never overwrites a key");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = NodeIdentity::load(&path).err().unwrap().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn fingerprints_roundtrip() {
        let id = NodeIdentity::generate().unwrap().node_id();
        let fp = fingerprint(&id);
        assert_eq!(fp.len(), 52 + 12);
        assert_eq!(parse_fingerprint(&fp), Some(id));
        assert_eq!(
            parse_fingerprint(&fp.to_lowercase().replace('-', " ")),
            Some(id)
        );
        assert_eq!(parse_fingerprint("ABCD"), None);
        assert!(fp.starts_with(&short_fingerprint(&id)));
    }
}
