//! `replay`'s standard output, written on a thread of its own: serializing the report of every
//! record is a tenth of a long replay's time, and the batches need not wait for it.
//!
//! Reports arrive in stream order and are written in that order; the queue is bounded, so a
//! slow reader of the output slows the replay rather than filling memory. A batch's end is
//! written once the batch is on disk; while the commit of a group of batches is still to
//! come, what follows the end is held back with it (on the replay's side, so the queue never
//! fills with what waits for a commit the replay has not made yet).

use std::io::{self, BufWriter, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use indicatif::ProgressBar;

use super::print_report::{self, Format};
use crate::adapters::embedded::Flush;
use crate::batch::RecordReport;
use crate::stages::{measure, Stage};

/// Reports waiting to be written, at most: a few windows' worth.
const QUEUED: usize = 1024;

// Nearly every message is a record: boxing it would cost each an allocation.
#[allow(clippy::large_enum_variant)]
enum Output {
    Record(RecordReport),
    /// Text already rendered (a batch's end).
    Text(Vec<u8>),
    /// Text written once its batch is on disk (the embedded state's flush); not written if
    /// the flush failed, whose error ends the run.
    Durable(Flush, Vec<u8>),
}

pub(super) struct ReportWriter {
    queue: Option<SyncSender<Output>>,
    thread: Option<JoinHandle<io::Result<()>>>,
    /// From the first batch end whose commit is to come ([`ReportWriter::end_to_commit`]):
    /// everything since, queued in order once the commit is made ([`ReportWriter::committed`]).
    held: Vec<Held>,
}

/// What waits for a commit to be made.
enum Held {
    Output(Output),
    /// A batch's end, written once the commit is on disk.
    End(Vec<u8>),
}

impl ReportWriter {
    /// Start writing to standard output; `progress` is hidden while a line is written, so the
    /// two never share a terminal line.
    pub(super) fn start(format: Format, progress: ProgressBar) -> ReportWriter {
        let (queue, queued) = sync_channel(QUEUED);
        let thread = std::thread::spawn(move || write_all(queued, format, &progress));
        ReportWriter {
            queue: Some(queue),
            thread: Some(thread),
            held: Vec::new(),
        }
    }

    /// Queue one record's report. False once the writer has stopped on an error
    /// ([`ReportWriter::finish`] says which).
    pub(super) fn record(&mut self, report: RecordReport) -> bool {
        self.send(Output::Record(report))
    }

    /// Queue rendered text; false as for [`ReportWriter::record`].
    pub(super) fn text(&mut self, text: Vec<u8>) -> bool {
        self.send(Output::Text(text))
    }

    /// A batch's end, to be written once the commit that ends the batch's group is made and on
    /// disk ([`ReportWriter::committed`]); held until then, with everything after it.
    pub(super) fn end_to_commit(&mut self, text: Vec<u8>) {
        self.held.push(Held::End(text));
    }

    /// The commit of the held batch ends is made and on disk when `flush` is done: queue what
    /// was held, in order, each end to be written once it is. False as for
    /// [`ReportWriter::record`].
    pub(super) fn committed(&mut self, flush: &Flush) -> bool {
        std::mem::take(&mut self.held).into_iter().all(|held| {
            let output = match held {
                Held::Output(output) => output,
                Held::End(text) => Output::Durable(flush.clone(), text),
            };
            self.queue_now(output)
        })
    }

    /// Hold `output` behind a batch end still to be committed, or queue it.
    fn send(&mut self, output: Output) -> bool {
        if !self.held.is_empty() {
            self.held.push(Held::Output(output));
            return self.queue.is_some();
        }
        self.queue_now(output)
    }

    fn queue_now(&self, output: Output) -> bool {
        self.queue.as_ref().is_some_and(|q| q.send(output).is_ok())
    }

    /// Everything queued written and flushed (before a message on standard error, which
    /// must follow the reports it is about); the first write error, if any. Nothing can be
    /// queued after.
    pub(super) fn finish(&mut self) -> io::Result<()> {
        // Held output is of batches not committed: none of it is written.
        self.held.clear();
        self.queue = None;
        match self.thread.take().map(JoinHandle::join) {
            None => Ok(()),
            Some(Ok(written)) => written,
            Some(Err(_)) => Err(io::Error::other("the report writer panicked")),
        }
    }
}

fn write_all(queued: Receiver<Output>, format: Format, progress: &ProgressBar) -> io::Result<()> {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    // A record's report is rendered into memory first and written in one piece: the renderer
    // writes many small pieces, each a call through the buffered writer otherwise.
    let mut rendered = Vec::with_capacity(4096);
    for output in queued {
        match output {
            Output::Record(record) => measure(Stage::Reports, || {
                rendered.clear();
                print_report::record(&mut rendered, format, &record)?;
                progress.suspend(|| out.write_all(&rendered))
            })?,
            Output::Text(text) => progress.suspend(|| out.write_all(&text))?,
            Output::Durable(flush, text) => {
                if flush.wait().is_ok() {
                    progress.suspend(|| out.write_all(&text))?;
                }
            }
        }
    }
    out.flush()
}
