//! A cyclic tour as an array with a position index, changed only by reversals of paths, which
//! are journaled so that a rejected perturbation can be undone exactly.
//!
//! Every move of the search (2-opt, Or-opt, the double-bridge kick) is a short sequence of
//! 2-opt moves, and a 2-opt move is the reversal of one of the two paths it cuts the tour into:
//! the shorter one is reversed (Johnson & McGeoch, "The traveling salesman problem: a case
//! study in local optimization", 1997, section 3.3 on array representations). Reversing the
//! complement instead yields the same cycle read the other way, so moves are stated in terms of
//! edges (`{a1, a2}` and `{b1, b2}` become `{a1, b1}` and `{a2, b2}`), never of directions.

/// Visiting order of the nodes `0..n` and, for each node, its place in that order.
#[derive(Debug, Clone)]
pub(super) struct Tour {
    order: Vec<u32>,
    pos: Vec<u32>,
    /// Reversals `(first position, length)` since the last [`commit`](Tour::commit).
    journal: Vec<(u32, u32)>,
}

impl Tour {
    /// `order` must be a permutation of `0..order.len()`.
    pub(super) fn new(order: &[usize]) -> Self {
        let mut pos = vec![0; order.len()];
        for (i, &node) in order.iter().enumerate() {
            pos[node] = i as u32;
        }
        Self {
            order: order.iter().map(|&node| node as u32).collect(),
            pos,
            journal: Vec::new(),
        }
    }

    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    /// The node after `a`.
    #[inline]
    pub(super) fn next(&self, a: usize) -> usize {
        let p = self.pos[a] as usize + 1;
        self.order[if p == self.order.len() { 0 } else { p }] as usize
    }

    /// The node before `a`.
    #[inline]
    pub(super) fn prev(&self, a: usize) -> usize {
        let p = self.pos[a] as usize;
        self.order[if p == 0 { self.order.len() - 1 } else { p - 1 }] as usize
    }

    /// The node after `a` when `forward`, else the node before.
    #[inline]
    pub(super) fn step(&self, a: usize, forward: bool) -> usize {
        if forward { self.next(a) } else { self.prev(a) }
    }

    /// The node at position `p` (taken modulo the length).
    #[inline]
    pub(super) fn at(&self, p: usize) -> usize {
        self.order[p % self.order.len()] as usize
    }

    /// Position of `a` in the order.
    #[inline]
    pub(super) fn position(&self, a: usize) -> usize {
        self.pos[a] as usize
    }

    /// The 2-opt move that removes the edges `{a1, a2}` and `{b1, b2}` and adds `{a1, b1}` and
    /// `{a2, b2}`. Valid when `a2` follows `a1` and `b2` follows `b1` in the same direction.
    pub(super) fn two_opt_move(&mut self, a1: usize, a2: usize, b1: usize, b2: usize) {
        if self.next(a1) == a2 {
            debug_assert_eq!(self.next(b1), b2);
            // a1 → a2 … b1 → b2: reverse a2 … b1.
            self.reverse_path(a2, b1);
        } else {
            debug_assert_eq!(self.prev(a1), a2);
            debug_assert_eq!(self.prev(b1), b2);
            // a2 → a1 … b2 → b1: reverse a1 … b2.
            self.reverse_path(a1, b2);
        }
    }

    /// Reverses the path from `from` forward to `to`, or the rest of the cycle when that is
    /// shorter (the same cycle either way).
    fn reverse_path(&mut self, from: usize, to: usize) {
        let n = self.order.len();
        let (i, j) = (self.pos[from] as usize, self.pos[to] as usize);
        let inner = (j + n - i) % n + 1;
        if 2 * inner <= n {
            self.reverse_at(i, inner);
        } else if inner < n {
            self.reverse_at((j + 1) % n, n - inner);
        }
    }

    fn reverse_at(&mut self, start: usize, len: usize) {
        if len < 2 {
            return;
        }
        self.journal.push((start as u32, len as u32));
        self.flip(start, len);
    }

    fn flip(&mut self, start: usize, len: usize) {
        let n = self.order.len();
        let (mut i, mut j) = (start, (start + len - 1) % n);
        for _ in 0..len / 2 {
            self.order.swap(i, j);
            self.pos[self.order[i] as usize] = i as u32;
            self.pos[self.order[j] as usize] = j as u32;
            i = if i + 1 == n { 0 } else { i + 1 };
            j = if j == 0 { n - 1 } else { j - 1 };
        }
    }

    /// Forgets the journal: the moves made so far are kept.
    pub(super) fn commit(&mut self) {
        self.journal.clear();
    }

    /// Undoes every move since the last [`commit`](Self::commit).
    pub(super) fn undo(&mut self) {
        while let Some((start, len)) = self.journal.pop() {
            self.flip(start as usize, len as usize);
        }
    }
}
