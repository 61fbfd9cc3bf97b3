//! `scim-bridge outbox status|list|retry`: the queue of resources waiting to be synced to Coder.

use chrono::{DateTime, Utc};
use store::{OutboxFilter, RetryTarget};

use crate::config::Settings;
use crate::output::{self, Fields, OutputArgs, Row, View};

#[derive(Debug, clap::Subcommand)]
pub enum OutboxAction {
    /// Depth, oldest age, retrying and dead-lettered rows.
    Status {
        #[command(flatten)]
        output: OutputArgs,
    },
    /// List rows (pending and retrying by default).
    List {
        /// Only dead-lettered rows, with their reasons.
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Put a dead-lettered row (or all of them) back in the queue. Safe to repeat: the worker
    /// makes Coder match the stored state, whatever the row saw before.
    Retry {
        id: Option<i64>,
        #[arg(long)]
        all_dead: bool,
    },
}

/// The queue's health, as `outbox status` and `status` print it.
#[derive(Debug, serde::Serialize)]
pub struct OutboxSummary {
    /// Rows waiting or in progress (not dead-lettered).
    pub depth: i64,
    /// Age of the oldest waiting row, in seconds.
    pub oldest_age_seconds: Option<i64>,
    pub retrying: i64,
    pub dead: i64,
}

impl From<store::OutboxStats> for OutboxSummary {
    fn from(s: store::OutboxStats) -> OutboxSummary {
        OutboxSummary {
            depth: s.depth,
            oldest_age_seconds: s.oldest_age.map(|a| a.num_seconds()),
            retrying: s.retrying,
            dead: s.dead,
        }
    }
}

impl OutboxSummary {
    /// The oldest age as the tables show it.
    pub fn oldest(&self) -> String {
        self.oldest_age_seconds
            .map(|s| format!("{s}s"))
            .unwrap_or_else(|| "-".into())
    }
}

impl View for OutboxSummary {
    fn table(&self) -> String {
        Fields::new()
            .field("depth", self.depth)
            .field("oldest age", self.oldest())
            .field("retrying", self.retrying)
            .field("dead", self.dead)
            .to_string()
    }
}

/// One line of `outbox list`.
#[derive(Debug, serde::Serialize)]
pub(crate) struct OutboxRow {
    pub(crate) id: i64,
    pub(crate) kind: &'static str,
    pub(crate) resource_id: String,
    pub(crate) priority: String,
    pub(crate) attempts: i32,
    pub(crate) enqueued_at: DateTime<Utc>,
    pub(crate) next_attempt_at: DateTime<Utc>,
    pub(crate) dead_at: Option<DateTime<Utc>>,
    /// Why it was dead-lettered, or the last attempt's error.
    pub(crate) reason: Option<String>,
}

impl From<store::OutboxEvent> for OutboxRow {
    fn from(e: store::OutboxEvent) -> OutboxRow {
        OutboxRow {
            id: e.id,
            kind: e.kind.name(),
            resource_id: e.resource_id,
            priority: format!("{:?}", e.priority).to_lowercase(),
            attempts: e.attempts,
            enqueued_at: e.enqueued_at,
            next_attempt_at: e.next_attempt_at,
            dead_at: e.dead_at,
            reason: e.dead_reason.or(e.last_error),
        }
    }
}

impl Row for OutboxRow {
    const HEADERS: &'static [&'static str] = &[
        "ID", "KIND", "RESOURCE", "PRIORITY", "ATTEMPTS", "ENQUEUED", "REASON",
    ];
    fn cells(&self) -> Vec<String> {
        vec![
            self.id.to_string(),
            self.kind.into(),
            self.resource_id.clone(),
            self.priority.clone(),
            self.attempts.to_string(),
            output::time(self.enqueued_at),
            self.reason.clone().unwrap_or_default(),
        ]
    }
}

pub async fn run(settings: &Settings, action: OutboxAction) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    match action {
        OutboxAction::Status { output } => {
            let summary = OutboxSummary::from(store.outbox().stats().await?);
            output::print(output.output, &summary)?;
        }
        OutboxAction::List {
            dead,
            limit,
            output,
        } => {
            let filter = if dead {
                OutboxFilter::Dead
            } else {
                OutboxFilter::All
            };
            let events = store.outbox().list(filter, limit).await?;
            let shown = events.into_iter().filter(|e| dead || e.dead_at.is_none());
            output::print_rows(output.output, shown, OutboxRow::from)?;
        }
        OutboxAction::Retry { id, all_dead } => {
            let target = match (id, all_dead) {
                (Some(id), false) => RetryTarget::One(id),
                (None, true) => RetryTarget::AllDead,
                _ => {
                    return Err(crate::exit::usage(
                        "give either an outbox row ID or --all-dead",
                    ));
                }
            };
            let n = store.outbox().retry(target).await?;
            println!("{n} row(s) queued again");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};

    fn summary() -> OutboxSummary {
        OutboxSummary::from(store::OutboxStats {
            depth: 3,
            oldest_age: Some(chrono::Duration::seconds(42)),
            retrying: 1,
            dead: 2,
        })
    }

    fn rows() -> Vec<OutboxRow> {
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap();
        let event =
            |id, kind, resource: &str, priority, attempts, error: Option<&str>, dead: bool| {
                OutboxRow::from(store::OutboxEvent {
                    id,
                    kind,
                    resource_id: resource.into(),
                    priority,
                    generation: 1,
                    enqueued_at: at("2026-12-03T07:00:00Z"),
                    next_attempt_at: at("2026-12-03T07:05:00Z"),
                    attempts,
                    last_error: error.map(str::to_owned),
                    leased_by: None,
                    lease_until: None,
                    dead_at: dead.then(|| at("2026-12-03T07:30:00Z")),
                    dead_reason: dead.then(|| "Coder answered 400: username is taken".to_string()),
                })
            };
        vec![
            event(
                17,
                scim::ResourceKind::User,
                "2c9f6a3e-0b1d-4c7a-9e8f-5a6b7c8d9e0f",
                store::OutboxPriority::Offboarding,
                0,
                None,
                false,
            ),
            event(
                18,
                scim::ResourceKind::Group,
                "7d1e2f3a-4b5c-4d6e-8f9a-0b1c2d3e4f5a",
                store::OutboxPriority::Normal,
                3,
                Some("Coder answered 503"),
                false,
            ),
            event(
                19,
                scim::ResourceKind::User,
                "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
                store::OutboxPriority::Normal,
                12,
                Some("Coder answered 400"),
                true,
            ),
        ]
    }

    crate::output::snapshot_tests! {
        outbox_status_table => render(Format::Table, &summary()).unwrap();
        outbox_status_json => render(Format::Json, &summary()).unwrap();
        outbox_list_table => render(Format::Table, &rows()).unwrap();
        outbox_list_json => render(Format::Json, &rows()).unwrap();
    }
}
