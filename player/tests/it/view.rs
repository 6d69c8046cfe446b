//! What a player does with the bytes its proxy sends once it is welcomed (by
//! [`receive::welcome`]): each update and chat line is folded into its [`WorldView`] as
//! `Player::receive` folds it ([`WorldView::apply`] and [`WorldView::hear`], which hold
//! it to `verify` first, once unpacked as `Player::receive` unpacks it), the player's prediction is checked against each update
//! ([`Prediction::reconcile`]), and the view is read as the client draws it. The replay of
//! the `proxy_to_client` seeds and that fuzz target (which includes this file, and
//! [`receive`] beside it) drive it. Nothing here may panic, whatever the bytes.

use crate::receive::{self, Received};
use std::time::Instant;
use tessera_player::WorldView;
use tessera_player::prediction::{InputClock, Prediction};
use tessera_shared::protocol::{OthersKept, ProxyToClient, UpdateUnpacker, tick_seconds};

/// The view a welcomed player has after reading `bytes`, and what it made of them.
pub fn fold(bytes: &[u8]) -> (WorldView, Received) {
    let welcome = receive::welcome();
    let tick = tick_seconds(welcome.tick_hz);
    let mut view = WorldView::new(tick);
    let started = Instant::now();
    let mut prediction = Prediction::new(InputClock::new(started, tick), welcome.map.clone(), tick);
    let mut unpacker = UpdateUnpacker::new(welcome.user.entity(), tick, OthersKept::States);
    let received = receive::frames(bytes, |message: &ProxyToClient| match message {
        ProxyToClient::Update(packed) => {
            let update = unpacker.unpack(packed.clone())?;
            let moved = view.apply(&mut update.clone(), &welcome, Instant::now())?;
            assert!(moved.moved.iter().all(|by| by.is_finite()), "others shown moved out of space");
            prediction.reconcile(&update.you, update.your_tick, Instant::now());
            Ok(())
        }
        ProxyToClient::Chat(line) => view.hear(line.clone()),
        ProxyToClient::ChatThrottled => {
            view.chat.throttled += 1;
            Ok(())
        }
        // A player takes a welcome only before its first update, and stops at a
        // disconnect, a refused name or a session gone: none reaches its view.
        ProxyToClient::Welcome(_)
        | ProxyToClient::Disconnect { .. }
        | ProxyToClient::NameRefused { .. }
        | ProxyToClient::SessionGone
        | ProxyToClient::RegionOffline => Ok(()),
    });
    // What the client draws: everyone in view, where they are now.
    let placed = view.others().filter(|other| other.position.is_finite()).count();
    assert_eq!(placed, view.in_view(), "an entity in view was extrapolated out of space");
    let shown = view.others_shown(Instant::now()).filter(|(_, position)| position.is_finite()).count();
    assert_eq!(shown, view.in_view(), "an entity in view was shown out of space");
    assert!(prediction.position_at(Instant::now()).is_none_or(|me| me.is_finite()), "predicted out of space");
    (view, received)
}
