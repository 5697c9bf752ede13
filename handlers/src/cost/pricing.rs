//! The pricing rules, pure: line items and rules in, breakdown and totals out, in decimal.
//!
//! 1. Each category is the sum of its line items (NETWORK_SECURITY splits into Network and
//!    Security when it carries both parts, otherwise it all counts as Network).
//! 2. Buffer: every category times (1 + BufferPercentage / 100).
//! 3. Volume discount (when on): on the buffered subtotal, 3% from 10,000 a month, 5% from
//!    50,000, taken off every category alike.
//! 4. Each category is rounded to the cent (half up: 0.005 -> 0.01).
//! 5. Support plan (when on): AWS Business Support's tiers on the rounded usage, 10% of the
//!    first 10,000, 7% up to 80,000, 5% up to 250,000, 3% above, at least 100; none when
//!    there is no usage. Rounded to the cent, shown as the breakdown's Support.
//! 6. TotalMonthlyCost is the sum of the breakdown; TotalAnnualCost is 12 times it.
//! 7. Savings potential: reserved instances, spot and savings plans each as a percentage of
//!    Compute (from the OPTIMIZATION_TIPS items, else 40%, 20% and 25%); the total is their sum.

use rust_decimal::{Decimal, RoundingStrategy};

use super::model::{
    BusinessRules, Category, CostBreakdown, EstimationSummary, LineItem, RulesApplied,
    SavingsPotential,
};

pub const ROUNDING: &str = "per category to 0.01, half up";

/// Savings percentages (of Compute) for the savings potential.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SavingsRates {
    pub reserved_instances: Decimal,
    pub spot_instances: Decimal,
    pub savings_plans: Decimal,
}

impl Default for SavingsRates {
    fn default() -> Self {
        SavingsRates {
            reserved_instances: Decimal::from(40),
            spot_instances: Decimal::from(20),
            savings_plans: Decimal::from(25),
        }
    }
}

/// The result of pricing an estimation.
#[derive(Debug, Clone, PartialEq)]
pub struct Priced {
    /// Line-item sums per breakdown category, before rules (Support is 0 here).
    pub subtotals: CostBreakdown,
    pub breakdown: CostBreakdown,
    pub total_monthly: Decimal,
    pub total_annual: Decimal,
    pub savings: SavingsPotential,
    pub applied: RulesApplied,
}

impl Priced {
    /// The `EstimationSummary` these figures make for an estimation of `line_items` items.
    pub fn summary(
        &self,
        currency: &str,
        calculated_at: &str,
        line_items: usize,
    ) -> EstimationSummary {
        EstimationSummary {
            total_monthly_cost: self.total_monthly,
            total_annual_cost: self.total_annual,
            currency: currency.to_string(),
            last_calculated_at: calculated_at.to_string(),
            cost_breakdown: self.breakdown.clone(),
            optimization_savings_potential: self.savings.clone(),
            business_rules_applied: Some(self.applied.clone()),
            line_item_count: Decimal::from(line_items),
        }
    }
}

/// The figures of an estimation are beyond what the worker computes exactly (`Decimal`: 28
/// significant digits, below 7.9E+28): data the application got wrong, never a crash.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the estimation's figures overflow at {step}: its costs or rules are beyond what the worker computes exactly (about 7.9E+28); a line item's EstimatedMonthlyCost is at most {MAX_LINE_ITEM_COST} in magnitude")]
pub struct Overflow {
    pub step: &'static str,
}

/// The largest magnitude a line item's monthly cost (or a part of it) may have to be priced: a
/// quadrillion a month is beyond any estimate, and under this bound no sum of line items a
/// partition can hold overflows. Larger costs are left out of the totals and named.
pub const MAX_LINE_ITEM_COST: Decimal = Decimal::from_parts(0xA4C6_8000, 0x0003_8D7E, 0, false, 0); // 1E+15

/// Whether a cost can be priced (see [`MAX_LINE_ITEM_COST`]).
pub fn priceable(cost: Decimal) -> bool {
    cost.abs() <= MAX_LINE_ITEM_COST
}

fn add(a: Decimal, b: Decimal, step: &'static str) -> Result<Decimal, Overflow> {
    a.checked_add(b).ok_or(Overflow { step })
}

fn sub(a: Decimal, b: Decimal, step: &'static str) -> Result<Decimal, Overflow> {
    a.checked_sub(b).ok_or(Overflow { step })
}

fn mul(a: Decimal, b: Decimal, step: &'static str) -> Result<Decimal, Overflow> {
    a.checked_mul(b).ok_or(Overflow { step })
}

/// Money to the cent, half up.
pub fn cents(value: Decimal) -> Decimal {
    value.round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero)
}

fn percent(value: Decimal, rate: Decimal, step: &'static str) -> Result<Decimal, Overflow> {
    mul(value, rate, step)?
        .checked_div(Decimal::from(100))
        .ok_or(Overflow { step })
}

/// Line-item sums per category (rule 1).
pub fn subtotals(items: &[LineItem]) -> Result<CostBreakdown, Overflow> {
    let mut sums = CostBreakdown::default();
    let step = "the line items' sum";
    for item in items {
        match item.category() {
            Some(Category::Compute) => sums.compute = add(sums.compute, item.monthly_cost(), step)?,
            Some(Category::Storage) => sums.storage = add(sums.storage, item.monthly_cost(), step)?,
            Some(Category::Database) => {
                sums.database = add(sums.database, item.monthly_cost(), step)?
            }
            Some(Category::NetworkSecurity) => match item.network_security_parts() {
                Some((network, security)) => {
                    sums.network = add(sums.network, network, step)?;
                    sums.security = add(sums.security, security, step)?;
                }
                None => sums.network = add(sums.network, item.monthly_cost(), step)?,
            },
            None => {}
        }
    }
    Ok(sums)
}

/// Rule 3's rate for a buffered monthly subtotal.
pub fn volume_discount_rate(subtotal: Decimal) -> Decimal {
    if subtotal >= Decimal::from(50_000) {
        Decimal::from(5)
    } else if subtotal >= Decimal::from(10_000) {
        Decimal::from(3)
    } else {
        Decimal::ZERO
    }
}

/// Rule 5: AWS Business Support on a month's usage.
pub fn business_support(usage: Decimal) -> Result<Decimal, Overflow> {
    if usage <= Decimal::ZERO {
        return Ok(Decimal::ZERO);
    }
    let step = "the support plan";
    let tiers: [(i64, i64); 4] = [(10_000, 10), (80_000, 7), (250_000, 5), (i64::MAX, 3)];
    let mut fee = Decimal::ZERO;
    let mut lower = Decimal::ZERO;
    for (upper, rate) in tiers {
        let upper = Decimal::from(upper);
        if usage > lower {
            let band = sub(usage.min(upper), lower, step)?;
            fee = add(fee, percent(band, Decimal::from(rate), step)?, step)?;
        }
        lower = upper;
    }
    Ok(cents(fee.max(Decimal::from(100))))
}

pub fn price(
    items: &[LineItem],
    rules: &BusinessRules,
    rates: &SavingsRates,
) -> Result<Priced, Overflow> {
    let subtotals = subtotals(items)?;
    let buffer = add(
        Decimal::ONE,
        percent(Decimal::ONE, rules.buffer_percentage, "the buffer")?,
        "the buffer",
    )?;
    let mut buffered = [Decimal::ZERO; 5];
    let categories = [
        subtotals.compute,
        subtotals.storage,
        subtotals.database,
        subtotals.network,
        subtotals.security,
    ];
    for (slot, value) in buffered.iter_mut().zip(categories) {
        *slot = mul(value, buffer, "the buffer")?;
    }
    let discount = if rules.volume_discounts {
        let mut usage = Decimal::ZERO;
        for value in buffered {
            usage = add(usage, value, "the volume discount")?;
        }
        volume_discount_rate(usage)
    } else {
        Decimal::ZERO
    };
    let keep = Decimal::ONE - discount / Decimal::from(100);
    let mut rounded = [Decimal::ZERO; 5];
    for (slot, value) in rounded.iter_mut().zip(buffered) {
        *slot = cents(mul(value, keep, "the volume discount")?);
    }
    let [compute, storage, database, network, security] = rounded;
    let mut breakdown = CostBreakdown {
        compute,
        storage,
        database,
        network,
        security,
        support: Decimal::ZERO,
    };
    let total = |b: &CostBreakdown| b.checked_sum().ok_or(Overflow { step: "the total" });
    if rules.support_plan_included {
        breakdown.support = business_support(total(&breakdown)?)?;
    }
    let total_monthly = total(&breakdown)?;
    let savings = {
        let step = "the savings potential";
        let ri = cents(percent(breakdown.compute, rates.reserved_instances, step)?);
        let spot = cents(percent(breakdown.compute, rates.spot_instances, step)?);
        let plans = cents(percent(breakdown.compute, rates.savings_plans, step)?);
        SavingsPotential {
            reserved_instance_savings: ri,
            spot_instance_savings: spot,
            savings_plan_savings: plans,
            total_potential_savings: add(add(ri, spot, step)?, plans, step)?,
        }
    };
    Ok(Priced {
        applied: RulesApplied {
            buffer_percentage: rules.buffer_percentage,
            volume_discounts: rules.volume_discounts,
            volume_discount_percentage: discount,
            support_plan_included: rules.support_plan_included,
            support_plan_cost: breakdown.support,
            rounding: ROUNDING.to_string(),
        },
        subtotals,
        total_annual: mul(total_monthly, Decimal::from(12), "the annual total")?,
        total_monthly,
        breakdown,
        savings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(text: &str) -> Decimal {
        text.parse().unwrap()
    }

    fn item(sk: &str, cost: &str) -> LineItem {
        LineItem {
            pk: "ESTIMATION#e".into(),
            sk: sk.into(),
            estimated_monthly_cost: Some(d(cost)),
            ..LineItem::default()
        }
    }

    fn rules(buffer: &str, discounts: bool, support: bool) -> BusinessRules {
        BusinessRules {
            buffer_percentage: d(buffer),
            volume_discounts: discounts,
            support_plan_included: support,
        }
    }

    #[test]
    fn the_seed_estimation_to_the_cent() {
        // The seed's line items: one server, one storage, one database, network & security.
        let items = [
            item("SERVER#srv001", "247.42"),
            item("STORAGE#sto001", "45.00"),
            item("DATABASE#db001", "1800.00"),
            item("NETWORK_SECURITY", "800.00"),
        ];
        let priced = price(&items, &rules("10", true, true), &SavingsRates::default()).unwrap();
        // 247.42 * 1.1 = 272.162 -> 272.16; 45 -> 49.50; 1800 -> 1980.00; 800 -> 880.00
        assert_eq!(priced.breakdown.compute, d("272.16"));
        assert_eq!(priced.breakdown.storage, d("49.50"));
        assert_eq!(priced.breakdown.database, d("1980.00"));
        assert_eq!(priced.breakdown.network, d("880.00"));
        assert_eq!(priced.breakdown.security, d("0"));
        // usage 3181.66 is under 10,000: no volume discount; support 10% = 318.166 -> 318.17
        assert_eq!(priced.applied.volume_discount_percentage, Decimal::ZERO);
        assert_eq!(priced.breakdown.support, d("318.17"));
        assert_eq!(priced.total_monthly, d("3499.83"));
        assert_eq!(priced.total_annual, d("41997.96"));
        // 40% / 20% / 25% of 272.16
        assert_eq!(priced.savings.reserved_instance_savings, d("108.86"));
        assert_eq!(priced.savings.spot_instance_savings, d("54.43"));
        assert_eq!(priced.savings.savings_plan_savings, d("68.04"));
        assert_eq!(priced.savings.total_potential_savings, d("231.33"));
    }

    #[test]
    fn network_and_security_split_when_the_item_carries_both_parts() {
        let mut ns = item("NETWORK_SECURITY", "800.00");
        ns.network_requirements = Some(super::super::model::CostPart {
            estimated_monthly_cost: Some(d("500")),
        });
        ns.security_requirements = Some(super::super::model::CostPart {
            estimated_monthly_cost: Some(d("300")),
        });
        let priced = price(&[ns], &rules("0", false, false), &SavingsRates::default()).unwrap();
        assert_eq!(
            (priced.breakdown.network, priced.breakdown.security),
            (d("500"), d("300"))
        );
    }

    #[test]
    fn half_up_rounding_at_the_cent() {
        assert_eq!(cents(d("0.005")), d("0.01"));
        assert_eq!(cents(d("0.015")), d("0.02"));
        assert_eq!(cents(d("2.675")), d("2.68"));
        assert_eq!(cents(d("-0.005")), d("-0.01"));
        assert_eq!(cents(d("0.0049999")), d("0.00"));
    }

    #[test]
    fn volume_discounts_and_support_tiers() {
        assert_eq!(volume_discount_rate(d("9999.99")), d("0"));
        assert_eq!(volume_discount_rate(d("10000")), d("3"));
        assert_eq!(volume_discount_rate(d("50000")), d("5"));
        assert_eq!(business_support(d("0")), Ok(d("0")));
        assert_eq!(business_support(d("500")), Ok(d("100")), "the minimum");
        assert_eq!(business_support(d("10000")), Ok(d("1000")));
        // 1000 + 7% of 70,000 + 5% of 20,000
        assert_eq!(business_support(d("100000")), Ok(d("6900")));
        let priced = price(
            &[item("SERVER#a", "20000")],
            &rules("0", true, false),
            &SavingsRates::default(),
        )
        .unwrap();
        assert_eq!(priced.breakdown.compute, d("19400.00"), "3% off");
    }

    #[test]
    fn an_empty_estimation_costs_nothing() {
        let priced = price(&[], &rules("10", true, true), &SavingsRates::default()).unwrap();
        assert_eq!(priced.total_monthly, Decimal::ZERO);
        assert_eq!(priced.breakdown.support, Decimal::ZERO);
    }

    /// Issue 29: two costs within DynamoDB's range but beyond Decimal when summed panicked
    /// ("Addition overflowed"); a single cost of 1E+28 panicked when multiplied.
    #[test]
    fn figures_beyond_decimal_are_an_error_not_a_panic() {
        let half = d("40000000000000000000000000000"); // 4E+28: two make 8E+28
        let two = [
            item("SERVER#a", "40000000000000000000000000000"),
            item("SERVER#b", "40000000000000000000000000000"),
        ];
        assert_eq!(half * Decimal::ONE, half);
        let e = price(&two, &rules("0", false, false), &SavingsRates::default()).unwrap_err();
        assert_eq!(e.step, "the line items' sum");
        let one = [item("SERVER#a", "10000000000000000000000000000")];
        assert!(price(&one, &rules("10", true, true), &SavingsRates::default()).is_err());
        assert!(priceable(d("999999999999999")) && priceable(MAX_LINE_ITEM_COST));
        assert!(!priceable(d("1000000000000000.01")));
        assert_eq!(MAX_LINE_ITEM_COST, d("1000000000000000"));
    }
}
