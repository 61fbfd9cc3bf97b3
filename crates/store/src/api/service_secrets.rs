use crate::on_backend;
use crate::{Store, StoreResult};

/// Secrets the bridge makes for itself and every replica on the database shares, such as the
/// key that seals pagination cursors: no operator has to provide or rotate them.
#[derive(Debug, Clone)]
pub struct ServiceSecrets {
    store: Store,
}

impl ServiceSecrets {
    pub(crate) fn new(store: Store) -> ServiceSecrets {
        ServiceSecrets { store }
    }

    /// The secret called `name`, at least `len` bytes: read, or made from the store's
    /// `IdSource` and kept on first use (when replicas race, the first one stored wins and
    /// every replica gets that one).
    pub async fn get(&self, name: &str, len: usize) -> StoreResult<Vec<u8>> {
        on_backend!(&self.store, b => b.service_secret(name, len).await)
    }
}
