//! `proposal-pdf`: a DOCUMENT# item of type PDF_PROPOSAL arriving in Status PENDING is
//! rendered as a PDF, stored in S3, completed, and its requester mailed a download link.
//!
//! Guarded by the idempotency table: the mail must go out once. Storing the object (same key)
//! and completing the document (conditional) are safe to repeat, so a retry after a failed
//! send redoes them and sends. Problems no retry can fix (no estimation, unknown template)
//! mark the document FAILED with the reason and let the batch go on; S3, DynamoDB and SES
//! errors fail the record so Lambda retries it.

use std::sync::Arc;

use async_trait::async_trait;
use chrono::{Duration, SecondsFormat};
use serde_json::json;

use crate::change::{Change, ChangeKind};
use crate::cost::model::{
    Category, Document, EstimationSummary, LineItem, Metadata, Notice, ESTIMATION_ITEMS_FROM,
};
use crate::cost::notify;
use crate::cost::pricing::{price, SavingsRates};
use crate::cost::proposal::filename;
use crate::cost::proposal::render::{money, render, Proposal};
use crate::cost::savings::SavingsRatesCache;
use crate::cost::EstimationDefaults;
use crate::error::{PortError, ReactionError};
use crate::item::{from_item, get_str, partition, string_key, AttributeValue};
use crate::mail::{self, MailConfig};
use crate::ports::{Comparison, Condition, Link, Object, Ports, Query, SortKey, Update};
use crate::settings::{ConfigError, Settings};
use crate::templates;

use super::contract::{Idempotency, Reacted, Reaction};

pub const DEFAULT_TEMPLATE: &str = "standard_proposal";
pub const DEFAULT_BRANDING: &str = "default";

#[derive(Debug, Clone)]
pub struct ProposalConfig {
    /// The table, and the defaults for an estimation that has no summary yet.
    pub estimation: EstimationDefaults,
    pub bucket: String,
    /// How long a generated document is kept (its ExpiresAt and TTL).
    pub document_lifetime: Duration,
    /// The application's download page for a document, `{EstimationId}` and `{DocumentId}`
    /// filled in (`PROPOSAL_LINK_URL`); without it, the mail carries a presigned S3 link.
    pub link_url: Option<String>,
    pub mail: MailConfig,
}

impl ProposalConfig {
    pub fn from_settings(s: &Settings) -> Result<Self, ConfigError> {
        Ok(ProposalConfig {
            estimation: EstimationDefaults::from_settings(s)?,
            bucket: s.text("DOCUMENTS_BUCKET", "aws-cost-estimation-documents"),
            document_lifetime: Duration::days(s.count("DOCUMENT_LIFETIME_DAYS", 182)?),
            link_url: s.url_template("PROPOSAL_LINK_URL")?,
            mail: MailConfig::from_settings(s)?,
        })
    }
}

pub struct ProposalPdf {
    config: ProposalConfig,
    /// Shared with the totals reaction: the PDF is priced with the same savings rates.
    tips: Arc<SavingsRatesCache>,
}

impl ProposalPdf {
    pub fn new(config: ProposalConfig, tips: Arc<SavingsRatesCache>) -> Self {
        ProposalPdf { config, tips }
    }
}

/// A problem no retry fixes: the document is marked FAILED with it.
struct Unfixable(String);

#[async_trait]
impl Reaction for ProposalPdf {
    fn name(&self) -> &'static str {
        "proposal-pdf"
    }

    fn idempotency(&self) -> Idempotency {
        Idempotency::Guarded
    }

    fn partitions(&self, change: &Change) -> Vec<String> {
        // The requester's profile, which the mail goes to.
        let table = &self.config.estimation.table;
        change
            .new
            .as_ref()
            .and_then(|new| get_str(new, "GeneratedBy"))
            .map(|user| vec![partition(table, &format!("USER#{user}"))])
            .unwrap_or_default()
    }

    fn applies(&self, change: &Change) -> bool {
        let Some(new) = &change.new else { return false };
        let pending = |image: Option<&crate::Item>| {
            image.and_then(|i| get_str(i, "Status")) == Some("PENDING")
        };
        change.table == self.config.estimation.table
            && get_str(new, "SK").is_some_and(|sk| sk.starts_with("DOCUMENT#"))
            && get_str(new, "DocumentType") == Some("PDF_PROPOSAL")
            && pending(Some(new))
            // INSERT in PENDING, or a MODIFY *into* PENDING (not one that stays there).
            && (change.kind == ChangeKind::Insert || !pending(change.old.as_ref()))
    }

    async fn react(&self, change: &Change, ports: Ports<'_>) -> Result<Reacted, ReactionError> {
        let new = change.new.clone().unwrap_or_default();
        let what = format!(
            "{} {}",
            change.table,
            crate::item::describe_keys(&change.keys)
        );
        let document: Document = from_item(new, &what)?;
        let result = match self.generate(&document, change, ports).await {
            Ok(result) => result,
            Err(Err(e)) => return Err(e),
            Err(Ok(Unfixable(reason))) => self.mark_failed(&document, &reason, ports).await?,
        };
        Ok(Reacted {
            result,
            deferred_writes: Vec::new(),
        })
    }
}

impl ProposalPdf {
    /// Ok: done. Err(Ok): unfixable, mark FAILED. Err(Err): fail the record for a retry.
    async fn generate(
        &self,
        document: &Document,
        change: &Change,
        ports: Ports<'_>,
    ) -> Result<serde_json::Value, Result<Unfixable, ReactionError>> {
        let table = &self.config.estimation.table;
        let unfixable = |reason: String| Err(Ok(Unfixable(reason)));
        let options = document.metadata.clone().unwrap_or_default();
        let template_name = options
            .template
            .clone()
            .unwrap_or_else(|| DEFAULT_TEMPLATE.to_string());
        let template = match templates::proposal_template(&template_name) {
            Ok(t) => t,
            Err(e) => return unfixable(e.to_string()),
        };
        let branding =
            match templates::branding(options.branding.as_deref().unwrap_or(DEFAULT_BRANDING)) {
                Ok(b) => b,
                Err(e) => return unfixable(e.to_string()),
            };
        let items = ports
            .tables
            .query(&Query {
                table: table.clone(),
                index: None,
                partition: ("PK".into(), AttributeValue::S(document.pk.clone())),
                sort_key: Some(("SK".into(), SortKey::AtLeast(ESTIMATION_ITEMS_FROM.into()))),
                ascending: true,
            })
            .await
            .map_err(|e| Err(e.into()))?;
        let mut metadata = None;
        let mut lines = Vec::new();
        for item in items {
            let sk = get_str(&item, "SK").unwrap_or_default().to_string();
            if sk == "METADATA" {
                match from_item::<Metadata>(item, &format!("{table} {} METADATA", document.pk)) {
                    Ok(m) => metadata = Some(m),
                    Err(e) => return unfixable(e.to_string()),
                }
            } else if Category::of_sort_key(&sk).is_some() {
                match from_item::<LineItem>(item, &format!("{table} {} {sk}", document.pk)) {
                    Ok(line) => lines.push(line),
                    Err(e) => return unfixable(e.to_string()),
                }
            }
        }
        let Some(metadata) = metadata else {
            return unfixable(format!(
                "estimation {} does not exist (no METADATA item)",
                document.pk
            ));
        };
        let requester = match &document.generated_by {
            Some(id) => notify::profile(ports, table, id).await.map_err(Err)?,
            None => None,
        };
        // The request's time dates the proposal, its completion and its expiry: every retry
        // and every replay of the record writes the same PDF and the same item.
        let now = change.approximate_creation;
        // Priced here from the very line items the PDF lists, never taken from METADATA: the
        // stored summary is rewritten after the line items change (once per batch), so it can
        // lag them, and a proposal whose totals disagree with its own table is worse than one
        // more query.
        let rates = self.tips.get(ports).await.map_err(|e| Err(e.into()))?;
        let summary = match self.summary_from(&metadata, &lines, &rates, now) {
            Ok(summary) => summary,
            Err(overflow) => return unfixable(overflow.to_string()),
        };
        let client = metadata.enhanced_client_info.clone().unwrap_or_default();
        let estimation_id = metadata.estimation_id().to_string();
        let proposal = Proposal {
            template,
            branding,
            client_company: client
                .company_name
                .clone()
                .unwrap_or_else(|| "–".to_string()),
            project_name: metadata
                .project_name
                .clone()
                .unwrap_or_else(|| estimation_id.clone()),
            prepared_by: requester
                .as_ref()
                .and_then(|r| r.full_name())
                .or_else(|| document.generated_by.clone())
                .unwrap_or_else(|| "–".to_string()),
            date: now.format("%-d %B %Y").to_string(),
            estimation_id: estimation_id.clone(),
            region: client
                .primary_aws_region
                .clone()
                .unwrap_or_else(|| self.config.estimation.default_region.clone()),
            summary,
            lines,
            compliance: client.compliance_requirements.clone(),
            include_executive_summary: options.include_executive_summary.unwrap_or(true),
            include_detailed_breakdown: options.include_detailed_breakdown.unwrap_or(true),
            include_architecture_diagram: options.include_architecture_diagram.unwrap_or(false),
        };
        let Some(pdf) = render(&proposal) else {
            return Err(Err(ReactionError::Encode(
                "the embedded fonts could not be loaded".into(),
            )));
        };
        let file_name = document
            .file_name
            .clone()
            .unwrap_or_else(|| "proposal.pdf".to_string());
        let document_id = document
            .document_id
            .clone()
            .or_else(|| document.sk.strip_prefix("DOCUMENT#").map(str::to_string))
            .unwrap_or_else(|| document.sk.clone());
        let key = filename::proposal_key(&estimation_id, &document_id, &file_name);
        let size = pdf.len();
        ports
            .objects
            .put(Object {
                bucket: self.config.bucket.clone(),
                key: key.clone(),
                content_type: "application/pdf".into(),
                body: pdf,
            })
            .await
            .map_err(|e| Err(e.into()))?;
        let expires = now + self.config.document_lifetime;
        let completion = Update::default()
            .set("Status", AttributeValue::S("COMPLETED".into()))
            .set("S3Bucket", AttributeValue::S(self.config.bucket.clone()))
            .set("S3Key", AttributeValue::S(key.clone()))
            .set("FileSize", AttributeValue::N(size.to_string()))
            .set(
                "GeneratedAt",
                AttributeValue::S(now.to_rfc3339_opts(SecondsFormat::Secs, true)),
            )
            .set(
                "ExpiresAt",
                AttributeValue::S(expires.to_rfc3339_opts(SecondsFormat::Secs, true)),
            )
            .set("TTL", AttributeValue::N(expires.timestamp().to_string()))
            .remove("ErrorMessage");
        // Still PENDING, or completed with this very object by an earlier attempt of this
        // record whose mail did not go out.
        let ours = Condition::Or(vec![
            Condition::eq("Status", AttributeValue::S("PENDING".into())),
            Condition::And(vec![
                Condition::eq("Status", AttributeValue::S("COMPLETED".into())),
                Condition::eq("S3Key", AttributeValue::S(key.clone())),
            ]),
        ]);
        let doc_key = string_key(&[("PK", &document.pk), ("SK", &document.sk)]);
        match ports
            .tables
            .update(table, &doc_key, &completion, Some(&ours))
            .await
        {
            Ok(_) => {}
            Err(PortError::ConditionFailed { .. }) => {
                return Ok(
                    json!({ "skipped": "the document is no longer PENDING (cancelled or completed elsewhere)", "s3_key": key }),
                );
            }
            Err(e) => return Err(Err(e.into())),
        }
        let mail = match requester.filter(|r| r.wants(Notice::DocumentReady)) {
            None => json!({ "not_sent": "no requester profile with mail on" }),
            Some(profile) => match profile.email.clone() {
                None => json!({ "not_sent": "the requester's profile has no Email" }),
                Some(email) => {
                    let link = match &self.config.link_url {
                        // The application's own download page (which counts DownloadCount).
                        Some(template) => Link {
                            url: link_url(template, &estimation_id, &document_id),
                            expires: None,
                        },
                        None => ports
                            .objects
                            .presign_get(&self.config.bucket, &key, self.config.mail.link_expiry)
                            .await
                            .map_err(|e| Err(e.into()))?,
                    };
                    let currency = &proposal.summary.currency;
                    let context = json!({
                        "first_name": profile.first_name.clone().unwrap_or_else(|| "there".into()),
                        "file_name": file_name,
                        "project_name": proposal.project_name,
                        "client_company": proposal.client_company,
                        "monthly": money(proposal.summary.total_monthly_cost, currency),
                        "annual": money(proposal.summary.total_annual_cost, currency),
                        "url": link.url,
                        "link_expires": link.expires.map(|at| at.format("%-d %B %Y, %H:%M UTC").to_string()),
                        "expires_at": expires.format("%-d %B %Y").to_string(),
                        "sender_name": self.config.mail.sender_name,
                    });
                    mail::send(
                        ports,
                        &self.config.mail,
                        &email,
                        "proposal_ready",
                        &context,
                        now,
                    )
                    .await
                    .map_err(Err)?
                }
            },
        };
        Ok(
            json!({ "s3": format!("s3://{}/{key}", self.config.bucket), "bytes": size, "mail": mail }),
        )
    }

    /// The estimation's summary, priced from `lines` with its business rules.
    fn summary_from(
        &self,
        metadata: &Metadata,
        lines: &[LineItem],
        rates: &SavingsRates,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<EstimationSummary, crate::cost::pricing::Overflow> {
        let rules = metadata
            .business_rules
            .clone()
            .unwrap_or_else(|| self.config.estimation.default_rules.clone());
        let currency = metadata
            .currency
            .as_deref()
            .unwrap_or(&self.config.estimation.default_currency);
        Ok(price(lines, &rules, rates)?.summary(
            currency,
            &now.to_rfc3339_opts(SecondsFormat::Secs, true),
            lines.len(),
        ))
    }

    async fn mark_failed(
        &self,
        document: &Document,
        reason: &str,
        ports: Ports<'_>,
    ) -> Result<serde_json::Value, ReactionError> {
        let key = string_key(&[("PK", &document.pk), ("SK", &document.sk)]);
        let update = Update::default()
            .set("Status", AttributeValue::S("FAILED".into()))
            .set("ErrorMessage", AttributeValue::S(reason.to_string()));
        let still_pending = Condition::Compare(
            "Status".into(),
            Comparison::Eq,
            AttributeValue::S("PENDING".into()),
        );
        match ports
            .tables
            .update(
                &self.config.estimation.table,
                &key,
                &update,
                Some(&still_pending),
            )
            .await
        {
            Ok(_) | Err(PortError::ConditionFailed { .. }) => Ok(json!({ "failed": reason })),
            Err(e) => Err(e.into()),
        }
    }
}

/// The application's link for a document: the template with `{EstimationId}` and
/// `{DocumentId}` replaced by the ids, percent-encoded so an id cannot change the URL's shape.
fn link_url(template: &str, estimation_id: &str, document_id: &str) -> String {
    template
        .replace("{EstimationId}", &filename::id_segment(estimation_id))
        .replace("{DocumentId}", &filename::id_segment(document_id))
}
