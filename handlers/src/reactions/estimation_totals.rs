//! `estimation-totals`: keeps each estimation's METADATA `EstimationSummary` in agreement with
//! its line items.
//!
//! Idempotent by construction: it recomputes from the table's state, and writes only when the
//! figures changed, so a re-delivered record finds nothing to do. Within a batch it runs once
//! per estimation (at the estimation's last record), reading the partition with one query.
//! The summary update and the CALCULATION# record are one transaction, guarded by the
//! METADATA `Version` (optimistic locking): on a conflict it re-reads and tries again.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::SecondsFormat;
use rust_decimal::Decimal;
use serde_json::json;

use super::contract::{Idempotency, Reacted, Reaction};
use super::folding::{aggregate_version, next_aggregate_version};
use super::optimistic::{is_conflict, retry_on_conflict, MAX_ATTEMPTS};
use crate::change::Change;
use crate::cost::model::{
    CalculationItem, Category, CategoryCosts, CostLine, EstimationSummary, LineItem, Metadata,
    ESTIMATION_ITEMS_FROM,
};
use crate::cost::pricing::{price, priceable, Priced};
use crate::cost::savings::SavingsRatesCache;
use crate::cost::EstimationDefaults;
use crate::error::{PortError, ReactionError};
use crate::item::{
    from_item, get_str, number, stable_hash, string_key, to_item, AttributeValue, Item,
};
use crate::ports::{Condition, Ports, Query, SortKey, TransactItem, Update};
use crate::skipped::{with_skipped, Skipped};
use crate::text::{cut, COPIED_CHARS};

/// The totals need the table and the defaults for estimations that name none.
pub type TotalsConfig = EstimationDefaults;

pub struct EstimationTotals {
    config: TotalsConfig,
    tips: Arc<SavingsRatesCache>,
}

impl EstimationTotals {
    /// `tips` is shared with the other reactions that price estimations (proposals), so the
    /// table's OPTIMIZATION_TIPS are read once for all of them.
    pub fn new(config: TotalsConfig, tips: Arc<SavingsRatesCache>) -> Self {
        EstimationTotals { config, tips }
    }
}

/// What a line item costs: its total and, when it has them, its network and security parts.
type ItemCosts = (Option<Decimal>, Option<(Decimal, Decimal)>);

/// The cost-relevant view of a line item image.
fn costs_of(image: Option<&Item>) -> Option<ItemCosts> {
    let item: LineItem = from_item(image?.clone(), "line item").ok()?;
    Some((item.estimated_monthly_cost, item.network_security_parts()))
}

/// The cost attributes of a line item: (attribute, path to name it by).
const COST_ATTRIBUTES: [(&str, &str); 2] = [
    (
        "NetworkRequirements",
        "NetworkRequirements.EstimatedMonthlyCost",
    ),
    (
        "SecurityRequirements",
        "SecurityRequirements.EstimatedMonthlyCost",
    ),
];

/// Each cost of `item` with its path: the item's own, then its network and security parts.
fn costs(item: &Item) -> impl Iterator<Item = (&'static str, &AttributeValue)> {
    let own = item
        .get("EstimatedMonthlyCost")
        .map(|value| ("EstimatedMonthlyCost", value));
    let parts = COST_ATTRIBUTES
        .into_iter()
        .filter_map(move |(part, path)| match item.get(part) {
            Some(AttributeValue::M(inner)) => {
                inner.get("EstimatedMonthlyCost").map(|value| (path, value))
            }
            _ => None,
        });
    own.into_iter().chain(parts)
}

/// The cost attributes of `item` the application wrote as numeric strings (`"247.42"`):
/// priced as those numbers, and named in the result.
fn costs_from_text(item: &Item) -> Vec<&'static str> {
    costs(item)
        .filter(|(_, value)| matches!(value, AttributeValue::S(text) if number::exact(text.trim()).is_some_and(priceable)))
        .map(|(path, _)| path)
        .collect()
}

/// The first cost attribute of `item` that holds something other than a number pricing takes
/// (exactly held, at most [`crate::cost::pricing::MAX_LINE_ITEM_COST`] in magnitude; a number
/// written as a string counts as that number), and what.
fn unusable_cost(item: &Item) -> Option<(&'static str, String)> {
    let not_a_number = |value: &AttributeValue| match value {
        AttributeValue::N(text) | AttributeValue::S(text) => match number::exact(text.trim()) {
            Some(cost) if priceable(cost) => None,
            _ => Some(text.clone()),
        },
        AttributeValue::Null(_) => None,
        other => Some(
            crate::item::scalar_text(other)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{other:?}")),
        ),
    };
    costs(item).find_map(|(path, value)| not_a_number(value).map(|v| (path, v)))
}

/// The worker's lock attribute on METADATA, beside `EstimationSummary`.
pub const SUMMARY_VERSION: &str = "SummaryVersion";

fn is_metadata(change: &Change) -> bool {
    let image = change.latest_image();
    get_str(image, "PK").is_some_and(|pk| pk.starts_with("ESTIMATION#"))
        && get_str(image, "SK") == Some("METADATA")
}

/// A METADATA change moves the totals only when it changes what they are computed with: the
/// business rules or the currency. The worker's own summary write changes neither, so it
/// never triggers a recomputation.
fn pricing_inputs_changed(change: &Change) -> bool {
    if change.kind != crate::ChangeKind::Modify {
        return false;
    }
    let input = |image: Option<&Item>, name: &str| image.and_then(|i| i.get(name)).cloned();
    ["BusinessRules", "Currency"]
        .iter()
        .any(|name| input(change.old.as_ref(), name) != input(change.new.as_ref(), name))
}

fn is_line_item(change: &Change) -> bool {
    let image = change.latest_image();
    get_str(image, "PK").is_some_and(|pk| pk.starts_with("ESTIMATION#"))
        && get_str(image, "SK")
            .and_then(Category::of_sort_key)
            .is_some()
}

#[async_trait]
impl Reaction for EstimationTotals {
    fn name(&self) -> &'static str {
        "estimation-totals"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Recomputed
    }

    fn applies(&self, change: &Change) -> bool {
        if change.table != self.config.table {
            return false;
        }
        if is_metadata(change) {
            return pricing_inputs_changed(change);
        }
        if !is_line_item(change) {
            return false;
        }
        match change.kind {
            crate::ChangeKind::Modify => {
                // A rename changes nothing; an unreadable cost is let through so the
                // reaction can name the item in its error.
                let (old, new) = (costs_of(change.old.as_ref()), costs_of(change.new.as_ref()));
                old.is_none() || new.is_none() || old != new
            }
            _ => true,
        }
    }

    fn coalesce_key(&self, change: &Change) -> Option<String> {
        get_str(change.latest_image(), "PK").map(str::to_string)
    }

    fn unusable_data(&self, change: &Change) -> Option<Skipped> {
        let new = change.new.as_ref().filter(|_| is_line_item(change))?;
        let (attribute, value) = unusable_cost(new)?;
        let what = format!(
            "{} {} {}",
            change.table,
            get_str(new, "PK").unwrap_or_default(),
            get_str(new, "SK").unwrap_or_default()
        );
        Some(Skipped::new(what, attribute, &value))
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let pk = get_str(change.latest_image(), "PK")
            .unwrap_or_default()
            .to_string();
        // Every timestamp written comes from the record (the last of the estimation's in the
        // batch, when coalesced): a replay writes the same items.
        let at = change
            .approximate_creation
            .to_rfc3339_opts(SecondsFormat::Millis, true);
        match retry_on_conflict("the estimation's summary", |_| self.recompute(&pk, &at, ports)).await {
            Err(e) if is_conflict(&e) => Err(ReactionError::Port(PortError::Transient {
                operation: "TransactWriteItems",
                target: format!("{pk} METADATA"),
                message: format!("the summary changed under {MAX_ATTEMPTS} recomputations in a row (SummaryVersion conflicts)"),
            })),
            other => other.map(|result| Reacted { result, deferred_writes: Vec::new() }),
        }
    }
}

impl EstimationTotals {
    /// One read-compute-write round, dated `now` (the record's time). A conflict on the
    /// worker's own `SummaryVersion` comes back as ConditionFailed.
    async fn recompute(
        &self,
        pk: &str,
        now: &str,
        ports: Ports<'_>,
    ) -> Result<serde_json::Value, ReactionError> {
        let table = &self.config.table;
        let items = ports
            .tables
            .query(&Query {
                table: table.clone(),
                index: None,
                partition: ("PK".into(), AttributeValue::S(pk.to_string())),
                // From DATABASE# on: METADATA and every line item, without the CALCULATION# history
                // (which sorts before them and only grows).
                sort_key: Some(("SK".into(), SortKey::AtLeast(ESTIMATION_ITEMS_FROM.into()))),
                ascending: true,
            })
            .await?;
        let mut metadata_item = None;
        let mut lines = Vec::new();
        // Line items the application wrote so that they cannot be priced (a cost that is not a
        // number): left out of the totals and named, never a reason to stop the stream.
        let mut skipped = Vec::new();
        // Costs the application wrote as numeric strings: priced as those numbers, named.
        let mut from_text = Vec::new();
        for item in items {
            match get_str(&item, "SK") {
                Some("METADATA") => metadata_item = Some(item),
                Some(sk) if Category::of_sort_key(sk).is_some() => {
                    let what = format!("{table} {pk} {sk}");
                    match unusable_cost(&item) {
                        Some((attribute, value)) => {
                            skipped.push(Skipped::new(what, attribute, &value))
                        }
                        None => {
                            let read = costs_from_text(&item);
                            from_text.extend(read.into_iter().map(|path| format!("{sk} {path}")));
                            match from_item::<LineItem>(item, &what) {
                                Ok(line) => lines.push(line),
                                Err(e) => skipped.push(Skipped::new(what, "", &e.to_string())),
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        let Some(metadata_item) = metadata_item else {
            return Ok(json!({ "skipped": "the estimation has no METADATA item (deleted)" }));
        };
        // The summary there now is only compared and its currency carried: whatever the
        // application wrote in it (zeros, `null` for a time not known yet, a partial map) is
        // read as it is, never a reason to stop.
        let stored_summary = metadata_item.get("EstimationSummary").cloned();
        let metadata: Metadata = from_item(metadata_item, &format!("{table} {pk} METADATA"))?;
        let rules = metadata
            .business_rules
            .clone()
            .unwrap_or_else(|| self.config.default_rules.clone());
        let rates = self.tips.get(ports).await?;
        // Costs beyond what pricing takes were left out above; rules that still overflow it
        // (a buffer of 1E+27 %) are the application's data: the record is parked, never a crash.
        let priced = price(&lines, &rules, &rates).map_err(|overflow| ReactionError::BadItem {
            what: format!("{table} {pk}"),
            message: overflow.to_string(),
        })?;
        // The estimation's own currency first, so a change of it is followed; then the one the
        // summary was computed in (the application may have set it), then the default.
        let currency = metadata
            .currency
            .clone()
            .or_else(|| match &stored_summary {
                Some(AttributeValue::M(stored)) => match stored.get("Currency") {
                    Some(AttributeValue::S(currency)) if !currency.is_empty() => {
                        Some(currency.clone())
                    }
                    _ => None,
                },
                _ => None,
            })
            .unwrap_or_else(|| self.config.default_currency.clone());
        let summary = priced.summary(&currency, now, lines.len());
        let totals = json!({
            "TotalMonthlyCost": priced.total_monthly.to_string(),
            "TotalAnnualCost": priced.total_annual.to_string(),
            "LineItems": lines.len(),
        });
        let summary_item = to_item(&SummaryOnly {
            estimation_summary: summary,
        })?;
        let summary_value = summary_item
            .get("EstimationSummary")
            .cloned()
            .unwrap_or(AttributeValue::Null(true));
        if stored_summary
            .as_ref()
            .is_some_and(|stored| same_figures(&summary_value, stored))
        {
            return Ok(with_skipped(
                with_from_text(json!({ "unchanged": totals }), from_text),
                skipped,
            ));
        }
        let next_version = next_aggregate_version(metadata.summary_version).normalize();
        let calculation =
            self.calculation_item(&metadata, &lines, &priced, &currency, now, next_version);
        // The worker's own lock: the application's `Version` and `UpdatedAt` are never touched,
        // so none of its conditional edits can fail because of this write.
        let (version_condition, next) =
            aggregate_version(SUMMARY_VERSION, metadata.summary_version);
        let update = Update::default()
            .set("EstimationSummary", summary_value)
            .set(SUMMARY_VERSION, next);
        ports
            .tables
            .transact_write(vec![
                TransactItem::Update {
                    table: table.clone(),
                    key: string_key(&[("PK", pk), ("SK", "METADATA")]),
                    update,
                    condition: Some(Condition::And(vec![
                        Condition::Exists("PK".into()),
                        version_condition,
                    ])),
                },
                // Unconditional: its key (the record's time and the new summary version) is
                // this recomputation's own, and the summary's condition already makes it the
                // only one. An item there with that key is this same calculation, written
                // again (a replay after the application re-created METADATA).
                TransactItem::Put {
                    table: table.clone(),
                    item: to_item(&calculation)?,
                    condition: None,
                },
            ])
            .await?;
        Ok(with_skipped(
            with_from_text(
                json!({ "updated": totals, "calculation": calculation.sk }),
                from_text,
            ),
            skipped,
        ))
    }

    fn calculation_item(
        &self,
        metadata: &Metadata,
        lines: &[LineItem],
        priced: &Priced,
        currency: &str,
        now: &str,
        version: Decimal,
    ) -> CalculationItem {
        let id = metadata.estimation_id().to_string();
        let mut detailed = std::collections::BTreeMap::new();
        let b = &priced.breakdown;
        let s = &priced.subtotals;
        for (name, category, subtotal, total) in [
            ("Compute", Some(Category::Compute), s.compute, b.compute),
            ("Storage", Some(Category::Storage), s.storage, b.storage),
            ("Database", Some(Category::Database), s.database, b.database),
            (
                "Network",
                Some(Category::NetworkSecurity),
                s.network,
                b.network,
            ),
            ("Security", None, s.security, b.security),
        ] {
            let items = lines
                .iter()
                .filter(|l| category.is_some() && l.category() == category)
                // Copies, cut: the calculation item must stay within DynamoDB's 400 KB whatever
                // the line items hold.
                .map(|l| CostLine {
                    item_id: l.sk.clone(),
                    name: cut(&l.name(), COPIED_CHARS).into_owned(),
                    r#type: l.kind().map(|kind| cut(kind, COPIED_CHARS).into_owned()),
                    monthly_cost: l.monthly_cost(),
                })
                .collect();
            detailed.insert(
                name.to_string(),
                CategoryCosts {
                    items,
                    subtotal,
                    total,
                },
            );
        }
        detailed.insert(
            "Support".to_string(),
            CategoryCosts {
                items: Vec::new(),
                subtotal: b.support,
                total: b.support,
            },
        );
        let region = metadata
            .enhanced_client_info
            .as_ref()
            .and_then(|c| c.primary_aws_region.clone())
            .unwrap_or_else(|| self.config.default_region.clone());
        // The summary version this write creates makes the key unique: two recomputations
        // dated the same millisecond (two records of one instant, or two workers) would
        // otherwise collide, and the loser's transaction would fail as if the summary had
        // changed under it.
        CalculationItem {
            pk: metadata.pk.clone(),
            sk: format!("CALCULATION#{now}#v{version}"),
            gsi1pk: format!("CALCULATION#{id}"),
            gsi1sk: now.to_string(),
            entity_type: "CostCalculation",
            calculation_id: format!(
                "calc-{:016x}",
                stable_hash(format!("{}\0{now}\0{version}", metadata.pk).as_bytes())
            ),
            estimation_id: id,
            calculated_at: now.to_string(),
            region,
            currency: currency.to_string(),
            pricing_model: "ON_DEMAND",
            detailed_costs: detailed,
            total_monthly_cost: priced.total_monthly,
            total_annual_cost: priced.total_annual,
            business_rules_applied: priced.applied.clone(),
        }
    }
}

/// `result` with the costs read from numeric strings named under `numbersFromText`.
fn with_from_text(mut result: serde_json::Value, from_text: Vec<String>) -> serde_json::Value {
    if !from_text.is_empty() {
        result["numbersFromText"] = json!(from_text);
    }
    result
}

/// Whether the summary `stored` on METADATA has the figures of `computed`: equal in everything
/// but `LastCalculatedAt`, numbers by value (`0` and `0.00` are one figure). Only what the
/// worker wrote can be equal; an application's placeholder (zeros and `null`s) is not.
fn same_figures(computed: &AttributeValue, stored: &AttributeValue) -> bool {
    fn equal(a: &AttributeValue, b: &AttributeValue) -> bool {
        match (a, b) {
            (AttributeValue::N(a), AttributeValue::N(b)) => {
                a == b || number::exact(a).is_some_and(|a| Some(a) == number::exact(b))
            }
            (AttributeValue::M(a), AttributeValue::M(b)) => {
                a.len() == b.len()
                    && a.iter()
                        .all(|(name, value)| b.get(name).is_some_and(|other| equal(value, other)))
            }
            (AttributeValue::L(a), AttributeValue::L(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(a, b)| equal(a, b))
            }
            (a, b) => a == b,
        }
    }
    match (computed, stored) {
        (AttributeValue::M(computed), AttributeValue::M(stored)) => {
            let figures = |m: &'_ std::collections::HashMap<String, AttributeValue>| {
                m.iter()
                    .filter(|(name, _)| name.as_str() != "LastCalculatedAt")
                    .count()
            };
            figures(computed) == figures(stored)
                && computed
                    .iter()
                    .filter(|(name, _)| name.as_str() != "LastCalculatedAt")
                    .all(|(name, value)| stored.get(name).is_some_and(|s| equal(value, s)))
        }
        _ => false,
    }
}

/// Serializes just the summary, to turn it into an attribute value through serde_dynamo.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryOnly {
    estimation_summary: EstimationSummary,
}
