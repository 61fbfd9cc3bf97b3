//! `scim-bridge audit export|verify|head`: the hash-chained audit trail.

use std::io::Write;

use serde::Serialize;
use store::AuditHead;

use crate::config::Settings;
use crate::output::{self, OutputArgs, View};

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
        #[command(flatten)]
        output: OutputArgs,
    },
    /// Print the chain's head as SEQ:HASH, to keep outside the database (a SIEM, an object store)
    /// for `audit verify --expect-head`.
    Head {
        #[command(flatten)]
        output: OutputArgs,
    },
}

/// What `audit verify` found.
#[derive(Debug, Serialize)]
struct Verification {
    intact: bool,
    checked: u64,
    keyed: u64,
    /// The `--expect-head` values the chain reaches (all of them when intact).
    expected_heads: Vec<String>,
    /// The first record that does not verify.
    first_broken: Option<BrokenLink>,
}

#[derive(Debug, Serialize)]
struct BrokenLink {
    seq: i64,
    reason: String,
    /// What to do about it, when the bridge can tell.
    hint: Option<String>,
}

impl View for Verification {
    fn table(&self) -> String {
        match &self.first_broken {
            None => {
                let reached: String = self
                    .expected_heads
                    .iter()
                    .map(|head| format!(", reaches {head}"))
                    .collect();
                format!(
                    "audit chain intact: {} record(s) verified, {} keyed{reached}\n",
                    self.checked, self.keyed
                )
            }
            Some(broken) => {
                let hint = broken
                    .hint
                    .as_ref()
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                format!(
                    "audit chain BROKEN at record {}: {}{hint} ({} record(s) checked)\n",
                    broken.seq, broken.reason, self.checked
                )
            }
        }
    }
}

/// `audit head`: `SEQ:HASH` in a table, for scripts that keep it as it is.
#[derive(Debug, Serialize)]
struct Head {
    seq: i64,
    hash: String,
}

impl View for Head {
    fn table(&self) -> String {
        format!("{}:{}\n", self.seq, self.hash)
    }
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
    // The run's one clock: the store's.
    let clock = store.clock();
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
                tokio::time::sleep_until(clock.instant() + FOLLOW_POLL).await;
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
                            crate::exit::usage(format!(
                                "--since: '{raw}' is not an RFC 3339 time: {e}"
                            ))
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
        AuditAction::Verify {
            expect_head,
            output,
        } => {
            let report = store.audit().verify_expecting(&expect_head).await?;
            let view = Verification {
                intact: report.first_broken.is_none(),
                checked: report.checked,
                keyed: report.keyed,
                expected_heads: if report.first_broken.is_none() {
                    expect_head.iter().map(ToString::to_string).collect()
                } else {
                    Vec::new()
                },
                first_broken: report.first_broken.map(|(seq, reason)| BrokenLink {
                    hint: (settings.audit_keys.current().is_none() && reason.contains("key"))
                        .then(|| {
                            "set SCIM_BRIDGE_AUDIT_KEY or SCIM_BRIDGE_AUDIT_KEY_FILE to verify keyed records".to_owned()
                        }),
                    seq,
                    reason,
                }),
            };
            output::print(output.output, &view)?;
            Ok(view.intact)
        }
        AuditAction::Head { output } => {
            let head = store
                .audit()
                .head()
                .await
                .map_err(|e| anyhow::anyhow!("reading the audit head: {e}"))?;
            output::print(
                output.output,
                &Head {
                    seq: head.seq,
                    hash: head.hash,
                },
            )?;
            Ok(true)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::{Format, render};

    fn intact() -> Verification {
        Verification {
            intact: true,
            checked: 42,
            keyed: 40,
            expected_heads: vec![format!("17:{}", "ab".repeat(32))],
            first_broken: None,
        }
    }

    fn broken() -> Verification {
        Verification {
            intact: false,
            checked: 12,
            keyed: 12,
            expected_heads: Vec::new(),
            first_broken: Some(BrokenLink {
                seq: 12,
                reason: "keyed with key k1, which is not configured".into(),
                hint: Some(
                    "set SCIM_BRIDGE_AUDIT_KEY or SCIM_BRIDGE_AUDIT_KEY_FILE to verify keyed records"
                        .into(),
                ),
            }),
        }
    }

    #[test]
    fn audit_verify_table() {
        let text =
            render(Format::Table, &intact()).unwrap() + &render(Format::Table, &broken()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn audit_verify_json() {
        let text =
            render(Format::Json, &intact()).unwrap() + &render(Format::Json, &broken()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn audit_head_table_is_seq_colon_hash_and_json_an_object() {
        let head = Head {
            seq: 17,
            hash: "ab".repeat(32),
        };
        let table = render(Format::Table, &head).unwrap();
        assert_eq!(
            table.trim_end().parse::<AuditHead>().unwrap().to_string(),
            table.trim_end(),
            "what `audit verify --expect-head` takes"
        );
        insta::assert_snapshot!(table + &render(Format::Json, &head).unwrap());
    }
}
