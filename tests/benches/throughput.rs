//! Replay throughput and peak memory on the embedded default, release build: generated event
//! files of 1,000, 10,000 and 100,000 records mixing audit, line items, reviews and messages,
//! one batch of 1,000 records with 10 proposal PDFs, and a day of 1,000,000 records in 10
//! files with `state show` of one table and of the whole state after it. Prints figures and
//! this build's time per stage (`replay --timings`); asserts nothing. Run: `cargo bench --bench
//! throughput`; `BASELINE_BIN=<older release binary>` replays the same files with it too, in
//! the same run.

#[path = "support/mix.rs"]
mod mix;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use mix::{Kind, Mix};
use serde_json::{json, Value};

/// Run `binary`'s replay on `files`; returns (seconds, peak RSS in MiB, its time per stage).
///
/// GNU time measures the peak: a child's own maximum RSS as the kernel reports it to its
/// parent would include this benchmark's memory at the moment of the fork.
fn replay(binary: &Path, files: &[&Path], state: &Path, timings: bool) -> (f64, f64, String) {
    replay_with(binary, files, state, timings, true)
}

/// [`replay`], on a fresh state or (`fresh` false) on the state as it is.
fn replay_with(
    binary: &Path,
    files: &[&Path],
    state: &Path,
    timings: bool,
    fresh: bool,
) -> (f64, f64, String) {
    let peak_file = state.with_extension("peak");
    let stages_file = state.with_extension("stages");
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(&peak_file)
        .arg(binary)
        .arg("replay")
        .args(files)
        .args(fresh.then_some("--fresh"))
        .arg("--state")
        .arg(state)
        .arg("--json")
        .args(timings.then_some("--timings"))
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&stages_file).unwrap())
        .status()
        .expect("/usr/bin/time (Debian package `time`; scripts/bench installs it)");
    let seconds = started.elapsed().as_secs_f64();
    assert!(status.success(), "replay failed: {status}");
    let kib: f64 = std::fs::read_to_string(&peak_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let stages = std::fs::read_to_string(&stages_file).unwrap_or_default();
    (seconds, kib / 1024.0, stages)
}

/// This build, and (with `BASELINE_BIN=<an older release binary>`) that binary on the same
/// files right after, so that one run compares them on the machine as it is that minute.
/// This build's time per stage follows its line.
fn compare(label: &str, records: usize, files: &[&Path], state: &Path) {
    let this = Path::new(env!("CARGO_BIN_EXE_ddb-stream-worker"));
    let (seconds, peak, stages) = replay(this, files, state, true);
    println!(
        "{label}: {seconds:.2} s, {:.0} records/s, peak RSS {peak:.1} MiB",
        records as f64 / seconds
    );
    if let Some(baseline) = std::env::var_os("BASELINE_BIN") {
        // An older binary may not know --timings.
        // A state of its own: this build's is left for what follows (`state show`).
        let (seconds, peak, _) = replay(
            Path::new(&baseline),
            files,
            &state.with_extension("baseline"),
            false,
        );
        println!(
            "  baseline {}: {seconds:.2} s, {:.0} records/s, peak RSS {peak:.1} MiB",
            Path::new(&baseline).display(),
            records as f64 / seconds
        );
    }
    for line in stages.lines().filter(|l| l.starts_with("  ")) {
        println!("  {}", line.trim_start());
    }
}

fn write(path: &Path, records: Vec<Value>) {
    std::fs::write(path, json!({ "Records": records }).to_string()).unwrap();
}

fn main() {
    let dir = tempfile::tempdir().unwrap();
    // BENCH_KEEP=1 keeps the generated files (and prints where) for profiling by hand.
    let dir = if std::env::var_os("BENCH_KEEP").is_some() {
        let kept = dir.keep();
        println!("files in {}", kept.display());
        KeptOrTemp::Kept(kept)
    } else {
        KeptOrTemp::Temp(dir)
    };
    let mix = Mix {
        tag: "t".into(),
        kinds: vec![Kind::Profile, Kind::LineItem, Kind::Review, Kind::Message],
        providers: 50,
        estimations: 200,
        conversations: 300,
    };
    for count in [1_000usize, 10_000, 100_000] {
        let file = dir.path().join(format!("mix-{count}.json"));
        write(&file, mix.records(count, 0));
        let size = std::fs::metadata(&file).unwrap().len() as f64 / 1_048_576.0;
        let label = format!("replay {count} records (one file, {size:.1} MiB)");
        compare(&label, count, &[&file], &dir.path().join("state"));
    }
    // The same 100,000 records as Lambda would deliver them: 1,000 batches of 100.
    let batches: Vec<std::path::PathBuf> = (0..1000)
        .map(|b| {
            let file = dir.path().join(format!("batch-{b:04}.json"));
            write(&file, mix.records(100, b * 100));
            file
        })
        .collect();
    let paths: Vec<&Path> = batches.iter().map(|p| p.as_path()).collect();
    let label = "replay 100000 records in 1000 files of 100";
    compare(label, 100_000, &paths, &dir.path().join("state"));

    // One batch of 1,000 records including 10 proposal requests (each with its estimation).
    let proposal: Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("events/cost-platform-proposal-request.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let mut records = Vec::new();
    for p in 0..10 {
        for (i, record) in proposal["Records"].as_array().unwrap().iter().enumerate() {
            let mut record = record.clone();
            record["eventID"] = json!(format!("proposal-{p}-{i}"));
            let text = record
                .to_string()
                .replace("est456", &format!("est{p:03}"))
                .replace("doc123", &format!("doc{p:03}"));
            records.push(serde_json::from_str::<Value>(&text).unwrap());
        }
    }
    let filler = 1000 - records.len();
    records.extend(mix.records(filler, 0));
    for (i, record) in records.iter_mut().enumerate() {
        record["dynamodb"]["SequenceNumber"] = json!(format!("{:021}", i + 1));
    }
    let file = dir.path().join("proposals-1000.json");
    write(&file, records);
    let this = Path::new(env!("CARGO_BIN_EXE_ddb-stream-worker"));
    let (seconds, peak, _) = replay(this, &[&file], &dir.path().join("state"), false);
    println!(
        "one batch of 1000 records with 10 proposal PDFs: {seconds:.2} s, peak RSS {peak:.1} MiB"
    );
    history(dir.path());
    day(dir.path());
}

/// Time per batch with a provider's history (issue 42): 10 batches of 100 reviews of one
/// provider replayed onto a state that holds 10 and one that holds 10,000 earlier reviews of
/// it. One process for the 10 batches, so its start is shared by them.
fn history(dir: &Path) {
    let mix = Mix {
        tag: "h".into(),
        kinds: vec![Kind::Review],
        providers: 1,
        estimations: 1,
        conversations: 1,
    };
    let this = Path::new(env!("CARGO_BIN_EXE_ddb-stream-worker"));
    let baseline = std::env::var_os("BASELINE_BIN");
    for earlier in [10usize, 10_000] {
        let before = dir.join(format!("history-{earlier}.json"));
        write(&before, mix.records(earlier, 0));
        let batches: Vec<std::path::PathBuf> = (0..10)
            .map(|b| {
                let file = dir.join(format!("history-{earlier}-{b}.json"));
                write(&file, mix.records(100, earlier + b * 100));
                file
            })
            .collect();
        let batches: Vec<&Path> = batches.iter().map(|p| p.as_path()).collect();
        let binaries = std::iter::once(("this build".to_string(), this.to_path_buf())).chain(
            baseline
                .iter()
                .map(|b| (format!("baseline {}", Path::new(b).display()), b.into())),
        );
        for (name, binary) in binaries {
            let state = dir.join(format!("history-state-{earlier}"));
            replay(&binary, &[&before], &state, false);
            let (seconds, _, _) = replay_with(&binary, &batches, &state, false, false);
            println!(
                "{name}: 10 batches of 100 reviews of one provider after {earlier} earlier: \
                 {:.1} ms per batch (process start included once)",
                seconds * 100.0
            );
        }
    }
}

/// A day of records (issue 42; `DAY_RECORDS`, default 1,000,000, 0 to skip) in 10 files:
/// audited profile changes and reviews of 500 providers. Then `state show` of the providers'
/// table (500 items) from that state and of the whole state, their time and peak memory.
fn day(dir: &Path) {
    let records: usize = std::env::var("DAY_RECORDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1_000_000);
    if records == 0 {
        return;
    }
    let mix = Mix {
        tag: "d".into(),
        kinds: vec![Kind::Profile, Kind::Review],
        providers: 500,
        estimations: 1,
        conversations: 1,
    };
    let per_file = records / 10;
    let files: Vec<std::path::PathBuf> = (0..10)
        .map(|f| {
            let file = dir.join(format!("day-{f}.json"));
            write(&file, mix.records(per_file, f * per_file));
            file
        })
        .collect();
    let paths: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let label = format!("replay a day: {} records in 10 files", per_file * 10);
    let state = dir.join("day-state");
    compare(&label, per_file * 10, &paths, &state);
    show(&state, dir, Some("marketplace-dev-providers-table"));
    show(&state, dir, None);
}

/// `state show` of `table` (of every table when None) on `state`: its time, peak memory and
/// how many items it printed (to a file, so that only the command's memory is measured).
fn show(state: &Path, dir: &Path, table: Option<&str>) {
    let this = Path::new(env!("CARGO_BIN_EXE_ddb-stream-worker"));
    let (peak_file, out_file) = (dir.join("show.peak"), dir.join("show.out"));
    let mut command = Command::new("/usr/bin/time");
    command
        .args(["-f", "%M", "-o"])
        .arg(&peak_file)
        .arg(this)
        .args(["state", "show"]);
    if let Some(table) = table {
        command.args(["--table", table]);
    }
    let started = Instant::now();
    command
        .arg("--state")
        .arg(state)
        .stdout(std::fs::File::create(&out_file).unwrap())
        .stderr(Stdio::null())
        .status()
        .expect("/usr/bin/time");
    let seconds = started.elapsed().as_secs_f64();
    let kib: f64 = std::fs::read_to_string(&peak_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let printed = std::io::BufRead::lines(std::io::BufReader::new(
        std::fs::File::open(&out_file).unwrap(),
    ))
    .count();
    std::fs::remove_file(&out_file).unwrap();
    let what = match table {
        Some(table) => format!("--table {table} ({printed} items)"),
        None => format!("of every table ({printed} items)"),
    };
    println!(
        "state show {what} of that state: {seconds:.2} s, peak RSS {:.1} MiB",
        kib / 1024.0
    );
}

/// The bench's working folder: removed at the end unless kept for profiling.
enum KeptOrTemp {
    Kept(std::path::PathBuf),
    Temp(tempfile::TempDir),
}

impl KeptOrTemp {
    fn path(&self) -> &Path {
        match self {
            KeptOrTemp::Kept(path) => path,
            KeptOrTemp::Temp(dir) => dir.path(),
        }
    }
}
