//! Distance matrices the solver reads: the [`DistanceMatrix`] trait, a dense implementation,
//! and two builders — great-circle (haversine) metres between WGS 84 points, and the TSPLIB
//! `EUC_2D` metric used by the benchmark.

use crate::domain::LatLng;

/// A symmetric matrix of non-negative distances between points `0..len()`.
///
/// The solver only ever calls [`dist`](Self::dist), so road distances from a routing engine
/// can replace the great-circle ones behind this trait. Requirements, which the solver relies
/// on but does not check: `dist(i, j) == dist(j, i)`, `dist(i, i) == 0`, `dist(i, j) >= 0`, and
/// every distance below 2^40 (in metres: far beyond any road).
pub trait DistanceMatrix {
    /// Number of points.
    fn len(&self) -> usize;

    /// Distance between points `i` and `j`, in the matrix's unit (metres for [`haversine`]).
    fn dist(&self, i: usize, j: usize) -> i64;

    /// True when the matrix has no point.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A full `n × n` matrix of whole units held as `u32`: up to 4,294,967,295, which in metres is
/// far more than the longest great-circle distance on Earth (20,037,509 m). 2,001 points take
/// 16 MB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenseMatrix {
    n: usize,
    cells: Vec<u32>,
}

impl DenseMatrix {
    /// Builds the matrix from `f(i, j)`, called once for each pair `i < j`; the diagonal is 0
    /// and the lower half mirrors the upper one.
    pub fn from_fn(n: usize, mut f: impl FnMut(usize, usize) -> u32) -> Self {
        let mut cells = vec![0; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let d = f(i, j);
                cells[i * n + j] = d;
                cells[j * n + i] = d;
            }
        }
        Self { n, cells }
    }
}

impl DistanceMatrix for DenseMatrix {
    fn len(&self) -> usize {
        self.n
    }

    #[inline]
    fn dist(&self, i: usize, j: usize) -> i64 {
        i64::from(self.cells[i * self.n + j])
    }
}

/// Great-circle distances between WGS 84 points, in whole metres (rounded to the nearest):
/// the haversine formula on a sphere of the mean Earth radius, 6,371,008.8 m (the `geo`
/// crate's `Haversine`, through [`LatLng::distance_m`]). Its error against the ellipsoid is
/// below 0.5 %, far less than the detours of real streets.
pub fn haversine(points: &[LatLng]) -> DenseMatrix {
    DenseMatrix::from_fn(points.len(), |i, j| {
        // At most 20,037,509 m: always fits a u32.
        points[i].distance_m(points[j]).round() as u32
    })
}

/// The TSPLIB `EUC_2D` metric (Reinelt, "TSPLIB 95", section 2.1): the Euclidean distance
/// between plane points rounded to the nearest integer, `nint(sqrt(dx² + dy²))`. Distances
/// beyond `u32::MAX` saturate.
pub fn euc_2d(points: &[(f64, f64)]) -> DenseMatrix {
    DenseMatrix::from_fn(points.len(), |i, j| {
        let (dx, dy) = (points[i].0 - points[j].0, points[i].1 - points[j].1);
        // `as` saturates (and maps NaN to 0); TSPLIB's nint is (int)(x + 0.5).
        (dx.hypot(dy) + 0.5) as u32
    })
}
