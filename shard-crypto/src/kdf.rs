//! Passphrase → key-encryption key, with Argon2id.

use argon2::{Algorithm, Argon2, Params, Version};

use crate::{Error, Result, SecretKey};

/// Salt length for the passphrase KDF.
pub const SALT_LEN: usize = 16;

/// Argon2id cost parameters. Stored in every key record, so they can be raised later without
/// breaking existing accounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Passes over memory.
    pub t: u32,
    /// Lanes.
    pub p: u32,
}

impl KdfParams {
    /// What DESIGN.md prescribes: m = 64 MiB, t = 3, p = 1 (≈ 100–150 ms here).
    pub const DEFAULT: Self = Self {
        m_kib: 64 * 1024,
        t: 3,
        p: 1,
    };

    /// Deliberately weak parameters for tests and examples that create many accounts. Never
    /// use them for a real account.
    pub const INSECURE_FAST: Self = Self {
        m_kib: 64,
        t: 1,
        p: 1,
    };

    /// Largest memory cost accepted when reading a key record (4 GiB); a tampered record must
    /// not make us allocate without bound.
    pub const MAX_M_KIB: u32 = 4 * 1024 * 1024;
    /// Largest time cost accepted.
    pub const MAX_T: u32 = 64;
    /// Largest lane count accepted.
    pub const MAX_P: u32 = 16;

    /// Checks that the parameters are within what this build accepts.
    pub fn validate(&self) -> Result<()> {
        if self.p == 0 || self.p > Self::MAX_P {
            return Err(Error::KdfParams("lanes must be 1..=16"));
        }
        if self.t == 0 || self.t > Self::MAX_T {
            return Err(Error::KdfParams("passes must be 1..=64"));
        }
        if self.m_kib < 8 * self.p || self.m_kib > Self::MAX_M_KIB {
            return Err(Error::KdfParams("memory must be 8·lanes KiB ..= 4 GiB"));
        }
        Ok(())
    }
}

/// Derives the 256-bit key-encryption key from a passphrase with Argon2id v1.3.
pub fn derive_kek(
    passphrase: &[u8],
    salt: &[u8; SALT_LEN],
    params: KdfParams,
) -> Result<SecretKey> {
    params.validate()?;
    let argon_params = Params::new(params.m_kib, params.t, params.p, Some(crate::KEY_LEN))
        .map_err(|_| Error::KdfParams("rejected by argon2"))?;
    let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, argon_params);
    let mut kek = SecretKey::from_bytes([0; crate::KEY_LEN]);
    argon
        .hash_password_into(passphrase, salt, kek.expose_mut())
        .map_err(|_| Error::KdfParams("rejected by argon2"))?;
    Ok(kek)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_inputs_same_key_other_salt_other_key() {
        let a = derive_kek(b"correct horse", &[1; SALT_LEN], KdfParams::INSECURE_FAST).unwrap();
        let b = derive_kek(b"correct horse", &[1; SALT_LEN], KdfParams::INSECURE_FAST).unwrap();
        let c = derive_kek(b"correct horse", &[2; SALT_LEN], KdfParams::INSECURE_FAST).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn absurd_parameters_are_rejected_before_allocating() {
        for params in [
            KdfParams {
                m_kib: u32::MAX,
                t: 3,
                p: 1,
            },
            KdfParams {
                m_kib: 65536,
                t: 0,
                p: 1,
            },
            KdfParams {
                m_kib: 65536,
                t: 1000,
                p: 1,
            },
            KdfParams {
                m_kib: 65536,
                t: 3,
                p: 0,
            },
            KdfParams {
                m_kib: 4,
                t: 3,
                p: 1,
            },
        ] {
            assert!(matches!(
                derive_kek(b"pw", &[0; SALT_LEN], params),
                Err(Error::KdfParams(_))
            ));
        }
    }
}
