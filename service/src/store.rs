//! Where a server or proxy finds the player store: `--store` (a `postgres://` URL, for a
//! cluster on several machines, or a SQLite file), or else the SQLite file in the
//! cluster's data directory, `--data DIR`, by default the platform's data directory for
//! Tessera. Every process of a cluster must name the same store.

use std::path::PathBuf;
use tessera_store::{StoreError, StoreLocation};

/// The command-line arguments naming the player store.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The cluster's data directory, holding the player store (players.sqlite3) unless
    /// --store names another. By default the platform's data directory for Tessera
    /// (~/.local/share/tessera on Linux).
    #[arg(long, value_name = "DIR", env = "TESSERA_DATA")]
    pub data: Option<PathBuf>,
    /// The player store: postgres://USER@HOST/DB for a cluster on several machines, or a
    /// SQLite file that every process of the cluster can reach.
    #[arg(long, value_name = "URL|FILE", env = "TESSERA_STORE")]
    pub store: Option<String>,
}

impl StoreArgs {
    /// The store these arguments name.
    pub fn location(&self) -> Result<StoreLocation, StoreError> {
        if let Some(store) = &self.store {
            return store.parse();
        }
        let dir = match &self.data {
            Some(dir) => dir.clone(),
            None => tessera_store::platform_data_dir().ok_or_else(|| StoreError::Open {
                what: "the default data directory".into(),
                reason: "this platform has none for this user: give --data DIR or --store".into(),
            })?,
        };
        Ok(StoreLocation::in_data_dir(&dir))
    }
}
