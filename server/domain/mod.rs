//! The collections (recouvrement) domain in plain Rust: no I/O, no database, no gRPC — only
//! types that cannot hold invalid values ("parse, don't validate") and the rules of money,
//! allocation, aging and arrears, daily figures, promises and their timeline, missions,
//! receipts, presence, scoring and route optimisation, each in one place. Every parse error's
//! `Display` is a short message naming the problem, ready for a BadRequest field violation; the
//! API layer adds the field path.

pub mod aging;
pub mod alerts;
pub mod allocation;
pub mod arrears;
pub mod arrival;
pub mod clock;
pub mod daily;
pub mod dashboard;
pub mod kpi;
pub mod ledger;
pub mod map;
pub mod mission;
pub mod money;
pub mod outcome;
pub mod performance;
pub mod planning;
pub mod position;
pub mod presence;
pub mod priority;
pub mod promise;
pub mod receipt;
pub mod report;
pub mod route;
pub mod scoring;
pub mod timeline;
pub mod track;

pub use aging::{AgingBoundsError, AgingBuckets, AgingTotals, Bucket, Overdue, days_overdue};
pub use allocation::{
    Allocation, AllocationLine, CreditUse, OpenCharge, Reversal, ReversalError, ReversalLine,
    allocate, allocate_credit, apply_credit_to_new_charge, credit_part_of, reverse,
};
pub use arrears::{
    AgingLine, Arrears, ArrearsLine, ChargePaid, ChargeStanding, OpenCharges, Owed, arrears,
};
pub use clock::{OccurredAt, OccurredAtError, TimeBounds, conakry_day, conakry_day_start};
pub use mission::{
    AlreadyStarted, ArrivalSource, ClosingKind, FailureReason, MissionActor, MissionLink,
    MissionMismatch, MissionStatus, Transition, TransitionError, check_reassign,
    progress_on_action,
};
pub use money::{AmountError, Gnf, MAX_PAYMENT_GNF, MoneyOverflow, PaymentAmount};
pub use outcome::{
    InteractionKind, InteractionOutcome, OperatorReference, OperatorReferenceError,
    OutcomePromiseMismatch, PaymentKind, PaymentMethod, UnknownDbValue, check_outcome_promise,
};
pub use presence::{
    Accuracy, AccuracyError, FixTiming, LatLng, LatLngError, LocationCheck, MaxDistance,
    PresenceCheck, StoredVisit, check_timed_visit, check_visit, stored_presence,
};
pub use promise::{
    DEFAULT_PROMISE_HORIZON_DAYS, NewPromise, NewPromiseError, NotPending, PromiseEventKind,
    PromiseProgress, PromiseStatus, PromisedDate, PromisedDateError, RescheduleError,
    ensure_pending, reschedule, settled_at, shown_status,
};
pub use receipt::{ReceiptNumber, ReceiptNumberError, SiteCode, SiteCodeError, receipt_year};
pub use scoring::{
    ScoreEventKind, ScoreSource, events_for_interaction, points_for_interaction,
    points_for_payment, points_for_reversal,
};
pub use timeline::{PromiseChange, PromiseNow, PromiseSnapshot};
