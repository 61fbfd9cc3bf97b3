//! The store's public surface: one small handle per capability, each documenting its
//! operations once. A consumer keeps the handles it uses, not the whole [`Store`], so the
//! types say what it can do: the worker gets a [`ResourceReader`], which cannot write SCIM
//! resources; the HTTP service gets an [`OutboxReader`], which cannot claim or complete outbox
//! rows. (lldap's capability traits make the same split.)

mod audit;
mod audit_delivery;
mod coder_map;
mod health;
mod oauth_clients;
mod outbox;
mod resources;
mod service_secrets;
mod sync_issues;
mod tokens;

pub use audit::Audit;
pub use audit_delivery::AuditStream;
pub use coder_map::CoderMap;
pub use health::Health;
pub use oauth_clients::OAuthClients;
pub use outbox::{Outbox, OutboxReader};
pub use resources::{ResourceReader, Resources};
pub use service_secrets::ServiceSecrets;
pub use sync_issues::SyncIssues;
pub use tokens::Tokens;

use crate::Store;

/// One accessor on [`Store`] per capability handle, each a handle on a clone of the store (a
/// clone shares the pools).
macro_rules! handles {
    ($($(#[$doc:meta])* $name:ident -> $handle:ident;)*) => {
        impl Store {
            $(
                $(#[$doc])*
                pub fn $name(&self) -> $handle {
                    $handle::new(self.clone())
                }
            )*
        }
    };
}

handles! {
    /// SCIM Users and Groups, read and written (the HTTP service).
    resources -> Resources;

    /// The outbox the Coder worker drains.
    outbox -> Outbox;

    /// The hash-chained audit log.
    audit -> Audit;

    /// The live audit stream: records after a cursor, and the sinks' cursors and leases.
    audit_stream -> AuditStream;

    /// Secrets the bridge makes for itself and every replica shares.
    service_secrets -> ServiceSecrets;

    /// Bearer tokens.
    tokens -> Tokens;

    /// OAuth clients (client credentials grant).
    oauth_clients -> OAuthClients;

    /// The worker's mapping from SCIM resources to Coder users and groups.
    coder_map -> CoderMap;

    /// Whether the database answers and its schema is this build's (`/readyz`).
    health -> Health;

    /// Problems the worker found that need an operator.
    sync_issues -> SyncIssues;
}
