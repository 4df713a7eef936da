//! Staff evaluation over real gRPC: BARS competencies, evaluations by
//! manager, quality control and mystery shopper, dialog checklists and the
//! quality score, worked out by hand.
use branchscore_proto::feedback::v1::*;
use branchscore_testkit::authorized;
use tonic::Code;

mod common;
use common::*;

fn competency(id: &str) -> Competency {
    Competency {
        id: id.into(),
        name: format!("Competency {id}"),
        description: "How the employee handles it".into(),
        anchors: vec![
            BehaviourAnchor { level: 1, behaviour: "Interrupts the client".into() },
            BehaviourAnchor { level: 2, behaviour: "Lets the client finish, asks nothing".into() },
            BehaviourAnchor { level: 3, behaviour: "Asks about the need".into() },
            BehaviourAnchor { level: 4, behaviour: "Restates the need and checks it".into() },
            BehaviourAnchor { level: 5, behaviour: "Uncovers needs the client had not named".into() },
        ],
    }
}

fn rating(competency: &str, level: i32) -> CompetencyRating {
    CompetencyRating { competency_id: competency.into(), level, evidence: "observed".into(), anchor: String::new() }
}

fn evaluation(request_id: &str, kind: EvaluatorKind, ratings: Vec<CompetencyRating>) -> RecordEvaluationRequest {
    RecordEvaluationRequest {
        request_id: request_id.into(),
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        evaluator_kind: kind as i32,
        evaluated_on: None,
        ratings,
        note: String::new(),
    }
}

fn result(code: &str, outcome: CriterionOutcome) -> CriterionResult {
    CriterionResult { code: code.into(), outcome: outcome as i32 }
}

async fn definitions(h: &mut Harness) {
    let hq = h.hq.clone();
    let competencies = vec![competency("listening"), competency("closing")];
    let stored = h
        .quality
        .batch_upsert_competencies(authorized(&hq, BatchUpsertCompetenciesRequest { competencies }))
        .await
        .expect("competencies")
        .into_inner();
    assert_eq!(stored.competencies.len(), 2);
    let criteria = vec![
        ChecklistCriterion { code: "greeting".into(), text: "Greets by name".into(), weight: 10 },
        ChecklistCriterion { code: "needs".into(), text: "Asks about the need".into(), weight: 30 },
        ChecklistCriterion { code: "objections".into(), text: "Handles objections".into(), weight: 20 },
        ChecklistCriterion { code: "close".into(), text: "Agrees the next step".into(), weight: 40 },
    ];
    let checklist = CreateChecklistVersionRequest { checklist_id: "CALL".into(), name: "Sales call".into(), criteria };
    let v1 = h.quality.create_checklist_version(authorized(&hq, checklist.clone())).await.expect("v1").into_inner();
    assert_eq!(v1.checklist.expect("checklist").version, 1);
}

#[tokio::test]
async fn the_quality_score_combines_bars_evaluations_and_dialog_reviews() {
    let mut h = start().await;
    seed_network(&mut h, &standard_clients(), &standard_purchases()).await;
    definitions(&mut h).await;
    let (hq, manager) = (h.hq.clone(), h.waw_manager.clone());
    let recorded = h
        .quality
        .record_evaluation(authorized(
            &manager,
            evaluation("EV-M", EvaluatorKind::Manager, vec![rating("listening", 4), rating("closing", 5)]),
        ))
        .await
        .expect("manager")
        .into_inner()
        .evaluation
        .expect("evaluation");
    assert_eq!(
        recorded.ratings[0].anchor, "Uncovers needs the client had not named",
        "the anchor of the level is kept"
    );
    assert_eq!(recorded.evaluator, "test-branch_manager");
    h.quality
        .record_evaluation(authorized(
            &hq,
            evaluation("EV-Q", EvaluatorKind::QualityControl, vec![rating("listening", 3)]),
        ))
        .await
        .expect("quality control");
    h.quality
        .record_evaluation(authorized(
            &hq,
            evaluation("EV-S", EvaluatorKind::MysteryShopper, vec![rating("closing", 2)]),
        ))
        .await
        .expect("mystery shopper");
    use CriterionOutcome::{Met, Missed, NotApplicable};
    let review = |request_id: &str, results: Vec<CriterionResult>| RecordDialogReviewRequest {
        request_id: request_id.into(),
        checklist_id: "CALL".into(),
        checklist_version: 0,
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        dialog_ref: "call-2026-001".into(),
        reviewed_on: None,
        results,
    };
    // 10 + 30 met of 80 applicable (objections did not come up): 50%.
    let half = review(
        "DR-1",
        vec![
            result("greeting", Met),
            result("needs", Met),
            result("objections", NotApplicable),
            result("close", Missed),
        ],
    );
    let stored = h.quality.record_dialog_review(authorized(&hq, half.clone())).await.expect("review").into_inner();
    assert_eq!(stored.review.expect("review").script_compliance_percent, 50.0);
    let full = review(
        "DR-2",
        vec![result("greeting", Met), result("needs", Met), result("objections", Met), result("close", Met)],
    );
    h.quality.record_dialog_review(authorized(&hq, full)).await.expect("review");

    let request = GetQualityScoresRequest { from: day(h.days_ago(7)), to: day(h.today), ..Default::default() };
    let scores =
        h.quality.get_quality_scores(authorized(&hq, request.clone())).await.expect("scores").into_inner().scores;
    assert_eq!(scores.len(), 1);
    let score = &scores[0];
    // Manager 4, 5 -> 87.5; quality control 3 -> 50; mystery shopper 2 -> 25; dialogs (50 + 100) / 2 = 75;
    // weights 25, 25, 20, 30 -> (2187.5 + 1250 + 500 + 2250) / 100.
    assert!((score.score - 61.875).abs() < 1e-9, "{score:#?}");
    let parts: Vec<(&str, f64, i64)> = score.components.iter().map(|c| (c.source.as_str(), c.score, c.count)).collect();
    assert_eq!(
        parts,
        [("manager", 87.5, 1), ("quality_control", 50.0, 1), ("mystery_shopper", 25.0, 1), ("dialogs", 75.0, 2)]
    );

    // A retry changes nothing; someone else's request id is refused.
    let retry = h.quality.record_dialog_review(authorized(&hq, half.clone())).await.expect("retry").into_inner();
    assert_eq!(retry.review.expect("review").script_compliance_percent, 50.0);
    assert_eq!(h.count("dialog_reviews").await, 2);
    let admin = h.admin.clone();
    let refused = h.quality.record_dialog_review(authorized(&admin, half)).await.expect_err("someone else's id");
    assert_eq!(refused.code(), Code::AlreadyExists);

    // KRK sees none of it.
    let krk = h.krk_staff.clone();
    let none = h.quality.get_quality_scores(authorized(&krk, request)).await.expect("scores").into_inner().scores;
    assert!(none.is_empty());
}

#[tokio::test]
async fn evaluations_and_reviews_are_checked_and_refused_ones_write_nothing() {
    let mut h = start().await;
    seed_network(&mut h, &standard_clients(), &standard_purchases()).await;
    definitions(&mut h).await;
    let (hq, manager, staff) = (h.hq.clone(), h.waw_manager.clone(), h.waw_staff.clone());
    let before = (h.count("evaluations").await, h.count("dialog_reviews").await);

    let refused = h
        .quality
        .record_evaluation(authorized(
            &manager,
            evaluation("E1", EvaluatorKind::QualityControl, vec![rating("listening", 3)]),
        ))
        .await
        .expect_err("a manager is no quality control");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = h
        .quality
        .record_evaluation(authorized(&staff, evaluation("E2", EvaluatorKind::Manager, vec![rating("listening", 3)])))
        .await
        .expect_err("staff do not evaluate");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut other_branch = evaluation("E3", EvaluatorKind::Manager, vec![rating("listening", 3)]);
    other_branch.branch_id = "KRK".into();
    other_branch.employee_id = "E-KRK".into();
    let refused = h.quality.record_evaluation(authorized(&manager, other_branch)).await.expect_err("another branch");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let mut stranger = evaluation("E4", EvaluatorKind::Manager, vec![rating("listening", 3)]);
    stranger.employee_id = "E-KRK".into();
    let refused = h.quality.record_evaluation(authorized(&manager, stranger)).await.expect_err("not of WAW");
    assert_eq!(violations(&refused), ["employee_id"]);
    let unknown = evaluation("E5", EvaluatorKind::Manager, vec![rating("charm", 3)]);
    let refused = h.quality.record_evaluation(authorized(&manager, unknown)).await.expect_err("unknown competency");
    assert_eq!(violations(&refused), ["ratings[0].competency_id"]);
    let mut malformed =
        evaluation("E 6", EvaluatorKind::Unspecified, vec![rating("listening", 6), rating("listening", 2)]);
    malformed.evaluated_on = day(h.today + chrono::Duration::days(1));
    let refused = h.quality.record_evaluation(authorized(&hq, malformed)).await.expect_err("malformed");
    assert_eq!(
        violations(&refused),
        ["request_id", "evaluator_kind", "evaluated_on", "ratings[0].level", "ratings[1].competency_id"]
    );

    let partial = RecordDialogReviewRequest {
        request_id: "DR-X".into(),
        checklist_id: "CALL".into(),
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        dialog_ref: "chat-17".into(),
        results: vec![result("greeting", CriterionOutcome::Met), result("smile", CriterionOutcome::Met)],
        ..Default::default()
    };
    let refused = h.quality.record_dialog_review(authorized(&hq, partial)).await.expect_err("partial");
    assert_eq!(violations(&refused), ["results[1].code", "results", "results", "results"]);
    let nothing_applies = RecordDialogReviewRequest {
        request_id: "DR-Y".into(),
        checklist_id: "CALL".into(),
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        dialog_ref: "chat-18".into(),
        results: ["greeting", "needs", "objections", "close"]
            .iter()
            .map(|c| result(c, CriterionOutcome::NotApplicable))
            .collect(),
        ..Default::default()
    };
    let refused = h.quality.record_dialog_review(authorized(&hq, nothing_applies)).await.expect_err("nothing applied");
    assert_eq!(violations(&refused), ["results"]);
    let refused = h
        .quality
        .record_dialog_review(authorized(&manager, RecordDialogReviewRequest::default()))
        .await
        .expect_err("reviews are quality control's");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!((h.count("evaluations").await, h.count("dialog_reviews").await), before);

    // Competencies need all five anchors; checklists keep their versions.
    let mut four = competency("empathy");
    four.anchors.pop();
    let refused = h
        .quality
        .batch_upsert_competencies(authorized(&hq, BatchUpsertCompetenciesRequest { competencies: vec![four] }))
        .await
        .expect_err("four anchors");
    assert_eq!(violations(&refused), ["competencies[0].anchors"]);
    let v2 = CreateChecklistVersionRequest {
        checklist_id: "CALL".into(),
        name: "Sales call".into(),
        criteria: vec![ChecklistCriterion { code: "greeting".into(), text: "Greets".into(), weight: 100 }],
    };
    let v2 = h.quality.create_checklist_version(authorized(&hq, v2)).await.expect("v2").into_inner();
    assert_eq!(v2.checklist.expect("checklist").version, 2);
    let listed =
        h.quality.list_checklists(authorized(&staff, ListChecklistsRequest {})).await.expect("list").into_inner();
    assert_eq!(
        listed.checklists.iter().map(|c| (c.id.as_str(), c.version, c.criteria.len())).collect::<Vec<_>>(),
        [("CALL", 2, 1)]
    );
    let old = RecordDialogReviewRequest {
        request_id: "DR-OLD".into(),
        checklist_id: "CALL".into(),
        checklist_version: 1,
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        dialog_ref: "call-1".into(),
        results: vec![
            result("greeting", CriterionOutcome::Missed),
            result("needs", CriterionOutcome::Met),
            result("objections", CriterionOutcome::Met),
            result("close", CriterionOutcome::Met),
        ],
        ..Default::default()
    };
    let old = h.quality.record_dialog_review(authorized(&hq, old)).await.expect("against v1").into_inner();
    let old = old.review.expect("review");
    assert_eq!((old.checklist_version, old.script_compliance_percent), (1, 90.0));
}
