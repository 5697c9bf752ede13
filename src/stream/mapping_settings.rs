//! The event source mapping's settings, with Lambda's property names and defaults, as a
//! JSON file or a SAM template's stream event gives them, and the runner's own options.

use std::path::PathBuf;

use serde::de::IgnoredAny;
use serde::Deserialize;

use super::filter_criteria::FilterCriteria;

/// The most concurrent batches per shard Lambda allows.
const MAX_PARALLELIZATION_FACTOR: u32 = 10;

/// The event source mapping settings, with Lambda's property names and defaults.
/// Unknown properties are rejected so a misspelling is not silently ignored; the mapping's
/// other properties (as in `deploy/template.yaml`) are accepted and have no local effect.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase", default, deny_unknown_fields)]
pub struct MappingSettings {
    pub batch_size: i32,
    pub starting_position: String,
    /// -1: retry until the record succeeds (Lambda's default).
    pub maximum_retry_attempts: i32,
    /// How long to keep gathering records, once there is one, before delivering a batch
    /// smaller than `BatchSize`. 0 (Lambda's default): deliver what one read returns.
    pub maximum_batching_window_in_seconds: u64,
    /// -1: no limit. Older records go to the on-failure file instead of the worker.
    pub maximum_record_age_in_seconds: i64,
    /// `["ReportBatchItemFailures"]`: a failure checkpoints before the reported record and
    /// retries from it. Empty (Lambda's default): the whole batch failed.
    pub function_response_types: Vec<String>,
    /// With whole-batch failures: split a failing batch in halves and retry each on its own.
    pub bisect_batch_on_function_error: bool,
    pub filter_criteria: FilterCriteria,
    /// How many batches of one shard are delivered at once (1 to 10), each record dealt by
    /// the hash of its partition key, so one key's records stay in one delivery, in order.
    pub parallelization_factor: u32,
    /// The stream comes from `--table`; one shard is read at a time; failures go to the
    /// on-failure file; the rest have no local meaning.
    stream: IgnoredAny,
    destination_config: IgnoredAny,
    enabled: IgnoredAny,
    tumbling_window_in_seconds: IgnoredAny,
    metrics_config: IgnoredAny,
}

impl MappingSettings {
    pub(super) fn reports_item_failures(&self) -> bool {
        self.function_response_types
            .iter()
            .any(|t| t == "ReportBatchItemFailures")
    }

    /// The settings, if Lambda would take them; otherwise what is wrong, by property.
    pub fn checked(self) -> Result<Self, String> {
        if !(1..=MAX_PARALLELIZATION_FACTOR).contains(&self.parallelization_factor) {
            return Err(format!(
                "ParallelizationFactor is {}: Lambda takes 1 to {MAX_PARALLELIZATION_FACTOR}",
                self.parallelization_factor
            ));
        }
        if self.batch_size < 1 {
            return Err(format!(
                "BatchSize is {}: Lambda takes 1 to 10000",
                self.batch_size
            ));
        }
        Ok(self)
    }

    /// `BatchSize` as a count.
    pub(super) fn batch_len(&self) -> usize {
        usize::try_from(self.batch_size).unwrap_or(1).max(1)
    }

    /// Whether `attempts` failed deliveries are past `MaximumRetryAttempts` (-1: never).
    pub(super) fn retries_exhausted(&self, attempts: i32) -> bool {
        self.maximum_retry_attempts >= 0 && attempts > self.maximum_retry_attempts
    }
}

impl Default for MappingSettings {
    fn default() -> Self {
        MappingSettings {
            batch_size: 100,
            starting_position: "TRIM_HORIZON".into(),
            maximum_retry_attempts: -1,
            maximum_record_age_in_seconds: -1,
            maximum_batching_window_in_seconds: 0,
            function_response_types: Vec::new(),
            bisect_batch_on_function_error: false,
            filter_criteria: FilterCriteria::default(),
            parallelization_factor: 1,
            stream: IgnoredAny,
            destination_config: IgnoredAny,
            enabled: IgnoredAny,
            tumbling_window_in_seconds: IgnoredAny,
            metrics_config: IgnoredAny,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StreamOptions {
    pub tables: Vec<String>,
    pub settings: MappingSettings,
    pub checkpoints: PathBuf,
    pub on_failure: PathBuf,
    pub once: bool,
    /// One JSON object per batch line instead of text.
    pub json: bool,
    /// With `--json`: print the event counts this often too, not only at the end.
    pub counts_interval: std::time::Duration,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_factor_lambda_would_refuse_is_refused_by_name() {
        let settings = |json: &str| serde_json::from_str::<MappingSettings>(json).unwrap();
        assert_eq!(settings("{}").checked().unwrap().parallelization_factor, 1);
        assert_eq!(
            settings(r#"{"ParallelizationFactor": 10}"#)
                .checked()
                .unwrap()
                .parallelization_factor,
            10
        );
        for refused in [0, 11] {
            let error = settings(&format!(r#"{{"ParallelizationFactor": {refused}}}"#))
                .checked()
                .unwrap_err();
            assert!(error.contains("ParallelizationFactor is"), "{error}");
        }
        assert!(settings(r#"{"BatchSize": 0}"#).checked().is_err());
    }
}
