//! End-to-end tests of the benchmark binary: one test module per feature.

mod bench;
mod chaos;

/// Each test starts a cluster on ports it picked free and released just before: two at
/// once could pick the same, so they take turns.
pub static ONE_CLUSTER_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
