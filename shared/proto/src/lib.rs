//! Generated code for every branchscore gRPC API, plus small conversions
//! between the wire types and the Rust types the services use.

pub mod common {
    pub mod v1 {
        tonic::include_proto!("branchscore.common.v1");
    }
}

pub mod clients {
    pub mod v1 {
        tonic::include_proto!("branchscore.clients.v1");
    }
}

pub mod pipeline {
    pub mod v1 {
        tonic::include_proto!("branchscore.pipeline.v1");
    }
}

pub mod feedback {
    pub mod v1 {
        tonic::include_proto!("branchscore.feedback.v1");
    }
}

pub mod kpi {
    pub mod v1 {
        tonic::include_proto!("branchscore.kpi.v1");
    }
}

pub mod gateway {
    pub mod v1 {
        tonic::include_proto!("branchscore.gateway.v1");
    }
}

pub mod reporting {
    pub mod v1 {
        tonic::include_proto!("branchscore.reporting.v1");
    }
}

pub mod convert;

/// Descriptor set of every branchscore package, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("branchscore_descriptor");
