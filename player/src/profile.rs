//! Where a player's identity lives on disk. A profile is a directory under the user's
//! configuration directory, found the platform's way (`$XDG_CONFIG_HOME/tessera` or
//! `~/.config/tessera` on Linux, `~/Library/Application Support/Tessera` on macOS,
//! `%APPDATA%\Tessera\config` on Windows): `profiles/NAME/`, holding `identity.key`, the
//! player's secret key. One machine can hold several players, one per profile ("default"
//! unless another is picked), so two windows side by side are two players.
//!
//! The key is made on the first run and read back on every later one. It is the player:
//! nothing else can prove who they are, so a key file that cannot be read is an error
//! naming the file and is never replaced, and a new key is written whole (to a temporary
//! file, readable by its owner only, linked into place only if no key is there yet). Two
//! processes starting at once on a new profile therefore agree: one key is written, and
//! the other process reads it, never a half-written file.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use directories::ProjectDirs;
use tessera_shared::identity::{Identity, IdentityError};

/// The profile used when none is picked.
pub const DEFAULT_PROFILE: &str = "default";
/// The longest profile name, in (ASCII) characters.
pub const MAX_PROFILE_NAME: usize = 32;

const KEY_FILE: &str = "identity.key";
/// The key file's one line: this tag, a space, the 32 secret bytes in hex.
const KEY_TAG: &str = "tessera-identity-v1";
/// More than a key file holds, with room for line ends: a longer file is not one of ours,
/// and is not read past this.
const MAX_KEY_FILE_BYTES: u64 = 256;

/// One player on this machine: the profile's name and directory, and its identity.
#[derive(Debug)]
pub struct Profile {
    name: String,
    dir: PathBuf,
    identity: Identity,
}

#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    #[error("{name:?} is not a profile name: 1 to {MAX_PROFILE_NAME} ASCII letters, digits, '-' or '_'")]
    BadName { name: String },
    #[error("no configuration directory for this user (no home directory was found)")]
    NoConfigDir,
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is not a Tessera identity key ({reason}); it is left as it is: restore the file, or move it away \
         to start over as a new player"
    )]
    Malformed { path: PathBuf, reason: String },
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Tessera's directories, by the platform's conventions.
fn project_dirs() -> Option<ProjectDirs> {
    ProjectDirs::from("", "", "Tessera")
}

impl Profile {
    /// The profile `profile` (see [`DEFAULT_PROFILE`]) in the user's configuration
    /// directory, with its identity made on first use.
    pub fn open(profile: &str) -> Result<Self, ProfileError> {
        check_profile_name(profile)?;
        let dirs = project_dirs().ok_or(ProfileError::NoConfigDir)?;
        Self::open_in(dirs.config_dir(), profile)
    }

    /// The profile `profile` under `dir` instead of the user's configuration directory:
    /// `dir/profiles/NAME/`.
    pub fn open_in(dir: &Path, profile: &str) -> Result<Self, ProfileError> {
        check_profile_name(profile)?;
        let dir = dir.join("profiles").join(profile);
        make_private_dir(&dir)?;
        let path = dir.join(KEY_FILE);
        let identity = match read_key(&path)? {
            Some(identity) => identity,
            None => write_new_key(&dir, &path)?,
        };
        Ok(Self { name: profile.to_owned(), dir, identity })
    }

    pub fn identity(&self) -> &Identity {
        &self.identity
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A profile name becomes a directory name, so it has nothing a path could be made of
/// but plain characters: no separators, no "..", nothing hidden.
fn check_profile_name(name: &str) -> Result<(), ProfileError> {
    let plain = |byte: u8| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_';
    if (1..=MAX_PROFILE_NAME).contains(&name.len()) && name.bytes().all(plain) {
        Ok(())
    } else {
        Err(ProfileError::BadName { name: name.to_owned() })
    }
}

/// Makes `dir` (and its parents) if missing; what this makes, only its owner can enter.
fn make_private_dir(dir: &Path) -> Result<(), ProfileError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(|source| ProfileError::Io { path: dir.to_owned(), source })
}

/// The identity in the key file at `path`, or `None` if there is no file.
fn read_key(path: &Path) -> Result<Option<Identity>, ProfileError> {
    let io = |source| ProfileError::Io { path: path.to_owned(), source };
    let malformed = |reason: &str| ProfileError::Malformed { path: path.to_owned(), reason: reason.to_owned() };
    let file = match File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(io(error)),
    };
    warn_if_readable_by_others(&file, path);
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_BYTES + 1).read_to_end(&mut bytes).map_err(io)?;
    if bytes.len() as u64 > MAX_KEY_FILE_BYTES {
        return Err(malformed("longer than a key file"));
    }
    let text = std::str::from_utf8(&bytes).map_err(|_| malformed("not text"))?;
    let digits = text
        .trim_ascii()
        .strip_prefix(KEY_TAG)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or_else(|| malformed(&format!("it does not start with `{KEY_TAG} `")))?;
    let mut secret = [0; 32];
    hex::decode_to_slice(digits, &mut secret).map_err(|_| malformed("the key is not 64 hex digits"))?;
    Ok(Some(Identity::from_secret(secret)))
}

/// A new identity, written to `path` unless another process wrote one there first, in
/// which case that one is read and returned.
fn write_new_key(dir: &Path, path: &Path) -> Result<Identity, ProfileError> {
    let identity = Identity::generate()?;
    let in_dir = |source| ProfileError::Io { path: dir.to_owned(), source };
    // Made readable by its owner only (tempfile's default on Unix), and deleted if dropped.
    let mut file = tempfile::Builder::new().prefix(".identity.key.").tempfile_in(dir).map_err(in_dir)?;
    writeln!(file, "{KEY_TAG} {}", hex::encode(identity.secret_bytes())).map_err(in_dir)?;
    file.as_file().sync_all().map_err(in_dir)?;
    match file.persist_noclobber(path) {
        Ok(_) => {
            tracing::info!(path = %path.display(), user = %identity.user(), "made a new identity");
            Ok(identity)
        }
        Err(lost) if lost.error.kind() == ErrorKind::AlreadyExists => read_key(path)?.ok_or_else(|| ProfileError::Io {
            path: path.to_owned(),
            source: std::io::Error::other("it appeared, then vanished"),
        }),
        Err(failed) => Err(ProfileError::Io { path: path.to_owned(), source: failed.error }),
    }
}

/// A secret anyone else on the machine can read is not a secret: said, though the file
/// is used (the user may have a reason; ssh refuses, but there the key can be remade).
fn warn_if_readable_by_others(file: &File, path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(metadata) = file.metadata()
            && metadata.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", metadata.permissions().mode() & 0o777),
                "the identity key can be read by other users of this machine; make it 0600"
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (file, path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn open(dir: &Path, profile: &str) -> Profile {
        Profile::open_in(dir, profile).unwrap_or_else(|error| panic!("opening {profile}: {error}"))
    }

    #[test]
    fn the_first_open_makes_a_key_only_its_owner_can_read() {
        let base = tempfile::tempdir().unwrap();
        let profile = open(base.path(), DEFAULT_PROFILE);
        assert_eq!(profile.name(), "default");
        assert_eq!(profile.dir(), base.path().join("profiles/default"));
        let path = profile.dir().join(KEY_FILE);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text, format!("{KEY_TAG} {}\n", hex::encode(profile.identity().secret_bytes())));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |path: &Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(profile.dir()) & 0o077, 0, "the profile's directory is private");
        }
        let leftovers: Vec<_> =
            std::fs::read_dir(profile.dir()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
        assert_eq!(leftovers, [KEY_FILE], "no temporary file is left behind");
    }

    #[test]
    fn a_later_open_is_the_same_player() {
        let base = tempfile::tempdir().unwrap();
        let first = open(base.path(), "default");
        let again = open(base.path(), "default");
        assert_eq!(again.identity().key(), first.identity().key());
        assert_eq!(again.identity().secret_bytes(), first.identity().secret_bytes());
    }

    #[test]
    fn two_profiles_are_two_players() {
        let base = tempfile::tempdir().unwrap();
        let (one, two) = (open(base.path(), "default"), open(base.path(), "second-window_2"));
        assert_ne!(one.identity().key(), two.identity().key());
        assert_ne!(one.dir(), two.dir());
    }

    #[test]
    fn openers_racing_on_a_new_profile_agree_on_one_key() {
        let base = tempfile::tempdir().unwrap();
        let start = std::sync::Barrier::new(8);
        let keys: Vec<_> = std::thread::scope(|scope| {
            let openers: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| {
                        start.wait();
                        open(base.path(), "raced").identity().key()
                    })
                })
                .collect();
            openers.into_iter().map(|opener| opener.join().unwrap()).collect()
        });
        assert!(keys.iter().all(|key| *key == keys[0]), "{keys:?}");
        assert_eq!(open(base.path(), "raced").identity().key(), keys[0]);
    }

    #[test]
    fn profile_names_cannot_make_paths() {
        let base = tempfile::tempdir().unwrap();
        let too_long = "p".repeat(MAX_PROFILE_NAME + 1);
        for name in ["", ".", "..", "../escape", "a/b", "a\\b", "/abs", "two words", "é", ".hidden", "nul\0", &too_long]
        {
            match Profile::open_in(base.path(), name) {
                Err(ProfileError::BadName { name: refused }) => assert_eq!(refused, name),
                other => panic!("{name:?}: {other:?}"),
            }
        }
        assert!(!base.path().join("profiles").exists(), "a refused name makes no directory");
        assert_eq!(open(base.path(), &"p".repeat(MAX_PROFILE_NAME)).name().len(), MAX_PROFILE_NAME);
    }

    #[test]
    fn a_malformed_key_file_is_refused_with_its_path_and_left_alone() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("profiles/default");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(KEY_FILE);
        let good_digits = "ab".repeat(32);
        let bad: [Vec<u8>; 7] = [
            b"".into(),
            b"hello".into(),
            format!("tessera-secret-v1 {good_digits}\n").into(),
            format!("{KEY_TAG} {}\n", &good_digits[2..]).into(),
            format!("{KEY_TAG} {}zz\n", &good_digits[2..]).into(),
            b"\xff\xfe not text".into(),
            vec![b' '; 1 << 20],
        ];
        for contents in bad {
            std::fs::write(&path, &contents).unwrap();
            match Profile::open_in(base.path(), "default") {
                Err(error @ ProfileError::Malformed { .. }) => {
                    assert!(error.to_string().contains(&path.display().to_string()), "{error}");
                }
                other => panic!("{:?}: {other:?}", String::from_utf8_lossy(&contents[..contents.len().min(40)])),
            }
            assert_eq!(std::fs::read(&path).unwrap(), contents, "the file was changed");
        }
        // Another platform's line end is fine.
        std::fs::write(&path, format!("{KEY_TAG} {good_digits}\r\n")).unwrap();
        let profile = open(base.path(), "default");
        assert_eq!(hex::encode(profile.identity().secret_bytes()), good_digits);
    }
}
