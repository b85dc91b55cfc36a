//! What a provider did that an auditor wants to know, and the callback that hears it.

use std::sync::Arc;

use crate::audit::{AuditLog, AuditRecord};
use crate::grant::http::HttpEvent;

/// Something a provider did that an auditor wants to know.
#[derive(Debug, Clone)]
pub enum ProviderEvent {
    /// An HTTP request (allowed or denied).
    Http(HttpEvent),
    /// A call failed: a limit was hit (`limit: true`) or the component misbehaved.
    Fault {
        /// The provider.
        provider: String,
        /// The operation.
        op: &'static str,
        /// Whether a limit was hit.
        limit: bool,
        /// What happened.
        detail: String,
    },
}

/// A callback that sees every [`ProviderEvent`].
pub type ProviderObserver = Arc<dyn Fn(&ProviderEvent) + Send + Sync>;

/// An observer that appends every event to the audit log (a failure to write is a warning,
/// never the provider's failure).
pub fn audit_observer(log: AuditLog) -> ProviderObserver {
    Arc::new(move |event| {
        let record = match event {
            ProviderEvent::Http(e) => AuditRecord::from_http(e),
            ProviderEvent::Fault {
                provider,
                op,
                limit,
                detail,
            } => AuditRecord::fault(provider, op, *limit, detail),
        };
        if let Err(e) = log.append(&record) {
            tracing::warn!("could not write the audit log: {e:#}");
        }
    })
}
