//! `stream` against DynamoDB Local (and moto): records written through the SDK reach the
//! reactions; a restart resumes from the checkpoint; a record that keeps failing is retried as
//! configured, then written to the on-failure file and skipped, and the records after it are
//! not lost. Needs `scripts/services start`.

mod support;

use std::path::Path;

use aws_sdk_dynamodb::types::AttributeValue as V;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use support::services;

fn s(v: &str) -> V {
    V::S(v.into())
}

/// `stream` on `table`, its checkpoint and on-failure files in `dir`.
fn stream_command(
    table: &str,
    dir: &Path,
    extra_env: &[(&str, &str)],
    config: Option<&str>,
) -> Command {
    let mut cmd = Command::new(assert_cmd::cargo::cargo_bin("ddb-stream-worker"));
    cmd.env_remove("AWS_LAMBDA_RUNTIME_API")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ENDPOINT_URL_S3", services::moto_endpoint())
        .env("AWS_ENDPOINT_URL_SES", services::moto_endpoint())
        .env("AUDITED_TABLES", table)
        .env("AUDIT_TABLE", table)
        .env("COST_TABLE", table);
    for (name, value) in extra_env {
        cmd.env(name, value);
    }
    cmd.args([
        "stream",
        "--table",
        table,
        "--endpoint-url",
        &services::dynamodb_endpoint(),
    ]);
    if let Some(config) = config {
        let path = dir.join("mapping.json");
        std::fs::write(&path, config).unwrap();
        cmd.arg("--config").arg(path);
    }
    cmd.arg("--checkpoints")
        .arg(dir.join("checkpoints.json"))
        .arg("--on-failure")
        .arg(dir.join("failures.jsonl"));
    cmd
}

/// `stream --once`: (exit code, stdout + stderr).
fn stream(
    table: &str,
    dir: &Path,
    extra_env: &[(&str, &str)],
    config: Option<&str>,
) -> (i32, String) {
    let output = stream_command(table, dir, extra_env, config)
        .arg("--once")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).to_string()
            + &String::from_utf8_lossy(&output.stderr),
    )
}

/// (first, last, count) of every batch line `shard …: N records (first..last) done`.
fn batches(output: &str) -> Vec<(String, String, usize)> {
    output
        .lines()
        .filter(|l| l.contains(") done"))
        .filter_map(|l| {
            let (_, rest) = l.split_once(": ")?;
            let (count, rest) = rest.split_once(" records (")?;
            let (range, _) = rest.split_once(')')?;
            let (first, last) = range.split_once("..")?;
            Some((first.to_string(), last.to_string(), count.parse().ok()?))
        })
        .collect()
}

async fn fresh_table() -> String {
    services::fresh_table("aws-cost-platform-enhanced").await
}

async fn audit_count(table: &str) -> usize {
    services::audit_items(table).await.len()
}

async fn put_user(table: &str, id: &str) {
    let db = services::dynamodb().await;
    let user =
        json!({"PK": {"S": format!("USER#{id}")}, "SK": {"S": "PROFILE"}, "UserId": {"S": id}});
    services::put(&db, table, user).await;
}

/// An estimation and a PDF proposal for it: with DOCUMENTS_BUCKET naming a bucket that does
/// not exist, the proposal fails on every attempt.
async fn put_poison_proposal(table: &str) {
    let db = services::dynamodb().await;
    for item in [
        json!({"PK": {"S": "ESTIMATION#e1"}, "SK": {"S": "METADATA"}, "ProjectName": {"S": "P"}}),
        json!({
            "PK": {"S": "ESTIMATION#e1"}, "SK": {"S": "DOCUMENT#d1"},
            "DocumentType": {"S": "PDF_PROPOSAL"}, "Status": {"S": "PENDING"},
        }),
    ] {
        services::put(&db, table, item).await;
    }
}

#[tokio::test]
async fn stream_delivers_resumes_and_sets_aside_a_record_that_keeps_failing() {
    services::require();
    let table = fresh_table().await;
    let dir = tempfile::tempdir().unwrap();
    for id in ["u1", "u2", "u3"] {
        put_user(&table, id).await;
    }
    let (code, output) = stream(&table, dir.path(), &[], None);
    assert_eq!(code, 0, "{output}");
    let first_run = batches(&output);
    // The three users, then the three audit items the worker wrote meanwhile (which are
    // delivered too, and not audited themselves).
    assert_eq!(first_run.iter().map(|b| b.2).sum::<usize>(), 6, "{output}");
    assert_eq!(audit_count(&table).await, 3);

    // A restart resumes after the checkpoint: only what came since.
    put_user(&table, "u4").await;
    put_user(&table, "u5").await;
    let (code, output) = stream(&table, dir.path(), &[], None);
    assert_eq!(code, 0, "{output}");
    let second_run = batches(&output);
    assert_eq!(second_run.iter().map(|b| b.2).sum::<usize>(), 4, "{output}");
    assert!(
        second_run[0].0 > first_run.last().unwrap().1,
        "nothing delivered twice: {output}"
    );
    assert_eq!(audit_count(&table).await, 5);

    // A proposal whose bucket does not exist fails on every attempt; after the configured
    // retries it is set aside, and the user written after it is still processed.
    put_poison_proposal(&table).await;
    put_user(&table, "u6").await;
    let missing_bucket = services::unique("no-such-bucket");
    let (code, output) = stream(
        &table,
        dir.path(),
        &[("DOCUMENTS_BUCKET", &missing_bucket)],
        Some(
            r#"{"BatchSize": 10, "MaximumRetryAttempts": 2,
                "FunctionResponseTypes": ["ReportBatchItemFailures"]}"#,
        ),
    );
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        output.matches("failed (attempt").count(),
        3,
        "the first attempt and two retries: {output}"
    );
    // Described as Lambda describes it to an on-failure destination: a range of the stream.
    let failures_file = dir.path().join("failures.jsonl");
    let failures = std::fs::read_to_string(&failures_file).unwrap();
    let failure: serde_json::Value =
        serde_json::from_str(failures.lines().next().unwrap()).unwrap();
    let info = &failure["DDBStreamBatchInfo"];
    assert_eq!(info["batchSize"], 1, "{failure}");
    assert_eq!(info["startSequenceNumber"], info["endSequenceNumber"]);
    assert!(
        info["streamArn"].as_str().unwrap().contains(&table),
        "{failure}"
    );
    assert!(info["shardId"].as_str().unwrap().starts_with("shardId-"));
    assert_eq!(
        failure["requestContext"]["condition"],
        "RetryAttemptsExhausted"
    );
    assert_eq!(failure["requestContext"]["approximateInvokeCount"], 3);
    assert!(
        failure["records"][0]["keys"]
            .as_str()
            .unwrap()
            .contains("DOCUMENT#d1"),
        "{failure}"
    );
    assert!(
        failure["reason"].as_str().unwrap().contains("proposal-pdf"),
        "{failure}"
    );
    let profile = services::dynamodb()
        .await
        .get_item()
        .table_name(&table)
        .key("PK", s("USER#u6"))
        .key("SK", s("PROFILE"))
        .send()
        .await
        .unwrap()
        .item;
    assert!(profile.is_some());
    let audits = audit_count(&table).await;
    assert!(
        audits >= 7,
        "the METADATA and u6 (after the set-aside record) were audited: {audits}"
    );

    // `redrive` takes the on-failure file and reads the record back from the stream: with the
    // bucket still missing it fails again (retryable), and the file is left for later.
    let redrive = |source: &[&str], bucket: &str| {
        let output = services::binary()
            .env("AUDITED_TABLES", &table)
            .env("AUDIT_TABLE", &table)
            .env("COST_TABLE", &table)
            .env("DOCUMENTS_BUCKET", bucket)
            .arg("redrive")
            .args(source)
            .args(["--endpoint-url", &services::dynamodb_endpoint()])
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&output.stdout).to_string()
                + &String::from_utf8_lossy(&output.stderr),
        )
    };
    let file = failures_file.to_str().unwrap();
    let (code, output) = redrive(&["--file", file], &missing_bucket);
    assert_eq!(code, 1, "{output}");
    assert!(
        output.contains("1 failed (retryable: run again)"),
        "{output}"
    );

    // Fixed (the bucket exists now), Lambda's own message in the failed-records queue is
    // redriven: the record is read back from the stream, the proposal rendered, the message
    // deleted.
    let bucket = services::unique("documents");
    services::ensure_bucket(&bucket).await;
    let (sqs, queue_url) = services::fresh_queue("on-failure").await;
    let mut lambdas_own = failure.clone();
    for added in ["reason", "records"] {
        lambdas_own.as_object_mut().unwrap().remove(added);
    }
    sqs.send_message()
        .queue_url(&queue_url)
        .message_body(lambdas_own.to_string())
        .send()
        .await
        .unwrap();
    let (code, output) = redrive(&["--queue-url", &queue_url], &bucket);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("1 record(s) went through"), "{output}");
    let pdfs = services::s3()
        .await
        .list_objects_v2()
        .bucket(&bucket)
        .send()
        .await
        .unwrap()
        .key_count()
        .unwrap_or(0);
    assert_eq!(pdfs, 1, "the proposal was rendered: {output}");
    let left = services::receive(&sqs, &queue_url).await;
    assert!(left.is_empty(), "the message was deleted: {left:?}");

    // Redriving the file again changes nothing more.
    let (code, output) = redrive(&["--file", file], &bucket);
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("1 record(s) went through"), "{output}");

    // A range the stream no longer holds is said to be gone, not retried.
    let mut trimmed = lambdas_own.clone();
    for end in ["startSequenceNumber", "endSequenceNumber"] {
        trimmed["DDBStreamBatchInfo"][end] = json!("000000000000000000001");
    }
    let gone = dir.path().join("gone.json");
    std::fs::write(&gone, trimmed.to_string()).unwrap();
    let (code, output) = redrive(&["--file", gone.to_str().unwrap()], &bucket);
    assert_eq!(code, 1, "{output}");
    assert!(output.contains("no longer in"), "{output}");

    // And nothing is delivered twice after that.
    let (code, output) = stream(
        &table,
        dir.path(),
        &[("DOCUMENTS_BUCKET", &missing_bucket)],
        None,
    );
    assert_eq!(code, 0, "{output}");
    assert!(!output.contains("failed"), "{output}");
}

#[tokio::test]
async fn filter_criteria_drop_what_they_should() {
    services::require();
    let table = fresh_table().await;
    let dir = tempfile::tempdir().unwrap();
    put_user(&table, "keep-1").await;
    put_user(&table, "drop-1").await;
    put_user(&table, "keep-2").await;
    // Only users whose key starts with USER#keep reach the worker (so the audit items it
    // writes, PK AUDIT#…, are dropped too).
    let config = r#"{"FilterCriteria": {"Filters": [{"Pattern": "{\"dynamodb\": {\"Keys\": {\"PK\": {\"S\": [{\"prefix\": \"USER#keep\"}]}}}}"}]}}"#;
    let (code, output) = stream(&table, dir.path(), &[], Some(config));
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        batches(&output).iter().map(|b| b.2).sum::<usize>(),
        2,
        "{output}"
    );
    assert_eq!(
        audit_count(&table).await,
        2,
        "the dropped user was never delivered"
    );
    let (code, output) = stream(
        &table,
        dir.path(),
        &[],
        Some(r#"{"FilterCriteria": {"Filters": [{"Pattern": "not json"}]}}"#),
    );
    assert_ne!(code, 0);
    assert!(output.contains("not JSON"), "{output}");
}

#[tokio::test]
async fn records_older_than_the_maximum_age_are_set_aside_not_delivered() {
    services::require();
    let table = fresh_table().await;
    let dir = tempfile::tempdir().unwrap();
    put_user(&table, "old-1").await;
    std::thread::sleep(std::time::Duration::from_secs(2));
    let (code, output) = stream(
        &table,
        dir.path(),
        &[],
        Some(r#"{"MaximumRecordAgeInSeconds": 1}"#),
    );
    assert_eq!(code, 0, "{output}");
    assert_eq!(
        audit_count(&table).await,
        0,
        "the old record was not delivered"
    );
    let failures = std::fs::read_to_string(dir.path().join("failures.jsonl")).unwrap();
    assert!(failures.contains("USER#old-1"), "{failures}");
    assert!(failures.contains("MaximumRecordAgeInSeconds"), "{failures}");
    assert!(
        failures.contains(r#""condition":"RecordAgeExceeded""#),
        "{failures}"
    );

    // The checkpoint moved past it: under a generous limit only the new user is audited, and
    // the old one is neither delivered now nor set aside twice.
    // With --json every batch line is an object.
    put_user(&table, "new-1").await;
    let output = stream_command(
        &table,
        dir.path(),
        &[],
        Some(r#"{"MaximumRecordAgeInSeconds": 3600}"#),
    )
    .args(["--once", "--json"])
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(output.status.success(), "{stdout}");
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["outcome"], "done", "{stdout}");
    assert_eq!(lines[0]["records"], 1, "{stdout}");
    assert!(lines[0]["lagSeconds"].is_u64(), "{stdout}");
    assert_eq!(audit_count(&table).await, 1, "{stdout}");
    let failures = std::fs::read_to_string(dir.path().join("failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 1, "{failures}");
}

#[tokio::test]
async fn bisect_splits_a_failing_batch_until_only_the_poison_record_is_set_aside() {
    services::require();
    let table = fresh_table().await;
    let dir = tempfile::tempdir().unwrap();
    put_user(&table, "b1").await;
    put_poison_proposal(&table).await;
    put_user(&table, "b2").await;
    let missing_bucket = services::unique("no-such-bucket");
    // Whole-batch failures (no ReportBatchItemFailures), no retries: without bisecting the
    // four records would be set aside together.
    let (code, output) = stream(
        &table,
        dir.path(),
        &[("DOCUMENTS_BUCKET", &missing_bucket)],
        Some(r#"{"BatchSize": 10, "MaximumRetryAttempts": 0, "BisectBatchOnFunctionError": true}"#),
    );
    assert_eq!(code, 0, "{output}");
    assert!(output.contains("bisecting"), "{output}");
    let failures = std::fs::read_to_string(dir.path().join("failures.jsonl")).unwrap();
    assert_eq!(failures.lines().count(), 1, "{failures}");
    let failure: serde_json::Value = serde_json::from_str(failures.trim()).unwrap();
    let records = failure["records"].as_array().unwrap();
    assert_eq!(records.len(), 1, "only the poison record: {failure}");
    assert_eq!(failure["DDBStreamBatchInfo"]["batchSize"], 1, "{failure}");
    assert!(
        records[0]["keys"].as_str().unwrap().contains("DOCUMENT#d1"),
        "{failure}"
    );
    // b1, the METADATA and b2 (after the poison record) were all processed.
    assert!(audit_count(&table).await >= 3, "{output}");
    let audited_b2 = services::audit_items(&table)
        .await
        .iter()
        .any(|i| format!("{i:?}").contains("USER#b2"));
    assert!(audited_b2, "{output}");
}

#[tokio::test]
async fn ctrl_c_stops_after_the_current_batch_with_the_checkpoint_saved() {
    services::require();
    let table = fresh_table().await;
    let dir = tempfile::tempdir().unwrap();
    put_user(&table, "c1").await;
    let mut child = stream_command(&table, dir.path(), &[], None)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Following (no --once): wait for the first delivered batch, then Ctrl-C. Lines are read
    // on a thread, so a runner that never delivers fails the test instead of hanging it.
    let (lines, from_runner) = std::sync::mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in stdout.lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });
    let next_line = |seen: &str| match from_runner.recv_timeout(std::time::Duration::from_secs(120))
    {
        Ok(line) => Some(line + "\n"),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => None,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("the runner printed nothing for 120 s: {seen}")
        }
    };
    let mut seen = String::new();
    while !seen.contains(") done") {
        let line = next_line(&seen);
        seen += &line.unwrap_or_else(|| panic!("exited early: {seen}"));
    }
    let interrupted = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let mut rest = String::new();
    while let Some(line) = next_line(&format!("{seen}{rest}")) {
        rest += &line;
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}: {seen}{rest}");
    assert!(rest.contains("stopped; checkpoints in"), "{seen}{rest}");
    assert!(
        seen.contains(" s\n") && seen.contains(") done, lag "),
        "{seen}"
    );
    let checkpoints = std::fs::read_to_string(dir.path().join("checkpoints.json")).unwrap();
    assert!(checkpoints.contains("shardId"), "{checkpoints}");

    // The restart resumes after the batch delivered before Ctrl-C.
    let delivered_before = batches(&format!("{seen}{rest}"));
    let (code, output) = stream(&table, dir.path(), &[], None);
    assert_eq!(code, 0, "{output}");
    for batch in batches(&output) {
        assert!(
            batch.0 > delivered_before.last().unwrap().1,
            "delivered again: {output}"
        );
    }
}

#[tokio::test]
async fn the_batching_window_gathers_records_that_arrive_while_it_is_open() {
    services::require();
    let table = fresh_table().await;
    let dir = tempfile::tempdir().unwrap();
    put_user(&table, "w1").await;
    // A window of 120 s closes when the batch is full (3): w2 and w3, written about a second
    // after the runner starts, fill it however slow the machine is (the runner stops at the
    // window's end at the latest).
    let child = stream_command(
        &table,
        dir.path(),
        &[],
        Some(r#"{"MaximumBatchingWindowInSeconds": 120, "BatchSize": 3}"#),
    )
    .arg("--once")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    put_user(&table, "w2").await;
    put_user(&table, "w3").await;
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    assert_eq!(
        batches(&text).first().map(|b| b.2),
        Some(3),
        "one batch of the three users: {text}"
    );
}

#[tokio::test]
async fn the_deploy_template_can_be_the_settings_source() {
    services::require();
    let table = fresh_table().await;
    let dir = tempfile::tempdir().unwrap();
    put_user(&table, "t1").await;
    let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/template.yaml");
    let output = stream_command(&table, dir.path(), &[], None)
        .arg("--config")
        .arg(&template)
        .args(["--event", "CostPlatform", "--once"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout).to_string()
        + &String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{text}");
    // The template's filters pass the profile and leave out the audit item written for it.
    assert_eq!(
        batches(&text).iter().map(|b| b.2).sum::<usize>(),
        1,
        "{text}"
    );
    assert!(text.contains("not delivered"), "{text}");
    assert_eq!(audit_count(&table).await, 1);

    let output = stream_command(&table, dir.path(), &[], None)
        .arg("--config")
        .arg(&template)
        .arg("--once")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--event"), "{stderr}");
}
