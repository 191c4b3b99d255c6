//! The closed tour the search works on: the caller's points, plus one dummy node for an open
//! path (Jonker & Volgenant's transformation, "Transforming asymmetric into symmetric traveling
//! salesman problems", 1983, in its common form for Hamiltonian paths).
//!
//! The dummy node sits between the end of the path and the start (node 0): its edge to the
//! start costs 0, its edge to the fixed end (if any) 0, and every other edge of it a constant
//! `big` larger than any path. A tour that does not hold the dummy between the start and an end
//! thus costs at least `big` more than any that does, so the search, which only accepts tours
//! no longer than the one it has, never leaves the valid ones; and among valid tours the cost is
//! the path's length plus a constant (`big` for a free end, 0 for a fixed one).

use super::Shape;
use super::matrix::DistanceMatrix;

/// The caller's matrix seen as a closed-tour problem, with the dummy node when the shape is
/// an open path.
pub(super) struct Graph<'a, M: ?Sized> {
    matrix: &'a M,
    n: usize,
    /// The dummy node (`n`) of an open path.
    dummy: bool,
    /// The fixed end of an open path.
    end: Option<usize>,
    big: i64,
}

impl<'a, M: DistanceMatrix + ?Sized> Graph<'a, M> {
    /// The graph of `shape` over `matrix`; [`set_longest`](Self::set_longest) must follow
    /// before any distance to the dummy node is read.
    pub(super) fn new(matrix: &'a M, shape: Shape) -> Self {
        let n = matrix.len();
        let (dummy, end) = match shape {
            Shape::Closed => (false, None),
            Shape::Open => (true, None),
            Shape::OpenTo(end) => (true, Some(end)),
        };
        Self {
            matrix,
            n,
            dummy,
            end,
            big: 0,
        }
    }

    /// Sets `big` from the longest distance of the matrix (any upper bound will do): more than
    /// any path through all the points.
    pub(super) fn set_longest(&mut self, max_dist: i64) {
        self.big = max_dist
            .max(1)
            .saturating_mul(self.n as i64 + 1)
            .saturating_add(1);
    }

    /// Number of the caller's points.
    pub(super) fn points(&self) -> usize {
        self.n
    }

    /// Number of nodes of the tour: the points and the dummy node.
    pub(super) fn size(&self) -> usize {
        self.n + usize::from(self.dummy)
    }

    /// The dummy node, for an open path.
    pub(super) fn dummy(&self) -> Option<usize> {
        self.dummy.then_some(self.n)
    }

    /// True for the points the dummy node links at no cost: the start, and the fixed end.
    pub(super) fn touches_dummy(&self, a: usize) -> bool {
        self.dummy && (a == 0 || Some(a) == self.end)
    }

    /// What a valid tour costs more than its path: `big` for a free end, else 0.
    pub(super) fn offset(&self) -> i64 {
        if self.dummy && self.end.is_none() {
            self.big
        } else {
            0
        }
    }

    /// Distance between two of the caller's points.
    #[inline]
    pub(super) fn matrix_dist(&self, i: usize, j: usize) -> i64 {
        self.matrix.dist(i, j)
    }

    /// Distance between two nodes of the tour.
    #[inline]
    pub(super) fn dist(&self, i: usize, j: usize) -> i64 {
        if self.dummy && (i == self.n || j == self.n) {
            let other = if i == self.n { j } else { i };
            if other == self.n || self.touches_dummy(other) {
                0
            } else {
                self.big
            }
        } else {
            self.matrix.dist(i, j)
        }
    }

    /// Length of the closed tour `order`.
    pub(super) fn tour_cost(&self, order: impl IntoIterator<Item = usize>) -> i64 {
        let mut order = order.into_iter();
        let Some(first) = order.next() else { return 0 };
        let (mut total, mut last) = (0, first);
        for node in order {
            total += self.dist(last, node);
            last = node;
        }
        total + self.dist(last, first)
    }
}
