//! The `PreSignedUrl` of a cross-region encrypted RDS copy: a SigV4 query-string presigned
//! `CopyDBSnapshot` or `CopyDBClusterSnapshot` request addressed to the **source** region's RDS
//! endpoint and signed for that region, which the destination region's RDS calls to read the
//! encrypted source. The SDK for Rust has no `SourceRegion` helper that would build it, so this
//! module does what boto3 and the Java SDK do: the copy's parameters plus `DestinationRegion`,
//! presigned with [`aws_sigv4`] for service `rds`.

use std::borrow::Cow;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    SignableBody, SignableRequest, SignatureLocation, SigningError, SigningParams, SigningSettings,
    sign,
};
use aws_smithy_runtime_api::client::identity::Identity;

/// The RDS API version the presigned request names.
pub const RDS_API_VERSION: &str = "2014-10-31";
/// How long a presigned copy URL stays valid (boto3's and AWS's default).
pub const PRESIGN_EXPIRES: Duration = Duration::from_secs(3600);

/// Why a copy request could not be presigned.
#[derive(Debug, thiserror::Error)]
pub enum PresignError {
    #[error("invalid signing parameters for region {region}")]
    Params {
        region: String,
        #[source]
        source: aws_sigv4::sign::v4::signing_params::BuildError,
    },
    #[error("signing the {action} request for region {region} failed")]
    Sign {
        action: &'static str,
        region: String,
        #[source]
        source: SigningError,
    },
}

/// Which copy operation is presigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyAction {
    /// `CopyDBSnapshot`.
    DbSnapshot,
    /// `CopyDBClusterSnapshot`.
    DbClusterSnapshot,
}

impl CopyAction {
    /// The API action name.
    pub fn action(self) -> &'static str {
        match self {
            CopyAction::DbSnapshot => "CopyDBSnapshot",
            CopyAction::DbClusterSnapshot => "CopyDBClusterSnapshot",
        }
    }

    fn source_param(self) -> &'static str {
        match self {
            CopyAction::DbSnapshot => "SourceDBSnapshotIdentifier",
            CopyAction::DbClusterSnapshot => "SourceDBClusterSnapshotIdentifier",
        }
    }

    fn target_param(self) -> &'static str {
        match self {
            CopyAction::DbSnapshot => "TargetDBSnapshotIdentifier",
            CopyAction::DbClusterSnapshot => "TargetDBClusterSnapshotIdentifier",
        }
    }
}

/// The copy a presigned URL authorises.
#[derive(Debug, Clone, Copy)]
pub struct CopyPresign<'a> {
    pub action: CopyAction,
    /// The region holding the source snapshot; the URL is addressed to and signed for it.
    pub source_region: &'a str,
    /// The region the copy is made in.
    pub destination_region: &'a str,
    /// The source snapshot's ARN.
    pub source_id: &'a str,
    /// The copy's identifier in the destination region.
    pub target_id: &'a str,
    /// The destination region's KMS key the copy is encrypted with.
    pub kms_key_id: &'a str,
}

/// The public RDS endpoint host of `region` (`rds.<region>.amazonaws.com`, `.com.cn` in China).
pub fn rds_host(region: &str) -> String {
    if region.starts_with("cn-") {
        format!("rds.{region}.amazonaws.com.cn")
    } else {
        format!("rds.{region}.amazonaws.com")
    }
}

/// RFC 3986 percent-encoding of a query component (SigV4's canonical encoding).
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Presigns `copy` with `credentials` at `time`: a `GET https://rds.<source>.amazonaws.com/?…`
/// URL carrying the copy's parameters and `X-Amz-Algorithm`, `X-Amz-Credential` (scope
/// `<date>/<source region>/rds/aws4_request`), `X-Amz-Date`, `X-Amz-Expires` (3600),
/// `X-Amz-SignedHeaders`, `X-Amz-Security-Token` for temporary credentials and
/// `X-Amz-Signature`. The same inputs give the same URL.
///
/// # Errors
/// A [`PresignError`] if the request cannot be signed (an unparsable URL, bad parameters).
pub fn presign_copy(
    copy: &CopyPresign<'_>,
    credentials: Credentials,
    time: SystemTime,
) -> Result<String, PresignError> {
    let sign_err = |source| PresignError::Sign {
        action: copy.action.action(),
        region: copy.source_region.to_owned(),
        source,
    };
    let host = rds_host(copy.source_region);
    let params = [
        ("Action", copy.action.action()),
        ("Version", RDS_API_VERSION),
        (copy.action.source_param(), copy.source_id),
        (copy.action.target_param(), copy.target_id),
        ("KmsKeyId", copy.kms_key_id),
        ("DestinationRegion", copy.destination_region),
    ];
    let query = params
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let url = format!("https://{host}/?{query}");

    let mut settings = SigningSettings::default();
    settings.signature_location = SignatureLocation::QueryParams;
    settings.expires_in = Some(PRESIGN_EXPIRES);
    let identity = Identity::from(credentials);
    let params: SigningParams<'_> = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(copy.source_region)
        .name("rds")
        .time(time)
        .settings(settings)
        .build()
        .map_err(|source| PresignError::Params {
            region: copy.source_region.to_owned(),
            source,
        })?
        .into();
    let request = SignableRequest::new(
        "GET",
        url.as_str(),
        std::iter::once(("host", host.as_str())),
        SignableBody::Bytes(&[]),
    )
    .map_err(sign_err)?;
    let (instructions, _signature) = sign(request, &params).map_err(sign_err)?.into_parts();
    let (_headers, signing) = instructions.into_parts();
    let mut out = url;
    for (name, value) in signing {
        let value: Cow<'_, str> = value;
        out.push('&');
        out.push_str(name);
        out.push('=');
        out.push_str(&encode(&value));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    fn decode(s: &str) -> String {
        let bytes = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < bytes.len() {
            if bytes[i] == b'%' && i + 2 < bytes.len() {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            } else {
                out.push(bytes[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    fn parse(url: &str) -> (String, BTreeMap<String, String>) {
        let (base, query) = url.split_once('?').unwrap();
        let params = query
            .split('&')
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (decode(k), decode(v))
            })
            .collect();
        (base.to_owned(), params)
    }

    const ARN: &str = "arn:aws:rds:us-east-1:123456789012:snapshot:rds:app-db-2026-11-24-10-00";
    // 2026-11-24T10:00:00Z
    const T: u64 = 1_795_514_400;

    fn copy(action: CopyAction) -> CopyPresign<'static> {
        CopyPresign {
            action,
            source_region: "us-east-1",
            destination_region: "us-west-2",
            source_id: ARN,
            target_id: "pl-rds-app-db-2026-11-24-10-00-0123abcd",
            kms_key_id: "arn:aws:kms:us-west-2:123456789012:key/abcd-ef",
        }
    }

    fn creds(token: Option<&str>) -> Credentials {
        Credentials::new(
            "AKIDEXAMPLE",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            token.map(str::to_owned),
            None,
            "test",
        )
    }

    #[test]
    fn db_snapshot_url_is_addressed_to_and_signed_for_the_source_region() {
        let time = UNIX_EPOCH + Duration::from_secs(T);
        let url = presign_copy(&copy(CopyAction::DbSnapshot), creds(None), time).unwrap();
        let (base, p) = parse(&url);
        assert_eq!(base, "https://rds.us-east-1.amazonaws.com/");
        assert_eq!(p["Action"], "CopyDBSnapshot");
        assert_eq!(p["Version"], "2014-10-31");
        assert_eq!(p["SourceDBSnapshotIdentifier"], ARN);
        assert_eq!(
            p["TargetDBSnapshotIdentifier"],
            "pl-rds-app-db-2026-11-24-10-00-0123abcd"
        );
        assert_eq!(
            p["KmsKeyId"],
            "arn:aws:kms:us-west-2:123456789012:key/abcd-ef"
        );
        assert_eq!(p["DestinationRegion"], "us-west-2");
        assert_eq!(p["X-Amz-Algorithm"], "AWS4-HMAC-SHA256");
        assert_eq!(
            p["X-Amz-Credential"],
            "AKIDEXAMPLE/20261124/us-east-1/rds/aws4_request"
        );
        assert_eq!(p["X-Amz-Date"], "20261124T100000Z");
        assert_eq!(p["X-Amz-Expires"], "3600");
        assert_eq!(p["X-Amz-SignedHeaders"], "host");
        let sig = &p["X-Amz-Signature"];
        assert_eq!(sig.len(), 64, "{sig}");
        assert!(sig.bytes().all(|b| b.is_ascii_hexdigit()), "{sig}");
        assert!(!p.contains_key("X-Amz-Security-Token"));
        // The ARN's colons and the key's slash are percent-encoded in the URL itself.
        assert!(url.contains("arn%3Aaws%3Ards%3Aus-east-1"), "{url}");
    }

    #[test]
    fn signing_is_deterministic_and_depends_on_every_input() {
        let time = UNIX_EPOCH + Duration::from_secs(T);
        let a = presign_copy(&copy(CopyAction::DbSnapshot), creds(None), time).unwrap();
        let b = presign_copy(&copy(CopyAction::DbSnapshot), creds(None), time).unwrap();
        assert_eq!(a, b);
        let sig = |u: &str| parse(u).1["X-Amz-Signature"].clone();
        let later = presign_copy(
            &copy(CopyAction::DbSnapshot),
            creds(None),
            time + Duration::from_secs(1),
        )
        .unwrap();
        assert_ne!(sig(&a), sig(&later));
        let mut other = copy(CopyAction::DbSnapshot);
        other.destination_region = "eu-west-1";
        let other = presign_copy(&other, creds(None), time).unwrap();
        assert_ne!(sig(&a), sig(&other));
    }

    #[test]
    fn cluster_url_names_cluster_parameters_and_carries_a_session_token() {
        let time = UNIX_EPOCH + Duration::from_secs(T);
        let url = presign_copy(
            &copy(CopyAction::DbClusterSnapshot),
            creds(Some("TOKEN/+=")),
            time,
        )
        .unwrap();
        let (_, p) = parse(&url);
        assert_eq!(p["Action"], "CopyDBClusterSnapshot");
        assert_eq!(p["SourceDBClusterSnapshotIdentifier"], ARN);
        assert!(p.contains_key("TargetDBClusterSnapshotIdentifier"));
        assert!(!p.contains_key("SourceDBSnapshotIdentifier"));
        assert_eq!(p["X-Amz-Security-Token"], "TOKEN/+=");
        assert_eq!(
            p["X-Amz-Credential"],
            "AKIDEXAMPLE/20261124/us-east-1/rds/aws4_request"
        );
    }

    #[test]
    fn china_regions_use_the_cn_domain() {
        assert_eq!(rds_host("cn-north-1"), "rds.cn-north-1.amazonaws.com.cn");
        assert_eq!(rds_host("eu-west-1"), "rds.eu-west-1.amazonaws.com");
    }
}
