//! The proposal PDF: cover, executive summary, architecture diagram, detailed breakdown,
//! assumptions and recommendations, in the order the template lists them. Tables repeat their
//! header on every page they continue onto, and every page has "Page n of m".

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use super::canvas::{
    fit, text_width, wrap, Canvas, Colour, PageOps, Weight, PAGE_HEIGHT, PAGE_WIDTH,
};
use crate::cost::model::{Category, EstimationSummary, LineItem};
use crate::templates::{Branding, ProposalTemplate};

const MARGIN: f32 = 20.0;
const TOP: f32 = 22.0;
/// Content stops here; the footer lives below.
const BOTTOM: f32 = PAGE_HEIGHT - 22.0;
const RIGHT: f32 = PAGE_WIDTH - MARGIN;
const ROW: f32 = 6.4;

const INK: Colour = Colour(0.13, 0.13, 0.13);
const MUTED: Colour = Colour(0.42, 0.42, 0.45);
const RULE: Colour = Colour(0.82, 0.83, 0.85);
const ZEBRA: Colour = Colour(0.965, 0.968, 0.972);
const WHITE: Colour = Colour(1.0, 1.0, 1.0);

/// What goes into a proposal.
#[derive(Debug, Clone)]
pub struct Proposal {
    pub template: ProposalTemplate,
    pub branding: Branding,
    pub client_company: String,
    pub project_name: String,
    pub prepared_by: String,
    pub date: String,
    pub estimation_id: String,
    pub region: String,
    pub summary: EstimationSummary,
    pub lines: Vec<LineItem>,
    pub compliance: Vec<String>,
    pub include_executive_summary: bool,
    pub include_detailed_breakdown: bool,
    pub include_architecture_diagram: bool,
}

/// `$1,234.50`, `€1,234.50`, `£…`; other currencies by code (`CHF 1,234.50`).
pub fn money(value: Decimal, currency: &str) -> String {
    let rounded = crate::cost::pricing::cents(value);
    let negative = rounded.is_sign_negative() && !rounded.is_zero();
    let text = format!("{:.2}", rounded.abs());
    let (whole, fraction) = text.split_once('.').unwrap_or((&text, "00"));
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let symbol = match currency {
        "USD" => "$".to_string(),
        "EUR" => "€".to_string(),
        "GBP" => "£".to_string(),
        other => format!("{other} "),
    };
    format!(
        "{}{symbol}{grouped}.{fraction}",
        if negative { "-" } else { "" }
    )
}

/// Lays the sections out, top to bottom, starting new pages as they fill.
struct Flow {
    canvas: Canvas,
    y: f32,
    accent: Colour,
    accent_light: Colour,
}

impl Flow {
    fn page(&mut self) {
        self.canvas.new_page();
        self.y = TOP;
    }

    /// Room for `height` mm more, or a new page.
    fn room(&mut self, height: f32) -> bool {
        if self.y + height > BOTTOM {
            self.page();
            true
        } else {
            false
        }
    }

    fn draw(&mut self, f: impl FnOnce(&mut PageOps<'_>)) {
        self.canvas.draw(f);
    }

    fn heading(&mut self, text: &str) {
        self.room(24.0);
        let (y, accent) = (self.y + 8.0, self.accent);
        self.draw(|p| {
            p.text(MARGIN, y, 16.0, Weight::Bold, accent, text);
            p.line((MARGIN, y + 3.0), (RIGHT, y + 3.0), 1.2, accent);
        });
        self.y += 16.0;
    }

    fn subheading(&mut self, text: &str) {
        self.room(20.0);
        let y = self.y + 5.0;
        self.draw(|p| p.text(MARGIN, y, 12.0, Weight::Bold, INK, text));
        self.y += 9.0;
    }

    fn paragraph(&mut self, text: &str, size: f32, colour: Colour) {
        for line in wrap(text, RIGHT - MARGIN, size, Weight::Regular) {
            self.room(size * 0.5);
            let y = self.y + size * 0.36;
            self.draw(|p| p.text(MARGIN, y, size, Weight::Regular, colour, &line));
            self.y += size * 0.5;
        }
        self.y += 2.0;
    }

    fn bullet(&mut self, text: &str) {
        let lines = wrap(text, RIGHT - MARGIN - 6.0, 10.0, Weight::Regular);
        self.room(5.2 * lines.len() as f32);
        for (i, line) in lines.iter().enumerate() {
            let y = self.y + 3.6;
            let accent = self.accent;
            self.draw(|p| {
                if i == 0 {
                    p.text(MARGIN + 1.0, y, 10.0, Weight::Bold, accent, "•");
                }
                p.text(MARGIN + 6.0, y, 10.0, Weight::Regular, INK, line);
            });
            self.y += 5.2;
        }
        self.y += 0.8;
    }
}

/// A table column: header, width in mm, right-aligned or not.
struct Column {
    header: &'static str,
    width: f32,
    right: bool,
}

impl Flow {
    fn table_header(&mut self, columns: &[Column]) {
        let (y, light) = (self.y, self.accent_light);
        self.draw(|p| {
            p.fill(MARGIN, y, RIGHT - MARGIN, ROW + 0.6, light);
            let mut x = MARGIN;
            for column in columns {
                let size = 9.0;
                if column.right {
                    p.text_right(
                        x + column.width - 2.0,
                        y + 4.6,
                        size,
                        Weight::Bold,
                        INK,
                        column.header,
                    );
                } else {
                    p.text(x + 2.0, y + 4.6, size, Weight::Bold, INK, column.header);
                }
                x += column.width;
            }
        });
        self.y += ROW + 0.6;
    }

    /// Rows of cells; the header (and `title (continued)`) is repeated on every new page.
    fn table(
        &mut self,
        title: Option<&str>,
        columns: &[Column],
        rows: &[Vec<String>],
        total: Option<Vec<String>>,
    ) {
        if let Some(title) = title {
            self.subheading(title);
        }
        self.room(ROW * 3.0);
        self.table_header(columns);
        for (i, row) in rows.iter().enumerate() {
            if self.room(ROW) {
                if let Some(title) = title {
                    self.subheading(&format!("{title} (continued)"));
                }
                self.table_header(columns);
            }
            self.row(columns, row, i % 2 == 1, Weight::Regular);
        }
        if let Some(total) = total {
            if self.room(ROW) {
                self.table_header(columns);
            }
            let y = self.y;
            self.draw(|p| p.line((MARGIN, y), (RIGHT, y), 0.8, INK));
            self.row(columns, &total, false, Weight::Bold);
        }
        self.y += 5.0;
    }

    fn row(&mut self, columns: &[Column], cells: &[String], shaded: bool, weight: Weight) {
        let y = self.y;
        self.draw(|p| {
            if shaded {
                p.fill(MARGIN, y, RIGHT - MARGIN, ROW, ZEBRA);
            }
            let mut x = MARGIN;
            for (column, cell) in columns.iter().zip(cells) {
                let text = fit(cell, column.width - 4.0, 9.0, weight);
                if column.right {
                    p.text_right(x + column.width - 2.0, y + 4.4, 9.0, weight, INK, &text);
                } else {
                    p.text(x + 2.0, y + 4.4, 9.0, weight, INK, &text);
                }
                x += column.width;
            }
            p.line((MARGIN, y + ROW), (RIGHT, y + ROW), 0.3, RULE);
        });
        self.y += ROW;
    }
}

/// Render the proposal. None only if the embedded fonts are unusable (a build defect).
pub fn render(proposal: &Proposal) -> Option<Vec<u8>> {
    let mut flow = Flow {
        canvas: Canvas::new(&format!(
            "{} – {}",
            proposal.template.title, proposal.project_name
        ))?,
        y: TOP,
        accent: Colour::hex(&proposal.branding.accent),
        accent_light: Colour::hex(&proposal.branding.accent_light),
    };
    let mut first = true;
    for section in &proposal.template.sections {
        let wanted = match section.as_str() {
            "executive_summary" => proposal.include_executive_summary,
            "detailed_breakdown" => proposal.include_detailed_breakdown,
            "architecture_diagram" => proposal.include_architecture_diagram,
            _ => true,
        };
        if !wanted {
            continue;
        }
        // Every section after the cover starts on a new page; later ones follow on.
        if !first
            && (section == "executive_summary" || flow.y > TOP)
            && section != "assumptions"
            && section != "recommendations"
        {
            flow.page();
        }
        match section.as_str() {
            "cover" => cover(&mut flow, proposal),
            "executive_summary" => executive_summary(&mut flow, proposal),
            "architecture_diagram" => architecture(&mut flow, proposal),
            "detailed_breakdown" => breakdown(&mut flow, proposal),
            "assumptions" => assumptions(&mut flow, proposal),
            "recommendations" => recommendations(&mut flow, proposal),
            _ => {}
        }
        first = false;
    }
    let pages = flow.canvas.page_count();
    for index in 0..pages {
        flow.canvas
            .on_page(index, |p| footer(p, proposal, index + 1, pages));
    }
    Some(flow.canvas.finish())
}

fn footer(p: &mut PageOps<'_>, proposal: &Proposal, page: usize, pages: usize) {
    let y = PAGE_HEIGHT - 12.0;
    p.line((MARGIN, y - 5.0), (RIGHT, y - 5.0), 0.5, RULE);
    p.text(
        MARGIN,
        y,
        8.0,
        Weight::Regular,
        MUTED,
        &fit(&proposal.branding.footer, 80.0, 8.0, Weight::Regular),
    );
    let middle = fit(&proposal.project_name, 60.0, 8.0, Weight::Regular);
    let width = text_width(&middle, 8.0, Weight::Regular);
    p.text(
        PAGE_WIDTH / 2.0 - width / 2.0,
        y,
        8.0,
        Weight::Regular,
        MUTED,
        &middle,
    );
    p.text_right(
        RIGHT,
        y,
        8.0,
        Weight::Bold,
        MUTED,
        &format!("Page {page} of {pages}"),
    );
}

fn cover(flow: &mut Flow, proposal: &Proposal) {
    let accent = flow.accent;
    let summary = &proposal.summary;
    flow.draw(|p| {
        p.fill(0.0, 0.0, PAGE_WIDTH, 70.0, accent);
        p.text(
            MARGIN,
            30.0,
            13.0,
            Weight::Bold,
            WHITE,
            &proposal.branding.company,
        );
        p.text(
            MARGIN,
            52.0,
            28.0,
            Weight::Bold,
            WHITE,
            &fit(&proposal.template.title, RIGHT - MARGIN, 28.0, Weight::Bold),
        );
        p.text(
            MARGIN,
            61.0,
            11.0,
            Weight::Regular,
            WHITE,
            &proposal.template.subtitle,
        );
    });
    let mut y = 95.0;
    for line in wrap(&proposal.project_name, RIGHT - MARGIN, 22.0, Weight::Bold)
        .iter()
        .take(3)
    {
        flow.draw(|p| p.text(MARGIN, y, 22.0, Weight::Bold, INK, line));
        y += 10.0;
    }
    y += 8.0;
    for (label, value) in [
        ("Prepared for", proposal.client_company.as_str()),
        ("Prepared by", proposal.prepared_by.as_str()),
        ("Date", proposal.date.as_str()),
        ("Estimation", proposal.estimation_id.as_str()),
    ] {
        flow.draw(|p| {
            p.text(MARGIN, y, 9.0, Weight::Regular, MUTED, label);
            p.text(
                MARGIN,
                y + 6.0,
                13.0,
                Weight::Bold,
                INK,
                &fit(value, RIGHT - MARGIN, 13.0, Weight::Bold),
            );
        });
        y += 17.0;
    }
    let light = flow.accent_light;
    let monthly = money(summary.total_monthly_cost, &summary.currency);
    flow.draw(|p| {
        p.fill(MARGIN, 225.0, RIGHT - MARGIN, 28.0, light);
        p.text(
            MARGIN + 6.0,
            236.0,
            10.0,
            Weight::Regular,
            MUTED,
            "Estimated monthly cost",
        );
        p.text(MARGIN + 6.0, 247.0, 20.0, Weight::Bold, accent, &monthly);
        p.text_right(
            RIGHT - 6.0,
            236.0,
            10.0,
            Weight::Regular,
            MUTED,
            "Estimated annual cost",
        );
        p.text_right(
            RIGHT - 6.0,
            247.0,
            14.0,
            Weight::Bold,
            INK,
            &money(summary.total_annual_cost, &summary.currency),
        );
    });
    flow.y = BOTTOM;
}

fn executive_summary(flow: &mut Flow, proposal: &Proposal) {
    let s = &proposal.summary;
    let c = s.currency.as_str();
    flow.heading("Executive summary");
    flow.paragraph(
        &format!(
            "This proposal estimates the AWS cost of {} for {}: {} line items across compute, storage, databases, networking and security, priced in {} ({}).",
            proposal.project_name, proposal.client_company, proposal.lines.len(), c, proposal.region
        ),
        10.0,
        INK,
    );
    let (y, accent, light) = (flow.y + 2.0, flow.accent, flow.accent_light);
    let half = (RIGHT - MARGIN - 6.0) / 2.0;
    flow.draw(|p| {
        for (i, (label, value)) in [
            ("Monthly total", money(s.total_monthly_cost, c)),
            ("Annual total", money(s.total_annual_cost, c)),
        ]
        .iter()
        .enumerate()
        {
            let x = MARGIN + i as f32 * (half + 6.0);
            p.fill(x, y, half, 24.0, light);
            p.text(x + 5.0, y + 8.0, 9.0, Weight::Regular, MUTED, label);
            p.text(x + 5.0, y + 18.0, 18.0, Weight::Bold, accent, value);
        }
    });
    flow.y += 32.0;
    let b = &s.cost_breakdown;
    let share = |v: Decimal| {
        if s.total_monthly_cost.is_zero() {
            "–".to_string()
        } else {
            format!("{:.1}%", v / s.total_monthly_cost * Decimal::from(100))
        }
    };
    let columns = [
        Column {
            header: "Category",
            width: 70.0,
            right: false,
        },
        Column {
            header: "Monthly",
            width: 35.0,
            right: true,
        },
        Column {
            header: "Annual",
            width: 40.0,
            right: true,
        },
        Column {
            header: "Share",
            width: RIGHT - MARGIN - 145.0,
            right: true,
        },
    ];
    let rows: Vec<Vec<String>> = [
        ("Compute", b.compute),
        ("Storage", b.storage),
        ("Database", b.database),
        ("Network", b.network),
        ("Security", b.security),
        ("Support plan", b.support),
    ]
    .iter()
    .map(|(name, v)| {
        vec![
            name.to_string(),
            money(*v, c),
            money(*v * Decimal::from(12), c),
            share(*v),
        ]
    })
    .collect();
    let total = vec![
        "Total".to_string(),
        money(s.total_monthly_cost, c),
        money(s.total_annual_cost, c),
        "100%".to_string(),
    ];
    flow.table(Some("Cost by category"), &columns, &rows, Some(total));
    let o = &s.optimization_savings_potential;
    let columns = [
        Column {
            header: "Option",
            width: 105.0,
            right: false,
        },
        Column {
            header: "Possible monthly savings",
            width: RIGHT - MARGIN - 105.0,
            right: true,
        },
    ];
    let rows = vec![
        vec![
            "Reserved Instances".to_string(),
            money(o.reserved_instance_savings, c),
        ],
        vec![
            "Spot Instances".to_string(),
            money(o.spot_instance_savings, c),
        ],
        vec![
            "Savings Plans".to_string(),
            money(o.savings_plan_savings, c),
        ],
    ];
    flow.table(
        Some("Savings potential"),
        &columns,
        &rows,
        Some(vec![
            "Total potential".to_string(),
            money(o.total_potential_savings, c),
        ]),
    );
}

fn architecture(flow: &mut Flow, proposal: &Proposal) {
    flow.heading("Architecture overview");
    let count = |category: Category| {
        proposal
            .lines
            .iter()
            .filter(|l| l.category() == Some(category))
            .count()
    };
    let (accent, light) = (flow.accent, flow.accent_light);
    let top = flow.y + 4.0;
    let boxes = [
        ("Users", "internet traffic".to_string(), 15.0, 0.0),
        (
            "Network & security",
            format!("{} item(s)", count(Category::NetworkSecurity)),
            15.0,
            1.0,
        ),
        (
            "Compute",
            format!("{} server(s)", count(Category::Compute)),
            15.0,
            2.0,
        ),
        (
            "Databases",
            format!("{} database(s)", count(Category::Database)),
            0.0,
            3.0,
        ),
        (
            "Storage",
            format!("{} volume(s)", count(Category::Storage)),
            85.0,
            3.0,
        ),
    ];
    flow.draw(|p| {
        let width = 70.0;
        for (title, detail, x_offset, level) in &boxes {
            let x = MARGIN + 20.0 + x_offset;
            let y = top + level * 26.0;
            p.fill(x, y, width, 16.0, light);
            p.outline(x, y, width, 16.0, accent);
            p.text(x + 4.0, y + 7.0, 10.0, Weight::Bold, INK, title);
            p.text(x + 4.0, y + 12.5, 8.5, Weight::Regular, MUTED, detail);
        }
        let centre = MARGIN + 20.0 + 15.0 + 35.0;
        for level in 0..2 {
            let y = top + 16.0 + level as f32 * 26.0;
            p.line((centre, y), (centre, y + 10.0), 1.2, accent);
        }
        let y = top + 2.0 * 26.0 + 16.0;
        p.line((centre, y), (MARGIN + 20.0 + 35.0, y + 10.0), 1.2, accent);
        p.line(
            (centre, y),
            (MARGIN + 20.0 + 85.0 + 35.0, y + 10.0),
            1.2,
            accent,
        );
    });
    flow.y = top + 4.0 * 26.0;
}

fn breakdown(flow: &mut Flow, proposal: &Proposal) {
    let c = proposal.summary.currency.as_str();
    flow.heading("Detailed breakdown");
    let columns = [
        Column {
            header: "Item",
            width: 85.0,
            right: false,
        },
        Column {
            header: "Type / class",
            width: 45.0,
            right: false,
        },
        Column {
            header: "Monthly cost",
            width: RIGHT - MARGIN - 130.0,
            right: true,
        },
    ];
    for (title, category) in [
        ("Compute", Category::Compute),
        ("Storage", Category::Storage),
        ("Database", Category::Database),
        ("Network & security", Category::NetworkSecurity),
    ] {
        let items: Vec<&LineItem> = proposal
            .lines
            .iter()
            .filter(|l| l.category() == Some(category))
            .collect();
        if items.is_empty() {
            continue;
        }
        let rows: Vec<Vec<String>> = items
            .iter()
            .map(|l| {
                vec![
                    l.name(),
                    l.kind().unwrap_or("–").to_string(),
                    money(l.monthly_cost(), c),
                ]
            })
            .collect();
        let subtotal: Decimal = items.iter().map(|l| l.monthly_cost()).sum();
        let total = vec![
            format!(
                "Subtotal ({} item{})",
                items.len(),
                if items.len() == 1 { "" } else { "s" }
            ),
            String::new(),
            money(subtotal, c),
        ];
        flow.table(Some(title), &columns, &rows, Some(total));
    }
    flow.paragraph("Line-item costs are shown before the buffer, volume discount and support plan; the executive summary shows the totals with them.", 8.5, MUTED);
}

fn assumptions(flow: &mut Flow, proposal: &Proposal) {
    flow.heading("Assumptions");
    let s = &proposal.summary;
    let mut points = vec![
        format!(
            "Region: {}. Currency: {}. Pricing model: on-demand, 730 hours a month.",
            proposal.region, s.currency
        ),
        "Figures are estimates from the requirements gathered; actual usage decides the bill."
            .to_string(),
    ];
    if let Some(rules) = &s.business_rules_applied {
        points.push(format!(
            "A buffer of {}% is added to every category for growth and uncertainty.",
            rules.buffer_percentage.normalize()
        ));
        points.push(if rules.volume_discounts {
            format!(
                "Volume discount applied: {}% (3% from 10,000 a month, 5% from 50,000).",
                rules.volume_discount_percentage.normalize()
            )
        } else {
            "No volume discount is applied.".to_string()
        });
        points.push(if rules.support_plan_included {
            format!(
                "AWS Business Support is included: {} a month.",
                money(rules.support_plan_cost, &s.currency)
            )
        } else {
            "No AWS support plan is included.".to_string()
        });
        points.push(format!("Rounding: {}.", rules.rounding));
    }
    for point in points {
        flow.bullet(&point);
    }
}

fn recommendations(flow: &mut Flow, proposal: &Proposal) {
    let mut tips: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for line in &proposal.lines {
        for tip in &line.optimization_recommendations {
            tips.entry(tip.clone()).or_default().push(line.name());
        }
    }
    let mut compliance: Vec<String> = proposal.compliance.clone();
    for line in &proposal.lines {
        compliance.extend(line.compliance_requirements.iter().cloned());
    }
    compliance.sort();
    compliance.dedup();
    flow.y += 4.0;
    flow.heading("Optimization recommendations");
    if tips.is_empty() {
        flow.paragraph(
            "No recommendations were recorded for the line items.",
            10.0,
            MUTED,
        );
    }
    for (tip, items) in &tips {
        let shown: Vec<&str> = items.iter().take(4).map(String::as_str).collect();
        let more = if items.len() > 4 {
            format!(" and {} more", items.len() - 4)
        } else {
            String::new()
        };
        flow.bullet(&format!("{tip} ({}{more})", shown.join(", ")));
    }
    flow.y += 4.0;
    flow.heading("Compliance requirements");
    if compliance.is_empty() {
        flow.paragraph("No compliance requirements were recorded.", 10.0, MUTED);
    } else {
        flow.bullet(&compliance.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_is_grouped_and_rounded_to_the_cent() {
        assert_eq!(money(Decimal::new(349983, 2), "USD"), "$3,499.83");
        assert_eq!(money(Decimal::new(1234567891, 3), "EUR"), "€1,234,567.89");
        assert_eq!(money(Decimal::ZERO, "GBP"), "£0.00");
        assert_eq!(money(Decimal::new(-5, 1), "CHF"), "-CHF 0.50");
        assert_eq!(money(Decimal::new(100, 0), "USD"), "$100.00");
    }
}
