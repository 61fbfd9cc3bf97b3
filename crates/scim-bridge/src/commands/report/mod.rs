//! `scim-bridge report access|offboarding`: the evidence an access review or an audit asks for,
//! as a table, CSV (spreadsheets, GRC tools) or JSON. Each report is a list of flat rows in a
//! stable order; the CSV header and the JSON fields are the same names (docs/cli.md).

pub mod access;
pub mod offboarding;

use std::io::Write;

use crate::config::Settings;
use crate::exit;
use crate::output::{self, Row};
use chrono::{DateTime, Utc};

/// Which report.
#[derive(Debug, clap::Subcommand)]
pub enum ReportKind {
    /// One row per managed user (and agent) and Coder role, site and organization, with what
    /// grants it (a group rule naming the group, a SCIM role, the baseline), the Coder status,
    /// login type and last IdP change; then the Coder accounts no SCIM resource manages
    /// (orphans) with their roles. Reads Coder; changes nothing.
    Access(ReportArgs),
    /// Per deactivated or deleted user: when the IdP's change was stored, when Coder
    /// acknowledged the suspension, which API tokens were deleted and which workspaces stopped,
    /// from the audit trail. Reads the store only.
    Offboarding(OffboardingArgs),
}

/// `-o table|csv|json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// RFC 4180 CSV with a header line, for spreadsheets.
    Csv,
    /// A JSON array of objects (the CSV columns as fields).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// Output format: `table` for people, `csv` for spreadsheets, `json` for scripts.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ReportFormat::Table)]
    pub output: ReportFormat,
}

#[derive(Debug, clap::Args)]
pub struct OffboardingArgs {
    /// Only offboardings whose IdP change was stored at or after T: an RFC 3339 time
    /// (2026-12-01T00:00:00Z) or a duration back from now (7d, 12h, 90m).
    #[arg(long, value_name = "T")]
    pub since: Option<String>,
    #[command(flatten)]
    pub report: ReportArgs,
}

pub async fn run(settings: &Settings, kind: ReportKind) -> anyhow::Result<bool> {
    match kind {
        ReportKind::Access(args) => access::run(settings, args).await,
        ReportKind::Offboarding(args) => offboarding::run(settings, args).await,
    }
}

/// A report's row: a table row (headings for people) that is also a CSV record (headings are
/// the JSON field names).
pub trait ReportRow: Row {
    const CSV_HEADERS: &'static [&'static str];
    fn csv(&self) -> Vec<String>;
}

/// The rows in `format`: a table, CSV with a header line (also when there are no rows), or a
/// JSON array.
pub fn render<R: ReportRow>(format: ReportFormat, rows: &Vec<R>) -> anyhow::Result<String> {
    match format {
        ReportFormat::Table => output::render(output::Format::Table, rows),
        ReportFormat::Json => output::render(output::Format::Json, rows),
        ReportFormat::Csv => {
            let mut writer = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            writer.write_record(R::CSV_HEADERS)?;
            for row in rows {
                writer.write_record(row.csv())?;
            }
            Ok(String::from_utf8(writer.into_inner()?)?)
        }
    }
}

/// Print the rows to stdout in `format`.
pub fn print<R: ReportRow>(format: ReportFormat, rows: &Vec<R>) -> anyhow::Result<()> {
    let text = render(format, rows)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// A time in CSV: RFC 3339 to the microsecond, empty when absent.
pub fn csv_time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// `--since`: an RFC 3339 time, or a duration (`7d`) back from `now`.
pub fn parse_since(raw: &str, now: DateTime<Utc>) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let back = humantime::parse_duration(raw).map_err(|_| {
        exit::usage(format!(
            "--since: '{raw}' is neither an RFC 3339 time (2026-12-01T00:00:00Z) nor a duration (7d, 12h)"
        ))
    })?;
    let back = chrono::Duration::from_std(back)
        .map_err(|_| exit::usage(format!("--since: '{raw}' is too long ago")))?;
    now.checked_sub_signed(back)
        .ok_or_else(|| exit::usage(format!("--since: '{raw}' is too long ago")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_or_a_duration_back_from_now() {
        let now = DateTime::parse_from_rfc3339("2026-12-08T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            parse_since("7d", now).unwrap().to_rfc3339(),
            "2026-12-01T12:00:00+00:00"
        );
        assert_eq!(
            parse_since("2026-12-01T00:00:00+01:00", now)
                .unwrap()
                .to_rfc3339(),
            "2026-11-30T23:00:00+00:00"
        );
        let e = parse_since("last week", now).unwrap_err();
        assert_eq!(exit::code_of(&e), exit::Exit::Usage);
    }
}
