//! ListAlerts and AcknowledgeAlert: requests parsed into the alert use cases
//! (`app::alerts`), alerts shown once by [`alert`].
//!
//! Decisions:
//! - ListAlerts without `states` lists open and acknowledged alerts; UNSPECIFIED values in a
//!   filter are ignored, unknown enum numbers are INVALID_ARGUMENT on the element
//!   (`states[1]`). Page size: default 50, at most 200 (larger is capped), negative refused.
//! - Pages are keyset cursors on (start time, id) in a token tied to the filters
//!   (`api::paging`); `site_ids` outside the caller's scope are left out.
//! - Not cached: alerts change with every evaluation and an acknowledgement, and the list is
//!   one indexed read.
//! - AcknowledgeAlert: `note` at most 1,000 characters (tab and newline allowed), may be empty.

use tonic::Request;

use super::rpc;
use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::api::paging::{Pager, micros};
use crate::api::parse::{self, Text};
use crate::api::write::Write;
use crate::app::alerts as app;
use crate::auth::caller::Caller;
use crate::domain::alerts::{AlertKind, AlertState, Severity, Target};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::alerts::{AlertRow, Cursor, ListFilter};

const PAGE_SIZE_DEFAULT: i64 = 50;
const PAGE_SIZE_MAX: i64 = 200;
const SITE_IDS_MAX: usize = 200;
const NOTE: Text = Text::note(1_000);

fn kind_to_proto(kind: AlertKind) -> pb::AlertKind {
    match kind {
        AlertKind::CriticalArrears => pb::AlertKind::CriticalArrears,
        AlertKind::BrokenPromiseSpike => pb::AlertKind::BrokenPromiseSpike,
        AlertKind::AgentInactive => pb::AlertKind::AgentInactive,
        AlertKind::LowAgentScore => pb::AlertKind::LowAgentScore,
        AlertKind::SensitiveSite => pb::AlertKind::SensitiveSite,
        AlertKind::FarVisit => pb::AlertKind::FarVisit,
    }
}

fn severity_to_proto(severity: Severity) -> pb::AlertSeverity {
    match severity {
        Severity::Info => pb::AlertSeverity::Info,
        Severity::Warning => pb::AlertSeverity::Warning,
        Severity::Critical => pb::AlertSeverity::Critical,
    }
}

fn state_to_proto(state: AlertState) -> pb::AlertState {
    match state {
        AlertState::Open => pb::AlertState::Open,
        AlertState::Acknowledged => pb::AlertState::Acknowledged,
        AlertState::Resolved => pb::AlertState::Resolved,
    }
}

/// The values of one repeated enum filter, read by `read` (`None`: not a known value): 0
/// (UNSPECIFIED) left out, each unknown number named, sorted and once each.
fn enum_filter<T: Copy + Ord>(
    v: &mut Violations,
    field: &str,
    values: &[i32],
    read: impl Fn(i32) -> Option<T>,
) -> Vec<T> {
    let mut out = Vec::new();
    for (i, value) in values.iter().enumerate() {
        if *value == 0 {
            continue;
        }
        match read(*value) {
            Some(known) => out.push(known),
            None => v.add(format!("{field}[{i}]"), "is not a known value"),
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// An alert on the wire.
pub(super) fn alert(row: &AlertRow) -> pb::Alert {
    let target = match row.target {
        Target::Site(id) => pb::alert_target::Target::SiteId(id.to_string()),
        Target::Agent(id) => pb::alert_target::Target::AgentId(id.to_string()),
        Target::Tenant(id) => pb::alert_target::Target::TenantId(id.to_string()),
    };
    let (acknowledged_by, acknowledge_time, acknowledge_note) = match &row.acknowledged {
        Some((id, name, at, note)) => (
            Some(pb::UserRef {
                user_id: id.to_string(),
                full_name: name.clone(),
            }),
            Some(timestamp(*at)),
            note.clone(),
        ),
        None => (None, None, String::new()),
    };
    pb::Alert {
        alert_id: row.id.to_string(),
        kind: kind_to_proto(row.kind).into(),
        severity: severity_to_proto(row.severity).into(),
        state: state_to_proto(row.state).into(),
        target: Some(pb::AlertTarget {
            target: Some(target),
            display_name: row.target_name.clone(),
        }),
        site_id: row.site_id.to_string(),
        start_time: Some(timestamp(row.since)),
        update_time: Some(timestamp(row.last_seen_at)),
        resolve_time: row.resolved_at.map(timestamp),
        message: row.message.clone(),
        details: row.details.clone().into_iter().collect(),
        acknowledged_by,
        acknowledge_time,
        acknowledge_note,
    }
}

/// The filters of a ListAlertsRequest, and its page size.
fn parse_list(message: &pb::ListAlertsRequest) -> Result<(ListFilter, i64), ApiError> {
    let mut v = Violations::new();
    let size = v.absorb(convert::page_size(
        message.page_size,
        PAGE_SIZE_DEFAULT,
        PAGE_SIZE_MAX,
    ));
    let mut states =
        enum_filter(
            &mut v,
            "states",
            &message.states,
            |n| match pb::AlertState::try_from(n).ok()? {
                pb::AlertState::Unspecified => None,
                pb::AlertState::Open => Some(AlertState::Open),
                pb::AlertState::Acknowledged => Some(AlertState::Acknowledged),
                pb::AlertState::Resolved => Some(AlertState::Resolved),
            },
        );
    // ALERT_STATE_UNSPECIFIED in the filter: any state (the enum's comment); no state at all:
    // the unresolved ones.
    if message
        .states
        .contains(&(pb::AlertState::Unspecified as i32))
    {
        states = vec![
            AlertState::Open,
            AlertState::Acknowledged,
            AlertState::Resolved,
        ];
    } else if states.is_empty() {
        states = vec![AlertState::Open, AlertState::Acknowledged];
    }
    let severities = enum_filter(&mut v, "severities", &message.severities, |n| {
        match pb::AlertSeverity::try_from(n).ok()? {
            pb::AlertSeverity::Unspecified => None,
            pb::AlertSeverity::Info => Some(Severity::Info),
            pb::AlertSeverity::Warning => Some(Severity::Warning),
            pb::AlertSeverity::Critical => Some(Severity::Critical),
        }
    });
    let kinds = enum_filter(
        &mut v,
        "kinds",
        &message.kinds,
        |n| match pb::AlertKind::try_from(n).ok()? {
            pb::AlertKind::Unspecified => None,
            pb::AlertKind::CriticalArrears => Some(AlertKind::CriticalArrears),
            pb::AlertKind::BrokenPromiseSpike => Some(AlertKind::BrokenPromiseSpike),
            pb::AlertKind::AgentInactive => Some(AlertKind::AgentInactive),
            pb::AlertKind::LowAgentScore => Some(AlertKind::LowAgentScore),
            pb::AlertKind::SensitiveSite => Some(AlertKind::SensitiveSite),
            pb::AlertKind::FarVisit => Some(AlertKind::FarVisit),
        },
    );
    let sites = v.absorb(parse::ids("site_ids", &message.site_ids, SITE_IDS_MAX));
    v.into_result()?;
    let mut sites = sites.unwrap_or_default();
    sites.sort_unstable();
    sites.dedup();
    let filter = ListFilter {
        states,
        severities,
        kinds,
        sites: (!sites.is_empty()).then_some(sites),
    };
    Ok((filter, size.unwrap_or(PAGE_SIZE_DEFAULT)))
}

pub(super) async fn list_alerts(
    state: &AppState,
    request: &Request<pb::ListAlertsRequest>,
) -> Result<pb::ListAlertsResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (filter, page_size) = parse_list(message)?;
    let pager = Pager::new(&("alerts", &filter));
    let after = pager.position(&message.page_token, |parts| {
        Some(Cursor {
            since: parts.instant()?,
            id: parts.parse()?,
        })
    })?;
    let page = app::list(&state.pool, &caller.scope(), &filter, after, page_size).await?;
    let next_page_token = match page.alerts.last() {
        Some(last) if page.more => pager.token(&[&micros(last.since), &last.id]),
        _ => String::new(),
    };
    Ok(pb::ListAlertsResponse {
        alerts: page.alerts.iter().map(alert).collect(),
        next_page_token,
        total_size: page.total_size,
    })
}

pub(super) async fn acknowledge_alert(
    state: &AppState,
    request: &Request<pb::AcknowledgeAlertRequest>,
) -> Result<pb::AcknowledgeAlertResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let mut v = Violations::new();
    let request_id = v.absorb(convert::request_id(&message.request_id));
    let alert_id = v.absorb(convert::uuid("alert_id", &message.alert_id));
    let note = v.absorb(NOTE.parse("note", &message.note));
    v.into_result()?;
    let (Some(request_id), Some(alert_id), Some(note)) = (request_id, alert_id, note) else {
        return Err(ApiError::invalid("", "invalid request"));
    };
    let write = Write::new(caller, rpc::ACKNOWLEDGE_ALERT, request_id);
    state
        .idempotency
        .run_audited(write.key(), message, async |conn| {
            let (row, audit) = app::acknowledge(conn, write.act(), alert_id, &note).await?;
            Ok::<_, ApiError>((
                pb::AcknowledgeAlertResponse {
                    alert: Some(alert(&row)),
                },
                Some(audit),
            ))
        })
        .await
}
