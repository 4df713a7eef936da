//! Bearer JWT authentication and branch scope.
//!
//! Every RPC except health and reflection passes through [`Authenticator`]
//! (a tonic interceptor) which verifies the token and puts a [`Principal`] in
//! the request. Handlers then ask the principal for permission: by role
//! ([`Principal::require`]) and by branch ([`Principal::ensure_branch`],
//! [`Principal::branch_filter`]) so every query is restricted to the caller's
//! branches.
mod verified;

use crate::error::{AppError, AppResult};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tonic::Request;
use tonic::service::Interceptor;
use verified::VerifiedTokens;

/// Secret used when none is configured: only for local development and tests.
pub const DEV_HS256_SECRET: &str = "branchscore-dev-secret-do-not-use-in-production";
/// The `branches` claim value that means "every branch".
pub const ALL_BRANCHES: &str = "*";

/// What a caller is allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, network-wide.
    Admin,
    /// Head office analysts: read everything, approve bonuses, network-wide.
    HqAnalyst,
    /// Runs one or more branches: reads and writes their data.
    BranchManager,
    /// Sales staff at one or more branches.
    BranchStaff,
    /// An ERP system pushing master data and sales.
    ErpIntegration,
}

impl Role {
    pub const ALL: [Role; 5] =
        [Role::Admin, Role::HqAnalyst, Role::BranchManager, Role::BranchStaff, Role::ErpIntegration];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::HqAnalyst => "hq_analyst",
            Role::BranchManager => "branch_manager",
            Role::BranchStaff => "branch_staff",
            Role::ErpIntegration => "erp_integration",
        }
    }

    /// Head office roles always see the whole network.
    pub fn is_head_office(self) -> bool {
        matches!(self, Role::Admin | Role::HqAnalyst)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|role| role.as_str() == s).ok_or_else(|| {
            format!(
                "unknown role {s:?}; expected one of admin, hq_analyst, branch_manager, branch_staff, erp_integration"
            )
        })
    }
}

/// Which branches a principal may read and write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BranchScope {
    Network,
    Branches(BTreeSet<String>),
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    pub role: Role,
    pub scope: BranchScope,
}

impl Principal {
    /// The principal the interceptor attached to this request.
    pub fn of<T>(request: &Request<T>) -> AppResult<&Principal> {
        request.extensions().get::<Principal>().ok_or_else(|| AppError::unauthenticated("no authenticated principal"))
    }

    /// PERMISSION_DENIED unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> AppResult<()> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed = roles.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", ");
        Err(AppError::permission_denied(format!("role {} may not do this (allowed: {allowed})", self.role)))
    }

    pub fn can_access(&self, branch_id: &str) -> bool {
        match &self.scope {
            BranchScope::Network => true,
            BranchScope::Branches(branches) => branches.contains(branch_id),
        }
    }

    /// PERMISSION_DENIED when `branch_id` is outside the caller's branches.
    pub fn ensure_branch(&self, branch_id: &str) -> AppResult<()> {
        if self.can_access(branch_id) {
            Ok(())
        } else {
            Err(AppError::permission_denied(format!("branch {branch_id} is outside your branches")))
        }
    }

    /// The branch ids to restrict a query to, or `None` for the whole network.
    /// Pass it to SQL as `($1::text[] IS NULL OR branch_id = ANY($1))`.
    pub fn branch_filter(&self) -> Option<Vec<String>> {
        match &self.scope {
            BranchScope::Network => None,
            BranchScope::Branches(branches) => Some(branches.iter().cloned().collect()),
        }
    }
}

/// The claims of a branchscore token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    /// Branch ids, or `["*"]` for every branch.
    #[serde(default)]
    pub branches: Vec<String>,
    pub iss: String,
    pub aud: String,
    pub iat: u64,
    pub exp: u64,
}

impl Claims {
    fn into_principal(self) -> AppResult<Principal> {
        let network = self.role.is_head_office() || self.branches.iter().any(|b| b == ALL_BRANCHES);
        if network && !self.role.is_head_office() && self.role != Role::ErpIntegration {
            return Err(AppError::unauthenticated(format!("role {} cannot hold every branch", self.role)));
        }
        let scope = if network {
            BranchScope::Network
        } else if self.branches.is_empty() {
            return Err(AppError::unauthenticated(format!("a {} token must name its branches", self.role)));
        } else {
            BranchScope::Branches(self.branches.into_iter().collect())
        };
        Ok(Principal { subject: self.sub, role: self.role, scope })
    }
}

/// How tokens are verified.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 shared secret (development). Ignored when an RS256 key is set.
    pub hs256_secret: String,
    /// PEM of the RS256 public keys tokens are accepted from (production):
    /// the identity provider's, and this deployment's own when it signs
    /// tokens (several PEM blocks, one after the other).
    pub rs256_public_key_pem: String,
    /// PEM of the RS256 private key this deployment signs its own tokens
    /// with: the gateway's for API-key callers, the nightly recompute's. Its
    /// public key must be among `rs256_public_key_pem`. Empty: under RS256
    /// nothing here signs tokens (no API keys).
    pub rs256_signing_key_pem: String,
    pub issuer: String,
    pub audience: String,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            hs256_secret: DEV_HS256_SECRET.into(),
            rs256_public_key_pem: String::new(),
            rs256_signing_key_pem: String::new(),
            issuer: "branchscore".into(),
            audience: "branchscore".into(),
        }
    }
}

impl AuthConfig {
    /// Whether tokens are RS256 (an identity provider's) rather than HS256.
    pub fn is_rs256(&self) -> bool {
        !self.rs256_public_key_pem.trim().is_empty()
    }
}

/// Verifies bearer tokens; cheap to clone (one per service server).
#[derive(Clone)]
pub struct Authenticator {
    /// Any of them may have signed a token (RS256: one per PEM block).
    keys: Arc<[DecodingKey]>,
    validation: Arc<Validation>,
    verified: Arc<VerifiedTokens>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator").field("algorithms", &self.validation.algorithms).finish()
    }
}

impl Authenticator {
    pub fn new(config: &AuthConfig) -> anyhow::Result<Self> {
        let (keys, algorithm) = if config.is_rs256() {
            let keys = pem_blocks(&config.rs256_public_key_pem)
                .into_iter()
                .map(|pem| DecodingKey::from_rsa_pem(pem.as_bytes()))
                .collect::<Result<Vec<_>, _>>()?;
            (keys, Algorithm::RS256)
        } else if config.hs256_secret.len() >= 32 {
            (vec![DecodingKey::from_secret(config.hs256_secret.as_bytes())], Algorithm::HS256)
        } else {
            anyhow::bail!("auth.hs256_secret must be at least 32 bytes (or set auth.rs256_public_key_pem)");
        };
        let mut validation = Validation::new(algorithm);
        validation.set_issuer(&[&config.issuer]);
        validation.set_audience(&[&config.audience]);
        validation.leeway = 30;
        Ok(Authenticator { keys: keys.into(), validation: Arc::new(validation), verified: Arc::default() })
    }

    /// Verifies a raw token: signed by one of the keys, and valid.
    pub fn verify(&self, token: &str) -> AppResult<Principal> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(principal) = self.verified.get(token, now) {
            return Ok(principal);
        }
        let mut outcome = Err(jsonwebtoken::errors::ErrorKind::InvalidSignature.into());
        for key in self.keys.iter() {
            outcome = jsonwebtoken::decode::<Claims>(token, key, &self.validation);
            let wrong_key =
                matches!(&outcome, Err(err) if matches!(err.kind(), jsonwebtoken::errors::ErrorKind::InvalidSignature));
            if !wrong_key {
                break;
            }
        }
        let data = outcome.map_err(|err| AppError::unauthenticated(format!("invalid token: {err}")))?;
        let valid_until = data.claims.exp.saturating_add(self.validation.leeway);
        let principal = data.claims.into_principal()?;
        self.verified.insert(token, principal.clone(), valid_until, now);
        Ok(principal)
    }

    /// Verifies the `authorization: Bearer ...` metadata of a request.
    pub fn authenticate<T>(&self, request: &Request<T>) -> AppResult<Principal> {
        self.authenticate_headers(request.metadata().as_ref())
    }

    /// Verifies the `authorization: Bearer ...` header of an HTTP request
    /// (for layers that see calls before they are routed, like the gateway's).
    pub fn authenticate_headers(&self, headers: &http::HeaderMap) -> AppResult<Principal> {
        let header = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| AppError::unauthenticated("missing authorization metadata (Bearer token)"))?;
        let value = header.to_str().map_err(|_| AppError::unauthenticated("authorization is not ASCII"))?;
        let token = value
            .strip_prefix("Bearer ")
            .or_else(|| value.strip_prefix("bearer "))
            .ok_or_else(|| AppError::unauthenticated("authorization must be `Bearer <token>`"))?;
        self.verify(token.trim())
    }
}

impl Interceptor for Authenticator {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, tonic::Status> {
        let principal = self.authenticate(&request)?;
        tracing::Span::current().record("enduser.id", principal.subject.as_str());
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// The PEM blocks of `text` in order; the whole text when it has none (so
/// that the key parser names what is wrong with it).
fn pem_blocks(text: &str) -> Vec<&str> {
    const END: &str = "-----END ";
    let mut blocks = Vec::new();
    let mut rest = text;
    while let Some(begin) = rest.find("-----BEGIN ") {
        let block = &rest[begin..];
        let Some(end) = block.find(END) else { break };
        let Some(close) = block[end + END.len()..].find("-----") else { break };
        let len = end + END.len() + close + "-----".len();
        blocks.push(&block[..len]);
        rest = &block[len..];
    }
    if blocks.is_empty() {
        blocks.push(text);
    }
    blocks
}

/// Mints tokens the services accept: HS256 with the shared secret, or RS256
/// with the deployment's own signing key.
#[derive(Clone)]
pub struct TokenIssuer {
    key: Arc<EncodingKey>,
    algorithm: Algorithm,
    issuer: String,
    audience: String,
}

impl fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenIssuer").field("issuer", &self.issuer).finish()
    }
}

impl TokenIssuer {
    /// An HS256 issuer with the shared secret (development, tests, the demo).
    pub fn new(config: &AuthConfig) -> Self {
        TokenIssuer {
            key: Arc::new(EncodingKey::from_secret(config.hs256_secret.as_bytes())),
            algorithm: Algorithm::HS256,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        }
    }

    /// The issuer a deployment signs its own tokens with: RS256 with
    /// `rs256_signing_key_pem`, HS256 without RS256, `None` under RS256
    /// without a signing key. A signing key whose tokens the configured
    /// public keys would refuse is an error, found here rather than at the
    /// first call.
    pub fn for_deployment(config: &AuthConfig) -> anyhow::Result<Option<Self>> {
        if !config.is_rs256() {
            return Ok(Some(TokenIssuer::new(config)));
        }
        if config.rs256_signing_key_pem.trim().is_empty() {
            return Ok(None);
        }
        let key = EncodingKey::from_rsa_pem(config.rs256_signing_key_pem.as_bytes())
            .map_err(|err| anyhow::anyhow!("auth.rs256_signing_key_pem: {err}"))?;
        let issuer = TokenIssuer {
            key: Arc::new(key),
            algorithm: Algorithm::RS256,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        };
        let probe = issuer.mint("signing-key-check", Role::Admin, &[], Duration::from_secs(60))?;
        Authenticator::new(config)?.verify(&probe).map_err(|_| {
            anyhow::anyhow!(
                "the public key of auth.rs256_signing_key_pem is not among auth.rs256_public_key_pem: \
                 the services would refuse the tokens it signs"
            )
        })?;
        Ok(Some(issuer))
    }

    pub fn mint(&self, subject: &str, role: Role, branches: &[String], ttl: Duration) -> anyhow::Result<String> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: subject.into(),
            role,
            branches: branches.to_vec(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + ttl.as_secs(),
        };
        // Refuse to mint what no service would accept.
        claims.clone().into_principal().map_err(|err| anyhow::anyhow!("{}", err.message))?;
        Ok(jsonwebtoken::encode(&Header::new(self.algorithm), &claims, &self.key)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (TokenIssuer, Authenticator) {
        let config = AuthConfig::default();
        (TokenIssuer::new(&config), Authenticator::new(&config).expect("authenticator"))
    }

    #[test]
    fn staff_token_is_scoped_to_its_branches() {
        let (issuer, auth) = pair();
        let token = issuer.mint("anna", Role::BranchStaff, &["WAW".into()], Duration::from_secs(60)).expect("mint");
        let principal = auth.verify(&token).expect("valid");
        assert_eq!(principal.role, Role::BranchStaff);
        assert!(principal.can_access("WAW"));
        assert!(!principal.can_access("KRK"));
        assert!(principal.ensure_branch("KRK").is_err());
        assert_eq!(principal.branch_filter(), Some(vec!["WAW".to_string()]));
    }

    #[test]
    fn a_verified_token_vouches_for_itself_only() {
        let (issuer, auth) = pair();
        let waw = ["WAW".to_owned()];
        let token = issuer.mint("anna", Role::BranchStaff, &waw, Duration::from_secs(60)).expect("mint");
        let principal = auth.verify(&token).expect("valid");
        assert_eq!(auth.verify(&token).expect("verified before"), principal);
        // The same claims signed with another secret: its claims were seen, its signature was not.
        let elsewhere =
            AuthConfig { hs256_secret: "another-secret-of-at-least-32-bytes".into(), ..AuthConfig::default() };
        let forged = TokenIssuer::new(&elsewhere).mint("anna", Role::BranchStaff, &waw, Duration::from_secs(60));
        assert!(auth.verify(&forged.expect("mint")).is_err());
        let signature = token.rfind('.').expect("three parts") + 10;
        let mut tampered = token.into_bytes();
        tampered[signature] = if tampered[signature] == b'A' { b'B' } else { b'A' };
        assert!(auth.verify(&String::from_utf8(tampered).expect("ascii")).is_err());
    }

    #[test]
    fn head_office_sees_the_network_and_staff_cannot_claim_it() {
        let (issuer, auth) = pair();
        let hq = issuer.mint("hq", Role::HqAnalyst, &[], Duration::from_secs(60)).expect("mint");
        assert_eq!(auth.verify(&hq).expect("valid").branch_filter(), None);
        // The issuer refuses such tokens; one signed elsewhere is refused by the verifier.
        assert!(issuer.mint("x", Role::BranchStaff, &["*".into()], Duration::from_secs(60)).is_err());
        assert!(issuer.mint("x", Role::BranchManager, &[], Duration::from_secs(60)).is_err());
        let signed = |role: Role, branches: Vec<String>| {
            let now = jsonwebtoken::get_current_timestamp();
            let claims = Claims {
                sub: "x".into(),
                role,
                branches,
                iss: "branchscore".into(),
                aud: "branchscore".into(),
                iat: now,
                exp: now + 60,
            };
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &issuer.key).expect("encode")
        };
        assert!(auth.verify(&signed(Role::BranchStaff, vec!["*".into()])).is_err());
        assert!(auth.verify(&signed(Role::BranchManager, Vec::new())).is_err());
    }

    #[test]
    fn forged_and_expired_tokens_are_refused() {
        let (_, auth) = pair();
        let other = TokenIssuer::new(&AuthConfig {
            hs256_secret: "another-secret-that-is-long-enough-1234".into(),
            ..AuthConfig::default()
        });
        let forged = other.mint("eve", Role::Admin, &[], Duration::from_secs(60)).expect("mint");
        assert!(auth.verify(&forged).is_err());
        let (issuer, _) = pair();
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: "old".into(),
            role: Role::Admin,
            branches: vec![],
            iss: "branchscore".into(),
            aud: "branchscore".into(),
            iat: now - 7200,
            exp: now - 3600,
        };
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &issuer.key).expect("encode");
        assert!(auth.verify(&expired).is_err());
    }

    const IDP_KEY: &str = include_str!("../testdata/idp-rs256.key.pem");
    const IDP_PUBLIC: &str = include_str!("../testdata/idp-rs256.pub.pem");
    const OWN_KEY: &str = include_str!("../testdata/own-rs256.key.pem");
    const OWN_PUBLIC: &str = include_str!("../testdata/own-rs256.pub.pem");

    fn rs256(public: &str, signing: &str) -> AuthConfig {
        AuthConfig {
            rs256_public_key_pem: public.into(),
            rs256_signing_key_pem: signing.into(),
            ..AuthConfig::default()
        }
    }

    #[test]
    fn rs256_tokens_of_the_identity_provider_and_of_the_deployment_are_both_accepted() {
        let config = rs256(&format!("{IDP_PUBLIC}\n{OWN_PUBLIC}"), OWN_KEY);
        let auth = Authenticator::new(&config).expect("two public keys");
        let own = TokenIssuer::for_deployment(&config).expect("valid").expect("a signing key");
        let idp = TokenIssuer::for_deployment(&rs256(IDP_PUBLIC, IDP_KEY)).expect("valid").expect("a signing key");
        for issuer in [&own, &idp] {
            let token = issuer.mint("erp", Role::ErpIntegration, &["*".into()], Duration::from_secs(60)).expect("mint");
            assert_eq!(auth.verify(&token).expect("accepted").subject, "erp");
        }
        // HS256 tokens, even with the default secret, are not RS256 ones.
        let hs256 = TokenIssuer::new(&AuthConfig::default());
        let token = hs256.mint("eve", Role::Admin, &[], Duration::from_secs(60)).expect("mint");
        assert!(auth.verify(&token).is_err());
        // Expired beats "signed by another key": the key that signed it says so.
        let stale = Claims {
            sub: "old".into(),
            role: Role::Admin,
            branches: vec![],
            iss: "branchscore".into(),
            aud: "branchscore".into(),
            iat: 1,
            exp: 2,
        };
        let expired = jsonwebtoken::encode(&Header::new(Algorithm::RS256), &stale, &own.key).expect("encode");
        let refused = auth.verify(&expired).expect_err("expired");
        assert!(refused.message.contains("xpired"), "{}", refused.message);
    }

    #[test]
    fn a_signing_key_the_services_would_refuse_stops_the_start() {
        let err = TokenIssuer::for_deployment(&rs256(IDP_PUBLIC, OWN_KEY)).expect_err("not among the public keys");
        assert!(err.to_string().contains("not among auth.rs256_public_key_pem"), "{err}");
        assert!(TokenIssuer::for_deployment(&rs256(IDP_PUBLIC, "not a key")).is_err());
        assert!(TokenIssuer::for_deployment(&rs256(IDP_PUBLIC, "")).expect("valid").is_none());
        let own_only = Authenticator::new(&rs256(OWN_PUBLIC, "")).expect("one key");
        let idp = TokenIssuer::for_deployment(&rs256(IDP_PUBLIC, IDP_KEY)).expect("valid").expect("a signing key");
        let token = idp.mint("x", Role::Admin, &[], Duration::from_secs(60)).expect("mint");
        assert!(own_only.verify(&token).is_err(), "a key not configured signs nothing accepted");
    }

    #[test]
    fn pem_blocks_are_split_and_anything_else_is_passed_on_whole() {
        let two = format!("{IDP_PUBLIC}{OWN_PUBLIC}");
        assert_eq!(pem_blocks(&two), vec![IDP_PUBLIC.trim_end(), OWN_PUBLIC.trim_end()]);
        assert_eq!(pem_blocks("garbage"), vec!["garbage"]);
        assert!(Authenticator::new(&rs256("garbage", "")).is_err());
    }

    #[test]
    fn roles_parse_from_their_names() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
        }
        assert!("cashier".parse::<Role>().is_err());
    }
}
