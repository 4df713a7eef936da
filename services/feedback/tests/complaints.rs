//! Complaints over real gRPC and Postgres: every trigger, the workflow's
//! allowed and refused transitions with their history, escalation of
//! overdue complaints, aging, and branch scope.
use branchscore_proto::feedback::v1::*;
use branchscore_testkit::{authorized, eventually};
use std::collections::HashMap;
use std::time::Duration;
use tonic::Code;

mod common;
use common::*;

fn id(plan: &PlanInvitationsResponse, client: &str, product: &str) -> String {
    planned(plan, client, product).invitation.as_ref().expect("inv").id.clone()
}

async fn all_complaints(h: &mut Harness) -> Vec<Complaint> {
    let admin = h.admin.clone();
    h.complaints
        .list_complaints(authorized(&admin, ListComplaintsRequest::default()))
        .await
        .expect("list")
        .into_inner()
        .complaints
}

async fn history(h: &mut Harness, token: &str, complaint_id: &str) -> Vec<ComplaintEvent> {
    h.complaints
        .get_complaint(authorized(token, GetComplaintRequest { complaint_id: complaint_id.into() }))
        .await
        .expect("get")
        .into_inner()
        .history
}

#[tokio::test]
async fn every_trigger_opens_the_complaint_it_should_and_high_answers_open_none() {
    let mut h = standard().await;
    let admin = h.admin.clone();
    let plan = plan(&mut h, &admin, InvitationChannel::Email).await.expect("plan");
    let record = |external: &str, invitation: String, answers: Answers| ImportedResponse {
        external_id: external.into(),
        invitation_id: invitation,
        answered_on: day(h.today),
        answers: Some(answers),
    };
    let batch = vec![
        record("E-1", id(&plan, "C-WAW-A", ""), answers(&[("staff", 2), ("speed", 5)], Some(9), Some(4))),
        record("E-2", id(&plan, "C-WAW-B", ""), answers(&[("staff", 5), ("speed", 3)], Some(9), Some(4))),
        record("E-3", id(&plan, "C-WAW-INT", ""), answers(&[("staff", 4), ("speed", 5)], Some(6), Some(4))),
        record("E-4", id(&plan, "C-KRK-1", ""), answers(&[("staff", 5), ("speed", 5)], Some(9), Some(1))),
        record(
            "E-5",
            id(&plan, "C-WAW-NEW", "P-LOAN"),
            answers(&[("paperwork", 4), ("payout", 5), ("payment", 4)], Some(7), None),
        ),
        record("E-6", id(&plan, "C-WAW-NEW", "P-CARD"), answers(&[("look", 5), ("delivery", 4)], None, Some(3))),
        record("E-7", id(&plan, "C-KRK-NEW", "P-LOAN"), answers(&[("paperwork", 1), ("payout", 3)], Some(2), None)),
    ];
    let erp = h.erp.clone();
    let reply = h
        .feedback
        .import_responses(authorized(&erp, ImportResponsesRequest { responses: batch }))
        .await
        .expect("import")
        .into_inner();
    assert_eq!((reply.accepted, reply.complaints_opened), (7, 6));

    let complaints = all_complaints(&mut h).await;
    let by_client: HashMap<(&str, &str), &Complaint> =
        complaints.iter().map(|c| ((c.client_id.as_str(), c.product_id.as_str()), c)).collect();
    let source = |client: &str, product: &str| by_client.get(&(client, product)).map(|c| c.source());
    assert_eq!(source("C-WAW-A", ""), Some(ComplaintSource::Explicit));
    assert_eq!(source("C-WAW-B", ""), Some(ComplaintSource::Hidden));
    assert_eq!(source("C-WAW-INT", ""), Some(ComplaintSource::NpsDetractor));
    assert_eq!(source("C-KRK-1", ""), Some(ComplaintSource::Explicit), "a CSAT of 1 is explicit");
    assert_eq!(source("C-WAW-NEW", "P-LOAN"), None, "answers of 4 and up and a passive NPS open nothing");
    assert_eq!(source("C-WAW-NEW", "P-CARD"), Some(ComplaintSource::Hidden), "a CSAT of 3 is hidden");
    let worst = by_client[&("C-KRK-NEW", "P-LOAN")];
    assert_eq!(worst.source(), ComplaintSource::Explicit);
    assert_eq!(worst.description, "Low answers: paperwork 1/5; payout 3/5; NPS 2/10");
    assert_eq!((worst.branch_id.as_str(), worst.employee_id.as_str()), ("KRK", "E-KRK"));

    for complaint in &complaints {
        assert_eq!(complaint.state(), ComplaintState::Registered);
        assert!(complaint.owner.is_empty() && !complaint.overdue && complaint.escalation_level == 0);
        let (created, due) = (complaint.create_time.expect("created"), complaint.due_time.expect("due"));
        assert_eq!(due.seconds - created.seconds, 86_400, "one day to start investigating");
        let events = history(&mut h, &admin, &complaint.id).await;
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind(), events[0].to_state(), events[0].actor.as_str()),
            (ComplaintEventKind::Opened, ComplaintState::Registered, "system")
        );
    }
    // The response names its complaint.
    let responses = h
        .feedback
        .list_responses(authorized(&admin, ListResponsesRequest { client_id: "C-WAW-A".into(), ..Default::default() }))
        .await
        .expect("responses")
        .into_inner()
        .responses;
    assert_eq!(responses[0].complaint_id, by_client[&("C-WAW-A", "")].id);

    // Each opening is announced in the outbox.
    let watch = WatchOutboxRequest { after_cursor: 0, topics: vec![OutboxTopic::Complaint as i32] };
    let mut stream = h.feedback.watch_outbox(authorized(&erp, watch)).await.expect("watch").into_inner();
    for _ in 0..6 {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("in time")
            .expect("ok")
            .expect("event");
        let Some(outbox_event::Payload::ComplaintChange(change)) = event.event.expect("event").payload else {
            panic!("payload")
        };
        assert_eq!(change.event.expect("event").kind(), ComplaintEventKind::Opened);
    }
}

#[tokio::test]
async fn nps_detractors_open_no_complaint_when_configured_off() {
    let mut h = start_with(|config, _| config.complaints.nps_detractors_open = false).await;
    seed_network(&mut h, &standard_clients(), &standard_purchases()).await;
    seed_surveys(&mut h).await;
    let admin = h.admin.clone();
    let plan = plan(&mut h, &admin, InvitationChannel::Email).await.expect("plan");
    let staff = h.waw_staff.clone();
    let detractor = RecordResponseRequest {
        invitation_id: id(&plan, "C-WAW-INT", ""),
        answers: Some(answers(&[("staff", 4)], Some(0), Some(5))),
        ..Default::default()
    };
    let stored = h.feedback.record_response(authorized(&staff, detractor)).await.expect("record").into_inner();
    assert!(stored.response.expect("response").complaint_id.is_empty());
    let low = RecordResponseRequest {
        invitation_id: id(&plan, "C-WAW-B", ""),
        answers: Some(answers(&[("staff", 2)], Some(0), None)),
        ..Default::default()
    };
    let stored = h.feedback.record_response(authorized(&staff, low)).await.expect("record").into_inner();
    assert!(!stored.response.expect("response").complaint_id.is_empty());
    let complaints = all_complaints(&mut h).await;
    assert_eq!(complaints.len(), 1);
    assert_eq!(complaints[0].source(), ComplaintSource::Explicit);
}

fn advance(id: &str, to: ComplaintState) -> AdvanceComplaintRequest {
    AdvanceComplaintRequest { complaint_id: id.into(), to_state: to as i32, ..Default::default() }
}

#[tokio::test]
async fn the_workflow_moves_one_step_at_a_time_with_what_each_state_needs() {
    let mut h = standard().await;
    let staff = h.waw_staff.clone();
    let register = RegisterComplaintRequest {
        request_id: "CALL-77".into(),
        client_id: "C-WAW-B".into(),
        product_id: "P-CARD".into(),
        description: "The card arrived damaged".into(),
        owner: String::new(),
    };
    let complaint = h.complaints.register_complaint(authorized(&staff, register)).await.expect("register").into_inner();
    let complaint = complaint.complaint.expect("complaint");
    assert_eq!(complaint.source(), ComplaintSource::Direct);
    assert_eq!((complaint.branch_id.as_str(), complaint.employee_id.as_str()), ("WAW", "E-WAW"));
    let id = complaint.id.clone();

    let client = h.complaints.clone();
    let refuse = |request: AdvanceComplaintRequest, why: &'static str| {
        let mut complaints = client.clone();
        let staff = staff.clone();
        async move {
            let refused = complaints.advance_complaint(authorized(&staff, request)).await.expect_err(why);
            assert_eq!(refused.code(), Code::FailedPrecondition, "{why}: {refused:?}");
            refused.message().to_owned()
        }
    };
    assert!(refuse(advance(&id, ComplaintState::Investigating), "no owner").await.contains("assign an owner"));
    assert!(
        refuse(advance(&id, ComplaintState::CauseIdentified), "skips a state")
            .await
            .contains("can only move to investigating")
    );
    assert!(refuse(advance(&id, ComplaintState::Closed), "skips to the end").await.contains("investigating"));
    assert_eq!(history(&mut h, &staff, &id).await.len(), 1, "refusals leave no history");

    let assign =
        AssignComplaintRequest { complaint_id: id.clone(), owner: "quality.anna".into(), note: "Yours".into() };
    let assigned = h.complaints.assign_complaint(authorized(&staff, assign)).await.expect("assign").into_inner();
    assert_eq!(assigned.complaint.expect("complaint").owner, "quality.anna");
    let step = |request: AdvanceComplaintRequest| {
        let mut complaints = client.clone();
        let staff = staff.clone();
        async move {
            complaints
                .advance_complaint(authorized(&staff, request))
                .await
                .expect("allowed")
                .into_inner()
                .complaint
                .expect("c")
        }
    };
    let investigating = step(advance(&id, ComplaintState::Investigating)).await;
    assert_eq!(investigating.state(), ComplaintState::Investigating);
    let due = investigating.due_time.expect("due").seconds - chrono::Utc::now().timestamp();
    assert!((3 * 86_400 - 60..=3 * 86_400).contains(&due), "three days to investigate, got {due} s");

    let no_cause = AdvanceComplaintRequest { cause: "courier".into(), ..advance(&id, ComplaintState::CauseIdentified) };
    assert!(refuse(no_cause, "no category").await.contains("root-cause category"));
    let identified = step(AdvanceComplaintRequest {
        root_cause_category: RootCauseCategory::Delivery as i32,
        cause: "The courier drops parcels at the depot".into(),
        ..advance(&id, ComplaintState::CauseIdentified)
    })
    .await;
    assert_eq!(
        (identified.root_cause_category(), identified.cause.as_str()),
        (RootCauseCategory::Delivery, "The courier drops parcels at the depot")
    );
    refuse(advance(&id, ComplaintState::Investigating), "going back").await;
    assert!(refuse(advance(&id, ComplaintState::CauseRemoved), "no note").await.contains("note what was done"));
    step(AdvanceComplaintRequest {
        note: "Card re-issued and sent by another courier".into(),
        ..advance(&id, ComplaintState::CauseRemoved)
    })
    .await;
    step(AdvanceComplaintRequest {
        note: "Cards now ship in padded envelopes".into(),
        ..advance(&id, ComplaintState::ProcessFixed)
    })
    .await;
    let untold = AdvanceComplaintRequest { note: "Done".into(), ..advance(&id, ComplaintState::Closed) };
    assert!(refuse(untold, "client not told").await.contains("tell the client"));
    let closed = step(AdvanceComplaintRequest {
        note: "Client called, new card works".into(),
        client_informed: true,
        ..advance(&id, ComplaintState::Closed)
    })
    .await;
    assert_eq!(closed.state(), ComplaintState::Closed);
    assert!(closed.close_time.is_some() && closed.due_time.is_none() && !closed.overdue && closed.client_informed);
    assert!(refuse(advance(&id, ComplaintState::Registered), "closed").await.contains("closed"));
    let reassign = AssignComplaintRequest { complaint_id: id.clone(), owner: "someone".into(), note: String::new() };
    let refused = h.complaints.assign_complaint(authorized(&staff, reassign)).await.expect_err("closed");
    assert_eq!(refused.code(), Code::FailedPrecondition);

    let events = history(&mut h, &staff, &id).await;
    let trail: Vec<(i32, ComplaintEventKind, ComplaintState, ComplaintState)> =
        events.iter().map(|e| (e.sequence, e.kind(), e.from_state(), e.to_state())).collect();
    use ComplaintEventKind::{Advanced, Assigned, Opened};
    use ComplaintState::*;
    assert_eq!(
        trail,
        [
            (1, Opened, Unspecified, Registered),
            (2, Assigned, Registered, Registered),
            (3, Advanced, Registered, Investigating),
            (4, Advanced, Investigating, CauseIdentified),
            (5, Advanced, CauseIdentified, CauseRemoved),
            (6, Advanced, CauseRemoved, ProcessFixed),
            (7, Advanced, ProcessFixed, Closed),
        ]
    );
    assert!(events.iter().all(|e| e.actor == "test-branch_staff"));
    assert_eq!(events[6].note, "Client called, new card works");

    // Malformed requests name their fields; the ERP does not work complaints.
    let before = h.footprint().await;
    let malformed = AdvanceComplaintRequest {
        complaint_id: "nope".into(),
        to_state: 0,
        root_cause_category: 99,
        ..Default::default()
    };
    let refused = h.complaints.advance_complaint(authorized(&staff, malformed)).await.expect_err("malformed");
    assert_eq!(violations(&refused), ["complaint_id", "to_state", "root_cause_category"]);
    let erp = h.erp.clone();
    let refused = h.complaints.advance_complaint(authorized(&erp, advance(&id, Closed))).await.expect_err("erp");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(h.footprint().await, before);
}

#[tokio::test]
async fn direct_complaints_are_idempotent_by_request_id_and_stay_in_their_branch() {
    let mut h = standard().await;
    let staff = h.waw_staff.clone();
    let register = RegisterComplaintRequest {
        request_id: "CALL-1".into(),
        client_id: "C-WAW-B".into(),
        product_id: String::new(),
        description: "Nobody called back".into(),
        owner: "anna".into(),
    };
    let first =
        h.complaints.register_complaint(authorized(&staff, register.clone())).await.expect("register").into_inner();
    let retry =
        h.complaints.register_complaint(authorized(&staff, register.clone())).await.expect("retry").into_inner();
    let first = first.complaint.expect("complaint");
    assert_eq!(retry.complaint.expect("complaint").id, first.id);
    assert_eq!(first.owner, "anna");
    assert_eq!(h.count("complaints").await, 1);

    let before = h.footprint().await;
    let krk = h.krk_staff.clone();
    let refused =
        h.complaints.register_complaint(authorized(&krk, register.clone())).await.expect_err("their request id");
    assert_eq!(refused.code(), Code::AlreadyExists);
    let foreign = RegisterComplaintRequest { request_id: "CALL-2".into(), ..register.clone() };
    let refused = h.complaints.register_complaint(authorized(&krk, foreign)).await.expect_err("a WAW client");
    assert_eq!(violations(&refused), ["client_id"]);
    let malformed = RegisterComplaintRequest {
        request_id: "a b".into(),
        client_id: String::new(),
        description: " ".into(),
        ..register
    };
    let refused = h.complaints.register_complaint(authorized(&krk, malformed)).await.expect_err("malformed");
    assert_eq!(violations(&refused), ["request_id", "client_id", "description"]);
    assert_eq!(h.footprint().await, before);

    let hidden = h
        .complaints
        .get_complaint(authorized(&krk, GetComplaintRequest { complaint_id: first.id.clone() }))
        .await
        .expect_err("another branch");
    assert_eq!(hidden.code(), Code::NotFound);
    let moved = AdvanceComplaintRequest { owner: "jan".into(), ..advance(&first.id, ComplaintState::Investigating) };
    let hidden = h.complaints.advance_complaint(authorized(&krk, moved)).await.expect_err("another branch");
    assert_eq!(hidden.code(), Code::NotFound);
    let listed = h.complaints.list_complaints(authorized(&krk, ListComplaintsRequest::default())).await.expect("list");
    assert!(listed.get_ref().complaints.is_empty());
    let refused = h
        .complaints
        .list_complaints(authorized(&krk, ListComplaintsRequest { branch_id: "WAW".into(), ..Default::default() }))
        .await
        .expect_err("another branch");
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(h.footprint().await, before);
}

#[tokio::test]
async fn an_overdue_complaint_is_escalated_each_deadline_up_to_three_times_and_aged() {
    let mut h = start_with(|config, _| {
        config.complaints.registered_ms = Duration::from_millis(400);
        config.complaints.escalation_check_ms = Duration::from_millis(50);
    })
    .await;
    seed_network(&mut h, &standard_clients(), &standard_purchases()).await;
    let staff = h.waw_staff.clone();
    let register = RegisterComplaintRequest {
        request_id: "CALL-9".into(),
        client_id: "C-WAW-A".into(),
        description: "Wrong amount on the statement".into(),
        ..Default::default()
    };
    let complaint = h.complaints.register_complaint(authorized(&staff, register)).await.expect("register").into_inner();
    let id = complaint.complaint.expect("complaint").id;
    let escalated = eventually(Duration::from_secs(20), async || {
        let got =
            h.complaints.get_complaint(authorized(&staff, GetComplaintRequest { complaint_id: id.clone() })).await;
        Some(got.expect("get").into_inner())
            .filter(|got| got.complaint.as_ref().is_some_and(|c| c.escalation_level == 3))
    });
    let Some(escalated) = escalated.await else {
        panic!("not escalated three times: {:#?}", history(&mut h, &staff, &id).await);
    };
    let complaint = escalated.complaint.expect("complaint");
    assert!(complaint.overdue);
    let levels: Vec<(ComplaintEventKind, i32, &str)> =
        escalated.history.iter().map(|e| (e.kind(), e.escalation_level, e.actor.as_str())).collect();
    use ComplaintEventKind::{Escalated, Opened};
    assert_eq!(
        levels,
        [
            (Opened, 0, "test-branch_staff"),
            (Escalated, 1, "system"),
            (Escalated, 2, "system"),
            (Escalated, 3, "system")
        ]
    );
    // Never beyond the top level.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(history(&mut h, &staff, &id).await.len(), 4);

    let overdue = h
        .complaints
        .list_complaints(authorized(&staff, ListComplaintsRequest { overdue_only: true, ..Default::default() }))
        .await
        .expect("overdue")
        .into_inner();
    assert_eq!(overdue.complaints.len(), 1);
    let aging = h
        .complaints
        .get_complaint_aging(authorized(&staff, GetComplaintAgingRequest::default()))
        .await
        .expect("aging")
        .into_inner();
    assert_eq!((aging.open, aging.overdue, aging.closed_last_90_days), (1, 1, 0));
    let bucket = &aging.buckets[0];
    assert_eq!(
        (bucket.state(), bucket.label.as_str(), bucket.complaints, bucket.overdue),
        (ComplaintState::Registered, "0-2 days", 1, 1)
    );
    assert_eq!((bucket.min_days, bucket.max_days), (0, 2));

    // Moving on restarts the clock of the new state.
    let moved = AdvanceComplaintRequest { owner: "anna".into(), ..advance(&id, ComplaintState::Investigating) };
    let moved = h.complaints.advance_complaint(authorized(&staff, moved)).await.expect("advance").into_inner();
    let moved = moved.complaint.expect("complaint");
    assert_eq!((moved.escalation_level, moved.overdue), (0, false));
    assert_eq!(h.count("outbox").await, 5, "opened, three escalations, advanced");

    let facts = GetFeedbackFactsRequest { from: day(h.today), to: day(h.today), ..Default::default() };
    let hq = h.hq.clone();
    let facts = h.feedback.get_feedback_facts(authorized(&hq, facts)).await.expect("facts").into_inner().facts;
    let anna = facts.iter().find(|f| f.employee_id == "E-WAW").expect("E-WAW's row");
    assert_eq!((anna.complaints_direct, anna.complaints_escalated, anna.complaints_closed), (1, 3, 0));
}
