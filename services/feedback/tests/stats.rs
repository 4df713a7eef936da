//! Coverage, the satisfaction trend and the KPI facts over real gRPC, with
//! numbers worked out by hand from the standard network:
//!
//! Base (clients who bought): WAW C-WAW-A (A, owner E-WAW), C-WAW-B (E-WAW),
//! C-WAW-INT (E-WAW-2), C-WAW-NEW (E-WAW); KRK C-KRK-1 (B), C-KRK-NEW (E-KRK).
//! Seven invitations, all sent today: general survey to A, B, INT, KRK-1;
//! loan to NEW and KRK-NEW; card to NEW. Answered: A (general: 5 5, NPS 10,
//! CSAT 5), NEW (loan: 2 4 4, NPS 6) and KRK-1 (general: 4 4, NPS 8, CSAT 3).
use branchscore_proto::common::v1::Granularity;
use branchscore_proto::feedback::v1::*;
use branchscore_testkit::{authorized, eventually};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Code;

mod common;
use common::*;

async fn answered_network() -> Harness {
    let mut h = standard().await;
    answer(&mut h).await;
    h
}

/// Sends the standard network's invitations and types in three answers.
async fn answer(h: &mut Harness) {
    let admin = h.admin.clone();
    let plan = plan(h, &admin, InvitationChannel::Email).await.expect("plan");
    let id = |client: &str, product: &str| planned(&plan, client, product).invitation.as_ref().expect("inv").id.clone();
    let deliveries = plan
        .invitations
        .iter()
        .map(|i| i.invitation.as_ref().expect("inv"))
        .filter(|i| i.channel() == InvitationChannel::Email)
        .map(|i| Delivery {
            invitation_id: i.id.clone(),
            outcome: DeliveryOutcome::Sent as i32,
            time: None,
            detail: String::new(),
        })
        .collect();
    let erp = h.erp.clone();
    h.feedback.record_deliveries(authorized(&erp, RecordDeliveriesRequest { deliveries })).await.expect("deliveries");
    let staff = h.waw_staff.clone();
    h.feedback.export_printed_forms(authorized(&staff, ExportPrintedFormsRequest::default())).await.expect("export");
    let typed = [
        (staff.clone(), id("C-WAW-A", ""), answers(&[("staff", 5), ("speed", 5)], Some(10), Some(5))),
        (
            staff.clone(),
            id("C-WAW-NEW", "P-LOAN"),
            answers(&[("paperwork", 2), ("payout", 4), ("payment", 4)], Some(6), None),
        ),
        (h.krk_staff.clone(), id("C-KRK-1", ""), answers(&[("staff", 4), ("speed", 4)], Some(8), Some(3))),
    ];
    for (token, invitation_id, answers) in typed {
        let request = RecordResponseRequest { invitation_id, answers: Some(answers), ..Default::default() };
        h.feedback.record_response(authorized(&token, request)).await.expect("typed in");
    }
}

fn coverage_request(today: chrono::NaiveDate, dimension: CoverageDimension) -> GetCoverageRequest {
    let from = today - chrono::Duration::days(30);
    GetCoverageRequest { from: day(from), to: day(today), dimension: dimension as i32, ..Default::default() }
}

/// key -> (clients, responding, sent, answered).
fn table(rows: &[CoverageRow]) -> BTreeMap<String, (i64, i64, i64, i64)> {
    rows.iter()
        .map(|r| (r.key.clone(), (r.clients, r.responding_clients, r.invitations_sent, r.invitations_answered)))
        .collect()
}

#[tokio::test]
async fn coverage_and_response_rate_by_branch_employee_product_and_class() {
    let mut h = answered_network().await;
    let hq = h.hq.clone();
    let today = h.today;
    let by = |dimension| coverage_request(today, dimension);
    let branch =
        h.feedback.get_coverage(authorized(&hq, by(CoverageDimension::Branch))).await.expect("branch").into_inner();
    assert_eq!(table(&branch.rows), BTreeMap::from([("KRK".into(), (2, 1, 2, 1)), ("WAW".into(), (4, 2, 5, 2))]));
    let waw = branch.rows.iter().find(|r| r.key == "WAW").expect("WAW");
    assert_eq!((waw.coverage, waw.response_rate), (0.5, 0.4));
    assert_eq!(table(&branch.totals), BTreeMap::from([(String::new(), (6, 3, 7, 3))]));
    assert_eq!(branch.coverage_target, 0.8);

    let employee =
        h.feedback.get_coverage(authorized(&hq, by(CoverageDimension::Employee))).await.expect("employee").into_inner();
    assert_eq!(
        table(&employee.rows),
        BTreeMap::from([
            ("E-KRK".into(), (2, 1, 2, 1)),
            ("E-WAW".into(), (3, 2, 4, 2)),
            ("E-WAW-2".into(), (1, 0, 1, 0)),
        ])
    );
    let product =
        h.feedback.get_coverage(authorized(&hq, by(CoverageDimension::Product))).await.expect("product").into_inner();
    assert_eq!(
        table(&product.rows),
        BTreeMap::from([
            ("P-CARD".into(), (1, 0, 1, 0)),
            ("P-LOAN".into(), (2, 1, 2, 1)),
            ("general".into(), (4, 2, 4, 2)),
        ])
    );
    let class =
        h.feedback.get_coverage(authorized(&hq, by(CoverageDimension::ClientClass))).await.expect("class").into_inner();
    let classes = table(&class.rows);
    assert_eq!(classes["A"], (1, 1, 1, 1));
    assert_eq!(classes["B"], (1, 1, 1, 1));
    // The small clients are C or unclassed depending on the day of the month the test runs.
    let small: (i64, i64) = classes
        .iter()
        .filter(|(key, _)| *key == "C" || *key == "unclassed")
        .fold((0, 0), |sum, (_, row)| (sum.0 + row.0, sum.1 + row.1));
    assert_eq!(small, (4, 1));

    // By month: the base is in every period, the answers only in today's.
    let monthly = GetCoverageRequest { granularity: Granularity::Month as i32, ..by(CoverageDimension::Branch) };
    let monthly = h.feedback.get_coverage(authorized(&hq, monthly)).await.expect("monthly").into_inner();
    assert_eq!(monthly.totals.len(), 2);
    let first = &monthly.totals[0];
    assert_eq!((first.clients, first.responding_clients, first.invitations_sent), (6, 0, 0));
    assert_eq!(monthly.totals[1].responding_clients, 3);

    // A branch sees its own rows only, and no other branch.
    let manager = h.waw_manager.clone();
    let own =
        h.feedback.get_coverage(authorized(&manager, by(CoverageDimension::Branch))).await.expect("own").into_inner();
    assert_eq!(table(&own.rows), BTreeMap::from([("WAW".into(), (4, 2, 5, 2))]));
    let krk = GetCoverageRequest { branch_id: "KRK".into(), ..by(CoverageDimension::Branch) };
    let refused = h.feedback.get_coverage(authorized(&manager, krk)).await.expect_err("another branch");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let bad = GetCoverageRequest {
        to: day(today - chrono::Duration::days(40)),
        dimension: 0,
        ..by(CoverageDimension::Branch)
    };
    let refused = h.feedback.get_coverage(authorized(&hq, bad)).await.expect_err("invalid");
    assert_eq!(violations(&refused), ["dimension", "to"]);
}

#[tokio::test]
async fn nps_and_csat_by_month_and_for_the_whole_range() {
    let mut h = answered_network().await;
    let hq = h.hq.clone();
    let request = GetSatisfactionTrendRequest { from: day(h.days_ago(60)), to: day(h.today), ..Default::default() };
    let trend = h.feedback.get_satisfaction_trend(authorized(&hq, request.clone())).await.expect("trend").into_inner();
    assert!((2..=3).contains(&trend.points.len()), "monthly by default");
    let total = trend.total.expect("total");
    // NPS 10, 6, 8: one promoter, one detractor, one passive -> 0.
    assert_eq!((total.responses, total.promoters, total.passives, total.detractors), (3, 1, 1, 1));
    assert_eq!(total.nps, Some(0.0));
    // CSAT 5 and 3: half satisfied, mean 4.
    assert_eq!((total.csat_answers, total.csat_percent, total.csat_mean), (2, Some(50.0), Some(4.0)));
    // Items 5 5 | 2 4 4 | 4 4: 28 / 7.
    assert_eq!((total.item_answers, total.item_mean), (7, Some(4.0)));
    let last = trend.points.last().expect("this month");
    assert_eq!(last.responses, 3);
    assert!(trend.points[..trend.points.len() - 1].iter().all(|p| p.responses == 0 && p.nps.is_none()));

    let krk = GetSatisfactionTrendRequest { branch_id: "KRK".into(), ..request.clone() };
    let krk =
        h.feedback.get_satisfaction_trend(authorized(&hq, krk)).await.expect("KRK").into_inner().total.expect("total");
    assert_eq!((krk.responses, krk.nps, krk.csat_percent), (1, Some(0.0), Some(0.0)));
    let loan = GetSatisfactionTrendRequest { product_id: "P-LOAN".into(), ..request.clone() };
    let loan = h
        .feedback
        .get_satisfaction_trend(authorized(&hq, loan))
        .await
        .expect("loan")
        .into_inner()
        .total
        .expect("total");
    assert_eq!((loan.responses, loan.nps, loan.item_mean), (1, Some(-100.0), Some(10.0 / 3.0)));
    let staff = h.krk_staff.clone();
    let own = h.feedback.get_satisfaction_trend(authorized(&staff, request)).await.expect("own").into_inner();
    assert_eq!(own.total.expect("total").responses, 1, "KRK staff see KRK's answers only");
}

#[tokio::test]
async fn kpi_facts_per_employee_and_period() {
    let mut h = answered_network().await;
    let hq = h.hq.clone();
    let competency = Competency {
        id: "listening".into(),
        name: "Listening".into(),
        description: String::new(),
        anchors: (1..=5).map(|level| BehaviourAnchor { level, behaviour: format!("level {level}") }).collect(),
    };
    let rapport = Competency { id: "rapport".into(), name: "Rapport".into(), ..competency.clone() };
    h.quality
        .batch_upsert_competencies(authorized(
            &hq,
            BatchUpsertCompetenciesRequest { competencies: vec![competency, rapport] },
        ))
        .await
        .expect("competencies");
    let manager = h.waw_manager.clone();
    let evaluation = RecordEvaluationRequest {
        request_id: "EV-1".into(),
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        evaluator_kind: EvaluatorKind::Manager as i32,
        ratings: vec![
            CompetencyRating { competency_id: "listening".into(), level: 4, ..Default::default() },
            CompetencyRating { competency_id: "rapport".into(), level: 5, ..Default::default() },
        ],
        ..Default::default()
    };
    h.quality.record_evaluation(authorized(&manager, evaluation)).await.expect("evaluation");

    let request = GetFeedbackFactsRequest { from: day(h.today), to: day(h.today), ..Default::default() };
    let facts =
        h.feedback.get_feedback_facts(authorized(&hq, request.clone())).await.expect("facts").into_inner().facts;
    let row = |employee: &str| facts.iter().find(|f| f.employee_id == employee).unwrap_or_else(|| panic!("{employee}"));
    let anna = row("E-WAW");
    assert_eq!((anna.branch_id.as_str(), anna.invitations_sent, anna.invitations_answered), ("WAW", 4, 2));
    assert_eq!((anna.clients, anna.responding_clients), (3, 2));
    assert!((anna.coverage - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!((anna.nps, anna.nps_answers, anna.csat_percent, anna.csat_answers), (Some(0.0), 2, Some(100.0), 1));
    assert_eq!((anna.complaints_explicit, anna.complaints_hidden, anna.complaints_nps_detractor), (1, 0, 0));
    // Levels 4 and 5: mean 4.5 -> 87.5, the manager being the only source.
    assert_eq!(anna.quality_score, Some(87.5));
    let piotr = row("E-WAW-2");
    assert_eq!((piotr.invitations_sent, piotr.clients, piotr.responding_clients, piotr.nps), (1, 1, 0, None));
    assert_eq!(piotr.quality_score, None);
    let jan = row("E-KRK");
    assert_eq!((jan.branch_id.as_str(), jan.invitations_sent, jan.invitations_answered, jan.clients), ("KRK", 2, 1, 2));
    assert_eq!((jan.nps, jan.csat_percent, jan.complaints_hidden), (Some(0.0), Some(0.0), 1));
    assert_eq!(facts.len(), 3);

    let own =
        h.feedback.get_feedback_facts(authorized(&manager, request.clone())).await.expect("own").into_inner().facts;
    assert!(own.iter().all(|f| f.branch_id == "WAW") && own.len() == 2);
    let one = GetFeedbackFactsRequest { employee_id: "E-WAW".into(), ..request.clone() };
    let one = h.feedback.get_feedback_facts(authorized(&manager, one)).await.expect("one").into_inner().facts;
    assert_eq!(one.len(), 1);
    let krk = h.krk_staff.clone();
    let refused = h
        .feedback
        .get_feedback_facts(authorized(&krk, GetFeedbackFactsRequest { branch_id: "WAW".into(), ..request }))
        .await
        .expect_err("another branch");
    assert_eq!(refused.code(), Code::PermissionDenied);
}

/// Each counter of a facts row with the kind of record behind it.
fn counters(row: &FeedbackFacts) -> [(&'static str, &'static str, i64); 12] {
    [
        ("invitations_sent", "invitation", row.invitations_sent),
        ("invitations_answered", "invitation", row.invitations_answered),
        ("clients", "client", row.clients),
        ("responding_clients", "client", row.responding_clients),
        ("nps_answers", "answer", row.nps_answers),
        ("csat_answers", "answer", row.csat_answers),
        ("complaints_explicit", "complaint", row.complaints_explicit),
        ("complaints_hidden", "complaint", row.complaints_hidden),
        ("complaints_nps_detractor", "complaint", row.complaints_nps_detractor),
        ("complaints_direct", "complaint", row.complaints_direct),
        ("complaints_closed", "complaint", row.complaints_closed),
        ("complaints_escalated", "complaint", row.complaints_escalated),
    ]
}

/// The (kind, id) listed behind `fact`, sorted.
fn sources_of<'a>(row: &'a FeedbackFacts, fact: &str) -> Vec<(&'a str, &'a str)> {
    let mut listed: Vec<(&str, &str)> =
        row.sources.iter().filter(|s| s.fact == fact).map(|s| (s.kind.as_str(), s.id.as_str())).collect();
    listed.sort_unstable();
    listed
}

/// `ids` as records of `kind`, sorted.
fn records<'a>(kind: &'a str, ids: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut records: Vec<(&str, &str)> = ids.iter().map(|id| (kind, *id)).collect();
    records.sort_unstable();
    records
}

/// The answered network of the other facts test, plus: E-WAW evaluated by
/// the manager and one dialog reviewed; a complaint registered directly
/// about C-WAW-B and worked through to closed; the explicit complaint
/// opened by C-WAW-NEW's answer left past its deadline and escalated once.
#[tokio::test]
async fn kpi_facts_list_the_records_behind_each_counter() {
    let mut h = start_with(|config, _| config.complaints.escalation_check_ms = Duration::from_millis(50)).await;
    seed_network(&mut h, &standard_clients(), &standard_purchases()).await;
    seed_surveys(&mut h).await;
    answer(&mut h).await;
    let (hq, admin, manager, staff) = (h.hq.clone(), h.admin.clone(), h.waw_manager.clone(), h.waw_staff.clone());

    let competency = Competency {
        id: "listening".into(),
        name: "Listening".into(),
        description: String::new(),
        anchors: (1..=5).map(|level| BehaviourAnchor { level, behaviour: format!("level {level}") }).collect(),
    };
    h.quality
        .batch_upsert_competencies(authorized(&hq, BatchUpsertCompetenciesRequest { competencies: vec![competency] }))
        .await
        .expect("competencies");
    let evaluation = RecordEvaluationRequest {
        request_id: "EV-1".into(),
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        evaluator_kind: EvaluatorKind::Manager as i32,
        ratings: vec![CompetencyRating { competency_id: "listening".into(), level: 4, ..Default::default() }],
        ..Default::default()
    };
    let evaluation = h.quality.record_evaluation(authorized(&manager, evaluation)).await.expect("evaluation");
    let evaluation = evaluation.into_inner().evaluation.expect("evaluation").id;
    let criteria = vec![ChecklistCriterion { code: "greeting".into(), text: "Greets by name".into(), weight: 10 }];
    let checklist = CreateChecklistVersionRequest { checklist_id: "CALL".into(), name: "Sales call".into(), criteria };
    h.quality.create_checklist_version(authorized(&hq, checklist)).await.expect("checklist");
    let review = RecordDialogReviewRequest {
        request_id: "DR-1".into(),
        checklist_id: "CALL".into(),
        employee_id: "E-WAW".into(),
        branch_id: "WAW".into(),
        dialog_ref: "call-1".into(),
        results: vec![CriterionResult { code: "greeting".into(), outcome: CriterionOutcome::Met as i32 }],
        ..Default::default()
    };
    let review = h.quality.record_dialog_review(authorized(&hq, review)).await.expect("review");
    let review = review.into_inner().review.expect("review").id;

    let register = RegisterComplaintRequest {
        request_id: "CALL-1".into(),
        client_id: "C-WAW-B".into(),
        description: "Wrong amount on the statement".into(),
        owner: "quality.anna".into(),
        ..Default::default()
    };
    let direct = h.complaints.register_complaint(authorized(&staff, register)).await.expect("register");
    let direct = direct.into_inner().complaint.expect("complaint").id;
    let step = |to: ComplaintState| AdvanceComplaintRequest {
        complaint_id: direct.clone(),
        to_state: to as i32,
        root_cause_category: RootCauseCategory::Other as i32,
        cause: "A typo".into(),
        note: "Corrected".into(),
        client_informed: true,
        ..Default::default()
    };
    use ComplaintState::{CauseIdentified, CauseRemoved, Closed, Investigating, ProcessFixed};
    for to in [Investigating, CauseIdentified, CauseRemoved, ProcessFixed, Closed] {
        h.complaints.advance_complaint(authorized(&staff, step(to))).await.expect("advance");
    }
    let complaints = h.complaints.list_complaints(authorized(&admin, ListComplaintsRequest::default())).await;
    let complaints = complaints.expect("complaints").into_inner().complaints;
    let opened_by = |source: ComplaintSource| {
        complaints.iter().find(|c| c.source() == source).map(|c| c.id.clone()).expect("complaint")
    };
    let (explicit, hidden) = (opened_by(ComplaintSource::Explicit), opened_by(ComplaintSource::Hidden));
    h.execute(&format!("UPDATE complaints SET due_at = now() - interval '1 hour' WHERE id = '{explicit}'")).await;
    let escalated = eventually(Duration::from_secs(20), async || {
        let got =
            h.complaints.get_complaint(authorized(&admin, GetComplaintRequest { complaint_id: explicit.clone() }));
        got.await.expect("get").into_inner().complaint.filter(|c| c.escalation_level == 1)
    });
    assert!(escalated.await.is_some(), "not escalated");

    let invitations = h.feedback.list_invitations(authorized(&admin, ListInvitationsRequest::default())).await;
    let invitations = invitations.expect("invitations").into_inner().invitations;
    let invited = |employee: &str, answered: bool| {
        let ids = invitations
            .iter()
            .filter(|i| i.employee_id == employee && i.send_time.is_some() && (!answered || i.answer_time.is_some()))
            .map(|i| i.id.as_str());
        records("invitation", &ids.collect::<Vec<_>>())
    };
    let responses = h.feedback.list_responses(authorized(&admin, ListResponsesRequest::default())).await;
    let responses = responses.expect("responses").into_inner().responses;
    let answer_of = |client: &str| responses.iter().find(|r| r.client_id == client).expect("response").id.as_str();
    let ask = |token: &str, include_sources: bool| {
        authorized(
            token,
            GetFeedbackFactsRequest { from: day(h.today), to: day(h.today), include_sources, ..Default::default() },
        )
    };
    let facts = h.feedback.get_feedback_facts(ask(&hq, true)).await.expect("facts").into_inner().facts;
    assert_eq!(facts.len(), 3);
    let row = |employee: &str| facts.iter().find(|f| f.employee_id == employee).unwrap_or_else(|| panic!("{employee}"));

    let anna = row("E-WAW");
    assert_eq!((anna.invitations_sent, anna.invitations_answered), (4, 2));
    assert_eq!(sources_of(anna, "invitations_sent"), invited("E-WAW", false));
    assert_eq!(sources_of(anna, "invitations_answered"), invited("E-WAW", true));
    assert_eq!(sources_of(anna, "clients"), records("client", &["C-WAW-A", "C-WAW-B", "C-WAW-NEW"]));
    assert_eq!(sources_of(anna, "responding_clients"), records("client", &["C-WAW-A", "C-WAW-NEW"]));
    assert_eq!(sources_of(anna, "nps_answers"), records("answer", &[answer_of("C-WAW-A"), answer_of("C-WAW-NEW")]));
    assert_eq!(sources_of(anna, "csat_answers"), records("answer", &[answer_of("C-WAW-A")]));
    assert_eq!(sources_of(anna, "complaints_explicit"), records("complaint", &[&explicit]));
    assert_eq!(sources_of(anna, "complaints_direct"), records("complaint", &[&direct]));
    assert_eq!(sources_of(anna, "complaints_closed"), records("complaint", &[&direct]));
    assert_eq!(sources_of(anna, "complaints_escalated"), records("complaint", &[&explicit]));
    let mut quality = vec![("dialog_review", review.as_str()), ("evaluation", evaluation.as_str())];
    quality.sort_unstable();
    assert_eq!(sources_of(anna, "quality_score"), quality);
    let piotr = row("E-WAW-2");
    assert_eq!(sources_of(piotr, "invitations_sent"), invited("E-WAW-2", false));
    assert_eq!(sources_of(piotr, "clients"), records("client", &["C-WAW-INT"]));
    let jan = row("E-KRK");
    assert_eq!(sources_of(jan, "invitations_sent"), invited("E-KRK", false));
    assert_eq!(sources_of(jan, "invitations_answered"), invited("E-KRK", true));
    assert_eq!(sources_of(jan, "clients"), records("client", &["C-KRK-1", "C-KRK-NEW"]));
    assert_eq!(sources_of(jan, "responding_clients"), records("client", &["C-KRK-1"]));
    assert_eq!(sources_of(jan, "nps_answers"), records("answer", &[answer_of("C-KRK-1")]));
    assert_eq!(sources_of(jan, "csat_answers"), records("answer", &[answer_of("C-KRK-1")]));
    assert_eq!(sources_of(jan, "complaints_hidden"), records("complaint", &[&hidden]));
    for row in &facts {
        let counters = counters(row);
        for (fact, kind, count) in counters {
            let listed = sources_of(row, fact);
            assert_eq!(listed.len() as i64, count, "{fact} of {row:?}");
            assert!(listed.iter().all(|(k, _)| *k == kind), "{fact} of {row:?}");
        }
        let quality = sources_of(row, "quality_score").len();
        assert_eq!(row.sources.len(), counters.iter().map(|c| c.2 as usize).sum::<usize>() + quality, "{row:?}");
    }

    // Without the flag: the same facts, no sources.
    let plain = h.feedback.get_feedback_facts(ask(&hq, false)).await.expect("plain").into_inner().facts;
    let without_sources: Vec<FeedbackFacts> =
        facts.iter().map(|row| FeedbackFacts { sources: Vec::new(), ..row.clone() }).collect();
    assert_eq!(plain, without_sources);

    // A branch sees its own rows with their sources, and nothing of the other branch.
    let own = h.feedback.get_feedback_facts(ask(&manager, true)).await.expect("own").into_inner().facts;
    let waw: Vec<FeedbackFacts> = facts.iter().filter(|f| f.branch_id == "WAW").cloned().collect();
    assert_eq!(own, waw);
}
