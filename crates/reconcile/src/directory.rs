//! Which emails Coder's users hold, from one paged listing, so that on an initial sync a new
//! user costs one Coder call (the create) instead of two (a lookup by email, then the create).
//!
//! The snapshot is only trusted to say an email is *absent*, and the create that follows checks
//! it: Coder answers 409 to a create whose email (or username) an existing user holds, and the
//! caller then looks the email up and goes on as if it had looked first. An email the snapshot
//! holds is always looked up, so the caller acts on Coder's current user, never on the copy. A
//! stale snapshot (a user created or deleted in Coder since the listing, or a page shifted by a
//! concurrent change) therefore costs calls, never correctness: nothing is created twice and
//! nothing is skipped, whatever the snapshot says.
//!
//! Refreshing costs one call per page of Coder's users, so it is paid only when it saves at
//! least as much: when the snapshot is older than its maximum age, lookups are made as before,
//! and once they number as many as the last listing had pages, the next one lists again.

use coder::{CoderClient, CoderError};
use std::collections::HashSet;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// How long a snapshot answers for Coder's emails. Past it, a create of an email made in Coder
/// meanwhile meets a 409 and a lookup: a cost, not a risk.
pub(crate) const SNAPSHOT_MAX_AGE: Duration = Duration::from_secs(60);

/// Emails per page as the client lists them (`CoderClient::list_all_users`).
const PAGE_SIZE: u64 = 100;

/// Coder's users' emails, as last listed.
#[derive(Debug, Default)]
pub(crate) struct UserDirectory {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    snapshot: Option<Snapshot>,
    /// Lookups made since the snapshot went stale (or since start).
    lookups: u64,
}

#[derive(Debug)]
struct Snapshot {
    taken: Instant,
    /// Lower-cased; Coder compares emails ignoring case.
    emails: HashSet<String>,
    /// Calls the listing took, the price of the next one.
    pages: u64,
}

impl UserDirectory {
    /// Whether a fresh snapshot shows no Coder user with `email`; `false` means "look it up".
    /// May list Coder's users (see the module's docs); concurrent callers wait for one listing.
    pub(crate) async fn known_absent(
        &self,
        client: &CoderClient,
        clock: &dyn clock::Clock,
        email: &str,
    ) -> Result<bool, CoderError> {
        let email = email.to_lowercase();
        let mut state = self.state.lock().await;
        let fresh = |s: &Snapshot| clock.elapsed(s.taken) < SNAPSHOT_MAX_AGE;
        if let Some(snapshot) = state.snapshot.as_ref().filter(|s| fresh(s)) {
            return Ok(!snapshot.emails.contains(&email));
        }
        let price = state.snapshot.as_ref().map_or(1, |s| s.pages);
        state.lookups += 1;
        if state.lookups < price {
            return Ok(false);
        }
        let taken = clock.instant();
        let users = client.list_all_users(None).await?;
        let pages = (users.len() as u64 / PAGE_SIZE) + 1;
        let emails: HashSet<String> = users.iter().map(|u| u.email.to_lowercase()).collect();
        let absent = !emails.contains(&email);
        tracing::debug!(users = users.len(), pages, "listed Coder's users");
        state.snapshot = Some(Snapshot {
            taken,
            emails,
            pages,
        });
        state.lookups = 0;
        Ok(absent)
    }
}
