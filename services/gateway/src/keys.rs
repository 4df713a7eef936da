//! API key secrets: 256 random bits, shown once, stored as a SHA-256 hash.
//!
//! A plain hash suffices (no slow password hash): with that much entropy
//! there is no dictionary to try, and a lookup by hash costs one index probe.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Every secret starts with it, so a leaked one is recognisable (secret scanners, logs).
const PREFIX: &str = "bsk_";
/// Characters kept in the clear to tell secrets apart.
const HINT_CHARS: usize = 4;

/// A newly issued secret: the value shown once and what is stored of it.
pub struct IssuedSecret {
    pub secret: String,
    pub hash: Vec<u8>,
    pub hint: String,
}

impl IssuedSecret {
    pub fn generate() -> Self {
        let random: [u8; 32] = rand::random();
        let secret = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(random));
        IssuedSecret { hash: hash(&secret), hint: secret[secret.len() - HINT_CHARS..].to_owned(), secret }
    }
}

/// The stored form of a secret.
pub fn hash(secret: &str) -> Vec<u8> {
    Sha256::digest(secret.as_bytes()).to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_unique_and_only_their_hash_and_hint_are_kept() {
        let first = IssuedSecret::generate();
        let second = IssuedSecret::generate();
        assert_ne!(first.secret, second.secret);
        assert!(first.secret.starts_with(PREFIX) && first.secret.len() == PREFIX.len() + 43);
        assert_eq!(first.hash, hash(&first.secret));
        assert_eq!(first.hash.len(), 32);
        assert!(first.secret.ends_with(&first.hint) && first.hint.len() == HINT_CHARS);
    }
}
