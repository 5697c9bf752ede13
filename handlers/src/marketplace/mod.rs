//! The marketplace (seed: marketplace.md): provider rating aggregates and booking mail.

pub mod ratings;
