//! The deploy template deploys beside the seed: with its default parameters it creates no
//! resource under a name the seed's tables or buckets have, nor under a fixed name a second
//! stack in the same account would collide with; the seed's idempotency table and documents
//! bucket can be named as existing instead, and then the stack does not create them.

use std::collections::BTreeMap;
use std::path::Path;

use ddb_stream_worker::catalog::DEFINITIONS;
use serde_yaml_ng::Value;

/// Properties that name a resource's physical name.
const NAME_PROPERTIES: &[&str] = &[
    "TableName",
    "BucketName",
    "QueueName",
    "FunctionName",
    "LogGroupName",
    "RoleName",
    "TopicName",
];

/// The seed's buckets (the cost platform's proposals, PilotForce's assets).
const SEED_BUCKETS: &[&str] = &["aws-cost-estimation-documents", "pilotforce-user-assets"];

fn template() -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/template.yaml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A value with `!Ref Parameter` and `${Parameter}` in `!Sub` replaced by the parameters'
/// values; pseudo parameters (`${AWS::StackName}`) stay as they are.
fn render(value: &Value, parameters: &BTreeMap<String, String>) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Tagged(tagged) if tagged.tag == "Ref" => {
            let name = tagged.value.as_str()?;
            Some(
                parameters
                    .get(name)
                    .cloned()
                    .unwrap_or_else(|| format!("${{{name}}}")),
            )
        }
        Value::Tagged(tagged) if tagged.tag == "Sub" => {
            let mut text = tagged.value.as_str()?.to_string();
            for (name, value) in parameters {
                text = text.replace(&format!("${{{name}}}"), value);
            }
            Some(text)
        }
        _ => None,
    }
}

/// Parameter values: the defaults, with `overrides`.
fn parameters(template: &Value, overrides: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut values: BTreeMap<String, String> = template["Parameters"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter_map(|(name, p)| {
            Some((
                name.as_str()?.to_string(),
                p["Default"].as_str()?.to_string(),
            ))
        })
        .collect();
    for (name, value) in overrides {
        values.insert(name.to_string(), value.to_string());
    }
    values
}

/// Whether a condition holds: the template's conditions are `!Equals [!Ref P, "value"]`.
fn holds(template: &Value, condition: &str, parameters: &BTreeMap<String, String>) -> bool {
    let Value::Tagged(equals) = &template["Conditions"][condition] else {
        panic!("condition {condition} is not an !Equals");
    };
    assert_eq!(equals.tag, "Equals", "condition {condition}");
    let sides: Vec<String> = equals
        .value
        .as_sequence()
        .unwrap()
        .iter()
        .map(|side| render(side, parameters).unwrap())
        .collect();
    sides[0] == sides[1]
}

/// `(resource, property, physical name)` of every resource the stack creates that is named.
fn named_resources(overrides: &[(&str, &str)]) -> (Vec<String>, Vec<(String, String, String)>) {
    let template = template();
    let parameters = parameters(&template, overrides);
    let mut created = Vec::new();
    let mut named = Vec::new();
    for (name, resource) in template["Resources"].as_mapping().unwrap() {
        let name = name.as_str().unwrap().to_string();
        if let Some(condition) = resource["Condition"].as_str() {
            if !holds(&template, condition, &parameters) {
                continue;
            }
        }
        created.push(name.clone());
        for property in NAME_PROPERTIES {
            let value = &resource["Properties"][*property];
            if value.is_null() {
                continue;
            }
            let rendered = render(value, &parameters)
                .unwrap_or_else(|| panic!("{name}.{property}: a name this test cannot read"));
            named.push((name.clone(), property.to_string(), rendered));
        }
    }
    (created, named)
}

#[test]
fn with_default_parameters_no_resource_takes_a_seed_name_or_a_fixed_one() {
    let (created, named) = named_resources(&[]);
    let seed_names: Vec<&str> = DEFINITIONS
        .iter()
        .map(|(table, _)| *table)
        .chain(SEED_BUCKETS.iter().copied())
        .collect();
    for (resource, property, name) in &named {
        assert!(
            !seed_names.iter().any(|seed| name.contains(seed)),
            "{resource}.{property} = {name}: a name the seed already uses"
        );
        assert!(
            name.contains("${AWS::StackName}"),
            "{resource}.{property} = {name}: fixed, so a second stack in the account collides"
        );
        assert_ne!(
            property, "FunctionName",
            "{resource}: a fixed function name"
        );
    }
    // By default the stack brings its own idempotency table and documents bucket.
    assert!(
        created.contains(&"IdempotencyTable".to_string()),
        "{created:?}"
    );
    assert!(
        created.contains(&"DocumentsBucket".to_string()),
        "{created:?}"
    );
    println!("created: {created:?}\nnamed: {named:?}");
}

#[test]
fn the_seeds_own_table_and_bucket_can_be_used_instead_of_created() {
    let (created, named) = named_resources(&[
        (
            "ExistingIdempotencyTableName",
            "marketplace-dev-idempotency-table",
        ),
        (
            "ExistingDocumentsBucketName",
            "aws-cost-estimation-documents",
        ),
    ]);
    for absent in [
        "IdempotencyTable",
        "DocumentsBucket",
        "DocumentsBucketPolicy",
    ] {
        assert!(
            !created.contains(&absent.to_string()),
            "{absent} is created though it exists: {created:?}"
        );
    }
    assert!(named
        .iter()
        .all(|(_, _, name)| name.contains("${AWS::StackName}")));
}

#[test]
fn the_function_is_configured_with_what_the_stack_uses() {
    // IDEMPOTENCY_TABLE and DOCUMENTS_BUCKET follow the choice between existing and created.
    let template = template();
    let variables =
        &template["Resources"]["WorkerFunction"]["Properties"]["Environment"]["Variables"];
    for (variable, condition, existing) in [
        (
            "IDEMPOTENCY_TABLE",
            "CreateIdempotencyTable",
            "ExistingIdempotencyTableName",
        ),
        (
            "DOCUMENTS_BUCKET",
            "CreateDocumentsBucket",
            "ExistingDocumentsBucketName",
        ),
    ] {
        let Value::Tagged(choice) = &variables[variable] else {
            panic!("{variable} is not chosen with !If");
        };
        assert_eq!(choice.tag, "If");
        let arms = choice.value.as_sequence().unwrap();
        assert_eq!(arms[0].as_str(), Some(condition), "{variable}");
        let Value::Tagged(otherwise) = &arms[2] else {
            panic!("{variable}: the existing arm is not a !Ref");
        };
        assert_eq!(otherwise.value.as_str(), Some(existing), "{variable}");
    }
}

#[test]
fn logs_are_json_with_a_level_that_changes_without_new_code() {
    let template = template();
    let logging = &template["Resources"]["WorkerFunction"]["Properties"]["LoggingConfig"];
    assert_eq!(logging["LogFormat"].as_str(), Some("JSON"));
    let Value::Tagged(level) = &logging["ApplicationLogLevel"] else {
        panic!("ApplicationLogLevel is not a parameter");
    };
    assert_eq!(level.value.as_str(), Some("LogLevel"));
    assert_eq!(
        template["Parameters"]["LogLevel"]["Default"].as_str(),
        Some("INFO")
    );
    // RUST_LOG would override Lambda's level: the deployed function does not set it.
    let variables =
        &template["Resources"]["WorkerFunction"]["Properties"]["Environment"]["Variables"];
    assert!(variables["RUST_LOG"].is_null());
}

/// Issue 29: parked records hold application data, so they expire as the queue's messages do
/// (14 days) and travel only over TLS; the assets grant is no wider than the assets prefix.
#[test]
fn parked_records_expire_and_travel_only_over_tls() {
    let template = template();
    let resources = &template["Resources"];
    let queue_days = resources["FailedRecordsQueue"]["Properties"]["MessageRetentionPeriod"]
        .as_u64()
        .unwrap()
        / 86_400;
    assert_eq!(queue_days, 14);
    let rules = resources["DocumentsBucket"]["Properties"]["LifecycleConfiguration"]["Rules"]
        .as_sequence()
        .unwrap();
    let parked = rules
        .iter()
        .find(|r| r["Prefix"].as_str() == Some("parked/"))
        .expect("a lifecycle rule for parked/");
    assert_eq!(parked["ExpirationInDays"].as_u64(), Some(queue_days));
    let policy = &resources["FailedRecordsQueuePolicy"]["Properties"]["PolicyDocument"];
    let statement = &policy["Statement"][0];
    assert_eq!(statement["Effect"].as_str(), Some("Deny"));
    assert_eq!(
        statement["Condition"]["Bool"]["aws:SecureTransport"].as_str(),
        Some("false")
    );
    let statements = resources["WorkerRole"]["Properties"]["Policies"][0]["PolicyDocument"]
        ["Statement"]
        .as_sequence()
        .unwrap();
    let assets = statements
        .iter()
        .find(|s| s["Sid"].as_str() == Some("AssetObjectsDelete"))
        .unwrap();
    let Value::Tagged(resource) = &assets["Resource"] else {
        panic!("the assets grant is not a !Sub")
    };
    assert!(
        resource
            .value
            .as_str()
            .unwrap()
            .ends_with("/${PilotForceAssetsPrefix}*"),
        "{resource:?}"
    );
}

/// The stream events of the worker function, by name.
fn mappings(template: &Value) -> Vec<(String, Value)> {
    template["Resources"]["WorkerFunction"]["Properties"]["Events"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, event)| event["Type"] == "DynamoDB")
        .map(|(name, event)| (name.as_str().unwrap().to_string(), event.clone()))
        .collect()
}

/// `!Ref NAME` -> NAME.
fn reference(value: &Value) -> Option<&str> {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged.value.as_str(),
        _ => None,
    }
}

/// The template's alarms: (logical id, properties).
fn alarms(template: &Value) -> Vec<(String, Value)> {
    template["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|(id, r)| (id.as_str().unwrap().to_string(), r["Properties"].clone()))
        .collect()
}

/// An alarm's dimensions: name -> value.
fn dimensions(alarm: &Value) -> BTreeMap<String, Value> {
    alarm["Dimensions"]
        .as_sequence()
        .map(|dims| {
            dims.iter()
                .map(|d| (d["Name"].as_str().unwrap().to_string(), d["Value"].clone()))
                .collect()
        })
        .unwrap_or_default()
}

/// The AWS metrics the alarms may watch, with the dimensions AWS publishes them under (AWS
/// emits these, so they are written here; the worker's own are read from its metric writer).
const AWS_METRICS: &[(&str, &str, &[&str])] = &[
    ("AWS/Lambda", "Errors", &["FunctionName"]),
    ("AWS/Lambda", "IteratorAge", &["FunctionName"]),
    (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
        &["QueueName"],
    ),
];

#[test]
fn every_alarm_watches_a_metric_that_is_emitted_under_the_dimensions_it_names() {
    use ddb_stream_worker::lambda::metrics::{EMITTED, FUNCTION, NAMESPACE};
    let template = template();
    let alarms = alarms(&template);
    assert!(!alarms.is_empty());
    let parameters = template["Parameters"].as_mapping().unwrap();
    for (id, alarm) in &alarms {
        let namespace = alarm["Namespace"].as_str().unwrap();
        let metric = alarm["MetricName"].as_str().unwrap();
        let dims = dimensions(alarm);
        let names: Vec<&str> = dims.keys().map(String::as_str).collect();
        if namespace == NAMESPACE {
            let emitted = EMITTED.iter().any(|set| {
                set.metrics.iter().any(|(name, _)| *name == metric)
                    && set.dimensions.iter().any(|d| {
                        let mut d = d.to_vec();
                        d.sort();
                        d == names
                    })
            });
            assert!(
                emitted,
                "{id}: the worker emits no {metric} under dimensions {names:?}"
            );
            assert_eq!(
                reference(&dims[FUNCTION]),
                Some("WorkerFunction"),
                "{id} watches this stack's function only"
            );
        } else {
            let known = AWS_METRICS
                .iter()
                .any(|(ns, name, d)| *ns == namespace && *name == metric && d.to_vec() == names);
            assert!(
                known,
                "{id}: {namespace} {metric} {names:?} is not one AWS emits"
            );
        }
        // Every threshold is a parameter; notifications go to the topic only when one is given.
        let threshold = reference(&alarm["Threshold"]).unwrap_or_else(|| panic!("{id}"));
        assert!(parameters.contains_key(threshold), "{id}: {threshold}");
        assert!(alarm.get("AlarmName").is_none(), "{id} has a fixed name");
        for actions in ["AlarmActions", "OKActions"] {
            let Value::Tagged(when) = &alarm[actions] else {
                panic!("{id}: {actions} is not conditional");
            };
            assert_eq!(when.tag, "If", "{id}");
            assert_eq!(when.value[0], "NotifyAlarms", "{id}");
        }
    }
    assert_eq!(template["Parameters"]["AlarmTopicArn"]["Default"], "");
}

#[test]
fn every_mapping_has_its_own_iterator_age_alarm_and_lambdas_event_counts() {
    use ddb_stream_worker::lambda::metrics::{EVENT_SOURCE, NAMESPACE};
    let template = template();
    let alarms = alarms(&template);
    let mappings = mappings(&template);
    assert_eq!(mappings.len(), 7);
    for (name, mapping) in &mappings {
        let properties = &mapping["Properties"];
        assert_eq!(
            properties["MetricsConfig"]["Metrics"],
            serde_yaml_ng::from_str::<Value>("[EventCount]").unwrap(),
            "{name}"
        );
        // The stream `XStreamArn` is the stream of table `XTableName`, whose name the worker
        // reads from the records' eventSourceARN.
        let stream = reference(&properties["Stream"]).unwrap();
        let table = stream.replace("StreamArn", "TableName");
        let watching: Vec<&String> = alarms
            .iter()
            .filter(|(_, a)| {
                a["Namespace"] == NAMESPACE
                    && a["MetricName"] == "IteratorAge"
                    && dimensions(a)
                        .get(EVENT_SOURCE)
                        .is_some_and(|v| reference(v) == Some(table.as_str()))
            })
            .map(|(id, _)| id)
            .collect();
        assert_eq!(watching.len(), 1, "{name}: {watching:?}");
        let alarm = &alarms.iter().find(|(id, _)| id == watching[0]).unwrap().1;
        assert_eq!(alarm["Statistic"], "Maximum", "{name}");
        assert_eq!(alarm["Period"].as_u64(), Some(300), "{name}");
    }
}
