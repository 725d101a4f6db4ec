//! Reading a certificate's validity period and DNS names, for logs and rotation decisions.
//!
//! A few dozen lines of DER walking instead of an X.509 crate: only two fields
//! are needed, and the certificate has already been accepted by rustls.

use std::fmt;
use std::time::{Duration, SystemTime};

use rustls_pki_types::CertificateDer;

const SEQUENCE: u8 = 0x30;
const UTC_TIME: u8 = 0x17;
const GENERALIZED_TIME: u8 = 0x18;
const OCTET_STRING: u8 = 0x04;
const OID: u8 = 0x06;
const VERSION: u8 = 0xa0; // [0] EXPLICIT
const EXTENSIONS: u8 = 0xa3; // [3] EXPLICIT
const DNS_NAME: u8 = 0x82; // GeneralName [2] IMPLICIT IA5String
const SUBJECT_ALT_NAME: &[u8] = &[0x55, 0x1d, 0x11]; // 2.5.29.17

/// What a certificate says about itself that is worth logging.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertSummary {
    /// The start of the validity period.
    pub not_before: UtcDateTime,
    /// The end of the validity period.
    pub not_after: UtcDateTime,
    /// The DNS names in the subject alternative name extension.
    pub dns_names: Vec<String>,
}

/// A UTC calendar time as X.509 writes it, to the second.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct UtcDateTime {
    year: i64,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
}

/// Summarizes a DER certificate; `None` if it is not well-formed X.509.
pub fn summarize(cert: &CertificateDer<'_>) -> Option<CertSummary> {
    let (_, certificate, _) = read_tlv(cert.as_ref(), SEQUENCE)?;
    let (_, tbs, _) = read_tlv(certificate, SEQUENCE)?;
    let rest = skip_optional(tbs, VERSION)?;
    // serial, signature algorithm, issuer
    let rest = skip_any(skip_any(skip_any(rest)?)?)?;
    let (_, validity, rest) = read_tlv(rest, SEQUENCE)?;
    let (not_before, not_after) = parse_validity(validity)?;
    // subject, subject public key info; then optional unique ids and extensions
    let rest = skip_any(skip_any(rest)?)?;
    Some(CertSummary {
        not_before,
        not_after,
        dns_names: find_extensions(rest).map(dns_names).unwrap_or_default(),
    })
}

// === impl UtcDateTime ===

impl UtcDateTime {
    /// The same instant as a [`SystemTime`]; `None` before 1970.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let days = days_from_civil(self.year, self.month, self.day);
        let seconds = days * 86_400
            + i64::from(self.hour) * 3_600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        let seconds = u64::try_from(seconds).ok()?;
        SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(seconds))
    }

    fn parse(tag: u8, text: &[u8]) -> Option<Self> {
        // RFC 5280 4.1.2.5: seconds always present, always `Z`, no fractions.
        let (year, rest) = match (tag, text.len()) {
            (UTC_TIME, 13) => {
                let yy = i64::from(two_digits(text)?);
                (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &text[2..])
            }
            (GENERALIZED_TIME, 15) => {
                let year = i64::from(two_digits(text)?) * 100 + i64::from(two_digits(&text[2..])?);
                (year, &text[4..])
            }
            _ => return None,
        };
        let time = Self {
            year,
            month: two_digits(rest)?,
            day: two_digits(rest.get(2..)?)?,
            hour: two_digits(rest.get(4..)?)?,
            minute: two_digits(rest.get(6..)?)?,
            second: two_digits(rest.get(8..)?)?,
        };
        let valid = (1..=12).contains(&time.month)
            && (1..=31).contains(&time.day)
            && time.hour < 24
            && time.minute < 60
            && time.second < 61
            && rest.get(10..) == Some(b"Z".as_slice());
        valid.then_some(time)
    }
}

/// RFC 3339, e.g. `2027-01-31T12:00:00Z`.
impl fmt::Display for UtcDateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

// === DER ===

/// Splits one TLV with the expected tag off `input`: (tag, content, rest).
fn read_tlv(input: &[u8], tag: u8) -> Option<(u8, &[u8], &[u8])> {
    let found = read_any(input)?;
    (found.0 == tag).then_some(found)
}

fn read_any(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        // Long form: the low bits count the length bytes; four is plenty.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (bytes, rest) = rest.split_at_checked(count)?;
        let len = bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
        (len, rest)
    };
    let (content, rest) = rest.split_at_checked(len)?;
    Some((tag, content, rest))
}

fn skip_any(input: &[u8]) -> Option<&[u8]> {
    read_any(input).map(|(_, _, rest)| rest)
}

fn skip_optional(input: &[u8], tag: u8) -> Option<&[u8]> {
    match read_any(input)? {
        (found, _, rest) if found == tag => Some(rest),
        _ => Some(input),
    }
}

fn parse_validity(validity: &[u8]) -> Option<(UtcDateTime, UtcDateTime)> {
    let (tag, text, rest) = read_any(validity)?;
    let not_before = UtcDateTime::parse(tag, text)?;
    let (tag, text, _) = read_any(rest)?;
    Some((not_before, UtcDateTime::parse(tag, text)?))
}

/// The content of the `[3]` extensions wrapper, skipping the unique ids.
fn find_extensions(mut rest: &[u8]) -> Option<&[u8]> {
    while !rest.is_empty() {
        let (tag, content, next) = read_any(rest)?;
        if tag == EXTENSIONS {
            return read_tlv(content, SEQUENCE).map(|(_, list, _)| list);
        }
        rest = next;
    }
    None
}

fn dns_names(mut extensions: &[u8]) -> Vec<String> {
    while let Some((_, extension, next)) = read_tlv(extensions, SEQUENCE) {
        if let Some(names) = san_value(extension) {
            return general_names(names);
        }
        extensions = next;
    }
    Vec::new()
}

/// The GeneralNames of a subjectAltName extension; `None` for other extensions.
fn san_value(extension: &[u8]) -> Option<&[u8]> {
    let (_, oid, rest) = read_tlv(extension, OID)?;
    if oid != SUBJECT_ALT_NAME {
        return None;
    }
    let rest = skip_optional(rest, 0x01)?; // critical BOOLEAN
    let (_, value, _) = read_tlv(rest, OCTET_STRING)?;
    read_tlv(value, SEQUENCE).map(|(_, names, _)| names)
}

fn general_names(mut names: &[u8]) -> Vec<String> {
    let mut found = Vec::new();
    while let Some((tag, name, next)) = read_any(names) {
        if tag == DNS_NAME {
            found.push(String::from_utf8_lossy(name).into_owned());
        }
        names = next;
    }
    found
}

fn two_digits(text: &[u8]) -> Option<u8> {
    match text {
        [a @ b'0'..=b'9', b @ b'0'..=b'9', ..] => Some((a - b'0') * 10 + (b - b'0')),
        _ => None,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: u8, day: u8) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year - era * 400;
    let month_from_march = (i64::from(month) + 9) % 12;
    let day_of_year = (153 * month_from_march + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn self_signed(sans: &[&str], not_after: (i32, u8, u8)) -> CertificateDer<'static> {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = rcgen::CertificateParams::new(sans).unwrap();
        params.not_before = rcgen::date_time_ymd(2024, 2, 29);
        params.not_after = rcgen::date_time_ymd(not_after.0, not_after.1, not_after.2);
        let key = rcgen::KeyPair::generate().unwrap();
        params.self_signed(&key).unwrap().der().clone()
    }

    #[test]
    fn utc_time_expiry_and_dns_names_are_read() {
        let sans = [
            "podid-webhook.podid-system.svc",
            "podid-webhook",
            "10.0.0.1",
        ];
        let summary = summarize(&self_signed(&sans, (2030, 6, 15))).unwrap();
        assert_eq!(summary.not_after.to_string(), "2030-06-15T00:00:00Z");
        assert_eq!(summary.not_before.to_string(), "2024-02-29T00:00:00Z");
        // The IP address SAN is not a DNS name.
        assert_eq!(
            summary.dns_names,
            ["podid-webhook.podid-system.svc", "podid-webhook"]
        );
        let secs = summary.not_after.to_system_time().unwrap();
        assert_eq!(
            secs.duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            1_907_712_000
        );
    }

    #[test]
    fn generalized_time_expiry_is_read() {
        let summary = summarize(&self_signed(&["a.example"], (2051, 1, 1))).unwrap();
        assert_eq!(summary.not_after.to_string(), "2051-01-01T00:00:00Z");
    }

    #[test]
    fn certificate_without_san_has_no_dns_names() {
        let summary = summarize(&self_signed(&[], (2030, 1, 1))).unwrap();
        assert!(summary.dns_names.is_empty());
    }

    #[test]
    fn malformed_der_is_none_at_every_truncation() {
        let der = self_signed(&["a.example"], (2030, 1, 1));
        assert!(
            summarize(&CertificateDer::from(vec![
                0x30, 0x84, 0xff, 0xff, 0xff, 0xff
            ]))
            .is_none()
        );
        // Whatever the cut, no panic; a cut before the validity is None.
        for len in 0..der.len() {
            let _ = summarize(&CertificateDer::from(der[..len].to_vec()));
        }
        assert!(summarize(&CertificateDer::from(der[..40].to_vec())).is_none());
    }

    #[test]
    fn time_text_outside_rfc5280_is_rejected() {
        assert!(UtcDateTime::parse(UTC_TIME, b"300615000000Z").is_some());
        assert!(UtcDateTime::parse(UTC_TIME, b"3006150000Z").is_none());
        assert!(UtcDateTime::parse(UTC_TIME, b"301315000000Z").is_none());
        assert!(UtcDateTime::parse(UTC_TIME, b"300615000000+").is_none());
        assert!(UtcDateTime::parse(GENERALIZED_TIME, b"300615000000Z").is_none());
    }

    #[test]
    fn days_from_civil_matches_known_dates() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }
}
