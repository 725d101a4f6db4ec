//! Bearer tokens for ARM, behind a small trait: azure_identity in production, a fixed string in tests.

use std::fmt;
use std::future::Future;

/// Why no token could be had.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("getting an ARM token: {0}")]
pub struct TokenError(pub String);

/// Where the ARM client gets its bearer tokens.
///
/// Implementations return an access token for the ARM audience of the cloud
/// the client talks to (`https://management.azure.com/.default` in the
/// public cloud) and cache it: the client asks before every request.
pub trait TokenSource: Send + Sync + 'static {
    /// A current access token (the bare token, without `Bearer `).
    fn token(&self) -> impl Future<Output = Result<String, TokenError>> + Send;
}

/// A token that never changes: for tests and stand-ins that do not check tokens.
#[derive(Clone)]
pub struct StaticToken(String);

impl StaticToken {
    /// Always answers `token`.
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }
}

impl fmt::Debug for StaticToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens are never logged, not even through Debug.
        f.write_str("StaticToken(..)")
    }
}

impl TokenSource for StaticToken {
    async fn token(&self) -> Result<String, TokenError> {
        Ok(self.0.clone())
    }
}

impl<T: TokenSource> TokenSource for std::sync::Arc<T> {
    fn token(&self) -> impl Future<Output = Result<String, TokenError>> + Send {
        T::token(self)
    }
}
