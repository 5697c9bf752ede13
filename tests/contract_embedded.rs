//! The port contract (tests/support/contract.rs) on the embedded adapter.

mod support;

use ddb_stream_worker::adapters::embedded::EmbeddedState;
use ddb_stream_worker::catalog::Catalog;
use support::contract;

fn state() -> (tempfile::TempDir, EmbeddedState) {
    let dir = tempfile::tempdir().unwrap();
    let state = EmbeddedState::open(dir.path(), Catalog::with_seed_definitions(), false).unwrap();
    (dir, state)
}

contract::table_contract_tests!(state().1);

#[tokio::test]
async fn objects_are_stored_and_deleted() {
    contract::objects_are_stored_and_deleted(&state().1, "docs-bucket").await;
}

#[tokio::test]
async fn mail_is_sent() {
    let (dir, state) = state();
    contract::mail_is_sent(&state, "noreply@sagesoft.com").await;
    assert_eq!(
        std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .count(),
        1
    );
}
