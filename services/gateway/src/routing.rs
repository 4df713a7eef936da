//! Which service answers which call: every gRPC service of a package goes to
//! the peer that owns the package. The services are read from the descriptor
//! set, so a service added to a routed package is routed without a change
//! here. A package whose peer URL is empty is not routed: its calls get
//! UNIMPLEMENTED.
use branchscore_platform::config::PeersConfig;
use prost::Message;
use prost_types::FileDescriptorSet;

/// A routed gRPC service and the URL of the service process that answers it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Fully qualified, e.g. `branchscore.clients.v1.ClientsService`.
    pub service: String,
    pub url: String,
}

/// Every routed gRPC service of the branchscore APIs.
pub fn routes(peers: &PeersConfig) -> anyhow::Result<Vec<Route>> {
    let descriptors = FileDescriptorSet::decode(branchscore_proto::FILE_DESCRIPTOR_SET)?;
    Ok(descriptors
        .file
        .iter()
        .filter_map(|file| {
            let url = owner(peers, file.package()).filter(|url| !url.trim().is_empty())?;
            Some(file.service.iter().map(move |service| Route {
                service: format!("{}.{}", file.package(), service.name()),
                url: url.to_owned(),
            }))
        })
        .flatten()
        .collect())
}

/// The peer URL of the service that owns `package`; `None` for packages no
/// peer owns (shared messages, and the gateway's own API).
fn owner<'a>(peers: &'a PeersConfig, package: &str) -> Option<&'a str> {
    let url = match package {
        "branchscore.clients.v1" => &peers.clients,
        "branchscore.pipeline.v1" => &peers.pipeline,
        "branchscore.feedback.v1" => &peers.feedback,
        "branchscore.kpi.v1" => &peers.kpi,
        "branchscore.reporting.v1" => &peers.reporting,
        _ => return None,
    };
    Some(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packages_go_to_their_owners_and_empty_peers_are_not_routed() {
        let peers = PeersConfig { pipeline: String::new(), ..PeersConfig::default() };
        let routes = routes(&peers).expect("descriptor set decodes");
        let url_of =
            |service: &str| routes.iter().find(|route| route.service == service).map(|route| route.url.as_str());
        assert_eq!(url_of("branchscore.clients.v1.ClientsService"), Some(peers.clients.as_str()));
        assert_eq!(url_of("branchscore.clients.v1.ScoringService"), Some(peers.clients.as_str()));
        assert_eq!(url_of("branchscore.feedback.v1.SurveyLinkService"), Some(peers.feedback.as_str()));
        assert_eq!(url_of("branchscore.kpi.v1.KpiService"), Some(peers.kpi.as_str()));
        assert_eq!(url_of("branchscore.pipeline.v1.PipelineService"), None);
        assert_eq!(url_of("branchscore.gateway.v1.GatewayService"), None, "answered by the gateway itself");
    }
}
