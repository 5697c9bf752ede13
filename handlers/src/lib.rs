//! The reactions of ddb-stream-worker: pure logic over small port traits.
//!
//! This crate has no AWS SDK and no Lambda runtime in its dependencies, so the compiler keeps
//! the boundary: a reaction sees a typed [`Change`] and touches the world only through the
//! ports in [`ports`]. The shell crate (`ddb_stream_worker`) decodes stream events, runs the
//! batch and provides the adapters (AWS SDK or the embedded local state).
//!
//! # Layout
//!
//! - [`change`], [`item`], [`error`]: a stream record as a typed change, items through
//!   serde_dynamo, and the errors a reaction or a port returns.
//! - [`value_rules`]: DynamoDB's rules for attribute values (numbers, sets, nesting, item
//!   size, keys), which decoding and the embedded tables both hold input to.
//! - [`ports`]: what a reaction may touch (tables, objects, mail, clock).
//! - [`reactions`]: one module per reaction, named after it, and the registry.
//! - [`cost`]: the cost platform's domain (items, pricing, savings rates, proposal rendering),
//!   used by the cost reactions.
//! - [`mail`], [`templates`], [`redact`], [`settings`], [`attribute_names`], [`instant`],
//!   [`text`]: what several reactions share.
//!
//! Reactions depend on the domain modules and the ports; nothing here depends on a reaction
//! but the registry.

#![warn(unreachable_pub)]

pub mod attribute_names;
pub mod change;
pub mod cost;
pub mod error;
pub mod instant;
pub mod item;
pub mod mail;
pub mod ports;
pub mod reactions;
pub mod redact;
pub mod sequence_number;
pub mod settings;
pub mod skipped;
pub mod templates;
pub mod text;
pub mod value_rules;

pub use change::{Change, ChangeKind};
pub use error::{PortError, ReactionError};
pub use item::{AttributeValue, Item};
pub use reactions::{Idempotency, Reacted, Reaction};
