//! Answering by survey link without an account: the token opens exactly its
//! own invitation, once, until it expires; anything else is refused and
//! writes nothing.
use branchscore_feedback::links::SurveyLinks;
use branchscore_proto::feedback::v1::*;
use branchscore_testkit::authorized;
use tonic::Code;

mod common;
use common::*;

/// Web-link invitations for C-WAW-B (general survey) and C-WAW-NEW (loan).
async fn links(h: &mut Harness) -> (IssuedInvitation, IssuedInvitation) {
    let staff = h.waw_staff.clone();
    let request = CreateInvitationsRequest {
        request_id: "LINKS".into(),
        invitations: vec![
            InvitationRequest {
                client_id: "C-WAW-B".into(),
                product_id: String::new(),
                channel: InvitationChannel::WebLink as i32,
            },
            InvitationRequest {
                client_id: "C-WAW-NEW".into(),
                product_id: "P-LOAN".into(),
                channel: InvitationChannel::WebLink as i32,
            },
        ],
    };
    let mut issued =
        h.feedback.create_invitations(authorized(&staff, request)).await.expect("invite").into_inner().invitations;
    let second = issued.pop().expect("two");
    (issued.pop().expect("two"), second)
}

async fn status_of(h: &mut Harness, issued: &IssuedInvitation) -> InvitationStatus {
    let admin = h.admin.clone();
    let client_id = issued.invitation.as_ref().expect("inv").client_id.clone();
    let listed = h
        .feedback
        .list_invitations(authorized(&admin, ListInvitationsRequest { client_id, ..Default::default() }))
        .await
        .expect("list")
        .into_inner();
    listed.invitations[0].status()
}

#[tokio::test]
async fn a_link_opens_its_own_survey_and_takes_one_answer() {
    let mut h = standard().await;
    let (general, loan) = links(&mut h).await;
    let opened =
        h.link.open_survey(OpenSurveyRequest { token: loan.link_token.clone() }).await.expect("open").into_inner();
    let survey = opened.survey.expect("survey");
    assert_eq!((survey.survey_id.as_str(), survey.version, survey.items.len()), ("S-LOAN", 1, 3));
    assert!(survey.created_by.is_empty(), "who wrote the survey is not the client's business");
    assert_eq!(status_of(&mut h, &loan).await, InvitationStatus::Opened);
    assert_eq!(status_of(&mut h, &general).await, InvitationStatus::Sent);

    let submit = SubmitSurveyRequest {
        token: loan.link_token.clone(),
        answers: Some(answers(&[("paperwork", 5), ("payout", 4), ("payment", 5)], Some(9), None)),
    };
    h.link.submit_survey(submit.clone()).await.expect("submit");
    assert_eq!(status_of(&mut h, &loan).await, InvitationStatus::Answered);
    assert_eq!(status_of(&mut h, &general).await, InvitationStatus::Sent, "the token answered only its own invitation");
    let admin = h.admin.clone();
    let responses = h
        .feedback
        .list_responses(authorized(&admin, ListResponsesRequest::default()))
        .await
        .expect("responses")
        .into_inner()
        .responses;
    assert_eq!(responses.len(), 1);
    let response = &responses[0];
    assert_eq!(response.source(), ResponseSource::WebLink);
    assert_eq!(
        (response.client_id.as_str(), response.product_id.as_str(), response.survey_version),
        ("C-WAW-NEW", "P-LOAN", 1)
    );
    assert_eq!(response.answered_on, day(h.today));
    assert!(response.recorded_by.is_empty() && response.complaint_id.is_empty());
    let stored = response.answers.as_ref().expect("answers");
    assert_eq!(stored.nps, Some(9));
    assert_eq!(
        stored.items.iter().map(|i| (i.code.as_str(), i.score)).collect::<Vec<_>>(),
        [("paperwork", 5), ("payout", 4), ("payment", 5)]
    );

    // The link is used up.
    let again = h.link.submit_survey(submit).await.expect_err("second submission");
    assert_eq!(again.code(), Code::AlreadyExists);
    let reopened = h.link.open_survey(OpenSurveyRequest { token: loan.link_token }).await.expect_err("reopen");
    assert_eq!(reopened.code(), Code::AlreadyExists);
    assert_eq!(h.count("responses").await, 1);
}

#[tokio::test]
async fn forged_malformed_and_expired_tokens_are_refused_and_write_nothing() {
    let mut h = standard().await;
    let (general, _) = links(&mut h).await;
    let before = h.footprint().await;
    let submit = |token: String| SubmitSurveyRequest { token, answers: Some(answers(&[("staff", 5)], None, None)) };
    let guessed = "A".repeat(43);
    let other_secret = SurveyLinks::new(&branchscore_feedback::LinkConfig {
        secret: "somebody-elses-secret-that-is-long-enough".into(),
        ..Default::default()
    });
    let id = general.invitation.as_ref().expect("inv").id.parse().expect("uuid");
    for token in
        [guessed, "short".to_owned(), String::new(), other_secret.token(id), format!("{}x", general.link_token)]
    {
        let refused = h.link.submit_survey(submit(token.clone())).await.expect_err("forged");
        assert_eq!(refused.code(), Code::Unauthenticated, "{token:?}: {refused:?}");
        let refused = h.link.open_survey(OpenSurveyRequest { token: token.clone() }).await.expect_err("forged");
        assert_eq!(refused.code(), Code::Unauthenticated, "{token:?}");
    }
    // Time passes beyond the link's life.
    h.execute("UPDATE invitations SET expires_at = now() - interval '1 minute'").await;
    let expired = h.link.submit_survey(submit(general.link_token.clone())).await.expect_err("expired");
    assert_eq!(expired.code(), Code::FailedPrecondition);
    assert!(expired.message().contains("expired"), "{}", expired.message());
    let expired =
        h.link.open_survey(OpenSurveyRequest { token: general.link_token.clone() }).await.expect_err("expired");
    assert_eq!(expired.code(), Code::FailedPrecondition);
    assert_eq!(h.footprint().await, before);
    assert_eq!(status_of(&mut h, &general).await, InvitationStatus::Expired);
}

#[tokio::test]
async fn invalid_answers_write_nothing_and_leave_the_link_usable() {
    let mut h = standard().await;
    let (general, loan) = links(&mut h).await;
    let before = h.footprint().await;
    let bad = SubmitSurveyRequest {
        token: loan.link_token.clone(),
        answers: Some(answers(&[("paperwork", 0), ("nonsense", 3), ("payout", 4), ("payout", 5)], Some(11), Some(4))),
    };
    let refused = h.link.submit_survey(bad).await.expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&refused),
        ["answers.items[0].score", "answers.items[1].code", "answers.items[3].code", "answers.nps", "answers.csat"]
    );
    let empty = SubmitSurveyRequest { token: general.link_token.clone(), answers: Some(answers(&[], None, None)) };
    assert_eq!(violations(&h.link.submit_survey(empty).await.expect_err("empty")), ["answers"]);
    let missing = SubmitSurveyRequest { token: general.link_token.clone(), answers: None };
    assert_eq!(violations(&h.link.submit_survey(missing).await.expect_err("missing")), ["answers"]);
    assert_eq!(h.footprint().await, before);
    let good = SubmitSurveyRequest { token: loan.link_token, answers: Some(answers(&[("payout", 4)], Some(8), None)) };
    h.link.submit_survey(good).await.expect("the link still works");
}

#[tokio::test]
async fn of_concurrent_submissions_with_one_token_exactly_one_is_stored() {
    let mut h = standard().await;
    let (general, _) = links(&mut h).await;
    let mut tasks = Vec::new();
    for n in 0..8 {
        let mut link = h.link.clone();
        let request = SubmitSurveyRequest {
            token: general.link_token.clone(),
            answers: Some(answers(&[("staff", 1 + n % 5)], Some(10), Some(5))),
        };
        tasks.push(tokio::spawn(async move { link.submit_survey(request).await.map(|_| ()) }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    assert_eq!(outcomes.iter().filter(|o| o.is_ok()).count(), 1, "{outcomes:?}");
    assert!(outcomes.iter().filter_map(|o| o.as_ref().err()).all(|s| s.code() == Code::AlreadyExists), "{outcomes:?}");
    assert_eq!(h.count("responses").await, 1);
}
