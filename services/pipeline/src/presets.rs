//! The pipelines that ship (Schiffman's default and the agency variant) and
//! the rules any pipeline must follow.
use branchscore_platform::validate::{Violations, is_valid_id};
use branchscore_proto::pipeline::v1::{ControlPointTemplate, Pipeline, Stage};

fn stage(code: &str, name: &str, probability: i32, gate: bool, control_points: &[(&str, i32)]) -> Stage {
    Stage {
        code: code.into(),
        name: name.into(),
        probability_percent: probability,
        qualification_gate: gate,
        control_points: control_points
            .iter()
            .map(|(kind, days)| ControlPointTemplate { kind: (*kind).into(), due_after_days: *days })
            .collect(),
    }
}

/// Schiffman's stages (seed 004): 25% first meeting, 50% qualified (the
/// gate), 70% verbal yes, 100% signed or paid.
pub fn schiffman() -> Pipeline {
    Pipeline {
        id: "schiffman".into(),
        version: 1,
        name: "Schiffman (25/50/70/100)".into(),
        stages: vec![
            stage("meeting", "First meeting held", 25, false, &[("meeting_notes_sent", 1), ("next_contact", 14)]),
            stage("qualified", "Right person, plan, budget and timeline", 50, true, &[("offer_valid_until", 14)]),
            stage("verbal_yes", "Verbal yes, contract date being agreed", 70, false, &[("contract_date_agreed", 7)]),
            stage(
                "signed",
                "Contract signed or invoice paid",
                100,
                false,
                &[("invoice_due", 14), ("satisfaction_survey", 30)],
            ),
        ],
        is_default: true,
        create_time: None,
    }
}

/// The agency variant of the seed: 25 proposal being written, 40 sent,
/// 50 being studied (the gate), 75 defended, 90 verbal yes, 100 signed and paid.
pub fn agency() -> Pipeline {
    Pipeline {
        id: "agency".into(),
        version: 1,
        name: "Agency (25/40/50/75/90/100)".into(),
        stages: vec![
            stage("proposal_writing", "Proposal being written", 25, false, &[("proposal_due", 5)]),
            stage("proposal_sent", "Proposal sent", 40, false, &[("follow_up_call", 3)]),
            stage("studying", "Proposal being studied", 50, true, &[("next_contact", 7)]),
            stage("defended", "Proposal defended", 75, false, &[("retry_after_presentation", 14)]),
            stage("verbal_yes", "Verbal yes", 90, false, &[("contract_date_agreed", 7)]),
            stage("signed", "Signed and paid", 100, false, &[("invoice_due", 14)]),
        ],
        is_default: false,
        create_time: None,
    }
}

/// Field problems of a pipeline a caller wants to store.
pub fn check(pipeline: &Pipeline, v: &mut Violations) {
    v.id(|| "pipeline.id".into(), &pipeline.id);
    v.text(|| "pipeline.name".into(), &pipeline.name, 200);
    let stages = &pipeline.stages;
    v.check((2..=20).contains(&stages.len()), || "pipeline.stages".into(), "must have 2 to 20 stages");
    let mut codes = std::collections::HashSet::new();
    for (i, s) in stages.iter().enumerate() {
        v.check(is_valid_id(&s.code), || format!("pipeline.stages[{i}].code"), "must be 1-64 of A-Z a-z 0-9 . _ : -");
        v.check(codes.insert(&s.code), || format!("pipeline.stages[{i}].code"), "appears twice");
        v.check(!["won", "lost"].contains(&s.code.as_str()), || format!("pipeline.stages[{i}].code"), "is reserved");
        v.text(|| format!("pipeline.stages[{i}].name"), &s.name, 200);
        let previous = if i == 0 { 0 } else { stages[i - 1].probability_percent };
        v.check(
            (1..=100).contains(&s.probability_percent) && s.probability_percent > previous,
            || format!("pipeline.stages[{i}].probability_percent"),
            "must be 1-100 and above the previous stage's",
        );
        for (j, cp) in s.control_points.iter().enumerate() {
            v.check(
                is_valid_id(&cp.kind),
                || format!("pipeline.stages[{i}].control_points[{j}].kind"),
                "must be an id",
            );
            v.check(
                (0..=365).contains(&cp.due_after_days),
                || format!("pipeline.stages[{i}].control_points[{j}].due_after_days"),
                "must be 0 to 365",
            );
        }
    }
    v.check(
        stages.last().is_some_and(|s| s.probability_percent == 100 && !s.qualification_gate),
        || "pipeline.stages".into(),
        "the last stage is the won stage: 100% and not gated",
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_follow_the_rules_and_broken_pipelines_are_named() {
        for preset in [schiffman(), agency()] {
            let mut v = Violations::new();
            check(&preset, &mut v);
            assert!(v.is_empty(), "{:?}", v.into_vec());
        }
        let mut broken = schiffman();
        broken.stages[1].probability_percent = 20;
        broken.stages[2].code = "meeting".into();
        let mut v = Violations::new();
        check(&broken, &mut v);
        let fields: Vec<String> = v.into_vec().into_iter().map(|f| f.field).collect();
        assert_eq!(fields, ["pipeline.stages[1].probability_percent", "pipeline.stages[2].code"]);
    }
}
