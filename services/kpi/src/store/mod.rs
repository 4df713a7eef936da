//! Postgres access of the KPI service: scorecard versions, sales plans and
//! computed periods with the facts they were computed from. Reads of period
//! lines take the caller's branch filter (`None` = the whole network).
mod periods;
mod plans;
mod scorecards;

pub use periods::*;
pub use plans::*;
pub use scorecards::*;

use branchscore_proto::common::v1::EmployeeRole;

/// Roles are stored by their proto name (`EMPLOYEE_ROLE_SALES`).
fn role_name(role: EmployeeRole) -> &'static str {
    role.as_str_name()
}

fn role_from_name(name: &str) -> sqlx::Result<EmployeeRole> {
    EmployeeRole::from_str_name(name).ok_or_else(|| sqlx::Error::Decode(format!("unknown role {name:?}").into()))
}
