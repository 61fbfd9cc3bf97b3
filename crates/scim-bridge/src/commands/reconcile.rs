//! `scim-bridge reconcile [--dry-run]`: drift repair on demand.

use reconcile::DriftProgress;
use serde::Serialize;

use crate::config::Settings;
use crate::output::{self, OutputArgs, Table, View};

#[derive(Debug, clap::Args)]
pub struct ReconcileArgs {
    /// Print the plan without queueing anything.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// What drift repair found, and what it queued.
#[derive(Debug, Serialize)]
struct PlanView {
    dry_run: bool,
    users_checked: u64,
    agents_checked: u64,
    groups_checked: u64,
    differences: Vec<Difference>,
    /// Resources queued for sync; `None` on a dry run.
    queued: Option<u64>,
    /// Coder accounts no SCIM resource manages, with what `[orphans]` does with each.
    orphans: Vec<OrphanView>,
    /// Orphans suspended (`[orphans] action = "suspend"`); `None` on a dry run.
    orphans_suspended: Option<u64>,
}

#[derive(Debug, Serialize)]
struct OrphanView {
    username: String,
    email: String,
    status: String,
    /// `suspend`, `report only`, `allow-listed`, `the bridge's own account`, `already suspended`.
    action: &'static str,
}

#[derive(Debug, Serialize)]
struct Difference {
    /// What kind of drift (`missing_in_coder`, `roles`, …).
    drift: &'static str,
    kind: &'static str,
    resource_id: String,
    detail: String,
}

impl View for PlanView {
    fn table(&self) -> String {
        let agents = match self.agents_checked {
            0 => String::new(),
            n => format!(", {n} agents"),
        };
        let mut text = format!(
            "checked {} users{agents} and {} groups: {} difference(s)\n",
            self.users_checked,
            self.groups_checked,
            self.differences.len()
        );
        if !self.differences.is_empty() {
            let mut table = Table::new(&["DRIFT", "KIND", "RESOURCE", "DETAIL"]);
            for d in &self.differences {
                table.row(vec![
                    d.drift.into(),
                    d.kind.into(),
                    d.resource_id.clone(),
                    d.detail.clone(),
                ]);
            }
            text.push_str(&table.to_string());
        }
        if !self.orphans.is_empty() {
            text.push_str(&format!(
                "{} Coder account(s) no SCIM resource manages:\n",
                self.orphans.len()
            ));
            let mut table = Table::new(&["ORPHAN", "EMAIL", "STATUS", "ACTION"]);
            for o in &self.orphans {
                table.row(vec![
                    o.username.clone(),
                    o.email.clone(),
                    o.status.clone(),
                    o.action.into(),
                ]);
            }
            text.push_str(&table.to_string());
        }
        if let Some(n) = self.orphans_suspended.filter(|n| *n > 0) {
            text.push_str(&format!("{n} orphaned Coder account(s) suspended\n"));
        }
        match self.queued {
            None => text.push_str("dry run: nothing was queued\n"),
            Some(n) => text.push_str(&format!(
                "{n} resource(s) queued for sync; `scim-bridge outbox status` shows the progress\n"
            )),
        }
        text
    }
}

pub async fn run(settings: &Settings, args: ReconcileArgs) -> anyhow::Result<()> {
    let store = super::open_store(settings).await?;
    let reconciler = crate::sync::reconciler(settings, &store, None)?;
    let bar = output::progress_bar();
    let mut progress = |p: DriftProgress| match p {
        DriftProgress::CoderRead { users } => {
            bar.set_message(format!("read {users} Coder users"));
        }
        DriftProgress::UsersChecked { checked, total } => {
            bar.set_length(total);
            bar.set_position(checked);
            bar.set_message("users checked");
        }
        DriftProgress::GroupsChecked { checked, total } => {
            bar.set_length(total);
            bar.set_position(checked);
            bar.set_message("groups checked");
        }
    };
    let plan = reconcile::drift::plan(&reconciler, &mut progress).await;
    bar.finish_and_clear();
    let plan = plan?;
    let repaired = if args.dry_run {
        None
    } else {
        Some(reconcile::drift::repair(&reconciler, &plan).await?)
    };
    let view = PlanView {
        dry_run: args.dry_run,
        users_checked: plan.users_checked,
        agents_checked: plan.agents_checked,
        groups_checked: plan.groups_checked,
        differences: plan
            .items
            .iter()
            .map(|i| Difference {
                drift: i.kind.as_str(),
                kind: i.resource.name(),
                resource_id: i.id.clone(),
                detail: i.detail.clone(),
            })
            .collect(),
        queued: repaired.map(|r| r.queued),
        orphans: plan
            .orphans
            .iter()
            .map(|o| OrphanView {
                username: o.user.username.clone(),
                email: o.user.email.clone(),
                status: format!("{:?}", o.user.status).to_lowercase(),
                action: o.disposition.as_str(),
            })
            .collect(),
        orphans_suspended: repaired.map(|r| r.orphans_suspended),
    };
    output::print(args.output.output, &view)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};

    fn plan(queued: Option<u64>) -> PlanView {
        PlanView {
            dry_run: queued.is_none(),
            users_checked: 1200,
            agents_checked: 4,
            groups_checked: 35,
            differences: vec![
                Difference {
                    drift: "user_status",
                    kind: "User",
                    resource_id: "2c9f6a3e-0b1d-4c7a-9e8f-5a6b7c8d9e0f".into(),
                    detail: "Coder: active, desired: suspended".into(),
                },
                Difference {
                    drift: "group_members",
                    kind: "Group",
                    resource_id: "7d1e2f3a-4b5c-4d6e-8f9a-0b1c2d3e4f5a".into(),
                    detail: "2 member(s) to add, 1 to remove".into(),
                },
            ],
            queued,
            orphans: vec![OrphanView {
                username: "breakglass".into(),
                email: "breakglass@corp.example".into(),
                status: "active".into(),
                action: "allow-listed",
            }],
            orphans_suspended: queued.map(|_| 0),
        }
    }

    crate::output::snapshot_tests! {
        reconcile_dry_run_table => render(Format::Table, &plan(None)).unwrap();
        reconcile_dry_run_json => render(Format::Json, &plan(None)).unwrap();
        reconcile_queued_table => render(Format::Table, &plan(Some(2))).unwrap();
    }
}
