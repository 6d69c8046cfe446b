//! The fuzz targets' seeds on disk (`fuzz/seeds/<target>/`: a valid input of every kind,
//! every input a fuzzer once crashed on, kept as a regression, and the inputs of past
//! runs that reached code no other seed reaches), for the suites that replay them: this
//! crate's, and the player crate's (which includes this file).

use std::path::PathBuf;

/// Every seed of `target`, with its path, in path order; panics if there is none.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
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
