//! ListAuditEntries: the audit log, newest first.

use crate::api::convert::{self, timestamp};
use crate::api::error::{ApiError, Violations};
use crate::api::paging::Pager;
use crate::api::parse::{self, Text};
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::audit::{self, AuditFilter, AuditRow, Outcome};

/// The `action` filter.
const ACTION: Text = Text::line(0, 100);
/// The `target_type` filter.
const TARGET_TYPE: Text = Text::line(0, 50);
/// The `target_id` filter.
const TARGET_ID: Text = Text::line(0, 100);

fn parse_outcome(value: i32) -> Result<Option<Outcome>, ApiError> {
    match pb::AuditOutcome::try_from(value) {
        Ok(pb::AuditOutcome::Unspecified) => Ok(None),
        Ok(pb::AuditOutcome::Success) => Ok(Some(Outcome::Ok)),
        Ok(pb::AuditOutcome::Denied) => Ok(Some(Outcome::Denied)),
        Ok(pb::AuditOutcome::Failed) => Ok(Some(Outcome::Failed)),
        Err(_) => Err(ApiError::invalid("outcome", "unknown outcome")),
    }
}

/// The filter of a ListAuditEntries request, without its position (`before_id`).
fn parse_filter(request: &pb::ListAuditEntriesRequest) -> Result<AuditFilter, ApiError> {
    let mut violations = Violations::new();
    let (since, until) =
        parse::time_range(&mut violations, "time_range", request.time_range.as_ref());
    let mut text = |field: &str, text: Text, value: &str| {
        violations
            .absorb(text.parse_optional(field, value))
            .flatten()
    };
    let action = text("action", ACTION, &request.action);
    let target_type = text("target_type", TARGET_TYPE, &request.target_type);
    let target_id = text("target_id", TARGET_ID, &request.target_id);
    let actor_id = violations
        .absorb(convert::optional_uuid("actor_id", &request.actor_id))
        .flatten();
    let outcome = violations.absorb(parse_outcome(request.outcome)).flatten();
    violations.into_result()?;
    Ok(AuditFilter {
        actor_id,
        action,
        target_type,
        target_id,
        outcome,
        since,
        until,
        before_id: None,
    })
}

pub(super) async fn list(
    state: &AppState,
    request: &pb::ListAuditEntriesRequest,
) -> Result<pb::ListAuditEntriesResponse, ApiError> {
    let limit = convert::page_size(request.page_size, 100, 1000)?;
    let mut filter = parse_filter(request)?;
    let pager = Pager::new(&("audit", &filter));
    filter.before_id = pager.position(&request.page_token, |parts| parts.parse::<i64>())?;
    let rows = audit::list(&state.pool, &filter, limit).await?;
    let next_page_token = match rows.last() {
        Some(last) if rows.len() as i64 == limit => pager.token(&[&last.id]),
        _ => String::new(),
    };
    Ok(pb::ListAuditEntriesResponse {
        audit_entries: rows.into_iter().map(to_proto_audit).collect(),
        next_page_token,
    })
}

fn to_proto_audit(row: AuditRow) -> pb::AuditEntry {
    let outcome = match row.outcome {
        Outcome::Ok => pb::AuditOutcome::Success,
        Outcome::Denied => pb::AuditOutcome::Denied,
        Outcome::Failed => pb::AuditOutcome::Failed,
    };
    let details = match row.details {
        serde_json::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| {
                let v = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, v)
            })
            .collect(),
        _ => Default::default(),
    };
    pb::AuditEntry {
        audit_entry_id: row.id.to_string(),
        event_time: Some(timestamp(row.occurred_at)),
        actor: row.actor_id.map(|id| pb::UserRef {
            user_id: id.to_string(),
            full_name: row.actor_name.unwrap_or_default(),
        }),
        actor_role: row.actor_role.map_or(0, i32::from),
        action: row.action,
        target_type: row.target_type.unwrap_or_default(),
        target_id: row.target_id.unwrap_or_default(),
        request_id: row.request_id.map(|id| id.to_string()).unwrap_or_default(),
        outcome: outcome.into(),
        status_code: String::new(),
        details,
        client_ip: row.client_ip.unwrap_or_default(),
        device_id: String::new(),
    }
}
