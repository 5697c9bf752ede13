//! Issue 42: a replay killed (SIGKILL) at any moment leaves a state that opens, and running
//! the same files again ends with the items of a run that was never killed; `state show`
//! reads the state while a replay writes it.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};
use support::cli::worker;

const REVIEWS: &str = "marketplace-dev-reviews-table";

/// 30 files of 100 records: reviews of 25 providers (ratings folded into aggregates) and
/// cost platform profile changes (audited).
fn write_files(dir: &Path) -> Vec<PathBuf> {
    let s = |t: String| json!({ "S": t });
    let mut seq = 0u64;
    (0..30)
        .map(|f| {
            let records: Vec<Value> = (0..100)
                .map(|r| {
                    seq += 1;
                    let n = f * 100 + r;
                    if n % 4 == 3 {
                        let keys = json!({"PK": s(format!("USER#u{}", n % 40)), "SK": s("PROFILE".into())});
                        let mut profile = keys.clone();
                        profile["FirstName"] = s(format!("Name {n}"));
                        support::record(seq, "INSERT", keys, Some(profile), None)
                    } else {
                        let keys = json!({"reviewId": s(format!("r{n}"))});
                        let mut review = keys.clone();
                        review["providerId"] = s(format!("p{}", n % 25));
                        review["bookingId"] = s(format!("b{n}"));
                        review["rating"] = json!({"N": ((n * 7) % 5 + 1).to_string()});
                        review["createdAt"] = s(format!("2026-12-03T10:{:02}:00Z", n % 60));
                        support::record_in(REVIEWS, seq, "INSERT", keys, Some(review), None)
                    }
                })
                .collect();
            let path = dir.join(format!("part-{f:02}.json"));
            std::fs::write(&path, json!({ "Records": records }).to_string()).unwrap();
            path
        })
        .collect()
}

fn replay(files: &[PathBuf], state: &Path) -> std::process::Command {
    // A plain process (not assert_cmd's), to be killed mid-way.
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("ddb-stream-worker"));
    for var in [
        "AUDITED_TABLES",
        "AUDIT_TABLE",
        "AWS_LAMBDA_RUNTIME_API",
        "ATTRIBUTE_NAMES",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("replay")
        .args(files)
        .arg("--state")
        .arg(state)
        .arg("--json")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    cmd
}

/// Every item of the state, as `state show` prints them (it must open the state to do so).
fn items(state: &Path) -> Vec<String> {
    let output = worker()
        .args(["state", "show", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the state opens: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

#[test]
fn a_replay_killed_at_any_moment_ends_as_one_never_killed() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_files(dir.path());
    let whole = dir.path().join("whole");
    assert!(replay(&files, &whole).status().unwrap().success());
    let expected = items(&whole);
    assert!(expected.len() > 2_000, "{}", expected.len());

    let killed = dir.path().join("killed");
    let mut kills = 0;
    let mut read_while_running = 0;
    for delay_ms in [40, 120, 250, 400, 600, 900, 1_300] {
        let mut child = replay(&files, &killed).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(delay_ms));
        if killed.join("state.sqlite").exists() && child.try_wait().unwrap().is_none() {
            // Read while the replay writes: its last committed batch.
            items(&killed);
            read_while_running += 1;
        }
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
        // (Killed before the state was made, there is none to open.)
        if killed.exists() {
            items(&killed);
        }
    }
    assert!(kills >= 3, "the replays were killed mid-way: {kills}");
    assert!(
        read_while_running >= 1,
        "state show read a state being written"
    );
    assert!(replay(&files, &killed).status().unwrap().success());
    assert_eq!(items(&killed), expected);
}
