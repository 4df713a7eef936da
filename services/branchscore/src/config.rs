//! The whole configuration of one `branchscore` process: the platform
//! sections every service shares plus one section per service.
use branchscore_platform::auth::AuthConfig;
use branchscore_platform::config::{self, CompanyConfig, ConfigError, PeersConfig, RedisConfig};
use branchscore_platform::service::PlatformConfig;
use branchscore_platform::telemetry::TelemetryConfig;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// `branchscore.toml`; every key can also be set as `BRANCHSCORE_<SECTION>__<KEY>`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BranchscoreConfig {
    pub telemetry: TelemetryConfig,
    pub auth: AuthConfig,
    pub company: CompanyConfig,
    pub redis: RedisConfig,
    pub peers: PeersConfig,
    pub clients: branchscore_clients::Config,
    pub pipeline: branchscore_pipeline::Config,
    pub feedback: branchscore_feedback::Config,
    pub kpi: branchscore_kpi::Config,
    pub reporting: branchscore_reporting::Config,
    pub gateway: branchscore_gateway::Config,
}

impl BranchscoreConfig {
    /// Defaults, then `file`, then the environment; a bad value names its key.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let loaded: BranchscoreConfig = config::load(file)?;
        loaded.company.zone()?;
        Ok(loaded)
    }

    /// The sections every service reads.
    pub fn platform(&self) -> PlatformConfig {
        PlatformConfig {
            auth: self.auth.clone(),
            company: self.company.clone(),
            redis: self.redis.clone(),
            peers: self.peers.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_dump_and_load_back() {
        let dumped = config::dump(&BranchscoreConfig::default()).expect("dump");
        let dir = std::env::temp_dir().join(format!("bs-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("branchscore.toml");
        std::fs::write(&file, &dumped).expect("write");
        let loaded = BranchscoreConfig::load(Some(&file)).expect("load");
        assert_eq!(loaded.clients.server.listen, BranchscoreConfig::default().clients.server.listen);
        assert!(dumped.contains("[clients.database]"), "{dumped}");
    }

    #[test]
    fn unknown_keys_and_bad_zones_are_refused_with_their_name() {
        let dir = std::env::temp_dir().join(format!("bs-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let file = dir.join("typo.toml");
        std::fs::write(&file, "[clients]\nlisten_port = 1\n").expect("write");
        let err = BranchscoreConfig::load(Some(&file)).expect_err("unknown key");
        assert!(err.to_string().contains("listen_port"), "{err}");
        std::fs::write(&file, "[company]\ntime_zone = \"Mars/Olympus\"\n").expect("write");
        let err = BranchscoreConfig::load(Some(&file)).expect_err("bad zone");
        assert!(err.to_string().contains("Mars/Olympus"), "{err}");
    }
}
