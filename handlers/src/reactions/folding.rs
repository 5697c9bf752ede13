//! The fold engine of the reactions that fold a window's changes into aggregates
//! (`provider-rating`, `thread-stats`), and what they share besides: the rule that makes a
//! repeat harmless (stream sequence numbers), and how long state with nothing left in it is
//! kept.
//!
//! An aggregate is a set of [`FoldRules`]: how a change is seen, which items it touches, how
//! its state is read, how one change moves it, what is written and what the process then
//! remembers. The engine ([`fold_window`]) does the rest the same way for every aggregate: it
//! cuts the window into segments whose items fit one transaction, reads each segment's state,
//! folds its changes in stream order, writes the segment in one conditional transaction, reads
//! again and folds again when another worker wrote first, and forgets what it assumed when the
//! write fails. `reconcile` is the same: an aggregate's [`ReconcileRules`] say how it is
//! recomputed from its source items; [`reconcile`] retries it on a conflict and resets what
//! the process remembers of it.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Write as _;
use std::hash::Hash;
use std::ops::Range;

use async_trait::async_trait;
use rust_decimal::Decimal;
use serde::Serialize;

use super::contract::Reacted;
use crate::change::Change;
use crate::error::PortError;
use crate::error::ReactionError;
use crate::item::{string_key, to_item, AttributeValue, Item};
use crate::ports::{Condition, Ports, TransactItem};
use crate::reactions::optimistic::retry_on_conflict;
use crate::value_rules;

/// TransactWriteItems holds at most 100 actions.
pub const MAX_ACTIONS: usize = 100;

/// Seconds state that only remembers removed items is kept: a guard against their older
/// changes, past the longest a parked record waits for a redrive (14 days in SQS).
pub const REMOVED_KEPT_SECONDS: i64 = 15 * 86_400;

/// The worker's state items' partition and sort key attributes (deploy/data-model.md).
pub const STATE_PARTITION_KEY: &str = "pk";
pub const STATE_SORT_KEY: &str = "sk";

/// The key of one of the worker's state items.
pub fn state_key(pk: &str, sk: &str) -> Item {
    string_key(&[(STATE_PARTITION_KEY, pk), (STATE_SORT_KEY, sk)])
}

/// The key of an item a change reads or writes, with its table and which of its attributes
/// is the sort key: DynamoDB holds a partition key of up to 2,048 bytes and a sort key of up
/// to 1,024, so an application's id that fits the one may not fit the other.
pub struct ItemKey<'a> {
    pub table: &'a str,
    pub key: Item,
    pub sort_key: Option<&'static str>,
}

impl<'a> ItemKey<'a> {
    /// A state item's key, in the worker's state `table`.
    pub fn state(table: &'a str, pk: &str, sk: &str) -> ItemKey<'a> {
        ItemKey {
            table,
            key: state_key(pk, sk),
            sort_key: Some(STATE_SORT_KEY),
        }
    }

    /// The key of an item of a table keyed by its partition key alone (an aggregate the
    /// application owns).
    pub fn partition_only(table: &'a str, key: Item) -> ItemKey<'a> {
        ItemKey {
            table,
            key,
            sort_key: None,
        }
    }
}

/// The condition on writing one of the worker's state items (keys `pk`, `sk`, a `version`
/// raised by every write) that was read at version `was` (0: it did not exist).
pub fn state_version(was: i64) -> Condition {
    match was {
        0 => Condition::NotExists(STATE_PARTITION_KEY.into()),
        v => Condition::eq("version", AttributeValue::N(v.to_string())),
    }
}

/// The Put of a state item that was read at version `was`: one version on, on that condition.
pub fn put_state<T: Serialize>(
    table: &str,
    state: &T,
    was: i64,
) -> Result<TransactItem, ReactionError> {
    let mut item = to_item(state)?;
    item.insert("version".into(), AttributeValue::N((was + 1).to_string()));
    Ok(TransactItem::Put {
        table: table.to_string(),
        item,
        condition: Some(state_version(was)),
    })
}

/// The Puts of a fold's `changed` state items as `folded` holds them, each one version on from
/// the version read (which folding leaves as it was; 0: new), on that condition.
pub fn put_changed_states<'a, K: Hash + Eq + 'a, T: Serialize>(
    table: &str,
    changed: impl IntoIterator<Item = &'a K>,
    folded: &HashMap<K, T>,
    version: fn(&T) -> i64,
) -> Result<Vec<TransactItem>, ReactionError> {
    let mut puts = Vec::new();
    for key in changed {
        if let Some(state) = folded.get(key) {
            puts.push(put_state(table, state, version(state))?);
        }
    }
    Ok(puts)
}

/// `keys` of `table` read at once; no keys, no request.
pub async fn read_all(
    ports: Ports<'_>,
    table: &str,
    keys: Vec<Item>,
) -> Result<Vec<Item>, PortError> {
    match keys.is_empty() {
        true => Ok(Vec::new()),
        false => ports.tables.batch_get(table, keys).await,
    }
}

/// The condition on writing an aggregate whose version attribute `name` was read as `version`
/// (None: the attribute was absent), and the version to write with it.
pub fn aggregate_version(name: &str, version: Option<Decimal>) -> (Condition, AttributeValue) {
    let n = |d: Decimal| AttributeValue::N(d.normalize().to_string());
    let condition = match version {
        Some(v) => Condition::eq(name, n(v)),
        None => Condition::NotExists(name.into()),
    };
    (condition, n(next_aggregate_version(version)))
}

/// The version an aggregate read at `version` (None: absent) is written with.
pub fn next_aggregate_version(version: Option<Decimal>) -> Decimal {
    version.unwrap_or_default() + Decimal::ONE
}

/// Cuts `changes` into runs, in order, whose distinct items (`items_of` names those a change
/// writes) fit one transaction. A change alone over the limit is a run of its own.
pub fn segments<C, K: Ord>(changes: &[C], items_of: impl Fn(&C) -> Vec<K>) -> Vec<Range<usize>> {
    let mut segments = Vec::new();
    let (mut start, mut items) = (0, BTreeSet::new());
    for (i, change) in changes.iter().enumerate() {
        let own: BTreeSet<K> = items_of(change).into_iter().collect();
        // The segment's items with this change's, counted without building them (linear in
        // the window, where a copy of the segment's set per change was quadratic).
        let added = own.iter().filter(|item| !items.contains(*item)).count();
        if items.len() + added > MAX_ACTIONS && i > start {
            segments.push(start..i);
            start = i;
            items = own;
        } else {
            items.extend(own);
        }
    }
    if start < changes.len() {
        segments.push(start..changes.len());
    }
    segments
}

/// What folding a segment gives: per change, its result or why it failed alone; or the
/// failure of the whole segment.
type SegmentResults = Result<Vec<Result<serde_json::Value, ReactionError>>, ReactionError>;

/// An aggregate's rules, which [`fold_window`] runs.
/// `'c` is the life of the window's changes, which what it sees of them may borrow.
#[async_trait]
pub(crate) trait FoldRules<'c>: Sync {
    /// A change as the aggregate sees it (its ids, its state before and after).
    type Seen: Sync + 'c;
    /// A segment's state: as read, then as folded (with what changed). Folding leaves each
    /// item's version as read, so the folded state alone says what to write and on which
    /// condition: no copy of the state as read is kept.
    type State: Send + Sync;
    /// What folding one change did, for its result.
    type Folded: Send;

    /// What another worker may have written first, for the log of a retry.
    const CONTESTED: &'static str;

    /// The change as the aggregate sees it; an error fails that change alone.
    fn see(&self, change: &'c Change) -> Result<Self::Seen, ReactionError>;

    /// The keys of the items (state items and aggregates) the change reads or writes, each
    /// with its table: a segment holds as many changes as one transaction has room for, and a
    /// change with a key no DynamoDB table can hold fails alone.
    fn keys_of(&self, change: &Self::Seen) -> Vec<ItemKey<'_>>;

    /// The state of a segment's changes; `fresh` after a conflict: nothing taken from memory.
    async fn read(
        &self,
        changes: &[Self::Seen],
        fresh: bool,
        ports: Ports<'_>,
    ) -> Result<Self::State, ReactionError>;

    /// One change folded into `state`.
    fn fold(&self, state: &mut Self::State, change: &Self::Seen) -> Self::Folded;

    /// What the folded state still needs from the tables before it is written (by default,
    /// nothing).
    async fn complete(
        &self,
        _state: &mut Self::State,
        _ports: Ports<'_>,
    ) -> Result<(), ReactionError> {
        Ok(())
    }

    /// The writes of what folding changed, each on the condition that its item is still at
    /// the version read.
    fn writes(&self, folded: &Self::State) -> Result<Vec<TransactItem>, ReactionError>;

    /// Remember the segment as written (each written item one version on), so that the next
    /// window need not read it (what was folded is handed over, not copied: the segment is
    /// done with it).
    fn remember(&self, folded: Self::State);

    /// Forget what the segment assumed: its write failed, so none of it is known as stored.
    fn forget(&self, folded: &Self::State);

    /// Each change's result, in order.
    fn results(
        &self,
        folded: &Self::State,
        changes: &[Self::Seen],
        done: Vec<Self::Folded>,
    ) -> Vec<Result<serde_json::Value, ReactionError>>;
}

/// A window folded by `rules`: each change seen (one that cannot be fails alone), the others
/// cut into segments whose items fit one transaction, and each segment folded and written, in
/// order, up to the first segment that fails: its first change fails, the changes after it
/// are not attempted (left out of the results).
pub(crate) async fn fold_window<'c, R: FoldRules<'c>>(
    rules: &R,
    changes: &[&'c Change],
    ports: Ports<'_>,
) -> Vec<Result<Reacted, ReactionError>> {
    let mut results: Vec<Option<Result<Reacted, ReactionError>>> = Vec::new();
    let mut at = Vec::new();
    let mut seen = Vec::new();
    let mut items = Vec::new();
    for change in changes {
        match rules.see(change).and_then(|c| {
            let names = item_names(change, &rules.keys_of(&c))?;
            Ok((c, names))
        }) {
            Ok((c, names)) => {
                at.push(results.len());
                seen.push(c);
                items.push(names);
                results.push(None);
            }
            Err(e) => results.push(Some(Err(e))),
        }
    }
    for segment in segments(&items, Clone::clone) {
        match fold_segment(rules, &seen[segment.clone()], ports).await {
            Ok(folded) => {
                for (i, result) in segment.zip(folded) {
                    results[at[i]] = Some(result.map(|result| Reacted {
                        result,
                        deferred_writes: Vec::new(),
                    }));
                }
            }
            Err(e) => {
                results[at[segment.start]] = Some(Err(e));
                break;
            }
        }
    }
    results.into_iter().map_while(|r| r).collect()
}

/// The table, then each key attribute's name, type and text, by name, each after its length
/// (a value may hold any character): what tells two items apart (key values are S, N or B).
fn item_name(table: &str, key: &Item) -> String {
    let mut attributes: Vec<_> = key.iter().collect();
    attributes.sort_unstable_by(|a, b| a.0.cmp(b.0));
    let mut name = table.to_string();
    for (attribute, value) in attributes {
        let (kind, text) = match value {
            AttributeValue::S(text) => ("S", Cow::Borrowed(text.as_str())),
            AttributeValue::N(text) => ("N", Cow::Borrowed(text.as_str())),
            other => ("", Cow::Owned(format!("{other:?}"))),
        };
        let _ = write!(
            name,
            "|{}:{attribute}{kind}{}:{text}",
            attribute.len(),
            text.len()
        );
    }
    name
}

/// A name unique to each of `keys`' items, for cutting segments; or why one of them can never
/// be stored (an application's id too long for a key): then `change` fails alone, rather than
/// the transaction of the changes beside it.
fn item_names(change: &Change, keys: &[ItemKey<'_>]) -> Result<Vec<String>, ReactionError> {
    keys.iter()
        .map(
            |ItemKey {
                 table,
                 key,
                 sort_key,
             }| {
                if let Some(broken) = value_rules::broken_key_in(key, *sort_key) {
                    return Err(ReactionError::BadItem {
                        what: change.describe(),
                        message: format!(
                            "its item in {table} cannot have a key from it: {}: {}",
                            broken.path, broken.reason
                        ),
                    });
                }
                Ok(item_name(table, key))
            },
        )
        .collect()
}

/// One segment folded and written; read again and folded again when another worker wrote
/// one of its items first.
async fn fold_segment<'a, 'c, R: FoldRules<'c>>(
    rules: &'a R,
    changes: &'a [R::Seen],
    ports: Ports<'a>,
) -> SegmentResults {
    retry_on_conflict(R::CONTESTED, |attempt| async move {
        let mut folded = rules.read(changes, attempt > 1, ports).await?;
        let done = changes.iter().map(|c| rules.fold(&mut folded, c)).collect();
        rules.complete(&mut folded, ports).await?;
        let writes = rules.writes(&folded)?;
        if !writes.is_empty() {
            if let Err(e) = ports.tables.transact_write(writes).await {
                rules.forget(&folded);
                return Err(e.into());
            }
        }
        let results = rules.results(&folded, changes, done);
        rules.remember(folded);
        Ok(results)
    })
    .await
}

/// What `reconcile` recomputes of one aggregate (a provider, a thread): the rules
/// [`reconcile`] runs. The `reconcile` command holds them as `dyn ReconcileRules`, whatever
/// the aggregate.
#[async_trait]
pub trait ReconcileRules: Send + Sync {
    /// What a change folded meanwhile may have written first, for the log of a retry.
    fn recomputed(&self) -> &'static str;

    /// Where `reconcile --all` finds the aggregates' ids: `(table, attribute)` pairs, the
    /// application's names (the source items' and the aggregates' own table).
    fn id_sources(&self) -> Vec<(String, String)>;

    /// Forget what this process remembers of `aggregate`: the reconcile replaces it.
    fn forget_aggregate(&self, aggregate: &str);

    /// `aggregate` recomputed from its source items, and what differed written under the
    /// reaction's version conditions.
    async fn recompute(
        &self,
        aggregate: &str,
        ports: Ports<'_>,
    ) -> Result<Reconciled, ReactionError>;
}

/// `aggregate` reconciled by `rules`: recomputed, and recomputed again when a change folded
/// meanwhile wrote first; what the process remembered of it is forgotten before and after.
pub async fn reconcile(
    rules: &dyn ReconcileRules,
    aggregate: &str,
    ports: Ports<'_>,
) -> Result<Reconciled, ReactionError> {
    rules.forget_aggregate(aggregate);
    let done = retry_on_conflict(rules.recomputed(), |_| rules.recompute(aggregate, ports)).await;
    rules.forget_aggregate(aggregate);
    done
}

/// An aggregate `reconcile` can recompute: its subcommand and how its rules are built. Each
/// aggregate's module defines one; [`super::RECONCILABLE`] lists them, and the command line
/// is made from that list.
pub struct Reconcilable {
    /// `reconcile <command>`.
    pub command: &'static str,
    /// One line for `reconcile --help`.
    pub about: &'static str,
    /// `--<id_flag> ID`, repeatable: the aggregates to reconcile.
    pub id_flag: &'static str,
    /// What one id names, for `--help` ("A provider").
    pub id_help: &'static str,
    /// Where the recomputed figures come from, for the report ("its reviews say").
    pub source: &'static str,
    /// The rules, from the reactions' configuration.
    pub rules: fn(&super::ReactionsConfig) -> Box<dyn ReconcileRules>,
}

/// `react` of a folding reaction: its window of one change.
pub fn only(
    mut results: Vec<Result<Reacted, ReactionError>>,
    change: &Change,
) -> Result<Reacted, ReactionError> {
    match results.is_empty() {
        true => Err(ReactionError::NotAttempted(format!(
            "{} was not folded",
            change.describe()
        ))),
        false => results.swap_remove(0),
    }
}

/// What `reconcile` found and did for one aggregate (a provider, a thread).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Reconciled {
    /// The provider's or conversation's id.
    pub aggregate: String,
    /// The figures as stored before (None: none stored).
    pub stored: Option<serde_json::Value>,
    /// The figures recomputed from the source items.
    pub computed: serde_json::Value,
    /// Whether the stored figures differed and were written.
    pub fixed_aggregate: bool,
    /// State items (booking slots, message states) that differed and were written.
    pub fixed_state: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_cut_where_its_items_pass_a_transaction() {
        // 60 changes of 2 items each, 1 shared by all: 61 items up to change 59, then more.
        let changes: Vec<u32> = (0..120).collect();
        let cut = segments(&changes, |c| vec![0, c + 1]);
        assert_eq!(cut, [0..99, 99..120]);
        assert_eq!(segments(&changes[..3], |c| vec![*c]).len(), 1);
    }

    /// Items whose key values hold what the name puts between them are still told apart.
    #[test]
    fn item_names_tell_every_key_apart() {
        let key = |pk: &str, sk: &str| -> Item {
            let mut key = Item::from(HashMap::<String, AttributeValue>::new());
            key.insert("pk".into(), AttributeValue::S(pk.into()));
            key.insert("sk".into(), AttributeValue::S(sk.into()));
            key
        };
        let names = [
            item_name("t", &key("a|2:skS1:b", "c")),
            item_name("t", &key("a", "b|2:skS1:c")),
            item_name("t", &key("a", "b")),
            item_name("u", &key("a", "b")),
            item_name("t", &key("a\0", "b")),
        ];
        let distinct: BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert_eq!(
            item_name("t", &key("a", "b")),
            names[2],
            "the same key, the same name"
        );
    }
}
