//! Azure-shaped identifiers, the clock and randomness shared by the emulated services.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use ring::digest;
use ring::rand::{SecureRandom, SystemRandom};

/// Tenant used when the identities file names none.
pub const DEFAULT_TENANT_ID: &str = "11111111-1111-4111-8111-111111111111";
/// Subscription used when the identities file names none.
pub const DEFAULT_SUBSCRIPTION_ID: &str = "22222222-2222-4222-8222-222222222222";
/// Resource group used when the identities file names none.
pub const DEFAULT_RESOURCE_GROUP: &str = "podid-emulator";
/// Region reported by the instance document.
pub const DEFAULT_LOCATION: &str = "westeurope";

/// Seconds since the Unix epoch (0 if the clock is set before it).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A GUID derived from `seed`: identities declared without ids get the same
/// ids on every run, so a binary started twice agrees with its own config.
pub fn stable_guid(seed: &str) -> String {
    let hash = digest::digest(&digest::SHA256, seed.as_bytes());
    guid_from(hash.as_ref())
}

/// A fresh random GUID (trace and correlation ids).
pub fn random_guid() -> String {
    guid_from(&random_bytes::<16>())
}

/// `N` random bytes from the system generator.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    if SystemRandom::new().fill(&mut buf).is_err() {
        // Not expected on Linux; a counter still keeps values distinct,
        // which is all the emulator needs randomness for.
        static COUNTER: AtomicU64 = AtomicU64::new(1);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed).to_be_bytes();
        for (i, b) in buf.iter_mut().enumerate() {
            *b = n[i % 8] ^ (i as u8);
        }
    }
    buf
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes from hexadecimal (either case, `:` separators allowed as in
/// thumbprints copied from tools).
pub fn from_hex(text: &str) -> Option<Vec<u8>> {
    let digits: Vec<u8> = text.bytes().filter(|b| *b != b':').collect();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks(2)
        .map(|pair| {
            let s = std::str::from_utf8(pair).ok()?;
            u8::from_str_radix(s, 16).ok()
        })
        .collect()
}

fn guid_from(seed: &[u8]) -> String {
    let mut b = [0u8; 16];
    for (dst, src) in b.iter_mut().zip(seed) {
        *dst = *src;
    }
    // Version 4 and RFC 4122 variant bits, so strict GUID parsers accept it.
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// ARM id of a standalone VM.
pub fn vm_id(subscription: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{name}"
    )
}

/// ARM id of a VM scale set.
pub fn scale_set_id(subscription: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachineScaleSets/{name}"
    )
}

/// ARM id of an instance of a (uniform) VM scale set.
pub fn scale_set_vm_id(subscription: &str, group: &str, set: &str, instance: u32) -> String {
    format!(
        "{}/virtualMachines/{instance}",
        scale_set_id(subscription, group, set)
    )
}

/// ARM id of a user-assigned managed identity.
pub fn identity_id(subscription: &str, group: &str, name: &str) -> String {
    format!(
        "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
    )
}

/// `2024-05-01 12:34:56Z`, the way Azure AD writes error timestamps.
pub fn aad_timestamp(unix: u64) -> String {
    let secs = unix as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

// Howard Hinnant's days-to-civil algorithm: avoids a date crate for one string.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_written_like_azure_ad() {
        assert_eq!(aad_timestamp(0), "1970-01-01 00:00:00Z");
        assert_eq!(aad_timestamp(1_709_251_199), "2024-02-29 23:59:59Z");
    }

    #[test]
    fn stable_guids_are_stable_and_well_formed() {
        let a = stable_guid("x");
        assert_eq!(a, stable_guid("x"));
        assert_ne!(a, stable_guid("y"));
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn hex_round_trips_and_accepts_separators() {
        assert_eq!(from_hex("0A:ff"), Some(vec![10, 255]));
        assert_eq!(hex(&[10, 255]), "0aff");
        assert_eq!(from_hex("abc"), None);
    }
}
