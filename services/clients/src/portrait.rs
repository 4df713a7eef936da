//! The ideal client portrait between the API and the scoring crate: segment
//! criteria, product states and cross-sell suggestions. Pure.
use branchscore_proto::clients::v1 as pb;
use branchscore_proto::common::v1::Date;
use branchscore_scoring::cross_sell::{BasketEvidence, Reason, Suggestion};
use branchscore_scoring::maturity::ProductState;
use branchscore_scoring::segment::SegmentCriteria;
use chrono::NaiveDate;

pub fn criteria(segment: &pb::Segment) -> SegmentCriteria {
    SegmentCriteria {
        kinds: segment.kinds.clone(),
        size_bands: segment.size_bands.clone(),
        industries: segment.industries.clone(),
    }
}

/// A stored state as the crate sees it; `None` for codes it does not know.
pub fn product_state(kind: i32, date: Option<NaiveDate>, reason: &str) -> Option<ProductState> {
    Some(match pb::ProductStateKind::try_from(kind).ok()? {
        pb::ProductStateKind::NotOffered => ProductState::NotOffered,
        pb::ProductStateKind::Offered => ProductState::Offered { on: date? },
        pb::ProductStateKind::Refused => ProductState::Refused { reason: reason.to_owned() },
        pb::ProductStateKind::Contracted => ProductState::Contracted { on: date? },
        pb::ProductStateKind::Using => ProductState::Using,
        pb::ProductStateKind::Unspecified => return None,
    })
}

pub fn state_kind(state: &ProductState) -> pb::ProductStateKind {
    match state {
        ProductState::NotOffered => pb::ProductStateKind::NotOffered,
        ProductState::Offered { .. } => pb::ProductStateKind::Offered,
        ProductState::Refused { .. } => pb::ProductStateKind::Refused,
        ProductState::Contracted { .. } => pb::ProductStateKind::Contracted,
        ProductState::Using => pb::ProductStateKind::Using,
    }
}

/// The message for a product's state (without who recorded it).
pub fn state_message(product_id: &str, state: &ProductState) -> pb::ClientProductState {
    let (date, reason) = match state {
        ProductState::Offered { on } | ProductState::Contracted { on } => (Some(Date::from(*on)), String::new()),
        ProductState::Refused { reason } => (None, reason.clone()),
        ProductState::NotOffered | ProductState::Using => (None, String::new()),
    };
    pb::ClientProductState {
        product_id: product_id.to_owned(),
        state: state_kind(state) as i32,
        date,
        reason,
        ..pb::ClientProductState::default()
    }
}

/// A suggestion as the counter shows it; `name` looks up product names.
pub fn suggestion(s: &Suggestion<String>, segment: &str, name: impl Fn(&str) -> String) -> pb::CrossSellSuggestion {
    let evidence_text = |e: &BasketEvidence<String>| {
        format!(
            "{:.0}% of clients who buy {} also buy it (lift {:.1})",
            e.confidence * 100.0,
            name(&e.because_of),
            e.lift
        )
    };
    let (reason, state, evidence, explanation) = match &s.reason {
        Reason::SegmentGap { state, basket } => {
            let status = match state {
                ProductState::NotOffered => "not offered yet".to_owned(),
                ProductState::Offered { on } => format!("offered on {on}, no answer yet"),
                ProductState::Refused { reason } => format!("refused ({reason}), worth another try"),
                ProductState::Contracted { .. } | ProductState::Using => String::new(),
            };
            let mut text = format!("targeted for segment {segment}; {status}");
            if let Some(e) = basket {
                text.push_str("; ");
                text.push_str(&evidence_text(e));
            }
            (pb::CrossSellReason::SegmentGap, state_kind(state), basket.as_ref(), text)
        }
        Reason::Basket(e) => {
            (pb::CrossSellReason::Basket, pb::ProductStateKind::Unspecified, Some(e), evidence_text(e))
        }
    };
    pb::CrossSellSuggestion {
        product_id: s.product.clone(),
        product_name: name(&s.product),
        reason: reason as i32,
        state: state as i32,
        because_of_product_id: evidence.map(|e| e.because_of.clone()).unwrap_or_default(),
        confidence: evidence.map_or(0.0, |e| e.confidence),
        lift: evidence.map_or(0.0, |e| e.lift),
        explanation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_and_need_their_date() {
        let on = NaiveDate::from_ymd_opt(2026, 10, 1);
        for state in [
            ProductState::NotOffered,
            ProductState::Offered { on: on.expect("date") },
            ProductState::Refused { reason: "too expensive".into() },
            ProductState::Contracted { on: on.expect("date") },
            ProductState::Using,
        ] {
            let message = state_message("P", &state);
            let back = product_state(message.state, message.date.and_then(|d| d.to_naive()), &message.reason);
            assert_eq!(back, Some(state));
        }
        assert_eq!(product_state(pb::ProductStateKind::Offered as i32, None, ""), None);
        assert_eq!(product_state(0, on, ""), None);
    }

    #[test]
    fn suggestions_explain_themselves() {
        let gap = Suggestion {
            product: "P-TONER".to_owned(),
            reason: Reason::SegmentGap {
                state: ProductState::NotOffered,
                basket: Some(BasketEvidence { because_of: "P-PAPER".into(), confidence: 0.42, lift: 2.31 }),
            },
        };
        let names = |id: &str| if id == "P-PAPER" { "Paper".to_owned() } else { "Toner".to_owned() };
        let message = suggestion(&gap, "office", names);
        assert_eq!(message.product_name, "Toner");
        assert_eq!(message.reason(), pb::CrossSellReason::SegmentGap);
        assert_eq!(
            message.explanation,
            "targeted for segment office; not offered yet; 42% of clients who buy Paper also buy it (lift 2.3)"
        );
    }
}
