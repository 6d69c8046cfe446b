//! The region map: the world is a grid of square regions, each owned by exactly one
//! game server. Answers where a point is, who owns it, what lies within a radius, and
//! whether a player is still inside its owner's tether (the hysteresis margin that stops
//! a player standing on a border from flapping between servers). Each region is cut
//! into cells, the unit servers subscribe to across borders: a server sees the strip of
//! a neighbour's region that its players can see, not the whole region.
//!
//! A map is valid by construction: [`RegionMap::try_new`] and decoding (a player gets its
//! map from a proxy) both refuse a grid that is empty, too large to index or to draw,
//! or whose owners do not fill it, so no method here can index out of bounds, overflow
//! a cell coordinate, or lose whole units to `f32` rounding.

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

/// The most regions a world may have: far beyond any cluster (a region is a server's
/// worth of world), and few enough that a client drawing each one, or a gate counting a
/// server's cells, does little work whatever a proxy sends it.
pub const MAX_REGIONS: usize = 4096;

/// The widest a world may be, in world units: 2^24, the last width where an `f32`
/// position still resolves whole units, so no border or tether check is lost to rounding.
pub const MAX_WORLD_SIZE: f32 = 16_777_216.0;

/// Why a grid cannot be a world.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MapError {
    #[error("the world needs at least one region and a positive, finite region size")]
    EmptyWorld,
    #[error("the world has {0} regions; at most {MAX_REGIONS}")]
    TooManyRegions(usize),
    #[error("the world is {0} cells a side (regions are cut into cells of at least 256 units); at most 65535")]
    TooManyCells(u32),
    #[error("the world is {0} units wide; at most {MAX_WORLD_SIZE}")]
    TooWide(f32),
    #[error("{owners} owners for {regions} regions")]
    Owners { owners: usize, regions: usize },
}

/// The world's regions and their owners. Built from a validated cluster file, and sent
/// to clients on login so they can draw borders and the minimap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RegionMapParts")]
pub struct RegionMap {
    region_size: f32,
    columns: u16,
    rows: u16,
    /// Row-major: `owners[y * columns + x]`.
    owners: Vec<ServerId>,
}

/// A map as it arrives, before [`RegionMap::try_new`] has checked it.
#[derive(Deserialize)]
struct RegionMapParts {
    region_size: f32,
    columns: u16,
    rows: u16,
    owners: Vec<ServerId>,
}

impl TryFrom<RegionMapParts> for RegionMap {
    type Error = MapError;

    fn try_from(parts: RegionMapParts) -> Result<Self, MapError> {
        Self::try_new(parts.region_size, parts.columns, parts.rows, parts.owners)
    }
}

impl RegionMap {
    /// A map known to be valid (a validated cluster file's, a test's): see [`Self::try_new`].
    ///
    /// # Panics
    /// On a map `try_new` refuses. Anything from the network goes through `try_new`.
    pub fn new(region_size: f32, columns: u16, rows: u16, owners: Vec<ServerId>) -> Self {
        Self::try_new(region_size, columns, rows, owners).unwrap_or_else(|err| panic!("an invalid region map: {err}"))
    }

    /// A map whose `owners` are given row-major, one for each of the `columns * rows`
    /// regions of a grid [`Self::check_grid`] accepts.
    pub fn try_new(region_size: f32, columns: u16, rows: u16, owners: Vec<ServerId>) -> Result<Self, MapError> {
        let regions = Self::check_grid(region_size, columns, rows)?;
        if owners.len() != regions {
            return Err(MapError::Owners { owners: owners.len(), regions });
        }
        Ok(Self { region_size, columns, rows, owners })
    }

    /// Whether `columns × rows` regions of `region_size` make a world every method of a
    /// map can serve; the number of regions if so.
    pub fn check_grid(region_size: f32, columns: u16, rows: u16) -> Result<usize, MapError> {
        if columns == 0 || rows == 0 || !(region_size > 0.0 && region_size.is_finite()) {
            return Err(MapError::EmptyWorld);
        }
        let cells_a_side = u32::from(columns.max(rows)) * u32::from(cells_per_side(region_size));
        if cells_a_side > u32::from(u16::MAX) {
            return Err(MapError::TooManyCells(cells_a_side));
        }
        let regions = usize::from(columns) * usize::from(rows);
        if regions > MAX_REGIONS {
            return Err(MapError::TooManyRegions(regions));
        }
        let width = f32::from(columns.max(rows)) * region_size;
        if width > MAX_WORLD_SIZE {
            return Err(MapError::TooWide(width));
        }
        Ok(regions)
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

    /// Where something at `position` moving at `velocity` is `dt` seconds later, and how
    /// it moves then: stopped along any axis the world's edge blocks. Servers simulate
    /// players with this and players predict themselves with it, so both agree.
    pub fn walk(&self, position: Vec2, velocity: Vec2, dt: f32) -> (Vec2, Vec2) {
        if velocity == Vec2::ZERO {
            return (position, velocity);
        }
        let unclamped = position + velocity * dt;
        let moved = self.clamp_to_world(unclamped);
        // Against the edge the velocity says what really moves, so whoever extrapolates
        // it agrees with where it is instead of being told again every tick.
        (moved, Vec2::select(moved.cmpne(unclamped), Vec2::ZERO, velocity))
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

    /// The lower and upper corners of `cell`.
    pub fn cell_bounds(&self, cell: CellId) -> (Vec2, Vec2) {
        let size = self.cell_size();
        let min = Vec2::new(f32::from(cell.x), f32::from(cell.y)) * size;
        (min, min + Vec2::splat(size))
    }

    /// How far `pos` is from `cell`: 0 inside it. [`Self::cells_within`] gives the cells
    /// this is at most its radius for.
    pub fn distance_to_cell(&self, pos: Vec2, cell: CellId) -> f32 {
        distance_to_square(pos, (cell.x, cell.y), self.cell_size())
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
    (y0..=y1)
        .flat_map(move |y| (x0..=x1).map(move |x| (x as u16, y as u16)))
        .filter(move |&square| distance_to_square(pos, square, side) <= radius)
}

/// How far `pos` is from the `square` of a grid of squares of `side`: 0 inside it.
fn distance_to_square(pos: Vec2, (x, y): (u16, u16), side: f32) -> f32 {
    let min = Vec2::new(f32::from(x), f32::from(y)) * side;
    pos.distance(pos.clamp(min, min + Vec2::splat(side)))
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
        assert_eq!(map.cell_bounds(CellId { x: 4, y: 1 }), (Vec2::new(1024.0, 256.0), Vec2::new(1280.0, 512.0)));
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
    fn grids_no_method_could_serve_are_refused() {
        let one = vec![ServerId(1)];
        for size in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert_eq!(RegionMap::try_new(size, 1, 1, one.clone()), Err(MapError::EmptyWorld));
        }
        assert_eq!(RegionMap::try_new(10.0, 0, 1, vec![]), Err(MapError::EmptyWorld));
        assert_eq!(RegionMap::try_new(10.0, 2, 2, one), Err(MapError::Owners { owners: 1, regions: 4 }));
        assert_eq!(RegionMap::check_grid(1024.0, 20_000, 1), Err(MapError::TooManyCells(80_000)));
        assert_eq!(RegionMap::check_grid(10.0, 65, 64), Err(MapError::TooManyRegions(65 * 64)));
        assert_eq!(RegionMap::check_grid(1e7, 2, 1), Err(MapError::TooWide(2e7)));
        assert_eq!(RegionMap::check_grid(8192.0, 64, 64), Ok(MAX_REGIONS));
    }

    #[test]
    fn a_decoded_map_is_checked_like_a_built_one() {
        use crate::framing::{decode_body, encoded_frame};
        // The same fields as a map, so any grid can be put on the wire.
        #[derive(Serialize)]
        struct Forged {
            region_size: f32,
            columns: u16,
            rows: u16,
            owners: Vec<ServerId>,
        }
        let decode = |forged: Forged| decode_body::<RegionMap>(&encoded_frame(&forged).unwrap()[4..]);
        let map = decode(Forged { region_size: 100.0, columns: 2, rows: 2, owners: vec![ServerId(1); 4] }).unwrap();
        assert_eq!(map.owner(RegionId { x: 1, y: 1 }), Some(ServerId(1)));
        // Too few owners: `owner` would index past the end.
        assert!(decode(Forged { region_size: 100.0, columns: 9, rows: 9, owners: vec![ServerId(1)] }).is_err());
        assert!(decode(Forged { region_size: f32::NAN, columns: 1, rows: 1, owners: vec![ServerId(1)] }).is_err());
    }

    #[test]
    fn tether_keeps_a_player_just_over_the_border() {
        let map = quad();
        assert!(map.within_tether(ServerId(1), Vec2::new(104.0, 50.0), 5.0));
        assert!(!map.within_tether(ServerId(1), Vec2::new(106.0, 50.0), 5.0));
        assert!(map.within_tether(ServerId(2), Vec2::new(106.0, 50.0), 5.0));
    }
}
