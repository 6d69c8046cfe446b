//! The fuzz targets' seeds ([`crate::seeds`]) replayed through the same receivers as the
//! targets: each is taken without a panic, and every target has seeds that start the
//! fuzzer somewhere useful (the player's view of `proxy_to_client` is replayed by the
//! player crate's suite).

use crate::link_layer::{Knock, LINK_CODEC_TARGET, NOISE_RESPONDER_TARGET, Stream, knock, members_ciphers, read_link};
use crate::mutations::samples;
use crate::receive::{CLUSTER_FILE_TARGET, Direction, Receiver, load_cluster_file};
use crate::seeds::seeds;

#[test]
fn every_seed_of_every_target_is_received_without_a_panic() {
    let receiver = Receiver::default();
    for direction in Direction::ALL {
        let decoded: usize =
            seeds(direction.target()).iter().map(|(_, bytes)| receiver.receive(direction, bytes).decoded).sum();
        assert!(decoded > 0, "{direction:?}: no seed decodes, so none starts the fuzzer anywhere useful");
    }
    let maps = seeds(CLUSTER_FILE_TARGET).iter().filter(|(_, bytes)| load_cluster_file(bytes).is_some()).count();
    assert!(maps > 0, "no cluster file seed is a valid map");
}

/// The protocol changes, and a seed of an old message reaches what the new one no longer
/// does: each target starts from a valid frame of every message it may receive now (the
/// mutation test's samples), the first of one of its seeds.
#[test]
fn every_message_of_every_direction_starts_a_seed() {
    let missing: Vec<(Direction, Vec<u8>)> = samples()
        .into_iter()
        .filter(|(direction, sample)| !seeds(direction.target()).iter().any(|(_, seed)| seed.starts_with(sample)))
        .collect();
    assert!(missing.is_empty(), "no seed starts with these frames (add each to its target's seeds): {missing:?}");
}

#[test]
fn every_link_layer_seed_is_read_without_a_panic() {
    let knocks: Vec<Knock> = seeds(NOISE_RESPONDER_TARGET).iter().map(|(_, bytes)| knock(bytes)).collect();
    for how_far in [Knock::RefusedAtHandshake, Knock::HeldAtFirstRecord] {
        assert!(knocks.contains(&how_far), "no noise_responder seed is {how_far:?}");
    }
    let reads: Vec<(Stream, usize, usize)> = seeds(LINK_CODEC_TARGET)
        .iter()
        .filter_map(|(_, bytes)| read_link(bytes, members_ciphers))
        .map(|(stream, reading)| (stream, reading.frames.len(), reading.heartbeats))
        .collect();
    let framed = |wanted: fn(&Stream) -> bool| reads.iter().any(|(stream, frames, _)| wanted(stream) && *frames > 1);
    let beating = |wanted: fn(&Stream) -> bool| {
        reads.iter().any(|(stream, frames, heartbeats)| wanted(stream) && *frames > 0 && *heartbeats > 0)
    };
    assert!(framed(|stream| *stream == Stream::Plain), "no link_codec seed has plain frames: {reads:?}");
    assert!(
        framed(|stream| matches!(stream, Stream::Sealed { .. })),
        "no link_codec seed has sealed frames: {reads:?}"
    );
    assert!(beating(|stream| *stream == Stream::Plain), "no link_codec seed has plain heartbeats: {reads:?}");
    assert!(
        beating(|stream| matches!(stream, Stream::Sealed { .. })),
        "no link_codec seed has sealed heartbeats: {reads:?}"
    );
    assert!(reads.iter().any(|(stream, ..)| *stream == Stream::Forged), "no link_codec seed is forged: {reads:?}");
}
