//! An access token as the proxy keeps it, when it needs refreshing, and the `oid` it names.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Never serve a cached token with less than this left, whatever its lifetime.
const MAX_SERVE_MARGIN_SECS: u64 = 60;

/// Azure SDKs refresh 5 minutes before expiry: refreshing at least that early
/// keeps them from coming back for every call.
const SDK_REFRESH_SECS: u64 = 300;

/// A token from upstream, with times in Unix seconds.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// The bearer token. Never logged (no `Debug` output of it either).
    pub access_token: String,
    /// When it expires.
    pub expires_on: u64,
    /// When Azure AD's extended lifetime ends (`expires_on` when upstream gave none).
    pub ext_expires_on: u64,
    /// From when it is valid.
    pub not_before: u64,
    /// When the proxy received it.
    pub fetched_on: u64,
    /// The `oid` claim: the object id of the identity the token is for.
    pub object_id: Option<String>,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Token")
            .field("access_token", &"<redacted>")
            .field("expires_on", &self.expires_on)
            .field("fetched_on", &self.fetched_on)
            .field("object_id", &self.object_id)
            .finish()
    }
}

/// What the cache may do with a token now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh,
    /// Serve it, and fetch its successor in the background.
    RefreshAhead,
    /// Too close to expiry to hand out: fetch a new one first.
    Stale,
}

// === impl Token ===

impl Token {
    /// A token received now: `expires_in` seconds from now unless upstream said
    /// `expires_on`; the `oid` is read from the JWT's payload.
    pub fn received(
        access_token: String,
        expires_on: Option<u64>,
        expires_in: Option<u64>,
        ext_expires_in: Option<u64>,
        not_before: Option<u64>,
    ) -> Option<Self> {
        let now = unix_now();
        let expires_on = expires_on.or_else(|| expires_in.map(|s| now + s))?;
        let object_id = claim(&access_token, "oid");
        Some(Self {
            ext_expires_on: ext_expires_in.map_or(expires_on, |s| (now + s).max(expires_on)),
            not_before: not_before.unwrap_or(now),
            fetched_on: now,
            object_id,
            access_token,
            expires_on,
        })
    }

    /// Seconds of validity left at `now`.
    pub fn expires_in(&self, now: u64) -> u64 {
        self.expires_on.saturating_sub(now)
    }

    /// Whether the cache may serve it at `now`.
    ///
    /// With `L` the lifetime it had when fetched and `R` what is left: refreshed
    /// in the background once `R < min(L/2, max(L/3, 5 min))` (so a 24 h token at
    /// 8 h left, a 1 h token at 20 min, never in the first half of its life), and
    /// no longer served once `R <= min(L/6, 60 s)`.
    pub fn freshness(&self, now: u64) -> Freshness {
        let lifetime = self.expires_on.saturating_sub(self.fetched_on).max(1);
        let left = self.expires_in(now);
        let serve_margin = (lifetime / 6).min(MAX_SERVE_MARGIN_SECS);
        let refresh_at = (lifetime / 2).min((lifetime / 3).max(SDK_REFRESH_SECS));
        if left <= serve_margin {
            Freshness::Stale
        } else if left < refresh_at {
            Freshness::RefreshAhead
        } else {
            Freshness::Fresh
        }
    }
}

/// Unix seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// A string claim of a compact JWT's payload, read without verifying anything:
/// the proxy only uses it to tell which identity a token is for.
pub fn claim(jwt: &str, name: &str) -> Option<String> {
    let payload = jwt.split('.').nth(1)?;
    // Some issuers pad base64url; the padding carries nothing.
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    claims.get(name)?.as_str().map(str::to_owned)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn token(fetched_on: u64, lifetime: u64) -> Token {
        Token {
            access_token: "t".into(),
            expires_on: fetched_on + lifetime,
            ext_expires_on: fetched_on + lifetime,
            not_before: fetched_on,
            fetched_on,
            object_id: None,
        }
    }

    #[test]
    fn a_day_long_token_is_refreshed_with_eight_hours_left() {
        let t = token(0, 86_400);
        assert_eq!(t.freshness(0), Freshness::Fresh);
        assert_eq!(t.freshness(86_400 - 28_801), Freshness::Fresh);
        assert_eq!(t.freshness(86_400 - 28_799), Freshness::RefreshAhead);
        assert_eq!(t.freshness(86_400 - 61), Freshness::RefreshAhead);
        assert_eq!(t.freshness(86_400 - 60), Freshness::Stale);
        assert_eq!(t.freshness(90_000), Freshness::Stale);
    }

    #[test]
    fn an_hour_long_token_is_refreshed_with_twenty_minutes_left() {
        let t = token(0, 3_600);
        assert_eq!(t.freshness(3_600 - 1_201), Freshness::Fresh);
        assert_eq!(t.freshness(3_600 - 1_199), Freshness::RefreshAhead);
    }

    #[test]
    fn a_short_token_is_never_refreshed_in_its_first_half() {
        let t = token(100, 20);
        assert_eq!(t.freshness(109), Freshness::Fresh);
        assert_eq!(t.freshness(111), Freshness::RefreshAhead);
        assert_eq!(t.freshness(117), Freshness::Stale);
    }

    #[test]
    fn the_oid_claim_is_read_from_padded_and_unpadded_payloads() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"oid":"abc","aud":"x"}"#);
        assert_eq!(
            claim(&format!("h.{payload}.s"), "oid").as_deref(),
            Some("abc")
        );
        assert_eq!(
            claim(&format!("h.{payload}==.s"), "oid").as_deref(),
            Some("abc")
        );
        assert_eq!(claim("not a jwt", "oid"), None);
        assert_eq!(claim("h.!!!.s", "oid"), None);
    }

    #[test]
    fn received_tokens_count_from_now_when_upstream_gives_expires_in() {
        let t = Token::received("a.b.c".into(), None, Some(3599), None, None).unwrap();
        assert!(t.expires_in(unix_now()) <= 3599);
        assert_eq!(t.ext_expires_on, t.expires_on);
        assert!(Token::received("x".into(), None, None, None, None).is_none());
    }
}
