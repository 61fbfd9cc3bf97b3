//! `scim-bridge reconcile [--dry-run]`: drift repair on demand.

use std::io::{IsTerminal, Write};

use reconcile::DriftProgress;

use crate::config::Settings;

pub async fn run(settings: &Settings, dry_run: bool) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    let reconciler = crate::sync::reconciler(settings, &store, None)?;
    let terminal = std::io::stderr().is_terminal();
    let mut progress = move |p: DriftProgress| {
        let line = match p {
            DriftProgress::CoderRead { users } => format!("read {users} Coder users"),
            DriftProgress::UsersChecked { checked, total } => {
                format!("users checked: {checked}/{total}")
            }
            DriftProgress::GroupsChecked { checked, total } => {
                format!("groups checked: {checked}/{total}")
            }
        };
        if terminal {
            eprint!("\r\x1b[2K{line}");
            let _ = std::io::stderr().flush();
        }
    };
    let plan = reconcile::drift::plan(&reconciler, &mut progress).await?;
    if terminal {
        eprintln!();
    }
    print!("{plan}");
    if dry_run {
        println!("dry run: nothing was queued");
    } else {
        let queued = reconcile::drift::enqueue(&store, &plan).await?;
        println!(
            "{queued} resource(s) queued for sync; `scim-bridge outbox status` shows the progress"
        );
    }
    Ok(())
}
