//! Proposal rendering: time and size of a three-page proposal (the seed estimation, no
//! diagram) and of the 200-server one. Prints figures; asserts nothing (machines are shared).
//! Run: `cargo bench -p handlers --bench proposal`.

use std::time::{Duration, Instant};

use handlers::cost::model::{BusinessRules, LineItem};
use handlers::cost::pricing::{price, SavingsRates};
use handlers::cost::proposal::render::{render, Proposal};
use handlers::templates::{branding, proposal_template};
use rust_decimal::Decimal;

fn line(sk: &str, name: &str, cost: &str) -> LineItem {
    LineItem {
        pk: "ESTIMATION#bench".into(),
        sk: sk.into(),
        server_name: Some(name.into()),
        suggested_instance_type: Some("m5.large".into()),
        estimated_monthly_cost: Some(cost.parse().unwrap_or_default()),
        optimization_recommendations: vec!["Consider Reserved Instances".into()],
        ..LineItem::default()
    }
}

fn proposal(lines: Vec<LineItem>) -> Proposal {
    let rules = BusinessRules {
        buffer_percentage: Decimal::from(10),
        volume_discounts: true,
        support_plan_included: true,
    };
    let priced =
        price(&lines, &rules, &SavingsRates::default()).expect("the test estimation prices");
    Proposal {
        template: proposal_template("standard_proposal").expect("template"),
        branding: branding("sagesoft").expect("branding"),
        client_company: "ABC Corporation".into(),
        project_name: "Client ABC Infrastructure".into(),
        prepared_by: "John Doe".into(),
        date: "15 January 2024".into(),
        estimation_id: "est456".into(),
        region: "us-east-1".into(),
        summary: priced.summary("USD", "2024-01-15T10:30:00Z", lines.len()),
        lines,
        compliance: vec!["SOC2".into()],
        include_executive_summary: true,
        include_detailed_breakdown: true,
        include_architecture_diagram: false,
    }
}

fn measure(name: &str, proposal: &Proposal, runs: usize) {
    let first = Instant::now();
    let pdf = render(proposal).expect("fonts load");
    let cold = first.elapsed();
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            let _ = render(proposal);
            start.elapsed()
        })
        .collect();
    times.sort();
    let pages = page_count(&pdf);
    println!(
        "{name}: {pages} pages, {} bytes ({:.1} KB); render median {:.2} ms, p90 {:.2} ms, first (with font parsing) {:.2} ms over {runs} runs",
        pdf.len(),
        pdf.len() as f64 / 1024.0,
        times[runs / 2].as_secs_f64() * 1000.0,
        times[runs * 9 / 10].as_secs_f64() * 1000.0,
        cold.as_secs_f64() * 1000.0,
    );
}

/// Page objects in the PDF: `/Type /Page` (or `/Type/Page`) not followed by `s`.
fn page_count(pdf: &[u8]) -> usize {
    let text = String::from_utf8_lossy(pdf);
    ["/Type /Page", "/Type/Page"]
        .iter()
        .map(|marker| {
            text.match_indices(marker)
                .filter(|(i, m)| !text[i + m.len()..].starts_with('s'))
                .count()
        })
        .sum()
}

fn main() {
    let seed = vec![
        line("SERVER#srv001", "Web Server 1", "247.42"),
        line("STORAGE#sto001", "Application Data Storage", "45.00"),
        line("DATABASE#db001", "Primary Application DB", "1800.00"),
        line("NETWORK_SECURITY", "Network & security", "800.00"),
    ];
    measure("proposal, seed estimation", &proposal(seed.clone()), 50);
    let mut brief = proposal(seed);
    brief.include_detailed_breakdown = false;
    measure(
        "proposal, seed estimation without the detailed breakdown",
        &brief,
        50,
    );
    let big = (1..=200)
        .map(|i| {
            line(
                &format!("SERVER#s{i:03}"),
                &format!("Application server {i:03}"),
                "70.08",
            )
        })
        .collect();
    measure("proposal, 200 servers", &proposal(big), 20);
}
