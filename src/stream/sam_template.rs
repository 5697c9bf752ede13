//! Event source mapping settings read straight from a SAM template (`deploy/template.yaml`),
//! so `stream` runs with the same settings the deployment uses.
//!
//! A function's stream event (`Events.<name>`, `Type: DynamoDB`) holds the properties; `!Ref`s
//! to template parameters are replaced by the parameters' defaults. Properties the local runner
//! has no use for (`Stream`, `ParallelizationFactor`, `DestinationConfig`) are ignored.

use serde_yaml_ng::Value;

use super::mapping_settings::MappingSettings;

/// The settings of stream event `event` in the SAM template `text` (named `source` in errors).
pub(crate) fn mapping_settings(
    text: &str,
    source: &str,
    event: &str,
) -> Result<MappingSettings, String> {
    let template: Value =
        serde_yaml_ng::from_str(text).map_err(|e| format!("{source}: not a YAML template: {e}"))?;
    let events = stream_events(&template);
    let Some(properties) = events
        .iter()
        .find(|(name, _)| name == event)
        .map(|(_, properties)| *properties)
    else {
        let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
        return Err(format!(
            "{source}: no DynamoDB stream event named {event:?}; the template has: {}",
            names.join(", ")
        ));
    };
    let resolved = resolve_refs(properties, &template["Parameters"]);
    serde_yaml_ng::from_value(resolved).map_err(|e| format!("{source}: event {event}: {e}"))
}

/// Every `Type: DynamoDB` event of every resource, by name.
fn stream_events(template: &Value) -> Vec<(String, &Value)> {
    let Some(resources) = template["Resources"].as_mapping() else {
        return Vec::new();
    };
    resources
        .values()
        .filter_map(|resource| resource["Properties"]["Events"].as_mapping())
        .flat_map(|events| events.iter())
        .filter(|(_, event)| event["Type"].as_str() == Some("DynamoDB"))
        .filter_map(|(name, event)| Some((name.as_str()?.to_string(), &event["Properties"])))
        .collect()
}

/// `value` with each `!Ref Parameter` that has a default replaced by it.
fn resolve_refs(value: &Value, parameters: &Value) -> Value {
    match value {
        Value::Tagged(tagged) if tagged.tag == "Ref" => tagged
            .value
            .as_str()
            .map(|name| &parameters[name]["Default"])
            .filter(|default| !default.is_null())
            .cloned()
            .unwrap_or_else(|| value.clone()),
        Value::Mapping(map) => Value::Mapping(
            map.iter()
                .map(|(k, v)| (k.clone(), resolve_refs(v, parameters)))
                .collect(),
        ),
        Value::Sequence(items) => {
            Value::Sequence(items.iter().map(|v| resolve_refs(v, parameters)).collect())
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_template_gives_the_deployed_settings() {
        let text = include_str!("../../deploy/template.yaml");
        let settings = mapping_settings(text, "template.yaml", "CostPlatform").unwrap();
        assert_eq!(settings.batch_size, 100);
        assert_eq!(settings.maximum_batching_window_in_seconds, 1);
        assert_eq!(settings.maximum_retry_attempts, 5);
        assert_eq!(settings.maximum_record_age_in_seconds, 21600);
        assert!(settings.bisect_batch_on_function_error);
        assert_eq!(
            settings.function_response_types,
            ["ReportBatchItemFailures"]
        );
        assert_eq!(settings.filter_criteria.filters.len(), 3);
        // `!Ref StartingPosition` took the parameter's default.
        assert_eq!(settings.starting_position, "TRIM_HORIZON");
    }

    #[test]
    fn every_stream_event_in_the_shipped_template_is_understood() {
        let text = include_str!("../../deploy/template.yaml");
        let template: Value = serde_yaml_ng::from_str(text).unwrap();
        let events = stream_events(&template);
        assert!(events.len() >= 7, "{}", events.len());
        for (name, _) in events {
            mapping_settings(text, "template.yaml", &name).unwrap();
        }
    }

    #[test]
    fn a_misspelled_property_is_an_error() {
        let text = "Resources:\n  F:\n    Properties:\n      Events:\n        E:\n          Type: DynamoDB\n          Properties:\n            BatchSiz: 10\n";
        let error = mapping_settings(text, "t.yaml", "E").unwrap_err();
        assert!(error.contains("BatchSiz"), "{error}");
    }

    #[test]
    fn an_unknown_event_lists_the_ones_there_are() {
        let text = include_str!("../../deploy/template.yaml");
        let error = mapping_settings(text, "template.yaml", "Nope").unwrap_err();
        assert!(
            error.contains("CostPlatform") && error.contains("Reviews"),
            "{error}"
        );
    }
}
