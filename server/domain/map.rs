//! The arrears map: boxes, zoom levels, which tenants in arrears a map request keeps, and the
//! grid clusters drawn when there are too many of them for one marker each.
//!
//! Decisions:
//! - A tenant's figures (outstanding, days overdue, bucket of the oldest unpaid charge) are the
//!   arrears rule's (`domain::arrears`, `domain::aging`); this module only filters and groups.
//! - Cells are squares of [`cell_size_deg`] degrees (same side in latitude and longitude) on a
//!   grid anchored at (-90, -180), so that a cell never straddles the antimeridian nor a pole
//!   and the same tenant falls in the same cell whatever box is asked for.
//! - Boxes crossing the antimeridian (west > east) are refused, as the API documents; a point
//!   at longitude 180 or latitude 90 falls in the last cell (nothing panics at the edges).

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use super::aging::Bucket;
use super::money::{Gnf, MoneyOverflow};
use super::presence::LatLng;

/// A rectangle on the map, from its south-west to its north-east corner (degrees), with
/// `south <= north` and `west <= east`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoBox {
    south_west: LatLng,
    north_east: LatLng,
}

/// Why two corners do not make a box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GeoBoxError {
    #[error("south_west must not be north of north_east")]
    SouthAboveNorth,
    #[error(
        "south_west must not be east of north_east (boxes crossing the antimeridian are not supported)"
    )]
    WestAboveEast,
}

impl GeoBox {
    /// The box between two valid corners.
    pub fn new(south_west: LatLng, north_east: LatLng) -> Result<Self, GeoBoxError> {
        if south_west.latitude() > north_east.latitude() {
            return Err(GeoBoxError::SouthAboveNorth);
        }
        if south_west.longitude() > north_east.longitude() {
            return Err(GeoBoxError::WestAboveEast);
        }
        Ok(Self {
            south_west,
            north_east,
        })
    }

    pub fn south_west(&self) -> LatLng {
        self.south_west
    }

    pub fn north_east(&self) -> LatLng {
        self.north_east
    }

    /// Whether `at` is inside or on the edge of the box.
    pub fn contains(&self, at: LatLng) -> bool {
        (self.south_west.latitude()..=self.north_east.latitude()).contains(&at.latitude())
            && (self.south_west.longitude()..=self.north_east.longitude()).contains(&at.longitude())
    }
}

/// A web-map zoom level, 0..=22 (0: the whole world in one 256-pixel tile).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Zoom(u8);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be between 0 and {}", Zoom::MAX)]
pub struct ZoomError;

impl Zoom {
    pub const MAX: u8 = 22;

    pub fn parse(level: i32) -> Result<Self, ZoomError> {
        u8::try_from(level)
            .ok()
            .filter(|level| *level <= Self::MAX)
            .map(Self)
            .ok_or(ZoomError)
    }

    pub fn level(self) -> u8 {
        self.0
    }
}

/// Cells per 256-pixel tile side: a cell is about 64 screen pixels wide, the size of a
/// cluster bubble.
pub const CELLS_PER_TILE: f64 = 4.0;

/// Side of a cluster cell in degrees at `zoom`: `360 / 2^zoom / CELLS_PER_TILE`, i.e. a
/// quarter of a web-map tile's width in longitude (tiles are `360 / 2^zoom` degrees wide, the
/// OpenStreetMap "slippy map" convention). 90° at zoom 0, about 0.0055° (600 m) at zoom 14,
/// about 0.000021° (2.4 m) at zoom 22. A power of two, so cell edges are exact.
pub fn cell_size_deg(zoom: Zoom) -> f64 {
    360.0 / f64::from(1_u32 << zoom.0) / CELLS_PER_TILE
}

/// How many markers a map answer may hold before it answers clusters instead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxMarkers(usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "must be between 0 (the default, {}) and {}",
    MaxMarkers::DEFAULT,
    MaxMarkers::MAX
)]
pub struct MaxMarkersError;

impl MaxMarkers {
    pub const DEFAULT: usize = 2_000;
    pub const MAX: usize = 5_000;

    /// 0: [`MaxMarkers::DEFAULT`]; 1..=[`MaxMarkers::MAX`] as given; anything else refused.
    pub fn parse(value: i32) -> Result<Self, MaxMarkersError> {
        match usize::try_from(value) {
            Ok(0) => Ok(Self(Self::DEFAULT)),
            Ok(n) if n <= Self::MAX => Ok(Self(n)),
            _ => Err(MaxMarkersError),
        }
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// Which tenants in arrears a map shows, beside where they are: owing at least
/// `min_outstanding` GNF, and, when `buckets` is not empty, whose oldest unpaid charge is in
/// one of them (a charge due today but not yet overdue has no bucket: it then never matches).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArrearsFilter {
    pub min_outstanding: Gnf,
    pub buckets: Vec<Bucket>,
}

impl ArrearsFilter {
    /// Whether a tenant owing `outstanding` (> 0: in arrears) whose oldest unpaid charge is in
    /// `bucket` is shown.
    pub fn keeps(&self, outstanding: Gnf, bucket: Option<Bucket>) -> bool {
        outstanding >= self.least_outstanding() && self.keeps_bucket(bucket)
    }

    /// The smallest outstanding amount kept: `min_outstanding`, and at least 1 GNF (in
    /// arrears). The amount half of [`ArrearsFilter::keeps`], for a database to apply.
    pub fn least_outstanding(&self) -> Gnf {
        self.min_outstanding.max(Gnf::new(1))
    }

    /// Whether a tenant whose oldest unpaid charge is in `bucket` is kept: the bucket half of
    /// [`ArrearsFilter::keeps`].
    pub fn keeps_bucket(&self, bucket: Option<Bucket>) -> bool {
        self.buckets.is_empty() || bucket.is_some_and(|b| self.buckets.contains(&b))
    }
}

/// A tenant on the map: where, how much and how old.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MapPoint {
    pub at: LatLng,
    pub outstanding: Gnf,
    pub bucket: Option<Bucket>,
}

/// The tenants of one grid cell.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cluster {
    /// Mean position of the cell's tenants (arithmetic mean of latitudes and of longitudes).
    pub center: LatLng,
    /// The cell.
    pub cell: GeoBox,
    pub tenant_count: i64,
    pub outstanding: Gnf,
    /// The oldest bucket found in the cell (`None` when none of them is overdue yet).
    pub worst_bucket: Option<Bucket>,
}

/// The cell (row from the south, column from the west) of `at` on the grid of `size` degrees
/// anchored at (-90, -180); the last row and column take the north and east edges.
pub fn cell_of(at: LatLng, size: f64) -> (i64, i64) {
    let row = ((at.latitude() + 90.0) / size).floor() as i64;
    let col = ((at.longitude() + 180.0) / size).floor() as i64;
    clamp_cell(row, col, size)
}

/// `(row, col)` cut to the grid of `size` degrees: the north and east edges (and anything
/// beyond) fall in the last row and column.
fn clamp_cell(row: i64, col: i64, size: f64) -> (i64, i64) {
    let rows = (180.0 / size).ceil() as i64;
    let cols = (360.0 / size).ceil() as i64;
    (row.clamp(0, rows - 1), col.clamp(0, cols - 1))
}

/// The box of cell `(row, col)` on the grid of `size` degrees (cut at the poles and at 180°).
pub fn cell_box(row: i64, col: i64, size: f64) -> GeoBox {
    let south = (-90.0 + row as f64 * size).clamp(-90.0, 90.0);
    let west = (-180.0 + col as f64 * size).clamp(-180.0, 180.0);
    let north = (south + size).min(90.0);
    let east = (west + size).min(180.0);
    match (LatLng::parse(south, west), LatLng::parse(north, east)) {
        (Ok(south_west), Ok(north_east)) => GeoBox {
            south_west,
            north_east,
        },
        // Unreachable: every coordinate is clamped into range above.
        _ => whole_world(),
    }
}

fn whole_world() -> GeoBox {
    GeoBox {
        south_west: LatLng::parse(-90.0, -180.0).unwrap_or_else(|_| unreachable!()),
        north_east: LatLng::parse(90.0, 180.0).unwrap_or_else(|_| unreachable!()),
    }
}

/// Some tenants of one grid cell whose oldest unpaid charges share a bucket, summed up: what
/// [`clusters_of_sums`] merges into clusters. A database computes them with `row =
/// floor((latitude + 90) / size)` and `col = floor((longitude + 180) / size)` (IEEE double
/// arithmetic, as [`cell_of`] before its clamp), one per (cell, bucket) or finer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellSum {
    /// The cell on the grid of `size` degrees, before [`cell_of`]'s clamp at the north and
    /// east edges (applied when merging).
    pub row: i64,
    pub col: i64,
    pub bucket: Option<Bucket>,
    /// How many tenants (cells of 0 are left out).
    pub tenant_count: i64,
    pub outstanding: Gnf,
    /// Sums of their latitudes and longitudes (degrees).
    pub sum_latitude: f64,
    pub sum_longitude: f64,
    /// Their smallest and largest (latitude, longitude).
    pub min: (f64, f64),
    pub max: (f64, f64),
}

impl CellSum {
    /// One tenant's share of its cell on the grid of `size` degrees.
    pub fn of_point(point: &MapPoint, size: f64) -> Self {
        let (row, col) = cell_of(point.at, size);
        let (lat, lon) = (point.at.latitude(), point.at.longitude());
        Self {
            row,
            col,
            bucket: point.bucket,
            tenant_count: 1,
            outstanding: point.outstanding,
            sum_latitude: lat,
            sum_longitude: lon,
            min: (lat, lon),
            max: (lat, lon),
        }
    }
}

/// Groups `points` by grid cell of `size` degrees ([`cell_size_deg`]): the non-empty cells,
/// south to north then west to east. Errors when a cell's total overflows.
pub fn clusters(points: &[MapPoint], size: f64) -> Result<Vec<Cluster>, MoneyOverflow> {
    clusters_of_sums(points.iter().map(|p| CellSum::of_point(p, size)), size)
}

/// Merges partial sums into the clusters of the grid of `size` degrees: per cell, the count
/// and the outstanding amount are the sums of its parts, the worst bucket the oldest of
/// theirs, the center the mean of every tenant's position (kept within their range, whatever
/// the rounding). The non-empty cells, south to north then west to east, as [`clusters`]
/// answers for the same tenants (up to the rounding of the position sums). Errors when a
/// cell's total overflows.
pub fn clusters_of_sums(
    sums: impl IntoIterator<Item = CellSum>,
    size: f64,
) -> Result<Vec<Cluster>, MoneyOverflow> {
    let mut cells: BTreeMap<(i64, i64), CellSum> = BTreeMap::new();
    for part in sums.into_iter().filter(|part| part.tenant_count > 0) {
        let key = clamp_cell(part.row, part.col, size);
        match cells.entry(key) {
            Entry::Vacant(slot) => {
                slot.insert(part);
            }
            Entry::Occupied(mut slot) => {
                let cell = slot.get_mut();
                cell.tenant_count += part.tenant_count;
                cell.outstanding = cell.outstanding.try_add(part.outstanding)?;
                cell.bucket = cell.bucket.max(part.bucket);
                cell.sum_latitude += part.sum_latitude;
                cell.sum_longitude += part.sum_longitude;
                cell.min = (cell.min.0.min(part.min.0), cell.min.1.min(part.min.1));
                cell.max = (cell.max.0.max(part.max.0), cell.max.1.max(part.max.1));
            }
        }
    }
    Ok(cells
        .into_iter()
        .map(|((row, col), cell)| {
            let n = cell.tenant_count as f64;
            // Kept within the points' own range: rounding cannot push the mean out of it (not
            // `clamp`, which panics on sums that would not hold min <= max).
            let lat = (cell.sum_latitude / n).max(cell.min.0).min(cell.max.0);
            let lon = (cell.sum_longitude / n).max(cell.min.1).min(cell.max.1);
            let cell_box = cell_box(row, col, size);
            Cluster {
                center: LatLng::parse(lat, lon).unwrap_or(cell_box.south_west),
                cell: cell_box,
                tenant_count: cell.tenant_count,
                outstanding: cell.outstanding,
                worst_bucket: cell.bucket,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(latitude: f64, longitude: f64) -> LatLng {
        LatLng::parse(latitude, longitude).expect("valid position")
    }

    fn point(latitude: f64, longitude: f64, gnf: i64, bucket: Option<Bucket>) -> MapPoint {
        MapPoint {
            at: at(latitude, longitude),
            outstanding: Gnf::new(gnf),
            bucket,
        }
    }

    #[test]
    fn zoom_sets_the_cell_size() {
        assert_eq!(Zoom::parse(-1), Err(ZoomError));
        assert_eq!(Zoom::parse(23), Err(ZoomError));
        assert_eq!(Zoom::parse(22).map(Zoom::level), Ok(22));
        let size = |level| cell_size_deg(Zoom::parse(level).expect("zoom"));
        assert_eq!(size(0), 90.0);
        assert_eq!(size(1), 45.0);
        assert_eq!(size(14), 360.0 / 16_384.0 / 4.0);
        assert_eq!(size(22), 360.0 / 4_194_304.0 / 4.0);
        // About 600 m of latitude at zoom 14 (111.32 km per degree).
        assert!((size(14) * 111_320.0 - 611.5).abs() < 1.0);
    }

    #[test]
    fn max_markers_defaults_and_bounds() {
        assert_eq!(MaxMarkers::parse(0).map(MaxMarkers::get), Ok(2_000));
        assert_eq!(MaxMarkers::parse(1).map(MaxMarkers::get), Ok(1));
        assert_eq!(MaxMarkers::parse(5_000).map(MaxMarkers::get), Ok(5_000));
        assert_eq!(MaxMarkers::parse(5_001), Err(MaxMarkersError));
        assert_eq!(MaxMarkers::parse(-1), Err(MaxMarkersError));
    }

    #[test]
    fn boxes_are_south_west_to_north_east() {
        let b = GeoBox::new(at(9.4, -13.8), at(9.7, -13.5)).expect("box");
        assert!(b.contains(at(9.5, -13.7)));
        assert!(b.contains(at(9.4, -13.5)), "edges are inside");
        assert!(!b.contains(at(9.8, -13.7)));
        assert!(!b.contains(at(9.5, -13.4)));
        assert_eq!(
            GeoBox::new(at(9.7, -13.8), at(9.4, -13.5)),
            Err(GeoBoxError::SouthAboveNorth)
        );
        assert_eq!(
            GeoBox::new(at(9.4, 170.0), at(9.7, -170.0)),
            Err(GeoBoxError::WestAboveEast)
        );
        assert!(
            GeoBox::new(at(9.5, -13.7), at(9.5, -13.7)).is_ok(),
            "a point"
        );
    }

    #[test]
    fn points_fall_in_half_open_cells() {
        // Cells of 1/8 degree from (-90, -180): 9.5 is exactly an edge (row 796).
        let size = 0.125;
        assert_eq!(cell_of(at(9.5, -13.75), size), (796, 1330));
        assert_eq!(cell_of(at(9.499_999, -13.750_001), size), (795, 1329));
        assert_eq!(cell_of(at(-90.0, -180.0), size), (0, 0));
        // The north and east edges of the world belong to the last cell.
        assert_eq!(cell_of(at(90.0, 180.0), size), (1_439, 2_879));
        let last = cell_box(1_439, 2_879, size);
        assert_eq!(last.north_east(), at(90.0, 180.0));
        assert!(last.contains(at(90.0, 180.0)));
        let b = cell_box(796, 1330, size);
        assert_eq!(
            (b.south_west(), b.north_east()),
            (at(9.5, -13.75), at(9.625, -13.625))
        );
    }

    #[test]
    fn clusters_count_sum_and_average_per_cell() {
        let size = 0.125;
        let points = [
            point(9.51, -13.74, 100, Some(Bucket::Days0To30)),
            point(9.53, -13.70, 300, Some(Bucket::Over90)),
            point(9.52, -13.72, 200, None),
            point(9.40, -13.74, 50, None), // the cell south of the others
        ];
        let found = clusters(&points, size).expect("no overflow");
        assert_eq!(found.len(), 2);
        let south = &found[0];
        assert_eq!(
            (south.tenant_count, south.outstanding, south.worst_bucket),
            (1, Gnf::new(50), None)
        );
        assert_eq!(south.center, at(9.40, -13.74));
        assert_eq!(south.cell.south_west(), at(9.375, -13.75));
        let north = &found[1];
        assert_eq!(
            (north.tenant_count, north.outstanding, north.worst_bucket),
            (3, Gnf::new(600), Some(Bucket::Over90))
        );
        assert!((north.center.latitude() - 9.52).abs() < 1e-12);
        assert!((north.center.longitude() + 13.72).abs() < 1e-12);
        assert!(north.cell.contains(north.center));
        assert_eq!(clusters(&[], size), Ok(Vec::new()));
        let huge = [
            point(9.5, -13.7, i64::MAX, None),
            point(9.5, -13.7, 1, None),
        ];
        assert_eq!(clusters(&huge, size), Err(MoneyOverflow));
    }

    #[test]
    fn clusters_at_the_edges_of_the_world_do_not_panic() {
        for level in 0..=Zoom::MAX {
            let size = cell_size_deg(Zoom(level));
            let points = [
                point(90.0, 180.0, 1, None),
                point(-90.0, -180.0, 1, None),
                point(0.0, 180.0, 1, None),
                point(0.0, -180.0, 1, None),
                point(89.999_999_999, 179.999_999_999, 1, None),
            ];
            let found = clusters(&points, size).expect("clusters");
            assert_eq!(found.iter().map(|c| c.tenant_count).sum::<i64>(), 5);
            for cluster in &found {
                assert!(cluster.cell.contains(cluster.center), "zoom {level}");
            }
        }
    }

    #[test]
    fn the_filter_keeps_tenants_owing_enough_in_the_buckets_asked() {
        let all = ArrearsFilter::default();
        assert!(all.keeps(Gnf::new(1), None));
        assert!(!all.keeps(Gnf::ZERO, None), "not in arrears");
        let some = ArrearsFilter {
            min_outstanding: Gnf::new(500),
            buckets: vec![Bucket::Days61To90, Bucket::Over90],
        };
        assert!(some.keeps(Gnf::new(500), Some(Bucket::Over90)));
        assert!(!some.keeps(Gnf::new(499), Some(Bucket::Over90)));
        assert!(!some.keeps(Gnf::new(900), Some(Bucket::Days0To30)));
        assert!(!some.keeps(Gnf::new(900), None));
    }

    /// What a database answers: per (cell, bucket), sums over the points, with the row and
    /// column before the clamp.
    fn sums_by_cell_and_bucket(points: &[MapPoint], size: f64) -> Vec<CellSum> {
        let mut sums: BTreeMap<(i64, i64, Option<Bucket>), CellSum> = BTreeMap::new();
        for p in points {
            let (lat, lon) = (p.at.latitude(), p.at.longitude());
            let row = ((lat + 90.0) / size).floor() as i64;
            let col = ((lon + 180.0) / size).floor() as i64;
            let one = CellSum {
                row,
                col,
                ..CellSum::of_point(p, size)
            };
            sums.entry((row, col, p.bucket))
                .and_modify(|s| {
                    s.tenant_count += 1;
                    s.outstanding = s.outstanding.try_add(p.outstanding).expect("no overflow");
                    s.sum_latitude += lat;
                    s.sum_longitude += lon;
                    s.min = (s.min.0.min(lat), s.min.1.min(lon));
                    s.max = (s.max.0.max(lat), s.max.1.max(lon));
                })
                .or_insert(one);
        }
        sums.into_values().collect()
    }

    /// Same cells, counts, amounts and buckets; centers equal up to the order of the sums.
    fn assert_same_clusters(direct: &[Cluster], merged: &[Cluster]) {
        assert_eq!(direct.len(), merged.len());
        for (d, m) in direct.iter().zip(merged) {
            assert_eq!(
                (d.cell, d.tenant_count, d.outstanding, d.worst_bucket),
                (m.cell, m.tenant_count, m.outstanding, m.worst_bucket)
            );
            assert!((d.center.latitude() - m.center.latitude()).abs() < 1e-9);
            assert!((d.center.longitude() - m.center.longitude()).abs() < 1e-9);
        }
    }

    #[test]
    fn sums_per_cell_and_bucket_merge_into_the_same_clusters() {
        let size = 0.125;
        let points = [
            point(9.51, -13.74, 100, Some(Bucket::Days0To30)),
            point(9.53, -13.70, 300, Some(Bucket::Over90)),
            point(9.52, -13.72, 200, None),
            point(9.52, -13.73, 250, Some(Bucket::Days0To30)),
            point(9.40, -13.74, 50, None),
            point(90.0, 180.0, 7, None),
            point(89.95, 179.95, 8, Some(Bucket::Days31To60)),
        ];
        let sums = sums_by_cell_and_bucket(&points, size);
        assert_eq!(sums.len(), 6, "two parts for one cell, the edge unclamped");
        let merged = clusters_of_sums(sums, size).expect("no overflow");
        assert_same_clusters(&clusters(&points, size).expect("no overflow"), &merged);
        let last = merged.last().expect("the north-east cell");
        assert_eq!(
            (last.tenant_count, last.outstanding, last.worst_bucket),
            (2, Gnf::new(15), Some(Bucket::Days31To60))
        );
        // Empty parts are left out; overflow is an error.
        let empty = CellSum {
            tenant_count: 0,
            ..CellSum::of_point(&points[0], size)
        };
        assert_eq!(clusters_of_sums([empty], size), Ok(Vec::new()));
        let huge = [
            point(9.5, -13.7, i64::MAX, None),
            point(9.5, -13.7, 1, Some(Bucket::Over90)),
        ];
        assert_eq!(
            clusters_of_sums(sums_by_cell_and_bucket(&huge, size), size),
            Err(MoneyOverflow)
        );
    }

    proptest::proptest! {
        #[test]
        fn merged_sums_agree_with_the_clusters_of_the_points(
            raw in proptest::collection::vec(
                (-90.0_f64..=90.0, -180.0_f64..=180.0, 1_i64..1_000_000, 0_usize..5),
                0..60,
            ),
            zoom in 0_u8..=Zoom::MAX,
        ) {
            let size = cell_size_deg(Zoom(zoom));
            let points: Vec<MapPoint> = raw
                .iter()
                .map(|&(lat, lon, gnf, b)| point(lat, lon, gnf, Bucket::ALL.get(b).copied()))
                .collect();
            let direct = clusters(&points, size).expect("no overflow");
            let merged =
                clusters_of_sums(sums_by_cell_and_bucket(&points, size), size).expect("no overflow");
            assert_same_clusters(&direct, &merged);
        }
    }
}
