//! `scim-bridge status`: what an operator needs to know at a glance.

use crate::config::Settings;

pub async fn run(settings: &Settings) -> anyhow::Result<bool> {
    let store = super::open_store(settings).await?;
    let mut healthy = true;
    println!(
        "database:     {} (migrations current: {})",
        store.backend_name(),
        store.migrations_current().await?
    );
    let s = store.outbox_stats().await?;
    println!(
        "outbox:       {} waiting, oldest {}, {} retrying, {} dead-lettered",
        s.depth,
        s.oldest_age
            .map(|a| format!("{}s", a.num_seconds()))
            .unwrap_or_else(|| "-".into()),
        s.retrying,
        s.dead
    );
    if s.dead > 0 {
        healthy = false;
        println!(
            "              -> inspect with `scim-bridge outbox list --dead`, fix, then `scim-bridge outbox retry --all-dead`"
        );
    }
    let policy = crate::sync::policy(settings)?;
    match &settings.coder {
        None => println!(
            "coder:        not configured (SCIM changes are stored and queued, nothing is synced)"
        ),
        Some(coder) => {
            println!("coder:        {}", coder.url);
            let client = crate::sync::coder_client(coder, None)?;
            match reconcile::capabilities::check(&client, &policy).await {
                Ok(report) => {
                    for line in report.to_string().lines() {
                        println!("              {line}");
                    }
                    if !report.groups_mirrored {
                        println!(
                            "              groups are NOT mirrored to Coder (they are kept for role mapping)"
                        );
                    }
                }
                Err(e) => {
                    healthy = false;
                    println!("              UNREACHABLE or refused: {e}");
                }
            }
        }
    }
    let issues = store.sync_issue_list(false).await?;
    if issues.is_empty() {
        println!("sync issues:  none");
    } else {
        healthy = false;
        println!("sync issues:  {} open", issues.len());
        for i in issues {
            println!(
                "  - {} {} {}: {}",
                i.kind, i.resource_id, i.issue_type, i.detail
            );
        }
    }
    Ok(healthy)
}
