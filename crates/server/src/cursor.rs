//! RFC 9865 cursors: opaque to the client, tamper-evident, expiring, and good on every replica.
//!
//! A cursor is where the next page starts, sealed with ChaCha20-Poly1305 under a key every
//! replica reads from the database (`ServiceSecrets`, made on first use): no operator setting
//! is needed, and nothing is kept per cursor, so any replica opens what another issued and a
//! flood of first pages costs no memory (RFC 9865 §5.3). Sealed with the position are the
//! listing it belongs to (endpoint plus a digest of `filter`, `sortBy` and `sortOrder`), the
//! first page's `count` and the expiry. A client can neither read one (RFC 9865 §5.2 asks that
//! cursors be obfuscated) nor make one: a changed byte fails the tag, and a cursor replayed on
//! another listing or filter names that other listing. Either is 400 `invalidCursor`; a cursor
//! older than [`CURSOR_TIMEOUT_SECS`] is 400 `expiredCursor`; another `count` than the first
//! page's is 400 `invalidCount` (RFC 9865 §2.1).
//!
//! Authorization is the caller's, checked on every page as on any request: a cursor grants
//! nothing (RFC 9865 §5.2); every reader may read every listing.

use crate::error::{ApiError, ApiResult};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use scim::query::{Keyset, ListQuery};
use scim::{ScimError, ScimType};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use store::{ServiceSecrets, StoredResource};
use tokio::sync::OnceCell;

/// How long a cursor stays good (`cursorTimeout` in `/ServiceProviderConfig`): the least time a
/// client may take between two pages.
pub const CURSOR_TIMEOUT_SECS: i64 = 3600;

/// The name of the sealing key among the service secrets.
const KEY_NAME: &str = "pagination-cursor-v1";

/// Where the next page of a listing starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// After this resource in listing order (`created`, then `id`): keyset paging, stable while
    /// resources are added or removed.
    After {
        /// `created`, in microseconds since the epoch (the store keeps microseconds).
        created: i64,
        id: String,
    },
    /// At this 0-based position: sorted listings and the catalogs read from the configuration.
    Offset(usize),
}

impl Position {
    /// Keyset paging after `resource`.
    pub fn after(created: DateTime<Utc>, id: &str) -> Position {
        Position::After {
            created: created.timestamp_micros(),
            id: id.to_string(),
        }
    }

    /// The keyset of an `After` position.
    pub fn keyset(&self) -> Option<Keyset> {
        match self {
            Position::After { created, id } => Some(Keyset {
                created: DateTime::from_timestamp_micros(*created)?,
                id: id.clone(),
            }),
            Position::Offset(_) => None,
        }
    }
}

/// What a cursor carries, sealed. Short field names: it travels in every next request's URL.
#[derive(Debug, Serialize, Deserialize)]
struct CursorState {
    /// The listing (see [`listing_digest`]).
    l: String,
    /// The first page's `count` (`None`: not given).
    c: Option<usize>,
    /// Good until, in seconds since the epoch.
    e: i64,
    /// Where the next page starts.
    p: Position,
}

/// Issues and opens cursors.
pub struct Cursors {
    secrets: ServiceSecrets,
    key: OnceCell<LessSafeKey>,
    clock: Arc<dyn clock::Clock>,
    ids: Arc<dyn clock::IdSource>,
}

impl Cursors {
    pub fn new(
        secrets: ServiceSecrets,
        clock: Arc<dyn clock::Clock>,
        ids: Arc<dyn clock::IdSource>,
    ) -> Cursors {
        Cursors {
            secrets,
            key: OnceCell::new(),
            clock,
            ids,
        }
    }

    /// The sealing key, read from the store once per process.
    async fn key(&self) -> ApiResult<&LessSafeKey> {
        self.key
            .get_or_try_init(|| async {
                let secret = self
                    .secrets
                    .get(KEY_NAME, CHACHA20_POLY1305.key_len())
                    .await?;
                let unbound =
                    UnboundKey::new(&CHACHA20_POLY1305, &secret[..CHACHA20_POLY1305.key_len()])
                        .map_err(|_| ScimError::status(500, "the cursor key cannot be used"))?;
                Ok::<_, ApiError>(LessSafeKey::new(unbound))
            })
            .await
    }

    /// Where `query`'s page starts: `None` for a first page (no cursor, or an empty one), else
    /// the position its cursor carries, once the cursor is proven to be one this service issued
    /// for this `listing` and `query`, still good, and asked with the same `count`.
    pub async fn open(&self, listing: &str, query: &ListQuery) -> ApiResult<Option<Position>> {
        let Some(text) = query.cursor.as_deref().filter(|c| !c.is_empty()) else {
            return Ok(None);
        };
        let state = self.unseal(text).await.ok_or_else(invalid_cursor)?;
        if state.l != listing_digest(listing, query) {
            return Err(invalid_cursor());
        }
        if self.clock.now().timestamp() > state.e {
            return Err(ScimError::typed(
                ScimType::ExpiredCursor,
                format!(
                    "the cursor has expired; pages must be asked within {CURSOR_TIMEOUT_SECS} s of each other (cursorTimeout): list again from an empty cursor"
                ),
            )
            .into());
        }
        if state.c != query.count {
            return Err(ScimError::typed(
                ScimType::InvalidCount,
                format!(
                    "count must be the first page's ({}) on every page of a cursor listing",
                    state.c.map_or("none".to_string(), |c| c.to_string())
                ),
            )
            .into());
        }
        Ok(Some(state.p))
    }

    /// The cursor of the page of `listing` and `query` that starts at `next`.
    pub async fn issue(
        &self,
        listing: &str,
        query: &ListQuery,
        next: Position,
    ) -> ApiResult<String> {
        let state = CursorState {
            l: listing_digest(listing, query),
            c: query.count,
            e: self.clock.now().timestamp() + CURSOR_TIMEOUT_SECS,
            p: next,
        };
        let mut sealed = serde_json::to_vec(&state)
            .map_err(|e| ScimError::status(500, format!("a cursor cannot be written: {e}")))?;
        let mut nonce = [0u8; NONCE_LEN];
        self.ids.fill(&mut nonce);
        self.key()
            .await?
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::empty(),
                &mut sealed,
            )
            .map_err(|_| ScimError::status(500, "a cursor cannot be sealed"))?;
        let mut bytes = nonce.to_vec();
        bytes.extend_from_slice(&sealed);
        Ok(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Resume an index-paged listing (sorted, or a catalog) where its cursor says.
    pub async fn resume_at_offset(&self, listing: &str, query: &mut ListQuery) -> ApiResult<()> {
        match self.open(listing, query).await? {
            None => Ok(()),
            Some(Position::Offset(next)) => {
                query.start_index = next.saturating_add(1);
                Ok(())
            }
            Some(Position::After { .. }) => Err(invalid_cursor()),
        }
    }

    /// The `nextCursor` of a cursor-paged page of `len` items that started at
    /// `query.start_index`, unless it is the last of `total`.
    pub async fn next_at_offset(
        &self,
        listing: &str,
        query: &ListQuery,
        len: usize,
        total: u64,
    ) -> ApiResult<Option<String>> {
        let next = query.start_index.saturating_sub(1).saturating_add(len);
        // An empty page (count=0, or past the end) has no next: its cursor would repeat it.
        if query.cursor.is_none() || len == 0 || u64::try_from(next).unwrap_or(u64::MAX) >= total {
            return Ok(None);
        }
        self.issue(listing, query, Position::Offset(next))
            .await
            .map(Some)
    }

    /// Resume a keyset-paged listing after the resource its cursor names.
    pub async fn resume_after(&self, listing: &str, query: &mut ListQuery) -> ApiResult<()> {
        if let Some(position) = self.open(listing, query).await? {
            query.after = Some(position.keyset().ok_or_else(invalid_cursor)?);
        }
        Ok(())
    }

    /// The `nextCursor` of a keyset-paged page ending with `last`, when `more` follow.
    pub async fn next_after(
        &self,
        listing: &str,
        query: &ListQuery,
        last: Option<&StoredResource>,
        more: bool,
    ) -> ApiResult<Option<String>> {
        match last {
            Some(last) if more && query.cursor.is_some() => self
                .issue(listing, query, Position::after(last.created, &last.id))
                .await
                .map(Some),
            _ => Ok(None),
        }
    }

    /// The state sealed in `text`; `None` for anything this service did not seal.
    async fn unseal(&self, text: &str) -> Option<CursorState> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        if bytes.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let key = self.key().await.ok()?;
        let plain = key.open_in_place(nonce, Aad::empty(), &mut sealed).ok()?;
        serde_json::from_slice(plain).ok()
    }
}

/// RFC 9865 §2.1: one answer for every cursor this service did not issue for this query, so the
/// answer tells nothing about why (RFC 9865 §5.2).
fn invalid_cursor() -> ApiError {
    ScimError::typed(
        ScimType::InvalidCursor,
        "the cursor is not one this service issued for this listing; send nextCursor from the previous page with the same filter, sortBy and sortOrder, or an empty cursor for the first page",
    )
    .into()
}

/// What makes two requests the same listing (RFC 9865 §2: every parameter but `cursor` stays
/// the same): the endpoint, `filter`, `sortBy` and `sortOrder`. `attributes` may change between
/// pages; `count` is checked on its own for its own error.
fn listing_digest(listing: &str, query: &ListQuery) -> String {
    let canonical = format!(
        "{listing}\n{:?}\n{:?}\n{:?}",
        query.filter, query.sort_by, query.sort_order
    );
    let digest = ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest.as_ref()[..16])
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use chrono::Duration;
    use test_support::TestStore;

    fn query(params: &[(&str, &str)]) -> ListQuery {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        ListQuery::from_params(&params).unwrap()
    }

    fn scim_type(result: ApiResult<Option<Position>>) -> Option<ScimType> {
        match result {
            Err(ApiError::Scim(e)) => e.scim_type,
            other => panic!("not a SCIM error: {other:?}"),
        }
    }

    #[tokio::test]
    async fn a_cursor_expires_after_the_advertised_timeout() {
        let db = TestStore::sqlite().await;
        let cursors = Cursors::new(
            db.store.service_secrets(),
            db.clock.clone(),
            Arc::new(clock::SeededIds::new(7)),
        );
        let first = query(&[("cursor", ""), ("count", "2")]);
        let next = Position::Offset(2);
        let text = cursors.issue("/Users", &first, next.clone()).await.unwrap();
        let again = query(&[("cursor", &text), ("count", "2")]);
        db.clock.advance(Duration::seconds(CURSOR_TIMEOUT_SECS));
        assert_eq!(cursors.open("/Users", &again).await.unwrap(), Some(next));
        db.clock.advance(Duration::seconds(1));
        assert_eq!(
            scim_type(cursors.open("/Users", &again).await),
            Some(ScimType::ExpiredCursor)
        );
        // A cursor sealed under another database's key is not this service's.
        let other = TestStore::sqlite().await;
        let foreign = Cursors::new(
            other.store.service_secrets(),
            db.clock.clone(),
            Arc::new(clock::SeededIds::new(7)),
        );
        let text = foreign
            .issue("/Users", &first, Position::Offset(2))
            .await
            .unwrap();
        assert_eq!(
            scim_type(
                cursors
                    .open("/Users", &query(&[("cursor", &text), ("count", "2")]))
                    .await
            ),
            Some(ScimType::InvalidCursor)
        );
    }
}
