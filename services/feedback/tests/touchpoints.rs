//! Touchpoint weights over real gRPC: answers given half a year ago, and
//! whether each client bought again since (from the clients service's
//! scores), make the regression's rows.
use branchscore_proto::feedback::v1::*;
use branchscore_scoring::touchpoints::{self, Row};
use branchscore_testkit::authorized;
use tonic::Code;

mod common;
use common::*;

/// (client, bought again 30 days ago, staff score, communication score).
const PANEL: [(&str, bool, i32, i32); 16] = [
    ("C-T-00", true, 5, 3),
    ("C-T-01", true, 4, 4),
    ("C-T-02", true, 5, 2),
    ("C-T-03", true, 4, 5),
    ("C-T-04", true, 5, 3),
    ("C-T-05", true, 3, 4),
    ("C-T-06", true, 4, 2),
    ("C-T-07", true, 5, 5),
    ("C-T-08", false, 2, 4),
    ("C-T-09", false, 3, 3),
    ("C-T-10", false, 1, 5),
    ("C-T-11", false, 2, 2),
    ("C-T-12", false, 4, 4),
    ("C-T-13", false, 2, 3),
    ("C-T-14", false, 3, 5),
    ("C-T-15", false, 1, 2),
];

fn invite(client: &str) -> InvitationRequest {
    InvitationRequest {
        client_id: client.into(),
        product_id: String::new(),
        channel: InvitationChannel::WebLink as i32,
    }
}

#[tokio::test]
async fn staff_satisfaction_explains_buying_again_and_recent_answers_wait_for_their_follow_up() {
    let mut h = start().await;
    let mut clients: Vec<Seed> =
        PANEL.iter().map(|(id, ..)| Seed { id, branch: "WAW", owner: "E-WAW", region: "mazowieckie" }).collect();
    clients.push(Seed { id: "C-T-NEW", branch: "WAW", owner: "E-WAW", region: "mazowieckie" });
    let mut purchases: Vec<Purchase> = Vec::new();
    for (id, again, ..) in PANEL {
        purchases.push((id, "P-LOAN", 300, 100_000));
        purchases.push((id, "P-LOAN", 240, 100_000));
        if again {
            purchases.push((id, "P-LOAN", 30, 100_000));
        }
    }
    purchases.push(("C-T-NEW", "P-LOAN", 300, 100_000));
    seed_network(&mut h, &clients, &purchases).await;
    seed_surveys(&mut h).await;

    let staff = h.waw_staff.clone();
    let panel = CreateInvitationsRequest {
        request_id: "PANEL".into(),
        invitations: PANEL.iter().map(|p| invite(p.0)).collect(),
    };
    let issued =
        h.feedback.create_invitations(authorized(&staff, panel)).await.expect("invite").into_inner().invitations;
    // Half a year passes between these invitations and now.
    h.execute("UPDATE invitations SET created_at = now() - interval '200 days'").await;
    for ((_, _, staff_score, speed), issued) in PANEL.iter().zip(&issued) {
        let request = RecordResponseRequest {
            invitation_id: issued.invitation.as_ref().expect("inv").id.clone(),
            answers: Some(answers(&[("staff", *staff_score), ("speed", *speed)], None, None)),
            answered_on: day(h.days_ago(180)),
            external_id: String::new(),
        };
        h.feedback.record_response(authorized(&staff, request)).await.expect("typed in");
    }
    // Answered today: too recent to know whether the client comes back.
    let recent = CreateInvitationsRequest { request_id: "RECENT".into(), invitations: vec![invite("C-T-NEW")] };
    let recent = h.feedback.create_invitations(authorized(&staff, recent)).await.expect("invite").into_inner();
    let request = RecordResponseRequest {
        invitation_id: recent.invitations[0].invitation.as_ref().expect("inv").id.clone(),
        answers: Some(answers(&[("staff", 1), ("speed", 1)], None, None)),
        ..Default::default()
    };
    h.feedback.record_response(authorized(&staff, request)).await.expect("typed in");

    let hq = h.hq.clone();
    let request = GetTouchpointWeightsRequest { from: day(h.days_ago(365)), to: day(h.today), ..Default::default() };
    let refused =
        h.feedback.get_touchpoint_weights(authorized(&hq, request.clone())).await.expect_err("30 clients by default");
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("16 clients are too few"), "{}", refused.message());

    let request = GetTouchpointWeightsRequest { min_clients: 10, ..request };
    let fit = h.feedback.get_touchpoint_weights(authorized(&hq, request.clone())).await.expect("weights").into_inner();
    // The same rows through the domain rule: touchpoints in name order.
    let rows: Vec<Row> = PANEL
        .iter()
        .map(|(_, again, staff, speed)| Row {
            scores: vec![f64::from(*speed), f64::from(*staff)],
            bought_again: *again,
        })
        .collect();
    let expected = touchpoints::weigh(&["communication".to_owned(), "staff".to_owned()], &rows, 10).expect("fits");
    assert_eq!((fit.clients, fit.repeat_rate), (16, 0.5));
    assert!((fit.r_squared - expected.r_squared).abs() < 1e-12);
    assert_eq!(fit.weights.len(), 2);
    for (got, want) in fit.weights.iter().zip(&expected.weights) {
        assert_eq!(got.touchpoint, want.touchpoint);
        assert!((got.beta - want.beta).abs() < 1e-12 && (got.standard_error - want.standard_error).abs() < 1e-12);
    }
    let staff_weight = &fit.weights[0];
    assert_eq!(staff_weight.touchpoint, "staff", "ranked first");
    assert!(staff_weight.significant && staff_weight.beta > 0.5, "{staff_weight:?}");
    assert!(!fit.weights[1].significant, "communication does not explain it: {:?}", fit.weights[1]);
    assert!(fit.method.contains("standardised"));

    // KRK has no answers at all.
    let krk = h.krk_staff.clone();
    let refused = h.feedback.get_touchpoint_weights(authorized(&krk, request)).await.expect_err("nothing in KRK");
    assert_eq!(refused.code(), Code::FailedPrecondition);
}
