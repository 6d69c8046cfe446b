//! Saving this server's players to the player store: where each stands, when it was last
//! seen and how long it has played. In batches every [`ServerSettings::checkpoint_interval`]
//! (staggered by server id, so the servers of a cluster do not all write at once), and
//! for one player as it leaves this server: logout, a lost proxy, a handoff (the new
//! owner counts from there), a takeover by a newer login; those who left in a tick go
//! in one batch at its end (in a crowd, handoffs come by the hundred a second). At
//! shutdown everyone still here is saved before the app's last frame ends. So a server
//! killed without warning loses at most one interval of its players' movement.
//!
//! No system touches the store: they hand batches to a [`StoreWriter`], a thread of its
//! own running the store's async calls on a small tokio runtime (the I/O side), and go
//! on with the tick. A batch the store could not take (the database away, or slower
//! than its timeout) is kept, merged with the next ones (a player's latest position, its
//! played time summed), and tried again after a wait that grows while the store keeps
//! failing: nothing is lost while the database is down or its disk full, nothing is
//! counted twice, and a store in trouble is neither hammered nor logged about every tick.

use crate::players::Player;
use crate::settings::ServerSettings;
use crate::stats::ServerStats;
use crate::tick::SimulationTick;
use bevy::ecs::system::SystemState;
use bevy::prelude::*;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;
use tessera_shared::components::Position;
use tessera_shared::ids::UserId;
use tessera_shared::link::Backoff;
use tessera_store::{Checkpoint, Store, StoreError, StoreLocation};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{info, warn};

/// How long the writer waits before trying a failed batch again, doubling while the
/// store keeps failing, up to the most: a store back is taking checkpoints again within
/// that, and the log has a line per attempt at most.
const RETRY_AFTER: Duration = Duration::from_secs(1);
const RETRY_AT_MOST_AFTER: Duration = Duration::from_secs(10);

/// The tick at which a player's time played was last saved: the next checkpoint adds
/// the ticks since.
#[derive(Component, Debug, Clone, Copy)]
pub struct LastCheckpoint(pub u64);

/// Players who left this server since the last batch was sent: saved together at the
/// end of the tick, so the writer thread is woken, and the store commits, once a tick at
/// most rather than once a leaver.
#[derive(Resource, Default)]
struct Leavers(Vec<Checkpoint>);

/// The way to the store: batches sent here are saved by the writer thread.
#[derive(Resource)]
pub struct StoreWriter {
    batches: mpsc::UnboundedSender<Vec<Checkpoint>>,
    thread: JoinHandle<()>,
}

impl StoreWriter {
    /// Opens the store at `location` on a thread of its own, and returns once it is open
    /// (or why it could not be).
    pub fn start(location: StoreLocation, stats: Arc<ServerStats>) -> Result<Self, StoreError> {
        let (batches, received) = mpsc::unbounded_channel();
        let (opened, open) = std::sync::mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| StoreError::Open { what: "the store's runtime".into(), reason: err.to_string() })?;
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                runtime.block_on(async move {
                    match Store::open(&location).await {
                        Ok(store) => {
                            let _ = opened.send(Ok(()));
                            write_batches(store, received, &stats).await;
                        }
                        Err(err) => {
                            let _ = opened.send(Err(err));
                        }
                    }
                })
            })
            .map_err(|err| StoreError::Open { what: "the store's thread".into(), reason: err.to_string() })?;
        match open.recv() {
            Ok(Ok(())) => Ok(Self { batches, thread }),
            Ok(Err(err)) => {
                let _ = thread.join();
                Err(err)
            }
            Err(_) => Err(StoreError::Open { what: "the store".into(), reason: "its thread stopped".into() }),
        }
    }

    fn send(&self, batch: Vec<Checkpoint>) {
        if !batch.is_empty() && self.batches.send(batch).is_err() {
            warn!("the store writer has stopped: a checkpoint is lost");
        }
    }

    /// Saves what is still queued and stops the thread.
    fn stop(self) {
        drop(self.batches);
        if self.thread.join().is_err() {
            warn!("the store writer panicked");
        }
    }
}

/// Saves batches as they come until the channel closes, keeping what failed for a
/// later attempt; at the close, one last attempt at whatever is left. While the store
/// fails (down, or its disk full) the batches that keep coming are folded in and tried
/// again only after a wait that doubles up to [`RETRY_AT_MOST_AFTER`], so a store in
/// trouble is not hammered every tick, nor the log filled (the disk may be the same).
async fn write_batches(store: Store, mut received: mpsc::UnboundedReceiver<Vec<Checkpoint>>, stats: &ServerStats) {
    let mut unsaved = BTreeMap::new();
    let mut backoff = Backoff::new(RETRY_AFTER, RETRY_AT_MOST_AFTER);
    // When the next attempt is due after a failure; none while the store takes them.
    let mut retry_at: Option<Instant> = None;
    loop {
        let next = match retry_at {
            None => Ok(received.recv().await),
            Some(at) => tokio::time::timeout_at(at, received.recv()).await,
        };
        let closed = matches!(next, Ok(None));
        if let Ok(Some(batch)) = next {
            merge(&mut unsaved, batch);
        }
        while let Ok(batch) = received.try_recv() {
            merge(&mut unsaved, batch);
        }
        let due = retry_at.is_none_or(|at| Instant::now() >= at);
        if !unsaved.is_empty() && (due || closed) {
            let batch: Vec<Checkpoint> = unsaved.values().copied().collect();
            match store.save(&batch).await {
                Ok(_) => {
                    stats.checkpoints_saved.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    unsaved.clear();
                    if retry_at.take().is_some() {
                        info!("saved {} players: the player store takes checkpoints again", batch.len());
                    }
                    backoff.reset();
                }
                Err(err) => {
                    stats.checkpoint_failures.fetch_add(1, Ordering::Relaxed);
                    let wait = backoff.next_wait();
                    retry_at = Some(Instant::now() + wait);
                    match closed {
                        false => warn!("could not save {} players (trying again in {wait:?}): {err}", batch.len()),
                        true => warn!("stopping with {} players' last moves unsaved: {err}", batch.len()),
                    }
                }
            }
        }
        if closed {
            return;
        }
    }
}

/// Folds `batch` into what is waiting to be saved: each player's latest position and
/// time seen, and the time played of both.
fn merge(unsaved: &mut BTreeMap<UserId, Checkpoint>, batch: Vec<Checkpoint>) {
    for checkpoint in batch {
        unsaved
            .entry(checkpoint.id)
            .and_modify(|waiting| {
                let played = waiting.played_delta_ms.saturating_add(checkpoint.played_delta_ms);
                *waiting = Checkpoint { played_delta_ms: played, ..checkpoint };
            })
            .or_insert(checkpoint);
    }
}

pub struct CheckpointsPlugin;

impl Plugin for CheckpointsPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<Leavers>()
            .add_observer(start_counting)
            .add_observer(save_on_leaving)
            .add_systems(PostUpdate, save_due)
            .add_systems(Last, save_everyone_and_stop.run_if(on_message::<AppExit>));
    }
}

/// A player that came in (a login, a handoff) has played nothing here yet.
fn start_counting(added: On<Add, Player>, tick: Res<SimulationTick>, mut commands: Commands) {
    commands.entity(added.entity).insert(LastCheckpoint(tick.0));
}

/// A player leaving this server (logout, handoff, takeover, lost proxy) is saved where
/// it left, with the tick's batch: the next owner, or the next login, carries on from there.
fn save_on_leaving(
    removed: On<Remove, Player>,
    players: Query<(&UserId, &Position, &LastCheckpoint)>,
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    leavers: Option<ResMut<Leavers>>,
) {
    // None once the last batch went at shutdown: who is still here then was in it.
    if let (Some(mut leavers), Ok(player)) = (leavers, players.get(removed.entity)) {
        leavers.0.push(checkpoint(player, tick.0, &settings, now_ms()));
    }
}

/// At the end of each tick, those who left in it; every interval, everyone here too.
fn save_due(
    mut players: Query<(&UserId, &Position, &mut LastCheckpoint)>,
    tick: Res<SimulationTick>,
    settings: Res<ServerSettings>,
    writer: Res<StoreWriter>,
    mut leavers: ResMut<Leavers>,
    mut last_due: Local<u64>,
) {
    // Those who left first, as in any batch: one who came back since is saved as it is now.
    let mut batch = std::mem::take(&mut leavers.0);
    let every = settings.checkpoint_ticks();
    // Staggered by server id, so the servers of a cluster take turns at the store.
    let due = (tick.0 + u64::from(settings.id.0)) / every;
    if due != *last_due {
        *last_due = due;
        batch.extend(take_checkpoints(&mut players, tick.0, &settings));
    }
    writer.send(batch);
}

fn take_checkpoints(
    players: &mut Query<(&UserId, &Position, &mut LastCheckpoint)>,
    tick: u64,
    settings: &ServerSettings,
) -> Vec<Checkpoint> {
    let now = now_ms();
    let mut batch = Vec::new();
    for (user, position, mut last) in players.iter_mut() {
        batch.push(checkpoint((user, position, &*last), tick, settings, now));
        last.0 = tick;
    }
    batch
}

fn checkpoint(
    (user, position, last): (&UserId, &Position, &LastCheckpoint),
    tick: u64,
    settings: &ServerSettings,
    now_ms: u64,
) -> Checkpoint {
    let played = settings.tick().saturating_mul(u32::try_from(tick.saturating_sub(last.0)).unwrap_or(u32::MAX));
    let played_delta_ms = u32::try_from(played.as_millis()).unwrap_or(u32::MAX);
    Checkpoint { id: *user, position: position.0, last_seen_ms: now_ms, played_delta_ms }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// At shutdown, the last thing of the app's last frame: saves every player still here
/// and those who left since the last batch, waits for the writer to finish, and stops it.
fn save_everyone_and_stop(world: &mut World, everyone: &mut SystemState<Everyone>) {
    let Some(writer) = world.remove_resource::<StoreWriter>() else { return };
    let leavers = world.remove_resource::<Leavers>().unwrap_or_default();
    let (mut players, tick, settings) =
        everyone.get_mut(world).expect("a server has a tick and settings from its start");
    // Those who left first: one who came back since is saved as it is now.
    let mut batch = leavers.0;
    batch.extend(take_checkpoints(&mut players, tick.0, &settings));
    info!("saving the players here before stopping: {}", batch.len());
    writer.send(batch);
    writer.stop();
}

/// What saving everyone reads: every player, the tick, the settings.
type Everyone = (
    Query<'static, 'static, (&'static UserId, &'static Position, &'static mut LastCheckpoint)>,
    Res<'static, SimulationTick>,
    Res<'static, ServerSettings>,
);

#[cfg(test)]
mod tests {
    use super::*;

    fn at(id: u64, x: f32, played_delta_ms: u32) -> Checkpoint {
        Checkpoint { id: UserId(id), position: Vec2::new(x, 0.0), last_seen_ms: x as u64, played_delta_ms }
    }

    #[test]
    fn batches_waiting_to_be_saved_keep_the_latest_place_and_all_the_time_played() {
        let mut unsaved = BTreeMap::new();
        merge(&mut unsaved, vec![at(1, 10.0, 5_000), at(2, 20.0, 5_000)]);
        merge(&mut unsaved, vec![at(1, 11.0, 5_000)]);
        merge(&mut unsaved, vec![at(1, 12.0, u32::MAX)]);
        assert_eq!(unsaved.len(), 2);
        assert_eq!(unsaved[&UserId(1)], at(1, 12.0, u32::MAX), "the latest place; time played saturates");
        assert_eq!(unsaved[&UserId(2)], at(2, 20.0, 5_000));
        merge(&mut unsaved, vec![at(2, 21.0, 1_000)]);
        assert_eq!(unsaved[&UserId(2)], at(2, 21.0, 6_000));
    }
}
