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

#[tokio::test]
async fn conditional_put_reports_the_existing_item() {
    contract::conditional_put_reports_the_existing_item(&state().1).await;
}

#[tokio::test]
async fn update_sets_adds_and_removes_exactly() {
    contract::update_sets_adds_and_removes_exactly(&state().1).await;
}

#[tokio::test]
async fn delete_returns_the_old_item_and_honours_conditions() {
    contract::delete_returns_the_old_item_and_honours_conditions(&state().1).await;
}

#[tokio::test]
async fn query_returns_a_partition_in_sort_key_order() {
    contract::query_returns_a_partition_in_sort_key_order(&state().1).await;
}

#[tokio::test]
async fn batch_get_reads_many_and_leaves_out_the_missing() {
    contract::batch_get_reads_many_and_leaves_out_the_missing(&state().1).await;
}

#[tokio::test]
async fn batch_write_stores_many_and_deletes() {
    contract::batch_write_stores_many_and_deletes(&state().1).await;
}

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
