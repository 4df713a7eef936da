//! Responses entered by staff and imported by the ERP, and each client's
//! satisfaction for the client score.
use branchscore_proto::feedback::v1::*;
use branchscore_testkit::authorized;
use tonic::Code;

mod common;
use common::*;

/// The standard plan as of today (e-mail for the digital clients).
async fn planned_ids(h: &mut Harness) -> PlanInvitationsResponse {
    let admin = h.admin.clone();
    plan(h, &admin, InvitationChannel::Email).await.expect("plan")
}

fn id(plan: &PlanInvitationsResponse, client: &str, product: &str) -> String {
    planned(plan, client, product).invitation.as_ref().expect("inv").id.clone()
}

#[tokio::test]
async fn staff_type_in_a_printed_form_once_and_a_retry_returns_the_same_response() {
    let mut h = standard().await;
    let plan = planned_ids(&mut h).await;
    let form = id(&plan, "C-WAW-A", "");
    let staff = h.waw_staff.clone();
    let before = h.footprint().await;
    let mut request = RecordResponseRequest {
        invitation_id: form.clone(),
        answers: Some(answers(&[("staff", 5), ("speed", 4)], Some(10), Some(5))),
        answered_on: day(h.days_ago(1)),
        external_id: "FORM-0001".into(),
    };
    let refused =
        h.feedback.record_response(authorized(&staff, request.clone())).await.expect_err("before the invitation");
    assert_eq!(violations(&refused), ["answered_on"]);
    request.answered_on = day(h.today + chrono::Duration::days(1));
    let refused = h.feedback.record_response(authorized(&staff, request.clone())).await.expect_err("in the future");
    assert_eq!(violations(&refused), ["answered_on"]);
    assert_eq!(h.footprint().await, before);

    request.answered_on = day(h.today);
    let stored = h.feedback.record_response(authorized(&staff, request.clone())).await.expect("typed in").into_inner();
    let response = stored.response.expect("response");
    assert_eq!(response.source(), ResponseSource::Staff);
    assert_eq!((response.recorded_by.as_str(), response.external_id.as_str()), ("test-branch_staff", "FORM-0001"));
    assert_eq!(response.abc_class, branchscore_proto::common::v1::AbcClass::A as i32);
    let retried = h.feedback.record_response(authorized(&staff, request.clone())).await.expect("retry").into_inner();
    assert_eq!(retried.response.expect("response").id, response.id);
    assert_eq!(h.count("responses").await, 1);

    // The same form number on another invitation, or a second answer, is refused.
    let other = RecordResponseRequest { invitation_id: id(&plan, "C-WAW-B", ""), ..request.clone() };
    let refused = h.feedback.record_response(authorized(&staff, other)).await.expect_err("number reused");
    assert_eq!(refused.code(), Code::AlreadyExists);
    let twice = RecordResponseRequest { external_id: String::new(), ..request };
    let refused = h.feedback.record_response(authorized(&staff, twice)).await.expect_err("answered");
    assert_eq!(refused.code(), Code::AlreadyExists);

    // Another branch cannot even see the invitation; the ERP does not type in forms.
    let krk = h.krk_staff.clone();
    let foreign = RecordResponseRequest {
        invitation_id: id(&plan, "C-WAW-B", ""),
        answers: Some(answers(&[("staff", 4)], None, None)),
        ..Default::default()
    };
    let refused = h.feedback.record_response(authorized(&krk, foreign.clone())).await.expect_err("another branch");
    assert_eq!(refused.code(), Code::NotFound);
    let erp = h.erp.clone();
    let refused = h.feedback.record_response(authorized(&erp, foreign)).await.expect_err("wrong role");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(h.count("responses").await, 1);
}

#[tokio::test]
async fn the_erp_import_is_idempotent_by_external_id_and_refuses_bad_records_alone() {
    let mut h = standard().await;
    let plan = planned_ids(&mut h).await;
    let record = |external: &str, invitation: String, answers: Answers| ImportedResponse {
        external_id: external.into(),
        invitation_id: invitation,
        answered_on: day(h.today),
        answers: Some(answers),
    };
    let good_a = record("ERP-1", id(&plan, "C-WAW-A", ""), answers(&[("staff", 5), ("speed", 5)], Some(10), Some(5)));
    let good_int = record("ERP-2", id(&plan, "C-WAW-INT", ""), answers(&[("staff", 2)], Some(4), Some(2)));
    let unknown = record("ERP-3", uuid::Uuid::new_v4().to_string(), answers(&[("staff", 5)], None, None));
    let bad_score = record("ERP-4", id(&plan, "C-WAW-B", ""), answers(&[("staff", 9)], None, None));
    let mut future = record("ERP-5", id(&plan, "C-KRK-1", ""), answers(&[("staff", 5)], None, None));
    future.answered_on = day(h.today + chrono::Duration::days(3));
    let twice = record("ERP-6", id(&plan, "C-WAW-A", ""), answers(&[("staff", 1)], None, None));
    let malformed =
        ImportedResponse { external_id: "bad id".into(), invitation_id: "x".into(), answered_on: None, answers: None };
    let batch = vec![good_a, good_int, unknown, bad_score, future, twice, malformed];
    let erp = h.erp.clone();
    let reply = h
        .feedback
        .import_responses(authorized(&erp, ImportResponsesRequest { responses: batch.clone() }))
        .await
        .expect("import")
        .into_inner();
    assert_eq!((reply.accepted, reply.duplicates, reply.rejected, reply.complaints_opened), (2, 0, 5, 1));
    let refusals: Vec<(i32, &str, &str)> =
        reply.rejections.iter().map(|r| (r.index, r.external_id.as_str(), r.field.as_str())).collect();
    assert_eq!(
        refusals,
        [
            (2, "ERP-3", "invitation_id"),
            (3, "ERP-4", "answers.items[0].score"),
            (4, "ERP-5", "answered_on"),
            (5, "ERP-6", "invitation_id"),
            (6, "bad id", "external_id"),
        ]
    );
    assert_eq!(h.count("responses").await, 2);
    assert_eq!(h.count("complaints").await, 1);

    // The same batch again changes nothing.
    let again = h
        .feedback
        .import_responses(authorized(&erp, ImportResponsesRequest { responses: batch.clone() }))
        .await
        .expect("again")
        .into_inner();
    assert_eq!((again.accepted, again.duplicates, again.rejected, again.complaints_opened), (0, 2, 5, 0));
    assert_eq!(h.count("responses").await, 2);
    assert_eq!(h.count("complaints").await, 1);

    // A batch repeating an external id is refused whole.
    let before = h.footprint().await;
    let repeated = vec![batch[1].clone(), batch[1].clone()];
    let refused = h
        .feedback
        .import_responses(authorized(&erp, ImportResponsesRequest { responses: repeated }))
        .await
        .expect_err("repeat");
    assert_eq!(violations(&refused), ["responses[1].external_id"]);
    let staff = h.waw_staff.clone();
    let refused = h
        .feedback
        .import_responses(authorized(&staff, ImportResponsesRequest { responses: vec![batch[3].clone()] }))
        .await
        .expect_err("staff do not import");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(h.footprint().await, before);
}

#[tokio::test]
async fn each_client_gets_a_satisfaction_from_its_responses() {
    let mut h = standard().await;
    let plan = planned_ids(&mut h).await;
    let erp = h.erp.clone();
    let record = |external: &str, invitation: String, answers: Answers| ImportedResponse {
        external_id: external.into(),
        invitation_id: invitation,
        answered_on: day(h.today),
        answers: Some(answers),
    };
    let batch = vec![
        // CSAT 4 -> (4 - 1) / 4 = 75.
        record("S-1", id(&plan, "C-WAW-A", ""), answers(&[("staff", 1)], Some(3), Some(4))),
        // No CSAT: items 5, 4, 3 -> mean 4 -> 75.
        record(
            "S-2",
            id(&plan, "C-WAW-NEW", "P-LOAN"),
            answers(&[("paperwork", 5), ("payout", 4), ("payment", 3)], Some(9), None),
        ),
        // CSAT 2 -> 25; with the loan, C-WAW-NEW's mean is (75 + 25) / 2 = 50.
        record("S-3", id(&plan, "C-WAW-NEW", "P-CARD"), answers(&[("look", 5)], None, Some(2))),
        // Only NPS 7 -> 70.
        record("S-4", id(&plan, "C-KRK-1", ""), answers(&[], Some(7), None)),
    ];
    h.feedback.import_responses(authorized(&erp, ImportResponsesRequest { responses: batch })).await.expect("import");
    let ids = ["C-WAW-A", "C-WAW-NEW", "C-KRK-1", "C-WAW-B"].map(String::from).to_vec();
    let hq = h.hq.clone();
    let reply = h
        .feedback
        .batch_get_client_satisfaction(authorized(
            &hq,
            BatchGetClientSatisfactionRequest { client_ids: ids.clone(), ..Default::default() },
        ))
        .await
        .expect("satisfaction")
        .into_inner();
    let got: Vec<(&str, f64, i32, &str)> = reply
        .satisfactions
        .iter()
        .map(|s| (s.client_id.as_str(), s.satisfaction, s.responses, s.latest_nps_group.as_str()))
        .collect();
    assert_eq!(
        got,
        [("C-KRK-1", 70.0, 1, "passive"), ("C-WAW-A", 75.0, 1, "detractor"), ("C-WAW-NEW", 50.0, 2, "promoter")]
    );
    assert_eq!(reply.missing_client_ids, ["C-WAW-B"]);
    assert!(reply.satisfactions.iter().all(|s| s.last_answered_on == day(h.today)));

    // A branch sees its own clients only; an old answer falls out of the lookback.
    let krk = h.krk_staff.clone();
    let scoped = h
        .feedback
        .batch_get_client_satisfaction(authorized(
            &krk,
            BatchGetClientSatisfactionRequest { client_ids: ids.clone(), ..Default::default() },
        ))
        .await
        .expect("scoped")
        .into_inner();
    assert_eq!(scoped.satisfactions.iter().map(|s| s.client_id.as_str()).collect::<Vec<_>>(), ["C-KRK-1"]);
    let later = BatchGetClientSatisfactionRequest {
        client_ids: ids,
        as_of: day(h.today + chrono::Duration::days(400)),
        lookback_days: 365,
    };
    let later = h.feedback.batch_get_client_satisfaction(authorized(&hq, later)).await.expect("later").into_inner();
    assert!(later.satisfactions.is_empty());
    let refused = h
        .feedback
        .batch_get_client_satisfaction(authorized(&hq, BatchGetClientSatisfactionRequest::default()))
        .await
        .expect_err("no ids");
    assert_eq!(violations(&refused), ["client_ids"]);
}
