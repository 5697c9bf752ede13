//! Typed configuration, read once from the environment (Lambda) or the shell (replay).
//!
//! Every variable has a default that matches the seed systems, so a replay on a laptop needs
//! none of them. Each reaction reads its own (`handlers::reactions`); the batch engine's are
//! read here. `docs/configuration.md` lists them all, and a test holds it to what is read.

use std::collections::BTreeSet;
use std::time::Duration;

use handlers::reactions::ReactionsConfig;
use handlers::settings::Settings;

pub use handlers::settings::ConfigError;

use crate::batch::idempotency::IdempotencyConfig;
use crate::batch::DEFAULT_MAX_CONCURRENCY;

#[derive(Debug, Clone)]
pub struct Config {
    pub reactions: ReactionsConfig,
    pub idempotency: IdempotencyConfig,
    pub parking: ParkingConfig,
    /// Lanes of a batch window that run at once (`MAX_CONCURRENCY`; 1: every record in
    /// stream order).
    pub max_concurrency: usize,
    /// Tables configured under the application's names: (that name, the seed table it stands
    /// for, whose key schema the embedded state keeps for it).
    pub renamed_tables: Vec<(String, String)>,
    /// Every table the reactions read or write (whose key schema a replay must know).
    pub tables_used: Vec<String>,
}

/// Where the SDK adapters park a record no retry can fix.
#[derive(Debug, Clone)]
pub struct ParkingConfig {
    /// The failed-records queue (`PARKING_QUEUE_URL`); None: no parking, such a record stops
    /// its batch.
    pub queue_url: Option<String>,
    /// Where a record too large for a queue message goes, under `parked/`.
    pub bucket: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Build from any lookup (tests pass a map instead of touching the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Self::read(&Settings::new(&lookup))
    }

    /// The names of every variable the configuration reads.
    pub fn variable_names() -> Result<BTreeSet<String>, ConfigError> {
        let settings = Settings::new(&|_| None);
        Self::read(&settings)?;
        Ok(settings.names_read())
    }

    fn read(s: &Settings) -> Result<Config, ConfigError> {
        Ok(Config {
            reactions: ReactionsConfig::from_settings(s)?,
            idempotency: IdempotencyConfig {
                table: s.table("IDEMPOTENCY_TABLE"),
                ttl_seconds: s.count("IDEMPOTENCY_TTL_SECONDS", 86_400)?,
                default_in_progress: Duration::from_secs(
                    s.count("IDEMPOTENCY_IN_PROGRESS_SECONDS", 60)?
                        .unsigned_abs(),
                ),
                completion_notes: true,
            },
            max_concurrency: usize::try_from(s.count(
                "MAX_CONCURRENCY",
                i64::try_from(DEFAULT_MAX_CONCURRENCY).unwrap_or(16),
            )?)
            .unwrap_or(1),
            parking: ParkingConfig {
                queue_url: Some(s.text("PARKING_QUEUE_URL", ""))
                    .filter(|url| !url.trim().is_empty()),
                bucket: s.text(
                    "PARKING_BUCKET",
                    &s.text("DOCUMENTS_BUCKET", "aws-cost-estimation-documents"),
                ),
            },
            renamed_tables: s.renamed_tables(),
            tables_used: s.tables_used(),
        })
    }
}

#[cfg(test)]
mod tests {
    use handlers::settings::COST_PLATFORM_TABLE;

    use super::*;

    #[test]
    fn defaults_match_the_seed_tables() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.reactions.audit.audit_table, COST_PLATFORM_TABLE);
        assert_eq!(
            config.reactions.audit.audited_tables,
            vec![COST_PLATFORM_TABLE]
        );
        assert_eq!(
            config.idempotency.table,
            handlers::settings::IDEMPOTENCY_TABLE
        );
        assert_eq!(config.idempotency.ttl_seconds, 86_400);
    }

    #[test]
    fn a_bad_number_names_the_variable() {
        let err =
            Config::from_lookup(|n| (n == "AUDIT_SHARDS").then(|| "zero".to_string())).unwrap_err();
        assert!(err.to_string().contains("AUDIT_SHARDS"), "{err}");
    }
}
