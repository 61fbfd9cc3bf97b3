//! Confirmation before a command that cannot be undone (`token revoke`, `client revoke`).

use std::io::{BufRead, IsTerminal, Write};

use crate::exit::{self, Exit};

/// `--yes`: do it without asking (scripts, runbooks).
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct ConfirmArgs {
    /// Do it without asking; required when stdin is not a terminal.
    #[arg(short = 'y', long)]
    pub yes: bool,
}

/// What a revoke command (`token revoke`, `client revoke`) takes: the name, and `--yes`.
#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    pub name: String,
    #[command(flatten)]
    pub confirm: ConfirmArgs,
}

impl ConfirmArgs {
    /// Go on with `--yes`, or when the person at the terminal answers y; otherwise nothing is
    /// done. Without a terminal and without `--yes` the command is refused as a usage error, so a
    /// script never hangs on a question nobody sees.
    pub fn ask(&self, question: &str) -> anyhow::Result<()> {
        if self.yes {
            return Ok(());
        }
        let stdin = std::io::stdin();
        if !stdin.is_terminal() {
            return Err(exit::usage(
                "this cannot be undone: add --yes to confirm (stdin is not a terminal to ask on)",
            ));
        }
        let mut err = std::io::stderr().lock();
        write!(err, "{question} [y/N] ")?;
        err.flush()?;
        let mut answer = String::new();
        stdin.lock().read_line(&mut answer)?;
        if is_yes(&answer) {
            Ok(())
        } else {
            Err(exit::with(
                Exit::No,
                anyhow::anyhow!("not confirmed; nothing was changed"),
            ))
        }
    }
}

fn is_yes(answer: &str) -> bool {
    matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_y_or_yes_confirms() {
        for yes in ["y\n", "Y", " yes \n", "YES"] {
            assert!(super::is_yes(yes), "{yes:?}");
        }
        for no in ["", "\n", "n", "no", "yep", "sure"] {
            assert!(!super::is_yes(no), "{no:?}");
        }
    }
}
