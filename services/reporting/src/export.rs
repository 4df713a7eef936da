//! Reports as files: a [`Sheet`] of typed cells written as CSV (stable
//! column keys, amounts in major units, ISO dates) or as an Excel workbook
//! (a bold header of titles, numbers as numbers, amounts with a money
//! format, dates as dates), then cut into chunks for the stream.
use branchscore_proto::common::v1::{Date, EmployeeRole, Money};
use branchscore_proto::reporting::v1::{
    FileFormat, GetKpiLeaderboardResponse, GetLoyaltyReportResponse, GetPeriodReportResponse, LoyaltyRow,
    PeriodReportRow,
};
use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// Files go out in chunks of this many bytes.
pub const CHUNK_BYTES: usize = 64 * 1024;
/// Amounts are integer minor units; the company currency (PLN by default)
/// has a hundred of them to the unit.
const MINOR_PER_MAJOR: i64 = 100;

const MONEY_FORMAT: &str = "#,##0.00";
const SHARE_FORMAT: &str = "0.0%";
const RATIO_FORMAT: &str = "0.0000";
const DATE_FORMAT: &str = "yyyy-mm-dd";

/// One value of a row, typed so that each format writes it faithfully.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Text(String),
    Count(i64),
    /// Minor units.
    Money(i64),
    /// A fraction 0-1 (shown as a percentage in Excel); `None` when undefined.
    Share(Option<f64>),
    /// A ratio such as a weighted attainment (1.0 = plan).
    Ratio(f64),
    Date(Option<NaiveDate>),
}

/// A column: its stable key (the CSV header) and its title (the Excel header).
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub key: &'static str,
    pub title: String,
}

/// A report as a table of typed cells.
#[derive(Debug, Clone, PartialEq)]
pub struct Sheet {
    /// The worksheet's name and the file name's stem.
    pub name: String,
    pub columns: Vec<Column>,
    pub rows: Vec<Vec<Cell>>,
}

fn column(key: &'static str, title: &str) -> Column {
    Column { key, title: title.to_owned() }
}

fn money_column(key: &'static str, title: &str, currency: &str) -> Column {
    Column { key, title: format!("{title} ({currency})") }
}

fn date(value: &Option<Date>) -> Cell {
    Cell::Date(value.as_ref().and_then(Date::to_naive))
}

fn amount(value: &Option<Money>) -> Cell {
    Cell::Money(value.as_ref().map_or(0, |m| m.minor_units))
}

/// `-12345` minor units as `-123.45`, exactly (no float on the way).
fn major_units(minor_units: i64) -> String {
    let sign = if minor_units < 0 { "-" } else { "" };
    let magnitude = minor_units.unsigned_abs();
    let per = MINOR_PER_MAJOR.unsigned_abs();
    format!("{sign}{}.{:02}", magnitude / per, magnitude % per)
}

impl Cell {
    fn csv(&self) -> String {
        match self {
            Cell::Text(text) => text.clone(),
            Cell::Count(n) => n.to_string(),
            Cell::Money(minor_units) => major_units(*minor_units),
            Cell::Share(Some(x)) | Cell::Ratio(x) => format!("{x:.4}"),
            Cell::Share(None) | Cell::Date(None) => String::new(),
            Cell::Date(Some(day)) => day.to_string(),
        }
    }
}

/// The formats of a workbook, made once.
struct Formats {
    header: Format,
    count: Format,
    money: Format,
    share: Format,
    ratio: Format,
    date: Format,
}

impl Formats {
    fn new() -> Self {
        Formats {
            header: Format::new().set_bold(),
            count: Format::new().set_num_format("0"),
            money: Format::new().set_num_format(MONEY_FORMAT),
            share: Format::new().set_num_format(SHARE_FORMAT),
            ratio: Format::new().set_num_format(RATIO_FORMAT),
            date: Format::new().set_num_format(DATE_FORMAT),
        }
    }
}

fn excel_date(day: NaiveDate) -> anyhow::Result<ExcelDateTime> {
    let year = u16::try_from(day.year())?;
    Ok(ExcelDateTime::from_ymd(year, u8::try_from(day.month())?, u8::try_from(day.day())?)?)
}

/// A sheet written in a file format.
#[derive(Debug, Clone, PartialEq)]
pub struct File {
    pub bytes: Vec<u8>,
    pub extension: &'static str,
    pub content_type: &'static str,
}

impl Sheet {
    /// The sheet as a file of `format` (CSV when unspecified).
    pub fn write(&self, format: FileFormat) -> anyhow::Result<File> {
        Ok(match format {
            FileFormat::Xlsx => File {
                bytes: self.to_xlsx()?,
                extension: "xlsx",
                content_type: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            },
            FileFormat::Csv | FileFormat::Unspecified => {
                File { bytes: self.to_csv()?, extension: "csv", content_type: "text/csv; charset=utf-8" }
            }
        })
    }

    /// Data rows (the header not counted).
    pub fn row_count(&self) -> i64 {
        i64::try_from(self.rows.len()).unwrap_or(i64::MAX)
    }

    fn to_csv(&self) -> anyhow::Result<Vec<u8>> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(self.columns.iter().map(|c| c.key))?;
        for row in &self.rows {
            writer.write_record(row.iter().map(Cell::csv))?;
        }
        writer.into_inner().map_err(|e| anyhow::anyhow!("{e}"))
    }

    fn to_xlsx(&self) -> anyhow::Result<Vec<u8>> {
        let formats = Formats::new();
        let mut workbook = Workbook::new();
        let sheet = workbook.add_worksheet();
        sheet.set_name(&self.name)?;
        for (col, column) in self.columns.iter().enumerate() {
            sheet.write_string_with_format(0, u16::try_from(col)?, &column.title, &formats.header)?;
        }
        for (r, row) in self.rows.iter().enumerate() {
            let r = u32::try_from(r + 1)?;
            for (col, cell) in row.iter().enumerate() {
                let col = u16::try_from(col)?;
                match cell {
                    Cell::Text(text) => sheet.write_string(r, col, text)?,
                    Cell::Count(n) => sheet.write_number_with_format(r, col, *n as f64, &formats.count)?,
                    Cell::Money(minor_units) => sheet.write_number_with_format(
                        r,
                        col,
                        *minor_units as f64 / MINOR_PER_MAJOR as f64,
                        &formats.money,
                    )?,
                    Cell::Share(Some(x)) => sheet.write_number_with_format(r, col, *x, &formats.share)?,
                    Cell::Ratio(x) => sheet.write_number_with_format(r, col, *x, &formats.ratio)?,
                    Cell::Date(Some(day)) => sheet.write_date_with_format(r, col, excel_date(*day)?, &formats.date)?,
                    // An undefined share or date is an empty cell, not a zero.
                    Cell::Share(None) | Cell::Date(None) => sheet,
                };
            }
        }
        sheet.set_freeze_panes(1, 0)?;
        sheet.autofit();
        Ok(workbook.save_to_buffer()?)
    }
}

// ------------------------------------------------------------ the reports

/// Which part of a report a row is.
const EMPLOYEE: &str = "employee";
const BRANCH: &str = "branch";
const NETWORK: &str = "network";

/// Rows, then the branch totals, then the network totals.
pub fn period_sheet(report: &GetPeriodReportResponse, currency: &str) -> Sheet {
    let row = |level: &str, r: &PeriodReportRow| {
        vec![
            Cell::Text(level.to_owned()),
            date(&r.period_start),
            date(&r.period_end),
            Cell::Text(r.branch_id.clone()),
            Cell::Text(r.employee_id.clone()),
            Cell::Text(r.employee_name.clone()),
            Cell::Count(r.potential_clients),
            Cell::Count(r.primary_sales_count),
            amount(&r.primary_sales_amount),
            Cell::Count(r.lost_clients),
            Cell::Count(r.restored_clients),
            amount(&r.repeat_sales_amount),
            amount(&r.new_direction_sales_amount),
        ]
    };
    let rows = (report.rows.iter().map(|r| row(EMPLOYEE, r)))
        .chain(report.branch_totals.iter().map(|r| row(BRANCH, r)))
        .chain(report.network_totals.iter().map(|r| row(NETWORK, r)))
        .collect();
    Sheet {
        name: "period-report".into(),
        columns: vec![
            column("level", "Level"),
            column("period_start", "Period start"),
            column("period_end", "Period end"),
            column("branch_id", "Branch"),
            column("employee_id", "Employee"),
            column("employee_name", "Name"),
            column("potential_clients", "Potential clients"),
            column("primary_sales_count", "Primary sales"),
            money_column("primary_sales_amount", "Primary sales amount", currency),
            column("lost_clients", "Lost clients"),
            column("restored_clients", "Restored clients"),
            money_column("repeat_sales_amount", "Repeat sales amount", currency),
            money_column("new_direction_sales_amount", "New direction sales amount", currency),
        ],
        rows,
    }
}

fn role_name(role: i32) -> String {
    EmployeeRole::try_from(role).map_or_else(|_| String::new(), |r| r.as_str_name().to_owned())
}

/// One line per employee, best rank first, with the period on every line.
pub fn leaderboard_sheet(board: &GetKpiLeaderboardResponse, currency: &str) -> Sheet {
    let rows = board
        .lines
        .iter()
        .map(|l| {
            vec![
                Cell::Count(i64::from(l.rank)),
                date(&board.from),
                date(&board.to),
                Cell::Count(i64::from(board.version)),
                Cell::Text(l.employee_id.clone()),
                Cell::Text(l.full_name.clone()),
                Cell::Text(l.branch_id.clone()),
                Cell::Text(role_name(l.role)),
                Cell::Ratio(l.weighted_attainment),
                amount(&l.bonus),
                Cell::Ratio(l.forecast_weighted_attainment),
                amount(&l.forecast_bonus),
                Cell::Count(i64::from(l.branch_rank)),
            ]
        })
        .collect();
    Sheet {
        name: "kpi-leaderboard".into(),
        columns: vec![
            column("rank", "Rank"),
            column("period_from", "Period from"),
            column("period_to", "Period to"),
            column("version", "Version"),
            column("employee_id", "Employee"),
            column("full_name", "Name"),
            column("branch_id", "Branch"),
            column("role", "Role"),
            column("weighted_attainment", "Weighted attainment"),
            money_column("bonus", "Bonus", currency),
            column("forecast_weighted_attainment", "Forecast weighted attainment"),
            money_column("forecast_bonus", "Forecast bonus", currency),
            // Last, so the columns before keep their places for readers of older files.
            column("branch_rank", "Rank in branch"),
        ],
        rows,
    }
}

/// The branch rows, the periods over every branch, then the whole range.
pub fn loyalty_sheet(report: &GetLoyaltyReportResponse, currency: &str) -> Sheet {
    let row = |level: &str, r: &LoyaltyRow| {
        vec![
            Cell::Text(level.to_owned()),
            date(&r.period_start),
            date(&r.period_end),
            Cell::Text(r.branch_id.clone()),
            Cell::Count(r.buying_clients),
            Cell::Count(r.repeat_buyers),
            Cell::Share(r.repeat_buyer_share),
            amount(&r.sales_amount),
            amount(&r.existing_client_sales_amount),
            Cell::Share(r.existing_client_revenue_share),
        ]
    };
    let rows = (report.branches.iter().map(|r| row(BRANCH, r)))
        .chain(report.periods.iter().map(|r| row(NETWORK, r)))
        .chain(report.total.iter().map(|r| row("total", r)))
        .collect();
    Sheet {
        name: "loyalty-report".into(),
        columns: vec![
            column("level", "Level"),
            column("period_start", "Period start"),
            column("period_end", "Period end"),
            column("branch_id", "Branch"),
            column("buying_clients", "Buying clients"),
            column("repeat_buyers", "Repeat buyers"),
            column("repeat_buyer_share", "Share of repeat buyers"),
            money_column("sales_amount", "Sales", currency),
            money_column("existing_client_sales_amount", "Sales to existing clients", currency),
            column("existing_client_revenue_share", "Share of revenue from existing clients"),
        ],
        rows,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use calamine::{Data, Reader, Xlsx};
    use std::io::Cursor;

    fn sheet() -> Sheet {
        Sheet {
            name: "test".into(),
            columns: vec![
                column("who", "Who"),
                column("n", "Count"),
                money_column("amount", "Amount", "PLN"),
                column("share", "Share"),
                column("day", "Day"),
            ],
            rows: vec![
                vec![
                    Cell::Text("Anna, \"the best\"".into()),
                    Cell::Count(3),
                    Cell::Money(-123_405),
                    Cell::Share(Some(0.25)),
                    Cell::Date(NaiveDate::from_ymd_opt(2026, 7, 31)),
                ],
                vec![Cell::Text("Jan".into()), Cell::Count(0), Cell::Money(7), Cell::Share(None), Cell::Date(None)],
            ],
        }
    }

    #[test]
    fn amounts_are_written_exactly_in_major_units() {
        assert_eq!(major_units(150_000), "1500.00");
        assert_eq!(major_units(-123_405), "-1234.05");
        assert_eq!(major_units(7), "0.07");
        assert_eq!(major_units(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn csv_has_the_keys_as_header_and_parses_back() {
        let text = sheet().to_csv().expect("csv");
        let mut reader = csv::Reader::from_reader(text.as_slice());
        assert_eq!(reader.headers().expect("header"), vec!["who", "n", "amount", "share", "day"]);
        let rows: Vec<Vec<String>> =
            reader.records().map(|r| r.expect("row").iter().map(str::to_owned).collect()).collect();
        assert_eq!(rows[0], ["Anna, \"the best\"", "3", "-1234.05", "0.2500", "2026-07-31"]);
        assert_eq!(rows[1], ["Jan", "0", "0.07", "", ""]);
    }

    #[test]
    fn xlsx_has_a_bold_header_and_typed_cells() {
        let file = sheet().to_xlsx().expect("xlsx");
        let mut book: Xlsx<_> = calamine::open_workbook_from_rs(Cursor::new(file)).expect("a workbook");
        let range = book.worksheet_range("test").expect("the sheet");
        assert_eq!(range.get((0, 2)), Some(&Data::String("Amount (PLN)".into())));
        assert_eq!(range.get((1, 1)), Some(&Data::Float(3.0)));
        assert_eq!(range.get((1, 2)), Some(&Data::Float(-1234.05)));
        assert_eq!(range.get((1, 3)), Some(&Data::Float(0.25)));
        let Some(Data::DateTime(day)) = range.get((1, 4)) else { panic!("a date: {:?}", range.get((1, 4))) };
        assert_eq!(day.as_datetime().map(|t| t.date()), NaiveDate::from_ymd_opt(2026, 7, 31));
        assert_eq!(range.get((2, 3)), Some(&Data::Empty));
        let styles = book.worksheet_style("test").expect("styles");
        let bold = |col| styles.get((0, col)).and_then(|s| s.font.as_ref()).is_some_and(|f| f.is_bold());
        assert!((0..5).all(bold), "the header is bold");
        let format =
            |row, col| styles.get((row, col)).and_then(|s| s.number_format.as_ref()).map(|n| n.format_code.clone());
        assert_eq!(format(1, 2).as_deref(), Some(MONEY_FORMAT));
        assert!(!styles.get((1, 0)).and_then(|s| s.font.as_ref()).is_some_and(|f| f.is_bold()));
    }
}
