//! ddb-stream-worker: the AWS-facing shell around the reactions in the `handlers` crate.
//!
//! # Layout
//!
//! A folder per role. Each role imports only from the roles below it; a test
//! (`tests/layout.rs`) reads the imports and holds this.
//!
//! | role | what it is | imports from |
//! |---|---|---|
//! | [`cli`] | the commands (`replay`, `state`, `stream`, `tables`) and what they print | everything below |
//! | [`lambda`] | the Lambda runtime glue and its metrics | `wiring`, `batch`, `decode`, `catalog` |
//! | [`stream`] | the local event source mapping: polling, filters, GetRecords conversion, template settings | `batch`, `decode`, `adapters` |
//! | [`wiring`] | configuration, and building a worker with its adapters | `batch`, `adapters`, `catalog` |
//! | [`batch`] | one batch: order, idempotency, effect recording, request counting | `adapters`, `decode`, `catalog` |
//! | [`adapters`] | the ports on the AWS SDK and on the embedded local state | `catalog` |
//! | [`decode`] | stream records in (Lambda events, GetRecords output), DynamoDB's number rules | nothing |
//! | [`catalog`] | key schemas of the tables the worker knows (`deploy/tables/`) | nothing |
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
pub mod stream;
pub mod wiring;
