//! One batch of stream records: every applicable reaction per record, idempotency for guarded
//! reactions, and Lambda's partial batch failure response.
//!
//! A batch is a pipeline of steps, each in a room of its own that hands the next a value.
//! [`Worker::process_batch`] runs them in this order, the windows' steps once per window of
//! [`WINDOW`] records:
//!
//! 1. `plan`: what earlier deliveries completed (one BatchGetItem), where each coalescing
//!    reaction runs ([`plan::Plan`]).
//! 2. `lanes`: the window's records dealt into lanes: records that share a partition (their
//!    own item's, or one a reaction names) keep stream order in one lane.
//! 3. `run`: up to `max_concurrency` lanes at once, each in stream order until a record
//!    fails; a record's own change applied (a replay), its reactions run and settled
//!    (`settle`: done, duplicate, parked, failed), the folding ones left to the fold
//!    ([`run::RecordRun`]).
//! 4. `fold`: the reactions that fold windows get the window's changes at once, before the
//!    first record that failed ([`fold::Folded`]), while
//! 5. `deferred` stores the run's deferred writes (the audit items) in BatchWriteItem calls.
//! 6. `conclude`: each record's report, its reactions in order, up to the window's first
//!    failure; the folds' writes are stored, and a record whose writes were not stored fails
//!    in its place ([`deferred::Stored::mark_reports`]). The reports go to the caller.
//! 7. `notes`: completion notes for what settled, for the next delivery of the same records.
//!
//! The lowest failing (or, near the deadline, not started) record is the one reported in
//! `batchItemFailures`, and Lambda retries from it; no record after it starts once it failed,
//! and those already running are safe to run again (idempotent or guarded). Beside the steps:
//! `report` (what the batch reports), `effects` (what reactions wrote, for the reports),
//! `idempotency` (the lock and the notes' items), `request_count` and `intercept` (counting
//! requests).

mod conclude;
mod deferred;
pub mod effects;
mod fold;
pub mod idempotency;
pub mod intercept;
mod lanes;
mod notes;
mod plan;
mod report;
mod request_count;
mod run;
mod settle;

use std::sync::Arc;

use aws_lambda_events::event::streams::{DynamoDbBatchItemFailure, DynamoDbEventResponse};
use chrono::{DateTime, Utc};
use handlers::ports::{Clock, Mailer, Objects, Tables};
use handlers::{Change, Reaction};

use crate::adapters::{CallBudget, ChangeApplier, Parking};
use crate::catalog::Catalog;
use crate::decode::StreamRecord;
use crate::stages::{measure_async, Stage};
use conclude::conclude;
use deferred::Store;
use effects::Recorder;
use fold::Fold;
use idempotency::{Guard, IdempotencyConfig};
use intercept::Intercepted;
use notes::Notes;
use plan::Plan;
use report::hand_over;
pub use report::{BatchOutcome, NotDone, Outcome, ReactionReport, RecordFailure, RecordReport};
use request_count::{difference, CountingTables, RequestCounter};
use run::Run;
use settle::Settle;
/// Records per window: a Lambda batch of the default size is one window; a long replay file
/// is reported, flushed and noted window by window.
pub const WINDOW: usize = 100;

/// Lanes that run at once by default (`MAX_CONCURRENCY`): measured at 5 ms per request in
/// BENCHMARKS.md ("Throughput at production latency").
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;

#[derive(Debug, Clone, Copy, Default)]
pub struct BatchOptions {
    /// When this invocation must be done (Lambda's deadline); bounds the idempotency lock.
    pub deadline: Option<DateTime<Utc>>,
    /// Apply each record's own change to the tables before reacting (embedded replay only).
    pub apply_own_change: bool,
    /// No record starts at or after this time: the first one not started fails, retryable,
    /// so Lambda delivers the rest again. Running into the invocation's timeout instead would
    /// make Lambda deliver the whole batch again, the finished records included.
    pub stop_before: Option<DateTime<Utc>>,
}

/// The adapters a worker runs on.
#[derive(Clone)]
pub struct Adapters {
    pub tables: Arc<dyn Tables>,
    pub objects: Arc<dyn Objects>,
    pub mailer: Arc<dyn Mailer>,
    pub clock: Arc<dyn Clock>,
    pub catalog: Catalog,
    /// Where a replay applies each record's own write first (the embedded state); None on AWS,
    /// where the write already happened.
    pub applier: Option<Arc<dyn ChangeApplier>>,
    /// What the SDK adapters cut their timeouts to; the batch sets the invocation's deadline.
    pub call_budget: Option<Arc<CallBudget>>,
    /// Where a record goes that a reaction can never succeed with (not retryable), so the
    /// batch goes on; None: such a record stops the batch, as a retryable one does.
    pub parking: Option<Arc<dyn Parking>>,
}

impl Adapters {
    /// Ports on the adapters that record what the reactions write, for their reports.
    fn recorder(&self) -> Recorder {
        Recorder::new(
            self.tables.clone(),
            self.objects.clone(),
            self.mailer.clone(),
            self.catalog.clone(),
        )
    }
}

pub struct Worker {
    reactions: Vec<Box<dyn Reaction>>,
    /// The adapters, with `tables` counting every request.
    adapters: Adapters,
    counter: Arc<CountingTables>,
    idempotency: IdempotencyConfig,
    /// Lanes of a window that run at once; 1 runs every record in stream order.
    max_concurrency: usize,
}

impl Worker {
    /// Apply the own changes of `records` without running a reaction: records an event
    /// source mapping's filter keeps from the worker (`replay --config`), whose changes the
    /// application's tables hold all the same. Only where records' own changes are applied
    /// (the embedded replay); a record that breaks a stream's rules is left as it is.
    pub async fn apply_only(&self, records: &[StreamRecord]) -> Result<(), handlers::PortError> {
        let Some(applier) = &self.adapters.applier else {
            return Ok(());
        };
        for change in records.iter().filter_map(|r| r.change.as_ref().ok()) {
            self.adapters.catalog.learn(&change.table, &change.keys);
            applier.apply(change).await?;
        }
        Ok(())
    }

    pub fn new(
        reactions: Vec<Box<dyn Reaction>>,
        mut adapters: Adapters,
        idempotency: IdempotencyConfig,
    ) -> Self {
        let counter = Arc::new(Intercepted::new(
            adapters.tables.clone(),
            RequestCounter::default(),
        ));
        adapters.tables = counter.clone();
        Worker {
            reactions,
            adapters,
            counter,
            idempotency,
            max_concurrency: DEFAULT_MAX_CONCURRENCY,
        }
    }

    /// At most `lanes` lanes of a window at once (at least 1: every record in stream order).
    pub fn with_max_concurrency(mut self, lanes: usize) -> Self {
        self.max_concurrency = lanes.max(1);
        self
    }

    fn guard(&self) -> Guard<'_> {
        Guard {
            tables: self.adapters.tables.as_ref(),
            config: &self.idempotency,
        }
    }

    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// Process `records`, each partition's in stream order. `on_settled` is given each record's
    /// report once the record is complete (its deferred writes stored), in stream order.
    pub async fn process_batch(
        &self,
        records: &[StreamRecord],
        options: BatchOptions,
        on_settled: &mut dyn FnMut(RecordReport),
    ) -> BatchOutcome {
        let a = &self.adapters;
        if let Some(budget) = &a.call_budget {
            budget.until(options.deadline);
        }
        if let (true, Some(applier)) = (options.apply_own_change, &a.applier) {
            let changes: Vec<&Change> = (records.iter())
                .filter_map(|record| record.change.as_ref().ok())
                .collect();
            measure_async(Stage::OwnChange, applier.prepare(&changes)).await;
        }
        let requests_before = self.counter.hook.snapshot();
        let reactions = self.reactions.as_slice();
        let settle = Settle {
            reactions,
            catalog: &a.catalog,
            parking: a.parking.as_ref(),
            clock: a.clock.as_ref(),
        };
        let plan = Plan::make(reactions, &self.guard(), records).await;
        let run = Run {
            reactions,
            adapters: a,
            guard: self.guard(),
            settle: &settle,
            plan: &plan,
            options,
            max_concurrency: self.max_concurrency,
        };
        let fold = Fold {
            reactions,
            adapters: a,
            settle: &settle,
        };
        let store = Store {
            tables: a.tables.as_ref(),
            reactions,
            settle: &settle,
        };
        let mut notes = Notes {
            reactions,
            guard: self.guard(),
            pending: Vec::new(),
        };
        let mut failure: Option<RecordFailure> = None;
        let mut settled = 0;

        for start in (0..records.len()).step_by(WINDOW) {
            let window = start..(start + WINDOW).min(records.len());
            let lanes = match self.max_concurrency {
                1 => vec![window.clone().collect()],
                _ => lanes::lanes(records, window, reactions, &a.catalog),
            };
            let mut runs = run.lanes(records, lanes).await;
            let lane_writes = run::take_writes(&mut runs);
            let (folded, mut stored) = futures::join!(
                measure_async(Stage::Folds, fold.window(records, &runs)),
                measure_async(Stage::DeferredWrites, store.writes(records, lane_writes))
            );
            let concluded = conclude(runs, folded, reactions);
            let fold_writes = store.writes(records, concluded.fold_writes);
            stored.add(measure_async(Stage::DeferredWrites, fold_writes).await);
            let (mut reports, mut failed) = (concluded.reports, concluded.failure);
            // An earlier record whose writes fail to store takes the failure's place.
            if let Some(f) = stored.mark_reports(&mut reports) {
                failed = Some(f);
            }
            notes.note(&reports, records).await;
            let reported = usize::from(failed.is_some());
            settled += hand_over(&mut reports, on_settled).saturating_sub(reported);
            if failed.is_some() {
                failure = failed;
                break;
            }
        }
        notes.write().await;

        let mut response = DynamoDbEventResponse::default();
        if let Some(f) = &failure {
            let mut item = DynamoDbBatchItemFailure::default();
            // Never an empty or invalid identifier (Lambda would read it as "all failed",
            // silently): a failed record without a sequence number a stream gives is retried
            // from the last valid one before it (running records again is safe), or, if none,
            // with the whole batch.
            let valid_at_or_before = records[..=f.index.min(records.len().saturating_sub(1))]
                .iter()
                .rev()
                .find(|r| r.has_valid_sequence_number())
                .or(records.first())
                .map(|r| r.sequence_number.clone());
            item.item_identifier = valid_at_or_before;
            response.batch_item_failures.push(item);
        }
        BatchOutcome {
            settled,
            failure,
            response,
            requests: difference(&self.counter.hook.snapshot(), &requests_before),
        }
    }
}
