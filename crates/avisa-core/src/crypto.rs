//! Encryption at rest.
//!
//! Every personal field is sealed with XChaCha20-Poly1305 under a key derived
//! from the data key, which never enters the database. The associated data
//! binds each ciphertext to its table, column and row, so a sealed value
//! copied into another row or column does not open. Equality lookups (by
//! phone) use a keyed HMAC-SHA256 "blind index" under a second derived key.
//! PINs and one-time codes are hashed with a key too, so a copy of the
//! database alone cannot be brute-forced over their small spaces.
//!
//! Three levels of keys (envelope encryption):
//! - the **master key** (`data.key` / `AVISA_DATA_KEY`) never enters the
//!   database; it only wraps the root key, so rotating it rewrites one value;
//! - the database's **root key** ([`Vault`]): random, stored wrapped by the
//!   master key; it derives the blind-index key, the PIN pepper and the
//!   cipher of values that belong to nobody yet (a device before its code),
//!   and wraps every person's key;
//! - a **person's key** ([`FieldKey`]): random, stored wrapped by the root
//!   key, seals everything of that person. Deleting the wrapped key makes
//!   every copy of their values (free pages, WAL, backups made afterwards)
//!   unopenable, whatever key the reader holds.

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
/// A value sealed with a person's key: the version byte, then the key's id.
const SEAL_V2: u8 = 2;
/// A person key's id (the person's UUID).
pub const KEY_ID_LEN: usize = 16;
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

    /// Whether two keys are the same (without stopping at the first byte
    /// that differs).
    pub fn same_as(&self, other: &DataKey) -> bool {
        constant_time_eq(self.0.as_ref(), other.0.as_ref())
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
        seal_with(&self.cipher, &[SEAL_V1], aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed.first() != Some(&SEAL_V1) {
            return Err(CryptoError::Open);
        }
        open_with(&self.cipher, 1, aad, sealed)
    }

    /// Wraps another key (the root key under the master key).
    pub fn wrap_key(&self, aad: &[u8], key: &DataKey) -> Result<Vec<u8>, CryptoError> {
        self.seal(aad, key.0.as_ref())
    }

    /// Unwraps a key [`Vault::wrap_key`] wrapped.
    pub fn unwrap_key(&self, aad: &[u8], wrapped: &[u8]) -> Result<DataKey, CryptoError> {
        let bytes = self.open(aad, wrapped)?;
        let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| CryptoError::Open)?;
        Ok(DataKey(Zeroizing::new(arr)))
    }

    /// A new person key, and its wrapped form to store (bound to the person).
    pub fn new_person_key(
        &self,
        person: [u8; KEY_ID_LEN],
    ) -> Result<(FieldKey, Vec<u8>), CryptoError> {
        let mut bytes = Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| CryptoError::Random)?;
        let wrapped = self.seal(&person_key_aad(person), bytes.as_ref())?;
        Ok((FieldKey::from_bytes(person, bytes.as_ref())?, wrapped))
    }

    /// Unwraps a stored person key.
    pub fn open_person_key(
        &self,
        person: [u8; KEY_ID_LEN],
        wrapped: &[u8],
    ) -> Result<FieldKey, CryptoError> {
        let bytes = self.open(&person_key_aad(person), wrapped)?;
        FieldKey::from_bytes(person, &bytes)
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

fn person_key_aad(person: [u8; KEY_ID_LEN]) -> Vec<u8> {
    let mut aad = b"person_keys.key:".to_vec();
    aad.extend_from_slice(&person);
    aad
}

/// Version byte(s) given, a random nonce, then the plaintext encrypted in
/// place and its tag: one allocation.
fn seal_with(
    cipher: &XChaCha20Poly1305,
    header: &[u8],
    aad: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    // A random 192-bit nonce, from the thread's CSPRNG (seeded and
    // reseeded from the OS): a press seals about twenty fields, and a
    // system call each showed in profiles.
    let mut nonce = [0u8; NONCE_LEN];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut nonce);
    let nonce = XNonce::from(nonce);
    let start = header.len() + NONCE_LEN;
    let mut out = Vec::with_capacity(start + plaintext.len() + TAG_LEN);
    out.extend_from_slice(header);
    out.extend_from_slice(nonce.as_slice());
    out.extend_from_slice(plaintext);
    let tag = cipher
        .encrypt_inout_detached(&nonce, aad, (&mut out[start..]).into())
        .map_err(|_| CryptoError::Random)?;
    out.extend_from_slice(tag.as_slice());
    Ok(out)
}

fn open_with(
    cipher: &XChaCha20Poly1305,
    header: usize,
    aad: &[u8],
    sealed: &[u8],
) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
    if sealed.len() < header + NONCE_LEN + TAG_LEN {
        return Err(CryptoError::Open);
    }
    let nonce =
        XNonce::try_from(&sealed[header..header + NONCE_LEN]).map_err(|_| CryptoError::Open)?;
    cipher
        .decrypt(
            &nonce,
            Payload {
                msg: &sealed[header + NONCE_LEN..],
                aad,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| CryptoError::Open)
}

/// The person key a sealed value needs, if it was sealed with one.
pub fn sealed_key_id(sealed: &[u8]) -> Option<[u8; KEY_ID_LEN]> {
    if sealed.len() < 1 + KEY_ID_LEN + NONCE_LEN + TAG_LEN || sealed[0] != SEAL_V2 {
        return None;
    }
    sealed[1..1 + KEY_ID_LEN].try_into().ok()
}

/// One person's key: seals and opens their fields. Zeroed on drop (the
/// cipher holds the only copy).
pub struct FieldKey {
    id: [u8; KEY_ID_LEN],
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for FieldKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("FieldKey(<secret>)")
    }
}

impl FieldKey {
    fn from_bytes(id: [u8; KEY_ID_LEN], bytes: &[u8]) -> Result<Self, CryptoError> {
        Ok(FieldKey {
            id,
            cipher: XChaCha20Poly1305::new_from_slice(bytes).map_err(|_| CryptoError::Open)?,
        })
    }

    pub fn id(&self) -> [u8; KEY_ID_LEN] {
        self.id
    }

    /// Seals `plaintext` (the key's id travels in front, so whoever opens
    /// it knows which key to fetch).
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, CryptoError> {
        let mut header = [0u8; 1 + KEY_ID_LEN];
        header[0] = SEAL_V2;
        header[1..].copy_from_slice(&self.id);
        seal_with(&self.cipher, &header, aad, plaintext)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, CryptoError> {
        if sealed_key_id(sealed) != Some(self.id) {
            return Err(CryptoError::Open);
        }
        open_with(&self.cipher, 1 + KEY_ID_LEN, aad, sealed)
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
    fn person_keys_wrap_seal_and_stay_apart() {
        let vault = Vault::new(&DataKey::generate().expect("key"));
        let (key, wrapped) = vault.new_person_key([7; KEY_ID_LEN]).expect("key");
        let sealed = key.seal(b"contacts.name:1", b"Mam\xc3\xa1").expect("seal");
        assert_eq!(sealed_key_id(&sealed), Some([7; KEY_ID_LEN]));
        // The root's own cipher does not open a person's value, nor the
        // reverse; the unwrapped key does.
        assert!(vault.open(b"contacts.name:1", &sealed).is_err());
        let root_sealed = vault.seal(b"x", b"y").expect("seal");
        assert!(key.open(b"x", &root_sealed).is_err());
        assert_eq!(sealed_key_id(&root_sealed), None);
        let again = vault
            .open_person_key([7; KEY_ID_LEN], &wrapped)
            .expect("unwrap");
        assert_eq!(
            again
                .open(b"contacts.name:1", &sealed)
                .expect("open")
                .as_slice(),
            "Mamá".as_bytes()
        );
        // A wrapped key is bound to its person, and to the root.
        assert!(vault.open_person_key([8; KEY_ID_LEN], &wrapped).is_err());
        let other = Vault::new(&DataKey::generate().expect("key"));
        assert!(other.open_person_key([7; KEY_ID_LEN], &wrapped).is_err());
        // Another person's key does not open it, even with the id forged.
        let (eve, _) = vault.new_person_key([7; KEY_ID_LEN]).expect("key");
        assert!(eve.open(b"contacts.name:1", &sealed).is_err());
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
