//! What every branchscore service shares, so that no service copies it:
//! configuration, telemetry and metrics, the gRPC server and client setup,
//! authentication and branch scope, errors, Postgres and the score cache.

pub mod auth;
pub mod cache;
pub mod client;
pub mod coalesce;
pub mod config;
pub mod copy;
pub mod db;
pub mod deadline;
pub mod error;
pub mod io;
pub mod metrics;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod telemetry;
pub mod validate;

pub use auth::{Principal, Role};
pub use error::{AppError, AppResult};
