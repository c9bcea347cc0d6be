//! A client for a realism proxy's `/__lab/` API, for tools and tests in another process than
//! the proxy (the `pilotlight-lab` CLI, a daemon under test): counters, fault rules, capacity
//! rules, regions taken down and the S3 replicator's controls.

use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::de::DeserializeOwned;

use crate::error::LabError;
use crate::proxy::{
    CallCounts, CapacityId, CapacityRule, CapacityStatus, FaultId, FaultRule, FaultStatus,
    RegionsDown,
};
use crate::replicator::{DelayRequest, ReplicatorStatus};

/// Talks to one proxy's admin API.
#[derive(Debug, Clone)]
pub struct ProxyClient {
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl ProxyClient {
    /// A client for the proxy at `endpoint` (`http://HOST:PORT`).
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidEndpoint`] unless `endpoint` is an `http://` URL with a host.
    pub fn new(endpoint: &str) -> Result<ProxyClient, LabError> {
        let base = endpoint.trim_end_matches('/').to_owned();
        let invalid = || LabError::InvalidEndpoint {
            endpoint: endpoint.to_owned(),
        };
        let uri: Uri = base.parse().map_err(|_| invalid())?;
        if uri.scheme_str() != Some("http") || uri.host().is_none() {
            return Err(invalid());
        }
        Ok(ProxyClient {
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        })
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
    ) -> Result<(StatusCode, Bytes), LabError> {
        let url = format!("{}{path}", self.base);
        let name = match method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::DELETE => "DELETE",
            _ => "REQUEST",
        };
        let http_err = |source: Box<dyn std::error::Error + Send + Sync>| LabError::Http {
            method: name,
            url: url.clone(),
            source,
        };
        let mut builder = Request::builder().method(method).uri(&url);
        if body.is_some() {
            builder = builder.header(http::header::CONTENT_TYPE, "application/json");
        }
        let request = builder
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .map_err(|e| http_err(Box::new(e)))?;
        let response = self
            .client
            .request(request)
            .await
            .map_err(|e| http_err(Box::new(e)))?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| http_err(Box::new(e)))?
            .to_bytes();
        if !status.is_success() {
            return Err(LabError::AdminApi {
                method: name,
                url,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
        }
        Ok((status, bytes))
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, LabError> {
        let (_, bytes) = self.call(Method::GET, path, None).await?;
        serde_json::from_slice(&bytes).map_err(|source| LabError::Json {
            what: format!("GET {path}"),
            source,
        })
    }

    /// The proxy's call counters.
    ///
    /// # Errors
    ///
    /// [`LabError::Http`] / [`LabError::AdminApi`] / [`LabError::Json`] when the proxy cannot
    /// be reached or answers unexpectedly.
    pub async fn counters(&self) -> Result<CallCounts, LabError> {
        self.get_json("/__lab/counters").await
    }

    /// Zeroes the proxy's counters.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`].
    pub async fn reset_counters(&self) -> Result<(), LabError> {
        self.call(Method::POST, "/__lab/counters/reset", None)
            .await
            .map(|_| ())
    }

    /// Adds a fault rule.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`]; [`LabError::AdminApi`] with 429 when the proxy holds its
    /// maximum number of rules.
    pub async fn add_fault(&self, rule: &FaultRule) -> Result<FaultId, LabError> {
        let body = serde_json::to_string(rule).map_err(|source| LabError::Json {
            what: "fault rule".to_owned(),
            source,
        })?;
        let (_, bytes) = self.call(Method::POST, "/__lab/faults", Some(body)).await?;
        #[derive(serde::Deserialize)]
        struct Created {
            id: FaultId,
        }
        let created: Created = serde_json::from_slice(&bytes).map_err(|source| LabError::Json {
            what: "POST /__lab/faults answer".to_owned(),
            source,
        })?;
        Ok(created.id)
    }

    /// Every fault rule with its hit count.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`].
    pub async fn faults(&self) -> Result<Vec<FaultStatus>, LabError> {
        self.get_json("/__lab/faults").await
    }

    /// Removes every fault rule.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`].
    pub async fn clear_faults(&self) -> Result<(), LabError> {
        self.call(Method::DELETE, "/__lab/faults", None)
            .await
            .map(|_| ())
    }

    /// Adds a capacity rule ([`CapacityRule`]).
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`]; [`LabError::AdminApi`] with 400 for an invalid rule and
    /// 429 when the proxy holds its maximum number of rules.
    pub async fn add_capacity_rule(&self, rule: &CapacityRule) -> Result<CapacityId, LabError> {
        let body = serde_json::to_string(rule).map_err(|source| LabError::Json {
            what: "capacity rule".to_owned(),
            source,
        })?;
        #[derive(serde::Deserialize)]
        struct Created {
            id: CapacityId,
        }
        let created: Created = self.post_json("/__lab/capacity", Some(body)).await?;
        Ok(created.id)
    }

    /// Every capacity rule with what it has seen.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`].
    pub async fn capacity_rules(&self) -> Result<Vec<CapacityStatus>, LabError> {
        self.get_json("/__lab/capacity").await
    }

    /// Removes every capacity rule.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`].
    pub async fn clear_capacity_rules(&self) -> Result<(), LabError> {
        self.call(Method::DELETE, "/__lab/capacity", None)
            .await
            .map(|_| ())
    }

    /// Takes `region` down (every call to it gets its connection closed); returns the regions
    /// down now.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`]; [`LabError::AdminApi`] with 400 for a malformed region
    /// name and 429 when too many regions are down.
    pub async fn region_down(&self, region: &str) -> Result<RegionsDown, LabError> {
        self.post_json(&format!("/__lab/regions/{region}/down"), None)
            .await
    }

    /// Brings `region` back; returns the regions down now.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::region_down`].
    pub async fn region_up(&self, region: &str) -> Result<RegionsDown, LabError> {
        self.post_json(&format!("/__lab/regions/{region}/up"), None)
            .await
    }

    /// The regions down now.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`].
    pub async fn regions_down(&self) -> Result<RegionsDown, LabError> {
        self.get_json("/__lab/regions").await
    }

    /// The S3 replicator's status (`GET /__lab/replicator`).
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::counters`]; [`LabError::AdminApi`] with 404 when the proxy has no
    /// replicator.
    pub async fn replicator_status(&self) -> Result<ReplicatorStatus, LabError> {
        self.get_json("/__lab/replicator").await
    }

    /// Pauses the S3 replicator; returns its status.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::replicator_status`]; [`LabError::AdminApi`] with 409 when it stopped.
    pub async fn pause_replicator(&self) -> Result<ReplicatorStatus, LabError> {
        self.post_json("/__lab/replicator/pause", None).await
    }

    /// Resumes the S3 replicator; returns its status.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::pause_replicator`].
    pub async fn resume_replicator(&self) -> Result<ReplicatorStatus, LabError> {
        self.post_json("/__lab/replicator/resume", None).await
    }

    /// Sets the S3 replicator's delay (millisecond precision); returns its status.
    ///
    /// # Errors
    ///
    /// As [`ProxyClient::pause_replicator`]; [`LabError::AdminApi`] with 400 above
    /// [`MAX_DELAY`](crate::replicator::MAX_DELAY).
    pub async fn set_replicator_delay(
        &self,
        delay: Duration,
    ) -> Result<ReplicatorStatus, LabError> {
        let body = serde_json::to_string(&DelayRequest {
            secs: delay.as_secs_f64(),
        })
        .map_err(|source| LabError::Json {
            what: "replicator delay".to_owned(),
            source,
        })?;
        self.post_json("/__lab/replicator/delay", Some(body)).await
    }

    async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<String>,
    ) -> Result<T, LabError> {
        let (_, bytes) = self.call(Method::POST, path, body).await?;
        serde_json::from_slice(&bytes).map_err(|source| LabError::Json {
            what: format!("POST {path}"),
            source,
        })
    }

    /// POSTs `body` as it is (tests of malformed requests).
    #[cfg(test)]
    pub(crate) async fn post_raw(&self, path: &str, body: &str) -> Result<Bytes, LabError> {
        self.call(Method::POST, path, Some(body.to_owned()))
            .await
            .map(|(_, bytes)| bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::{FaultAction, ProxyOptions, RealismProxy};

    #[test]
    fn endpoints_are_validated() {
        assert!(ProxyClient::new("http://127.0.0.1:1234/").is_ok());
        assert!(matches!(
            ProxyClient::new("127.0.0.1:1234"),
            Err(LabError::InvalidEndpoint { .. })
        ));
        assert!(matches!(
            ProxyClient::new("https://127.0.0.1:1234"),
            Err(LabError::InvalidEndpoint { .. })
        ));
    }

    #[tokio::test]
    async fn drives_a_proxy_over_http() {
        // No call is forwarded in this test, so the upstream address is never dialled.
        let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let proxy = RealismProxy::start(upstream, ProxyOptions::default())
            .await
            .expect("proxy");
        let client = ProxyClient::new(&proxy.endpoint()).expect("client");
        let id = client
            .add_fault(&FaultRule::new(FaultAction::Latency { ms: 1 }).service("s3"))
            .await
            .expect("add");
        let faults = client.faults().await.expect("faults");
        assert_eq!(faults.len(), 1);
        assert_eq!(faults[0].id, id);
        assert_eq!(proxy.faults()[0].rule.service.as_deref(), Some("s3"));
        client.clear_faults().await.expect("clear");
        assert!(proxy.faults().is_empty());
        assert_eq!(client.counters().await.expect("counters").total(), 0);
        client.reset_counters().await.expect("reset");
        let gone = ProxyClient::new("http://127.0.0.1:9").expect("client");
        assert!(matches!(gone.counters().await, Err(LabError::Http { .. })));
    }

    #[tokio::test]
    async fn drives_capacity_rules_and_regions_over_http() {
        // No call is forwarded in this test, so the upstream address is never dialled.
        let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], 9));
        let proxy = RealismProxy::start(upstream, ProxyOptions::default())
            .await
            .expect("proxy");
        let client = ProxyClient::new(&proxy.endpoint()).expect("client");

        let rule = CapacityRule::new("r5.2xlarge", "us-west-2a", 3).available(1);
        let id = client.add_capacity_rule(&rule).await.expect("add");
        let listed = client.capacity_rules().await.expect("list");
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].id, &listed[0].rule), (id, &rule));
        assert_eq!((listed[0].launched, listed[0].remaining), (0, Some(4)));
        assert_eq!(proxy.capacity_rules(), listed);
        let invalid = CapacityRule::new("r5.2xlarge", "us-east-1a", 3);
        let invalid = CapacityRule {
            region: Some("us-west-2".into()),
            ..invalid
        };
        match client.add_capacity_rule(&invalid).await {
            Err(LabError::AdminApi { status, body, .. }) => {
                assert_eq!(status, 400);
                assert!(body.contains("not in region"), "{body}");
            }
            other => panic!("expected a 400, got {other:?}"),
        }
        match client
            .post_raw("/__lab/capacity", r#"{"instance_type":"x","zone":"a"}"#)
            .await
        {
            Err(LabError::AdminApi { status: 400, .. }) => {}
            other => panic!("expected a 400 for an unknown field, got {other:?}"),
        }
        client.clear_capacity_rules().await.expect("clear");
        assert!(proxy.capacity_rules().is_empty());

        assert_eq!(
            client.regions_down().await.expect("list"),
            RegionsDown::default()
        );
        let down = client.region_down("us-east-1").await.expect("down");
        assert_eq!(down.down, vec!["us-east-1"]);
        assert_eq!(proxy.regions_down(), vec!["us-east-1"]);
        match client.region_down("US_EAST").await {
            Err(LabError::AdminApi { status: 400, .. }) => {}
            other => panic!("expected a 400, got {other:?}"),
        }
        let up = client.region_up("us-east-1").await.expect("up");
        assert!(up.down.is_empty());
        assert!(proxy.regions_down().is_empty());
        match client
            .post_raw("/__lab/regions/us-east-1/sideways", "")
            .await
        {
            Err(LabError::AdminApi { status: 404, .. }) => {}
            other => panic!("expected a 404, got {other:?}"),
        }
    }
}
