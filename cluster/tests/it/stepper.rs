//! The in-process harness: every server of a map as a Bevy app with no transport, each
//! proxy as its real routing table, and headless players folding updates into the real
//! `WorldView`, all exchanging messages in memory on manual time. Every message goes
//! through the real codec (so byte counts are the wire's) and every message a server
//! receives through the real `verify` gate, as over TCP (a link whose sender breaks
//! the protocol is cut, both ways, as TCP would; [`Stepper::send_as_peer`] plays a
//! hostile peer). One [`Stepper::step`] is one
//! tick of every server: tests are exact per tick and take milliseconds. In the spirit
//! of bevy_replicon's test apps and lightyear's stepper.

use bevy::prelude::*;
use bevy::time::TimeUpdateStrategy;
use bytes::BytesMut;
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;
use tessera_player::WorldView;
use tessera_player::prediction::{InputClock, Prediction, Reconciled};
use tessera_player::steering::keys_toward;
use tessera_proxy::ProxySettings;
use tessera_proxy::chat::ChatGate;
use tessera_proxy::client_links::admit;
use tessera_proxy::client_queue::ClientSink;
use tessera_proxy::join::Begin;
use tessera_proxy::routing::{RouteError, Routing};
use tessera_proxy::tickets::Tickets;
use tessera_server::ServerSettings;
use tessera_server::input_queue::InputQueue;
use tessera_server::net::{Forwarding, LinkId, NetEvent, NetEvents};
use tessera_server::players::Players;
use tessera_server::regions::ghosts::{Ghost, Ghosts};
use tessera_server::regions::subscriber::Subscriptions;
use tessera_server::tick::TickWallClock;
use tessera_shared::bridge::InboxSender;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::components::{Keys, Position};
use tessera_shared::framing::{Bounded, WireCodec, encoded_frame};
use tessera_shared::identity::PlayerKey;
use tessera_shared::ids::{EntityId, ProxyId, ServerId, UserId};
use tessera_shared::link::Outbound;
use tessera_shared::protocol::verify::{PeerRules, Violation};
use tessera_shared::protocol::{
    ChatChannel, EntityName, Input, OthersKept, PeerMessage, ProxyToClient, ProxyToServer, ServerToProxy,
    UpdateUnpacker, Welcome, tick_seconds, verify,
};
use tessera_shared::region_map::{CellId, RegionMap};
use tessera_shared::secret::ClusterSecret;
use tessera_store::StoreLocation;
use tokio::sync::mpsc;

/// A message through the real codec: what arrives, and its bytes on the wire.
fn over_the_wire<T: Serialize + DeserializeOwned + Bounded>(message: &T) -> (T, usize) {
    let frame = encoded_frame(message).expect("every message the cluster sends encodes");
    (decode_frame(&frame), frame.len())
}

fn decode_frame<T: DeserializeOwned + Bounded>(frame: &[u8]) -> T {
    use tokio_util::codec::Decoder;
    let mut bytes = BytesMut::from(frame);
    let message = WireCodec::<T>::default().decode(&mut bytes).expect("a frame the cluster sent decodes");
    assert!(bytes.is_empty(), "one message per frame");
    message.expect("a whole frame")
}

/// One direction of a link between two servers.
struct PeerLink {
    id: LinkId,
    queue: mpsc::Receiver<PeerMessage>,
}

struct SteppedServer {
    id: ServerId,
    app: App,
    events: InboxSender<NetEvent>,
    /// What the server queued for each proxy, and which link that is.
    to_proxies: BTreeMap<ProxyId, mpsc::Receiver<ServerToProxy>>,
    proxy_links: BTreeMap<ProxyId, LinkId>,
    /// What it queued for each peer it is linked to.
    to_peers: BTreeMap<ServerId, PeerLink>,
    /// Bytes it sent its peers, framed as on the wire.
    peer_bytes: u64,
    /// Whether what it sends proxies is held back, as a slow link holds it.
    holding: bool,
}

impl SteppedServer {
    fn deliver(&self, event: NetEvent) {
        if self.events.try_send(event).is_err() {
            panic!("{}'s inbox is full", self.id);
        }
    }

    /// Delivers what `proxy` sent as the TCP transport does: input for a player handed
    /// on goes on to its new owner first.
    fn deliver_from_proxy(&self, proxy: ProxyId, message: ProxyToServer) {
        self.deliver(self.app.world().resource::<Forwarding>().from_proxy(proxy, message));
    }
}

struct SteppedProxy {
    settings: ProxySettings,
    tickets: Tickets,
    routing: Routing,
    /// What the routing table queued for each server.
    to_servers: BTreeMap<ServerId, mpsc::Receiver<ProxyToServer>>,
}

/// A headless player: what its proxy queued for it, and what it made of it.
pub struct SteppedPlayer {
    pub proxy: usize,
    queue: ClientSink,
    welcome: Welcome,
    pub view: WorldView,
    /// Where it predicts itself, as a client does: what it steers by.
    prediction: Prediction,
    unpacker: UpdateUnpacker,
    pub keys: Keys,
    last_sent: u32,
    /// What its proxy makes of what it says.
    chat: ChatGate,
    /// Why the proxy disconnected it, if it did.
    pub disconnected: Option<String>,
    /// What its proxy sent it, in bytes on the wire.
    pub bytes_received: u64,
    /// The largest correction of its prediction its server's states made.
    pub largest_correction: f32,
    /// Each full update it was sent.
    pub full_updates: Vec<FullUpdate>,
    /// How many times it found an update lost and asked for a full one.
    pub asked_for_full: u32,
    /// Whether it asked for a full update (and its proxy is yet to be told), or waits for it.
    asking: bool,
    awaiting_full: bool,
}

/// A full update as it reached a player.
#[derive(Debug, Clone, Copy)]
pub struct FullUpdate {
    pub server: ServerId,
    /// On the wire.
    pub bytes: usize,
    /// Others it told of, and of those, how many it named (new to the player).
    pub others: usize,
    pub named: usize,
}

impl SteppedPlayer {
    /// The sequence number of the last input sent (0 before any).
    pub fn last_sent(&self) -> u32 {
        self.last_sent
    }

    pub fn position(&self) -> Vec2 {
        self.view.me.expect("the player has had an update").position
    }

    /// Folds what its proxy queued for it into its view and its prediction, as the
    /// player's tick beginning at `now` begins.
    pub fn drain(&mut self, now: std::time::Instant) {
        let player = self;
        while let Some(frame) = player.queue.next_frame() {
            player.bytes_received += frame.len() as u64;
            match decode_frame(&frame) {
                ProxyToClient::Welcome(_) => panic!("a second welcome"),
                ProxyToClient::Update(packed) => {
                    let mut update = match player.unpacker.unpack(packed) {
                        Ok(update) => update,
                        // As a client does: an update that cannot follow on from the last
                        // it has (the old server's last before a handoff, dropped by the
                        // proxy) is a loss; it asks for a full one, and waits for it.
                        Err(Violation::BadPacking(problem)) if problem.is_loss() || player.awaiting_full => {
                            player.unpacker.start_over();
                            if !player.awaiting_full {
                                (player.asking, player.awaiting_full) = (true, true);
                                player.asked_for_full += 1;
                            }
                            continue;
                        }
                        Err(violation) => panic!("{violation}"),
                    };
                    player.awaiting_full &= !update.full;
                    assert!(update.last_input <= player.last_sent, "inputs applied that were never sent");
                    if update.full {
                        let (others, named) = (update.changed.len(), update.names.len());
                        let full = FullUpdate { server: update.server, bytes: frame.len(), others, named };
                        player.full_updates.push(full);
                    }
                    let (you, your_tick) = (update.you, update.your_tick);
                    player
                        .view
                        .apply(&mut update, &player.welcome, now)
                        .unwrap_or_else(|violation| panic!("{violation}"));
                    if let Reconciled::Corrected(by) = player.prediction.reconcile(&you, your_tick, now) {
                        player.largest_correction = player.largest_correction.max(by);
                    }
                }
                ProxyToClient::Disconnect { reason } | ProxyToClient::NameRefused { reason } => {
                    player.disconnected = Some(reason)
                }
                ProxyToClient::SessionGone => player.disconnected = Some("its session is gone".into()),
                ProxyToClient::RegionOffline => player.view.region_offline = true,
                ProxyToClient::Chat(line) => {
                    player.view.hear(line).unwrap_or_else(|violation| panic!("{violation}"));
                }
                ProxyToClient::ChatThrottled => player.view.chat.throttled += 1,
            }
        }
    }
}

/// A whole cluster in memory, stepped one tick at a time.
pub struct Stepper {
    pub config: ClusterConfig,
    pub map: RegionMap,
    /// What every server's gate checks its peers against.
    rules: PeerRules,
    servers: Vec<SteppedServer>,
    proxies: Vec<SteppedProxy>,
    players: BTreeMap<UserId, SteppedPlayer>,
    /// Each player's key (made up: the stepper has no proxy that checks one).
    keys: BTreeMap<UserId, PlayerKey>,
    issued: u64,
    /// Ticks stepped so far.
    pub ticks: u64,
    /// When the stepper's first tick began, on its players' clocks: their tick `n`
    /// begins `n` ticks after it, whatever the wall clock says.
    origin: std::time::Instant,
}

impl Stepper {
    /// The default map (2×2 regions, 4 servers, 2 proxies), every link up.
    pub fn default_cluster() -> Self {
        Self::new(ClusterConfig::default_local(), false)
    }

    /// Every server and proxy of `config`, every link up; with `broadcast_baseline`,
    /// servers subscribe to everything and send every player everything.
    pub fn new(config: ClusterConfig, broadcast_baseline: bool) -> Self {
        Self::configured(config, |settings| settings.broadcast_baseline = broadcast_baseline)
    }

    /// Every server and proxy of `config`, every link up, each server's settings as
    /// `configure` leaves them. Servers send updates every tick, whatever the time
    /// the tests' frames take, unless `configure` holds them to another pace.
    pub fn configured(config: ClusterConfig, configure: impl Fn(&mut ServerSettings)) -> Self {
        let map = config.region_map();
        // The stepper carries messages itself: nothing is sealed, but settings hold a secret.
        let secret = ClusterSecret::generate().expect("the OS has a random source");
        // Every server's real time counts from one instant, as on hosts whose clocks agree.
        let started = std::time::SystemTime::now();
        let servers: Vec<SteppedServer> = config
            .servers
            .iter()
            .map(|server| {
                let mut settings =
                    ServerSettings::new(config.clone(), server.id, secret.clone()).expect("the server is on the map");
                settings.update_every = Some(1);
                configure(&mut settings);
                let mut app = tessera_server::build_app(settings);
                app.insert_resource(TimeUpdateStrategy::FixedTimesteps(1));
                app.insert_resource(TickWallClock::starting_at(started, std::time::Duration::ZERO));
                app.finish();
                app.cleanup();
                let events = app.world().resource::<NetEvents>().0.clone();
                let (to_proxies, proxy_links, to_peers) = (BTreeMap::new(), BTreeMap::new(), BTreeMap::new());
                SteppedServer {
                    id: server.id,
                    app,
                    events,
                    to_proxies,
                    proxy_links,
                    to_peers,
                    peer_bytes: 0,
                    holding: false,
                }
            })
            .collect();
        let proxies = config
            .proxies
            .iter()
            .map(|proxy| {
                // The stepper admits players itself (`join`), so its proxies never open a store.
                let unopened = StoreLocation::in_data_dir(std::path::Path::new("unopened"));
                let settings = ProxySettings::new(proxy.id, config.clone(), secret.clone(), unopened);
                let tickets = Tickets::new(&settings.secret);
                SteppedProxy { settings, tickets, routing: Routing::default(), to_servers: BTreeMap::new() }
            })
            .collect();
        let rules = PeerRules::new(&config);
        let mut stepper = Self {
            config,
            map,
            rules,
            servers: Vec::new(),
            proxies,
            players: BTreeMap::new(),
            keys: BTreeMap::new(),
            issued: 0,
            ticks: 0,
            origin: std::time::Instant::now(),
        };
        stepper.servers = servers;
        let ids: Vec<ServerId> = stepper.servers.iter().map(|s| s.id).collect();
        for &server in &ids {
            for proxy in 0..stepper.proxies.len() {
                stepper.link_proxy(server, proxy);
            }
        }
        for (i, &a) in ids.iter().enumerate() {
            for &b in &ids[i + 1..] {
                stepper.link_peers(a, b);
            }
        }
        // A first frame on every app: time starts, the links come up.
        stepper.step();
        stepper
    }

    fn server_mut(&mut self, id: ServerId) -> &mut SteppedServer {
        self.servers.iter_mut().find(|s| s.id == id).expect("a server of the map")
    }

    fn server(&self, id: ServerId) -> &SteppedServer {
        self.servers.iter().find(|s| s.id == id).expect("a server of the map")
    }

    /// Brings up a (new) link between servers `a` and `b`.
    pub fn link_peers(&mut self, a: ServerId, b: ServerId) {
        for (from, to) in [(a, b), (b, a)] {
            let (outbound, queue) = Outbound::channel();
            let link = LinkId::next();
            let server = self.server_mut(from);
            server.to_peers.insert(to, PeerLink { id: link, queue });
            server.deliver(NetEvent::PeerUp { peer: to, link, outbound });
        }
    }

    /// Brings up a (new) link between `server` and the `proxy`-th proxy.
    pub fn link_proxy(&mut self, server: ServerId, proxy: usize) {
        let id = self.proxies[proxy].settings.id;
        let (outbound, queue) = Outbound::channel();
        let link = LinkId::next();
        let stepped = self.server_mut(server);
        stepped.to_proxies.insert(id, queue);
        stepped.proxy_links.insert(id, link);
        stepped.deliver(NetEvent::ProxyUp { proxy: id, link, outbound });
        let (outbound, queue) = Outbound::channel();
        let proxy = &mut self.proxies[proxy];
        proxy.to_servers.insert(server, queue);
        proxy.routing.server_up(server, outbound);
    }

    /// Cuts the link between `server` and the `proxy`-th proxy, both still running:
    /// whatever was queued on it is lost, and each side is told it went down.
    pub fn cut_proxy_link(&mut self, server: ServerId, proxy: usize) {
        let id = self.proxies[proxy].settings.id;
        let stepped = self.server_mut(server);
        stepped.to_proxies.remove(&id);
        let link = stepped.proxy_links.remove(&id).expect("the two were linked");
        stepped.deliver(NetEvent::ProxyDown { proxy: id, link });
        let proxy = &mut self.proxies[proxy];
        proxy.to_servers.remove(&server);
        proxy.routing.server_down(server);
    }

    /// Does what a proxy does for a player waiting for a server once it has found where
    /// the store saved it (the stepper has no store: the test says where): logs it in
    /// again on the server owning `at`.
    pub fn log_in_again(&mut self, user: UserId, at: Vec2) {
        let owner = self.map.owner_at(at).expect("a spot in the world");
        let player = &self.players[&user];
        let routing = &self.proxies[player.proxy].routing;
        let waiting = routing.offline().into_iter().find(|offline| offline.user == user);
        let session = waiting.expect("the player waits for a server").session;
        routing.log_in_again(user, session, owner, EntityName::from(&player.welcome.name).unwrap(), at);
    }

    /// Loses the `proxy`-th proxy: every server's link to it goes down, as when its
    /// process dies. Its players stay in the stepper, hearing nothing more.
    pub fn lose_proxy(&mut self, proxy: usize) {
        let id = self.proxies[proxy].settings.id;
        for server in &mut self.servers {
            server.to_proxies.remove(&id);
            let link = server.proxy_links.remove(&id).expect("the proxy was linked");
            server.deliver(NetEvent::ProxyDown { proxy: id, link });
        }
    }

    /// Cuts the link between servers `a` and `b`: whatever was queued on it is lost,
    /// and each side is told it went down, as a TCP transport would.
    pub fn cut_peers(&mut self, a: ServerId, b: ServerId) {
        for (from, to) in [(a, b), (b, a)] {
            let server = self.server_mut(from);
            let link = server.to_peers.remove(&to).expect("the two were linked").id;
            server.deliver(NetEvent::PeerDown { peer: to, link });
        }
    }

    /// Brings player `name` into the world through the `proxy`-th proxy, standing at
    /// `at`, as that proxy admits any player once it has proved its key and the store
    /// has said where it was (the stepper has neither: its players are numbered).
    pub fn join(&mut self, proxy: usize, name: &str, at: Vec2) -> UserId {
        self.issued += 1;
        let mut key = [0; 32];
        key[..8].copy_from_slice(&self.issued.to_be_bytes());
        let key = PlayerKey(key);
        self.keys.insert(key.user(), key);
        self.join_as(proxy, key.user(), name, at);
        key.user()
    }

    /// As [`Self::join`], as player `user`, who may be playing already: then this is it
    /// signing in again, and its older session is returned (what it is sent, it is sent
    /// no more by the stepper: [`SteppedPlayer::drain`] reads it).
    pub fn join_as(&mut self, proxy: usize, user: UserId, name: &str, at: Vec2) -> Option<SteppedPlayer> {
        let stepped = &self.proxies[proxy];
        let key = self.keys[&user];
        let (queue, _, _) = admit(
            &stepped.settings,
            &stepped.routing,
            &stepped.tickets,
            key,
            [127, 0, 0, 1].into(),
            name,
            Begin::Fresh { position: at },
        )
        .expect("the proxy admits the player");
        let welcome = match queue.next_frame().map(|frame| decode_frame(&frame)) {
            Some(ProxyToClient::Welcome(welcome)) => welcome,
            _ => panic!("a proxy welcomes a player first"),
        };
        verify::welcome(&welcome, stepped.settings.id, user).expect("the proxy's welcome is sane");
        let tick = tick_seconds(welcome.tick_hz);
        let view = WorldView::new(tick);
        let prediction = Prediction::new(InputClock::new(self.origin, tick), welcome.map.clone(), tick);
        let chat = ChatGate::new(std::time::Instant::now());
        let unpacker = UpdateUnpacker::new(user.entity(), tick, OthersKept::States);
        let player = SteppedPlayer {
            proxy,
            queue,
            welcome,
            view,
            prediction,
            unpacker,
            keys: Keys::empty(),
            last_sent: 0,
            chat,
            disconnected: None,
            bytes_received: 0,
            largest_correction: 0.0,
            full_updates: Vec::new(),
            asked_for_full: 0,
            asking: false,
            awaiting_full: false,
        };
        let older = self.players.insert(user, player);
        self.step_until("the first update", 10, |stepper| stepper.player(user).view.me.is_some());
        older
    }

    pub fn player(&self, user: UserId) -> &SteppedPlayer {
        &self.players[&user]
    }

    /// When the tick in progress began, on the players' clocks.
    pub fn now(&self) -> std::time::Instant {
        let tick = std::time::Duration::from_secs_f32(tick_seconds(self.config.simulation.tick_hz));
        self.origin + tick * u32::try_from(self.ticks).expect("a test steps fewer than 2³² ticks")
    }

    /// The player holds exactly `keys` from now on; returns the input's sequence number.
    pub fn press(&mut self, user: UserId, keys: Keys) -> u32 {
        let input = self.press_unsent(user, keys);
        self.send_input(user, input).expect("the player's owner is linked");
        input.seq
    }

    /// As [`Self::press`], but the input is returned, not sent: the caller sends it
    /// ([`Self::send_input`]) when a slower link would have carried it.
    pub fn press_unsent(&mut self, user: UserId, keys: Keys) -> Input {
        // The player's own clock is the stepper's: it starts each tick as every server does.
        let now = self.now();
        let player = self.players.get_mut(&user).expect("a player of this stepper");
        player.last_sent += 1;
        player.keys = keys;
        let tick = player.prediction.press(keys, now);
        Input { seq: player.last_sent, keys, tick }
    }

    /// Sends `input` as the player's client would, whatever its sequence number: the
    /// proxy routes it, or says why not.
    pub fn send_input(&mut self, user: UserId, input: Input) -> Result<(), RouteError> {
        let proxy = self.players[&user].proxy;
        let routed = self.proxies[proxy].routing.from_client(user, ProxyToServer::Input { user, input });
        // A stepper drains every queue each step, so none is ever full to wait on.
        routed.now_or_never().expect("a stepper's links never fill")
    }

    /// The player says `text` on `channel`, as its client sends it: its proxy's chat gate
    /// takes it (or refuses it, which would close the player's connection) and routes
    /// what is left to the player's server.
    pub fn say(&mut self, user: UserId, channel: ChatChannel, text: &str) -> Result<(), Violation> {
        let player = self.players.get_mut(&user).expect("a player of this stepper");
        let routing = &self.proxies[player.proxy].routing;
        if let Some(message) = player.chat.hear(routing, user, channel, text, std::time::Instant::now())? {
            let routed = routing.from_client(user, message).now_or_never().expect("a stepper's links never fill");
            routed.expect("the player is routed");
        }
        Ok(())
    }

    /// Sends `message` to server `to` as the `proxy`-th proxy, through the codec and the
    /// server's gate, whoever it names: as a proxy gone rogue would.
    pub fn send_as_proxy(&mut self, proxy: usize, to: ServerId, message: ProxyToServer) {
        let (message, _) = over_the_wire(&message);
        verify::from_proxy(&message).expect("a message the server's gate lets through");
        let proxy = self.proxies[proxy].settings.id;
        self.server(to).deliver_from_proxy(proxy, message);
    }

    /// Sends `message` to server `to` as peer `from`, through the codec and `to`'s gate,
    /// as a hostile peer would: refused, the link between them is cut (and the violation
    /// returned), as TCP would cut it.
    pub fn send_as_peer(&mut self, from: ServerId, to: ServerId, message: PeerMessage) -> Result<(), Violation> {
        let (message, _) = over_the_wire(&message);
        if let Err(violation) = verify::from_peer(&message, to, from, &self.rules) {
            self.cut_peers(from, to);
            return Err(violation);
        }
        self.server(to).deliver(NetEvent::FromPeer { peer: from, message });
        Ok(())
    }

    /// Whether servers `a` and `b` are linked.
    pub fn linked(&self, a: ServerId, b: ServerId) -> bool {
        self.server(a).to_peers.contains_key(&b) && self.server(b).to_peers.contains_key(&a)
    }

    /// One tick: what is in flight is delivered, every server runs one frame (receive,
    /// one fixed tick, send), and what they sent is carried to its receivers.
    pub fn step(&mut self) {
        self.carry();
        self.run_servers();
        self.carry();
    }

    /// Every server runs one frame; what they send stays queued on its links.
    pub fn run_servers(&mut self) {
        for server in &mut self.servers {
            server.app.update();
        }
        self.ticks += 1;
    }

    /// Steps until `done` holds, for at most `max_ticks`.
    pub fn step_until(&mut self, what: &str, max_ticks: u64, mut done: impl FnMut(&Self) -> bool) {
        for _ in 0..max_ticks {
            if done(self) {
                return;
            }
            self.step();
        }
        assert!(done(self), "not within {max_ticks} ticks: {what}");
    }

    /// Walks `user` to `target` as a person would (keys only when the direction
    /// changes), calling `check` after every tick; then stops there, the stop applied.
    pub fn walk_to(&mut self, user: UserId, target: Vec2, mut check: impl FnMut(&Self)) {
        // 200 units a second: the far side of the default world is under 800 ticks away.
        // A key pressed now counts from the tick beginning now: steered by where the
        // player's prediction has it then, not by the server's word of some ticks ago.
        for _ in 0..2000 {
            let player = self.player(user);
            let predicted = player.prediction.position_at(self.now()).unwrap_or(player.position());
            let keys = keys_toward(predicted, target);
            if keys.is_empty() {
                // Every tick checked, the ones walking on until the stop is applied too.
                let stop = self.press(user, Keys::empty());
                for _ in 0..10 {
                    if self.player(user).view.last_input >= stop {
                        check(self);
                        return;
                    }
                    self.step();
                    check(self);
                }
                panic!("{user}'s stop was not applied within 10 ticks");
            }
            if keys != self.player(user).keys {
                self.press(user, keys);
            }
            self.step();
            check(self);
        }
        panic!("{user} did not reach {target}");
    }

    /// The servers that own (simulate) `user` now.
    pub fn owners(&self, user: UserId) -> Vec<ServerId> {
        let owns = |server: &&SteppedServer| server.app.world().resource::<Players>().0.contains_key(&user);
        self.servers.iter().filter(owns).map(|server| server.id).collect()
    }

    /// Whether `server` owns `user` and has its input `seq` (applied, or queued for its tick).
    pub fn has_input(&self, server: ServerId, user: UserId, seq: u32) -> bool {
        let world = self.server(server).app.world();
        let queue = world.resource::<Players>().0.get(&user).and_then(|&entity| world.get::<InputQueue>(entity));
        queue.is_some_and(|queue| queue.last_input >= seq || queue.pending().any(|input| input.seq == seq))
    }

    /// Players owned across the whole cluster.
    pub fn owned_players(&self) -> usize {
        self.servers.iter().map(|server| server.app.world().resource::<Players>().0.len()).sum()
    }

    pub fn ghosts(&self, server: ServerId) -> usize {
        self.server(server).app.world().resource::<Ghosts>().len()
    }

    /// Where the ghost of `id` is on `server`, if it has one.
    pub fn ghost_position(&self, server: ServerId, id: EntityId) -> Option<Vec2> {
        let world = self.server(server).app.world();
        // No query before the first ghost registers the component: no ghost either.
        let mut ghosts = world.try_query_filtered::<(&EntityId, &Position), With<Ghost>>()?;
        ghosts.iter(world).find(|(ghost, _)| **ghost == id).map(|(_, position)| position.0)
    }

    /// Cells of foreign regions `server` subscribes to.
    pub fn subscriptions(&self, server: ServerId) -> usize {
        self.server(server).app.world().resource::<Subscriptions>().count()
    }

    /// Where each ghost on `server` comes from.
    pub fn ghost_origins(&self, server: ServerId) -> Vec<Ghost> {
        let world = self.server(server).app.world();
        let mut ghosts = world.try_query::<&Ghost>().expect("ghosts are a registered component");
        ghosts.iter(world).copied().collect()
    }

    /// Whether `server` subscribes to `cell` of `owner`'s regions.
    pub fn subscribed_to(&self, server: ServerId, owner: ServerId, cell: CellId) -> bool {
        let subscriptions = self.server(server).app.world().resource::<Subscriptions>();
        subscriptions.0.get(&owner).is_some_and(|cells| cells.contains(&cell))
    }

    /// Bytes every server has sent its peers so far, framed as on the wire.
    pub fn peer_bytes(&self) -> u64 {
        self.servers.iter().map(|server| server.peer_bytes).sum()
    }

    /// Carries every queued message to its receiver, checked as a TCP link checks it.
    pub fn carry(&mut self) {
        for proxy in &mut self.proxies {
            let id = proxy.settings.id;
            for (&to, queue) in &mut proxy.to_servers {
                let server = self.servers.iter().find(|s| s.id == to).expect("a server of the map");
                while let Ok(message) = queue.try_recv() {
                    let (message, _) = over_the_wire(&message);
                    verify::from_proxy(&message).unwrap_or_else(|violation| panic!("{id} to {to}: {violation}"));
                    server.deliver_from_proxy(id, message);
                }
            }
        }
        let mut between_servers = Vec::new();
        let mut closed = Vec::new();
        for server in &mut self.servers {
            let to_proxies = if server.holding { None } else { Some(&mut server.to_proxies) };
            for (&proxy, queue) in to_proxies.into_iter().flatten() {
                let routing = &self.proxies.iter().find(|p| p.settings.id == proxy).expect("a proxy").routing;
                while let Ok(message) = queue.try_recv() {
                    let (message, _) = over_the_wire(&message);
                    verify::from_server(&message, server.id)
                        .unwrap_or_else(|violation| panic!("{} to {proxy}: {violation}", server.id));
                    routing.from_server(server.id, message);
                }
            }
            for (&peer, link) in &mut server.to_peers {
                loop {
                    match link.queue.try_recv() {
                        Ok(message) => {
                            let (message, bytes) = over_the_wire(&message);
                            server.peer_bytes += bytes as u64;
                            between_servers.push((server.id, peer, message));
                        }
                        // The server dropped the link (it broke the protocol, or stopped reading).
                        Err(mpsc::error::TryRecvError::Disconnected) => {
                            closed.push((server.id, peer));
                            break;
                        }
                        Err(mpsc::error::TryRecvError::Empty) => break,
                    }
                }
            }
        }
        for (from, to, message) in between_servers {
            verify::from_peer(&message, to, from, &self.rules)
                .unwrap_or_else(|violation| panic!("{from} to {to}: {violation}"));
            self.server(to).deliver(NetEvent::FromPeer { peer: from, message });
        }
        for (a, b) in closed {
            if self.linked(a, b) {
                self.cut_peers(a, b);
            }
        }
        let now = self.now();
        for (&user, player) in &mut self.players {
            player.drain(now);
            if std::mem::take(&mut player.asking) {
                let asked = self.proxies[player.proxy].routing.from_client(user, ProxyToServer::Resync { user });
                asked.now_or_never().expect("a stepper's links never fill").expect("the player is routed");
            }
        }
    }

    /// Holds what `server` sends proxies from now on (`true`), as a slow link would, or
    /// lets it go (`false`): the next step carries everything held, in order.
    pub fn hold_to_proxies(&mut self, server: ServerId, hold: bool) {
        self.server_mut(server).holding = hold;
    }
}

/// The centre of the region owned by `server`.
pub fn centre_of(map: &RegionMap, server: ServerId) -> Vec2 {
    let region = map.regions_of(server).next().expect("every server owns a region");
    let (min, max) = map.bounds(region);
    (min + max) / 2.0
}
