use crate::{Store, StoreResult};

/// What `/readyz` asks of the store: which backend it is, whether the database answers, and
/// whether its schema is this build's.
#[derive(Debug, Clone)]
pub struct Health {
    store: Store,
}

impl Health {
    pub(crate) fn new(store: Store) -> Health {
        Health { store }
    }

    /// [`Store::backend_name`].
    pub fn backend_name(&self) -> &'static str {
        self.store.backend_name()
    }

    /// [`Store::ping`].
    pub async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }

    /// [`Store::migrations_current`].
    pub async fn migrations_current(&self) -> StoreResult<bool> {
        self.store.migrations_current().await
    }
}
