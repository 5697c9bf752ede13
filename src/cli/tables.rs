//! `tables create`: the seed tables (deploy/tables/*.json) created on DynamoDB, DynamoDB
//! Local or a real account. Idempotent: a table that exists is left alone.

use std::time::Duration;

use aws_sdk_dynamodb::error::BuildError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType,
    PointInTimeRecoverySpecification, Projection, ProjectionType, ScalarAttributeType,
    StreamSpecification, StreamViewType, TableStatus, TimeToLiveSpecification,
};
use aws_sdk_dynamodb::Client;

pub use super::error::SetupError;
use super::error::{CliError, Exit};
use crate::adapters::classify;
use crate::catalog::{seed_definitions, KeyElement, TableDefinition};
use crate::wiring;
use crate::wiring::target::Target;

/// The command: create the tables, one line per table saying what was done.
pub async fn run(target: &Target, names: &[String]) -> Result<Exit, CliError> {
    let Some(sdk) = target.sdk_config().await else {
        return Err(CliError::Settings(
            "tables create runs on an endpoint or AWS".into(),
        ));
    };
    let client = wiring::dynamodb_client(&sdk);
    for line in create_tables(&client, names).await? {
        println!("{line}");
    }
    Ok(Exit::Clean)
}

/// Create the named seed tables (all when `names` is empty); returns one line per table
/// saying what was done.
pub async fn create_tables(client: &Client, names: &[String]) -> Result<Vec<String>, SetupError> {
    let definitions = seed_definitions();
    let chosen: Vec<&TableDefinition> = if names.is_empty() {
        definitions.iter().collect()
    } else {
        names
            .iter()
            .map(|name| {
                definitions
                    .iter()
                    .find(|d| &d.table_name == name)
                    .ok_or_else(|| SetupError::Unknown {
                        name: name.clone(),
                        known: definitions
                            .iter()
                            .map(|d| d.table_name.as_str())
                            .collect::<Vec<_>>()
                            .join(", "),
                    })
            })
            .collect::<Result<_, _>>()?
    };
    let mut lines = Vec::new();
    for definition in chosen {
        lines.push(create_one(client, definition).await?);
    }
    Ok(lines)
}

/// Create one table from its definition unless it exists; says what was done.
pub async fn create_one(
    client: &Client,
    definition: &TableDefinition,
) -> Result<String, SetupError> {
    let table = definition.table_name.as_str();
    let failed = |message: String| SetupError::Failed {
        table: table.to_string(),
        message,
    };
    if client
        .describe_table()
        .table_name(table)
        .send()
        .await
        .is_ok()
    {
        return Ok(format!("{table}: exists, left alone"));
    }
    let request = build_request(client, definition).map_err(|e| failed(e.to_string()))?;
    if let Err(e) = request.send().await {
        // Someone else created it since we looked: it exists, as far as we are concerned.
        if e.as_service_error()
            .is_some_and(|s| s.is_resource_in_use_exception())
        {
            return Ok(format!("{table}: exists, left alone"));
        }
        return Err(failed(classify("CreateTable", table, e).to_string()));
    }
    wait_until_active(client, table).await?;
    let mut done = vec!["created".to_string()];
    if let Some(ttl) = &definition.time_to_live_specification {
        let spec = TimeToLiveSpecification::builder()
            .attribute_name(&ttl.attribute_name)
            .enabled(true)
            .build()
            .map_err(|e| failed(e.to_string()))?;
        client
            .update_time_to_live()
            .table_name(table)
            .time_to_live_specification(spec)
            .send()
            .await
            .map_err(|e| failed(classify("UpdateTimeToLive", table, e).to_string()))?;
        done.push(format!("TTL on {}", ttl.attribute_name));
    }
    if let Some(stream) = &definition.stream_specification {
        if stream.stream_enabled {
            done.push(format!(
                "stream {}",
                stream
                    .stream_view_type
                    .as_deref()
                    .unwrap_or("NEW_AND_OLD_IMAGES")
            ));
        }
    }
    let pitr = PointInTimeRecoverySpecification::builder()
        .point_in_time_recovery_enabled(true)
        .build()
        .map_err(|e| failed(e.to_string()))?;
    match client
        .update_continuous_backups()
        .table_name(table)
        .point_in_time_recovery_specification(pitr)
        .send()
        .await
    {
        Ok(_) => done.push("point-in-time recovery".to_string()),
        // DynamoDB Local does not implement backups; the table is still usable.
        Err(e) => match e
            .as_service_error()
            .and_then(|s| aws_sdk_dynamodb::error::ProvideErrorMetadata::code(s))
        {
            Some("UnknownOperationException") => {
                done.push("point-in-time recovery not supported by this endpoint".to_string())
            }
            _ => done.push(format!(
                "point-in-time recovery NOT enabled: {}",
                classify("UpdateContinuousBackups", table, e)
            )),
        },
    }
    Ok(format!("{table}: {}", done.join(", ")))
}

fn key_schema(elements: &[KeyElement]) -> Result<Vec<KeySchemaElement>, BuildError> {
    elements
        .iter()
        .map(|e| {
            KeySchemaElement::builder()
                .attribute_name(&e.attribute_name)
                .key_type(KeyType::from(e.key_type.as_str()))
                .build()
        })
        .collect()
}

fn build_request(
    client: &Client,
    d: &TableDefinition,
) -> Result<aws_sdk_dynamodb::operation::create_table::builders::CreateTableFluentBuilder, BuildError>
{
    let mut request = client
        .create_table()
        .table_name(&d.table_name)
        // The seed writes ON_DEMAND, which CreateTable spells PAY_PER_REQUEST.
        .billing_mode(match d.billing_mode.as_deref() {
            Some("PROVISIONED") => BillingMode::Provisioned,
            _ => BillingMode::PayPerRequest,
        })
        .set_key_schema(Some(key_schema(&d.key_schema)?));
    for attribute in &d.attribute_definitions {
        request = request.attribute_definitions(
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()?,
        );
    }
    for index in &d.global_secondary_indexes {
        let projection = index
            .projection
            .as_ref()
            .map_or("ALL", |p| p.projection_type.as_str());
        request = request.global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(
                    Projection::builder()
                        .projection_type(ProjectionType::from(projection))
                        .build(),
                )
                .build()?,
        );
    }
    if let Some(stream) = &d.stream_specification {
        let view = stream
            .stream_view_type
            .as_deref()
            .unwrap_or("NEW_AND_OLD_IMAGES");
        request = request.stream_specification(
            StreamSpecification::builder()
                .stream_enabled(stream.stream_enabled)
                .stream_view_type(StreamViewType::from(view))
                .build()?,
        );
    }
    Ok(request)
}

async fn wait_until_active(client: &Client, table: &str) -> Result<(), SetupError> {
    let failed = |message: String| SetupError::Failed {
        table: table.to_string(),
        message,
    };
    for _ in 0..120 {
        let status = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| failed(classify("DescribeTable", table, e).to_string()))?
            .table
            .and_then(|t| t.table_status);
        if status == Some(TableStatus::Active) {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(failed(
        "table did not become ACTIVE within 60 s".to_string(),
    ))
}
