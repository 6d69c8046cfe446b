//! Where the store lives, as given on a command line (`--store`): a `postgres://` or
//! `postgresql://` URL for a cluster on several machines, anything else a SQLite file.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::StoreError;

/// The SQLite file's name in a cluster's data directory ([`StoreLocation::in_data_dir`]).
pub const DEFAULT_FILE_NAME: &str = "players.sqlite3";

#[derive(Clone)]
pub enum StoreLocation {
    /// One file, shared by every server process on the machine.
    Sqlite(PathBuf),
    /// A PostgreSQL server, shared by every machine of the cluster.
    Postgres(PostgresUrl),
}

/// A parsed PostgreSQL connection URL. Shown without its password. Boxed: the parsed
/// form is ten times the size of a path.
#[derive(Clone)]
pub struct PostgresUrl(pub(crate) Box<tokio_postgres::Config>);

impl StoreLocation {
    /// The embedded default: [`DEFAULT_FILE_NAME`] in the cluster's data directory.
    pub fn in_data_dir(dir: &Path) -> Self {
        Self::Sqlite(dir.join(DEFAULT_FILE_NAME))
    }
}

/// Tessera's data directory on this platform, for this user (found the platform's way:
/// `$XDG_DATA_HOME/tessera` or `~/.local/share/tessera` on Linux): where a cluster keeps
/// its store unless told otherwise, and a player's embedded cluster keeps its world.
pub fn platform_data_dir() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "Tessera").map(|dirs| dirs.data_dir().to_path_buf())
}

impl FromStr for StoreLocation {
    type Err = StoreError;

    fn from_str(location: &str) -> Result<Self, StoreError> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            let config = location
                .parse::<tokio_postgres::Config>()
                .map_err(|error| StoreError::Open { what: "a PostgreSQL URL".into(), reason: error.to_string() })?;
            return Ok(Self::Postgres(PostgresUrl(Box::new(config))));
        }
        if location.is_empty() {
            return Err(StoreError::Open { what: "an empty location".into(), reason: "no file or URL given".into() });
        }
        Ok(Self::Sqlite(PathBuf::from(location)))
    }
}

impl fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreLocation({self})")
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use tokio_postgres::config::Host;
        write!(f, "postgres://")?;
        if let Some(user) = self.0.get_user() {
            write!(f, "{user}@")?;
        }
        for (index, host) in self.0.get_hosts().iter().enumerate() {
            if index > 0 {
                write!(f, ",")?;
            }
            match host {
                Host::Tcp(name) => write!(f, "{name}")?,
                Host::Unix(path) => write!(f, "{}", path.display())?,
            }
            if let Some(port) = self.0.get_ports().get(index) {
                write!(f, ":{port}")?;
            }
        }
        write!(f, "/{}", self.0.get_dbname().unwrap_or_default())
    }
}
