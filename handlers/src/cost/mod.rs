//! The cost estimation platform (seed: cost-estimation-platform.md): its items as typed
//! structs, the pricing rules, and the reactions that keep an estimation's totals right.

pub mod model;
pub mod notify;
pub mod pricing;
pub mod proposal;
pub mod sharing;
pub mod totals;
