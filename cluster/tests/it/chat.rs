//! Chat, tick by tick on the in-process harness: a line said near is heard across a
//! border by the players who have its speaker in view and by nobody beyond, a line said
//! to everyone on every server; the speaker is whom its proxy says, and no other proxy
//! speaks for it; lines are cleaned; a player saying too much too fast has its lines
//! dropped and is told, and plays on; a line said as its speaker is handed to the next
//! server is heard all the same. And over real sockets: real players hear each other,
//! and a line longer than the rule closes its sender's connection, and only that.

use crate::bad_input::{assert_closed, challenged, frame, read_frame};
use crate::harness::{DEADLINE, default_cluster, join};
use crate::stepper::Stepper;
use tessera_bots::swarm::bot_identity;
use tessera_proxy::chat::CHAT_BURST;
use tessera_shared::Vec2;
use tessera_shared::chat::{ChatProblem, MAX_CHAT_LEN};
use tessera_shared::components::Keys;
use tessera_shared::ids::{ServerId, UserId};
use tessera_shared::protocol::handshake::JoinRequest;
use tessera_shared::protocol::verify::Violation;
use tessera_shared::protocol::{ChatChannel, ChatLine, ClientToProxy, ProxyToClient, ProxyToServer};
use tokio::io::AsyncWriteExt;

/// Every line `user` heard, oldest first.
fn heard(cluster: &Stepper, user: UserId) -> Vec<ChatLine> {
    cluster.player(user).view.chat.lines().cloned().collect()
}

/// A line as `speaker`, called `name`, said it.
fn line(speaker: UserId, name: &str, channel: ChatChannel, text: &str) -> ChatLine {
    ChatLine { speaker: speaker.entity(), name: name.into(), channel, text: text.into() }
}

/// `speaker` says `text` on `channel`; steps until `hearer` has heard a line.
fn say_until_heard(cluster: &mut Stepper, speaker: UserId, channel: ChatChannel, text: &str, hearer: UserId) {
    cluster.say(speaker, channel, text).unwrap();
    cluster.step_until("a line heard", 10, |c| !heard(c, hearer).is_empty());
}

/// Steps a few ticks more: what was going to arrive has.
fn settle(cluster: &mut Stepper) {
    for _ in 0..5 {
        cluster.step();
    }
}

/// Ada and bo, on server 1 in view of each other, through the two proxies.
fn ada_and_bo() -> (Stepper, UserId, UserId) {
    let mut cluster = Stepper::default_cluster();
    let ada = cluster.join(0, "ada", Vec2::new(500.0, 500.0));
    let bo = cluster.join(1, "bo", Vec2::new(600.0, 500.0));
    (cluster, ada, bo)
}

#[test]
fn a_line_said_near_is_heard_across_a_border_by_those_in_view_only() {
    let mut cluster = Stepper::default_cluster();
    // Server 1 owns the region west of x = 1024, server 2 the one east; the view radius is 400.
    let ada = cluster.join(0, "ada", Vec2::new(950.0, 500.0));
    let bo = cluster.join(1, "bo", Vec2::new(1250.0, 500.0));
    let far_east = cluster.join(0, "cy", Vec2::new(1500.0, 500.0));
    let di = cluster.join(1, "di", Vec2::new(700.0, 500.0));
    let far_west = cluster.join(0, "ed", Vec2::new(300.0, 500.0));
    assert_eq!(cluster.owners(bo), [ServerId(2)]);
    assert_eq!(cluster.owners(far_east), [ServerId(2)]);
    cluster.step_until("bo sees ada across the border", 5, |c| c.player(bo).view.other(ada.entity()).is_some());

    say_until_heard(&mut cluster, ada, ChatChannel::Near, "anyone here?", bo);
    settle(&mut cluster);
    let said = line(ada, "ada", ChatChannel::Near, "anyone here?");
    for hearer in [ada, bo, di] {
        assert_eq!(heard(&cluster, hearer), std::slice::from_ref(&said), "{hearer} is in range");
    }
    for beyond in [far_east, far_west] {
        assert!(heard(&cluster, beyond).is_empty(), "{beyond} is out of ada's view");
    }
}

#[test]
fn a_line_said_to_everyone_is_heard_on_every_server() {
    let mut cluster = Stepper::default_cluster();
    let corners = [(200.0, 200.0), (1800.0, 200.0), (200.0, 1800.0), (1800.0, 1800.0)];
    let players: Vec<UserId> = corners
        .into_iter()
        .enumerate()
        .map(|(i, (x, y))| cluster.join(i % 2, &format!("p{i}"), Vec2::new(x, y)))
        .collect();
    let servers: Vec<u16> = players.iter().map(|&user| cluster.owners(user)[0].0).collect();
    assert_eq!(servers, [1, 2, 3, 4], "one player on each server, far from each other");

    cluster.say(players[0], ChatChannel::Everyone, "hello, world").unwrap();
    cluster.step_until("everyone hears it", 5, |c| players.iter().all(|&user| !heard(c, user).is_empty()));
    settle(&mut cluster);
    let said = line(players[0], "p0", ChatChannel::Everyone, "hello, world");
    for user in players {
        assert_eq!(heard(&cluster, user), std::slice::from_ref(&said));
    }
}

#[test]
fn the_speaker_is_whom_its_proxy_says_and_no_other_proxy_speaks_for_it() {
    let (mut cluster, ada, bo) = ada_and_bo();
    // A player's line names no speaker: its proxy stamps its own player.
    say_until_heard(&mut cluster, bo, ChatChannel::Near, "it is me, ada", ada);
    assert_eq!(heard(&cluster, ada), [line(bo, "bo", ChatChannel::Near, "it is me, ada")]);
    // Bo's proxy, gone rogue, speaks for ada, who came through the other proxy.
    let posing = ProxyToServer::Chat { user: ada, channel: ChatChannel::Everyone, text: "i am ada".into() };
    cluster.send_as_proxy(1, ServerId(1), posing);
    settle(&mut cluster);
    for hearer in [ada, bo] {
        assert!(heard(&cluster, hearer).iter().all(|line| line.text != "i am ada"), "the server ignored it");
    }
}

#[test]
fn lines_are_cleaned_and_one_too_long_is_refused() {
    let (mut cluster, ada, bo) = ada_and_bo();
    say_until_heard(&mut cluster, ada, ChatChannel::Near, "  hi\u{1b}[2J\u{7}  \u{202e}there\u{200b}\n\n", bo);
    assert_eq!(heard(&cluster, bo), [line(ada, "ada", ChatChannel::Near, "hi[2J there")]);

    let too_long = "x".repeat(MAX_CHAT_LEN + 1);
    let refused = cluster.say(ada, ChatChannel::Near, &too_long);
    let problem = ChatProblem::TooLong(MAX_CHAT_LEN + 1);
    assert_eq!(refused, Err(Violation::BadChat { speaker: ada.entity(), problem }));
    // Nothing at all to read is dropped, and is no offence.
    cluster.say(ada, ChatChannel::Near, " \u{200b}\t").unwrap();
    settle(&mut cluster);
    assert_eq!(heard(&cluster, bo).len(), 1);
}

#[test]
fn a_player_saying_too_much_too_fast_is_told_and_plays_on() {
    let (mut cluster, ada, bo) = ada_and_bo();
    let lines = CHAT_BURST as usize + 3;
    for n in 0..lines {
        cluster.say(ada, ChatChannel::Near, &format!("line {n}")).unwrap();
    }
    settle(&mut cluster);
    let texts: Vec<String> = heard(&cluster, bo).into_iter().map(|line| line.text).collect();
    let burst: Vec<String> = (0..CHAT_BURST as usize).map(|n| format!("line {n}")).collect();
    assert_eq!(texts, burst, "the burst is heard, in order; the rest is dropped");
    assert_eq!(cluster.player(ada).view.chat.throttled, 1, "told once for the run of dropped lines");
    assert_eq!(cluster.player(bo).view.chat.throttled, 0);
    assert_eq!(cluster.player(ada).disconnected, None);
    let seq = cluster.press(ada, Keys::UP);
    cluster.step_until("ada's input applied", 5, |c| c.player(ada).view.last_input >= seq);
}

#[test]
fn a_line_said_during_a_handoff_is_heard() {
    let mut cluster = Stepper::default_cluster();
    let ada = cluster.join(0, "ada", Vec2::new(1010.0, 500.0));
    let bo = cluster.join(1, "bo", Vec2::new(1200.0, 500.0));
    cluster.press(ada, Keys::RIGHT);
    // Server 1 has let ada go, server 2 has not taken her yet: her proxy still routes to 1.
    cluster.step_until("ada in flight between servers", 40, |c| c.owners(ada).is_empty());
    say_until_heard(&mut cluster, ada, ChatChannel::Near, "crossing", bo);
    settle(&mut cluster);
    let said = line(ada, "ada", ChatChannel::Near, "crossing");
    assert_eq!((heard(&cluster, ada), heard(&cluster, bo)), (vec![said.clone()], vec![said]));
    assert_eq!(cluster.owners(ada), [ServerId(2)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_real_sockets_players_hear_each_other_and_a_line_too_long_closes_only_its_connection() {
    let cluster = default_cluster();
    let mut ada = join(&cluster, 0, "ada").await;
    let mut bo = join(&cluster, 1, "bo").await;
    let ada_id = ada.welcome.user.entity();

    // A client of its own making says a line longer than any the rule allows.
    let proxy = &cluster.proxy_addresses()[0];
    let (mut rude, challenge) = challenged(proxy).await;
    rude.write_all(&frame(&JoinRequest::sign(&bot_identity("rude"), &challenge, "rude", None))).await.unwrap();
    assert!(matches!(read_frame::<ProxyToClient>(&mut rude).await, ProxyToClient::Welcome(_)));
    let long = ClientToProxy::Chat { channel: ChatChannel::Everyone, text: "x".repeat(MAX_CHAT_LEN + 1) };
    rude.write_all(&frame(&long)).await.unwrap();
    assert_closed(rude).await;

    assert!(ada.say(ChatChannel::Everyone, "hello\u{7} bo").await.unwrap());
    let from_ada = |view: &tessera_player::WorldView| {
        view.chat.lines().any(|line| line.speaker == ada_id && line.text == "hello bo")
    };
    bo.wait_until(DEADLINE, "bo hears ada", from_ada).await.unwrap();
    assert!(bo.view.chat.lines().all(|line| !line.text.starts_with("xxx")), "the long line went nowhere");
    // Said too fast: the rest is dropped, ada is told, and plays on.
    for _ in 0..CHAT_BURST as usize + 2 {
        ada.say(ChatChannel::Near, "again").await.unwrap();
    }
    ada.wait_until(DEADLINE, "ada told she says too much", |view| view.chat.throttled >= 1).await.unwrap();
    let seq = ada.press(Keys::UP).await.unwrap();
    ada.wait_until(DEADLINE, "ada's input applied", |view| view.last_input >= seq).await.unwrap();
}
