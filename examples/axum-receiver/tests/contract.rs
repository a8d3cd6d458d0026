//! The axum receiver's fixed contract, against the real binary.

#[path = "../../receiver-app/contract/mod.rs"]
mod contract;

const BIN: &str = env!("CARGO_BIN_EXE_axum-receiver");

#[tokio::test]
async fn bad_settings_exit_non_zero_naming_the_variable() {
    contract::bad_settings(BIN).await;
}

#[tokio::test]
async fn each_handler_call_prints_one_line() {
    contract::handled_lines(BIN).await;
}

#[tokio::test]
async fn webhook_path_is_literal_never_a_pattern() {
    contract::literal_path(BIN).await;
}

#[tokio::test]
async fn starts_and_serves_while_the_issuer_is_unreachable() {
    contract::issuer_unreachable_at_start(BIN).await;
}

#[tokio::test]
async fn two_receivers_sharing_redis_handle_each_event_once() {
    contract::shared_redis(BIN).await;
}

#[tokio::test]
async fn two_receivers_sharing_a_redis_cluster_handle_each_event_once() {
    contract::shared_redis_cluster(BIN).await;
}

#[tokio::test]
async fn ordering_supersedes_a_late_update_with_the_memory_and_the_file_store() {
    contract::ordering(BIN).await;
}

#[tokio::test]
async fn without_ordering_a_late_update_runs() {
    contract::ordering_off(BIN).await;
}

#[tokio::test]
async fn ordering_holds_across_two_receivers_sharing_redis() {
    contract::ordering_across_receivers(BIN).await;
}

#[tokio::test]
async fn a_poison_event_is_parked_after_n_failures() {
    contract::parking(BIN).await;
}

#[tokio::test]
async fn metrics_are_served_at_metrics_bind() {
    contract::metrics(BIN).await;
}
