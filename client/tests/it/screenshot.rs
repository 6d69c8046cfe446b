//! Runs the real client binary under `xvfb-run`, joined through a proxy of a local
//! cluster with two headless players near it, and checks the PNG it writes: not blank,
//! your own disc at the centre (the camera follows you), the others' discs in view.

use std::process::Command;
use std::time::Duration;
use tessera_bots::player::Player;
use tessera_server::local_cluster::LocalCluster;
use tessera_shared::cluster::ClusterConfig;

const OWN_COLOUR: [u8; 3] = [255, 217, 64];
const OTHER_COLOUR: [u8; 3] = [235, 240, 247];

fn close(pixel: &[u8], colour: [u8; 3]) -> bool {
    pixel.iter().zip(colour).all(|(&a, b)| a.abs_diff(b) <= 24)
}

#[test]
fn the_client_draws_you_and_the_players_around_you() {
    let cluster = LocalCluster::start_ephemeral(ClusterConfig::default_local()).unwrap();
    let proxy = cluster.proxy_addresses()[0].clone();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    // Two players standing near the spawn, where the client appears too.
    let _others: Vec<Player> = runtime.block_on(async {
        let mut players = Vec::new();
        for name in ["bo", "cy"] {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
            loop {
                match Player::connect(&proxy, name).await {
                    Ok(player) => break players.push(player),
                    Err(_) if tokio::time::Instant::now() < deadline => {
                        tokio::time::sleep(Duration::from_millis(50)).await
                    }
                    Err(err) => panic!("{name} could not join: {err}"),
                }
            }
        }
        players
    });

    let shot = std::env::temp_dir().join(format!("tessera-client-{}.png", std::process::id()));
    let status = Command::new("xvfb-run")
        .args(["-a", "-s", "-screen 0 1280x800x24"])
        .arg(env!("CARGO_BIN_EXE_tessera-client"))
        .args(["--proxy", &proxy, "--name", "tester", "--exit-after-frames", "120", "--screenshot"])
        .arg(&shot)
        .status()
        .expect("xvfb-run is installed (.ci/run installs it)");
    assert!(status.success(), "the client exited with {status}");

    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let (width, height) = (frame.width as usize, frame.height as usize);
    let pixel = |x: usize, y: usize| &pixels[(y * width + x) * channels..][..3];

    let distinct: std::collections::HashSet<&[u8]> = (0..height)
        .step_by(7)
        .flat_map(|y| (0..width).step_by(7).map(move |x| (x, y)))
        .map(|(x, y)| pixel(x, y))
        .collect();
    assert!(distinct.len() > 20, "the frame is not blank: {} colours", distinct.len());
    assert!(
        close(pixel(width / 2, height / 2), OWN_COLOUR),
        "own disc at the centre, found {:?}",
        pixel(width / 2, height / 2)
    );
    let others = (0..height)
        .flat_map(|y| (0..width).map(move |x| (x, y)))
        .filter(|&(x, y)| close(pixel(x, y), OTHER_COLOUR))
        .count();
    // A disc of radius 14 covers about 600 pixels; labels add a few white ones too.
    assert!(others > 800, "both other players drawn: {others} pixels of their colour");
    let _ = std::fs::remove_file(&shot);
}
