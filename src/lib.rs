//! ddb-stream-worker: the AWS-facing shell around the reactions in the `handlers` crate.
//!
//! # Layout
//!
//! A folder per role. Each role imports only from the roles below it, and inside a folder
//! each room only from the rooms below it; a test (`tests/layout.rs`) reads the imports and
//! holds both.
//!
//! | role | what it is | imports from |
//! |---|---|---|
//! | [`cli`] | the commands (`replay`, `state`, `stream`, `redrive`, `reconcile`, `tables`), the one set of target flags, what they print | everything below |
//! | [`lambda`] | the Lambda runtime glue and its metrics | `wiring`, `batch`, `adapters`, `decode`, `catalog`, `stages` |
//! | [`stream`] | the local event source mapping: [`stream::reader`] reads a stream, `delivery` delivers a shard as Lambda does (filters, retries, bisect, checkpoints, on-failure) | `batch`, `adapters`, `decode`, `catalog`, `stages` |
//! | [`wiring`] | configuration; the [`wiring::target::Target`] (embedded, endpoint, AWS) and the one place that builds its adapters; every SDK client | `batch`, `adapters`, `decode`, `catalog`, `stages` |
//! | [`batch`] | one batch: `mod` (Worker, `process_batch`) runs the steps `plan` → `lanes` → `run` → `fold` → `deferred` → `conclude` → `notes`, each a room of its own; `settle`, `report`; idempotency, effect recording, request counting | `adapters`, `decode`, `catalog`, `stages` |
//! | [`adapters`] | the ports on the AWS SDK and on the embedded local state; the one backoff and the one atomic file writer | `catalog`, `stages` |
//! | [`decode`] | stream records in (Lambda events, GetRecords output), DynamoDB's number rules | nothing |
//! | [`catalog`] | key schemas of the tables the worker knows (`deploy/tables/`) | nothing |
//! | [`stages`] | time spent per stage of a run (`replay --timings`) | nothing |
//!
//! Every role may use the `handlers` crate (reactions, ports, items), which uses none of them.
//! [`fuzz_target`] is the body of the fuzz target and of its smoke test.

#![warn(unreachable_pub)]

pub mod adapters;
pub mod batch;
pub mod catalog;
pub mod cli;
pub mod decode;
pub mod fuzz_target;
pub mod lambda;
pub mod stages;
pub mod stream;
pub mod wiring;
