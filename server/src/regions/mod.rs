//! Region subscriptions between servers. A server sees across its borders by
//! subscribing to the cells of foreign regions that its players' view discs touch
//! ([`subscriber`], which turns what arrives into [`ghosts`]); it publishes the cells of
//! its own regions to whoever subscribed to them, each subscriber receiving only its
//! cells ([`publisher`]). Nothing is ever broadcast to every peer.

pub mod ghosts;
pub mod publisher;
pub mod subscriber;

use bevy::prelude::*;

/// Subscriptions, ghosts and publishing.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RegionSystems;

pub struct RegionsPlugin;

impl Plugin for RegionsPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((subscriber::SubscriberPlugin, publisher::PublisherPlugin));
    }
}
