//! Encryption at rest.
//!
//! Every personal field is sealed with XChaCha20-Poly1305 under a key derived
//! from the data key, which never enters the database. The associated data
//! binds each ciphertext to its table, column and row, so a sealed value
//! copied into another row or column does not open. Equality lookups (by
//! phone) use a keyed HMAC-SHA256 "blind index" under a second derived key.
//! PINs and one-time codes are hashed with a key too, so a copy of the
//! database alone cannot be brute-forced over their small spaces.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, AeadInOut, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

type HmacSha256 = Hmac<Sha256>;

/// Format byte at the start of every sealed value, so the scheme can change
/// later without guessing.
const SEAL_V1: u8 = 1;
const NONCE_LEN: usize = 24;
/// Poly1305's tag, after the ciphertext.
const TAG_LEN: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error(
        "the data key must be 32 bytes encoded in base64 (e.g. the output of `openssl rand -base64 32`)"
    )]
    BadKey,
    #[error(
        "a sealed value does not open with this data key (wrong key, or the value was altered)"
    )]
    Open,
    #[error("the system random number generator failed")]
    Random,
    #[error("hashing a secret failed")]
    Hash,
}

/// The 256-bit data key. Never printed, zeroed on drop.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(<secret>)")
    }
}

impl DataKey {
    pub fn generate() -> Result<Self, CryptoError> {
        let mut key = Zeroizing::new([0u8; 32]);
        getrandom::fill(key.as_mut()).map_err(|_| CryptoError::Random)?;
        Ok(DataKey(key))
    }

    /// Parses the base64 form (standard or URL-safe, padding optional).
    pub fn from_base64(text: &str) -> Result<Self, CryptoError> {
        let text = text.trim();
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text)
                .or_else(|_| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')))
                .map_err(|_| CryptoError::BadKey)?,
        );
        let arr: [u8; 32] = bytes
            .as_slice()
            .try_into()
            .map_err(|_| CryptoError::BadKey)?;
        Ok(DataKey(Zeroizing::new(arr)))
    }

    pub fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.0.as_ref()))
    }

    fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(self.0.as_ref())
            .expect("HMAC accepts any key length");
        mac.update(label);
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&mac.finalize().into_bytes());
        out
    }
}

/// Seals and opens personal fields; computes blind indexes and secret hashes.
pub struct Vault {
    cipher: XChaCha20Poly1305,
    index_key: Zeroizing<[u8; 32]>,
    pepper: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Vault(<secret>)")
    }
}

impl Vault {
    pub fn new(key: &DataKey) -> Self {
        let enc = key.derive(b"avisa/v1/field-encryption");
        let cipher = XChaCha20Poly1305::new_from_slice(enc.as_ref())
            .expect("a 32-byte key fits XChaCha20-Poly1305");
        Vault {
            cipher,
            index_key: key.derive(b"avisa/v1/blind-index"),
            pepper: key.derive(b"avisa/v1/secret-pepper"),
        }
    }

    /// Seals `plaintext`; `aad` names where it lives (e.g. `people.name:<id>`).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        // A random 192-bit nonce, from the thread's CSPRNG (seeded and
        // reseeded from the OS): a press seals about twenty fields, and a
        // system call each showed in profiles.
        let mut nonce = [0u8; NONCE_LEN];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut nonce);
        let nonce = XNonce::from(nonce);
        // Version, nonce, then the plaintext encrypted in place and its tag:
        // one allocation.
        let start = 1 + NONCE_LEN;
        let mut out = Vec::with_capacity(start + plaintext.len() + TAG_LEN);
        out.push(SEAL_V1);
        out.extend_from_slice(nonce.as_slice());
        out.extend_from_slice(plaintext);
        let tag = self
            .cipher
            .encrypt_inout_detached(&nonce, aad, (&mut out[start..]).into())
            .map_err(|_| CryptoError::Random)?;
        out.extend_from_slice(tag.as_slice());
        Ok(out)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.len() < 1 + NONCE_LEN + 16 || sealed[0] != SEAL_V1 {
            return Err(CryptoError::Open);
        }
        let nonce = XNonce::try_from(&sealed[1..1 + NONCE_LEN]).map_err(|_| CryptoError::Open)?;
        self.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: &sealed[1 + NONCE_LEN..],
                    aad,
                },
            )
            .map(Zeroizing::new)
            .map_err(|_| CryptoError::Open)
    }

    pub fn seal_str(&self, aad: &str, plaintext: &str) -> Result<Vec<u8>, CryptoError> {
        self.seal(aad.as_bytes(), plaintext.as_bytes())
    }

    pub fn open_string(&self, aad: &str, sealed: &[u8]) -> Result<String, CryptoError> {
        let bytes = self.open(aad.as_bytes(), sealed)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CryptoError::Open)
    }

    /// A deterministic keyed hash for equality lookups; `domain` separates
    /// uses ("phone", "code") so one index cannot be replayed as another.
    pub fn blind_index(&self, domain: &str, value: &[u8]) -> Vec<u8> {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(self.index_key.as_ref())
            .expect("HMAC accepts any key length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.finalize().into_bytes().to_vec()
    }

    /// Constant-time comparison of a candidate with a stored blind index.
    pub fn blind_index_matches(&self, domain: &str, value: &[u8], stored: &[u8]) -> bool {
        let mut mac = <HmacSha256 as hmac::KeyInit>::new_from_slice(self.index_key.as_ref())
            .expect("HMAC accepts any key length");
        mac.update(domain.as_bytes());
        mac.update(&[0]);
        mac.update(value);
        mac.verify_slice(stored).is_ok()
    }

    /// argon2id with OWASP's first recommended setting: 46 MiB, one pass,
    /// one lane. The memory is above glibc's largest dynamic mmap threshold
    /// (32 MiB), so each hash's block is mapped and unmapped on its own: with
    /// the 19 MiB default, one freed block raised the process-wide thresholds
    /// and every thread's arena kept tens of megabytes it no longer used
    /// (a 16 MB server peaked near 400 MB after a burst of profile saves).
    /// Hashes made with other parameters still verify: a PHC string carries
    /// its own.
    fn argon2(&self) -> Result<argon2::Argon2<'_>, CryptoError> {
        let params = argon2::Params::new(46 * 1024, 1, 1, None).map_err(|_| CryptoError::Hash)?;
        argon2::Argon2::new_with_secret(
            self.pepper.as_ref(),
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            params,
        )
        .map_err(|_| CryptoError::Hash)
    }

    /// Hashes a PIN or password with argon2id, salted and peppered.
    pub fn hash_secret(&self, secret: &str) -> Result<String, CryptoError> {
        let hash = self
            .argon2()?
            .hash_password(secret.as_bytes())
            .map_err(|_| CryptoError::Hash)?;
        Ok(hash.to_string())
    }

    /// Checks a PIN or password against a stored hash.
    pub fn verify_secret(&self, secret: &str, stored: &str) -> bool {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return false;
        };
        self.argon2()
            .map(|a| a.verify_password(secret.as_bytes(), &parsed).is_ok())
            .unwrap_or(false)
    }
}

/// A fresh bearer token of 256 random bits, URL-safe.
pub fn random_token() -> Result<Zeroizing<String>, CryptoError> {
    let mut bytes = Zeroizing::new([0u8; 32]);
    getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
    Ok(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref())))
}

/// A uniformly random numeric code of `digits` digits.
pub fn random_digits(digits: u32) -> Result<Zeroizing<String>, CryptoError> {
    let modulus = 10u64.pow(digits);
    // Rejection sampling keeps every code equally likely.
    let zone = u64::MAX - (u64::MAX % modulus);
    loop {
        let v = getrandom::u64().map_err(|_| CryptoError::Random)?;
        if v < zone {
            return Ok(Zeroizing::new(format!(
                "{:0width$}",
                v % modulus,
                width = digits as usize
            )));
        }
    }
}

/// Compares two secrets (tokens, signatures) without stopping at the first
/// difference, so the time taken says nothing about how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// SHA-256 of a high-entropy token, as stored in place of the token. (A
/// 256-bit token needs no salt or slow hash: it cannot be guessed.)
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_open_round_trip_and_binding() {
        let vault = Vault::new(&DataKey::generate().expect("key"));
        let sealed = vault
            .seal_str("people.name:1", "María López")
            .expect("seal");
        assert!(!String::from_utf8_lossy(&sealed).contains("María"));
        assert_eq!(
            vault.open_string("people.name:1", &sealed).expect("open"),
            "María López"
        );
        // Bound to its place: another row or column does not open it.
        assert!(vault.open_string("people.name:2", &sealed).is_err());
        // Two seals of the same text differ (random nonce).
        assert_ne!(
            sealed,
            vault
                .seal_str("people.name:1", "María López")
                .expect("seal")
        );
        // Another key does not open it.
        let other = Vault::new(&DataKey::generate().expect("key"));
        assert!(other.open_string("people.name:1", &sealed).is_err());
        // A flipped bit does not open.
        let mut tampered = sealed.clone();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(vault.open_string("people.name:1", &tampered).is_err());
    }

    #[test]
    fn the_sealed_layout_is_version_nonce_ciphertext_tag() {
        // Databases sealed before sealing moved in place must still open:
        // the layout is the AEAD's own output after version and nonce.
        let vault = Vault::new(&DataKey::generate().expect("key"));
        let sealed = vault.seal(b"outbox.body:1", b"Ayuda").expect("seal");
        assert_eq!(sealed.len(), 1 + NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(sealed[0], SEAL_V1);
        let nonce = XNonce::try_from(&sealed[1..1 + NONCE_LEN]).expect("nonce");
        let whole = vault
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: b"Ayuda",
                    aad: b"outbox.body:1",
                },
            )
            .expect("encrypt");
        assert_eq!(&sealed[1 + NONCE_LEN..], whole.as_slice());
        assert_eq!(
            vault
                .open(b"outbox.body:1", &sealed)
                .expect("open")
                .as_slice(),
            b"Ayuda"
        );
        // An empty value too.
        let empty = vault.seal(b"x", b"").expect("seal");
        assert_eq!(vault.open(b"x", &empty).expect("open").len(), 0);
    }

    #[test]
    fn blind_index_is_keyed_and_domain_separated() {
        let key = DataKey::generate().expect("key");
        let vault = Vault::new(&key);
        let a = vault.blind_index("phone", b"+12135550100");
        assert_eq!(a, vault.blind_index("phone", b"+12135550100"));
        assert_ne!(a, vault.blind_index("code", b"+12135550100"));
        assert!(vault.blind_index_matches("phone", b"+12135550100", &a));
        assert!(!vault.blind_index_matches("phone", b"+12135550101", &a));
        let other = Vault::new(&DataKey::generate().expect("key"));
        assert_ne!(a, other.blind_index("phone", b"+12135550100"));
    }

    #[test]
    fn key_base64_round_trip_and_refusals() {
        let key = DataKey::generate().expect("key");
        let text = key.to_base64();
        let back = DataKey::from_base64(&text).expect("parse");
        assert_eq!(back.0.as_ref(), key.0.as_ref());
        assert!(DataKey::from_base64("short").is_err());
        assert!(DataKey::from_base64(&STANDARD.encode([0u8; 16])).is_err());
        assert!(!format!("{key:?}").contains(text.as_str()));
    }

    #[test]
    fn secrets_hash_and_verify() {
        let vault = Vault::new(&DataKey::generate().expect("key"));
        let hash = vault.hash_secret("4821").expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert!(vault.verify_secret("4821", &hash));
        assert!(!vault.verify_secret("4822", &hash));
        // The pepper comes from the key: another key does not verify.
        let other = Vault::new(&DataKey::generate().expect("key"));
        assert!(!other.verify_secret("4821", &hash));
    }

    #[test]
    fn random_codes_have_the_right_shape() {
        for _ in 0..50 {
            let code = random_digits(6).expect("code");
            assert_eq!(code.len(), 6);
            assert!(code.chars().all(|c| c.is_ascii_digit()));
        }
        assert_eq!(random_token().expect("token").len(), 43);
    }
}
