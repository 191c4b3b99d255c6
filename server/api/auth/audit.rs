//! ListAuditEntries: the audit log, newest first.

use crate::api::convert::{self, timestamp};
use crate::api::error::ApiError;
use crate::proto::v1 as pb;
use crate::state::AppState;
use crate::store::audit::{self, AuditFilter, AuditRow, Outcome};

/// Longest `action` filter, in characters.
const ACTION_MAX: usize = 100;
/// Longest `target_type` filter, in characters.
const TARGET_TYPE_MAX: usize = 50;
/// Longest `target_id` filter, in characters.
const TARGET_ID_MAX: usize = 100;

fn parse_outcome(value: i32) -> Result<Option<Outcome>, ApiError> {
    match pb::AuditOutcome::try_from(value) {
        Ok(pb::AuditOutcome::Unspecified) => Ok(None),
        Ok(pb::AuditOutcome::Success) => Ok(Some(Outcome::Ok)),
        Ok(pb::AuditOutcome::Denied) => Ok(Some(Outcome::Denied)),
        Ok(pb::AuditOutcome::Failed) => Ok(Some(Outcome::Failed)),
        Err(_) => Err(ApiError::invalid("outcome", "unknown outcome")),
    }
}

fn parse_filter(request: &pb::ListAuditEntriesRequest) -> Result<AuditFilter, ApiError> {
    let before_id = convert::decode_page_token(&request.page_token)?
        .map(|cursor| {
            cursor
                .parse::<i64>()
                .map_err(|_| convert::invalid_page_token())
        })
        .transpose()?;
    let range = request.time_range.as_ref();
    let bound = |field: &str, at: Option<&prost_types::Timestamp>| {
        at.map(|t| convert::from_timestamp(field, t)).transpose()
    };
    let since = bound(
        "time_range.start_time",
        range.and_then(|r| r.start_time.as_ref()),
    )?;
    let until = bound(
        "time_range.end_time",
        range.and_then(|r| r.end_time.as_ref()),
    )?;
    let outcome = parse_outcome(request.outcome)?;
    Ok(AuditFilter {
        actor_id: convert::optional_uuid("actor_id", &request.actor_id)?,
        action: convert::optional_text("action", &request.action, ACTION_MAX)?,
        target_type: convert::optional_text("target_type", &request.target_type, TARGET_TYPE_MAX)?,
        target_id: convert::optional_text("target_id", &request.target_id, TARGET_ID_MAX)?,
        outcome,
        since,
        until,
        before_id,
    })
}

pub(super) async fn list(
    state: &AppState,
    request: &pb::ListAuditEntriesRequest,
) -> Result<pb::ListAuditEntriesResponse, ApiError> {
    let limit = convert::page_size(request.page_size, 100, 1000)?;
    let filter = parse_filter(request)?;
    let rows = audit::list(&state.pool, &filter, limit).await?;
    let next_page_token = match rows.last() {
        Some(last) if rows.len() as i64 == limit => {
            convert::encode_page_token(&last.id.to_string())
        }
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
