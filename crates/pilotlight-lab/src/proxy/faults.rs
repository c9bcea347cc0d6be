//! Fault injection rules: which calls get which fault, how often, and how often they fired.
//!
//! A [`FaultRule`] matches a call by service, operation, region (each optional) and form/query
//! parameters that must all be present with the given values (for example
//! `("InstanceType", "r5.2xlarge")` and `("Placement.AvailabilityZone", "us-west-2a")`). The
//! first matching rule that has firings left wins; `times: None` fires forever. Rules are
//! JSON-serialisable for the proxy's `/__lab/faults` endpoint and the CLI; the table accepts
//! at most [`MAX_RULES`] rules over HTTP (further POSTs get HTTP 429).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::envelope::ErrorReply;
use super::identify::CallInfo;
use pilotlight_core::aws_limits::{self, Service};

/// Most rules the HTTP endpoint accepts at once.
pub const MAX_RULES: usize = 1024;

/// What an injected fault does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum FaultAction {
    /// The service's real throttling error (`RequestLimitExceeded` 503 for EC2, `Throttling`
    /// 400 for RDS/ELB/Route 53/CloudWatch, `SlowDown` 503 for S3).
    Throttle,
    /// EC2 `InsufficientInstanceCapacity` (500); RDS `InsufficientDBInstanceCapacity` (400).
    InsufficientCapacity,
    /// A server error with this status (`InternalError`/`InternalFailure`, or
    /// `ServiceUnavailable` for 503).
    ServerError { status: u16 },
    /// Delay the call by `ms` milliseconds, then handle it normally.
    Latency { ms: u64 },
    /// Forward the call to moto (so it takes effect), then close the connection unanswered.
    DropResponse,
    /// Forward the call to moto (so it takes effect), then hold the answer for `ms`
    /// milliseconds: a window in which the caller can crash after AWS acted but before it heard.
    HoldResponse { ms: u64 },
    /// Any error envelope.
    Error {
        status: u16,
        code: String,
        message: String,
    },
}

impl FaultAction {
    /// The error this action answers with, if it answers with one.
    pub fn error_reply(&self, call: &CallInfo) -> Option<ErrorReply> {
        let service = call.known_service();
        match self {
            FaultAction::Throttle => {
                let (status, code) =
                    service.map_or((400, "Throttling"), aws_limits::throttle_error);
                Some(ErrorReply::new(status, code, "Rate exceeded"))
            }
            FaultAction::InsufficientCapacity => Some(capacity_reply(service, call)),
            FaultAction::ServerError { status } => {
                let code = match (*status, service) {
                    (503, Some(Service::Ec2)) => "Unavailable",
                    (503, _) => "ServiceUnavailable",
                    (_, Some(Service::Ec2 | Service::S3 | Service::Route53)) => "InternalError",
                    _ => "InternalFailure",
                };
                Some(ErrorReply::new(
                    *status,
                    code,
                    "An internal error has occurred (injected by the pilotlight lab)",
                ))
            }
            FaultAction::Error {
                status,
                code,
                message,
            } => Some(ErrorReply::new(*status, code, message)),
            FaultAction::Latency { .. }
            | FaultAction::DropResponse
            | FaultAction::HoldResponse { .. } => None,
        }
    }
}

fn capacity_reply(service: Option<Service>, call: &CallInfo) -> ErrorReply {
    match service {
        Some(Service::Rds) => ErrorReply::new(
            400,
            "InsufficientDBInstanceCapacity",
            "Insufficient DB instance capacity in the requested Availability Zone",
        ),
        _ => {
            let instance_type = call.param("InstanceType").unwrap_or("the requested");
            let az = call
                .param("Placement.AvailabilityZone")
                .unwrap_or("you requested");
            ErrorReply::new(
                500,
                "InsufficientInstanceCapacity",
                &format!(
                    "We currently do not have sufficient {instance_type} capacity in the \
                     Availability Zone ({az}). Our system will be working on provisioning \
                     additional capacity."
                ),
            )
        }
    }
}

/// The CLI syntax: `throttle`, `capacity`, `5xx` (500), `5xx:STATUS`, `latency:MS`, `drop`,
/// `error:STATUS:CODE[:MESSAGE]`.
impl FromStr for FaultAction {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.splitn(4, ':');
        let head = parts.next().unwrap_or_default();
        let status = |text: Option<&str>, default: Option<u16>| -> Result<u16, String> {
            match text {
                Some(t) => t
                    .parse::<u16>()
                    .ok()
                    .filter(|s| (100..600).contains(s))
                    .ok_or_else(|| format!("invalid HTTP status {t:?}")),
                None => default.ok_or_else(|| "missing HTTP status".to_owned()),
            }
        };
        match head {
            "throttle" => Ok(FaultAction::Throttle),
            "capacity" => Ok(FaultAction::InsufficientCapacity),
            "5xx" => Ok(FaultAction::ServerError {
                status: status(parts.next(), Some(500))?,
            }),
            "latency" => {
                let ms = parts
                    .next()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| "latency needs milliseconds: latency:MS".to_owned())?;
                Ok(FaultAction::Latency { ms })
            }
            "drop" => Ok(FaultAction::DropResponse),
            "hold" => {
                let ms = parts
                    .next()
                    .and_then(|t| t.parse::<u64>().ok())
                    .ok_or_else(|| "hold needs milliseconds: hold:MS".to_owned())?;
                Ok(FaultAction::HoldResponse { ms })
            }
            "error" => {
                let status = status(parts.next(), None)?;
                let code = parts
                    .next()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| "error needs a code: error:STATUS:CODE[:MESSAGE]".to_owned())?
                    .to_owned();
                let message = parts.next().map_or_else(
                    || format!("{code} (injected by the pilotlight lab)"),
                    str::to_owned,
                );
                Ok(FaultAction::Error {
                    status,
                    code,
                    message,
                })
            }
            other => Err(format!(
                "unknown fault action {other:?}: expected throttle, capacity, 5xx[:STATUS], \
                 latency:MS, drop or error:STATUS:CODE[:MESSAGE]"
            )),
        }
    }
}

/// Which calls get a fault, and how often.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultRule {
    /// `ec2`, `rds`, `s3`, `route53`, `elb`, `elbv2`, `cloudwatch`, …; `None` = any.
    #[serde(default)]
    pub service: Option<String>,
    /// The operation name as counted (`RunInstances`, `PutObject`, …); `None` = any.
    #[serde(default)]
    pub operation: Option<String>,
    /// The signing region (`global` for Route 53); `None` = any.
    #[serde(default)]
    pub region: Option<String>,
    /// Form/query parameters that must all match exactly.
    #[serde(default)]
    pub params: Vec<(String, String)>,
    pub action: FaultAction,
    /// How many times the rule fires; `None` = forever.
    #[serde(default)]
    pub times: Option<u32>,
}

impl FaultRule {
    /// A rule that applies `action` to every call, forever; narrow it with the builder methods.
    pub fn new(action: FaultAction) -> FaultRule {
        FaultRule {
            service: None,
            operation: None,
            region: None,
            params: Vec::new(),
            action,
            times: None,
        }
    }

    #[must_use]
    pub fn service(mut self, service: &str) -> FaultRule {
        self.service = Some(service.to_owned());
        self
    }

    #[must_use]
    pub fn operation(mut self, operation: &str) -> FaultRule {
        self.operation = Some(operation.to_owned());
        self
    }

    #[must_use]
    pub fn region(mut self, region: &str) -> FaultRule {
        self.region = Some(region.to_owned());
        self
    }

    #[must_use]
    pub fn param(mut self, name: &str, value: &str) -> FaultRule {
        self.params.push((name.to_owned(), value.to_owned()));
        self
    }

    #[must_use]
    pub fn times(mut self, times: u32) -> FaultRule {
        self.times = Some(times);
        self
    }

    /// Whether the rule's filters match the call (ignoring how often it may still fire).
    pub fn matches(&self, call: &CallInfo) -> bool {
        let eq = |want: &Option<String>, have: &str| want.as_deref().is_none_or(|w| w == have);
        eq(&self.service, &call.service)
            && eq(&self.operation, &call.operation)
            && eq(&self.region, &call.region)
            && self
                .params
                .iter()
                .all(|(k, v)| call.params.iter().any(|(pk, pv)| pk == k && pv == v))
    }
}

/// A rule's handle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FaultId(pub u64);

impl fmt::Display for FaultId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A rule with its id and how often it fired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FaultStatus {
    pub id: FaultId,
    pub rule: FaultRule,
    pub hits: u64,
    /// Firings left; `None` = unlimited.
    pub remaining: Option<u32>,
}

/// The proxy's rules.
#[derive(Debug, Default)]
pub struct FaultTable {
    next_id: u64,
    rules: Vec<FaultStatus>,
}

impl FaultTable {
    pub fn add(&mut self, rule: FaultRule) -> FaultId {
        self.next_id += 1;
        let id = FaultId(self.next_id);
        self.rules.push(FaultStatus {
            id,
            remaining: rule.times,
            rule,
            hits: 0,
        });
        id
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn clear(&mut self) {
        self.rules.clear();
    }

    pub fn hits(&self, id: FaultId) -> u64 {
        self.rules.iter().find(|r| r.id == id).map_or(0, |r| r.hits)
    }

    pub fn list(&self) -> Vec<FaultStatus> {
        self.rules.clone()
    }

    /// The action of the first matching rule with firings left; records the hit.
    pub fn fire(&mut self, call: &CallInfo) -> Option<FaultAction> {
        let rule = self
            .rules
            .iter_mut()
            .find(|r| r.remaining != Some(0) && r.rule.matches(call))?;
        rule.hits += 1;
        if let Some(left) = rule.remaining.as_mut() {
            *left -= 1;
        }
        Some(rule.rule.action.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::identify::Protocol;

    fn call(service: &str, operation: &str, region: &str, params: &[(&str, &str)]) -> CallInfo {
        CallInfo {
            service: service.into(),
            operation: operation.into(),
            region: region.into(),
            mutating: true,
            protocol: Protocol::Ec2Query,
            params: params
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn matching_by_filters_and_params() {
        let rule = FaultRule::new(FaultAction::InsufficientCapacity)
            .service("ec2")
            .operation("RunInstances")
            .region("us-west-2")
            .param("InstanceType", "r5.2xlarge");
        let hit = call(
            "ec2",
            "RunInstances",
            "us-west-2",
            &[("InstanceType", "r5.2xlarge"), ("MaxCount", "1")],
        );
        assert!(rule.matches(&hit));
        assert!(!rule.matches(&call(
            "ec2",
            "RunInstances",
            "us-east-1",
            &[("InstanceType", "r5.2xlarge")]
        )));
        assert!(!rule.matches(&call(
            "ec2",
            "RunInstances",
            "us-west-2",
            &[("InstanceType", "r5.xlarge")]
        )));
        assert!(!rule.matches(&call("ec2", "DescribeInstances", "us-west-2", &[])));
        assert!(FaultRule::new(FaultAction::Throttle).matches(&hit));
    }

    #[test]
    fn times_limits_firings_and_hits_are_counted() {
        let mut table = FaultTable::default();
        let once = table.add(
            FaultRule::new(FaultAction::Throttle)
                .operation("A")
                .times(1),
        );
        let forever = table.add(FaultRule::new(FaultAction::DropResponse).operation("A"));
        let a = call("ec2", "A", "r", &[]);
        assert_eq!(table.fire(&a), Some(FaultAction::Throttle));
        assert_eq!(table.fire(&a), Some(FaultAction::DropResponse));
        assert_eq!(table.fire(&a), Some(FaultAction::DropResponse));
        assert_eq!(table.fire(&call("ec2", "B", "r", &[])), None);
        assert_eq!(table.hits(once), 1);
        assert_eq!(table.hits(forever), 2);
        assert_eq!(table.list()[0].remaining, Some(0));
        table.clear();
        assert_eq!(table.fire(&a), None);
        assert_eq!(table.hits(once), 0);
    }

    #[test]
    fn replies_per_service() {
        let ec2 = call(
            "ec2",
            "RunInstances",
            "us-west-2",
            &[
                ("InstanceType", "r5.2xlarge"),
                ("Placement.AvailabilityZone", "us-west-2a"),
            ],
        );
        let throttle = FaultAction::Throttle.error_reply(&ec2).expect("reply");
        assert_eq!(
            (throttle.status.as_u16(), throttle.code.as_str()),
            (503, "RequestLimitExceeded")
        );
        let cap = FaultAction::InsufficientCapacity
            .error_reply(&ec2)
            .expect("reply");
        assert_eq!(
            (cap.status.as_u16(), cap.code.as_str()),
            (500, "InsufficientInstanceCapacity")
        );
        assert!(cap.message.contains("r5.2xlarge") && cap.message.contains("us-west-2a"));
        let s3 = FaultAction::Throttle
            .error_reply(&call("s3", "PutObject", "us-west-2", &[]))
            .expect("reply");
        assert_eq!((s3.status.as_u16(), s3.code.as_str()), (503, "SlowDown"));
        let rds = FaultAction::Throttle
            .error_reply(&call("rds", "DescribeDBInstances", "us-west-2", &[]))
            .expect("reply");
        assert_eq!(
            (rds.status.as_u16(), rds.code.as_str()),
            (400, "Throttling")
        );
        let unavailable = FaultAction::ServerError { status: 503 }
            .error_reply(&ec2)
            .expect("reply");
        assert_eq!(unavailable.code, "Unavailable");
        assert_eq!(FaultAction::Latency { ms: 5 }.error_reply(&ec2), None);
        assert_eq!(FaultAction::DropResponse.error_reply(&ec2), None);
    }

    #[test]
    fn cli_syntax() {
        assert_eq!("throttle".parse(), Ok(FaultAction::Throttle));
        assert_eq!("capacity".parse(), Ok(FaultAction::InsufficientCapacity));
        assert_eq!("5xx".parse(), Ok(FaultAction::ServerError { status: 500 }));
        assert_eq!(
            "5xx:503".parse(),
            Ok(FaultAction::ServerError { status: 503 })
        );
        assert_eq!("latency:250".parse(), Ok(FaultAction::Latency { ms: 250 }));
        assert_eq!("drop".parse(), Ok(FaultAction::DropResponse));
        assert_eq!(
            "hold:250".parse(),
            Ok(FaultAction::HoldResponse { ms: 250 })
        );
        assert!("hold".parse::<FaultAction>().is_err());
        assert_eq!(
            "error:400:PriorRequestNotComplete:busy: zone".parse(),
            Ok(FaultAction::Error {
                status: 400,
                code: "PriorRequestNotComplete".into(),
                message: "busy: zone".into()
            })
        );
        assert!("latency".parse::<FaultAction>().is_err());
        assert!("error:999:X".parse::<FaultAction>().is_err());
        assert!("error:400".parse::<FaultAction>().is_err());
        assert!("boom".parse::<FaultAction>().is_err());
    }

    #[test]
    fn rules_round_trip_through_json() {
        let rule = FaultRule::new(FaultAction::Error {
            status: 400,
            code: "X".into(),
            message: "m".into(),
        })
        .service("route53")
        .param("a", "b")
        .times(3);
        let json = serde_json::to_string(&rule).expect("json");
        assert_eq!(
            serde_json::from_str::<FaultRule>(&json).expect("parse"),
            rule
        );
        let minimal: FaultRule =
            serde_json::from_str(r#"{"action":{"kind":"latency","ms":10}}"#).expect("parse");
        assert_eq!(minimal, FaultRule::new(FaultAction::Latency { ms: 10 }));
    }
}
