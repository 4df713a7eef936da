//! One small set of error codes for every service, mapped to gRPC status.
//! Field problems travel as `google.rpc.BadRequest` details; internal detail
//! is logged with a reference id and never returned to the caller.
use std::time::Duration;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub type AppResult<T> = Result<T, AppError>;

/// The codes a caller can act on. Deliberately small: each maps to one gRPC code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// The request is malformed; see the field violations.
    InvalidArgument,
    /// The resource does not exist or is outside the caller's branches.
    NotFound,
    /// A resource with that identity already exists.
    AlreadyExists,
    /// The caller's role may not do this.
    PermissionDenied,
    /// No valid credentials.
    Unauthenticated,
    /// The system is not in a state that allows this (e.g. a rule is not met).
    FailedPrecondition,
    /// A concurrent change won; retrying may succeed.
    Aborted,
    /// A dependency is down; retry later.
    Unavailable,
    /// The caller sent too much too fast; retry after the hinted delay.
    ResourceExhausted,
    /// The deadline passed before the work finished.
    DeadlineExceeded,
    /// A bug or an unexpected failure; details are in the logs.
    Internal,
}

impl ErrorCode {
    pub fn grpc(self) -> Code {
        match self {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::Aborted => Code::Aborted,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::DeadlineExceeded => Code::DeadlineExceeded,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

/// A problem with one field of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldViolation {
    /// Path of the field, e.g. `clients[3].branch_id`.
    pub field: String,
    pub description: String,
}

/// An error as services produce it; converted to `Status` at the API edge.
#[derive(Debug, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct AppError {
    pub code: ErrorCode,
    pub message: String,
    pub violations: Vec<FieldViolation>,
    /// When a retry may succeed; sent as `google.rpc.RetryInfo`.
    pub retry_after: Option<Duration>,
    #[source]
    pub source: Option<anyhow::Error>,
}

impl AppError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        AppError { code, message: message.into(), violations: Vec::new(), retry_after: None, source: None }
    }

    pub fn invalid(violations: Vec<FieldViolation>) -> Self {
        let summary =
            violations.iter().map(|v| format!("{}: {}", v.field, v.description)).collect::<Vec<_>>().join("; ");
        AppError { violations, ..AppError::new(ErrorCode::InvalidArgument, summary) }
    }

    pub fn invalid_field(field: impl Into<String>, description: impl Into<String>) -> Self {
        AppError::invalid(vec![FieldViolation { field: field.into(), description: description.into() }])
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        AppError::new(ErrorCode::NotFound, format!("{} not found", what.into()))
    }

    pub fn permission_denied(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::PermissionDenied, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Unauthenticated, message)
    }

    pub fn failed_precondition(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::FailedPrecondition, message)
    }

    pub fn unavailable(message: impl Into<String>) -> Self {
        AppError::new(ErrorCode::Unavailable, message)
    }

    /// A limit was reached; the caller may retry after `retry_after`.
    pub fn resource_exhausted(message: impl Into<String>, retry_after: Duration) -> Self {
        AppError { retry_after: Some(retry_after), ..AppError::new(ErrorCode::ResourceExhausted, message) }
    }

    /// An unexpected failure: the cause is logged, the caller sees a reference.
    pub fn internal(source: impl Into<anyhow::Error>) -> Self {
        AppError { source: Some(source.into()), ..AppError::new(ErrorCode::Internal, "internal error") }
    }

    /// The same error for another caller of the same failed work (a
    /// coalesced read); the source travels as its text.
    pub fn copied(&self) -> AppError {
        AppError {
            code: self.code,
            message: self.message.clone(),
            violations: self.violations.clone(),
            retry_after: self.retry_after,
            source: self.source.as_ref().map(|source| anyhow::anyhow!("{source:#}")),
        }
    }
}

impl From<AppError> for Status {
    fn from(err: AppError) -> Status {
        let code = err.code.grpc();
        if err.code == ErrorCode::Internal || err.source.is_some() {
            let reference = uuid::Uuid::now_v7();
            tracing::error!(%reference, code = ?err.code, error = ?err.source, "{}", err.message);
            if err.code == ErrorCode::Internal {
                return Status::new(code, format!("internal error (reference {reference})"));
            }
        }
        if err.violations.is_empty() && err.retry_after.is_none() {
            return Status::new(code, err.message);
        }
        let mut details = ErrorDetails::new();
        for violation in &err.violations {
            details.add_bad_request_violation(violation.field.clone(), violation.description.clone());
        }
        if let Some(delay) = err.retry_after {
            details.set_retry_info(Some(delay));
        }
        Status::with_error_details(code, err.message, details)
    }
}

/// SQLSTATE classes mapped to what the caller can do about them.
impl From<sqlx::Error> for AppError {
    fn from(err: sqlx::Error) -> Self {
        let code = match &err {
            sqlx::Error::RowNotFound => ErrorCode::NotFound,
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => ErrorCode::Unavailable,
            sqlx::Error::Database(db) => match db.code().as_deref() {
                Some("23505") => ErrorCode::AlreadyExists,
                Some("23503") => ErrorCode::FailedPrecondition,
                Some(state) if state.starts_with("22") || state == "23502" || state == "23514" => {
                    ErrorCode::InvalidArgument
                }
                Some("40001" | "40P01") => ErrorCode::Aborted,
                Some("57014") => ErrorCode::DeadlineExceeded,
                Some(state) if state.starts_with("08") || state == "53300" || state == "57P01" => {
                    ErrorCode::Unavailable
                }
                _ => ErrorCode::Internal,
            },
            _ => ErrorCode::Internal,
        };
        let message = match code {
            ErrorCode::AlreadyExists => "already exists",
            ErrorCode::FailedPrecondition => "a referenced record does not exist",
            ErrorCode::InvalidArgument => "a value is out of range",
            ErrorCode::Aborted => "a concurrent change won; retry",
            ErrorCode::DeadlineExceeded => "the database query was cancelled",
            ErrorCode::Unavailable => "the database is unavailable",
            ErrorCode::NotFound => "not found",
            _ => "internal error",
        };
        AppError { source: Some(err.into()), ..AppError::new(code, message) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_violations_travel_as_bad_request_details() {
        let status: Status = AppError::invalid_field("clients[0].id", "must not be empty").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let bad_request = details.bad_request().expect("bad request details");
        assert_eq!(bad_request.field_violations[0].field, "clients[0].id");
        assert_eq!(bad_request.field_violations[0].description, "must not be empty");
    }

    #[test]
    fn internal_detail_is_not_returned() {
        let status: Status = AppError::internal(anyhow::anyhow!("password=hunter2 leaked")).into();
        assert_eq!(status.code(), Code::Internal);
        assert!(!status.message().contains("hunter2"));
        assert!(status.message().contains("reference"));
    }

    #[test]
    fn exhausted_limits_carry_a_retry_hint() {
        let status: Status = AppError::resource_exhausted("slow down", Duration::from_millis(250)).into();
        assert_eq!(status.code(), Code::ResourceExhausted);
        let retry = status.get_error_details().retry_info().cloned().expect("retry info");
        assert_eq!(retry.retry_delay, Some(Duration::from_millis(250)));
    }

    #[test]
    fn a_copy_keeps_what_the_caller_sees_and_the_cause_as_text() {
        let original =
            AppError { retry_after: Some(Duration::from_secs(1)), ..AppError::from(sqlx::Error::PoolTimedOut) };
        let copy = original.copied();
        assert_eq!(
            (copy.code, &copy.message, copy.retry_after),
            (original.code, &original.message, original.retry_after)
        );
        assert_eq!(copy.source.map(|s| s.to_string()), original.source.map(|s| format!("{s:#}")));
    }

    #[test]
    fn pool_timeout_is_unavailable() {
        let err: AppError = sqlx::Error::PoolTimedOut.into();
        assert_eq!(err.code, ErrorCode::Unavailable);
    }
}
