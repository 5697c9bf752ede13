//! The cost estimation platform (seed: cost-estimation-platform.md): its items as typed
//! structs, the pricing rules, and the reactions that keep an estimation's totals right.

pub mod model;
pub(crate) mod notify;
pub mod pricing;
pub mod proposal;
pub mod savings;

use crate::settings::{ConfigError, Settings, COST_PLATFORM_TABLE};
use model::BusinessRules;

/// What the reactions that price an estimation share: the table, and the rules, currency and
/// region for an estimation whose METADATA does not say.
pub struct EstimationDefaults {
    pub table: String,
    pub rules: BusinessRules,
    pub currency: String,
    pub region: String,
}

impl EstimationDefaults {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(EstimationDefaults {
            table: s.text("COST_TABLE", COST_PLATFORM_TABLE),
            rules: BusinessRules {
                buffer_percentage: s.decimal("COST_BUFFER_PERCENT", "10")?,
                volume_discounts: s.flag("COST_VOLUME_DISCOUNTS", true)?,
                support_plan_included: s.flag("COST_SUPPORT_PLAN", true)?,
            },
            currency: s.text("COST_CURRENCY", "USD"),
            region: s.text("COST_REGION", "us-east-1"),
        })
    }
}
