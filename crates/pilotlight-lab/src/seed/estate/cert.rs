//! Self-signed X.509 certificates for ACM `ImportCertificate`, made at seed time.
//!
//! moto parses what it is given (Python `cryptography`): the certificate must be a real,
//! currently valid PEM certificate and the key a real PEM private key, or the import fails with
//! `ValidationException`. moto then reports the certificate's common name as its `DomainName`
//! and its status as `ISSUED`, type `IMPORTED` — as AWS does for an imported certificate.
//! `RequestCertificate` would need no PEM, but moto leaves such a certificate
//! `PENDING_VALIDATION` for 60 s, while readiness (R10) looks for an `ISSUED` DR counterpart.
//!
//! The certificate is ECDSA P-256 / SHA-256 (ring signs it), subject = issuer = `CN=<domain>`,
//! with the domain and any further names as DNS subject alternative names, valid from
//! 2024-01-01 to 2049-12-31 (the last date a `UTCTime` can hold), so the same PEM can be
//! imported into both regions, as operators do with an imported certificate. The DER is
//! written by hand: a handful of fixed structures do not justify an ASN.1 dependency.

use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};

/// A certificate and its private key, both PEM.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct SelfSigned {
    pub certificate_pem: String,
    pub private_key_pem: String,
}

impl std::fmt::Debug for SelfSigned {
    // The key is a throw-away lab fixture, but keys are never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SelfSigned")
            .field("certificate_pem", &self.certificate_pem)
            .finish_non_exhaustive()
    }
}

/// Why a certificate could not be made: the system random number generator failed.
#[derive(Debug, thiserror::Error)]
#[error("the system random number generator failed while making a certificate for {domain}")]
pub(crate) struct CertError {
    pub domain: String,
}

const NOT_BEFORE: &str = "240101000000Z";
const NOT_AFTER: &str = "491231235959Z";
/// ecdsa-with-SHA256 (1.2.840.10045.4.3.2).
const OID_ECDSA_SHA256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02];
/// id-ecPublicKey (1.2.840.10045.2.1).
const OID_EC_PUBLIC_KEY: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01];
/// prime256v1 (1.2.840.10045.3.1.7).
const OID_P256: &[u8] = &[0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07];
/// commonName (2.5.4.3).
const OID_COMMON_NAME: &[u8] = &[0x55, 0x04, 0x03];
/// subjectAltName (2.5.29.17).
const OID_SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1D, 0x11];

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const INTEGER: u8 = 0x02;
const BIT_STRING: u8 = 0x03;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const UTF8_STRING: u8 = 0x0C;
const UTC_TIME: u8 = 0x17;
/// `[0] EXPLICIT` (the version).
const CONTEXT_0: u8 = 0xA0;
/// `[3] EXPLICIT` (the extensions).
const CONTEXT_3: u8 = 0xA3;
/// `dNSName [2] IMPLICIT IA5String`.
const DNS_NAME: u8 = 0x82;

/// One DER element: tag, definite length, content.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        let significant = &bytes[skip..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
    out
}

fn seq(parts: &[&[u8]]) -> Vec<u8> {
    tlv(SEQUENCE, &parts.concat())
}

/// `Name` with one `CN` attribute.
fn common_name(domain: &str) -> Vec<u8> {
    let attribute = seq(&[
        &tlv(OID, OID_COMMON_NAME),
        &tlv(UTF8_STRING, domain.as_bytes()),
    ]);
    seq(&[&tlv(SET, &attribute)])
}

/// Base64 (standard alphabet, padded), wrapped at 64 columns between PEM armour lines.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A fresh key pair and a self-signed certificate for `domain` (the common name and first
/// subject alternative name) plus `alternative_names`.
///
/// # Errors
///
/// [`CertError`] when the system random number generator fails.
pub(crate) fn self_signed(
    domain: &str,
    alternative_names: &[String],
) -> Result<SelfSigned, CertError> {
    let fail = |_| CertError {
        domain: domain.to_owned(),
    };
    let rng = SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).map_err(fail)?;
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| CertError {
            domain: domain.to_owned(),
        })?;
    let mut serial = [0u8; 16];
    rng.fill(&mut serial).map_err(fail)?;
    // A positive INTEGER in minimal DER: clear the sign bit and set the next one, so the first
    // byte is never 0x00 (a leading zero byte before a byte below 0x80 is not DER, and the
    // Python `cryptography` moto uses rejects such a certificate about once in 256).
    serial[0] = (serial[0] & 0x7F) | 0x40;

    let algorithm = seq(&[&tlv(OID, OID_ECDSA_SHA256)]);
    let name = common_name(domain);
    let validity = seq(&[
        &tlv(UTC_TIME, NOT_BEFORE.as_bytes()),
        &tlv(UTC_TIME, NOT_AFTER.as_bytes()),
    ]);
    let mut point = vec![0u8]; // no unused bits
    point.extend_from_slice(key.public_key().as_ref());
    let public_key_info = seq(&[
        &seq(&[&tlv(OID, OID_EC_PUBLIC_KEY), &tlv(OID, OID_P256)]),
        &tlv(BIT_STRING, &point),
    ]);
    let mut names: Vec<&str> = vec![domain];
    for n in alternative_names {
        if !names.contains(&n.as_str()) {
            names.push(n);
        }
    }
    let general_names: Vec<u8> = names
        .iter()
        .flat_map(|n| tlv(DNS_NAME, n.as_bytes()))
        .collect();
    let san = seq(&[
        &tlv(OID, OID_SUBJECT_ALT_NAME),
        &tlv(OCTET_STRING, &tlv(SEQUENCE, &general_names)),
    ]);
    let extensions = tlv(CONTEXT_3, &seq(&[&san]));
    let tbs = seq(&[
        &tlv(CONTEXT_0, &tlv(INTEGER, &[2])), // v3
        &tlv(INTEGER, &serial),
        &algorithm,
        &name,
        &validity,
        &name,
        &public_key_info,
        &extensions,
    ]);
    let signature = key.sign(&rng, &tbs).map_err(fail)?;
    let mut signature_bits = vec![0u8];
    signature_bits.extend_from_slice(signature.as_ref());
    let certificate = seq(&[&tbs, &algorithm, &tlv(BIT_STRING, &signature_bits)]);
    Ok(SelfSigned {
        certificate_pem: pem("CERTIFICATE", &certificate),
        private_key_pem: pem("PRIVATE KEY", pkcs8.as_ref()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{ECDSA_P256_SHA256_ASN1, UnparsedPublicKey};

    /// Decodes the body of a PEM block (test helper; standard alphabet only).
    fn unpem(text: &str) -> Vec<u8> {
        let body: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
        let value = |c: u8| match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            _ => 63,
        };
        let mut out = Vec::new();
        for chunk in body.as_bytes().chunks(4) {
            let data: Vec<u8> = chunk
                .iter()
                .filter(|c| **c != b'=')
                .map(|c| value(*c))
                .collect();
            let n = data
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, v)| acc | (u32::from(*v) << (18 - 6 * i)));
            for i in 0..data.len().saturating_sub(1) {
                out.push((n >> (16 - 8 * i)) as u8);
            }
        }
        out
    }

    /// Splits one DER element into (tag, content, rest).
    fn next(der: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = der[0];
        let (len, header) = if der[1] < 0x80 {
            (usize::from(der[1]), 2)
        } else {
            let n = usize::from(der[1] & 0x7F);
            let len = der[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
            (len, 2 + n)
        };
        (tag, &der[header..header + len], &der[header + len..])
    }

    #[test]
    fn der_lengths_use_the_long_form_above_127() {
        assert_eq!(tlv(0x04, &[1, 2]), vec![0x04, 2, 1, 2]);
        let long = tlv(0x04, &[0; 200]);
        assert_eq!(&long[..3], &[0x04, 0x81, 200]);
        let longer = tlv(0x04, &[0; 300]);
        assert_eq!(&longer[..4], &[0x04, 0x82, 0x01, 0x2C]);
        assert_eq!(longer.len(), 304);
    }

    #[test]
    fn pem_is_standard_padded_base64_in_64_columns() {
        assert_eq!(
            pem("X", b"Man"),
            "-----BEGIN X-----\nTWFu\n-----END X-----\n"
        );
        assert_eq!(
            pem("X", b"Ma"),
            "-----BEGIN X-----\nTWE=\n-----END X-----\n"
        );
        assert_eq!(pem("X", b"M"), "-----BEGIN X-----\nTQ==\n-----END X-----\n");
        let long = pem("X", &[0xFF; 60]);
        let lines: Vec<&str> = long.lines().collect();
        assert_eq!(lines[1].len(), 64);
        assert_eq!(lines[2].len(), 16);
        assert!(lines[1].chars().all(|c| c == '/'));
        assert_eq!(unpem(&long), vec![0xFF; 60]);
    }

    #[test]
    fn certificate_is_self_signed_for_the_domain_and_its_names() {
        let made = self_signed("shop.example.com", &["www.shop.example.com".to_owned()])
            .expect("certificate");
        assert!(
            made.certificate_pem
                .starts_with("-----BEGIN CERTIFICATE-----\n")
        );
        assert!(
            made.private_key_pem
                .starts_with("-----BEGIN PRIVATE KEY-----\n")
        );
        assert!(!format!("{made:?}").contains("PRIVATE KEY"));
        let der = unpem(&made.certificate_pem);
        let (tag, cert, rest) = next(&der);
        assert_eq!((tag, rest.len()), (SEQUENCE, 0));
        let (_, _, after_tbs) = next(cert);
        let tbs_der = &cert[..cert.len() - after_tbs.len()];
        let (_, algorithm, after_alg) = next(after_tbs);
        assert_eq!(algorithm, tlv(OID, OID_ECDSA_SHA256).as_slice());
        let (tag, signature, _) = next(after_alg);
        assert_eq!(tag, BIT_STRING);
        // The signature verifies with the certificate's own public key.
        let (_, tbs, _) = next(tbs_der);
        let (_, _version, r) = next(tbs);
        let (_, serial, r) = next(r);
        assert!(
            serial[0] & 0x80 == 0 && serial[0] != 0,
            "positive, minimal: {serial:?}"
        );
        let (_, _, r) = next(r); // algorithm
        let (_, issuer, r) = next(r);
        let (_, validity, r) = next(r);
        let (_, subject, r) = next(r);
        assert_eq!(issuer, subject);
        assert!(
            String::from_utf8_lossy(issuer).contains("shop.example.com"),
            "{issuer:?}"
        );
        assert!(String::from_utf8_lossy(validity).contains("491231235959Z"));
        let (_, spki, r) = next(r);
        let (_, _, bits) = next(spki);
        let (_, point, _) = next(bits);
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &point[1..])
            .verify(tbs_der, &signature[1..])
            .expect("signature verifies");
        let (tag, extensions, r) = next(r);
        assert_eq!((tag, r.len()), (CONTEXT_3, 0));
        let text = String::from_utf8_lossy(extensions);
        assert!(text.contains("www.shop.example.com"));
        // Two different keys for two calls.
        let other = self_signed("shop.example.com", &[]).expect("certificate");
        assert_ne!(other.private_key_pem, made.private_key_pem);
    }
}
