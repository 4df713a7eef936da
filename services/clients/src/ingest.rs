//! Validation of ERP transaction lines. Pure: the caller looks up which
//! referenced ids exist, this decides line by line what is stored and why
//! the rest is refused.
use crate::store::NewTransactionLine;
use branchscore_platform::Principal;
use branchscore_platform::validate::is_valid_id;
use branchscore_proto::clients::v1::{LineKind, RejectedLine, TransactionLine};
use chrono::NaiveDate;
use std::collections::{HashMap, HashSet};

/// What the validator needs to know about referenced ids.
#[derive(Debug, Default)]
pub struct KnownReferences {
    /// Client id -> its branch.
    pub clients: HashMap<String, String>,
    pub products: HashSet<String>,
    pub employees: HashSet<String>,
    pub branches: HashSet<String>,
}

/// The ruling on one batch.
#[derive(Debug, Default)]
pub struct Ruling {
    pub accepted: Vec<NewTransactionLine>,
    pub rejected: Vec<RejectedLine>,
    /// Lines repeating an id seen earlier in the same stream.
    pub repeated_in_stream: u64,
}

/// Validates `lines` (starting at stream position `first_index`).
pub fn rule(
    lines: Vec<TransactionLine>,
    first_index: i64,
    known: &KnownReferences,
    principal: &Principal,
    currency: &str,
    today: NaiveDate,
    seen_in_stream: &mut HashSet<String>,
) -> Ruling {
    let mut ruling = Ruling::default();
    for (offset, line) in lines.into_iter().enumerate() {
        let index = first_index + offset as i64;
        match check(&line, known, principal, currency, today) {
            Err((field, reason)) => {
                ruling.rejected.push(RejectedLine { index, id: line.id, field: field.into(), reason })
            }
            Ok(valid) => {
                if seen_in_stream.insert(valid.id.clone()) {
                    ruling.accepted.push(valid);
                } else {
                    ruling.repeated_in_stream += 1;
                }
            }
        }
    }
    ruling
}

fn check(
    line: &TransactionLine,
    known: &KnownReferences,
    principal: &Principal,
    currency: &str,
    today: NaiveDate,
) -> Result<NewTransactionLine, (&'static str, String)> {
    if !is_valid_id(&line.id) {
        return Err(("id", "must be 1-64 characters of A-Z a-z 0-9 . _ : -".into()));
    }
    if !is_valid_id(&line.document_id) {
        return Err(("document_id", "must be 1-64 characters of A-Z a-z 0-9 . _ : -".into()));
    }
    if !known.branches.contains(&line.branch_id) {
        return Err(("branch_id", format!("unknown branch {:?}", line.branch_id)));
    }
    if !principal.can_access(&line.branch_id) {
        return Err(("branch_id", format!("branch {} is outside the caller's branches", line.branch_id)));
    }
    if !known.clients.contains_key(&line.client_id) {
        return Err(("client_id", format!("unknown client {:?}", line.client_id)));
    }
    if !known.products.contains(&line.product_id) {
        return Err(("product_id", format!("unknown product {:?}", line.product_id)));
    }
    if !known.employees.contains(&line.employee_id) {
        return Err(("employee_id", format!("unknown employee {:?}", line.employee_id)));
    }
    let amount = line.amount.as_ref().ok_or(("amount", "is required".to_owned()))?;
    if amount.currency != currency {
        return Err(("amount.currency", format!("must be the company currency {currency}, got {:?}", amount.currency)));
    }
    let is_return = line.kind == LineKind::Return as i32;
    match (is_return, amount.minor_units) {
        (_, 0) => return Err(("amount.minor_units", "must not be zero".into())),
        (false, units) if units < 0 => {
            return Err(("amount.minor_units", "a sale must be positive (send returns with kind RETURN)".into()));
        }
        (true, units) if units > 0 => return Err(("amount.minor_units", "a return must be negative".into())),
        _ => {}
    }
    if LineKind::try_from(line.kind).is_err() {
        return Err(("kind", format!("unknown line kind {}", line.kind)));
    }
    let date = line
        .business_date
        .as_ref()
        .and_then(|d| d.to_naive())
        .ok_or(("business_date", "must be a real calendar date".to_owned()))?;
    if date > today {
        return Err(("business_date", format!("{date} is in the future (today is {today})")));
    }
    Ok(NewTransactionLine {
        id: line.id.clone(),
        document_id: line.document_id.clone(),
        client_id: line.client_id.clone(),
        product_id: line.product_id.clone(),
        amount_minor: amount.minor_units,
        currency: amount.currency.clone(),
        business_date: date,
        branch_id: line.branch_id.clone(),
        employee_id: line.employee_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use branchscore_platform::Role;
    use branchscore_platform::auth::BranchScope;
    use branchscore_proto::common::v1::{Date, Money};

    fn known() -> KnownReferences {
        KnownReferences {
            clients: HashMap::from([("C1".into(), "WAW".into())]),
            products: HashSet::from(["P1".into()]),
            employees: HashSet::from(["E1".into()]),
            branches: HashSet::from(["WAW".into(), "KRK".into()]),
        }
    }

    fn erp(branches: &[&str]) -> Principal {
        Principal {
            subject: "erp".into(),
            role: Role::ErpIntegration,
            scope: BranchScope::Branches(branches.iter().map(|b| b.to_string()).collect()),
        }
    }

    fn line(id: &str) -> TransactionLine {
        TransactionLine {
            id: id.into(),
            document_id: "D1".into(),
            client_id: "C1".into(),
            product_id: "P1".into(),
            amount: Some(Money { minor_units: 12_345, currency: "PLN".into() }),
            business_date: Some(Date { year: 2026, month: 11, day: 20 }),
            branch_id: "WAW".into(),
            employee_id: "E1".into(),
            kind: LineKind::Sale as i32,
        }
    }

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 25).expect("date")
    }

    fn rule_one(mut edit: impl FnMut(&mut TransactionLine), principal: &Principal) -> Ruling {
        let mut l = line("L1");
        edit(&mut l);
        rule(vec![l], 0, &known(), principal, "PLN", today(), &mut HashSet::new())
    }

    #[test]
    fn each_bad_field_is_named() {
        let p = erp(&["WAW"]);
        type Edit = fn(&mut TransactionLine);
        let cases: [(Edit, &str); 13] = [
            (|l| l.client_id = "C9".into(), "client_id"),
            (|l| l.product_id = "P9".into(), "product_id"),
            (|l| l.employee_id = "E9".into(), "employee_id"),
            (|l| l.branch_id = "KRK".into(), "branch_id"),
            (|l| l.branch_id = "GDN".into(), "branch_id"),
            (|l| l.amount = None, "amount"),
            (|l| l.amount = Some(Money { minor_units: -5, currency: "PLN".into() }), "amount.minor_units"),
            (|l| l.amount = Some(Money { minor_units: 0, currency: "PLN".into() }), "amount.minor_units"),
            (|l| l.amount = Some(Money { minor_units: 5, currency: "EUR".into() }), "amount.currency"),
            (|l| l.business_date = Some(Date { year: 2026, month: 11, day: 26 }), "business_date"),
            (|l| l.business_date = Some(Date { year: 2026, month: 2, day: 30 }), "business_date"),
            (|l| l.id = "bad id".into(), "id"),
            (|l| l.kind = 7, "kind"),
        ];
        for (edit, field) in cases {
            let ruling = rule_one(edit, &p);
            assert!(ruling.accepted.is_empty(), "{field} should be refused");
            assert_eq!(ruling.rejected[0].field, field, "{:?}", ruling.rejected[0].reason);
        }
    }

    #[test]
    fn returns_are_negative_and_sales_positive() {
        let p = erp(&["WAW"]);
        let ruling = rule_one(
            |l| {
                l.kind = LineKind::Return as i32;
                l.amount = Some(Money { minor_units: -2_000, currency: "PLN".into() });
            },
            &p,
        );
        assert_eq!(ruling.accepted[0].amount_minor, -2_000);
        let ruling = rule_one(|l| l.kind = LineKind::Return as i32, &p);
        assert_eq!(ruling.rejected[0].field, "amount.minor_units");
    }

    #[test]
    fn good_lines_pass_beside_bad_ones_and_repeats_are_counted() {
        let p = erp(&["WAW"]);
        let mut bad = line("L2");
        bad.client_id = "nobody".into();
        let lines = vec![line("L1"), bad, line("L3"), line("L1")];
        let ruling = rule(lines, 10, &known(), &p, "PLN", today(), &mut HashSet::new());
        assert_eq!(ruling.accepted.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(), ["L1", "L3"]);
        assert_eq!(ruling.rejected.len(), 1);
        assert_eq!(ruling.rejected[0].index, 11);
        assert_eq!(ruling.repeated_in_stream, 1);
    }
}
