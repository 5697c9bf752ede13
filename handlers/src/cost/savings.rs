//! The savings percentages an estimation is priced with: read from the cost platform table's
//! OPTIMIZATION_TIPS items, shared by every reaction that prices (totals, proposals).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::model::OptimizationTip;
use super::pricing::SavingsRates;
use crate::error::PortError;
use crate::item::{from_item, AttributeValue};
use crate::ports::{Ports, Query, SortKey};

/// How long the OPTIMIZATION_TIPS percentages are reused before they are read again.
const TIPS_TTL: Duration = Duration::from_secs(300);

/// The savings percentages from one table's OPTIMIZATION_TIPS items: one Query, then reused
/// for a few minutes, with the documented defaults for tips the table does not have.
pub struct SavingsRatesCache {
    table: String,
    cached: Mutex<Option<(Instant, SavingsRates)>>,
}

impl SavingsRatesCache {
    pub fn new(table: String) -> Self {
        SavingsRatesCache {
            table,
            cached: Mutex::new(None),
        }
    }

    pub async fn get(&self, ports: Ports<'_>) -> Result<SavingsRates, PortError> {
        if let Ok(cache) = self.cached.lock() {
            if let Some((at, rates)) = *cache {
                if at.elapsed() < TIPS_TTL {
                    return Ok(rates);
                }
            }
        }
        let rates = read_savings_rates(ports, &self.table).await?;
        if let Ok(mut cache) = self.cached.lock() {
            *cache = Some((Instant::now(), rates));
        }
        Ok(rates)
    }
}

/// The savings percentages from `table`'s OPTIMIZATION_TIPS items (one query).
async fn read_savings_rates(ports: Ports<'_>, table: &str) -> Result<SavingsRates, PortError> {
    let items = ports
        .tables
        .query(&Query {
            table: table.to_string(),
            index: None,
            partition: ("PK".into(), AttributeValue::S("OPTIMIZATION_TIPS".into())),
            sort_key: Some(("SK".into(), SortKey::BeginsWith("TIP#".into()))),
            ascending: true,
        })
        .await?;
    let mut rates = SavingsRates::default();
    for item in items {
        let Ok(tip) = from_item::<OptimizationTip>(item, "optimization tip") else {
            continue;
        };
        let Some(percent) = tip.potential_savings_percent else {
            continue;
        };
        match tip.tip_id.as_str() {
            "reserved_instances" => rates.reserved_instances = percent,
            "spot_instances" => rates.spot_instances = percent,
            "savings_plans" => rates.savings_plans = percent,
            _ => {}
        }
    }
    Ok(rates)
}
