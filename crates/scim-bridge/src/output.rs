//! What read commands print: a table for people (`-o table`, the default) or JSON for scripts
//! (`-o json`), both from one value per command, so the two never disagree.
//!
//! JSON is the value's serde form: a list command prints an array of objects, any other command
//! one object. Field names are part of the interface (docs/cli.md); tables are for reading and
//! may gain columns.

use std::io::Write;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

/// `-o table|json`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned columns for a terminal.
    #[default]
    Table,
    /// Pretty-printed JSON for scripts and `jq`.
    Json,
}

/// The `-o/--output` flag every read command takes.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct OutputArgs {
    /// Output format: `table` for people, `json` for scripts (stable field names).
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Table)]
    pub output: Format,
}

/// A command's result, printable as a table and as JSON.
pub trait View: Serialize {
    /// The text `-o table` prints (ends with a newline, or is empty).
    fn table(&self) -> String;
}

/// One row of a list: its column headings and its cells, in the same order.
pub trait Row: Serialize {
    const HEADERS: &'static [&'static str];
    fn cells(&self) -> Vec<String>;
}

impl<R: Row> View for Vec<R> {
    fn table(&self) -> String {
        let mut table = Table::new(R::HEADERS);
        for row in self {
            table.row(row.cells());
        }
        table.to_string()
    }
}

/// Print `items` as a list to stdout in `format`, each made a row by `row`.
pub fn print_rows<T, R: Row>(
    format: Format,
    items: impl IntoIterator<Item = T>,
    row: impl FnMut(T) -> R,
) -> anyhow::Result<()> {
    let rows: Vec<R> = items.into_iter().map(row).collect();
    print(format, &rows)
}

/// Snapshot tests of what commands print, one `#[test]` each: `snapshot_tests! { name => text; }`
/// checks `text` against `snapshots/<module>__name.snap` (insta names the file after the test).
#[cfg(test)]
macro_rules! snapshot_tests {
    ($($test:ident => $printed:expr;)+) => {
        $(
            #[test]
            fn $test() {
                insta::assert_snapshot!($printed);
            }
        )+
    };
}
#[cfg(test)]
pub(crate) use snapshot_tests;

/// The view rendered in `format`.
pub fn render<V: View + ?Sized>(format: Format, view: &V) -> anyhow::Result<String> {
    Ok(match format {
        Format::Table => view.table(),
        Format::Json => {
            let mut text = serde_json::to_string_pretty(view)?;
            text.push('\n');
            text
        }
    })
}

/// Print the view to stdout in `format`.
pub fn print<V: View + ?Sized>(format: Format, view: &V) -> anyhow::Result<()> {
    let text = render(format, view)?;
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())?;
    out.flush()?;
    Ok(())
}

/// Columns without borders, `kubectl get` style: every column as wide as its widest cell (by
/// display width, so names in any script line up), two spaces between columns, no trailing
/// blanks. A cell never contains a line break.
pub struct Table(comfy_table::Table);

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        let mut table = comfy_table::Table::new();
        table
            .load_style(comfy_table::presets::NOTHING)
            .set_content_arrangement(comfy_table::ContentArrangement::Disabled)
            .set_header(headers.iter().copied());
        Table(table)
    }

    pub fn row(&mut self, cells: Vec<String>) -> &mut Table {
        self.0
            .add_row(cells.into_iter().map(|c| c.replace(['\n', '\r'], " ")));
        self
    }
}

impl std::fmt::Display for Table {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut table = self.0.clone();
        let last = table.column_count().saturating_sub(1);
        for (i, column) in table.column_iter_mut().enumerate() {
            column.set_padding((0, if i == last { 0 } else { 2 }));
        }
        for line in table.lines() {
            writeln!(f, "{}", line.trim_end())?;
        }
        Ok(())
    }
}

/// `name: value` lines with the values aligned, for a command that describes one thing.
#[derive(Default)]
pub struct Fields(Vec<(String, String)>);

impl Fields {
    pub fn new() -> Fields {
        Fields::default()
    }

    pub fn field(&mut self, name: &str, value: impl std::fmt::Display) -> &mut Fields {
        self.0.push((format!("{name}:"), value.to_string()));
        self
    }

    /// A line under the last field, indented to its value (a hint, a detail).
    pub fn note(&mut self, text: impl std::fmt::Display) -> &mut Fields {
        self.0.push((String::new(), text.to_string()));
        self
    }
}

impl std::fmt::Display for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let width = self
            .0
            .iter()
            .map(|(n, _)| n.chars().count())
            .max()
            .unwrap_or(0)
            + 1;
        for (name, value) in &self.0 {
            writeln!(f, "{}", format!("{name:<width$}{value}").trim_end())?;
        }
        Ok(())
    }
}

/// A progress bar on stderr when it is a terminal; hidden otherwise (logs, CI, pipes).
pub fn progress_bar() -> indicatif::ProgressBar {
    progress("{spinner} [{bar:30}] {pos}/{len} {msg}")
}

/// A spinner with a message, for work whose size is not known in advance.
pub fn spinner(message: impl Into<std::borrow::Cow<'static, str>>) -> indicatif::ProgressBar {
    let bar = progress("{spinner} {msg} ({elapsed})");
    bar.set_message(message);
    bar
}

fn progress(template: &str) -> indicatif::ProgressBar {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// A time in tables: UTC to the second (JSON keeps the full RFC 3339 value).
pub fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An optional time in tables; `-` when absent.
pub fn maybe_time(t: Option<DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Pet {
        name: String,
        legs: u32,
    }

    impl Row for Pet {
        const HEADERS: &'static [&'static str] = &["NAME", "LEGS"];
        fn cells(&self) -> Vec<String> {
            vec![self.name.clone(), self.legs.to_string()]
        }
    }

    fn pets() -> Vec<Pet> {
        vec![
            Pet {
                name: "Zoë the cat".into(),
                legs: 4,
            },
            Pet {
                name: "bird\nwith a newline".into(),
                legs: 2,
            },
        ]
    }

    #[test]
    fn a_list_is_aligned_columns_without_borders_or_trailing_blanks() {
        insta::assert_snapshot!(render(Format::Table, &pets()).unwrap());
    }

    #[test]
    fn a_list_is_a_json_array_of_objects() {
        let text = render(Format::Json, &pets()).unwrap();
        insta::assert_snapshot!(text);
    }

    #[test]
    fn an_empty_list_prints_its_headings_or_an_empty_array() {
        let none: Vec<Pet> = Vec::new();
        assert_eq!(render(Format::Table, &none).unwrap(), "NAME  LEGS\n");
        assert_eq!(render(Format::Json, &none).unwrap(), "[]\n");
    }

    #[test]
    fn fields_align_their_values() {
        let mut fields = Fields::new();
        fields
            .field("depth", 0)
            .field("oldest age", "-")
            .note("-> a hint");
        insta::assert_snapshot!(fields.to_string());
    }
}
