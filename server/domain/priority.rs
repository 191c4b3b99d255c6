//! Which tenants the daily plan visits, and in which order of urgency: the candidate rules and
//! the priority formula of mission planning.
//!
//! Decisions:
//! - A tenant is a candidate on the mission day when (any of) their outstanding amount is at
//!   least the threshold (ARREARS), a pending promise falls due that day (PROMISE_DUE: the
//!   follow-up visit), or a promise of theirs was broken and not followed by a contact since
//!   (PROMISE_BROKEN). A candidate by arrears alone is skipped while a promise of theirs is
//!   pending and not yet due (the agent would only hear the same promise again), and any
//!   candidate contacted in the last `recent_contact_days` days is skipped, except for a
//!   promise falling due (the follow-up is the point of the promise).
//! - The priority is a sum of four bounded terms, each in points (see [`priority`]): the
//!   amount on a log scale, so that one very large debt does not crowd out every other tenant
//!   of a site; the age of the oldest unpaid charge, linear and capped at 180 days (beyond
//!   that, the rank among old debts is the amount's); broken promises, strongly and capped at
//!   three (a tenant who broke three promises needs a supervisor more than a fourth visit);
//!   the days since the last contact, capped at 60 (never contacted counts as 60). A promise
//!   falling due adds a fixed bonus so that follow-ups come first among equals. Scores are
//!   comparable across sites and days, and the terms are shown to the phone as reasons.
//! - The weights were set so that each term can move a tenant across the others' typical
//!   spread: 1,000,000 GNF outstanding (two months of a modest rent) is worth 20 points, as
//!   are 120 days overdue, a broken promise 10 and 80 days without contact.

use chrono::NaiveDate;

/// Why a tenant was picked (the proto's `MissionReason`, without MANUAL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum MissionReason {
    /// Outstanding at or above the threshold.
    Arrears,
    /// A pending promise falls due on the mission day.
    PromiseDue,
    /// A promise was broken and nobody has contacted the tenant since.
    PromiseBroken,
    /// No contact within [`NO_RECENT_CONTACT_DAYS`] days.
    NoRecentContact,
}

impl MissionReason {
    pub const ALL: [MissionReason; 4] = [
        MissionReason::Arrears,
        MissionReason::PromiseDue,
        MissionReason::PromiseBroken,
        MissionReason::NoRecentContact,
    ];

    /// The database spelling (`missions.reasons`).
    pub fn as_str(self) -> &'static str {
        match self {
            MissionReason::Arrears => "arrears",
            MissionReason::PromiseDue => "promise_due",
            MissionReason::PromiseBroken => "promise_broken",
            MissionReason::NoRecentContact => "no_recent_contact",
        }
    }

    /// The reason of a database spelling; `None` for an unknown one.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == value)
    }
}

/// Days without contact after which NO_RECENT_CONTACT is added to the reasons.
pub const NO_RECENT_CONTACT_DAYS: i64 = 30;

/// What the planner knows of a tenant on the mission day (all from the ledger, promises and
/// interactions as of that day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantFacts {
    /// Sum of the unpaid parts of the charges due on or before the day, GNF (≥ 0).
    pub outstanding_gnf: i64,
    /// Due date of the oldest unpaid charge, if any.
    pub oldest_unpaid_due_date: Option<NaiveDate>,
    /// Promises broken (their date passed without full payment) and not yet followed by a
    /// contact.
    pub broken_promises: u32,
    /// A pending promise falls due on the mission day.
    pub promise_due: bool,
    /// A pending promise falls due after the mission day.
    pub promise_pending_later: bool,
    /// Day of the last call or visit, if any.
    pub last_contact: Option<NaiveDate>,
}

/// The configurable part of the candidate rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CandidateRules {
    /// Outstanding at or above which a tenant qualifies by arrears, GNF (≥ 1).
    pub min_outstanding_gnf: i64,
    /// A tenant contacted in the last this many days (the mission day excluded) is skipped,
    /// unless a promise of theirs falls due. 0: never skipped.
    pub recent_contact_days: i64,
}

impl Default for CandidateRules {
    /// 50,000 GNF, 3 days.
    fn default() -> Self {
        Self {
            min_outstanding_gnf: 50_000,
            recent_contact_days: 3,
        }
    }
}

/// Whether the tenant is a candidate on `day`, with the reasons (sorted, never empty) when
/// they are. See the module's decisions.
pub fn select(
    facts: &TenantFacts,
    day: NaiveDate,
    rules: &CandidateRules,
) -> Option<Vec<MissionReason>> {
    let arrears = facts.outstanding_gnf >= rules.min_outstanding_gnf.max(1);
    let broken = facts.broken_promises > 0 && facts.outstanding_gnf > 0;
    let due = facts.promise_due;
    let since_contact = days_since_contact(facts, day);
    if !due {
        if !broken && (!arrears || facts.promise_pending_later) {
            return None;
        }
        if since_contact.is_some_and(|days| days < rules.recent_contact_days) {
            return None;
        }
    }
    let mut reasons = Vec::with_capacity(4);
    if arrears {
        reasons.push(MissionReason::Arrears);
    }
    if due {
        reasons.push(MissionReason::PromiseDue);
    }
    if broken {
        reasons.push(MissionReason::PromiseBroken);
    }
    if since_contact.is_none_or(|days| days >= NO_RECENT_CONTACT_DAYS) {
        reasons.push(MissionReason::NoRecentContact);
    }
    Some(reasons)
}

/// Whole days from the last contact to `day` (0 for a contact on the day itself, or after it);
/// `None` when never contacted.
pub fn days_since_contact(facts: &TenantFacts, day: NaiveDate) -> Option<i64> {
    facts
        .last_contact
        .map(|last| (day - last).num_days().max(0))
}

/// Points of the amount term per decade of outstanding (in units of 10,000 GNF).
pub const AMOUNT_POINTS_PER_DECADE: f64 = 10.0;
/// Days overdue per point, and the cap.
pub const DAYS_OVERDUE_PER_POINT: f64 = 6.0;
pub const MAX_DAYS_OVERDUE: i64 = 180;
/// Points per broken promise, and the cap on the count.
pub const POINTS_PER_BROKEN_PROMISE: f64 = 10.0;
pub const MAX_BROKEN_PROMISES: u32 = 3;
/// Days without contact per point, and the cap (also the value for "never").
pub const DAYS_SINCE_CONTACT_PER_POINT: f64 = 4.0;
pub const MAX_DAYS_SINCE_CONTACT: i64 = 60;
/// Bonus of a promise falling due on the day.
pub const PROMISE_DUE_POINTS: f64 = 15.0;

/// The priority of a tenant on `day`, in points, higher first:
///
/// ```text
/// 10 · log10(1 + outstanding_gnf / 10,000)
/// + min(days overdue, 180) / 6
/// + 10 · min(broken promises, 3)
/// + min(days since last contact, 60) / 4        (never contacted: 60)
/// + 15 if a promise falls due on the day
/// ```
///
/// Finite, ≥ 0, and non-decreasing in each input (outstanding, days overdue, broken promises,
/// days since contact); at most 10·log10(1 + i64::MAX/10⁴) + 30 + 30 + 15 + 15 ≈ 240.
pub fn priority(facts: &TenantFacts, day: NaiveDate) -> f64 {
    let amount =
        AMOUNT_POINTS_PER_DECADE * (1.0 + facts.outstanding_gnf.max(0) as f64 / 10_000.0).log10();
    let overdue = facts
        .oldest_unpaid_due_date
        .map_or(0, |due| (day - due).num_days().clamp(0, MAX_DAYS_OVERDUE))
        as f64
        / DAYS_OVERDUE_PER_POINT;
    let broken =
        POINTS_PER_BROKEN_PROMISE * f64::from(facts.broken_promises.min(MAX_BROKEN_PROMISES));
    let contact = days_since_contact(facts, day)
        .unwrap_or(MAX_DAYS_SINCE_CONTACT)
        .min(MAX_DAYS_SINCE_CONTACT) as f64
        / DAYS_SINCE_CONTACT_PER_POINT;
    let due = if facts.promise_due {
        PROMISE_DUE_POINTS
    } else {
        0.0
    };
    amount + overdue + broken + contact + due
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, d).unwrap()
    }

    fn facts() -> TenantFacts {
        TenantFacts {
            outstanding_gnf: 0,
            oldest_unpaid_due_date: None,
            broken_promises: 0,
            promise_due: false,
            promise_pending_later: false,
            last_contact: None,
        }
    }

    const RULES: CandidateRules = CandidateRules {
        min_outstanding_gnf: 100_000,
        recent_contact_days: 3,
    };

    #[test]
    fn arrears_above_the_threshold_qualify() {
        let mut f = facts();
        f.outstanding_gnf = 99_999;
        assert_eq!(select(&f, day(10), &RULES), None);
        f.outstanding_gnf = 100_000;
        assert_eq!(
            select(&f, day(10), &RULES),
            Some(vec![MissionReason::Arrears, MissionReason::NoRecentContact])
        );
        f.last_contact = Some(day(1));
        assert_eq!(
            select(&f, day(10), &RULES),
            Some(vec![MissionReason::Arrears])
        );
    }

    #[test]
    fn recent_contact_and_pending_promises_skip_arrears() {
        let mut f = facts();
        f.outstanding_gnf = 500_000;
        f.last_contact = Some(day(8));
        assert_eq!(select(&f, day(10), &RULES), None, "contacted 2 days ago");
        f.last_contact = Some(day(7));
        assert!(select(&f, day(10), &RULES).is_some(), "3 days ago");
        f.promise_pending_later = true;
        assert_eq!(select(&f, day(10), &RULES), None, "a promise not yet due");
    }

    #[test]
    fn a_promise_due_is_followed_up_whatever_the_contact() {
        let mut f = facts();
        f.promise_due = true;
        f.outstanding_gnf = 10_000;
        f.last_contact = Some(day(10));
        assert_eq!(
            select(&f, day(10), &RULES),
            Some(vec![MissionReason::PromiseDue])
        );
    }

    #[test]
    fn broken_promises_qualify_below_the_threshold_but_not_when_paid_up() {
        let mut f = facts();
        f.broken_promises = 1;
        f.outstanding_gnf = 20_000;
        f.last_contact = Some(day(1));
        assert_eq!(
            select(&f, day(10), &RULES),
            Some(vec![MissionReason::PromiseBroken])
        );
        f.outstanding_gnf = 0;
        assert_eq!(select(&f, day(10), &RULES), None);
    }

    #[test]
    fn priority_formula_by_hand() {
        let mut f = facts();
        f.outstanding_gnf = 990_000; // log10(100) = 2 → 20 points
        f.oldest_unpaid_due_date = Some(day(10) - chrono::Days::new(60)); // 10 points
        f.broken_promises = 5; // capped at 3 → 30 points
        f.last_contact = Some(day(10) - chrono::Days::new(20)); // 5 points
        f.promise_due = true; // 15 points
        let p = priority(&f, day(10));
        assert!((p - 80.0).abs() < 1e-9, "{p}");
        // Never contacted counts as 60 days: 15 points.
        assert!((priority(&facts(), day(10)) - 15.0).abs() < 1e-9);
    }

    fn arb_facts() -> impl Strategy<Value = TenantFacts> {
        (
            0i64..i64::MAX,
            proptest::option::of(0u64..2_000),
            0u32..10,
            any::<bool>(),
            proptest::option::of(0u64..400),
        )
            .prop_map(|(outstanding, overdue, broken, due, contact)| TenantFacts {
                outstanding_gnf: outstanding,
                oldest_unpaid_due_date: overdue.map(|d| day(10) - chrono::Days::new(d)),
                broken_promises: broken,
                promise_due: due,
                promise_pending_later: false,
                last_contact: contact.map(|d| day(10) - chrono::Days::new(d)),
            })
    }

    proptest! {
        #[test]
        fn priority_is_finite_bounded_and_monotone(f in arb_facts(), bump in 1i64..1_000_000_000) {
            let p = priority(&f, day(10));
            prop_assert!(p.is_finite() && (0.0..250.0).contains(&p));
            let mut more = f;
            more.outstanding_gnf = f.outstanding_gnf.saturating_add(bump);
            prop_assert!(priority(&more, day(10)) >= p);
            let mut more = f;
            more.broken_promises += 1;
            prop_assert!(priority(&more, day(10)) >= p);
            let mut more = f;
            more.oldest_unpaid_due_date = f.oldest_unpaid_due_date.map(|d| d - chrono::Days::new(1));
            prop_assert!(priority(&more, day(10)) >= p);
            let mut more = f;
            more.last_contact = f.last_contact.map(|d| d - chrono::Days::new(1));
            prop_assert!(priority(&more, day(10)) >= p);
        }

        #[test]
        fn selected_reasons_are_sorted_and_never_empty(f in arb_facts(), later in any::<bool>()) {
            let mut f = f;
            f.promise_pending_later = later;
            if let Some(reasons) = select(&f, day(10), &RULES) {
                prop_assert!(!reasons.is_empty());
                prop_assert!(reasons.windows(2).all(|w| w[0] < w[1]));
                prop_assert!(f.promise_due || f.outstanding_gnf > 0);
            }
        }
    }
}
