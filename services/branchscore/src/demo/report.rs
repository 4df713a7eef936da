//! The demo's printed summary: tables and terminal bar charts.
use super::load::LoadReport;
use super::network::{Behaviour, Network};
use branchscore_proto::clients::v1::TransactionLine;
use chrono::Datelike;
use std::collections::BTreeMap;
use std::fmt::Write;

/// `1234567` minor units -> `12 345.67`.
pub fn money(minor_units: i64) -> String {
    let sign = if minor_units < 0 { "-" } else { "" };
    let units = minor_units.unsigned_abs();
    let whole = (units / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(' ');
        }
        grouped.push(digit);
    }
    format!("{sign}{grouped}.{:02}", units % 100)
}

/// A horizontal bar `width` characters long at `value / max`.
pub fn bar(value: i64, max: i64, width: usize) -> String {
    if max <= 0 || value <= 0 {
        return String::new();
    }
    let eighths = (value as f64 / max as f64 * width as f64 * 8.0).round() as usize;
    let partial = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"][eighths % 8];
    format!("{}{partial}", "█".repeat(eighths / 8))
}

/// What was loaded and what the service said about it.
pub fn loading(network: &Network, report: &LoadReport, seconds: f64, currency: &str) -> String {
    let mut out = String::new();
    let lines = network.lines.len() as f64;
    let _ = writeln!(
        out,
        "\nLoaded {} branches, {} employees, {} products, {} clients ({} new) and {} sales lines in {seconds:.1} s ({:.0} lines/s)",
        network.branches.len(),
        network.employees.len(),
        network.products.len(),
        network.clients.len(),
        report.clients_created,
        network.lines.len(),
        lines / seconds.max(0.001),
    );
    let _ = writeln!(
        out,
        "  import replies: {} accepted, {} duplicates, {} rejected",
        report.accepted, report.duplicates, report.rejected
    );
    let _ = writeln!(
        out,
        "  the first stream sent again: {} accepted, {} duplicates (a retried import changes nothing)",
        report.resend.accepted, report.resend.duplicates
    );
    let _ = writeln!(
        out,
        "  {} broken lines sent on purpose, {} refused:",
        report.broken.rejections.len(),
        report.broken.rejected
    );
    for rejection in &report.broken.rejections {
        let _ = writeln!(out, "    {:<16} {:<20} {}", rejection.id, rejection.field, rejection.reason);
    }
    let _ = writeln!(out, "\nNet sales by branch ({currency}, returns deducted)");
    let mut by_branch: BTreeMap<&str, (usize, i64)> = BTreeMap::new();
    for client in &network.clients {
        by_branch.entry(&client.branch_id).or_default().0 += 1;
    }
    for line in &network.lines {
        by_branch.entry(&line.branch_id).or_default().1 += amount(line);
    }
    let max = by_branch.values().map(|(_, revenue)| *revenue).max().unwrap_or(0);
    for (branch, (clients, revenue)) in &by_branch {
        let _ = writeln!(out, "  {branch:<5} {clients:>6} clients {:>16}  {}", money(*revenue), bar(*revenue, max, 30));
    }
    let mut by_month: BTreeMap<(i32, u32), i64> = BTreeMap::new();
    for line in &network.lines {
        if let Some(date) = line.business_date.as_ref().and_then(|d| d.to_naive()) {
            *by_month.entry((date.year(), date.month())).or_default() += amount(line);
        }
    }
    let _ = writeln!(out, "\nNetwork net sales by month ({currency}): spring and autumn peaks, summer lull");
    let max = by_month.values().copied().max().unwrap_or(0);
    for ((year, month), revenue) in &by_month {
        let _ = writeln!(out, "  {year}-{month:02} {:>16}  {}", money(*revenue), bar(*revenue, max, 40));
    }
    let _ = writeln!(out, "\nClients by buying behaviour (as generated)");
    let mut mix: BTreeMap<&str, usize> = BTreeMap::new();
    for behaviour in &network.behaviours {
        *mix.entry(Behaviour::label(*behaviour)).or_default() += 1;
    }
    for (label, count) in mix {
        let _ = writeln!(out, "  {label:<12} {count:>6}");
    }
    out
}

/// Signed: returns carry negative amounts.
fn amount(line: &TransactionLine) -> i64 {
    line.amount.as_ref().map_or(0, |m| m.minor_units)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_groups_thousands_and_keeps_minor_units() {
        assert_eq!(money(0), "0.00");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(123_456_789), "1 234 567.89");
        assert_eq!(money(-100_000), "-1 000.00");
    }

    #[test]
    fn bars_scale_to_the_maximum() {
        assert_eq!(bar(10, 10, 4), "████");
        assert_eq!(bar(5, 10, 4), "██");
        assert_eq!(bar(1, 16, 2), "▏");
        assert_eq!(bar(0, 10, 4), "");
    }
}
