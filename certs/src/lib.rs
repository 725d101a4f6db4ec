//! podid's webhook serving certificates: issue, rotation, loading, hot reload, and the rustls server config.
//!
//! The webhook builds one [`ReloadingCertResolver`], hands it to
//! [`server_config`], and keeps it current with [`watch_files`] (a mounted
//! Secret) or with a [`CertManager`] (certificates it issues and rotates
//! itself, kept in a Secret through a [`Cluster`]). Readiness waits for
//! [`ReloadingCertResolver::is_loaded`].
//!
//! Decisions are pure ([`rotation`], over [`material`] and a [`Clock`]);
//! Kubernetes I/O stays with the [`Cluster`] implementation of the caller.

pub mod clock;
pub mod inspect;
pub mod issue;
pub mod load;
pub mod manage;
pub mod material;
pub mod resolver;
pub mod rotation;
pub mod tls;
pub mod watch;

#[cfg(any(test, feature = "test-support"))]
pub mod memory;
#[cfg(any(test, feature = "test-support"))]
pub mod testca;

pub use clock::{Clock, FakeClock, SystemClock};
pub use issue::{IssueError, ServiceName};
pub use manage::{CertManager, Cluster, ClusterError, ManageError, Pass, Published, Stored};
pub use material::{Material, MaterialError, SecretData};
pub use rotation::{Plan, RenewReason, RotationPolicy};

pub use inspect::{CertSummary, UtcDateTime, summarize};
pub use load::{CertError, certified_key_from_pem, load_pem_files};
pub use resolver::ReloadingCertResolver;
pub use tls::{ALPN_HTTP11, server_config};
pub use watch::{DEFAULT_POLL_INTERVAL, FileWatcher, Reload, watch_files};
