//! End-to-end tests of the bots crate's binary: one test module per feature.

mod bench;
