//! `scim-bridge audit export|verify|head`: the hash-chained audit trail.

use std::io::Write;

use store::AuditHead;

use crate::config::Settings;

#[derive(Debug, clap::Subcommand)]
pub enum AuditAction {
    /// Write records as JSON lines to stdout, each with its `event_id`.
    Export {
        /// Only records at or after this time (RFC 3339, e.g. 2026-11-01T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only records after this one (its `seq`): resume where an earlier export stopped.
        #[arg(long, value_name = "SEQ")]
        after: Option<i64>,
        /// Keep printing records as they commit, until SIGINT or SIGTERM.
        #[arg(long)]
        follow: bool,
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

/// Records read per query while exporting or following.
const PAGE: i64 = 1000;

/// How often `--follow` looks for new records.
const FOLLOW_POLL: std::time::Duration = std::time::Duration::from_millis(250);

fn write_records(out: &mut impl Write, records: &[store::AuditRecord]) -> anyhow::Result<()> {
    // The same lines the SIEM webhook's `json` format carries.
    out.write_all(&crate::audit_webhook::format::json_lines(records))?;
    Ok(())
}

/// Print the records after `after` (or from `since`), page by page; the last one's seq.
async fn export(
    store: &store::Store,
    since: Option<chrono::DateTime<chrono::Utc>>,
    after: Option<i64>,
    out: &mut impl Write,
) -> anyhow::Result<Option<i64>> {
    let mut last = None;
    if let (Some(since), None) = (since, after) {
        let records = store.audit().export(Some(since)).await?;
        write_records(out, &records)?;
        out.flush()?;
        return Ok(records.last().map(|r| r.seq));
    }
    let mut cursor = after.unwrap_or(0);
    loop {
        let mut page = store.audit_stream().after(cursor, PAGE).await?;
        let Some(seq) = page.last().map(|r| r.seq) else {
            break;
        };
        if let Some(since) = since {
            page.retain(|r| r.time >= since);
        }
        write_records(out, &page)?;
        cursor = seq;
        last = Some(seq);
    }
    out.flush()?;
    Ok(last)
}

/// Print records as they commit, after `cursor`, until cancelled.
async fn follow_from(
    store: &store::Store,
    mut cursor: i64,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let clock = clock::SystemClock;
    loop {
        let page = store.audit_stream().after(cursor, PAGE).await?;
        match page.last() {
            Some(last) => {
                cursor = last.seq;
                write_records(out, &page)?;
                // A reader at the other end of a pipe sees each record as it commits.
                out.flush()?;
            }
            None => {
                tokio::time::sleep_until(clock::Clock::instant(&clock) + FOLLOW_POLL).await;
            }
        }
    }
}

fn parse_head(raw: &str) -> Result<AuditHead, String> {
    raw.parse()
}

pub async fn run(settings: &Settings, action: AuditAction) -> anyhow::Result<bool> {
    let store = super::open_store(settings).await?;
    match action {
        AuditAction::Export {
            since,
            after,
            follow,
        } => {
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
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            let shown = export(&store, since, after, &mut out).await?;
            if !follow {
                return Ok(true);
            }
            let cursor = shown.or(after).unwrap_or(0);
            tokio::select! {
                result = follow_from(&store, cursor, &mut out) => result?,
                () = super::serve::shutdown_signal() => {}
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
