//! Invitations over real gRPC and Postgres: the cadence rules, channels,
//! printed forms, the outbox the sender reads, delivery tracking, branch
//! scope, and the clients service being down.
use branchscore_proto::common::v1::AbcClass;
use branchscore_proto::feedback::v1::*;
use branchscore_testkit::authorized;
use std::time::Duration;
use tonic::Code;

mod common;
use common::*;

fn invitation(issued: &IssuedInvitation) -> &Invitation {
    issued.invitation.as_ref().expect("invitation")
}

#[tokio::test]
async fn cadence_asks_new_clients_about_each_first_purchase_and_everyone_else_once_a_year() {
    let mut h = standard().await;
    let admin = h.admin.clone();
    let plan = plan(&mut h, &admin, InvitationChannel::Unspecified).await.expect("plan");
    assert_eq!((plan.first_purchase, plan.annual, plan.printed_forms), (3, 4, 2), "{plan:#?}");
    assert!(plan.skipped.is_empty(), "{:?}", plan.skipped);

    // New clients: one invitation per product they started buying, by the seller's branch.
    let loan = invitation(planned(&plan, "C-WAW-NEW", "P-LOAN"));
    assert_eq!(loan.reason(), InvitationReason::FirstPurchase);
    assert_eq!((loan.survey_id.as_str(), loan.survey_version), ("S-LOAN", 1));
    assert_eq!((loan.branch_id.as_str(), loan.employee_id.as_str()), ("WAW", "E-WAW"));
    assert_eq!(loan.purchase_date, day(h.days_ago(10)));
    assert_eq!(loan.channel(), InvitationChannel::Email);
    assert_eq!(loan.status(), InvitationStatus::Pending);
    assert_eq!(invitation(planned(&plan, "C-WAW-NEW", "P-CARD")).survey_id, "S-CARD");
    assert_eq!(invitation(planned(&plan, "C-KRK-NEW", "P-LOAN")).branch_id, "KRK");

    // Everyone else who bought: the general survey once a year; A+ and
    // international clients on paper, the rest by e-mail.
    let a = invitation(planned(&plan, "C-WAW-A", ""));
    assert_eq!(
        (a.reason(), a.channel(), a.abc_class()),
        (InvitationReason::Annual, InvitationChannel::PrintedForm, AbcClass::A)
    );
    assert_eq!(a.survey_id, "S-GENERAL");
    let international = invitation(planned(&plan, "C-WAW-INT", ""));
    assert_eq!(
        (international.channel(), international.employee_id.as_str()),
        (InvitationChannel::PrintedForm, "E-WAW-2")
    );
    assert_eq!(invitation(planned(&plan, "C-WAW-B", "")).channel(), InvitationChannel::Email);
    let krk = invitation(planned(&plan, "C-KRK-1", ""));
    assert_eq!((krk.channel(), krk.abc_class()), (InvitationChannel::Email, AbcClass::B));
    assert!(plan.invitations.iter().all(|i| invitation(i).client_id != "C-WAW-POT"), "potential clients are not asked");
    // E-mail links travel in the outbox only.
    assert!(plan.invitations.iter().all(|i| i.link_token.is_empty() && i.link_url.is_empty()));
    let expiry = |i: &Invitation| {
        i.expire_time.as_ref().expect("expiry").seconds - i.create_time.as_ref().expect("created").seconds
    };
    assert_eq!(expiry(loan), 30 * 86_400);
    assert_eq!(expiry(a), 60 * 86_400);

    // Planning again finds nothing new due.
    let again = common::plan(&mut h, &admin, InvitationChannel::Unspecified).await.expect("plan again");
    assert!(again.invitations.is_empty(), "{again:#?}");
    assert_eq!(h.count("invitations").await, 7);
    // One delivery request per e-mail invitation.
    assert_eq!(h.count("outbox").await, 5);
}

#[tokio::test]
async fn web_links_are_returned_once_to_whoever_hands_them_over() {
    let mut h = standard().await;
    let admin = h.admin.clone();
    let plan = plan(&mut h, &admin, InvitationChannel::WebLink).await.expect("plan");
    let issued = planned(&plan, "C-WAW-B", "");
    assert_eq!(invitation(issued).channel(), InvitationChannel::WebLink);
    assert_eq!(invitation(issued).status(), InvitationStatus::Sent);
    assert_eq!(issued.link_token.len(), 43);
    assert_eq!(issued.link_url, format!("https://feedback.branchscore.local/s/{}", issued.link_token));
    // Printed forms stay printed whatever the digital channel.
    assert!(planned(&plan, "C-WAW-A", "").link_token.is_empty());
    assert_eq!(h.count("outbox").await, 0);
    let stored: Vec<Vec<u8>> = {
        let pool = sqlx::PgPool::connect(&h.env.database.url).await.expect("pool");
        let hashes = sqlx::query_scalar("SELECT token_hash FROM invitations").fetch_all(&pool).await.expect("hashes");
        pool.close().await;
        hashes
    };
    assert!(
        stored.iter().all(|hash| hash.len() == 32 && *hash != issued.link_token.as_bytes()),
        "only hashes are stored"
    );
}

#[tokio::test]
async fn a_branch_plans_and_sees_only_its_own_clients() {
    let mut h = standard().await;
    let manager = h.waw_manager.clone();
    let plan = plan(&mut h, &manager, InvitationChannel::Email).await.expect("plan");
    assert_eq!((plan.first_purchase, plan.annual), (2, 3));
    assert!(plan.invitations.iter().all(|i| invitation(i).branch_id == "WAW"));

    let refused = h
        .feedback
        .plan_invitations(authorized(
            &manager,
            PlanInvitationsRequest { branch_id: "KRK".into(), ..Default::default() },
        ))
        .await
        .expect_err("another branch");
    assert_eq!(refused.code(), Code::PermissionDenied);
    let staff = h.waw_staff.clone();
    let refused =
        h.feedback.plan_invitations(authorized(&staff, PlanInvitationsRequest::default())).await.expect_err("staff");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let krk = h.krk_staff.clone();
    let listed = h.feedback.list_invitations(authorized(&krk, ListInvitationsRequest::default())).await.expect("list");
    assert!(listed.get_ref().invitations.is_empty(), "KRK sees none of WAW's invitations");
    let refused = h
        .feedback
        .list_invitations(authorized(&krk, ListInvitationsRequest { branch_id: "WAW".into(), ..Default::default() }))
        .await
        .expect_err("another branch");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let admin = h.admin.clone();
    let rest = common::plan(&mut h, &admin, InvitationChannel::Email).await.expect("the rest of the network");
    assert_eq!((rest.first_purchase, rest.annual), (1, 1));
    assert!(rest.invitations.iter().all(|i| invitation(i).branch_id == "KRK"));
    let listed = h.feedback.list_invitations(authorized(&krk, ListInvitationsRequest::default())).await.expect("list");
    assert_eq!(listed.get_ref().invitations.len(), 2);
}

#[tokio::test]
async fn an_unavailable_clients_service_is_unavailable_and_nothing_is_written() {
    let dead = dead_address().await;
    let mut h = start_with(|_, platform| platform.peers.clients = dead).await;
    let hq = h.hq.clone();
    // The general survey needs no catalogue check.
    let general = CreateSurveyVersionRequest {
        survey_id: "S-GENERAL".into(),
        name: "How are we doing?".into(),
        items: vec![item("staff", "Staff?", "staff")],
        ..Default::default()
    };
    h.feedback.create_survey_version(authorized(&hq, general)).await.expect("general survey");
    let before = h.footprint().await;
    let admin = h.admin.clone();
    let refused = plan(&mut h, &admin, InvitationChannel::Email).await.expect_err("clients down");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let product_survey = CreateSurveyVersionRequest {
        survey_id: "S-LOAN".into(),
        product_id: "P-LOAN".into(),
        name: "Loan".into(),
        items: vec![item("payout", "Payout?", "delivery")],
        ..Default::default()
    };
    let refused = h.feedback.create_survey_version(authorized(&hq, product_survey)).await.expect_err("catalogue down");
    assert_eq!(refused.code(), Code::Unavailable);
    let manual = CreateInvitationsRequest {
        request_id: "R-1".into(),
        invitations: vec![InvitationRequest {
            client_id: "C-1".into(),
            product_id: String::new(),
            channel: InvitationChannel::WebLink as i32,
        }],
    };
    let refused = h.feedback.create_invitations(authorized(&admin, manual)).await.expect_err("clients down");
    assert_eq!(refused.code(), Code::Unavailable);
    let complaint = RegisterComplaintRequest {
        request_id: "R-2".into(),
        client_id: "C-1".into(),
        description: "The card never arrived".into(),
        ..Default::default()
    };
    let refused = h.complaints.register_complaint(authorized(&admin, complaint)).await.expect_err("clients down");
    assert_eq!(refused.code(), Code::Unavailable);
    let coverage = GetCoverageRequest {
        from: day(h.days_ago(30)),
        to: day(h.today),
        dimension: CoverageDimension::Branch as i32,
        ..Default::default()
    };
    let refused = h.feedback.get_coverage(authorized(&admin, coverage)).await.expect_err("clients down");
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(h.footprint().await, before);
}

#[tokio::test]
async fn printed_forms_are_exported_once_in_batches_and_can_be_printed_again() {
    let mut h = standard().await;
    let admin = h.admin.clone();
    plan(&mut h, &admin, InvitationChannel::Email).await.expect("plan");
    let staff = h.waw_staff.clone();
    let batch = h
        .feedback
        .export_printed_forms(authorized(&staff, ExportPrintedFormsRequest::default()))
        .await
        .expect("export")
        .into_inner();
    let mut clients: Vec<&str> =
        batch.forms.iter().map(|f| f.invitation.as_ref().expect("inv").client_id.as_str()).collect();
    clients.sort();
    assert_eq!(clients, ["C-WAW-A", "C-WAW-INT"]);
    for form in &batch.forms {
        let invitation = form.invitation.as_ref().expect("invitation");
        assert_eq!(invitation.status(), InvitationStatus::Sent);
        assert_eq!(invitation.print_batch_id, batch.batch_id);
        let survey = form.survey.as_ref().expect("survey");
        assert_eq!((survey.survey_id.as_str(), survey.items.len(), survey.asks_nps), ("S-GENERAL", 2, true));
        assert!(form.link_url.starts_with("https://feedback.branchscore.local/s/"));
    }
    let nothing = h
        .feedback
        .export_printed_forms(authorized(&staff, ExportPrintedFormsRequest::default()))
        .await
        .expect("export again")
        .into_inner();
    assert!(nothing.forms.is_empty() && nothing.batch_id.is_empty());
    let reprint = ExportPrintedFormsRequest { batch_id: batch.batch_id.clone(), ..Default::default() };
    let again =
        h.feedback.export_printed_forms(authorized(&staff, reprint.clone())).await.expect("reprint").into_inner();
    assert_eq!(again.forms.len(), 2);
    let krk = h.krk_staff.clone();
    let hidden = h.feedback.export_printed_forms(authorized(&krk, reprint)).await.expect_err("another branch's batch");
    assert_eq!(hidden.code(), Code::NotFound);
    // The printed link works too: the client may answer online instead.
    let token = again.forms[0].link_url.rsplit('/').next().expect("token").to_owned();
    h.link.open_survey(OpenSurveyRequest { token }).await.expect("printed link opens");
}

async fn next_event(stream: &mut tonic::Streaming<WatchOutboxResponse>) -> OutboxEvent {
    tokio::time::timeout(Duration::from_secs(10), stream.message())
        .await
        .expect("an event within 10 s")
        .expect("stream")
        .expect("open stream")
        .event
        .expect("event")
}

#[tokio::test]
async fn the_sender_reads_deliveries_from_the_outbox_resumes_from_its_cursor_and_reports_back() {
    let mut h = standard().await;
    let admin = h.admin.clone();
    let plan = plan(&mut h, &admin, InvitationChannel::Email).await.expect("plan");
    let erp = h.erp.clone();
    let watch = WatchOutboxRequest { after_cursor: 0, topics: vec![OutboxTopic::InvitationDelivery as i32] };
    let mut stream = h.feedback.watch_outbox(authorized(&erp, watch)).await.expect("watch").into_inner();
    let mut events = Vec::new();
    for _ in 0..5 {
        events.push(next_event(&mut stream).await);
    }
    assert!(events.windows(2).all(|w| w[0].cursor < w[1].cursor), "cursors increase");
    let mut delivered = Vec::new();
    for event in &events {
        let Some(outbox_event::Payload::InvitationDelivery(delivery)) = &event.payload else { panic!("{event:?}") };
        let invitation = delivery.invitation.as_ref().expect("invitation");
        assert_eq!(invitation.channel(), InvitationChannel::Email);
        assert_eq!(event.branch_id, invitation.branch_id);
        assert!(!delivery.survey_name.is_empty());
        // The link in the event opens exactly this invitation's survey.
        let token = delivery.link_url.rsplit('/').next().expect("token").to_owned();
        let opened = h.link.open_survey(OpenSurveyRequest { token }).await.expect("opens").into_inner();
        assert_eq!(opened.survey.expect("survey").survey_id, invitation.survey_id);
        delivered.push(invitation.id.clone());
    }
    let planned_email: Vec<&str> = plan
        .invitations
        .iter()
        .map(|i| i.invitation.as_ref().expect("inv"))
        .filter(|i| i.channel() == InvitationChannel::Email)
        .map(|i| i.id.as_str())
        .collect();
    assert_eq!(delivered.len(), planned_email.len());

    // A new e-mail invitation reaches a watching sender as it commits.
    let manual = CreateInvitationsRequest {
        request_id: "R-LIVE".into(),
        invitations: vec![InvitationRequest {
            client_id: "C-WAW-B".into(),
            product_id: "P-CARD".into(),
            channel: InvitationChannel::Messenger as i32,
        }],
    };
    h.feedback.create_invitations(authorized(&admin, manual)).await.expect("manual");
    let live = next_event(&mut stream).await;
    let Some(outbox_event::Payload::InvitationDelivery(delivery)) = &live.payload else { panic!("{live:?}") };
    assert_eq!(delivery.invitation.as_ref().expect("inv").channel(), InvitationChannel::Messenger);
    drop(stream);

    // Resuming after the third event replays the fourth on, at least once.
    let resume = WatchOutboxRequest { after_cursor: events[2].cursor, topics: vec![] };
    let mut resumed = h.feedback.watch_outbox(authorized(&erp, resume)).await.expect("resume").into_inner();
    let replayed = [next_event(&mut resumed).await, next_event(&mut resumed).await, next_event(&mut resumed).await];
    assert_eq!(replayed.map(|e| e.cursor), [events[3].cursor, events[4].cursor, live.cursor]);

    // The sender reports what it delivered; the first report counts.
    let mut deliveries: Vec<Delivery> = delivered
        .iter()
        .map(|id| Delivery {
            invitation_id: id.clone(),
            outcome: DeliveryOutcome::Sent as i32,
            time: None,
            detail: String::new(),
        })
        .collect();
    deliveries[0].outcome = DeliveryOutcome::Failed as i32;
    deliveries[0].detail = "mailbox full".into();
    let printed = invitation(planned(&plan, "C-WAW-A", "")).id.clone();
    deliveries.push(Delivery {
        invitation_id: printed.clone(),
        outcome: DeliveryOutcome::Sent as i32,
        time: None,
        detail: String::new(),
    });
    let reply = h
        .feedback
        .record_deliveries(authorized(&erp, RecordDeliveriesRequest { deliveries: deliveries.clone() }))
        .await
        .expect("deliveries")
        .into_inner();
    assert_eq!((reply.recorded, reply.repeated), (5, 0));
    assert_eq!(reply.unknown_invitation_ids, [printed], "a printed form is not the sender's to report");
    let again = h
        .feedback
        .record_deliveries(authorized(&erp, RecordDeliveriesRequest { deliveries }))
        .await
        .expect("again")
        .into_inner();
    assert_eq!((again.recorded, again.repeated), (0, 5));
    let staff = h.waw_staff.clone();
    let refused = h
        .feedback
        .record_deliveries(authorized(&staff, RecordDeliveriesRequest { deliveries: vec![] }))
        .await
        .expect_err("staff do not deliver");
    assert_eq!(refused.code(), Code::PermissionDenied);

    let by_status = |status: InvitationStatus| ListInvitationsRequest { status: status as i32, ..Default::default() };
    let failed =
        h.feedback.list_invitations(authorized(&admin, by_status(InvitationStatus::Failed))).await.expect("failed");
    assert_eq!(failed.get_ref().invitations.len(), 1);
    let opened =
        h.feedback.list_invitations(authorized(&admin, by_status(InvitationStatus::Opened))).await.expect("opened");
    assert_eq!(opened.get_ref().invitations.len(), 4, "opened through their links above");
    assert!(opened.get_ref().invitations.iter().all(|i| i.send_time.is_some()));
}

#[tokio::test]
async fn manual_invitations_are_idempotent_by_request_id_and_checked_against_the_client_base() {
    let mut h = standard().await;
    let staff = h.waw_staff.clone();
    let request = CreateInvitationsRequest {
        request_id: "COUNTER-1".into(),
        invitations: vec![
            InvitationRequest {
                client_id: "C-WAW-B".into(),
                product_id: String::new(),
                channel: InvitationChannel::WebLink as i32,
            },
            InvitationRequest {
                client_id: "C-WAW-B".into(),
                product_id: "P-CARD".into(),
                channel: InvitationChannel::WebLink as i32,
            },
        ],
    };
    let first = h.feedback.create_invitations(authorized(&staff, request.clone())).await.expect("create").into_inner();
    assert_eq!(first.invitations.len(), 2);
    assert!(first.invitations.iter().all(|i| i.link_token.len() == 43));
    assert_eq!(invitation(&first.invitations[0]).reason(), InvitationReason::Manual);
    let retry = h.feedback.create_invitations(authorized(&staff, request.clone())).await.expect("retry").into_inner();
    let ids =
        |r: &CreateInvitationsResponse| r.invitations.iter().map(|i| invitation(i).id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&retry), ids(&first));
    assert_eq!(h.count("invitations").await, 2);
    let manager = h.waw_manager.clone();
    let stolen = h.feedback.create_invitations(authorized(&manager, request)).await.expect_err("someone else's id");
    assert_eq!(stolen.code(), Code::AlreadyExists);

    let before = h.footprint().await;
    let krk = h.krk_staff.clone();
    let foreign = CreateInvitationsRequest {
        request_id: "COUNTER-2".into(),
        invitations: vec![
            InvitationRequest {
                client_id: "C-KRK-1".into(),
                product_id: String::new(),
                channel: InvitationChannel::Email as i32,
            },
            InvitationRequest {
                client_id: "C-WAW-B".into(),
                product_id: "P-NONE".into(),
                channel: InvitationChannel::Email as i32,
            },
        ],
    };
    let refused = h.feedback.create_invitations(authorized(&krk, foreign)).await.expect_err("invalid");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused), ["invitations[1].client_id", "invitations[1].product_id"]);
    let malformed = CreateInvitationsRequest {
        request_id: "bad id".into(),
        invitations: vec![InvitationRequest { client_id: String::new(), product_id: String::new(), channel: 0 }],
    };
    let refused = h.feedback.create_invitations(authorized(&staff, malformed)).await.expect_err("malformed");
    assert_eq!(violations(&refused), ["request_id", "invitations[0].client_id", "invitations[0].channel"]);
    assert_eq!(h.footprint().await, before);
}
