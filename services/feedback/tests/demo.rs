//! The demo the `branchscore demo` command runs, against the standard network.
use branchscore_feedback::demo::{self, DemoTokens};

mod common;
use common::*;

#[tokio::test]
async fn the_demo_invites_answers_and_reports_through_the_public_api() {
    let mut h = start().await;
    seed_network(&mut h, &standard_clients(), &standard_purchases()).await;
    let tokens = DemoTokens { head_office: h.hq.clone(), erp: h.erp.clone() };
    let feedback = branchscore_testkit::channel(h.addr).await;
    let clients = branchscore_testkit::channel(h.clients_addr).await;
    let summary = demo::run(feedback, clients, &tokens, h.today, 42).await.expect("demo runs");

    assert_eq!((summary.planned.invitations.len(), summary.planned.annual, summary.planned.first_purchase), (7, 4, 3));
    assert!(summary.planned.skipped.is_empty(), "a survey for every product: {:?}", summary.planned.skipped);
    assert_eq!((summary.delivered, summary.printed), (5, 2));
    let invited: usize = summary.answered_by_class.values().map(|(invited, _)| invited).sum();
    let answered: usize = summary.answered_by_class.values().map(|(_, answered)| answered).sum();
    assert_eq!(invited, 7);
    assert_eq!(h.count("responses").await, answered as i64);
    assert_eq!(summary.satisfaction.responses, answered as i64);
    let total = &summary.coverage.totals[0];
    assert_eq!(total.clients, 6);
    assert!(total.responding_clients <= answered as i64);
    let open: usize = summary.open_complaints.values().sum();
    assert_eq!(h.count("complaints").await, open as i64);
    let printed = summary.to_string();
    for expected in ["invitations planned", "coverage over the last 12 months", "NPS", "open complaints"] {
        assert!(printed.contains(expected), "{printed}");
    }
    println!("{printed}");
}
