//! The reactions of ddb-stream-worker: pure logic over small port traits.
//!
//! This crate has no AWS SDK and no Lambda runtime in its dependencies, so the compiler keeps
//! the boundary: a reaction sees a typed [`Change`] and touches the world only through the
//! ports in [`ports`]. The shell crate (`ddb_stream_worker`) decodes stream events, runs the
//! batch and provides the adapters (AWS SDK or the embedded local state).

pub mod acs;
pub mod audit;
pub mod bookings;
pub mod change;
pub mod cost;
pub mod error;
pub mod item;
pub mod mail;
pub mod marketplace;
pub mod pilotforce;
pub mod ports;
pub mod reaction;
pub mod redact;
pub mod templates;

pub use change::{Change, ChangeKind};
pub use error::{PortError, ReactionError};
pub use item::{AttributeValue, Item};
pub use reaction::{Idempotency, Reacted, Reaction};
