//! The client side of the Tessera protocol, without a window: what the game client, the
//! bots and the tests all speak, and the one measure they share, [`smoothness`]. [`connection`]
//! joins through a proxy (with one retry-and-backoff for everyone) and sends key presses,
//! its updates coming by datagram where the proxy sends them so ([`datagrams`]; a
//! swarm's bots share sockets for them, [`datagram_hub`]);
//! [`prediction`] walks the player at once and checks the server's word against it;
//! [`world_view`] folds the updates received into what the player knows, and shows the
//! others as the server simulated them; [`conditioner`] makes a link as slow and
//! uneven as a real network, to play and measure under; [`steering`] turns "walk to
//! there" into key presses, as a person would press them; [`chat_log`] keeps the chat
//! lines heard (`Player::say` says one); [`profile`] keeps who the player is (its
//! identity) on disk, one directory per profile.

pub mod chat_log;
pub mod conditioner;
pub mod connection;
pub mod datagram_hub;
pub mod datagrams;
pub mod prediction;
pub mod profile;
pub mod smoothness;
pub mod steering;
pub mod world_view;

pub use chat_log::ChatLog;
pub use conditioner::Conditioner;
pub use connection::{Player, PlayerError, Rejoin, Smoothness};
pub use profile::{Profile, ProfileError};
pub use world_view::WorldView;
