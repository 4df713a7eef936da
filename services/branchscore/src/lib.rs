//! The all-in-one `branchscore` binary: every service in one process, their
//! migrations, dev tokens and the demo.
pub mod config;
pub mod demo;
pub mod services;
