//! `RunInstances` as AWS runs it: up to `MaxCount` instances, and no more than capacity allows.
//!
//! moto always launches `MinCount`. AWS launches as many as it can up to `MaxCount`, at least
//! `MinCount`, else nothing (`InsufficientInstanceCapacity`). Before a `RunInstances` reaches
//! moto the proxy decides how many instances it starts — `MaxCount` with
//! [`ProxyOptions::launch_max_count`](super::ProxyOptions::launch_max_count) (off by default:
//! moto's `MinCount`, which the lab's older tests rely on), cut to what the capacity rules
//! ([`super::capacity`]) leave — and, when that differs from `MinCount`, rewrites the form body
//! to `MinCount = MaxCount = n` (with a matching `Content-Length`). A launch the rules refuse
//! is answered with AWS's error without reaching moto.
//!
//! `ClientToken` replay keys on the call's parameters as the client sent them, so a retry of a
//! rewritten launch is recognised and replays moto's answer to the rewritten call (the same
//! reservation and instances); a refused launch is not cached, so its retry is decided anew.
//! The launch's AZ is looked up only while a capacity rule for its type and region is in
//! force: from `Placement.AvailabilityZone`, else by a `DescribeSubnets` of its subnet that the
//! proxy sends to moto itself (as the same account; not counted).
//!
//! The capacity admin API lives here too: `GET|POST|DELETE /__lab/capacity`.

use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::{HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::capacity::{
    CapacityId, CapacityRule, CapacityStatus, DEFAULT_INSTANCE_TYPE, LaunchRequest,
};
use super::envelope::ErrorReply;
use super::identify::CallInfo;
use super::xmledit::item_ids;
use super::{
    MAX_ADMIN_BODY_BYTES, ProxyHandle, ProxyResponse, Shared, empty, form_encode, json_response,
    lock, moto_query, plain, rewrite, to_json,
};
use crate::error::LabError;

/// A call made ready for moto.
#[derive(Debug)]
pub struct Prepared {
    /// The request head when the body was rewritten (new `Content-Length`); `None`: as sent.
    pub parts: Option<http::request::Parts>,
    pub body: Bytes,
    /// Instances reserved under capacity rules, to settle with moto's answer.
    pub reservation: Option<Reservation>,
}

impl Prepared {
    fn unchanged(body: Bytes) -> Prepared {
        Prepared {
            parts: None,
            body,
            reservation: None,
        }
    }
}

/// Instances reserved under capacity rules; given back on drop unless settled.
#[derive(Debug)]
pub struct Reservation {
    shared: Arc<Shared>,
    rules: Vec<CapacityId>,
    count: u32,
    settled: bool,
}

impl Reservation {
    /// The instances reserved.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// moto launched `launched` of the reserved instances; the rest are given back.
    pub fn settle(mut self, launched: u32) {
        self.settled = true;
        let unused = self.count.saturating_sub(launched);
        if unused > 0 {
            lock(&self.shared.capacity).release(&self.rules, unused);
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            lock(&self.shared.capacity).release(&self.rules, self.count);
        }
    }
}

/// Decides how many instances a `RunInstances` starts and rewrites it accordingly; any other
/// call comes back unchanged.
///
/// # Errors
///
/// AWS's `InsufficientInstanceCapacity` when a capacity rule leaves fewer than `MinCount`.
pub async fn prepare(
    shared: &Arc<Shared>,
    call: &CallInfo,
    parts: &http::request::Parts,
    body: Bytes,
    account: &str,
) -> Result<Prepared, ErrorReply> {
    if !(call.service == "ec2" && call.operation == "RunInstances") {
        return Ok(Prepared::unchanged(body));
    }
    let count = |name: &str| call.param(name).and_then(|v| v.trim().parse::<u32>().ok());
    let (Some(min), Some(max)) = (count("MinCount"), count("MaxCount")) else {
        return Ok(Prepared::unchanged(body));
    };
    if min == 0 || max < min {
        // Invalid: moto answers it as it does.
        return Ok(Prepared::unchanged(body));
    }
    let wanted = if shared.opts.launch_max_count {
        max
    } else {
        min
    };
    let instance_type = call
        .param("InstanceType")
        .filter(|t| !t.is_empty())
        .unwrap_or(DEFAULT_INSTANCE_TYPE);
    let concerned = lock(&shared.capacity).concerns(instance_type, &call.region, Instant::now());
    let az = if concerned {
        launch_az(shared, call, account).await
    } else {
        None
    };
    let launch = LaunchRequest {
        instance_type,
        region: &call.region,
        az: az.as_deref(),
        min_count: min,
        wanted,
    };
    let grant = lock(&shared.capacity)
        .reserve(&launch, Instant::now())
        .inspect_err(|_| {
            tracing::debug!(%instance_type, region = %call.region, az = ?az, min,
                "launch refused: insufficient capacity");
        })?;
    let reservation = (!grant.rules.is_empty()).then(|| Reservation {
        shared: shared.clone(),
        rules: grant.rules.clone(),
        count: grant.count,
        settled: false,
    });
    if grant.count == min {
        return Ok(Prepared {
            parts: None,
            body,
            reservation,
        });
    }
    let Some(new_body) = with_counts(&body, grant.count) else {
        tracing::warn!(
            count = grant.count,
            "RunInstances counts not in a form body; moto launches MinCount"
        );
        return Ok(Prepared {
            parts: None,
            body,
            reservation,
        });
    };
    tracing::debug!(%instance_type, region = %call.region, min, max, count = grant.count,
        "RunInstances rewritten");
    Ok(Prepared {
        parts: Some(with_length(parts, new_body.len())),
        body: new_body,
        reservation,
    })
}

/// How many instances a successful `RunInstances` answer lists (`None` when it cannot be read).
pub fn launched(body: &[u8]) -> Option<u32> {
    let text = std::str::from_utf8(body).ok()?;
    let n = item_ids(text, "instancesSet", &["instanceId"]).len();
    (n > 0).then(|| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The form body with `MinCount` and `MaxCount` set to `count`; `None` when it has neither.
fn with_counts(body: &[u8], count: u32) -> Option<Bytes> {
    let text = std::str::from_utf8(body).ok()?;
    let mut found = false;
    let pairs: Vec<String> = text
        .split('&')
        .map(|pair| {
            let key = pair.split_once('=').map_or(pair, |(k, _)| k);
            if key == "MinCount" || key == "MaxCount" {
                found = true;
                format!("{key}={count}")
            } else {
                pair.to_owned()
            }
        })
        .collect();
    found.then(|| Bytes::from(pairs.join("&")))
}

/// A copy of the request head with `Content-Length: len`.
fn with_length(parts: &http::request::Parts, len: usize) -> http::request::Parts {
    let (mut out, ()) = Request::new(()).into_parts();
    out.method = parts.method.clone();
    out.uri = parts.uri.clone();
    out.version = parts.version;
    out.headers = parts.headers.clone();
    out.headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    out
}

/// The AZ a launch names: `Placement.AvailabilityZone`, else its subnet's (looked up in moto).
async fn launch_az(shared: &Shared, call: &CallInfo, account: &str) -> Option<String> {
    if let Some(az) = call
        .param("Placement.AvailabilityZone")
        .filter(|a| !a.is_empty())
    {
        return Some(az.to_owned());
    }
    let subnet = call
        .param("SubnetId")
        .filter(|s| !s.is_empty())
        .or_else(|| {
            call.params
                .iter()
                .find(|(k, v)| {
                    !v.is_empty()
                        && k.strip_prefix("NetworkInterface.")
                            .and_then(|rest| rest.split_once('.'))
                            .is_some_and(|(n, field)| {
                                field == "SubnetId" && n.chars().all(|c| c.is_ascii_digit())
                            })
                })
                .map(|(_, v)| v.as_str())
        })?;
    let form = format!(
        "Action=DescribeSubnets&Version=2016-11-15&SubnetId.1={}",
        form_encode(subnet)
    );
    match moto_query(shared, "ec2", &call.region, account, form).await {
        Ok(text) => {
            let az = rewrite::first_text(&text, "availabilityZone").map(str::to_owned);
            if az.is_none() {
                tracing::warn!(%subnet, "subnet's AZ unknown; only region capacity rules apply");
            }
            az
        }
        Err(reason) => {
            tracing::warn!(%subnet, %reason, "subnet lookup failed; only region capacity rules apply");
            None
        }
    }
}

impl ProxyHandle {
    /// Adds a capacity rule ([`CapacityRule`]).
    ///
    /// # Errors
    ///
    /// [`LabError::InvalidOptions`] listing every problem with the rule, or when
    /// [`MAX_CAPACITY_RULES`](super::capacity::MAX_CAPACITY_RULES) rules are held.
    pub fn add_capacity_rule(&self, rule: CapacityRule) -> Result<CapacityId, LabError> {
        lock(&self.shared.capacity)
            .add(rule, Instant::now())
            .map_err(|reason| LabError::InvalidOptions {
                reason: format!("capacity rule: {reason}"),
            })
    }

    /// Every capacity rule with what it has seen.
    pub fn capacity_rules(&self) -> Vec<CapacityStatus> {
        lock(&self.shared.capacity).list(Instant::now())
    }

    /// Removes every capacity rule (capacity is unlimited again).
    pub fn clear_capacity_rules(&self) {
        lock(&self.shared.capacity).clear();
    }
}

/// `GET|POST|DELETE /__lab/capacity`.
pub async fn admin(shared: &Shared, req: Request<Incoming>) -> ProxyResponse {
    let method = req.method().clone();
    match method {
        Method::GET => to_json(StatusCode::OK, &lock(&shared.capacity).list(Instant::now())),
        Method::DELETE => {
            lock(&shared.capacity).clear();
            empty(StatusCode::NO_CONTENT)
        }
        Method::POST => {
            let body = match Limited::new(req.into_body(), MAX_ADMIN_BODY_BYTES)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    return plain(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        &format!(
                            "capacity rule unreadable or over {MAX_ADMIN_BODY_BYTES} bytes: {e}"
                        ),
                    );
                }
            };
            let rule: CapacityRule = match serde_json::from_slice(&body) {
                Ok(rule) => rule,
                Err(e) => {
                    return plain(
                        StatusCode::BAD_REQUEST,
                        &format!("invalid capacity rule: {e}"),
                    );
                }
            };
            let mut table = lock(&shared.capacity);
            if table.is_full() {
                return plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    &format!(
                        "at most {} capacity rules; DELETE /__lab/capacity first",
                        super::capacity::MAX_CAPACITY_RULES
                    ),
                );
            }
            match table.add(rule, Instant::now()) {
                Ok(id) => json_response(StatusCode::CREATED, &serde_json::json!({ "id": id })),
                Err(reason) => plain(
                    StatusCode::BAD_REQUEST,
                    &format!("invalid capacity rule: {reason}"),
                ),
            }
        }
        _ => plain(
            StatusCode::METHOD_NOT_ALLOWED,
            &format!("no lab endpoint {method} /__lab/capacity"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_rewritten_in_place() {
        let body = b"Action=RunInstances&ImageId=ami-1&MinCount=1&MaxCount=5&ClientToken=t%2F1";
        let out = with_counts(body, 5).expect("rewritten");
        assert_eq!(
            out.as_ref(),
            b"Action=RunInstances&ImageId=ami-1&MinCount=5&MaxCount=5&ClientToken=t%2F1"
        );
        assert_eq!(with_counts(b"Action=DescribeVpcs", 2), None);
        let parts = Request::builder()
            .method(Method::POST)
            .uri("/")
            .header(CONTENT_LENGTH, "74")
            .header("x-amz-date", "20260101T000000Z")
            .body(())
            .expect("request")
            .into_parts()
            .0;
        let out = with_length(&parts, 3);
        assert_eq!(out.headers[CONTENT_LENGTH], "3");
        assert_eq!(out.headers["x-amz-date"], "20260101T000000Z");
        assert_eq!(
            (out.method, out.uri),
            (Method::POST, http::Uri::from_static("/"))
        );
    }

    #[test]
    fn launched_counts_the_instances_of_an_answer() {
        let answer = "<RunInstancesResponse><reservationId>r-1</reservationId><instancesSet>\
                      <item><instanceId>i-1</instanceId><groupSet><item><groupId>sg-1</groupId>\
                      </item></groupSet></item><item><instanceId>i-2</instanceId></item>\
                      </instancesSet></RunInstancesResponse>";
        assert_eq!(launched(answer.as_bytes()), Some(2));
        assert_eq!(launched(b"<Response/>"), None);
    }
}
