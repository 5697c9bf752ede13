//! A short fuzzing run on stable Rust, part of every test run: the shipped event files, mutated
//! at random (bytes flipped, inserted, deleted, spans duplicated, the file cut short, JSON
//! values swapped for values of other types), go through the fuzz target's body
//! (`fuzz_target::decode_and_extract`), which must answer with records or a clear error and
//! never panic. The long run is libFuzzer's, through `cargo fuzz` (docs/guarantees.md, "Fuzzing").
//!
//! `FUZZ_CASES=500000 cargo test --release --test fuzz_decode -- --nocapture` runs longer (each
//! process draws its own inputs: one per core runs as many more).

use std::sync::atomic::{AtomicUsize, Ordering};

use ddb_stream_worker::fuzz_target::decode_and_extract;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

/// Every shipped event file, as seeds.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds: Vec<Vec<u8>> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/events"))
        .expect("events/")
        .flatten()
        .map(|entry| std::fs::read(entry.path()).expect("an event file"))
        .collect();
    seeds.sort();
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Delete(usize, usize),
    Duplicate(usize, usize, usize),
    Truncate(usize),
    /// Replace the value after the n-th `:` with another JSON value.
    Swap(usize, &'static str),
}

const VALUES: &[&str] = &[
    "null",
    "true",
    "0",
    "-1e400",
    "1e309",
    "\"\"",
    "[]",
    "{}",
    "\"\\ud800\"",
    "{\"S\":1}",
    "{\"N\":\"1e126\"}",
    "{\"N\":\"abc\"}",
    "{\"B\":\"!!\"}",
    "{\"L\":[{\"M\":{}}]}",
    "{\"SS\":[]}",
    "\"x\\u0000y\"",
    "18446744073709551616",
    "[[[[[[[[[[]]]]]]]]]]",
];

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        (at, any::<u8>()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (at, any::<u8>()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        (at, 1usize..64).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (at, 1usize..256, any::<usize>()).prop_map(|(i, n, to)| Mutation::Duplicate(i, n, to)),
        at.prop_map(Mutation::Truncate),
        (at, proptest::sample::select(VALUES)).prop_map(|(i, v)| Mutation::Swap(i, v)),
    ]
}

fn apply(mut data: Vec<u8>, mutation: &Mutation) -> Vec<u8> {
    let len = data.len().max(1);
    match *mutation {
        Mutation::Flip(i, b) if !data.is_empty() => data[i % len] ^= b.max(1),
        Mutation::Insert(i, b) => data.insert(i % (data.len() + 1), b),
        Mutation::Delete(i, n) if !data.is_empty() => {
            let from = i % len;
            data.drain(from..(from + n).min(data.len()));
        }
        Mutation::Duplicate(i, n, to) if !data.is_empty() => {
            let from = i % len;
            let span = data[from..(from + n).min(data.len())].to_vec();
            let to = to % (data.len() + 1);
            data.splice(to..to, span);
        }
        Mutation::Truncate(i) => data.truncate(i % len),
        Mutation::Swap(n, value) => {
            let colons: Vec<usize> = (0..data.len()).filter(|&i| data[i] == b':').collect();
            if let Some(&colon) = colons.get(n % colons.len().max(1)) {
                // The old value ends at the next `,` or `}` (good enough to make it odd).
                let end = (colon + 1..data.len())
                    .find(|&i| data[i] == b',' || data[i] == b'}')
                    .unwrap_or(data.len());
                data.splice(colon + 1..end, value.bytes());
            }
        }
        _ => {}
    }
    data
}

#[test]
fn mutated_events_decode_or_fail_cleanly() {
    let cases = std::env::var("FUZZ_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    let seeds = seeds();
    let started = std::time::Instant::now();
    let (inputs, changes) = (AtomicUsize::new(0), AtomicUsize::new(0));
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(
        &(0..seeds.len(), proptest::collection::vec(mutation(), 1..6)),
        |(seed, mutations)| {
            let data = mutations.iter().fold(seeds[seed].clone(), apply);
            inputs.fetch_add(1, Ordering::Relaxed);
            match decode_and_extract(&data) {
                Ok(n) => {
                    changes.fetch_add(n, Ordering::Relaxed);
                    Ok(())
                }
                Err(broken) => Err(TestCaseError::fail(broken)),
            }
        },
    );
    let (inputs, seconds) = (
        inputs.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64(),
    );
    println!(
        "{inputs} mutated event files from {} seeds: {} records decoded to changes, no panic \
         ({seconds:.1} s, {:.0} inputs/s)",
        seeds.len(),
        changes.load(Ordering::Relaxed),
        inputs as f64 / seconds
    );
    if let Err(failure) = result {
        panic!("{failure}");
    }
}
