//! The pricing invariants over generated estimations: whatever the line items and rules,
//! the total is the sum of the breakdown, the year is twelve months, and every category is
//! its line items with the rules applied, to the cent.

use handlers::cost::model::{BusinessRules, CostPart, LineItem};
use handlers::cost::pricing::{business_support, cents, price, volume_discount_rate, SavingsRates};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn money() -> impl Strategy<Value = Decimal> {
    // 0.00 to 99,999.999 with up to three decimals: line items are not always whole cents.
    (0i64..100_000_000).prop_map(|n| Decimal::new(n, 3))
}

fn line_item() -> impl Strategy<Value = LineItem> {
    let sk = prop_oneof![
        (0u32..1000).prop_map(|n| format!("SERVER#s{n}")),
        (0u32..1000).prop_map(|n| format!("STORAGE#st{n}")),
        (0u32..1000).prop_map(|n| format!("DATABASE#db{n}")),
        Just("NETWORK_SECURITY".to_string()),
    ];
    (
        sk,
        proptest::option::of(money()),
        proptest::option::of((money(), money())),
    )
        .prop_map(|(sk, cost, parts)| {
            let mut item = LineItem {
                pk: "ESTIMATION#p".into(),
                sk,
                estimated_monthly_cost: cost,
                ..LineItem::default()
            };
            if let (Some((network, security)), "NETWORK_SECURITY") = (parts, item.sk.as_str()) {
                item.network_requirements = Some(CostPart {
                    estimated_monthly_cost: Some(network),
                });
                item.security_requirements = Some(CostPart {
                    estimated_monthly_cost: Some(security),
                });
            }
            item
        })
}

fn rules() -> impl Strategy<Value = BusinessRules> {
    (0i64..=5000, any::<bool>(), any::<bool>()).prop_map(
        |(buffer, volume_discounts, support_plan_included)| BusinessRules {
            buffer_percentage: Decimal::new(buffer, 2),
            volume_discounts,
            support_plan_included,
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn totals_agree_with_line_items(items in proptest::collection::vec(line_item(), 0..40), rules in rules()) {
        let priced = price(&items, &rules, &SavingsRates::default());
        let b = &priced.breakdown;

        // Total = sum of the breakdown, to the cent; a year is twelve months.
        prop_assert_eq!(priced.total_monthly, b.compute + b.storage + b.database + b.network + b.security + b.support);
        prop_assert_eq!(priced.total_annual, priced.total_monthly * Decimal::from(12));
        for value in [b.compute, b.storage, b.database, b.network, b.security, b.support, priced.total_monthly] {
            prop_assert_eq!(value, cents(value), "{} is not whole cents", value);
            prop_assert!(value >= Decimal::ZERO);
        }

        // Each category is the sum of its line items with buffer and discount applied.
        let sum = |prefix: &str| -> Decimal {
            items.iter().filter(|i| i.sk.starts_with(prefix)).map(|i| i.estimated_monthly_cost.unwrap_or_default()).sum()
        };
        let (mut network, mut security) = (Decimal::ZERO, Decimal::ZERO);
        for item in items.iter().filter(|i| i.sk == "NETWORK_SECURITY") {
            match item.network_security_parts() {
                Some((n, s)) => { network += n; security += s; }
                None => network += item.estimated_monthly_cost.unwrap_or_default(),
            }
        }
        let subtotals = [sum("SERVER#"), sum("STORAGE#"), sum("DATABASE#"), network, security];
        let factor = Decimal::ONE + rules.buffer_percentage / Decimal::from(100);
        let buffered: Decimal = subtotals.iter().map(|s| s * factor).sum();
        let discount = if rules.volume_discounts { volume_discount_rate(buffered) } else { Decimal::ZERO };
        prop_assert_eq!(priced.applied.volume_discount_percentage, discount);
        let keep = Decimal::ONE - discount / Decimal::from(100);
        let expected = subtotals.map(|s| cents(s * factor * keep));
        prop_assert_eq!([b.compute, b.storage, b.database, b.network, b.security], expected);

        // Support follows its tiers on the usage, and only when the plan is on.
        let usage = expected.iter().copied().sum::<Decimal>();
        let support = if rules.support_plan_included { business_support(usage) } else { Decimal::ZERO };
        prop_assert_eq!(b.support, support);

        let s = &priced.savings;
        prop_assert_eq!(s.total_potential_savings, s.reserved_instance_savings + s.spot_instance_savings + s.savings_plan_savings);
    }

    #[test]
    fn the_order_of_line_items_does_not_matter(mut items in proptest::collection::vec(line_item(), 0..20), rules in rules()) {
        let forward = price(&items, &rules, &SavingsRates::default());
        items.reverse();
        prop_assert_eq!(price(&items, &rules, &SavingsRates::default()), forward);
    }
}
