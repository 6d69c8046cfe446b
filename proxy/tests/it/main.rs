//! End-to-end tests of the `tessera-proxy` binary: one test module per feature.

mod cli;
