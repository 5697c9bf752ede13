//! The cost platform's items as the worker reads and writes them (PascalCase, as the seed).

use std::collections::BTreeMap;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::item::number;

/// The first sort key of an estimation's METADATA and line items (`DATABASE#` < `DOCUMENT#` <
/// `METADATA` < `NETWORK_SECURITY` < `SERVER#` < `STORAGE#`; `CALCULATION#` sorts before).
pub const ESTIMATION_ITEMS_FROM: &str = "DATABASE#";

/// What a line item's sort key says it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Category {
    Compute,
    Storage,
    Database,
    /// The NETWORK_SECURITY item: split into Network and Security when it carries the parts.
    NetworkSecurity,
}

impl Category {
    /// `SERVER#…` -> Compute, `STORAGE#…`, `DATABASE#…`, `NETWORK_SECURITY`; anything else
    /// (METADATA, CALCULATION#, DOCUMENT#, ...) is not a line item.
    pub fn of_sort_key(sk: &str) -> Option<Category> {
        if sk.starts_with("SERVER#") {
            Some(Category::Compute)
        } else if sk.starts_with("STORAGE#") {
            Some(Category::Storage)
        } else if sk.starts_with("DATABASE#") {
            Some(Category::Database)
        } else if sk == "NETWORK_SECURITY" || sk.starts_with("NETWORK_SECURITY#") {
            Some(Category::NetworkSecurity)
        } else {
            None
        }
    }
}

/// A cost part carried inside NETWORK_SECURITY's NetworkRequirements / SecurityRequirements.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CostPart {
    #[serde(default, with = "number::option")]
    pub estimated_monthly_cost: Option<Decimal>,
}

/// A line item (server, storage, database, network & security), the fields the worker uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct LineItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    /// Missing means not priced yet, and counts as 0.
    #[serde(default, with = "number::option")]
    pub estimated_monthly_cost: Option<Decimal>,
    #[serde(default)]
    pub server_name: Option<String>,
    #[serde(default)]
    pub storage_name: Option<String>,
    #[serde(default)]
    pub database_name: Option<String>,
    #[serde(default)]
    pub suggested_instance_type: Option<String>,
    #[serde(default)]
    pub instance_class: Option<String>,
    #[serde(default, rename = "SuggestedAWSService")]
    pub suggested_aws_service: Option<String>,
    #[serde(default)]
    pub network_requirements: Option<CostPart>,
    #[serde(default)]
    pub security_requirements: Option<CostPart>,
    #[serde(default)]
    pub optimization_recommendations: Vec<String>,
    #[serde(default)]
    pub compliance_requirements: Vec<String>,
}

impl LineItem {
    pub fn category(&self) -> Option<Category> {
        Category::of_sort_key(&self.sk)
    }

    /// The id part of the sort key (`SERVER#srv001` -> `srv001`).
    pub fn item_id(&self) -> &str {
        self.sk
            .split_once('#')
            .map_or(self.sk.as_str(), |(_, id)| id)
    }

    pub fn name(&self) -> String {
        self.server_name
            .as_ref()
            .or(self.storage_name.as_ref())
            .or(self.database_name.as_ref())
            .cloned()
            .unwrap_or_else(|| match self.category() {
                Some(Category::NetworkSecurity) => "Network & security".to_string(),
                _ => self.item_id().to_string(),
            })
    }

    /// Instance type or class, or the suggested service.
    pub fn kind(&self) -> Option<&str> {
        self.suggested_instance_type
            .as_deref()
            .or(self.instance_class.as_deref())
            .or(self.suggested_aws_service.as_deref())
    }

    pub fn monthly_cost(&self) -> Decimal {
        self.estimated_monthly_cost.unwrap_or_default()
    }

    /// Network and security parts, when the item carries both.
    pub fn network_security_parts(&self) -> Option<(Decimal, Decimal)> {
        let network = self.network_requirements.as_ref()?.estimated_monthly_cost?;
        let security = self
            .security_requirements
            .as_ref()?
            .estimated_monthly_cost?;
        Some((network, security))
    }
}

/// Business rules (the seed's CostCalculation `BusinessRulesApplied`), as settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct BusinessRules {
    #[serde(with = "number")]
    pub buffer_percentage: Decimal,
    pub volume_discounts: bool,
    pub support_plan_included: bool,
}

/// What was applied, recorded with every summary and calculation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct RulesApplied {
    #[serde(with = "number")]
    pub buffer_percentage: Decimal,
    pub volume_discounts: bool,
    #[serde(with = "number")]
    pub volume_discount_percentage: Decimal,
    pub support_plan_included: bool,
    #[serde(with = "number")]
    pub support_plan_cost: Decimal,
    pub rounding: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CostBreakdown {
    #[serde(with = "number")]
    pub compute: Decimal,
    #[serde(with = "number")]
    pub storage: Decimal,
    #[serde(with = "number")]
    pub database: Decimal,
    #[serde(with = "number")]
    pub network: Decimal,
    #[serde(with = "number")]
    pub security: Decimal,
    /// The support plan's monthly cost (0 without one), so that the total is the sum.
    #[serde(default, with = "number")]
    pub support: Decimal,
}

impl CostBreakdown {
    /// The breakdown's total; None when it overflows (costs beyond what pricing takes).
    pub fn checked_sum(&self) -> Option<Decimal> {
        [
            self.storage,
            self.database,
            self.network,
            self.security,
            self.support,
        ]
        .into_iter()
        .try_fold(self.compute, Decimal::checked_add)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SavingsPotential {
    #[serde(with = "number")]
    pub reserved_instance_savings: Decimal,
    #[serde(with = "number")]
    pub spot_instance_savings: Decimal,
    #[serde(with = "number")]
    pub savings_plan_savings: Decimal,
    #[serde(with = "number")]
    pub total_potential_savings: Decimal,
}

/// METADATA's `EstimationSummary`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct EstimationSummary {
    #[serde(with = "number")]
    pub total_monthly_cost: Decimal,
    #[serde(with = "number")]
    pub total_annual_cost: Decimal,
    pub currency: String,
    pub last_calculated_at: String,
    pub cost_breakdown: CostBreakdown,
    pub optimization_savings_potential: SavingsPotential,
    #[serde(default)]
    pub business_rules_applied: Option<RulesApplied>,
    #[serde(default, with = "number")]
    pub line_item_count: Decimal,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ClientInfo {
    #[serde(default)]
    pub company_name: Option<String>,
    #[serde(default)]
    pub primary_aws_region: Option<String>,
    #[serde(default)]
    pub compliance_requirements: Vec<String>,
}

/// The estimation's METADATA item, the fields the worker uses.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Metadata {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(default)]
    pub estimation_id: Option<String>,
    #[serde(default)]
    pub project_name: Option<String>,
    #[serde(default)]
    pub user_id: Option<String>,
    /// The worker's own lock on `EstimationSummary` (the application's `Version` is never
    /// read or written by the worker).
    #[serde(default, with = "number::option")]
    pub summary_version: Option<Decimal>,
    /// Per-estimation rules; the configured defaults otherwise.
    #[serde(default)]
    pub business_rules: Option<BusinessRules>,
    #[serde(default)]
    pub enhanced_client_info: Option<ClientInfo>,
    #[serde(default)]
    pub currency: Option<String>,
}

impl Metadata {
    pub fn estimation_id(&self) -> &str {
        self.estimation_id
            .as_deref()
            .unwrap_or_else(|| self.pk.strip_prefix("ESTIMATION#").unwrap_or(&self.pk))
    }
}

/// An `OPTIMIZATION_TIPS` item: savings percentages by tip.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct OptimizationTip {
    pub tip_id: String,
    #[serde(default, with = "number::option")]
    pub potential_savings_percent: Option<Decimal>,
}

/// One line of a calculation's DetailedCosts.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CostLine {
    pub item_id: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(with = "number")]
    pub monthly_cost: Decimal,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CategoryCosts {
    pub items: Vec<CostLine>,
    /// The line items' sum, before rules.
    #[serde(with = "number")]
    pub subtotal: Decimal,
    /// After buffer and discount, rounded: the breakdown figure.
    #[serde(with = "number")]
    pub total: Decimal,
}

/// A `CALCULATION#<timestamp>` item: the record of one recomputation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct CalculationItem {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    #[serde(rename = "GSI1PK")]
    pub gsi1pk: String,
    #[serde(rename = "GSI1SK")]
    pub gsi1sk: String,
    pub entity_type: &'static str,
    pub estimation_id: String,
    pub calculation_id: String,
    pub calculated_at: String,
    pub region: String,
    pub currency: String,
    pub pricing_model: &'static str,
    pub detailed_costs: BTreeMap<String, CategoryCosts>,
    #[serde(with = "number")]
    pub total_monthly_cost: Decimal,
    #[serde(with = "number")]
    pub total_annual_cost: Decimal,
    pub business_rules_applied: RulesApplied,
}

/// A DOCUMENT# item's `Metadata`: how the proposal should look.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct DocumentOptions {
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub include_executive_summary: Option<bool>,
    #[serde(default)]
    pub include_detailed_breakdown: Option<bool>,
    #[serde(default)]
    pub include_architecture_diagram: Option<bool>,
    #[serde(default)]
    pub branding: Option<String>,
}

/// A DOCUMENT# item (the seed's Document entity), the fields the worker reads.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Document {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    #[serde(default)]
    pub document_id: Option<String>,
    #[serde(default)]
    pub estimation_id: Option<String>,
    #[serde(default)]
    pub document_type: Option<String>,
    #[serde(default)]
    pub file_name: Option<String>,
    #[serde(default)]
    pub generated_by: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub metadata: Option<DocumentOptions>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NotificationSettings {
    #[serde(default)]
    pub email_notifications: Option<bool>,
    #[serde(default)]
    pub document_ready: Option<bool>,
    #[serde(default)]
    pub shared_estimations: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Preferences {
    #[serde(default)]
    pub notification_settings: Option<NotificationSettings>,
}

/// A user's `USER#<id>` / `PROFILE` item.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct UserProfile {
    #[serde(default)]
    pub user_id: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub preferences: Option<Preferences>,
}

/// Which notification a setting governs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notice {
    DocumentReady,
    SharedEstimation,
}

impl UserProfile {
    pub fn full_name(&self) -> Option<String> {
        let name = [self.first_name.as_deref(), self.last_name.as_deref()]
            .into_iter()
            .flatten()
            .collect::<Vec<_>>()
            .join(" ");
        (!name.trim().is_empty()).then_some(name)
    }

    /// Mail is on unless the user turned it off: all email, or this kind.
    pub fn wants(&self, notice: Notice) -> bool {
        let Some(settings) = self
            .preferences
            .as_ref()
            .and_then(|p| p.notification_settings.as_ref())
        else {
            return true;
        };
        let kind = match notice {
            Notice::DocumentReady => settings.document_ready,
            Notice::SharedEstimation => settings.shared_estimations,
        };
        settings.email_notifications != Some(false) && kind != Some(false)
    }
}

/// A `SHARED#<estimationId>` item under `USER#<id>` (the seed's SharedEstimation).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct SharedEstimation {
    #[serde(rename = "PK")]
    pub pk: String,
    #[serde(rename = "SK")]
    pub sk: String,
    #[serde(default)]
    pub estimation_id: Option<String>,
    #[serde(default)]
    pub shared_with_user_id: Option<String>,
    #[serde(default)]
    pub shared_by_user_id: Option<String>,
    #[serde(default)]
    pub permission: Option<String>,
    #[serde(default)]
    pub expires_at: Option<String>,
    #[serde(default)]
    pub notification_sent: Option<bool>,
}
