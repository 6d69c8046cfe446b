//! How a server or proxy is given the cluster secret: `--secret-file FILE` (or
//! `TESSERA_SECRET_FILE`), or the secret's text itself in `TESSERA_SECRET` (as a
//! Kubernetes Secret is handed to a container). With neither, the development secret,
//! which [`ClusterSecret::check_address`] keeps on loopback. Also `keygen`, which makes one.

use std::path::{Path, PathBuf};
use tessera_shared::secret::{ClusterSecret, SecretError};

/// The command-line arguments naming the cluster secret.
#[derive(clap::Args, Debug, Clone)]
pub struct SecretArgs {
    /// The cluster secret, made by `tessera-server keygen`. Needed by every server and
    /// proxy of a cluster that listens or dials beyond loopback; never put it in the map.
    #[arg(long, value_name = "FILE", env = "TESSERA_SECRET_FILE")]
    pub secret_file: Option<PathBuf>,
    /// The cluster secret's text itself (`tessera-secret-v1 …`), when no file is given.
    #[arg(long = "secret", value_name = "TEXT", env = "TESSERA_SECRET", hide_env_values = true, hide = true)]
    pub secret_text: Option<String>,
}

impl SecretArgs {
    /// The secret these arguments name, saying in the log when it is the development one.
    pub fn resolve(&self) -> Result<ClusterSecret, SecretError> {
        let secret = ClusterSecret::from_file_or_text(self.secret_file.as_deref(), self.secret_text.as_deref())?;
        if secret.is_development() {
            tracing::warn!(
                "no cluster secret given: using the development secret, which only serves a cluster on loopback"
            );
        }
        Ok(secret)
    }
}

/// Writes a fresh cluster secret to `out` and says what to do with it.
pub fn keygen(out: &Path) -> Result<(), SecretError> {
    ClusterSecret::generate_into(out)?;
    println!(
        "wrote a new cluster secret to {}: give it to every server and proxy of the cluster \
         (--secret-file {} or TESSERA_SECRET_FILE), keep it out of the cluster map, and back it up",
        out.display(),
        out.display()
    );
    Ok(())
}
