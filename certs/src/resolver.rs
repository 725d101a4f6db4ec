//! A rustls certificate resolver whose certificate can be replaced while serving.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};

use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// Serves whichever certificate was [`set`](Self::set) last.
///
/// Handshakes already under way keep the `Arc` they resolved, so a swap never
/// disturbs them; the next handshake gets the new certificate.
///
/// # Guarantees
///
/// - Until a certificate is set, [`resolve`](ResolvesServerCert::resolve)
///   returns `None`: the handshake fails with an alert, the process does not
///   panic, and [`is_loaded`](Self::is_loaded) is `false` so readiness can wait.
/// - Once loaded it never becomes empty again: a failed reload elsewhere keeps
///   the last good certificate.
pub struct ReloadingCertResolver {
    current: RwLock<Option<Arc<CertifiedKey>>>,
}

// === impl ReloadingCertResolver ===

impl ReloadingCertResolver {
    /// A resolver with no certificate yet (not ready).
    pub fn empty() -> Self {
        Self {
            current: RwLock::new(None),
        }
    }

    /// A resolver that starts out serving `key`.
    pub fn new(key: CertifiedKey) -> Self {
        Self {
            current: RwLock::new(Some(Arc::new(key))),
        }
    }

    /// Serves `key` from the next handshake on.
    ///
    /// `key` should come from [`crate::load_pem_files`] or
    /// [`crate::certified_key_from_pem`], which check that it is complete.
    pub fn set(&self, key: CertifiedKey) {
        let key = Arc::new(key);
        // A poisoned lock only means a writer panicked between two whole
        // `Arc`s; the slot still holds one of them, so keep going.
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = Some(key);
    }

    /// The certificate being served, if any.
    pub fn current(&self) -> Option<Arc<CertifiedKey>> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Whether a certificate has been loaded, for the readiness probe.
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

impl Default for ReloadingCertResolver {
    fn default() -> Self {
        Self::empty()
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    // One service name, one certificate: SNI and the client's signature
    // schemes do not change the answer (rustls checks the latter itself).
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current()
    }
}

// A derived Debug would print the whole chain (and the key's Debug); a log
// line needs only whether there is something to serve.
impl fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use crate::testca::TestCa;

    fn key(ca: &TestCa) -> CertifiedKey {
        let (cert, key) = ca.leaf(&["podid-webhook.podid-system.svc"]);
        crate::certified_key_from_pem("c".as_ref(), cert.as_bytes(), "k".as_ref(), key.as_bytes())
            .unwrap()
    }

    #[test]
    fn empty_resolver_is_not_loaded_and_has_nothing_to_serve() {
        let resolver = ReloadingCertResolver::default();
        assert!(!resolver.is_loaded());
        assert!(resolver.current().is_none());
        assert_eq!(
            format!("{resolver:?}"),
            "ReloadingCertResolver { loaded: false }"
        );
    }

    #[test]
    fn set_replaces_the_served_certificate() {
        let ca = TestCa::new();
        let (first, second) = (key(&ca), key(&ca));
        let second_leaf = second.cert[0].clone();
        let resolver = ReloadingCertResolver::new(first);
        assert!(resolver.is_loaded());
        let before = resolver.current().unwrap();

        resolver.set(second);

        assert_eq!(resolver.current().unwrap().cert[0], second_leaf);
        // Whoever resolved before the swap still holds the old, whole key.
        assert_ne!(before.cert[0], second_leaf);
    }
}
