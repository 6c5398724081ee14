//! Text output shared by the subcommands: aligned tables and run reports.

use crate::contract::{Action, ActionStatus, Check};
use crate::engine::LoadedPlugin;
use crate::run::{RoundReport, RunReport};
use crate::text::one_line;
use std::fmt::Write;

/// Columns padded to their widest cell; the last column is not padded.
/// Every cell is shown as one line (see [`one_line`]), so no cell can forge
/// a row.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| one_line(cell).into_owned()).collect())
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(&rows) {
        let mut line = String::new();
        for (index, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if index + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ");
            }
        }
        out.push_str("  ");
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// A plan's checks as a table.
pub fn checks(checks: &[Check]) -> String {
    let rows: Vec<Vec<String>> = checks
        .iter()
        .map(|c| {
            vec![
                c.status.as_str().to_string(),
                c.name.clone(),
                c.detail.clone(),
            ]
        })
        .collect();
    table(&["CHECK", "NAME", "DETAIL"], &rows)
}

/// The columns of [`action_row`].
pub const ACTION_COLUMNS: [&str; 5] = ["#", "ACTION", "TARGET", "STATUS", "DETAIL"];

/// One action as a table row: its result's detail followed by the reason
/// the plugin gave for it.
pub fn action_row(seq: usize, action: &Action, status: &str, detail: &str) -> Vec<String> {
    let note = match (detail.is_empty(), action.reason().is_empty()) {
        (false, false) => format!("{detail} · {}", action.reason()),
        (true, _) => action.reason().to_string(),
        (false, true) => detail.to_string(),
    };
    vec![
        (seq + 1).to_string(),
        action.kind().to_string(),
        action.target(),
        status.to_string(),
        note,
    ]
}

/// Each round: its summary, checks, actions with their results, and log lines.
pub fn rounds(rounds: &[RoundReport]) -> String {
    let mut out = String::new();
    for round in rounds {
        let Some(plan) = &round.plan else {
            let _ = writeln!(out, "round {}: no plan", round.round + 1);
            out.push_str(&logs(round));
            continue;
        };
        let _ = writeln!(
            out,
            "round {}: {}",
            round.round + 1,
            one_line(&plan.summary)
        );
        if !plan.checks.is_empty() {
            out.push_str(&checks(&plan.checks));
        }
        if !plan.actions.is_empty() {
            let rows: Vec<Vec<String>> = plan
                .actions
                .iter()
                .enumerate()
                .map(|(seq, action)| match round.results.get(seq) {
                    Some(result) => action_row(seq, action, result.status.as_str(), &result.detail),
                    None => action_row(seq, action, "proposed", ""),
                })
                .collect();
            out.push('\n');
            out.push_str(&table(&ACTION_COLUMNS, &rows));
        }
        if let Some(why) = &plan.escalate {
            let _ = writeln!(out, "  escalate: {}", one_line(why));
        }
        out.push_str(&logs(round));
        out.push('\n');
    }
    out
}

fn logs(round: &RoundReport) -> String {
    let mut out = String::new();
    for line in &round.logs {
        let _ = writeln!(out, "  log {:<6} {}", line.level, one_line(&line.message));
    }
    out
}

pub fn run_report(plugin: &LoadedPlugin, report: &RunReport) -> String {
    let mut out = format!(
        "{} {} · {} · run {}\n\n",
        plugin.name,
        one_line(&plugin.info.version),
        if report.dry_run { "dry-run" } else { "apply" },
        report.id
    );
    out.push_str(&rounds(&report.rounds));
    let _ = writeln!(
        out,
        "{}: {}",
        report.status.as_str(),
        one_line(&report.reason)
    );
    if report.dry_run
        && report
            .rounds
            .iter()
            .any(|r| r.results.iter().any(|a| a.status == ActionStatus::Planned))
    {
        out.push_str("nothing was changed; run again with --apply to execute this plan\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_characters() {
        let rows = vec![
            vec!["1".into(), "é-long-name".into(), "x".into()],
            vec!["22".into(), "b".into(), "last column free".into()],
        ];
        let text = table(&["#", "NAME", "NOTE"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "  #   NAME         NOTE");
        assert_eq!(lines[1], "  1   é-long-name  x");
        assert_eq!(lines[2], "  22  b            last column free");
    }
}
