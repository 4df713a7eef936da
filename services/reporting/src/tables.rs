//! Reports assembled from what the sources sent: sums per branch and for
//! the network, shares, and the bonus forecast. Pure, so that every number
//! can be checked by hand.
use branchscore_proto::clients::v1::{
    ClientFacts, ClientProductState, GetAbcXyzMatrixResponse, MatrixCell, ProductStateKind, SalesFact,
};
use branchscore_proto::common::v1::{Date, Money};
use branchscore_proto::feedback::v1::{GetComplaintAgingResponse, GetCoverageResponse, GetSatisfactionTrendResponse};
use branchscore_proto::kpi::v1::{BonusLine, BonusPeriod, Scorecard};
use branchscore_proto::pipeline::v1::GetFunnelResponse;
use branchscore_proto::reporting::v1::*;
use branchscore_scoring::kpi::{self as rules, KpiLine, PayoutTerms};
use branchscore_scoring::periods::{self, Period};
use chrono::NaiveDate;
use std::collections::{BTreeMap, HashMap};

fn money(minor_units: i64, currency: &str) -> Option<Money> {
    Some(Money { minor_units, currency: currency.to_owned() })
}

fn minor(money: &Option<Money>) -> i64 {
    money.as_ref().map_or(0, |m| m.minor_units)
}

/// Documents and amount of a sales fact.
fn sales(fact: &Option<SalesFact>) -> (i64, i64) {
    fact.as_ref().map_or((0, 0), |s| (s.documents, minor(&s.amount)))
}

/// `part / whole`; `None` when there is no whole to share.
fn share(part: i64, whole: i64) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

/// The report period a source row belongs to (sources split ranges the
/// same way, so a row's start names its period).
fn period_of(periods: &[Period], start: Option<&Date>) -> Option<usize> {
    start.and_then(Date::to_naive).and_then(|day| periods::index_of(periods, day))
}

// ------------------------------------------------------------ period table

/// The counters of the seed's table; they add up over employees and
/// branches (each client has one owner, each sale one seller).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counters {
    potential: i64,
    primary_count: i64,
    primary_amount: i64,
    lost: i64,
    restored: i64,
    repeat_amount: i64,
    new_direction_amount: i64,
}

impl Counters {
    fn of(facts: &ClientFacts) -> Self {
        let (primary_count, primary_amount) = sales(&facts.primary_sales);
        Counters {
            potential: facts.potential_clients,
            primary_count,
            primary_amount,
            lost: facts.lost_clients,
            restored: facts.restored_clients,
            repeat_amount: sales(&facts.repeat_sales).1,
            new_direction_amount: sales(&facts.new_direction_sales).1,
        }
    }

    fn add(&mut self, other: &Counters) {
        self.potential += other.potential;
        self.primary_count += other.primary_count;
        self.primary_amount += other.primary_amount;
        self.lost += other.lost;
        self.restored += other.restored;
        self.repeat_amount += other.repeat_amount;
        self.new_direction_amount += other.new_direction_amount;
    }

    fn row(&self, period: &Period, branch_id: &str, employee: (&str, &str), currency: &str) -> PeriodReportRow {
        PeriodReportRow {
            period_start: Some(period.start.into()),
            period_end: Some(period.end.into()),
            branch_id: branch_id.to_owned(),
            employee_id: employee.0.to_owned(),
            employee_name: employee.1.to_owned(),
            potential_clients: self.potential,
            primary_sales_count: self.primary_count,
            primary_sales_amount: money(self.primary_amount, currency),
            lost_clients: self.lost,
            restored_clients: self.restored,
            repeat_sales_amount: money(self.repeat_amount, currency),
            new_direction_sales_amount: money(self.new_direction_amount, currency),
        }
    }
}

/// The table per employee and period with its branch and network totals.
/// `names` are employees' full names by id (an unknown id keeps an empty name).
pub fn period_report(
    periods: &[Period],
    facts: &[ClientFacts],
    names: &HashMap<String, String>,
    currency: &str,
) -> GetPeriodReportResponse {
    let mut rows: BTreeMap<(usize, &str, &str), Counters> = BTreeMap::new();
    let mut branches: BTreeMap<(usize, &str), Counters> = BTreeMap::new();
    let mut network = vec![Counters::default(); periods.len()];
    for row in facts {
        let Some(i) = period_of(periods, row.period_start.as_ref()) else { continue };
        let counters = Counters::of(row);
        rows.entry((i, &row.branch_id, &row.employee_id)).or_default().add(&counters);
        branches.entry((i, &row.branch_id)).or_default().add(&counters);
        network[i].add(&counters);
    }
    let name = |id: &str| names.get(id).map_or("", String::as_str);
    GetPeriodReportResponse {
        rows: rows
            .iter()
            .map(|(&(i, branch, employee), c)| c.row(&periods[i], branch, (employee, name(employee)), currency))
            .collect(),
        branch_totals: branches
            .iter()
            .map(|(&(i, branch), c)| c.row(&periods[i], branch, ("", ""), currency))
            .collect(),
        network_totals: periods.iter().zip(&network).map(|(p, c)| c.row(p, "", ("", ""), currency)).collect(),
    }
}

// ------------------------------------------------------------ loyalty

/// Buyers and sales of one group; adds up over employees and branches of
/// one period.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Loyalty {
    buying: i64,
    repeat: i64,
    sales: i64,
    existing: i64,
}

impl Loyalty {
    fn of(facts: &ClientFacts) -> Self {
        let existing = sales(&facts.repeat_sales).1 + sales(&facts.new_direction_sales).1;
        Loyalty {
            buying: facts.buying_clients,
            repeat: facts.repeat_buyers,
            sales: sales(&facts.primary_sales).1 + existing,
            existing,
        }
    }

    fn add(&mut self, other: &Loyalty) {
        self.buying += other.buying;
        self.repeat += other.repeat;
        self.sales += other.sales;
        self.existing += other.existing;
    }

    fn row(&self, period: &Period, branch_id: &str, currency: &str) -> LoyaltyRow {
        LoyaltyRow {
            period_start: Some(period.start.into()),
            period_end: Some(period.end.into()),
            branch_id: branch_id.to_owned(),
            buying_clients: self.buying,
            repeat_buyers: self.repeat,
            repeat_buyer_share: share(self.repeat, self.buying),
            sales_amount: money(self.sales, currency),
            existing_client_sales_amount: money(self.existing, currency),
            existing_client_revenue_share: share(self.existing, self.sales),
        }
    }
}

/// Loyalty per period and branch, per period, and over `whole` (the facts
/// of the whole range as one period: distinct buyers do not add up over
/// periods, so the total comes from its own count).
pub fn loyalty_report(
    periods: &[Period],
    facts: &[ClientFacts],
    range: Period,
    whole: &[ClientFacts],
    currency: &str,
) -> GetLoyaltyReportResponse {
    let mut branches: BTreeMap<(usize, &str), Loyalty> = BTreeMap::new();
    let mut network = vec![Loyalty::default(); periods.len()];
    for row in facts {
        let Some(i) = period_of(periods, row.period_start.as_ref()) else { continue };
        let loyalty = Loyalty::of(row);
        branches.entry((i, &row.branch_id)).or_default().add(&loyalty);
        network[i].add(&loyalty);
    }
    let mut total = Loyalty::default();
    for row in whole {
        total.add(&Loyalty::of(row));
    }
    GetLoyaltyReportResponse {
        branches: branches.iter().map(|(&(i, branch), l)| l.row(&periods[i], branch, currency)).collect(),
        periods: periods.iter().zip(&network).map(|(p, l)| l.row(p, "", currency)).collect(),
        total: Some(total.row(&range, "", currency)),
    }
}

// ------------------------------------------------------------ ABC x XYZ

/// Classes in report order: A, B, C (X, Y, Z), then the unclassed.
fn class_order(class: i32) -> (bool, i32) {
    (class == 0, class)
}

/// The matrix with class totals and each cell's share of clients and revenue.
pub fn abc_xyz_report(matrix: &GetAbcXyzMatrixResponse, currency: &str) -> GetAbcXyzReportResponse {
    let clients: i64 = matrix.cells.iter().map(|c| c.clients).sum();
    let revenue: i64 = matrix.cells.iter().map(|c| minor(&c.window_revenue)).sum();
    let cell = |abc: i32, xyz: i32, (n, amount): (i64, i64)| AbcXyzCell {
        abc_class: abc,
        xyz_class: xyz,
        clients: n,
        window_revenue: money(amount, currency),
        client_share: share(n, clients).unwrap_or(0.0),
        revenue_share: share(amount, revenue).unwrap_or(0.0),
    };
    let mut cells: Vec<&MatrixCell> = matrix.cells.iter().filter(|c| c.clients > 0).collect();
    cells.sort_by_key(|c| (class_order(c.abc_class), class_order(c.xyz_class)));
    let mut by_abc: BTreeMap<(bool, i32), (i64, i64)> = BTreeMap::new();
    let mut by_xyz: BTreeMap<(bool, i32), (i64, i64)> = BTreeMap::new();
    for c in &cells {
        for (totals, class) in [(&mut by_abc, c.abc_class), (&mut by_xyz, c.xyz_class)] {
            let total = totals.entry(class_order(class)).or_default();
            total.0 += c.clients;
            total.1 += minor(&c.window_revenue);
        }
    }
    GetAbcXyzReportResponse {
        as_of: matrix.as_of,
        cells: cells.iter().map(|c| cell(c.abc_class, c.xyz_class, (c.clients, minor(&c.window_revenue)))).collect(),
        abc_totals: by_abc.into_iter().map(|((_, abc), sums)| cell(abc, 0, sums)).collect(),
        xyz_totals: by_xyz.into_iter().map(|((_, xyz), sums)| cell(0, xyz, sums)).collect(),
        clients,
        window_revenue: money(revenue, currency),
    }
}

// ------------------------------------------------------------ funnel

/// The funnel with its rates and the loss reasons over every stage.
pub fn funnel_report(funnel: GetFunnelResponse) -> GetFunnelReportResponse {
    let mut by_reason: BTreeMap<&str, i64> = BTreeMap::new();
    for loss in &funnel.losses {
        *by_reason.entry(&loss.reason).or_default() += loss.deals;
    }
    let lost_with_reason: i64 = by_reason.values().sum();
    let mut loss_reasons: Vec<LossReasonShare> = by_reason
        .into_iter()
        .map(|(reason, deals)| LossReasonShare {
            reason: reason.to_owned(),
            deals,
            share: share(deals, lost_with_reason).unwrap_or(0.0),
        })
        .collect();
    // Most frequent first; ties stay in reason order (the sort is stable).
    loss_reasons.sort_by_key(|r| std::cmp::Reverse(r.deals));
    GetFunnelReportResponse {
        win_rate: share(funnel.won, funnel.won + funnel.lost),
        lead_conversion: share(funnel.converted_leads, funnel.leads),
        pipeline_id: funnel.pipeline_id,
        stages: funnel.stages,
        won: funnel.won,
        lost: funnel.lost,
        bottleneck_stage: funnel.bottleneck_stage,
        leads: funnel.leads,
        converted_leads: funnel.converted_leads,
        losses: funnel.losses,
        loss_reasons,
    }
}

// ------------------------------------------------------------ satisfaction

/// The trend, the coverage and the complaint aging side by side.
pub fn satisfaction_report(
    trend: GetSatisfactionTrendResponse,
    coverage: GetCoverageResponse,
    aging: GetComplaintAgingResponse,
) -> GetSatisfactionReportResponse {
    GetSatisfactionReportResponse {
        trend: trend.points,
        total: trend.total,
        coverage: coverage.rows,
        coverage_totals: coverage.totals,
        coverage_target: coverage.coverage_target,
        complaint_aging: Some(ComplaintAging {
            as_of: aging.as_of,
            buckets: aging.buckets,
            open: aging.open,
            overdue: aging.overdue,
            oldest_open_days: aging.oldest_open_days,
            closed_last_90_days: aging.closed_last_90_days,
            mean_days_to_close: aging.mean_days_to_close,
        }),
    }
}

// ------------------------------------------------------------ one client

/// Targeted products per state, in process order, empty states left out.
pub fn products_by_state(products: &[ClientProductState]) -> Vec<ProductStateCount> {
    let mut counts: BTreeMap<i32, i32> = BTreeMap::new();
    for product in products {
        *counts.entry(product.state).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(state, _)| *state != ProductStateKind::Unspecified as i32)
        .map(|(state, products)| ProductStateCount { state, products })
        .collect()
}

// ------------------------------------------------------------ KPI

/// How much of a bonus period its facts cover.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pace {
    /// The last day the facts cover.
    pub facts_through: NaiveDate,
    /// Days covered / days of the period, 0-1.
    pub elapsed_share: f64,
}

/// The facts of a period `from`..`to` computed on `computed_on` cover the
/// days up to that day (or the whole period, once it has ended).
pub fn pace(from: NaiveDate, to: NaiveDate, computed_on: NaiveDate) -> Pace {
    let facts_through = computed_on.min(to);
    let covered = ((facts_through - from).num_days() + 1).max(0);
    let days = (to - from).num_days() + 1;
    Pace { facts_through, elapsed_share: if days > 0 { covered as f64 / days as f64 } else { 0.0 } }
}

/// The payout terms of a stored scorecard (the KPI service fills every one).
fn terms(card: &Scorecard) -> PayoutTerms {
    let bp = |value: Option<i32>, default: u32| value.and_then(|v| u32::try_from(v).ok()).unwrap_or(default);
    let defaults = PayoutTerms::default();
    PayoutTerms {
        floor_bp: bp(card.floor_bp, defaults.floor_bp),
        cap_bp: bp(card.cap_bp, defaults.cap_bp),
        accelerator: card.accelerator.unwrap_or(defaults.accelerator),
        curve: card
            .payout_curve
            .iter()
            .filter_map(|p| Some((u32::try_from(p.attainment_bp).ok()?, u32::try_from(p.credited_bp).ok()?)))
            .collect(),
    }
}

/// W and the bonus of `line` with its flows extrapolated to the whole
/// period at their pace so far: the scorecard's own rules over projected
/// facts, so that the forecast pays exactly as the bonus will if the pace
/// holds. Without its scorecard (or facts) the stored numbers stand.
fn forecast(line: &BonusLine, card: Option<&Scorecard>, pace: &Pace) -> (f64, i64) {
    let stored = (line.weighted_attainment, minor(&line.bonus));
    let Some(card) = card else { return stored };
    if pace.elapsed_share <= 0.0 {
        return stored;
    }
    let scale = 1.0 / pace.elapsed_share;
    let lines: Option<Vec<KpiLine>> = line
        .results
        .iter()
        .map(|result| {
            let definition = rules::definition(&result.kpi_code)?;
            let project = |fact: f64| if definition.additive { fact * scale } else { fact };
            Some(KpiLine {
                code: result.kpi_code.clone(),
                weight_bp: u32::try_from(result.weight_bp).ok()?,
                direction: definition.direction,
                fact: result.fact.map(project),
                plan: result.plan,
            })
        })
        .collect();
    let Some(lines) = lines else { return stored };
    let terms = terms(card);
    let evaluation = rules::evaluate(&lines, &terms);
    let bonus = rules::bonus(minor(&line.base_bonus), evaluation.weighted_attainment, terms.accelerator);
    (evaluation.weighted_attainment, bonus)
}

/// Sets each line's rank among the lines of its branch. A branch the caller
/// sees is seen whole, so the visible lines are all of the branch's.
fn rank_within_branches(lines: &mut [LeaderboardLine]) {
    let mut by_branch: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, line) in lines.iter().enumerate() {
        by_branch.entry(line.branch_id.clone()).or_default().push(i);
    }
    for members in by_branch.values() {
        let attainments: Vec<f64> = members.iter().map(|&i| lines[i].weighted_attainment).collect();
        for (&i, rank) in members.iter().zip(rules::competition_ranks(&attainments)) {
            lines[i].branch_rank = rank;
        }
    }
}

/// The period's lines as a leaderboard (best rank first) with the forecast.
pub fn leaderboard(period: &BonusPeriod, scorecards: &[Scorecard], pace: &Pace) -> GetKpiLeaderboardResponse {
    let currency = period.total_bonus.as_ref().map_or("", |m| m.currency.as_str());
    let mut lines: Vec<LeaderboardLine> = period
        .lines
        .iter()
        .map(|line| {
            let card = scorecards.iter().find(|c| c.role == line.role && c.version == line.scorecard_version);
            let (forecast_weighted_attainment, forecast_bonus) = forecast(line, card, pace);
            LeaderboardLine {
                rank: line.rank,
                employee_id: line.employee_id.clone(),
                full_name: line.full_name.clone(),
                branch_id: line.branch_id.clone(),
                role: line.role,
                weighted_attainment: line.weighted_attainment,
                bonus: line.bonus.clone(),
                forecast_weighted_attainment,
                forecast_bonus: money(forecast_bonus, currency),
                branch_rank: 0,
            }
        })
        .collect();
    rank_within_branches(&mut lines);
    lines.sort_by(|a, b| a.rank.cmp(&b.rank).then_with(|| a.employee_id.cmp(&b.employee_id)));
    let total_bonus = lines.iter().map(|l| minor(&l.bonus)).sum();
    let total_forecast = lines.iter().map(|l| minor(&l.forecast_bonus)).sum();
    GetKpiLeaderboardResponse {
        from: period.from,
        to: period.to,
        version: period.version,
        status: period.status,
        compute_time: period.compute_time,
        facts_through: Some(pace.facts_through.into()),
        elapsed_share: pace.elapsed_share,
        lines,
        total_bonus: money(total_bonus, currency),
        total_forecast_bonus: money(total_forecast, currency),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchscore_proto::common::v1::{AbcClass, EmployeeRole, XyzClass};
    use branchscore_proto::kpi::v1::KpiResult;
    use branchscore_proto::pipeline::v1::LossCount;
    use branchscore_scoring::periods::Granularity;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).expect("date")
    }

    fn pln(minor_units: i64) -> Option<Money> {
        money(minor_units, "PLN")
    }

    fn sold(documents: i64, amount: i64) -> Option<SalesFact> {
        Some(SalesFact { documents, amount: pln(amount) })
    }

    fn facts(start: NaiveDate, branch: &str, employee: &str) -> ClientFacts {
        ClientFacts {
            period_start: Some(start.into()),
            branch_id: branch.into(),
            employee_id: employee.into(),
            ..ClientFacts::default()
        }
    }

    /// Two months, three sellers in two branches.
    fn network() -> (Vec<Period>, Vec<ClientFacts>) {
        let periods = periods::split(d(2026, 7, 1), d(2026, 8, 31), Granularity::Month);
        let rows = vec![
            ClientFacts {
                potential_clients: 2,
                primary_sales: sold(1, 30_000),
                repeat_sales: sold(2, 20_000),
                buying_clients: 3,
                repeat_buyers: 2,
                ..facts(d(2026, 7, 1), "WAW", "S1")
            },
            ClientFacts {
                lost_clients: 1,
                new_direction_sales: sold(1, 5_000),
                buying_clients: 1,
                repeat_buyers: 1,
                ..facts(d(2026, 7, 1), "WAW", "S2")
            },
            ClientFacts {
                restored_clients: 1,
                potential_clients: 1,
                repeat_sales: sold(1, 9_000),
                buying_clients: 1,
                repeat_buyers: 1,
                ..facts(d(2026, 8, 1), "KRK", "K1")
            },
        ];
        (periods, rows)
    }

    /// Potential, primary count and sum, lost, restored, repeat sum, new direction sum.
    type Table = (i64, i64, i64, i64, i64, i64, i64);

    fn counters(row: &PeriodReportRow) -> Table {
        (
            row.potential_clients,
            row.primary_sales_count,
            minor(&row.primary_sales_amount),
            row.lost_clients,
            row.restored_clients,
            minor(&row.repeat_sales_amount),
            minor(&row.new_direction_sales_amount),
        )
    }

    #[test]
    fn the_period_table_sums_employees_into_branches_and_the_network_per_period() {
        let (periods, rows) = network();
        let names = HashMap::from([("S1".to_owned(), "Anna".to_owned())]);
        let report = period_report(&periods, &rows, &names, "PLN");
        let employees: Vec<(&str, &str)> =
            report.rows.iter().map(|r| (r.employee_id.as_str(), r.employee_name.as_str())).collect();
        assert_eq!(employees, [("S1", "Anna"), ("S2", ""), ("K1", "")]);
        let branches: Vec<(&str, Table)> =
            report.branch_totals.iter().map(|r| (r.branch_id.as_str(), counters(r))).collect();
        // July WAW: S1 + S2 = potential 2, primary 1 / 30 000, lost 1, repeat 20 000, new direction 5 000.
        assert_eq!(branches, [("WAW", (2, 1, 30_000, 1, 0, 20_000, 5_000)), ("KRK", (1, 0, 0, 0, 1, 9_000, 0))]);
        let network: Vec<_> = report.network_totals.iter().map(counters).collect();
        assert_eq!(network, [(2, 1, 30_000, 1, 0, 20_000, 5_000), (1, 0, 0, 0, 1, 9_000, 0)]);
        assert_eq!(report.network_totals[1].period_end, Some(d(2026, 8, 31).into()));
    }

    #[test]
    fn loyalty_shares_per_period_and_the_total_from_its_own_count() {
        let (periods, rows) = network();
        // The whole range counted once: a client buying in both months is one buyer.
        let whole = [ClientFacts {
            buying_clients: 4,
            repeat_buyers: 3,
            primary_sales: sold(1, 30_000),
            repeat_sales: sold(3, 29_000),
            new_direction_sales: sold(1, 5_000),
            ..facts(d(2026, 7, 1), "WAW", "S1")
        }];
        let range = Period { start: d(2026, 7, 1), end: d(2026, 8, 31) };
        let report = loyalty_report(&periods, &rows, range, &whole, "PLN");
        // July: buyers 3 + 1 = 4, repeat 2 + 1 = 3 -> 0.75; sales 30 000 + 20 000 + 5 000 = 55 000,
        // existing 25 000 -> 25 / 55.
        let july = &report.periods[0];
        assert_eq!((july.buying_clients, july.repeat_buyers, july.repeat_buyer_share), (4, 3, Some(0.75)));
        assert_eq!((minor(&july.sales_amount), minor(&july.existing_client_sales_amount)), (55_000, 25_000));
        assert_eq!(july.existing_client_revenue_share, Some(25_000.0 / 55_000.0));
        assert_eq!(report.branches.len(), 2);
        // Total: 3 / 4; existing 34 000 of 64 000.
        let total = report.total.expect("total");
        assert_eq!((total.repeat_buyer_share, minor(&total.sales_amount)), (Some(0.75), 64_000));
        assert_eq!(total.existing_client_revenue_share, Some(34_000.0 / 64_000.0));
        let empty = loyalty_report(&periods, &[], range, &[], "PLN");
        assert_eq!((empty.periods[0].repeat_buyer_share, empty.periods[0].existing_client_revenue_share), (None, None));
    }

    #[test]
    fn the_matrix_orders_cells_and_adds_class_totals_and_shares() {
        let cell = |abc: AbcClass, xyz: XyzClass, clients: i64, revenue: i64| MatrixCell {
            abc_class: abc as i32,
            xyz_class: xyz as i32,
            clients,
            window_revenue: pln(revenue),
        };
        let matrix = GetAbcXyzMatrixResponse {
            as_of: Some(d(2026, 10, 1).into()),
            cells: vec![
                cell(AbcClass::Unspecified, XyzClass::Unspecified, 2, 0),
                cell(AbcClass::B, XyzClass::Z, 1, 20_000),
                cell(AbcClass::A, XyzClass::Unspecified, 1, 40_000),
                cell(AbcClass::A, XyzClass::Z, 1, 40_000),
                cell(AbcClass::C, XyzClass::X, 0, 0),
            ],
        };
        let report = abc_xyz_report(&matrix, "PLN");
        let order: Vec<(i32, i32)> = report.cells.iter().map(|c| (c.abc_class, c.xyz_class)).collect();
        assert_eq!(order, [(1, 3), (1, 0), (2, 3), (0, 0)]);
        // 5 clients, 100 000: A holds 2 clients (0.4) and 80 000 (0.8).
        assert_eq!((report.clients, minor(&report.window_revenue)), (5, 100_000));
        let a = &report.abc_totals[0];
        assert_eq!((a.abc_class, a.clients, minor(&a.window_revenue)), (1, 2, 80_000));
        assert_eq!((a.client_share, a.revenue_share), (0.4, 0.8));
        let xyz: Vec<(i32, i64)> = report.xyz_totals.iter().map(|t| (t.xyz_class, t.clients)).collect();
        assert_eq!(xyz, [(3, 2), (0, 3)]);
    }

    #[test]
    fn loss_reasons_add_up_over_stages_most_frequent_first() {
        let loss =
            |stage: &str, reason: &str, deals: i64| LossCount { stage: stage.into(), reason: reason.into(), deals };
        let funnel = GetFunnelResponse {
            won: 1,
            lost: 4,
            leads: 8,
            converted_leads: 2,
            losses: vec![loss("meeting", "timing", 1), loss("meeting", "price", 1), loss("qualified", "price", 2)],
            ..GetFunnelResponse::default()
        };
        let report = funnel_report(funnel);
        let reasons: Vec<(&str, i64, f64)> =
            report.loss_reasons.iter().map(|r| (r.reason.as_str(), r.deals, r.share)).collect();
        assert_eq!(reasons, [("price", 3, 0.75), ("timing", 1, 0.25)]);
        assert_eq!((report.win_rate, report.lead_conversion), (Some(0.2), Some(0.25)));
        assert_eq!(funnel_report(GetFunnelResponse::default()).win_rate, None);
    }

    #[test]
    fn products_are_counted_by_state_in_process_order() {
        let state = |state: ProductStateKind| ClientProductState { state: state as i32, ..Default::default() };
        let products = [
            state(ProductStateKind::Using),
            state(ProductStateKind::Offered),
            state(ProductStateKind::Using),
            state(ProductStateKind::NotOffered),
        ];
        let counts: Vec<(i32, i32)> = products_by_state(&products).iter().map(|c| (c.state, c.products)).collect();
        assert_eq!(counts, [(1, 1), (2, 1), (5, 2)]);
    }

    fn result(kpi_code: &str, weight_bp: i32, fact: Option<f64>, plan: f64) -> KpiResult {
        KpiResult { kpi_code: kpi_code.into(), weight_bp, fact, plan, ..KpiResult::default() }
    }

    fn sales_card() -> Scorecard {
        Scorecard {
            role: EmployeeRole::Sales as i32,
            version: 1,
            floor_bp: Some(8_000),
            cap_bp: Some(15_000),
            accelerator: Some(1.2),
            ..Scorecard::default()
        }
    }

    fn bonus_line(employee_id: &str, rank: i32, results: Vec<KpiResult>, stored: (f64, i64)) -> BonusLine {
        BonusLine {
            employee_id: employee_id.into(),
            role: EmployeeRole::Sales as i32,
            scorecard_version: 1,
            rank,
            results,
            weighted_attainment: stored.0,
            base_bonus: pln(300_000),
            bonus: pln(stored.1),
            ..BonusLine::default()
        }
    }

    #[test]
    fn the_pace_covers_days_up_to_the_computation_or_the_whole_ended_period() {
        // Q4 2026 has 92 days; computed on 15 November: 31 + 15 = 46 days = half.
        let q4 = (d(2026, 10, 1), d(2026, 12, 31));
        assert_eq!(pace(q4.0, q4.1, d(2026, 11, 15)), Pace { facts_through: d(2026, 11, 15), elapsed_share: 0.5 });
        assert_eq!(pace(q4.0, q4.1, d(2027, 1, 5)), Pace { facts_through: q4.1, elapsed_share: 1.0 });
        assert_eq!(pace(q4.0, q4.1, d(2026, 9, 1)).elapsed_share, 0.0);
    }

    #[test]
    fn the_forecast_extrapolates_flows_keeps_ratios_and_pays_by_the_scorecard() {
        let half = Pace { facts_through: d(2026, 11, 15), elapsed_share: 0.5 };
        // S: sales 50 000 of 120 000 (0.42, below the 0.8 floor), new clients 2 of 3 (0.67, below),
        //    NPS 40 of 50 (0.8, at the floor): W = 0.2 x 0.8 = 0.16 -> 300 000 x 0.16 = 48 000.
        //    At twice the facts: sales 100 000 / 120 000 = 0.8333, new clients 4 / 3 = 1.3333,
        //    NPS (a ratio) stays 0.8: W = 0.5 x 0.8333 + 0.3 x 1.3333 + 0.2 x 0.8 = 0.97667
        //    -> 300 000 x 0.97667 = 293 000.
        let s = bonus_line(
            "S",
            2,
            vec![
                result("sales_amount", 5_000, Some(50_000.0), 120_000.0),
                result("new_clients", 3_000, Some(2.0), 3.0),
                result("nps", 2_000, Some(40.0), 50.0),
            ],
            (0.16, 48_000),
        );
        // K: sales 70 000 of 120 000 (0.58: nothing); forecast 140 000 / 120 000 = 1.1667 over plan:
        //    300 000 x (1 + 1.2 x 0.1667) = 360 000. Response time unmeasured: its weight moves to sales.
        let k = bonus_line(
            "K",
            1,
            vec![
                result("sales_amount", 8_000, Some(70_000.0), 120_000.0),
                result("first_response_time", 2_000, None, 600.0),
            ],
            (0.0, 0),
        );
        let period = BonusPeriod { version: 1, lines: vec![s, k], total_bonus: pln(48_000), ..BonusPeriod::default() };
        let board = leaderboard(&period, &[sales_card()], &half);
        let forecasts: Vec<(&str, i64, i64)> =
            board.lines.iter().map(|l| (l.employee_id.as_str(), minor(&l.bonus), minor(&l.forecast_bonus))).collect();
        assert_eq!(forecasts, [("K", 0, 360_000), ("S", 48_000, 293_000)]);
        assert!((board.lines[1].forecast_weighted_attainment - 0.976_666_7).abs() < 1e-6);
        assert_eq!((minor(&board.total_bonus), minor(&board.total_forecast_bonus)), (48_000, 653_000));

        // Once the facts cover the period the forecast is the bonus itself.
        let done = Pace { facts_through: d(2026, 12, 31), elapsed_share: 1.0 };
        let board = leaderboard(&period, &[sales_card()], &done);
        assert_eq!(minor(&board.lines[1].forecast_bonus), 48_000);
        // Without its scorecard a line keeps the stored numbers.
        let board = leaderboard(&period, &[], &half);
        assert_eq!(minor(&board.lines[1].forecast_bonus), 48_000);
    }
}
