//! `scim-bridge audit export|verify|head`: the hash-chained audit trail.

use std::io::Write;

use store::AuditHead;

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum AuditAction {
    /// Write records as JSON lines to stdout.
    Export {
        /// Only records at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
    /// Check every link of the hash chain (keyed records with SCIM_BRIDGE_AUDIT_KEY) and report
    /// the first broken one (exit code 1).
    Verify {
        /// A head printed earlier by `audit head` (SEQ:HASH); the chain must still reach it.
        /// Repeat for several.
        #[arg(long, value_name = "SEQ:HASH", value_parser = parse_head)]
        expect_head: Vec<AuditHead>,
    },
    /// Print the chain's head as SEQ:HASH, to keep outside the database (a SIEM, an object store)
    /// for `audit verify --expect-head`.
    Head,
}

fn parse_head(raw: &str) -> Result<AuditHead, String> {
    raw.parse()
}

pub async fn run(settings: &Settings, action: AuditAction) -> anyhow::Result<bool> {
    let store = super::open_store(settings).await?;
    match action {
        AuditAction::Export { since } => {
            let since = match since {
                Some(raw) => Some(
                    chrono::DateTime::parse_from_rfc3339(&raw)
                        .map_err(|e| {
                            anyhow::anyhow!("--since: '{raw}' is not an RFC 3339 time: {e}")
                        })?
                        .with_timezone(&chrono::Utc),
                ),
                None => None,
            };
            let records = store.audit().export(since).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for r in records {
                serde_json::to_writer(&mut out, &r)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(true)
        }
        AuditAction::Verify { expect_head } => {
            let report = store.audit().verify_expecting(&expect_head).await?;
            match report.first_broken {
                None => {
                    let reached = expect_head
                        .iter()
                        .map(|head| format!(", reaches {head}"))
                        .collect::<String>();
                    println!(
                        "audit chain intact: {} record(s) verified, {} keyed{reached}",
                        report.checked, report.keyed
                    );
                    Ok(true)
                }
                Some((seq, reason)) => {
                    let hint = if settings.audit_keys.current().is_none() && reason.contains("key")
                    {
                        " (set SCIM_BRIDGE_AUDIT_KEY or SCIM_BRIDGE_AUDIT_KEY_FILE to verify keyed records)"
                    } else {
                        ""
                    };
                    println!(
                        "audit chain BROKEN at record {seq}: {reason}{hint} ({} record(s) checked)",
                        report.checked
                    );
                    Ok(false)
                }
            }
        }
        AuditAction::Head => {
            let head = store
                .audit()
                .head()
                .await
                .map_err(|e| anyhow::anyhow!("reading the audit head: {e}"))?;
            println!("{head}");
            Ok(true)
        }
    }
}
