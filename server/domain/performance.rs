//! An agent's performance over a period (GetAgentPerformance): the rates drawn from the period's
//! figures. The figures themselves are sums of the daily rows (`store::scores`) and of the raw
//! facts; only the ratios are rules.
//!
//! Decisions:
//! - Promise kept rate: kept / (kept + partially kept + broken) over the promises made in the
//!   period, by their status now; pending and cancelled promises are not judged yet. 0 when
//!   none is judged.
//! - Mission completion rate: done / (done + failed) over the period's missions; planned, in
//!   progress and cancelled ones are not finished. 0 when none is finished.
//! - Collection rate on assigned arrears: money collected in the period (net of reversals) over
//!   the arrears, at the start of the period, of the tenants the agent had missions for in the
//!   period; within 0..1, 0 when those arrears are 0 (`domain::daily::collection_rate`).

use super::daily::collection_rate;

/// How the promises made in a period stand now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PromiseOutcomes {
    pub kept: i64,
    pub partially_kept: i64,
    pub broken: i64,
}

impl PromiseOutcomes {
    /// kept / (kept + partially kept + broken), 0..1; 0 when none is judged.
    pub fn kept_rate(&self) -> f64 {
        ratio(self.kept, self.kept + self.partially_kept + self.broken)
    }
}

/// done / (done + failed), 0..1; 0 when no mission is finished.
pub fn mission_completion_rate(done: i64, failed: i64) -> f64 {
    ratio(done, done + failed)
}

/// Collected (GNF, net of reversals) over the assigned arrears (GNF), capped to 0..1; 0 when
/// nothing was assigned.
pub fn assigned_collection_rate(collected_gnf: i64, assigned_arrears_gnf: i64) -> f64 {
    collection_rate(collected_gnf, assigned_arrears_gnf)
}

fn ratio(part: i64, whole: i64) -> f64 {
    if whole <= 0 || part <= 0 {
        return 0.0;
    }
    #[allow(clippy::cast_precision_loss)]
    let rate = part as f64 / whole as f64;
    rate.min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_judge_only_what_is_finished() {
        let outcomes = PromiseOutcomes {
            kept: 1,
            partially_kept: 1,
            broken: 2,
        };
        assert_eq!(outcomes.kept_rate(), 0.25);
        assert_eq!(PromiseOutcomes::default().kept_rate(), 0.0);
        assert_eq!(mission_completion_rate(3, 1), 0.75);
        assert_eq!(mission_completion_rate(0, 0), 0.0);
        assert_eq!(mission_completion_rate(0, 4), 0.0);
    }

    #[test]
    fn the_collection_rate_on_assigned_arrears_is_capped() {
        assert_eq!(assigned_collection_rate(250_000, 1_000_000), 0.25);
        assert_eq!(assigned_collection_rate(3_000_000, 1_000_000), 1.0);
        assert_eq!(assigned_collection_rate(-50_000, 1_000_000), 0.0);
        assert_eq!(assigned_collection_rate(50_000, 0), 0.0);
    }
}
