//! Recovery codes: the vault key written out for paper, in checked groups.
//!
//! Format version 1:
//! ```text
//! payload  = version (1 byte, = 1) ‖ vault key (32) ‖ checksum (2)
//! checksum = SHA-256("shard recovery v1" ‖ version ‖ vault key)[0..2]
//! text     = base32 (RFC 4648 alphabet A–Z 2–7, no padding) of the 35-byte payload = 56 chars,
//!            cut into 8 groups of 7, each followed by a Luhn mod 32 check character:
//!            8 groups of 8, shown as XXXXXXXX-XXXXXXXX-…
//! ```
//! Later versions keep the checksum construction, so a code of an unknown version is told
//! apart from a mistyped one. The per-group check character catches every single mistyped character and most swaps of
//! neighbours and names the group; the checksum catches the rest (such as swapped groups).
//! The vault id is not written out: it is derived from the key ([`VaultKey::vault_id`]).
//! Reading is forgiving where it is safe: case, spaces and dashes are ignored, and `0`, `1`, `8`
//! (not in the alphabet) are read as `O`, `I`, `B`.

use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, KEY_LEN, Result, VaultKey};

const VERSION: u8 = 1;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
const PAYLOAD_LEN: usize = 1 + KEY_LEN + 2;
const GROUPS: usize = 8;
const DATA_PER_GROUP: usize = 7;
const GROUP_LEN: usize = DATA_PER_GROUP + 1;
/// Characters in a recovery code, without separators.
pub const RECOVERY_CODE_CHARS: usize = GROUPS * GROUP_LEN;

fn checksum(version: u8, key: &[u8; KEY_LEN]) -> [u8; 2] {
    let mut h = Sha256::new();
    h.update(b"shard recovery v1");
    h.update([version]);
    h.update(key);
    let d = h.finalize();
    [d[0], d[1]]
}

fn value(c: u8) -> Option<u32> {
    (0u32..)
        .zip(ALPHABET)
        .find(|&(_, &a)| a == c)
        .map(|(v, _)| v)
}

/// Luhn mod 32 check character for `group` (all characters must be in the alphabet).
fn luhn_char(group: &[u8]) -> u8 {
    let mut factor = 2;
    let mut sum = 0u32;
    for &c in group.iter().rev() {
        let addend = factor * value(c).unwrap_or(0);
        factor = if factor == 2 { 1 } else { 2 };
        sum += addend / 32 + addend % 32;
    }
    // The index is < 32 by construction.
    ALPHABET[((32 - sum % 32) % 32) as usize]
}

/// Writes `key` as a recovery code, `XXXXXXXX-…` (8 groups of 8).
pub fn encode_recovery_code(key: &VaultKey) -> Zeroizing<String> {
    let mut payload = Zeroizing::new([0u8; PAYLOAD_LEN]);
    payload[0] = VERSION;
    payload[1..1 + KEY_LEN].copy_from_slice(key.expose());
    payload[1 + KEY_LEN..].copy_from_slice(&checksum(VERSION, key.expose()));
    let data = Zeroizing::new(BASE32_NOPAD.encode(payload.as_ref()));
    let mut out = Zeroizing::new(String::with_capacity(RECOVERY_CODE_CHARS + GROUPS));
    for (i, group) in data.as_bytes().chunks(DATA_PER_GROUP).enumerate() {
        if i > 0 {
            out.push('-');
        }
        for &c in group {
            out.push(char::from(c));
        }
        out.push(char::from(luhn_char(group)));
    }
    out
}

/// Reads a recovery code back into the vault key, naming the group that was mistyped.
pub fn decode_recovery_code(text: &str) -> Result<VaultKey> {
    let parts: Vec<&str> = text
        .split(|c: char| c == '-' || c.is_whitespace())
        .filter(|p| !p.is_empty())
        .collect();
    let mut chars = Zeroizing::new(Vec::with_capacity(RECOVERY_CODE_CHARS));
    for c in parts.iter().flat_map(|p| p.chars()) {
        chars.push(normalize(c));
    }
    if chars.len() != RECOVERY_CODE_CHARS {
        // With the separators kept, we can still say which group is too short or too long.
        if parts.len() == GROUPS
            && let Some(bad) = parts.iter().position(|p| p.chars().count() != GROUP_LEN)
        {
            return Err(Error::RecoveryCodeGroup { group: bad + 1 });
        }
        return Err(Error::RecoveryCodeLength {
            found: chars.len(),
            expected: RECOVERY_CODE_CHARS,
        });
    }
    let mut data = Zeroizing::new(Vec::with_capacity(GROUPS * DATA_PER_GROUP));
    for (g, group) in chars.chunks(GROUP_LEN).enumerate() {
        let mut bytes = [0u8; GROUP_LEN];
        for (slot, &c) in bytes.iter_mut().zip(group) {
            match u8::try_from(c).ok().filter(|b| value(*b).is_some()) {
                Some(b) => *slot = b,
                None => {
                    return Err(Error::RecoveryCodeCharacter {
                        group: g + 1,
                        ch: c,
                    });
                }
            }
        }
        let (body, check) = bytes.split_at(DATA_PER_GROUP);
        if check.first() != Some(&luhn_char(body)) {
            return Err(Error::RecoveryCodeGroup { group: g + 1 });
        }
        data.extend_from_slice(body);
        bytes.zeroize();
    }
    let payload = Zeroizing::new(
        BASE32_NOPAD
            .decode(&data)
            .map_err(|_| Error::RecoveryCodeChecksum)?,
    );
    let [version, rest @ ..] = payload.as_slice() else {
        return Err(Error::RecoveryCodeChecksum);
    };
    let (key_bytes, sum) = rest.split_at(rest.len().min(KEY_LEN));
    let mut key = [0u8; KEY_LEN];
    if key_bytes.len() != KEY_LEN {
        return Err(Error::RecoveryCodeChecksum);
    }
    key.copy_from_slice(key_bytes);
    let vault_key = VaultKey::from_bytes(key);
    key.zeroize();
    if !crate::ct_eq(sum, &checksum(*version, vault_key.expose())) {
        // A mistyped first group also changes the version byte: only call the version
        // unsupported when the rest of the code is consistent with it.
        return Err(Error::RecoveryCodeChecksum);
    }
    if *version != VERSION {
        return Err(Error::UnsupportedRecoveryCode(*version));
    }
    Ok(vault_key)
}

fn normalize(c: char) -> char {
    match c.to_ascii_uppercase() {
        '0' => 'O',
        '1' => 'I',
        '8' => 'B',
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code_for(byte: u8) -> (VaultKey, String) {
        let key = VaultKey::from_bytes([byte; KEY_LEN]);
        let code = encode_recovery_code(&key).to_string();
        (key, code)
    }

    #[test]
    fn shape_is_eight_groups_of_eight() {
        let (_, code) = code_for(7);
        let groups: Vec<&str> = code.split('-').collect();
        assert_eq!(groups.len(), 8, "{code}");
        assert!(groups.iter().all(|g| g.len() == 8), "{code}");
        assert!(code.bytes().all(|b| b == b'-' || ALPHABET.contains(&b)));
    }

    #[test]
    fn forgiving_reading() {
        let (key, code) = code_for(9);
        let messy = format!("  {}  ", code.to_lowercase().replace('-', " "));
        assert_eq!(decode_recovery_code(&messy).unwrap(), key);
        let squashed = code.replace('-', "");
        assert_eq!(decode_recovery_code(&squashed).unwrap(), key);
    }

    #[test]
    fn every_single_mistyped_character_names_its_group() {
        let (_, code) = code_for(0x5a);
        let clean: Vec<u8> = code.bytes().filter(|&b| b != b'-').collect();
        for pos in 0..clean.len() {
            for &sub in ALPHABET.iter() {
                if sub == clean[pos] {
                    continue;
                }
                let mut bad = clean.clone();
                bad[pos] = sub;
                let text = String::from_utf8(bad).unwrap();
                assert_eq!(
                    decode_recovery_code(&text),
                    Err(Error::RecoveryCodeGroup { group: pos / 8 + 1 }),
                    "position {pos} replaced by {}",
                    sub as char
                );
            }
        }
    }

    #[test]
    fn swapped_groups_fail_the_checksum() {
        let (_, code) = code_for(0x33);
        let mut groups: Vec<&str> = code.split('-').collect();
        // Find two different groups and swap them.
        let j = (1..8).find(|&j| groups[j] != groups[0]).unwrap();
        groups.swap(0, j);
        assert_eq!(
            decode_recovery_code(&groups.join("-")),
            Err(Error::RecoveryCodeChecksum)
        );
    }

    #[test]
    fn wrong_lengths_and_characters() {
        let (_, code) = code_for(1);
        assert_eq!(
            decode_recovery_code(""),
            Err(Error::RecoveryCodeLength {
                found: 0,
                expected: 64
            })
        );
        assert_eq!(
            decode_recovery_code(&code[..code.len() - 1]),
            Err(Error::RecoveryCodeGroup { group: 8 })
        );
        let mut groups: Vec<String> = code.split('-').map(str::to_string).collect();
        groups[2].pop();
        assert_eq!(
            decode_recovery_code(&groups.join("-")),
            Err(Error::RecoveryCodeGroup { group: 3 })
        );
        let mut with_symbol = code.clone();
        with_symbol.replace_range(9..10, "!");
        assert_eq!(
            decode_recovery_code(&with_symbol),
            Err(Error::RecoveryCodeCharacter { group: 2, ch: '!' })
        );
        let mut with_emoji = code.clone();
        with_emoji.replace_range(0..1, "é");
        assert!(matches!(
            decode_recovery_code(&with_emoji),
            Err(Error::RecoveryCodeCharacter { group: 1, .. })
        ));
    }

    #[test]
    fn known_answer() {
        // Pins format version 1: a change must fail here and bump the version.
        let (_, code) = code_for(0);
        assert_eq!(
            code,
            "AEAAAAA4-AAAAAAAA-AAAAAAAA-AAAAAAAA-AAAAAAAA-AAAAAAAA-AAAAAAAA-AAAAUOYY"
        );
    }

    #[test]
    fn a_consistent_code_of_another_version_is_unsupported_not_mistyped() {
        let key = VaultKey::from_bytes([4; KEY_LEN]);
        let mut payload = [0u8; PAYLOAD_LEN];
        payload[0] = 2;
        payload[1..1 + KEY_LEN].copy_from_slice(key.expose());
        payload[1 + KEY_LEN..].copy_from_slice(&checksum(2, key.expose()));
        let data = BASE32_NOPAD.encode(&payload);
        let code: Vec<String> = data
            .as_bytes()
            .chunks(DATA_PER_GROUP)
            .map(|g| {
                format!(
                    "{}{}",
                    std::str::from_utf8(g).unwrap(),
                    luhn_char(g) as char
                )
            })
            .collect();
        assert_eq!(
            decode_recovery_code(&code.join("-")),
            Err(Error::UnsupportedRecoveryCode(2))
        );
    }

    proptest! {
        #[test]
        fn roundtrip(bytes in proptest::array::uniform32(any::<u8>())) {
            let key = VaultKey::from_bytes(bytes);
            let code = encode_recovery_code(&key);
            prop_assert_eq!(decode_recovery_code(&code).unwrap(), key);
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,120}") {
            let _ = decode_recovery_code(&text);
        }
    }
}
