//! A player's connection to a proxy: the handshake and the join (the player's key signs
//! the proxy's challenge), the welcome, then key presses and chat lines out (the presses
//! by datagram once updates come so, each until acknowledged) and updates and chat lines
//! in, folded into a [`WorldView`]. [`Rejoin`] is the one way anything joins
//! a cluster, and joins again after a loss: a proxy picked at random at each attempt, a
//! [`Backoff`] between failures, a longer one while the cluster says it is full.
//! Nothing the proxy sends is used unchecked: its welcome must be its own and sane
//! ([`verify::welcome`]), each update possible for it, each chat line clean, and no
//! update may claim inputs applied that were never sent.

use crate::conditioner::Conditioner;
use crate::datagram_hub::DatagramHubs;
use crate::datagrams::{Arrived, Losses, UpdateDatagrams};
use crate::prediction::{InputClock, Prediction, Reconciled};
use crate::steering::keys_toward;
use crate::world_view::{OthersMoved, WorldView};
use rand::seq::IndexedRandom;
use std::collections::VecDeque;
use std::time::Duration;
use tessera_shared::Vec2;
use tessera_shared::chat::clean_chat;
use tessera_shared::components::Keys;
use tessera_shared::identity::{Identity, JoinChallenge};
use tessera_shared::link::alarm::{Alarm, Silence};
use tessera_shared::link::{Backoff, Door, Link, LinkError, PLAYER_HEARTBEAT_EVERY, Traffic};
use tessera_shared::protocol::datagram::{DatagramError, DatagramInputs, INPUT_RESEND_AFTER, MOST_INPUTS_A_DATAGRAM};
use tessera_shared::protocol::handshake::{HandshakeError, JoinRequest};
use tessera_shared::protocol::verify::{self, Violation};
use tessera_shared::protocol::{
    CLUSTER_FULL, ChatChannel, ClientToProxy, Hello, Input, MAX_PENDING_INPUTS, OthersKept, PackedUpdate,
    ProxyToClient, Role, SIGNED_IN_AGAIN, SessionTicket, TICKS_WALKED_AGAIN, UpdateUnpacker, Welcome, tick_seconds,
};

/// How long a proxy has to welcome a new player.
pub const WELCOME_TIMEOUT: Duration = Duration::from_secs(10);
/// The first wait before asking a full cluster again: room is made by players leaving,
/// which takes seconds, not the tenth of a second a starting cluster takes.
pub const FULL_FIRST_WAIT: Duration = Duration::from_secs(2);
/// The longest wait between asking a full cluster again.
pub const FULL_MAX_WAIT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error("cannot reach {addr}: {source}")]
    Connect { addr: String, source: std::io::Error },
    #[error(transparent)]
    Link(#[from] LinkError),
    #[error("updates by datagram: {0}")]
    Datagram(#[from] DatagramError),
    #[error("the proxy disconnected us: {0}")]
    Disconnected(String),
    /// The name asked for is another player's, or breaks the name rule: asking again
    /// under it is pointless.
    #[error("{0}")]
    NameRefused(String),
    /// The session asked to be resumed is nowhere now: join anew.
    #[error("the session to resume is gone")]
    SessionGone,
    /// The same player signed in again somewhere else, and plays there now.
    #[error("{}", SIGNED_IN_AGAIN)]
    SignedInAgain,
    /// The proxy has all the players it may take.
    #[error("the cluster is full")]
    ClusterFull,
    #[error("no welcome within {0:?}")]
    NoWelcome(Duration),
    #[error("timed out after {0:?} waiting for: {1}")]
    Timeout(Duration, String),
}

impl From<Violation> for PlayerError {
    fn from(violation: Violation) -> Self {
        Self::Link(violation.into())
    }
}

/// A connected player.
pub struct Player {
    link: Link<ProxyToClient>,
    /// The proxy it plays through.
    pub proxy_address: String,
    pub welcome: Welcome,
    next_seq: u32,
    keys: Keys,
    pub view: WorldView,
    /// Since the player last sent anything on its link, or had an input it sent by
    /// datagram acknowledged (its proxy heard it): a heartbeat is due after
    /// [`PLAYER_HEARTBEAT_EVERY`].
    silence: Silence,
    /// What wakes it for a heartbeat, a bind, or giving up on datagrams (the trial over,
    /// or updates stopped), when nothing else does.
    alarm: Alarm,
    /// Inputs sent and not yet acknowledged, oldest first: sent again if the session is
    /// resumed through another proxy, and by the link if they went by datagram alone
    /// and stay unacknowledged.
    unacked: VecDeque<Unacked>,
    /// Whether the session was just resumed: the first update says what the server
    /// applied, and the rest of `unacked` is sent again.
    resending: bool,
    /// Whether the latest update's state was without an input pressed by its tick (and
    /// so not checked against the prediction).
    without_an_input: bool,
    /// Where the player is, predicted from the keys it pressed.
    pub prediction: Prediction,
    /// What the latest update did to the prediction and to the others shown.
    pub smoothness: Smoothness,
    /// The player's end of its link: what unpacks each update.
    unpacker: UpdateUnpacker,
    /// When the latest update reached the player's host, as the kernel stamped the read
    /// that completed it ([`tessera_shared::link::arrival`]): at or after its arrival
    /// (the last bytes of that read), and `None` where the read was not stamped. A
    /// swarm's bots measure their echoes to it, so that what a frame waited for their
    /// shared thread is not counted as the cluster's.
    pub update_arrived: Option<std::time::Instant>,
    /// Its updates by datagram, if its proxy sends them so, a socket could be had, and
    /// they were not given up on.
    pub datagrams: Option<UpdateDatagrams>,
    /// The updates it found lost (sent by datagram), each made good by a full one.
    pub losses: Losses,
    /// Inputs sent again by the link, the datagrams that carried them lost.
    pub inputs_sent_again: u64,
    /// Datagrams of inputs sent again, an input found late ([`Player::resend_late_inputs`]).
    pub late_inputs_sent_again: u64,
}

/// What the latest update corrected: the player's predicted position (if there was a
/// prediction to check), and the others already shown; whether it came from a new
/// server (at a handoff); and whether an input reached the server later than its jitter
/// buffer allows, so that the server simulated the input's tick without it or stood the
/// player still waiting (see the server's input queue): a correction then is the link's
/// or the host's lateness, not a misprediction.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Smoothness {
    pub own: Option<f32>,
    pub others: OthersMoved,
    pub handoff: bool,
    pub late_input: bool,
}

/// How far the player's tick `your_tick`, which its state at the server's `tick` is as
/// of, runs ahead of that tick; it falls when an input late for its tick makes the server
/// stand the player still.
fn clock_lead(tick: u64, your_tick: Option<u32>) -> Option<i64> {
    let tick = i64::try_from(tick).ok()?;
    your_tick.map(|yours| i64::from(yours).saturating_sub(tick))
}

/// How a player joins: its connection, and its own clock, which its inputs are stamped
/// with and which carries on across every connection of the session.
#[derive(Debug, Clone, Copy)]
pub struct Joining<'a> {
    pub identity: &'a Identity,
    pub traffic: &'a Traffic,
    pub conditioner: Conditioner,
    pub clock_origin: std::time::Instant,
    /// Whether to take updates by datagram where the proxy offers them.
    pub datagrams: bool,
    /// Hubs to take them through, a socket shared with other players, rather than a
    /// socket of its own (a swarm's bots: [`crate::datagram_hub`]).
    pub hubs: Option<&'a DatagramHubs>,
    /// What it keeps of the others in view: their states, unless it never looks at them.
    pub others: OthersKept,
}

/// What it takes to resume a player's session after its connection was lost: the
/// ticket, the name it plays under, and where its inputs stand.
#[derive(Debug, Clone)]
pub struct Resumable {
    ticket: SessionTicket,
    name: String,
    next_seq: u32,
    keys: Keys,
    unacked: VecDeque<Unacked>,
}

/// An input sent and not acknowledged yet, and when it went by datagram, if only so.
#[derive(Debug, Clone, Copy)]
struct Unacked {
    input: Input,
    by_datagram_at: Option<std::time::Instant>,
    /// Sent again by datagram, found late ([`Player::resend_late_inputs`]).
    sent_again_late: bool,
}

impl Player {
    /// Connects to the proxy at `addr` as the holder of `identity`, asking to be called
    /// `name` (a player that has a name keeps it), and waits for its welcome, adding
    /// every byte in and out to `traffic`.
    pub async fn connect(addr: &str, identity: &Identity, name: &str, traffic: &Traffic) -> Result<Self, PlayerError> {
        let joining = Joining {
            identity,
            traffic,
            conditioner: Conditioner::default(),
            clock_origin: std::time::Instant::now(),
            datagrams: true,
            hubs: None,
            others: OthersKept::States,
        };
        Self::join(addr, joining, name, None).await
    }

    /// Joins through the proxy at `addr` as `joining` says, asking to be called `name`,
    /// or resuming the session of `resume` (lost with its proxy) if it is still
    /// somewhere: the same place, view and input sequence. A session gone is
    /// [`PlayerError::SessionGone`]: join anew.
    pub async fn join(
        addr: &str,
        joining: Joining<'_>,
        name: &str,
        resume: Option<Resumable>,
    ) -> Result<Self, PlayerError> {
        let Joining { identity, traffic, conditioner, clock_origin, datagrams, hubs, others } = joining;
        let name = resume.as_ref().map_or(name, |resume| resume.name.as_str());
        let (stream, proxy_address) =
            conditioner.connect(addr).await.map_err(|source| PlayerError::Connect { addr: addr.into(), source })?;
        let hello = Hello::new(Role::Client);
        let (mut link, proxy) = match Link::<JoinChallenge>::open(stream, Door::Public, hello, Some(traffic)).await? {
            (link, Role::Proxy(proxy)) => (link, proxy),
            (_, got) => return Err(LinkError::from(HandshakeError::Role { expected: "a proxy", got }).into()),
        };
        let challenge = match tokio::time::timeout(WELCOME_TIMEOUT, link.recv()).await {
            Err(_) => return Err(PlayerError::NoWelcome(WELCOME_TIMEOUT)),
            Ok(challenge) => challenge?,
        };
        let ticket = resume.as_ref().map(|resume| resume.ticket.clone());
        link.send(JoinRequest::sign(identity, &challenge, name, ticket)).await?;
        let mut link = link.retype::<ProxyToClient>().stamping_arrivals();
        let welcome = match tokio::time::timeout(WELCOME_TIMEOUT, link.recv()).await {
            Err(_) => return Err(PlayerError::NoWelcome(WELCOME_TIMEOUT)),
            Ok(message) => match message? {
                ProxyToClient::Welcome(welcome) => welcome,
                ProxyToClient::Disconnect { reason } if reason == CLUSTER_FULL => return Err(PlayerError::ClusterFull),
                ProxyToClient::Disconnect { reason } => return Err(PlayerError::Disconnected(reason)),
                ProxyToClient::NameRefused { reason } => return Err(PlayerError::NameRefused(reason)),
                ProxyToClient::SessionGone => return Err(PlayerError::SessionGone),
                ProxyToClient::Update(_) => {
                    return Err(Violation::OutOfOrder { what: "an update", when: "before the welcome" }.into());
                }
                ProxyToClient::RegionOffline => {
                    return Err(Violation::OutOfOrder { what: "a region offline", when: "before the welcome" }.into());
                }
                ProxyToClient::Chat(_) | ProxyToClient::ChatThrottled => {
                    return Err(Violation::OutOfOrder { what: "chat", when: "before the welcome" }.into());
                }
            },
        };
        verify::welcome(&welcome, proxy, identity.user())?;
        let tick_seconds = tick_seconds(welcome.tick_hz);
        let view = WorldView::new(tick_seconds);
        let prediction =
            Prediction::new(InputClock::new(clock_origin, tick_seconds), welcome.map.clone(), tick_seconds);
        let (next_seq, keys, unacked) = match resume.filter(|_| welcome.resumed) {
            Some(Resumable { next_seq, keys, unacked, .. }) => (next_seq, keys, unacked),
            None => (1, Keys::empty(), VecDeque::new()),
        };
        let resending = welcome.resumed;
        let unpacker = UpdateUnpacker::new(welcome.user.entity(), tick_seconds, others);
        let datagrams = match welcome.datagrams.filter(|_| datagrams) {
            Some(tag) => match UpdateDatagrams::open(proxy_address, tag, conditioner, hubs, traffic).await {
                Ok(datagrams) => Some(datagrams),
                Err(error) => {
                    tracing::warn!("updates come by TCP only: no UDP socket ({error})");
                    None
                }
            },
            None => None,
        };
        Ok(Self {
            link,
            proxy_address: addr.into(),
            welcome,
            next_seq,
            keys,
            view,
            silence: Silence::new(PLAYER_HEARTBEAT_EVERY),
            alarm: Alarm::default(),
            unacked,
            resending,
            without_an_input: false,
            prediction,
            smoothness: Smoothness::default(),
            unpacker,
            update_arrived: None,
            datagrams,
            losses: Losses::default(),
            inputs_sent_again: 0,
            late_inputs_sent_again: 0,
        })
    }

    /// What resumes this session through another proxy, should this connection be lost.
    pub fn resumable(&self) -> Resumable {
        Resumable {
            ticket: self.welcome.ticket.clone(),
            name: self.welcome.name.clone(),
            next_seq: self.next_seq,
            keys: self.keys,
            unacked: self.unacked.clone(),
        }
    }

    /// Holds down exactly `keys` from now on, returning the input's sequence number.
    pub async fn press(&mut self, keys: Keys) -> Result<u32, PlayerError> {
        self.press_at(keys, std::time::Instant::now()).await
    }

    /// Holds down exactly `keys` from the player's tick in progress at `at` on (when
    /// they were pressed), returning the input's sequence number.
    pub async fn press_at(&mut self, keys: Keys, at: std::time::Instant) -> Result<u32, PlayerError> {
        let seq = self.next_seq;
        let tick = self.prediction.press(keys, at);
        let input = Input { seq, keys, tick };
        let now = std::time::Instant::now();
        let by_datagram_at = self.send_by_datagram(Some(input), now).then_some(now);
        if by_datagram_at.is_none() {
            self.link.send(ClientToProxy::Input(input)).await?;
            self.silence.broken();
        }
        if self.unacked.len() == MAX_PENDING_INPUTS {
            // More than a server would hold for it anyway.
            self.unacked.pop_front();
        }
        self.unacked.push_back(Unacked { input, by_datagram_at, sent_again_late: false });
        self.next_seq += 1;
        self.keys = keys;
        Ok(seq)
    }

    /// Sends by datagram at `now` the latest inputs not acknowledged yet, then `and` (a
    /// new one), as many as one datagram carries, if updates come so (the proxy has the
    /// player's address, and UDP passes both ways) and no resend by the link is under
    /// way: whether it went.
    fn send_by_datagram(&mut self, and: Option<Input>, now: std::time::Instant) -> bool {
        let Some(datagrams) =
            self.datagrams.as_mut().filter(|datagrams| datagrams.takes_inputs(now) && !self.resending)
        else {
            return false;
        };
        let room = MOST_INPUTS_A_DATAGRAM - usize::from(and.is_some());
        let before = self.unacked.iter().rev().take(room).rev().map(|unacked| unacked.input);
        let inputs: DatagramInputs = before.chain(and).collect();
        datagrams.send_inputs(&inputs)
    }

    /// Sends again by datagram, once, the latest inputs not acknowledged yet when an
    /// update says its server simulated the tick of one that went by datagram alone
    /// (the player's `your_tick` is at or past it) without it: that datagram was lost,
    /// most likely, or is late (the proxy forwards each input once). Otherwise a key
    /// press lost on its way waited for the player's next press, which carries it too,
    /// or for [`INPUT_RESEND_AFTER`] to go by the link (BENCHMARKS.md). Where nothing is
    /// lost or late, nothing more is sent.
    fn resend_late_inputs(&mut self, your_tick: u32, now: std::time::Instant) {
        let late = |unacked: &Unacked| {
            unacked.by_datagram_at.is_some() && !unacked.sent_again_late && unacked.input.tick <= your_tick
        };
        if !self.unacked.iter().any(late) {
            return;
        }
        if self.send_by_datagram(None, now) {
            let sent = self.unacked.iter_mut().rev().take(MOST_INPUTS_A_DATAGRAM);
            sent.for_each(|unacked| unacked.sent_again_late = true);
            self.late_inputs_sent_again += 1;
        }
    }

    /// Sends again by the link each input that went by datagram alone
    /// [`INPUT_RESEND_AFTER`] or more before an update that arrived at `arrived` and did
    /// not acknowledge it: the datagram, and any after it that carried the input, were lost.
    async fn resend_lost_inputs(&mut self, arrived: std::time::Instant) -> Result<(), PlayerError> {
        let lost = |unacked: &Unacked| {
            unacked.by_datagram_at.is_some_and(|at| arrived.saturating_duration_since(at) >= INPUT_RESEND_AFTER)
        };
        for unacked in self.unacked.iter_mut().filter(|unacked| lost(unacked)) {
            self.link.send(ClientToProxy::Input(unacked.input)).await?;
            self.silence.broken();
            unacked.by_datagram_at = None;
            self.inputs_sent_again += 1;
        }
        Ok(())
    }

    /// Says `text` on `channel`, cleaned and cut to the chat rule first
    /// (`tessera_shared::chat`), so the proxy never refuses it. Whether there was anything
    /// left to say: a line of only spaces or invisible characters is not sent. The player
    /// hears its own line when its server says it ([`WorldView::chat`]).
    pub async fn say(&mut self, channel: ChatChannel, text: &str) -> Result<bool, PlayerError> {
        let text = clean_chat(text);
        if text.is_empty() {
            return Ok(false);
        }
        self.link.send(ClientToProxy::Chat { channel, text }).await?;
        self.silence.broken();
        Ok(true)
    }

    /// The keys held now.
    pub fn keys(&self) -> Keys {
        self.keys
    }

    /// The sequence number of the last input sent (0 before any).
    pub fn last_sent(&self) -> u32 {
        self.next_seq - 1
    }

    /// Receives one message (an update, a chat line) and folds it into the view, sending
    /// heartbeats while it waits so the proxy knows the player is there even when it
    /// presses nothing. A proxy
    /// silent for [`tessera_shared::link::SILENCE_LIMIT`] is gone: an error, like a closed connection.
    pub async fn receive(&mut self) -> Result<&WorldView, PlayerError> {
        let (message, by_datagram) = match self.datagrams.as_mut().and_then(UpdateDatagrams::in_turn) {
            Some((update, arrived)) => (ProxyToClient::Update(update), Some(arrived)),
            None => loop {
                // One alarm for the heartbeat and the datagrams' binds and give-up: a
                // bot's every wake polls each alarm it waits on.
                let offline = self.view.region_offline;
                let datagrams_due = self.datagrams.as_ref().map(|datagrams| datagrams.due_at(offline));
                let due = datagrams_due
                    .map(tokio::time::Instant::from_std)
                    .map_or(self.silence.ends(), |due| due.min(self.silence.ends()));
                tokio::select! {
                    biased;
                    // Datagrams first: one that overtook an update by the link is held
                    // until that update is in, but an update by the link read before a
                    // datagram sent ahead of it (both waiting, the player's thread busy)
                    // would make that datagram a loss.
                    update = next_datagram(&mut self.datagrams) => match update {
                        Ok((update, arrived)) => {
                            // Proof of the proxy's life, as a frame on the link is: the
                            // proxy writes to the link seldom while updates come so.
                            self.link.heard();
                            break (ProxyToClient::Update(update), Some(arrived));
                        }
                        Err(DatagramError::Io(error)) => self.give_up_datagrams(&error.to_string()).await?,
                        Err(error) => return Err(error.into()),
                    },
                    message = self.link.recv() => {
                        let message = message?;
                        if let (ProxyToClient::Update(_), Some(datagrams)) = (&message, &mut self.datagrams) {
                            datagrams.came_by_link();
                        }
                        break (message, None);
                    }
                    () = self.alarm.ring_at(due) => {
                        if tokio::time::Instant::now() >= self.silence.ends() {
                            self.link.send_heartbeat().await?;
                            self.silence.broken();
                        }
                        self.look_after_datagrams().await?;
                    }
                }
            },
        };
        self.look_after_datagrams().await?;
        let now = std::time::Instant::now();
        match message {
            ProxyToClient::Update(packed) => {
                let Some(mut update) = self.unpack(packed, now).await? else { return Ok(&self.view) };
                while self.unacked.front().is_some_and(|unacked| unacked.input.seq <= update.last_input) {
                    if self.unacked.pop_front().is_some_and(|acked| acked.by_datagram_at.is_some()) {
                        // The proxy heard it, as it would a heartbeat: since it was sent.
                        self.silence.broken();
                    }
                }
                self.update_arrived = by_datagram.unwrap_or_else(|| self.link.last_arrival());
                let (you, your_tick) = (update.you, update.your_tick);
                let handoffs = self.view.handoffs;
                // An input late for its tick: the server's state is as of a tick at or
                // past that of an input still unapplied (the server went on without it,
                // and walks those ticks again once it comes), or the one before was (a
                // correction now is what an input too late for that did), or the
                // server's clock for the player slipped (it stood the player still
                // until the input came).
                let leads = (clock_lead(self.view.tick, self.view.your_tick), clock_lead(update.tick, your_tick));
                let unapplied = your_tick.and_then(|yours| {
                    let oldest = self.unacked.iter().find(|unacked| unacked.input.tick <= yours)?;
                    Some(yours - oldest.input.tick)
                });
                let without_an_input = unapplied.is_some_and(|behind| behind < TICKS_WALKED_AGAIN);
                let late_input = unapplied.is_some()
                    || std::mem::replace(&mut self.without_an_input, without_an_input)
                    || (self.view.server == Some(update.server)
                        && matches!(leads, (Some(before), Some(now)) if now < before));
                let was_offline = self.view.region_offline;
                let others = self.view.apply(&mut update, &self.welcome, now)?;
                if let Some(datagrams) = self.datagrams.as_mut().filter(|_| was_offline && !self.view.region_offline) {
                    // Back: the updates that stopped with the region say nothing of datagrams.
                    datagrams.start_again(now);
                }
                self.unpacker.recycle(update);
                // A state without an input is not checked against the prediction: the
                // server walks those ticks again once the input comes (and a later state
                // shows what one too late for that did).
                let own = if without_an_input {
                    None
                } else {
                    match self.prediction.reconcile(&you, your_tick, now) {
                        Reconciled::Corrected(off) => Some(off),
                        Reconciled::Reset => None,
                    }
                };
                let handoff = self.view.handoffs > handoffs;
                self.smoothness = Smoothness { own, others, handoff, late_input };
                if self.resending {
                    // The server's first word since the session resumed: what it never
                    // got goes again, in order (it applies each exactly once), and then
                    // the keys held now, which a server that stopped the player waiting
                    // for it does not have. Done only once all of it went: a receive
                    // dropped halfway (callers wait on it beside other things) sends it
                    // all again with the next update, which the server takes once.
                    for unacked in self.unacked.clone() {
                        self.link.send(ClientToProxy::Input(unacked.input)).await?;
                    }
                    self.unacked.iter_mut().for_each(|unacked| unacked.by_datagram_at = None);
                    self.press(self.keys).await?;
                    self.resending = false;
                }
                if let Some(yours) = your_tick {
                    self.resend_late_inputs(yours, now);
                }
                // After the update is folded in (a receive dropped while this waits on the
                // link loses nothing), and as of when it arrived: a player reading late
                // (a busy host, a hitch) finds its acknowledgements late, not its
                // datagrams lost.
                self.resend_lost_inputs(self.update_arrived.unwrap_or(now)).await?;
                Ok(&self.view)
            }
            ProxyToClient::Disconnect { reason } if reason == SIGNED_IN_AGAIN => Err(PlayerError::SignedInAgain),
            ProxyToClient::Disconnect { reason } => Err(PlayerError::Disconnected(reason)),
            ProxyToClient::NameRefused { .. } => {
                Err(Violation::OutOfOrder { what: "a name refused", when: "after the welcome" }.into())
            }
            ProxyToClient::SessionGone => Err(PlayerError::SessionGone),
            ProxyToClient::RegionOffline => {
                // Once it is back, what it did not apply goes again, as after a resume.
                self.view.region_offline = true;
                self.resending = true;
                Ok(&self.view)
            }
            ProxyToClient::Welcome(_) => Err(Violation::OutOfOrder { what: "a welcome", when: "twice" }.into()),
            ProxyToClient::Chat(line) => {
                self.view.hear(line)?;
                Ok(&self.view)
            }
            ProxyToClient::ChatThrottled => {
                self.view.chat.throttled += 1;
                Ok(&self.view)
            }
        }
    }

    /// Binds again for updates by datagram if a bind is due, or gives up on them if
    /// they fail to come.
    async fn look_after_datagrams(&mut self) -> Result<(), PlayerError> {
        let now = std::time::Instant::now();
        let Some(datagrams) = &mut self.datagrams else { return Ok(()) };
        if datagrams.failing(now, self.view.region_offline) {
            let why = if datagrams.flowing() { "updates stopped coming" } else { "none came" };
            return self.give_up_datagrams(why).await;
        }
        datagrams.keep_bound(now);
        Ok(())
    }

    /// Plays on by the link alone: updates by datagram do not reach the player (`why`).
    /// The proxy is told so, and starts it over with a full update by the link: what went
    /// by datagram since the last that came was lost. The player is ready for that before
    /// it says so, should the saying be dropped halfway (a receive is waited on beside
    /// other things).
    async fn give_up_datagrams(&mut self, why: &str) -> Result<(), PlayerError> {
        tracing::info!("{}: updates by TCP from now on: by datagram, {why}", self.welcome.name);
        self.datagrams = None;
        self.unpacker.start_over();
        self.losses.lost(std::time::Instant::now());
        self.link.send(ClientToProxy::NoDatagrams).await?;
        self.silence.broken();
        Ok(())
    }

    /// `packed` unpacked against the updates before it, checked against the inputs sent;
    /// `None` if it cannot be, for an update before it was lost (updates by datagram may
    /// be, and the last of a server's before a handoff, which its proxy drops if the new
    /// server's overtook it): a full one is asked for, and what comes until it does is
    /// dropped. Where updates may be lost, any update that cannot be unpacked is taken
    /// for one after a loss: which update a lost one was cannot be known.
    async fn unpack(
        &mut self,
        packed: PackedUpdate,
        now: std::time::Instant,
    ) -> Result<Option<tessera_shared::protocol::PlayerUpdate>, PlayerError> {
        let lossy = self.datagrams.is_some() || self.losses.awaiting();
        let update = match self.unpacker.unpack(packed) {
            Ok(update) => {
                if update.full {
                    self.losses.made_good();
                }
                update
            }
            Err(Violation::BadPacking(problem)) if lossy || problem.is_loss() => {
                self.unpacker.start_over();
                if self.losses.lost(now) && (self.datagrams.is_some() || problem.is_loss()) {
                    self.link.send(ClientToProxy::Resync).await?;
                    self.silence.broken();
                }
                return Ok(None);
            }
            Err(violation) => return Err(violation.into()),
        };
        let sent = self.last_sent();
        if update.last_input > sent {
            return Err(Violation::InputFromTheFuture { last_input: update.last_input, sent }.into());
        }
        Ok(Some(update))
    }

    /// Where the player is now: as predicted once it has pressed anything, else where its
    /// server last said.
    pub fn position(&self) -> Option<Vec2> {
        self.position_at(std::time::Instant::now())
    }

    /// Where the player is at `at`, as [`Player::position`]: an instant of the tick in
    /// progress or later (the prediction walks on from its last tick).
    pub fn position_at(&self, at: std::time::Instant) -> Option<Vec2> {
        self.prediction.position_at(at).or(self.view.me.map(|me| me.position))
    }

    /// Walks to `target`, steering as a person would (keys only when the direction
    /// changes), calling `check` on every update on the way; then stops there and waits
    /// until the stop is applied. Where the server says the player stopped short (an
    /// input late for its tick stands a player still), it walks on from there.
    pub async fn walk_to(
        &mut self,
        target: Vec2,
        timeout: Duration,
        mut check: impl FnMut(&WorldView),
    ) -> Result<(), PlayerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            self.walk_through(target, left, |player| check(&player.view)).await?;
            let stop = self.press(Keys::empty()).await?;
            self.wait_until(timeout, "the stop applied", |view| view.last_input >= stop).await?;
            check(&self.view);
            let stopped_at = self.view.me.expect("walked after a first update").position;
            if keys_toward(stopped_at, target).is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PlayerError::Timeout(timeout, format!("reaching {target}")));
            }
        }
    }

    /// Walks until it is at `target`, steering as a person would (keys only when the
    /// direction changes), calling `check` on every update on the way, and goes on
    /// holding the keys that took it there (a route's next leg picks up from them). It
    /// looks where it is every tick, as updates may come ticks apart (nothing new to say,
    /// or a busy server spreading them): one that looked only as each came could pass
    /// its target between two, turn, and pass it again.
    pub async fn walk_through(
        &mut self,
        target: Vec2,
        timeout: Duration,
        mut check: impl FnMut(&Self),
    ) -> Result<(), PlayerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        self.wait_until(timeout, "a first update", |view| view.me.is_some()).await?;
        let tick = Duration::from_secs_f32(self.view.tick_seconds);
        loop {
            let me = self.position().expect("waited for a first update");
            let keys = keys_toward(me, target);
            if keys.is_empty() {
                return Ok(());
            }
            if keys != self.keys {
                self.press(keys).await?;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(PlayerError::Timeout(timeout, format!("reaching {target} from {me}")));
            }
            if let Ok(received) = tokio::time::timeout(tick, self.receive()).await {
                received?;
                check(self);
            }
        }
    }

    /// Receives until `done` holds for the view, or `timeout` passes.
    pub async fn wait_until(
        &mut self,
        timeout: Duration,
        what: &str,
        mut done: impl FnMut(&WorldView) -> bool,
    ) -> Result<(), PlayerError> {
        let waiting = async {
            while !done(&self.view) {
                self.receive().await?;
            }
            Ok(())
        };
        tokio::time::timeout(timeout, waiting).await.map_err(|_| PlayerError::Timeout(timeout, what.into()))?
    }
}

/// The next update by datagram in its turn, if updates come so; otherwise never.
async fn next_datagram(datagrams: &mut Option<UpdateDatagrams>) -> Result<Arrived, DatagramError> {
    match datagrams {
        Some(datagrams) => datagrams.next().await,
        None => std::future::pending().await,
    }
}

/// Joining a cluster, and joining it again after a loss: each attempt goes through a
/// proxy picked at random (as the design has clients spread over proxies), never the one
/// that just failed or was lost while there are others, and failures
/// wait a [`Backoff`], so a cluster that is starting or down is not hammered. A full
/// cluster is waited for with a backoff of its own, from [`FULL_FIRST_WAIT`] to
/// [`FULL_MAX_WAIT`], so the players queueing for room ask a few times a minute at most.
/// A name refused is final: no attempt is made again under it. After a connection is
/// lost, given what resumes it ([`Rejoin::resume_with`]), the next attempts resume the
/// session (at once: the proxy was lost, not the cluster), until it is found gone.
#[derive(Debug, Clone)]
pub struct Rejoin {
    proxies: Vec<String>,
    identity: Identity,
    name: String,
    resume: Option<Resumable>,
    traffic: Traffic,
    backoff: Backoff,
    full_backoff: Backoff,
    /// Whether the last attempt found the cluster full.
    found_full: bool,
    /// The proxy that failed last, or whose connection was lost: tried again only when
    /// it is the only one.
    avoid: Option<String>,
    /// What the player's link goes through.
    conditioner: Conditioner,
    /// Where the player's own clock starts: every connection of it counts from here.
    clock_origin: std::time::Instant,
    /// Whether its connections take updates by datagram where offered.
    datagrams: bool,
    /// The hubs they take them through, if not a socket each.
    hubs: Option<DatagramHubs>,
    /// What its connections keep of others.
    others: OthersKept,
}

impl Rejoin {
    /// Joins as the holder of `identity`, asking for `name`, through one of `proxies`
    /// (client addresses; at least one).
    pub fn new(proxies: Vec<String>, identity: Identity, name: impl Into<String>) -> Self {
        assert!(!proxies.is_empty(), "a cluster has at least one proxy");
        Self {
            proxies,
            identity,
            name: name.into(),
            resume: None,
            traffic: Traffic::default(),
            backoff: Backoff::default(),
            full_backoff: Backoff::new(FULL_FIRST_WAIT, FULL_MAX_WAIT),
            found_full: false,
            avoid: None,
            conditioner: Conditioner::default(),
            clock_origin: std::time::Instant::now(),
            datagrams: true,
            hubs: None,
            others: OthersKept::States,
        }
    }

    /// Takes every update by the link, never by datagram: one socket a connection.
    pub fn by_link_only(mut self) -> Self {
        self.datagrams = false;
        self
    }

    /// Takes updates by datagram through a seat on one of `hubs` (if the connection is
    /// not conditioned), not a socket each.
    pub fn sharing_datagrams(mut self, hubs: &DatagramHubs) -> Self {
        self.hubs = Some(hubs.clone());
        self
    }

    /// Keeps of the others in view only what `others` says (their states, by default).
    pub fn keeping(mut self, others: OthersKept) -> Self {
        self.others = others;
        self
    }

    /// Puts every connection through `conditioner`.
    pub fn conditioned(mut self, conditioner: Conditioner) -> Self {
        self.conditioner = conditioner;
        self
    }

    /// Adds every byte of every connection to `traffic`.
    pub fn counting(mut self, traffic: Traffic) -> Self {
        self.traffic = traffic;
        self
    }

    /// The proxy for the next attempt, at random, but for the one to avoid.
    pub fn pick_proxy(&self) -> String {
        let others: Vec<&String> = self.proxies.iter().filter(|&proxy| Some(proxy) != self.avoid.as_ref()).collect();
        match others.choose(&mut rand::rng()) {
            Some(proxy) => (*proxy).clone(),
            None => self.proxies[0].clone(),
        }
    }

    /// Resumes the session of `lost` (a player whose connection was lost) on the next
    /// attempts, rather than starting a new one.
    pub fn resume_with(&mut self, lost: &Player) {
        self.resume = Some(lost.resumable());
        self.avoid = Some(lost.proxy_address.clone());
        self.backoff.reset();
    }

    /// Whether the next attempt resumes a session.
    pub fn resuming(&self) -> bool {
        self.resume.is_some()
    }

    /// One attempt through `proxy`; a success resets the backoffs.
    pub async fn attempt(&mut self, proxy: &str) -> Result<Player, PlayerError> {
        let joining = Joining {
            identity: &self.identity,
            traffic: &self.traffic,
            conditioner: self.conditioner,
            clock_origin: self.clock_origin,
            datagrams: self.datagrams,
            hubs: self.hubs.as_ref(),
            others: self.others,
        };
        let attempt = Player::join(proxy, joining, &self.name, self.resume.clone()).await;
        self.found_full = matches!(attempt, Err(PlayerError::ClusterFull));
        if matches!(attempt, Ok(_) | Err(PlayerError::SessionGone)) {
            self.resume = None;
        }
        match attempt {
            Ok(_) => {
                self.backoff.reset();
                self.full_backoff.reset();
                self.avoid = None;
            }
            // A full proxy is no failed one: the others are likely as full.
            Err(PlayerError::ClusterFull) => {}
            Err(_) => self.avoid = Some(proxy.to_string()),
        }
        attempt
    }

    /// How long to wait after a failed attempt, or a lost connection: longer when the
    /// last attempt found the cluster full.
    pub fn next_wait(&mut self) -> Duration {
        if self.found_full { self.full_backoff.next_wait() } else { self.backoff.next_wait() }
    }

    /// Attempts until one succeeds, or until `patience` has passed: then the last
    /// attempt's error.
    pub async fn join_within(&mut self, patience: Duration) -> Result<Player, PlayerError> {
        let deadline = tokio::time::Instant::now() + patience;
        loop {
            let proxy = self.pick_proxy();
            match self.attempt(&proxy).await {
                Ok(player) => return Ok(player),
                Err(err @ PlayerError::NameRefused(_)) => return Err(err),
                Err(err) => {
                    let wait = self.next_wait();
                    if tokio::time::Instant::now() + wait > deadline {
                        return Err(err);
                    }
                    tracing::debug!("{} could not join through {proxy}: {err}; retrying in {wait:?}", self.name);
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}
