//! A reaction written against the seed documents' attribute names, run on a table whose
//! application names them otherwise.
//!
//! The cost platform's reactions read and write many attributes of one single-table design
//! (`PK`, `SK`, `EstimatedMonthlyCost`, `Status`, `S3Key`, ...). Rather than thread the
//! application's names through each of them, [`Renamed`] stands between such a reaction and the
//! batch: the change it is handed and every item it reads come with the application's names
//! turned into the seed's, and every key, item, update, condition and query it sends goes out
//! with the seed's names turned back into the application's. Only the configured table is
//! touched; top-level names only (a map attribute's inner names keep the seed's). When nothing
//! is renamed the registry does not wrap at all.

use std::borrow::Cow;
use std::collections::HashMap;

use async_trait::async_trait;

use super::contract::{Idempotency, Reacted, Reaction};
use crate::attribute_names::AttributeNames;
use crate::change::Change;
use crate::error::{PortError, ReactionError};
use crate::item::{AttributeValue, Item};
use crate::ports::{Condition, Ports, Query, Tables, TransactItem, Update, WriteRequest};
use crate::skipped::Skipped;

/// The name under which `ATTRIBUTE_NAMES` renames the cost platform's attributes, for all of
/// its reactions at once (`cost-platform.PK=pk`).
pub const COST_PLATFORM: &str = "cost-platform";

/// Every top-level attribute of the cost platform table a reaction reads or writes, under the
/// seed's names (the worker's own, such as `SummaryVersion`, included: an application may want
/// them in its own style).
pub const COST_PLATFORM_ATTRIBUTES: &[&str] = &[
    // Keys and the GSI the seed defines.
    "PK",
    "SK",
    "GSI1PK",
    "GSI1SK",
    "EntityType",
    // Line items.
    "EstimatedMonthlyCost",
    "ServerName",
    "StorageName",
    "DatabaseName",
    "SuggestedInstanceType",
    "InstanceClass",
    "SuggestedAWSService",
    "NetworkRequirements",
    "SecurityRequirements",
    "OptimizationRecommendations",
    "ComplianceRequirements",
    // METADATA.
    "EstimationId",
    "ProjectName",
    "UserId",
    "BusinessRules",
    "EnhancedClientInfo",
    "Currency",
    "EstimationSummary",
    "SummaryVersion",
    // OPTIMIZATION_TIPS.
    "TipId",
    "PotentialSavingsPercent",
    // DOCUMENT# (proposals).
    "DocumentId",
    "DocumentType",
    "FileName",
    "GeneratedBy",
    "Status",
    "Metadata",
    "S3Bucket",
    "S3Key",
    "FileSize",
    "GeneratedAt",
    "ExpiresAt",
    "TTL",
    "ErrorMessage",
    // USER# PROFILE.
    "Email",
    "FirstName",
    "LastName",
    "Preferences",
    // SHARED# (shares).
    "SharedWithUserId",
    "SharedByUserId",
    "Permission",
    "NotificationSent",
    "NotificationSentAt",
    "NotificationEventId",
    // CALCULATION# (the worker's record of a recomputation).
    "CalculationId",
    "CalculatedAt",
    "Region",
    "PricingModel",
    "DetailedCosts",
    "TotalMonthlyCost",
    "TotalAnnualCost",
    "BusinessRulesApplied",
];

/// The renames of one table's attributes, both ways.
#[derive(Debug, Clone)]
pub struct Renaming {
    table: String,
    /// Application name -> seed name.
    to_seed: HashMap<String, &'static str>,
    /// Seed name -> application name.
    to_application: HashMap<&'static str, String>,
}

impl Renaming {
    /// The renames `names` makes on `table`; None when it makes none.
    pub fn new(table: &str, names: &AttributeNames) -> Option<Self> {
        let renamed: Vec<(&'static str, &str)> =
            names.pairs().filter(|(seed, name)| seed != name).collect();
        if renamed.is_empty() {
            return None;
        }
        Some(Renaming {
            table: table.to_string(),
            to_seed: renamed
                .iter()
                .map(|&(seed, name)| (name.to_string(), seed))
                .collect(),
            to_application: renamed
                .iter()
                .map(|&(seed, name)| (seed, name.to_string()))
                .collect(),
        })
    }

    /// `item` under the seed's names. An application attribute that happens to carry a seed
    /// name renamed to something else is not the one the reaction means: it is left out.
    fn seed_item(&self, item: Item) -> Item {
        let mut renamed = HashMap::with_capacity(item.len());
        for (name, value) in item.into_inner() {
            match self.to_seed.get(&name) {
                Some(seed) => {
                    renamed.insert(seed.to_string(), value);
                }
                None if self.to_application.contains_key(name.as_str()) => {}
                None => {
                    renamed.insert(name, value);
                }
            }
        }
        Item::from(renamed)
    }

    /// `item` under the application's names (the reverse of [`Renaming::seed_item`]).
    fn application_item(&self, item: Item) -> Item {
        let mut renamed = HashMap::with_capacity(item.len());
        for (name, value) in item.into_inner() {
            let name = self.application_name(&name).into_owned();
            renamed.insert(name, value);
        }
        Item::from(renamed)
    }

    fn application_name<'n>(&self, name: &'n str) -> Cow<'n, str> {
        match self.to_application.get(name) {
            Some(renamed) => Cow::Owned(renamed.clone()),
            None => Cow::Borrowed(name),
        }
    }

    fn application_condition(&self, condition: &Condition) -> Condition {
        let name = |n: &str| self.application_name(n).into_owned();
        match condition {
            Condition::Exists(n) => Condition::Exists(name(n)),
            Condition::NotExists(n) => Condition::NotExists(name(n)),
            Condition::Compare(n, op, value) => Condition::Compare(name(n), *op, value.clone()),
            Condition::And(all) => {
                Condition::And(all.iter().map(|c| self.application_condition(c)).collect())
            }
            Condition::Or(any) => {
                Condition::Or(any.iter().map(|c| self.application_condition(c)).collect())
            }
        }
    }

    fn application_update(&self, update: &Update) -> Update {
        let pairs = |pairs: &[(String, AttributeValue)]| {
            pairs
                .iter()
                .map(|(n, v)| (self.application_name(n).into_owned(), v.clone()))
                .collect()
        };
        Update {
            set: pairs(&update.set),
            add: pairs(&update.add),
            remove: update
                .remove
                .iter()
                .map(|n| self.application_name(n).into_owned())
                .collect(),
        }
    }

    fn application_write(&self, write: WriteRequest) -> WriteRequest {
        match write {
            WriteRequest::Put(item) => WriteRequest::Put(self.application_item(item)),
            WriteRequest::Delete(key) => WriteRequest::Delete(self.application_item(key)),
        }
    }

    /// `change` as the reaction reads it: the seed's names, when it is of this table.
    fn seed_change<'c>(&self, change: &'c Change) -> Cow<'c, Change> {
        if change.table != self.table {
            return Cow::Borrowed(change);
        }
        let mut renamed = change.clone();
        renamed.keys = self.seed_item(renamed.keys);
        renamed.old = renamed.old.map(|item| self.seed_item(item));
        renamed.new = renamed.new.map(|item| self.seed_item(item));
        Cow::Owned(renamed)
    }

    /// A port's answer about this table, under the seed's names: the existing item of a
    /// failed condition too.
    fn seed_error(&self, error: PortError) -> PortError {
        match error {
            PortError::ConditionFailed { target, existing } => PortError::ConditionFailed {
                target,
                existing: existing.map(|item| Box::new(self.seed_item(*item))),
            },
            other => other,
        }
    }
}

/// A reaction run with [`Renaming`] between it and the batch.
pub struct Renamed<R> {
    reaction: R,
    renaming: Renaming,
    /// Whether the reaction reads under the seed's names too, or only writes under them.
    reads_seed_names: bool,
}

impl<R: Reaction + 'static> Renamed<R> {
    /// `reaction` itself when `renaming` is None (nothing renamed), else wrapped.
    pub fn boxed(reaction: R, renaming: Option<Renaming>) -> Box<dyn Reaction> {
        Self::wrap(reaction, renaming, true)
    }

    /// For a reaction that reads changes under the application's names (it records them as
    /// they are) and writes items under the seed's (the audit log, whose table may be the
    /// cost platform's own): only its writes are renamed.
    pub fn writes_only(reaction: R, renaming: Option<Renaming>) -> Box<dyn Reaction> {
        Self::wrap(reaction, renaming, false)
    }

    fn wrap(reaction: R, renaming: Option<Renaming>, reads_seed_names: bool) -> Box<dyn Reaction> {
        match renaming {
            Some(renaming) => Box::new(Renamed {
                reaction,
                renaming,
                reads_seed_names,
            }),
            None => Box::new(reaction),
        }
    }
}

#[async_trait]
impl<R: Reaction> Reaction for Renamed<R> {
    fn name(&self) -> &'static str {
        self.reaction.name()
    }
    fn idempotency(&self) -> Idempotency {
        self.reaction.idempotency()
    }
    fn applies(&self, change: &Change) -> bool {
        self.reaction.applies(&self.seed_change(change))
    }
    fn coalesce_key(&self, change: &Change) -> Option<String> {
        self.reaction.coalesce_key(&self.seed_change(change))
    }
    fn partitions(&self, change: &Change) -> Vec<String> {
        self.reaction.partitions(&self.seed_change(change))
    }
    fn unusable_data(&self, change: &Change) -> Option<Skipped> {
        self.reaction.unusable_data(&self.seed_change(change))
    }
    fn nothing_done_when_not_sent(&self) -> bool {
        self.reaction.nothing_done_when_not_sent()
    }
    fn folds_windows(&self) -> bool {
        self.reaction.folds_windows()
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let tables = self.tables_of(ports);
        let ports = Ports {
            tables: &tables,
            ..ports
        };
        let reacted = self
            .reaction
            .react(&self.seed_change(change), ports)
            .await?;
        Ok(self.application_writes(reacted))
    }

    async fn react_window(
        &self,
        changes: &[&Change],
        ports: Ports<'_>,
    ) -> Vec<Result<Reacted, ReactionError>> {
        let tables = self.tables_of(ports);
        let ports = Ports {
            tables: &tables,
            ..ports
        };
        let renamed: Vec<Cow<Change>> = changes
            .iter()
            .map(|change| self.seed_change(change))
            .collect();
        let renamed: Vec<&Change> = renamed.iter().map(|change| change.as_ref()).collect();
        self.reaction
            .react_window(&renamed, ports)
            .await
            .into_iter()
            .map(|result| result.map(|reacted| self.application_writes(reacted)))
            .collect()
    }
}

impl<R> Renamed<R> {
    /// The tables as the reaction sees them.
    fn tables_of<'a>(&'a self, ports: Ports<'a>) -> RenamedTables<'a> {
        RenamedTables {
            tables: ports.tables,
            renaming: &self.renaming,
        }
    }

    /// `change` as the reaction reads it.
    fn seed_change<'c>(&self, change: &'c Change) -> Cow<'c, Change> {
        if self.reads_seed_names {
            self.renaming.seed_change(change)
        } else {
            Cow::Borrowed(change)
        }
    }
    /// The writes a reaction leaves to the batch, under the application's names.
    fn application_writes(&self, mut reacted: Reacted) -> Reacted {
        reacted.deferred_writes = reacted
            .deferred_writes
            .into_iter()
            .map(|(table, write)| {
                let write = if table == self.renaming.table {
                    self.renaming.application_write(write)
                } else {
                    write
                };
                (table, write)
            })
            .collect();
        reacted
    }
}

/// The tables as a [`Renamed`] reaction sees them.
struct RenamedTables<'a> {
    tables: &'a dyn Tables,
    renaming: &'a Renaming,
}

impl RenamedTables<'_> {
    fn renames(&self, table: &str) -> bool {
        table == self.renaming.table
    }

    fn key(&self, table: &str, key: &Item) -> Item {
        if self.renames(table) {
            self.renaming.application_item(key.clone())
        } else {
            key.clone()
        }
    }

    fn seed_item(&self, table: &str, item: Item) -> Item {
        if self.renames(table) {
            self.renaming.seed_item(item)
        } else {
            item
        }
    }

    fn seed_items(&self, table: &str, items: Vec<Item>) -> Vec<Item> {
        items
            .into_iter()
            .map(|item| self.seed_item(table, item))
            .collect()
    }

    fn answer<T>(&self, table: &str, result: Result<T, PortError>) -> Result<T, PortError> {
        if self.renames(table) {
            result.map_err(|e| self.renaming.seed_error(e))
        } else {
            result
        }
    }

    fn condition(&self, table: &str, condition: Option<&Condition>) -> Option<Condition> {
        condition.map(|c| {
            if self.renames(table) {
                self.renaming.application_condition(c)
            } else {
                c.clone()
            }
        })
    }
}

#[async_trait]
impl Tables for RenamedTables<'_> {
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError> {
        let got = self.tables.get(table, &self.key(table, key)).await;
        Ok(self
            .answer(table, got)?
            .map(|item| self.seed_item(table, item)))
    }

    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError> {
        let item = if self.renames(table) {
            self.renaming.application_item(item)
        } else {
            item
        };
        let condition = self.condition(table, condition);
        let put = self.tables.put(table, item, condition.as_ref()).await;
        self.answer(table, put)
    }

    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError> {
        let update = if self.renames(table) {
            self.renaming.application_update(update)
        } else {
            update.clone()
        };
        let condition = self.condition(table, condition);
        let updated = self
            .tables
            .update(table, &self.key(table, key), &update, condition.as_ref())
            .await;
        let item = self.answer(table, updated)?;
        Ok(self.seed_item(table, item))
    }

    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError> {
        let condition = self.condition(table, condition);
        let deleted = self
            .tables
            .delete(table, &self.key(table, key), condition.as_ref())
            .await;
        Ok(self
            .answer(table, deleted)?
            .map(|item| self.seed_item(table, item)))
    }

    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        let keys = keys.iter().map(|key| self.key(table, key)).collect();
        let got = self.tables.batch_get(table, keys).await;
        Ok(self.seed_items(table, self.answer(table, got)?))
    }

    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError> {
        let mut query = query.clone();
        if self.renames(&query.table) {
            let name = |n: &str| self.renaming.application_name(n).into_owned();
            query.partition.0 = name(&query.partition.0);
            if let Some((sort_key, _)) = query.sort_key.as_mut() {
                *sort_key = name(sort_key);
            }
        }
        let found = self.tables.query(&query).await;
        Ok(self.seed_items(&query.table, self.answer(&query.table, found)?))
    }

    async fn batch_write(&self, table: &str, writes: &[WriteRequest]) -> Result<(), PortError> {
        let renamed: Vec<WriteRequest>;
        let writes = match self.renames(table) {
            true => {
                renamed = (writes.iter().cloned())
                    .map(|w| self.renaming.application_write(w))
                    .collect();
                &renamed
            }
            false => writes,
        };
        let written = self.tables.batch_write(table, writes).await;
        self.answer(table, written)
    }

    async fn transact_write(&self, items: Vec<TransactItem>) -> Result<(), PortError> {
        let renames_any = items.iter().any(|item| self.renames(item.table()));
        let items = items
            .into_iter()
            .map(|item| {
                if !self.renames(item.table()) {
                    return item;
                }
                let r = self.renaming;
                let condition = |c: Option<Condition>| c.map(|c| r.application_condition(&c));
                match item {
                    TransactItem::Put {
                        table,
                        item,
                        condition: c,
                    } => TransactItem::Put {
                        table,
                        item: r.application_item(item),
                        condition: condition(c),
                    },
                    TransactItem::Update {
                        table,
                        key,
                        update,
                        condition: c,
                    } => TransactItem::Update {
                        table,
                        key: r.application_item(key),
                        update: r.application_update(&update),
                        condition: condition(c),
                    },
                    TransactItem::Delete {
                        table,
                        key,
                        condition: c,
                    } => TransactItem::Delete {
                        table,
                        key: r.application_item(key),
                        condition: condition(c),
                    },
                    TransactItem::Check {
                        table,
                        key,
                        condition: c,
                    } => TransactItem::Check {
                        table,
                        key: r.application_item(key),
                        condition: r.application_condition(&c),
                    },
                }
            })
            .collect();
        let written = self.tables.transact_write(items).await;
        if renames_any {
            written.map_err(|e| self.renaming.seed_error(e))
        } else {
            written
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Item {
        Item::from(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), AttributeValue::S(v.to_string())))
                .collect::<HashMap<_, _>>(),
        )
    }

    fn renaming() -> Renaming {
        let names = AttributeNames::new([
            ("PK", "pk".to_string()),
            ("SK", "sk".to_string()),
            ("Status", "status".to_string()),
            ("EstimatedMonthlyCost", "EstimatedMonthlyCost".to_string()),
        ]);
        Renaming::new("Estimations", &names).expect("renames")
    }

    #[test]
    fn nothing_renamed_means_no_renaming() {
        let names = AttributeNames::seed(&["PK", "SK"]);
        assert!(Renaming::new("t", &names).is_none());
    }

    #[test]
    fn items_go_both_ways_and_an_attribute_under_a_renamed_seed_name_is_not_read() {
        let r = renaming();
        let application = item(&[
            ("pk", "ESTIMATION#e1"),
            ("sk", "METADATA"),
            ("Status", "an application's own Status"),
            ("ProjectName", "p"),
        ]);
        let seed = r.seed_item(application);
        assert_eq!(
            seed,
            item(&[
                ("PK", "ESTIMATION#e1"),
                ("SK", "METADATA"),
                ("ProjectName", "p")
            ])
        );
        assert_eq!(
            r.application_item(seed),
            item(&[
                ("pk", "ESTIMATION#e1"),
                ("sk", "METADATA"),
                ("ProjectName", "p")
            ])
        );
    }

    #[test]
    fn conditions_and_updates_name_the_applications_attributes() {
        let r = renaming();
        let condition = Condition::And(vec![
            Condition::Exists("PK".into()),
            Condition::eq("Status", AttributeValue::S("PENDING".into())),
        ]);
        assert_eq!(
            r.application_condition(&condition),
            Condition::And(vec![
                Condition::Exists("pk".into()),
                Condition::eq("status", AttributeValue::S("PENDING".into())),
            ])
        );
        let update = Update::default()
            .set("Status", AttributeValue::S("COMPLETED".into()))
            .remove("ErrorMessage");
        assert_eq!(
            r.application_update(&update),
            Update::default()
                .set("status", AttributeValue::S("COMPLETED".into()))
                .remove("ErrorMessage")
        );
    }
}
