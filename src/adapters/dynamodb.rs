//! The Tables port on aws-sdk-dynamodb.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{
    AttributeValue as SdkValue, ConditionCheck, Delete, DeleteRequest, KeysAndAttributes, Put,
    PutRequest, ReturnValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
    Update as SdkUpdate, WriteRequest as SdkWrite,
};
use aws_sdk_dynamodb::Client;
use handlers::ports::{Condition, Query, SortKey, Tables, TransactItem, Update, WriteRequest};
use handlers::{AttributeValue, Item, PortError};

use std::sync::Arc;

use super::backoff::UNPROCESSED_ITEMS;
use super::{classify, CallBudget};
use crate::catalog::Catalog;

/// How many times unprocessed batch items are sent again before the call fails.
const BATCH_RETRIES: u32 = 8;

pub struct DynamoDbTables {
    client: Client,
    catalog: Catalog,
    budget: Option<Arc<CallBudget>>,
}

impl DynamoDbTables {
    pub fn new(client: Client, catalog: Catalog) -> Self {
        DynamoDbTables {
            client,
            catalog,
            budget: None,
        }
    }

    /// Calls cut their timeouts to what `budget` says is left.
    pub fn with_budget(self, budget: Arc<CallBudget>) -> Self {
        DynamoDbTables {
            budget: Some(budget),
            ..self
        }
    }

    /// The configuration a call runs with: the client's, its timeouts cut to the budget.
    fn cut(&self) -> aws_sdk_dynamodb::config::Builder {
        let mut builder = aws_sdk_dynamodb::config::Builder::default();
        builder.set_timeout_config(self.budget.as_ref().and_then(|b| b.timeouts()));
        builder
    }
}

type SdkItem = HashMap<String, SdkValue>;

fn to_sdk(item: Item) -> SdkItem {
    item.into_inner()
        .into_iter()
        .map(|(k, v)| (k, v.into()))
        .collect()
}

fn from_sdk(item: SdkItem) -> Item {
    let map: HashMap<String, AttributeValue> =
        item.into_iter().map(|(k, v)| (k, v.into())).collect();
    Item::from(map)
}

/// Placeholders for names and values, so no attribute name can clash with a reserved word.
#[derive(Default)]
struct Expression {
    names: HashMap<String, String>,
    values: HashMap<String, SdkValue>,
}

impl Expression {
    fn name(&mut self, name: &str) -> String {
        let placeholder = format!("#n{}", self.names.len());
        self.names.insert(placeholder.clone(), name.to_string());
        placeholder
    }

    fn value(&mut self, value: &AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values
            .insert(placeholder.clone(), value.clone().into());
        placeholder
    }

    fn condition(&mut self, condition: &Condition) -> String {
        let joined = |this: &mut Self, parts: &[Condition], op: &str| {
            let rendered: Vec<String> = parts.iter().map(|c| this.condition(c)).collect();
            format!("({})", rendered.join(op))
        };
        match condition {
            Condition::Exists(n) => format!("attribute_exists({})", self.name(n)),
            Condition::NotExists(n) => format!("attribute_not_exists({})", self.name(n)),
            Condition::Compare(n, op, v) => {
                format!("{} {} {}", self.name(n), op.symbol(), self.value(v))
            }
            Condition::And(all) => joined(self, all, " AND "),
            Condition::Or(any) => joined(self, any, " OR "),
        }
    }

    fn update(&mut self, update: &Update) -> String {
        let mut clauses = Vec::new();
        if !update.set.is_empty() {
            let parts: Vec<String> = update
                .set
                .iter()
                .map(|(n, v)| format!("{} = {}", self.name(n), self.value(v)))
                .collect();
            clauses.push(format!("SET {}", parts.join(", ")));
        }
        if !update.add.is_empty() {
            let parts: Vec<String> = update
                .add
                .iter()
                .map(|(n, v)| format!("{} {}", self.name(n), self.value(v)))
                .collect();
            clauses.push(format!("ADD {}", parts.join(", ")));
        }
        if !update.remove.is_empty() {
            let parts: Vec<String> = update.remove.iter().map(|n| self.name(n)).collect();
            clauses.push(format!("REMOVE {}", parts.join(", ")));
        }
        clauses.join(" ")
    }

    fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    fn values(&self) -> Option<HashMap<String, SdkValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// A failed condition, carrying the item DynamoDB returned with it.
fn condition_failed(table: &str, item: Option<&SdkItem>) -> PortError {
    PortError::ConditionFailed {
        target: table.to_string(),
        existing: item.cloned().map(from_sdk).map(Box::new),
    }
}

#[async_trait]
impl Tables for DynamoDbTables {
    async fn get(&self, table: &str, key: &Item) -> Result<Option<Item>, PortError> {
        let output = self
            .client
            .get_item()
            .table_name(table)
            .set_key(Some(to_sdk(key.clone())))
            .consistent_read(true)
            .customize()
            .config_override(self.cut())
            .send()
            .await
            .map_err(|e| classify("GetItem", table, e))?;
        Ok(output.item.map(from_sdk))
    }

    async fn put(
        &self,
        table: &str,
        item: Item,
        condition: Option<&Condition>,
    ) -> Result<(), PortError> {
        let mut expr = Expression::default();
        let condition_text = condition.map(|c| expr.condition(c));
        let result = self
            .client
            .put_item()
            .table_name(table)
            .set_item(Some(to_sdk(item)))
            .set_condition_expression(condition_text)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .customize()
            .config_override(self.cut())
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(c)) => {
                    Err(condition_failed(table, c.item()))
                }
                _ => Err(classify("PutItem", table, e)),
            },
        }
    }

    async fn update(
        &self,
        table: &str,
        key: &Item,
        update: &Update,
        condition: Option<&Condition>,
    ) -> Result<Item, PortError> {
        let mut expr = Expression::default();
        let update_text = expr.update(update);
        let condition_text = condition.map(|c| expr.condition(c));
        let result = self
            .client
            .update_item()
            .table_name(table)
            .set_key(Some(to_sdk(key.clone())))
            .update_expression(update_text)
            .set_condition_expression(condition_text)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllNew)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .customize()
            .config_override(self.cut())
            .send()
            .await;
        match result {
            Ok(output) => Ok(from_sdk(output.attributes.unwrap_or_default())),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::update_item::UpdateItemError::ConditionalCheckFailedException(c)) => {
                    Err(condition_failed(table, c.item()))
                }
                _ => Err(classify("UpdateItem", table, e)),
            },
        }
    }

    async fn delete(
        &self,
        table: &str,
        key: &Item,
        condition: Option<&Condition>,
    ) -> Result<Option<Item>, PortError> {
        let mut expr = Expression::default();
        let condition_text = condition.map(|c| expr.condition(c));
        let result = self
            .client
            .delete_item()
            .table_name(table)
            .set_key(Some(to_sdk(key.clone())))
            .set_condition_expression(condition_text)
            .set_expression_attribute_names(expr.names())
            .set_expression_attribute_values(expr.values())
            .return_values(ReturnValue::AllOld)
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .customize()
            .config_override(self.cut())
            .send()
            .await;
        match result {
            Ok(output) => Ok(output.attributes.map(from_sdk)),
            Err(e) => match e.as_service_error() {
                Some(aws_sdk_dynamodb::operation::delete_item::DeleteItemError::ConditionalCheckFailedException(c)) => {
                    Err(condition_failed(table, c.item()))
                }
                _ => Err(classify("DeleteItem", table, e)),
            },
        }
    }

    async fn query(&self, query: &Query) -> Result<Vec<Item>, PortError> {
        let mut expr = Expression::default();
        let (pk, pk_value) = &query.partition;
        let mut key_condition = format!("{} = {}", expr.name(pk), expr.value(pk_value));
        match &query.sort_key {
            Some((sk, SortKey::BeginsWith(prefix))) => {
                let value = AttributeValue::S(prefix.clone());
                key_condition = format!(
                    "{key_condition} AND begins_with({}, {})",
                    expr.name(sk),
                    expr.value(&value)
                );
            }
            Some((sk, SortKey::AtLeast(from))) => {
                let value = AttributeValue::S(from.clone());
                key_condition = format!(
                    "{key_condition} AND {} >= {}",
                    expr.name(sk),
                    expr.value(&value)
                );
            }
            None => {}
        }
        let mut items = Vec::new();
        let mut start: Option<SdkItem> = None;
        loop {
            let output = self
                .client
                .query()
                .table_name(&query.table)
                .set_index_name(query.index.clone())
                .key_condition_expression(&key_condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .scan_index_forward(query.ascending)
                // GSIs only offer eventually consistent reads.
                .consistent_read(query.index.is_none())
                .set_exclusive_start_key(start.take())
                .customize()
                .config_override(self.cut())
                .send()
                .await
                .map_err(|e| classify("Query", &query.table, e))?;
            items.extend(output.items.unwrap_or_default().into_iter().map(from_sdk));
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }

    async fn transact_write(&self, items: Vec<TransactItem>) -> Result<(), PortError> {
        let tables: Vec<String> = items.iter().map(|i| i.table().to_string()).collect();
        let target = tables.first().cloned().unwrap_or_default();
        let requests = items
            .into_iter()
            .map(to_transact_item)
            .collect::<Result<Vec<_>, _>>()?;
        let result = self
            .client
            .transact_write_items()
            .set_transact_items(Some(requests))
            .customize()
            .config_override(self.cut())
            .send()
            .await;
        let Err(error) = result else {
            return Ok(());
        };
        use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
        if let Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) =
            error.as_service_error()
        {
            let reasons = cancelled.cancellation_reasons();
            if let Some((index, reason)) = reasons
                .iter()
                .enumerate()
                .find(|(_, r)| r.code() == Some("ConditionalCheckFailed"))
            {
                return Err(condition_failed(
                    tables.get(index).map_or(target.as_str(), String::as_str),
                    reason.item(),
                ));
            }
            // TransactionConflict and throttling: another writer was on the same item.
            let codes: Vec<&str> = reasons
                .iter()
                .filter_map(|r| r.code())
                .filter(|c| *c != "None")
                .collect();
            return Err(PortError::Transient {
                operation: "TransactWriteItems",
                target,
                message: format!("transaction cancelled: {}", codes.join(", ")),
            });
        }
        Err(classify("TransactWriteItems", &target, error))
    }

    async fn batch_get(&self, table: &str, keys: Vec<Item>) -> Result<Vec<Item>, PortError> {
        let client = &self.client;
        let keys: Vec<SdkItem> = keys.into_iter().map(to_sdk).collect();
        // The requests go out at once: a batch waits for one round trip, not one per 100 keys.
        let reads = keys.chunks(100).map(|chunk| async move {
            until_processed("BatchGetItem", table, chunk.to_vec(), |unread| async move {
                let request = KeysAndAttributes::builder()
                    .set_keys(Some(unread))
                    .consistent_read(true)
                    .build()
                    .map_err(|e| PortError::Permanent {
                        operation: "BatchGetItem",
                        target: table.to_string(),
                        message: e.to_string(),
                    })?;
                let output = client
                    .batch_get_item()
                    .request_items(table, request)
                    .customize()
                    .config_override(self.cut())
                    .send()
                    .await
                    .map_err(|e| classify("BatchGetItem", table, e))?;
                let items = output.responses.and_then(|mut r| r.remove(table));
                let unread = output.unprocessed_keys.and_then(|mut u| u.remove(table));
                Ok((
                    unread.map(|k| k.keys).unwrap_or_default(),
                    items.unwrap_or_default(),
                ))
            })
            .await
        });
        let read = futures::future::try_join_all(reads).await?;
        Ok(read.into_iter().flatten().map(from_sdk).collect())
    }

    async fn batch_write(&self, table: &str, writes: &[WriteRequest]) -> Result<(), PortError> {
        let client = &self.client;
        let writes = dedupe_by_key(&self.catalog, table, writes);
        // The requests go out at once: a flush waits for one round trip, not one per 25 items.
        // Each item appears once (deduplicated), so their order does not matter.
        let requests = writes.chunks(25).map(|chunk| async move {
            let requests: Vec<SdkWrite> = chunk
                .iter()
                .map(|w| to_sdk_write(w))
                .collect::<Result<_, _>>()?;
            until_processed("BatchWriteItem", table, requests, |requests| async move {
                let output = client
                    .batch_write_item()
                    .request_items(table, requests)
                    .customize()
                    .config_override(self.cut())
                    .send()
                    .await
                    .map_err(|e| classify("BatchWriteItem", table, e))?;
                let unprocessed = output.unprocessed_items.and_then(|mut u| u.remove(table));
                Ok((unprocessed.unwrap_or_default(), Vec::<()>::new()))
            })
            .await
        });
        futures::future::try_join_all(requests).await?;
        Ok(())
    }
}

/// Send `pending` with `send` until DynamoDB has processed all of it: `send` returns what came
/// back unprocessed (sent again after a backoff, at most [`BATCH_RETRIES`] times) and what it
/// read, which is returned.
async fn until_processed<T, O, Sent>(
    operation: &'static str,
    table: &str,
    mut pending: Vec<T>,
    send: impl Fn(Vec<T>) -> Sent,
) -> Result<Vec<O>, PortError>
where
    Sent: std::future::Future<Output = Result<(Vec<T>, Vec<O>), PortError>>,
{
    let mut read = Vec::new();
    let mut attempt = 0;
    while !pending.is_empty() {
        if attempt > BATCH_RETRIES {
            return Err(PortError::Transient {
                operation,
                target: table.to_string(),
                message: format!(
                    "{} requests still unprocessed after {BATCH_RETRIES} retries",
                    pending.len()
                ),
            });
        }
        if attempt > 0 {
            UNPROCESSED_ITEMS.pause(attempt).await;
        }
        let (unprocessed, output) = send(pending).await?;
        read.extend(output);
        pending = unprocessed;
        attempt += 1;
    }
    Ok(read)
}

fn build_failed(e: aws_sdk_dynamodb::error::BuildError) -> PortError {
    PortError::Permanent {
        operation: "TransactWriteItems",
        target: "request".to_string(),
        message: e.to_string(),
    }
}

/// One TransactWriteItem, with its own placeholders.
fn to_transact_item(item: TransactItem) -> Result<TransactWriteItem, PortError> {
    let mut expr = Expression::default();
    let on_failure = ReturnValuesOnConditionCheckFailure::AllOld;
    let built = match item {
        TransactItem::Put {
            table,
            item,
            condition,
        } => {
            let condition = condition.map(|c| expr.condition(&c));
            let put = Put::builder()
                .table_name(table)
                .set_item(Some(to_sdk(item)))
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values_on_condition_check_failure(on_failure)
                .build()
                .map_err(build_failed)?;
            TransactWriteItem::builder().put(put).build()
        }
        TransactItem::Update {
            table,
            key,
            update,
            condition,
        } => {
            let update_text = expr.update(&update);
            let condition = condition.map(|c| expr.condition(&c));
            let update = SdkUpdate::builder()
                .table_name(table)
                .set_key(Some(to_sdk(key)))
                .update_expression(update_text)
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values_on_condition_check_failure(on_failure)
                .build()
                .map_err(build_failed)?;
            TransactWriteItem::builder().update(update).build()
        }
        TransactItem::Delete {
            table,
            key,
            condition,
        } => {
            let condition = condition.map(|c| expr.condition(&c));
            let delete = Delete::builder()
                .table_name(table)
                .set_key(Some(to_sdk(key)))
                .set_condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values_on_condition_check_failure(on_failure)
                .build()
                .map_err(build_failed)?;
            TransactWriteItem::builder().delete(delete).build()
        }
        TransactItem::Check {
            table,
            key,
            condition,
        } => {
            let condition = expr.condition(&condition);
            let check = ConditionCheck::builder()
                .table_name(table)
                .set_key(Some(to_sdk(key)))
                .condition_expression(condition)
                .set_expression_attribute_names(expr.names())
                .set_expression_attribute_values(expr.values())
                .return_values_on_condition_check_failure(on_failure)
                .build()
                .map_err(build_failed)?;
            TransactWriteItem::builder().condition_check(check).build()
        }
    };
    Ok(built)
}

/// DynamoDB refuses a BatchWriteItem naming one key twice; keep the last write per key.
fn dedupe_by_key<'w>(
    catalog: &Catalog,
    table: &str,
    writes: &'w [WriteRequest],
) -> Vec<&'w WriteRequest> {
    let mut last_index: HashMap<String, usize> = HashMap::new();
    let keyed: Vec<(String, &WriteRequest)> = writes
        .iter()
        .map(|w| {
            let item = match w {
                WriteRequest::Put(item) | WriteRequest::Delete(item) => item,
            };
            let key = serde_json::to_string(&handlers::item::sorted(&catalog.key_of(table, item)))
                .unwrap_or_default();
            (key, w)
        })
        .collect();
    for (i, (key, _)) in keyed.iter().enumerate() {
        last_index.insert(key.clone(), i);
    }
    keyed
        .into_iter()
        .enumerate()
        .filter(|(i, (key, _))| last_index.get(key) == Some(i))
        .map(|(_, (_, w))| w)
        .collect()
}

fn to_sdk_write(write: &WriteRequest) -> Result<SdkWrite, PortError> {
    let invalid = |e: aws_sdk_dynamodb::error::BuildError| PortError::Permanent {
        operation: "BatchWriteItem",
        target: "request".to_string(),
        message: e.to_string(),
    };
    Ok(match write {
        WriteRequest::Put(item) => SdkWrite::builder()
            .put_request(
                PutRequest::builder()
                    .set_item(Some(to_sdk(item.clone())))
                    .build()
                    .map_err(invalid)?,
            )
            .build(),
        WriteRequest::Delete(key) => SdkWrite::builder()
            .delete_request(
                DeleteRequest::builder()
                    .set_key(Some(to_sdk(key.clone())))
                    .build()
                    .map_err(invalid)?,
            )
            .build(),
    })
}

/// The distinct string values of `attribute` over a whole table (every page of a Scan that
/// reads only that attribute): what `reconcile --all` takes its providers from.
pub async fn distinct_values(
    client: &Client,
    table: &str,
    attribute: &str,
) -> Result<std::collections::BTreeSet<String>, PortError> {
    let mut values = std::collections::BTreeSet::new();
    let mut pages = client
        .scan()
        .table_name(table)
        .projection_expression("#a")
        .expression_attribute_names("#a", attribute)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| classify("Scan", table, e))?;
        for item in page.items() {
            if let Some(Ok(value)) = item.get(attribute).map(|v| v.as_s()) {
                values.insert(value.clone());
            }
        }
    }
    Ok(values)
}
