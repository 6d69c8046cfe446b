//! Runs the real client binary under `xvfb-run`, joined through a proxy of a local
//! cluster with two headless players beside the spawn, and checks the PNG it writes: not
//! blank, your own disc at the centre (the camera follows you), and each other player's
//! disc exactly where its position, relative to yours, puts it on screen.

use std::process::Command;
use std::time::{Duration, Instant};
use tessera_cluster::LocalCluster;
use tessera_player::{Player, Rejoin};
use tessera_shared::Vec2;
use tessera_shared::cluster::ClusterConfig;
use tessera_shared::identity::Identity;
use tessera_store::StoreLocation;

const WIDTH: usize = 1280;
const HEIGHT: usize = 800;
const DEADLINE: Duration = Duration::from_secs(60);

/// Your disc is gold; nothing on the map is.
fn is_gold(p: &[u8]) -> bool {
    p[0] > 200 && (140..235).contains(&p[1]) && p[2] < 120
}

/// The others are pale discs; the tiles under them are dark tints.
fn is_pale(p: &[u8]) -> bool {
    p.iter().all(|&c| c > 175)
}

async fn join(proxy: &str, name: &str) -> Player {
    let identity = Identity::generate().unwrap();
    let joining = Rejoin::new(vec![proxy.into()], identity, name).join_within(Duration::from_secs(20)).await;
    joining.unwrap_or_else(|err| panic!("{name} could not join: {err}"))
}

#[test]
fn the_client_draws_you_and_the_players_around_you() {
    let data = tempfile::tempdir().unwrap();
    let store = StoreLocation::in_data_dir(data.path());
    let cluster = LocalCluster::start_ephemeral(ClusterConfig::default_local(), store).unwrap();
    let proxy = cluster.proxy_addresses()[0].clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Two players standing below either side of the spawn disc (radius 160), where the
    // client appears: wherever in it the client lands, they are within its view (208
    // units from the spawn, so at most 368 from the client; the view reaches 400), on
    // screen, never under the client's own disc, and below the HUD's windows (they are
    // drawn over the world: at least 360 pixels down, the HUD ends above).
    let spawn = cluster.config().spawn_point();
    let others = runtime.block_on(async {
        let (mut bo, mut cy) = (join(&proxy, "bo").await, join(&proxy, "cy").await);
        let (bo_there, cy_there) = tokio::join!(
            bo.walk_to(spawn + Vec2::new(170.0, -120.0), DEADLINE, |_| {}),
            cy.walk_to(spawn + Vec2::new(-170.0, -120.0), DEADLINE, |_| {})
        );
        bo_there.unwrap();
        cy_there.unwrap();
        vec![bo, cy]
    });

    // Where the others stand (nobody moves). They stay, receiving all along, and so
    // telling their proxy they are there however long the client takes to start; the
    // first says where it sees the client's player.
    let positions: Vec<Vec2> = others.iter().map(|other| other.view.me.expect("walked").position).collect();
    let (tester_seen, mut tester_at) = tokio::sync::watch::channel(None);
    for (index, mut other) in others.into_iter().enumerate() {
        let tester_seen = (index == 0).then(|| tester_seen.clone());
        runtime.spawn(async move {
            while other.receive().await.is_ok() {
                let Some(seen) = &tester_seen else { continue };
                if let Some((state, _)) = other.view.others_named().find(|(_, name)| *name == "tester") {
                    seen.send_replace(Some(state.position));
                }
            }
        });
    }

    let shot = std::env::temp_dir().join(format!("tessera-client-{}.png", std::process::id()));
    let mut client = Command::new("xvfb-run")
        .args(["-a", "-s", &format!("-screen 0 {WIDTH}x{HEIGHT}x24")])
        .arg(env!("CARGO_BIN_EXE_tessera-client"))
        // A profile of its own: the client makes its key there.
        .env("XDG_CONFIG_HOME", data.path())
        .args(["--proxy", &proxy, "--name", "tester", "--exit-after-frames", "120", "--screenshot"])
        .arg(&shot)
        .spawn()
        .expect("xvfb-run is installed (.ci/run installs it)");
    let me = runtime.block_on(async {
        let seen = tokio::time::timeout(DEADLINE, tester_at.wait_for(Option::is_some)).await;
        seen.expect("the client's player in view in time").expect("the others keep watching").expect("seen")
    });
    let deadline = Instant::now() + DEADLINE;
    let status = loop {
        if let Some(status) = client.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the client did not finish in time");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "the client exited with {status}");

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    assert_eq!((frame.width as usize, frame.height as usize), (WIDTH, HEIGHT));
    let pixel = |x: usize, y: usize| &pixels[(y * WIDTH + x) * channels..][..3];

    let distinct: std::collections::HashSet<&[u8]> =
        (0..HEIGHT).step_by(7).flat_map(|y| (0..WIDTH).step_by(7).map(move |x| pixel(x, y))).collect();
    assert!(distinct.len() > 20, "the frame is not blank: {} colours", distinct.len());
    let centre = pixel(WIDTH / 2, HEIGHT / 2);
    assert!(is_gold(centre), "own disc at the centre, found {centre:?}");
    for position in positions {
        // One world unit is one pixel; the world's y grows upwards, the screen's down.
        let offset = position - me;
        let (x, y) = ((WIDTH / 2) as f32 + offset.x, (HEIGHT / 2) as f32 - offset.y);
        let (x, y) = (x.round() as usize, y.round() as usize);
        assert!(x < WIDTH && y < HEIGHT, "{position} is on screen");
        assert!(is_pale(pixel(x, y)), "a player disc at ({x}, {y}) for {position}, found {:?}", pixel(x, y));
    }
    let _ = std::fs::remove_file(&shot);
}
