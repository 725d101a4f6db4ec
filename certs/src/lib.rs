//! podid's webhook serving certificates: loading, hot reload, and the rustls server config.
//!
//! The webhook builds one [`ReloadingCertResolver`], hands it to
//! [`server_config`], and keeps it current with [`watch_files`] (a mounted
//! Secret) or by calling [`ReloadingCertResolver::set`] itself (a certificate
//! it issued). Readiness waits for [`ReloadingCertResolver::is_loaded`].

pub mod inspect;
pub mod load;
pub mod resolver;
pub mod tls;
pub mod watch;

#[cfg(any(test, feature = "test-support"))]
pub mod testca;

pub use inspect::{CertSummary, UtcDateTime, summarize};
pub use load::{CertError, certified_key_from_pem, load_pem_files};
pub use resolver::ReloadingCertResolver;
pub use tls::{ALPN_HTTP11, server_config};
pub use watch::{DEFAULT_POLL_INTERVAL, FileWatcher, Reload, watch_files};
