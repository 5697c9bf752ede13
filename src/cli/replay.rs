//! `replay`: run stream event files through the worker, one file per batch, as Lambda would.
//!
//! Every file is decoded before anything runs, so unusable input (exit 2) changes nothing.
//! On the embedded default each record's own change is applied to the embedded table first,
//! since a stream record reports a write that already happened. A failing batch stops the run:
//! later files are not processed, as Lambda would not move past the failing record.

use std::fs::File;
use std::io::{self, IsTerminal};
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::mpsc;

use super::error::{CliError, Exit};
use super::print_report::{self, Format};
use super::report_writer::ReportWriter;
use crate::adapters::embedded::EmbeddedState;
use crate::batch::{BatchOptions, NotDone, RecordFailure, Worker};
use std::collections::BTreeMap;

use crate::catalog::{Catalog, TableDefinition};
use crate::decode::{
    check_records, for_each_checked_record, CheckedFile, DecodeError, Probing, StreamRecord,
};
use crate::stages::{self, measure, Stage};
use crate::stream::Patterns;
use crate::wiring::config::Config;
use crate::wiring::output::printable;
use crate::wiring::target::{Opening, Target};

/// Lambda's largest batch: a longer file is replayed as consecutive batches of this size.
pub(super) const BATCH_LIMIT: usize = 10_000;

/// The most records whose batches are committed together. A batch's commit writes every page
/// it changed to the log (and the checkpoint again to the file), so batches of a few records
/// each, committed one by one, wrote the same pages over and over: a replay of many small
/// files commits them by the batch's worth, and sooner whenever the next batch is not ready.
/// Their ends are written once the commit is on disk, as a batch's end always is.
const GROUP_LIMIT: usize = BATCH_LIMIT;

/// Progress is shown for runs longer than this many records.
const PROGRESS_FROM: usize = 1_000;
/// The most threads of a replay's first pass: each holds a whole file in memory.
const CHECK_THREADS: usize = 4;
/// The most records whose place in their file the first pass keeps for the second (8 bytes
/// each, 32 MB): the records of later files are parsed through again, more slowly, so that
/// memory stays bounded however many records a replay has.
const SPANS_KEPT: usize = 4_000_000;

#[derive(Debug, Clone)]
pub(super) struct ReplayOptions {
    pub files: Vec<PathBuf>,
    pub target: Target,
    pub fresh: bool,
    pub format: Format,
    pub table: Option<String>,
    pub apply: bool,
    /// Print the time spent per stage at the end.
    pub timings: bool,
    /// The event source mapping (settings file or template, and the template's event) whose
    /// filter criteria decide which records are delivered.
    pub mapping: Option<(PathBuf, Option<String>)>,
    /// Schema files (CreateTable or DescribeTable JSON) for tables the worker does not know.
    pub schemas: Vec<PathBuf>,
}

/// Run the replay.
pub(super) async fn run(options: ReplayOptions) -> Result<Exit, CliError> {
    let config = Config::from_env()?;
    let started = Instant::now();
    let filter = match &options.mapping {
        Some((path, event)) => Some(MappingFilter::read(path, event.as_deref())?),
        None => None,
    };
    // Pass 1: every file must decode before anything runs (unusable input changes nothing).
    let mut total = 0;
    let mut composite_keys = BTreeMap::new();
    let mut checked_files = Vec::with_capacity(options.files.len());
    for checked in check_files(&options.files, options.table.as_deref()) {
        let mut checked = checked?;
        total += checked.records;
        for (table, names) in std::mem::take(&mut checked.composite_keys) {
            composite_keys.entry(table).or_insert(names);
        }
        checked_files.push(checked);
    }
    let opening = match options.fresh {
        true => Opening::Fresh,
        false => Opening::AsItIs,
    };
    let catalog = catalog_with_schemas(&options)?;
    let connected = options
        .target
        .connect(opening, catalog.clone(), &config)
        .await?;
    if connected.state.is_some() {
        // With the state's own schemas known too: a key no schema settles, of a table the
        // reactions read, stops the run here, before any record, rather than a guess that a
        // later query finds wrong. Another table's items are only kept (told apart all the
        // same), so its records' key does for them.
        if let Some((table, names)) = composite_keys.into_iter().find(|(table, names)| {
            config.tables_used.contains(table) && !catalog.knows_key(table, names)
        }) {
            return Err(CliError::UnknownKey { table, names });
        }
    }
    let worker = connected.worker(&config);
    let state = connected.state;
    let batch_options = BatchOptions {
        deadline: None,
        apply_own_change: state.is_some() && options.apply,
        stop_before: None,
    };
    let progress = progress_bar(total);
    let mut writer = ReportWriter::start(options.format, progress.clone());
    let mut status = Exit::Clean;
    let mut not_done = NotDone::default();
    let mut filtered_out = 0;
    // Pass 2: each file is decoded on a thread of its own while the batches before run; a file
    // larger than Lambda's largest batch is replayed as consecutive batches of that size.
    let mut to_decode = options.files.iter().zip(checked_files).enumerate();
    let mut start_decoding = || {
        to_decode.next().map(|(index, (path, checked))| {
            let records = checked.records;
            let batches = decode_in_batches(path.clone(), checked, options.table.clone());
            (index, path, records, batches)
        })
    };
    let mut next = start_decoding();
    // Records run since the state's last commit: batches are committed together, up to a
    // batch's worth of records, while the next batch is ready (see [`GROUP_LIMIT`]).
    let mut uncommitted = 0;
    'files: while let Some((index, path, mut to_receive, batches)) = next.take() {
        let mut batches = batches?;
        loop {
            // The run is about to wait for input: what ran is committed first (not at the end
            // of a file, whose next one is decoded already).
            if batches.is_empty() && !batches.is_closed() {
                commit(state.as_deref(), &mut writer, &mut uncommitted)?;
            }
            let Some(records) = batches.recv().await else {
                break;
            };
            // This file's last batch (all its records, as pass 1 counted them): the next file is
            // decoded while it runs (a replay of many small files would otherwise wait for
            // each, and commit each alone), as a file's next batch is while one runs, so no
            // more records are held than within a file. Should fewer arrive (the file changed
            // since), the next is begun once this one's channel ends, below.
            to_receive = to_receive.saturating_sub(records.as_ref().map_or(0, Vec::len));
            if next.is_none() && to_receive == 0 {
                next = start_decoding();
            }
            // An error here ends the run; the batches run before it are kept, and their ends
            // written. The error is the one told (the commit may fail for it too).
            let mut records = match records {
                Ok(records) => records,
                Err(e) => {
                    let _ = commit(state.as_deref(), &mut writer, &mut uncommitted);
                    return Err(e.into());
                }
            };
            uncommitted += records.len();
            if let Some(filter) = &filter {
                let left_out = filter.keep_passing(&mut records);
                filtered_out += left_out.len();
                if batch_options.apply_own_change {
                    if let Err(e) = worker.apply_only(&left_out).await {
                        let _ = commit(state.as_deref(), &mut writer, &mut uncommitted);
                        return Err(e.into());
                    }
                }
                if records.is_empty() {
                    continue;
                }
            }
            let (failed, end) = run_batch(
                &worker,
                &records,
                batch_options,
                options.format,
                &mut writer,
                &progress,
                &mut not_done,
            )
            .await
            .map_err(CliError::Output)?;
            free_beside(records);
            // The batch's end is written once its group's commit is on disk; the next batches
            // run meanwhile.
            match &state {
                Some(_) => writer.end_to_commit(end),
                None => {
                    if !writer.text(end) {
                        return Err(CliError::Output(stopped(&mut writer)));
                    }
                }
            }
            if failed.is_some() || uncommitted >= GROUP_LIMIT {
                commit(state.as_deref(), &mut writer, &mut uncommitted)?;
            }
            if let Some(failure) = failed {
                progress.finish_and_clear();
                writer.finish().map_err(CliError::Output)?;
                let failure = printable(&failure.to_string()).into_owned();
                eprintln!("batch {} failed: {failure}", path.display());
                let rest = options.files.len() - index - 1;
                if rest > 0 {
                    eprintln!(
                        "{rest} later file(s) not processed: the failing record must succeed first"
                    );
                }
                status = Exit::BatchFailed;
                break 'files;
            }
        }
        if next.is_none() {
            next = start_decoding();
        }
    }
    commit(state.as_deref(), &mut writer, &mut uncommitted)?;
    progress.finish_and_clear();
    writer.finish().map_err(CliError::Output)?;
    if let Some(filter) = &filter {
        eprintln!(
            "{filtered_out} record(s) not delivered: left out by the filter criteria of {}",
            filter.source
        );
    }
    if not_done.skipped > 0 {
        eprintln!(
            "{} record(s) done with data left out: a reaction could not use or read what the \
             application wrote (see the LEFT OUT lines and the WARN log); nothing was parked for it",
            not_done.skipped
        );
    }
    if not_done.not_sent > 0 {
        eprintln!(
            "{} record(s) done without their mail: see the NOT SENT lines for why (an address \
             attribute to configure, a recipient who turned mail off)",
            not_done.not_sent
        );
    }
    let parked = not_done.parked;
    if parked > 0 {
        eprintln!(
            "{parked} record(s) parked: a reaction can never succeed with them as they are; \
             each is kept whole as an event file (see the PARKED lines), to replay once the \
             data or the code is fixed"
        );
        if status == Exit::Clean {
            status = Exit::Parked;
        }
    }
    if let Some(state) = &state {
        state.compact()?;
        if options.timings {
            print_timings(started.elapsed());
        }
        if options.format != Format::Json {
            eprintln!(
                "state: {} (inspect with `ddb-stream-worker state show --state {}`)",
                state.root().display(),
                state.root().display()
            );
        }
    }
    // The process ends next (this is the CLI's replay): freeing a long replay's state item by
    // item takes longer than the OS reclaiming it at once. Everything is on disk by now.
    std::mem::forget(worker);
    std::mem::forget(state);
    Ok(status)
}

/// Free `records` on a thread of their own: freeing a batch of 10,000 decoded records took
/// the batch's thread about 3 % of its time (perf), which the next batch can use.
fn free_beside<T: Send + 'static>(records: T) {
    // Should no thread start, the closure, and the records with it, are freed here.
    let _ = std::thread::Builder::new()
        .name("free".into())
        .spawn(move || drop(records));
}

/// Pass 1 over `files`, in their order: each read whole and checked, on as many threads as
/// there are cores (up to [`CHECK_THREADS`]), each holding one file at a time, up to the first
/// unusable one (the last in the list). Nothing else runs until every file is checked, so the
/// files' checks are what a replay of many waits for first.
fn check_files(files: &[PathBuf], table: Option<&str>) -> Vec<Result<CheckedFile, CliError>> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let threads = cores.clamp(1, CHECK_THREADS).min(files.len());
    // A core the files' checks leave idle probes a file's records beside its parse. More
    // files are checked at once instead, each in line: a prober each adds a thread and no
    // speed, and a replay of several large files peaked higher with them (BENCHMARKS.md).
    let probing = match threads == 1 && cores > 1 {
        true => Probing::Beside,
        false => Probing::InLine,
    };
    let next = AtomicUsize::new(0);
    let spans_kept = AtomicUsize::new(0);
    // The first file found unusable: the files after it are not checked (the run stops at
    // it), those before it are, so that an earlier one's error comes first.
    let first_unusable = AtomicUsize::new(usize::MAX);
    let check = || {
        let mut checked = Vec::new();
        loop {
            let index = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = files.get(index) else {
                return checked;
            };
            if index > first_unusable.load(Ordering::Relaxed) {
                continue;
            }
            let file = read(path).and_then(|text| {
                measure(Stage::Check, || {
                    check_records(&text[..], &path.display().to_string(), table, probing)
                })
                .map_err(CliError::from)
            });
            let file = file.map(|mut file| {
                let before = spans_kept.fetch_add(file.records, Ordering::Relaxed);
                if before.saturating_add(file.records) > SPANS_KEPT {
                    file.forget_spans();
                }
                file
            });
            if file.is_err() {
                first_unusable.fetch_min(index, Ordering::Relaxed);
            }
            checked.push((index, file));
        }
    };
    let mut checked: Vec<(usize, Result<CheckedFile, CliError>)> = std::thread::scope(|scope| {
        let helpers: Vec<_> = (1..threads).map(|_| scope.spawn(check)).collect();
        let mut checked = check();
        for helper in helpers {
            match helper.join() {
                Ok(theirs) => checked.extend(theirs),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        checked
    });
    checked.sort_by_key(|(index, _)| *index);
    // Every file up to the first unusable one, which ends the list.
    let mut results = Vec::with_capacity(checked.len());
    for (_, file) in checked {
        let unusable = file.is_err();
        results.push(file);
        if unusable {
            break;
        }
    }
    results
}

fn open(path: &Path) -> Result<File, CliError> {
    File::open(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The whole file: parsing from memory is several times faster than from a reader, and the
/// first pass holds one file at a time.
fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The seed definitions, and the tables of the run's schema files: those named with
/// `--schema`, and the one `capture` wrote beside each event file (`FILE.schema.json`), if
/// there is one.
fn catalog_with_schemas(options: &ReplayOptions) -> Result<Catalog, CliError> {
    let catalog = Catalog::with_seed_definitions();
    let beside = options.files.iter().map(|file| {
        let mut name = file.clone().into_os_string();
        name.push(".schema.json");
        PathBuf::from(name)
    });
    let files = options
        .schemas
        .iter()
        .cloned()
        .chain(beside.filter(|path| path.is_file()));
    for path in files {
        let text = std::fs::read_to_string(&path).map_err(|source| CliError::Read {
            path: path.clone(),
            source,
        })?;
        for definition in TableDefinition::from_schema_file(&text, &path.display().to_string())
            .map_err(CliError::Settings)?
        {
            catalog.adopt(&definition);
        }
    }
    Ok(catalog)
}

/// An event source mapping's filter criteria, as `stream` applies them: the records it
/// leaves out are not delivered to the worker.
struct MappingFilter {
    /// The file, and the template's event, it comes from (for the summary line).
    source: String,
    patterns: Patterns,
}

impl MappingFilter {
    fn read(path: &Path, event: Option<&str>) -> Result<Self, CliError> {
        let settings = super::stream::mapping_settings(path, event)?;
        let source = match event {
            Some(event) => format!("{} (event {event})", path.display()),
            None => path.display().to_string(),
        };
        let patterns = Patterns::parse(&settings.filter_criteria)
            .map_err(|e| CliError::Settings(format!("{source}: {e}")))?;
        Ok(MappingFilter { source, patterns })
    }

    /// Keeps in `records` those the filter passes, in order; returns the others. A record is
    /// matched as delivered (its JSON text).
    fn keep_passing(&self, records: &mut Vec<StreamRecord>) -> Vec<StreamRecord> {
        let (passing, left_out) = std::mem::take(records).into_iter().partition(|record| {
            serde_json::from_str::<serde_json::Value>(&record.raw)
                .map_or(true, |value| self.patterns.matches(&value))
        });
        *records = passing;
        left_out
    }
}

/// The time per stage, for `--timings`: one line each, then the run's own.
fn print_timings(run: std::time::Duration) {
    eprintln!("time per stage (summed over lanes and threads, so they overlap):");
    for (stage, spent) in stages::spent() {
        eprintln!("  {:<28} {:>8.3} s", stage.name(), spent.as_secs_f64());
    }
    eprintln!("  {:<28} {:>8.3} s", "whole run", run.as_secs_f64());
}

/// The records of `path` in batches of at most [`BATCH_LIMIT`], decoded on a thread of their
/// own (the file was checked in pass 1, which found where each record is; it is read again
/// rather than held in memory). Should the second reading fail where the first did not (the
/// file changed meanwhile), the error comes last, so that no record is dropped unsaid.
fn decode_in_batches(
    path: PathBuf,
    checked: CheckedFile,
    table: Option<String>,
) -> Result<mpsc::Receiver<Result<Vec<StreamRecord>, DecodeError>>, CliError> {
    let file = open(&path)?;
    let (sender, receiver) = mpsc::channel(1);
    let runtime = tokio::runtime::Handle::current();
    std::thread::spawn(move || {
        let mut batch = Vec::new();
        // The queue's place for the batch being filled, taken before its first record: a batch
        // is begun once the one before it has left the queue to run, so at most two are held
        // (one running, one queued; a batch decodes in a fraction of the time one runs).
        let mut place = None;
        let name = path.display().to_string();
        // Decoding is the time between records handed over, without the waits to hand over.
        let mut since = Instant::now();
        let mut each = |record| {
            stages::add_since(Stage::Decode, since);
            if sender.is_closed() {
                return; // the replay stopped at a failure: the rest is not needed
            }
            if place.is_none() {
                match runtime.block_on(sender.reserve()) {
                    Ok(reserved) => place = Some(reserved),
                    Err(_) => return, // stopped while waiting
                }
            }
            batch.push(record);
            if batch.len() == BATCH_LIMIT {
                if let Some(place) = place.take() {
                    place.send(Ok(std::mem::take(&mut batch)));
                }
            }
            since = Instant::now();
        };
        let read = for_each_checked_record(file, &checked, &name, table.as_deref(), &mut each);
        if let Some(place) = place.take() {
            place.send(Ok(batch));
        }
        if let Err(e) = read {
            let _ = sender.blocking_send(Err(e));
        }
    });
    Ok(receiver)
}

/// One batch run, its records' reports queued as they come: the failure that stopped it, if
/// any, and its end, rendered.
async fn run_batch(
    worker: &Worker,
    records: &[StreamRecord],
    options: BatchOptions,
    format: Format,
    writer: &mut ReportWriter,
    progress: &ProgressBar,
    not_done: &mut NotDone,
) -> io::Result<(Option<RecordFailure>, Vec<u8>)> {
    let mut writing = true;
    let outcome = worker
        .process_batch(records, options, &mut |record| {
            progress.inc(1);
            not_done.add(&record);
            writing = writing && writer.record(record);
        })
        .await;
    if !writing {
        return Err(stopped(writer));
    }
    let mut end = Vec::new();
    print_report::batch_end(&mut end, format, records.len(), &outcome)?;
    Ok((outcome.failure, end))
}

/// Commit the state's open group of batches, if it has one, and queue their held ends to be
/// written once the commit is on disk.
fn commit(
    state: Option<&EmbeddedState>,
    writer: &mut ReportWriter,
    uncommitted: &mut usize,
) -> Result<(), CliError> {
    let (Some(state), 1..) = (state, std::mem::take(uncommitted)) else {
        return Ok(());
    };
    let flush = state.commit()?;
    match writer.committed(&flush) {
        true => Ok(()),
        false => Err(CliError::Output(stopped(writer))),
    }
}

/// Why the report writer stopped: its error (or, should it have none, this).
fn stopped(writer: &mut ReportWriter) -> io::Error {
    match writer.finish() {
        Err(e) => e,
        Ok(()) => io::Error::other("the report writer stopped"),
    }
}

fn progress_bar(total: usize) -> ProgressBar {
    if total <= PROGRESS_FROM || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total as u64);
    if let Ok(style) =
        ProgressStyle::with_template("{bar:40} {pos}/{len} records {per_sec} eta {eta}")
    {
        bar.set_style(style);
    }
    bar
}
