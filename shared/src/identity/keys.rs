//! The keys: a player's public key ([`PlayerKey`], and the [`UserId`] derived from it),
//! the secret half a player keeps ([`Identity`]), and the join's challenge and signature.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest, Sha256};
use std::fmt;

use crate::ids::UserId;

/// Prefixed to every join message signed, so that a join signature can never pass for
/// anything else Tessera signs (each with a context of its own, NUL-terminated so that
/// no context is the start of another).
const JOIN_CONTEXT: &[u8] = b"tessera join v1\0";

/// A player's ed25519 public key: who the player is, whatever they are called.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PlayerKey(pub [u8; 32]);

/// A player's secret key, which never leaves the player's machine. Its [`fmt::Debug`]
/// shows the public key only.
#[derive(Clone)]
pub struct Identity(SigningKey);

/// 32 random bytes a proxy asks a joining player to sign: fresh for each join, so a
/// signature seen once is worth nothing the next time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinChallenge(pub [u8; 32]);

/// A player's ed25519 signature of a [`JoinChallenge`] and the name it joins under.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct JoinSignature(pub [u8; 64]);

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("the operating system's random source failed: {0}")]
    Randomness(#[from] getrandom::Error),
    #[error("not a valid ed25519 public key")]
    BadKey,
    #[error("the signature is not this key's for this challenge and name")]
    BadSignature,
}

impl PlayerKey {
    /// The player's stable id: the first 8 bytes of SHA-256 of the key, read big-endian.
    /// Anyone holding the key derives the same id on any machine, without asking anyone.
    pub fn user(&self) -> UserId {
        let digest = Sha256::digest(self.0);
        let mut first = [0; 8];
        first.copy_from_slice(&digest[..8]);
        UserId(u64::from_be_bytes(first))
    }

    /// Whether `signature` is this key's signature of `challenge` and `name`. Strict
    /// verification: a key of small order (whose signatures anyone could forge) and a
    /// signature with a non-canonical scalar are refused.
    pub fn verify_join(
        &self,
        challenge: &JoinChallenge,
        name: &str,
        signature: &JoinSignature,
    ) -> Result<(), IdentityError> {
        let key = VerifyingKey::from_bytes(&self.0).map_err(|_| IdentityError::BadKey)?;
        if key.is_weak() {
            return Err(IdentityError::BadKey);
        }
        key.verify_strict(&join_message(challenge, name), &Signature::from_bytes(&signature.0))
            .map_err(|_| IdentityError::BadSignature)
    }
}

impl Identity {
    /// A new identity from the operating system's random source.
    pub fn generate() -> Result<Self, IdentityError> {
        let mut secret = [0; 32];
        getrandom::fill(&mut secret)?;
        Ok(Self::from_secret(secret))
    }

    /// The identity whose secret key is `secret`: one read back from a file, or one of
    /// many derived cheaply from a seed (bots).
    pub fn from_secret(secret: [u8; 32]) -> Self {
        Self(SigningKey::from_bytes(&secret))
    }

    /// The secret key, to be saved (and read back with [`Self::from_secret`]).
    pub fn secret_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    pub fn key(&self) -> PlayerKey {
        PlayerKey(self.0.verifying_key().to_bytes())
    }

    pub fn user(&self) -> UserId {
        self.key().user()
    }

    /// Signs `challenge` and `name` for a join: good for that challenge and that name
    /// only ([`PlayerKey::verify_join`]).
    pub fn sign_join(&self, challenge: &JoinChallenge, name: &str) -> JoinSignature {
        JoinSignature(self.0.sign(&join_message(challenge, name)).to_bytes())
    }
}

impl JoinChallenge {
    /// A new challenge from the operating system's random source.
    pub fn fresh() -> Result<Self, IdentityError> {
        let mut challenge = [0; 32];
        getrandom::fill(&mut challenge)?;
        Ok(Self(challenge))
    }
}

/// What a join signs: the context, the challenge, the name. Both before the name have a
/// fixed length, so the message splits back into its parts one way only.
fn join_message(challenge: &JoinChallenge, name: &str) -> Vec<u8> {
    [JOIN_CONTEXT, &challenge.0, name.as_bytes()].concat()
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    bytes.iter().try_for_each(|byte| write!(f, "{byte:02x}"))
}

impl fmt::Debug for PlayerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PlayerKey(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identity(")?;
        write_hex(f, &self.key().0)?;
        write!(f, ")")
    }
}

impl fmt::Debug for JoinSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "JoinSignature(")?;
        write_hex(f, &self.0)?;
        write!(f, ")")
    }
}

/// An ed25519 signature is two 32-byte halves (R, then s). Serde derives arrays only up
/// to 32 elements, so the signature travels as its two halves: in bincode, 64 bytes and
/// no length, as a `[u8; 64]` would.
type Halves = [[u8; 32]; 2];

impl Serialize for JoinSignature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut halves: Halves = [[0; 32]; 2];
        halves.as_flattened_mut().copy_from_slice(&self.0);
        halves.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for JoinSignature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let halves = Halves::deserialize(deserializer)?;
        let mut bytes = [0; 64];
        bytes.copy_from_slice(halves.as_flattened());
        Ok(Self(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(n: u8) -> Identity {
        Identity::from_secret([n; 32])
    }

    fn challenge(n: u8) -> JoinChallenge {
        JoinChallenge([n; 32])
    }

    #[test]
    fn the_user_id_is_the_first_8_bytes_of_the_keys_sha256() {
        // SHA-256 of 32 zero bytes: 66687aadf862bd77 6c8fc18b…, a published test value.
        assert_eq!(PlayerKey([0; 32]).user(), UserId(0x6668_7aad_f862_bd77));
        assert_ne!(identity(1).user(), identity(2).user());
        assert_eq!(identity(1).user(), identity(1).key().user());
    }

    #[test]
    fn the_key_is_the_ed25519_public_key_of_the_secret() {
        // RFC 8032, section 7.1, test 1.
        let secret = hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60").unwrap();
        let identity = Identity::from_secret(secret.try_into().unwrap());
        assert_eq!(hex::encode(identity.key().0), "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        assert_eq!(Identity::from_secret(identity.secret_bytes()).key(), identity.key());
    }

    #[test]
    fn a_join_signature_is_good_for_its_key_challenge_and_name_only() {
        let ann = identity(1);
        let signature = ann.sign_join(&challenge(7), "Ann");
        ann.key().verify_join(&challenge(7), "Ann", &signature).unwrap();

        let refused = [
            (identity(2).key(), challenge(7), "Ann"),
            (ann.key(), challenge(8), "Ann"),
            (ann.key(), challenge(7), "Anna"),
            (ann.key(), challenge(7), "ann"),
        ];
        for (key, challenge, name) in refused {
            assert!(
                matches!(key.verify_join(&challenge, name, &signature), Err(IdentityError::BadSignature)),
                "{key:?} {challenge:?} {name}"
            );
        }
        let mut altered = signature;
        altered.0[40] ^= 1;
        assert!(matches!(ann.key().verify_join(&challenge(7), "Ann", &altered), Err(IdentityError::BadSignature)));
    }

    #[test]
    fn the_signed_message_carries_the_join_context() {
        // A signature of the bare challenge and name (what a careless later protocol
        // might sign) is not a join signature.
        let ann = identity(1);
        let bare = [challenge(7).0.as_slice(), b"Ann"].concat();
        let signature = JoinSignature(ann.0.sign(&bare).to_bytes());
        assert!(matches!(ann.key().verify_join(&challenge(7), "Ann", &signature), Err(IdentityError::BadSignature)));
    }

    #[test]
    fn keys_that_are_not_points_or_of_small_order_are_refused() {
        let signature = identity(1).sign_join(&challenge(7), "Ann");
        // y = 2 is not the y of any point of the curve.
        let mut not_a_point = [0; 32];
        not_a_point[0] = 2;
        // The identity point (y = 1): of order 1, so any signature would pass for it.
        let mut small_order = [0; 32];
        small_order[0] = 1;
        for key in [not_a_point, small_order] {
            let refused = PlayerKey(key).verify_join(&challenge(7), "Ann", &signature);
            assert!(matches!(refused, Err(IdentityError::BadKey)), "{key:?}: {refused:?}");
        }
    }

    #[test]
    fn generated_identities_and_challenges_are_fresh() {
        assert_ne!(Identity::generate().unwrap().key(), Identity::generate().unwrap().key());
        assert_ne!(JoinChallenge::fresh().unwrap(), JoinChallenge::fresh().unwrap());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let ann = identity(1);
        let shown = format!("{ann:?}");
        assert!(shown.contains(&hex::encode(ann.key().0)), "{shown}");
        assert!(!shown.contains(&hex::encode(ann.secret_bytes())), "{shown}");
        assert!(!shown.contains(&hex::encode(&ann.secret_bytes()[..4])), "{shown}");
    }

    #[test]
    fn a_signature_travels_in_bincode_as_its_64_bytes() {
        let config = bincode::config::standard();
        let signature = identity(1).sign_join(&challenge(7), "Ann");
        let encoded = bincode::serde::encode_to_vec(signature, config).unwrap();
        assert_eq!(encoded, signature.0);
        let (decoded, read): (JoinSignature, _) = bincode::serde::decode_from_slice(&encoded, config).unwrap();
        assert_eq!((decoded, read), (signature, 64));
        assert!(bincode::serde::decode_from_slice::<JoinSignature, _>(&encoded[..63], config).is_err());

        let key = identity(1).key();
        let encoded = bincode::serde::encode_to_vec(key, config).unwrap();
        assert_eq!(encoded, key.0);
    }
}
