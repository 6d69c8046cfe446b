//! The fuzz targets' seeds ([`crate::seeds`]) replayed through the same receivers as the
//! targets: each is taken without a panic, and every target has seeds that start the
//! fuzzer somewhere useful (the player's view of `proxy_to_client` is replayed by the
//! player crate's suite).

use crate::link_layer::{Knock, LINK_CODEC_TARGET, NOISE_RESPONDER_TARGET, Stream, knock, members_ciphers, read_link};
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

#[test]
fn every_link_layer_seed_is_read_without_a_panic() {
    let knocks: Vec<Knock> = seeds(NOISE_RESPONDER_TARGET).iter().map(|(_, bytes)| knock(bytes)).collect();
    for how_far in [Knock::RefusedAtHandshake, Knock::HeldAtFirstRecord] {
        assert!(knocks.contains(&how_far), "no noise_responder seed is {how_far:?}");
    }
    let reads: Vec<(Stream, usize)> = seeds(LINK_CODEC_TARGET)
        .iter()
        .filter_map(|(_, bytes)| read_link(bytes, members_ciphers))
        .map(|(stream, reading)| (stream, reading.frames.len()))
        .collect();
    let framed = |wanted: fn(&Stream) -> bool| reads.iter().any(|(stream, frames)| wanted(stream) && *frames > 1);
    assert!(framed(|stream| *stream == Stream::Plain), "no link_codec seed has plain frames: {reads:?}");
    assert!(
        framed(|stream| matches!(stream, Stream::Sealed { .. })),
        "no link_codec seed has sealed frames: {reads:?}"
    );
    assert!(reads.iter().any(|(stream, _)| *stream == Stream::Forged), "no link_codec seed is forged: {reads:?}");
}
