//! End-to-end tests of the benchmark binary: one test module per feature.

mod bench;
mod chaos;
