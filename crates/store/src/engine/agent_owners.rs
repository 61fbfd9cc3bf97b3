//! The owner index of Agents (`agent_owners`): which Agents list a User among their `owners`.
//! Written with the Agent in its write transaction, read by the owner cascade, so an owner's
//! reconcile looks up its agents through an index instead of reading every Agent.

use super::Backend;
use super::write_tx::Stmt;
use crate::error::StoreResult;
use serde_json::{Map, Value};
use std::fmt::Write as _;

/// The statements that make `agent_owners` hold exactly the owners in `attrs` for `agent_id`.
pub(super) fn owner_index_stmts(agent_id: &str, attrs: &Map<String, Value>) -> Vec<Stmt> {
    let owners = scim::resource::agent_owner_ids(attrs);
    let mut stmts = vec![Stmt::new("DELETE FROM agent_owners WHERE agent_id = $1").text(agent_id)];
    if owners.is_empty() {
        return stmts;
    }
    let mut sql = String::from("INSERT INTO agent_owners (agent_id, owner_id) VALUES ");
    for n in 0..owners.len() {
        let sep = if n == 0 { "" } else { ", " };
        let _ = write!(sql, "{sep}($1, ${})", n + 2);
    }
    let mut insert = Stmt::new(sql).text(agent_id);
    for owner in owners {
        insert = insert.text(owner);
    }
    stmts.push(insert);
    stmts
}

impl Backend {
    /// The ids of the Agents that list User `owner_id` among their owners.
    pub(crate) async fn agents_owned_by(&self, owner_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT agent_id FROM agent_owners WHERE owner_id = $1 ORDER BY agent_id",
        )
        .bind(owner_id)
        .fetch_all(&self.read)
        .await?)
    }
}
