//! `ComplaintService`: authenticate, then the rules in `complaints`.
use crate::Feedback;
use crate::complaints;
use branchscore_platform::Principal;
use branchscore_platform::client::CallCredentials;
use branchscore_proto::feedback::v1::complaint_service_server::ComplaintService;
use branchscore_proto::feedback::v1::*;
use tonic::{Request, Response, Status};

/// The complaint service.
#[derive(Debug, Clone)]
pub struct ComplaintApi {
    feedback: Feedback,
}

impl ComplaintApi {
    pub fn new(feedback: Feedback) -> Self {
        ComplaintApi { feedback }
    }
}

#[tonic::async_trait]
impl ComplaintService for ComplaintApi {
    async fn register_complaint(
        &self,
        request: Request<RegisterComplaintRequest>,
    ) -> Result<Response<RegisterComplaintResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        let credentials = CallCredentials::forwarded(&request);
        Ok(Response::new(complaints::register(&self.feedback, &principal, &credentials, request.into_inner()).await?))
    }

    async fn get_complaint(
        &self,
        request: Request<GetComplaintRequest>,
    ) -> Result<Response<GetComplaintResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(complaints::get(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn list_complaints(
        &self,
        request: Request<ListComplaintsRequest>,
    ) -> Result<Response<ListComplaintsResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(complaints::list(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn assign_complaint(
        &self,
        request: Request<AssignComplaintRequest>,
    ) -> Result<Response<AssignComplaintResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(complaints::assign(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn advance_complaint(
        &self,
        request: Request<AdvanceComplaintRequest>,
    ) -> Result<Response<AdvanceComplaintResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(complaints::advance(&self.feedback, &principal, request.into_inner()).await?))
    }

    async fn get_complaint_aging(
        &self,
        request: Request<GetComplaintAgingRequest>,
    ) -> Result<Response<GetComplaintAgingResponse>, Status> {
        let principal = Principal::of(&request)?.clone();
        Ok(Response::new(complaints::aging(&self.feedback, &principal, request.into_inner()).await?))
    }
}
