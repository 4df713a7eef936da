//! The facts behind KPIs, asked from the services that own them with the
//! caller's token (so their branch scope applies), each call under the peer
//! deadline. A source that cannot answer makes the whole request UNAVAILABLE:
//! a bonus is never computed from part of the facts.
use branchscore_platform::client::{self, CallCredentials, RetryPolicy};
use branchscore_platform::config::PeersConfig;
use branchscore_platform::{AppError, AppResult};
use branchscore_proto::clients::v1::clients_service_client::ClientsServiceClient;
use branchscore_proto::clients::v1::scoring_service_client::ScoringServiceClient;
use branchscore_proto::clients::v1::{ClientFacts, GetClientFactsRequest, ListEmployeesRequest, SalesFact};
use branchscore_proto::common::v1::{Date, EmployeeRole, FactSource, Granularity};
use branchscore_proto::feedback::v1::feedback_service_client::FeedbackServiceClient;
use branchscore_proto::feedback::v1::{FeedbackFacts, GetFeedbackFactsRequest};
use branchscore_proto::pipeline::v1::pipeline_service_client::PipelineServiceClient;
use branchscore_proto::pipeline::v1::{GetPipelineFactsRequest, PipelineFacts};
use branchscore_scoring::kpi::{FactSheet, facts as key};
use chrono::{Datelike, NaiveDate};
use std::collections::BTreeMap;
use tonic::transport::Channel;
use tonic::{Code, Status};

/// A member of staff as the clients service records them.
#[derive(Debug, Clone, PartialEq)]
pub struct Employee {
    pub id: String,
    pub branch_id: String,
    pub full_name: String,
    pub role: EmployeeRole,
    /// Empty when the employee has no team lead.
    pub team_lead_id: String,
    pub active: bool,
}

/// One record behind a fact, named by the owning service's field (`fact`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub fact: String,
    pub kind: String,
    pub id: String,
}

/// Everything one employee did in a period, as the three services count it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmployeeFacts {
    pub sheet: FactSheet,
    pub sources: Vec<Source>,
}

/// Sales of one employee in one calendar month.
#[derive(Debug, Clone, PartialEq)]
pub struct MonthlySales {
    pub employee_id: String,
    pub branch_id: String,
    /// The month's first day.
    pub month: NaiveDate,
    pub amount: i64,
}

/// Channels to the fact sources.
#[derive(Debug, Clone)]
pub struct Upstream {
    clients: Channel,
    pipeline: Channel,
    feedback: Channel,
    retry: RetryPolicy,
}

/// The owning service's field names whose sources stand behind a fact key.
pub fn source_fields(fact: &str) -> &'static [&'static str] {
    match fact {
        key::NEW_CLIENTS => &["new_clients"],
        key::LOST_CLIENTS => &["lost_clients"],
        key::RESTORED_CLIENTS => &["restored_clients"],
        key::CLIENTS_AT_INITIAL_STAGE => &["clients_at_initial_stage"],
        key::PRIMARY_SALES_DOCUMENTS | key::PRIMARY_SALES_AMOUNT => &["primary_sales"],
        key::REPEAT_SALES_DOCUMENTS | key::REPEAT_SALES_AMOUNT => &["repeat_sales"],
        key::NEW_DIRECTION_SALES_DOCUMENTS | key::NEW_DIRECTION_SALES_AMOUNT => &["new_direction_sales"],
        key::SALES_AMOUNT => &["primary_sales", "repeat_sales", "new_direction_sales"],
        key::CLASS_UPGRADES => &["class_upgrades"],
        key::CLASS_DOWNGRADES => &["class_downgrades"],
        key::LEADS => &["leads"],
        key::CONVERTED_LEADS => &["converted_leads"],
        key::ANSWERED_LEADS | key::RESPONSE_SECONDS_TOTAL => &["answered_leads"],
        key::SLA_BREACHES => &["sla_breaches"],
        key::OVERDUE_CONTROL_POINTS => &["overdue_control_points"],
        key::DEALS_WON | key::WON_AMOUNT => &["deals_won"],
        key::CLIENTS_WITH_PURCHASES => &["clients"],
        key::RESPONDING_CLIENTS => &["responding_clients"],
        key::NPS_ANSWERS | key::NPS_POINTS_TOTAL => &["nps_answers"],
        key::CSAT_ANSWERS | key::CSAT_POINTS_TOTAL => &["csat_answers"],
        key::QUALITY_SCORED | key::QUALITY_POINTS_TOTAL => &["quality_score"],
        _ => &[],
    }
}

fn unavailable(service: &str, status: Status) -> AppError {
    match status.code() {
        Code::PermissionDenied => AppError::permission_denied(status.message().to_owned()),
        Code::Unauthenticated => AppError::unauthenticated(status.message().to_owned()),
        _ => AppError::unavailable(format!("the {service} service cannot give its facts: {}", status.message())),
    }
}

fn amount(sales: Option<&SalesFact>) -> (f64, f64) {
    sales.map_or((0.0, 0.0), |s| (s.documents as f64, s.amount.as_ref().map_or(0.0, |m| m.minor_units as f64)))
}

fn sources(list: &[FactSource]) -> impl Iterator<Item = Source> + '_ {
    list.iter().map(|s| Source { fact: s.fact.clone(), kind: s.kind.clone(), id: s.id.clone() })
}

impl EmployeeFacts {
    fn add_clients(&mut self, row: &ClientFacts) {
        let sheet = &mut self.sheet;
        sheet.add(key::NEW_CLIENTS, row.new_clients as f64);
        sheet.add(key::LOST_CLIENTS, row.lost_clients as f64);
        sheet.add(key::RESTORED_CLIENTS, row.restored_clients as f64);
        sheet.add(key::CLIENTS_AT_INITIAL_STAGE, row.clients_at_initial_stage as f64);
        sheet.add(key::CLASS_UPGRADES, row.class_upgrades as f64);
        sheet.add(key::CLASS_DOWNGRADES, row.class_downgrades as f64);
        let kinds = [
            (key::PRIMARY_SALES_DOCUMENTS, key::PRIMARY_SALES_AMOUNT, row.primary_sales.as_ref()),
            (key::REPEAT_SALES_DOCUMENTS, key::REPEAT_SALES_AMOUNT, row.repeat_sales.as_ref()),
            (key::NEW_DIRECTION_SALES_DOCUMENTS, key::NEW_DIRECTION_SALES_AMOUNT, row.new_direction_sales.as_ref()),
        ];
        for (documents_key, amount_key, sales) in kinds {
            let (documents, sum) = amount(sales);
            sheet.add(documents_key, documents);
            sheet.add(amount_key, sum);
            sheet.add(key::SALES_AMOUNT, sum);
        }
        self.sources.extend(sources(&row.sources));
    }

    fn add_pipeline(&mut self, row: &PipelineFacts) {
        let sheet = &mut self.sheet;
        sheet.add(key::LEADS, row.leads as f64);
        sheet.add(key::CONVERTED_LEADS, row.converted_leads as f64);
        sheet.add(key::ANSWERED_LEADS, row.answered_leads as f64);
        sheet.add(key::RESPONSE_SECONDS_TOTAL, row.average_response_seconds * row.answered_leads as f64);
        sheet.add(key::SLA_BREACHES, row.sla_breaches as f64);
        sheet.add(key::OVERDUE_CONTROL_POINTS, row.overdue_control_points as f64);
        sheet.add(key::DEALS_WON, row.deals_won as f64);
        sheet.add(key::WON_AMOUNT, row.won_amount.as_ref().map_or(0.0, |m| m.minor_units as f64));
        self.sources.extend(sources(&row.sources));
    }

    fn add_feedback(&mut self, row: &FeedbackFacts) {
        let sheet = &mut self.sheet;
        sheet.add(key::CLIENTS_WITH_PURCHASES, row.clients as f64);
        sheet.add(key::RESPONDING_CLIENTS, row.responding_clients as f64);
        if let Some(nps) = row.nps {
            sheet.add(key::NPS_ANSWERS, row.nps_answers as f64);
            sheet.add(key::NPS_POINTS_TOTAL, nps * row.nps_answers as f64);
        }
        if let Some(csat) = row.csat_percent {
            sheet.add(key::CSAT_ANSWERS, row.csat_answers as f64);
            sheet.add(key::CSAT_POINTS_TOTAL, csat * row.csat_answers as f64);
        }
        if let Some(quality) = row.quality_score {
            sheet.add(key::QUALITY_SCORED, 1.0);
            sheet.add(key::QUALITY_POINTS_TOTAL, quality);
        }
        self.sources.extend(sources(&row.sources));
    }
}

impl Upstream {
    pub fn new(peers: &PeersConfig) -> anyhow::Result<Self> {
        Ok(Upstream {
            clients: client::channel(&peers.clients, &peers.client)?,
            pipeline: client::channel(&peers.pipeline, &peers.client)?,
            feedback: client::channel(&peers.feedback, &peers.client)?,
            retry: RetryPolicy::new(&peers.client),
        })
    }

    /// Every employee of the caller's branches.
    pub async fn roster(&self, credentials: &CallCredentials) -> AppResult<Vec<Employee>> {
        let clients = ClientsServiceClient::with_interceptor(
            self.clients.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let reply = self
            .retry
            .call_idempotent(|| {
                let mut clients = clients.clone();
                async move { clients.list_employees(ListEmployeesRequest::default()).await }
            })
            .await
            .map_err(|status| unavailable("clients", status))?;
        Ok(reply
            .into_inner()
            .employees
            .into_iter()
            .map(|e| Employee {
                role: e.role(),
                id: e.id,
                branch_id: e.branch_id,
                full_name: e.full_name,
                team_lead_id: e.team_lead_id,
                active: e.active,
            })
            .collect())
    }

    /// Each employee's facts over `[from, to]` from all three services, with
    /// the records behind them; employees of rows without an owner are skipped.
    pub async fn facts(
        &self,
        credentials: &CallCredentials,
        from: NaiveDate,
        to: NaiveDate,
    ) -> AppResult<BTreeMap<String, EmployeeFacts>> {
        let (from, to) = (Some(Date::from(from)), Some(Date::from(to)));
        let clients = ScoringServiceClient::with_interceptor(
            self.clients.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let pipeline = PipelineServiceClient::with_interceptor(
            self.pipeline.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let feedback = FeedbackServiceClient::with_interceptor(
            self.feedback.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let client_facts = self.retry.call_idempotent(|| {
            let mut clients = clients.clone();
            let request = GetClientFactsRequest { from, to, include_sources: true, ..Default::default() };
            async move { clients.get_client_facts(request).await }
        });
        let pipeline_facts = self.retry.call_idempotent(|| {
            let mut pipeline = pipeline.clone();
            let request = GetPipelineFactsRequest { from, to, include_sources: true, ..Default::default() };
            async move { pipeline.get_pipeline_facts(request).await }
        });
        let feedback_facts = self.retry.call_idempotent(|| {
            let mut feedback = feedback.clone();
            let request = GetFeedbackFactsRequest { from, to, include_sources: true, ..Default::default() };
            async move { feedback.get_feedback_facts(request).await }
        });
        let (client_facts, pipeline_facts, feedback_facts) = tokio::join!(client_facts, pipeline_facts, feedback_facts);
        let client_facts = client_facts.map_err(|s| unavailable("clients", s))?.into_inner().facts;
        let pipeline_facts = pipeline_facts.map_err(|s| unavailable("pipeline", s))?.into_inner().facts;
        let feedback_facts = feedback_facts.map_err(|s| unavailable("feedback", s))?.into_inner().facts;

        let mut by_employee: BTreeMap<String, EmployeeFacts> = BTreeMap::new();
        for row in client_facts.iter().filter(|r| !r.employee_id.is_empty()) {
            by_employee.entry(row.employee_id.clone()).or_default().add_clients(row);
        }
        for row in pipeline_facts.iter().filter(|r| !r.employee_id.is_empty()) {
            by_employee.entry(row.employee_id.clone()).or_default().add_pipeline(row);
        }
        for row in feedback_facts.iter().filter(|r| !r.employee_id.is_empty()) {
            by_employee.entry(row.employee_id.clone()).or_default().add_feedback(row);
        }
        Ok(by_employee)
    }

    /// Sales per employee and month over `[from, to]`, as the clients service
    /// counts them (sale lines; returns excluded).
    pub async fn monthly_sales(
        &self,
        credentials: &CallCredentials,
        from: NaiveDate,
        to: NaiveDate,
    ) -> AppResult<Vec<MonthlySales>> {
        let clients = ScoringServiceClient::with_interceptor(
            self.clients.clone(),
            credentials.with_deadline(self.retry.deadline()),
        );
        let reply = self
            .retry
            .call_idempotent(|| {
                let mut clients = clients.clone();
                let request = GetClientFactsRequest {
                    from: Some(from.into()),
                    to: Some(to.into()),
                    granularity: Granularity::Month as i32,
                    ..Default::default()
                };
                async move { clients.get_client_facts(request).await }
            })
            .await
            .map_err(|s| unavailable("clients", s))?;
        let mut sales = Vec::new();
        for row in reply.into_inner().facts {
            let month = row
                .period_start
                .as_ref()
                .and_then(Date::to_naive)
                .and_then(|d| d.with_day(1))
                .ok_or_else(|| AppError::unavailable("the clients service sent a facts row without a period"))?;
            let amount = [&row.primary_sales, &row.repeat_sales, &row.new_direction_sales]
                .into_iter()
                .map(|s| s.as_ref().and_then(|s| s.amount.as_ref()).map_or(0, |m| m.minor_units))
                .sum();
            sales.push(MonthlySales { employee_id: row.employee_id, branch_id: row.branch_id, month, amount });
        }
        Ok(sales)
    }
}
