//! Proposal PDFs and notification mail, replayed on the embedded default: the PDF under the
//! state's objects/, the mail as .eml under outbox/, the DOCUMENT# item completed or failed.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use serde_json::Value;
use support::cli::{self, outbox};

const TABLE: &str = "aws-cost-platform-enhanced";
const BUCKET: &str = "aws-cost-estimation-documents";

/// Replay `file` with `--json`; returns the JSON lines.
fn replay(state: &Path, file: &str) -> Vec<Value> {
    cli::replay(state, &[file], &[])
}

fn item(state: &Path, pk: &str, sk: &str) -> Option<Value> {
    cli::table(state, TABLE)
        .into_iter()
        .find(|i| i["PK"]["S"] == pk && i["SK"]["S"] == sk)
}

fn outcome<'a>(lines: &'a [Value], reaction: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter_map(|l| l["reactions"].as_array())
        .flatten()
        .filter(|r| r["reaction"] == reaction && r["outcome"] != "not_applicable")
        .collect()
}

fn pdf_text(path: &Path) -> Vec<String> {
    let output = Process::new("pdftotext")
        .args(["-layout"])
        .arg(path)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils) is installed");
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .split('\u{c}')
        .filter(|p| !p.trim().is_empty())
        .map(str::to_string)
        .collect()
}

/// The completed document and the path of its PDF under the state.
fn completed(state: &Path, pk: &str, sk: &str) -> (Value, PathBuf) {
    let document = item(state, pk, sk).expect("the document item");
    assert_eq!(document["Status"]["S"], "COMPLETED", "{document}");
    assert_eq!(document["S3Bucket"]["S"], BUCKET);
    let key = document["S3Key"]["S"].as_str().unwrap().to_string();
    let path = state.join("objects").join(BUCKET).join(&key);
    assert!(path.is_file(), "{} is stored", path.display());
    assert_eq!(
        document["FileSize"]["N"],
        std::fs::metadata(&path).unwrap().len().to_string()
    );
    (document, path)
}

#[test]
fn a_proposal_request_gives_a_pdf_a_completed_document_and_one_mail() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), "cost-platform-proposal-request.json");
    assert_eq!(outcome(&lines, "proposal-pdf")[0]["outcome"], "done");
    let (document, pdf) = completed(dir.path(), "ESTIMATION#est456", "DOCUMENT#doc123");
    let key = document["S3Key"]["S"].as_str().unwrap();
    // The document's own key: its estimation, its id, its file name.
    assert_eq!(
        key,
        "proposals/est456/doc123/ABC_Corporation_AWS_Proposal.pdf"
    );
    // Dated by the request (the record's ApproximateCreationDateTime), not the clock.
    assert_eq!(document["GeneratedAt"]["S"], "2024-01-15T10:11:40Z");
    let ttl: i64 = document["TTL"]["N"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        ttl,
        1_705_313_500 + 182 * 86400,
        "TTL six months after the request"
    );
    assert!(document.get("ErrorMessage").is_none());

    let pages = pdf_text(&pdf);
    let text = pages.join("\n");
    for expected in [
        "ABC Corporation",
        "Client ABC Infrastructure",
        "John Doe",
        "$3,499.83",
        "$41,997.96",
        "Web Server 1",
        "Application Data Storage",
        "Primary Application DB",
        "Network & security",
        "$247.42",
        "SOC2",
        "Consider Reserved Instances",
    ] {
        assert!(
            text.contains(expected),
            "{expected:?} not in the proposal:\n{text}"
        );
    }
    for (i, page) in pages.iter().enumerate() {
        assert!(page.contains(&format!("Page {} of {}", i + 1, pages.len())));
    }

    let mails = outbox(dir.path());
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: john.doe@sagesoft.com\r\n"));
    assert!(mails[0].contains("Subject: Your proposal for Client ABC Infrastructure is ready\r\n"));
    assert!(
        mails[0].contains(&format!(
            "file://{}",
            std::path::absolute(&pdf).unwrap().display()
        )),
        "the link opens the stored PDF"
    );
    assert!(mails[0].contains("$3,499.83 a month"));

    // Re-delivery: nothing new, no second mail, the state as it was.
    let before = item(dir.path(), "ESTIMATION#est456", "DOCUMENT#doc123");
    let again = replay(dir.path(), "cost-platform-proposal-request.json");
    assert_eq!(
        outcome(&again, "proposal-pdf")[0]["outcome"],
        "duplicate_skipped"
    );
    assert_eq!(outbox(dir.path()).len(), 1);
    assert_eq!(
        item(dir.path(), "ESTIMATION#est456", "DOCUMENT#doc123"),
        before
    );
}

#[test]
fn two_hundred_servers_paginate_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), "cost-platform-proposal-200-servers.json");
    let (_, pdf) = completed(dir.path(), "ESTIMATION#est200", "DOCUMENT#doc200");
    let pages = pdf_text(&pdf);
    assert!(pages.len() >= 8, "{} pages", pages.len());
    let text = pages.join("\n");
    for i in 1..=200 {
        assert!(
            text.contains(&format!("Application server {i:03}")),
            "server {i} missing"
        );
    }
    assert!(text.contains("Subtotal (200 items)"));
    for (i, page) in pages.iter().enumerate() {
        assert!(page.contains(&format!("Page {} of {}", i + 1, pages.len())));
        if page.contains("Compute (continued)") {
            assert!(
                page.contains("Type / class"),
                "the table header repeats on page {}",
                i + 1
            );
        }
    }
    assert!(
        std::fs::metadata(&pdf).unwrap().len() < 100_000,
        "fonts are subset"
    );
}

#[test]
fn text_beyond_ascii_in_the_pdf_and_the_mail() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), "cost-platform-proposal-non-ascii.json");
    let (_, pdf) = completed(dir.path(), "ESTIMATION#estéñ", "DOCUMENT#doc500");
    let text = pdf_text(&pdf).join("\n");
    for expected in [
        "Société Générale Ünïcode S.A.",
        "Migración de centros de datos — Zürich",
        "Servidor de aplicación (producción) €",
        "Almacenamiento de ficheros ñ",
        "Zoë Müller",
    ] {
        assert!(text.contains(expected), "{expected:?} not in:\n{text}");
    }
    assert!(
        text.contains("Rechenzentrum Überwachung – \u{FFFD}\u{FFFD}"),
        "characters the font lacks are marked: {text}"
    );
    let mails = outbox(dir.path());
    assert_eq!(mails.len(), 1);
    let subject = mails[0]
        .lines()
        .find(|l| l.starts_with("Subject: "))
        .unwrap();
    assert!(
        subject.is_ascii() && subject.to_ascii_lowercase().contains("=?utf-8?b?"),
        "a non-ASCII subject is encoded: {subject}"
    );
    assert!(mails[0].contains("Hello Zoë,"));
    assert!(mails[0].contains("Zoë") && mails[0].contains("Société Générale Ünïcode S.A."));
}

#[test]
fn a_hostile_file_name_cannot_leave_the_bucket_or_inject_headers() {
    let dir = tempfile::tempdir().unwrap();
    replay(dir.path(), "cost-platform-proposal-hostile-filename.json");
    let (document, pdf) = completed(dir.path(), "ESTIMATION#est666", "DOCUMENT#doc666");
    let key = document["S3Key"]["S"].as_str().unwrap();
    assert!(
        key.starts_with("proposals/est666/doc666/etc_passwd_Bcc_victim_example.com"),
        "{key}"
    );
    assert!(
        !key.contains("..") && !key.contains('\r') && !key.contains('\n') && !key.contains('\0')
    );
    assert!(pdf.starts_with(
        dir.path()
            .join("objects")
            .join(BUCKET)
            .join("proposals/est666")
    ));
    let mails = outbox(dir.path());
    assert_eq!(mails.len(), 1);
    assert!(
        !mails[0].lines().any(|l| l.starts_with("Bcc:")),
        "no injected header"
    );
    assert!(mails[0].contains("To: john.doe@sagesoft.com\r\n"));
}

#[test]
fn a_requester_who_turned_notifications_off_gets_no_mail() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), "cost-platform-proposal-notifications-off.json");
    completed(dir.path(), "ESTIMATION#est999", "DOCUMENT#doc999");
    assert!(outbox(dir.path()).is_empty());
    let result = &outcome(&lines, "proposal-pdf")[0]["result"];
    assert!(result["mail"]["not_sent"].is_string(), "{result}");
}

#[test]
fn a_proposal_for_a_missing_estimation_is_marked_failed_without_failing_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), "cost-platform-proposal-missing-estimation.json");
    assert_eq!(
        lines.last().unwrap(),
        &serde_json::json!({"batchItemFailures": []})
    );
    let document = item(dir.path(), "ESTIMATION#est404", "DOCUMENT#doc404").unwrap();
    assert_eq!(document["Status"]["S"], "FAILED");
    assert!(
        document["ErrorMessage"]["S"]
            .as_str()
            .unwrap()
            .contains("ESTIMATION#est404"),
        "{document}"
    );
    assert!(!dir.path().join("objects").exists());
    assert!(outbox(dir.path()).is_empty());
}

#[test]
fn sharing_an_estimation_mails_the_recipient_once_and_marks_the_share() {
    let dir = tempfile::tempdir().unwrap();
    let lines = replay(dir.path(), "cost-platform-share.json");
    assert_eq!(outcome(&lines, "share-notification")[0]["outcome"], "done");
    let mails = outbox(dir.path());
    assert_eq!(mails.len(), 1);
    assert!(mails[0].contains("To: mary.major@sagesoft.com\r\n"));
    assert!(mails[0].contains(
        "Subject: John Doe shared the estimation Client ABC Infrastructure with you\r\n"
    ));
    assert!(mails[0].contains("(read write)"));
    let share = item(dir.path(), "USER#user789", "SHARED#est456").unwrap();
    assert_eq!(share["NotificationSent"]["BOOL"], true);

    let again = replay(dir.path(), "cost-platform-share.json");
    assert_eq!(
        outcome(&again, "share-notification")[0]["outcome"],
        "duplicate_skipped"
    );
    assert_eq!(
        outbox(dir.path()).len(),
        1,
        "one mail per share under re-delivery"
    );
}
