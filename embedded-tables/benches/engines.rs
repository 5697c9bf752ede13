//! The storage engines side by side on a replay's mix of work, before one was chosen for the
//! embedded tables (issue 42; figures and the choice in BENCHMARKS.md).
//!
//! The mix is what a replay asks of its tables, per record: one read of an item and one write
//! of it (the record's own change), a 20-item transaction per 100 records (aggregates) and
//! audit items written 25 at a time, which only grow (history). Items are DynamoDB JSON of
//! about 400 bytes keyed by ordered key bytes, the layout the crate uses. Each batch is one
//! commit, made durable before the next starts (fsync: SQLite `synchronous=FULL` in WAL mode,
//! redb `Durability::Immediate`). Each engine runs in a process of its own, so that its peak
//! memory is its own.
//!
//! `cargo bench -p embedded-tables --bench engines` (RECORDS, default 100000).

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use redb::ReadableTable;

const ENGINES: [&str; 2] = ["sqlite", "redb"];

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--engine") {
        let engine = args.get(at + 1).cloned().unwrap_or_default();
        let batch: usize = args.get(at + 2).and_then(|b| b.parse().ok()).unwrap_or(100);
        run_one(&engine, batch);
        return;
    }
    let records = records();
    println!("{records} records, replay mix, one durable commit per batch");
    println!("| engine | batch | records/s | peak RSS |");
    println!("|---|---|---|---|");
    for batch in [100, 10_000] {
        for engine in ENGINES {
            let exe = std::env::current_exe().expect("the bench's own path");
            let out = Command::new(exe)
                .args(["--engine", engine, &batch.to_string()])
                .output()
                .expect("run the engine's process");
            let text = String::from_utf8_lossy(&out.stdout);
            println!("| {engine} | {batch} | {} |", text.trim());
        }
    }
}

fn records() -> usize {
    std::env::var("RECORDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100_000)
}

/// The key bytes of item `n` of partition `p`: what the crate stores as (pk, sk).
fn key(p: &str, n: usize) -> Vec<u8> {
    let mut k = p.as_bytes().to_vec();
    k.push(0);
    k.extend_from_slice(format!("{n:012}").as_bytes());
    k
}

fn item(n: usize) -> Vec<u8> {
    format!(
        r#"{{"PK":{{"S":"USER#{n}"}},"SK":{{"S":"PROFILE"}},"Email":{{"S":"user{n}@example.com"}},"FirstName":{{"S":"Ada"}},"LastName":{{"S":"Lovelace"}},"Preferences":{{"M":{{"NotificationSettings":{{"M":{{"EmailNotifications":{{"BOOL":true}},"DocumentReady":{{"BOOL":true}}}}}}}}}},"UpdatedAt":{{"S":"2026-12-03T10:00:00.000Z"}},"Version":{{"N":"{n}"}},"Company":{{"S":"Analytical Engines Ltd"}},"Padding":{{"S":"{}"}}}}"#,
        "x".repeat(100)
    )
    .into_bytes()
}

/// One engine's operations.
trait Engine {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>>;
    fn put(&mut self, key: &[u8], value: &[u8]);
    fn commit(&mut self);
}

fn run_one(engine: &str, batch: usize) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut engine: Box<dyn Engine> = match engine {
        "sqlite" => Box::new(Sqlite::open(dir.path())),
        "redb" => Box::new(Redb::open(dir.path())),
        other => panic!("no engine {other}"),
    };
    let records = records();
    let started = Instant::now();
    let mut found = 0usize;
    let mut audit = 0usize;
    for r in 0..records {
        let own = key("USER", r % 50_000);
        found += usize::from(engine.get(&own).is_some());
        engine.put(&own, &item(r));
        if r % 100 == 99 {
            // An aggregate transaction: read and write 20 providers' items.
            for p in 0..20 {
                let k = key("PROVIDER", (r / 100 * 20 + p) % 500);
                let _ = engine.get(&k);
                engine.put(&k, &item(p));
            }
        }
        if r % 25 == 24 {
            for _ in 0..25 {
                engine.put(&key("AUDIT", audit), &item(audit));
                audit += 1;
            }
        }
        if r % batch == batch - 1 {
            engine.commit();
        }
    }
    engine.commit();
    let seconds = started.elapsed().as_secs_f64();
    std::hint::black_box(found);
    println!(
        "{:.0} | {:.1} MiB",
        records as f64 / seconds,
        peak_rss_kib() as f64 / 1024.0
    );
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

struct Sqlite {
    conn: rusqlite::Connection,
    open: bool,
}

impl Sqlite {
    fn open(dir: &Path) -> Self {
        let conn = rusqlite::Connection::open(dir.join("state.sqlite")).expect("open");
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-32768;
             CREATE TABLE items (k BLOB PRIMARY KEY, item BLOB NOT NULL) WITHOUT ROWID;",
        )
        .expect("schema");
        Sqlite { conn, open: false }
    }

    fn begin(&mut self) {
        if !self.open {
            self.conn.execute_batch("BEGIN").expect("begin");
            self.open = true;
        }
    }
}

impl Engine for Sqlite {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT item FROM items WHERE k = ?1")
            .expect("prepare");
        stmt.query_row([key], |row| row.get(0)).ok()
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.begin();
        let mut stmt = self
            .conn
            .prepare_cached("INSERT OR REPLACE INTO items (k, item) VALUES (?1, ?2)")
            .expect("prepare");
        stmt.execute((key, value)).expect("put");
    }
    fn commit(&mut self) {
        if self.open {
            self.conn.execute_batch("COMMIT").expect("commit");
            self.open = false;
        }
    }
}

const REDB_ITEMS: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("items");

struct Redb {
    db: redb::Database,
    txn: Option<redb::WriteTransaction>,
}

impl Redb {
    fn open(dir: &Path) -> Self {
        let db = redb::Database::builder()
            .set_cache_size(32 * 1024 * 1024)
            .create(dir.join("state.redb"))
            .expect("open");
        Redb { db, txn: None }
    }

    fn txn(&mut self) -> &mut redb::WriteTransaction {
        if self.txn.is_none() {
            self.txn = Some(self.db.begin_write().expect("begin"));
        }
        self.txn.as_mut().expect("just begun")
    }
}

impl Engine for Redb {
    fn get(&mut self, key: &[u8]) -> Option<Vec<u8>> {
        let txn = self.txn();
        let table = txn.open_table(REDB_ITEMS).expect("table");
        let value = table.get(key).expect("get").map(|v| v.value().to_vec());
        value
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        let txn = self.txn();
        let mut table = txn.open_table(REDB_ITEMS).expect("table");
        table.insert(key, value).expect("put");
    }
    fn commit(&mut self) {
        if let Some(txn) = self.txn.take() {
            txn.commit().expect("commit");
        }
    }
}
