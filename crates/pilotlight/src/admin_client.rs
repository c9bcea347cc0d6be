//! A small client of the admin API for the CLI's operational verbs (`pilotlight plan`, …):
//! HTTP/1 to the daemon's `api.listen` address (or `--api`), bearer token from
//! `--token-file` or `PILOTLIGHT_TOKEN`. Errors carry the API's JSON reason.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long one admin API request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the admin API is and who is asking.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
}

impl AdminClient {
    /// A client for `base` (`http://host:port`), with an optional bearer token.
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<AdminClient> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            bail!(
                "admin API address {base:?} must start with http:// (the API binds to loopback; put TLS in front of it)"
            );
        }
        Ok(AdminClient { base, token })
    }

    /// `GET path` → the JSON answer; a non-2xx answer is an error carrying its reason.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::get(&url);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let request = request
            .body(Full::new(Bytes::new()))
            .with_context(|| format!("building GET {url}"))?;
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = tokio::time::timeout(REQUEST_TIMEOUT, client.request(request))
            .await
            .map_err(|_| anyhow!("GET {url}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| format!("GET {url}: is the daemon running and is --api right?"))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of GET {url}"))?
            .to_bytes();
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        });
        if !status.is_success() {
            let reason = value
                .pointer("/error/message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("GET {path}: {status}: {reason}");
        }
        Ok(value)
    }
}
