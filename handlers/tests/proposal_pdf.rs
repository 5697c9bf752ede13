//! The proposal PDF read back with pdftotext (poppler-utils, installed by scripts/test):
//! totals, every line item, page numbers, pagination of a large estimation, text beyond
//! ASCII, and markup in names printed as written.

use std::io::Write;
use std::process::Command;

use handlers::cost::model::{BusinessRules, LineItem};
use handlers::cost::pricing::{price, SavingsRates};
use handlers::cost::proposal::render::{render, Proposal};
use handlers::templates::{branding, proposal_template};
use rust_decimal::Decimal;

fn line(sk: &str, name: &str, kind: &str, cost: &str) -> LineItem {
    LineItem {
        pk: "ESTIMATION#e1".into(),
        sk: sk.into(),
        server_name: sk.starts_with("SERVER#").then(|| name.to_string()),
        storage_name: sk.starts_with("STORAGE#").then(|| name.to_string()),
        database_name: sk.starts_with("DATABASE#").then(|| name.to_string()),
        suggested_instance_type: Some(kind.to_string()),
        estimated_monthly_cost: Some(cost.parse().unwrap()),
        optimization_recommendations: vec!["Consider Reserved Instances".into()],
        compliance_requirements: vec!["SOC2".into()],
        ..LineItem::default()
    }
}

fn proposal(lines: Vec<LineItem>, client: &str, project: &str) -> Proposal {
    let rules = BusinessRules {
        buffer_percentage: Decimal::from(10),
        volume_discounts: true,
        support_plan_included: true,
    };
    let priced =
        price(&lines, &rules, &SavingsRates::default()).expect("the test estimation prices");
    Proposal {
        template: proposal_template("standard_proposal").unwrap(),
        branding: branding("sagesoft").unwrap(),
        client_company: client.into(),
        project_name: project.into(),
        prepared_by: "John Doe".into(),
        date: "15 January 2024".into(),
        estimation_id: "e1".into(),
        region: "us-east-1".into(),
        summary: priced.summary("USD", "2024-01-15T10:30:00Z", lines.len()),
        lines,
        compliance: vec!["PCI-DSS".into(), "GDPR".into()],
        include_executive_summary: true,
        include_detailed_breakdown: true,
        include_architecture_diagram: true,
    }
}

/// pdftotext's reading of the PDF, with each page's text separately.
fn text_of(pdf: &[u8]) -> Vec<String> {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(pdf).unwrap();
    if let Ok(dir) = std::env::var("PROPOSAL_PDF_DIR") {
        // For a person to look at: PROPOSAL_PDF_DIR=/tmp/pdfs cargo test --test proposal_pdf
        let name = format!(
            "{}/{}.pdf",
            dir,
            std::thread::current()
                .name()
                .unwrap_or("proposal")
                .replace("::", "-")
        );
        std::fs::write(name, pdf).unwrap();
    }
    let output = Command::new("pdftotext")
        .args(["-layout"])
        .arg(file.path())
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    assert!(
        output.status.success(),
        "pdftotext failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .split('\u{c}')
        .map(str::to_string)
        .filter(|p| !p.trim().is_empty())
        .collect()
}

#[test]
fn the_seed_proposal_states_its_totals_items_and_pages() {
    let lines = vec![
        line("SERVER#srv001", "Web Server 1", "t3.xlarge", "247.42"),
        line(
            "STORAGE#sto001",
            "Application Data Storage",
            "EBS gp3",
            "45.00",
        ),
        line(
            "DATABASE#db001",
            "Primary Application DB",
            "db.r6g.xlarge",
            "1800.00",
        ),
        line("NETWORK_SECURITY", "Network & security", "ALB", "800.00"),
    ];
    let pdf = render(&proposal(
        lines,
        "ABC Corporation",
        "Client ABC Infrastructure",
    ))
    .unwrap();
    assert!(pdf.starts_with(b"%PDF"));
    let pages = text_of(&pdf);
    let all = pages.join("\n");
    for expected in [
        "$3,499.83",
        "$41,997.96",
        "ABC Corporation",
        "Client ABC Infrastructure",
        "John Doe",
        "Web Server 1",
        "Application Data Storage",
        "Primary Application DB",
        "t3.xlarge",
        "$247.42",
        "Consider Reserved Instances",
        "PCI-DSS",
        "us-east-1",
    ] {
        assert!(
            all.contains(expected),
            "{expected:?} missing from the PDF text:\n{all}"
        );
    }
    let count = pages.len();
    for (i, page) in pages.iter().enumerate() {
        assert!(
            page.contains(&format!("Page {} of {count}", i + 1)),
            "page {} has no page number:\n{page}",
            i + 1
        );
    }
}

#[test]
fn two_hundred_servers_paginate_with_repeated_headers() {
    let lines: Vec<LineItem> = (1..=200)
        .map(|i| {
            line(
                &format!("SERVER#s{i:03}"),
                &format!("Application server {i:03}"),
                "m5.large",
                "70.08",
            )
        })
        .collect();
    let pdf = render(&proposal(lines, "Big Co", "Data centre exit")).unwrap();
    let pages = text_of(&pdf);
    assert!(
        pages.len() >= 7,
        "200 rows need several pages, got {}",
        pages.len()
    );
    let all = pages.join("\n");
    for i in 1..=200 {
        assert!(
            all.contains(&format!("Application server {i:03}")),
            "server {i} missing"
        );
    }
    // Every page the compute table continues onto repeats its header.
    let continued: Vec<&String> = pages
        .iter()
        .filter(|p| p.contains("Compute (continued)"))
        .collect();
    assert!(
        continued.len() >= 4,
        "{} continuation pages",
        continued.len()
    );
    for page in continued {
        assert!(
            page.contains("Type / class") && page.contains("Monthly cost"),
            "header not repeated:\n{page}"
        );
    }
    let count = pages.len();
    for (i, page) in pages.iter().enumerate() {
        assert!(page.contains(&format!("Page {} of {count}", i + 1)));
    }
    assert!(
        all.contains("Subtotal (200 items)") && all.contains("$14,016.00"),
        "200 × 70.08"
    );
}

#[test]
fn text_beyond_ascii_renders_and_unknown_characters_are_marked() {
    let lines = vec![line(
        "SERVER#a",
        "Servidor de aplicación ñ ü — €",
        "t3.large",
        "60.74",
    )];
    let pdf = render(&proposal(
        lines,
        "Société Générale Ünïcode",
        "Migración 中文",
    ))
    .unwrap();
    let all = text_of(&pdf).join("\n");
    assert!(all.contains("Société Générale Ünïcode"), "{all}");
    assert!(all.contains("Servidor de aplicación ñ ü — €"), "{all}");
    assert!(
        all.contains("Migración \u{FFFD}\u{FFFD}"),
        "CJK (not in the font) is marked, not dropped: {all}"
    );
}

#[test]
fn markup_in_names_is_printed_literally() {
    let name = "<script>alert('x')</script> & <b>Co</b>";
    let lines = vec![line(
        "SERVER#a",
        "<img src=x onerror=alert(1)>",
        "t3.large",
        "60.74",
    )];
    let pdf = render(&proposal(lines, name, "Project &amp; \"quotes\"")).unwrap();
    let all = text_of(&pdf).join("\n");
    assert!(all.contains(name), "{all}");
    assert!(all.contains("<img src=x onerror=alert(1)>"), "{all}");
    assert!(
        all.contains("Project &amp; \"quotes\""),
        "not unescaped either: {all}"
    );
}
