//! The demo's printed summary: tables and terminal bar charts.
use super::kpi::KpiReport;
use super::load::LoadReport;
use super::network::{Behaviour, Network};
use super::pipeline::PipelineReport;
use super::reports::ReportsReport;
use super::scores::ScoreReport;
use branchscore_proto::clients::v1::ClientScore;
use branchscore_proto::clients::v1::TransactionLine;
use branchscore_proto::common::v1::{AbcClass, LifecycleStatus, Money, XyzClass};
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

/// Whole currency units: `1234567` minor units -> `12 345`.
fn whole(minor_units: i64) -> String {
    money(minor_units).split('.').next().unwrap_or_default().to_owned()
}

fn abc_label(class: i32) -> &'static str {
    match AbcClass::try_from(class).unwrap_or_default() {
        AbcClass::A => "A",
        AbcClass::B => "B",
        AbcClass::C => "C",
        AbcClass::Unspecified => "-",
    }
}

fn xyz_label(class: i32) -> &'static str {
    match XyzClass::try_from(class).unwrap_or_default() {
        XyzClass::X => "X",
        XyzClass::Y => "Y",
        XyzClass::Z => "Z",
        XyzClass::Unspecified => "-",
    }
}

fn lifecycle_label(status: i32) -> &'static str {
    match LifecycleStatus::try_from(status).unwrap_or_default() {
        LifecycleStatus::Potential => "potential",
        LifecycleStatus::New => "new",
        LifecycleStatus::Regular => "regular",
        LifecycleStatus::Restored => "restored",
        LifecycleStatus::Lost => "lost",
        LifecycleStatus::Unspecified => "-",
    }
}

fn units(money: &Option<Money>) -> i64 {
    money.as_ref().map_or(0, |m| m.minor_units)
}

/// The recompute, the ABC x XYZ matrix, the clusters, the score bands and a
/// few explained scores.
pub fn scoring(report: &ScoreReport, network: &Network, currency: &str) -> String {
    let mut out = String::new();
    let s = &report.summary;
    let as_of = s.as_of.and_then(|d| d.to_naive()).map(|d| d.to_string()).unwrap_or_default();
    let _ = writeln!(
        out,
        "\nScores as of {as_of} (settings version {}): {} clients scored in {:.1} s, {} history rows, {} clusters",
        s.settings_version,
        s.clients,
        s.duration_ms as f64 / 1000.0,
        s.changed,
        s.clusters
    );
    let _ = writeln!(out, "\nABC x XYZ: clients and window revenue ({currency})");
    let _ = writeln!(out, "       {:>22} {:>22} {:>22} {:>22}", "X stable", "Y variable", "Z erratic", "- no XYZ");
    for abc in [AbcClass::A, AbcClass::B, AbcClass::C, AbcClass::Unspecified] {
        let mut row = format!("  {:<4} ", abc_label(abc as i32));
        for xyz in [XyzClass::X, XyzClass::Y, XyzClass::Z, XyzClass::Unspecified] {
            let cell = report.matrix.cells.iter().find(|c| c.abc_class == abc as i32 && c.xyz_class == xyz as i32);
            let text =
                cell.map_or_else(String::new, |c| format!("{} / {}", c.clients, whole(units(&c.window_revenue))));
            row.push_str(&format!(" {text:>22}"));
        }
        let _ = writeln!(out, "{row}");
    }
    let _ = writeln!(out, "\nBehavioural clusters (k-means, silhouette {:.2})", report.clusters.silhouette);
    let _ = writeln!(
        out,
        "  {:>2} {:>7} {:>7} {:>9} {:>7} {:>12} {:>9} {:>6}  label",
        "#", "clients", "revenue", "recency d", "buys", "avg ticket", "every d", "lines"
    );
    for p in &report.clusters.profiles {
        let _ = writeln!(
            out,
            "  {:>2} {:>7} {:>6.1}% {:>9.0} {:>7.1} {:>12} {:>9.0} {:>6.1}  {}",
            p.cluster,
            p.clients,
            p.revenue_share * 100.0,
            p.recency_days,
            p.frequency,
            whole(units(&p.average_ticket)),
            p.purchase_interval_days,
            p.product_lines,
            p.label
        );
    }
    let mut bands: BTreeMap<&str, (usize, f64)> = BTreeMap::new();
    for score in &report.scores {
        let band = bands.entry(score.score_class.as_str()).or_insert((0, 100.0));
        band.0 += 1;
        band.1 = band.1.min(score.score);
    }
    let mut bands: Vec<_> = bands.into_iter().collect();
    bands.sort_by(|a, b| b.1.1.total_cmp(&a.1.1));
    let max = bands.iter().map(|(_, (n, _))| *n as i64).max().unwrap_or(0);
    let _ = writeln!(out, "\nClient score bands");
    for (band, (count, _)) in &bands {
        let _ = writeln!(out, "  {band:<10} {count:>6}  {}", bar(*count as i64, max, 40));
    }
    let names: BTreeMap<&str, &str> = network.clients.iter().map(|c| (c.id.as_str(), c.name.as_str())).collect();
    let _ = writeln!(out, "\nWhy these scores (a few clients explained)");
    for (why, score) in explained_picks(&report.scores) {
        explain(&mut out, why, score, names.get(score.client_id.as_str()).copied().unwrap_or(""), currency);
        let suggested = report.suggestions.iter().find(|(id, _)| *id == score.client_id).map(|(_, s)| s.as_slice());
        for (rank, suggestion) in suggested.unwrap_or_default().iter().enumerate() {
            let _ = writeln!(out, "    offer #{}: {} ({})", rank + 1, suggestion.product_name, suggestion.explanation);
        }
    }
    out
}

/// The best client, the B client closest to A, and the biggest lost client.
pub fn explained_picks(scores: &[ClientScore]) -> Vec<(&'static str, &ClientScore)> {
    let mut picks = Vec::new();
    if let Some(best) = scores.iter().max_by(|a, b| a.score.total_cmp(&b.score)) {
        picks.push(("the best score", best));
    }
    let gap = |s: &ClientScore| s.outlook.as_ref().map_or(i64::MAX, |o| units(&o.revenue_needed));
    if let Some(near) = scores.iter().filter(|s| s.abc_class == AbcClass::B as i32).min_by_key(|s| gap(s)) {
        picks.push(("the B client closest to A", near));
    }
    let lost = scores.iter().filter(|s| s.lifecycle_status == LifecycleStatus::Lost as i32);
    if let Some(lost) = lost.max_by_key(|s| units(&s.window_revenue)) {
        picks.push(("the biggest lost client", lost));
    }
    picks
}

fn explain(out: &mut String, why: &str, s: &ClientScore, name: &str, currency: &str) {
    let _ = writeln!(out, "  {} {name} ({}), {why}: score {:.1}, {}", s.client_id, s.branch_id, s.score, s.score_class);
    let last_purchase = match (s.last_purchase.and_then(|d| d.to_naive()), s.as_of.and_then(|d| d.to_naive())) {
        (Some(last), Some(as_of)) => format!(", last purchase {last} ({} days before)", (as_of - last).num_days()),
        _ => String::new(),
    };
    let _ = writeln!(
        out,
        "    {}{}, RFM {} {}, {}, window revenue {} {currency}{last_purchase}",
        abc_label(s.abc_class),
        xyz_label(s.xyz_class),
        if s.rfm_code.is_empty() { "-" } else { &s.rfm_code },
        s.rfm_segment.replace('_', " "),
        lifecycle_label(s.lifecycle_status),
        whole(units(&s.window_revenue)),
    );
    let parts: Vec<String> = s
        .components
        .iter()
        .filter(|c| c.present)
        .map(|c| {
            format!(
                "{} {:.0} x {:.0}% = {:.1}",
                c.component,
                c.component_score,
                c.effective_weight * 100.0,
                c.contribution
            )
        })
        .collect();
    let _ = writeln!(out, "    {}", parts.join(" | "));
    if let Some(o) = &s.outlook {
        let mut next = Vec::new();
        if !o.next_score_class.is_empty() {
            next.push(format!("{:.1} points to {}", o.points_needed, o.next_score_class));
        }
        if o.next_abc_class != AbcClass::Unspecified as i32 {
            next.push(format!(
                "{} {currency} more revenue to class {}",
                whole(units(&o.revenue_needed)),
                abc_label(o.next_abc_class)
            ));
        }
        if !next.is_empty() {
            let _ = writeln!(out, "    next: {}", next.join("; "));
        }
    }
    for note in &s.notes {
        let _ = writeln!(out, "    note: {note}");
    }
}

/// First responses, the funnel with its losses and bottleneck, the forecast.
pub fn pipeline(report: &PipelineReport, currency: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "\nPipeline: {} leads, {} deals opened from them", report.leads, report.deals);
    let _ = writeln!(out, "  first response by channel     leads   mean    SLA breaches");
    for (channel, leads, seconds, breaches) in &report.response_by_channel {
        let _ = writeln!(out, "  {channel:<28} {leads:>6} {:>6}  {breaches:>6}", duration(*seconds));
    }
    if report.gate_refusals > 0 {
        let _ = writeln!(
            out,
            "  the qualification gate refused {} moves, e.g.: {}",
            report.gate_refusals, report.first_refusal
        );
    }
    let f = &report.funnel;
    let _ = writeln!(out, "\nFunnel ({} pipeline, deals of the last 12 months)", f.pipeline_id);
    let max = f.stages.first().map_or(0, |s| s.reached);
    for s in &f.stages {
        let _ = writeln!(
            out,
            "  {:<11} {:>3}% {:>5} reached  {:>5.1}% onward  {:>5.1} days  {:>4} lost  {}",
            s.stage,
            s.probability_percent,
            s.reached,
            s.conversion_to_next * 100.0,
            s.average_days_in_stage,
            s.lost_here,
            bar(s.reached, max, 30)
        );
    }
    let _ = writeln!(out, "  won {}, lost {}; bottleneck: {}", f.won, f.lost, f.bottleneck_stage);
    let mut reasons: BTreeMap<&str, i64> = BTreeMap::new();
    for loss in &f.losses {
        *reasons.entry(loss.reason.as_str()).or_default() += loss.deals;
    }
    let reasons: Vec<String> = reasons.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(out, "  losses by reason: {}", reasons.join(", "));
    let mut by_month: BTreeMap<String, i64> = BTreeMap::new();
    for line in &report.forecast.lines {
        let month = line.month.and_then(|d| d.to_naive()).map(|d| d.format("%Y-%m").to_string()).unwrap_or_default();
        *by_month.entry(month).or_default() += units(&line.weighted_forecast);
    }
    let _ = writeln!(
        out,
        "\nWeighted forecast of open deals by expected close month ({currency}), total {}",
        whole(units(&report.forecast.total_weighted_forecast))
    );
    let max = by_month.values().copied().max().unwrap_or(0);
    for (month, amount) in &by_month {
        let _ = writeln!(out, "  {month} {:>14}  {}", whole(*amount), bar(*amount, max, 40));
    }
    out
}

/// The sales plan, the leaderboard of the last quarter and one bonus traced.
pub fn kpi(report: &KpiReport, currency: &str) -> String {
    let mut out = String::new();
    let plan = &report.plan;
    let _ = writeln!(
        out,
        "\nSales plan {} ({currency}): {} = the last 12 months x {:.2}, split by last year's season",
        plan.year,
        whole(plan.monthly.iter().map(|m| m.minor_units).sum()),
        plan.growth_factor
    );
    let max = plan.monthly.iter().map(|m| m.minor_units).max().unwrap_or(0);
    for (month, (amount, coefficient)) in plan.monthly.iter().zip(&plan.seasonal_coefficients).enumerate() {
        let _ = writeln!(
            out,
            "  {:>2} {:>14}  x{coefficient:.2}  {}",
            month + 1,
            whole(amount.minor_units),
            bar(amount.minor_units, max, 40)
        );
    }
    let progress = &report.progress;
    let (planned, sold) = (units(&progress.plan_to_date), units(&progress.fact_to_date));
    let _ = writeln!(
        out,
        "  to {}: plan {}, sold {} ({:.0}% of plan)",
        progress.as_of.and_then(|d| d.to_naive()).map(|d| d.to_string()).unwrap_or_default(),
        whole(planned),
        whole(sold),
        if planned > 0 { sold as f64 / planned as f64 * 100.0 } else { 0.0 }
    );

    let period = &report.period;
    let day = |d: &Option<branchscore_proto::common::v1::Date>| {
        d.and_then(|d| d.to_naive()).map(|d| d.to_string()).unwrap_or_default()
    };
    let _ = writeln!(
        out,
        "\nBonuses {} to {} (version {}, approved by {}): {} people, {} {currency} in all",
        day(&period.from),
        day(&period.to),
        period.version,
        period.approved_by,
        period.lines.len(),
        money(units(&period.total_bonus))
    );
    let _ = writeln!(out, "  rank  employee   role             W       bonus");
    let max = period.lines.iter().map(|l| (l.weighted_attainment * 1000.0) as i64).max().unwrap_or(0);
    for line in period.lines.iter().take(10) {
        let role = branchscore_proto::common::v1::EmployeeRole::try_from(line.role)
            .map_or("", |r| r.as_str_name().trim_start_matches("EMPLOYEE_ROLE_"))
            .to_lowercase();
        let _ = writeln!(
            out,
            "  {:>4}  {:<9}  {role:<15} {:>5.2} {:>11}  {}",
            line.rank,
            line.employee_id,
            line.weighted_attainment,
            money(units(&line.bonus)),
            bar((line.weighted_attainment * 1000.0) as i64, max, 30)
        );
    }
    if let Some(line) = &report.breakdown.line {
        let _ = writeln!(out, "\n  Why {} ({}) gets {}:", line.employee_id, line.full_name, money(units(&line.bonus)));
        for kpi in &report.breakdown.kpis {
            let records: usize = kpi.facts.iter().map(|f| f.sources.len()).sum();
            let _ = writeln!(out, "    {} [{records} source records]", kpi.formula);
        }
        let _ = writeln!(out, "    {}", report.breakdown.formula);
    }
    let _ = writeln!(
        out,
        "  payroll export: {} lines, or {} bytes of CSV for the ERP's HR module",
        report.payroll_lines, report.payroll_csv_bytes
    );
    out
}

/// The period table, loyalty, the bonus forecast and the exports.
pub fn reports(report: &ReportsReport, currency: &str) -> String {
    use branchscore_proto::reporting::v1::PeriodReportRow;
    let mut out = String::new();
    let day = |d: &Option<branchscore_proto::common::v1::Date>| {
        d.and_then(|d| d.to_naive()).map(|d| d.to_string()).unwrap_or_default()
    };
    let first = report.quarter.network_totals.first();
    let _ = writeln!(
        out,
        "\nPeriod report {} to {} by branch ({currency}; clients owned, sales sold by the branch's staff)",
        first.map(|r| day(&r.period_start)).unwrap_or_default(),
        first.map(|r| day(&r.period_end)).unwrap_or_default()
    );
    let _ =
        writeln!(out, "  branch   potential  primary sales            lost  restored    repeat sales  new directions");
    let row = |out: &mut String, label: &str, r: &PeriodReportRow| {
        let _ = writeln!(
            out,
            "  {label:<8} {:>9}  {:>5} / {:>14}  {:>5}  {:>8}  {:>14}  {:>14}",
            r.potential_clients,
            r.primary_sales_count,
            money(units(&r.primary_sales_amount)),
            r.lost_clients,
            r.restored_clients,
            money(units(&r.repeat_sales_amount)),
            money(units(&r.new_direction_sales_amount)),
        );
    };
    for branch in &report.quarter.branch_totals {
        row(&mut out, &branch.branch_id, branch);
    }
    if let Some(network) = first {
        row(&mut out, "network", network);
    }
    let month_sales = |r: &PeriodReportRow| {
        units(&r.primary_sales_amount) + units(&r.repeat_sales_amount) + units(&r.new_direction_sales_amount)
    };
    let max = report.months.network_totals.iter().map(month_sales).max().unwrap_or(0);
    for month in &report.months.network_totals {
        let sold = month_sales(month);
        let _ = writeln!(out, "  {} {:>16}  {}", day(&month.period_start), money(sold), bar(sold, max, 40));
    }
    if let Some(total) = &report.loyalty.total {
        let share = |value: Option<f64>| value.map_or("-".to_owned(), |v| format!("{:.0}%", v * 100.0));
        let _ = writeln!(
            out,
            "\nLoyalty over the last 12 months: {} of {} buying clients came back ({}); {} of revenue came from existing clients",
            total.repeat_buyers,
            total.buying_clients,
            share(total.repeat_buyer_share),
            share(total.existing_client_revenue_share)
        );
    }
    let forecast = &report.forecast;
    let _ = writeln!(
        out,
        "\nBonus forecast {} to {} (draft from the facts through {}, {:.0}% of the quarter): {} so far, {} projected",
        day(&forecast.from),
        day(&forecast.to),
        day(&forecast.facts_through),
        forecast.elapsed_share * 100.0,
        money(units(&forecast.total_bonus)),
        money(units(&forecast.total_forecast_bonus))
    );
    let _ = writeln!(out, "  rank  branch  in branch  employee    W now  W projected        bonus     projected");
    for line in forecast.lines.iter().take(5) {
        let _ = writeln!(
            out,
            "  {:>4}  {:<6}  {:>9}  {:<9}  {:>6.2}  {:>11.2}  {:>11}  {:>12}",
            line.rank,
            line.branch_id,
            line.branch_rank,
            line.employee_id,
            line.weighted_attainment,
            line.forecast_weighted_attainment,
            money(units(&line.bonus)),
            money(units(&line.forecast_bonus))
        );
    }
    for saved in &report.exports {
        let _ = writeln!(
            out,
            "  exported {} ({} rows, {} bytes, sha256 {}...)",
            saved.path.display(),
            saved.file.rows,
            saved.file.bytes,
            saved.file.sha256.get(..12).unwrap_or_default()
        );
    }
    out
}

fn duration(seconds: f64) -> String {
    if seconds < 3600.0 { format!("{:.0} min", seconds / 60.0) } else { format!("{:.1} h", seconds / 3600.0) }
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
