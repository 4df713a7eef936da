//! Postgres access of the feedback service. Reads take the caller's branch
//! filter (`None` = the whole network) so scope is enforced in SQL.
pub mod complaints;
pub mod invitations;
pub mod outbox;
pub mod quality;
pub mod responses;
pub mod stats;
pub mod surveys;
