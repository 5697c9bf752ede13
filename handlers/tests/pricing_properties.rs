//! The pricing rules, checked without restating them: hand-computed estimations for every
//! support tier and both volume discounts, the thresholds at exactly 10,000 and 50,000 and each
//! support boundary, rounding half up at .005, and properties that hold whatever the rules'
//! numbers are (the total is the breakdown's sum and a year twelve months, whole cents, the
//! order of line items does not matter, more cost never costs less within a discount tier).

use handlers::cost::model::{BusinessRules, CostPart, LineItem};
use handlers::cost::pricing::{price, Priced, SavingsRates};
use proptest::prelude::*;
use rust_decimal::Decimal;
use std::str::FromStr;

fn d(text: &str) -> Decimal {
    Decimal::from_str(text).unwrap()
}

fn item(sk: &str, cost: &str) -> LineItem {
    LineItem {
        pk: "ESTIMATION#hand".into(),
        sk: sk.into(),
        estimated_monthly_cost: Some(d(cost)),
        ..LineItem::default()
    }
}

fn rules(buffer: &str, volume_discounts: bool, support_plan_included: bool) -> BusinessRules {
    BusinessRules {
        buffer_percentage: d(buffer),
        volume_discounts,
        support_plan_included,
    }
}

fn priced(items: &[LineItem], rules: &BusinessRules) -> Priced {
    price(items, rules, &SavingsRates::default()).expect("test costs are within pricing's range")
}

/// (discount %, compute, support, monthly total) of `items` under `rules`.
fn figures(items: &[LineItem], rules: &BusinessRules) -> (Decimal, Decimal, Decimal, Decimal) {
    let p = priced(items, rules);
    (
        p.applied.volume_discount_percentage,
        p.breakdown.compute,
        p.breakdown.support,
        p.total_monthly,
    )
}

#[test]
fn hand_computed_estimations_one_per_support_tier() {
    let standard = rules("10", true, true);
    // Tier 1, no discount: 1,100 + 550 = 1,650 of usage; support 10 % = 165.
    let a = priced(
        &[item("SERVER#a", "1000"), item("STORAGE#a", "500")],
        &standard,
    );
    assert_eq!(
        (
            a.breakdown.compute,
            a.breakdown.storage,
            a.breakdown.support
        ),
        (d("1100"), d("550"), d("165"))
    );
    assert_eq!((a.total_monthly, a.total_annual), (d("1815"), d("21780")));

    // Tier 2, 3 % off: 22,000 buffered, 21,340 after the discount; support 1,000 on the first
    // 10,000 and 7 % of 11,340 = 793.80.
    assert_eq!(
        figures(&[item("SERVER#b", "20000")], &standard),
        (d("3"), d("21340"), d("1793.80"), d("23133.80"))
    );

    // Tier 3, 5 % off: 110,000 + 55,000 = 165,000 buffered, 104,500 + 52,250 = 156,750 after;
    // support 1,000 + 4,900 (7 % of 70,000) + 3,837.50 (5 % of 76,750) = 9,737.50.
    let c = priced(
        &[item("SERVER#c", "100000"), item("DATABASE#c", "50000")],
        &standard,
    );
    assert_eq!(
        (
            c.breakdown.compute,
            c.breakdown.database,
            c.breakdown.support
        ),
        (d("104500"), d("52250"), d("9737.50"))
    );
    assert_eq!(c.total_monthly, d("166487.50"));

    // Tier 4: 300,000 less 5 % = 285,000; support 14,400 up to 250,000, then 3 % of 35,000.
    assert_eq!(
        figures(&[item("SERVER#d", "300000")], &rules("0", true, true)),
        (d("5"), d("285000"), d("15450"), d("300450"))
    );
}

#[test]
fn volume_discount_thresholds_are_at_exactly_10000_and_50000() {
    let discount_only = rules("0", true, false);
    for (cost, rate, compute) in [
        ("9999.99", "0", "9999.99"),
        ("10000", "3", "9700"),
        ("49999.99", "3", "48499.99"),
        ("50000", "5", "47500"),
    ] {
        let (got_rate, got_compute, _, total) = figures(&[item("SERVER#t", cost)], &discount_only);
        assert_eq!(
            (got_rate, got_compute, total),
            (d(rate), d(compute), d(compute)),
            "{cost}"
        );
    }
    // The threshold is on the buffered subtotal: 9,200 with 10 % is 10,120, so 3 % off.
    assert_eq!(
        figures(&[item("SERVER#t", "9200")], &rules("10", true, false)).0,
        d("3")
    );
    // Without volume discounts nothing is taken off.
    assert_eq!(
        figures(&[item("SERVER#t", "60000")], &rules("0", false, false)).1,
        d("60000")
    );
}

#[test]
fn support_tiers_at_each_boundary() {
    let support_only = rules("0", false, true);
    for (usage, support) in [
        ("0", "0"),
        ("500", "100"),
        ("1000", "100"),
        ("1000.10", "100.01"),
        ("10000", "1000"),
        ("10100", "1007"),
        ("80000", "5900"),
        ("80100", "5905"),
        ("250000", "14400"),
        ("250100", "14403"),
        ("1000000", "36900"),
    ] {
        let (_, _, got, total) = figures(&[item("SERVER#s", usage)], &support_only);
        assert_eq!(got, d(support), "support on {usage}");
        assert_eq!(total, d(usage) + d(support));
    }
    // Without the plan, no support at all.
    assert_eq!(
        figures(&[item("SERVER#s", "5000")], &rules("0", false, false)).2,
        Decimal::ZERO
    );
}

#[test]
fn money_is_rounded_half_up_at_half_a_cent() {
    let plain = rules("0", false, false);
    for (cost, compute) in [
        ("0.005", "0.01"),
        ("0.004", "0"),
        ("1.125", "1.13"),
        ("2.675", "2.68"),
        ("2.665", "2.67"),
    ] {
        assert_eq!(
            figures(&[item("SERVER#r", cost)], &plain).1,
            d(compute),
            "{cost}"
        );
    }
    // Each category is rounded on its own: 0.005 + 0.005 in two categories is 0.02, not 0.01.
    let two = priced(
        &[item("SERVER#r", "0.005"), item("STORAGE#r", "0.005")],
        &plain,
    );
    assert_eq!(two.total_monthly, d("0.02"));
    // Support is rounded half up too: 10 % of 1,234.55 is 123.455.
    assert_eq!(
        figures(&[item("SERVER#r", "1234.55")], &rules("0", false, true)).2,
        d("123.46")
    );
}

#[test]
fn network_security_splits_when_it_carries_both_parts() {
    let mut both = item("NETWORK_SECURITY", "999");
    both.network_requirements = Some(CostPart {
        estimated_monthly_cost: Some(d("30")),
    });
    both.security_requirements = Some(CostPart {
        estimated_monthly_cost: Some(d("12.5")),
    });
    let split = priced(&[both], &rules("10", false, false));
    assert_eq!(
        (split.breakdown.network, split.breakdown.security),
        (d("33"), d("13.75"))
    );
    let whole = priced(
        &[item("NETWORK_SECURITY", "40")],
        &rules("10", false, false),
    );
    assert_eq!(
        (whole.breakdown.network, whole.breakdown.security),
        (d("44"), Decimal::ZERO)
    );
}

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

fn any_rules() -> impl Strategy<Value = BusinessRules> {
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
    fn the_total_is_the_breakdown_in_whole_cents(items in proptest::collection::vec(line_item(), 0..40), rules in any_rules()) {
        let p = priced(&items, &rules);
        let b = &p.breakdown;
        prop_assert_eq!(p.total_monthly, b.compute + b.storage + b.database + b.network + b.security + b.support);
        prop_assert_eq!(p.total_annual, p.total_monthly * Decimal::from(12));
        for value in [b.compute, b.storage, b.database, b.network, b.security, b.support, p.total_monthly] {
            prop_assert_eq!(value, value.round_dp(2), "{} is not whole cents", value);
            prop_assert!(value >= Decimal::ZERO);
        }
        let s = &p.savings;
        prop_assert_eq!(s.total_potential_savings, s.reserved_instance_savings + s.spot_instance_savings + s.savings_plan_savings);
    }

    #[test]
    fn the_order_of_line_items_does_not_matter(mut items in proptest::collection::vec(line_item(), 0..20), rules in any_rules()) {
        let forward = priced(&items, &rules);
        items.reverse();
        prop_assert_eq!(priced(&items, &rules), forward);
    }

    /// Raising one line item's cost never lowers the total, nor any category, as long as the
    /// volume discount stays in its tier (crossing 10,000 or 50,000 lowers it, by design).
    #[test]
    fn more_cost_never_costs_less_within_a_discount_tier(
        items in proptest::collection::vec(line_item(), 1..20),
        rules in any_rules(),
        which in any::<prop::sample::Index>(),
        raise in money(),
    ) {
        let before = priced(&items, &rules);
        let mut raised = items.clone();
        let item = &mut raised[which.index(items.len())];
        item.estimated_monthly_cost = Some(item.estimated_monthly_cost.unwrap_or_default() + raise);
        let after = priced(&raised, &rules);
        prop_assume!(after.applied.volume_discount_percentage == before.applied.volume_discount_percentage);
        prop_assert!(after.total_monthly >= before.total_monthly);
        let (a, b) = (&after.breakdown, &before.breakdown);
        for (later, earlier) in [(a.compute, b.compute), (a.storage, b.storage), (a.database, b.database), (a.network, b.network), (a.support, b.support)] {
            prop_assert!(later >= earlier, "{} < {}", later, earlier);
        }
    }

    /// With a 0 % buffer, no discount and no support plan, the total is the line items'.
    #[test]
    fn without_rules_the_total_is_the_line_items(items in proptest::collection::vec(line_item(), 0..20)) {
        let p = priced(&items, &rules("0", false, false));
        let sum: Decimal = items
            .iter()
            .map(|i| match (&i.network_requirements, &i.security_requirements) {
                (Some(n), Some(s)) if i.sk == "NETWORK_SECURITY" => {
                    n.estimated_monthly_cost.unwrap_or_default() + s.estimated_monthly_cost.unwrap_or_default()
                }
                _ => i.estimated_monthly_cost.unwrap_or_default(),
            })
            .sum();
        // Five categories rounded on their own: within 2.5 cents of the exact sum.
        prop_assert!((p.total_monthly - sum).abs() <= d("0.025"), "{} vs {}", p.total_monthly, sum);
    }
}
