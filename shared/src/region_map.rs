//! The region map: the world is a grid of square regions, each owned by exactly one
//! game server. Answers where a point is, who owns it, what lies within a radius, and
//! whether a player is still inside its owner's tether (the hysteresis margin that stops
//! a player standing on a border from flapping between servers). Each region is cut
//! into cells, the unit servers subscribe to across borders: a server sees the strip of
//! a neighbour's region that its players can see, not the whole region.

use crate::ids::ServerId;
use glam::Vec2;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A region's column and row in the grid; (0, 0) is at the world origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct RegionId {
    pub x: u16,
    pub y: u16,
}

impl fmt::Display for RegionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({}, {})", self.x, self.y)
    }
}

/// The smallest side a cell is cut to.
pub const MIN_CELL_SIZE: f32 = 256.0;

/// A cell's column and row in the world-wide grid of cells; (0, 0) is at the origin.
/// Every region holds [`RegionMap::cells_per_side`]² cells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CellId {
    pub x: u16,
    pub y: u16,
}

impl fmt::Display for CellId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cell ({}, {})", self.x, self.y)
    }
}

/// The world's regions and their owners. Built from a validated cluster file, and sent
/// to clients on login so they can draw borders and the minimap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionMap {
    region_size: f32,
    columns: u16,
    rows: u16,
    /// Row-major: `owners[y * columns + x]`.
    owners: Vec<ServerId>,
}

impl RegionMap {
    /// A map whose `owners` are given row-major; `owners.len()` must be `columns * rows`.
    pub fn new(region_size: f32, columns: u16, rows: u16, owners: Vec<ServerId>) -> Self {
        assert!(region_size > 0.0, "region size must be positive");
        assert_eq!(owners.len(), usize::from(columns) * usize::from(rows));
        Self { region_size, columns, rows, owners }
    }

    pub fn region_size(&self) -> f32 {
        self.region_size
    }

    pub fn columns(&self) -> u16 {
        self.columns
    }

    pub fn rows(&self) -> u16 {
        self.rows
    }

    /// The world spans `[0, size.x) × [0, size.y)`.
    pub fn world_size(&self) -> Vec2 {
        Vec2::new(f32::from(self.columns), f32::from(self.rows)) * self.region_size
    }

    /// The nearest point inside the world.
    pub fn clamp_to_world(&self, pos: Vec2) -> Vec2 {
        // Keep strictly inside so `region_at` never misses on the far edges.
        let max = self.world_size() - Vec2::splat(self.region_size * 1e-4);
        pos.clamp(Vec2::ZERO, max)
    }

    pub fn contains(&self, region: RegionId) -> bool {
        region.x < self.columns && region.y < self.rows
    }

    /// The region containing `pos`, or `None` outside the world.
    pub fn region_at(&self, pos: Vec2) -> Option<RegionId> {
        if !pos.is_finite() || pos.x < 0.0 || pos.y < 0.0 {
            return None;
        }
        let cell = pos / self.region_size;
        let region = RegionId { x: cell.x as u16, y: cell.y as u16 };
        (cell.x < f32::from(self.columns) && cell.y < f32::from(self.rows)).then_some(region)
    }

    /// The server owning `region`, or `None` for a region outside the world.
    pub fn owner(&self, region: RegionId) -> Option<ServerId> {
        self.contains(region)
            .then(|| self.owners[usize::from(region.y) * usize::from(self.columns) + usize::from(region.x)])
    }

    /// The server owning the region containing `pos`.
    pub fn owner_at(&self, pos: Vec2) -> Option<ServerId> {
        self.region_at(pos).and_then(|region| self.owner(region))
    }

    /// Every region with its owner, row by row.
    pub fn regions(&self) -> impl Iterator<Item = (RegionId, ServerId)> + '_ {
        (0..self.rows).flat_map(move |y| {
            (0..self.columns).map(move |x| {
                let region = RegionId { x, y };
                (region, self.owners[usize::from(y) * usize::from(self.columns) + usize::from(x)])
            })
        })
    }

    /// The regions `server` owns.
    pub fn regions_of(&self, server: ServerId) -> impl Iterator<Item = RegionId> + '_ {
        self.regions().filter(move |&(_, owner)| owner == server).map(|(region, _)| region)
    }

    /// The lower and upper corners of `region`.
    pub fn bounds(&self, region: RegionId) -> (Vec2, Vec2) {
        let min = Vec2::new(f32::from(region.x), f32::from(region.y)) * self.region_size;
        (min, min + Vec2::splat(self.region_size))
    }

    /// The up to eight regions around `region`.
    pub fn neighbours(&self, region: RegionId) -> impl Iterator<Item = RegionId> + '_ {
        let (x, y) = (i32::from(region.x), i32::from(region.y));
        (-1..=1)
            .flat_map(move |dy| (-1..=1).map(move |dx| (x + dx, y + dy)))
            .filter(move |&(nx, ny)| (nx, ny) != (x, y))
            .filter_map(|(nx, ny)| Some(RegionId { x: u16::try_from(nx).ok()?, y: u16::try_from(ny).ok()? }))
            .filter(|&r| self.contains(r))
    }

    /// Distance from `pos` to the nearest point of `region` (zero inside it).
    pub fn distance_to(&self, region: RegionId, pos: Vec2) -> f32 {
        let (min, max) = self.bounds(region);
        pos.distance(pos.clamp(min, max))
    }

    /// Every region that the disc of `radius` around `pos` touches.
    pub fn regions_within(&self, pos: Vec2, radius: f32) -> impl Iterator<Item = RegionId> + use<> {
        squares_within(pos, radius, self.region_size, (self.columns, self.rows)).map(|(x, y)| RegionId { x, y })
    }

    /// How many cells this map's regions are cut into along each side ([`cells_per_side`]).
    pub fn cells_per_side(&self) -> u16 {
        cells_per_side(self.region_size)
    }

    pub fn cell_size(&self) -> f32 {
        self.region_size / f32::from(self.cells_per_side())
    }

    /// The cell containing `pos`, or `None` outside the world.
    pub fn cell_at(&self, pos: Vec2) -> Option<CellId> {
        let region = self.region_at(pos)?;
        let per_side = self.cells_per_side();
        let cell = (pos / self.cell_size()).floor();
        // Rounding must not carry a point into the next region's cells.
        let clamp = |at: f32, region: u16| {
            let first = u32::from(region) * u32::from(per_side);
            (at as u32).clamp(first, first + u32::from(per_side) - 1) as u16
        };
        Some(CellId { x: clamp(cell.x, region.x), y: clamp(cell.y, region.y) })
    }

    /// The region a cell is part of.
    pub fn region_of(&self, cell: CellId) -> RegionId {
        let per_side = self.cells_per_side();
        RegionId { x: cell.x / per_side, y: cell.y / per_side }
    }

    /// The server owning the region `cell` is part of; `None` for a cell outside the world.
    pub fn cell_owner(&self, cell: CellId) -> Option<ServerId> {
        self.owner(self.region_of(cell))
    }

    /// Every cell of the world.
    pub fn cells(&self) -> impl Iterator<Item = CellId> + use<> {
        let per_side = self.cells_per_side();
        let (columns, rows) = (self.columns * per_side, self.rows * per_side);
        (0..rows).flat_map(move |y| (0..columns).map(move |x| CellId { x, y }))
    }

    /// Every cell that the disc of `radius` around `pos` touches.
    pub fn cells_within(&self, pos: Vec2, radius: f32) -> impl Iterator<Item = CellId> + use<> {
        let per_side = self.cells_per_side();
        let grid = (self.columns * per_side, self.rows * per_side);
        squares_within(pos, radius, self.cell_size(), grid).map(|(x, y)| CellId { x, y })
    }

    /// Whether `server` may keep simulating a player at `pos`: true while `pos` is in, or
    /// within `tether` of, a region `server` owns.
    pub fn within_tether(&self, server: ServerId, pos: Vec2, tether: f32) -> bool {
        self.regions_within(pos, tether).any(|region| self.owner(region) == Some(server))
    }
}

/// How many cells a region of `region_size` is cut into along each side: the most that
/// leaves each at least [`MIN_CELL_SIZE`] wide, as a power of two.
pub fn cells_per_side(region_size: f32) -> u16 {
    let fits = (region_size / MIN_CELL_SIZE).clamp(1.0, 1024.0) as u16;
    1 << fits.ilog2()
}

/// The squares of a `grid` of squares of `side`, from the origin, that the disc of
/// `radius` around `pos` touches.
fn squares_within(pos: Vec2, radius: f32, side: f32, grid: (u16, u16)) -> impl Iterator<Item = (u16, u16)> {
    let lo = ((pos - Vec2::splat(radius)) / side).floor().max(Vec2::ZERO);
    let hi =
        ((pos + Vec2::splat(radius)) / side).floor().min(Vec2::new(f32::from(grid.0) - 1.0, f32::from(grid.1) - 1.0));
    let (x0, y0, x1, y1) = (lo.x as i32, lo.y as i32, hi.x as i32, hi.y as i32);
    (y0..=y1).flat_map(move |y| (x0..=x1).map(move |x| (x as u16, y as u16))).filter(move |&(x, y)| {
        let min = Vec2::new(f32::from(x), f32::from(y)) * side;
        pos.distance(pos.clamp(min, min + Vec2::splat(side))) <= radius
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2×2 regions of 100 units, one server each: 1 2 on the bottom row, 3 4 on top.
    fn quad() -> RegionMap {
        RegionMap::new(100.0, 2, 2, vec![ServerId(1), ServerId(2), ServerId(3), ServerId(4)])
    }

    #[test]
    fn points_map_to_regions_and_owners() {
        let map = quad();
        assert_eq!(map.world_size(), Vec2::new(200.0, 200.0));
        assert_eq!(map.region_at(Vec2::new(10.0, 10.0)), Some(RegionId { x: 0, y: 0 }));
        assert_eq!(map.region_at(Vec2::new(150.0, 10.0)), Some(RegionId { x: 1, y: 0 }));
        assert_eq!(map.owner_at(Vec2::new(150.0, 199.0)), Some(ServerId(4)));
        assert_eq!(map.owner_at(Vec2::new(100.0, 100.0)), Some(ServerId(4)));
        assert_eq!(map.region_at(Vec2::new(200.0, 10.0)), None);
        assert_eq!(map.region_at(Vec2::new(-0.1, 10.0)), None);
        assert_eq!(map.region_at(Vec2::new(f32::NAN, 10.0)), None);
        assert_eq!(map.owner_at(map.clamp_to_world(Vec2::new(500.0, 500.0))), Some(ServerId(4)));
    }

    #[test]
    fn neighbours_stay_inside_the_grid() {
        let map = RegionMap::new(10.0, 3, 3, vec![ServerId(1); 9]);
        assert_eq!(map.neighbours(RegionId { x: 1, y: 1 }).count(), 8);
        assert_eq!(map.neighbours(RegionId { x: 0, y: 0 }).count(), 3);
        assert_eq!(map.neighbours(RegionId { x: 2, y: 1 }).count(), 5);
    }

    #[test]
    fn regions_within_a_radius_follow_the_disc_not_its_box() {
        let map = quad();
        let centre: Vec<_> = map.regions_within(Vec2::new(100.0, 100.0), 5.0).collect();
        assert_eq!(centre.len(), 4, "the four-way corner touches every region");
        let inner: Vec<_> = map.regions_within(Vec2::new(50.0, 50.0), 10.0).collect();
        assert_eq!(inner, vec![RegionId { x: 0, y: 0 }]);
        // 10 units from both borders: the box would reach the diagonal region, the disc does not.
        let near_corner: Vec<_> = map.regions_within(Vec2::new(90.0, 90.0), 12.0).collect();
        assert_eq!(near_corner.len(), 3);
        assert!(!near_corner.contains(&RegionId { x: 1, y: 1 }));
    }

    #[test]
    fn cells_cut_regions_and_a_disc_touches_only_nearby_cells() {
        let map = RegionMap::new(1024.0, 2, 2, vec![ServerId(1), ServerId(2), ServerId(3), ServerId(4)]);
        assert_eq!((map.cells_per_side(), map.cell_size()), (4, 256.0));
        assert_eq!(map.cell_at(Vec2::new(1030.0, 10.0)), Some(CellId { x: 4, y: 0 }));
        assert_eq!(map.region_of(CellId { x: 4, y: 0 }), RegionId { x: 1, y: 0 });
        assert_eq!(map.cell_owner(CellId { x: 7, y: 7 }), Some(ServerId(4)));
        assert_eq!(map.cell_owner(CellId { x: 8, y: 0 }), None);
        // 74 units west of the 1|2 border: a disc of 100 reaches one cell across, not the whole region.
        let across: Vec<_> = map
            .cells_within(Vec2::new(950.0, 384.0), 100.0)
            .filter(|&c| map.cell_owner(c) == Some(ServerId(2)))
            .collect();

        assert_eq!(across, vec![CellId { x: 4, y: 1 }]);
        // A region smaller than a cell is one cell.
        assert_eq!(quad().cells_per_side(), 1);
    }

    #[test]
    fn tether_keeps_a_player_just_over_the_border() {
        let map = quad();
        assert!(map.within_tether(ServerId(1), Vec2::new(104.0, 50.0), 5.0));
        assert!(!map.within_tether(ServerId(1), Vec2::new(106.0, 50.0), 5.0));
        assert!(map.within_tether(ServerId(2), Vec2::new(106.0, 50.0), 5.0));
    }
}
