//! Tokens already verified, so that a caller's every call does not pay for
//! the signature check and the claims parse again: about 8 us per call with
//! HS256, several times that with an identity provider's RS256 keys, and
//! paid by the gateway and again by the service behind it.
//!
//! The key is the whole token, so a hit is the very token that was verified,
//! and it is served only until it expires, as a fresh check would decide.
//! Refused tokens are not kept.
use crate::auth::Principal;
use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

/// Beyond this many tokens the expired ones are dropped, and if that is not
/// enough, all of them (each is verified again on its next call).
const MAX_TOKENS: usize = 10_000;

#[derive(Debug, Default)]
pub(super) struct VerifiedTokens {
    tokens: RwLock<HashMap<Box<str>, Verified>>,
}

#[derive(Debug)]
struct Verified {
    principal: Principal,
    /// Unix seconds: the token's `exp` plus the leeway the check allows.
    valid_until: u64,
}

impl VerifiedTokens {
    /// The principal of `token` if it was verified and is still valid at `now` (Unix seconds).
    pub(super) fn get(&self, token: &str, now: u64) -> Option<Principal> {
        let tokens = self.tokens.read().unwrap_or_else(PoisonError::into_inner);
        tokens.get(token).filter(|verified| now <= verified.valid_until).map(|verified| verified.principal.clone())
    }

    /// Keeps a verified token's principal until `valid_until` (Unix seconds).
    pub(super) fn insert(&self, token: &str, principal: Principal, valid_until: u64, now: u64) {
        let mut tokens = self.tokens.write().unwrap_or_else(PoisonError::into_inner);
        if tokens.len() >= MAX_TOKENS && !tokens.contains_key(token) {
            tokens.retain(|_, verified| now <= verified.valid_until);
            if tokens.len() >= MAX_TOKENS {
                tokens.clear();
            }
        }
        tokens.insert(token.into(), Verified { principal, valid_until });
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.tokens.read().unwrap_or_else(PoisonError::into_inner).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{BranchScope, Role};

    fn analyst() -> Principal {
        Principal { subject: "hq".into(), role: Role::HqAnalyst, scope: BranchScope::Network }
    }

    #[test]
    fn a_token_is_served_until_it_expires_and_only_itself() {
        let verified = VerifiedTokens::default();
        verified.insert("a.b.c", analyst(), 1_000, 900);
        assert_eq!(verified.get("a.b.c", 900), Some(analyst()));
        assert_eq!(verified.get("a.b.c", 1_000), Some(analyst()));
        assert_eq!(verified.get("a.b.c", 1_001), None, "expired");
        assert_eq!(verified.get("a.b.d", 900), None, "another signature");
        assert_eq!(verified.get("a.b.", 900), None, "a prefix");
    }

    #[test]
    fn a_full_cache_drops_expired_tokens_first_and_stays_bounded() {
        let verified = VerifiedTokens::default();
        for token in 0..MAX_TOKENS - 1 {
            verified.insert(&format!("expiring-{token}"), analyst(), 100, 0);
        }
        verified.insert("lasting", analyst(), 10_000, 0);
        assert_eq!(verified.len(), MAX_TOKENS);
        // At 200 every other token has expired: room is made by dropping them.
        verified.insert("new", analyst(), 10_000, 200);
        assert_eq!(verified.len(), 2);
        assert!(verified.get("lasting", 200).is_some());
        // Full of valid tokens: it starts over rather than grow.
        for token in 0..MAX_TOKENS {
            verified.insert(&format!("valid-{token}"), analyst(), 10_000, 200);
        }
        assert!(verified.len() <= MAX_TOKENS);
    }
}
