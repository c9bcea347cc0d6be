//! Error responses in each AWS wire protocol's own envelope, so the SDK parses the code.
//!
//! EC2 `<Response><Errors><Error>`; awsQuery `<ErrorResponse><Error><Type>`; Route 53 the same
//! with its namespace; S3 a bare `<Error>`; JSON 1.0 `{"__type", "message"}` plus the
//! `x-amzn-query-error: Code;Sender` header of query-compatible services; RPC v2 CBOR the same
//! map encoded as CBOR. Shapes checked against the SDK's generated parsers
//! (`ec2_query_errors`, `rest_xml_wrapped_errors`, `rest_xml_unwrapped_errors`, `json_errors`,
//! `cbor_errors`, `aws_query_compatible_errors`).

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::identify::Protocol;

/// An error to answer with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
}

impl ErrorReply {
    pub fn new(status: u16, code: &str, message: &str) -> ErrorReply {
        ErrorReply {
            status: StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    /// `Sender` for client errors, `Receiver` for server errors.
    fn fault_type(&self) -> &'static str {
        if self.status.is_server_error() {
            "Receiver"
        } else {
            "Sender"
        }
    }
}

/// Escapes text for an XML element.
fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// Appends a CBOR text string (major type 3).
fn cbor_text(out: &mut Vec<u8>, text: &str) {
    let len = text.len();
    if len < 24 {
        // Lossless: len < 24 fits the 5-bit argument.
        out.push(0x60 | u8::try_from(len).unwrap_or(23));
    } else if let Ok(l) = u8::try_from(len) {
        out.push(0x78);
        out.push(l);
    } else if let Ok(l) = u16::try_from(len) {
        out.push(0x79);
        out.extend_from_slice(&l.to_be_bytes());
    } else {
        out.push(0x7a);
        out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_be_bytes());
    }
    out.extend_from_slice(text.as_bytes());
}

/// `{"__type": code, "message": message}` as CBOR.
pub fn cbor_error_body(code: &str, message: &str) -> Vec<u8> {
    let mut out = vec![0xa2];
    cbor_text(&mut out, "__type");
    cbor_text(&mut out, code);
    cbor_text(&mut out, "message");
    cbor_text(&mut out, message);
    out
}

/// The error response for `protocol`.
pub fn error_response(
    protocol: Protocol,
    reply: &ErrorReply,
    request_id: &str,
) -> Response<Full<Bytes>> {
    let code = xml_escape(&reply.code);
    let message = xml_escape(&reply.message);
    let rid = xml_escape(request_id);
    let kind = reply.fault_type();
    let (content_type, body): (&str, Vec<u8>) = match protocol {
        Protocol::Ec2Query => (
            "text/xml;charset=UTF-8",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Response><Errors><Error>\
                 <Code>{code}</Code><Message>{message}</Message></Error></Errors>\
                 <RequestID>{rid}</RequestID></Response>"
            )
            .into_bytes(),
        ),
        Protocol::AwsQuery => (
            "text/xml",
            format!(
                "<ErrorResponse><Error><Type>{kind}</Type><Code>{code}</Code>\
                 <Message>{message}</Message></Error><RequestId>{rid}</RequestId>\
                 </ErrorResponse>"
            )
            .into_bytes(),
        ),
        Protocol::Route53 => (
            "text/xml",
            format!(
                "<?xml version=\"1.0\"?>\n<ErrorResponse \
                 xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\"><Error>\
                 <Type>{kind}</Type><Code>{code}</Code><Message>{message}</Message></Error>\
                 <RequestId>{rid}</RequestId></ErrorResponse>"
            )
            .into_bytes(),
        ),
        Protocol::S3 => (
            "application/xml",
            format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message><RequestId>{rid}</RequestId></Error>"
            )
            .into_bytes(),
        ),
        Protocol::AwsJson => (
            "application/x-amz-json-1.0",
            serde_json::json!({ "__type": reply.code, "message": reply.message })
                .to_string()
                .into_bytes(),
        ),
        Protocol::RpcV2Cbor => (
            "application/cbor",
            cbor_error_body(&reply.code, &reply.message),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amzn-requestid", v.clone());
        headers.insert("x-amz-request-id", v);
    }
    if matches!(protocol, Protocol::AwsJson | Protocol::RpcV2Cbor)
        && let Ok(v) = HeaderValue::from_str(&format!("{};{kind}", reply.code))
    {
        headers.insert("x-amzn-query-error", v);
    }
    if protocol == Protocol::RpcV2Cbor {
        headers.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_text(r: Response<Full<Bytes>>) -> String {
        let bytes = r.into_body().collect().await.expect("body").to_bytes();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    #[tokio::test]
    async fn ec2_envelope_escapes_and_carries_status() {
        let reply = ErrorReply::new(503, "RequestLimitExceeded", "Request limit <exceeded> & co");
        let r = error_response(Protocol::Ec2Query, &reply, "rid-1");
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        let text = body_text(r).await;
        assert!(text.contains("<Response><Errors><Error><Code>RequestLimitExceeded</Code>"));
        assert!(text.contains("Request limit &lt;exceeded&gt; &amp; co"));
        assert!(text.contains("<RequestID>rid-1</RequestID>"));
    }

    #[tokio::test]
    async fn query_and_route53_envelopes_carry_type() {
        let reply = ErrorReply::new(400, "Throttling", "Rate exceeded");
        let q = body_text(error_response(Protocol::AwsQuery, &reply, "r")).await;
        assert!(q.starts_with("<ErrorResponse><Error><Type>Sender</Type><Code>Throttling</Code>"));
        let r53 = body_text(error_response(Protocol::Route53, &reply, "r")).await;
        assert!(r53.contains("xmlns=\"https://route53.amazonaws.com/doc/2013-04-01/\""));
        let server = ErrorReply::new(500, "InternalFailure", "x");
        let q5 = body_text(error_response(Protocol::AwsQuery, &server, "r")).await;
        assert!(q5.contains("<Type>Receiver</Type>"));
    }

    #[tokio::test]
    async fn json_envelope_has_query_error_header() {
        let reply = ErrorReply::new(400, "Throttling", "Rate exceeded");
        let r = error_response(Protocol::AwsJson, &reply, "r");
        assert_eq!(
            r.headers()
                .get("x-amzn-query-error")
                .and_then(|v| v.to_str().ok()),
            Some("Throttling;Sender")
        );
        let v: serde_json::Value = serde_json::from_str(&body_text(r).await).expect("json");
        assert_eq!(v["__type"], "Throttling");
        assert_eq!(v["message"], "Rate exceeded");
    }

    #[test]
    fn cbor_body_encodes_a_two_entry_map() {
        let body = cbor_error_body("Throttling", "Rate exceeded");
        let mut expected = vec![0xa2, 0x66];
        expected.extend_from_slice(b"__type");
        expected.push(0x6a);
        expected.extend_from_slice(b"Throttling");
        expected.push(0x67);
        expected.extend_from_slice(b"message");
        expected.push(0x6d);
        expected.extend_from_slice(b"Rate exceeded");
        assert_eq!(body, expected);
        let long = "m".repeat(300);
        let body = cbor_error_body("X", &long);
        let at = body.len() - 300 - 3;
        assert_eq!(&body[at..at + 3], &[0x79, 0x01, 0x2c]);
    }
}
