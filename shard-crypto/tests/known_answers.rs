//! Known-answer tests: pin the key derivation so a change to it is noticed (and versioned).
//! The expected values were computed independently with Python (hmac, hashlib, cryptography,
//! blake3).
// Test code: panicking on failure and casting made-up numbers are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr,
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_possible_wrap
)]

use shard_crypto::{ChunkFormat, Label, VaultKey, VaultKeys, hmac_sha256};

fn key_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    for (b, v) in bytes.iter_mut().zip(0u8..) {
        *b = v;
    }
    bytes
}

fn keys() -> VaultKeys {
    VaultKeys::derive(&VaultKey::from_bytes(key_bytes()))
}

#[test]
fn vault_id_and_subkeys_are_pinned() {
    let k = keys();
    // The vault id is the hash of the authority's public key (Ed25519 of the authority subkey).
    assert_eq!(k.vault_id().to_string(), "b956fe4d2db0e4bec5caf1095107ed92");
    assert_eq!(
        hex::encode(k.subkey(Label::VaultAuthority).expose()),
        "3c45549bf2c6cdb60ec21a651161cdc2bb7ce70e54e323cdf65f52ae60a81f85"
    );
    assert_eq!(
        hex::encode(k.authority().public().0),
        "324310e2f83ef362b62899efcebbbb5a94052b5f8fc5d1c48817617244915c75"
    );
    assert_eq!(k.authority().public().vault_id(), k.vault_id());
    // The key alone (no derived state) gives the same id: it is what key records store.
    assert_eq!(VaultKey::from_bytes(key_bytes()).vault_id(), k.vault_id());
    assert_eq!(
        hex::encode(k.subkey(Label::ChunkId).expose()),
        "8ea511c3fdc778c35c7aa1ea488ec418a821b3e262dfabc3a9cb8ab675be6f1f"
    );
    assert_eq!(
        hex::encode(k.subkey(Label::ChunkerSeed).expose()),
        "cf9b3d5078b647776680c94893648df0cbb3f577a3a726379a8ddf488cfa8312"
    );
    // Format 2: keyed BLAKE3 under the chunk-id subkey.
    assert_eq!(
        hex::encode(k.chunk_id(b"abc")),
        "e10cf47accfad95c46f9e45e295e22aaf0ab959de3e1a6ab758b3c7d9497e5cc"
    );
}

#[test]
fn sealed_chunk_is_pinned() {
    let k = keys();
    let id = k.chunk_id(b"hello");
    let mut buf = b"hello".to_vec();
    assert_eq!(
        hex::encode(id),
        "6b4ec979cd8b381d34da358c431ef45233262a68f69dce1abe899fda2b102046"
    );
    k.seal_chunk(
        &id,
        ChunkFormat {
            version: 2,
            padding: 1,
        },
        &mut buf,
    )
    .unwrap();
    // The chunk key binds the padded length (here 5: the buffer sealed is not padded).
    assert_eq!(
        hex::encode(&buf),
        "6028390d123aeea186a67593ef6a79423f9686ed9c"
    );
}

#[test]
fn authority_signature_is_pinned() {
    // Ed25519 is deterministic: the same key signs the same message the same way.
    let k = keys();
    let sig = k.authority().sign(b"delete");
    assert_eq!(
        hex::encode(sig),
        "c4d1a123f8b70cbeb10a0d8f94e565f5264b0ca9ef128778df8890a6a40455a8\
         a6dc93decd7e61fff2d78da338f309c56b2058c45df2ab6ecaadaf9d6cce9d09"
    );
    k.authority()
        .public()
        .verify(&k.vault_id(), b"delete", &sig)
        .unwrap();
}

#[test]
fn one_chunk_key_never_seals_two_plaintexts() {
    // The same chunk padded to two lengths (as for two values of k) is sealed under two keys:
    // the fixed nonce is never reused. A sealed chunk cut or lengthened does not open.
    let k = keys();
    let id = k.chunk_id(b"data");
    let format = ChunkFormat {
        version: 1,
        padding: 1,
    };
    let seal = |padded: &[u8]| {
        let mut buf = padded.to_vec();
        k.seal_chunk(&id, format, &mut buf).unwrap();
        buf
    };
    let short = seal(b"data\x80\0");
    let long = seal(b"data\x80\0\0\0");
    // Under one key, the first bytes of the two ciphertexts (same plaintext prefix) would be
    // equal: they are not.
    assert_ne!(short[..6], long[..6]);
    let mut opened = long.clone();
    k.open_chunk(&id, format, &mut opened).unwrap();
    assert_eq!(opened, b"data\x80\0\0\0");
    let mut cut = long[..long.len() - 2].to_vec();
    assert!(k.open_chunk(&id, format, &mut cut).is_err());
}

#[test]
fn a_blob_sealed_twice_differs_and_opens_only_as_itself() {
    let k = keys();
    let format = shard_crypto::ChunkFormat {
        version: 2,
        padding: 0,
    };
    let plain = b"the same chunk, packed twice".to_vec();
    let id = k.chunk_id(&plain);
    let (mut a, mut b) = (plain.clone(), plain.clone());
    k.seal_blob(&id, format, &mut a).unwrap();
    k.seal_blob(&id, format, &mut b).unwrap();
    assert_eq!(a.len(), plain.len() + shard_crypto::SEAL_OVERHEAD);
    // No common run a holder of both could line up: fresh nonces, unrelated keystreams.
    assert_ne!(a[12..], b[12..]);
    assert_eq!(k.open_blob(&id, format, &a).unwrap(), plain);
    assert_eq!(k.open_blob(&id, format, &b).unwrap(), plain);
    // Another id, another format, a flipped bit, a cut: refused.
    let other = k.chunk_id(b"another");
    assert!(k.open_blob(&other, format, &a).is_err());
    let format1 = shard_crypto::ChunkFormat {
        version: 2,
        padding: 1,
    };
    assert!(k.open_blob(&id, format1, &a).is_err());
    let mut flipped = a.clone();
    flipped[20] ^= 1;
    assert!(k.open_blob(&id, format, &flipped).is_err());
    assert!(k.open_blob(&id, format, &a[..a.len() - 1]).is_err());
    assert!(k.open_blob(&id, format, &a[..5]).is_err());
}

#[test]
fn every_label_gives_a_distinct_key() {
    let k = keys();
    let mut seen: Vec<[u8; 32]> = Vec::new();
    for label in Label::ALL {
        let sub = *k.subkey(label).expose();
        assert!(!seen.contains(&sub), "{label:?} repeats a key");
        seen.push(sub);
    }
}

#[test]
fn chunk_key_depends_on_format_and_id() {
    let k = keys();
    let id = k.chunk_id(b"data");
    let seal = |format: ChunkFormat, id: &[u8; 32]| {
        let mut buf = b"data".to_vec();
        k.seal_chunk(id, format, &mut buf).unwrap();
        buf
    };
    let v1 = ChunkFormat {
        version: 1,
        padding: 1,
    };
    let v2 = ChunkFormat {
        version: 2,
        padding: 1,
    };
    let p2 = ChunkFormat {
        version: 1,
        padding: 2,
    };
    assert_ne!(seal(v1, &id), seal(v2, &id));
    assert_ne!(seal(v1, &id), seal(p2, &id));
    assert_ne!(seal(v1, &id), seal(v1, &[0; 32]));
    // Opening under another format fails loudly.
    let mut sealed = seal(v1, &id);
    assert!(k.open_chunk(&id, v2, &mut sealed).is_err());
}

#[test]
fn hmac_matches_rfc4231_case_2() {
    // RFC 4231 test case 2 uses a 4-byte key; HMAC pads keys, so a zero-padded 32-byte key
    // gives the same result.
    let mut key = [0u8; 32];
    key[..4].copy_from_slice(b"Jefe");
    let mac = hmac_sha256(
        &shard_crypto::SecretKey::from_bytes(key),
        b"what do ya want for nothing?",
    );
    assert_eq!(
        hex::encode(mac),
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}

#[test]
fn different_vaults_have_different_ids_and_chunk_ids() {
    let a = VaultKeys::derive(&VaultKey::from_bytes([1; 32]));
    let b = VaultKeys::derive(&VaultKey::from_bytes([2; 32]));
    assert_ne!(a.vault_id(), b.vault_id());
    assert_ne!(a.chunk_id(b"x"), b.chunk_id(b"x"));
}
