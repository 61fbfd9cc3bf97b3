//! `scim-bridge outbox status|list|retry`: the queue of resources waiting to be synced to Coder.

use store::{OutboxFilter, RetryTarget};

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum OutboxAction {
    /// Depth, oldest age, retrying and dead-lettered rows.
    Status,
    /// List rows (pending and retrying by default).
    List {
        /// Only dead-lettered rows, with their reasons.
        #[arg(long)]
        dead: bool,
        #[arg(long, default_value_t = 100)]
        limit: u32,
    },
    /// Put a dead-lettered row (or all of them) back in the queue.
    Retry {
        id: Option<i64>,
        #[arg(long)]
        all_dead: bool,
    },
}

pub async fn run(settings: &Settings, action: OutboxAction) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    match action {
        OutboxAction::Status => {
            let s = store.outbox_stats().await?;
            println!("depth:      {}", s.depth);
            println!(
                "oldest age: {}",
                s.oldest_age
                    .map(|a| format!("{}s", a.num_seconds()))
                    .unwrap_or_else(|| "-".into())
            );
            println!("retrying:   {}", s.retrying);
            println!("dead:       {}", s.dead);
        }
        OutboxAction::List { dead, limit } => {
            let filter = if dead {
                OutboxFilter::Dead
            } else {
                OutboxFilter::All
            };
            let rows = store.outbox_list(filter, limit).await?;
            println!(
                "{:<8} {:<6} {:<38} {:<11} {:<8} {:<26} REASON",
                "ID", "KIND", "RESOURCE", "PRIORITY", "ATTEMPTS", "ENQUEUED"
            );
            for e in rows.into_iter().filter(|e| dead || e.dead_at.is_none()) {
                let reason = e
                    .dead_reason
                    .clone()
                    .or(e.last_error.clone())
                    .unwrap_or_default();
                println!(
                    "{:<8} {:<6} {:<38} {:<11} {:<8} {:<26} {}",
                    e.id,
                    e.kind.name(),
                    e.resource_id,
                    format!("{:?}", e.priority).to_lowercase(),
                    e.attempts,
                    e.enqueued_at.to_rfc3339(),
                    reason
                );
            }
        }
        OutboxAction::Retry { id, all_dead } => {
            let target = match (id, all_dead) {
                (Some(id), false) => RetryTarget::One(id),
                (None, true) => RetryTarget::AllDead,
                _ => anyhow::bail!("give either an outbox row ID or --all-dead"),
            };
            let n = store.outbox_retry(target).await?;
            println!("{n} row(s) queued again");
        }
    }
    Ok(())
}
