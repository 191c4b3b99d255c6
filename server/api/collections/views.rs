//! Answers of the collections service: what the use cases return, as protobuf messages. One
//! view per kind of object, used by every RPC that shows one (a payment looks the same in
//! RecordPayment, ListPayments and the timeline).

use chrono::{DateTime, NaiveDate, Utc};

use crate::api::convert::timestamp;
use crate::api::parse::{date_proto, id_or_empty, month_proto, user_ref};
use crate::api::views::{Made, bucket, promise_at, promise_message, tenant_ref};
use crate::app::payments::Entry;
use crate::app::tenants::{Happened, HistoryEntry};
use crate::domain::daily::{Activity, DailyFigures, Figures};
use crate::domain::{
    ArrearsLine, ChargeStanding, InteractionKind, LatLng, PaymentKind, PromiseSnapshot,
    PromiseStatus, StoredVisit, settled_at, stored_presence,
};
use crate::proto::v1 as pb;
use crate::store::interactions::InteractionRow;
use crate::store::promises::PromiseView;
use crate::store::tenants::Balance;

pub fn balance(balance: &Balance) -> pb::TenantBalance {
    pb::TenantBalance {
        tenant_id: balance.tenant_id.to_string(),
        outstanding_gnf: balance.outstanding_gnf,
        credit_gnf: balance.credit_gnf,
    }
}

/// A ledger entry with its allocations. A reversal shows its amount and credit negative.
pub fn payment(entry: &Entry) -> pb::Payment {
    let row = &entry.row;
    let reversal = row.kind == PaymentKind::Reversal;
    let sign = if reversal { -1 } else { 1 };
    pb::Payment {
        payment_id: row.id.to_string(),
        kind: pb::PaymentKind::from(row.kind).into(),
        receipt_number: row.receipt_number.clone(),
        tenant: Some(tenant_ref(
            row.tenant_id,
            &row.tenant_name,
            row.site_id,
            &row.site_name,
            &row.unit_label,
        )),
        amount_gnf: sign * row.amount_gnf,
        method: pb::PaymentMethod::from(row.method).into(),
        operator_reference: row.operator_reference.clone().unwrap_or_default(),
        payer_phone: row.payer_phone.clone().unwrap_or_default(),
        agent: Some(user_ref(row.agent_id, &row.agent_name)),
        recorded_by: row
            .recorded_by
            .map(|id| user_ref(id, row.recorded_by_name.as_deref().unwrap_or_default())),
        occurred_at: Some(timestamp(row.occurred_at)),
        received_at: Some(timestamp(row.received_at)),
        visit_id: id_or_empty(row.interaction_id),
        promise_id: id_or_empty(row.promise_id),
        mission_id: id_or_empty(row.mission_id),
        notes: row.notes.clone(),
        allocations: entry
            .allocations
            .iter()
            .filter(|a| a.payment_id == row.id)
            .map(|a| pb::PaymentAllocation {
                charge_id: a.charge_id.to_string(),
                month: Some(month_proto(a.period)),
                amount_gnf: a.amount_gnf,
                charge_outstanding_after_gnf: a.outstanding_after_gnf,
            })
            .collect(),
        credit_gnf: sign * row.credit_gnf,
        reversed: !reversal && row.reversal_id.is_some(),
        reversal_payment_id: if reversal {
            String::new()
        } else {
            id_or_empty(row.reversal_id)
        },
        reversed_payment_id: id_or_empty(row.reverses_payment_id),
        reversal_reason: if reversal {
            row.reason.clone().unwrap_or_default()
        } else {
            String::new()
        },
    }
}

/// A call or visit; the one every answer that shows an interaction uses.
pub fn interaction(row: &InteractionRow) -> pb::Interaction {
    let details = match row.kind {
        InteractionKind::Visit => {
            let (check, far_away) = stored_presence(&StoredVisit {
                is_mock: row.is_mock_location,
                fix: row
                    .latitude
                    .zip(row.longitude)
                    .and_then(|(lat, lng)| LatLng::parse(lat, lng).ok()),
                accuracy_m: row.accuracy_m,
                fix_time: row.fix_time,
                occurred_at: row.occurred_at,
                has_distance: row.distance_to_tenant_m.is_some(),
                is_far: row.is_far_from_tenant,
            });
            pb::interaction::Details::Visit(pb::VisitDetails {
                location: row
                    .latitude
                    .zip(row.longitude)
                    .map(|(latitude, longitude)| pb::LatLng {
                        latitude,
                        longitude,
                    }),
                accuracy_m: row.accuracy_m.unwrap_or(0.0),
                is_mock_location: row.is_mock_location,
                fix_time: row.fix_time.map(timestamp),
                distance_to_home_m: row.distance_to_tenant_m,
                far_away,
                location_check: pb::LocationCheck::from(check).into(),
            })
        }
        InteractionKind::Call => pb::interaction::Details::Call(pb::CallDetails {
            phone: row.call_phone.clone().unwrap_or_default(),
            duration: row.call_duration_secs.map(|secs| prost_types::Duration {
                seconds: i64::from(secs),
                nanos: 0,
            }),
        }),
    };
    pb::Interaction {
        interaction_id: row.id.to_string(),
        tenant: Some(tenant_ref(
            row.tenant_id,
            &row.tenant_name,
            row.site_id,
            &row.site_name,
            &row.unit_label,
        )),
        agent: Some(user_ref(row.agent_id, &row.agent_name)),
        outcome: pb::InteractionOutcome::from(row.outcome).into(),
        notes: row.notes.clone(),
        occurred_at: Some(timestamp(row.occurred_at)),
        received_at: Some(timestamp(row.received_at)),
        mission_id: id_or_empty(row.mission_id),
        promise_id: id_or_empty(row.promise_id),
        score_points: row.score_points,
        details: Some(details),
    }
}

/// A promise of the promise list and of the answers of writes, with its status as of the day
/// of the read. A status final by the payments but not stored yet reads with the time it took
/// effect when that is known (the end of the promised date for partially kept and broken).
pub fn promise(view: &PromiseView, now: DateTime<Utc>) -> pb::PaymentPromise {
    let resolve_time = if view.stored_status != PromiseStatus::Pending {
        view.status_changed_at
    } else {
        match view.status {
            PromiseStatus::PartiallyKept | PromiseStatus::Broken => {
                Some(settled_at(view.status, view.promised_date, now))
            }
            _ => None,
        }
    };
    let made = Made {
        id: view.id,
        agent_id: view.agent_id,
        agent_name: &view.agent_name,
        amount_gnf: view.amount_gnf,
        paid_gnf: view.paid_gnf,
        interaction_id: view.interaction_id,
        made_at: view.made_at,
        received_at: view.received_at,
        original_promised_date: view.original_promised_date,
    };
    let tenant = tenant_ref(
        view.tenant_id,
        &view.tenant_name,
        view.site_id,
        &view.site_name,
        &view.unit_label,
    );
    let now_shown = PromiseSnapshot {
        promised_date: view.promised_date,
        status: view.status,
        reschedule_count: view.reschedule_count,
        last_change_reason: view.last_change_reason.clone(),
        resolve_time,
    };
    promise_message(&made, tenant, &now_shown)
}

/// A monthly charge as it stands on a day.
pub fn charge(
    charge_id: i64,
    period: NaiveDate,
    due_date: NaiveDate,
    standing: &ChargeStanding,
    paid_on: Option<NaiveDate>,
) -> pb::MonthlyCharge {
    pb::MonthlyCharge {
        charge_id: charge_id.to_string(),
        month: Some(month_proto(period)),
        due_date: Some(date_proto(due_date)),
        due_gnf: standing.due,
        paid_gnf: standing.paid,
        outstanding_gnf: standing.outstanding,
        days_overdue: standing.days_overdue,
        aging_bucket: bucket(standing.bucket).into(),
        paid_date: paid_on.map(date_proto),
    }
}

pub fn arrears_line(line: &ArrearsLine) -> pb::MonthlyCharge {
    charge(
        line.charge_id,
        line.period,
        line.due_date,
        &line.standing,
        line.paid_on,
    )
}

/// One entry of a tenant's timeline; every entry names the tenant with its current site.
pub fn history_entry(entry: &HistoryEntry, tenant: &pb::TenantRef) -> pb::HistoryEntry {
    use pb::history_entry::Entry as E;
    let shown = match &entry.happened {
        Happened::Charge {
            row,
            standing,
            paid_on,
        } => E::Charge(charge(row.id, row.period, row.due_date, standing, *paid_on)),
        Happened::Payment(ledger) | Happened::Reversal(ledger) => {
            let mut shown = payment(ledger);
            // The row names the site the entry was recorded at.
            shown.tenant = Some(tenant.clone());
            if matches!(entry.happened, Happened::Reversal(_)) {
                E::Reversal(shown)
            } else {
                E::Payment(shown)
            }
        }
        Happened::Call(row) => E::Call(interaction(row)),
        Happened::Visit(row) => E::Visit(interaction(row)),
        Happened::PromiseMade(promise) => E::PromiseEvent(pb::PromiseEvent {
            kind: pb::PromiseEventKind::Made.into(),
            promise: Some(promise_at(promise, tenant)),
            previous_promised_date: None,
            reason: String::new(),
        }),
        Happened::PromiseEvent { event, promise } => E::PromiseEvent(pb::PromiseEvent {
            kind: pb::PromiseEventKind::from(event.kind).into(),
            promise: Some(promise_at(promise, tenant)),
            previous_promised_date: event.previous_promised_date.map(date_proto),
            reason: event.reason.clone().unwrap_or_default(),
        }),
    };
    pb::HistoryEntry {
        occurred_at: Some(timestamp(entry.key.occurred_at)),
        received_at: Some(timestamp(entry.key.received_at)),
        actor: entry.actor.as_ref().map(|(id, name)| user_ref(*id, name)),
        entry: Some(shown),
    }
}

/// A day's activity as the wire shows it.
pub fn activity(activity: &Activity) -> pb::ActivityFigures {
    pb::ActivityFigures {
        call_count: activity.call_count,
        visit_count: activity.visit_count,
        far_away_visit_count: activity.far_away_visit_count,
        refusal_count: activity.refusal_count,
        promise_count: activity.promise_count,
        promised_gnf: activity.promised_gnf,
        payment_count: activity.payment_count,
        collected_gnf: activity.collected_gnf,
        reversal_count: activity.reversal_count,
        score_points: activity.score_points,
    }
}

fn figures(figures: &Figures) -> pb::DailyStatsFigures {
    pb::DailyStatsFigures {
        collection_rate: figures.collection_rate,
        activity: Some(activity(&figures.activity)),
        due_gnf: figures.due_gnf,
    }
}

/// The day's figures: total, agents, sites.
pub fn daily(
    daily: &DailyFigures,
) -> (
    pb::DailyStatsFigures,
    Vec<pb::AgentDailyStats>,
    Vec<pb::SiteDailyStats>,
) {
    let agents = daily
        .agents
        .iter()
        .map(|line| pb::AgentDailyStats {
            agent: Some(user_ref(line.agent_id, &line.full_name)),
            figures: Some(figures(&line.figures)),
        })
        .collect();
    let sites = daily
        .sites
        .iter()
        .map(|line| pb::SiteDailyStats {
            site_id: line.site_id.to_string(),
            site_name: line.name.clone(),
            figures: Some(figures(&line.figures)),
        })
        .collect();
    (figures(&daily.total), agents, sites)
}
