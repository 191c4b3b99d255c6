//! Local search (2-opt and Or-opt over candidate lists, with a queue of active nodes standing
//! for don't-look bits) and the iterated local search around it.

use std::collections::VecDeque;

use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::construct::Candidates;
use super::graph::Graph;
use super::matrix::DistanceMatrix;
use super::tour::Tour;

/// Longest segment Or-opt moves (Or, 1976: segments of 1, 2 and 3 nodes).
const OR_OPT_MAX: usize = 3;

/// The best move found around one node.
#[derive(Debug, Clone, Copy)]
enum Move {
    /// Remove `{a, b}` and `{c, d}`, add `{a, c}` and `{b, d}`.
    TwoOpt {
        a: usize,
        b: usize,
        c: usize,
        d: usize,
    },
    /// Move the segment `s1 … sl` (between `p` and `n`) between `x` and `y`, `s1` next to `x`
    /// when `keep` (the segment's direction is kept), else `sl` next to `x`.
    OrOpt {
        p: usize,
        s1: usize,
        sl: usize,
        n: usize,
        x: usize,
        y: usize,
        keep: bool,
    },
}

/// The working state of one search.
pub(super) struct Search<'g, 'm, M: ?Sized> {
    graph: &'g Graph<'m, M>,
    candidates: &'g Candidates,
    pub(super) tour: Tour,
    queue: VecDeque<u32>,
    queued: Vec<bool>,
}

impl<'g, 'm, M: DistanceMatrix + ?Sized> Search<'g, 'm, M> {
    pub(super) fn new(
        graph: &'g Graph<'m, M>,
        candidates: &'g Candidates,
        order: &[usize],
    ) -> Self {
        let size = order.len();
        Self {
            graph,
            candidates,
            tour: Tour::new(order),
            queue: VecDeque::with_capacity(size),
            queued: vec![false; size],
        }
    }

    #[inline]
    fn d(&self, a: usize, b: usize) -> i64 {
        self.graph.dist(a, b)
    }

    /// Marks `a` for examination (clears its don't-look bit).
    pub(super) fn activate(&mut self, a: usize) {
        if !self.queued[a] {
            self.queued[a] = true;
            self.queue.push_back(a as u32);
        }
    }

    /// Improves the tour until no active node has an improving move; returns the total gain.
    pub(super) fn local_search(&mut self) -> i64 {
        let mut total = 0;
        while let Some(a) = self.queue.pop_front() {
            let a = a as usize;
            self.queued[a] = false;
            if let Some((gain, mv)) = self.best_move(a) {
                total += gain;
                self.apply(mv);
            }
        }
        total
    }

    /// The best improving 2-opt or Or-opt move that adds an edge from `a` to one of its
    /// candidates, with its gain.
    fn best_move(&self, a: usize) -> Option<(i64, Move)> {
        let mut best: Option<(i64, Move)> = None;
        let tour = &self.tour;
        // 2-opt (Croes 1958) with the neighbour-list and gain criterion of Johnson & McGeoch
        // (1997): the new edge {a, c} must be shorter than the removed {a, b}.
        for forward in [true, false] {
            let b = tour.step(a, forward);
            let ab = self.d(a, b);
            for (c, ac) in self.candidates.of(a) {
                let g1 = ab - ac;
                if g1 <= 0 {
                    break;
                }
                let d = tour.step(c, forward);
                if c == b || d == a {
                    continue;
                }
                let gain = g1 + self.d(c, d) - self.d(b, d);
                if gain > best.map_or(0, |(g, _)| g) {
                    best = Some((gain, Move::TwoOpt { a, b, c, d }));
                }
            }
        }
        // Or-opt (Or 1976): the segment of 1–3 nodes starting at `a` moves between a candidate
        // `c` of `a` and either tour neighbour of `c`, `a` next to `c`.
        let size = tour.len();
        for forward in [true, false] {
            let p = tour.step(a, !forward);
            let mut segment = [a; OR_OPT_MAX];
            for len in 1..=OR_OPT_MAX.min(size.saturating_sub(3)) {
                if len > 1 {
                    segment[len - 1] = tour.step(segment[len - 2], forward);
                }
                let segment = &segment[..len];
                let sl = segment[len - 1];
                let n = tour.step(sl, forward);
                let g0 = self.d(p, a) + self.d(sl, n) - self.d(p, n);
                if g0 <= 0 {
                    continue;
                }
                for (c, ac) in self.candidates.of(a) {
                    if ac >= g0 {
                        break;
                    }
                    if segment.contains(&c) {
                        continue;
                    }
                    for c_forward in [true, false] {
                        let e = tour.step(c, c_forward);
                        if segment.contains(&e) {
                            continue;
                        }
                        let gain = g0 + self.d(c, e) - ac - self.d(sl, e);
                        if gain > best.map_or(0, |(g, _)| g) {
                            // Seen in the segment's direction: c → e puts `a` after `c`
                            // (direction kept), e → c puts it before (reversed).
                            let (x, y, keep) = if c_forward == forward {
                                (c, e, true)
                            } else {
                                (e, c, false)
                            };
                            best = Some((
                                gain,
                                Move::OrOpt {
                                    p,
                                    s1: a,
                                    sl,
                                    n,
                                    x,
                                    y,
                                    keep,
                                },
                            ));
                        }
                    }
                }
            }
        }
        best
    }

    fn apply(&mut self, mv: Move) {
        match mv {
            Move::TwoOpt { a, b, c, d } => {
                self.tour.two_opt_move(a, b, c, d);
                for node in [a, b, c, d] {
                    self.activate(node);
                }
            }
            Move::OrOpt {
                p,
                s1,
                sl,
                n,
                x,
                y,
                keep,
            } => {
                self.or_move(p, s1, sl, n, x, y, keep);
                for node in [p, s1, sl, n, x, y] {
                    self.activate(node);
                }
            }
        }
    }

    /// Moves the segment `s1 … sl`, which runs from after `p` to before `n`, between `x` and
    /// `y` (where `y` follows `x` in the segment's direction): `x s1 … sl y` when `keep`, else
    /// `x sl … s1 y`. Two or three 2-opt moves (the segment-insertion case of 3-opt).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn or_move(
        &mut self,
        p: usize,
        s1: usize,
        sl: usize,
        n: usize,
        x: usize,
        y: usize,
        keep: bool,
    ) {
        // p s1 … sl n … x y  →  p x … n sl … s1 y
        self.tour.two_opt_move(p, s1, x, y);
        // →  p n … x sl … s1 y
        if x != n {
            self.tour.two_opt_move(p, x, n, sl);
        }
        // →  p n … x s1 … sl y
        if keep {
            self.tour.two_opt_move(x, sl, s1, y);
        }
    }

    /// The segment-swap double bridge (Martin, Otto & Felten 1991): `A B C D → A C B D` with
    /// `B` and `C` of 1 to `max_len` nodes each, from a random place, so that the kick stays
    /// local and only its six end nodes need re-examination. Returns the change of length.
    pub(super) fn kick(&mut self, rng: &mut ChaCha8Rng, max_len: usize) -> i64 {
        let size = self.tour.len();
        let max_len = max_len.min((size - 2) / 2).max(1);
        let start = rng.random_range(0..size as u32) as usize;
        let lb = 1 + rng.random_range(0..max_len as u32) as usize;
        let lc = 1 + rng.random_range(0..max_len as u32) as usize;
        let p0 = self.tour.position(start);
        let at = |k: usize| self.tour.at(p0 + k);
        let (p, s1, sl, n, x, y) = (
            at(0),
            at(1),
            at(lb),
            at(lb + 1),
            at(lb + lc),
            at(lb + lc + 1),
        );
        let delta = self.d(p, n) + self.d(x, s1) + self.d(sl, y)
            - self.d(p, s1)
            - self.d(sl, n)
            - self.d(x, y);
        // p B n … x y with B = s1 … sl and C = n … x: move B between x and y, direction kept.
        self.or_move(p, s1, sl, n, x, y, true);
        for node in [p, s1, sl, n, x, y] {
            self.activate(node);
        }
        delta
    }
}
