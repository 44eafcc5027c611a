//! A proof of work before a verification code is sent, when codes are
//! asked faster than usual (issue 33): the phone finds the number behind a
//! hash, a few hundred milliseconds on a cheap phone and costly at a bot's
//! scale, so a flood from many addresses cannot spend the hour's codes that
//! people need. The format is ALTCHA's (altcha.org: `algorithm`,
//! `challenge`, `maxnumber`, `salt`, `signature`), with no third party: the
//! server signs what it hands out (an HMAC under its own key) and keeps no
//! state but a one-time use of each solved challenge.

use sha2::{Digest, Sha256};

/// What the phone must solve.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Challenge {
    /// Always "SHA-256".
    pub algorithm: String,
    /// Hex SHA-256 of `salt` followed by the secret number in decimal.
    pub challenge: String,
    /// The number is between 0 and this, inclusive.
    pub maxnumber: u64,
    /// Random, with `?expires=<unix seconds>` after it.
    pub salt: String,
    /// The server's HMAC of `challenge`, in hex.
    pub signature: String,
}

/// What the phone sends back: the challenge and the number it found.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Solution {
    pub algorithm: String,
    pub challenge: String,
    pub number: u64,
    pub salt: String,
    pub signature: String,
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn hash(salt: &str, number: u64) -> String {
    hex(&Sha256::digest(format!("{salt}{number}").as_bytes()))
}

/// A new challenge: `random` is 16 random bytes, `number` the secret in
/// `0..=maxnumber`, `sign` the server's HMAC of the challenge text.
pub fn new_challenge(
    random: &[u8],
    number: u64,
    maxnumber: u64,
    expires_unix: i64,
    sign: impl Fn(&str) -> Vec<u8>,
) -> Challenge {
    let salt = format!("{}?expires={expires_unix}", hex(random));
    let challenge = hash(&salt, number);
    let signature = hex(&sign(&challenge));
    Challenge {
        algorithm: "SHA-256".into(),
        challenge,
        maxnumber,
        salt,
        signature,
    }
}

/// Why a solution is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Not ours (signature), not solved (number), or of another algorithm.
    Wrong,
    /// Its time is past.
    Expired,
}

/// Checks a solution: ours (`signed` compares the signature in constant
/// time), solved, and not expired at `now_unix`; gives its expiry (unix
/// seconds). One-time use is the caller's (a budget of one per challenge).
pub fn verify(
    s: &Solution,
    now_unix: i64,
    signed: impl Fn(&str, &str) -> bool,
) -> Result<i64, Refused> {
    if s.algorithm != "SHA-256" || !signed(&s.challenge, &s.signature) {
        return Err(Refused::Wrong);
    }
    let expires = s
        .salt
        .split_once("?expires=")
        .and_then(|(_, e)| e.parse::<i64>().ok())
        .ok_or(Refused::Wrong)?;
    if hash(&s.salt, s.number) != s.challenge {
        return Err(Refused::Wrong);
    }
    if expires < now_unix {
        return Err(Refused::Expired);
    }
    Ok(expires)
}

/// Solves a challenge by trying every number (what the phone does; here for
/// tests and the bench).
pub fn solve(c: &Challenge) -> Option<Solution> {
    (0..=c.maxnumber)
        .find(|n| hash(&c.salt, *n) == c.challenge)
        .map(|number| Solution {
            algorithm: c.algorithm.clone(),
            challenge: c.challenge.clone(),
            number,
            salt: c.salt.clone(),
            signature: c.signature.clone(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sign(text: &str) -> Vec<u8> {
        Sha256::digest(format!("key:{text}").as_bytes()).to_vec()
    }

    fn signed(text: &str, sig: &str) -> bool {
        hex(&sign(text)) == sig
    }

    #[test]
    fn a_solved_challenge_passes_once_checked() {
        let c = new_challenge(&[7; 16], 1234, 5000, 2_000_000_000, sign);
        let s = solve(&c).expect("solvable");
        assert_eq!(s.number, 1234);
        assert_eq!(verify(&s, 1_900_000_000, signed), Ok(2_000_000_000));
        // Expired.
        assert_eq!(verify(&s, 2_000_000_001, signed), Err(Refused::Expired));
        // A wrong number, or a challenge not ours.
        let mut wrong = s.clone();
        wrong.number += 1;
        assert_eq!(verify(&wrong, 1_900_000_000, signed), Err(Refused::Wrong));
        let mut forged = s.clone();
        forged.signature = "00".into();
        assert_eq!(verify(&forged, 1_900_000_000, signed), Err(Refused::Wrong));
        // A later expiry written into the salt breaks the hash.
        let mut longer = s;
        longer.salt = longer.salt.replace("2000000000", "2100000000");
        assert_eq!(verify(&longer, 1_900_000_000, signed), Err(Refused::Wrong));
    }
}
