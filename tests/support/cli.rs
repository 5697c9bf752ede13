//! Running the binary as a user does: replay scenario files, read the state back.

use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// `events/<name>` (`.json` added when missing).
pub fn event(name: &str) -> PathBuf {
    let file = if name.ends_with(".json") {
        name.to_string()
    } else {
        format!("{name}.json")
    };
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("events")
        .join(file)
}

/// The binary, without the developer's configuration.
pub fn worker() -> Command {
    let mut cmd = Command::cargo_bin("ddb-stream-worker").unwrap();
    for var in [
        "AUDITED_TABLES",
        "AUDIT_TABLE",
        "AUDIT_SHARDS",
        "IDEMPOTENCY_TABLE",
        "AWS_LAMBDA_RUNTIME_API",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `replay <events> --state <state> --json` with `env` set; asserts exit 0; the JSON lines.
pub fn replay(state: &Path, files: &[&str], env: &[(&str, &str)]) -> Vec<Value> {
    let mut cmd = worker();
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = cmd
        .arg("replay")
        .args(files.iter().map(|f| event(f)))
        .arg("--state")
        .arg(state)
        .arg("--json")
        .output()
        .unwrap();
    assert_eq!(
        output.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `records` written as one event file at `file`, then replayed ([`replay_file`]).
pub fn replay_records(file: &Path, state: &Path, records: &[Value]) -> (i32, Vec<Value>, String) {
    std::fs::write(file, serde_json::json!({ "Records": records }).to_string()).unwrap();
    replay_file(file, state)
}

/// `replay <file> --state <state> --json`: the exit code, the JSON lines and what the worker
/// logged (at WARN).
pub fn replay_file(file: &Path, state: &Path) -> (i32, Vec<Value>, String) {
    replay_file_with(file, state, &[])
}

/// [`replay_file`] with the variables `env` set (configuration as a user would write it).
pub fn replay_file_with(
    file: &Path,
    state: &Path,
    env: &[(&str, &str)],
) -> (i32, Vec<Value>, String) {
    let mut cmd = worker();
    for (name, value) in env {
        cmd.env(name, value);
    }
    let output = cmd
        .env("RUST_LOG", "warn")
        .arg("replay")
        .arg(file)
        .arg("--state")
        .arg(state)
        .arg("--json")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).to_string();
    let lines = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (output.status.code().unwrap_or(-1), lines, stderr)
}

/// `state show --table <table>`: the table's items.
pub fn table(state: &Path, name: &str) -> Vec<Value> {
    let output = worker()
        .args(["state", "show", "--table", name, "--state"])
        .arg(state)
        .output()
        .unwrap();
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The mail the embedded state sent, in the order it was sent.
pub fn outbox(state: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(state.join("outbox")) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect()
}

/// The outcomes one reaction had, record by record.
pub fn outcomes(lines: &[Value], reaction: &str) -> Vec<String> {
    lines
        .iter()
        .filter_map(|l| l["reactions"].as_array())
        .flatten()
        .filter(|r| r["reaction"] == reaction)
        .map(|r| r["outcome"].as_str().unwrap().to_string())
        .collect()
}
