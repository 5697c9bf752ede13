//! The embedded state's journal (`journal.jsonl`): one line per write request, serialized and
//! appended on a thread of its own, so that a replay's writes wait neither for the JSON of
//! every after-image nor for freeing the items they replace.
//!
//! A line holds the items as they were written (each shared with the table, not copied: a
//! later write replaces the table's item, never changes it). Lines are written in the order
//! the writes were made; [`Journal::sync`] waits for every line sent before it to be durable.
//!
//! A compaction that runs while writes go on first sets the journal aside
//! ([`Journal::set_aside`]: `journal.compacting.jsonl`, the writes it folds into the table
//! files) and starts a new one; it removes the one set aside once the table files are
//! durable. Loading replays the one set aside, then the new one.

use std::borrow::Cow;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use handlers::Item;
use serde::{Deserialize, Serialize};

use crate::adapters::atomic_file::sync_dir;
use crate::stages::{self, Stage};

/// The journal being written.
pub(super) const JOURNAL: &str = "journal.jsonl";
/// A journal set aside for a compaction under way.
pub(super) const SET_ASIDE: &str = "journal.compacting.jsonl";

/// Lines handed to the journal's thread together: one hand-over per line would wake it for
/// every write.
const LINES_PER_HAND_OVER: usize = 256;

/// Hand-overs waiting to be written, at most: the writer slows down rather than filling
/// memory should the disk fall behind.
const QUEUED: usize = 64;

/// One journal line: the writes of one operation (several for a transaction), applied
/// together or, if the line is torn, not at all. Written from shared items (no copy of an
/// item just to serialize it), read back as owned ones.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct JournalLine<'a> {
    pub ops: Vec<JournalOp<'a>>,
}

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct JournalOp<'a> {
    pub table: Cow<'a, str>,
    pub hash: Cow<'a, str>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<Cow<'a, str>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub put: Option<Cow<'a, Item>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<Cow<'a, Item>>,
}

/// A table's name and key attributes, as every line of it names them.
#[derive(Debug)]
pub(super) struct TableKey {
    pub table: String,
    pub hash: String,
    pub range: Option<String>,
}

/// One write of a line, as the writer sends it.
pub(super) struct Op {
    pub table: Arc<TableKey>,
    pub write: OpWrite,
}

pub(super) enum OpWrite {
    Put(Arc<Item>),
    /// The deleted item's key.
    Delete(Item),
}

/// A line's writes, and the items they replaced (freed on the journal's thread).
struct Line {
    ops: Vec<Op>,
    replaced: Vec<Arc<Item>>,
}

enum Message {
    Lines(Vec<Line>),
    /// Flush and make durable what was sent before; replies with the journal's length.
    Sync(SyncSender<io::Result<u64>>),
    /// Empty the journal (the table files now hold everything in it).
    Truncate(SyncSender<io::Result<()>>),
    /// Make the journal durable, set it aside and start a new one.
    SetAside(SyncSender<io::Result<()>>),
}

pub(super) struct Journal {
    queue: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
    /// Lines not handed over yet.
    lines: Vec<Line>,
}

impl Journal {
    /// Append to `file`, whose intact prefix is `length` bytes long (the file is positioned at
    /// its end).
    pub(super) fn start(root: &Path, file: File, length: u64) -> Journal {
        let (queue, queued) = sync_channel(QUEUED);
        let root = root.to_path_buf();
        let thread = std::thread::spawn(move || write_lines(root, file, length, queued));
        Journal {
            queue: Some(queue),
            thread: Some(thread),
            lines: Vec::with_capacity(LINES_PER_HAND_OVER),
        }
    }

    /// Queue one line; `replaced` are the items its writes took out of the tables.
    pub(super) fn append(&mut self, ops: Vec<Op>, replaced: Vec<Arc<Item>>) -> io::Result<()> {
        self.lines.push(Line { ops, replaced });
        match self.lines.len() >= LINES_PER_HAND_OVER {
            true => self.hand_over(),
            false => Ok(()),
        }
    }

    fn hand_over(&mut self) -> io::Result<()> {
        if self.lines.is_empty() {
            return Ok(());
        }
        let lines = std::mem::replace(&mut self.lines, Vec::with_capacity(LINES_PER_HAND_OVER));
        self.send(Message::Lines(lines))
    }

    /// Every line appended so far durable; the journal's length.
    pub(super) fn sync(&mut self) -> io::Result<u64> {
        self.ask(Message::Sync)
    }

    /// Empty the journal, durably.
    pub(super) fn truncate(&mut self) -> io::Result<()> {
        self.ask(Message::Truncate)
    }

    /// Every line so far durable in the journal set aside ([`SET_ASIDE`], which must not
    /// exist), and a new, empty journal for the lines after.
    pub(super) fn set_aside(&mut self) -> io::Result<()> {
        self.ask(Message::SetAside)
    }

    /// Hand over the lines not handed over yet, then `message`; waits for its reply.
    fn ask<T>(&mut self, message: fn(SyncSender<io::Result<T>>) -> Message) -> io::Result<T> {
        self.hand_over()?;
        let (reply, replied) = sync_channel(1);
        self.send(message(reply))?;
        replied.recv().map_err(|_| stopped())?
    }

    fn send(&self, message: Message) -> io::Result<()> {
        match &self.queue {
            Some(queue) => queue.send(message).map_err(|_| stopped()),
            None => Err(stopped()),
        }
    }
}

/// What is queued is written and flushed before the journal is gone (a command's error path
/// drops its state without a sync).
impl Drop for Journal {
    fn drop(&mut self) {
        let _ = self.hand_over();
        self.queue = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the journal's writer stopped (it panicked)")
}

fn write_lines(root: PathBuf, file: File, mut length: u64, queued: Receiver<Message>) {
    let mut out = BufWriter::with_capacity(1 << 20, file);
    // The first failure to write: every later sync reports it, since the lines after it
    // would replay without it.
    let mut failed: Option<(io::ErrorKind, String)> = None;
    let mut line = Vec::new();
    for message in queued {
        match message {
            Message::Lines(lines) => {
                let started = Instant::now();
                for Line { ops, replaced } in lines {
                    if failed.is_none() {
                        line.clear();
                        let written =
                            serialize(&ops, &mut line).and_then(|()| out.write_all(&line));
                        match written {
                            Ok(()) => length += line.len() as u64,
                            Err(e) => {
                                failed = Some((e.kind(), format!("writing the journal: {e}")))
                            }
                        }
                    }
                    drop((ops, replaced));
                }
                stages::add_since(Stage::Journal, started);
            }
            Message::Sync(reply) => {
                let synced = match &failed {
                    Some((kind, message)) => Err(io::Error::new(*kind, message.clone())),
                    None => out
                        .flush()
                        .and_then(|()| out.get_ref().sync_data())
                        .map(|()| length),
                };
                let _ = reply.send(synced);
            }
            Message::Truncate(reply) => {
                let emptied = out.flush().and_then(|()| {
                    let file = out.get_mut();
                    file.set_len(0)?;
                    file.sync_all()?;
                    io::Seek::seek(file, io::SeekFrom::Start(0))?;
                    Ok(())
                });
                if emptied.is_ok() {
                    length = 0;
                }
                let _ = reply.send(emptied);
            }
            Message::SetAside(reply) => {
                if let Some((kind, message)) = &failed {
                    // The journal lacks lines: it must not pass for the writes before a point.
                    let _ = reply.send(Err(io::Error::new(*kind, message.clone())));
                    continue;
                }
                let next = out
                    .flush()
                    .and_then(|()| out.get_ref().sync_data())
                    .and_then(|()| fs::rename(root.join(JOURNAL), root.join(SET_ASIDE)))
                    .and_then(|()| {
                        OpenOptions::new()
                            .create(true)
                            .truncate(true)
                            .write(true)
                            .open(root.join(JOURNAL))
                    })
                    .and_then(|file| sync_dir(&root).map(|()| file));
                let set_aside = match next {
                    Ok(file) => {
                        out = BufWriter::with_capacity(1 << 20, file);
                        length = 0;
                        Ok(())
                    }
                    // Lines written now could land in the file set aside: none are.
                    Err(e) => {
                        failed = Some((e.kind(), format!("setting the journal aside: {e}")));
                        Err(e)
                    }
                };
                let _ = reply.send(set_aside);
            }
        }
    }
    let _ = out.flush();
}

fn serialize(ops: &[Op], line: &mut Vec<u8>) -> io::Result<()> {
    let ops = ops
        .iter()
        .map(|op| {
            let (put, delete) = match &op.write {
                OpWrite::Put(item) => (Some(Cow::Borrowed(&**item)), None),
                OpWrite::Delete(key) => (None, Some(Cow::Borrowed(key))),
            };
            JournalOp {
                table: Cow::Borrowed(&op.table.table),
                hash: Cow::Borrowed(&op.table.hash),
                range: op.table.range.as_deref().map(Cow::Borrowed),
                put,
                delete,
            }
        })
        .collect();
    serde_json::to_writer(&mut *line, &JournalLine { ops })?;
    line.push(b'\n');
    Ok(())
}
