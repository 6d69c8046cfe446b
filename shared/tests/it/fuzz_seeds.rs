//! The fuzz targets' seeds (`fuzz/seeds/<target>/`, a valid frame of every message, and
//! any input a fuzzer once crashed on, kept as a regression) replayed through the same
//! receivers: each is taken without a panic, and every target has seeds to start from.

use crate::receive::{CLUSTER_FILE_TARGET, Direction, Receiver, load_cluster_file};
use std::path::PathBuf;

/// Every seed of `target`, by file name.
fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds").join(target);
    let entries = std::fs::read_dir(&folder).unwrap_or_else(|err| panic!("{}: {err}", folder.display()));
    let mut seeds: Vec<(String, Vec<u8>)> = entries
        .map(|entry| {
            let path = entry.expect("a readable seed folder").path();
            (path.display().to_string(), std::fs::read(&path).expect("a readable seed"))
        })
        .collect();
    seeds.sort();
    assert!(!seeds.is_empty(), "{target} has no seeds in {}", folder.display());
    seeds
}

#[test]
fn every_seed_of_every_target_is_received_without_a_panic() {
    let receiver = Receiver::default();
    for direction in Direction::ALL {
        let decoded: usize =
            seeds(direction.target()).iter().map(|(_, bytes)| receiver.receive(direction, bytes).decoded).sum();
        assert!(decoded > 0, "{direction:?}: no seed decodes, so none starts the fuzzer anywhere useful");
    }
    let maps = seeds(CLUSTER_FILE_TARGET).iter().filter(|(_, bytes)| load_cluster_file(bytes).is_some()).count();
    assert!(maps > 0, "no cluster file seed is a valid map");
}
