//! Surveys: one per product and one general, versioned so that answers keep
//! the questions they answered.
use branchscore_proto::feedback::v1::*;
use branchscore_testkit::authorized;
use tonic::Code;

mod common;
use common::*;

#[tokio::test]
async fn a_new_version_changes_new_invitations_while_old_answers_keep_their_questions() {
    let mut h = standard().await;
    let staff = h.waw_staff.clone();
    let invite = |request_id: &str| CreateInvitationsRequest {
        request_id: request_id.into(),
        invitations: vec![InvitationRequest {
            client_id: "C-WAW-B".into(),
            product_id: "P-CARD".into(),
            channel: InvitationChannel::WebLink as i32,
        }],
    };
    let old = h.feedback.create_invitations(authorized(&staff, invite("OLD"))).await.expect("invite").into_inner();
    let old_token = old.invitations[0].link_token.clone();

    let hq = h.hq.clone();
    let v2 = CreateSurveyVersionRequest {
        survey_id: "S-CARD".into(),
        product_id: "P-CARD".into(),
        name: "Your company card".into(),
        items: vec![item("limit", "Is the limit right for you?", "offer")],
        asks_nps: true,
        asks_csat: false,
    };
    let stored =
        h.feedback.create_survey_version(authorized(&hq, v2)).await.expect("v2").into_inner().survey.expect("survey");
    assert_eq!((stored.version, stored.created_by.as_str()), (2, "test-hq_analyst"));
    let latest =
        h.feedback.get_survey(authorized(&staff, GetSurveyRequest { survey_id: "S-CARD".into(), version: 0 })).await;
    assert_eq!(latest.expect("latest").into_inner().survey.expect("survey").version, 2);
    let first =
        h.feedback.get_survey(authorized(&staff, GetSurveyRequest { survey_id: "S-CARD".into(), version: 1 })).await;
    let first = first.expect("v1").into_inner().survey.expect("survey");
    assert_eq!(first.items.iter().map(|i| i.code.as_str()).collect::<Vec<_>>(), ["look", "delivery"]);
    let listed = h.feedback.list_surveys(authorized(&staff, ListSurveysRequest {})).await.expect("list").into_inner();
    let versions: Vec<(&str, i32)> = listed.surveys.iter().map(|s| (s.survey_id.as_str(), s.version)).collect();
    assert_eq!(versions, [("S-CARD", 2), ("S-GENERAL", 1), ("S-LOAN", 1)]);

    // The invitation made before still asks version 1, and takes its answers.
    let opened = h.link.open_survey(OpenSurveyRequest { token: old_token.clone() }).await.expect("open").into_inner();
    assert_eq!(opened.survey.expect("survey").version, 1);
    let v2_answer =
        SubmitSurveyRequest { token: old_token.clone(), answers: Some(answers(&[("limit", 5)], Some(9), None)) };
    assert_eq!(
        violations(&h.link.submit_survey(v2_answer).await.expect_err("v2's item")),
        ["answers.items[0].code", "answers.nps"]
    );
    let v1_answer = SubmitSurveyRequest { token: old_token, answers: Some(answers(&[("look", 5)], None, Some(5))) };
    h.link.submit_survey(v1_answer).await.expect("v1 answers");
    let new = h.feedback.create_invitations(authorized(&staff, invite("NEW"))).await.expect("invite").into_inner();
    assert_eq!(new.invitations[0].invitation.as_ref().expect("inv").survey_version, 2);
}

#[tokio::test]
async fn survey_definitions_are_checked_and_refused_ones_write_nothing() {
    let mut h = standard().await;
    let before = h.footprint().await;
    let hq = h.hq.clone();
    let malformed = CreateSurveyVersionRequest {
        survey_id: "S X".into(),
        product_id: String::new(),
        name: "  ".into(),
        items: vec![item("a", "A?", "t"), item("a", "", "bad touchpoint")],
        asks_nps: false,
        asks_csat: false,
    };
    let refused = h.feedback.create_survey_version(authorized(&hq, malformed)).await.expect_err("malformed");
    assert_eq!(violations(&refused), ["survey_id", "name", "items[1].code", "items[1].text", "items[1].touchpoint"]);
    let empty = CreateSurveyVersionRequest { survey_id: "S-EMPTY".into(), name: "Empty".into(), ..Default::default() };
    assert_eq!(
        violations(&h.feedback.create_survey_version(authorized(&hq, empty)).await.expect_err("asks nothing")),
        ["items"]
    );
    let question = vec![item("q", "Q?", "t")];
    let unknown = CreateSurveyVersionRequest {
        survey_id: "S-NONE".into(),
        product_id: "P-NONE".into(),
        name: "Nothing".into(),
        items: question.clone(),
        ..Default::default()
    };
    assert_eq!(
        violations(&h.feedback.create_survey_version(authorized(&hq, unknown)).await.expect_err("unknown product")),
        ["product_id"]
    );
    let second_for_product = CreateSurveyVersionRequest {
        survey_id: "S-LOAN-2".into(),
        product_id: "P-LOAN".into(),
        name: "Another loan survey".into(),
        items: question.clone(),
        ..Default::default()
    };
    let refused =
        h.feedback.create_survey_version(authorized(&hq, second_for_product)).await.expect_err("one per product");
    assert!(refused.message().contains("already has survey S-LOAN"), "{}", refused.message());
    let moved = CreateSurveyVersionRequest {
        survey_id: "S-LOAN".into(),
        product_id: "P-CARD".into(),
        name: "Loan".into(),
        items: question.clone(),
        ..Default::default()
    };
    let refused = h.feedback.create_survey_version(authorized(&hq, moved)).await.expect_err("product is fixed");
    assert_eq!(violations(&refused), ["product_id"]);
    let manager = h.waw_manager.clone();
    let general = CreateSurveyVersionRequest {
        survey_id: "S-GENERAL".into(),
        name: "G".into(),
        items: question,
        ..Default::default()
    };
    let refused = h.feedback.create_survey_version(authorized(&manager, general)).await.expect_err("head office only");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(h.footprint().await, before);
    let missing =
        h.feedback.get_survey(authorized(&manager, GetSurveyRequest { survey_id: "S-LOAN".into(), version: 7 })).await;
    assert_eq!(missing.expect_err("no version 7").code(), Code::NotFound);
    let anonymous = h.feedback.list_surveys(ListSurveysRequest {}).await.expect_err("no token");
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}
