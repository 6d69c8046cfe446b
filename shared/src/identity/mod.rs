//! Who a player is, without an account server: a player is an ed25519 key pair, made on
//! the player's machine and kept there ([`Identity`]); the cluster knows only the public
//! half ([`PlayerKey`]). Nobody issues identities, so nobody has to run a service for
//! them, and losing the file is losing the player (there is no password to reset).
//!
//! Why ed25519: small keys (32 bytes) and signatures (64), fast to make (a bot makes
//! thousands from a seed) and to check (a proxy checks every join), one well-reviewed
//! implementation (`ed25519-dalek`), and no parameters to get wrong.
//!
//! The player's id ([`UserId`](crate::ids::UserId)) is derived from the key
//! ([`PlayerKey::user`]) rather than issued: the same on every proxy, server and store
//! of any cluster, with nothing to coordinate and nothing to look up; and an id cannot
//! be taken without the key it comes from.
//!
//! At a join, the proxy sends a [`JoinChallenge`] (32 fresh random bytes); the player
//! answers with its key, the name it asks for, and a [`JoinSignature`] over both
//! ([`Identity::sign_join`]), which the proxy checks ([`PlayerKey::verify_join`]). A
//! recorded answer cannot be replayed, because the next join has another challenge; nor
//! moved to another name, because the name is signed; nor taken from anything else a
//! Tessera key signs, because every signed message starts with a context of its own.
//!
//! Beside the keys, the name rule ([`check_name`]) and the form of a name that is kept
//! unique ([`name_key`]), one for the client, the proxy and the store.

mod keys;
mod name;

pub use keys::{Identity, IdentityError, JoinChallenge, JoinSignature, PlayerKey};
pub use name::{MAX_NAME_CHARS, MIN_NAME_CHARS, NameError, check_name, name_key};
pub(crate) use name::{MAX_NONSPACING_MARKS_IN_A_ROW, is_invisible};
