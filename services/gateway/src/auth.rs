//! Who is calling, decided before a call is routed: a bearer JWT verified
//! here as the services verify it, or an API key exchanged for a short-lived
//! token of the key's principal, so the services see one kind of caller.
//!
//! Minting needs a signing key. Under HS256 the gateway has it (the shared
//! secret); a deployment that verifies RS256 tokens of an identity provider
//! signs with a key of its own (`auth.rs256_signing_key_pem`, its public key
//! listed beside the provider's). Without one, API keys are refused with a
//! message saying so.
use crate::{keys, store};
use branchscore_platform::auth::{Authenticator, TokenIssuer};
use branchscore_platform::{AppError, AppResult, Principal, Role};
use http::{HeaderMap, HeaderValue};
use sqlx::PgPool;
use std::time::Duration;

/// The header integrations send their API key in.
pub const API_KEY_HEADER: &str = "x-api-key";

/// A caller let in, and the `authorization` to forward on their behalf.
#[derive(Debug)]
pub struct Caller {
    pub principal: Principal,
    /// Replaces the incoming header when the caller came with an API key.
    pub minted_authorization: Option<HeaderValue>,
}

/// Authenticates calls at the edge.
#[derive(Debug)]
pub struct EdgeAuth {
    authenticator: Authenticator,
    /// `None` under RS256 without a signing key of the deployment's own.
    issuer: Option<TokenIssuer>,
    pool: PgPool,
    token_ttl: Duration,
}

impl EdgeAuth {
    /// `issuer`: `TokenIssuer::for_deployment` of the deployment's auth.
    pub fn new(authenticator: Authenticator, issuer: Option<TokenIssuer>, pool: PgPool, token_ttl: Duration) -> Self {
        EdgeAuth { authenticator, issuer, pool, token_ttl }
    }

    /// UNAUTHENTICATED unless the call carries exactly one valid credential.
    pub async fn authenticate(&self, headers: &HeaderMap) -> AppResult<Caller> {
        let Some(key) = headers.get(API_KEY_HEADER) else {
            let principal = self.authenticator.authenticate_headers(headers)?;
            return Ok(Caller { principal, minted_authorization: None });
        };
        if headers.contains_key(http::header::AUTHORIZATION) {
            return Err(AppError::unauthenticated("send either authorization or x-api-key, not both"));
        }
        let issuer = self.issuer.as_ref().ok_or_else(|| {
            AppError::unauthenticated(
                "API keys are not accepted here: tokens are verified with an RS256 public key and the gateway \
                 has no key to sign tokens for API key callers (auth.rs256_signing_key_pem)",
            )
        })?;
        let secret = key.to_str().map_err(|_| AppError::unauthenticated("x-api-key is not ASCII"))?;
        let row = store::key_of_secret(&self.pool, &keys::hash(secret.trim()))
            .await?
            .ok_or_else(|| AppError::unauthenticated("unknown, expired or revoked API key"))?;
        let role: Role = row.role.parse().map_err(|err: String| AppError::internal(anyhow::anyhow!(err)))?;
        let token = issuer.mint(&row.subject, role, &row.branch_ids, self.token_ttl).map_err(AppError::internal)?;
        let authorization = HeaderValue::try_from(format!("Bearer {token}")).map_err(AppError::internal)?;
        // Verified like any token, so the principal is exactly what the services will see.
        let principal = self.authenticator.verify(&token)?;
        Ok(Caller { principal, minted_authorization: Some(authorization) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchscore_platform::auth::AuthConfig;

    /// A public key only: what a deployment verifying an identity provider's tokens has.
    const PUBLIC_KEY: &str = "-----BEGIN PUBLIC KEY-----
MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAxcdy2jFfr4YtbgrMUzMU
ClfAKYqcbmKcQYqvjEDIvRntUhVwpTPK/oaezdqzU5Ru2CHVncNofXRu6B2LDHxw
liaUOYcMZBpKasQRwhkEiW7VSbs2SUMUKBqcp/7Yzd1+XFtnOxWFSQZqLVy50m3e
GdyKn5kJJak1SamMXArGXDmLIAnzIq/PkuHVxMcpqutqoPRGdygWw8eMNhA4DYAb
QgV5Z15Q2cfNZ5lMwSFp4vOdwWuPaDITB/BSCHzwjxTzDeOfBBpx0Agl5SUsDBVV
sJjIs6iDmwvmoKjOBtVOhGCBIds9hcI389pRimF6UP7Ql2TYl5HBW1oIkS1CI1bR
pwIDAQAB
-----END PUBLIC KEY-----";

    #[tokio::test]
    async fn without_a_signing_key_api_keys_are_refused_saying_why() {
        let config = AuthConfig { rs256_public_key_pem: PUBLIC_KEY.into(), ..AuthConfig::default() };
        let authenticator = Authenticator::new(&config).expect("RS256 verifier");
        // Never reached: the refusal comes before any lookup.
        let pool = PgPool::connect_lazy("postgres://nobody@127.0.0.1:1/none").expect("lazy pool");
        let issuer = TokenIssuer::for_deployment(&config).expect("valid");
        let auth = EdgeAuth::new(authenticator, issuer, pool, Duration::from_secs(60));
        let mut headers = HeaderMap::new();
        headers.insert(API_KEY_HEADER, HeaderValue::from_static("bsk_anything"));
        let refused = auth.authenticate(&headers).await.expect_err("no signing key");
        assert_eq!(refused.code, branchscore_platform::error::ErrorCode::Unauthenticated);
        assert!(refused.message.contains("RS256"), "{}", refused.message);
    }
}
