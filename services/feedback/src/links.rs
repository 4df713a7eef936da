//! Survey link tokens.
//!
//! A token is HMAC-SHA256(secret, invitation id), base64url: unguessable
//! without the secret, and derivable again from the invitation id, so the
//! outbox and printed forms can carry the link while the database holds only
//! SHA-256(token). A submitted token is looked up by its hash; single use and
//! expiry are the invitation's state.
use crate::LinkConfig;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use std::sync::Arc;
use uuid::Uuid;

/// Length of a token: 32 bytes in unpadded base64url.
pub const TOKEN_LENGTH: usize = 43;

/// Derives, hashes and formats survey links; cheap to clone.
#[derive(Clone)]
pub struct SurveyLinks {
    secret: Arc<[u8]>,
    base_url: Arc<str>,
}

impl std::fmt::Debug for SurveyLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SurveyLinks").field("base_url", &self.base_url).finish()
    }
}

impl SurveyLinks {
    pub fn new(config: &LinkConfig) -> Self {
        SurveyLinks { secret: config.secret.as_bytes().into(), base_url: config.base_url.as_str().into() }
    }

    /// The token of an invitation.
    pub fn token(&self, invitation: Uuid) -> String {
        // The key length is unrestricted for HMAC, so this cannot fail.
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length");
        mac.update(b"branchscore survey link v1:");
        mac.update(invitation.as_bytes());
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// The address a client opens.
    pub fn url(&self, token: &str) -> String {
        format!("{}{token}", self.base_url)
    }

    /// The invitation's token and address.
    pub fn issue(&self, invitation: Uuid) -> (String, String) {
        let token = self.token(invitation);
        let url = self.url(&token);
        (token, url)
    }
}

/// What the database stores and looks tokens up by.
pub fn hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// Whether `token` could be one of ours at all (checked before any lookup).
pub fn is_well_formed(token: &str) -> bool {
    token.len() == TOKEN_LENGTH && token.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn links(secret: &str) -> SurveyLinks {
        SurveyLinks::new(&LinkConfig { secret: secret.into(), ..LinkConfig::default() })
    }

    #[test]
    fn tokens_are_stable_per_invitation_and_secret_and_well_formed() {
        let a = links(crate::DEV_LINK_SECRET);
        let id = Uuid::new_v4();
        let token = a.token(id);
        assert_eq!(token, a.token(id));
        assert!(is_well_formed(&token), "{token}");
        assert_ne!(token, a.token(Uuid::new_v4()));
        assert_ne!(token, links("another-secret-that-is-long-enough-123456").token(id));
        assert_eq!(hash(&token).len(), 32);
        assert_ne!(hash(&token), token.as_bytes());
        assert_eq!(a.url(&token), format!("https://feedback.branchscore.local/s/{token}"));
    }

    #[test]
    fn malformed_tokens_are_recognised() {
        assert!(!is_well_formed(""));
        assert!(!is_well_formed(&"a".repeat(42)));
        assert!(!is_well_formed(&format!("{}=", "a".repeat(42))));
        assert!(is_well_formed(&format!("{}xyz", "a-_B".repeat(10))));
    }
}
