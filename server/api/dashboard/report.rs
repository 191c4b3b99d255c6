//! GetDailyReport and ExportDailyReport: the request parsed into a day and the caller's plan
//! (`app::daily_report`), the report shown as messages or as a CSV file.
//!
//! Decisions:
//! - The day is today (Africa/Conakry, figures so far) when not given, never in the future.
//! - The CSV file opens in a spreadsheet set up in French: UTF-8 with a byte order mark,
//!   `;` between fields by default (`,` on request), CRLF line ends (RFC 4180), a header line
//!   in French, then the total, the sites (by name) and the agents (by score), each as two
//!   lines: the day, then the day before. Dates are `JJ/MM/AAAA`; every figure is a whole
//!   number (counts, GNF) written with plain digits and a leading `-` when negative, no
//!   thousands separator and no decimals, so both separators read them as numbers. A field
//!   holding the separator, a quote or a line end is quoted (quotes doubled); a text field
//!   starting with `=`, `+`, `-`, `@`, a tab or a CR gets a leading `'` so the spreadsheet
//!   never runs it as a formula (OWASP "CSV injection").
//! - The file is built whole (one line per agent and site: small) and sent in chunks of at
//!   most 64 KiB; the first message carries the content type and the file name.

use chrono::{NaiveDate, Utc};
use futures::stream;
use tonic::Request;
use tonic::codegen::BoxStream;

use crate::api::collections::views::activity;
use crate::api::convert::timestamp;
use crate::api::error::{ApiError, Violations};
use crate::api::parse::{self, today, user_ref};
use crate::app::daily_report as app;
use crate::app::daily_stats::StatsPlan;
use crate::auth::caller::Caller;
use crate::domain::report::{DailyReport, MissionCounts, ReportFigures};
use crate::proto::v1 as pb;
use crate::state::AppState;

const SITE_IDS_MAX: usize = 200;
/// Largest `data` of one ExportDailyReport message (bytes).
pub const CHUNK_BYTES: usize = 64 * 1024;
const CONTENT_TYPE: &str = "text/csv; charset=utf-8";
const BOM: &str = "\u{feff}";

/// The day and sites of a request (see the module's decisions).
fn day_and_sites(
    date: Option<&pb::Date>,
    site_ids: &[String],
) -> Result<(NaiveDate, Vec<uuid::Uuid>), ApiError> {
    let today = today();
    let mut v = Violations::new();
    let day = match date {
        Some(date) => v.absorb(parse::date("date", date)),
        None => Some(today),
    };
    if day.is_some_and(|day| day > today) {
        v.add("date", "must not be in the future");
    }
    let sites = v.absorb(parse::ids("site_ids", site_ids, SITE_IDS_MAX));
    v.into_result()?;
    match (day, sites) {
        (Some(day), Some(sites)) => Ok((day, sites)),
        _ => Err(ApiError::invalid("", "invalid request")),
    }
}

async fn read(
    state: &AppState,
    caller: &Caller,
    date: Option<&pb::Date>,
    site_ids: &[String],
) -> Result<(DailyReport, NaiveDate, NaiveDate), ApiError> {
    let (day, sites) = day_and_sites(date, site_ids)?;
    let plan = StatsPlan::new(caller, &sites, &[]);
    let (report, previous_day) = app::report(&state.pool, &plan, day).await?;
    Ok((report, day, previous_day))
}

fn missions(counts: &MissionCounts) -> pb::MissionFigures {
    pb::MissionFigures {
        planned_count: counts.planned,
        in_progress_count: counts.in_progress,
        done_count: counts.done,
        failed_count: counts.failed,
        cancelled_count: counts.cancelled,
    }
}

fn figures(f: &ReportFigures) -> Option<pb::DailyReportFigures> {
    Some(pb::DailyReportFigures {
        activity: Some(activity(&f.activity)),
        missions: Some(missions(&f.missions)),
    })
}

pub(super) async fn get_daily_report(
    state: &AppState,
    request: &Request<pb::GetDailyReportRequest>,
) -> Result<pb::GetDailyReportResponse, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let (report, day, previous_day) =
        read(state, caller, message.date.as_ref(), &message.site_ids).await?;
    Ok(pb::GetDailyReportResponse {
        date: Some(parse::date_proto(day)),
        previous_date: Some(parse::date_proto(previous_day)),
        total: figures(&report.total),
        previous_total: figures(&report.previous_total),
        agents: report
            .agents
            .iter()
            .map(|line| pb::AgentDailyReportLine {
                agent: Some(user_ref(line.agent_id, &line.full_name)),
                site_ids: line.site_ids.iter().map(ToString::to_string).collect(),
                day: figures(&line.day),
                previous_day: figures(&line.previous_day),
            })
            .collect(),
        sites: report
            .sites
            .iter()
            .map(|line| pb::SiteDailyReportLine {
                site_id: line.site_id.to_string(),
                site_name: line.name.clone(),
                day: figures(&line.day),
                previous_day: figures(&line.previous_day),
            })
            .collect(),
        compute_time: Some(timestamp(Utc::now())),
    })
}

pub(super) async fn export_daily_report(
    state: &AppState,
    request: &Request<pb::ExportDailyReportRequest>,
) -> Result<BoxStream<pb::ExportDailyReportResponse>, ApiError> {
    let caller = Caller::of(request)?;
    let message = request.get_ref();
    let separator = match pb::CsvSeparator::try_from(message.separator) {
        Ok(pb::CsvSeparator::Comma) => ',',
        Ok(pb::CsvSeparator::Unspecified | pb::CsvSeparator::Semicolon) => ';',
        Err(_) => return Err(ApiError::invalid("separator", "unknown separator")),
    };
    let (report, day, previous_day) =
        read(state, caller, message.date.as_ref(), &message.site_ids).await?;
    let file = csv(&report, day, previous_day, separator);
    let filename = format!("rapport-journalier-{}.csv", day.format("%Y-%m-%d"));
    let messages: Vec<Result<pb::ExportDailyReportResponse, tonic::Status>> =
        chunks(file.as_bytes(), CHUNK_BYTES)
            .enumerate()
            .map(|(i, data)| {
                let first = i == 0;
                Ok(pb::ExportDailyReportResponse {
                    content_type: if first {
                        CONTENT_TYPE.into()
                    } else {
                        String::new()
                    },
                    filename: if first {
                        filename.clone()
                    } else {
                        String::new()
                    },
                    data: data.to_vec(),
                })
            })
            .collect();
    Ok(Box::pin(stream::iter(messages)))
}

/// `bytes` cut in pieces of at most `size` bytes (at least one piece, empty when `bytes` is).
fn chunks(bytes: &[u8], size: usize) -> impl Iterator<Item = &[u8]> {
    let empty: &[u8] = &[];
    let pieces: Vec<&[u8]> = if bytes.is_empty() {
        vec![empty]
    } else {
        bytes.chunks(size.max(1)).collect()
    };
    pieces.into_iter()
}

/// Column titles of the CSV file.
const HEADER: [&str; 19] = [
    "Type",
    "Identifiant",
    "Nom",
    "Jour",
    "Appels",
    "Visites",
    "Visites éloignées",
    "Refus",
    "Promesses",
    "Montant promis (GNF)",
    "Paiements",
    "Encaissé net (GNF)",
    "Annulations",
    "Points",
    "Missions planifiées",
    "Missions en cours",
    "Missions réussies",
    "Missions échouées",
    "Missions annulées",
];

/// One text field as written (see the module's decisions).
fn text_field(value: &str, separator: char) -> String {
    let guarded = if value.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{value}")
    } else {
        value.to_owned()
    };
    if guarded.contains([separator, '"', '\n', '\r']) {
        format!("\"{}\"", guarded.replace('"', "\"\""))
    } else {
        guarded
    }
}

/// The figures of one CSV line, in the order of [`HEADER`] from "Appels".
fn numbers(f: &ReportFigures) -> [i64; 15] {
    let (a, m) = (&f.activity, &f.missions);
    [
        a.call_count,
        a.visit_count,
        a.far_away_visit_count,
        a.refusal_count,
        a.promise_count,
        a.promised_gnf,
        a.payment_count,
        a.collected_gnf,
        a.reversal_count,
        a.score_points,
        m.planned,
        m.in_progress,
        m.done,
        m.failed,
        m.cancelled,
    ]
}

/// The report as a CSV file, BOM included (see the module's decisions).
pub fn csv(
    report: &DailyReport,
    day: NaiveDate,
    previous_day: NaiveDate,
    separator: char,
) -> String {
    let sep = separator.to_string();
    let days = [
        day.format("%d/%m/%Y").to_string(),
        previous_day.format("%d/%m/%Y").to_string(),
    ];
    let mut out = String::from(BOM);
    let header: Vec<String> = HEADER.iter().map(|t| text_field(t, separator)).collect();
    out.push_str(&header.join(&sep));
    out.push_str("\r\n");
    let mut pair = |kind: &str, id: &str, name: &str, figures: [&ReportFigures; 2]| {
        for (day, f) in days.iter().zip(figures) {
            let mut fields: Vec<String> = [kind, id, name, day.as_str()]
                .iter()
                .map(|t| text_field(t, separator))
                .collect();
            fields.extend(numbers(f).iter().map(ToString::to_string));
            out.push_str(&fields.join(&sep));
            out.push_str("\r\n");
        }
    };
    pair("Total", "", "", [&report.total, &report.previous_total]);
    for site in &report.sites {
        pair(
            "Site",
            &site.site_id.to_string(),
            &site.name,
            [&site.day, &site.previous_day],
        );
    }
    for agent in &report.agents {
        pair(
            "Agent",
            &agent.agent_id.to_string(),
            &agent.full_name,
            [&agent.day, &agent.previous_day],
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::daily::Activity;
    use crate::domain::report::{AgentReportLine, SiteReportLine};

    #[test]
    fn text_fields_are_quoted_and_never_formulas() {
        assert_eq!(text_field("Kaloum", ';'), "Kaloum");
        assert_eq!(text_field("Diallo; Sow", ';'), "\"Diallo; Sow\"");
        assert_eq!(text_field("Diallo; Sow", ','), "Diallo; Sow");
        assert_eq!(
            text_field("Dit \"Le Sage\"", ';'),
            "\"Dit \"\"Le Sage\"\"\""
        );
        assert_eq!(text_field("=1+1", ';'), "'=1+1");
        assert_eq!(text_field("-5", ';'), "'-5");
        assert_eq!(text_field("a\nb", ','), "\"a\nb\"");
    }

    #[test]
    fn chunks_cover_the_bytes_in_order() {
        let bytes: Vec<u8> = (0..=255).collect();
        let pieces: Vec<&[u8]> = chunks(&bytes, 100).collect();
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [100, 100, 56]
        );
        assert_eq!(pieces.concat(), bytes);
        assert_eq!(chunks(&[], 10).count(), 1);
    }

    #[test]
    fn csv_has_bom_header_and_two_lines_per_row() {
        let figures = |calls, collected, done| ReportFigures {
            activity: Activity {
                call_count: calls,
                collected_gnf: collected,
                ..Default::default()
            },
            missions: MissionCounts {
                planned: done,
                done,
                ..Default::default()
            },
        };
        let site = Uuid::from_u128(1);
        let agent = Uuid::from_u128(2);
        let report = DailyReport {
            total: figures(3, 1_500_000, 2),
            previous_total: figures(1, -100_000, 0),
            sites: vec![SiteReportLine {
                site_id: site,
                name: "Kaloum; centre".into(),
                day: figures(3, 1_500_000, 2),
                previous_day: figures(1, -100_000, 0),
            }],
            agents: vec![AgentReportLine {
                agent_id: agent,
                full_name: "Aïssatou Keïta".into(),
                site_ids: vec![site],
                day: figures(3, 1_500_000, 2),
                previous_day: figures(1, -100_000, 0),
            }],
        };
        let day = NaiveDate::from_ymd_opt(2026, 1, 15).expect("day");
        let previous = NaiveDate::from_ymd_opt(2026, 1, 14).expect("day");
        let file = csv(&report, day, previous, ';');
        let lines: Vec<&str> = file.split("\r\n").collect();
        assert!(file.starts_with("\u{feff}Type;Identifiant;Nom;Jour;Appels;"));
        assert_eq!(lines.len(), 1 + 2 * 3 + 1);
        assert_eq!(lines[7], "");
        assert_eq!(
            lines[1],
            "Total;;;15/01/2026;3;0;0;0;0;0;0;1500000;0;0;2;0;2;0;0"
        );
        assert_eq!(
            lines[4],
            format!(
                "Site;{site};\"Kaloum; centre\";14/01/2026;1;0;0;0;0;0;0;-100000;0;0;0;0;0;0;0"
            )
        );
        assert_eq!(
            lines[5],
            format!("Agent;{agent};Aïssatou Keïta;15/01/2026;3;0;0;0;0;0;0;1500000;0;0;2;0;2;0;0")
        );
        let comma = csv(&report, day, previous, ',');
        assert!(comma.contains(&format!("Site,{site},Kaloum; centre,15/01/2026,3,")));
        assert_eq!(lines[0].split(';').count(), HEADER.len());
    }
}
