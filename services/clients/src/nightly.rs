//! `branchscore serve` recomputes the scores every night at a local time of
//! the company's zone; a run already in progress elsewhere is left alone.
use crate::recompute::{Recompute, RunLock};
use branchscore_platform::Role;
use branchscore_platform::auth::TokenIssuer;
use branchscore_platform::client::CallCredentials;
use branchscore_platform::config::CompanyConfig;
use branchscore_platform::shutdown::CancellationToken;
use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

/// `"02:30"` -> 02:30; empty -> no nightly run.
pub fn parse_time(value: &str) -> anyhow::Result<Option<NaiveTime>> {
    if value.trim().is_empty() {
        return Ok(None);
    }
    NaiveTime::parse_from_str(value.trim(), "%H:%M").map(Some).map_err(|_| {
        anyhow::anyhow!("clients.recompute_at {value:?} is not a time like \"02:30\" (or empty to disable)")
    })
}

/// The first moment after `now` when the local clock of `zone` shows `at`
/// (on a day when `at` does not exist, e.g. in a spring-forward gap, the next day).
pub fn next_run(now: DateTime<Utc>, zone: Tz, at: NaiveTime) -> DateTime<Utc> {
    let mut day = now.with_timezone(&zone).date_naive();
    loop {
        if let Some(local) = zone.from_local_datetime(&day.and_time(at)).earliest() {
            let utc = local.with_timezone(&Utc);
            if utc > now {
                return utc;
            }
        }
        day = day.succ_opt().unwrap_or(day);
    }
}

/// How long a nightly run's token for the feedback service lives: longer
/// than any run, minted when the run starts.
const RUN_TOKEN_TTL: std::time::Duration = std::time::Duration::from_secs(3 * 3600);

/// A nightly run's own credentials for the feedback service, minted for that
/// run (a token minted at start-up would have expired by the next night).
/// `None` when the deployment cannot sign (RS256 without a signing key of
/// its own): nightly scores then leave satisfaction out.
fn run_credentials(issuer: Option<&TokenIssuer>) -> Option<CallCredentials> {
    let minted = issuer?
        .mint("clients-nightly", Role::Admin, &[], RUN_TOKEN_TTL)
        .and_then(|token| CallCredentials::bearer(&token));
    minted.inspect_err(|err| tracing::warn!(error = %err, "nightly run without its own token")).ok()
}

/// Runs the recompute every day at `at` until shutdown.
pub async fn schedule(
    recompute: Recompute,
    company: CompanyConfig,
    at: NaiveTime,
    issuer: Option<TokenIssuer>,
    shutdown: CancellationToken,
) {
    let Ok(zone) = company.zone() else { return };
    loop {
        let next = next_run(Utc::now(), zone, at);
        let wait = (next - Utc::now()).to_std().unwrap_or_default();
        tracing::info!(%next, "next nightly recompute");
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let Ok(today) = company.today() else { return };
        match RunLock::acquire(&recompute.pool).await {
            Ok(lock) => {
                let mut quiet = |_, _, _| {};
                let credentials = run_credentials(issuer.as_ref());
                if let Err(err) = recompute.run(lock, today, "nightly", credentials, &mut quiet).await {
                    tracing::error!(error = %err, "nightly recompute failed");
                }
            }
            Err(err) => tracing::info!(reason = %err, "nightly recompute skipped"),
        }
        // Never twice in the same minute, even if the run was instant.
        tokio::time::sleep(Duration::seconds(61).to_std().unwrap_or_default()).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    #[test]
    fn each_run_mints_its_own_token_when_the_deployment_can_sign() {
        use branchscore_platform::auth::{AuthConfig, Authenticator};
        let auth = AuthConfig::default();
        let issuer = TokenIssuer::for_deployment(&auth).expect("valid").expect("HS256 signs");
        assert!(run_credentials(Some(&issuer)).is_some());
        assert!(run_credentials(None).is_none());
        let token = issuer.mint("clients-nightly", Role::Admin, &[], RUN_TOKEN_TTL).expect("mint");
        assert_eq!(Authenticator::new(&auth).expect("verifier").verify(&token).expect("valid").role, Role::Admin);
    }

    #[test]
    fn next_run_is_the_next_local_time_in_the_company_zone() {
        let at = NaiveTime::from_hms_opt(2, 30, 0).expect("time");
        let warsaw: Tz = "Europe/Warsaw".parse().expect("zone");
        // 26 Nov, 00:00 UTC = 01:00 in Warsaw (CET): 02:30 local is 01:30 UTC the same day.
        assert_eq!(next_run(utc("2026-11-26T00:00:00Z"), warsaw, at), utc("2026-11-26T01:30:00Z"));
        // Just after it: the next day.
        assert_eq!(next_run(utc("2026-11-26T01:30:00Z"), warsaw, at), utc("2026-11-27T01:30:00Z"));
        // 29 March 2026: 02:00-03:00 does not exist in Warsaw, so 02:30 comes on the 30th (CEST, UTC+2).
        assert_eq!(next_run(utc("2026-03-28T02:00:00Z"), warsaw, at), utc("2026-03-30T00:30:00Z"));
    }

    #[test]
    fn times_parse_or_explain_themselves() {
        assert_eq!(parse_time("").expect("empty"), None);
        assert_eq!(parse_time("02:30").expect("time"), NaiveTime::from_hms_opt(2, 30, 0));
        assert!(parse_time("2.30am").expect_err("bad").to_string().contains("recompute_at"));
    }
}
