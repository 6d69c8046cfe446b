//! How smooth play looked, update after update, as the game client shows it and the bots
//! report it: every correction of the player's predicted position (and the snaps among
//! them), and how far each update moved the others already shown. Corrections that came
//! with an input the server got too late for its tick are counted apart as well: they
//! measure the link and the host, not the prediction.

use crate::connection::Smoothness;
use hdrhistogram::Histogram;

/// Corrections beyond this many units are snaps: the player sees a jump.
pub const SNAP: f32 = 4.0;

fn hundredths(units: f32) -> u64 {
    (units * 100.0).round() as u64
}

/// Every correction seen, in hundredths of a unit.
#[derive(Debug, Clone)]
pub struct SmoothnessSeen {
    pub own: Histogram<u64>,
    pub own_snaps: u64,
    /// Snaps in an update that came from a new server: at a handoff.
    pub own_snaps_at_handoffs: u64,
    /// Snaps in an update that came with an input late for its tick.
    pub own_snaps_after_late_inputs: u64,
    /// Those of `own` in an update that came with an input late for its tick (the
    /// server went on without it, or stood the player still for it:
    /// [`Smoothness::late_input`]).
    pub own_after_late_input: Histogram<u64>,
    pub others: Histogram<u64>,
}

impl Default for SmoothnessSeen {
    fn default() -> Self {
        Self {
            own: histogram(),
            own_snaps: 0,
            own_snaps_at_handoffs: 0,
            own_snaps_after_late_inputs: 0,
            own_after_late_input: histogram(),
            others: histogram(),
        }
    }
}

/// Corrections in hundredths of a unit, up to 10,000 units, to two significant digits.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 1_000_000, 2).expect("valid histogram bounds")
}

impl SmoothnessSeen {
    /// Counts what a player's latest update corrected.
    pub fn record(&mut self, seen: &Smoothness) {
        if let Some(own) = seen.own {
            self.own.saturating_record(hundredths(own));
            if seen.late_input {
                self.own_after_late_input.saturating_record(hundredths(own));
            }
            if own > SNAP {
                self.own_snaps += 1;
                self.own_snaps_at_handoffs += u64::from(seen.handoff);
                self.own_snaps_after_late_inputs += u64::from(seen.late_input);
            }
        }
        for &moved in &seen.others.moved {
            self.others.saturating_record(hundredths(moved));
        }
        let _ = self.others.record_n(0, seen.others.unmoved as u64);
    }

    pub fn add(&mut self, other: &SmoothnessSeen) {
        self.own.add(&other.own).expect("same bounds");
        self.own_after_late_input.add(&other.own_after_late_input).expect("same bounds");
        self.others.add(&other.others).expect("same bounds");
        self.own_snaps += other.own_snaps;
        self.own_snaps_at_handoffs += other.own_snaps_at_handoffs;
        self.own_snaps_after_late_inputs += other.own_snaps_after_late_inputs;
    }

    /// Others an update moved by more than [`SNAP`]: a jump, where they were shown
    /// moving on as last told.
    pub fn others_snaps(&self) -> u64 {
        self.others.count_between(hundredths(SNAP) + 1, self.others.high())
    }

    /// The `quantile` of `histogram` (one of these), in units.
    pub fn units(histogram: &Histogram<u64>, quantile: f64) -> f64 {
        histogram.value_at_quantile(quantile) as f64 / 100.0
    }

    /// The largest of `histogram`, in units.
    pub fn max_units(histogram: &Histogram<u64>) -> f64 {
        histogram.max() as f64 / 100.0
    }
}
