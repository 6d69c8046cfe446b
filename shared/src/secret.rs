//! The cluster secret: 32 random bytes that every server and proxy of one cluster
//! holds, and nothing else does. Internal links prove membership with it (the Noise
//! handshake of [`crate::link::seal`] takes a key derived from it), so a process that
//! can reach a server's port but lacks the secret cannot finish a handshake.
//!
//! It lives in a file of its own, never in the cluster map (which is meant to be shared
//! and versioned): `tessera-server keygen --out FILE` makes one, readable by its owner
//! only. The file holds one line, `tessera-secret-v1 ` and 64 hex digits, so it can
//! also travel as an environment variable (a Kubernetes Secret, say).
//!
//! Without a secret a process falls back to the publicly known development secret, and
//! only while every address it listens on or dials is a loopback one. That keeps out
//! other machines, not other users of the same machine (or containers sharing its
//! network namespace): a cluster on a shared host needs a real secret too.

use hkdf::Hkdf;
use sha2::{Digest, Sha256};
use std::fmt;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

const LEN: usize = 32;
const TAG: &str = "tessera-secret-v1";
/// How to make a secret, for every error that asks for one.
pub const HOW_TO_MAKE_ONE: &str = "make one with `tessera-server keygen --out cluster.secret` and give every server and \
     proxy of the cluster `--secret-file cluster.secret` (or TESSERA_SECRET_FILE)";

/// The secret every member of one cluster holds.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterSecret {
    bytes: [u8; LEN],
    development: bool,
}

/// Why a secret could not be made, read or used.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("{path} already exists; remove it first if you mean to replace the cluster's secret")]
    Exists { path: PathBuf },
    #[error("not a cluster secret: expected `{TAG}` and 64 hex digits")]
    Malformed,
    #[error("the operating system's random source failed: {0}")]
    Random(#[from] getrandom::Error),
    #[error("{what} {address}, which is not a loopback address, and no cluster secret was given: {HOW_TO_MAKE_ONE}")]
    NeededFor { what: &'static str, address: String },
}

impl ClusterSecret {
    /// A fresh secret from the operating system's random source.
    pub fn generate() -> Result<Self, SecretError> {
        let mut bytes = [0; LEN];
        getrandom::fill(&mut bytes)?;
        Ok(Self { bytes, development: false })
    }

    /// The publicly known secret of clusters run on one machine without one: it keeps
    /// out nothing, and [`Self::check_address`] refuses it beyond loopback.
    pub fn development() -> Self {
        let bytes = Sha256::digest(b"tessera development cluster").into();
        Self { bytes, development: true }
    }

    pub fn is_development(&self) -> bool {
        self.development
    }

    /// Writes a fresh secret to `path`, which must not exist yet, readable by its owner only.
    pub fn generate_into(path: &Path) -> Result<Self, SecretError> {
        let secret = Self::generate()?;
        let io = |source: std::io::Error| match source.kind() {
            std::io::ErrorKind::AlreadyExists => SecretError::Exists { path: path.into() },
            _ => SecretError::Io { path: path.into(), source },
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        writeln!(file, "{}", secret.to_text()).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(secret)
    }

    /// Reads a secret written by [`Self::generate_into`].
    pub fn load(path: &Path) -> Result<Self, SecretError> {
        let text = std::fs::read_to_string(path).map_err(|source| SecretError::Io { path: path.into(), source })?;
        Self::parse(&text)
    }

    /// The secret a process was given: the file if any, else the text (from the
    /// environment, say), else the development secret.
    pub fn from_file_or_text(file: Option<&Path>, text: Option<&str>) -> Result<Self, SecretError> {
        match (file, text) {
            (Some(path), _) => Self::load(path),
            (None, Some(text)) => Self::parse(text),
            (None, None) => Ok(Self::development()),
        }
    }

    pub fn parse(text: &str) -> Result<Self, SecretError> {
        let digits = text.trim().strip_prefix(TAG).ok_or(SecretError::Malformed)?.trim();
        let mut bytes = [0; LEN];
        hex::decode_to_slice(digits, &mut bytes).map_err(|_| SecretError::Malformed)?;
        Ok(Self { bytes, development: false })
    }

    /// The one line [`Self::parse`] reads.
    pub fn to_text(&self) -> String {
        format!("{TAG} {}", hex::encode(self.bytes))
    }

    /// Refuses the development secret for `address` (an IP and port, or a host name and
    /// port) beyond loopback, where it would let anyone who reaches the port pose as a
    /// member of the cluster.
    pub fn check_address(&self, what: &'static str, address: &str) -> Result<(), SecretError> {
        let loopback = match address.parse::<SocketAddr>() {
            Ok(addr) => addr.ip().is_loopback(),
            Err(_) => address.rsplit_once(':').is_some_and(|(host, _)| host.eq_ignore_ascii_case("localhost")),
        };
        if self.development && !loopback {
            return Err(SecretError::NeededFor { what, address: address.into() });
        }
        Ok(())
    }

    /// A key for one use of the secret, independent of the key of any other use (the
    /// links' Noise key, and later the session tickets' sealing key).
    pub fn derive(&self, purpose: &str) -> [u8; LEN] {
        let mut key = [0; LEN];
        Hkdf::<Sha256>::new(Some(b"tessera cluster secret"), &self.bytes)
            .expand(purpose.as_bytes(), &mut key)
            .expect("32 bytes is a valid HKDF-SHA256 output length");
        key
    }
}

impl fmt::Debug for ClusterSecret {
    /// Never the bytes: a secret must not end up in a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.development { "ClusterSecret(development)" } else { "ClusterSecret(..)" })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_secret_reads_back_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster.secret");
        let written = ClusterSecret::generate_into(&path).unwrap();
        assert_eq!(ClusterSecret::load(&path).unwrap(), written);
        assert!(!written.is_development());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        }
        assert!(matches!(ClusterSecret::generate_into(&path), Err(SecretError::Exists { .. })));
    }

    #[test]
    fn malformed_secrets_are_refused() {
        for text in ["", "tessera-secret-v1", "tessera-secret-v1 abcd", &format!("{TAG} {}", "zz".repeat(32))] {
            assert!(matches!(ClusterSecret::parse(text), Err(SecretError::Malformed)), "{text:?}");
        }
        let secret = ClusterSecret::generate().unwrap();
        assert_eq!(ClusterSecret::parse(&format!("  {}\n", secret.to_text())).unwrap(), secret);
    }

    #[test]
    fn the_development_secret_stays_on_loopback() {
        let dev = ClusterSecret::from_file_or_text(None, None).unwrap();
        assert!(dev.is_development());
        for loopback in ["127.0.0.1:4000", "[::1]:4000", "localhost:4000"] {
            dev.check_address("listening on", loopback).unwrap();
        }
        for beyond in ["0.0.0.0:4000", "10.1.2.3:4000", "server-1:7001"] {
            let err = dev.check_address("listening on", beyond).unwrap_err();
            assert!(err.to_string().contains("keygen"), "{err}");
            ClusterSecret::generate().unwrap().check_address("listening on", beyond).unwrap();
        }
    }

    #[test]
    fn derived_keys_differ_by_purpose_and_by_secret() {
        let (a, b) = (ClusterSecret::generate().unwrap(), ClusterSecret::generate().unwrap());
        assert_ne!(a.derive("links"), a.derive("tickets"));
        assert_ne!(a.derive("links"), b.derive("links"));
        assert_eq!(a.derive("links"), a.clone().derive("links"));
        assert!(!format!("{a:?}").contains(&hex::encode(a.bytes)));
    }
}
