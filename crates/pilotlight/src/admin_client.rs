//! A small client of the admin API for the CLI's operational verbs (`pilotlight plan`,
//! `pilotlight restore …`): HTTP/1 to the daemon's `api.listen` address (or `--api`), bearer
//! token from `--token-file` or `PILOTLIGHT_TOKEN_FILE`. Errors carry the API's JSON reason.

use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use bytes::Bytes;
use http::{Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pilotlight_core::config::Config;

use crate::cli::ApiArgs;

/// How long one admin API request may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Where the admin API is and who is asking.
#[derive(Debug, Clone)]
pub struct AdminClient {
    base: String,
    token: Option<String>,
}

/// An answer of the admin API, whatever its status.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: StatusCode,
    /// The JSON body (a JSON string holding the text when the body was not JSON).
    pub body: serde_json::Value,
}

impl Answer {
    /// The API's reason for an error answer: `error.message`, else the whole body.
    pub fn reason(&self) -> String {
        self.body
            .pointer("/error/message")
            .and_then(|m| m.as_str())
            .map(str::to_owned)
            .unwrap_or_else(|| self.body.to_string())
    }
}

impl AdminClient {
    /// A client for `base` (`http://host:port`), with an optional bearer token.
    ///
    /// # Errors
    /// When `base` is not an `http://` address.
    pub fn new(base: &str, token: Option<String>) -> anyhow::Result<AdminClient> {
        let base = base.trim_end_matches('/').to_owned();
        if !base.starts_with("http://") {
            bail!(
                "admin API address {base:?} must start with http:// (the API binds to loopback; put TLS in front of it)"
            );
        }
        Ok(AdminClient { base, token })
    }

    /// The client the CLI's flags describe: `--api` (default `http://<api.listen>`) and the
    /// token in `--token-file`.
    ///
    /// # Errors
    /// The token file cannot be read, or the address is not `http://`.
    pub fn from_args(config: &Config, api: &ApiArgs) -> anyhow::Result<AdminClient> {
        let base = api
            .api
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.api.listen));
        let token = match &api.token_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading the token file {}", path.display()))?
                    .trim()
                    .to_owned(),
            ),
            None => None,
        };
        AdminClient::new(&base, token)
    }

    /// Sends `method path` with an optional JSON body and extra headers and returns the answer
    /// whatever its status.
    ///
    /// # Errors
    /// Only when no answer arrives (connection refused, timeout, unreadable body).
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut request = http::Request::builder().method(method.clone()).uri(&url);
        if let Some(token) = &self.token {
            request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let bytes = match body {
            Some(b) => {
                request = request.header(http::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(b)?)
            }
            None => Bytes::new(),
        };
        let request = request
            .body(Full::new(bytes))
            .with_context(|| format!("building {method} {url}"))?;
        let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
        let response = tokio::time::timeout(REQUEST_TIMEOUT, client.request(request))
            .await
            .map_err(|_| anyhow!("{method} {url}: no answer within {REQUEST_TIMEOUT:?}"))?
            .with_context(|| {
                format!("{method} {url}: is the daemon running and is --api right?")
            })?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .with_context(|| format!("reading the answer of {method} {url}"))?
            .to_bytes();
        let body: serde_json::Value = serde_json::from_slice(&body).unwrap_or_else(|_| {
            serde_json::Value::String(String::from_utf8_lossy(&body).into_owned())
        });
        Ok(Answer { status, body })
    }

    /// `GET path` → the JSON answer; a non-2xx answer is an error carrying its reason.
    ///
    /// # Errors
    /// No answer, or an error answer.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<serde_json::Value> {
        let answer = self.send(Method::GET, path, None, &[]).await?;
        ok_or_reason("GET", path, answer).map(|a| a.body)
    }

    /// `POST path` with a JSON body (or none) and extra headers → the answer; a non-2xx answer
    /// is an error carrying its reason.
    ///
    /// # Errors
    /// No answer, or an error answer.
    pub async fn post_json(
        &self,
        path: &str,
        body: Option<&serde_json::Value>,
        headers: &[(&str, &str)],
    ) -> anyhow::Result<Answer> {
        let answer = self.send(Method::POST, path, body, headers).await?;
        ok_or_reason("POST", path, answer)
    }
}

fn ok_or_reason(method: &str, path: &str, answer: Answer) -> anyhow::Result<Answer> {
    if answer.status.is_success() {
        Ok(answer)
    } else {
        bail!("{method} {path}: {}: {}", answer.status, answer.reason())
    }
}
