//! `replay`'s standard output, written on a thread of its own: serializing the report of every
//! record is a tenth of a long replay's time, and the batches need not wait for it.
//!
//! Reports arrive in stream order and are written in that order; the queue is bounded, so a
//! slow reader of the output slows the replay rather than filling memory.

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
        }
    }

    /// Queue one record's report. False once the writer has stopped on an error
    /// ([`ReportWriter::finish`] says which).
    pub(super) fn record(&self, report: RecordReport) -> bool {
        self.send(Output::Record(report))
    }

    /// Queue rendered text; false as for [`ReportWriter::record`].
    pub(super) fn text(&self, text: Vec<u8>) -> bool {
        self.send(Output::Text(text))
    }

    /// Queue rendered text, to be written once `flush` is done; false as for
    /// [`ReportWriter::record`].
    pub(super) fn text_when_durable(&self, flush: Flush, text: Vec<u8>) -> bool {
        self.send(Output::Durable(flush, text))
    }

    fn send(&self, output: Output) -> bool {
        self.queue.as_ref().is_some_and(|q| q.send(output).is_ok())
    }

    /// Everything queued written and flushed (before a message on standard error, which
    /// must follow the reports it is about); the first write error, if any. Nothing can be
    /// queued after.
    pub(super) fn finish(&mut self) -> io::Result<()> {
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
