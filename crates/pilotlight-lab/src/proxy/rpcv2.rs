//! Smithy RPC v2 CBOR ↔ AWS JSON 1.0, so the current CloudWatch SDK works against moto.
//!
//! aws-sdk-cloudwatch sends `POST /service/<Service>/operation/<Op>` with a CBOR body
//! (gzip-compressed, `Content-Encoding: gzip`, when it is 10 KiB or more, as `PutMetricData`
//! batches are); moto 5.2 only speaks awsQuery and JSON 1.0 for CloudWatch and answers that
//! path with 404. [`to_json_request`] turns the request into `POST /` with
//! `X-Amz-Target: <Service>.<Op>` and `Content-Type: application/x-amz-json-1.0`, the body
//! converted CBOR→JSON: timestamps (tag 1) become epoch-seconds numbers, which moto's JSON
//! protocol parses; byte strings become base64; non-finite floats become Python's `NaN` /
//! `Infinity` / `-Infinity` tokens, so moto's own validation answers them as AWS does. The
//! `Authorization` header (whose credential scope routes the call to the region) and the other
//! headers stay.
//!
//! [`to_cbor_response`] turns moto's JSON answer back into CBOR with `Content-Type:
//! application/cbor` and `smithy-protocol: rpc-v2-cbor`. The SDK's CBOR decoder is typed, so
//! the conversion follows the output members of the CloudWatch model (read from the SDK's
//! generated deserializers, aws-sdk-cloudwatch 1.140): timestamp members become tag 1,
//! `double` members floats, `integer`/`long` members integers and `MetricWidgetImage` a byte
//! string; everything else keeps its JSON type. CloudWatch is the only RPC v2 CBOR service the
//! lab serves. moto's JSON errors (`__type`, `message`) are converted like any answer, and its
//! `x-amzn-query-error: Code;Sender` header, from which the SDK takes the error code
//! (`InvalidParameterValue`, …), is passed on. An error answer that is not JSON (moto's HTML
//! 500 for an unimplemented operation, an empty 404) becomes a CBOR `InternalFailure` (5xx) or
//! `UnknownOperationException` (4xx) with moto's status.

use std::io::Read as _;

use bytes::Bytes;
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;

use super::cbor::{self, CborError, Value};
use super::envelope::{self, ErrorReply};
use super::identify::Protocol;

/// The JSON 1.0 content type moto expects.
const JSON_CONTENT_TYPE: &str = "application/x-amz-json-1.0";
/// Largest inflated (gunzipped) request body.
const MAX_INFLATED_BYTES: usize = super::MAX_BODY_BYTES;
/// Longest piece of a non-JSON moto error body quoted in the CBOR error's message.
const MAX_QUOTED_BYTES: usize = 200;

/// Output members that are timestamps in the CloudWatch model.
const TIMESTAMP_MEMBERS: [&str; 14] = [
    "AlarmConfigurationUpdatedTimestamp",
    "CreatedAt",
    "CreationDate",
    "EndTime",
    "ExpireDate",
    "LastModified",
    "LastUpdateDate",
    "LastUpdatedTimestamp",
    "StartDate",
    "StartTime",
    "StateTransitionedTimestamp",
    "StateUpdatedTimestamp",
    "Timestamp",
    "UpdatedAt",
];
/// Output members that are lists of timestamps (`MetricDataResult.Timestamps`).
const TIMESTAMP_LIST_MEMBERS: [&str; 1] = ["Timestamps"];
/// Output members that are doubles.
const DOUBLE_MEMBERS: [&str; 11] = [
    "AggregateValue",
    "ApproximateAggregateValue",
    "ApproximateValue",
    "Average",
    "MaxContributorValue",
    "Maximum",
    "Minimum",
    "SampleCount",
    "Sum",
    "Threshold",
    "UniqueContributors",
];
/// Output members that are lists of doubles (`MetricDataResult.Values`).
const DOUBLE_LIST_MEMBERS: [&str; 1] = ["Values"];
/// Output members that are maps to doubles (`Datapoint.ExtendedStatistics`).
const DOUBLE_MAP_MEMBERS: [&str; 1] = ["ExtendedStatistics"];
/// Output members that are `integer` or `long`.
const INTEGER_MEMBERS: [&str; 16] = [
    "ActionLogLineCount",
    "ActionsSuppressorExtensionPeriod",
    "ActionsSuppressorWaitPeriod",
    "ApproximateUniqueCount",
    "DatapointsToAlarm",
    "EndTimeOffset",
    "EvaluationInterval",
    "EvaluationPeriods",
    "PendingPeriod",
    "Period",
    "QueryResultsToAlarm",
    "QueryResultsToEvaluate",
    "RecoveryPeriod",
    "Size",
    "StartTimeOffset",
    "WarmUpPeriodDurationInMinutes",
];
/// Output members that are blobs (base64 in JSON).
const BLOB_MEMBERS: [&str; 1] = ["MetricWidgetImage"];

/// Why a CBOR request could not be turned into JSON.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The body is not CBOR.
    #[error("the request body is not CBOR")]
    Cbor(#[source] CborError),
    /// A gzip body could not be inflated.
    #[error("the gzip request body could not be inflated")]
    Gzip(#[source] std::io::Error),
    /// A gzip body inflates beyond the proxy's bound.
    #[error("the gzip request body inflates beyond {MAX_INFLATED_BYTES} bytes")]
    TooLarge,
    /// A content coding other than gzip.
    #[error("unsupported Content-Encoding {0:?}")]
    Encoding(String),
    /// The body holds a map key JSON cannot express.
    #[error("a CBOR map key is not a text string")]
    NonTextKey,
    /// The path is not `/service/<Service>/operation/<Op>`.
    #[error("the path {0:?} is not /service/<service>/operation/<operation>")]
    Path(String),
    /// The rewritten request could not be built.
    #[error("building the JSON request")]
    Build(#[source] http::Error),
}

impl TranslateError {
    /// The error the client gets: 400 `SerializationException` for what it sent.
    pub fn reply(&self) -> ErrorReply {
        let mut message = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        ErrorReply::new(400, "SerializationException", &message)
    }
}

/// `X-Amz-Target` for an RPC v2 CBOR path: `/service/S/operation/Op` → `S.Op`.
pub fn target(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/service/")?;
    let (service, op) = rest.split_once("/operation/")?;
    let ok = |s: &str| !s.is_empty() && !s.contains('/');
    (ok(service) && ok(op)).then(|| format!("{service}.{op}"))
}

/// The JSON 1.0 request for moto: same method and headers (without the CBOR-specific ones
/// and the stale length/encoding), path `/`, `X-Amz-Target`, and the body as JSON.
///
/// # Errors
///
/// [`TranslateError`] when the path is not an RPC v2 operation path or the body (after gzip)
/// is not CBOR that JSON can express.
pub fn to_json_request(
    parts: &http::request::Parts,
    body: &[u8],
) -> Result<(http::request::Parts, Bytes), TranslateError> {
    let target = target(parts.uri.path())
        .ok_or_else(|| TranslateError::Path(parts.uri.path().to_owned()))?;
    let inflated;
    let cbor_bytes = match parts
        .headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("").trim().to_ascii_lowercase())
        .as_deref()
    {
        None | Some("" | "identity") => body,
        Some("gzip" | "x-gzip") => {
            inflated = gunzip(body)?;
            inflated.as_slice()
        }
        Some(other) => return Err(TranslateError::Encoding(other.to_owned())),
    };
    let json = if cbor_bytes.is_empty() {
        "{}".to_owned()
    } else {
        let value = cbor::decode(cbor_bytes).map_err(TranslateError::Cbor)?;
        let mut out = String::with_capacity(cbor_bytes.len() * 2);
        write_json(&mut out, &value)?;
        out
    };
    let mut builder = Request::builder().method(Method::POST).uri("/");
    if let Some(headers) = builder.headers_mut() {
        for (name, value) in &parts.headers {
            if !is_cbor_only(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(JSON_CONTENT_TYPE),
        );
        let target = HeaderValue::from_str(&target)
            .map_err(|e| TranslateError::Build(http::Error::from(e)))?;
        headers.insert("x-amz-target", target);
    }
    let (json_parts, ()) = builder
        .body(())
        .map_err(TranslateError::Build)?
        .into_parts();
    Ok((json_parts, Bytes::from(json)))
}

/// Headers of the CBOR request that must not reach moto with the JSON body.
fn is_cbor_only(name: &HeaderName) -> bool {
    name == header::CONTENT_TYPE
        || name == header::CONTENT_LENGTH
        || name == header::CONTENT_ENCODING
        || name == header::ACCEPT
        || name.as_str() == "smithy-protocol"
        || name.as_str() == "x-amz-target"
}

fn gunzip(body: &[u8]) -> Result<Vec<u8>, TranslateError> {
    let limit = u64::try_from(MAX_INFLATED_BYTES).unwrap_or(u64::MAX);
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(body)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(TranslateError::Gzip)?;
    if out.len() > MAX_INFLATED_BYTES {
        return Err(TranslateError::TooLarge);
    }
    Ok(out)
}

/// Writes `value` as JSON text (see the module docs for timestamps, bytes and non-finite
/// floats).
fn write_json(out: &mut String, value: &Value) -> Result<(), TranslateError> {
    match value {
        Value::Integer(i) => out.push_str(&i.to_string()),
        Value::Float(f) => write_float(out, *f),
        Value::Timestamp(secs) => {
            // Whole seconds as an integer, fractions with their digits.
            if secs.fract() == 0.0 && secs.abs() < 9.0e15 {
                out.push_str(&format!("{secs:.0}"));
            } else {
                write_float(out, *secs);
            }
        }
        Value::Text(t) => write_string(out, t),
        Value::Bytes(b) => write_string(out, &base64_encode(b)),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Null | Value::Undefined => out.push_str("null"),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(out, item)?;
            }
            out.push(']');
        }
        Value::Map(entries) => {
            out.push('{');
            for (i, (k, v)) in entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let Value::Text(key) = k else {
                    return Err(TranslateError::NonTextKey);
                };
                write_string(out, key);
                out.push(':');
                write_json(out, v)?;
            }
            out.push('}');
        }
        // Bignums, decimals and other tags are not in CloudWatch's model: their content.
        Value::Tag(_, content) => write_json(out, content)?,
    }
    Ok(())
}

fn write_float(out: &mut String, f: f64) {
    if f.is_nan() {
        out.push_str("NaN");
    } else if f == f64::INFINITY {
        out.push_str("Infinity");
    } else if f == f64::NEG_INFINITY {
        out.push_str("-Infinity");
    } else {
        // Debug prints the shortest text that parses back to the same double, with a `.0`
        // or an exponent, so Python reads a float.
        out.push_str(&format!("{f:?}"));
    }
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(BASE64[((n >> (18 - 6 * i)) & 0x3f) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Standard base64 (padding optional, whitespace ignored); `None` for other characters.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for c in text.bytes().filter(|c| !c.is_ascii_whitespace()) {
        if c == b'=' {
            break;
        }
        let v = BASE64.iter().position(|b| *b == c)?;
        acc = (acc << 6) | u32::try_from(v).ok()?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(u8::try_from((acc >> bits) & 0xff).ok()?);
        }
    }
    Some(out)
}

/// What a JSON member's name says about its type in the CloudWatch output model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Member {
    Timestamp,
    Double,
    Integer,
    Blob,
    TimestampList,
    DoubleList,
    DoubleMap,
    Other,
}

impl Member {
    fn of(name: &str) -> Member {
        let is = |list: &[&str]| list.contains(&name);
        if is(&TIMESTAMP_MEMBERS) {
            Member::Timestamp
        } else if is(&DOUBLE_MEMBERS) {
            Member::Double
        } else if is(&INTEGER_MEMBERS) {
            Member::Integer
        } else if is(&BLOB_MEMBERS) {
            Member::Blob
        } else if is(&TIMESTAMP_LIST_MEMBERS) {
            Member::TimestampList
        } else if is(&DOUBLE_LIST_MEMBERS) {
            Member::DoubleList
        } else if is(&DOUBLE_MAP_MEMBERS) {
            Member::DoubleMap
        } else {
            Member::Other
        }
    }

    /// The type of the elements of a list or the values of a map member.
    fn element(self) -> Member {
        match self {
            Member::TimestampList => Member::Timestamp,
            Member::DoubleList | Member::DoubleMap => Member::Double,
            _ => Member::Other,
        }
    }
}

/// Converts moto's JSON to CBOR, typing scalars by the member they sit in.
pub fn json_to_cbor(value: &serde_json::Value) -> Value {
    convert(value, Member::Other)
}

fn convert(value: &serde_json::Value, member: Member) -> Value {
    use serde_json::Value as J;
    match value {
        J::Null => Value::Null,
        J::Bool(b) => Value::Bool(*b),
        J::Number(n) => number(n, member),
        J::String(s) => match member {
            Member::Blob => base64_decode(s).map_or_else(|| Value::Text(s.clone()), Value::Bytes),
            _ => Value::Text(s.clone()),
        },
        J::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| convert(item, member.element()))
                .collect(),
        ),
        J::Object(entries) => Value::Map(
            entries
                .iter()
                .map(|(k, v)| {
                    let inner = match member {
                        // A map's values have the map's element type; a structure's members
                        // their own.
                        Member::DoubleMap => Member::Double,
                        _ => Member::of(k),
                    };
                    (Value::Text(k.clone()), convert(v, inner))
                })
                .collect(),
        ),
    }
}

fn number(n: &serde_json::Number, member: Member) -> Value {
    let as_float = || n.as_f64().unwrap_or(f64::NAN);
    match member {
        Member::Timestamp => Value::Timestamp(as_float()),
        Member::Double => Value::Float(as_float()),
        Member::Integer => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Integer(i128::from(i)),
            (None, Some(u)) => Value::Integer(i128::from(u)),
            // A float where the model says integer: its integral value when it has one.
            _ => {
                let f = as_float();
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Value::Integer(f as i128)
                } else {
                    Value::Float(f)
                }
            }
        },
        _ => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Value::Integer(i128::from(i)),
            (None, Some(u)) => Value::Integer(i128::from(u)),
            _ => Value::Float(as_float()),
        },
    }
}

/// moto's JSON 1.0 answer as the RPC v2 CBOR answer the SDK expects.
pub fn to_cbor_response(
    status: StatusCode,
    moto_headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Response<Full<Bytes>> {
    let trimmed = body.trim_ascii();
    let parsed = if trimmed.is_empty() && status.is_success() {
        Ok(serde_json::Value::Object(serde_json::Map::new()))
    } else {
        serde_json::from_slice::<serde_json::Value>(trimmed)
    };
    let json = match parsed {
        Ok(json) => json,
        Err(_) => return non_json_answer(status, body, request_id),
    };
    let cbor_body = cbor::encode(&json_to_cbor(&json));
    let mut response = Response::new(Full::new(Bytes::from(cbor_body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    for (name, value) in moto_headers {
        if name == header::CONTENT_TYPE
            || name == header::CONTENT_LENGTH
            || name == header::CONTENT_ENCODING
            || super::is_hop_by_hop(name)
        {
            continue;
        }
        headers.append(name.clone(), value.clone());
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/cbor"),
    );
    headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    response
}

/// A moto answer that is not JSON: an error in the CBOR envelope, keeping moto's status.
fn non_json_answer(status: StatusCode, body: &[u8], request_id: &str) -> Response<Full<Bytes>> {
    let quoted: String = String::from_utf8_lossy(body)
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_QUOTED_BYTES)
        .collect();
    let reply = if status.is_client_error() {
        ErrorReply::new(
            status.as_u16(),
            "UnknownOperationException",
            &format!("moto answered HTTP {status} without JSON: {quoted}"),
        )
    } else if status.is_server_error() {
        ErrorReply::new(
            status.as_u16(),
            "InternalFailure",
            &format!("moto answered HTTP {status} without JSON: {quoted}"),
        )
    } else {
        ErrorReply::new(
            502,
            "BadGateway",
            &format!("moto answered HTTP {status} with a body that is not JSON: {quoted}"),
        )
    };
    envelope::error_response(Protocol::RpcV2Cbor, &reply, request_id)
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use http_body_util::BodyExt as _;

    use super::*;

    fn map(entries: Vec<(&str, Value)>) -> Value {
        Value::Map(
            entries
                .into_iter()
                .map(|(k, v)| (Value::text(k), v))
                .collect(),
        )
    }

    fn cbor_request(path: &str, body: Vec<u8>, gzip: bool) -> (http::request::Parts, Bytes) {
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header(
                "authorization",
                "AWS4-HMAC-SHA256 Credential=AK/20260101/us-east-1/monitoring/aws4_request, \
                 SignedHeaders=host, Signature=x",
            )
            .header("content-type", "application/cbor")
            .header("accept", "application/cbor")
            .header("smithy-protocol", "rpc-v2-cbor")
            .header("content-length", body.len().to_string());
        let body = if gzip {
            builder = builder.header("content-encoding", "gzip");
            let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(&body).expect("gzip");
            enc.finish().expect("gzip")
        } else {
            body
        };
        let (parts, ()) = builder.body(()).expect("request").into_parts();
        (parts, Bytes::from(body))
    }

    fn put_metric_data() -> Value {
        map(vec![
            ("Namespace", Value::text("AWS/EC2")),
            (
                "MetricData",
                Value::Array(vec![map(vec![
                    ("MetricName", Value::text("CPUUtilization")),
                    (
                        "Dimensions",
                        Value::Array(vec![map(vec![
                            ("Name", Value::text("InstanceId")),
                            ("Value", Value::text("i-0\"quoted\\")),
                        ])]),
                    ),
                    ("Timestamp", Value::Timestamp(1_795_552_165.0)),
                    (
                        "Values",
                        Value::Array(vec![Value::Float(10.5), Value::Float(20.0)]),
                    ),
                    (
                        "Counts",
                        Value::Array(vec![Value::Float(1.0), Value::Float(2.0)]),
                    ),
                    ("StorageResolution", Value::Integer(60)),
                ])]),
            ),
            ("StrictEntityValidation", Value::Bool(false)),
        ])
    }

    #[test]
    fn target_from_the_operation_path() {
        assert_eq!(
            target("/service/GraniteServiceVersion20100801/operation/GetMetricData").as_deref(),
            Some("GraniteServiceVersion20100801.GetMetricData")
        );
        assert_eq!(target("/"), None);
        assert_eq!(target("/service/S/operation/"), None);
        assert_eq!(target("/service/S/operation/A/B"), None);
    }

    #[test]
    fn request_becomes_json_with_target_and_epoch_timestamps() {
        for gzip in [false, true] {
            let (parts, body) = cbor_request(
                "/service/GraniteServiceVersion20100801/operation/PutMetricData",
                cbor::encode(&put_metric_data()),
                gzip,
            );
            let (json_parts, json_body) = to_json_request(&parts, &body).expect("translates");
            assert_eq!(json_parts.uri.path(), "/");
            assert_eq!(json_parts.method, Method::POST);
            let h = &json_parts.headers;
            assert_eq!(
                h.get("x-amz-target").and_then(|v| v.to_str().ok()),
                Some("GraniteServiceVersion20100801.PutMetricData")
            );
            assert_eq!(
                h.get("content-type").and_then(|v| v.to_str().ok()),
                Some(JSON_CONTENT_TYPE)
            );
            assert!(h.get("authorization").is_some());
            for gone in [
                "content-length",
                "content-encoding",
                "smithy-protocol",
                "accept",
            ] {
                assert!(h.get(gone).is_none(), "{gone} still set");
            }
            let text = std::str::from_utf8(&json_body).expect("utf-8");
            assert!(text.contains("\"Timestamp\":1795552165,"), "{text}");
            assert!(text.contains("\"Values\":[10.5,20.0]"), "{text}");
            assert!(text.contains("\"StorageResolution\":60"), "{text}");
            let v: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
            assert_eq!(
                v["MetricData"][0]["Dimensions"][0]["Value"],
                "i-0\"quoted\\"
            );
            assert_eq!(v["StrictEntityValidation"], false);
        }
    }

    #[test]
    fn special_values_in_json() {
        let mut out = String::new();
        let value = map(vec![
            ("nan", Value::Float(f64::NAN)),
            ("inf", Value::Float(f64::INFINITY)),
            ("ninf", Value::Float(f64::NEG_INFINITY)),
            ("frac", Value::Timestamp(1_795_552_165.25)),
            ("big", Value::Float(1e300)),
            ("blob", Value::Bytes(b"hello!?".to_vec())),
            ("ctl", Value::text("a\u{1}\n")),
            ("null", Value::Null),
            ("neg", Value::Integer(-5)),
        ]);
        write_json(&mut out, &value).expect("writes");
        assert_eq!(
            out,
            "{\"nan\":NaN,\"inf\":Infinity,\"ninf\":-Infinity,\"frac\":1795552165.25,\
             \"big\":1e300,\"blob\":\"aGVsbG8hPw==\",\"ctl\":\"a\\u0001\\n\",\"null\":null,\
             \"neg\":-5}"
        );
        let mut out = String::new();
        let bad = Value::Map(vec![(Value::Integer(1), Value::Null)]);
        assert!(matches!(
            write_json(&mut out, &bad),
            Err(TranslateError::NonTextKey)
        ));
    }

    #[test]
    fn base64_round_trips() {
        for input in [&b""[..], b"f", b"fo", b"foo", b"foob", b"fooba", b"foobar"] {
            let encoded = base64_encode(input);
            assert_eq!(base64_decode(&encoded).as_deref(), Some(input));
        }
        assert_eq!(base64_encode(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64_decode("Zm9v\nYg=="), Some(b"foob".to_vec()));
        assert_eq!(base64_decode("Zm9v!"), None);
    }

    #[test]
    fn bad_requests_are_refused() {
        let (parts, _) = cbor_request("/service/S/operation/Op", Vec::new(), false);
        let (_, body) = to_json_request(&parts, &Bytes::new()).expect("empty body is {}");
        assert_eq!(&body[..], b"{}");
        let err = to_json_request(&parts, &Bytes::from_static(&[0xa1, 0x61])).expect_err("cbor");
        assert!(matches!(err, TranslateError::Cbor(_)));
        let reply = err.reply();
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(reply.code, "SerializationException");
        assert!(reply.message.contains("ends early"), "{}", reply.message);
        let (parts, _) = cbor_request("/", vec![0xa0], false);
        assert!(matches!(
            to_json_request(&parts, &Bytes::from_static(&[0xa0])),
            Err(TranslateError::Path(_))
        ));
        let (mut parts, _) = cbor_request("/service/S/operation/Op", vec![0xa0], false);
        parts
            .headers
            .insert("content-encoding", HeaderValue::from_static("br"));
        assert!(matches!(
            to_json_request(&parts, &Bytes::from_static(&[0xa0])),
            Err(TranslateError::Encoding(_))
        ));
        parts
            .headers
            .insert("content-encoding", HeaderValue::from_static("gzip"));
        assert!(matches!(
            to_json_request(&parts, &Bytes::from_static(&[0xa0])),
            Err(TranslateError::Gzip(_))
        ));
    }

    async fn body_of(r: Response<Full<Bytes>>) -> (StatusCode, HeaderMap, Value) {
        let status = r.status();
        let headers = r.headers().clone();
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        (status, headers, cbor::decode(&bytes).expect("CBOR body"))
    }

    #[tokio::test]
    async fn answers_are_typed_by_the_cloudwatch_model() {
        let json = br#"{"MetricDataResults": [{"Id": "m1", "Label": "CPUUtilization Maximum",
            "Timestamps": [1795552165, 1795552465.5], "Values": [20.0, 30, 1e3],
            "StatusCode": "Complete"}], "Datapoints": [{"Timestamp": 1795552165,
            "SampleCount": 5, "Average": 20.1, "Maximum": 30.0, "Unit": "Percent",
            "ExtendedStatistics": {"p95": 29}}], "Period": 60.0, "Size": 12,
            "MetricWidgetImage": "aGVsbG8=", "NextToken": "abc", "Count": 3, "Ratio": 0.5,
            "Empty": null, "Flag": true}"#;
        let mut moto = HeaderMap::new();
        moto.insert("content-type", HeaderValue::from_static("text"));
        moto.insert("x-amzn-requestid", HeaderValue::from_static("rid-1"));
        moto.insert("content-length", HeaderValue::from_static("999"));
        let (status, headers, v) =
            body_of(to_cbor_response(StatusCode::OK, &moto, json, "proxy-rid")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(
            headers.get("content-type").and_then(|v| v.to_str().ok()),
            Some("application/cbor")
        );
        assert_eq!(
            headers.get("smithy-protocol").and_then(|v| v.to_str().ok()),
            Some("rpc-v2-cbor")
        );
        assert_eq!(
            headers
                .get("x-amzn-requestid")
                .and_then(|v| v.to_str().ok()),
            Some("rid-1")
        );
        assert!(headers.get("content-length").is_none());
        let Some(Value::Array(results)) = v.get("MetricDataResults") else {
            panic!("{v:?}");
        };
        let r = &results[0];
        assert_eq!(
            r.get("Timestamps"),
            Some(&Value::Array(vec![
                Value::Timestamp(1_795_552_165.0),
                Value::Timestamp(1_795_552_465.5)
            ]))
        );
        assert_eq!(
            r.get("Values"),
            Some(&Value::Array(vec![
                Value::Float(20.0),
                Value::Float(30.0),
                Value::Float(1000.0)
            ]))
        );
        assert_eq!(r.get("StatusCode"), Some(&Value::text("Complete")));
        let Some(Value::Array(points)) = v.get("Datapoints") else {
            panic!("{v:?}");
        };
        let p = &points[0];
        assert_eq!(p.get("Timestamp"), Some(&Value::Timestamp(1_795_552_165.0)));
        assert_eq!(p.get("SampleCount"), Some(&Value::Float(5.0)));
        assert_eq!(p.get("Average"), Some(&Value::Float(20.1)));
        assert_eq!(p.get("Unit"), Some(&Value::text("Percent")));
        assert_eq!(
            p.get("ExtendedStatistics").and_then(|m| m.get("p95")),
            Some(&Value::Float(29.0))
        );
        assert_eq!(v.get("Period"), Some(&Value::Integer(60)));
        assert_eq!(v.get("Size"), Some(&Value::Integer(12)));
        assert_eq!(
            v.get("MetricWidgetImage"),
            Some(&Value::Bytes(b"hello".to_vec()))
        );
        assert_eq!(v.get("NextToken"), Some(&Value::text("abc")));
        assert_eq!(v.get("Count"), Some(&Value::Integer(3)));
        assert_eq!(v.get("Ratio"), Some(&Value::Float(0.5)));
        assert_eq!(v.get("Empty"), Some(&Value::Null));
        assert_eq!(v.get("Flag"), Some(&Value::Bool(true)));
    }

    #[tokio::test]
    async fn moto_errors_keep_code_header_and_status() {
        let json = br#"{"__type": "GraniteServiceVersion20100801#InvalidParameterValueException",
            "message": "The parameter StartTime must be less than the parameter EndTime.",
            "Message": "The parameter StartTime must be less than the parameter EndTime."}"#;
        let mut moto = HeaderMap::new();
        moto.insert(
            "x-amzn-query-error",
            HeaderValue::from_static("InvalidParameterValue;Sender"),
        );
        let (status, headers, v) =
            body_of(to_cbor_response(StatusCode::BAD_REQUEST, &moto, json, "r")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(
            headers
                .get("x-amzn-query-error")
                .and_then(|v| v.to_str().ok()),
            Some("InvalidParameterValue;Sender")
        );
        assert_eq!(
            v.get("__type"),
            Some(&Value::text(
                "GraniteServiceVersion20100801#InvalidParameterValueException"
            ))
        );
        assert!(matches!(v.get("message"), Some(Value::Text(m)) if m.contains("StartTime")));

        let html = b"<!doctype html><title>500 Internal Server Error</title>";
        let (status, headers, v) = body_of(to_cbor_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            &HeaderMap::new(),
            html,
            "r",
        ))
        .await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(v.get("__type"), Some(&Value::text("InternalFailure")));
        assert_eq!(
            headers
                .get("x-amzn-query-error")
                .and_then(|v| v.to_str().ok()),
            Some("InternalFailure;Receiver")
        );
        let (status, _, v) = body_of(to_cbor_response(
            StatusCode::NOT_FOUND,
            &HeaderMap::new(),
            b"",
            "r",
        ))
        .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(
            v.get("__type"),
            Some(&Value::text("UnknownOperationException"))
        );
        let (status, _, v) = body_of(to_cbor_response(
            StatusCode::OK,
            &HeaderMap::new(),
            b"<xml/>",
            "r",
        ))
        .await;
        assert_eq!(status, StatusCode::BAD_GATEWAY);
        assert_eq!(v.get("__type"), Some(&Value::text("BadGateway")));
        // An empty success (moto's `{}` is the usual one) is an empty map.
        let (status, _, v) = body_of(to_cbor_response(
            StatusCode::OK,
            &HeaderMap::new(),
            b"",
            "r",
        ))
        .await;
        assert_eq!((status, v), (StatusCode::OK, Value::Map(Vec::new())));
    }
}
