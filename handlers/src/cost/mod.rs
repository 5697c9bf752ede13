//! The cost estimation platform (`deploy/tables/aws-cost-platform-enhanced.json`): its items as typed
//! structs, the pricing rules, and the reactions that keep an estimation's totals right.

pub mod model;
pub(crate) mod notify;
pub mod pricing;
pub mod proposal;
pub mod savings;

use crate::settings::{ConfigError, Settings};
use model::BusinessRules;

/// What the reactions that price an estimation share: the table, and the rules, currency and
/// region for an estimation whose METADATA does not say.
#[derive(Debug, Clone)]
pub struct EstimationDefaults {
    /// The cost platform table.
    pub table: String,
    /// Rules for estimations whose METADATA has no `BusinessRules`.
    pub default_rules: BusinessRules,
    pub default_currency: String,
    pub default_region: String,
}

impl EstimationDefaults {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(EstimationDefaults {
            table: s.table("COST_TABLE"),
            default_rules: BusinessRules {
                buffer_percentage: s.decimal("COST_BUFFER_PERCENT", "10")?,
                volume_discounts: s.flag("COST_VOLUME_DISCOUNTS", true)?,
                support_plan_included: s.flag("COST_SUPPORT_PLAN", true)?,
            },
            default_currency: s.text("COST_CURRENCY", "USD"),
            default_region: s.text("COST_REGION", "us-east-1"),
        })
    }
}
