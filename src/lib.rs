//! ddb-stream-worker: the AWS-facing shell around the reactions in the `handlers` crate.
//!
//! - [`decode`]: Lambda stream events and GetRecords output into typed changes
//! - [`batch`]: one batch in order, idempotency, partial batch failure
//! - [`adapters`]: the ports on the AWS SDK and on the embedded local state
//! - [`replay`] and [`lambda`]: the two ways a batch arrives
//! - [`report`]: what a run prints, for people and (`--json`) for machines

pub mod adapters;
pub mod batch;
pub mod catalog;
pub mod config;
pub mod decode;
pub mod effects;
pub mod filter;
pub mod fuzz_target;
pub mod idempotency;
pub mod lambda;
pub mod metrics;
pub mod numbers;
pub mod replay;
pub mod report;
pub mod sam_template;
pub mod stream_records;
pub mod stream_runner;
pub mod table_setup;
pub mod wiring;
