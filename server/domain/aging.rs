//! Aging of arrears: how long a charge has been overdue, and in which bucket that falls.
//!
//! A charge is overdue from the day after its due date: on the due date it is 0 days overdue
//! (not overdue), the next day 1. With the default bounds 30/60/90 the buckets are 1–30 days
//! ("0–30" in the API), 31–60, 61–90 and over 90.

use std::fmt;

use chrono::{Days, NaiveDate};

use super::money::{Gnf, MoneyOverflow};

/// The bucket an overdue amount falls in. The names are those of the default bounds; with
/// other bounds they name the first, second, third and last bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Bucket {
    Days0To30,
    Days31To60,
    Days61To90,
    Over90,
}

impl Bucket {
    /// Every bucket, youngest first.
    pub const ALL: [Bucket; 4] = [
        Bucket::Days0To30,
        Bucket::Days31To60,
        Bucket::Days61To90,
        Bucket::Over90,
    ];

    /// Its position in [`Bucket::ALL`].
    pub fn index(self) -> usize {
        match self {
            Bucket::Days0To30 => 0,
            Bucket::Days31To60 => 1,
            Bucket::Days61To90 => 2,
            Bucket::Over90 => 3,
        }
    }
}

/// Days between the due date and `as_of`: positive when overdue, 0 on the due date, negative
/// before it.
pub fn days_overdue(due_date: NaiveDate, as_of: NaiveDate) -> i64 {
    as_of.signed_duration_since(due_date).num_days()
}

/// [`days_overdue`] as the API shows it (`int32 days_overdue`): 0 when not overdue.
pub fn days_overdue_for_display(due_date: NaiveDate, as_of: NaiveDate) -> i32 {
    i32::try_from(days_overdue(due_date, as_of).max(0)).unwrap_or(i32::MAX)
}

/// The upper bounds (inclusive, in days overdue) of the first three buckets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AgingBuckets {
    bounds: [u32; 3],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AgingBoundsError {
    #[error("must have exactly 3 bounds")]
    WrongCount,
    #[error("must be greater than 0")]
    Zero,
    #[error("must be strictly increasing")]
    NotIncreasing,
}

impl Default for AgingBuckets {
    fn default() -> Self {
        Self {
            bounds: [30, 60, 90],
        }
    }
}

impl AgingBuckets {
    /// Three strictly increasing bounds, the first > 0, e.g. `[30, 60, 90]`.
    pub fn parse(bounds: &[u32]) -> Result<Self, AgingBoundsError> {
        let bounds: [u32; 3] = bounds
            .try_into()
            .map_err(|_| AgingBoundsError::WrongCount)?;
        if bounds[0] == 0 {
            return Err(AgingBoundsError::Zero);
        }
        if bounds[0] >= bounds[1] || bounds[1] >= bounds[2] {
            return Err(AgingBoundsError::NotIncreasing);
        }
        Ok(Self { bounds })
    }

    pub fn bounds(&self) -> [u32; 3] {
        self.bounds
    }

    /// The bucket of an amount `days_overdue` days overdue; `None` when not overdue (<= 0).
    pub fn bucket(&self, days_overdue: i64) -> Option<Bucket> {
        let [first, second, third] = self.bounds.map(i64::from);
        match days_overdue {
            d if d <= 0 => None,
            d if d <= first => Some(Bucket::Days0To30),
            d if d <= second => Some(Bucket::Days31To60),
            d if d <= third => Some(Bucket::Days61To90),
            _ => Some(Bucket::Over90),
        }
    }

    /// The bucket of a charge due on `due_date`, seen on `as_of`.
    pub fn bucket_on(&self, due_date: NaiveDate, as_of: NaiveDate) -> Option<Bucket> {
        self.bucket(days_overdue(due_date, as_of))
    }

    /// The due dates splitting due dates into the five classes that share a bucket on `as_of`,
    /// earliest first: `[as_of - third bound, as_of - second, as_of - first, as_of]`. The class
    /// of a due date `d` is the number of these dates on or before it (SQL's
    /// `width_bucket(d, thresholds)`), 0..=4; [`AgingBuckets::bucket_of_class`] names its
    /// bucket. This lets a database group charges by bucket without holding the rule.
    pub fn class_thresholds(&self, as_of: NaiveDate) -> [NaiveDate; 4] {
        // Saturates at the earliest date chrono knows (never met with real dates).
        let before = |days: u32| {
            as_of
                .checked_sub_days(Days::new(u64::from(days)))
                .unwrap_or(NaiveDate::MIN)
        };
        let [first, second, third] = self.bounds;
        [before(third), before(second), before(first), as_of]
    }

    /// The bucket on `as_of` of the due dates of class `class` (see
    /// [`AgingBuckets::class_thresholds`]): that of one date of the class, by
    /// [`AgingBuckets::bucket_on`]. `None` for the last class (not overdue) and for a class out
    /// of 0..=4.
    pub fn bucket_of_class(&self, class: i32, as_of: NaiveDate) -> Option<Bucket> {
        let thresholds = self.class_thresholds(as_of);
        // Class 0 holds the dates before the first threshold, class k >= 1 the dates from the
        // k-th threshold on.
        let date = match usize::try_from(class).ok()? {
            0 => thresholds[0].pred_opt()?,
            k => *thresholds.get(k - 1)?,
        };
        self.bucket_on(date, as_of)
    }

    /// How overdue an amount due on `due_date` is on `as_of`: days as the API shows them and
    /// bucket (both "none" when not overdue).
    pub fn overdue(&self, due_date: NaiveDate, as_of: NaiveDate) -> Overdue {
        Overdue {
            days: days_overdue_for_display(due_date, as_of),
            bucket: self.bucket_on(due_date, as_of),
        }
    }

    /// Sums the outstanding amounts of `(due_date, outstanding)` items per bucket, as of
    /// `as_of`. Items not overdue or with nothing outstanding are left out.
    pub fn totals(
        &self,
        items: impl IntoIterator<Item = (NaiveDate, Gnf)>,
        as_of: NaiveDate,
    ) -> Result<AgingTotals, MoneyOverflow> {
        let mut totals = AgingTotals::default();
        for (due_date, outstanding) in items {
            if !outstanding.is_positive() {
                continue;
            }
            if let Some(bucket) = self.bucket_on(due_date, as_of) {
                totals.add(bucket, outstanding)?;
            }
        }
        Ok(totals)
    }
}

impl fmt::Display for AgingBuckets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c] = self.bounds;
        write!(f, "{a}/{b}/{c}")
    }
}

/// How overdue an amount is: [`days_overdue_for_display`] and its bucket; the default is "not
/// overdue".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Overdue {
    pub days: i32,
    pub bucket: Option<Bucket>,
}

/// Outstanding per bucket; every bucket is present, zeros included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AgingTotals {
    amounts: [Gnf; 4],
}

impl AgingTotals {
    pub fn add(&mut self, bucket: Bucket, amount: Gnf) -> Result<(), MoneyOverflow> {
        let slot = &mut self.amounts[bucket.index()];
        *slot = slot.try_add(amount)?;
        Ok(())
    }

    pub fn get(&self, bucket: Bucket) -> Gnf {
        self.amounts[bucket.index()]
    }

    /// The four buckets in order with their totals.
    pub fn iter(&self) -> impl Iterator<Item = (Bucket, Gnf)> + '_ {
        Bucket::ALL
            .into_iter()
            .map(|bucket| (bucket, self.get(bucket)))
    }

    pub fn total(&self) -> Result<Gnf, MoneyOverflow> {
        Gnf::checked_sum(self.amounts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(y: i32, m: u32, d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, d).expect("valid date")
    }

    #[test]
    fn default_bounds_are_inclusive() {
        let aging = AgingBuckets::default();
        assert_eq!(aging.bucket(i64::MIN), None);
        assert_eq!(aging.bucket(-3), None);
        assert_eq!(aging.bucket(0), None);
        assert_eq!(aging.bucket(1), Some(Bucket::Days0To30));
        assert_eq!(aging.bucket(30), Some(Bucket::Days0To30));
        assert_eq!(aging.bucket(31), Some(Bucket::Days31To60));
        assert_eq!(aging.bucket(60), Some(Bucket::Days31To60));
        assert_eq!(aging.bucket(61), Some(Bucket::Days61To90));
        assert_eq!(aging.bucket(90), Some(Bucket::Days61To90));
        assert_eq!(aging.bucket(91), Some(Bucket::Over90));
        assert_eq!(aging.bucket(i64::MAX), Some(Bucket::Over90));
    }

    #[test]
    fn custom_bounds() {
        let aging = AgingBuckets::parse(&[15, 45, 120]).expect("valid bounds");
        assert_eq!(aging.bucket(15), Some(Bucket::Days0To30));
        assert_eq!(aging.bucket(16), Some(Bucket::Days31To60));
        assert_eq!(aging.bucket(120), Some(Bucket::Days61To90));
        assert_eq!(aging.bucket(121), Some(Bucket::Over90));
        assert_eq!(aging.to_string(), "15/45/120");
        assert_eq!(
            AgingBuckets::parse(&[30, 60, 90]),
            Ok(AgingBuckets::default())
        );
    }

    #[test]
    fn bounds_are_three_increasing_positive_days() {
        assert_eq!(
            AgingBuckets::parse(&[30, 60]),
            Err(AgingBoundsError::WrongCount)
        );
        assert_eq!(
            AgingBuckets::parse(&[30, 60, 90, 120]),
            Err(AgingBoundsError::WrongCount)
        );
        assert_eq!(AgingBuckets::parse(&[]), Err(AgingBoundsError::WrongCount));
        assert_eq!(
            AgingBuckets::parse(&[0, 60, 90]),
            Err(AgingBoundsError::Zero)
        );
        assert_eq!(
            AgingBuckets::parse(&[30, 30, 90]),
            Err(AgingBoundsError::NotIncreasing)
        );
        assert_eq!(
            AgingBuckets::parse(&[30, 90, 60]),
            Err(AgingBoundsError::NotIncreasing)
        );
    }

    #[test]
    fn days_overdue_counts_from_the_day_after_the_due_date() {
        let due = day(2026, 1, 5);
        assert_eq!(days_overdue(due, day(2026, 1, 4)), -1);
        assert_eq!(days_overdue(due, due), 0);
        assert_eq!(days_overdue(due, day(2026, 1, 6)), 1);
        assert_eq!(days_overdue(due, day(2026, 3, 6)), 60);
        assert_eq!(days_overdue_for_display(due, day(2026, 1, 1)), 0);
        assert_eq!(days_overdue_for_display(due, day(2026, 2, 4)), 30);
        // The whole calendar (about 191 million days) fits; nothing panics.
        let span = days_overdue(NaiveDate::MIN, NaiveDate::MAX);
        assert_eq!(
            i64::from(days_overdue_for_display(NaiveDate::MIN, NaiveDate::MAX)),
            span
        );
        assert_eq!(days_overdue_for_display(NaiveDate::MAX, NaiveDate::MIN), 0);
        let aging = AgingBuckets::default();
        assert_eq!(aging.bucket_on(due, due), None);
        assert_eq!(
            aging.bucket_on(due, day(2026, 2, 4)),
            Some(Bucket::Days0To30)
        );
        assert_eq!(
            aging.bucket_on(due, day(2026, 2, 5)),
            Some(Bucket::Days31To60)
        );
        assert_eq!(
            aging.overdue(due, day(2026, 2, 5)),
            Overdue {
                days: 31,
                bucket: Some(Bucket::Days31To60)
            }
        );
        assert_eq!(aging.overdue(due, due), Overdue::default());
    }

    #[test]
    fn totals_cover_all_four_buckets() {
        let aging = AgingBuckets::default();
        let as_of = day(2026, 6, 30);
        let items = [
            (day(2026, 6, 30), Gnf::new(1_000_000)), // due today: not overdue
            (day(2026, 7, 5), Gnf::new(1_000_000)),  // not due yet
            (day(2026, 6, 5), Gnf::new(400_000)),    // 25 days
            (day(2026, 6, 1), Gnf::new(100_000)),    // 29 days
            (day(2026, 2, 5), Gnf::new(1_500_000)),  // 145 days
            (day(2026, 1, 5), Gnf::ZERO),            // paid
            (day(2026, 1, 5), Gnf::new(-7)),         // nonsense
        ];
        let totals = aging.totals(items, as_of).expect("no overflow");
        let listed: Vec<(Bucket, i64)> = totals.iter().map(|(b, g)| (b, g.francs())).collect();
        assert_eq!(
            listed,
            [
                (Bucket::Days0To30, 500_000),
                (Bucket::Days31To60, 0),
                (Bucket::Days61To90, 0),
                (Bucket::Over90, 1_500_000),
            ]
        );
        assert_eq!(totals.total(), Ok(Gnf::new(2_000_000)));
        assert_eq!(
            aging.totals([(day(2026, 1, 1), Gnf::new(i64::MAX)); 2], as_of),
            Err(MoneyOverflow)
        );
    }

    #[test]
    fn due_date_classes_share_the_bucket_of_their_dates() {
        let as_of = day(2026, 11, 30);
        for bounds in [[30, 60, 90], [1, 2, 3], [7, 45, 365]] {
            let aging = AgingBuckets::parse(&bounds).expect("bounds");
            let thresholds = aging.class_thresholds(as_of);
            assert!(thresholds.is_sorted(), "{thresholds:?}");
            for back in -10_i64..=400 {
                let due = as_of - chrono::TimeDelta::days(back);
                // SQL's width_bucket: how many thresholds are on or before the date.
                let class = thresholds.iter().filter(|t| **t <= due).count() as i32;
                assert_eq!(
                    aging.bucket_of_class(class, as_of),
                    aging.bucket_on(due, as_of),
                    "bounds {bounds:?}, due {due}"
                );
            }
        }
        let aging = AgingBuckets::default();
        assert_eq!(aging.bucket_of_class(0, as_of), Some(Bucket::Over90));
        assert_eq!(aging.bucket_of_class(3, as_of), Some(Bucket::Days0To30));
        assert_eq!(aging.bucket_of_class(4, as_of), None);
        assert_eq!(aging.bucket_of_class(5, as_of), None);
        assert_eq!(aging.bucket_of_class(-1, as_of), None);
    }
}
