//! Screenshot mode, for tests and the README: after a given number of frames, write a
//! PNG of the window and quit once it is on disk.

use bevy::prelude::*;
use bevy::render::view::screenshot::{Screenshot, save_to_disk};
use std::path::PathBuf;

/// Frames to wait for the PNG to be written before giving up.
const WRITE_GRACE_FRAMES: u32 = 600;

pub struct ScreenshotPlugin {
    pub path: Option<PathBuf>,
    pub exit_after_frames: Option<u32>,
}

#[derive(Resource)]
struct Plan {
    path: Option<PathBuf>,
    at_frame: u32,
    frame: u32,
}

impl Plugin for ScreenshotPlugin {
    fn build(&self, app: &mut App) {
        if let Some(at_frame) = self.exit_after_frames {
            app.insert_resource(Plan { path: self.path.clone(), at_frame, frame: 0 }).add_systems(Last, count_frames);
        }
    }
}

fn count_frames(mut commands: Commands, mut plan: ResMut<Plan>, mut exit: MessageWriter<AppExit>) {
    plan.frame += 1;
    let Some(path) = plan.path.clone() else {
        if plan.frame >= plan.at_frame {
            exit.write(AppExit::Success);
        }
        return;
    };
    if plan.frame == plan.at_frame {
        let _ = std::fs::remove_file(&path);
        commands.spawn(Screenshot::primary_window()).observe(save_to_disk(path));
    } else if plan.frame > plan.at_frame && path.exists() {
        info!("screenshot written to {}", path.display());
        exit.write(AppExit::Success);
    } else if plan.frame > plan.at_frame + WRITE_GRACE_FRAMES {
        error!("the screenshot was not written to {}", path.display());
        exit.write(AppExit::error());
    }
}
