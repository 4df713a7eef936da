//! The `branchscore.gateway.v1.GatewayService` implementation: the API keys
//! of integrations, managed by admins. Validate, authorise, call the store,
//! map errors.
use crate::keys::IssuedSecret;
use crate::store::{self, KeyRow, NewKey, Rotation, SecretRow};
use branchscore_platform::auth::ALL_BRANCHES;
use branchscore_platform::error::ErrorCode;
use branchscore_platform::validate::Violations;
use branchscore_platform::{AppError, AppResult, Principal, Role};
use branchscore_proto::convert::{timestamp, to_datetime};
use branchscore_proto::gateway::v1::gateway_service_server::GatewayService;
use branchscore_proto::gateway::v1::{
    ApiKey, ApiKeySecret, CreateApiKeyRequest, CreateApiKeyResponse, ListApiKeysRequest, ListApiKeysResponse,
    RevokeApiKeyRequest, RevokeApiKeyResponse, Role as KeyRole, RotateApiKeyRequest, RotateApiKeyResponse,
};
use chrono::{Days, Utc};
use sqlx::PgPool;
use tonic::{Request, Response, Status};

const ADMINS: &[Role] = &[Role::Admin];
/// How long a rotation may keep the earlier secrets working.
const MAX_ROTATION_GRACE: Days = Days::new(90);
const DEFAULT_PAGE_SIZE: usize = 100;
const MAX_PAGE_SIZE: i32 = 1000;
const ROLES: [(Role, KeyRole); 5] = [
    (Role::Admin, KeyRole::Admin),
    (Role::HqAnalyst, KeyRole::HqAnalyst),
    (Role::BranchManager, KeyRole::BranchManager),
    (Role::BranchStaff, KeyRole::BranchStaff),
    (Role::ErpIntegration, KeyRole::ErpIntegration),
];

/// The gateway's own API.
#[derive(Debug, Clone)]
pub struct GatewayApi {
    pool: PgPool,
}

impl GatewayApi {
    pub fn new(pool: PgPool) -> Self {
        GatewayApi { pool }
    }

    async fn create(&self, created_by: &str, body: &CreateApiKeyRequest) -> AppResult<CreateApiKeyResponse> {
        let (role, branch_ids) = validate_new_key(body)?;
        let new = NewKey {
            id: &uuid::Uuid::now_v7().to_string(),
            request_id: &body.request_id,
            created_by,
            display_name: &body.display_name,
            subject: &body.subject,
            role: role.as_str(),
            branch_ids: &branch_ids,
        };
        if let Some(row) = store::key_by_request(&self.pool, created_by, &body.request_id).await? {
            return self.created_before(row, &new).await;
        }
        let secret = IssuedSecret::generate();
        if !store::insert_key(&self.pool, &new, &secret).await? {
            // The same request raced this one and won.
            let row = store::key_by_request(&self.pool, created_by, &body.request_id).await?.ok_or_else(|| {
                AppError::internal(anyhow::anyhow!("the key of request {} vanished", body.request_id))
            })?;
            return self.created_before(row, &new).await;
        }
        tracing::info!(api_key = %new.id, subject = %new.subject, %role, "API key created");
        let row = self.key(new.id).await?;
        Ok(CreateApiKeyResponse { api_key: Some(self.with_secrets(row).await?), secret: secret.secret })
    }

    /// The answer to a retried create: the key without its secret, which was
    /// shown to the first call and is not kept.
    async fn created_before(&self, row: KeyRow, asked: &NewKey<'_>) -> AppResult<CreateApiKeyResponse> {
        let same = row.display_name == asked.display_name
            && row.subject == asked.subject
            && row.role == asked.role
            && row.branch_ids == asked.branch_ids;
        if !same {
            return Err(AppError::new(ErrorCode::AlreadyExists, "request_id was used by another request"));
        }
        Ok(CreateApiKeyResponse { api_key: Some(self.with_secrets(row).await?), secret: String::new() })
    }

    async fn list(&self, body: &ListApiKeysRequest) -> AppResult<ListApiKeysResponse> {
        let mut v = Violations::new();
        v.check((0..=MAX_PAGE_SIZE).contains(&body.page_size), || "page_size".into(), "must be 0-1000");
        v.finish()?;
        let page_size = usize::try_from(body.page_size).ok().filter(|size| *size > 0).unwrap_or(DEFAULT_PAGE_SIZE);
        // One more than asked tells whether another page follows.
        let limit = i64::try_from(page_size + 1).unwrap_or(i64::MAX);
        let mut rows = store::keys(&self.pool, body.show_revoked, &body.page_token, limit).await?;
        let next_page_token = if rows.len() > page_size {
            rows.truncate(page_size);
            rows.last().map(|row| row.id.clone()).unwrap_or_default()
        } else {
            String::new()
        };
        Ok(ListApiKeysResponse { api_keys: self.with_secrets_all(rows).await?, next_page_token })
    }

    async fn rotate(&self, body: &RotateApiKeyRequest) -> AppResult<RotateApiKeyResponse> {
        let now = Utc::now();
        let previous_expire_at = match &body.previous_secret_expire_time {
            Some(at) => to_datetime(at),
            None => Some(now),
        };
        let mut v = Violations::new();
        v.id(|| "api_key_id".into(), &body.api_key_id);
        v.check(
            previous_expire_at.is_some_and(|at| Some(at) <= now.checked_add_days(MAX_ROTATION_GRACE)),
            || "previous_secret_expire_time".into(),
            "must be a valid time at most 90 days ahead",
        );
        v.finish()?;
        let secret = IssuedSecret::generate();
        let id = &body.api_key_id;
        match store::rotate(&self.pool, id, &secret, previous_expire_at.unwrap_or(now)).await? {
            Rotation::Rotated => {}
            Rotation::Revoked => return Err(AppError::failed_precondition(format!("API key {id} is revoked"))),
            Rotation::NoSuchKey => return Err(AppError::not_found(format!("API key {id}"))),
        }
        tracing::info!(api_key = %id, "API key rotated");
        let row = self.key(id).await?;
        Ok(RotateApiKeyResponse { api_key: Some(self.with_secrets(row).await?), secret: secret.secret })
    }

    async fn revoke(&self, body: &RevokeApiKeyRequest) -> AppResult<RevokeApiKeyResponse> {
        let id = &body.api_key_id;
        let row = store::revoke(&self.pool, id).await?.ok_or_else(|| AppError::not_found(format!("API key {id}")))?;
        tracing::info!(api_key = %id, "API key revoked");
        Ok(RevokeApiKeyResponse { api_key: Some(self.with_secrets(row).await?) })
    }

    async fn key(&self, id: &str) -> AppResult<KeyRow> {
        store::key(&self.pool, id).await?.ok_or_else(|| AppError::not_found(format!("API key {id}")))
    }

    async fn with_secrets(&self, row: KeyRow) -> AppResult<ApiKey> {
        let secrets = store::live_secrets(&self.pool, std::slice::from_ref(&row.id)).await?;
        Ok(api_key(&row, &secrets))
    }

    async fn with_secrets_all(&self, rows: Vec<KeyRow>) -> AppResult<Vec<ApiKey>> {
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let secrets = store::live_secrets(&self.pool, &ids).await?;
        Ok(rows.iter().map(|row| api_key(row, &secrets)).collect())
    }
}

#[tonic::async_trait]
impl GatewayService for GatewayApi {
    async fn create_api_key(
        &self,
        request: Request<CreateApiKeyRequest>,
    ) -> Result<Response<CreateApiKeyResponse>, Status> {
        let principal = Principal::of(&request)?;
        principal.require(ADMINS)?;
        Ok(Response::new(self.create(&principal.subject, request.get_ref()).await?))
    }

    async fn list_api_keys(
        &self,
        request: Request<ListApiKeysRequest>,
    ) -> Result<Response<ListApiKeysResponse>, Status> {
        Principal::of(&request)?.require(ADMINS)?;
        Ok(Response::new(self.list(request.get_ref()).await?))
    }

    async fn rotate_api_key(
        &self,
        request: Request<RotateApiKeyRequest>,
    ) -> Result<Response<RotateApiKeyResponse>, Status> {
        Principal::of(&request)?.require(ADMINS)?;
        Ok(Response::new(self.rotate(request.get_ref()).await?))
    }

    async fn revoke_api_key(
        &self,
        request: Request<RevokeApiKeyRequest>,
    ) -> Result<Response<RevokeApiKeyResponse>, Status> {
        Principal::of(&request)?.require(ADMINS)?;
        Ok(Response::new(self.revoke(request.get_ref()).await?))
    }
}

/// The key's role and sorted branches, checked as the services check a
/// token's claims, so a key always yields a token they accept.
fn validate_new_key(body: &CreateApiKeyRequest) -> AppResult<(Role, Vec<String>)> {
    let mut v = Violations::new();
    v.id(|| "request_id".into(), &body.request_id);
    v.text(|| "display_name".into(), &body.display_name, 200);
    v.id(|| "subject".into(), &body.subject);
    for (index, branch) in body.branch_ids.iter().enumerate() {
        if branch != ALL_BRANCHES {
            v.id(|| format!("branch_ids[{index}]"), branch);
        }
    }
    let mut branch_ids = body.branch_ids.clone();
    branch_ids.sort();
    branch_ids.dedup();
    let network = branch_ids.iter().any(|branch| branch == ALL_BRANCHES);
    let role = platform_role(body.role());
    let branches = || "branch_ids".to_owned();
    match role {
        None => v.add("role", "is required"),
        Some(role) if role.is_head_office() => {
            v.check(branch_ids.is_empty(), branches, "must be empty: head office roles see the whole network")
        }
        Some(Role::ErpIntegration) if network => {
            v.check(branch_ids.len() == 1, branches, "\"*\" (every branch) must stand alone")
        }
        Some(_) if network => v.add(branches(), "only erp_integration may hold every branch (\"*\")"),
        Some(_) => v.check(!branch_ids.is_empty(), branches, "must name at least one branch"),
    }
    v.finish()?;
    let role = role.ok_or_else(|| AppError::invalid_field("role", "is required"))?;
    Ok((role, branch_ids))
}

fn platform_role(role: KeyRole) -> Option<Role> {
    ROLES.iter().find(|(_, wire)| *wire == role).map(|(role, _)| *role)
}

fn wire_role(name: &str) -> KeyRole {
    ROLES.iter().find(|(role, _)| role.as_str() == name).map_or(KeyRole::Unspecified, |(_, wire)| *wire)
}

fn api_key(row: &KeyRow, secrets: &[SecretRow]) -> ApiKey {
    ApiKey {
        id: row.id.clone(),
        display_name: row.display_name.clone(),
        subject: row.subject.clone(),
        role: wire_role(&row.role) as i32,
        branch_ids: row.branch_ids.clone(),
        create_time: Some(timestamp(row.created_at)),
        created_by: row.created_by.clone(),
        revoke_time: row.revoked_at.map(timestamp),
        secrets: secrets
            .iter()
            .filter(|secret| secret.api_key_id == row.id)
            .map(|secret| ApiKeySecret {
                hint: secret.hint.clone(),
                create_time: Some(timestamp(secret.created_at)),
                expire_time: secret.expires_at.map(timestamp),
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(role: KeyRole, branches: &[&str]) -> CreateApiKeyRequest {
        CreateApiKeyRequest {
            request_id: "r-1".into(),
            display_name: "ERP production".into(),
            subject: "erp-main".into(),
            role: role as i32,
            branch_ids: branches.iter().map(|branch| branch.to_string()).collect(),
        }
    }

    fn fields(result: AppResult<(Role, Vec<String>)>) -> Vec<String> {
        result.expect_err("invalid").violations.into_iter().map(|violation| violation.field).collect()
    }

    #[test]
    fn keys_carry_principals_the_services_accept() {
        let (role, branches) = validate_new_key(&request(KeyRole::BranchStaff, &["WAW", "KRK", "WAW"])).expect("valid");
        assert_eq!((role, branches), (Role::BranchStaff, vec!["KRK".to_string(), "WAW".to_string()]));
        assert!(validate_new_key(&request(KeyRole::ErpIntegration, &["*"])).is_ok());
        assert!(validate_new_key(&request(KeyRole::HqAnalyst, &[])).is_ok());
        assert_eq!(fields(validate_new_key(&request(KeyRole::Unspecified, &["WAW"]))), ["role"]);
        assert_eq!(fields(validate_new_key(&request(KeyRole::BranchStaff, &["*"]))), ["branch_ids"]);
        assert_eq!(fields(validate_new_key(&request(KeyRole::BranchManager, &[]))), ["branch_ids"]);
        assert_eq!(fields(validate_new_key(&request(KeyRole::Admin, &["WAW"]))), ["branch_ids"]);
        assert_eq!(fields(validate_new_key(&request(KeyRole::ErpIntegration, &["*", "WAW"]))), ["branch_ids"]);
        assert_eq!(fields(validate_new_key(&request(KeyRole::BranchStaff, &["no spaces"]))), ["branch_ids[0]"]);
    }

    #[test]
    fn every_role_crosses_the_wire_both_ways() {
        for role in Role::ALL {
            assert_eq!(platform_role(wire_role(role.as_str())), Some(role));
        }
        assert_eq!(wire_role("cashier"), KeyRole::Unspecified);
    }
}
