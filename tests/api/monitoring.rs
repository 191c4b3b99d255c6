//! The monitoring set-up names only series that exist: every series an alert rule
//! (ops/alert_rules.yml) or a Grafana panel (ops/grafana/dashboards/*.json) reads is exported by
//! the server (`akig::metrics::ALL`, whose export the metrics test checks) or by an exporter
//! (the documented list ops/exporter-series.txt). promtool checks the rest
//! (ops/check-monitoring.sh).

use std::collections::BTreeSet;
use std::path::Path;

/// Words of PromQL that are not series names when they stand alone.
const KEYWORDS: [&str; 7] = ["and", "or", "unless", "bool", "offset", "inf", "nan"];
/// Aggregation operators, which may be followed by `by (...)` before their parentheses.
const AGGREGATIONS: [&str; 12] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];
/// Modifiers followed by a list of label names in parentheses.
const LABEL_LISTS: [&str; 6] = [
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The series names a PromQL expression reads: identifiers that are not functions,
/// aggregations, keywords or label names, once label matchers, strings and ranges are removed.
fn series_of(expr: &str) -> BTreeSet<String> {
    // Drop "strings", {matchers} and [ranges].
    let mut plain = String::new();
    let mut closing = None;
    for c in expr.chars() {
        match (closing, c) {
            (None, '"') => closing = Some('"'),
            (None, '{') => closing = Some('}'),
            (None, '[') => closing = Some(']'),
            (None, c) => plain.push(c),
            (Some(end), c) if c == end => {
                closing = None;
                plain.push(' ');
            }
            (Some(_), _) => {}
        }
    }
    let chars: Vec<char> = plain.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if !(c.is_ascii_alphabetic() || c == '_' || c == ':') {
            i += 1;
            continue;
        }
        let start = i;
        while i < chars.len() && (chars[i].is_ascii_alphanumeric() || "_:".contains(chars[i])) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        let mut next = i;
        while next < chars.len() && chars[next] == ' ' {
            next += 1;
        }
        let called = chars.get(next) == Some(&'(');
        if LABEL_LISTS.contains(&word.as_str()) {
            if called {
                // Skip the label list.
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
            }
        } else if !called
            && !KEYWORDS.contains(&word.to_lowercase().as_str())
            && !AGGREGATIONS.contains(&word.as_str())
        {
            names.insert(word);
        }
    }
    names
}

/// The series the server exports, histograms with their `_bucket`, `_sum` and `_count`.
fn server_series() -> BTreeSet<String> {
    let mut series: BTreeSet<String> = akig::metrics::ALL.iter().map(|s| (*s).to_owned()).collect();
    for histogram in akig::metrics::HISTOGRAMS {
        for suffix in ["_bucket", "_sum", "_count"] {
            series.insert(format!("{histogram}{suffix}"));
        }
    }
    series
}

fn exporter_series() -> BTreeSet<String> {
    std::fs::read_to_string(repo("ops/exporter-series.txt"))
        .expect("ops/exporter-series.txt")
        .lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

fn repo(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// Every PromQL expression of the alert rules and the dashboards, with where it is.
fn expressions() -> Vec<(String, String)> {
    let mut found = Vec::new();
    let rules = std::fs::read_to_string(repo("ops/alert_rules.yml")).expect("alert rules");
    let mut alert = String::new();
    for line in rules.lines() {
        if let Some(name) = line.trim().strip_prefix("- alert: ") {
            alert = name.to_owned();
        }
        if let Some(expr) = line.trim().strip_prefix("expr: ") {
            found.push((format!("alert {alert}"), expr.to_owned()));
        }
    }
    let mut dashboards: Vec<_> = std::fs::read_dir(repo("ops/grafana/dashboards"))
        .expect("dashboards")
        .map(|entry| entry.expect("entry").path())
        .collect();
    dashboards.sort();
    for path in dashboards {
        let text = std::fs::read_to_string(&path).expect("dashboard");
        let dashboard: serde_json::Value = serde_json::from_str(&text).expect("JSON");
        for panel in dashboard["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                found.push((
                    format!("{} panel {}", path.display(), panel["title"]),
                    target["expr"].as_str().expect("expr").to_owned(),
                ));
            }
        }
    }
    found
}

#[test]
fn series_are_read_from_expressions() {
    let names = |expr: &str| series_of(expr).into_iter().collect::<Vec<_>>();
    assert_eq!(
        names(
            r#"histogram_quantile(0.95, sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket{grpc_type="unary"}[5m]))) > 1"#
        ),
        ["grpc_server_handling_seconds_bucket"]
    );
    assert_eq!(
        names(
            r#"(max by (site) (akig_arrears_tenants) > 5) and on (site) (max by (site) (akig_site_sensitive) == 1)"#
        ),
        ["akig_arrears_tenants", "akig_site_sensitive"]
    );
    assert_eq!(
        names("a_total / ignoring(state) b_max > 0.8 and hour() >= 14"),
        ["a_total", "b_max"]
    );
}

#[test]
fn alerts_and_dashboards_read_only_exported_series() {
    let server = server_series();
    let exporters = exporter_series();
    let expressions = expressions();
    assert!(expressions.len() >= 50, "{} expressions", expressions.len());
    let mut read = BTreeSet::new();
    for (place, expr) in &expressions {
        let series = series_of(expr);
        assert!(!series.is_empty(), "{place}: no series in {expr}");
        for name in series {
            assert!(
                server.contains(&name) || exporters.contains(&name),
                "{place}: {name} is exported neither by the server (server/metrics.rs) nor by an \
                 exporter (ops/exporter-series.txt)"
            );
            read.insert(name);
        }
    }
    // Each business gauge is shown somewhere.
    for gauge in [
        akig::metrics::ARREARS_GNF,
        akig::metrics::ARREARS_TENANTS,
        akig::metrics::COLLECTED_TODAY_GNF,
        akig::metrics::PROMISES,
        akig::metrics::AGENT_SCORE_TODAY,
        akig::metrics::PUNCTUALITY_RATIO,
    ] {
        assert!(read.contains(gauge), "{gauge} is in no rule or panel");
    }
}
