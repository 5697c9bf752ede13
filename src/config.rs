//! Typed configuration, read once from the environment (Lambda) or the shell (replay).
//!
//! Every variable has a default that matches the seed systems, so a replay on a laptop needs
//! none of them. The README lists them all.

use std::time::Duration;

use handlers::acs::ThreadsConfig;
use handlers::audit::AuditConfig;
use handlers::bookings::{BookingMailConfig, System};
use handlers::cost::model::BusinessRules;
use handlers::cost::proposal::ProposalConfig;
use handlers::cost::totals::TotalsConfig;
use handlers::mail::MailConfig;
use handlers::marketplace::ratings::RatingsConfig;
use handlers::pilotforce::AssetsConfig;
use rust_decimal::Decimal;
use thiserror::Error;

use crate::idempotency::IdempotencyConfig;

pub const COST_PLATFORM_TABLE: &str = "aws-cost-platform-enhanced";
pub const IDEMPOTENCY_TABLE: &str = "marketplace-dev-idempotency-table";

#[derive(Debug, Error)]
#[error("environment variable {name}={value:?} is not valid: {expected}")]
pub struct ConfigError {
    pub name: &'static str,
    pub value: String,
    pub expected: &'static str,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub audit: AuditConfig,
    pub idempotency: IdempotencyConfig,
    pub totals: TotalsConfig,
    pub proposals: ProposalConfig,
    pub ratings: RatingsConfig,
    pub marketplace_bookings: BookingMailConfig,
    pub pilotforce_bookings: BookingMailConfig,
    pub assets: AssetsConfig,
    pub threads: ThreadsConfig,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::from_lookup(|name| std::env::var(name).ok())
    }

    /// Build from any lookup (tests pass a map instead of touching the process environment).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let text = |name: &str, default: &str| lookup(name).unwrap_or_else(|| default.to_string());
        let number = |name: &'static str, default: i64, min: i64| -> Result<i64, ConfigError> {
            match lookup(name) {
                None => Ok(default),
                Some(value) => value
                    .trim()
                    .parse::<i64>()
                    .ok()
                    .filter(|n| *n >= min)
                    .ok_or(ConfigError {
                        name,
                        value,
                        expected: "a whole number at least 1",
                    }),
            }
        };
        let flag = |name: &'static str, default: bool| -> Result<bool, ConfigError> {
            match lookup(name).map(|v| v.trim().to_ascii_lowercase()) {
                None => Ok(default),
                Some(v) if ["true", "1", "yes", "on"].contains(&v.as_str()) => Ok(true),
                Some(v) if ["false", "0", "no", "off"].contains(&v.as_str()) => Ok(false),
                Some(value) => Err(ConfigError {
                    name,
                    value,
                    expected: "true or false",
                }),
            }
        };
        let decimal = |name: &'static str, default: &str| -> Result<Decimal, ConfigError> {
            let value = text(name, default);
            value
                .trim()
                .parse::<Decimal>()
                .ok()
                .filter(|d| !d.is_sign_negative())
                .ok_or(ConfigError {
                    name,
                    value,
                    expected: "a decimal number, 0 or more",
                })
        };
        let list = |name: &str, default: &str| -> Vec<String> {
            text(name, default)
                .split(',')
                .map(str::trim)
                .filter(|t| !t.is_empty())
                .map(str::to_string)
                .collect()
        };
        let idempotency_table = text("IDEMPOTENCY_TABLE", IDEMPOTENCY_TABLE);
        let sessions_table = text("ACS_SESSIONS_TABLE", "acsd2p-dev-Sessions");
        let entity_names = list("AUDIT_ENTITY_NAMES", &format!("{sessions_table}=Session"))
            .into_iter()
            .filter_map(|pair| {
                pair.split_once('=')
                    .map(|(t, e)| (t.trim().to_string(), e.trim().to_string()))
            })
            .collect();
        let cost_table = text("COST_TABLE", COST_PLATFORM_TABLE);
        let default_rules = BusinessRules {
            buffer_percentage: decimal("COST_BUFFER_PERCENT", "10")?,
            volume_discounts: flag("COST_VOLUME_DISCOUNTS", true)?,
            support_plan_included: flag("COST_SUPPORT_PLAN", true)?,
        };
        let default_currency = text("COST_CURRENCY", "USD");
        let default_region = text("COST_REGION", "us-east-1");
        let audited_tables = list("AUDITED_TABLES", COST_PLATFORM_TABLE);
        let mail = MailConfig {
            from: text("MAIL_FROM", "notifications@sagesoft.com"),
            sender_name: text("MAIL_SENDER_NAME", "AWS Cost Estimation Platform"),
            link_expiry: Duration::from_secs(
                number("PROPOSAL_LINK_EXPIRY_SECONDS", 604_800, 1)?.unsigned_abs(),
            ),
        };
        Ok(Config {
            audit: AuditConfig {
                audited_tables,
                audit_table: text("AUDIT_TABLE", COST_PLATFORM_TABLE),
                excluded_tables: vec![idempotency_table.clone()],
                shards: u32::try_from(number("AUDIT_SHARDS", 10, 1)?).unwrap_or(u32::MAX),
                retention_days: number("AUDIT_RETENTION_DAYS", 365, 1)?,
                expiry_only_tables: list("AUDIT_EXPIRY_ONLY_TABLES", &sessions_table),
                entity_names,
            },
            idempotency: IdempotencyConfig {
                table: idempotency_table,
                ttl_seconds: number("IDEMPOTENCY_TTL_SECONDS", 86_400, 1)?,
                default_in_progress: Duration::from_secs(
                    number("IDEMPOTENCY_IN_PROGRESS_SECONDS", 60, 1)?.unsigned_abs(),
                ),
                completion_markers: true,
            },
            proposals: ProposalConfig {
                table: cost_table.clone(),
                bucket: text("DOCUMENTS_BUCKET", "aws-cost-estimation-documents"),
                document_lifetime: chrono::Duration::days(number(
                    "DOCUMENT_LIFETIME_DAYS",
                    182,
                    1,
                )?),
                default_rules: default_rules.clone(),
                default_currency: default_currency.clone(),
                default_region: default_region.clone(),
                mail: mail.clone(),
            },
            ratings: RatingsConfig {
                reviews_table: text("MARKETPLACE_REVIEWS_TABLE", "marketplace-dev-reviews-table"),
                providers_table: text(
                    "MARKETPLACE_PROVIDERS_TABLE",
                    "marketplace-dev-providers-table",
                ),
                provider_index: text(
                    "MARKETPLACE_REVIEWS_PROVIDER_INDEX",
                    "providerReviews-index",
                ),
            },
            marketplace_bookings: BookingMailConfig {
                system: System::Marketplace,
                bookings_table: text(
                    "MARKETPLACE_BOOKINGS_TABLE",
                    "marketplace-dev-bookings-table",
                ),
                users_table: text("MARKETPLACE_USERS_TABLE", "marketplace-dev-users-table"),
                mail: mail.clone(),
            },
            pilotforce_bookings: BookingMailConfig {
                system: System::PilotForce,
                bookings_table: text("PILOTFORCE_BOOKINGS_TABLE", "PilotForce-Bookings"),
                users_table: text("PILOTFORCE_USERS_TABLE", "PilotForce-Users"),
                mail,
            },
            assets: AssetsConfig {
                assets_table: text("PILOTFORCE_ASSETS_TABLE", "PilotForce-Assets"),
                bucket: text("PILOTFORCE_ASSETS_BUCKET", ""),
            },
            threads: ThreadsConfig {
                conversations_table: text("ACS_CONVERSATIONS_TABLE", "acsd2p-dev-Conversations"),
                threads_table: text("ACS_THREADS_TABLE", "acsd2p-dev-Threads"),
            },
            totals: TotalsConfig {
                table: cost_table,
                default_rules,
                default_currency,
                default_region,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_seed_tables() {
        let config = Config::from_lookup(|_| None).unwrap();
        assert_eq!(config.audit.audit_table, COST_PLATFORM_TABLE);
        assert_eq!(config.audit.audited_tables, vec![COST_PLATFORM_TABLE]);
        assert_eq!(config.idempotency.table, IDEMPOTENCY_TABLE);
        assert_eq!(config.idempotency.ttl_seconds, 86_400);
    }

    #[test]
    fn a_bad_number_names_the_variable() {
        let err =
            Config::from_lookup(|n| (n == "AUDIT_SHARDS").then(|| "zero".to_string())).unwrap_err();
        assert!(err.to_string().contains("AUDIT_SHARDS"), "{err}");
    }
}
