//! The simulation's clock: [`SimulationTick`] counts fixed ticks, advanced first thing
//! in each one. Systems that send once per tick run when it changes.

use bevy::prelude::*;

/// Counts fixed ticks; systems that send once per tick run when it changes.
#[derive(Resource, Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimulationTick(pub u64);

pub struct TickPlugin;

impl Plugin for TickPlugin {
    fn build(&self, app: &mut App) {
        app.init_resource::<SimulationTick>().add_systems(FixedFirst, advance_tick);
    }
}

fn advance_tick(mut tick: ResMut<SimulationTick>) {
    tick.0 += 1;
}
