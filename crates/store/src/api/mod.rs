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

impl Store {
    /// SCIM Users and Groups, read and written (the HTTP service).
    pub fn resources(&self) -> Resources {
        Resources::new(self.clone())
    }

    /// The outbox the Coder worker drains.
    pub fn outbox(&self) -> Outbox {
        Outbox::new(self.clone())
    }

    /// The hash-chained audit log.
    pub fn audit(&self) -> Audit {
        Audit::new(self.clone())
    }

    /// The live audit stream: records after a cursor, and the sinks' cursors and leases.
    pub fn audit_stream(&self) -> AuditStream {
        AuditStream::new(self.clone())
    }

    /// Secrets the bridge makes for itself and every replica shares.
    pub fn service_secrets(&self) -> ServiceSecrets {
        ServiceSecrets::new(self.clone())
    }

    /// Bearer tokens.
    pub fn tokens(&self) -> Tokens {
        Tokens::new(self.clone())
    }

    /// OAuth clients (client credentials grant).
    pub fn oauth_clients(&self) -> OAuthClients {
        OAuthClients::new(self.clone())
    }

    /// The worker's mapping from SCIM resources to Coder users and groups.
    pub fn coder_map(&self) -> CoderMap {
        CoderMap::new(self.clone())
    }

    /// Whether the database answers and its schema is this build's (`/readyz`).
    pub fn health(&self) -> Health {
        Health::new(self.clone())
    }

    /// Problems the worker found that need an operator.
    pub fn sync_issues(&self) -> SyncIssues {
        SyncIssues::new(self.clone())
    }
}
