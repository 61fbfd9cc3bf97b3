//! `scim-bridge audit export|verify`: the hash-chained audit trail.

use std::io::Write;

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum AuditAction {
    /// Write records as JSON lines to stdout.
    Export {
        /// Only records at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
    },
    /// Check every link of the hash chain and report the first broken one (exit code 1).
    Verify,
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
            let records = store.audit_export(since).await?;
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            for r in records {
                serde_json::to_writer(&mut out, &r)?;
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(true)
        }
        AuditAction::Verify => {
            let report = store.audit_verify().await?;
            match report.first_broken {
                None => {
                    println!("audit chain intact: {} record(s) verified", report.checked);
                    Ok(true)
                }
                Some((seq, reason)) => {
                    println!(
                        "audit chain BROKEN at record {seq}: {reason} ({} record(s) checked)",
                        report.checked
                    );
                    Ok(false)
                }
            }
        }
    }
}
