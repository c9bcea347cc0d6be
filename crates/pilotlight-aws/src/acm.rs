//! Certificate Manager in two faces. [`PrimaryAcm`] describes the certificates the primary's
//! listeners use (their domain names go into the inventory, SPEC R5); [`DrAcm`] lists the DR
//! region's issued certificates so readiness (R10) and the restore (D6) can find each primary
//! certificate's DR counterpart by domain. Neither face mutates: pilotlight never creates
//! certificates — an operator requests or imports the DR ones.

use std::collections::BTreeMap;

use aws_sdk_acm::types::{CertificateStatus, Filters, KeyAlgorithm};
use aws_smithy_types::DateTime;
use pilotlight_core::aws_limits::Service;

use crate::call::AwsCtx;
use crate::error::AwsError;
use crate::ops::{handle_ctor, sdk_ops};

/// Largest `MaxItems` of `ListCertificates`.
pub const LIST_PAGE: i32 = 1000;

/// Read-only ACM in the primary region.
#[derive(Debug, Clone)]
pub struct PrimaryAcm {
    client: aws_sdk_acm::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(PrimaryAcm, aws_sdk_acm, Acm);

impl PrimaryAcm {
    sdk_ops! {
        aws_sdk_acm, Service::Acm;
        /// One certificate: domain, subject alternative names, status.
        describe_certificate => describe_certificate::DescribeCertificateFluentBuilder -> DescribeCertificateOutput, "DescribeCertificate";
    }
}

/// ACM in the DR region (lookups only).
#[derive(Debug, Clone)]
pub struct DrAcm {
    client: aws_sdk_acm::Client,
    region: String,
    ctx: AwsCtx,
}

handle_ctor!(DrAcm, aws_sdk_acm, Acm);

impl DrAcm {
    sdk_ops! {
        aws_sdk_acm, Service::Acm;
        /// Certificate summaries (`MaxItems` ≤ 1,000, `NextToken`).
        list_certificates => list_certificates::ListCertificatesFluentBuilder -> ListCertificatesOutput, "ListCertificates";
        /// One certificate.
        describe_certificate => describe_certificate::DescribeCertificateFluentBuilder -> DescribeCertificateOutput, "DescribeCertificate";
    }

    /// The `ISSUED` certificates of the region by lower-cased domain name → ARN: a paginated
    /// `ListCertificates` (one call per 1,000 certificates) with every key algorithm included —
    /// without `Includes.keyTypes` AWS lists only RSA-2048 certificates and an ECDSA
    /// counterpart would look missing. Where several certificates share a domain, the one
    /// valid longest (latest `NotAfter`, then the smallest ARN) wins.
    ///
    /// # Errors
    /// The first failed call's classified [`AwsError`].
    pub async fn issued_by_domain(&self) -> Result<BTreeMap<String, String>, AwsError> {
        let key_types: Vec<KeyAlgorithm> = KeyAlgorithm::values()
            .iter()
            .map(|v| KeyAlgorithm::from(*v))
            .collect();
        let includes = Filters::builder().set_key_types(Some(key_types)).build();
        let mut best: BTreeMap<String, (Option<DateTime>, String)> = BTreeMap::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .list_certificates(|b| {
                    b.certificate_statuses(CertificateStatus::Issued)
                        .includes(includes.clone())
                        .max_items(LIST_PAGE)
                        .set_next_token(token.clone())
                })
                .await?;
            for summary in page.certificate_summary_list() {
                let (Some(arn), Some(domain)) = (summary.certificate_arn(), summary.domain_name())
                else {
                    continue;
                };
                let candidate = (summary.not_after().copied(), arn.to_owned());
                best.entry(domain.to_ascii_lowercase())
                    .and_modify(|current| {
                        if better(&candidate, current) {
                            *current = candidate.clone();
                        }
                    })
                    .or_insert(candidate);
            }
            token = page
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        Ok(best
            .into_iter()
            .map(|(domain, (_, arn))| (domain, arn))
            .collect())
    }
}

/// Whether `a` should replace `b` as a domain's certificate: later `NotAfter` (a known one
/// beats an unknown one), then the smaller ARN.
fn better(a: &(Option<DateTime>, String), b: &(Option<DateTime>, String)) -> bool {
    let key = |c: &(Option<DateTime>, String)| c.0.map(|d| (d.secs(), d.subsec_nanos()));
    match key(a).cmp(&key(b)) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => a.1 < b.1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_longest_valid_certificate_wins_then_the_smallest_arn() {
        let early = (Some(DateTime::from_secs(100)), "arn:b".to_owned());
        let late = (Some(DateTime::from_secs(200)), "arn:c".to_owned());
        let unknown = (None, "arn:a".to_owned());
        assert!(better(&late, &early));
        assert!(!better(&early, &late));
        assert!(better(&early, &unknown));
        assert!(!better(&unknown, &early));
        let twin = (Some(DateTime::from_secs(200)), "arn:a".to_owned());
        assert!(better(&twin, &late));
        assert!(!better(&late, &twin));
    }
}
