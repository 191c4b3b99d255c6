//! Views several services show: a tenant (as lists name it, and its card), a promise as it
//! was at one point, an aging bucket. Collections, missions, the map and the dashboards all
//! answer with these, so they live beside the services rather than in one of them.

use chrono::{DateTime, NaiveDate, Utc};
use uuid::Uuid;

use crate::api::convert::timestamp;
use crate::api::parse::{date_proto, id_or_empty, user_ref};
use crate::app::tenants::{Card, PromiseAt};
use crate::domain::{Bucket, PromiseSnapshot};
use crate::proto::v1 as pb;
use crate::store::tenants::TenantRefRow;

/// A tenant as lists show it.
pub fn tenant_ref(
    id: Uuid,
    full_name: &str,
    site_id: Uuid,
    site_name: &str,
    unit: &str,
) -> pb::TenantRef {
    pb::TenantRef {
        tenant_id: id.to_string(),
        full_name: full_name.to_owned(),
        site_id: site_id.to_string(),
        site_name: site_name.to_owned(),
        unit_label: unit.to_owned(),
    }
}

pub fn tenant_ref_of(tenant: &TenantRefRow) -> pb::TenantRef {
    tenant_ref(
        tenant.id,
        &tenant.full_name,
        tenant.site_id,
        &tenant.site_name,
        &tenant.unit,
    )
}

/// The aging bucket of an amount: UNSPECIFIED when it is not overdue.
pub fn bucket(bucket: Option<Bucket>) -> pb::AgingBucket {
    bucket.map_or(pb::AgingBucket::Unspecified, pb::AgingBucket::from)
}

/// A promise of a tenant card or timeline, as it was at one point (`PromiseAt::snapshot`).
pub fn promise_at(promise: &PromiseAt, tenant: &pb::TenantRef) -> pb::PaymentPromise {
    let row = &promise.row;
    let made = Made {
        id: row.id,
        agent_id: row.agent_id,
        agent_name: &row.agent_name,
        amount_gnf: row.amount_gnf,
        paid_gnf: row.paid_gnf,
        interaction_id: row.interaction_id,
        made_at: row.occurred_at,
        received_at: row.received_at,
        original_promised_date: row.original_promised_date,
    };
    promise_message(&made, tenant.clone(), &promise.snapshot)
}

/// What a promise shows whatever the moment: who obtained it, for how much, when, and what
/// has been paid towards it now.
pub(crate) struct Made<'a> {
    pub id: Uuid,
    pub agent_id: Uuid,
    pub agent_name: &'a str,
    pub amount_gnf: i64,
    pub paid_gnf: i64,
    pub interaction_id: Option<Uuid>,
    pub made_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub original_promised_date: NaiveDate,
}

/// A promise as it was at one point (`at`): the one place a `PaymentPromise` is built.
pub(crate) fn promise_message(
    made: &Made<'_>,
    tenant: pb::TenantRef,
    at: &PromiseSnapshot,
) -> pb::PaymentPromise {
    pb::PaymentPromise {
        promise_id: made.id.to_string(),
        tenant: Some(tenant),
        agent: Some(user_ref(made.agent_id, made.agent_name)),
        amount_gnf: made.amount_gnf,
        promised_date: Some(date_proto(at.promised_date)),
        status: pb::PromiseStatus::from(at.status).into(),
        paid_gnf: made.paid_gnf,
        interaction_id: id_or_empty(made.interaction_id),
        occurred_at: Some(timestamp(made.made_at)),
        received_at: Some(timestamp(made.received_at)),
        original_promised_date: Some(date_proto(made.original_promised_date)),
        reschedule_count: at.reschedule_count,
        last_change_reason: at.last_change_reason.clone().unwrap_or_default(),
        resolve_time: at.resolve_time.map(timestamp),
    }
}

/// A tenant card.
pub fn card(card: &Card) -> pb::Tenant {
    let row = &card.row;
    let tenant = tenant_ref(
        row.id,
        &row.full_name,
        row.site_id,
        &row.site_name,
        &row.unit,
    );
    pb::Tenant {
        tenant_id: row.id.to_string(),
        full_name: row.full_name.clone(),
        phones: row.phone.iter().cloned().collect(),
        site_id: row.site_id.to_string(),
        site_name: row.site_name.clone(),
        unit_label: row.unit.clone(),
        address: row.address.clone(),
        home_location: row
            .home_latitude
            .zip(row.home_longitude)
            .map(|(latitude, longitude)| pb::LatLng {
                latitude,
                longitude,
            }),
        monthly_rent_gnf: row.monthly_rent_gnf,
        active: row.active,
        outstanding_gnf: row.outstanding_gnf,
        credit_gnf: row.credit_gnf,
        days_overdue: card.overdue.days,
        aging_bucket: bucket(card.overdue.bucket).into(),
        broken_promise_count: row.broken_promise_count,
        last_interaction: card
            .last_interaction
            .as_ref()
            .map(|i| pb::InteractionSummary {
                interaction_id: i.id.to_string(),
                kind: pb::InteractionKind::from(i.kind).into(),
                outcome: pb::InteractionOutcome::from(i.outcome).into(),
                occurred_at: Some(timestamp(i.occurred_at)),
                agent: Some(user_ref(i.agent_id, &i.agent_name)),
                notes_excerpt: i.notes_excerpt.clone(),
            }),
        pending_promise: card
            .pending_promise
            .as_ref()
            .map(|promise| promise_at(promise, &tenant)),
    }
}
