//! Naming an incoming AWS call: service, operation, region, protocol and parameters.
//!
//! Region and service come from the SigV4 credential scope (`Credential=AK/date/<region>/
//! <service>/aws4_request`, in the `Authorization` header or a presigned URL's
//! `X-Amz-Credential`). The operation comes from the wire protocol: `Action=` in a query
//! protocol's form body (EC2, RDS, ELB, ELBv2, STS, CloudWatch query), `X-Amz-Target` for
//! JSON 1.0/1.1, the path `/service/<svc>/operation/<Op>` for RPC v2 CBOR, and method + path +
//! subresource for the REST services (S3, Route 53), falling back to `"METHOD path-shape"` so
//! the set of names stays closed. Route 53 is global: its calls are reported in region
//! [`GLOBAL_REGION`] whatever region signed them.

use http::{HeaderMap, Method, Uri};
use pilotlight_core::aws_limits::{self, Service};

/// The region reported for global services (Route 53).
pub const GLOBAL_REGION: &str = "global";
/// The service/region reported for calls without a SigV4 credential scope.
pub const UNKNOWN: &str = "unknown";
/// Longest operation name kept; longer (malformed) names are cut.
const MAX_OPERATION_LEN: usize = 128;

/// The wire protocol of a call, which decides how the proxy writes errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// EC2's query dialect: `<Response><Errors><Error>…`.
    Ec2Query,
    /// awsQuery (RDS, ELB, ELBv2, STS, CloudWatch query): `<ErrorResponse><Error>…`.
    AwsQuery,
    /// Route 53's REST-XML: namespaced `<ErrorResponse>`.
    Route53,
    /// S3's REST-XML: bare `<Error>`.
    S3,
    /// JSON 1.0/1.1 (`X-Amz-Target`).
    AwsJson,
    /// Smithy RPC v2 CBOR (the current CloudWatch SDK).
    RpcV2Cbor,
}

/// Everything the proxy knows about one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallInfo {
    /// Short service name: `ec2`, `rds`, `s3`, `route53`, `elb`, `elbv2`, `cloudwatch`, `sts`,
    /// or the SigV4 signing name of anything else.
    pub service: String,
    pub operation: String,
    /// The signing region, [`GLOBAL_REGION`] for Route 53, [`UNKNOWN`] when unsigned.
    pub region: String,
    pub mutating: bool,
    pub protocol: Protocol,
    /// Form parameters (query protocols) followed by URL query parameters, decoded.
    pub params: Vec<(String, String)>,
}

impl CallInfo {
    /// The first value of a parameter.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The service as the limits table knows it, if it does.
    pub fn known_service(&self) -> Option<Service> {
        Service::parse(&self.service)
    }
}

/// Names the call in a request.
pub fn identify(method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> CallInfo {
    let query = uri.query().map(parse_form).unwrap_or_default();
    let scope = credential_scope(headers, &query);
    let mut params = if is_form(headers, body) {
        parse_form(&String::from_utf8_lossy(body))
    } else {
        Vec::new()
    };
    params.extend(query.iter().cloned());
    let find = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };

    let (signing_name, mut region) = match scope {
        Some((region, service)) => (service, region),
        None => (UNKNOWN.to_owned(), UNKNOWN.to_owned()),
    };
    let service = match signing_name.as_str() {
        "elasticloadbalancing" => match find("Version").as_deref() {
            Some("2012-06-01") => "elb".to_owned(),
            _ => "elbv2".to_owned(),
        },
        "monitoring" => "cloudwatch".to_owned(),
        other => other.to_owned(),
    };
    if Service::parse(&service).is_some_and(Service::is_global) {
        region = GLOBAL_REGION.to_owned();
    }

    let path = uri.path();
    let (operation, protocol, rest) = if let Some(action) = find("Action") {
        let protocol = if service == "ec2" {
            Protocol::Ec2Query
        } else {
            Protocol::AwsQuery
        };
        (action, protocol, false)
    } else if let Some(target) = header(headers, "x-amz-target") {
        let op = target.rsplit('.').next().unwrap_or(target).to_owned();
        (op, Protocol::AwsJson, false)
    } else if let Some(op) = cbor_operation(path) {
        (op, Protocol::RpcV2Cbor, false)
    } else if service == "s3" {
        (
            s3_operation(method, path, &query, headers),
            Protocol::S3,
            true,
        )
    } else if service == "route53" {
        (route53_operation(method, path), Protocol::Route53, true)
    } else {
        (
            format!("{method} {}", path_shape(path)),
            Protocol::AwsQuery,
            true,
        )
    };
    let mut operation = operation;
    truncate_at_char_boundary(&mut operation, MAX_OPERATION_LEN);
    let mutating = if rest {
        !(method == Method::GET || method == Method::HEAD)
    } else {
        operation_is_mutating(&service, &operation)
    };
    CallInfo {
        service,
        operation,
        region,
        mutating,
        protocol,
        params,
    }
}

/// Whether a named (non-REST) operation mutates: the limits table's rule for known services,
/// the same read-verb rule for the rest.
fn operation_is_mutating(service: &str, operation: &str) -> bool {
    match Service::parse(service) {
        Some(s) => aws_limits::is_mutating(s, operation),
        None => !["Describe", "List", "Get", "Search", "Head", "Lookup"]
            .iter()
            .any(|p| operation.starts_with(p)),
    }
}

fn truncate_at_char_boundary(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn is_form(headers: &HeaderMap, body: &[u8]) -> bool {
    match header(headers, "content-type") {
        Some(ct) => ct
            .to_ascii_lowercase()
            .starts_with("application/x-www-form-urlencoded"),
        None => body.starts_with(b"Action="),
    }
}

/// `(region, signing name)` from the SigV4 credential scope.
fn credential_scope(headers: &HeaderMap, query: &[(String, String)]) -> Option<(String, String)> {
    let credential = if let Some(auth) = header(headers, "authorization") {
        let start = auth.find("Credential=")? + "Credential=".len();
        let rest = &auth[start..];
        let end = rest
            .find(|c: char| c == ',' || c.is_whitespace())
            .unwrap_or(rest.len());
        rest[..end].to_owned()
    } else {
        query
            .iter()
            .find(|(k, _)| k == "X-Amz-Credential")
            .map(|(_, v)| v.clone())?
    };
    let parts: Vec<&str> = credential.split('/').collect();
    match parts.as_slice() {
        [.., region, service, "aws4_request"] if !region.is_empty() && !service.is_empty() => {
            Some(((*region).to_owned(), (*service).to_owned()))
        }
        _ => None,
    }
}

fn cbor_operation(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/service/")?;
    let (_service, op) = rest.split_once("/operation/")?;
    (!op.is_empty() && !op.contains('/')).then(|| op.to_owned())
}

/// Decodes `application/x-www-form-urlencoded` text (also URL query strings).
pub fn parse_form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' if i + 2 < bytes.len() => {
                let hex = |b: u8| (b as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push((h * 16 + l) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A path with its variable segments replaced: segments made only of lowercase letters,
/// digits and `-` are kept (API literals such as `2013-04-01` or `hostedzone`), others become
/// `{id}`.
fn path_shape(path: &str) -> String {
    let shaped: Vec<&str> = path
        .split('/')
        .map(|seg| {
            if seg
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            {
                seg
            } else {
                "{id}"
            }
        })
        .collect();
    shaped.join("/")
}

/// S3 bucket subresources and the operation-name stem each maps to.
const S3_BUCKET_SUBRESOURCES: [(&str, &str); 16] = [
    ("versioning", "BucketVersioning"),
    ("replication", "BucketReplication"),
    ("tagging", "BucketTagging"),
    ("policy", "BucketPolicy"),
    ("lifecycle", "BucketLifecycleConfiguration"),
    ("encryption", "BucketEncryption"),
    ("acl", "BucketAcl"),
    ("cors", "BucketCors"),
    ("notification", "BucketNotificationConfiguration"),
    ("website", "BucketWebsite"),
    ("logging", "BucketLogging"),
    ("ownershipControls", "BucketOwnershipControls"),
    ("publicAccessBlock", "PublicAccessBlock"),
    ("object-lock", "ObjectLockConfiguration"),
    ("accelerate", "BucketAccelerateConfiguration"),
    ("metrics", "BucketMetricsConfiguration"),
];

/// The S3 operation of a path-style request. The SDK's `x-id` query parameter wins when
/// present.
fn s3_operation(
    method: &Method,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> String {
    if let Some((_, id)) = query.iter().find(|(k, _)| k == "x-id") {
        return id.clone();
    }
    let has = |name: &str| query.iter().any(|(k, _)| k == name);
    let trimmed = path.trim_start_matches('/');
    let (bucket, key) = match trimmed.split_once('/') {
        Some((b, k)) if !k.is_empty() => (b, Some(k)),
        Some((b, _)) => (b, None),
        None => (trimmed, None),
    };
    let op: Option<String> = match (bucket.is_empty(), key) {
        (true, _) => (method == Method::GET).then(|| "ListBuckets".to_owned()),
        (false, None) => {
            let sub = S3_BUCKET_SUBRESOURCES.iter().find(|(q, _)| has(q));
            match (method.as_str(), sub) {
                ("GET", Some((_, stem))) => Some(format!("Get{stem}")),
                ("PUT", Some((_, stem))) => Some(format!("Put{stem}")),
                ("DELETE", Some((_, stem))) => Some(format!("Delete{stem}")),
                ("GET", None) if has("location") => Some("GetBucketLocation".into()),
                ("GET", None) if has("list-type") => Some("ListObjectsV2".into()),
                ("GET", None) if has("versions") => Some("ListObjectVersions".into()),
                ("GET", None) if has("uploads") => Some("ListMultipartUploads".into()),
                ("GET", None) => Some("ListObjects".into()),
                ("PUT", None) => Some("CreateBucket".into()),
                ("DELETE", None) => Some("DeleteBucket".into()),
                ("HEAD", None) => Some("HeadBucket".into()),
                ("POST", None) if has("delete") => Some("DeleteObjects".into()),
                _ => None,
            }
        }
        (false, Some(_)) => {
            let copy = headers.contains_key("x-amz-copy-source");
            match method.as_str() {
                "PUT" if has("tagging") => Some("PutObjectTagging".into()),
                "PUT" if has("acl") => Some("PutObjectAcl".into()),
                "PUT" if has("uploadId") && copy => Some("UploadPartCopy".into()),
                "PUT" if has("uploadId") => Some("UploadPart".into()),
                "PUT" if copy => Some("CopyObject".into()),
                "PUT" => Some("PutObject".into()),
                "GET" if has("tagging") => Some("GetObjectTagging".into()),
                "GET" if has("acl") => Some("GetObjectAcl".into()),
                "GET" if has("uploadId") => Some("ListParts".into()),
                "GET" if has("attributes") => Some("GetObjectAttributes".into()),
                "GET" => Some("GetObject".into()),
                "HEAD" => Some("HeadObject".into()),
                "DELETE" if has("tagging") => Some("DeleteObjectTagging".into()),
                "DELETE" if has("uploadId") => Some("AbortMultipartUpload".into()),
                "DELETE" => Some("DeleteObject".into()),
                "POST" if has("uploads") => Some("CreateMultipartUpload".into()),
                "POST" if has("uploadId") => Some("CompleteMultipartUpload".into()),
                "POST" if has("restore") => Some("RestoreObject".into()),
                _ => None,
            }
        }
    };
    op.unwrap_or_else(|| {
        let mut keys: Vec<&str> = query.iter().map(|(k, _)| k.as_str()).collect();
        keys.sort_unstable();
        keys.dedup();
        let shape = match (bucket.is_empty(), key.is_some()) {
            (true, _) => "/".to_owned(),
            (false, false) => "/{bucket}".to_owned(),
            (false, true) => "/{bucket}/{key}".to_owned(),
        };
        if keys.is_empty() {
            format!("{method} {shape}")
        } else {
            format!("{method} {shape}?{}", keys.join("&"))
        }
    })
}

/// The Route 53 operation of a REST request (`/2013-04-01/…`).
fn route53_operation(method: &Method, path: &str) -> String {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let rest = match segments.split_first() {
        Some((version, rest)) if *version == "2013-04-01" => rest,
        _ => &[][..],
    };
    let m = method.as_str();
    let op = match (m, rest) {
        ("GET", ["hostedzone"]) => Some("ListHostedZones"),
        ("POST", ["hostedzone"]) => Some("CreateHostedZone"),
        ("GET", ["hostedzone", _]) => Some("GetHostedZone"),
        ("DELETE", ["hostedzone", _]) => Some("DeleteHostedZone"),
        ("POST", ["hostedzone", _]) => Some("UpdateHostedZoneComment"),
        ("GET", ["hostedzone", _, "rrset"]) => Some("ListResourceRecordSets"),
        ("POST", ["hostedzone", _, "rrset"]) => Some("ChangeResourceRecordSets"),
        ("POST", ["hostedzone", _, "associatevpc"]) => Some("AssociateVPCWithHostedZone"),
        ("POST", ["hostedzone", _, "disassociatevpc"]) => Some("DisassociateVPCFromHostedZone"),
        ("GET", ["hostedzone", _, "dnssec"]) => Some("GetDNSSEC"),
        ("GET", ["hostedzonesbyname"]) => Some("ListHostedZonesByName"),
        ("GET", ["hostedzonesbyvpc"]) => Some("ListHostedZonesByVPC"),
        ("GET", ["hostedzonecount"]) => Some("GetHostedZoneCount"),
        ("GET", ["change", _]) => Some("GetChange"),
        ("GET", ["healthcheck"]) => Some("ListHealthChecks"),
        ("POST", ["healthcheck"]) => Some("CreateHealthCheck"),
        ("GET", ["healthcheck", _]) => Some("GetHealthCheck"),
        ("POST", ["healthcheck", _]) => Some("UpdateHealthCheck"),
        ("DELETE", ["healthcheck", _]) => Some("DeleteHealthCheck"),
        ("GET", ["healthcheckcount"]) => Some("GetHealthCheckCount"),
        ("GET", ["tags", _, _]) => Some("ListTagsForResource"),
        ("POST", ["tags", _, _]) => Some("ChangeTagsForResource"),
        ("POST", ["tags", _]) => Some("ListTagsForResources"),
        ("GET", ["delegationset"]) => Some("ListReusableDelegationSets"),
        ("POST", ["delegationset"]) => Some("CreateReusableDelegationSet"),
        ("GET", ["delegationset", _]) => Some("GetReusableDelegationSet"),
        ("DELETE", ["delegationset", _]) => Some("DeleteReusableDelegationSet"),
        _ => None,
    };
    op.map_or_else(|| format!("{m} {}", path_shape(path)), str::to_owned)
}

/// Route 53 change tokens of a `ChangeResourceRecordSets` body: 1 per CREATE or DELETE, 2 per
/// UPSERT.
pub fn route53_change_units(body: &[u8]) -> u32 {
    let text = String::from_utf8_lossy(body);
    let count = |action: &str| {
        let n = text.matches(&format!("<Action>{action}</Action>")).count();
        u32::try_from(n).unwrap_or(u32::MAX)
    };
    count("CREATE")
        .saturating_add(count("DELETE"))
        .saturating_add(count("UPSERT").saturating_mul(2))
}

/// Whether an EC2 describe is of the expensive kind: no `Filter.*`, no `MaxResults`/`NextToken`
/// and no id list (`InstanceId.1`, `GroupName.1`, …).
pub fn ec2_unfiltered_unpaginated(params: &[(String, String)]) -> bool {
    !params.iter().any(|(k, _)| {
        k.starts_with("Filter.")
            || k == "MaxResults"
            || k == "NextToken"
            || k.split_once('.').is_some_and(|(name, index)| {
                (name.ends_with("Id") || name.ends_with("Name"))
                    && index.chars().all(|c| c.is_ascii_digit())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn auth(region: &str, service: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            "authorization",
            HeaderValue::from_str(&format!(
                "AWS4-HMAC-SHA256 Credential=AKID/20260101/{region}/{service}/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc"
            ))
            .expect("header"),
        );
        h
    }

    fn form(mut h: HeaderMap) -> HeaderMap {
        h.insert(
            "content-type",
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h
    }

    fn call(method: Method, uri: &str, headers: HeaderMap, body: &str) -> CallInfo {
        identify(
            &method,
            &uri.parse::<Uri>().expect("uri"),
            &headers,
            body.as_bytes(),
        )
    }

    #[test]
    fn ec2_query_call() {
        let c = call(
            Method::POST,
            "/",
            form(auth("us-west-2", "ec2")),
            "Action=RunInstances&Version=2016-11-15&InstanceType=r5.2xlarge&Placement.AvailabilityZone=us-west-2a&MaxCount=3",
        );
        assert_eq!(c.service, "ec2");
        assert_eq!(c.operation, "RunInstances");
        assert_eq!(c.region, "us-west-2");
        assert!(c.mutating);
        assert_eq!(c.protocol, Protocol::Ec2Query);
        assert_eq!(c.param("Placement.AvailabilityZone"), Some("us-west-2a"));
        let d = call(
            Method::POST,
            "/",
            form(auth("us-east-1", "ec2")),
            "Action=DescribeVpcs&Version=2016-11-15",
        );
        assert!(!d.mutating);
    }

    #[test]
    fn elb_versions_split_classic_and_v2() {
        let classic = call(
            Method::POST,
            "/",
            form(auth("us-east-1", "elasticloadbalancing")),
            "Action=DescribeLoadBalancers&Version=2012-06-01",
        );
        assert_eq!(classic.service, "elb");
        assert_eq!(classic.protocol, Protocol::AwsQuery);
        let v2 = call(
            Method::POST,
            "/",
            form(auth("us-east-1", "elasticloadbalancing")),
            "Action=CreateLoadBalancer&Version=2015-12-01&Name=x",
        );
        assert_eq!(v2.service, "elbv2");
        assert!(v2.mutating);
    }

    #[test]
    fn json_and_cbor_calls() {
        let mut h = auth("us-west-2", "monitoring");
        h.insert(
            "x-amz-target",
            HeaderValue::from_static("GraniteServiceVersion20100801.PutMetricData"),
        );
        let j = call(Method::POST, "/", h, "{}");
        assert_eq!(
            (j.service.as_str(), j.operation.as_str()),
            ("cloudwatch", "PutMetricData")
        );
        assert_eq!(j.protocol, Protocol::AwsJson);
        assert!(j.mutating);
        let c = call(
            Method::POST,
            "/service/GraniteServiceVersion20100801/operation/GetMetricData",
            auth("us-west-2", "monitoring"),
            "",
        );
        assert_eq!(c.operation, "GetMetricData");
        assert_eq!(c.protocol, Protocol::RpcV2Cbor);
        assert!(!c.mutating);
    }

    #[test]
    fn s3_rest_operations() {
        let s3 = |m: Method, uri: &str| call(m, uri, auth("us-west-2", "s3"), "").operation;
        assert_eq!(s3(Method::GET, "/"), "ListBuckets");
        assert_eq!(s3(Method::PUT, "/bkt"), "CreateBucket");
        assert_eq!(s3(Method::PUT, "/bkt?versioning"), "PutBucketVersioning");
        assert_eq!(s3(Method::GET, "/bkt?versioning"), "GetBucketVersioning");
        assert_eq!(s3(Method::PUT, "/bkt?replication"), "PutBucketReplication");
        assert_eq!(s3(Method::GET, "/bkt?replication"), "GetBucketReplication");
        assert_eq!(
            s3(Method::GET, "/bkt?list-type=2&prefix=a"),
            "ListObjectsV2"
        );
        assert_eq!(s3(Method::PUT, "/bkt/a/b.json"), "PutObject");
        assert_eq!(s3(Method::GET, "/bkt/a/b.json"), "GetObject");
        assert_eq!(s3(Method::HEAD, "/bkt/a/b.json"), "HeadObject");
        assert_eq!(s3(Method::DELETE, "/bkt/a"), "DeleteObject");
        assert_eq!(s3(Method::GET, "/bkt/a?x-id=GetObject"), "GetObject");
        assert_eq!(
            s3(Method::PATCH, "/bkt/k?weird=1"),
            "PATCH /{bucket}/{key}?weird"
        );
        let put = call(Method::PUT, "/bkt/k", auth("us-west-2", "s3"), "data");
        assert!(put.mutating);
        assert_eq!(put.protocol, Protocol::S3);
        assert!(!call(Method::HEAD, "/bkt/k", auth("us-west-2", "s3"), "").mutating);
    }

    #[test]
    fn route53_rest_operations_are_global() {
        let r53 = |m: Method, uri: &str| call(m, uri, auth("us-east-1", "route53"), "");
        let list = r53(Method::GET, "/2013-04-01/hostedzone");
        assert_eq!(list.operation, "ListHostedZones");
        assert_eq!(list.region, GLOBAL_REGION);
        assert_eq!(list.protocol, Protocol::Route53);
        assert!(!list.mutating);
        assert_eq!(
            r53(Method::POST, "/2013-04-01/hostedzone").operation,
            "CreateHostedZone"
        );
        assert_eq!(
            r53(Method::GET, "/2013-04-01/hostedzone/Z123ABC").operation,
            "GetHostedZone"
        );
        assert_eq!(
            r53(Method::GET, "/2013-04-01/hostedzone/Z123ABC/rrset").operation,
            "ListResourceRecordSets"
        );
        let change = r53(Method::POST, "/2013-04-01/hostedzone/Z123ABC/rrset/");
        assert_eq!(change.operation, "ChangeResourceRecordSets");
        assert!(change.mutating);
        assert_eq!(
            r53(Method::GET, "/2013-04-01/change/C2682N5HXP0BZ4").operation,
            "GetChange"
        );
        assert_eq!(
            r53(Method::DELETE, "/2013-04-01/hostedzone/Z123ABC").operation,
            "DeleteHostedZone"
        );
        assert_eq!(
            r53(Method::PUT, "/2013-04-01/weird/Z123ABC").operation,
            "PUT /2013-04-01/weird/{id}"
        );
    }

    #[test]
    fn unsigned_and_presigned_requests() {
        let unsigned = call(Method::GET, "/moto-api/data.json", HeaderMap::new(), "");
        assert_eq!(unsigned.service, UNKNOWN);
        assert_eq!(unsigned.region, UNKNOWN);
        let presigned = call(
            Method::GET,
            "/bkt/key?X-Amz-Credential=AK%2F20260101%2Feu-west-1%2Fs3%2Faws4_request&X-Amz-Signature=x",
            HeaderMap::new(),
            "",
        );
        assert_eq!(presigned.service, "s3");
        assert_eq!(presigned.region, "eu-west-1");
        assert_eq!(presigned.operation, "GetObject");
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            parse_form("a=1&b=x%2Fy+z&c&d=%zz&e=%4"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "x/y z".into()),
                ("c".into(), String::new()),
                ("d".into(), "%zz".into()),
                ("e".into(), "%4".into()),
            ]
        );
    }

    #[test]
    fn route53_units_count_upserts_twice() {
        let body = "<ChangeBatch><Changes><Change><Action>CREATE</Action></Change>\
                    <Change><Action>UPSERT</Action></Change><Change><Action>DELETE</Action>\
                    </Change><Change><Action>UPSERT</Action></Change></Changes></ChangeBatch>";
        assert_eq!(route53_change_units(body.as_bytes()), 6);
    }

    #[test]
    fn ec2_expensive_describe_detection() {
        let p = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert!(ec2_unfiltered_unpaginated(&p(&[
            ("Action", "DescribeInstances"),
            ("Version", "2016-11-15")
        ])));
        assert!(!ec2_unfiltered_unpaginated(&p(&[(
            "Filter.1.Name",
            "vpc-id"
        )])));
        assert!(!ec2_unfiltered_unpaginated(&p(&[("MaxResults", "5")])));
        assert!(!ec2_unfiltered_unpaginated(&p(&[("InstanceId.1", "i-1")])));
        assert!(!ec2_unfiltered_unpaginated(&p(&[("GroupName.1", "web")])));
    }
}
